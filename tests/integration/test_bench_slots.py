"""`rrmbed bench slots` end to end: real `rrmbed run` subprocesses, figures that hang together.

No speed is asserted here (speed belongs to the benchmark's own output); this checks that
every requested cell is measured, that the medians and ratios are made of the recorded runs,
and that slots.json, the --json copy and slots.csv say the same thing.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from controller.bench import skeleton
from controller.bench.slots import ENV_PINS, RUNNERS, Bench, make_plan, print_table
from node.schemes import SCHEMES as REGISTRY
from tests.helpers import ROOT, S3, S7, rrmbed

WIDE = {**os.environ, "COLUMNS": "200"}  # one line per table row
SCHEMES = ("full", "wmmse")
SLOTS = 40


def test_bench_slots_reports_every_cell_from_its_runs(tmp_path: Path) -> None:
    out, copy = tmp_path / "bench", tmp_path / "copy.json"
    args = ["bench", "slots", "--slots", str(SLOTS), "--scenario", str(S3), "--out", str(out),
            "--json", str(copy)]
    for s in SCHEMES:
        args += ["--scheme", s]
    done = rrmbed(*args, env=WIDE, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "net/local" in done.stdout and "3cell-k2" in done.stdout
    assert "raw zmq" in done.stdout and "net/raw" in done.stdout
    doc = json.loads((out / "slots.json").read_text())
    assert json.loads(copy.read_text()) == doc
    assert doc["complete"] is True
    assert doc["meta"]["env"] == ENV_PINS and doc["meta"]["root"] == str(ROOT)
    assert doc["meta"]["schemes"] == list(SCHEMES)

    runs = doc["runs"]
    assert sorted((r["scheme"], r["runner"]) for r in runs) == sorted(
        (s, r) for s in SCHEMES for r in RUNNERS)
    for r in runs:
        assert r["ok"] and r["error"] is None and r["rc"] == 0, r
        assert r["scenario"] == "3cell-k2" and r["slots"] == r["slots_requested"] == SLOTS
        assert r["wall_slots_per_s"] > 0
        summary = json.loads((Path(r["run_dir"]) / "summary.json").read_text())
        assert summary["runner"] == r["runner"] and summary["scheme"] == r["scheme"]
        assert summary["wall_slots_per_s"] == r["wall_slots_per_s"]

    rows = doc["rows"]
    assert [(row["scenario"], row["scheme"]) for row in rows] == [("3cell-k2", s)
                                                                 for s in SCHEMES]
    for row in rows:
        assert row["skipped"] is None
        for runner in RUNNERS:
            figures = [r["wall_slots_per_s"] for r in runs
                       if (r["scheme"], r["runner"]) == (row["scheme"], runner)]
            cell = row[runner]
            assert cell["slots_per_s"] == figures and cell["failed"] == 0
            assert cell["median"] == float(np.median(figures)) > 0
        assert row["network_over_local"] == row["network"]["median"] / row["local"]["median"]
        raw = [r["raw_slots_per_s"] for r in runs
               if (r["scheme"], r["runner"]) == (row["scheme"], "network")]
        assert row["raw"]["slots_per_s"] == raw and row["raw"]["median"] == float(raw[0]) > 0
        assert row["network_over_raw"] == row["network"]["median"] / row["raw"]["median"]
    assert all(r["raw_slots_per_s"] is None for r in runs if r["runner"] == "local")

    with (out / "slots.csv").open(newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(rows)
    for line, row in zip(table, rows, strict=True):
        assert (line["scenario"], line["scheme"]) == (row["scenario"], row["scheme"])
        assert float(line["network_slots_per_s"]) == row["network"]["median"]
        assert float(line["local_slots_per_s"]) == row["local"]["median"]
        assert float(line["network_over_local"]) == row["network_over_local"]
        assert float(line["raw_slots_per_s"]) == row["raw"]["median"]
        assert float(line["network_over_raw"]) == row["network_over_raw"]
        assert int(line["network_runs"]) == int(line["local_runs"]) == 1
        assert line["note"] == ""


def test_bench_slots_names_an_unwritable_out(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    target = blocker / "bench"  # under a regular file: unwritable even for root
    done = rrmbed("bench", "slots", "--slots", "5", "--scheme", "full", "--scenario", str(S3),
                  "--out", str(target), env=WIDE, timeout=60)
    assert done.returncode == 1
    assert f"cannot write to --out {target}" in done.stderr
    assert "slots per second" not in done.stdout  # nothing ran


def test_a_scheme_over_its_link_limit_is_a_dash_with_a_note(tmp_path: Path) -> None:
    plan = make_plan(ROOT, [S3, S7], ["optimum", "full"], 100, None, 1, [], tmp_path)
    assert [t.slots for t in plan.targets] == [100, 25]
    assert plan.schemes == tuple(s for s in REGISTRY.names("cellular")
                                 if s in ("optimum", "full"))  # the registry's order
    assert list(plan.skipped) == [("7cell-k8", "optimum")]
    assert ("7cell-k8", "optimum") not in {(t.name, s) for t, s, _ in plan.cells()}
    console = Console(width=200, record=True)
    print_table(Bench(plan), console)
    text = console.export_text()
    optimum = next(line for line in text.splitlines() if "optimum" in line and "│" in line)
    assert optimum.count(" - ") == 5
    assert "optimum not run on 7cell-k8: 56 links, max_links 6" in text


def test_a_scheme_that_needs_trained_weights_is_a_dash_with_a_note(tmp_path: Path) -> None:
    needs = [s.name for s in REGISTRY.for_kind("cellular") if s.needs_weights]
    assert needs, "no cellular scheme acts only with trained weights: nothing is checked"
    plan = make_plan(ROOT, [S3], [*needs, "full"], 100, None, 1, [], tmp_path)
    assert sorted(plan.skipped) == sorted(("3cell-k2", s) for s in needs)
    assert {s for _, s, _ in plan.cells()} == {"full"}
    console = Console(width=200, record=True)
    print_table(Bench(plan), console)
    assert f"{needs[0]} not run: it acts only with trained weights" in console.export_text()


@pytest.mark.parametrize("scheme", ["full", "round-robin", "wmmse"])
def test_the_skeleton_sends_what_a_real_run_sends_per_slot(tmp_path: Path, scheme: str) -> None:
    """The raw-pyzmq skeleton of a scheme's exchange sends, per slot and kind, as many
    frames as a real network run of that scheme metered (its overhead.csv), of the sizes
    the run sent."""
    run_dir = tmp_path / scheme
    done = rrmbed("run", str(S3), "--scheme", scheme, "--runner", "network", "--slots",
                  str(SLOTS), "--no-telemetry", "--out", str(run_dir), timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    real: dict[str, int] = {}
    with (run_dir / "overhead.csv").open(newline="") as f:
        for line in csv.DictReader(f):
            if line["kind"] in skeleton.KINDS:
                real[line["kind"]] = real.get(line["kind"], 0) + int(line["messages"])
    sizes = skeleton.sizes_of(run_dir / "overhead.csv")
    assert set(sizes) == set(real) and all(b > 10 for b in sizes.values())
    exchange = {s.name: s.exchange for s in REGISTRY.for_kind("cellular")}[scheme]
    rate, sent = skeleton.play(skeleton.Pattern(exchange, 3, sizes), slots=SLOTS, warmup=5)
    assert rate > 0
    assert {k: v / (SLOTS + 5) for k, v in sent.items()} == {k: v / SLOTS
                                                             for k, v in real.items()}
