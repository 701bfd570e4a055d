"""The vehicular air: E episodes of paper 000's V2X system advanced slot by slot.

Pure physics and bookkeeping, shared by the one-process environment
(:class:`controller.training.v2x_env.V2xEnv`) and the channel-server process: the world
(vehicles, shadowing, fading), the V2V pairs of the episode, every link's remaining
payload and delivery time, and what each V2V receiver measured in the last slot.

An episode lasts ``scenario.n_steps`` slots (deadline T / slot). :meth:`V2xAir.start_episode`
refills the payloads and re-chooses the V2V receivers; the vehicles keep moving between
episodes. A link whose payload is delivered falls silent (power 0) until the episode ends.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from channel_server.v2x import (
    V2xRates,
    V2xRngs,
    V2xScenario,
    V2xWorld,
    account_payload,
    link_rates,
    nearest_receivers,
    v2x_reward,
)

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Slices:
    """What every V2V agent may know of the channel at the start of a slot, ``(E, K, M)``."""

    v2v_gain_db: Array
    """Own V2V link effective gain per RB, dB."""
    bs_gain_db: Array
    """Effective gain from own transmitter to the BS per RB, dB."""
    interference_dbm: Array
    """Interference plus noise its receiver measured per RB in the last slot, dBm."""


@dataclass(frozen=True)
class AirStep:
    """The outcome of one slot of E episodes."""

    rates: V2xRates
    """SINR and capacities of every link."""
    reward: Array
    """Global reward (13) or the revised one, ``(E,)``."""
    power_w: Array
    """Power each V2V link used, watts, ``(E, K)`` (0 for silent links)."""
    transmitted: BoolArray
    """Which links were still transmitting in this slot, ``(E, K)``."""
    remaining_bits: Array
    """Payload left after the slot, bits, ``(E, K)``."""
    delivery_time_s: Array
    """Delivery time of every link so far in the episode, s (NaN: not yet), ``(E, K)``."""


class V2xAir:
    """Physics of E parallel vehicular episodes."""

    def __init__(self, scenario: V2xScenario, n_envs: int, seed: int) -> None:
        self.scenario = scenario
        self.n_envs = int(n_envs)
        r = scenario.radio
        self.n_agents, self.n_rb = r.n_v2v, r.n_rb
        self.n_levels = len(r.v2v_power_levels_dbm)
        self.world = V2xWorld(scenario, self.n_envs, V2xRngs.from_seed(seed))
        self.t = 0
        """Slot within the episode."""
        self.start_episode()

    def start_episode(self) -> None:
        """Refill every payload, re-choose the V2V receivers, restart the clock."""
        e, k = self.n_envs, self.n_agents
        self.tx, self.rx = nearest_receivers(self.world.positions,
                                             self.scenario.radio.v2v_neighbors)
        self.t = 0
        self.remaining_bits: Array = np.full((e, k), self.scenario.traffic.payload_bits)
        self.delivery_time_s: Array = np.full((e, k), np.nan)
        self.v2i_rate_sum_bps: Array = np.zeros(e)
        """Sum over the slots played of the sum V2I rate, bit/s."""
        self.last_rb: IntArray = np.zeros((e, k), dtype=np.int64)
        self.last_on: BoolArray = np.zeros((e, k), dtype=bool)
        # the "last slot" before the first one: the V2I links alone, current gains
        self.last_interference_w = self._rates(self.last_rb, np.zeros((e, k))).v2v_interference_w

    @property
    def done(self) -> bool:
        """The episode's deadline is reached."""
        return self.t >= self.scenario.n_steps

    @property
    def remaining_time_s(self) -> float:
        """Time left before the deadline at the start of the current slot, s."""
        return self.scenario.traffic.deadline_s - self.t * self.scenario.radio.slot_s

    def _rates(self, rb: IntArray, power_w: Array) -> V2xRates:
        v2i_gain, v2v_gain = self.world.gains()
        return link_rates(self.scenario.radio, v2i_gain, v2v_gain, self.tx, self.rx, rb,
                          power_w)

    def slices(self) -> Slices:
        """Every agent's slice of the current slot, ``(E, K, M)``."""
        v2i_db, v2v_db = self.world.gains_db()
        e_idx = np.arange(self.n_envs)[:, None]
        return Slices(
            v2v_gain_db=v2v_db[e_idx, self.tx[None, :], self.rx],
            bs_gain_db=v2i_db[:, self.tx, :],
            interference_dbm=10.0 * np.log10(self.last_interference_w) + 30.0,
        )

    def step(self, rb: IntArray, level: IntArray, silent: BoolArray | None = None) -> AirStep:
        """Play one slot with RB choices and power-level indices ``(E, K)``; links already
        delivered, and those in ``silent`` (a vanished transmitter), stay silent whatever
        they chose. Then the world moves on by one slot."""
        s = self.scenario
        shape = (self.n_envs, self.n_agents)
        rb = np.broadcast_to(np.asarray(rb, dtype=np.int64), shape)
        level = np.broadcast_to(np.asarray(level, dtype=np.int64), shape)
        if (rb < 0).any() or (rb >= self.n_rb).any():
            raise ValueError(f"rb must be in [0, {self.n_rb})")
        if (level < 0).any() or (level >= self.n_levels).any():
            raise ValueError(f"power level must be in [0, {self.n_levels})")
        active = np.isnan(self.delivery_time_s)
        if silent is not None:
            active = active & ~np.asarray(silent, dtype=bool)
        power_w = np.where(active, s.radio.v2v_power_levels_w[level], 0.0)
        rates = self._rates(rb, power_w)
        elapsed = self.t * s.radio.slot_s
        self.remaining_bits, self.delivery_time_s = account_payload(
            self.remaining_bits, rates.v2v_rate_bps, s.radio.slot_s, elapsed,
            self.delivery_time_s)
        delivered = ~np.isnan(self.delivery_time_s)
        reward = v2x_reward(s.reward, rates.v2i_rate_bps, rates.v2v_rate_bps, delivered, elapsed)
        self.v2i_rate_sum_bps = self.v2i_rate_sum_bps + rates.v2i_rate_bps.sum(-1)
        self.last_rb = rb.copy()
        self.last_on = active
        self.last_interference_w = rates.v2v_interference_w
        self.world.advance()
        self.t += 1
        return AirStep(rates=rates, reward=reward, power_w=power_w, transmitted=active,
                       remaining_bits=self.remaining_bits.copy(),
                       delivery_time_s=self.delivery_time_s.copy())

    def episode_metrics(self) -> dict[str, Array]:
        """Per episode so far: V2V payload delivery rate (fraction of links delivered), mean
        sum V2I rate over the slots played (bit/s), per-link delivery time (s, NaN if not)."""
        played = max(self.t, 1)
        return {
            "delivery_rate": (~np.isnan(self.delivery_time_s)).mean(-1),
            "sum_v2i_rate_bps": self.v2i_rate_sum_bps / played,
            "delivery_time_s": self.delivery_time_s.copy(),
        }
