"""Offline training of paper 003's power-control networks (MPGNN, MLP) on the K-user
interference channel: one process, one loop over a fixed training set.

The run's seed fixes everything: the training set of ``samples`` (M) independent channel
samples (:func:`channel_server.interference.sample_gains`, stream ``("ic-train",
"train")``), the validation set (``("ic-train", "validation")``), the order of the
mini-batches (``("ic-train", "batches")``) and the learner's initial weights (the registry's
``("learner", name)`` stream, through a ``torch.Generator``); torch runs on ``threads``
threads (one by default: the same seed gives the same weights file, byte for byte).

Each epoch visits the training set once in a fresh random order, in mini-batches of
``batch_size`` (64; the last one smaller), one Adam step each. After each epoch the
validation set is evaluated; the weights kept are those of the epoch with the best
validation loss (*choice*, ``select="best"``: the usual early stopping, so a network that
overfits a small M is judged at its best epoch; ``"last"`` keeps the final weights).
Supervised training imitates WMMSE (:func:`controller.baselines.ic.ic_wmmse`, from full
power) on the same samples: its power fractions are the targets.

A run directory gets ``training.csv`` (one row per epoch, epoch 0 the initial weights:
mean loss and sum rate of the epoch's batches, validation loss and sum rate, WMMSE's sum
rate on the validation set), ``weights.npz`` (a typed weights file: kind 'interference',
the scheme and its learner, for ``rrmbed run SCEN --scheme S --weights``), ``summary.json``
and ``training.png``.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from channel_server.interference import IcScenario, sample_gains, sum_rates
from controller.baselines.ic import ic_wmmse
from controller.evaluation.files import write_json
from controller.learners import registry
from controller.learners.gnn import (
    DENSE_POLICY,
    GRAPH_POLICY,
    GnnConfig,
    IcBatch,
    IcDims,
    IcLearner,
)
from controller.learners.threads import torch_threads
from node.schemes import SCHEMES, Scheme
from protocols.seeding import rng_for
from protocols.weights import WeightsArtifact

KIND = "interference"
Array = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
OnStep = Callable[[int, int], None]
"""``(steps done, steps in all)``."""
COLUMNS = ("epoch", "steps", "loss", "train_sum_rate", "val_loss", "val_sum_rate",
           "val_wmmse_sum_rate", "wall_s")
"""training.csv's columns (sum rates: mean per sample, bit/s/Hz)."""


@dataclass(frozen=True)
class IcTrainConfig:
    """Settings of one offline training run."""

    samples: int = 2000
    """M, training samples (independent channel draws), samples."""
    val_samples: int = 500
    """Validation samples (model selection and the curve), samples."""
    epochs: int = 50
    """Passes over the training set."""
    min_steps: int = 0
    """At least this many Adam steps: more epochs where the training set is small (the
    gap study trains every M for the same number of steps, so a small M measures fewer
    samples, not fewer updates)."""
    batch_size: int = 64
    """Samples per Adam step (IGCNet's 64)."""
    select: Literal["best", "last"] = "best"
    """Weights kept: the best validation epoch's, or the last epoch's."""
    threads: int = 1
    """torch threads (results may differ in the last bits between counts)."""
    learner: GnnConfig = field(default_factory=GnnConfig)
    """The network and its loss (mode, layers, widths, learning rate)."""

    def __post_init__(self) -> None:
        if self.samples < 1 or self.val_samples < 1:
            raise ValueError("samples and val_samples must be >= 1")
        if self.epochs < 0 or self.batch_size < 1 or self.threads < 1:
            raise ValueError("epochs must be >= 0, batch_size and threads >= 1")
        if self.select not in ("best", "last"):
            raise ValueError("select must be 'best' or 'last'")
        if self.min_steps < 0:
            raise ValueError("min_steps must be >= 0")

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.samples / self.batch_size)

    @property
    def n_epochs(self) -> int:
        """Epochs run: ``epochs``, or more to take ``min_steps`` steps."""
        return max(self.epochs, math.ceil(self.min_steps / self.steps_per_epoch))


# --------------------------------------------------------------------------- schemes


def trainable() -> list[Scheme]:
    """The interference schemes a learner trains (the MPGNN, the MLP), in table order."""
    return [s for s in SCHEMES.for_kind(KIND) if s.trainable]


def learner_of(scheme: Scheme) -> registry.LearnerSpec:
    """The learner that trains ``scheme`` (its first registered one)."""
    return registry.learner(scheme.learners[0])


def is_graph(scheme: Scheme) -> bool:
    """Its network is a GNN over the interference graph (weights fit any K)."""
    return learner_of(scheme).trains == GRAPH_POLICY


def scheme_by_policy(policy: str) -> Scheme:
    """The trainable scheme whose learner trains ``policy`` (GRAPH_POLICY or DENSE_POLICY)."""
    found = [s for s in trainable() if learner_of(s).trains == policy]
    if not found:
        raise ValueError(f"no interference scheme is trained as {policy!r}")
    return found[0]


def graph_scheme() -> Scheme:
    return scheme_by_policy(GRAPH_POLICY)


def dense_scheme() -> Scheme:
    return scheme_by_policy(DENSE_POLICY)


# --------------------------------------------------------------------------- data


def ic_dims(s: IcScenario) -> IcDims:
    return IcDims(s.k, s.radio.pmax_w, s.radio.noise_w)


@dataclass(frozen=True)
class Samples:
    """A set of channel samples with the reference powers a run needs."""

    gains: Array
    """``(N, K, K)`` linear gains, ``G[n, j, i]``: transmitter j to receiver i."""
    graph: BoolArray
    """``(N, K, K)`` interference graphs."""
    wmmse: Array
    """``(N, K)`` WMMSE's power fractions (from full power)."""

    def __len__(self) -> int:
        return len(self.gains)


def draw(s: IcScenario, seed: int, n: int, *stream: str | int) -> Samples:
    """``n`` samples from the stream ``(seed, *stream)``, with WMMSE's fractions."""
    gains, graph = sample_gains(s, rng_for(seed, *stream), n)
    return Samples(gains, graph, ic_wmmse(gains, s) / s.radio.pmax_w)


def mean_sum_rate(s: IcScenario, gains: Array, fractions: Array) -> float:
    """Mean sum rate per sample, bit/s/Hz, of power fractions (the numpy formula)."""
    return float(sum_rates(gains, fractions * s.radio.pmax_w, s.radio.noise_w).sum(-1).mean())


# --------------------------------------------------------------------------- training


@dataclass
class TrainResult:
    """A finished training."""

    learner: IcLearner
    """The learner, holding the selected weights."""
    curve: list[dict[str, float]]
    """training.csv's rows."""
    best_epoch: int
    """Epoch whose weights were kept (0: the initial weights)."""
    steps: int
    """Adam steps taken."""
    wall_s: float
    """Wall time of the training, seconds."""


def make_learner(s: IcScenario, scheme: Scheme, seed: int, cfg: GnnConfig) -> IcLearner:
    """The scheme's learner, initialised from the run's seed."""
    learner = learner_of(scheme).make(ic_dims(s), seed, cfg)
    if not isinstance(learner, IcLearner):
        raise TypeError(f"learner {learner_of(scheme).name!r} is not an interference learner")
    return learner


def _val_loss(learner: IcLearner, s: IcScenario, val: Samples) -> tuple[float, float]:
    """The mode's validation loss and the validation mean sum rate."""
    frac = learner.fractions(val.gains, val.graph)
    rate = mean_sum_rate(s, val.gains, frac)
    if learner.cfg.mode == "supervised":
        return float(np.mean((frac - val.wmmse) ** 2)), rate
    return -rate, rate


def train_ic(s: IcScenario, scheme: Scheme, seed: int, cfg: IcTrainConfig,
             on_step: OnStep | None = None, train: Samples | None = None,
             val: Samples | None = None) -> TrainResult:
    """Train ``scheme``'s network on ``s``; ``train``/``val``: sets drawn already (the
    study shares them between the networks), else drawn here from the seed."""
    train = train if train is not None else draw(s, seed, cfg.samples, "ic-train", "train")
    val = val if val is not None else draw(s, seed, cfg.val_samples, "ic-train", "validation")
    batches = rng_for(seed, "ic-train", "batches")
    n = len(train)
    per_epoch = math.ceil(n / cfg.batch_size)
    total = per_epoch * cfg.n_epochs
    val_wmmse = mean_sum_rate(s, val.gains, val.wmmse)
    t0 = time.perf_counter()
    with torch_threads(cfg.threads):
        learner = make_learner(s, scheme, seed, cfg.learner)
        if cfg.learner.standardize:
            learner.standardize(train.gains, train.graph)
        best_loss, val_rate = _val_loss(learner, s, val)
        best, best_epoch = learner.state(), 0
        curve = [{"epoch": 0, "steps": 0, "loss": math.nan, "train_sum_rate": math.nan,
                  "val_loss": best_loss, "val_sum_rate": val_rate,
                  "val_wmmse_sum_rate": val_wmmse, "wall_s": 0.0}]
        for epoch in range(1, cfg.n_epochs + 1):
            order = batches.permutation(n)
            losses, rates, sizes = [], [], []
            for b in range(per_epoch):
                idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
                m = learner.step(IcBatch(train.gains[idx], train.graph[idx], train.wmmse[idx]))
                losses.append(m["loss"])
                rates.append(m["sum_rate"])
                sizes.append(len(idx))
                if on_step is not None:
                    on_step(learner.version, total)
            loss, val_rate = _val_loss(learner, s, val)
            if loss < best_loss or cfg.select == "last":
                best_loss, best, best_epoch = loss, learner.state(), epoch
            curve.append({"epoch": epoch, "steps": learner.version,
                          "loss": float(np.average(losses, weights=sizes)),
                          "train_sum_rate": float(np.average(rates, weights=sizes)),
                          "val_loss": loss, "val_sum_rate": val_rate,
                          "val_wmmse_sum_rate": val_wmmse,
                          "wall_s": time.perf_counter() - t0})
        learner.restore(best)
    return TrainResult(learner, curve, best_epoch, learner.version, time.perf_counter() - t0)


# --------------------------------------------------------------------------- files


def artifact(s: IcScenario, scheme: Scheme, cfg: IcTrainConfig, seed: int,
             result: TrainResult) -> WeightsArtifact:
    """The typed weights file of a training: the MLP's dims name K (it fits one K only),
    the MPGNN's its layers (it runs at any K)."""
    spec = learner_of(scheme)
    lc = cfg.learner
    dims = {"n_links": s.k} if spec.trains == DENSE_POLICY else {"n_layers": lc.n_layers}
    best = result.curve[result.best_epoch]
    extra: dict[str, Any] = {
        "seed": seed, "scenario": s.name, "form": s.radio.form, "trained_n_links": s.k,
        "snr_db": s.radio.snr_db, "pmax_w": s.radio.pmax_w, "noise_w": s.radio.noise_w,
        "mode": lc.mode, "samples": cfg.samples, "epochs": cfg.n_epochs,
        "best_epoch": result.best_epoch, "select": cfg.select,
        "val_sum_rate": best["val_sum_rate"], "val_wmmse_sum_rate": best["val_wmmse_sum_rate"]}
    return WeightsArtifact.create(result.learner.get_variables(), scheme=scheme.name, kind=KIND,
                                  algo=spec.name, steps=result.steps, dims=dims, extra=extra)


def write_run(out: Path, s: IcScenario, scheme: Scheme, cfg: IcTrainConfig, seed: int,
              result: TrainResult) -> dict[str, Any]:
    """training.csv, weights.npz, summary.json and training.png into ``out``; the summary."""
    out.mkdir(parents=True, exist_ok=True)
    artifact(s, scheme, cfg, seed, result).save(out / "weights.npz")
    with (out / "training.csv").open("w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(COLUMNS)
        wr.writerows([row[c] if c in ("epoch", "steps") else repr(float(row[c]))
                      for c in COLUMNS] for row in result.curve)
    best = result.curve[result.best_epoch]
    summary = {
        "scenario": s.name, "scenario_source": s.source, "form": s.radio.form,
        "n_links": s.k, "scheme": scheme.name, "algo": learner_of(scheme).name, "seed": seed,
        "config": asdict(cfg), "steps": result.steps, "best_epoch": result.best_epoch,
        "val_sum_rate": best["val_sum_rate"], "val_wmmse_sum_rate": best["val_wmmse_sum_rate"],
        "fraction_of_wmmse": best["val_sum_rate"] / best["val_wmmse_sum_rate"],
        "initial_val_sum_rate": result.curve[0]["val_sum_rate"], "wall_s": result.wall_s,
        "weights": str(out / "weights.npz")}
    write_json(out / "summary.json", summary)
    plot_curve(result.curve, out / "training.png",
               f"{scheme.display} on {s.name} (K = {s.k}, {cfg.learner.mode}, M = "
               f"{cfg.samples}, seed {seed}); kept: epoch {result.best_epoch}",
               supervised=cfg.learner.mode == "supervised")
    return summary


def train_and_write(s: IcScenario, scheme: Scheme, seed: int, cfg: IcTrainConfig, out: Path,
                    on_step: OnStep | None = None) -> tuple[TrainResult, dict[str, Any]]:
    """Train, then write the run directory; the result and the summary."""
    result = train_ic(s, scheme, seed, cfg, on_step)
    return result, write_run(out, s, scheme, cfg, seed, result)


def plot_curve(curve: list[dict[str, float]], path: Path, title: str,
               supervised: bool = False) -> Path:
    """The loss (left) and the sum rates (right: training batches, validation, WMMSE on the
    validation set) against the epoch."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.8), dpi=130, layout="constrained")
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    ep = [r["epoch"] for r in curve]
    ax1.plot(ep[1:], [r["loss"] for r in curve[1:]], label="training (batch mean)")
    ax1.plot(ep, [r["val_loss"] for r in curve], label="validation")
    ax1.set_ylabel("MSE to WMMSE's power fractions" if supervised
                   else "loss = - sum rate (bit/s/Hz)")
    ax2.plot(ep[1:], [r["train_sum_rate"] for r in curve[1:]], label="training (batch mean)")
    ax2.plot(ep, [r["val_sum_rate"] for r in curve], label="validation")
    ax2.axhline(curve[0]["val_wmmse_sum_rate"], ls="--", color="tab:green",
                label="WMMSE (validation)")
    ax2.set_ylabel("sum rate (bit/s/Hz per sample)")
    for ax in (ax1, ax2):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
