"""Policy networks shared by node processes, the local runner and the learners.

The paper-001 policy: an MLP (3 x 256, ELU) giving a mean and a log-std per user;
the action is a power fraction a in [0, 1] (p = a * Pmax), sampled from
N(mean, std^2) and clipped, or the mean itself for deterministic execution.
Weights travel and are stored as named float arrays (.npz, never pickled).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from node.policy_spec import ActionMode, PolicyConfig, check_fits, initial_arrays, power_fraction

__all__ = ["ActionMode", "GaussianPolicy", "PolicyConfig", "load_arrays", "power_fraction",
           "mlp", "save_weights", "seeded_policy", "state_arrays"]

def mlp(sizes: list[int], out_gain: float = 1.0) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        lin = nn.Linear(sizes[i], sizes[i + 1])
        last = i == len(sizes) - 2
        nn.init.orthogonal_(lin.weight, gain=out_gain if last else np.sqrt(2.0))
        nn.init.zeros_(lin.bias)
        layers.append(lin)
        if not last:
            layers.append(nn.ELU())
    return nn.Sequential(*layers)


class GaussianPolicy(nn.Module):
    """Diagonal Gaussian policy over power fractions, float64 for exact parity."""

    def __init__(self, cfg: PolicyConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.mean_net = mlp([cfg.obs_dim, *cfg.hidden, cfg.act_dim], out_gain=0.01)
        with torch.no_grad():
            self.mean_net[-1].bias.fill_(cfg.init_mean)  # type: ignore[operator]
        self.log_std = nn.Parameter(torch.full((cfg.act_dim,), cfg.init_log_std))
        self.double()

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.mean_net(obs)
        return mean, self.log_std.expand_as(mean)

    def distribution(self, obs: torch.Tensor) -> torch.distributions.Normal:
        mean, log_std = self(obs)
        return torch.distributions.Normal(mean, log_std.exp())

    @torch.no_grad()
    def act(
        self, obs: np.ndarray, mode: ActionMode = "mean", noise: np.ndarray | None = None
    ) -> np.ndarray:
        """Power fractions in [0, 1] for a batch of observations (..., obs_dim).

        ``noise`` is standard normal of shape (..., act_dim), drawn by the caller from
        its own seeded generator, so every runner draws the same numbers.
        Returns the raw Gaussian action (what a learner needs for log-probabilities);
        :func:`power_fraction` turns it into a feasible power fraction.
        """
        mean, log_std = self(torch.as_tensor(obs, dtype=torch.float64))
        raw = mean
        if mode == "sample":
            if noise is None:
                raise ValueError("mode='sample' needs a noise array")
            raw = mean + log_std.exp() * torch.as_tensor(noise, dtype=torch.float64)
        out: np.ndarray = raw.numpy()
        return out


def seeded_policy(cfg: PolicyConfig, seed: int) -> GaussianPolicy:
    """The same untrained weights in every process for the same seed: those of
    :func:`node.policy_spec.initial_arrays` (drawn in numpy; torch's own generator is left
    as it was)."""
    with torch.random.fork_rng(devices=[]):
        policy = GaussianPolicy(cfg)
    load_arrays(policy, initial_arrays(cfg, seed))
    return policy


def state_arrays(module: nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def load_arrays(module: nn.Module, arrays: dict[str, np.ndarray]) -> None:
    check_fits(arrays, {k: tuple(v.shape) for k, v in module.state_dict().items()})
    module.load_state_dict({k: torch.as_tensor(v) for k, v in arrays.items()})


def save_weights(path: str | Path, module: nn.Module, **meta: np.ndarray) -> None:
    np.savez(path, **state_arrays(module),  # type: ignore[arg-type]
             **{f"meta.{k}": v for k, v in meta.items()})  # type: ignore[arg-type]
