"""``rrmbed d2d signalling`` (paper 002's signalling table, issue 14 point 6) and
``rrmbed d2d scale`` (pair processes at N = 10..50: resident memory and slots per second,
issue 14 point 7)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import click

from controller.cli.commands.d2d import d2d
from controller.cli.common import console, number_list

ENV_PINS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
"""Every process of the measured runs gets one torch / BLAS thread (2-core machine)."""


def _scenario_of(folder: Path) -> Any:
    def of(n: int) -> Path:
        path = folder / f"d2d-n{n}.toml"
        if not path.is_file():
            raise click.ClickException(f"no scenario {path} for N = {n}")
        return path
    return of


@d2d.command("signalling")
@click.option("--ns", default="10,30,50", show_default=True,
              help="Numbers of D2D pairs (scenarios/d2d-n<N>.toml).")
@click.option("--schemes", default="maac,naac", show_default=True)
@click.option("--broadcast-periods", default="10,100,1000", show_default=True,
              help="Slots between actor broadcasts; one run each.")
@click.option("--backhaul-ms", default="0,5,20", show_default=True,
              help="Upload delays (ms, on every pair -> controller link): the first is the "
                   "broadcast-period runs' one, each other one a run at --delay-period.")
@click.option("--delay-period", type=click.IntRange(1), default=None,
              help="Broadcast period of the delay runs [default: the first period].")
@click.option("--slots", type=click.IntRange(2), default=300, show_default=True)
@click.option("--random-slots", type=click.IntRange(1), default=100, show_default=True)
@click.option("--actor-hidden", default="512,128", show_default=True,
              help="Trained actor widths (the paper's actor's download is reported anyway).")
@click.option("--critic-hidden", default="1024,512,256", show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=128, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--asynchronous", is_flag=True,
              help="Asynchronous training: the pairs keep acting while their uploads travel, "
                   "an update uses the uploads that have arrived (see rrmbed d2d train).")
@click.option("--scenarios", "folder", type=click.Path(file_okay=False, path_type=Path),
              default="scenarios", show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path))
def d2d_signalling(ns: str, schemes: str, broadcast_periods: str, backhaul_ms: str,
                   delay_period: int | None, slots: int, random_slots: int, actor_hidden: str,
                   critic_hidden: str, batch_size: int, seed: int, asynchronous: bool,
                   folder: Path, out: Path | None) -> None:
    """Paper 002's signalling table: history-upload and actor-download bytes per slot of
    MAAC / NAAC at each N and broadcast period (metered network training runs), the paper's
    actor's download, and the acting slots' sum rate and outage per period and upload
    delay. Writes OUT/signalling.csv, .json, plots/signalling.png and OUT/runs/."""
    from controller.evaluation.d2d_signalling import SignallingConfig, measure, publish
    from controller.runners.run import execute

    cfg = SignallingConfig(
        ns=number_list(ns, "--ns", minimum=1),
        schemes=tuple(s.strip() for s in schemes.split(",") if s.strip()),
        broadcast_periods=number_list(broadcast_periods, "--broadcast-periods", minimum=1),
        backhaul_ms=number_list(backhaul_ms, "--backhaul-ms", float, minimum=0),
        delay_period=delay_period,
        slots=slots, random_slots=random_slots,
        actor_hidden=number_list(actor_hidden, "--actor-hidden", minimum=1),
        critic_hidden=number_list(critic_hidden, "--critic-hidden", minimum=1),
        batch_size=batch_size,
        seed=seed, asynchronous=asynchronous)
    if random_slots >= slots:
        raise click.BadParameter("leaves no acting slot", param_hint="--random-slots")
    out = out or Path("runs") / f"d2d-signalling-{time.strftime('%Y%m%d-%H%M%S')}"
    for k, v in ENV_PINS.items():
        os.environ.setdefault(k, v)
    cells = cfg.cells()
    t0 = time.perf_counter()

    def run(resolved: Any, scheme: str, n_slots: int, run_dir: Path,
            options: dict[str, Any]) -> dict[str, Any]:
        summary: dict[str, Any] = execute(resolved, scheme, "network", n_slots, seed, run_dir,
                                          None, options)
        return summary

    def on_row(r: dict[str, Any]) -> None:
        console.print(f"[{time.perf_counter() - t0:.0f} s] N={r['n_pairs']} {r['scheme']} "
                      f"P={r['broadcast_period']} delay={r['upload_delay_ms']:g} ms: "
                      f"upload {r['upload_bytes_per_slot']:.0f} B/slot, download "
                      f"{r['download_bytes_per_slot']:.0f} B/slot, sum rate "
                      f"{r['d2d_sum_rate_mbps']:.3f} Mbit/s ({r['wall_s']:.0f} s)")
        if r["errors"] or r["slots"] < slots:
            console.print(f"[red]this run stopped after {r['slots']} of {slots} slots[/red]: "
                          f"{r['errors'] or 'see its logs'} ({r['run_dir']})")

    console.print(f"d2d signalling: {len(cells)} network training runs of {slots} slots")
    rows = measure(cfg, _scenario_of(folder), run, out, on_row)
    publish(rows, cfg, out)
    click.echo(f"signalling table: {out / 'signalling.csv'} ({time.perf_counter() - t0:.0f} s)")


@d2d.command("scale")
@click.option("--ns", default="10,30,50", show_default=True,
              help="Numbers of D2D pairs (scenarios/d2d-n<N>.toml).")
@click.option("--schemes", default="random,maac", show_default=True,
              help="Schemes to run; a trained one acts with the paper's actor (512, 128) "
                   "from a weights file made here by a local training of a few slots.")
@click.option("--slots", type=click.IntRange(1), default=500, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--interval", type=float, default=0.25, show_default=True,
              help="Seconds between /proc samples.")
@click.option("--scenarios", "folder", type=click.Path(file_okay=False, path_type=Path),
              default="scenarios", show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path))
def d2d_scale(ns: str, schemes: str, slots: int, seed: int, interval: float, folder: Path,
              out: Path | None) -> None:
    """Resident memory per pair process, of the controller and the channel server, and
    slots per second of real network runs at each N (sampled from /proc while the run
    goes); whether any pair process mapped torch. Writes OUT/scale.csv and .json."""
    from controller.bench.d2d_scale import ScaleConfig, publish, run_scale

    cfg = ScaleConfig(ns=number_list(ns, "--ns", minimum=1),
                      schemes=tuple(s.strip() for s in schemes.split(",") if s.strip()),
                      slots=slots, seed=seed, interval_s=interval)
    out = out or Path("runs") / f"d2d-scale-{time.strftime('%Y%m%d-%H%M%S')}"
    t0 = time.perf_counter()
    rows = run_scale(cfg, _scenario_of(folder), out,
                     lambda r: console.print(
                         f"[{time.perf_counter() - t0:.0f} s] N={r['n_pairs']} {r['scheme']}: "
                         f"{r['slots_per_s']:.1f} slots/s, pair RSS mean "
                         f"{r['pair_rss_mib_mean']:.1f} MiB"))
    publish(rows, out)
    bad = [r for r in rows if r["pairs_with_torch"]]
    click.echo(f"scale table: {out / 'scale.csv'} ({time.perf_counter() - t0:.0f} s)")
    if bad:
        raise click.ClickException(f"pair processes mapped torch: {bad}")
