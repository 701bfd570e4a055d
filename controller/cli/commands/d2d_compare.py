"""``rrmbed d2d compare``: paper 002's figures (Fig. 6-11) for every D2D scheme, N and seed
(:mod:`controller.evaluation.d2d_compare`)."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from controller.cli.commands.d2d import d2d, learning_options
from controller.cli.common import console, number_list, parse_overrides, progress_bar
from node.schemes import SCHEMES

QUICK = {"ns": "10,20", "lambdas": "1,3", "seeds": "0,1", "slots": 400, "random_slots": 200,
         "eval_slots": 100, "window": 50, "actor_hidden": "32,16",
         "critic_hidden": "64,32,16", "batch_size": 32}
"""--quick: the settings of a smoke run (a few minutes), for options not given."""
OUTPUTS = ("results.csv", "results.json", "training_curves.csv", "errors.txt", "runs")
"""What a comparison writes besides its figures (fig*.png / fig*.csv)."""


@d2d.command("compare")
@click.option("--ns", default="10,20,30,40,50", show_default=True,
              help="Numbers of D2D pairs N (Fig. 7-9), comma-separated; scenarios/d2d-n<N>.toml, "
                   "else d2d-n10.toml with N pairs.")
@click.option("--lambdas", default="1,2,3,5,9", show_default=True,
              help="NAAC's lambda values for Fig. 10-11 (at N = --sweep-n), comma-separated; "
                   "'' skips the sweep.")
@click.option("--seeds", default="0,1,2", show_default=True,
              help="Seeds, comma-separated: each one its own drop, fading and learner; the "
                   "figures show mean ± std over them.")
@click.option("--slots", type=click.IntRange(1), default=5000, show_default=True,
              help="Training slots per trained scheme (the random warm-up included); an "
                   "online scheme learns this long in its run before it is measured.")
@click.option("--random-slots", type=click.IntRange(0), default=2000, show_default=True,
              help="Slots of random allocation that start each training.")
@click.option("--eval-slots", type=click.IntRange(1), default=1000, show_default=True,
              help="Slots of each evaluation: the last slots of a run of --slots + "
                   "--eval-slots (fading no training saw; trained actors act greedily on "
                   "the drop they trained on).")
@click.option("--window", type=click.IntRange(1), default=100, show_default=True,
              help="Slots per point of the training curves (Fig. 6).")
@click.option("--schemes", default="", help="Schemes to compare, comma-separated (default: "
              "every registered D2D scheme: " + ", ".join(SCHEMES.names("d2d-underlay")) + ").")
@click.option("--neighbours", type=click.IntRange(1), default=3, show_default=True,
              help="NAAC's lambda in the N sweep and Fig. 6.")
@click.option("--sweep-n", type=click.IntRange(1), default=10, show_default=True,
              help="N of the lambda sweep.")
@click.option("--actor-hidden", default="512,128", show_default=True,
              help="Actor (and DQN) hidden widths, comma-separated (the paper's: 512,128).")
@click.option("--critic-hidden", default="1024,512,256", show_default=True,
              help="Critic hidden widths, comma-separated (the paper's: 1024,512,256).")
@click.option("--batch-size", type=click.IntRange(1), default=128, show_default=True,
              help="Slots per update (the paper gives none).")
@learning_options
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Scenario override for every N, e.g. --set radio.bs_power_dbm=36 (46 dBm "
                   "spread over the 10 RBs instead of on each).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("runs/d2d-compare"), show_default=True,
              help="Folder of the figures, the results and every run.")
@click.option("--overwrite", is_flag=True, help="Replace the comparison already in --out.")
@click.option("--jobs", type=click.IntRange(1), default=1, show_default=True,
              help="Runs side by side, each in its own worker process (torch with this "
                   "process's thread count: the same results as --jobs 1, in about 1/J of "
                   "the time on J free cores).")
@click.option("--quick", is_flag=True,
              help="Smoke-run settings for the options not given: " + ", ".join(
                  f"--{k.replace('_', '-')} {v}" for k, v in QUICK.items()) + ".")
@click.pass_context
def d2d_compare(ctx: click.Context, ns: str, lambdas: str, seeds: str, slots: int,
                random_slots: int, eval_slots: int, window: int, schemes: str, neighbours: int,
                sweep_n: int, actor_hidden: str, critic_hidden: str, batch_size: int,
                gamma: float, actor_update: str, entropy: float, sets: tuple[str, ...], out: Path,
                overwrite: bool, jobs: int, quick: bool) -> None:
    """Paper 002's figures, PNG and CSV, from one command.

    Every D2D scheme on every N and seed, with the local runner (in this process, or
    --jobs worker processes side by side): the schemes
    that train (MAAC, NAAC, IAC, DQN, ...) are trained as `rrmbed d2d train` does, then
    their weights run greedily as `rrmbed run --runner local --weights` does, on the same
    seed; the online schemes (SLA, Q-learning) and the fixed rules run without weights.
    Every run is --slots + --eval-slots slots long and is measured on its last
    --eval-slots: the same slots of the same channel for every scheme, and fading that
    no training saw (the first --slots slots replay the training's fading).

    OUT gets fig6_training (total reward during training, N = 10), fig7_cue_outage,
    fig8_d2d_outage, fig9_d2d_sum_rate (against N), fig10_outage_lambda and
    fig11_sum_rate_lambda (NAAC against lambda, MAAC as reference), each .png and .csv;
    results.csv (one row per scheme, N, lambda, seed, appended as each finishes: Ctrl-C
    keeps them and draws the figures of what finished), results.json, training_curves.csv
    and runs/ (every weights file and run directory). A run that fails is reported (its
    traceback in errors.txt) and the others carry on; the command then exits 1.
    """
    from controller.evaluation.d2d_compare import D2dCompareConfig, compare
    from controller.learners.maac import MaacConfig

    values: dict[str, Any] = dict(
        ns=ns, lambdas=lambdas, seeds=seeds, slots=slots, random_slots=random_slots,
        eval_slots=eval_slots, window=window, actor_hidden=actor_hidden,
        critic_hidden=critic_hidden, batch_size=batch_size)
    if quick:
        for k, v in QUICK.items():
            if ctx.get_parameter_source(k) == click.core.ParameterSource.DEFAULT:
                values[k] = v
    try:
        learner = MaacConfig(neighbours=neighbours, batch_size=int(values["batch_size"]),
                             actor_hidden=number_list(str(values["actor_hidden"]),
                                                      "--actor-hidden", minimum=1),
                             critic_hidden=number_list(str(values["critic_hidden"]),
                                                       "--critic-hidden", minimum=1),
                             gamma=gamma, actor_update=actor_update,  # type: ignore[arg-type]
                             entropy=entropy)
        cfg = D2dCompareConfig(
            ns=number_list(str(values["ns"]), "--ns", minimum=1),
            lambdas=(number_list(str(values["lambdas"]), "--lambdas", minimum=1)
                     if str(values["lambdas"]).strip() else ()),
            seeds=number_list(str(values["seeds"]), "--seeds"),
            schemes=tuple(s.strip() for s in schemes.split(",") if s.strip()),
            train_slots=int(values["slots"]),
            random_slots=min(int(values["random_slots"]), int(values["slots"])),
            eval_slots=int(values["eval_slots"]), window=int(values["window"]),
            learner=learner, sweep_n=sweep_n,
            overrides=tuple(parse_overrides(sets).items()))
        from controller.evaluation.d2d_compare import plan

        planned = plan(cfg)
    except ValueError as e:
        raise click.BadParameter(str(e)) from e
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise click.BadParameter(f"{out} already holds files; pass --overwrite to replace "
                                     "its comparison, or choose another folder",
                                     param_hint="--out")
        if not (out / "results.csv").exists():
            raise click.BadParameter(f"{out} holds no comparison (no results.csv); "
                                     "--overwrite only replaces one", param_hint="--out")
        for p in [*(out / n for n in OUTPUTS), *out.glob("fig*.png"), *out.glob("fig*.csv")]:
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink(missing_ok=True)
    sweep = f", plus NAAC's lambda sweep at N = {cfg.sweep_n}" if cfg.lambdas else ""
    console.print(f"d2d compare: {len(planned)} runs ({len(cfg.ns)} N x {len(cfg.seeds)} "
                  f"seeds x {len({j.scheme.name for j in planned})} schemes{sweep}), "
                  f"{cfg.train_slots} + {cfg.eval_slots} slots each, "
                  f"{jobs} at a time, into {out}")
    t0 = time.perf_counter()
    with progress_bar() as bar:
        task = bar.add_task("d2d compare", total=1)

        def progress(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=total, description=what)

        try:
            table = compare(cfg, out, progress, console_note=bar.console.print, workers=jobs)
        except RuntimeError as e:
            bar.stop()
            raise click.ClickException(f"{e}; the runs that finished are in "
                                       f"{out / 'results.csv'}, their figures in {out}") from e
        except KeyboardInterrupt:
            bar.stop()
            console.print(f"[red]interrupted[/red]: the runs that finished are in "
                          f"{out / 'results.csv'}, their figures in {out}")
            sys.exit(130)
    Console(width=max(140, Console().width)).print(table)
    wall = time.perf_counter() - t0
    click.echo(f"wall time: {wall:.0f} s")
    for p in sorted(out.glob("fig*.png")):
        click.echo(f"figure: {p}  (+ {p.with_suffix('.csv').name})")
    for name in ("results.csv", "results.json", "training_curves.csv"):
        click.echo(f"{name.split('.')[0].replace('_', ' ')}: {out / name}")
