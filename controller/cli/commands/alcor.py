"""``rrmbed alcor``: ALCOR (paper 004), per-user rate demands met by time sharing on top of
an unconstrained allocator; ``rrmbed alcor study`` runs the paper's experiments in one
process (:mod:`controller.evaluation.alcor_study`)."""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.console import Console

from controller.cli.common import SchemeChoice, cli, console, number_list, progress_bar


@cli.group()
def alcor() -> None:
    """ALCOR (paper 004): dynamic per-user rate demands over any allocator, in one process."""


@alcor.command("study")
@click.option("--ns", default="5,10,20,50", show_default=True,
              help="Users N of the Gaussian setting, comma-separated.")
@click.option("--snr-db", type=float, default=15.0, show_default=True,
              help="Gaussian setting: Pmax / noise, dB.")
@click.option("--slots", "phase_slots", type=click.IntRange(1), default=5000,
              show_default=True, help="Slots per demand phase (3 phases per run; rounded up "
              "to whole ALCOR iterations of 2B slots).")
@click.option("--seeds", default="0", show_default=True, help="Run seeds, comma-separated.")
@click.option("--ura", "uras", multiple=True,
              type=SchemeChoice("interference", lambda s: s.batch is not None
                                 and not s.options.get("alcor")),
              help="Allocator ALCOR runs over as a black box (repeatable; default: the "
                   "interference kind's run default).")
@click.option("--gamma", type=float, default=3.0, show_default=True,
              help="gamma of Algorithm 1 (the paper: 1..10).")
@click.option("--alpha", type=float, default=0.9, show_default=True, help="alpha_k (fixed).")
@click.option("--batch", type=click.IntRange(1), default=25, show_default=True, help="B.")
@click.option("--update", type=click.Choice(["extragradient", "simple"]),
              default="extragradient", show_default=True,
              help="Algorithm 1, or the simpler projected update of Section III-D.")
@click.option("--restart", type=click.Choice(["warm", "cold"]), default="warm",
              show_default=True, help="What a demand change does to lambda.")
@click.option("--demands", type=click.Choice(["paper", "drawn"]), default="paper",
              show_default=True, help="The paper's demands (Tables II-IV) where it has them "
              "for N, or seeded random draws (drawn).")
@click.option("--dnn-steps", type=click.IntRange(0), default=500, show_default=True,
              help="Training updates of the fixed penalty DNN (batches of 1000); 0 skips it.")
@click.option("--opt-instances", type=click.IntRange(0), default=100, show_default=True,
              help="Slots per phase solved by the per-instance constrained optimum; 0 skips.")
@click.option("--opt-max-n", type=click.IntRange(1), default=50, show_default=True,
              help="Largest N the per-instance optimum runs for.")
@click.option("--seven-cell", type=click.IntRange(0), default=0, show_default=True,
              help="Also the 7-cell setting of Section IV-B with this many links (0: skip).")
@click.option("--recovery-window", type=click.IntRange(1), default=1000, show_default=True,
              help="Moving-average window of the recovery time, slots.")
@click.option("--recovery-threshold", type=float, default=10.0, show_default=True,
              help="Violation (%) of the moving average that counts as recovered.")
@click.option("--plot-n", type=int, default=None, help="N of the Fig. 3-like plot.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None)
def alcor_study(ns: str, snr_db: float, phase_slots: int, seeds: str, uras: tuple[str, ...],
                gamma: float, alpha: float, batch: int, update: str, restart: str, demands: str,
                dnn_steps: int, opt_instances: int, opt_max_n: int, seven_cell: int,
                recovery_window: int, recovery_threshold: float, plot_n: int | None,
                out: Path | None) -> None:
    """ALCOR over the chosen allocators against the allocator alone, the fixed DNN trained
    with a penalty and the per-instance constrained optimum, with demands that change
    during the run; writes OUT/results.csv (as rows finish), results.json and figures."""
    from controller.alcor.channels import SevenCellConfig
    from controller.alcor.metrics import RecoveryConfig
    from controller.alcor.penalty_dnn import PenaltyDnnConfig
    from controller.evaluation.alcor_study import AlcorStudyConfig, study, work_units
    from node.alcor import AlcorConfig

    try:
        cfg = AlcorStudyConfig(
            ns=number_list(ns, "--ns", minimum=1), snr_db=snr_db,
            seeds=number_list(seeds, "--seeds"), phase_slots=phase_slots, uras=uras,
            alcor=AlcorConfig(alpha=alpha, gamma=gamma, batch=batch, update=update,  # type: ignore[arg-type]
                              restart=restart),  # type: ignore[arg-type]
            demands=demands,  # type: ignore[arg-type]
            recovery=RecoveryConfig(window=recovery_window, threshold=recovery_threshold,
                                    hold=recovery_window),
            dnn=PenaltyDnnConfig(steps=dnn_steps) if dnn_steps else None,
            opt_instances=opt_instances, opt_max_n=opt_max_n,
            seven_cell=SevenCellConfig(n_users=seven_cell) if seven_cell else None,
            plot_n=plot_n)
    except ValueError as e:
        raise click.BadParameter(str(e)) from e
    out = out or Path("runs") / f"alcor-study-{time.strftime('%Y%m%d-%H%M%S')}"
    t0 = time.perf_counter()
    with progress_bar() as bar:
        task = bar.add_task("ALCOR study", total=work_units(cfg))
        table = study(cfg, out, lambda done, what: bar.update(task, completed=done,
                                                              description=what[:60]),
                      lambda line: bar.console.print(line))
    Console(width=max(160, Console().width)).print(table)
    console.print(f"wrote {out}/results.csv, results.json and figures "
                  f"({time.perf_counter() - t0:.0f} s)")
