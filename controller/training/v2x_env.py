"""Multi-agent V2X spectrum-sharing environment (paper 000), PettingZoo-style parallel API.

Each V2V transmitter is an agent (``"v2v-0"`` ... ``"v2v-{K-1}"``); each slot it picks an
RB and a power level. The physics is :mod:`channel_server.v2x`; the environment adds the
episode (payload ``B`` to deliver within ``T``), observations (12)/(14) and the reward.

API (PettingZoo ``ParallelEnv`` conventions, without depending on PettingZoo):

* ``reset(seed)`` -> ``(observations, infos)``. A seed drops new vehicles (streams
  ``rng_for(seed, "v2x", ...)``); ``reset()`` without a seed starts the next episode in
  the same world (vehicles keep moving, payloads and deadlines are refilled), as the
  reference keeps its vehicles between episodes. The first reset needs a seed.
* ``step(actions)`` -> ``(observations, rewards, terminated, truncated, infos)``; an
  action is ``(rb, power_level)`` or a flat index ``a`` with ``rb = a % M``,
  ``level = a // M`` (the reference's encoding). The deadline ends the episode: every
  agent is ``terminated`` (the time left ``U_t`` is part of the state, so it is a true
  terminal state); ``truncated`` is always false. Agents whose payload is delivered
  stay in ``agents`` until the end but are silent (their actions are ignored).
* Rewards: one global reward (13) per slot, the same for every agent (centralized
  training).
* Vectorized: ``V2xEnv(scenario, n_envs=E)`` runs E episodes in lock step; then every
  observation is ``(E, D)``, every reward ``(E,)`` and actions ``(E, 2)`` or ``(E,)``.
  With ``n_envs=None`` (default) shapes are the plain PettingZoo ones (``(D,)``, float).
  :meth:`V2xEnv.step_arrays` is the array API for learners.

Observation of agent k (all features normalized dB, see ``ObservationConfig``), length
``4 M + 2`` (``+ 2`` with the fingerprint):

1. ``G``: its own V2V channel gain over the M RBs (current slot);
2. ``H``: the gain from its transmitter to the BS over the M RBs (current slot);
3. ``I``: interference plus noise its receiver measured on each RB during the last slot
   (V2I link of the RB plus every other transmitting V2V link); at the first slot of
   an episode, the V2I links alone with the current gains;
4. ``N``: neighbours' RB choices last slot, as counts per RB of the other *transmitting*
   agents (delivered agents are silent and not counted), divided by ``K - 1``;
5. ``L_t / B`` remaining payload and ``U_t / T`` remaining time (at the start of the slot);
6. fingerprint (14): training iteration ``e / fingerprint_iterations`` and exploration
   rate ``epsilon`` (set by the learner with :meth:`V2xEnv.set_fingerprint`).

:func:`observe` builds it from an agent's own slice only (what a vehicle node holds,
plus the neighbours' choices received over the network); the environment uses the same
function.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from channel_server.v2x import V2xRates, V2xScenario
from channel_server.v2x_air import V2xAir
from node.v2x_observation import (
    LocalSlice,
    agent_name,
    decode_action,
    neighbour_counts,
    observation_dim,
    observe,
)

__all__ = ["LocalSlice", "V2xEnv", "V2xStep", "agent_name", "decode_action",
           "neighbour_counts", "observation_dim", "observe", "random_policy_metrics"]

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class V2xStep:
    """One slot of E episodes, as arrays."""

    obs: npt.NDArray[np.float32]
    """Next observations ``(E, K, D)``."""
    reward: Array
    """Global reward ``(E,)``."""
    done: bool
    """The deadline was reached (all episodes end together)."""
    rates: V2xRates
    """SINR and rates of this slot."""
    remaining_bits: Array
    """Payload left after this slot ``(E, K)``."""


class V2xEnv:
    """Parallel multi-agent environment over :class:`channel_server.v2x_air.V2xAir`."""

    metadata = {"name": "v2x_spectrum_sharing_v0", "is_parallelizable": True}

    def __init__(self, scenario: V2xScenario, n_envs: int | None = None) -> None:
        self.scenario = scenario
        self.batched = n_envs is not None
        self.n_envs = int(n_envs) if n_envs is not None else 1
        r = scenario.radio
        self.n_rb = r.n_rb
        self.n_levels = len(r.v2v_power_levels_dbm)
        self.n_agents = r.n_v2v
        self.possible_agents = [agent_name(k) for k in range(self.n_agents)]
        self.agents: list[str] = []
        self.observation_dim = observation_dim(scenario)
        self.n_actions = self.n_rb * self.n_levels
        self.air: V2xAir | None = None
        self.fingerprint = (0.0, 1.0)

    # ------------------------------------------------------------------ episode

    @property
    def t(self) -> int:
        """Slot within the episode."""
        return self.air.t if self.air is not None else 0

    @property
    def delivery_time_s(self) -> Array:
        """Delivery time of every link so far, s (NaN: not delivered), ``(E, K)``."""
        assert self.air is not None
        return self.air.delivery_time_s

    def set_fingerprint(self, iteration: float, epsilon: float) -> None:
        """Training iteration e and exploration rate epsilon appended to observations (14)."""
        self.fingerprint = (float(iteration), float(epsilon))

    def reset(
        self, seed: int | None = None, options: Mapping[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        if seed is not None:
            self.air = V2xAir(self.scenario, self.n_envs, seed)
        elif self.air is None:
            raise ValueError("the first reset needs a seed")
        else:
            self.air.start_episode()
        self.agents = list(self.possible_agents)
        return self._obs_dict(self._observe()), {a: {} for a in self.agents}

    def local_slices(self) -> LocalSlice:
        """Every agent's slice, batched ``(E, K, ...)`` (what each vehicle node would hold)."""
        assert self.air is not None
        sl = self.air.slices()
        return LocalSlice(
            v2v_gain_db=sl.v2v_gain_db, bs_gain_db=sl.bs_gain_db,
            interference_dbm=sl.interference_dbm,
            remaining_bits=self.air.remaining_bits,
            remaining_time_s=np.full((self.n_envs, self.n_agents), self.air.remaining_time_s),
        )

    def neighbour_rb_counts(self) -> Array:
        """Other transmitting agents per RB last slot, ``(E, K, M)``."""
        assert self.air is not None
        onehot = ((self.air.last_rb[..., None] == np.arange(self.n_rb))
                  & self.air.last_on[..., None])
        counts = onehot.sum(axis=1, keepdims=True).astype(np.float64)
        out: Array = counts - onehot
        return out

    def _observe(self) -> npt.NDArray[np.float32]:
        return observe(self.local_slices(), self.neighbour_rb_counts(), self.scenario,
                       self.fingerprint)

    # ------------------------------------------------------------------ stepping

    def step_arrays(self, rb: Any, level: Any) -> V2xStep:
        """Advance one slot with RB choices and power-level indices ``(E, K)``."""
        if self.air is None or not self.agents:
            raise RuntimeError("call reset() before step()")
        out = self.air.step(rb, level)
        obs = self._observe()
        done = self.air.done
        if done:
            self.agents = []
        return V2xStep(obs=obs, reward=out.reward, done=done, rates=out.rates,
                       remaining_bits=out.remaining_bits)

    def step(
        self, actions: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any],
               dict[str, dict[str, Any]]]:
        """PettingZoo-style step: ``actions[agent]`` is ``(rb, level)`` or a flat index
        (with ``n_envs``: ``(E, 2)`` or ``(E,)``)."""
        if self.air is None or not self.agents:
            raise RuntimeError("call reset() before step()")
        missing = set(self.agents) - set(actions)
        if missing:
            raise ValueError(f"missing actions for {sorted(missing)}")
        rb = np.zeros((self.n_envs, self.n_agents), dtype=np.int64)
        level = np.zeros_like(rb)
        for k, name in enumerate(self.possible_agents):
            a = np.asarray(actions[name], dtype=np.int64)
            if not self.batched:
                a = a[None]
            if a.ndim == 2:
                rb[:, k], level[:, k] = a[..., 0], a[..., 1]
            else:
                rb[:, k], level[:, k] = decode_action(a.reshape(self.n_envs), self.n_rb)
        agents = list(self.agents)
        out = self.step_arrays(rb, level)
        obs = self._obs_dict(out.obs)
        rew = out.reward if self.batched else float(out.reward[0])
        rewards = {a: rew for a in agents}
        terminated = {a: out.done for a in agents}
        truncated = {a: False for a in agents}
        infos: dict[str, dict[str, Any]] = {}
        for k, name in enumerate(self.possible_agents):
            if name not in agents:
                continue
            info = {
                "v2v_rate_bps": out.rates.v2v_rate_bps[:, k],
                "remaining_bits": out.remaining_bits[:, k],
                "delivered": ~np.isnan(self.delivery_time_s[:, k]),
                "v2i_sum_rate_bps": out.rates.v2i_rate_bps.sum(-1),
            }
            infos[name] = info if self.batched else {x: v[0].item() for x, v in info.items()}
        return obs, rewards, terminated, truncated, infos

    def _obs_dict(self, obs: npt.NDArray[np.float32]) -> dict[str, Any]:
        return {name: (obs[:, k] if self.batched else obs[0, k])
                for k, name in enumerate(self.possible_agents)}

    # ------------------------------------------------------------------ metrics

    def episode_metrics(self) -> dict[str, Array]:
        """Per episode (so far): see :meth:`channel_server.v2x_air.V2xAir.episode_metrics`."""
        assert self.air is not None
        return self.air.episode_metrics()


def random_policy_metrics(
    scenario: V2xScenario, seed: int, n_episodes: int, rng: np.random.Generator | None = None
) -> dict[str, float]:
    """The random baseline: every agent draws RB and power level uniformly each slot.

    Runs ``n_episodes`` fresh drops in parallel (one vectorized batch) and returns the mean
    V2V delivery rate and mean sum V2I rate (Mbps). Actions come from ``rng`` (default:
    ``rng_for(seed, "v2x", "random-policy")``).
    """
    from protocols.seeding import rng_for

    rng = rng if rng is not None else rng_for(seed, "v2x", "random-policy")
    env = V2xEnv(scenario, n_envs=n_episodes)
    env.reset(seed=seed)
    shape = (n_episodes, env.n_agents)
    done = False
    while not done:
        done = env.step_arrays(rng.integers(0, env.n_rb, shape),
                               rng.integers(0, env.n_levels, shape)).done
    m = env.episode_metrics()
    return {
        "delivery_rate": float(m["delivery_rate"].mean()),
        "sum_v2i_rate_mbps": float(m["sum_v2i_rate_bps"].mean() / 1e6),
    }
