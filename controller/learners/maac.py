"""MAAC and NAAC (paper 002, Li and Guo): multi-agent actor-critic with centralized
training at the base station and decentralized execution at the D2D pairs.

* **Actor** per pair ``i``: MLP ``s_i -> 512 -> 128 -> K beta`` (ReLU), on the pair's own
  observation only. Its output are the logits of the discrete actions (RB, power level).
* **Critic** per pair ``i`` at the BS: ``Q_i(s_C, a_C)`` over the states and actions of the
  pairs ``C(i)``: every pair (MAAC, eq. 12-14) or pair ``i`` and its ``lambda`` nearest
  pairs (NAAC, eq. 20-21, lambda = 3 by default), or pair ``i`` alone (``own``: the
  paper's independent actor-critic baseline, AC, with the same networks). Its structure
  follows Fig. 4: the states go through a first fully connected layer (1024), the actions
  join after it, then 512, 256 and the Q value (ReLU).
* DDPG-style targets: a copy of every actor and critic, soft updates
  ``theta' <- tau theta + (1 - tau) theta'`` (eq. 19, tau = 0.01) after every step.
* Critic loss (14)-(15): ``(Q_i(s, a) - y_i)^2`` with
  ``y_i = r_i + gamma Q'_i(s', mu'(s'))``, gamma = 0.95; no episode ends (a continuing task).
* Actor update (17): ascend ``Q_i(s, a)`` with ``a_i`` replaced by the actor's action.
* Adam, learning rates 1e-4 (actor) and 1e-3 (critic); replay of 10^6 slots, sampled
  uniformly (minibatch size: *choice* 128, the paper gives none).

**Discrete actions** (the paper writes a deterministic policy ``mu: S -> A`` whose output
"is the selected action", and cites MADDPG [40] for the multi-agent gradient): the actor
outputs logits, the critic takes actions as one-hot vectors, and the target action
``mu'(s')`` of (15) is the one-hot argmax of the target actor (the deterministic policy).
The policy gradient (17), ``actor_update``:

* ``expected`` (default, *choice*): ascend ``E_{a_i ~ pi_i(s_i)} Q_i(s, a_i, a_-i)``, the
  exact expectation over pair i's K beta actions of its critic with the other pairs'
  actions from the replay (the discrete counterpart of (17): a deterministic gradient
  through Q has no meaning on a one-hot input), plus ``entropy`` times the policy's
  entropy. One pass of the critic gives every own action's Q: the first joined layer is
  linear in the one-hot action, so action k adds its row of weights
  (:meth:`Critics.each_own_action`).
* ``gumbel``: MADDPG's relaxation, agent i's action replaced by the differentiable
  Gumbel-Softmax ``softmax((logits + g) / T)`` (``g`` Gumbel noise, T =
  ``gumbel_temperature``) with a small L2 penalty on the logits (MADDPG's regularizer).

Why ``expected``: with a critic fixed after 10^4 supervised updates on random slots
(N = 10, its greedy action worth 8.25 Mbit/s on held-out fading against 4.80 for random
RBs), an actor of 64, 32 units trained on it for 10^4 updates reached 8.02 Mbit/s with
the expected gradient and entropy 0.3 (learning rate 1e-3), 6.01 with entropy 0.01, and
5.83 with the Gumbel relaxation: the relaxed gradient asks the critic about soft actions
it never saw, and without enough entropy the softmax settles on one RB before it learns
to follow the fading.

Acting: the argmax of the logits (execution, Algorithm 2); while training, a sample of
their softmax (the Gumbel-max draw). Pairs download the **target** actors (the paper:
"users only need to download the weights of the trained target actor network"), named
``agent<i>.actor.<l>.weight`` (out x in) / ``.bias``, float32.

Networks of all N pairs are held as batched weights ``(N, in, out)`` and run with one
batched matrix product per layer, so N critics cost one pass. Randomness: the generator
given to the constructor (network initialisation through a torch generator seeded from it,
replay sampling, Gumbel noise of the updates).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, cast

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from controller.learners.replay import FieldSpec, ReplayBuffer

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class MaacConfig:
    """Hyper-parameters of MAAC / NAAC (defaults: the paper's, Section V)."""

    critic: Literal["all", "neighbours", "own"] = "all"
    """What critic i sees: every pair (MAAC), pair i and its nearest pairs (NAAC), or pair i
    alone (independent actor-critic, the paper's AC baseline)."""
    neighbours: int = 3
    """lambda, the nearest pairs a NAAC critic sees besides pair i itself."""
    actor_hidden: tuple[int, ...] = (512, 128)
    """Hidden-layer widths of every actor (ReLU), units."""
    critic_hidden: tuple[int, ...] = (1024, 512, 256)
    """Hidden-layer widths of every critic (ReLU), units; the actions join after the first."""
    actor_learning_rate: float = 1e-4
    """Adam step size of the actors, per update."""
    critic_learning_rate: float = 1e-3
    """Adam step size of the critics, per update."""
    gamma: float = 0.95
    """Discount factor per slot."""
    tau: float = 0.01
    """Soft target update factor."""
    replay_capacity: int = 1_000_000
    """Slots held by the replay (FIFO); rows are written lazily, memory grows as it fills."""
    batch_size: int = 128
    """Slots sampled per update (*choice*: not given by the paper)."""
    learning_starts: int = 2000
    """step() trains once the replay holds this many slots (the paper's random warm-up)."""
    actor_update: Literal["expected", "gumbel"] = "expected"
    """How the discrete actions meet the policy gradient (module docstring)."""
    entropy: float = 0.3
    """``expected``: weight of the policy's entropy in the actor's objective, reward units
    per nat (*choice*)."""
    gumbel_temperature: float = 1.0
    """``gumbel``: temperature T of the Gumbel-Softmax relaxation."""
    logits_l2: float = 1e-3
    """``gumbel``: weight of the mean squared logits added to the actor loss."""
    max_grad_norm: float = 1.0
    """Global gradient-norm clip of every update (per network family); inf disables it."""

    def __post_init__(self) -> None:
        if self.actor_update not in ("expected", "gumbel"):
            raise ValueError(f"actor_update must be 'expected' or 'gumbel', got "
                             f"{self.actor_update!r}")
        if not 0.0 <= self.gamma < 1.0:
            raise ValueError(f"gamma must be in [0, 1), got {self.gamma}")
        if self.entropy < 0.0:
            raise ValueError(f"entropy must be >= 0, got {self.entropy}")


@dataclass(frozen=True)
class MaacDims:
    """What a MAAC / NAAC learner trains."""

    obs_dim: int
    """Observation length of one pair."""
    n_actions: int
    """Discrete actions of one pair (K x beta)."""
    n_agents: int
    """N, the pairs."""
    positions: Array
    """Where each pair is, ``(N, 2)`` metres (NAAC picks neighbours by distance)."""


def critic_members(positions: npt.ArrayLike, critic: str, neighbours: int) -> IntArray:
    """The pairs each critic sees, ``(N, L)``: every pair in index order (``all``, L = N),
    pair i first and then its ``neighbours`` nearest pairs by Euclidean distance, nearest
    first, ties to the lower index (``neighbours``, L = neighbours + 1), or pair i alone
    (``own``, L = 1: independent learners)."""
    xy = np.asarray(positions, dtype=np.float64)
    n = xy.shape[0]
    if critic == "all":
        out: IntArray = np.tile(np.arange(n, dtype=np.int64), (n, 1))
        return out
    if critic == "own":
        out = np.arange(n, dtype=np.int64)[:, None]
        return out
    if critic != "neighbours":
        raise ValueError(f"critic must be 'all', 'neighbours' or 'own', got {critic!r}")
    if not 1 <= neighbours < n:
        raise ValueError(f"NAAC needs 1 <= lambda < N; got lambda = {neighbours}, N = {n}")
    d = np.linalg.norm(xy[:, None, :] - xy[None, :, :], axis=-1)
    np.fill_diagonal(d, -1.0)  # itself first
    out = np.argsort(d, axis=1, kind="stable")[:, :neighbours + 1].astype(np.int64)
    return out


class BatchedLinear(nn.Module):
    """``G`` independent linear layers ``in -> out`` applied with one batched product:
    ``(G, B, in) -> (G, B, out)``; PyTorch's Linear initialisation (uniform within
    1/sqrt(in))."""

    def __init__(self, groups: int, n_in: int, n_out: int, gen: torch.Generator) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(n_in)
        w = (torch.rand(groups, n_in, n_out, generator=gen) * 2 - 1) * bound
        b = (torch.rand(groups, 1, n_out, generator=gen) * 2 - 1) * bound
        self.weight = nn.Parameter(w)
        self.bias = nn.Parameter(b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class Actors(nn.Module):
    """Every pair's actor: ``(N, B, D) -> (N, B, A)`` logits."""

    def __init__(self, n: int, obs_dim: int, hidden: tuple[int, ...], n_actions: int,
                 gen: torch.Generator) -> None:
        super().__init__()
        sizes = [obs_dim, *hidden, n_actions]
        self.layers = nn.ModuleList(BatchedLinear(n, a, b, gen)
                                    for a, b in zip(sizes[:-1], sizes[1:], strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for j, layer in enumerate(self.layers):
            x = layer(x)
            if j < len(self.layers) - 1:
                x = torch.relu(x)
        return x


class Critics(nn.Module):
    """Every pair's critic (Fig. 4): states ``(N, B, L D)`` through the first layer, then
    joined by the actions ``(N, B, L A)``, the rest of the layers, Q ``(N, B)``."""

    def __init__(self, n: int, state_in: int, action_in: int, hidden: tuple[int, ...],
                 gen: torch.Generator) -> None:
        super().__init__()
        if len(hidden) < 1:
            raise ValueError("a critic needs at least one hidden layer")
        self.state_layer = BatchedLinear(n, state_in, hidden[0], gen)
        sizes = [hidden[0] + action_in, *hidden[1:], 1]
        self.layers = nn.ModuleList(BatchedLinear(n, a, b, gen)
                                    for a, b in zip(sizes[:-1], sizes[1:], strict=True))

    def forward(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self._rest(self._joined(states, actions))

    def _joined(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The first joined layer's output (before its ReLU)."""
        out: torch.Tensor = linears(self.layers)[0](
            torch.cat([torch.relu(self.state_layer(states)), actions], dim=-1))
        return out

    def _rest(self, x: torch.Tensor) -> torch.Tensor:
        """The layers after the first joined one, to Q (the last axis dropped)."""
        for layer in linears(self.layers)[1:]:
            x = layer(torch.relu(x))
        return x[..., 0]

    def each_own_action(self, states: torch.Tensor, others: torch.Tensor,
                        own_rows: torch.Tensor) -> torch.Tensor:
        """Q ``(N, B, A)`` of every own action: ``others`` ``(N, B, L A)`` are the members'
        one-hot actions with the critic's own pair's slot all zero, ``own_rows`` ``(N, A)``
        the rows of the first joined layer that its own action feeds. That layer is linear
        in the action, so own action k adds row k of those weights to its output."""
        z = self._joined(states, others)
        n = z.shape[0]
        w_own = linears(self.layers)[0].weight[torch.arange(n)[:, None], own_rows]  # (N, A, H)
        return self._rest((z[:, :, None, :] + w_own[:, None]).flatten(1, 2)).reshape(
            n, z.shape[1], -1)


def linears(layers: nn.ModuleList) -> list[BatchedLinear]:
    """The batched layers of a module list, typed."""
    return [cast(BatchedLinear, x) for x in layers]


def soft_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """``theta' <- tau theta + (1 - tau) theta'`` for every parameter (eq. 19)."""
    with torch.no_grad():
        for t, o in zip(target.parameters(), online.parameters(), strict=True):
            t.mul_(1.0 - tau).add_(o, alpha=tau)


def hard_update(target: nn.Module, online: nn.Module) -> None:
    with torch.no_grad():
        for t, o in zip(target.parameters(), online.parameters(), strict=True):
            t.copy_(o)


class Maac:
    """The MAAC / NAAC learner (a :class:`protocols.core.Learner`): ``observe`` slots of
    experience, ``step()`` one update of every critic and actor, ``get_variables()`` the
    target actors the pairs act with."""

    def __init__(self, dims: MaacDims, cfg: MaacConfig, rng: np.random.Generator) -> None:
        self.dims, self.cfg, self.rng = dims, cfg, rng
        n, d, a = dims.n_agents, dims.obs_dim, dims.n_actions
        self.members = critic_members(dims.positions, cfg.critic, cfg.neighbours)
        """Pairs each critic sees, ``(N, L)``."""
        ell = self.members.shape[1]
        self.self_slot = torch.as_tensor(self.members == np.arange(n)[:, None])  # (N, L)
        own_pos = self.self_slot.int().argmax(dim=1)
        self.own_rows = (cfg.critic_hidden[0] + own_pos[:, None] * a
                         + torch.arange(a)[None])  # (N, A): see Critics.each_own_action
        gen = torch.Generator().manual_seed(int(rng.integers(2**63 - 1)))
        self.actor = Actors(n, d, cfg.actor_hidden, a, gen)
        self.critic = Critics(n, ell * d, ell * a, cfg.critic_hidden, gen)
        self.actor_target = Actors(n, d, cfg.actor_hidden, a, gen)
        self.critic_target = Critics(n, ell * d, ell * a, cfg.critic_hidden, gen)
        hard_update(self.actor_target, self.actor)
        hard_update(self.critic_target, self.critic)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_learning_rate)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(),
                                           lr=cfg.critic_learning_rate)
        self.replay = ReplayBuffer(cfg.replay_capacity, {
            "obs": FieldSpec((n, d), np.float32), "action": FieldSpec((n,), np.int64),
            "reward": FieldSpec((n,), np.float32), "next_obs": FieldSpec((n, d), np.float32)})
        self.updates = 0
        self.version = 0

    # ------------------------------------------------------------------ sizes

    @property
    def critic_state_width(self) -> int:
        return int(self.critic.state_layer.weight.shape[1])

    @property
    def critic_action_width(self) -> int:
        return int(linears(self.critic.layers)[0].weight.shape[1]) - self.cfg.critic_hidden[0]

    # ------------------------------------------------------------------ acting

    def logits(self, obs: npt.ArrayLike, target: bool = False) -> Array:
        """Logits ``(E, N, A)`` of the (target) actors for observations ``(E, N, D)``."""
        x = torch.as_tensor(np.asarray(obs, dtype=np.float32)).transpose(0, 1)
        with torch.no_grad():
            out = (self.actor_target if target else self.actor)(x)
        result: Array = out.transpose(0, 1).double().numpy()
        return result

    def act(self, obs: npt.ArrayLike, rng: np.random.Generator, explore: bool = True) -> IntArray:
        """Actions ``(E, N)`` of the online actors: a softmax sample (Gumbel-max, noise from
        ``rng``) when exploring, else the argmax."""
        logits = self.logits(obs)
        noise = rng.gumbel(size=logits.shape)
        out: IntArray = np.argmax(logits + noise if explore else logits, axis=-1)
        return out.astype(np.int64)

    # ------------------------------------------------------------------ learning

    def observe(self, obs: npt.ArrayLike, actions: npt.ArrayLike, rewards: npt.ArrayLike,
                next_obs: npt.ArrayLike) -> None:
        """Store slots: observations ``(E, N, D)``, actions and rewards ``(E, N)``, next
        observations ``(E, N, D)``."""
        self.replay.add({"obs": obs, "action": actions, "reward": rewards,
                         "next_obs": next_obs})

    def _gather(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, N, F)`` -> critic inputs ``(N, B, L F)`` of each critic's members."""
        b = x.shape[0]
        idx = torch.as_tensor(self.members)
        g = x[:, idx]  # (B, N, L, F)
        return g.permute(1, 0, 2, 3).reshape(self.dims.n_agents, b, -1)

    def step(self, batch: object = None) -> dict[str, float]:
        """One update of every critic and actor on a uniform minibatch, then the soft
        target updates; {} while the replay holds fewer than ``learning_starts`` slots."""
        cfg = self.cfg
        if len(self.replay) < max(cfg.learning_starts, 1):
            return {}
        b = self.replay.sample(cfg.batch_size, self.rng)
        n, a = self.dims.n_agents, self.dims.n_actions
        obs = torch.as_tensor(b["obs"])
        nxt = torch.as_tensor(b["next_obs"])
        act = torch.nn.functional.one_hot(torch.as_tensor(b["action"]), a).float()
        rew = torch.as_tensor(b["reward"]).T  # (N, B)
        # critic: y_i = r_i + gamma Q'_i(s', mu'(s'))
        with torch.no_grad():
            nxt_logits = self.actor_target(nxt.transpose(0, 1))  # (N, B, A)
            nxt_act = torch.nn.functional.one_hot(nxt_logits.argmax(-1), a).float()
            y = rew + cfg.gamma * self.critic_target(self._gather(nxt),
                                                     self._gather(nxt_act.transpose(0, 1)))
        states = self._gather(obs)
        q = self.critic(states, self._gather(act))
        critic_loss = ((q - y) ** 2).mean(dim=1).sum()
        self.critic_opt.zero_grad()
        critic_loss.backward()
        if math.isfinite(cfg.max_grad_norm):
            nn.utils.clip_grad_norm_(self.critic.parameters(), cfg.max_grad_norm)
        self.critic_opt.step()
        # actor (17): the other pairs' actions from the replay
        logits = self.actor(obs.transpose(0, 1))  # (N, B, A)
        idx = torch.as_tensor(self.members)
        others = act[:, idx].permute(1, 0, 2, 3)  # (N, B, L, A)
        mine = self.self_slot[:, None, :, None]
        logp = torch.log_softmax(logits, dim=-1)
        entropy = -(logp.exp() * logp).sum(-1)  # (N, B)
        actor_loss: torch.Tensor
        if cfg.actor_update == "expected":
            with torch.no_grad():
                q_each = self.critic.each_own_action(
                    states, torch.where(mine, 0.0, others).flatten(2), self.own_rows)
            actor_loss = -((logp.exp() * q_each).sum(-1)
                           + cfg.entropy * entropy).mean(dim=1).sum()
        else:  # gumbel: a_i relaxed by the Gumbel-Softmax
            g = torch.as_tensor(self.rng.gumbel(size=tuple(logits.shape)), dtype=torch.float32)
            relaxed = torch.softmax((logits + g) / cfg.gumbel_temperature, dim=-1)
            acts_in = torch.where(mine, relaxed[:, :, None, :].expand_as(others), others)
            q_pi = self.critic(states, acts_in.flatten(2))
            actor_loss = (-q_pi.mean(dim=1).sum()
                          + cfg.logits_l2 * (logits**2).mean(dim=(1, 2)).sum())
        self.actor_opt.zero_grad()
        actor_loss.backward()  # type: ignore[no-untyped-call]
        if math.isfinite(cfg.max_grad_norm):
            nn.utils.clip_grad_norm_(self.actor.parameters(), cfg.max_grad_norm)
        self.actor_opt.step()
        soft_update(self.actor_target, self.actor, cfg.tau)
        soft_update(self.critic_target, self.critic, cfg.tau)
        self.updates += 1
        self.version += 1
        return {"critic_loss": float(critic_loss.detach()) / n,
                "actor_loss": float(actor_loss.detach()) / n,
                "q_mean": float(q.detach().mean()),
                "entropy": float(entropy.detach().mean())}

    # ------------------------------------------------------------------ weights

    def get_variables(self) -> dict[str, np.ndarray]:
        """The target actors, ``agent<i>.actor.<l>.weight`` (out x in) and ``.bias``."""
        out: dict[str, np.ndarray] = {}
        for j, layer in enumerate(linears(self.actor_target.layers)):
            w = layer.weight.detach().numpy()  # (N, in, out)
            bias = layer.bias.detach().numpy()[:, 0, :]
            for i in range(self.dims.n_agents):
                out[f"agent{i}.actor.{j}.weight"] = np.ascontiguousarray(w[i].T)
                out[f"agent{i}.actor.{j}.bias"] = bias[i].copy()
        return out

    def set_actor_variables(self, variables: dict[str, np.ndarray]) -> None:
        """Load actors (as :meth:`get_variables` names them) into the online and target
        actors."""
        with torch.no_grad():
            for j, layer in enumerate(linears(self.actor.layers)):
                for i in range(self.dims.n_agents):
                    layer.weight[i].copy_(torch.as_tensor(
                        variables[f"agent{i}.actor.{j}.weight"]).T)
                    layer.bias[i, 0].copy_(torch.as_tensor(variables[f"agent{i}.actor.{j}.bias"]))
        hard_update(self.actor_target, self.actor)
        self.version += 1
