"""Seed sweeps on Ray (`rrmbed train --backend ray`): a two-seed sweep on a local Ray
instance gives the serial run's weights and curves bit for bit (the wall-time column
aside), even when one seed's worker process is killed mid-run: the sweep runs that seed
again and says so."""

from __future__ import annotations

import csv
import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.helpers import SCENARIOS, Spawn, rrmbed

ARGS = ("train", str(SCENARIOS / "3cell-k2.toml"), "--steps", "500", "--episodes", "50",
        "--seeds", "0-1", "--validation-episodes", "20", "--imitation-drops", "100",
        "--imitation-epochs", "1")
FILES = ("seed-0/weights.npz", "seed-1/weights.npz", "best-weights.npz")


def curve(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return [{k: v for k, v in row.items() if k != "wall_s"} for row in csv.DictReader(f)]


@pytest.mark.timeout(900)
def test_a_ray_sweep_that_loses_a_worker_equals_the_serial_run(tmp_path: Path,
                                                               spawn: Spawn) -> None:
    serial, ray = tmp_path / "serial", tmp_path / "ray"
    r = rrmbed(*ARGS, "--out", str(serial), timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    proc = spawn(*ARGS, "--backend", "ray", "--out", str(ray))
    pid_file = ray / "workers" / "seed-1.pid"
    deadline = time.monotonic() + 240
    while not pid_file.is_file() or not pid_file.read_text().strip():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "seed 1 never started on a Ray worker"
        time.sleep(0.2)
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, out + err
    assert "seed 1: its Ray worker was lost" in out, out
    assert "attempt 2 of 3" in out
    for name in FILES:
        assert (ray / name).read_bytes() == (serial / name).read_bytes(), name
    for seed in (0, 1):
        assert curve(ray / f"seed-{seed}" / "metrics.csv") == curve(
            serial / f"seed-{seed}" / "metrics.csv")


@pytest.mark.timeout(900)
def test_v2x_compare_on_ray_equals_the_serial_run(tmp_path: Path) -> None:
    args = ("v2x", "compare", str(SCENARIOS / "v2x-manhattan.toml"), "--episodes", "2",
            "--eval-episodes", "2", "--seeds", "0-1")
    for backend in ("serial", "ray"):
        r = rrmbed(*args, "--backend", backend, "--out", str(tmp_path / backend), timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
    serial, ray = (json.loads((tmp_path / b / "results.json").read_text())
                   for b in ("serial", "ray"))
    assert ray == serial
    assert [row["seed"] for row in serial["marl-dqn"]] == [0, 1]
