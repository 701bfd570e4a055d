"""Issue 12, point 2: the pure checks roles apply to what they receive, and result files
that are always valid JSON and never half-written."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from controller.evaluation.files import OutError, claim_out, write_json
from protocols.validate import Rejected, check_address, check_array, check_indices
from tests.helpers import small_disk

# ----------------------------------------------------------------------------- pure checks

def test_check_array_names_shape_range_and_non_finite_values() -> None:
    ok = np.array([0.0, 1.0])
    assert check_array(ok, "p", (2,), 0.0, 1.0) is ok
    for bad, word in ((np.array([0.0, np.nan]), "NaN"), (np.array([0.0, 2.0]), "outside"),
                      (np.zeros(3), "shape"), (np.array(["a", "b"]), "numeric"),
                      ([0.0, 1.0], "numeric")):
        with pytest.raises(Rejected, match=word):
            check_array(bad, "p", (2,), 0.0, 1.0)


def test_check_indices_and_address() -> None:
    assert check_indices([2, 0], "order", 3) == [2, 0]
    for bad in ([3], [-1], [1, 1]):
        with pytest.raises(Rejected):
            check_indices(bad, "order", 3)
    for good in ("tcp://127.0.0.1:5555", "tcp://node-1:40000", "tcp://[::1]:1",
                 "ipc:///tmp/x.sock", "inproc://node-0"):
        assert check_address(good) == good
    for bad in ("garbage", "tcp://host", "tcp://a b:1", "http://x:1", ""):
        with pytest.raises(Rejected, match="address"):
            check_address(bad)


def test_summary_json_is_valid_json_and_written_atomically(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    write_json(path, {"a": math.nan, "b": [1.0, math.inf], "c": np.float64(2.5),
                      "d": np.array([1, 2])})
    assert json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(c)) == {
        "a": None, "b": [1.0, None], "c": 2.5, "d": [1, 2]}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no temporary left


# ------------------------------------------------------------------------- the run folder


def test_out_is_refused_when_it_holds_files_and_overwrite_replaces_only_runs(
        tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").write_text("old")
    with pytest.raises(OutError, match="--overwrite"):
        claim_out(run, overwrite=False)
    assert (run / "metrics.csv").read_text() == "old"  # nothing lost
    with claim_out(run, overwrite=True):
        assert [p.name for p in run.iterdir()] == [".lock"]  # the old run is gone
    other = tmp_path / "home"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    with pytest.raises(OutError, match="not an rrmbed run directory"):
        claim_out(other, overwrite=True)
    assert (other / "thesis.tex").read_text() == "precious"
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutError, match="is a file"):
        claim_out(tmp_path / "file", overwrite=False)


def test_a_second_run_on_the_same_out_is_refused(tmp_path: Path) -> None:
    with claim_out(tmp_path / "run", overwrite=False), pytest.raises(OutError,
                                                                      match="another run"):
        claim_out(tmp_path / "run", overwrite=True)
    with claim_out(tmp_path / "run", overwrite=True):  # free again once the first is done
        pass


def test_a_full_disk_is_found_before_the_run(tmp_path: Path) -> None:
    """A 256 KiB tmpfs: the 1 MiB probe does not fit."""
    with small_disk(tmp_path / "disk") as disk:
        with pytest.raises(OutError, match="No space left"):
            claim_out(disk / "run", overwrite=False)
        assert [p.name for p in (disk / "run").iterdir()] == [".lock"]  # the probe is gone
