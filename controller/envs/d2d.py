"""Paper 002's D2D underlay as a PettingZoo ``ParallelEnv``: every D2D pair an agent.

It plays the slot loop of the local trainer (:mod:`controller.training.d2d_train`) on the
same air (:class:`channel_server.d2d_air.D2dAir`) and observation builder
(:func:`node.d2d_observation.observe`), so a policy trained here runs on a pair node:

* **agents** ``pair_0`` ... ``pair_{N-1}`` (the testbed's ``pair-i``).
* **action** (Discrete ``K * beta``): the flat index of the kind, RB ``a % K`` and power
  level ``a // K`` (:func:`node.d2d_observation.decode_action`); with one power level it is
  the RB alone.
* **observation** (float32, ``4 K`` or ``4 K + beta``): the pair's own D2D gain and gain
  from the BS per RB, the interference its receiver measured per RB in the last slot
  (normalized dB, unbounded), its last RB (and level) one-hot.
* **reward**: each pair's own reward (5)-(7) (:func:`channel_server.d2d.d2d_reward`):
  ``log2(1 + SINR)`` when the CUE of its RB meets its threshold, else ``r_neg``; the
  per-pair reward the MAAC / NAAC / IAC / DQN learners store. ``info``: the pair's
  ``d2d_rate_bps`` and ``sinr``, whether the CUE of its RB was in ``cue_outage``.
* **episodes**: ``max_cycles`` slots (default 100), then every pair is truncated.
  ``reset(seed=s)`` drops the cell of ``rrmbed run --seed s`` (the drop is fixed for a run,
  the paper's Fig. 5); an unseeded ``reset()`` starts the next episode in the same cell:
  the fading and the pairs' last choices carry on (the local trainer's task is one
  continuing run; episodes are windows of it).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from channel_server.d2d import D2dScenario
from channel_server.d2d_air import D2dAir
from controller.envs.base import (
    DEFAULT_MAX_CYCLES,
    NETWORK_OPTIONS,
    Obs,
    Slot,
    SlotEnv,
    agent_names,
    as_api,
    check_options,
    network_env,
    parts_box,
)
from node.d2d_observation import decode_action, observation_dim, observe

OPTIONS = ("api", "max_cycles", *NETWORK_OPTIONS)
NETWORK_ENV = "controller.envs.d2d_network:D2dNetworkEnv"
"""The game over real processes (a reference: that module builds on this one)."""


def make_env(scenario: D2dScenario, seed: int = 0, **options: Any) -> Any:
    """The kind's factory (``api="aec"``: PettingZoo's ``parallel_to_aec`` of it);
    ``runner="network"`` plays either over real processes
    (:mod:`controller.envs.d2d_network`)."""
    check_options("d2d-underlay", options, OPTIONS)
    max_cycles = int(options.get("max_cycles", DEFAULT_MAX_CYCLES))
    network = network_env(NETWORK_ENV, "d2d-underlay", scenario, seed, max_cycles, options)
    if network is not None:
        return network
    return as_api(D2dParallelEnv(scenario, seed, max_cycles), options.get("api", "parallel"))


def observation_box(scenario: D2dScenario) -> spaces.Box:
    r = scenario.radio
    levels = r.n_levels if r.n_levels > 1 else 0
    box = parts_box((3 * r.n_rb, -np.inf, np.inf), (r.n_rb + levels, 0.0, 1.0))
    assert box.shape == (observation_dim(scenario),)
    return box


class D2dParallelEnv(SlotEnv):
    """The D2D pairs choose RB (and power level) at once, every slot."""

    metadata = {"name": "rrmbed_d2d_underlay_v0", "render_modes": [],
                "is_parallelizable": True}

    def __init__(self, scenario: D2dScenario, seed: int = 0,
                 max_cycles: int = DEFAULT_MAX_CYCLES) -> None:
        self.scenario = scenario
        r = scenario.radio
        names = agent_names("pair", r.n_pairs)
        obs = observation_box(scenario)
        super().__init__(names, {a: obs for a in names},
                         {a: spaces.Discrete(r.n_actions) for a in names}, seed, max_cycles)
        self.air: D2dAir | None = None

    def _start(self, seed: int) -> None:
        self.air = D2dAir(self.scenario, 1, seed)

    def _next_episode(self) -> None:
        """The same cell goes on."""

    def _observe(self) -> Obs:
        assert self.air is not None
        sl = self.air.slices()
        obs = observe(self.scenario, sl.d2d_gain_db, sl.bs_gain_db, sl.interference_dbm,
                      sl.last_rb, sl.last_level)
        out: Obs = obs[0].astype(np.float32)
        return out

    def _play(self, actions: list[Any]) -> Slot:
        assert self.air is not None
        flat = np.array([int(a) for a in actions], dtype=np.int64)
        rb, level = decode_action(flat, self.scenario.radio.n_rb)
        out = self.air.step(rb[None], level[None])
        cue_out = out.cue_outage[0][rb]
        infos = [{"d2d_rate_bps": float(out.rates.d2d_rate_bps[0, i]),
                  "sinr": float(out.rates.d2d_sinr[0, i]),
                  "cue_outage": bool(cue_out[i])} for i in range(len(actions))]
        return Slot([float(x) for x in out.reward[0]], infos)
