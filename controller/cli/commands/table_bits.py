"""``rrmbed table bits``: sum rate against bits per message of the cellular schemes that
exchange arrays, one run per wire encoding (issue 15, point 6;
:mod:`controller.evaluation.bits`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console

from controller.cli.common import cli, execute, resolve_file
from node.schemes import SCHEMES, Scheme

table: click.Group = cli.commands["table"]  # type: ignore[assignment]
"""``rrmbed table`` (controller/cli/__init__.py), defined before this module is loaded."""


def weights_for(scheme: Scheme, given: Path | None, scenario: Path, steps: int, seed: int,
                out: Path) -> Path:
    """``given``, else the best weights of a short local TRPO training of ``scheme`` (said on
    the console: a short training is not the paper's policy)."""
    if given is not None:
        return given
    from controller.training.train import train

    click.echo(f"no weights for {scheme.name}: training one briefly (trpo, {steps} steps, "
               f"seed {seed}; pass --weights-{WEIGHTS_OPTION.get(scheme.exchange, 'rr')} to use a "
               "trained policy)")
    summary = train(scenario, "trpo", scheme.name, steps, [seed], out / "train" / scheme.name,
                    episodes_per_iter=200, progress=False, plots=False,
                    validation_episodes=200)
    click.echo(f"  trained {scheme.name}: validation {summary['validation_mbps_mean']:.2f} "
               f"Mbit/s -> {summary['best_weights']}")
    return Path(summary["best_weights"])


WEIGHTS_OPTION = {"chain": "rr", "central": "central"}
"""The weights option of a trainable scheme, by its exchange."""


@table.command("bits")
@click.argument("scenario", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--slots", type=click.IntRange(1), default=200, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--runner", type=click.Choice(["local", "network"]), default="local",
              show_default=True, help="Both give the same figures, bit for bit.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--scheme", "schemes", multiple=True,
              help="Only these schemes (repeatable; default: the trainable schemes that exchange "
                   "arrays and the non-optimal references: round-robin, centralized, wmmse).")
@click.option("--encoding", "encodings", multiple=True,
              type=click.Choice(["float64", "float32", "float16", "uint16", "uint8"]),
              help="Only these encodings (repeatable; default all five).")
@click.option("--weights-rr", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="round-robin weights (rrmbed train --scheme round-robin).")
@click.option("--weights-central", type=click.Path(exists=True, dir_okay=False,
                                                    path_type=Path),
              help="centralized weights (rrmbed train --scheme centralized).")
@click.option("--train-steps", type=click.IntRange(1), default=20_000, show_default=True,
              help="Steps of the short training of a scheme whose weights are not given.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE")
def table_bits(scenario: Path, slots: int, seed: int, runner: str, out: Path | None,
               schemes: tuple[str, ...], encodings: tuple[str, ...], weights_rr: Path | None,
               weights_central: Path | None, train_steps: int, sets: tuple[str, ...]) -> None:
    """Sum rate and backhaul bytes per slot (header and payload apart) of round-robin,
    centralized and WMMSE with their exchanged arrays (forwarded powers, uploaded CSI,
    returned powers) sent as float64, float32, float16, 16-bit and 8-bit (powers over
    [0, Pmax], CSI in dB over [-180, -30]). Writes OUT/bits.csv, bits.json,
    plots/bits.png and OUT/runs/."""
    from controller.evaluation import bits
    from controller.runners.run import RunError

    resolved = resolve_file(scenario, sets)
    if resolved.kind.name != "cellular":
        raise click.ClickException(f"{scenario}: a {resolved.kind.name} scenario; this "
                                   "command takes a cellular one")
    sc = resolved.scenario
    try:
        specs = ([SCHEMES.get(resolved.kind.name, s) for s in schemes] if schemes
                 else bits.default_schemes(sc.radio))
    except KeyError as e:
        raise click.BadParameter(str(e), param_hint="--scheme") from e
    chosen = [s.name for s in specs]
    out = out or Path("runs") / f"table-bits-{sc.name}-s{seed}"
    given = {"chain": weights_rr, "central": weights_central}
    weights: dict[str, Path | None] = {
        s.name: weights_for(s, given.get(s.exchange), scenario, train_steps, seed, out)
        for s in specs if s.trainable}

    def run(scheme: str, encoding: str, with_wire: Any, run_dir: Path) -> dict[str, Any]:
        from dataclasses import replace

        try:
            return execute(replace(resolved, scenario=with_wire), scheme, runner, slots, seed,
                           run_dir, (), weights.get(scheme),
                           {"telemetry": False} if runner == "network" else {})
        except RunError as e:
            raise click.ClickException(str(e)) from e

    rows = bits.measure(sc, chosen, run, out, tuple(encodings) or bits.ENCODINGS)
    title = f"Sum rate against bits per message — {sc.name}, {slots} slots, {runner} runner"
    bits.publish(rows, title, out, Console(width=max(160, Console().width)))
    click.echo(f"written: {out}/bits.csv, {out}/bits.json, {out}/plots/bits.png")
