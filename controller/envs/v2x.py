"""Paper 000's V2X spectrum sharing as a PettingZoo ``ParallelEnv``: every V2V link an agent.

A wrapper of :class:`controller.training.v2x_env.V2xEnv` (the environment the V2X learners
train on, over :class:`channel_server.v2x_air.V2xAir`), with PettingZoo's conventions:

* **agents** ``vehicle_0`` ... ``vehicle_{K-1}``: V2V link k, ``V2xEnv``'s ``v2v-k`` and the
  testbed's node ``vehicle-k``.
* **action** (Discrete ``M * L``): the flat index ``a`` of the V2X kind, RB ``a % M`` and
  power level ``a // M`` (the reference's encoding, :func:`node.v2x_observation.decode_action`).
  A link whose payload is delivered stays an agent but is silent (its action is ignored).
* **observation** (float32, ``4 M + 2``, ``+ 2`` with the fingerprint):
  :func:`node.v2x_observation.observe`, what a vehicle node and the learners see; the
  fingerprint is ``(iteration, epsilon)`` from the option ``fingerprint`` (default
  ``(0, 1)``, as ``V2xEnv``) or :meth:`V2xParallelEnv.set_fingerprint`.
* **reward**: the scenario's global reward (the revised reward or eq. (13),
  :func:`channel_server.v2x.v2x_reward`), the same for every agent, unscaled: what the
  MARL learners get (times their ``reward_scale``).
* **episodes**: the deadline ``T`` ends an episode with every agent ``terminated`` (the time
  left is in the observation); ``max_cycles`` (default 100) slots before it truncate it.
  ``reset(seed=s)`` drops new vehicles from ``s``; an unseeded ``reset()`` starts the next
  episode in the same world (vehicles keep moving, payloads and deadlines are refilled), as
  the V2X learners' episodes do.
* **info**: ``v2v_rate_bps``, ``remaining_bits``, ``delivered``, ``v2i_sum_rate_bps``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from channel_server.v2x import V2xScenario
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
from controller.training.v2x_env import V2xEnv
from node.v2x_observation import agent_name, observation_dim, observe

OPTIONS = ("api", "max_cycles", "fingerprint", *NETWORK_OPTIONS)
NETWORK_ENV = "controller.envs.v2x_network:V2xNetworkEnv"
"""The game over real processes (a reference: that module builds on this one)."""


def make_env(scenario: V2xScenario, seed: int = 0, **options: Any) -> Any:
    """The kind's factory (``api="aec"``: PettingZoo's ``parallel_to_aec`` of it);
    ``runner="network"`` plays either over real processes
    (:mod:`controller.envs.v2x_network`, without the option ``fingerprint``)."""
    check_options("v2x", options, OPTIONS)
    max_cycles = int(options.get("max_cycles", DEFAULT_MAX_CYCLES))
    if options.get("runner") == "network" and "fingerprint" in options:
        raise ValueError("the vehicles of a network run observe the fingerprint (0, 1): "
                         "the option fingerprint is the in-process env's")
    network = network_env(NETWORK_ENV, "v2x", scenario, seed, max_cycles, options)
    if network is not None:
        return network
    env = V2xParallelEnv(scenario, seed, max_cycles, options.get("fingerprint"))
    return as_api(env, options.get("api", "parallel"))


def observation_box(scenario: V2xScenario) -> spaces.Box:
    """G, H and I (normalized dB, unbounded), neighbour counts, load and time left in
    [0, 1], the fingerprint (iteration / I >= 0, epsilon in [0, 1])."""
    m = scenario.radio.n_rb
    parts = [(3 * m, -np.inf, np.inf), (m + 2, 0.0, 1.0)]
    if scenario.observation.fingerprint:
        parts += [(1, 0.0, np.inf), (1, 0.0, 1.0)]
    box = parts_box(*parts)
    assert box.shape == (observation_dim(scenario),)
    return box


class V2xParallelEnv(SlotEnv):
    """The V2V links choose RB and power level at once, every slot."""

    metadata = {"name": "rrmbed_v2x_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(self, scenario: V2xScenario, seed: int = 0,
                 max_cycles: int = DEFAULT_MAX_CYCLES,
                 fingerprint: tuple[float, float] | None = None) -> None:
        self.scenario = scenario
        self.core = V2xEnv(scenario)
        if fingerprint is not None:
            self.core.set_fingerprint(*fingerprint)
        names = agent_names("vehicle", self.core.n_agents)
        obs = observation_box(scenario)
        super().__init__(names, {a: obs for a in names},
                         {a: spaces.Discrete(self.core.n_actions) for a in names}, seed,
                         max_cycles)

    def set_fingerprint(self, iteration: float, epsilon: float) -> None:
        """The fingerprint (14) in the observations from the next one on."""
        self.core.set_fingerprint(iteration, epsilon)

    def _start(self, seed: int) -> None:
        self.core.reset(seed=seed)

    def _next_episode(self) -> None:
        self.core.reset()

    def _observe(self) -> Obs:
        core = self.core
        out: Obs = observe(core.local_slices(), core.neighbour_rb_counts(), self.scenario,
                           core.fingerprint)[0]
        return out

    def _play(self, actions: list[Any]) -> Slot:
        core = self.core
        names = [agent_name(k) for k in range(core.n_agents)]
        _, rewards, terminated, _, infos = core.step(
            {n: np.int64(a) for n, a in zip(names, actions, strict=True)})
        return Slot([rewards[n] for n in names], [infos[n] for n in names],
                    terminated[names[0]])
