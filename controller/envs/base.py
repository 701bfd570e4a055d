"""What every scenario kind's PettingZoo environment shares: the slot loop of a
``pettingzoo.ParallelEnv`` over a kind's pure air, the spaces, the API switch.

:class:`SlotEnv` is the episode bookkeeping; a kind's environment (one module per kind in
this package, none importing another's) supplies only its air, through four hooks:

* ``_start(seed)``: build the world from ``seed`` (a seeded ``reset``, or the first one);
* ``_next_episode()``: start the next episode in the current world (an unseeded ``reset``);
* ``_observe()``: every agent's observation of the current slot, ``(n_agents, D)`` float32;
* ``_play(actions)``: play one slot with every agent's action (``possible_agents`` order)
  and move the air on; returns the :class:`Slot` (rewards, infos, terminated).

Episodes: every agent acts once per slot; after ``max_cycles`` slots every agent is
``truncated``; a kind whose episodes have a natural end (V2X's deadline) says
``terminated``. All agents live and end together, so ``agents`` is either every possible
agent or empty. Every random number comes from the seed: ``reset(seed=s)`` rebuilds the
world from ``s`` (two environments reset with the same seed and given the same actions
play the same episode), an unseeded first ``reset()`` uses the seed the environment was
made with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from gymnasium import spaces
from pettingzoo import ParallelEnv
from pettingzoo.utils.conversions import parallel_to_aec

Obs = npt.NDArray[np.float32]
APIS = ("parallel", "aec")
"""What ``make_env(..., api=...)`` may ask for."""
DEFAULT_MAX_CYCLES = 100
"""Slots per episode before truncation, unless ``max_cycles`` says otherwise."""


def box(low: npt.ArrayLike, high: npt.ArrayLike) -> spaces.Box:
    """A float32 Box with element-wise bounds (arrays of one length)."""
    lo = np.asarray(low, dtype=np.float32)
    hi = np.asarray(high, dtype=np.float32)
    return spaces.Box(lo, hi, shape=lo.shape, dtype=np.float32)


def parts_box(*parts: tuple[int, float, float]) -> spaces.Box:
    """A float32 Box of consecutive parts ``(length, low, high)``."""
    lo = np.concatenate([np.full(n, a) for n, a, _ in parts])
    hi = np.concatenate([np.full(n, b) for n, _, b in parts])
    return box(lo, hi)


def concat_box(boxes: list[spaces.Box]) -> spaces.Box:
    """The Box of the concatenation of vectors from ``boxes``."""
    return box(np.concatenate([b.low for b in boxes]), np.concatenate([b.high for b in boxes]))


def agent_names(prefix: str, n: int) -> list[str]:
    """PettingZoo's recommended ``<descriptor>_<number>`` names; agent i is node i of the
    testbed (``kind.node_name(i)``)."""
    return [f"{prefix}_{i}" for i in range(n)]


def check_options(kind: str, options: dict[str, Any], known: tuple[str, ...]) -> None:
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise TypeError(f"{kind} env: unknown option(s) {', '.join(unknown)}; known: "
                        f"{', '.join(known)}")


NETWORK_OPTIONS = ("runner", "out", "step_timeout_s")
"""The options of a kind whose parallel game also runs over real processes."""


def network_env(refs: str | dict[str, str], kind: str, scenario: Any, seed: int,
                max_cycles: int, options: dict[str, Any]) -> Any:
    """The kind's game over real processes when ``options`` ask for ``runner="network"``
    (``out``: the folder of its runs' directories, ``step_timeout_s``: how long a step may
    wait); None for the in-process runner (the default). ``refs``: "module:class" of the
    network env of each api (:mod:`controller.envs.network`), or of the parallel game only,
    whose ``api="aec"`` is then PettingZoo's ``parallel_to_aec`` of it."""
    runner = options.get("runner", "local")
    if runner == "local":
        if "out" in options or "step_timeout_s" in options:
            raise ValueError("out and step_timeout_s are options of runner='network'")
        return None
    if runner != "network":
        raise ValueError(f"runner must be 'local' or 'network', not {runner!r}")
    from channel_server.kinds import KINDS, Resolved
    from protocols.plugins import resolve as resolve_ref

    api = options.get("api", "parallel")
    if api not in APIS:
        raise ValueError(f"api must be one of {', '.join(APIS)}, not {api!r}")
    refs = {"parallel": refs} if isinstance(refs, str) else refs
    extra = {k: options[k] for k in ("out", "step_timeout_s") if k in options}
    env = resolve_ref(refs.get(api, refs["parallel"]))(
        scenario, Resolved(KINDS.get(kind), scenario), seed, max_cycles, **extra)
    return env if api in refs else as_api(env, api)


def as_api(env: ParallelEnv[Any, Any, Any], api: str) -> Any:
    """``env`` for ``api``: itself ("parallel"), or PettingZoo's ``parallel_to_aec`` of it
    ("aec", for a kind without a turn-based game of its own)."""
    if api == "parallel":
        return env
    if api == "aec":
        return parallel_to_aec(env)
    raise ValueError(f"api must be one of {', '.join(APIS)}, not {api!r}")


@dataclass(frozen=True)
class Slot:
    """The outcome of one slot, per agent in ``possible_agents`` order."""

    rewards: list[float]
    """Every agent's reward."""
    infos: list[dict[str, Any]] = field(default_factory=list)
    """Every agent's info (empty: ``{}`` each)."""
    terminated: bool = False
    """The episode reached its natural end (every agent)."""


class SlotEnv(ParallelEnv[str, Obs, Any]):  # type: ignore[misc]
    """A ``pettingzoo.ParallelEnv`` over a kind's air: the hooks are the kind's part."""

    metadata: dict[str, Any] = {"name": "rrmbed_v0", "render_modes": [],
                                "is_parallelizable": True}
    render_mode: str | None = None

    def __init__(self, possible_agents: list[str], observation_spaces: dict[str, spaces.Space[Any]],
                 action_spaces: dict[str, spaces.Space[Any]], seed: int,
                 max_cycles: int = DEFAULT_MAX_CYCLES,
                 state_space: spaces.Box | None = None) -> None:
        if int(max_cycles) < 1:
            raise ValueError("max_cycles must be >= 1")
        self.possible_agents = list(possible_agents)
        self.agents: list[str] = []
        self.observation_spaces = observation_spaces
        self.action_spaces = action_spaces
        self.state_space = state_space if state_space is not None else concat_box(
            [cast(spaces.Box, observation_spaces[a]) for a in self.possible_agents])
        self.run_seed = int(seed)
        """The seed the current world was built from (the last seeded reset's)."""
        self.max_cycles = int(max_cycles)
        """Slots per episode; the last one truncates every agent."""
        self.cycles = 0
        """Slots played in the current episode."""
        self._started = False
        self._obs: Obs | None = None

    # ------------------------------------------------------------------ the kind's part

    def _start(self, seed: int) -> None:
        raise NotImplementedError

    def _next_episode(self) -> None:
        raise NotImplementedError

    def _observe(self) -> Obs:
        raise NotImplementedError

    def _play(self, actions: list[Any]) -> Slot:
        raise NotImplementedError

    # ------------------------------------------------------------------ the API

    def observation_space(self, agent: str) -> spaces.Space[Any]:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space[Any]:
        return self.action_spaces[agent]

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, Obs], dict[str, dict[str, Any]]]:
        """A seed rebuilds the world from it; no seed starts the next episode (the first
        reset without a seed uses the environment's own). ``options`` are ignored."""
        if seed is not None or not self._started:
            self.run_seed = int(seed) if seed is not None else self.run_seed
            self._start(self.run_seed)
            self._started = True
        else:
            self._next_episode()
        self.agents = list(self.possible_agents)
        self.cycles = 0
        self._obs = self._observe()
        return self._obs_dict(), {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[
            dict[str, Obs], dict[str, float], dict[str, bool], dict[str, bool],
            dict[str, dict[str, Any]]]:
        if not self.agents:
            raise RuntimeError("the episode is over (or never began): call reset()")
        missing = [a for a in self.agents if a not in actions]
        if missing:
            raise ValueError(f"no action for {', '.join(missing)}")
        slot = self._play([actions[a] for a in self.possible_agents])
        self.cycles += 1
        truncated = self.cycles >= self.max_cycles and not slot.terminated
        self._obs = self._observe()
        agents = self.agents
        infos = slot.infos or [{} for _ in agents]
        out = (self._obs_dict(),
               {a: float(r) for a, r in zip(agents, slot.rewards, strict=True)},
               {a: slot.terminated for a in agents},
               {a: truncated for a in agents},
               dict(zip(agents, infos, strict=True)))
        if slot.terminated or truncated:
            self.agents = []
        return out

    def state(self) -> Obs:
        """Every agent's observation, concatenated (kinds with a cheaper global view
        override it)."""
        if self._obs is None:
            raise RuntimeError("state() before reset()")
        return self._obs.reshape(-1).copy()

    def render(self) -> None:
        return None

    def close(self) -> None:
        return None

    def _obs_dict(self) -> dict[str, Obs]:
        assert self._obs is not None
        return {a: self._obs[i] for i, a in enumerate(self.possible_agents)}

