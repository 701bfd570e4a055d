"""Multi-agent Double DQN with a target network and optional fingerprints.

The learner of the multi-agent DQN of Liang, Ye and Li (survey 000, Section on V2X
spectrum sharing; reference parameters: MLP 500-250-120, replay 200k, batch 2000,
target update every 400 steps, epsilon 1 -> 0.02), in the CleanRL ``dqn.py`` form:

* Q network: MLP ``obs -> hidden (ReLU) -> n_actions``, float32.
* One **shared** network for all agents, the agent id one-hot encoded in its input,
  or one network **per agent**, each trained on its own replay (``sharing``).
* Optional fingerprint (Foerster et al., used by Liang et al., eq. 14): the training
  iteration ``e`` (learner updates) and the exploration rate ``epsilon`` of the
  acting policy are appended to the input; ``e`` enters as ``e / epsilon_steps``.
  Transitions carry the fingerprint they were acted with; the next state reuses it.
* Double DQN target (van Hasselt et al. 2016), no bootstrap after termination:
  ``y = r + gamma * (1 - done) * Q_target(s', argmax_a Q_online(s', a))``.
* Loss: Huber (``smooth L1`` with ``huber_delta``; default) or MSE on ``Q(s, a) - y``,
  averaged over the batch; Adam; global gradient-norm clip.
* Target network: hard copy of the online network every ``target_period`` updates.
* Epsilon-greedy, epsilon a schedule of the learner update count (linear or
  exponential from ``epsilon_start`` to ``epsilon_end`` over ``epsilon_steps``).

Interface (Acme-like; a :class:`protocols.core.Learner`):
``select_action(obs, epsilon, rng)``, ``observe(transitions)``, ``step(transitions=None)
-> stats``, ``get_variables()``/``set_variables()``, ``version``, ``epsilon(step)``,
``fingerprint()``. All randomness comes from the numpy generator given to the
constructor (network init via a forked torch RNG seeded from it, replay sampling)
and the generator given to ``select_action``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

from controller.learners.replay import FieldSpec, PerAgentReplay, ReplayBuffer

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class DqnConfig:
    """Hyper-parameters of the multi-agent Double DQN (defaults: Liang et al.'s reference)."""

    hidden: tuple[int, ...] = (500, 250, 120)
    """Hidden-layer widths of the Q network (ReLU), units."""
    learning_rate: float = 1e-3
    """Adam step size, per update."""
    adam_eps: float = 1e-8
    """Adam epsilon added to the root of the second moment, gradient units."""
    gamma: float = 0.99
    """Discount factor per environment step (dimensionless)."""
    batch_size: int = 2000
    """Transitions sampled per gradient step (per network when per-agent)."""
    replay_capacity: int = 200_000
    """Transitions held by the replay ring buffer (per agent when per-agent)."""
    learning_starts: int = 2000
    """step() trains only once every replay holds at least this many transitions."""
    target_period: int = 400
    """Learner updates between hard copies online -> target network."""
    loss: Literal["huber", "mse"] = "huber"
    """TD loss: Huber with ``huber_delta`` (smooth L1) or squared error."""
    huber_delta: float = 1.0
    """Huber threshold between quadratic and linear, reward units."""
    max_grad_norm: float = 10.0
    """Global gradient-norm clip before each step; math.inf disables it."""
    epsilon_start: float = 1.0
    """Exploration rate at update 0 (probability of a uniform random action)."""
    epsilon_end: float = 0.02
    """Exploration rate from ``epsilon_steps`` updates on."""
    epsilon_steps: int = 10_000
    """Learner updates over which epsilon decays from start to end."""
    epsilon_schedule: Literal["linear", "exponential"] = "linear"
    """linear: start + (end - start) t / N; exponential: start (end / start)^(t / N)."""
    sharing: Literal["shared", "per-agent"] = "shared"
    """One network for all agents (agent id one-hot in the input) or one per agent."""
    fingerprint: bool = False
    """Append the fingerprint (e / epsilon_steps, epsilon) to every network input."""


@dataclass(frozen=True)
class Transitions:
    """``N`` environment steps of ``A`` agents (numpy, leading shape ``(N, A)``)."""

    obs: Array
    """Observations the agents acted on, (N, A, obs_dim)."""
    actions: IntArray
    """Discrete actions taken, (N, A), in [0, n_actions)."""
    rewards: Array
    """Rewards, (N, A), or (N,) for a reward common to all agents, reward units."""
    next_obs: Array
    """Observations after the step, (N, A, obs_dim) (for a truncated episode: the
    observation the episode would have continued with)."""
    terminated: Array
    """(N,) 1 where the episode terminated after this step (no bootstrap); truncation
    is not termination."""
    fingerprint: Array | None = None
    """(N, 2) the acting policy's (e, epsilon); None: the learner's current fingerprint."""


# --------------------------------------------------------------------------- pure pieces


def epsilon_at(cfg: DqnConfig, step: int) -> float:
    """The exploration rate after ``step`` learner updates."""
    frac = min(max(step, 0) / max(cfg.epsilon_steps, 1), 1.0)
    if cfg.epsilon_schedule == "linear":
        return cfg.epsilon_start + (cfg.epsilon_end - cfg.epsilon_start) * frac
    if cfg.epsilon_schedule == "exponential":
        return float(cfg.epsilon_start * (cfg.epsilon_end / cfg.epsilon_start) ** frac)
    raise ValueError(f"unknown epsilon schedule {cfg.epsilon_schedule!r}")


def q_network(in_dim: int, hidden: tuple[int, ...], n_actions: int) -> nn.Sequential:
    """MLP ``in_dim -> hidden (ReLU) -> n_actions`` with PyTorch's default initialisation."""
    sizes = [in_dim, *hidden, n_actions]
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def double_dqn_targets(
    online: nn.Module, target: nn.Module, rewards: torch.Tensor, next_inputs: torch.Tensor,
    terminated: torch.Tensor, gamma: float,
) -> torch.Tensor:
    """``r + gamma (1 - done) Q_target(s', argmax_a Q_online(s', a))`` (ties: lowest index)."""
    with torch.no_grad():
        best = online(next_inputs).argmax(dim=-1, keepdim=True)
        q_next = target(next_inputs).gather(-1, best).squeeze(-1)
        out: torch.Tensor = rewards + gamma * (1.0 - terminated) * q_next
        return out


def td_loss(q: torch.Tensor, y: torch.Tensor, cfg: DqnConfig) -> torch.Tensor:
    if cfg.loss == "huber":
        return F.huber_loss(q, y, delta=cfg.huber_delta)
    if cfg.loss == "mse":
        return F.mse_loss(q, y)
    raise ValueError(f"unknown loss {cfg.loss!r}")


# --------------------------------------------------------------------------- the learner


class Dqn:
    """Multi-agent Double DQN learner and epsilon-greedy actor."""

    def __init__(
        self, obs_dim: int, n_actions: int, n_agents: int, cfg: DqnConfig,
        rng: np.random.Generator,
    ) -> None:
        if cfg.sharing not in ("shared", "per-agent"):
            raise ValueError(f"unknown sharing {cfg.sharing!r}")
        self.obs_dim, self.n_actions, self.n_agents = int(obs_dim), int(n_actions), int(n_agents)
        self.cfg = cfg
        self.rng = rng
        """Replay sampling; it also seeded the network initialisation."""
        n_nets = 1 if cfg.sharing == "shared" else self.n_agents
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(rng.integers(2**31 - 1)))
            self.online = [q_network(self.in_dim, cfg.hidden, self.n_actions)
                           for _ in range(n_nets)]
        self.target = [copy.deepcopy(q) for q in self.online]
        self.optimizers = [torch.optim.Adam(q.parameters(), lr=cfg.learning_rate,
                                            eps=cfg.adam_eps) for q in self.online]
        fields = {
            "obs": FieldSpec((self.obs_dim,), np.float32),
            "action": FieldSpec((), np.int64),
            "reward": FieldSpec((), np.float32),
            "next_obs": FieldSpec((self.obs_dim,), np.float32),
            "terminated": FieldSpec((), np.float32),
            "agent": FieldSpec((), np.int64),
            "fingerprint": FieldSpec((2,), np.float32),
        }
        self.replay: ReplayBuffer | PerAgentReplay
        if cfg.sharing == "shared":
            self.replay = ReplayBuffer(cfg.replay_capacity, fields)
        else:
            self.replay = PerAgentReplay(self.n_agents, cfg.replay_capacity, fields)
        self.updates = 0
        """Gradient steps taken (per network): the training iteration e."""
        self.version = 0
        """Grows with every gradient step and every set_variables (never shrinks, unlike
        ``updates``, which a fingerprint entry may set back)."""

    @property
    def in_dim(self) -> int:
        """Network input width: observation, agent one-hot (shared), fingerprint."""
        one_hot = self.n_agents if self.cfg.sharing == "shared" else 0
        return self.obs_dim + one_hot + (2 if self.cfg.fingerprint else 0)

    # ---------------------------------------------------------------- schedule

    def epsilon(self, step: int) -> float:
        """Exploration rate after ``step`` learner updates."""
        return epsilon_at(self.cfg, step)

    def fingerprint(self) -> tuple[int, float]:
        """(training iteration e = updates so far, current epsilon)."""
        return self.updates, self.epsilon(self.updates)

    # ---------------------------------------------------------------- acting

    def inputs(
        self, obs: npt.ArrayLike, agent: npt.ArrayLike, fingerprint: npt.ArrayLike
    ) -> torch.Tensor:
        """Network inputs of rows: obs (n, D), agent (n,), fingerprint (n, 2) as (e, eps)."""
        parts = [np.asarray(obs, dtype=np.float32)]
        if self.cfg.sharing == "shared":
            parts.append(np.eye(self.n_agents, dtype=np.float32)[np.asarray(agent)])
        if self.cfg.fingerprint:
            fp = np.asarray(fingerprint, dtype=np.float64)
            scaled = np.stack([fp[:, 0] / max(self.cfg.epsilon_steps, 1), fp[:, 1]], axis=-1)
            parts.append(scaled.astype(np.float32))
        return torch.as_tensor(np.concatenate(parts, axis=-1))

    def network(self, agent: int) -> nn.Module:
        return self.online[0 if self.cfg.sharing == "shared" else agent]

    @torch.no_grad()
    def q_values(self, obs: Array, fingerprint: tuple[float, float] | None = None) -> Array:
        """Online Q values of observations (..., A, obs_dim) -> (..., A, n_actions)."""
        obs = np.asarray(obs, dtype=np.float64)
        lead = obs.shape[:-2]
        rows = obs.reshape(-1, self.n_agents, self.obs_dim)
        n = rows.shape[0]
        fp = np.tile(np.asarray(self.fingerprint() if fingerprint is None else fingerprint,
                                dtype=np.float64), (n, 1))
        out = np.empty((n, self.n_agents, self.n_actions))
        for a in range(self.n_agents):
            x = self.inputs(rows[:, a], np.full(n, a), fp)
            out[:, a] = self.network(a)(x).numpy()
        return out.reshape(*lead, self.n_agents, self.n_actions)

    def select_action(self, obs: Array, epsilon: float, rng: np.random.Generator) -> IntArray:
        """Epsilon-greedy actions (..., A) for observations (..., A, obs_dim).

        Always draws one uniform and one random action per agent from ``rng``, so the
        stream does not depend on the outcome (greedy ties: lowest index)."""
        q = self.q_values(obs)
        greedy = q.argmax(axis=-1)
        explore = rng.random(greedy.shape) < epsilon
        random = rng.integers(0, self.n_actions, size=greedy.shape)
        out: IntArray = np.where(explore, random, greedy).astype(np.int64)
        return out

    # ---------------------------------------------------------------- learning

    def observe(self, tr: Transitions) -> None:
        """Store ``N x A`` transitions in the replay (per agent when per-agent)."""
        obs = np.asarray(tr.obs)
        n, a = obs.shape[0], self.n_agents
        if obs.shape[1:] != (a, self.obs_dim):
            raise ValueError(f"obs shape {obs.shape}, expected (N, {a}, {self.obs_dim})")
        rewards = np.asarray(tr.rewards, dtype=np.float64)
        if rewards.shape == (n,):
            rewards = np.repeat(rewards[:, None], a, axis=1)
        fp = (np.tile(np.asarray(self.fingerprint(), dtype=np.float64), (n, 1))
              if tr.fingerprint is None else np.asarray(tr.fingerprint, dtype=np.float64))
        self.replay.add({
            "obs": obs.reshape(n * a, self.obs_dim),
            "action": np.asarray(tr.actions).reshape(n * a),
            "reward": rewards.reshape(n * a),
            "next_obs": np.asarray(tr.next_obs).reshape(n * a, self.obs_dim),
            "terminated": np.repeat(np.asarray(tr.terminated, dtype=np.float64), a),
            "agent": np.tile(np.arange(a), n),
            "fingerprint": np.repeat(fp, a, axis=0),
        })

    def targets(self, net: int, batch: dict[str, np.ndarray]) -> torch.Tensor:
        """Double-DQN targets of a replay batch for network ``net``."""
        x_next = self.inputs(batch["next_obs"], batch["agent"], batch["fingerprint"])
        return double_dqn_targets(
            self.online[net], self.target[net], torch.as_tensor(batch["reward"]), x_next,
            torch.as_tensor(batch["terminated"]), self.cfg.gamma,
        )

    def step(self, batch: Transitions | None = None) -> dict[str, float]:
        """Store ``batch`` in the replay (as :meth:`observe`) if given, then one gradient
        step per network on a uniform replay batch; hard target copy every
        ``target_period`` updates. Before ``learning_starts``: no step, ``trained`` 0."""
        cfg = self.cfg
        if batch is not None:
            self.observe(batch)
        if len(self.replay) < max(cfg.learning_starts, 1):
            return {"trained": 0.0, "updates": float(self.updates),
                    "epsilon": self.epsilon(self.updates)}
        losses, q_means, norms = [], [], []
        for net, (q_net, opt) in enumerate(zip(self.online, self.optimizers, strict=True)):
            if isinstance(self.replay, PerAgentReplay):
                sample = self.replay.sample(net, cfg.batch_size, self.rng)
            else:
                sample = self.replay.sample(cfg.batch_size, self.rng)
            y = self.targets(net, sample)
            x = self.inputs(sample["obs"], sample["agent"], sample["fingerprint"])
            action = torch.as_tensor(sample["action"])[:, None]
            q = q_net(x).gather(-1, action).squeeze(-1)
            loss = td_loss(q, y, cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            norms.append(float(nn.utils.clip_grad_norm_(q_net.parameters(), cfg.max_grad_norm)))
            opt.step()
            losses.append(loss.item())
            q_means.append(q.detach().mean().item())
        self.updates += 1
        self.version += 1
        if self.updates % cfg.target_period == 0:
            self._sync_target()
        return {
            "trained": 1.0,
            "updates": float(self.updates),
            "epsilon": self.epsilon(self.updates),
            "loss": float(np.mean(losses)),
            "q_mean": float(np.mean(q_means)),
            "grad_norm": float(np.mean(norms)) if all(map(math.isfinite, norms)) else math.nan,
        }

    @torch.no_grad()
    def _sync_target(self) -> None:
        for q, t in zip(self.online, self.target, strict=True):
            t.load_state_dict(q.state_dict())

    # ---------------------------------------------------------------- weights

    def _prefix(self, net: int) -> str:
        return "" if self.cfg.sharing == "shared" else f"agent{net}."

    def get_variables(self) -> dict[str, np.ndarray]:
        """Online weights as named float32 arrays (``q.<layer>.weight``; per-agent:
        ``agent<i>.q.<layer>.weight``), plus ``fingerprint`` = [e, epsilon] when the
        inputs carry one (what an actor needs to act like this learner)."""
        out: dict[str, np.ndarray] = {}
        for net, q in enumerate(self.online):
            for name, value in q.state_dict().items():
                out[f"{self._prefix(net)}q.{name}"] = value.detach().cpu().numpy().copy()
        if self.cfg.fingerprint:
            out["fingerprint"] = np.asarray(self.fingerprint(), dtype=np.float64)
        return out

    def set_variables(self, variables: dict[str, np.ndarray]) -> None:
        """Load online weights (and copy them to the target, as a target update does);
        a ``fingerprint`` entry sets the update count e."""
        expected = set(self.get_variables())
        if set(variables) != expected:
            missing, extra = sorted(expected - set(variables)), sorted(set(variables) - expected)
            raise ValueError(f"variables do not fit: missing {missing}, unexpected {extra}")
        for net, q in enumerate(self.online):
            prefix = f"{self._prefix(net)}q."
            q.load_state_dict({k[len(prefix):]: torch.as_tensor(v) for k, v in variables.items()
                               if k.startswith(prefix)})
        if "fingerprint" in variables:
            self.updates = int(variables["fingerprint"][0])
        self.version += 1
        self._sync_target()
