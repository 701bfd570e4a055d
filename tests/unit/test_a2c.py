"""A2C: one update on a fixed batch moves the parameters as the optimizer's fixed step
size says, checked against gradients written out by hand for a Gaussian policy."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from channel_server.air import Air
from channel_server.config import load_scenario
from controller.learners.a2c import A2c, A2cConfig
from controller.training.rollout import Batch, play
from node.observation import central_dims
from node.policy import GaussianPolicy, PolicyConfig, seeded_policy
from protocols.seeding import rng_for

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "3cell-k2.toml"
RADIO = load_scenario(SCENARIO).radio


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def central_policy(seed: int = 2) -> GaussianPolicy:
    return seeded_policy(PolicyConfig(*central_dims(RADIO)), seed)


def output_bias(policy: GaussianPolicy) -> torch.Tensor:
    last = policy.mean_net[-1]
    assert isinstance(last, torch.nn.Linear)
    return last.bias


def fixed_batch() -> Batch:
    """128 single-slot centralized episodes, sampled actions, seeded."""
    gains = Air(RADIO, seed=5, episodes=128).reset()
    return play(central_policy(), "centralized", gains, RADIO, rng_for(2, "noise"), "sample")


def learner(cfg: A2cConfig) -> A2c:
    return A2c(central_policy(), cfg, rng_for(2, "a2c"))


def hand_gradients(batch: Batch, learner: A2c, cfg: A2cConfig) -> tuple[np.ndarray, np.ndarray]:
    """d loss / d log_std and d loss / d (mean-head output bias), single-step episodes:
    A = r - V(s); d log N / d mu = (a - mu) / s^2; d log N / d log s = (a - mu)^2 / s^2 - 1;
    the entropy bonus adds -entropy_coef to each log-std component."""
    obs = torch.as_tensor(batch.obs)
    with torch.no_grad():
        v = learner.value(obs).squeeze(-1).numpy()
        mean, log_std = learner.policy(obs)
    adv = batch.rewards - v
    mu, s = mean.detach().numpy(), np.exp(log_std.detach().numpy())
    z = (batch.actions - mu) / s
    g_bias = -(adv[:, None] * (batch.actions - mu) / s**2).mean(0)
    g_log_std = -(adv[:, None] * (z**2 - 1.0)).mean(0) - cfg.entropy_coef
    return g_log_std, g_bias


@pytest.mark.parametrize("init", [1.0, 0.0])
def test_rmsprop_update_moves_parameters_by_the_fixed_step_size(init: float) -> None:
    batch = fixed_batch()
    assert np.all(batch.dones)
    cfg = A2cConfig(
        max_grad_norm=math.inf, entropy_coef=0.01, value_hidden=(16,), rmsprop_init=init
    )
    agent = learner(cfg)
    g_log_std, g_bias = hand_gradients(batch, agent, cfg)
    before = copy.deepcopy(agent.policy)
    value_before = copy.deepcopy(agent.value)
    agent.step(batch)
    d_log_std = (agent.policy.log_std - before.log_std).detach().numpy()
    d_bias = (output_bias(agent.policy) - output_bias(before)).detach().numpy()
    # TF1 RMSprop's first step: ms = alpha init + (1 - alpha) g^2, delta = -lr g / sqrt(ms + eps)
    a, lr = cfg.rmsprop_alpha, cfg.learning_rate

    def first_step(g: np.ndarray) -> np.ndarray:
        out: np.ndarray = -lr * g / np.sqrt(a * init + (1.0 - a) * g**2 + cfg.eps)
        return out

    np.testing.assert_allclose(d_log_std, first_step(g_log_std), rtol=1e-6)
    np.testing.assert_allclose(d_bias, first_step(g_bias), rtol=1e-6)
    # no parameter of either network moves by more than lr / sqrt(1 - alpha); with a zero
    # initial mean square the step is sign-like and the largest moves reach that bound
    bound = lr / math.sqrt(1.0 - a)
    moves = []
    for new, old in [(agent.policy, before), (agent.value, value_before)]:
        for p1, p0 in zip(new.parameters(), old.parameters(), strict=True):
            moves.append((p1 - p0).detach().abs().reshape(-1))
    largest = float(torch.cat(moves).max())
    assert largest <= bound
    if init == 0.0:
        assert largest == pytest.approx(bound, rel=1e-2)


def test_adam_update_moves_parameters_by_the_step_size() -> None:
    batch = fixed_batch()
    cfg = A2cConfig(optimizer="adam", max_grad_norm=math.inf, entropy_coef=0.01,
                    value_hidden=(16,))
    agent = learner(cfg)
    g_log_std, _ = hand_gradients(batch, agent, cfg)
    before = agent.policy.log_std.detach().clone().numpy()
    agent.step(batch)
    d = agent.policy.log_std.detach().numpy() - before
    # Adam's bias-corrected first step: delta = -lr g / (|g| + eps)
    np.testing.assert_allclose(
        d, -cfg.learning_rate * g_log_std / (np.abs(g_log_std) + cfg.eps), rtol=1e-6
    )


def test_gradient_clipping_shrinks_the_update() -> None:
    batch = fixed_batch()
    cfg = A2cConfig(max_grad_norm=1e-6, value_hidden=(16,))
    agent = learner(cfg)
    stats = agent.step(batch)
    assert stats["grad_norm"] > 1e-3  # the raw gradient is far above the clip
    # clipped to global norm 1e-6, each |g_i| <= 1e-6: RMSprop's first step
    # lr |g| / sqrt(0.99 + 0.01 g^2 + eps) is then at most lr * 1e-6 / sqrt(0.99)
    p0 = central_policy()
    delta = max((a - b).detach().abs().max().item()
                for a, b in zip(agent.policy.parameters(), p0.parameters(), strict=True))
    assert 0.0 < delta <= cfg.learning_rate * 1e-6 / math.sqrt(0.99) * (1 + 1e-9)
