"""Emulated latency over real processes: round-robin's chain grows with B, and a
deadline shorter than the chain produces misses that fall back to the previous powers."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from channel_server.config import load_scenario
from tests.helpers import S3, SCENARIOS, run_dir

COMPUTE_S = 0.0005


def latency_ms(out: Path) -> np.ndarray:
    with (out / "latency.csv").open() as f:
        rows = list(csv.DictReader(f))
    return np.array([float(r["decision_latency_ms"]) for r in rows])


@pytest.mark.parametrize(("name", "link_s"), [("3cell-k2", 0.0), ("3cell-k2", 0.002),
                                              ("7cell-k8", 0.002)])
def test_round_robin_chain_latency_grows_with_b(tmp_path: Path, name: str, link_s: float) -> None:
    scenario = SCENARIOS / f"{name}.toml"
    b = load_scenario(scenario).radio.n_cells
    sets = ["--set", f"timing.compute_s={COMPUTE_S}", "--set", "timing.deadline_s=1.0",
            "--set", f"backhaul.default.latency_s={link_s}"]
    summaries = {}
    for scheme in ("full", "round-robin"):
        out = run_dir(tmp_path, scenario, scheme, "network", 20, 3, *sets)
        summaries[scheme] = json.loads((out / "summary.json").read_text())
    full = summaries["full"]["decision_latency_ms_p50"]
    rr = summaries["round-robin"]["decision_latency_ms_p50"]
    assert full == pytest.approx(COMPUTE_S * 1e3)
    # the last BS of the chain decides after B computations and B-1 hops
    assert rr == pytest.approx((b * COMPUTE_S + (b - 1) * link_s) * 1e3)
    if link_s == 0.0:
        assert rr / full == pytest.approx(b)


def test_deadline_misses_fall_back_to_previous_powers(tmp_path: Path) -> None:
    scenario = S3
    # chain: 0.5 ms, 0.5 + 1 + 0.5 = 2.0 ms, 3.5 ms: the third BS misses a 3 ms deadline
    out = run_dir(tmp_path, scenario, "round-robin", "network", 40, 8,
                  "--set", "timing.deadline_s=0.003")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["deadline_misses"] == 40
    with (out / "latency.csv").open() as f:
        lat = list(csv.DictReader(f))
    with (out / "metrics.csv").open() as f:
        metrics = list(csv.DictReader(f))
    pmax = load_scenario(scenario).radio.pmax_w
    for n in range(40):
        rows = [r for r in lat if int(r["slot"]) == n]
        missed = [int(r["node"].split("-")[1]) for r in rows if r["missed"] == "1"]
        assert len(missed) == 1
        late = missed[0]
        assert float(rows[late]["decision_latency_ms"]) == pytest.approx(3.5)
        now = [float(metrics[n][f"p_bs{late}_u{u}_w"]) for u in range(2)]
        before = ([float(metrics[n - 1][f"p_bs{late}_u{u}_w"]) for u in range(2)]
                  if n > 0 else [pmax, pmax])
        assert now == before  # the fallback: exactly the previous slot's powers
