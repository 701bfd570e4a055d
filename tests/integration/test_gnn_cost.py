"""``rrmbed gnn cost``'s measurement (issue 15 point 6): the GNN's signalling grows by one
message per edge per layer, its decision latency is L x (link latency + compute) and passes
the deadline as the backhaul slows, quantized messages come back within their step, and the
header and payload add up to what the meter counted."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from channel_server.interference import IcChannel
from channel_server.kinds import resolve
from controller.evaluation.gnn_cost import CostConfig, measure
from controller.runners.run import execute
from tests.helpers import SCENARIOS, mpgnn_weights_file

K = 6


def test_layers_encodings_and_latencies_cost_what_they_should(tmp_path: Path) -> None:
    resolved = resolve(SCENARIOS / "ic-geo-k20.toml", {"radio.n_links": K,
                                                       "drop.area_m": 300.0})
    weights, _ = mpgnn_weights_file(tmp_path, 2)
    slots = 15

    def run(res, scheme, out, w):  # type: ignore[no-untyped-def]
        return execute(res, scheme, "local", slots, 3, out, w, {})

    cfg = CostConfig(layers=(1, 2, 4), encodings=("float64", "float32", "uint8"),
                     latencies_ms=(0.5, 5.0))
    rows = measure(resolved, weights, cfg, run, tmp_path / "cost")
    edges = int(IcChannel(resolved.scenario, 3).layout.graph.sum())
    assert edges > 0
    by = {(r["sweep"], r["layers"], r["encoding"], r["latency_ms"]): r for r in rows}
    one = by[("layers", 1, "float64", 1.0)]
    for n_layers in (1, 2, 4):
        r = by[("layers", n_layers, "float64", 1.0)]
        # one ic_round per edge and layer (the same bytes per layer, but for the header's
        # integers: seq numbers take more bytes as they grow)
        assert r["bytes_per_layer_per_slot"] == pytest.approx(
            one["signalling_bytes_per_slot"], rel=0.01)
        assert r["decision_latency_ms_p50"] == pytest.approx(n_layers * (1.0 + 0.5))
        overhead = list(csv.DictReader(
            (tmp_path / f"cost/runs/layers-{n_layers}/overhead.csv").open()))
        rounds = [x for x in overhead if x["kind"] == "ic_round"]
        assert sum(int(x["messages"]) for x in rounds) == edges * n_layers * slots
        for x in rounds:  # the meter's parts add up to the bytes
            assert int(x["header_bytes"]) + int(x["payload_bytes"]) \
                + int(x["framing_bytes"]) == int(x["bytes"])
    # encodings: the header never changes, the payload does; 8-bit powers within a step
    f64, f32 = by[("encodings", 2, "float64", 1.0)], by[("encodings", 2, "float32", 1.0)]
    u8 = by[("encodings", 2, "uint8", 1.0)]
    assert f64["header_bytes_per_slot"] == f32["header_bytes_per_slot"] \
        == u8["header_bytes_per_slot"]
    assert f32["payload_bytes_per_slot"] < f64["payload_bytes_per_slot"]
    p64 = read_powers(tmp_path / "cost/runs/wire-float64/metrics.csv")
    p8 = read_powers(tmp_path / "cost/runs/wire-uint8/metrics.csv")
    pmax = resolved.scenario.radio.pmax_w
    assert not np.array_equal(p64, p8)
    # a layer's output is a smooth function of inputs quantized within half a step
    assert np.abs(p64 - p8).max() < 0.05 * pmax
    # latency: past the deadline (10 ms) every decision misses and keeps the last power
    fast, slow = by[("latencies", 2, "float64", 0.5)], by[("latencies", 2, "float64", 5.0)]
    assert fast["deadline_misses"] == 0 and fast["decision_latency_ms_p50"] == 2.0
    assert slow["decision_latency_ms_p50"] == pytest.approx(11.0)
    assert slow["deadline_misses"] == slots * K
    ref = by[("reference", 0, "float64", 1.0)]
    assert ref["scheme"] == "wmmse" and ref["fraction_of_wmmse"] == pytest.approx(1.0)
    saved = json.loads((tmp_path / "cost/cost.json").read_text())
    assert len(saved) == len(rows) == 1 + 3 + 3 + 2
    assert (tmp_path / "cost/plots/cost.png").stat().st_size > 0


def read_powers(path: Path) -> np.ndarray:
    rows = list(csv.DictReader(path.open()))
    return np.array([[float(r[f"p_w_l{i}"]) for i in range(K)] for r in rows])
