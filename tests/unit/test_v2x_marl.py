"""Local multi-agent DQN for V2X (controller/v2x_marl.py)."""

from __future__ import annotations

import numpy as np
import pytest

from channel_server.v2x import load_v2x_scenario
from controller.learners.dqn import DqnConfig
from controller.training.v2x_env import V2xEnv, random_policy_metrics
from controller.training.v2x_marl import (
    MarlConfig,
    evaluate_marl,
    scheme_scenario,
    train_marl,
    turn_actions,
)

SCENARIO = load_v2x_scenario("scenarios/v2x-manhattan.toml")
SMALL = MarlConfig(
    dqn=DqnConfig(hidden=(16,), batch_size=32, replay_capacity=2000, learning_starts=100,
                  target_period=10, sharing="per-agent"),
    n_envs=2, train_every=10,
)


def test_same_seed_gives_identical_variables() -> None:
    a, curve_a = train_marl(SCENARIO, "marl-dqn", 2, 5, SMALL)
    b, curve_b = train_marl(SCENARIO, "marl-dqn", 2, 5, SMALL)
    c, _ = train_marl(SCENARIO, "marl-dqn", 2, 6, SMALL)
    assert set(a) == set(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    assert curve_a == curve_b
    assert len(curve_a) == 2
    # the networks did train (learning_starts reached) and differ across seeds
    assert np.isfinite(curve_a[-1]["loss"])
    assert any(not np.array_equal(a[n], c[n]) for n in a if n.endswith("weight"))


def test_turn_actions_changes_one_agent_per_step_on_a_trajectory() -> None:
    rng = np.random.default_rng(0)
    held = rng.integers(0, 16, (3, 4))
    for t in range(12):
        proposed = rng.integers(0, 16, (3, 4))
        new = turn_actions(held, proposed, t)
        changed = new != held
        # at most one agent per episode changes, and only agent t mod 4 may
        assert (changed.sum(axis=1) <= 1).all()
        assert not np.delete(changed, t % 4, axis=1).any()
        np.testing.assert_array_equal(new[:, t % 4], proposed[:, t % 4])
        held = new


def test_turn_dqn_evaluation_trajectory_changes_at_most_one_agent(
        monkeypatch: pytest.MonkeyPatch) -> None:
    variables, _ = train_marl(SCENARIO, "turn-dqn", 1, 3, SMALL)
    played: list[np.ndarray] = []
    original = V2xEnv.step_arrays

    def spy(self: V2xEnv, rb: np.ndarray, level: np.ndarray) -> object:
        played.append(np.asarray(rb) + 4 * np.asarray(level))
        return original(self, rb, level)

    monkeypatch.setattr(V2xEnv, "step_arrays", spy)
    evaluate_marl(SCENARIO, "turn-dqn", variables, 5, 11)
    assert len(played) == SCENARIO.n_steps
    steps = np.stack(played)  # (T, E, K)
    changes = (steps[1:] != steps[:-1]).sum(axis=-1)
    assert changes.max() <= 1
    # and the change, if any, is the round-robin agent's
    for t in range(1, len(steps)):
        diff = steps[t] != steps[t - 1]
        assert not np.delete(diff, t % 4, axis=1).any()


def test_random_scheme_matches_random_policy_metrics() -> None:
    got = evaluate_marl(SCENARIO, "random", {}, 20, 42)
    ref = random_policy_metrics(SCENARIO, 42, 20)
    assert got["delivery_rate"] == pytest.approx(ref["delivery_rate"], abs=1e-12)
    assert got["sum_v2i_mbps"] == pytest.approx(ref["sum_v2i_rate_mbps"], rel=1e-12)
    assert 0.0 < got["mean_delivery_ms"] <= 1e3 * SCENARIO.traffic.deadline_s


def test_fingerprint_adds_two_inputs() -> None:
    m = SCENARIO.radio.n_rb
    with_fp = V2xEnv(scheme_scenario(SCENARIO, "marl-dqn")).observation_dim
    without = V2xEnv(scheme_scenario(SCENARIO, "marl-dqn-nofp")).observation_dim
    assert with_fp - without == 2
    assert without == 4 * m + 2
    a, _ = train_marl(SCENARIO, "marl-dqn", 1, 0, SMALL)
    b, _ = train_marl(SCENARIO, "marl-dqn-nofp", 1, 0, SMALL)
    assert a["agent0.q.0.weight"].shape[1] - b["agent0.q.0.weight"].shape[1] == 2
    assert "env_fingerprint" in a and "env_fingerprint" not in b


def test_single_link_bound_dominates_every_scheme_on_the_same_drops() -> None:
    import dataclasses

    from controller.training.v2x_marl import single_link_bound

    seed = 1_000_003
    bound = single_link_bound(SCENARIO, 30, seed)
    random = evaluate_marl(SCENARIO, "random", {}, 30, seed)["delivery_rate"]
    assert random <= bound <= 1.0
    tiny = dataclasses.replace(SCENARIO, traffic=dataclasses.replace(SCENARIO.traffic,
                                                                     payload_bytes=1))
    assert single_link_bound(tiny, 10, seed) == 1.0  # one byte always gets through
