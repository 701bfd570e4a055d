"""WMMSE: monotone sum-rate, feasibility, one sweep against a textbook plain loop, stationarity.

Independent references: a per-link plain-Python loop of the textbook u/w/v updates over an
explicit L x L gain matrix, ``channel_server.rates.sum_rate_bps_hz``, and finite-difference
gradients of the sum-rate.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from channel_server.air import Air
from channel_server.config import RadioConfig, load_scenario
from channel_server.rates import sum_rate_bps_hz
from controller.baselines.wmmse import WMMSEConfig, wmmse, wmmse_step

SCEN = Path(__file__).resolve().parents[2] / "scenarios"


def radio(name: str) -> RadioConfig:
    return load_scenario(SCEN / f"{name}.toml").radio


def draw(name: str, n: int, seed: int) -> tuple[np.ndarray, RadioConfig]:
    r = radio(name)
    return Air(r, seed, episodes=n).reset().copy(), r


def assert_monotone(history: np.ndarray) -> None:
    prev, nxt = history[:, :-1], history[:, 1:]
    assert np.all(nxt >= prev - 1e-9 * np.abs(prev)), float((nxt - prev).min())


@pytest.mark.parametrize("constraint", ["per-user", "per-bs"])
def test_sum_rate_never_decreases_3cell(constraint: str) -> None:
    g, r = draw("3cell-k2", 200, seed=11)
    p, info = wmmse(g, r.noise_w, r.pmax_w, WMMSEConfig(tol=1e-9, max_iter=200),
                    constraint=constraint)  # type: ignore[arg-type]
    assert info.history.shape[0] == 200 and info.history.shape[1] >= 3
    assert_monotone(info.history)
    # the last history entry is the sum-rate of the returned powers (independent formula)
    np.testing.assert_allclose(info.history[:, -1], sum_rate_bps_hz(g, p, r.noise_w), rtol=1e-10)
    # and iterating does something: it beats full power on average
    full = sum_rate_bps_hz(g, np.full(p.shape, r.pmax_w), r.noise_w)
    if constraint == "per-user":
        np.testing.assert_allclose(info.history[:, 0], full, rtol=1e-10)
    assert info.history[:, -1].mean() > 1.3 * full.mean()


def test_sum_rate_never_decreases_7cell() -> None:
    g, r = draw("7cell-k8", 4, seed=5)
    p, info = wmmse(g, r.noise_w, r.pmax_w, WMMSEConfig(tol=1e-8, max_iter=300))
    assert_monotone(info.history)
    np.testing.assert_allclose(info.history[:, -1], sum_rate_bps_hz(g, p, r.noise_w), rtol=1e-10)


def test_feasibility_per_user_and_per_bs() -> None:
    g, r = draw("3cell-k2", 200, seed=3)
    p, _ = wmmse(g, r.noise_w, r.pmax_w)
    assert p.shape == (200, 3, 2)
    assert p.min() >= 0.0 and p.max() <= r.pmax_w
    assert np.any(p < 0.99 * r.pmax_w)  # some power control happened
    for budget in (None, r.pmax_w):  # default K * Pmax, and the paper's 43 dBm per BS
        pb, info = wmmse(g, r.noise_w, r.pmax_w, constraint="per-bs", bs_budget_w=budget)
        cap = 2 * r.pmax_w if budget is None else budget
        assert pb.min() >= 0.0
        assert np.all(pb.sum(axis=-1) <= cap * (1 + 1e-12))
        assert_monotone(info.history)


def textbook_sweep(gains: np.ndarray, p: np.ndarray, noise: float, pmax: float) -> np.ndarray:
    """One WMMSE sweep, Shi et al. (2011) SISO form, plain loops over links."""
    n_bs, n_users = p.shape
    links = [(c, k) for c in range(n_bs) for k in range(n_users)]
    n_links = len(links)
    # h2[i][j]: power gain from link j's transmitter (BS b_j) to link i's receiver
    h2 = [[gains[links[j][0], links[i][1], links[i][0]] for j in range(n_links)]
          for i in range(n_links)]
    v = [math.sqrt(p[c, k]) for c, k in links]
    u, w = [0.0] * n_links, [0.0] * n_links
    for i in range(n_links):
        den = noise + sum(h2[i][j] * v[j] ** 2 for j in range(n_links))
        u[i] = math.sqrt(h2[i][i]) * v[i] / den
        w[i] = 1.0 / (1.0 - u[i] * math.sqrt(h2[i][i]) * v[i])
    out = np.zeros_like(p)
    for j, (c, k) in enumerate(links):
        den = sum(h2[i][j] * u[i] ** 2 * w[i] for i in range(n_links))
        vj = min(max(u[j] * w[j] * math.sqrt(h2[j][j]) / den, 0.0), math.sqrt(pmax))
        out[c, k] = vj**2
    return out


@pytest.mark.parametrize("shape", [(3, 2), (2, 3)])
def test_one_sweep_matches_textbook_loop(shape: tuple[int, int]) -> None:
    b, k = shape
    rng = np.random.default_rng(7)
    g = rng.exponential(size=(6, b, k, b)) * 10.0 ** rng.uniform(-12, -8, size=(6, b, k, b))
    pmax, noise = 20.0, 1e-10
    p = rng.uniform(0.05, 1.0, size=(6, b, k)) * pmax
    got = wmmse_step(g, p, noise, pmax)
    want = np.stack([textbook_sweep(g[n], p[n], noise, pmax) for n in range(6)])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12 * pmax)
    assert np.any(got < 0.999 * pmax) and np.any(got > 0)


def test_single_instance_shape_matches_batch() -> None:
    g, r = draw("3cell-k2", 5, seed=2)
    pb, ib = wmmse(g, r.noise_w, r.pmax_w)
    p1, i1 = wmmse(g[3], r.noise_w, r.pmax_w)
    assert p1.shape == (3, 2) and i1.iterations.shape == () and i1.history.ndim == 1
    np.testing.assert_allclose(p1, pb[3], rtol=1e-12)
    assert int(i1.iterations) == int(ib.iterations[3])


def test_stopping_rule_and_cap() -> None:
    g, r = draw("3cell-k2", 50, seed=4)
    tol = 1e-4
    _, info = wmmse(g, r.noise_w, r.pmax_w, WMMSEConfig(tol=tol, max_iter=500))
    assert info.converged.all()
    for n in range(50):
        t = int(info.iterations[n])
        h = info.history[n]
        rel = (h[1:t + 1] - h[:t]) / h[:t]
        assert rel[-1] < tol and np.all(rel[:-1] >= tol)
        assert np.all(h[t:] == h[t])  # frozen afterwards
    _, capped = wmmse(g, r.noise_w, r.pmax_w, WMMSEConfig(tol=0.0, max_iter=3))
    assert np.all(capped.iterations <= 3) and capped.history.shape[1] <= 4


def interference_channel(n: int, n_links: int, seed: int) -> np.ndarray:
    """Generic K = 1 interference channel with moderate coupling (interior optima occur)."""
    rng = np.random.default_rng(seed)
    g = rng.uniform(0.0, 0.3, size=(n, n_links, 1, n_links))
    for b in range(n_links):
        g[:, b, 0, b] = rng.exponential(size=n) + 0.5
    return g


def test_converged_point_is_stationary() -> None:
    """KKT of max R(p) on the box, from central finite differences of the sum-rate."""
    n, n_links, pmax, noise = 30, 4, 10.0, 1.0
    g = interference_channel(n, n_links, seed=0)
    p, info = wmmse(g, noise, pmax, WMMSEConfig(tol=1e-14, max_iter=20000))
    assert info.converged.all()
    h = 1e-6 * pmax
    checked_interior = 0
    for m in range(n):
        for b in range(n_links):
            e = np.zeros((n_links, 1))
            e[b, 0] = h
            lo = np.clip(p[m] - e, 0, None)
            hi = p[m] + e
            grad = (sum_rate_bps_hz(g[m], hi, noise)
                    - sum_rate_bps_hz(g[m], lo, noise)) / (hi - lo)[b, 0] * pmax
            x = p[m, b, 0] / pmax
            if x >= 1 - 1e-6:
                assert grad > -1e-4
            elif x <= 1e-6:
                assert grad < 1e-4
            else:
                checked_interior += 1
                assert abs(grad) < 1e-4, (m, b, x, grad)
    assert checked_interior >= 5
