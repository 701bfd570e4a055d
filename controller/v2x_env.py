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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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


def agent_name(k: int) -> str:
    return f"v2v-{k}"


def observation_dim(scenario: V2xScenario) -> int:
    """Length of one agent's observation."""
    return 4 * scenario.radio.n_rb + 2 + (2 if scenario.observation.fingerprint else 0)


def decode_action(a: Any, n_rb: int) -> tuple[Any, Any]:
    """Flat action index -> (rb, power level): ``rb = a % M``, ``level = a // M``."""
    a = np.asarray(a, dtype=np.int64)
    return a % n_rb, a // n_rb


@dataclass(frozen=True)
class LocalSlice:
    """What one V2V agent knows at the start of a slot (arrays may carry batch axes)."""

    v2v_gain_db: Array
    """Own V2V link effective gain per RB, dB, ``(..., M)``."""
    bs_gain_db: Array
    """Effective gain from own transmitter to the BS per RB, dB, ``(..., M)``."""
    interference_dbm: Array
    """Interference plus noise measured at own receiver per RB last slot, dBm, ``(..., M)``."""
    remaining_bits: Array | float
    """Payload left, bits."""
    remaining_time_s: Array | float
    """Time left before the deadline, seconds."""


def neighbour_counts(neighbour_rbs: Sequence[int], n_rb: int) -> Array:
    """Counts per RB of the RB choices received from the other transmitting agents."""
    out: Array = np.bincount(np.asarray(neighbour_rbs, dtype=np.int64),
                             minlength=n_rb).astype(np.float64)
    return out


def observe(
    local: LocalSlice,
    neighbour_rb_counts: Array,
    scenario: V2xScenario,
    fingerprint: tuple[float, float] | None = None,
) -> npt.NDArray[np.float32]:
    """Observation (12), plus (14) when ``scenario.observation.fingerprint``.

    ``neighbour_rb_counts (..., M)`` counts the other transmitting agents per RB last slot
    (see :func:`neighbour_counts`); ``fingerprint = (iteration, epsilon)``.
    """
    o = scenario.observation
    k_n = scenario.radio.n_v2v
    g = (np.asarray(local.v2v_gain_db) - o.gain_offset_db) / o.gain_scale_db
    h = (np.asarray(local.bs_gain_db) - o.gain_offset_db) / o.gain_scale_db
    i = (np.asarray(local.interference_dbm) - o.interference_offset_dbm) / o.interference_scale_db
    n = np.asarray(neighbour_rb_counts, dtype=np.float64) / max(k_n - 1, 1)
    batch = g.shape[:-1]
    load = np.broadcast_to(np.asarray(local.remaining_bits) / scenario.traffic.payload_bits,
                           batch)[..., None]
    time_left = np.broadcast_to(
        np.asarray(local.remaining_time_s) / scenario.traffic.deadline_s, batch)[..., None]
    parts = [g, h, i, n, load, time_left]
    if o.fingerprint:
        it, eps = fingerprint if fingerprint is not None else (0.0, 1.0)
        fp = np.array([it / o.fingerprint_iterations, eps], dtype=np.float64)
        parts.append(np.broadcast_to(fp, (*batch, 2)))
    return np.concatenate(parts, axis=-1).astype(np.float32)


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
    """Parallel multi-agent environment over :class:`channel_server.v2x.V2xWorld`."""

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
        self.world: V2xWorld | None = None
        self.fingerprint = (0.0, 1.0)
        self.t = 0

    # ------------------------------------------------------------------ episode

    def set_fingerprint(self, iteration: float, epsilon: float) -> None:
        """Training iteration e and exploration rate epsilon appended to observations (14)."""
        self.fingerprint = (float(iteration), float(epsilon))

    def reset(
        self, seed: int | None = None, options: Mapping[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        if seed is not None:
            self.world = V2xWorld(self.scenario, self.n_envs, V2xRngs.from_seed(seed))
        elif self.world is None:
            raise ValueError("the first reset needs a seed")
        self._start_episode()
        return self._obs_dict(self._observe()), {a: {} for a in self.agents}

    def _start_episode(self) -> None:
        assert self.world is not None
        e, k = self.n_envs, self.n_agents
        neighbors = self.scenario.radio.v2v_neighbors
        self.tx, self.rx = nearest_receivers(self.world.positions, neighbors)
        self.t = 0
        self.remaining_bits: Array = np.full((e, k), self.scenario.traffic.payload_bits)
        self.delivery_time_s: Array = np.full((e, k), np.nan)
        self.v2i_sum_rate_bps: Array = np.zeros(e)
        self.agents = list(self.possible_agents)
        # "last slot" before the first one: V2I links only, current gains
        silent = np.zeros((e, k))
        self._last_rb: IntArray = np.zeros((e, k), dtype=np.int64)
        self._last_on = np.zeros((e, k), dtype=bool)
        self._last_interference_w = self._rates(self._last_rb, silent).v2v_interference_w

    def _rates(self, rb: IntArray, power_w: Array) -> V2xRates:
        assert self.world is not None
        v2i_gain, v2v_gain = self.world.gains()
        return link_rates(self.scenario.radio, v2i_gain, v2v_gain, self.tx, self.rx, rb, power_w)

    def local_slices(self) -> LocalSlice:
        """Every agent's slice, batched ``(E, K, ...)`` (what each vehicle node would hold)."""
        assert self.world is not None
        v2i_db, v2v_db = self.world.gains_db()
        e_idx = np.arange(self.n_envs)[:, None]
        return LocalSlice(
            v2v_gain_db=v2v_db[e_idx, self.tx[None, :], self.rx],
            bs_gain_db=v2i_db[:, self.tx, :],
            interference_dbm=10.0 * np.log10(self._last_interference_w) + 30.0,
            remaining_bits=self.remaining_bits,
            remaining_time_s=np.full((self.n_envs, self.n_agents),
                                     self.scenario.traffic.deadline_s - self.t
                                     * self.scenario.radio.slot_s),
        )

    def neighbour_rb_counts(self) -> Array:
        """Other transmitting agents per RB last slot, ``(E, K, M)``."""
        onehot = (self._last_rb[..., None] == np.arange(self.n_rb)) & self._last_on[..., None]
        counts = onehot.sum(axis=1, keepdims=True).astype(np.float64)
        out: Array = counts - onehot
        return out

    def _observe(self) -> npt.NDArray[np.float32]:
        return observe(self.local_slices(), self.neighbour_rb_counts(), self.scenario,
                       self.fingerprint)

    # ------------------------------------------------------------------ stepping

    def step_arrays(self, rb: Any, level: Any) -> V2xStep:
        """Advance one slot with RB choices and power-level indices ``(E, K)``."""
        if self.world is None or not self.agents:
            raise RuntimeError("call reset() before step()")
        s = self.scenario
        shape = (self.n_envs, self.n_agents)
        rb = np.broadcast_to(np.asarray(rb, dtype=np.int64), shape)
        level = np.broadcast_to(np.asarray(level, dtype=np.int64), shape)
        if (rb < 0).any() or (rb >= self.n_rb).any():
            raise ValueError(f"rb must be in [0, {self.n_rb})")
        if (level < 0).any() or (level >= self.n_levels).any():
            raise ValueError(f"power level must be in [0, {self.n_levels})")
        active = np.isnan(self.delivery_time_s)
        power_w = np.where(active, s.radio.v2v_power_levels_w[level], 0.0)
        rates = self._rates(rb, power_w)
        elapsed = self.t * s.radio.slot_s
        self.remaining_bits, self.delivery_time_s = account_payload(
            self.remaining_bits, rates.v2v_rate_bps, s.radio.slot_s, elapsed,
            self.delivery_time_s)
        delivered = ~np.isnan(self.delivery_time_s)
        reward = v2x_reward(s.reward, rates.v2i_rate_bps, rates.v2v_rate_bps, delivered, elapsed)
        self.v2i_sum_rate_bps += rates.v2i_rate_bps.sum(-1)
        self._last_rb = rb.copy()
        self._last_on = active
        self._last_interference_w = rates.v2v_interference_w
        self.world.advance()
        self.t += 1
        done = self.t >= s.n_steps
        obs = self._observe()
        if done:
            self.agents = []
        return V2xStep(obs=obs, reward=reward, done=done, rates=rates,
                       remaining_bits=self.remaining_bits.copy())

    def step(
        self, actions: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any],
               dict[str, dict[str, Any]]]:
        """PettingZoo-style step: ``actions[agent]`` is ``(rb, level)`` or a flat index
        (with ``n_envs``: ``(E, 2)`` or ``(E,)``)."""
        if self.world is None or not self.agents:
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
        """Per episode (so far): V2V payload delivery rate (fraction of links done), mean
        sum V2I rate over the slots played (bit/s), per-link delivery time (s, NaN if not
        delivered)."""
        played = max(self.t, 1)
        return {
            "delivery_rate": (~np.isnan(self.delivery_time_s)).mean(-1),
            "sum_v2i_rate_bps": self.v2i_sum_rate_bps / played,
            "delivery_time_s": self.delivery_time_s.copy(),
        }


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
