"""The paired differences of `rrmbed v2x compare` (controller.evaluation.v2x_compare):
means and 95 % intervals against scipy's own paired t-test, pairs over shared seeds only."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from controller.evaluation.v2x_compare import difference_ci, paired


def test_interval_is_scipys_paired_t_interval() -> None:
    rng = np.random.default_rng(0)
    a = rng.uniform(0.4, 0.9, 5)
    b = a - rng.normal(0.05, 0.03, 5)
    mean, low, high = difference_ci(a, b)
    ci = stats.ttest_rel(a, b).confidence_interval(0.95)
    assert mean == pytest.approx(float(np.mean(a - b)))
    assert (low, high) == pytest.approx((ci.low, ci.high))
    assert low > 0  # a clear improvement is one


def test_one_pair_has_no_interval() -> None:
    mean, low, high = difference_ci([0.7], [0.5])
    assert mean == pytest.approx(0.2) and math.isnan(low) and math.isnan(high)


def test_every_pair_over_the_seeds_both_have() -> None:
    def rows(values: dict[int, float]) -> list[dict[str, float]]:
        return [{"seed": s, "delivery_rate": v, "sum_v2i_mbps": 10 * v}
                for s, v in values.items()]

    results = {"x": rows({0: 0.9, 1: 0.8, 2: 0.85}), "y": rows({0: 0.5, 1: 0.6, 2: 0.55}),
               "z": rows({1: 0.6, 2: 0.4})}
    out = paired(results)
    assert [(r["a"], r["b"], r["metric"]) for r in out] == [
        (a, b, m) for a, b in (("x", "y"), ("x", "z"), ("y", "z"))
        for m in ("delivery_rate", "sum_v2i_mbps")]
    xy = out[0]
    assert xy["seeds"] == 3 and xy["mean_difference"] == pytest.approx(0.3)
    assert xy["differs"] and xy["ci95_low"] > 0
    xz = out[2]
    assert xz["seeds"] == 2 and xz["mean_difference"] == pytest.approx(0.325)  # seeds 1, 2
    yz = out[4]
    assert yz["mean_difference"] == pytest.approx(0.075)
    assert yz["differs"] == (yz["ci95_low"] > 0 or yz["ci95_high"] < 0)


def test_versus_compares_drop_by_drop_on_the_same_drops() -> None:
    """The demo's verdict: each scheme's delivery is its own evaluation's on the same drops,
    the interval scipy's paired t-interval of the per-drop differences, and the sentence
    says what the interval says."""
    from channel_server.v2x import load_v2x_scenario
    from controller.evaluation.v2x_compare import versus
    from controller.training.v2x_marl import evaluate_episodes, evaluate_marl, train_marl
    from tests.helpers import SV

    scenario = load_v2x_scenario(SV)
    variables, _ = train_marl(scenario, "marl-dqn", 2, 0)
    v = versus(scenario, "marl-dqn", variables, "random", 12, 77, 2)
    a = evaluate_episodes(scenario, "marl-dqn", variables, 12, 77)["delivery_rate"]
    b = evaluate_episodes(scenario, "random", {}, 12, 77)["delivery_rate"]
    assert v["learned_delivery"] == evaluate_marl(scenario, "marl-dqn", variables, 12,
                                                  77)["delivery_rate"]
    assert v["other_delivery"] == pytest.approx(float(b.mean()))
    ci = stats.ttest_rel(a, b).confidence_interval(0.95)
    assert (v["ci95_low"], v["ci95_high"]) == pytest.approx((ci.low, ci.high))
    assert v["beats"] == (ci.low > 0)
    words = ("marl-dqn beats random" if ci.low > 0 else "random beats marl-dqn"
             if ci.high < 0 else "not distinguishable")
    assert words in v["sentence"] and "12 fresh drops" in v["sentence"]


def test_never_delivered_names_the_links_no_run_delivered(tmp_path: Path) -> None:
    """The demo's note on its one-drop network runs: a link counts only when it delivered in
    no episode of any run."""
    from controller.evaluation.demo import never_delivered

    header = "episode,delivery_rate,sum_v2i_mbps,return," + ",".join(
        f"delivery_ms_v{k}" for k in range(11)) + "\n"
    nan = ["nan"] * 11
    a, b = list(nan), list(nan)
    a[1], b[3], b[10] = "1.0", "2.0", "5.0"
    files = []
    for name, rows in (("a", [nan, a]), ("b", [b, nan])):
        path = tmp_path / f"{name}.csv"
        path.write_text(header + "".join(f"{i},0.5,1.0,2.0," + ",".join(r) + "\n"
                                         for i, r in enumerate(rows)))
        files.append(path)
    assert never_delivered(files) == ["v0", "v2", *[f"v{k}" for k in range(4, 10)]]
    assert never_delivered(files[:1]) == [f"v{k}" for k in range(11) if k != 1]
