"""``rrmbed gnn cost``: what the MPGNN's message rounds cost (issue 15 point 6;
:mod:`controller.evaluation.gnn_cost`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from controller.cli.commands.gnn import gnn
from controller.cli.common import execute, number_list, resolve_file
from protocols.wire import ENCODINGS


@gnn.command("cost")
@click.argument("scenario", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--weights", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="Trained MPGNN weights (rrmbed gnn train --arch mpgnn); "
              "their shared layer is applied as many times as each run's --layers asks.")
@click.option("--layers", default="1,2,3,4", show_default=True,
              help="Numbers of layers (message rounds) of the layer sweep.")
@click.option("--encodings", default=",".join(ENCODINGS), show_default=True,
              help="Wire encodings of the GNN's messages (the power fraction over [0, 1], "
                   "the gain features over --feature-range).")
@click.option("--latencies-ms", default="0.5,2,4", show_default=True,
              help="Constant one-way backhaul latencies of the latency sweep, ms.")
@click.option("--feature-range", default="0,12", show_default=True,
              help="Range of the quantized gain features, decades of SNR at full power.")
@click.option("--slots", type=click.IntRange(1), default=200, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--runner", type=click.Choice(["local", "network"]), default="local",
              show_default=True, help="Both meter the same bytes and give the same slots.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Scenario overrides, as for rrmbed run.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path))
def gnn_cost(scenario: Path, weights: Path, layers: str, encodings: str, latencies_ms: str,
             feature_range: str, slots: int, seed: int, runner: str, sets: tuple[str, ...],
             out: Path | None) -> None:
    """Bytes per layer and per slot (header and payload apart), decision latency, deadline
    misses and sum rate of metered mpgnn runs against the number of layers, the wire
    encoding of its messages and the backhaul latency; WMMSE's signalling on the same slots
    as the reference. Writes OUT/cost.csv (as runs finish), cost.json, plots/cost.png and
    OUT/runs/."""
    from controller.evaluation.gnn_cost import CostConfig, measure

    bad = [e for e in encodings.split(",") if e.strip() not in ENCODINGS]
    if bad:
        raise click.BadParameter(f"{bad}: choose from {', '.join(ENCODINGS)}",
                                 param_hint="--encodings")
    lo, hi = number_list(feature_range, "--feature-range", float)
    cfg = CostConfig(layers=number_list(layers, "--layers", minimum=1),
                     encodings=tuple(e.strip() for e in encodings.split(",")),
                     latencies_ms=number_list(latencies_ms, "--latencies-ms", float, minimum=0),
                     feature_range=(lo, hi))
    resolved = resolve_file(scenario, sets)
    if resolved.kind.name != "interference":
        raise click.ClickException(f"{scenario}: a {resolved.kind.name} scenario; this "
                                   "command takes an interference one")
    out = out or Path("runs") / f"gnn-cost-{resolved.name}-s{seed}"
    t0 = time.perf_counter()

    def run(res: Any, scheme: str, run_dir: Path, w: Path | None) -> dict[str, Any]:
        return execute(res, scheme, runner, slots, seed, run_dir, (), w,
                       {"telemetry": False} if runner == "network" else {})

    rows = measure(resolved, weights, cfg, run, out)
    t = Table(title=f"What the MPGNN's rounds cost — {resolved.name}, {slots} slots, "
                    f"{runner} runner ({time.perf_counter() - t0:.0f} s)")
    for col in ("sweep", "scheme", "L", "encoding", "link ms", "B/slot", "header", "payload",
                "bit/s/Hz", "of WMMSE", "latency p50 ms", "misses"):
        t.add_column(col, justify="left" if col in ("sweep", "scheme", "encoding") else "right")
    for r in rows:
        frac = r["fraction_of_wmmse"]
        t.add_row(r["sweep"], r["scheme"], str(r["layers"]), r["encoding"],
                  f"{r['latency_ms']:g}", f"{r['signalling_bytes_per_slot']:.0f}",
                  f"{r['header_bytes_per_slot']:.0f}", f"{r['payload_bytes_per_slot']:.0f}",
                  f"{r['sum_rate_bps_hz']:.3f}", "-" if frac is None else f"{100 * frac:.1f}%",
                  f"{r['decision_latency_ms_p50']:.2f}", str(r["deadline_misses"]))
    Console(width=max(150, Console().width)).print(t)
    click.echo(f"written: {out}/cost.csv, {out}/cost.json, {out}/plots/cost.png")
