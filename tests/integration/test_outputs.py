"""Issue 12, point 3: the run folder is checked before any work starts, and results reach
it as they happen."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import (
    S3,
    S7,
    Spawn,
    alive,
    read_csv,
    rrmbed,
    seeded_weights,
    small_disk,
    wait_for_slot,
)


def run(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return rrmbed("run", str(S3), "--scheme", "wmmse", "--runner", "local", "--slots", "20",
                  "--out", str(out), *extra)


def test_an_existing_run_is_kept_unless_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert run(out).returncode == 0
    before = (out / "metrics.csv").read_bytes()
    r = run(out, "--seed", "1")
    assert r.returncode == 2 and "--overwrite" in r.stderr
    assert (out / "metrics.csv").read_bytes() == before  # nothing mixed, nothing lost
    r = run(out, "--seed", "1", "--overwrite")
    assert r.returncode == 0, r.stderr
    assert (out / "metrics.csv").read_bytes() != before
    assert not (out / ".lock").exists()


def test_a_full_disk_stops_the_run_before_it_computes(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk:
        t0 = time.monotonic()
        r = rrmbed("run", str(S3), "--scheme", "wmmse", "--runner", "local", "--slots",
                   "100000", "--out", str(disk / "run"))
        assert r.returncode == 2 and "No space left on device" in r.stderr, r.stderr
        assert time.monotonic() - t0 < 60  # 100000 WMMSE slots would take far longer


def test_a_killed_controller_leaves_every_slot_it_recorded_and_a_partial_summary(
        tmp_path: Path, spawn: Spawn) -> None:
    sets = ("--set", 'timing.clock="realtime"', "--set", 'timing.compute_model="fixed"')
    out = tmp_path / "killed"
    proc = spawn("run", str(S3), "--scheme", "round-robin", "--runner", "network", "--slots",
                 "3000", "--seed", "3", "--out", str(out), "--no-telemetry", *sets)
    pids = wait_for_slot(proc, out, 400)
    os.kill(pids["controller"], signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "the controller exited with code -9 after" in stderr, stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["partial"] and s["cause"] == "the controller exited with code -9"
    rows = read_csv(out / "metrics.csv")
    assert 400 <= s["slots"] == len(rows) < 3000
    assert (out / "metrics.csv").read_bytes().endswith(b"\r\n")  # whole rows only
    # the overhead so far, written as the run went from every process's beats: each node's
    # transmissions of the slots played, to within the ~1.5 s the figures can lag
    sent = {r["sender"]: int(r["messages"]) for r in read_csv(out / "overhead.csv")
            if r["kind"] == "transmit"}
    assert set(sent) == {"node-0", "node-1", "node-2"}
    assert all(len(rows) - 100 <= n <= len(rows) + 5 for n in sent.values()), (sent, len(rows))
    # the slots it recorded are the slots of the same run in memory
    clean = tmp_path / "clean"
    r = rrmbed("run", str(S3), "--scheme", "round-robin", "--runner", "local", "--slots",
               str(len(rows)), "--seed", "3", "--out", str(clean), *sets)
    assert r.returncode == 0, r.stderr
    assert rows == read_csv(clean / "metrics.csv")
    for role, pid in pids.items():
        assert not alive(pid), f"{role} (pid {pid}) left behind"


@pytest.mark.parametrize("runner", ["local", "network"])
def test_ctrl_c_keeps_the_slots_so_far_and_says_where_it_stopped(tmp_path: Path, spawn: Spawn,
                                                                 runner: str) -> None:
    out = tmp_path / runner
    proc = spawn("run", str(S3), "--scheme", "max-power", "--runner", runner, "--slots",
                 "1000000", "--seed", "2", "--out", str(out), "--no-telemetry")
    metrics = out / "metrics.csv"
    deadline = time.monotonic() + 90
    while not (metrics.exists() and metrics.read_bytes().count(b"\n") > 200):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode != 0
    s = json.loads((out / "summary.json").read_text())
    assert s["partial"] and "interrupted (Ctrl-C)" in s["cause"], s
    rows = read_csv(metrics)
    assert len(rows) >= 200 and s["slots"] >= len(rows) - 1
    assert [int(r["slot"]) for r in rows] == list(range(len(rows)))
    assert metrics.read_bytes().endswith(b"\r\n")


def test_a_disk_that_fills_mid_run_stops_it_with_whole_rows(tmp_path: Path) -> None:
    """1.1 MiB: the 1 MiB probe passes, the run's rows fill the rest within seconds."""
    with small_disk(tmp_path / "disk", "1100k") as disk:
        out = disk / "run"
        r = rrmbed("run", str(S3), "--scheme", "max-power", "--runner", "network", "--slots",
                   "1000000", "--out", str(out), "--no-telemetry", timeout=240)
        assert r.returncode != 0
        assert "No space left on device" in r.stderr, r.stderr[-3000:]
        data = (out / "metrics.csv").read_bytes()
        assert data.endswith(b"\r\n") and data.count(b"\r\n") > 100
        rows = read_csv(out / "metrics.csv")
        assert [int(x["slot"]) for x in rows] == list(range(len(rows)))


def test_weights_of_another_scenario_are_refused_before_any_process_starts(
        tmp_path: Path) -> None:
    """Issue 12, point 9: the probe's 7cell-k8 weights on 3cell-k2 over the network."""
    weights = seeded_weights(tmp_path / "w7.npz", "full", S7, 1)
    out = tmp_path / "run"
    r = rrmbed("run", str(S3), "--scheme", "full", "--runner", "network", "--slots", "10",
               "--weights", str(weights), "--out", str(out), "--no-telemetry")
    assert r.returncode == 2
    assert "policy input of 56 in the file, 6 on scenario 3cell-k2" in r.stderr, r.stderr
    assert not out.exists()  # no process started, no folder left
    r = rrmbed("run", str(S3), "--scheme", "full", "--runner", "network", "--slots", "10",
               "--weights", str(tmp_path), "--out", str(out), "--no-telemetry")
    assert r.returncode == 2 and not out.exists()
