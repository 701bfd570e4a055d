"""Double DQN learner: targets and the first Adam step against hand computations on linear
Q networks, target-network timing, epsilon schedules, variable naming and round trips."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from controller.learners.dqn import Dqn, DqnConfig, Transitions, double_dqn_targets

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def linear(weight: list[list[float]], bias: list[float]) -> nn.Linear:
    lin = nn.Linear(len(weight[0]), len(weight))
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(weight))
        lin.bias.copy_(torch.tensor(bias))
    return lin


def plain_q(w: list[list[float]], b: list[float], x: list[float]) -> list[float]:
    return [sum(wi * xi for wi, xi in zip(row, x, strict=True)) + bi
            for row, bi in zip(w, b, strict=True)]


W_ONLINE = [[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]
B_ONLINE = [0.0, 0.1, 0.0]
W_TARGET = [[2.0, -1.0], [-1.0, 3.0], [1.0, 1.0]]
B_TARGET = [0.5, 0.0, -0.2]


def hand_targets(rewards: list[float], next_x: list[list[float]], done: list[float],
                 gamma: float) -> list[float]:
    out = []
    for r, x, d in zip(rewards, next_x, done, strict=True):
        q_online = plain_q(W_ONLINE, B_ONLINE, x)
        best = max(range(3), key=lambda a: (q_online[a], -a))  # first maximum
        out.append(r + gamma * (1.0 - d) * plain_q(W_TARGET, B_TARGET, x)[best])
    return out


def test_double_dqn_targets_match_a_hand_computation() -> None:
    rewards = [1.0, -0.5, 2.0, 0.25]
    next_x = [[1.0, 2.0], [3.0, -1.0], [0.2, 0.1], [-1.0, -2.0]]
    done = [0.0, 0.0, 1.0, 0.0]
    gamma = 0.9
    got = double_dqn_targets(
        linear(W_ONLINE, B_ONLINE), linear(W_TARGET, B_TARGET), torch.tensor(rewards),
        torch.tensor(next_x), torch.tensor(done), gamma,
    )
    # row 0: online argmax is action 1 (2.1), target gives -1 + 6 = 5 -> 1 + 0.9 * 5 = 5.5
    assert got[0].item() == pytest.approx(5.5)
    # a vanilla DQN (max over the target) would give 1 + 0.9 * 5.5 for row 0: not what we do
    assert got[0].item() != pytest.approx(1.0 + 0.9 * 5.5)
    np.testing.assert_allclose(got.numpy(), hand_targets(rewards, next_x, done, gamma),
                               rtol=1e-6)


def linear_learner(**kw: object) -> Dqn:
    """One agent, no hidden layer: Q(x) = W x + b with the online weights above."""
    cfg = DqnConfig(hidden=(), batch_size=4, learning_starts=1, max_grad_norm=math.inf,
                    sharing="per-agent", **kw)  # type: ignore[arg-type]
    agent = Dqn(2, 3, 1, cfg, np.random.default_rng(0))
    agent.set_variables({"agent0.q.0.weight": np.array(W_ONLINE, dtype=np.float32),
                         "agent0.q.0.bias": np.array(B_ONLINE, dtype=np.float32)})
    agent.target[0][0].load_state_dict(linear(W_TARGET, B_TARGET).state_dict())
    return agent


def test_learner_targets_use_online_argmax_and_target_values() -> None:
    agent = linear_learner(gamma=0.8)
    next_x = [[1.0, 2.0], [3.0, -1.0], [0.5, 0.5]]
    batch: dict[str, np.ndarray] = {
        "next_obs": np.array(next_x, dtype=np.float32),
        "reward": np.array([0.0, 1.0, -1.0], dtype=np.float32),
        "terminated": np.array([0.0, 1.0, 0.0], dtype=np.float32),
        "agent": np.zeros(3, dtype=np.int64),
        "fingerprint": np.zeros((3, 2)),
    }
    got = agent.targets(0, batch).numpy()
    np.testing.assert_allclose(got, hand_targets([0.0, 1.0, -1.0], next_x, [0.0, 1.0, 0.0], 0.8),
                               rtol=1e-6)


@pytest.mark.parametrize("loss", ["huber", "mse"])
def test_one_update_matches_hand_loss_and_first_adam_step(loss: str) -> None:
    """One stored transition: every sampled row is it. Q(s, a=2) = 0.5*1 + 0.5*3 = 2,
    s' = (1, 2): online argmax 1, Q_target(s', 1) = 5, y = 1 + 0.5 * 5 = 3.5, error -1.5.
    Only row 2 of W and b get a gradient; Adam's first step is lr * g / (|g| + eps)."""
    lr = 0.01
    agent = linear_learner(gamma=0.5, loss=loss, learning_rate=lr)
    agent.observe(Transitions(
        obs=np.array([[[1.0, 3.0]]]), actions=np.array([[2]]), rewards=np.array([1.0]),
        next_obs=np.array([[[1.0, 2.0]]]), terminated=np.array([0.0]),
    ))
    before = {k: v.copy() for k, v in agent.get_variables().items()}
    stats = agent.step()
    err = 2.0 - 3.5
    hand_loss = err**2 if loss == "mse" else abs(err) - 0.5  # Huber, delta 1: |e| - 1/2
    assert stats["trained"] == 1.0
    assert stats["loss"] == pytest.approx(hand_loss, rel=1e-6)
    assert stats["q_mean"] == pytest.approx(2.0, rel=1e-6)
    grad_q = 2.0 * err if loss == "mse" else max(-1.0, min(1.0, err))  # d loss / d Q
    after = agent.get_variables()
    db = after["agent0.q.0.bias"] - before["agent0.q.0.bias"]
    dw = after["agent0.q.0.weight"] - before["agent0.q.0.weight"]
    np.testing.assert_allclose(db, [0.0, 0.0, -lr * np.sign(grad_q)], atol=1e-7)
    np.testing.assert_allclose(dw[:2], 0.0, atol=0)
    np.testing.assert_allclose(dw[2], -lr * np.sign(grad_q * np.array([1.0, 3.0])), rtol=1e-4)


def filled_learner(cfg: DqnConfig, n_agents: int = 2, obs_dim: int = 3, seed: int = 0) -> Dqn:
    agent = Dqn(obs_dim, 4, n_agents, cfg, np.random.default_rng(seed))
    rng = np.random.default_rng(100 + seed)
    n = 64
    agent.observe(Transitions(
        obs=rng.normal(size=(n, n_agents, obs_dim)), actions=rng.integers(0, 4, (n, n_agents)),
        rewards=rng.normal(size=n), next_obs=rng.normal(size=(n, n_agents, obs_dim)),
        terminated=(rng.random(n) < 0.1).astype(float),
    ))
    return agent


def params(nets: list[nn.Sequential]) -> list[np.ndarray]:
    return [p.detach().numpy().copy() for q in nets for p in q.parameters()]


def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("sharing", ["shared", "per-agent"])
def test_target_network_changes_only_at_its_period(sharing: str) -> None:
    cfg = DqnConfig(hidden=(8,), batch_size=16, learning_starts=10, target_period=3,
                    sharing=sharing)  # type: ignore[arg-type]
    agent = filled_learner(cfg)
    target = params(agent.target)
    assert same(target, params(agent.online))  # starts as a copy
    changed_at = []
    for step in range(1, 11):
        online_before = params(agent.online)
        agent.step()
        assert not same(params(agent.online), online_before)  # the online net learns each step
        now = params(agent.target)
        if not same(now, target):
            changed_at.append(step)
            assert same(now, params(agent.online))  # a hard copy of the online net
        target = now
    assert changed_at == [3, 6, 9]


def test_no_training_before_learning_starts() -> None:
    agent = filled_learner(DqnConfig(hidden=(8,), learning_starts=1000))
    before = params(agent.online)
    stats = agent.step()
    assert stats["trained"] == 0.0 and agent.updates == 0
    assert same(before, params(agent.online))


def test_epsilon_schedules_endpoints_and_monotonicity() -> None:
    lin = Dqn(2, 2, 1, DqnConfig(hidden=(4,), epsilon_steps=100), np.random.default_rng(0))
    exp = Dqn(2, 2, 1, DqnConfig(hidden=(4,), epsilon_steps=100,
                                 epsilon_schedule="exponential"), np.random.default_rng(0))
    for agent in (lin, exp):
        assert agent.epsilon(0) == pytest.approx(1.0)
        assert agent.epsilon(100) == pytest.approx(0.02)
        assert agent.epsilon(10_000) == pytest.approx(0.02)
        values = np.array([agent.epsilon(t) for t in range(0, 150)])
        assert np.all(np.diff(values) <= 0.0)
        assert np.all(np.diff(values[:101]) < 0.0)  # strictly decreasing during the decay
    assert lin.epsilon(50) == pytest.approx(0.51)
    assert exp.epsilon(50) == pytest.approx(math.sqrt(0.02))
    e, eps = lin.fingerprint()
    assert e == 0 and eps == pytest.approx(1.0)


def test_variable_names_shared_vs_per_agent() -> None:
    cfg = DqnConfig(hidden=(5, 4))
    shared = Dqn(3, 6, 2, cfg, np.random.default_rng(0)).get_variables()
    assert sorted(shared) == sorted(f"q.{i}.{p}" for i in (0, 2, 4) for p in ("weight", "bias"))
    assert shared["q.0.weight"].shape == (5, 3 + 2)  # obs + agent one-hot
    assert shared["q.4.weight"].shape == (6, 4)
    per = Dqn(3, 6, 2, DqnConfig(hidden=(5, 4), sharing="per-agent", fingerprint=True),
              np.random.default_rng(0)).get_variables()
    expected = {f"agent{a}.q.{i}.{p}" for a in (0, 1) for i in (0, 2, 4)
                for p in ("weight", "bias")} | {"fingerprint"}
    assert set(per) == expected
    assert per["agent1.q.0.weight"].shape == (5, 3 + 2)  # obs + fingerprint, no one-hot
    assert not np.array_equal(per["agent0.q.0.weight"], per["agent1.q.0.weight"])
    np.testing.assert_array_equal(per["fingerprint"], [0.0, 1.0])


@pytest.mark.parametrize("sharing", ["shared", "per-agent"])
def test_get_set_variables_round_trip_gives_identical_q_values(sharing: str) -> None:
    cfg = DqnConfig(hidden=(16, 8), batch_size=16, learning_starts=10,
                    sharing=sharing, fingerprint=True)  # type: ignore[arg-type]
    trained = filled_learner(cfg, seed=0)
    for _ in range(5):
        trained.step()
    fresh = Dqn(3, 4, 2, cfg, np.random.default_rng(99))
    obs = np.random.default_rng(5).normal(size=(7, 2, 3))
    assert not np.allclose(fresh.q_values(obs), trained.q_values(obs))
    fresh.set_variables(trained.get_variables())
    assert fresh.fingerprint() == trained.fingerprint()
    np.testing.assert_array_equal(fresh.q_values(obs), trained.q_values(obs))
    with pytest.raises(ValueError):
        fresh.set_variables({"q.0.weight": np.zeros((1, 1))})


def test_greedy_actions_are_the_argmax_and_exploration_is_uniform() -> None:
    agent = Dqn(3, 5, 2, DqnConfig(hidden=(8,)), np.random.default_rng(1))
    obs = np.random.default_rng(2).normal(size=(50, 2, 3))
    greedy = agent.select_action(obs, 0.0, np.random.default_rng(3))
    q = agent.q_values(obs)
    for i in range(50):
        for a in range(2):
            row = list(q[i, a])
            assert greedy[i, a] == row.index(max(row))
    random = agent.select_action(np.repeat(obs[:1], 4000, axis=0), 1.0, np.random.default_rng(4))
    counts = np.bincount(random.ravel(), minlength=5)
    assert counts.min() > 0.9 * random.size / 5 and counts.max() < 1.1 * random.size / 5


@pytest.mark.parametrize("sharing", ["shared", "per-agent"])
def test_each_agent_learns_its_own_reward(sharing: str) -> None:
    """gamma = 0, agent 0 always gets +1 and agent 1 gets -1 on identical observations:
    only the one-hot (shared) or the routing to its own network (per-agent) tells them apart."""
    cfg = DqnConfig(hidden=(16,), gamma=0.0, learning_rate=0.01, batch_size=64,
                    learning_starts=1, sharing=sharing)  # type: ignore[arg-type]
    agent = Dqn(2, 3, 2, cfg, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    n = 256
    obs = np.repeat(rng.normal(size=(n, 1, 2)), 2, axis=1)
    agent.observe(Transitions(
        obs=obs, actions=rng.integers(0, 3, (n, 2)), rewards=np.tile([1.0, -1.0], (n, 1)),
        next_obs=obs, terminated=np.zeros(n),
    ))
    for _ in range(300):
        agent.step()
    q = agent.q_values(obs[:20])
    # without the one-hot / the routing both agents would settle near the mean, 0
    assert q[:, 0].mean() == pytest.approx(1.0, abs=0.05)
    assert q[:, 1].mean() == pytest.approx(-1.0, abs=0.05)
    np.testing.assert_allclose(q[:, 0], 1.0, atol=0.3)
    np.testing.assert_allclose(q[:, 1], -1.0, atol=0.3)


def test_same_seeds_give_identical_learning() -> None:
    cfg = DqnConfig(hidden=(16,), batch_size=16, learning_starts=10)
    a, b = filled_learner(cfg, seed=3), filled_learner(cfg, seed=3)
    for _ in range(4):
        sa, sb = a.step(), b.step()
        assert sa == sb
    va, vb = a.get_variables(), b.get_variables()
    assert all(np.array_equal(va[k], vb[k]) for k in va)
