"""V2X physics (paper 000): road grid, fading and shadowing statistics, pathloss, rates,
payload accounting, rewards and the scenario loader, each against an independent
hand computation, a plain loop or scipy."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.special import j0

from channel_server.config import ScenarioError
from channel_server.v2x import (
    RewardConfig,
    V2xChannelConfig,
    V2xMobilityConfig,
    V2xRadioConfig,
    V2xRngs,
    V2xScenario,
    V2xWorld,
    account_payload,
    link_rates,
    load_v2x_scenario,
    nearest_receivers,
    shadowing_step,
    v2i_pathloss_db,
    v2v_pathloss_db,
    v2x_reward,
)
from channel_server.v2x_mobility import ManhattanMobility, same_street

ROOT = Path(__file__).resolve().parents[2]
FILE = ROOT / "scenarios" / "v2x-manhattan.toml"
C = 299_792_458.0


def scenario(**sections: Any) -> V2xScenario:
    return dataclasses.replace(V2xScenario(name="t", description=""), **sections)


# --------------------------------------------------------------------------- scenario file


def test_scenario_file_reference_values() -> None:
    s = load_v2x_scenario(FILE)
    assert s.source == str(FILE)
    r = s.radio
    assert (r.n_vehicles, r.n_rb, r.n_v2v) == (4, 4, 4)
    assert r.v2v_power_levels_dbm == (23.0, 15.0, 5.0, -100.0)
    assert (r.v2i_power_dbm, r.noise_dbm, r.rb_bandwidth_hz, r.bs_height_m) == (
        23.0, -114.0, 1e6, 25.0)
    assert (s.road.width_m, s.road.height_m) == (375.0, 649.5)
    assert (s.road.bs_x_m, s.road.bs_y_m) == (375.0 / 2, 649.5 / 2)
    c = s.channel
    assert (c.v2i_shadow_std_db, c.v2i_decorrelation_m) == (8.0, 50.0)
    assert (c.v2v_shadow_std_db, c.v2v_decorrelation_m) == (3.0, 10.0)
    assert (s.traffic.payload_bytes, s.traffic.deadline_s, s.n_steps) == (2120, 0.1, 100)
    assert (s.mobility.p_straight, s.mobility.p_left, s.mobility.p_right) == (0.5, 0.25, 0.25)
    assert r.noise_w == pytest.approx(10 ** (-14.4 - 3), rel=1e-12)  # -114 dBm in W
    assert "reference-code" in s.description


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "bad.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("n_rb = 4", 'n_rb = "four"', "radio.n_rb"),
        ("n_rb = 4", "n_rb = 4\nn_rbs = 4", "n_rbs"),
        ("v2v_power_levels_dbm = [23.0, 15.0, 5.0, -100.0]",
         'v2v_power_levels_dbm = [23.0, "x"]', "radio.v2v_power_levels_dbm[1]"),
        ("v2v_power_levels_dbm = [23.0, 15.0, 5.0, -100.0]", "v2v_power_levels_dbm = 23.0",
         "radio.v2v_power_levels_dbm"),
        ('fading = "gauss-markov"', 'fading = "rician"', "channel.fading"),
        ("p_left = 0.25", "p_left = 0.3", "p_straight + p_left + p_right"),
        ("deadline_s = 0.1", "deadline_s = 0.1005", "traffic.deadline_s"),
        ('name = "v2x-manhattan"', "", "'name'"),
    ],
)
def test_loader_errors_name_field_and_file(tmp_path: Path, old: str, new: str,
                                           field: str) -> None:
    text = FILE.read_text()
    assert old in text
    p = _write(tmp_path, text.replace(old, new, 1))
    with pytest.raises(ScenarioError) as err:
        load_v2x_scenario(p)
    msg = str(err.value)
    assert str(p) in msg
    assert field in msg


def test_loader_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="not found"):
        load_v2x_scenario(tmp_path / "nope.toml")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_v2x_scenario(_write(tmp_path, "name = "))


# --------------------------------------------------------------------------- mobility


def test_vehicles_stay_on_the_road_grid_for_10k_steps() -> None:
    s = V2xScenario(name="t", description="")
    grid = s.road.grid
    # hand-written geometry of the default grid: 4 x 4 streets, lanes 1.75 m and 5.25 m
    xs = np.array([0.0, 125.0, 250.0, 375.0])
    ys = np.array([0.0, 216.5, 433.0, 649.5])
    offs = np.array([1.75, 5.25])
    lane_x = {1: (xs[:, None] + offs).ravel(), 3: (xs[:, None] - offs).ravel()}  # N, S
    lane_y = {0: (ys[:, None] - offs).ravel(), 2: (ys[:, None] + offs).ravel()}  # E, W
    dt = 0.1
    mob = ManhattanMobility.drop(grid, 20, 4, (10.0, 15.0), (0.5, 0.25, 0.25),
                                 np.random.default_rng(1), np.random.default_rng(2))
    speed = mob.speeds_mps.copy()
    prev = mob.positions.copy()
    lo, hi = prev.min(axis=(0, 1)), prev.max(axis=(0, 1))
    for _ in range(10_000):
        mob.step(dt)
        xy, h = mob.positions, mob.headings
        for head, lanes in lane_x.items():
            sel = h == head
            assert np.isclose(xy[sel][:, 0, None], lanes).any(-1).all()
            assert ((xy[sel][:, 1] >= -7.0) & (xy[sel][:, 1] <= 649.5 + 7.0)).all()
        for head, lanes in lane_y.items():
            sel = h == head
            assert np.isclose(xy[sel][:, 1, None], lanes).any(-1).all()
            assert ((xy[sel][:, 0] >= -7.0) & (xy[sel][:, 0] <= 375.0 + 7.0)).all()
        # every move is an L-shaped path along the roads of length speed * dt
        np.testing.assert_allclose(np.abs(xy - prev).sum(-1), speed * dt, rtol=1e-9)
        prev = xy.copy()
        lo, hi = np.minimum(lo, xy.min(axis=(0, 1))), np.maximum(hi, xy.max(axis=(0, 1)))
    # the fleet explored the whole grid, and interior manoeuvres follow 1/2, 1/4, 1/4
    assert (lo < [-1.0, -1.0]).all() and (hi > [376.0, 650.5]).all()
    frac = mob.turn_counts / mob.turn_counts.sum()
    assert mob.turn_counts.sum() > 1000
    np.testing.assert_allclose(frac, [0.5, 0.25, 0.25], atol=0.04)


def test_same_street_line_of_sight() -> None:
    grid = V2xScenario(name="t", description="").road.grid
    xy = np.array([
        [126.75, 20.0],   # 0: northbound on the x = 125 street
        [123.25, 600.0],  # 1: southbound on the same street, far away
        [60.0, 214.75],   # 2: eastbound on the y = 216.5 street, west of the crossing
        [300.0, 431.25],  # 3: eastbound on the y = 433 street
        [126.75, 214.0],  # 4: inside the crossing of x = 125 and y = 216.5
    ])
    los = same_street(grid, xy)
    assert los[0, 1] and los[1, 0]
    assert not los[0, 2] and not los[0, 3] and not los[2, 3]
    assert los[4, 0] and los[4, 2] and los[4, 1]
    assert not los[4, 3]


def test_nearest_receivers_by_brute_force() -> None:
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 300, (5, 6, 2))
    tx, rx = nearest_receivers(xy, 2)
    assert tx.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    for e in range(5):
        for i in range(6):
            d = sorted((math.dist(xy[e, i], xy[e, j]), j) for j in range(6) if j != i)
            assert [rx[e, 2 * i], rx[e, 2 * i + 1]] == [d[0][1], d[1][1]]


# --------------------------------------------------------------------------- fading


def _lag1(g: np.ndarray) -> float:
    """Pooled lag-1 correlation of a complex series (time on axis 0)."""
    num = np.real(g[1:] * np.conj(g[:-1])).sum()
    return float(num / (np.abs(g[:-1]) ** 2).sum())


def _run_fading(s: V2xScenario, steps: int, envs: int, seed: int) -> tuple[V2xWorld, list[
        np.ndarray], list[np.ndarray]]:
    w = V2xWorld(s, envs, V2xRngs.from_seed(seed))
    gi, gv = [w.v2i_fading.copy()], [w.v2v_fading.copy()]
    for _ in range(steps):
        w.advance()
        gi.append(w.v2i_fading.copy())
        gv.append(w.v2v_fading.copy())
    return w, gi, gv


def test_fading_lag1_correlation_matches_j0_of_the_doppler() -> None:
    v, slot = 15.0, 0.0025
    s = scenario(mobility=V2xMobilityConfig(speed_min_mps=v, speed_max_mps=v),
                 radio=V2xRadioConfig(slot_s=slot))
    _, gi, gv = _run_fading(s, 60, 200, seed=1)
    rho = j0(2 * math.pi * (v * 2e9 / C) * slot)  # f_d = 100.07 Hz, 2 pi f_d T = 1.572
    assert 0.45 < rho < 0.49
    assert abs(_lag1(np.stack(gi)) - rho) < 0.03  # V2I: the vehicle's own Doppler
    off = ~np.eye(4, dtype=bool)
    v2v = np.stack(gv)[:, :, off, :]
    assert abs(_lag1(v2v) - rho**2) < 0.03  # V2V: both ends move (Akki-Haber product)
    assert abs(np.mean(np.abs(v2v) ** 2) - 1.0) < 0.03  # stationary unit power


def test_fading_relative_speed_and_iid_modes() -> None:
    slot = 0.002
    s = scenario(radio=V2xRadioConfig(slot_s=slot),
                 channel=V2xChannelConfig(v2v_doppler="relative"))
    w = V2xWorld(s, 200, V2xRngs.from_seed(4))
    num = den = 0.0
    expected = []
    off = ~np.eye(4, dtype=bool)
    for _ in range(50):
        vel = w.mobility.velocities_mps.copy()
        rel = np.linalg.norm(vel[:, :, None, :] - vel[:, None, :, :], axis=-1)[:, off]
        expected.append(j0(2 * math.pi * rel * 2e9 / C * slot))
        g0 = w.v2v_fading[:, off, :].copy()
        w.advance()
        g1 = w.v2v_fading[:, off, :]
        num += float(np.real(g1 * np.conj(g0)).sum())
        den += float((np.abs(g0) ** 2).sum())
    assert abs(num / den - float(np.mean(expected))) < 0.03
    s_iid = scenario(channel=V2xChannelConfig(fading="iid"))
    _, gi, _ = _run_fading(s_iid, 40, 100, seed=2)
    assert abs(_lag1(np.stack(gi))) < 0.03


# --------------------------------------------------------------------------- shadowing


def test_shadowing_correlation_decays_exponentially_with_distance() -> None:
    rng = np.random.default_rng(7)
    sigma, d_corr, step = 8.0, 50.0, 5.0
    s0 = rng.normal(0.0, sigma, 40_000)
    s = s0.copy()
    seen = {0.0: s0}
    for n in range(1, 21):
        s = shadowing_step(s, step, d_corr, sigma, rng)
        seen[n * step] = s.copy()
    for d in (10.0, 25.0, 50.0, 100.0):
        corr = np.corrcoef(s0, seen[d])[0, 1]
        assert abs(corr - math.exp(-d / d_corr)) < 0.05, d
        assert abs(seen[d].std() - sigma) < 0.2


def test_world_shadowing_follows_the_distance_moved() -> None:
    v, slot = 15.0, 0.01
    s = scenario(mobility=V2xMobilityConfig(speed_min_mps=v, speed_max_mps=v),
                 radio=V2xRadioConfig(slot_s=slot))
    w = V2xWorld(s, 3000, V2xRngs.from_seed(9))
    i0, v0 = w.v2i_shadow_db.copy(), w.v2v_shadow_db.copy()
    for _ in range(30):
        w.advance()
    moved = 30 * v * slot  # 4.5 m per vehicle; a V2V pair moves 9 m
    ci = np.corrcoef(i0.ravel(), w.v2i_shadow_db.ravel())[0, 1]
    cv = np.corrcoef(v0[:, 0, 1], w.v2v_shadow_db[:, 0, 1])[0, 1]
    assert abs(ci - math.exp(-moved / 50.0)) < 0.05
    assert abs(cv - math.exp(-2 * moved / 10.0)) < 0.05
    np.testing.assert_array_equal(w.v2v_shadow_db, np.swapaxes(w.v2v_shadow_db, 1, 2))
    assert abs(w.v2i_shadow_db.std() - 8.0) < 0.3
    assert abs(w.v2v_shadow_db[:, 0, 1].std() - 3.0) < 0.15


# --------------------------------------------------------------------------- pathloss, gains


def test_v2i_pathloss_by_hand() -> None:
    # d = 100 m, heights 25 m and 1.5 m: d3D = sqrt(100^2 + 23.5^2) = 102.7241 m
    d3 = math.sqrt(100.0**2 + 23.5**2)
    assert d3 == pytest.approx(102.7241, abs=1e-4)
    expected = 128.1 + 37.6 * math.log10(0.1027241)  # = 90.9 dB
    assert float(v2i_pathloss_db(100.0, 25.0, 1.5)) == pytest.approx(expected, abs=1e-4)
    assert float(v2i_pathloss_db(100.0, 25.0, 1.5)) == pytest.approx(90.9394, abs=1e-3)
    assert float(v2i_pathloss_db(1000.0, 1.5, 1.5)) == pytest.approx(128.1)


def test_v2v_pathloss_by_hand() -> None:
    radio, ch = V2xRadioConfig(), V2xChannelConfig()
    fc = 2.0
    # breakpoint 4 h' h' f / c with h' = 0.5 m: 6.67 m

    def near(d: float) -> float:
        return 22.7 * math.log10(d) + 41 + 20 * math.log10(fc / 5)

    def far(d: float) -> float:
        return 40 * math.log10(d) + 9.45 - 2 * 17.3 * math.log10(0.5) + 2.7 * math.log10(fc / 5)

    # the two LOS branches meet at the breakpoint (to the rounding of the constants)
    assert near(4 * 0.25 * 2e9 / C) == pytest.approx(far(4 * 0.25 * 2e9 / C), abs=0.02)
    xy = np.array([[0.0, 0.0], [0.0, 5.0], [0.0, 50.0], [0.0, 1.0], [100.0, 60.0]])
    los = np.ones((5, 5), dtype=bool)
    los[0, 4] = los[4, 0] = False
    pl = v2v_pathloss_db(xy, los, radio, ch)
    assert pl[0, 1] == pytest.approx(near(5.0), abs=1e-9)
    assert pl[0, 2] == pytest.approx(far(50.0), abs=1e-9)
    assert pl[0, 3] == pytest.approx(near(3.0), abs=1e-9)  # raised to the 3 m minimum

    def leg(dk: float, dl: float) -> float:
        nj = max(2.8 - 0.0024 * dk, 1.84)
        return far(dk) + 20 - 12.5 * nj + 10 * nj * math.log10(dl) + 3 * math.log10(fc / 5)

    assert pl[0, 4] == pytest.approx(min(leg(100, 60), leg(60, 100)), abs=1e-9)
    assert pl[4, 0] == pytest.approx(pl[0, 4])
    # the reference code's variant: actual 1.5 m heights beyond the breakpoint
    ref = v2v_pathloss_db(xy, los, radio, V2xChannelConfig(v2v_pathloss="reference-code"))
    assert ref[0, 2] == pytest.approx(far(50.0) - 2 * 17.3 * math.log10(3.0), abs=1e-9)


def test_effective_gains_compose_pathloss_shadowing_fading_and_antennas() -> None:
    s = V2xScenario(name="t", description="")
    w = V2xWorld(s, 2, V2xRngs.from_seed(5))
    gi, gv = w.gains_db()
    xy = w.positions
    for e in range(2):
        for n in range(4):
            d = math.hypot(xy[e, n, 0] - 187.5, xy[e, n, 1] - 324.75)
            pl = 128.1 + 37.6 * math.log10(math.sqrt(d * d + 23.5**2) / 1000)
            for m in range(4):
                fad = 10 * math.log10(abs(w.v2i_fading[e, n, m]) ** 2)
                want = -pl - w.v2i_shadow_db[e, n] + fad + 3 + 8 - 5
                assert gi[e, n, m] == pytest.approx(want, abs=1e-9)
            for j in range(4):
                for m in range(4):
                    if j == n:
                        assert gv[e, n, j, m] == pytest.approx(-50 + 6 - 9)
                        continue
                    fad = 10 * math.log10(abs(w.v2v_fading[e, n, j, m]) ** 2)
                    want = -w.v2v_pathloss_db[e, n, j] - w.v2v_shadow_db[e, n, j] + fad + 6 - 9
                    assert gv[e, n, j, m] == pytest.approx(want, abs=1e-9)


# --------------------------------------------------------------------------- rates


def _rates_by_loop(radio: V2xRadioConfig, gi: np.ndarray, gv: np.ndarray, tx: np.ndarray,
                   rx: np.ndarray, rb: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, ...]:
    e_n, k_n = rb.shape
    m_n = gi.shape[-1]
    noise = 10 ** ((-114 - 30) / 10)
    pc = 10 ** ((23 - 30) / 10)
    c_i = np.zeros((e_n, m_n))
    c_v = np.zeros((e_n, k_n))
    for e in range(e_n):
        for m in range(m_n):
            interf = sum(p[e, k] * gi[e, tx[k], m] for k in range(k_n) if rb[e, k] == m)
            c_i[e, m] = 1e6 * math.log2(1 + pc * gi[e, m, m] / (interf + noise))
        for k in range(k_n):
            m = rb[e, k]
            interf = pc * gv[e, m, rx[e, k], m]
            for k2 in range(k_n):
                if k2 != k and rb[e, k2] == m:
                    interf += p[e, k2] * gv[e, tx[k2], rx[e, k], m]
            c_v[e, k] = 1e6 * math.log2(1 + p[e, k] * gv[e, tx[k], rx[e, k], m]
                                        / (interf + noise))
    return c_i, c_v


def test_link_rates_match_a_plain_loop() -> None:
    rng = np.random.default_rng(11)
    radio = V2xRadioConfig()
    e_n, n, m, k = 3, 4, 4, 4
    gi = 10 ** (rng.uniform(-120, -80, (e_n, n, m)) / 10)
    gv = 10 ** (rng.uniform(-130, -50, (e_n, n, n, m)) / 10)
    tx = np.arange(k)
    rx = np.array([[1, 0, 3, 2], [2, 2, 1, 0], [3, 3, 0, 1]])
    rb = rng.integers(0, 2, (e_n, k))  # crowd two RBs to exercise interference
    p = radio.v2v_power_levels_w[rng.integers(0, 4, (e_n, k))]
    p[0, 1] = 0.0  # a silent (delivered) link
    out = link_rates(radio, gi, gv, tx, rx, rb, p)
    c_i, c_v = _rates_by_loop(radio, gi, gv, tx, rx, rb, p)
    np.testing.assert_allclose(out.v2i_rate_bps, c_i, rtol=1e-10)
    np.testing.assert_allclose(out.v2v_rate_bps, c_v, rtol=1e-10, atol=1e-9)
    assert out.v2v_rate_bps[0, 1] == 0.0
    # an RB without V2V users: the V2I SNR is P_c g / noise; e.g. 23 dBm, -100 dB, -114 dBm
    gi2 = np.full((1, 4, 4), 1e-10)
    one = link_rates(radio, gi2, gv[:1], tx, rx[:1], np.zeros((1, 4), dtype=np.int64),
                     np.zeros((1, 4)))
    assert one.v2i_sinr[0, 3] == pytest.approx(10 ** ((23 - 100 + 114) / 10), rel=1e-9)
    assert one.v2i_rate_bps[0, 3] == pytest.approx(1e6 * math.log2(1 + 10**3.7), rel=1e-9)


# --------------------------------------------------------------------------- payload, reward


def test_payload_accounting_on_a_hand_made_rate_sequence() -> None:
    bits = 2120 * 8.0  # 16960 bits
    slot = 0.001
    # link 0 at 5 Mbps: 5000 bits a slot, done in slot 3 (20000 >= 16960) at 4 ms
    # link 1 at 1 Mbps: 1000 bits a slot, done in slot 16 (17000 >= 16960) at 17 ms
    # link 2 alternates 4 Mbps / 0: 4000 bits every other slot, done in slot 8 at 9 ms
    # link 3 at 0.1 Mbps: 100 bits a slot, 10000 bits by the 100 ms deadline: never
    rem = np.full((1, 4), bits)
    times = np.full((1, 4), np.nan)
    for t in range(100):
        rate = np.array([[5e6, 1e6, 4e6 if t % 2 == 0 else 0.0, 1e5]])
        rem, times = account_payload(rem, rate, slot, t * slot, times)
        if t == 0:
            np.testing.assert_allclose(rem[0], [11960, 15960, 12960, 16860])
    np.testing.assert_allclose(times[0, :3], [0.004, 0.017, 0.009])
    assert np.isnan(times[0, 3])
    np.testing.assert_allclose(rem[0], [0.0, 0.0, 0.0, bits - 10000.0])


def test_reward_eq13_and_revised_by_hand() -> None:
    v2i = np.array([[1e6, 2e6]])
    v2v = np.array([[3e6, 0.5e6]])
    delivered = np.array([[False, True]])
    eq13 = RewardConfig(variant="eq13", lambda_c=0.1, lambda_v=0.9, lambda_p_per_s=10.0,
                        beta_mbps=40.0)
    # 0.1 * 3 + 0.9 * 3.5 - 10 * 0.02 = 0.3 + 3.15 - 0.2
    assert v2x_reward(eq13, v2i, v2v, delivered, 0.02)[0] == pytest.approx(3.25)
    revised = dataclasses.replace(eq13, variant="revised")
    # 0.1 * 3 + 0.9 * (3 + 40) - 0.2
    assert v2x_reward(revised, v2i, v2v, delivered, 0.02)[0] == pytest.approx(38.8)
    both = v2x_reward(revised, np.repeat(v2i, 2, 0), np.repeat(v2v, 2, 0),
                      np.array([[False, False], [True, True]]), np.array([0.0, 0.05]))
    np.testing.assert_allclose(both, [0.3 + 0.9 * 3.5, 0.3 + 0.9 * 80 - 0.5])
