"""D2D underlay physics of paper 002 (pure): Table II values, SINRs (1) and (2), outage,
the reward rule, the drop, the fading's time correlation, the scenario files and the pair
observation. Numbers are checked against arithmetic written out here, not the module's."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.special import j0

from channel_server.config import ScenarioError
from channel_server.d2d import (
    D2dScenario,
    D2dWorld,
    Gains,
    cellular_pathloss_db,
    cue_outage,
    d2d_outage,
    d2d_pathloss_db,
    d2d_reward,
    free_space_loss_1m_db,
    load_d2d_scenario,
    sinr_and_rates,
)
from channel_server.d2d_air import D2dAir
from channel_server.kinds import resolve
from controller.evaluation.d2d_run import rb_switch_rate
from node.d2d_observation import decode_action, observation_dim, observe
from tests.helpers import SCENARIOS

BASE = D2dScenario(name="t")


def with_(s: D2dScenario, **sections: dict[str, object]) -> D2dScenario:
    return dataclasses.replace(s, **{k: dataclasses.replace(getattr(s, k), **v)
                                     for k, v in sections.items()})


# --------------------------------------------------------------------------- Table II


def test_table_ii_defaults_and_derived_values() -> None:
    r, c, d, q = BASE.radio, BASE.channel, BASE.drop, BASE.qos
    assert (r.n_rb, r.n_cue, r.rb_bandwidth_hz, r.carrier_hz) == (10, 10, 180e3, 2e9)
    assert (r.bs_power_dbm, r.d2d_power_levels_dbm) == (46.0, (13.0,))
    assert (d.cell_radius_m, d.max_pair_distance_m) == (500.0, 30.0)
    assert (q.cue_sinr_min_db, q.negative_reward) == (0.0, -1.0)
    # -174 dBm/Hz + 10 log10(180 kHz) + 8 dB = -113.447 dBm
    assert r.noise_dbm == pytest.approx(-174 + 52.5527 + 8, abs=1e-3)
    assert r.noise_w == pytest.approx(10 ** ((-113.4473 - 30) / 10), rel=1e-4)
    assert r.bs_power_w == pytest.approx(39.81, rel=1e-3)
    assert r.d2d_power_levels_w[0] == pytest.approx(0.01995, rel=1e-3)
    # free space at 1 m and 2 GHz: 20 log10(4 pi 2e9 / c) = 38.47 dB
    assert free_space_loss_1m_db(2e9) == pytest.approx(c.d2d_loss_at_1m_db, abs=0.01)


def test_pathloss_formulas() -> None:
    c = BASE.channel
    assert cellular_pathloss_db(1000.0, c) == pytest.approx(128.1)
    assert cellular_pathloss_db(100.0, c) == pytest.approx(128.1 - 37.6)
    assert d2d_pathloss_db(10.0, c) == pytest.approx(38.47 + 40.0)
    assert d2d_pathloss_db(30.0, c) == pytest.approx(38.47 + 40.0 * math.log10(30.0))
    assert d2d_pathloss_db(0.2, c) == d2d_pathloss_db(1.0, c)  # raised to min_distance_m


# --------------------------------------------------------------------------- SINR, reward


def hand_case() -> tuple[D2dScenario, Gains, np.ndarray, np.ndarray]:
    """K = M = 2 RBs, N = 3 pairs; pairs 0 and 1 on RB 0, pair 2 on RB 1; Pb = 1 W,
    Pd = 0.1 W."""
    s = with_(BASE, radio={"n_rb": 2, "n_pairs": 3, "bs_power_dbm": 30.0,
                           "d2d_power_levels_dbm": (20.0,)})
    bc = np.array([[1e-12, 1e-9]])
    # tr[e, i, n, k]: transmitter i -> receiver n on RB k
    tc = np.array([[[1e-9, 2e-13], [1e-9, 3e-13], [5e-14, 1e-12]]])  # [n, m]
    br = np.array([[[1e-13, 2e-13], [3e-13, 4e-13], [5e-13, 6e-13]]])  # [n, k]
    tr = np.zeros((1, 3, 3, 2))
    tr[0, :, :, 0] = [[1e-8, 2e-10, 3e-10], [4e-10, 5e-9, 6e-10], [7e-11, 8e-11, 9e-11]]
    tr[0, :, :, 1] = [[2e-8, 1e-10, 3e-11], [4e-11, 6e-9, 5e-11], [7e-10, 8e-10, 3e-9]]
    return s, Gains(bc=bc, tc=tc, br=br, tr=tr), np.array([[0, 0, 1]]), np.full((1, 3), 0.1)


def test_sinr_rates_outage_and_reward_by_hand() -> None:
    s, g, rb, p = hand_case()
    noise = 10 ** ((-174 + 10 * math.log10(180e3) + 8 - 30) / 10)
    out = sinr_and_rates(s.radio, g, rb, p)
    # (1): CUE 0 hears pairs 0 and 1, CUE 1 hears pair 2
    cue0 = 1.0 * 1e-12 / (0.1 * 1e-9 + 0.1 * 1e-9 + noise)
    cue1 = 1.0 * 1e-9 / (0.1 * 1e-12 + noise)
    assert out.cue_sinr[0] == pytest.approx([cue0, cue1], rel=1e-12)
    # (2): pair 0 on RB 0 hears the BS and pair 1; pair 2 on RB 1 hears the BS alone
    d0 = 0.1 * 1e-8 / (1.0 * 1e-13 + 0.1 * 4e-10 + noise)
    d1 = 0.1 * 5e-9 / (1.0 * 3e-13 + 0.1 * 2e-10 + noise)
    d2 = 0.1 * 3e-9 / (1.0 * 6e-13 + noise)
    assert out.d2d_sinr[0] == pytest.approx([d0, d1, d2], rel=1e-12)
    assert out.d2d_rate_bps[0] == pytest.approx(180e3 * np.log2(1 + np.array([d0, d1, d2])))
    assert out.cue_rate_bps[0] == pytest.approx(180e3 * np.log2(1 + np.array([cue0, cue1])))
    # what receiver 0 measures on RB 1 (not its own): the BS, pair 2 and the noise
    assert out.interference_w[0, 0, 1] == pytest.approx(1.0 * 2e-13 + 0.1 * 7e-10 + noise)
    # outage: CUE 0 (SINR 0.005) misses 0 dB, CUE 1 meets it
    assert cue0 < 1.0 < cue1
    assert cue_outage(s.qos, out.cue_sinr).tolist() == [[True, False]]
    on = np.ones((1, 3), dtype=bool)
    assert d2d_outage(s.qos, out.d2d_sinr, on).tolist() == [[d0 < 1, d1 < 1, d2 < 1]]
    # reward: pairs on RB 0 get r_neg (its CUE is in outage), pair 2 log2(1 + SINR)
    r = d2d_reward(s.qos, out, rb, on)
    assert r.tolist() == [[-1.0, -1.0, pytest.approx(math.log2(1 + d2))]]


def test_reward_when_every_cue_meets_its_threshold_and_for_a_silent_pair() -> None:
    s, g, rb, p = hand_case()
    g = dataclasses.replace(g, bc=np.array([[1e-6, 1e-9]]))  # CUE 0 now strong
    silent = np.array([[False, True, False]])
    p = np.where(silent, 0.0, p)
    out = sinr_and_rates(s.radio, g, rb, p)
    assert not cue_outage(s.qos, out.cue_sinr).any()
    r = d2d_reward(s.qos, out, rb, ~silent)
    assert r[0, 1] == 0.0  # silent
    assert r[0, 0] == pytest.approx(math.log2(1 + out.d2d_sinr[0, 0]))
    # with pair 1 silent, pair 0 hears only the BS
    noise = s.radio.noise_w
    assert out.d2d_sinr[0, 0] == pytest.approx(0.1 * 1e-8 / (1e-13 + noise))
    # a stricter CUE threshold flips pair 2's reward to r_neg
    strict = with_(s, qos={"cue_sinr_min_db": 10 * math.log10(out.cue_sinr[0, 1]) + 0.1})
    assert d2d_reward(strict.qos, out, rb, ~silent)[0, 2] == -1.0


# --------------------------------------------------------------------------- drop, fading


def test_the_drop_respects_the_cell_and_the_pair_distances() -> None:
    w = D2dWorld(with_(BASE, radio={"n_pairs": 50}), 20, seed=4)
    d = w.drop
    for xy in (d.cue_xy, d.tx_xy, d.rx_xy):
        r = np.linalg.norm(xy, axis=-1)
        assert r.max() <= 500.0 and r.min() >= 10.0
    pair = np.linalg.norm(d.tx_xy - d.rx_xy, axis=-1)
    assert pair.min() >= 2.0 - 1e-9 and pair.max() <= 30.0 + 1e-9
    assert pair.max() > 25.0  # the annulus is used, not just its inner edge
    again = D2dWorld(with_(BASE, radio={"n_pairs": 50}), 20, seed=4)
    assert np.array_equal(again.drop.rx_xy, d.rx_xy)


def test_gains_are_pathloss_times_rayleigh_power() -> None:
    w = D2dWorld(BASE, 1, seed=1)
    g = w.gains()
    d = np.linalg.norm(w.drop.tx_xy[0, 3] - w.drop.rx_xy[0, 3])
    pl = 38.47 + 40 * math.log10(max(d, 1.0))
    h2 = np.abs(w.fading["tr"].state[0, 3, 3]) ** 2
    assert g.own[0, 3] == pytest.approx(10 ** (-pl / 10) * h2, rel=1e-12)
    dc = np.linalg.norm(w.drop.cue_xy[0, 2])
    h2c = np.abs(w.fading["bc"].state[0, 2]) ** 2
    assert g.bc[0, 2] == pytest.approx(10 ** (-(128.1 + 37.6 * math.log10(dc / 1000)) / 10)
                                       * h2c, rel=1e-12)


def test_fading_autocorrelation_matches_the_configured_jakes_value() -> None:
    s = with_(BASE, channel={"doppler_hz": 100.0})
    rho = j0(2 * math.pi * 100.0 * 1e-3)  # 0.904
    assert s.rho == pytest.approx(rho)
    w = D2dWorld(s, 200, seed=2)
    states = []
    for _ in range(4):
        states.append(w.fading["tr"].state.copy())
        w.advance()
    g0 = states[0]
    assert np.mean(np.abs(g0) ** 2) == pytest.approx(1.0, abs=0.01)  # Rayleigh, unit power
    for lag in (1, 3):
        corr = np.mean(states[lag] * np.conj(g0)).real / np.mean(np.abs(g0) ** 2)
        assert corr == pytest.approx(rho**lag, abs=0.01)  # AR(1): rho^lag
    iid = D2dWorld(with_(s, channel={"fading": "iid"}), 200, seed=2)
    a = iid.fading["tr"].state.copy()
    iid.advance()
    assert abs(np.mean(iid.fading["tr"].state * np.conj(a)).real) < 0.01


# --------------------------------------------------------------------------- the air


def test_air_slices_measure_last_slot_and_two_airs_agree() -> None:
    s = with_(BASE, radio={"n_pairs": 6, "d2d_power_levels_dbm": (13.0, 0.0)})
    a, b = D2dAir(s, 2, seed=9), D2dAir(s, 2, seed=9)
    rng = np.random.default_rng(0)
    for _ in range(3):
        rb, lev = rng.integers(0, 10, (2, 6)), rng.integers(0, 2, (2, 6))
        before = a.slices()
        sa, sb = a.step(rb, lev), b.step(rb, lev)
        assert np.array_equal(sa.reward, sb.reward)
        after = a.slices()
        assert np.array_equal(after.last_rb, rb) and np.array_equal(after.last_level, lev)
        assert np.allclose(after.interference_dbm,
                           10 * np.log10(sa.rates.interference_w) + 30)
        assert not np.array_equal(before.d2d_gain_db, after.d2d_gain_db)  # fading moved on
    out = a.step(np.zeros((2, 6), dtype=int), 0, silent=np.eye(2, 6, dtype=bool))
    assert out.power_w[0, 0] == 0.0 and out.reward[0, 0] == 0.0
    assert a.slices().last_rb[0, 0] == -1
    with pytest.raises(ValueError):
        a.step(np.full((2, 6), 10), 0)


# --------------------------------------------------------------------------- scenarios


@pytest.mark.parametrize("n", [10, 20, 30, 40, 50])
def test_scenario_files(n: int) -> None:
    r = resolve(SCENARIOS / f"d2d-n{n}.toml")
    assert r.kind.name == "d2d-underlay" and r.kind.node_role == "pair"
    assert r.scenario.radio.n_pairs == n and r.n_nodes == n
    assert r.node_names[-1] == f"pair-{n - 1}"
    assert r.scenario == dataclasses.replace(load_d2d_scenario(SCENARIOS / f"d2d-n{n}.toml"),
                                             source=r.scenario.source)
    # round trip through the TOML a controller sends
    from channel_server.kinds import from_toml

    assert from_toml(r.toml()).scenario == dataclasses.replace(r.scenario, source=
                                                               "<from controller>")


def test_overrides_and_errors() -> None:
    r = resolve(SCENARIOS / "d2d-n10.toml", {"radio.n_pairs": 3,
                                             "radio.d2d_power_levels_dbm": [13.0, 3.0]})
    assert r.scenario.radio.n_pairs == 3 and r.scenario.radio.n_actions == 20
    with pytest.raises(ScenarioError, match="n_pairs"):
        resolve(SCENARIOS / "d2d-n10.toml", {"radio.n_pairs": 0})
    with pytest.raises(ScenarioError, match="unknown field"):
        resolve(SCENARIOS / "d2d-n10.toml", {"radio.pairs": 3})


# --------------------------------------------------------------------------- observation


def test_observation_layout() -> None:
    s = with_(BASE, radio={"n_rb": 3, "d2d_power_levels_dbm": (13.0, 3.0)})
    assert observation_dim(s) == 4 * 3 + 2
    o = observe(s, [-100.0, -80.0, -120.0], [-110.0, -100.0, -90.0], [-100.0, -60.0, -80.0],
                2, 1)
    assert o.tolist() == [0.0, 1.0, -1.0, -0.5, 0.0, 0.5, 0.0, 2.0, 1.0, 0, 0, 1, 0, 1]
    assert observe(s, *([np.zeros(3)] * 3), -1, -1)[-5:].tolist() == [0] * 5
    rb, lev = decode_action([0, 4, 5], 3)
    assert rb.tolist() == [0, 1, 2] and lev.tolist() == [0, 1, 1]
    assert observation_dim(BASE) == 40



@pytest.mark.parametrize("n", [10, 15])  # a scenario file, and d2d-n10.toml with N pairs
def test_compare_applies_its_overrides_to_every_n(n: int) -> None:
    from controller.evaluation.d2d_compare import D2dCompareConfig, scenario_for

    cfg = D2dCompareConfig(ns=(n,), scenarios=SCENARIOS,
                           overrides=(("radio.bs_power_dbm", 36.0),))
    radio = scenario_for(cfg, n).scenario.radio
    assert radio.n_pairs == n and radio.bs_power_dbm == 36.0
    plain = scenario_for(dataclasses.replace(cfg, overrides=()), n).scenario.radio
    assert plain.bs_power_dbm == 46.0 and plain.n_pairs == n


def test_asynchronous_lags_in_slots() -> None:
    """An upload of slot n sent at its end with latency L arrives by slot n + 1 + ceil(L /
    slot); a deployment takes the slowest controller -> pair link's latency, in slots."""
    from controller.roles.d2d import arrival_slot, deployment_lag

    assert [arrival_slot(7, lat, 1e-3) for lat in (0.0, 1e-3, 1.5e-3, 5e-3)] == [8, 9, 10, 13]
    assert arrival_slot(7, math.inf, 1e-3) == math.inf
    links = {"backhaul.links.controller->pair-1": {"model": "constant", "latency_s": 0.0042}}
    sc = resolve(SCENARIOS / "d2d-n10.toml", {"radio.n_pairs": 3, **links}).scenario
    names = [f"pair-{i}" for i in range(3)]
    assert sc.backhaul.default.latency_s == 0.001
    assert deployment_lag(sc, names, 6) == 5  # 4.2 ms over 1 ms slots; the others take 1
    assert deployment_lag(sc, names[:1], 6) == 1
    with pytest.raises(ValueError, match="5 slots to reach the pairs"):
        deployment_lag(sc, names, 5)


def test_asynchronous_training_is_refused_where_it_cannot_run(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from controller.cli.common import cli

    base = ["d2d", "train", str(SCENARIOS / "d2d-n10.toml"), "--scheme", "maac",
            "--asynchronous", "--slots", "5", "--out", str(tmp_path / "x")]
    res = CliRunner().invoke(cli, [*base, "--runner", "local"])
    assert res.exit_code == 2 and "the network runner's" in res.output
    res = CliRunner().invoke(cli, [*base, "--runner", "network", "--broadcast-period", "4",
                                   "--set", "backhaul.default.latency_s=0.004"])
    assert res.exit_code == 2 and "4 slots to reach the pairs" in res.output
    assert not (tmp_path / "x").exists()


def test_signalling_runs_train_asynchronously_when_asked() -> None:
    from controller.evaluation.d2d_signalling import SignallingConfig, train_options

    assert "asynchronous" not in train_options(SignallingConfig(), 10)["train"]
    assert train_options(SignallingConfig(asynchronous=True), 10)["train"]["asynchronous"]


def test_rb_switch_rate_counts_changes_between_slots_where_a_pair_transmits_in_both() -> None:
    """Pair 0: 2 -> 2 -> 5 (one change in two); pair 1: 1 -> silent -> 1 (no pair of
    transmitting slots); pair 2: 0 -> 3 -> 3 (one in two): 2 changes in 4."""
    rbs = [[2, 1, 0], [2, -1, 3], [5, 1, 3]]
    assert rb_switch_rate(rbs) == 0.5
    assert rb_switch_rate([[4, 4], [4, 4]]) == 0.0  # static
    assert math.isnan(rb_switch_rate([[1, 2]]))  # one slot
    assert math.isnan(rb_switch_rate([[-1, 2], [3, -1]]))  # never twice in a row
