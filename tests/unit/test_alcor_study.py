"""The fixed penalty DNN learns its demands, and ``rrmbed alcor study`` runs end to end on a
tiny setting: every file, a row per method x phase, the paper's numbers beside ours."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

import controller.cli  # noqa: F401  (imports the command modules, ours among them)
from controller.alcor.channels import GaussianStream
from controller.alcor.metrics import violation
from controller.alcor.penalty_dnn import PenaltyDnnConfig, train_penalty_dnn
from controller.alcor.run import run_fixed
from controller.cli.common import cli


def test_penalty_dnn_meets_its_training_demands() -> None:
    train = GaussianStream(3, 15.0, 0, "train")
    s = train.scenario
    u = np.array([0.0, 2.0, 0.0])
    dnn = train_penalty_dnn(lambda k, m: train.take(k * m, m), u, s.radio.noise_w, 1.0,
                            PenaltyDnnConfig(hidden=(32, 32), batch=256, steps=150, lr=3e-3), 0)
    rates = run_fixed(GaussianStream(3, 15.0, 0), dnn, 1000).rates
    assert violation(u, rates.mean(axis=0)) < 10.0
    assert dnn.curve[-1] < dnn.curve[0]


def test_study_cli_tiny(tmp_path: Path) -> None:
    out = tmp_path / "study"
    res = CliRunner().invoke(cli, ["alcor", "study", "--ns", "5", "--slots", "300",
                                   "--dnn-steps", "5", "--opt-instances", "3",
                                   "--seven-cell", "7", "--recovery-window", "100",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader((out / "results.csv").open()))
    # 2 settings x 3 phases x (ALCOR, URA alone, fixed DNN, per-instance)
    assert len(rows) == 2 * 3 * 4
    data = json.loads((out / "results.json").read_text())
    assert len(data["rows"]) == len(rows)
    alcor_u1 = [r for r in rows if r["family"] == "alcor" and r["setting"] == "gaussian"
                and r["phase"] == "0"]
    assert alcor_u1[0]["paper_sum_rate"] == "5.27"
    for f in ("recovery-gaussian-n5.png", "violation-vs-n.png", "sum-rate-vs-n.png",
              "trace-gaussian-n5.npz"):
        assert (out / f).stat().st_size > 0
    assert "ALCOR study" in res.output
