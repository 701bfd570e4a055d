"""Paper 001's centralized Gymnasium environment over real processes
(``CentralPowerEnv``'s game, :mod:`controller.envs.central`; ``gymnasium.make(ENV_ID,
scenario=..., runner="network", out=DIR)``).

Each episode is one run of the cellular scheme ``external-learner`` with ``episode_slots``
slots (:mod:`controller.envs.network`: a channel server and one node process per BS, a
controller on a thread of this process, a run directory ``DIR/episode-<i>-seed-<s>`` with
the overhead and latency of every step). The BSs upload their CSI slices, the controller
hands the whole channel to this env, whose observation is ``obs_central`` of it;
``step(action)`` maps the B*K fractions to watts as the in-process env does, the
controller sends each BS its powers, and the reward is the sum-rate the air recorded.
``reset(seed=s)`` plays the air of run ``s``: the same observations and rewards as the
in-process env after ``reset(seed=s)``. An unseeded ``reset()`` starts run ``s + 1`` (the
first one: a seed from the env's ``np_random``), where the in-process env goes on to the
air's next drop. The observation a truncating step returns repeats the last slot's: the run
never plays the slot after its last (the in-process env shows that slot's channel); with
every slot its own problem (``gamma = 0``) no learner reads it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gymnasium as gym

from channel_server.config import Scenario
from channel_server.kinds import KINDS, Resolved
from controller.envs.central import DEFAULT_EPISODE_SLOTS, CentralPowerEnv, ObsArray
from controller.envs.network import STEP_TIMEOUT_S, OverProcesses
from protocols.messages import SlotOutcome


class CentralNetworkEnv(OverProcesses, CentralPowerEnv):
    """:class:`CentralPowerEnv`'s game, every slot played by real processes."""

    def __init__(self, scenario: Scenario | str | os.PathLike[str],
                 episode_slots: int = DEFAULT_EPISODE_SLOTS, render_mode: str | None = None,
                 out: str | Path = "runs/env", step_timeout_s: float = STEP_TIMEOUT_S) -> None:
        CentralPowerEnv.__init__(self, scenario, episode_slots, render_mode)
        self.max_cycles = self.episode_slots
        self.run_seed = -1
        self._network(Resolved(KINDS.get("cellular"), self.scenario), out, step_timeout_s)

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[ObsArray, dict[str, Any]]:
        gym.Env.reset(self, seed=seed)
        if seed is None:
            seed = (self.run_seed + 1 if self.episodes
                    else int(self.np_random.integers(2**31)))
        self.run_seed = int(seed)
        self._start(self.run_seed)
        return self.observe(self.gains), {"slot": 0}

    def step(self, action: Any) -> tuple[ObsArray, float, bool, bool, dict[str, Any]]:
        if self.episode is None:
            raise RuntimeError("step() before reset() (or after the episode's last slot)")
        powers = self.powers_w(action)
        msg: SlotOutcome = self._exchange(powers)
        truncated = self.slot >= self.episode_slots
        return self.observe(self.gains), float(msg.sum_rate_bps_hz), False, truncated, {
            "slot": self.slot, "powers_w": powers}
