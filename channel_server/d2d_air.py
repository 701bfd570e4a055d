"""The D2D underlay air: E cells of paper 002 advanced slot by slot.

Pure physics and bookkeeping, shared by the channel-server process
(:mod:`channel_server.roles.d2d`) and the one-process training environment
(:mod:`controller.training.d2d_train`): the world (drop, fading), what each pair chose in
the last slot and what its receiver measured then.

Each slot: :meth:`D2dAir.slices` gives every pair its own observation parts (its D2D
gain and its gain from the BS on every RB, the interference its receiver measured on every
RB in the last slot, its last RB and power level); :meth:`D2dAir.step` plays the pairs'
choices, returns SINRs, rates, rewards and outages, and moves the fading on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from channel_server.d2d import (
    D2dRates,
    D2dScenario,
    D2dWorld,
    cue_outage,
    d2d_outage,
    d2d_reward,
    sinr_and_rates,
    to_db,
)

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class PairSlices:
    """What every pair may know at the start of a slot, ``(E, N, ...)``."""

    d2d_gain_db: Array
    """Own D2D link gain per RB, dB, ``(E, N, K)``."""
    bs_gain_db: Array
    """Gain from the BS to its receiver per RB, dB, ``(E, N, K)``."""
    interference_dbm: Array
    """Interference plus noise its receiver measured per RB in the last slot, dBm,
    ``(E, N, K)``."""
    last_rb: IntArray
    """RB it used in the last slot (-1: none yet, or silent), ``(E, N)``."""
    last_level: IntArray
    """Power level it used in the last slot (-1: none), ``(E, N)``."""


@dataclass(frozen=True)
class D2dStep:
    """The outcome of one slot of E cells."""

    rates: D2dRates
    """SINRs and rates of every link."""
    reward: Array
    """Reward of every pair, ``(E, N)`` (0 for silent pairs)."""
    power_w: Array
    """Power every pair used, watts, ``(E, N)``."""
    transmitted: BoolArray
    """Which pairs transmitted, ``(E, N)``."""
    cue_outage: BoolArray
    """CUEs below their threshold, ``(E, M)``."""
    d2d_outage: BoolArray
    """Transmitting pairs below the D2D threshold, ``(E, N)``."""


class D2dAir:
    """Physics of E parallel D2D underlay cells."""

    def __init__(self, scenario: D2dScenario, n_envs: int, seed: int) -> None:
        self.scenario = scenario
        self.n_envs = int(n_envs)
        r = scenario.radio
        self.n_pairs, self.n_rb, self.n_levels = r.n_pairs, r.n_rb, r.n_levels
        self.world = D2dWorld(scenario, self.n_envs, seed)
        shape = (self.n_envs, self.n_pairs)
        self.last_rb: IntArray = np.full(shape, -1, dtype=np.int64)
        self.last_level: IntArray = np.full(shape, -1, dtype=np.int64)
        # before the first slot the receivers heard the BS alone (current gains)
        self.last_interference_w = self._rates(np.zeros(shape, dtype=np.int64),
                                               np.zeros(shape)).interference_w

    def _rates(self, rb: IntArray, power_w: Array) -> D2dRates:
        return sinr_and_rates(self.scenario.radio, self.world.gains(), rb, power_w)

    def slices(self) -> PairSlices:
        """Every pair's own slice of the current slot."""
        g = self.world.gains()
        return PairSlices(d2d_gain_db=to_db(g.own), bs_gain_db=to_db(g.br),
                          interference_dbm=to_db(self.last_interference_w) + 30.0,
                          last_rb=self.last_rb.copy(), last_level=self.last_level.copy())

    def step(self, rb: npt.ArrayLike, level: npt.ArrayLike,
             silent: npt.ArrayLike | None = None) -> D2dStep:
        """Play one slot with RB choices and power-level indices ``(E, N)``; pairs in
        ``silent`` (a vanished or misbehaving node) do not transmit. Then the fading moves
        on by one slot."""
        s = self.scenario
        shape = (self.n_envs, self.n_pairs)
        rb_a = np.broadcast_to(np.asarray(rb, dtype=np.int64), shape)
        level_a = np.broadcast_to(np.asarray(level, dtype=np.int64), shape)
        if (rb_a < 0).any() or (rb_a >= self.n_rb).any():
            raise ValueError(f"rb must be in [0, {self.n_rb})")
        if (level_a < 0).any() or (level_a >= self.n_levels).any():
            raise ValueError(f"power level must be in [0, {self.n_levels})")
        on = np.ones(shape, dtype=bool)
        if silent is not None:
            on = on & ~np.asarray(silent, dtype=bool)
        power_w = np.where(on, s.radio.d2d_power_levels_w[level_a], 0.0)
        rates = self._rates(rb_a, power_w)
        reward = d2d_reward(s.qos, rates, rb_a, on)
        out = D2dStep(rates=rates, reward=reward, power_w=power_w, transmitted=on,
                      cue_outage=cue_outage(s.qos, rates.cue_sinr),
                      d2d_outage=d2d_outage(s.qos, rates.d2d_sinr, on))
        self.last_rb = np.where(on, rb_a, -1)
        self.last_level = np.where(on, level_a, -1)
        self.last_interference_w = rates.interference_w
        self.world.advance()
        return out
