"""Golden replay: every run of tests/golden/runs.py, run again with the CLI, writes
files whose (canonical) hashes equal those recorded on the pre-redesign commit in
tests/golden/hashes.json. See tests/golden/README.md for what is hashed and excluded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.golden.runs import HASHES, RUNS, GoldenRun, execute, hash_run

RECORDED: dict[str, dict[str, str]] = json.loads(HASHES.read_text())

DELIBERATE = {
    "overhead.csv of a local run": (
        "the local runner is the in-memory pump over the network runner's own roles since "
        "the redesign: it meters the same bytes, so its overhead.csv must equal the recorded "
        "network run's (hello/start rows masked as for every run); before, it metered "
        "nothing and wrote a header-only file"),
}
"""Differences from the recording that the redesign makes on purpose, with the reason."""


def expected(run: GoldenRun, name: str) -> str | None:
    """The hash ``name`` of ``run`` must have now: the recorded one, or the one a
    deliberate change (DELIBERATE) makes it."""
    twin = run.name.removesuffix("-local") + "-network"
    if name == "overhead.csv" and run.name.endswith("-local") and twin in RECORDED:
        return RECORDED[twin]["overhead.csv"]
    return RECORDED[run.name].get(name)


def test_the_recording_covers_exactly_the_run_list() -> None:
    assert sorted(RECORDED) == sorted(r.name for r in RUNS)
    for run in RUNS:
        assert sorted(RECORDED[run.name]) == sorted(run.files), run.name


@pytest.mark.parametrize("run", RUNS, ids=[r.name for r in RUNS])
def test_golden_run(run: GoldenRun, tmp_path: Path) -> None:
    want = RECORDED.get(run.name)
    assert want is not None, f"golden run {run.name} is not in {HASHES}"
    try:
        out = execute(run, tmp_path)
    except RuntimeError as e:
        pytest.fail(str(e))
    got = hash_run(out, run.files)
    bad = [f"{run.name}: {f} has sha256 {got[f]}, expected {expected(run, f)}"
           for f in run.files if got[f] != expected(run, f)]
    assert not bad, ("golden run output changed:\n  " + "\n  ".join(bad)
                     + f"\n(run directory: {out}; command: {' '.join(run.command(out))})")
