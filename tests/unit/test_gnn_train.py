"""Offline training of paper 003's networks (controller.training.gnn_train): unsupervised
training raises the held-out sum rate above the initial weights' and random power's,
supervised training brings the powers towards WMMSE's, and a run directory holds what it
says."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from channel_server.interference import IcScenario, ic_scenario_from_dict
from controller.baselines.ic import ic_random
from controller.learners.gnn import GnnConfig
from controller.training.gnn_train import (
    COLUMNS,
    IcTrainConfig,
    draw,
    mean_sum_rate,
    train_and_write,
    train_ic,
    trainable,
)
from node.mpgnn import Mpgnn
from node.schemes import Scheme
from protocols.seeding import rng_for
from protocols.weights import load


def k5() -> IcScenario:
    return ic_scenario_from_dict({"name": "ic-gauss-k5", "radio": {"n_links": 5}})


@pytest.mark.parametrize("scheme", trainable(), ids=lambda s: s.name)
def test_unsupervised_training_beats_its_start_and_random_power(scheme: Scheme) -> None:
    s = k5()
    test = draw(s, 9, 400, "held-out")
    cfg = IcTrainConfig(samples=640, val_samples=200, epochs=1, min_steps=300)
    res = train_ic(s, scheme, 0, cfg)
    assert res.steps == 300 and res.curve[-1]["epoch"] == 30
    rate = mean_sum_rate(s, test.gains, res.learner.fractions(test.gains, test.graph))
    start = train_ic(s, scheme, 0, IcTrainConfig(samples=640, val_samples=200, epochs=0))
    initial = mean_sum_rate(s, test.gains, start.learner.fractions(test.gains, test.graph))
    random = mean_sum_rate(s, test.gains, ic_random(test.gains, s, rng_for(0, "r")) /
                           s.radio.pmax_w)
    wmmse = mean_sum_rate(s, test.gains, test.wmmse)
    assert rate > initial + 0.5
    assert rate > random + 0.5
    assert rate > 0.7 * wmmse
    assert res.curve[res.best_epoch]["val_sum_rate"] == max(r["val_sum_rate"] for r in res.curve)


def test_supervised_training_imitates_wmmse() -> None:
    s = k5()
    cfg = IcTrainConfig(samples=640, val_samples=200, epochs=10,
                        learner=GnnConfig(mode="supervised"))
    scheme = trainable()[1]  # the MLP learns fastest
    res = train_ic(s, scheme, 1, cfg)
    first, best = res.curve[0]["val_loss"], res.curve[res.best_epoch]["val_loss"]
    assert best < 0.6 * first
    test = draw(s, 9, 300, "held-out")
    mse = float(np.mean((res.learner.fractions(test.gains, test.graph) - test.wmmse) ** 2))
    assert mse < 0.6 * first


def test_select_last_keeps_the_last_epoch() -> None:
    s = k5()
    res = train_ic(s, trainable()[0], 0, IcTrainConfig(samples=128, val_samples=32, epochs=3,
                                                       select="last"))
    assert res.best_epoch == 3 and res.steps == 6


def test_the_run_directory(tmp_path: Path) -> None:
    s = k5()
    scheme = trainable()[0]
    cfg = IcTrainConfig(samples=128, val_samples=32, epochs=2)
    res, summary = train_and_write(s, scheme, 4, cfg, tmp_path / "run")
    with (tmp_path / "run" / "training.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2] and tuple(rows[0]) == COLUMNS
    art = load(tmp_path / "run" / "weights.npz")
    Mpgnn.from_arrays(art.arrays)
    assert art.meta.extra["seed"] == 4 and art.meta.extra["samples"] == 128
    on_disk = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert on_disk["steps"] == res.steps == 4 and on_disk["scheme"] == scheme.name
    assert on_disk["fraction_of_wmmse"] == pytest.approx(
        summary["val_sum_rate"] / summary["val_wmmse_sum_rate"])
    assert (tmp_path / "run" / "training.png").stat().st_size > 10_000
