"""Paper 001's multi-cell downlink as PettingZoo environments: every BS an agent.

Both play the testbed's air and observation builders, so a policy trained here sees what a
BS node sees in ``rrmbed run``:

* **channel**: :class:`channel_server.air.Air` with one copy. ``reset(seed=s)`` builds
  ``Air(radio, s)``: the first episode is the drop and fading of ``rrmbed run --seed s``
  (slot 0 is the air's ``reset``, slot n its n-th ``step``, as
  :class:`channel_server.roles.cellular.CellularAir` makes them); an unseeded ``reset()``
  starts the next episode on the air's next drop (episode i does not depend on how long
  the earlier ones ran).
* **action** (Box ``[0, 1]^K``, float32): the BS's power fractions for its K users; powers
  are ``power_fraction(a) * radio.pmax_w`` watts, and with ``radio.sum_power_constraint`` a
  BS's fractions are first scaled into one budget (``fit_bs_budget``), as a BS node does.
* **reward**: the slot's network sum-rate ``sum_rate_bps_hz`` (bit/s/Hz), the same for
  every BS: what the cellular learners maximize (``controller.training.rollout``).
  ``info``: ``rate_bps_hz`` (the sum over the BS's own users) and ``sum_rate_bps_hz``.
* **episodes**: ``max_cycles`` slots (default 100), then every BS is truncated.
* **state**: ``obs_central`` of the whole channel (what the central policy sees).

``api="parallel"``: :class:`CellularFullEnv`, the fully decentralized scheme ``full``: every
BS acts at once on its own CSI slice, ``obs_full`` (own cell first, float32 in
``[-FEATURE_CLIP, FEATURE_CLIP]``).

``api="aec"``: :class:`CellularRoundRobinEnv`, the round-robin scheme: in every slot the BSs
act one after the other in the order the air draws for that slot (one permutation per slot
from ``rng_for(seed, "order")``, the order stream of ``CellularAir``; episode i >= 1 of a
seed draws from ``rng_for(seed, "order", i)``); each observes ``obs_round_robin``: its own
slice, the power fractions chosen before it in the slot and the mask of who chose. The
slot's reward (its sum-rate) goes to every BS when the last one has acted; the others'
steps give 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import AECEnv

from channel_server.air import Air
from channel_server.config import RadioConfig, Scenario
from channel_server.rates import csi_slice, rates_bps_hz
from controller.envs.base import (
    APIS,
    DEFAULT_MAX_CYCLES,
    NETWORK_OPTIONS,
    Obs,
    Slot,
    SlotEnv,
    agent_names,
    check_options,
    network_env,
    parts_box,
)
from node.observation import (
    FEATURE_CLIP,
    central_dims,
    full_dims,
    obs_central,
    obs_full,
    obs_round_robin,
)
from node.policy_spec import fit_bs_budget, power_fraction
from protocols.seeding import rng_for

OPTIONS = ("api", "max_cycles", *NETWORK_OPTIONS)
NETWORK_ENVS = {"parallel": "controller.envs.cellular_network:CellularNetworkEnv",
                "aec": "controller.envs.cellular_network:CellularRoundRobinNetworkEnv"}
"""Both games over real processes (references: that module builds on this one)."""


def make_env(scenario: Scenario, seed: int = 0, **options: Any) -> Any:
    """The kind's factory: ``api="parallel"`` (default) the ``full`` game,
    ``api="aec"`` the round-robin one; ``max_cycles`` slots per episode. ``runner="network"``
    plays either over real processes (:mod:`controller.envs.cellular_network`; ``out``: the
    folder of its runs' directories, ``step_timeout_s``: how long a step may wait)."""
    check_options("cellular", options, OPTIONS)
    api = options.get("api", "parallel")
    max_cycles = int(options.get("max_cycles", DEFAULT_MAX_CYCLES))
    network = network_env(NETWORK_ENVS, "cellular", scenario, seed, max_cycles, options)
    if network is not None:
        return network
    if api == "parallel":
        return CellularFullEnv(scenario, seed, max_cycles)
    if api == "aec":
        return CellularRoundRobinEnv(scenario, seed, max_cycles)
    raise ValueError(f"api must be one of {', '.join(APIS)}, not {api!r}")


def fractions_of(action: Any, radio: RadioConfig) -> np.ndarray:
    """A BS's action -> its feasible power fractions ``(K,)`` (the node's rule)."""
    frac = power_fraction(np.asarray(action, dtype=np.float64).reshape(radio.users_per_cell))
    return fit_bs_budget(frac) if radio.sum_power_constraint else frac


def slot_rates(gains: np.ndarray, fractions: np.ndarray, radio: RadioConfig) -> np.ndarray:
    """Rates ``(B, K)`` bit/s/Hz of fractions ``(B, K)`` on the slot's gains ``(B, K, B)``."""
    return rates_bps_hz(gains, fractions * radio.pmax_w, radio.noise_w)


def rate_infos(rates: np.ndarray) -> list[dict[str, Any]]:
    total = float(rates.sum())
    return [{"rate_bps_hz": float(r.sum()), "sum_rate_bps_hz": total} for r in rates]


def central_box(radio: RadioConfig) -> spaces.Box:
    return parts_box((central_dims(radio)[0], -FEATURE_CLIP, FEATURE_CLIP))


def fraction_box(radio: RadioConfig) -> spaces.Box:
    return parts_box((radio.users_per_cell, 0.0, 1.0))


class CellularFullEnv(SlotEnv):
    """Every BS acts at once on its own CSI slice (scheme ``full``)."""

    metadata = {"name": "rrmbed_cellular_full_v0", "render_modes": [],
                "is_parallelizable": True}

    def __init__(self, scenario: Scenario, seed: int = 0,
                 max_cycles: int = DEFAULT_MAX_CYCLES) -> None:
        self.scenario = scenario
        self.radio = radio = scenario.radio
        names = agent_names("bs", radio.n_cells)
        obs = parts_box((full_dims(radio)[0], -FEATURE_CLIP, FEATURE_CLIP))
        super().__init__(names, {a: obs for a in names},
                         {a: fraction_box(radio) for a in names}, seed, max_cycles,
                         central_box(radio))
        self.air: Air | None = None
        self.gains = np.zeros((radio.n_cells, radio.users_per_cell, radio.n_cells))
        """The current slot's channel ``(B, K, B)``."""

    def _start(self, seed: int) -> None:
        self.air = Air(self.radio, seed, episodes=1)
        self.gains = self.air.reset()[0]

    def _next_episode(self) -> None:
        assert self.air is not None
        self.gains = self.air.reset()[0]

    def _observe(self) -> Obs:
        b_n = self.radio.n_cells
        return np.stack([obs_full(csi_slice(self.gains, b), b, self.radio)
                         for b in range(b_n)]).astype(np.float32)

    def _play(self, actions: list[Any]) -> Slot:
        assert self.air is not None
        frac = np.stack([fractions_of(a, self.radio) for a in actions])
        rates = slot_rates(self.gains, frac, self.radio)
        self.gains = self.air.step()[0]
        total = float(rates.sum())
        return Slot([total] * len(actions), rate_infos(rates))

    def state(self) -> Obs:
        return obs_central(self.gains, self.radio).astype(np.float32)


class CellularRoundRobinEnv(AECEnv[str, Obs, Any]):  # type: ignore[misc]
    """The BSs act in each slot's seeded order, each seeing the powers chosen before it
    (scheme ``round-robin``)."""

    metadata = {"name": "rrmbed_cellular_round_robin_v0", "render_modes": [],
                "is_parallelizable": False}
    render_mode: str | None = None

    def __init__(self, scenario: Scenario, seed: int = 0,
                 max_cycles: int = DEFAULT_MAX_CYCLES) -> None:
        super().__init__()
        if int(max_cycles) < 1:
            raise ValueError("max_cycles must be >= 1")
        self.scenario = scenario
        self.radio = r = scenario.radio
        b_n, k_n = r.n_cells, r.users_per_cell
        self.possible_agents = agent_names("bs", b_n)
        self.index = {a: b for b, a in enumerate(self.possible_agents)}
        obs = parts_box((k_n * b_n, -FEATURE_CLIP, FEATURE_CLIP), (b_n * k_n + b_n, 0.0, 1.0))
        self.observation_spaces = {a: obs for a in self.possible_agents}
        self.action_spaces = {a: fraction_box(r) for a in self.possible_agents}
        self.state_space = central_box(r)
        self.run_seed = int(seed)
        """The seed the current air was built from (the last seeded reset's)."""
        self.max_cycles = int(max_cycles)
        """Slots per episode; the last one truncates every BS."""
        self.cycles = 0
        """Slots completed in the current episode."""
        self.air: Air | None = None
        self.gains = np.zeros((b_n, k_n, b_n))
        """The current slot's channel ``(B, K, B)``."""
        self.order: list[int] = []
        """The current slot's order of BS indices."""
        self.turn = 0
        """How many BSs acted in the current slot."""
        self.prior = np.zeros((b_n, k_n))
        """Power fractions chosen so far in the slot (zero where not chosen yet)."""
        self.chosen = np.zeros(b_n)
        """1 for the BSs that acted in the slot."""
        self.agents: list[str] = []

    def observation_space(self, agent: str) -> spaces.Space[Any]:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space[Any]:
        return self.action_spaces[agent]

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        """A seed rebuilds the air from it; no seed: the air's next drop (the first reset
        without a seed uses the environment's own). ``options`` are ignored."""
        self._new_episode(seed)
        self.agents = list(self.possible_agents)
        self.rewards = {a: 0.0 for a in self.agents}
        self._cumulative_rewards = {a: 0.0 for a in self.agents}
        self.terminations = {a: False for a in self.agents}
        self.truncations = {a: False for a in self.agents}
        self.infos: dict[str, dict[str, Any]] = {a: {} for a in self.agents}
        self.cycles = 0
        self._begin_slot()

    # The hooks of the world (the in-process air here; real processes in
    # controller.envs.cellular_network.CellularRoundRobinNetworkEnv): _new_episode,
    # _first_turn, _pass_turn, _play_slot, _next_slot.

    def _new_episode(self, seed: int | None) -> None:
        if seed is not None or self.air is None:
            self.run_seed = int(seed) if seed is not None else self.run_seed
            self.air = Air(self.radio, self.run_seed, episodes=1)
        self.gains = self.air.reset()[0]
        episode = self.air.resets - 1
        self.order_rng = (rng_for(self.run_seed, "order") if episode == 0
                          else rng_for(self.run_seed, "order", episode))

    def _begin_slot(self) -> None:
        self.turn = 0
        self.prior[:] = 0.0
        self.chosen[:] = 0.0
        self._first_turn()

    def _first_turn(self) -> None:
        """The slot's order, and the BS that acts first."""
        self.order = [int(b) for b in self.order_rng.permutation(self.radio.n_cells)]
        self.agent_selection = self.possible_agents[self.order[0]]

    def _pass_turn(self, fractions: np.ndarray) -> None:
        """The BS whose turn it was chose ``fractions`` and others are still to choose."""
        self.agent_selection = self.possible_agents[self.order[self.turn]]

    def _play_slot(self, fractions: np.ndarray) -> np.ndarray:
        """The last BS of the slot chose ``fractions``: the slot's rates ``(B, K)``."""
        return slot_rates(self.gains, self.prior, self.radio)

    def _next_slot(self) -> None:
        assert self.air is not None
        self.gains = self.air.step()[0]
        self._begin_slot()

    def observe(self, agent: str) -> Obs:
        b = self.index[agent]
        return obs_round_robin(csi_slice(self.gains, b), b, self.prior, self.chosen,
                               self.radio).astype(np.float32)

    def step(self, action: Any) -> None:
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return
        b = self.index[agent]
        self._cumulative_rewards[agent] = 0.0
        frac = self.prior[b] = fractions_of(action, self.radio)
        self.chosen[b] = 1.0
        self.turn += 1
        if self.turn < self.radio.n_cells:
            self._clear_rewards()
            self._pass_turn(frac)
        else:
            rates = self._play_slot(frac)
            total = float(rates.sum())
            self.rewards = {a: total for a in self.agents}
            infos = rate_infos(rates)
            self.infos = {a: infos[self.index[a]] for a in self.agents}
            self.cycles += 1
            if self.cycles >= self.max_cycles:
                self.truncations = {a: True for a in self.agents}
                self.agent_selection = self.agents[0]
            else:
                self._next_slot()
        self._accumulate_rewards()

    def state(self) -> Obs:
        return obs_central(self.gains, self.radio).astype(np.float32)

    def render(self) -> None:
        return None

    def close(self) -> None:
        return None
