"""`rrmbed d2d coupling`: every pair's reward against the others' actions, computed at once,
equals the physics module's SINR and reward evaluated one joint action at a time; the
variance split recovers known parts; a channel without pair-to-pair coupling has none;
the command writes its table."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from channel_server.d2d import D2dWorld, d2d_reward, sinr_and_rates
from controller.evaluation.d2d_coupling import (
    CouplingConfig,
    coupling,
    rewards_against,
    split,
)
from controller.evaluation.d2d_run import scenario_with_pairs
from tests.helpers import ROOT, read_csv, rrmbed

STRONG = {"radio.n_pairs": 5, "radio.n_rb": 3, "radio.d2d_power_levels_dbm": [13.0, 23.0],
          "radio.bs_power_dbm": 20.0, "channel.d2d_loss_at_1m_db": 28.0,
          "drop.cell_radius_m": 200.0}
"""A small, crowded cell with a weak BS: the pairs interfere with each other and push
CUEs below their threshold."""


def test_rewards_against_the_others_are_the_physics_one_joint_action_at_a_time() -> None:
    s = scenario_with_pairs(ROOT / "scenarios", 5, STRONG).scenario
    g = D2dWorld(s, 3, seed=4).gains()
    e_n, d_n, n_n, a_n = 3, 4, s.radio.n_pairs, s.radio.n_actions
    others = np.random.default_rng(0).integers(0, a_n, size=(e_n, d_n, n_n))
    fast = rewards_against(s, g, others)
    assert fast.shape == (e_n, d_n, n_n, a_n)
    slow = np.empty_like(fast)
    for d in range(d_n):
        for i in range(n_n):
            for a in range(a_n):
                joint = others[:, d].copy()
                joint[:, i] = a
                rb, level = joint % s.radio.n_rb, joint // s.radio.n_rb
                power = s.radio.d2d_power_levels_w[level]
                r = d2d_reward(s.qos, sinr_and_rates(s.radio, g, rb, power), rb,
                               np.ones_like(rb, dtype=bool))
                slow[:, d, i, a] = r[:, i]
    np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=0)
    # the case exercises both branches of the reward and a real dependence on the others
    assert (slow == s.qos.negative_reward).any() and (slow > 0).any()
    assert slow.std(axis=1).max() > 0.1


def test_split_recovers_known_parts() -> None:
    rng = np.random.default_rng(1)
    e_n, d_n, n_n, a_n = 40, 200, 3, 10
    means = rng.normal(0.0, 2.0, size=(e_n, 1, n_n, a_n))  # what the own action decides
    sigma = 0.5  # what the others' actions decide
    r = means + rng.normal(0.0, sigma, size=(e_n, d_n, n_n, a_n))
    own, others = split(r)
    assert others == pytest.approx(sigma ** 2, rel=0.02)
    assert own == pytest.approx(float(means.var(axis=-1).mean()), rel=0.02)


def test_no_pair_to_pair_coupling_means_no_share() -> None:
    s = scenario_with_pairs(ROOT / "scenarios", 5, STRONG).scenario
    g = D2dWorld(s, 2, seed=2).gains()
    n = s.radio.n_pairs
    alone = dataclasses.replace(g, tc=np.zeros_like(g.tc),
                                tr=g.tr * np.eye(n)[None, :, :, None])
    others = np.random.default_rng(3).integers(0, s.radio.n_actions, size=(2, 8, n))
    own, others_var = split(rewards_against(s, alone, others))
    assert others_var < 1e-20 and own > 0.1  # 0 up to the rounding of a mean
    assert split(rewards_against(s, g, others))[1] > 0.01


def test_coupling_grows_with_the_pairs_and_is_seeded() -> None:
    cfg = CouplingConfig(drops=8, slots=3, draws=6, seed=5)
    few, many = (coupling(scenario_with_pairs(ROOT / "scenarios", n, STRONG).scenario, cfg)
                 for n in (3, 12))
    assert 0.0 < few.others_share < many.others_share < 1.0
    assert 0.0 < few.d2d_interference_share < many.d2d_interference_share < 1.0
    again = coupling(scenario_with_pairs(ROOT / "scenarios", 3, STRONG).scenario, cfg)
    assert again == few
    with pytest.raises(ValueError, match="draws"):
        CouplingConfig(draws=1)


def test_the_command_writes_its_table(tmp_path) -> None:
    out = tmp_path / "coupling"
    r = rrmbed("d2d", "coupling", "--ns", "4,8", "--drops", "3", "--slots", "2", "--draws",
               "4", "--set", "radio.bs_power_dbm=36", "--out", str(out))
    assert r.returncode == 0, r.stderr
    rows = read_csv(out / "coupling.csv")
    assert [int(x["n_pairs"]) for x in rows] == [4, 8]
    data = json.loads((out / "coupling.json").read_text())
    assert data["config"]["draws"] == 4 and len(data["rows"]) == 2
    for x in rows:
        share = float(x["others_variance"]) / (float(x["own_variance"])
                                               + float(x["others_variance"]))
        assert float(x["others_share"]) == pytest.approx(share, rel=1e-12)
    assert "others' share" in r.stderr  # the summary table (the console writes to stderr)
    bad = rrmbed("d2d", "coupling", "--ns", "4", "--set", "radio.no_such=1", "--out",
                 str(tmp_path / "bad"))
    assert bad.returncode != 0 and "no_such" in bad.stderr
