"""Certified optimum: against a 2001 x 2001 brute-force grid (2 links), against scipy
multi-start local searches (6 links), the mean sum-rate ordering on 3cell-k2, the node cap.

References are independent: ``channel_server.rates.sum_rate_bps_hz`` on a grid, and
``scipy.optimize.minimize`` (L-BFGS-B) from random starts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize

from channel_server.air import Air
from channel_server.config import load_scenario
from channel_server.rates import sum_rate_bps_hz
from controller.baselines.optimum import OptimumConfig, global_optimum, optimum
from controller.bench.baselines import compare_on

SCEN = Path(__file__).resolve().parents[2] / "scenarios"
RADIO = load_scenario(SCEN / "3cell-k2.toml").radio


def two_link_cases() -> list[np.ndarray]:
    """B = 2, K = 1 gains (2, 1, 2): weak, strong and asymmetric interference."""
    cases = []
    for direct, cross in [((1.0, 0.8), (0.05, 0.1)), ((1.0, 0.7), (0.9, 1.2)),
                          ((2.0, 0.3), (0.5, 0.02)), ((1.0, 1.0), (0.3, 0.3))]:
        g = np.zeros((2, 1, 2))
        g[0, 0, 0], g[1, 0, 1] = direct
        g[1, 0, 0], g[0, 0, 1] = cross  # BS 1 -> user of cell 0, BS 0 -> user of cell 1
        cases.append(g)
    return cases


@pytest.mark.parametrize("case", range(4))
def test_two_links_against_fine_grid(case: int) -> None:
    g = two_link_cases()[case]
    pmax, noise = 10.0, 0.5
    grid = np.linspace(0.0, pmax, 2001)
    p1, p2 = np.meshgrid(grid, grid, indexing="ij")
    powers = np.stack([p1, p2], axis=-1)[..., None]  # (2001, 2001, 2, 1)
    best_grid = float(sum_rate_bps_hz(g, powers, noise).max())
    eps = 1e-3
    res = global_optimum(g, noise, pmax, OptimumConfig(eps=eps))
    assert res.certified and res.gap <= eps
    assert res.value >= best_grid - 1e-12
    assert res.value <= best_grid * (1 + eps)  # grid is within the certified gap
    assert res.upper_bound >= best_grid
    assert res.upper_bound <= res.value * (1 + eps) + 1e-12
    np.testing.assert_allclose(sum_rate_bps_hz(g, res.powers, noise), res.value, rtol=1e-12)
    assert res.powers.shape == (2, 1)


def test_six_links_against_scipy_multistart() -> None:
    gains = Air(RADIO, 31, episodes=8).reset()
    noise, pmax = RADIO.noise_w, RADIO.pmax_w
    eps = 1e-3
    res = global_optimum(gains, noise, pmax, OptimumConfig(eps=eps))
    assert res.certified.all() and np.all(res.gap <= eps)
    rng = np.random.default_rng(0)
    for n in range(8):

        def neg(x: np.ndarray, n: int = n) -> float:
            return -float(sum_rate_bps_hz(gains[n], x.reshape(3, 2) * pmax, noise))

        local_best = -np.inf
        for _ in range(12):
            out = minimize(neg, rng.uniform(0, 1, 6), method="L-BFGS-B", bounds=[(0, 1)] * 6)
            local_best = max(local_best, -out.fun)
        assert res.upper_bound[n] >= local_best - 1e-12
        assert res.value[n] >= local_best / (1 + eps) - 1e-12
        p = res.powers[n]
        assert p.min() >= 0 and p.max() <= pmax
        np.testing.assert_allclose(sum_rate_bps_hz(gains[n], p, noise), res.value[n], rtol=1e-12)


def test_mean_ordering_on_3cell(capsys: pytest.CaptureFixture[str]) -> None:
    cmp = compare_on(RADIO, 300, seed=2024)
    m = {k: v["mean_sum_rate_bps_hz"] for k, v in cmp["methods"].items()}
    assert m["optimum"] >= m["fp"] and m["optimum"] >= m["wmmse"]
    for local in ("fp", "wmmse"):
        assert m[local] >= m["random"] and m[local] >= m["max-power"]
    assert cmp["optimum_max_gap"] <= 1e-3
    with capsys.disabled():
        print("\n3cell-k2, 300 drops, mean sum-rate bit/s/Hz (gap to optimum %):")
        for k, v in cmp["methods"].items():
            print(f"  {k:10s} {v['mean_sum_rate_bps_hz']:.4f} ({v['gap_pct']:.2f}%)")


def test_node_cap_warns_and_reports_gap() -> None:
    gains = Air(RADIO, 5, episodes=3).reset()
    with pytest.warns(RuntimeWarning, match="node cap"):
        res = global_optimum(gains, RADIO.noise_w, RADIO.pmax_w,
                             OptimumConfig(eps=1e-9, max_nodes=3, batch=1))
    assert not res.certified.all()
    assert np.all(res.upper_bound >= res.value)
    assert np.all(res.gap > 1e-9)
    full = sum_rate_bps_hz(gains, np.full((3, 3, 2), RADIO.pmax_w), RADIO.noise_w)
    assert np.all(res.value >= full)  # the seeded incumbent already beats max power


def test_rejects_large_networks_and_returns_powers_first() -> None:
    with pytest.raises(ValueError, match="B\\*K"):
        global_optimum(np.ones((1, 7, 1, 7)), 1.0, 1.0)
    g = two_link_cases()[1]
    p, res = optimum(g, 0.5, 10.0)
    assert p.shape == (2, 1)
    assert float(sum_rate_bps_hz(g, p, 0.5)) == pytest.approx(float(res.value), rel=1e-12)
