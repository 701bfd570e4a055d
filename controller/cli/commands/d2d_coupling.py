"""``rrmbed d2d coupling``: how much a pair's reward depends on the other pairs' actions, the
most a critic that sees them can add (:mod:`controller.evaluation.d2d_coupling`)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from controller.cli.commands.d2d import d2d
from controller.cli.common import console, number_list, parse_overrides


@d2d.command("coupling")
@click.option("--ns", default="10,30,50", show_default=True,
              help="Numbers of D2D pairs N, comma-separated; scenarios/d2d-n<N>.toml, else "
                   "d2d-n10.toml with N pairs.")
@click.option("--drops", type=click.IntRange(1), default=100, show_default=True,
              help="Independent cells (drops of users) per N.")
@click.option("--slots", type=click.IntRange(1), default=20, show_default=True,
              help="Slots per drop.")
@click.option("--draws", type=click.IntRange(2), default=16, show_default=True,
              help="Draws of the other pairs' (uniformly random) actions per slot.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Scenario override for every N, e.g. --set radio.bs_power_dbm=36.")
@click.option("--scenarios", "folder", type=click.Path(file_okay=False, path_type=Path),
              default="scenarios", show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Folder of coupling.csv and coupling.json (default "
                   "runs/d2d-coupling-<time>).")
def d2d_coupling(ns: str, drops: int, slots: int, draws: int, seed: int,
                 sets: tuple[str, ...], folder: Path, out: Path | None) -> None:
    """How much of a D2D pair's reward its own action decides and how much the other pairs'
    actions do: the variance of its reward given the slot's channel, split between the two
    (the others acting at random). The others' part is the most a critic that sees their
    actions (MAAC, NAAC) can learn beyond one that sees the pair alone (IAC). Also the
    share of the other pairs' power in the interference a receiver measures. Exact
    rewards (5)-(7) of every own action against every draw; no learning."""
    from controller.evaluation.d2d_coupling import CouplingConfig, study, table
    from controller.evaluation.d2d_run import scenario_with_pairs

    try:
        cfg = CouplingConfig(drops=drops, slots=slots, draws=draws, seed=seed)
        overrides = parse_overrides(sets)
        scenarios = [scenario_with_pairs(folder, n, overrides).scenario
                     for n in number_list(ns, "--ns", minimum=1)]
    except (ValueError, OSError) as e:
        raise click.BadParameter(str(e)) from e
    out = out or Path("runs") / f"d2d-coupling-{time.strftime('%Y%m%d-%H%M%S')}"
    t0 = time.perf_counter()
    found = study(scenarios, cfg, out, lambda c: console.print(
        f"[{time.perf_counter() - t0:.0f} s] N={c.n_pairs}: the others' share of the reward "
        f"variance {c.others_share:.3f}"))
    console.print(table(found, cfg))
    click.echo(f"coupling table: {out / 'coupling.csv'} ({time.perf_counter() - t0:.0f} s)")
