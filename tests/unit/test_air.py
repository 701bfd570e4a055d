"""The Air model: determinism, shapes, and gains checked against plain-loop geometry."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from channel_server.air import Air
from channel_server.config import RadioConfig, load_scenario

ROOT = Path(__file__).resolve().parents[2]


def radio(name: str, **changes: object) -> RadioConfig:
    r = load_scenario(ROOT / "scenarios" / f"{name}.toml").radio
    return dataclasses.replace(r, **changes)  # type: ignore[arg-type]


def loop_pathloss(bs_xy: np.ndarray, user_xy: np.ndarray, r: RadioConfig) -> np.ndarray:
    """beta[e, b, k, c] = (1 + d/d0)^-alpha with plain loops (and plain wraparound images)."""
    shifts = [(0.0, 0.0)]
    if r.layout == "7cell-wrap":
        length = math.sqrt(21.0) * r.cell_radius_m
        phase = math.atan2(1.5, 2.5 * math.sqrt(3.0))
        shifts += [(length * math.cos(phase + i * math.pi / 3),
                    length * math.sin(phase + i * math.pi / 3)) for i in range(6)]
    e_n, b_n, k_n, _ = user_xy.shape
    out = np.zeros((e_n, b_n, k_n, b_n))
    for e in range(e_n):
        for b in range(b_n):
            for k in range(k_n):
                for c in range(b_n):
                    ux, uy = user_xy[e, c, k]
                    d = min(math.hypot(ux - bs_xy[b, 0] - sx, uy - bs_xy[b, 1] - sy)
                            for sx, sy in shifts)
                    out[e, b, k, c] = (1.0 + d / r.d0_m) ** (-r.pathloss_exponent)
    return out


def run(air: Air, slots: int) -> np.ndarray:
    out = [air.reset().copy()]
    out += [air.step().copy() for _ in range(slots - 1)]
    return np.stack(out)


@pytest.mark.parametrize(
    ("name", "changes"),
    [
        ("3cell-k2", {}),
        ("7cell-k8", {"fading": "jakes", "mobility": "random-walk", "user_speed_mps": 30.0}),
        ("3cell-k2", {"fading": "iid", "mobility": "waypoint", "user_speed_mps": 30.0}),
    ],
)
def test_same_seed_identical_different_seed_differs(name: str, changes: dict[str, object]) -> None:
    r = radio(name, **changes)
    a = run(Air(r, seed=42, episodes=3), 50)
    b = run(Air(r, seed=42, episodes=3), 50)
    c = run(Air(r, seed=43, episodes=3), 50)
    assert a.shape == (50, 3, r.n_cells, r.users_per_cell, r.n_cells)
    assert a.dtype == np.float64
    assert np.array_equal(a, b)
    same_slot = np.isclose(a, c, rtol=1e-9, atol=0.0).all(axis=(1, 2, 3, 4))
    assert not same_slot.any()  # every slot differs


def test_shapes_and_single_episode() -> None:
    air = Air(radio("3cell-k2"), seed=0)
    g = air.reset()
    assert g.shape == (1, 3, 2, 3)
    assert air.slot == 0
    assert air.user_xy.shape == (1, 3, 2, 2)
    assert air.bs_xy.shape == (3, 2)
    assert air.step().shape == (1, 3, 2, 3)
    assert air.slot == 1
    assert not np.array_equal(air.gains, g)
    big = Air(radio("7cell-k8"), seed=0, episodes=5)
    assert big.reset().shape == (5, 7, 8, 7)


def test_noise_figure_in_noise_power() -> None:
    r = radio("3cell-k2")
    # -150 dBm/Hz + 10 log10(20e6) + 9 dB = -150 + 73.0103 + 9 = -67.9897 dBm
    assert r.noise_dbm == pytest.approx(-150.0 + 10 * math.log10(2e7) + 9.0)
    assert r.noise_dbm == pytest.approx(-67.9897, abs=1e-4)
    assert r.noise_w == pytest.approx(10 ** (-97.9897 / 10), rel=1e-4)


def test_step_before_reset_raises() -> None:
    air = Air(radio("3cell-k2"), seed=0)
    with pytest.raises(RuntimeError):
        air.step()
    with pytest.raises(RuntimeError):
        _ = air.gains


@pytest.mark.parametrize("name", ["3cell-k2", "7cell-k8"])
def test_gains_are_pathloss_times_unit_power_fading(name: str) -> None:
    r = radio(name)
    episodes = 1500 if name == "3cell-k2" else 40  # 27000 / 15680 links
    air = Air(r, seed=7, episodes=episodes)
    g = air.reset()
    beta = loop_pathloss(air.bs_xy, air.user_xy, r)
    fading_power = g / beta
    assert fading_power.mean() == pytest.approx(1.0, abs=0.03)
    # |g|^2 ~ Exp(1): P(> 1) = e^-1
    assert np.mean(fading_power > 1.0) == pytest.approx(math.exp(-1), abs=0.015)
    # direct links are the strongest on average: the user's own BS is the closest (d >= 10 m)
    direct = np.einsum("ebkb->ebk", beta)
    assert (direct[..., None] >= beta.transpose(0, 3, 2, 1) - 1e-30).all()


def test_gauss_markov_slot_correlation_of_power() -> None:
    """For AR(1) complex Gaussian g, corr(|g_n|^2, |g_n+1|^2) = rho^2."""
    r = radio("3cell-k2")
    air = Air(r, seed=3, episodes=2000)
    p0 = (air.reset() / air.pathloss).ravel()
    p1 = (air.step() / air.pathloss).ravel()
    rho = 0.6425118  # J0(2 pi * 10 Hz * 20 ms), tabulated
    assert np.corrcoef(p0, p1)[0, 1] == pytest.approx(rho**2, abs=0.03)
    iid = Air(radio("3cell-k2", fading="iid"), seed=3, episodes=2000)
    q0 = (iid.reset() / iid.pathloss).ravel()
    q1 = (iid.step() / iid.pathloss).ravel()
    assert abs(np.corrcoef(q0, q1)[0, 1]) < 0.03


def test_static_users_keep_pathloss_mobile_users_recompute_it() -> None:
    static = Air(radio("3cell-k2"), seed=1, episodes=2)
    static.reset()
    beta0 = static.pathloss.copy()
    xy0 = static.user_xy.copy()
    for _ in range(5):
        static.step()
    assert np.array_equal(static.pathloss, beta0)
    assert np.array_equal(static.user_xy, xy0)

    r = radio("7cell-k8", mobility="random-walk", user_speed_mps=30.0)
    mobile = Air(r, seed=1, episodes=2)
    mobile.reset()
    xy0 = mobile.user_xy.copy()
    for _ in range(10):
        mobile.step()
    moved = np.linalg.norm(mobile.user_xy - xy0, axis=-1)
    assert (moved > 0).all()
    assert (moved <= 10 * 30.0 * r.slot_s + 1e-9).all()
    assert mobile.pathloss == pytest.approx(loop_pathloss(mobile.bs_xy, mobile.user_xy, r),
                                            rel=1e-10)


def test_resets_draw_new_episodes_reproducibly() -> None:
    r = radio("3cell-k2")
    a = Air(r, seed=5, episodes=2)
    first = a.reset().copy()
    a.step()
    second = a.reset().copy()
    assert a.slot == 0
    assert not np.isclose(first, second, rtol=1e-9, atol=0.0).any()
    b = Air(r, seed=5, episodes=2)
    assert np.array_equal(b.reset(), first)
    # episode 2 does not depend on how many slots episode 1 ran
    for _ in range(7):
        b.step()
    assert np.array_equal(b.reset(), second)
