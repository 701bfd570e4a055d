"""FP: monotone sum-rate, feasibility (per-user and per-BS), one iteration against a plain
loop of the textbook FPLinQ update, the per-BS subproblem against scipy, stationarity.

Independent references: plain-Python loops over an explicit L x L gain matrix,
``scipy.optimize.minimize`` (SLSQP) on the per-BS subproblem,
``channel_server.rates.sum_rate_bps_hz`` and finite-difference gradients.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize

from channel_server.air import Air
from channel_server.config import RadioConfig, load_scenario
from channel_server.rates import sum_rate_bps_hz
from controller.baselines.fp import FPConfig, fp, fp_step
from controller.baselines.wmmse import WMMSEConfig, solve_bs_budget, wmmse

SCEN = Path(__file__).resolve().parents[2] / "scenarios"


def draw(name: str, n: int, seed: int) -> tuple[np.ndarray, RadioConfig]:
    r = load_scenario(SCEN / f"{name}.toml").radio
    return Air(r, seed, episodes=n).reset().copy(), r


def assert_monotone(history: np.ndarray) -> None:
    prev, nxt = history[:, :-1], history[:, 1:]
    assert np.all(nxt >= prev - 1e-9 * np.abs(prev)), float((nxt - prev).min())


@pytest.mark.parametrize("constraint", ["per-user", "per-bs"])
def test_sum_rate_never_decreases(constraint: str) -> None:
    g, r = draw("3cell-k2", 200, seed=21)
    p, info = fp(g, r.noise_w, r.pmax_w, FPConfig(tol=1e-9, max_iter=200),
                 constraint=constraint)  # type: ignore[arg-type]
    assert_monotone(info.history)
    np.testing.assert_allclose(info.history[:, -1], sum_rate_bps_hz(g, p, r.noise_w), rtol=1e-10)
    assert info.history[:, -1].mean() > 1.3 * info.history[:, 0].mean()
    g7, r7 = draw("7cell-k8", 3, seed=8)
    p7, info7 = fp(g7, r7.noise_w, r7.pmax_w, FPConfig(tol=1e-8, max_iter=300),
                   constraint=constraint)  # type: ignore[arg-type]
    assert_monotone(info7.history)
    assert info7.history.shape[1] > 5


def test_feasibility() -> None:
    g, r = draw("3cell-k2", 200, seed=22)
    p, _ = fp(g, r.noise_w, r.pmax_w)
    assert p.min() >= 0.0 and p.max() <= r.pmax_w
    for budget in (None, r.pmax_w, 0.3 * r.pmax_w):
        pb, _ = fp(g, r.noise_w, r.pmax_w, constraint="per-bs", bs_budget_w=budget)
        cap = 2 * r.pmax_w if budget is None else budget
        assert pb.min() >= 0.0
        assert np.all(pb.sum(axis=-1) <= cap * (1 + 1e-12))
        # a budget that binds is used up somewhere (it is the only limit)
        assert np.any(pb.sum(axis=-1) >= cap * (1 - 1e-9))
    with pytest.raises(ValueError):
        fp(g, r.noise_w, r.pmax_w, constraint="per-cell")  # type: ignore[arg-type]


def textbook_fp_iteration(gains: np.ndarray, p: np.ndarray, noise: float, pmax: float
                          ) -> np.ndarray:
    """Shen & Yu (2018) FP with closed-form power update, plain loops over links."""
    n_bs, n_users = p.shape
    links = [(c, k) for c in range(n_bs) for k in range(n_users)]
    n_links = len(links)
    h2 = [[gains[links[j][0], links[i][1], links[i][0]] for j in range(n_links)]
          for i in range(n_links)]
    q = [p[c, k] for c, k in links]
    gamma, y = [0.0] * n_links, [0.0] * n_links
    for i in range(n_links):
        interference = noise + sum(h2[i][j] * q[j] for j in range(n_links) if j != i)
        gamma[i] = h2[i][i] * q[i] / interference
    for i in range(n_links):
        total = noise + sum(h2[i][j] * q[j] for j in range(n_links))
        y[i] = math.sqrt((1 + gamma[i]) * h2[i][i] * q[i]) / total
    out = np.zeros_like(p)
    for i, (c, k) in enumerate(links):
        den = sum(y[j] ** 2 * h2[j][i] for j in range(n_links))
        out[c, k] = min(pmax, y[i] ** 2 * (1 + gamma[i]) * h2[i][i] / den**2)
    return out


@pytest.mark.parametrize("shape", [(3, 2), (2, 3)])
def test_one_iteration_matches_textbook_loop(shape: tuple[int, int]) -> None:
    b, k = shape
    rng = np.random.default_rng(17)
    g = rng.exponential(size=(6, b, k, b)) * 10.0 ** rng.uniform(-12, -8, size=(6, b, k, b))
    pmax, noise = 20.0, 1e-10
    p = rng.uniform(0.05, 1.0, size=(6, b, k)) * pmax
    got = fp_step(g, p, noise, pmax)
    want = np.stack([textbook_fp_iteration(g[n], p[n], noise, pmax) for n in range(6)])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12 * pmax)
    assert np.any(got < 0.999 * pmax)


def test_per_bs_subproblem_matches_scipy() -> None:
    """max sum 2 a_k sqrt(x_k) - c x_k, 0 <= x_k <= cap, sum x_k <= budget (per BS)."""
    rng = np.random.default_rng(5)
    n, b, k = 20, 2, 4
    a = rng.uniform(0.0, 2.0, size=(n, b, k))
    c = rng.uniform(0.2, 1.0, size=(n, b, 1))
    budget = 2.0
    for cap in [np.inf, 1.5]:
        x = solve_bs_budget(a, c, cap, budget)
        assert np.all(x >= 0) and np.all(x <= cap) and np.all(x.sum(-1) <= budget * (1 + 1e-12))
        for m in range(n):
            for bb in range(b):
                am, cm = a[m, bb], float(c[m, bb, 0])

                def neg(z: np.ndarray, am: np.ndarray = am, cm: float = cm) -> float:
                    z = np.clip(z, 0.0, None)
                    return float(-(2 * am * np.sqrt(z) - cm * z).sum())

                best = math.inf
                for start in (np.full(k, budget / k / 2), rng.uniform(0, budget / k, k)):
                    res = minimize(
                        neg, start, method="SLSQP",
                        bounds=[(0.0, min(cap, budget))] * k,
                        constraints=[{"type": "ineq", "fun": lambda z: budget - z.sum()}],
                        options={"ftol": 1e-14, "maxiter": 500},
                    )
                    if res.x.sum() <= budget * (1 + 1e-9):
                        best = min(best, res.fun)
                ours = neg(x[m, bb])
                assert ours <= best + 1e-7 * max(1.0, abs(best)), (cap, m, bb, ours, best)


def test_fp_and_wmmse_iterates_coincide() -> None:
    """Documented fact (module docstrings): for SISO links the FPLinQ closed-form update and
    the WMMSE sweep are the same map, so from full power their histories coincide."""
    g, r = draw("3cell-k2", 100, seed=23)
    pf, i_f = fp(g, r.noise_w, r.pmax_w, FPConfig(tol=1e-9))
    pw, i_w = wmmse(g, r.noise_w, r.pmax_w, WMMSEConfig(tol=1e-9))
    np.testing.assert_allclose(i_f.history, i_w.history, rtol=1e-9)
    np.testing.assert_allclose(pf, pw, rtol=1e-6, atol=1e-9 * r.pmax_w)


def test_converged_point_is_stationary() -> None:
    rng = np.random.default_rng(1)
    n, n_links, pmax, noise = 30, 4, 10.0, 1.0
    g = rng.uniform(0.0, 0.3, size=(n, n_links, 1, n_links))
    for b in range(n_links):
        g[:, b, 0, b] = rng.exponential(size=n) + 0.5
    p, info = fp(g, noise, pmax, FPConfig(tol=1e-14, max_iter=20000))
    assert info.converged.all()
    h = 1e-6 * pmax
    interior = 0
    for m in range(n):
        for b in range(n_links):
            e = np.zeros((n_links, 1))
            e[b, 0] = h
            lo, hi = np.clip(p[m] - e, 0, None), p[m] + e
            grad = (sum_rate_bps_hz(g[m], hi, noise) - sum_rate_bps_hz(g[m], lo, noise)) \
                / (hi - lo)[b, 0] * pmax
            x = p[m, b, 0] / pmax
            if x >= 1 - 1e-6:
                assert grad > -1e-4
            elif x <= 1e-6:
                assert grad < 1e-4
            else:
                interior += 1
                assert abs(grad) < 1e-4
    assert interior >= 5
