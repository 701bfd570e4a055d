"""Discrete-power multi-cell DQN: action decoding, power levels, observations, baselines
checked with plain loops, and a short seeded training run that beats random power levels."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest

from channel_server.air import Air
from channel_server.config import load_scenario
from controller.learners.dqn import DqnConfig
from controller.training.dqn_power import (
    DqnPowerConfig,
    action_powers,
    baselines,
    evaluate,
    n_actions,
    observations,
    power_levels,
    train,
)

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "3cell-k2.toml"
RADIO = load_scenario(SCENARIO).radio


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def plain_sum_rate(gains: np.ndarray, powers: np.ndarray, noise_w: float) -> float:
    """sum_{c,k} log2(1 + p_ck g[c,k,c] / (sum_{(b,j) != (c,k)} p_bj g[b,k,c] + N))."""
    n_bs, n_users = powers.shape
    total = 0.0
    for c in range(n_bs):
        for k in range(n_users):
            interference = sum(powers[b, j] * gains[b, k, c] for b in range(n_bs)
                               for j in range(n_users) if (b, j) != (c, k))
            total += math.log2(1.0 + powers[c, k] * gains[c, k, c] / (interference + noise_w))
    return total


def test_power_levels_linear_and_db() -> None:
    pmax = RADIO.pmax_w  # 43 dBm = 19.95 W
    lin = power_levels(RADIO, DqnPowerConfig())
    assert lin.shape == (10,) and lin[0] == 0.0
    assert lin[-1] == pytest.approx(pmax)
    np.testing.assert_allclose(np.diff(lin), pmax / 9)
    db = power_levels(RADIO, DqnPowerConfig(level_spacing="db", db_range=27.0))
    assert db[0] == 0.0
    dbm = 10 * np.log10(db[1:]) + 30
    np.testing.assert_allclose(dbm, [16, 19.375, 22.75, 26.125, 29.5, 32.875, 36.25, 39.625, 43])


def test_joint_action_index_decodes_to_per_user_levels() -> None:
    cfg = DqnPowerConfig()
    assert n_actions(RADIO, cfg) == 100
    levels = power_levels(RADIO, cfg)
    p = action_powers(np.array([[37, 0, 99]]), RADIO, cfg)
    assert p.shape == (1, 3, 2)
    # 37 = 7 + 3 * 10: user 0 at level 7, user 1 at level 3
    np.testing.assert_array_equal(p[0], [[levels[7], levels[3]], [0.0, 0.0],
                                         [levels[9], levels[9]]])


def test_observations_are_each_bs_own_slice_own_cell_first() -> None:
    gains = Air(RADIO, seed=3, episodes=4).reset()
    obs = observations(gains, RADIO)
    assert obs.shape == (4, 3, 6)
    for e in range(4):
        for b in range(3):
            for k in range(2):
                for j in range(3):  # j-th cell after rolling: cell (b + j) mod 3
                    g = gains[e, b, k, (b + j) % 3]
                    db = 10 * math.log10(g * RADIO.pmax_w / RADIO.noise_w)
                    want = min(max((db - 20.0) / 20.0, -3.0), 3.0)
                    assert obs[e, b, k * 3 + j] == pytest.approx(want)


def test_baselines_match_a_plain_loop() -> None:
    n, seed = 40, 11
    ref = baselines(RADIO, n, seed)
    gains = Air(RADIO, seed, episodes=n).reset()
    full = np.full((3, 2), RADIO.pmax_w)
    want = np.mean([plain_sum_rate(gains[i], full, RADIO.noise_w) for i in range(n)])
    assert ref["max_power"] == pytest.approx(want, rel=1e-9)
    assert 0.0 < ref["random_levels"] < 3.0 * ref["max_power"]


def test_short_dqn_beats_random_power_levels() -> None:
    cfg = DqnPowerConfig(episodes=16, dqn=DqnConfig(
        hidden=(128, 64), learning_rate=1e-3, gamma=0.0, batch_size=128, learning_starts=500,
        target_period=100, epsilon_steps=400,
    ))
    start = time.process_time()
    variables, curve = train(RADIO, 700, seed=1, config=cfg)
    assert time.process_time() - start < 30.0
    assert curve["epsilon"][0] == 1.0 and curve["epsilon"][-1] == pytest.approx(0.02)
    n, seed = 3000, 2024
    dqn_rate = evaluate(RADIO, variables, n, seed, cfg)
    # random levels on the same realizations, drawn and scored here with a plain loop
    gains = Air(RADIO, seed, episodes=n).reset()
    levels = power_levels(RADIO, cfg)
    draw = np.random.default_rng(5).integers(0, 10, size=(n, 3, 2))
    random_rate = np.mean([plain_sum_rate(gains[i], levels[draw[i]], RADIO.noise_w)
                           for i in range(n)])
    full_rate = np.mean([plain_sum_rate(gains[i], np.full((3, 2), RADIO.pmax_w), RADIO.noise_w)
                         for i in range(n)])
    print(f"short DQN {dqn_rate:.3f}, random levels {random_rate:.3f}, max power {full_rate:.3f}")
    assert dqn_rate > 1.3 * random_rate
    assert dqn_rate > full_rate
    # training improved the behaviour policy: late slots beat the epsilon = 1 start
    assert curve["sum_rate_bps_hz"][-100:].mean() > 1.3 * curve["sum_rate_bps_hz"][:100].mean()
