"""Paper 001's centralized scheme as a Gymnasium environment: one agent sees the whole
channel and sets all B*K powers every slot.

It plays the problem ``rrmbed train --scheme centralized`` trains, on the same pure core:

* **channel**: :class:`channel_server.air.Air` with one episode copy. ``reset(seed=s)``
  builds ``Air(radio, s)``, so the first episode after it is the air's drop 0 of run ``s``
  (the same user drop and fading as ``Air(radio, s).reset()``), the next unseeded
  ``reset()`` its drop 1, and so on: the same seed gives the same episodes. An unseeded
  first ``reset()`` seeds the air from the env's ``np_random``.
* **observation** (``float32``, shape ``(B*K*B,)``): ``obs_central`` of the current slot's
  gains, the full-power SNRs in dB centred and scaled, clipped to
  ``[-FEATURE_CLIP, FEATURE_CLIP]`` (the Box bounds); exactly what the testbed's central
  TRPO policy sees (:class:`controller.baselines.central.PolicyDecider`).
* **action** (``float32``, shape ``(B*K,)``, Box ``[0, 1]``): the power fraction of every
  link, flattened BS-major (``a[b*K + k]`` for user ``k`` of BS ``b``). Powers are
  ``power_fraction(a) * radio.pmax_w`` watts, as the testbed maps its policy's raw Gaussian
  action (a Gaussian policy whose samples SB3 clips to the Box is that policy); in a
  scenario with ``radio.sum_power_constraint`` a BS's fractions are first scaled down to one
  budget (``fit_bs_budget``), as the deployed decider does.
* **reward**: the slot's network sum-rate ``sum_rate_bps_hz`` in bit/s/Hz (times
  ``radio.bandwidth_hz`` for bit/s), of the action's powers on the gains that were observed.
  The channel then advances one slot (fading, mobility); powers never change it, so every
  slot is a one-step problem: ``gamma = 0`` in the learner gives the testbed's objective
  (its central episodes are single slots).
* **episodes** end by time limit only: ``truncated`` after ``episode_slots`` slots,
  ``terminated`` never. ``info`` holds the slot index and, after a step, the powers used.
  ``episode_slots=1`` is exactly the testbed's training episode (a fresh drop per decision),
  though Gymnasium's ``check_env`` rejects any env that truncates after one step; longer
  episodes add the fading's slot-to-slot evolution over one drop.

Two differences from ``rrmbed train`` a user may want to undo: training there plays
sum-power scenarios under the per-user limit (the budget is applied only when the policy
runs), so pass a scenario with ``radio.sum_power_constraint = False`` to train exactly that;
and its policy starts at mean fraction 0.5 (``PolicyConfig.init_mean``), SB3's at about 0.

Importing this module registers :data:`ENV_ID` with Gymnasium
(``gymnasium.make(ENV_ID, scenario="scenarios/3cell-k2.toml")``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt
from gymnasium import spaces

from channel_server.air import Air
from channel_server.config import Scenario, load_scenario
from channel_server.rates import sum_rate_bps_hz
from node.observation import FEATURE_CLIP, central_dims, obs_central
from node.policy_spec import fit_bs_budget, power_fraction
from protocols.plugins import resolve as resolve_ref
from protocols.seeding import rng_for

Array = npt.NDArray[np.float64]
ObsArray = npt.NDArray[np.float32]
Act = Callable[[ObsArray], Any]
"""A deterministic actor: observation in, action (array-like of B*K fractions) out."""

ENV_ID = "rrmbed/CentralPower-v0"
"""The Gymnasium id this module registers."""
DEFAULT_EPISODE_SLOTS = 50
"""Slots per episode unless told."""
NETWORK_ENV = "controller.envs.central_network:CentralNetworkEnv"
"""The game over real processes (a reference: that module builds on this one)."""


def as_scenario(scenario: Scenario | str | os.PathLike[str]) -> Scenario:
    """A scenario, loading it when given a TOML path."""
    return scenario if isinstance(scenario, Scenario) else load_scenario(Path(scenario))


class CentralPowerEnv(gym.Env[ObsArray, npt.NDArray[np.float32]]):
    """The centralized view of the multi-cell downlink (module docstring: spaces, reward,
    seeding)."""

    metadata: dict[str, Any] = {"render_modes": []}
    render_mode: str | None = None

    def __init__(self, scenario: Scenario | str | os.PathLike[str],
                 episode_slots: int = DEFAULT_EPISODE_SLOTS,
                 render_mode: str | None = None) -> None:
        if episode_slots < 1:
            raise ValueError(f"episode_slots must be >= 1, got {episode_slots}")
        if render_mode is not None:
            raise ValueError(f"render_mode {render_mode!r} is not supported (None only)")
        self.scenario = as_scenario(scenario)
        self.radio = self.scenario.radio
        self.episode_slots = int(episode_slots)
        obs_dim, act_dim = central_dims(self.radio)
        self.observation_space = spaces.Box(-FEATURE_CLIP, FEATURE_CLIP, (obs_dim,), np.float32)
        self.action_space = spaces.Box(0.0, 1.0, (act_dim,), np.float32)
        self.air: Air | None = None
        self.gains: Array | None = None
        """The current slot's gains (B, K, B), those the last observation shows."""
        self.slot = 0
        """Slots played in the current episode."""

    # ------------------------------------------------------------------ the pure parts

    def powers_w(self, action: Any) -> Array:
        """Powers (B, K) in watts of an action of B*K fractions."""
        r = self.radio
        frac = power_fraction(np.asarray(action, dtype=np.float64))
        frac = frac.reshape(r.n_cells, r.users_per_cell)
        if r.sum_power_constraint:
            frac = fit_bs_budget(frac)
        out: Array = frac * r.pmax_w
        return out

    def observe(self, gains: Array) -> ObsArray:
        """The observation of gains (B, K, B)."""
        return obs_central(gains, self.radio).astype(np.float32)

    # ------------------------------------------------------------------ the Gymnasium API

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[ObsArray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None or self.air is None:
            air_seed = seed if seed is not None else int(self.np_random.integers(2**31))
            self.air = Air(self.radio, air_seed, episodes=1)
        self.gains = self.air.reset()[0]
        self.slot = 0
        return self.observe(self.gains), {"slot": 0}

    def step(self, action: Any) -> tuple[ObsArray, float, bool, bool, dict[str, Any]]:
        if self.air is None or self.gains is None:
            raise RuntimeError("step() before reset()")
        powers = self.powers_w(action)
        reward = float(sum_rate_bps_hz(self.gains, powers, self.radio.noise_w))
        self.gains = self.air.step()[0]
        self.slot += 1
        truncated = self.slot >= self.episode_slots
        return self.observe(self.gains), reward, False, truncated, {"slot": self.slot,
                                                                    "powers_w": powers}


# --------------------------------------------------------------------------- evaluation


def episode_rewards(env: CentralPowerEnv, act: Act, seed: int) -> Array:
    """The per-slot rewards (episode_slots,) of one episode of ``env`` reset with ``seed``,
    acting with ``act``."""
    obs, _ = env.reset(seed=seed)
    out = []
    done = False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(act(obs))
        out.append(reward)
        done = terminated or truncated
    return np.asarray(out)


def mean_reward(env: CentralPowerEnv, act: Act, seeds: Iterable[int]) -> float:
    """Mean reward per slot (bit/s/Hz) of ``act`` over one episode per seed."""
    return float(np.mean([episode_rewards(env, act, s) for s in seeds]))


def random_power(n: int, seed: int) -> Act:
    """An actor drawing n fractions uniform in [0, 1] each slot, from
    ``rng_for(seed, "gym-central", "random-power")``."""
    draw = rng_for(seed, "gym-central", "random-power").random

    def act(_obs: ObsArray) -> Array:
        out: Array = draw(n)
        return out

    return act


def reference_rewards(env: CentralPowerEnv, seeds: Iterable[int]) -> dict[str, float]:
    """Mean reward per slot (bit/s/Hz) over one episode per seed of the two policies a
    learner must beat: ``uniform`` (every fraction uniform in [0, 1] each slot,
    :func:`random_power` of the episode's seed) and ``max_power`` (every fraction 1)."""
    seeds = list(seeds)
    n = central_dims(env.radio)[1]
    rand = [episode_rewards(env, random_power(n, s), s) for s in seeds]
    ones = np.ones(n, dtype=np.float32)
    return {"uniform": float(np.mean(rand)),
            "max_power": mean_reward(env, lambda _obs: ones, seeds)}


def central_env(scenario: Scenario | str | os.PathLike[str],
                episode_slots: int = DEFAULT_EPISODE_SLOTS, render_mode: str | None = None,
                runner: str = "local", **network: Any) -> CentralPowerEnv:
    """:data:`ENV_ID`'s entry point: the in-process env, or with ``runner="network"`` the
    same game over real processes (:mod:`controller.envs.central_network`; ``network``:
    ``out``, ``step_timeout_s``)."""
    if runner == "network":
        env: CentralPowerEnv = resolve_ref(NETWORK_ENV)(scenario, episode_slots, render_mode,
                                                        **network)
        return env
    if runner != "local" or network:
        raise ValueError(f"runner must be 'local' or 'network', not {runner!r} (options "
                         "out and step_timeout_s are the network runner's)")
    return CentralPowerEnv(scenario, episode_slots, render_mode)


if ENV_ID not in gym.registry:
    gym.register(ENV_ID, entry_point=f"{__name__}:central_env",
                 kwargs={"episode_slots": DEFAULT_EPISODE_SLOTS})
