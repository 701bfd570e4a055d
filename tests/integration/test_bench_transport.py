"""`rrmbed bench transport` end to end: real spawned echo peers, figures that hang together.

No speed is asserted here (speed belongs to the benchmark's own output); this checks that
the benchmark measures what it says and reports it consistently.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from protocols.codec import encode
from protocols.messages import PowerForward
from tests.helpers import rrmbed

WIDE = {**os.environ, "COLUMNS": "200"}  # one line per table row


def test_bench_transport_reports_every_run_and_their_medians(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = rrmbed("bench", "transport", "-n", "40", "--floats", "16", "--placement", "os",
                  "--placement", "same-core", "--repeat", "3", "--json", str(out),
                  env=WIDE, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "median" in done.stdout and "ratio p50" in done.stdout
    doc = json.loads(out.read_text())
    assert set(doc) == {"os", "same-core"}
    frame = len(encode(PowerForward([0, 1, 2], np.zeros(16))))
    for placement, entry in doc.items():
        runs = entry["runs"]
        assert len(runs) == 3, placement
        for r in runs:
            assert r["n"] == 40 and r["payload_floats"] == 16 and r["frame_bytes"] == frame
            assert 0 < r["raw_p50_us"] <= r["raw_p99_us"]
            assert 0 < r["ours_p50_us"] <= r["ours_p99_us"]
            assert r["ratio_p50"] == r["ours_p50_us"] / r["raw_p50_us"]
            assert r["ratio_p99"] == r["ours_p99_us"] / r["raw_p99_us"]
            assert r["raw_cpu_us"] > 0 and r["ours_cpu_us"] > 0
            assert r["ratio_cpu"] == pytest.approx(r["ours_cpu_us"] / r["raw_cpu_us"], rel=1e-9)
        for key, value in entry["median"].items():
            assert value == float(np.median([r[key] for r in runs])), key


def test_bench_transport_names_an_unwritable_json_path(tmp_path: Path) -> None:
    target = tmp_path / "missing-dir" / "bench.json"
    done = rrmbed("bench", "transport", "-n", "10", "--placement", "os", "--json", str(target),
                  env=WIDE, timeout=300)
    assert done.returncode == 1
    assert f"cannot write {target}" in done.stderr
    assert "ratio p50" in done.stdout  # the figures were printed before the write failed
