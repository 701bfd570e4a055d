"""Issue 12, point 3 (part): the run folder is checked before any work starts."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import S3, rrmbed


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
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)], check=True)
    try:
        t0 = time.monotonic()
        r = rrmbed("run", str(S3), "--scheme", "wmmse", "--runner", "local", "--slots",
                   "100000", "--out", str(disk / "run"))
        assert r.returncode == 2 and "No space left on device" in r.stderr, r.stderr
        assert time.monotonic() - t0 < 60  # 100000 WMMSE slots would take far longer
    finally:
        subprocess.run(["umount", str(disk)], check=True)
