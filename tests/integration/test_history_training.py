"""The history checker on a real network training run (issue 12 point 6): every update's
experience came once and was received, nodes only moved to newer weights and never
decided with weights older than those deployed for the slot, nothing was lost on any
connection, the meter agrees."""

from __future__ import annotations

import json
from pathlib import Path

from controller.evaluation.history import check, load
from tests.helpers import S3, rrmbed


def test_a_network_training_run_keeps_every_history_property(tmp_path: Path) -> None:
    out = tmp_path / "train"
    r = rrmbed("train", str(S3), "--scheme", "round-robin", "--runner", "network", "--steps",
               "96", "--episodes", "8", "--imitate", "none", "--out", str(out), "--history")
    assert r.returncode == 0, r.stdout + r.stderr
    run = out / "seed-0"
    assert check(run) == []
    updates = [json.loads(line) for line in (run / "updates.jsonl").read_text().splitlines()]
    assert [u["version"] for u in updates] == [1, 2, 3, 4]
    # each node went through the versions deployed to it, in order, the last update landing
    # after the final slot
    for inc in load(run / "history"):
        if inc.name.startswith("node-"):
            versions = sorted({row[7] for row in inc.rows})
            assert versions == [0, 1, 2, 3], (inc.name, versions)
    done = rrmbed("history", str(run))
    assert done.returncode == 0 and "every check holds" in done.stdout, done.stdout
