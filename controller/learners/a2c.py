"""Advantage Actor-Critic (A2C), the fixed-step baseline of paper 001 (Section IV-A, Fig. 9).

Same batch format and interface as :mod:`controller.learners.trpo`. One step is ONE
gradient step of the fixed step size on the whole batch:

    loss = -mean(log pi(a|s) * A) + value_coef * mean((V(s) - G)^2) - entropy_coef * H[pi]

with ``A = G - V(s)`` (GAE, lambda = 1 by default: the discounted return minus the
baseline; advantages are not normalized, as in the A2C of Mnih et al. and OpenAI
baselines). The optimizer is RMSprop (alpha 0.99, eps 1e-5), the A3C/A2C reference
optimizer, over the policy and the separate V(s) network together; the paper gives
only the step size 7e-4. The value network is the one TRPO uses (3 x 256 ELU).
Batch size: by default the same M = 1000 episodes per update as TRPO, so the two
learners differ only in the step rule (the paper does not say; a runner may
collect fewer episodes per update).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import torch

from controller.learners.trpo import gae, gaussian_log_prob, value_network
from controller.training.rollout import Batch
from node.policy import GaussianPolicy, state_arrays

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class A2cConfig:
    """Hyper-parameters of the A2C baseline."""

    learning_rate: float = 7e-4
    """Fixed step size of the optimizer (paper 001: 7e-4), per update."""
    optimizer: Literal["rmsprop", "adam"] = "rmsprop"
    """RMSprop (A2C reference, TF1 form) or Adam (torch.optim.Adam)."""
    rmsprop_alpha: float = 0.99
    """RMSprop smoothing constant of the squared-gradient average (dimensionless)."""
    rmsprop_init: float = 1.0
    """Initial RMSprop mean square (TF1: 1; PyTorch: 0), gradient units squared."""
    eps: float = 1e-5
    """RMSprop: added to the mean square under the root (gradient^2 units); Adam: to the
    root (gradient units)."""
    gamma: float = 0.99
    """Discount factor per step (dimensionless)."""
    gae_lambda: float = 1.0
    """GAE lambda; 1 gives the discounted return minus V(s)."""
    value_coef: float = 0.5
    """Weight of the value loss in the joint loss (dimensionless)."""
    entropy_coef: float = 0.0
    """Weight of the entropy bonus (nats^-1 in loss units)."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip before the step; math.inf disables it."""
    value_hidden: tuple[int, ...] = (256, 256, 256)
    """Hidden widths of the value network V(s) (ELU)."""
    episodes_per_update: int = 1000
    """Episodes collected per update (same M as TRPO); used by the runner."""


class A2c:
    """A2C learner (a :class:`protocols.core.Learner`): ``step(batch) -> stats``,
    ``get_variables() -> named arrays``, ``version`` = steps taken."""

    def __init__(self, policy: GaussianPolicy, cfg: A2cConfig, rng: np.random.Generator) -> None:
        self.policy = policy
        self.cfg = cfg
        seed = int(rng.integers(2**31 - 1))
        self.value = value_network(policy.cfg.obs_dim, cfg.value_hidden, seed)
        self.params = [*policy.parameters(), *self.value.parameters()]
        self.mean_square = [torch.full_like(p, cfg.rmsprop_init) for p in self.params]
        self.adam: torch.optim.Adam | None = None
        if cfg.optimizer == "adam":
            self.adam = torch.optim.Adam(self.params, lr=cfg.learning_rate, eps=cfg.eps)
        elif cfg.optimizer != "rmsprop":
            raise ValueError(f"unknown optimizer {cfg.optimizer!r}")
        self.iterations = 0

    @property
    def version(self) -> int:
        """Learning steps taken (the variables' version)."""
        return self.iterations

    def get_variables(self) -> dict[str, Array]:
        """The policy's weights as named numpy arrays (what nodes load)."""
        return state_arrays(self.policy)

    def step(self, batch: Batch) -> dict[str, float]:
        """One gradient step of the fixed step size on the whole batch; returns statistics."""
        cfg = self.cfg
        obs = torch.as_tensor(batch.obs)
        act = torch.as_tensor(batch.actions)
        values = self.value(obs).squeeze(-1)
        adv_np, ret_np = gae(
            batch.rewards, values.detach().numpy(), batch.dones, cfg.gamma, cfg.gae_lambda
        )
        adv, ret = torch.as_tensor(adv_np), torch.as_tensor(ret_np)

        mean, log_std = self.policy(obs)
        logp = gaussian_log_prob(mean, log_std, act)
        entropy = (log_std + 0.5 * math.log(2.0 * math.pi * math.e)).sum(-1).mean()
        policy_loss = -(logp * adv).mean()
        value_loss = ((values - ret) ** 2).mean()
        loss = policy_loss + cfg.value_coef * value_loss - cfg.entropy_coef * entropy

        for p in self.params:
            p.grad = None
        loss.backward()
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm))
        self.apply_gradients()
        self.iterations += 1
        return {
            "iteration": float(self.iterations),
            "episodes": float(batch.episodes),
            "sum_rate_bps_hz": float(batch.sum_rate_bps_hz.mean()),
            "episode_return": float(batch.rewards.sum() / batch.episodes),
            "policy_loss": policy_loss.item(),
            "value_loss": value_loss.item(),
            "entropy": entropy.item(),
            "grad_norm": grad_norm if math.isfinite(grad_norm) else float("nan"),
            "std": self.policy.log_std.exp().mean().item(),
        }

    @torch.no_grad()
    def apply_gradients(self) -> None:
        """One optimizer step with the gradients in ``.grad`` (RMSprop as TF1 does it)."""
        if self.adam is not None:
            self.adam.step()
            return
        cfg = self.cfg
        for p, ms in zip(self.params, self.mean_square, strict=True):
            if p.grad is None:
                continue
            ms.mul_(cfg.rmsprop_alpha).addcmul_(p.grad, p.grad, value=1.0 - cfg.rmsprop_alpha)
            p.sub_(cfg.learning_rate * p.grad / torch.sqrt(ms + cfg.eps))
