"""``rrmbed gnn``: paper 003 on the K-user interference channel — train the MPGNN or the MLP
(:mod:`controller.training.gnn_train`) and measure their optimality gap against K and M
(:mod:`controller.evaluation.gnn_gap`)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from controller.cli.common import (
    SchemeChoice,
    cli,
    console,
    number_list,
    progress_bar,
    resolve_file,
)
from node.schemes import SCHEMES

KIND = "interference"
MODES = ("unsupervised", "supervised")
QUICK = {"ks": "3,5,8", "m": 200, "ms": "100,200", "m_k": 5, "seeds": "0,1", "steps": 20,
         "val_samples": 100, "test_samples": 100, "random_starts": 3, "gen_k": 5,
         "gen_factors": "2"}
"""--quick: the settings of a smoke run (well under a minute), for options not given."""
OUTPUTS = ("results.csv", "generalization.csv", "results.json", "gap_vs_k.png",
           "gap_vs_m.png", "ratio_vs_sqrtk.png", "generalization.png")
"""What a study writes (and --overwrite removes)."""


def _default_arch() -> str | None:
    """The first trainable interference scheme in table order (the MPGNN)."""
    return next((s.name for s in SCHEMES.for_kind(KIND) if s.trainable), None)


def _learner_options(layers: int, lr: float, mlp_hidden: str, dtype: str,
                     mode: str) -> Any:
    from controller.learners.gnn import GnnConfig

    try:
        return GnnConfig(mode=mode,  # type: ignore[arg-type]
                         n_layers=layers, learning_rate=lr, dtype=dtype,  # type: ignore[arg-type]
                         mlp_hidden=number_list(mlp_hidden, "--mlp-hidden", minimum=1))
    except ValueError as e:
        raise click.BadParameter(str(e)) from e


@cli.group()
def gnn() -> None:
    """K-user interference channel power control (paper 003): the message-passing GNN and
    the centralized MLP, trained offline; their optimality gap against K and M."""


@gnn.command("train")
@click.argument("scenario", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                default="scenarios/ic-gauss-k10.toml")
@click.option("--arch", type=SchemeChoice(KIND, lambda s: s.trainable),
              default=_default_arch(), show_default=True,
              help="Network: the message-passing GNN (weights for any K; runs as rounds of "
                   "messages between link nodes) or the centralized MLP over all K^2 gains "
                   "(weights for the scenario's K only).")
@click.option("--mode", type=click.Choice(MODES), default="unsupervised", show_default=True,
              help="unsupervised: loss = minus the mean sum rate; supervised: mean squared "
                   "error to WMMSE's power fractions (WMMSE from full power on every "
                   "training sample).")
@click.option("--samples", type=click.IntRange(1), default=2000, show_default=True,
              help="M, training samples: independent channel draws from the seed, fixed "
                   "for the run.")
@click.option("--val-samples", type=click.IntRange(1), default=500, show_default=True,
              help="Validation samples (another stream of the seed): the curve and the "
                   "epoch whose weights are kept.")
@click.option("--epochs", type=click.IntRange(0), default=50, show_default=True,
              help="Passes over the training set, in mini-batches of --batch-size.")
@click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True,
              help="Samples per Adam step.")
@click.option("--lr", type=click.FloatRange(min=0.0, min_open=True), default=1e-3,
              show_default=True, help="Adam learning rate.")
@click.option("--layers", type=click.IntRange(1), default=3, show_default=True,
              help="MPGNN: times its shared layer is applied (rounds of messages).")
@click.option("--mlp-hidden", default="200,200,200", show_default=True,
              help="MLP: hidden widths, comma-separated.")
@click.option("--select", type=click.Choice(["best", "last"]), default="best",
              show_default=True, help="Weights kept: the epoch with the best validation "
              "loss, or the last epoch's.")
@click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float32",
              show_default=True, help="Precision of the training and of the weights file.")
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True,
              help="torch threads (the same seed and thread count give the same weights).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="The run's seed: training and validation sets, batch order, initial "
                   "weights.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Scenario overrides, e.g. --set radio.n_links=20.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Run directory (default runs/gnn-train-<scenario>-<arch>-<mode>-s<seed>).")
@click.option("--overwrite", is_flag=True, help="Replace the run already in --out.")
def gnn_train(scenario: Path, arch: str, mode: str, samples: int, val_samples: int,
              epochs: int, batch_size: int, lr: float, layers: int, mlp_hidden: str,
              select: str, dtype: str, threads: int, seed: int, sets: tuple[str, ...],
              out: Path | None, overwrite: bool) -> None:
    """Train the MPGNN or the MLP on SCENARIO (an interference scenario).

    Writes OUT/weights.npz (for `rrmbed run SCENARIO --scheme ARCH --weights`),
    OUT/training.csv (per epoch: loss, training and validation sum rate, WMMSE's on the
    validation set), OUT/summary.json and OUT/training.png.
    """
    from controller.evaluation.files import OutError, claim_out
    from controller.training.gnn_train import IcTrainConfig, train_and_write

    resolved = resolve_file(scenario, sets)
    if resolved.kind.name != KIND:
        raise click.ClickException(f"{scenario}: a {resolved.kind.name} scenario; this "
                                   f"command takes an {KIND} one")
    sc = resolved.scenario
    scheme = SCHEMES.get(KIND, arch)
    try:
        cfg = IcTrainConfig(samples=samples, val_samples=val_samples, epochs=epochs,
                            batch_size=batch_size, select=select,  # type: ignore[arg-type]
                            threads=threads,
                            learner=_learner_options(layers, lr, mlp_hidden, dtype, mode))
    except ValueError as e:
        raise click.BadParameter(str(e)) from e
    out = out or Path("runs") / f"gnn-train-{sc.name}-{arch}-{mode}-s{seed}"
    try:
        lock = claim_out(out, overwrite)
    except OutError as e:
        raise click.BadParameter(str(e), param_hint="--out") from e
    with lock, progress_bar() as bar:
        task = bar.add_task(f"{arch} on {sc.name} ({mode}, M = {samples})", total=1)
        result, summary = train_and_write(
            sc, scheme, seed, cfg, out, lambda d, t: bar.update(task, completed=d, total=t))
    console.print(f"{arch}: validation sum rate {summary['val_sum_rate']:.3f} bit/s/Hz "
                  f"(epoch {result.best_epoch} of {cfg.n_epochs}), WMMSE "
                  f"{summary['val_wmmse_sum_rate']:.3f}: {summary['fraction_of_wmmse']:.3f} "
                  f"of WMMSE; {result.steps} steps in {result.wall_s:.1f} s")
    click.echo(f"weights: {out / 'weights.npz'}")


@gnn.command("gap")
@click.option("--form", type=click.Choice(["gaussian", "geometric"]), default="gaussian",
              show_default=True, help="Channel of the K and M sweeps: CN(0, 1) gains at one "
              "SNR, or links dropped in a square (pathloss and Rayleigh fading).")
@click.option("--snr-db", type=float, default=10.0, show_default=True,
              help="Gaussian form: Pmax / noise in dB (IGCNet's noise 0.1 at Pmax 1 is 10 dB).")
@click.option("--density", type=click.FloatRange(min=0.0, min_open=True), default=50.0,
              show_default=True, help="Geometric form: links per km^2; the square's side "
              "grows with K (50: the 50 links in 1000 m x 1000 m of scenarios/ic-geo-k50).")
@click.option("--ks", default="5,10,20,40", show_default=True,
              help="K of the K sweep, comma-separated.")
@click.option("--m", "m", type=click.IntRange(1), default=1000, show_default=True,
              help="M, training samples, of the K sweep (and of the generalization's GNN).")
@click.option("--ms", default="250,500,1000,2000", show_default=True,
              help="M of the M sweep (at K = --m-k), comma-separated; '' skips it.")
@click.option("--m-k", type=click.IntRange(1), default=10, show_default=True,
              help="K of the M sweep.")
@click.option("--seeds", default="0,1,2", show_default=True,
              help="Seeds, comma-separated: each its own training, validation and test sets "
                   "and initial weights; figures show mean ± std over them.")
@click.option("--mode", type=click.Choice(MODES), default="unsupervised", show_default=True,
              help="How both networks are trained: minus the sum rate, or imitating WMMSE.")
@click.option("--steps", type=click.IntRange(1), default=1000, show_default=True,
              help="Adam steps of every training, whatever its M (whole epochs: at least "
                   "this many; the weights of the best validation epoch are tested).")
@click.option("--layers", type=click.IntRange(1), default=3, show_default=True,
              help="MPGNN layers (rounds of messages).")
@click.option("--val-samples", type=click.IntRange(1), default=500, show_default=True,
              help="Validation samples of every training.")
@click.option("--test-samples", type=click.IntRange(1), default=500, show_default=True,
              help="Held-out test samples per form, K and seed (the gap is measured there).")
@click.option("--random-starts", type=click.IntRange(0), default=20, show_default=True,
              help="Reference where no optimum is certified (K > 6, or the geometric form): "
                   "the best of WMMSE from full power and this many random starts.")
@click.option("--gen-k", type=click.IntRange(1), default=10, show_default=True,
              help="Generalization: K the GNN is trained at (with M = --m).")
@click.option("--gen-factors", default="2,5", show_default=True,
              help="Generalization: test at --gen-k times these, comma-separated.")
@click.option("--gen-forms", default="gaussian,geometric", show_default=True,
              help="Generalization: forms, comma-separated ('' skips it); the geometric one "
                   "is also tested on a denser layout (--dense-factor).")
@click.option("--dense-factor", type=click.FloatRange(min=0.0, min_open=True), default=4.0,
              show_default=True, help="Generalization: the denser layout has this many "
              "times the links per km^2 (a smaller square, the same K).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("runs/gnn-gap"), show_default=True,
              help="Folder of the results and figures.")
@click.option("--overwrite", is_flag=True, help="Replace the study already in --out.")
@click.option("--quick", is_flag=True,
              help="Smoke-run settings for the options not given: " + ", ".join(
                  f"--{k.replace('_', '-')} {v}" for k, v in QUICK.items()) + ".")
@click.pass_context
def gnn_gap(ctx: click.Context, form: str, snr_db: float, density: float, ks: str, m: int,
            ms: str, m_k: int, seeds: str, mode: str, steps: int, layers: int,
            val_samples: int, test_samples: int, random_starts: int, gen_k: int,
            gen_factors: str, gen_forms: str, dense_factor: float, out: Path,
            overwrite: bool, quick: bool) -> None:
    """Paper 003's measure: the optimality gap of the MLP and the MPGNN against K and M.

    Both networks train on the same samples per (K, M, seed) and are tested on a held-out
    set; gap = 1 - sum rate / reference, reference = the certified optimum (Gaussian form,
    K <= 6) or the best of WMMSE from many starts. The ratio gap_MLP / gap_GNN is fitted
    against sqrt(K) (the paper's claim). A GNN trained at --gen-k is tested at larger K and
    on a denser layout without retraining.

    OUT gets results.csv and generalization.csv (a row as each finishes: Ctrl-C keeps them
    and draws the figures of what finished), results.json (with the fits),
    gap_vs_k.png, gap_vs_m.png, ratio_vs_sqrtk.png and generalization.png.
    """
    from controller.evaluation.gnn_gap import GapConfig, analysis, jobs, study
    from controller.training.gnn_train import IcTrainConfig

    values: dict[str, Any] = dict(ks=ks, m=m, ms=ms, m_k=m_k, seeds=seeds, steps=steps,
                                  val_samples=val_samples, test_samples=test_samples,
                                  random_starts=random_starts, gen_k=gen_k,
                                  gen_factors=gen_factors)
    if quick:
        for k, v in QUICK.items():
            if ctx.get_parameter_source(k) == click.core.ParameterSource.DEFAULT:
                values[k] = v
    learner = _learner_options(layers, 1e-3, "200,200,200", "float32", mode)
    try:
        forms = tuple(f.strip() for f in gen_forms.split(",") if f.strip())
        cfg = GapConfig(
            form=form, snr_db=snr_db, density_per_km2=density,  # type: ignore[arg-type]
            ks=number_list(str(values["ks"]), "--ks", minimum=1), m=int(values["m"]),
            ms=(number_list(str(values["ms"]), "--ms", minimum=1)
                if str(values["ms"]).strip() else ()),
            m_k=int(values["m_k"]), seeds=number_list(str(values["seeds"]), "--seeds"),
            train=IcTrainConfig(epochs=1, min_steps=int(values["steps"]),
                                val_samples=int(values["val_samples"]), learner=learner),
            test_samples=int(values["test_samples"]),
            random_starts=int(values["random_starts"]), gen_k=int(values["gen_k"]),
            gen_factors=(number_list(str(values["gen_factors"]), "--gen-factors", minimum=1)
                         if str(values["gen_factors"]).strip() else ()),
            gen_forms=forms, dense_factor=dense_factor)  # type: ignore[arg-type]
    except ValueError as e:
        raise click.BadParameter(str(e)) from e
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise click.BadParameter(f"{out} already holds files; pass --overwrite to replace "
                                     "its study, or choose another folder", param_hint="--out")
        if not (out / "results.csv").exists():
            raise click.BadParameter(f"{out} holds no study (no results.csv); --overwrite "
                                     "only replaces one", param_hint="--out")
        for name in OUTPUTS:
            (out / name).unlink(missing_ok=True)
    planned = jobs(cfg)
    console.print(f"gnn gap: {len(planned)} training sets ({len(cfg.ks)} K x "
                  f"{len(cfg.seeds)} seeds, M sweep {list(cfg.ms)} at K = {cfg.m_k}, "
                  f"generalization {list(cfg.gen_forms)}), {cfg.train.min_steps} steps each, "
                  f"{cfg.train.learner.mode}, into {out}")
    t0 = time.perf_counter()
    with progress_bar() as bar:
        task = bar.add_task("gnn gap", total=1)

        def progress(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=total, description=what)

        try:
            res, table = study(cfg, out, progress, console_note=bar.console.print)
        except KeyboardInterrupt:
            bar.stop()
            console.print(f"[red]interrupted[/red]: what finished is in {out / 'results.csv'} "
                          f"and {out / 'generalization.csv'}, its figures in {out}")
            sys.exit(130)
    Console(width=max(150, Console().width)).print(table)
    a = analysis(cfg, res)
    for p in a["ratios"]:
        click.echo(f"K = {p['n_links']:>3}: gap MLP / gap GNN = {p['ratio']:.2f} "
                   f"(sqrt(K) = {p['sqrt_k']:.2f}; reference: {p['reference']})")
    click.echo(f"sqrt(K) claim, ratio of the mean gaps: {a['verdict']}")
    click.echo(f"sqrt(K) claim, every seed's ratio: {a['verdict_seeds']}")
    click.echo(f"wall time: {time.perf_counter() - t0:.0f} s")
    for name in OUTPUTS:
        if (out / name).exists():
            click.echo(f"{name}: {out / name}")
