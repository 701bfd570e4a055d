"""Paper 003's measure (controller.evaluation.gnn_gap): the optimality gap, its reference,
the ratio of the MLP's gap to the GNN's against sqrt(K) and its fits, on hand cases; and a
tiny study end to end."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from controller.evaluation.gnn_gap import (
    GapConfig,
    Results,
    analysis,
    certified,
    fit_power_law,
    fit_through_origin,
    gap_pct,
    held_out,
    jobs,
    mean_rate,
    ratios,
    reference_name,
    scenario,
    study,
)
from controller.training.gnn_train import IcTrainConfig


def test_gap_of_a_hand_case() -> None:
    assert gap_pct(3.0, 4.0) == pytest.approx(25.0)
    assert gap_pct(4.0, 4.0) == 0.0
    assert gap_pct(4.2, 4.0) == pytest.approx(-5.0)  # beat a best-of-WMMSE reference
    # two links that do not interfere, noise 0.1: full power is optimal, rate log2(11) each
    s = scenario(GapConfig(), "gaussian", 2)
    gains = np.array([[[1.0, 0.0], [0.0, 1.0]]])
    full = mean_rate(s, gains, np.ones((1, 2)))
    assert full == pytest.approx(2 * math.log2(11.0))
    assert gap_pct(mean_rate(s, gains, np.array([[1.0, 0.0]])), full) == pytest.approx(50.0)


def test_the_reference_is_certified_only_where_the_optimum_is() -> None:
    assert certified("gaussian", 6) and not certified("gaussian", 7)
    assert not certified("geometric", 3)
    assert reference_name("gaussian", 5, 20) == "certified optimum"
    assert reference_name("gaussian", 10, 20) == "best of WMMSE from 21 starts"


def test_the_test_set_references() -> None:
    cfg = GapConfig(test_samples=40, random_starts=2)
    small = held_out(cfg, scenario(cfg, "gaussian", 3), 0, "t")
    assert small.reference == "certified optimum"
    assert small.reference_sum_rate >= small.wmmse_sum_rate > small.max_power_sum_rate
    big = held_out(cfg, scenario(cfg, "gaussian", 8), 0, "t")
    assert big.reference.startswith("best of WMMSE")
    assert big.reference_sum_rate >= big.wmmse_sum_rate


def test_geometric_scenarios_keep_the_density() -> None:
    cfg = GapConfig(density_per_km2=50.0)
    assert scenario(cfg, "geometric", 50).drop.area_m == pytest.approx(1000.0)
    assert scenario(cfg, "geometric", 200).drop.area_m == pytest.approx(2000.0)
    assert scenario(cfg, "geometric", 50, denser=4.0).drop.area_m == pytest.approx(500.0)


def test_fits() -> None:
    line = fit_through_origin([1.0, 2.0, 3.0], [2.0, 4.0, 6.0])
    assert line["slope"] == pytest.approx(2.0) and line["r2"] == pytest.approx(1.0)
    flat = fit_through_origin([1.0, 2.0, 3.0], [2.0, 2.0, 2.1])
    assert flat["r2"] < 0.5
    ks = [5.0, 10.0, 20.0, 40.0]
    law = fit_power_law(ks, [3.0 * k**0.5 for k in ks])
    assert law["alpha"] == pytest.approx(0.5) and law["c"] == pytest.approx(3.0)
    assert law["alpha_se"] == pytest.approx(0.0, abs=1e-9)


def rows(role: str, k: int, gaps: list[float]) -> list[dict[str, object]]:
    return [{"role": role, "form": "gaussian", "n_links": k, "samples": 100, "seed": s,
             "gap_pct": g} for s, g in enumerate(gaps)]


def test_ratio_against_sqrt_k_on_made_up_gaps() -> None:
    cfg = GapConfig(ks=(4, 16, 64), m=100)
    res = Results()
    for k in cfg.ks:  # gap_MLP = 2 sqrt(K) gap_GNN exactly
        res.rows += rows("graph", k, [1.0, 3.0]) + rows("dense", k, [2.0 * math.sqrt(k) * g
                                                                      for g in (1.0, 3.0)])
    pts = ratios(cfg, res)
    assert [p["ratio"] for p in pts] == pytest.approx([4.0, 8.0, 16.0])
    assert pts[0]["seed_ratios"] == pytest.approx([4.0, 4.0])
    a = analysis(cfg, res)
    assert a["through_origin"]["slope"] == pytest.approx(2.0)
    assert a["power_law"]["alpha"] == pytest.approx(0.5)
    assert a["verdict"].startswith("consistent with sqrt(K)")
    flat = Results(rows=[r for k in cfg.ks for r in rows("graph", k, [1.0, 1.1])
                         + rows("dense", k, [3.0, 3.1])])
    assert analysis(cfg, flat)["verdict"].startswith("does not hold, no significant growth")
    noisy = Results()
    for k, f in zip(cfg.ks, (1.0, 3.0, 1.5), strict=True):
        noisy.rows += rows("graph", k, [1.0]) + rows("dense", k, [2.0 * math.sqrt(k) * f])
    assert analysis(cfg, noisy)["verdict"].startswith("inconclusive")
    gnn_perfect = Results(rows=rows("graph", 4, [0.0]) + rows("dense", 4, [5.0]))
    assert math.isnan(ratios(GapConfig(ks=(4,), m=100), gnn_perfect)[0]["ratio"])


def test_jobs_share_training_sets() -> None:
    cfg = GapConfig(ks=(5, 10), m=100, ms=(50, 100), m_k=10, seeds=(0,), gen_k=10,
                    gen_forms=("gaussian", "geometric"))
    tags = [j.tag for j in jobs(cfg)]
    assert tags == ["gaussian-k5-m100-s0", "gaussian-k10-m100-s0", "gaussian-k10-m50-s0",
                    "geometric-k10-m100-s0"]


def test_a_tiny_study(tmp_path: Path) -> None:
    cfg = GapConfig(ks=(3, 6), m=64, ms=(32,), m_k=3, seeds=(0, 1),
                    train=IcTrainConfig(epochs=1, min_steps=3, val_samples=16),
                    test_samples=16, random_starts=1, gen_k=3, gen_factors=(2,),
                    gen_forms=("gaussian", "geometric"))
    seen: list[tuple[int, int]] = []
    res, table = study(cfg, tmp_path, lambda d, t, what: seen.append((d, t)))
    with (tmp_path / "results.csv").open() as f:
        got = list(csv.DictReader(f))
    sweeps = [r for r in got if r["form"] == "gaussian"]
    assert len(sweeps) == 2 * 2 * 3  # (K = 3, 6 at M = 64, K = 3 at M = 32) x 2 seeds x 2 nets
    assert {r["reference"] for r in sweeps} == {"certified optimum"}
    geometric = [r for r in got if r["form"] == "geometric"]  # the generalization's GNNs
    assert len(geometric) == 2 and {r["role"] for r in geometric} == {"graph"}
    assert geometric[0]["reference"] == "best of WMMSE from 2 starts"
    with (tmp_path / "generalization.csv").open() as f:
        gen = list(csv.DictReader(f))
    # per seed: gaussian at K = 3, 6; geometric at 3, 6 and 3 denser
    assert len(gen) == 2 * 5
    assert {r["layout"] for r in gen} == {"same density", "4x denser"}
    for name in ("results.json", "gap_vs_k.png", "gap_vs_m.png", "ratio_vs_sqrtk.png",
                 "generalization.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert seen[-1][0] == seen[-1][1]
    assert table.row_count == 3 + 5
