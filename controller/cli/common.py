"""What every ``rrmbed`` command shares: the root group, scenario resolution, the scheme
choices, the progress bar and one run on either runner.

Commands live in :mod:`controller.cli` (the kind-independent ones) and in the modules of
:mod:`controller.cli.commands` (a scenario kind's own command group, e.g. ``rrmbed d2d``),
which import this module and attach themselves to :data:`cli` or to a group of theirs.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from channel_server.config import Scenario, ScenarioError
from channel_server.kinds import Resolved
from channel_server.v2x import V2xScenario
from node.schemes import SCHEMES, Scheme

console = Console(stderr=True)


def parse_overrides(pairs: tuple[str, ...] | list[str], opt: str = "--set") -> dict[str, Any]:
    """``radio.pmax_dbm=30`` -> {'radio.pmax_dbm': 30} (values parsed as TOML values, else
    kept as strings); a BadParameter naming ``opt`` for a pair without ``=``."""
    import tomllib

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint=opt)
        try:
            out[key.strip()] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = raw
    return out


def number_list(text: str, opt: str, cast: Callable[[str], Any] = int,
                minimum: float | None = None) -> tuple[Any, ...]:
    """``"10,20,30"`` -> (10, 20, 30) (``cast`` each; at least one; none below
    ``minimum``); a BadParameter naming ``opt`` otherwise."""
    what = "integers" if cast is int else "numbers"
    try:
        out = tuple(cast(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r} is not comma-separated {what}",
                                 param_hint=opt) from None
    if not out:
        raise click.BadParameter("give at least one value", param_hint=opt)
    if minimum is not None and min(out) < minimum:
        raise click.BadParameter(f"{text!r}: give {what} >= {minimum}", param_hint=opt)
    return out


def seed_list(text: str, opt: str = "--seeds") -> tuple[int, ...]:
    """``"0,3,7"``, ``"0-9"`` or both (``"0-3,7"``) -> distinct seeds in that order; a
    BadParameter naming ``opt`` otherwise."""
    out: list[int] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        first, dash, last = part.partition("-")
        try:
            span = range(int(first), int(last) + 1) if dash else range(int(first), int(first) + 1)
        except ValueError:
            raise click.BadParameter(f"{part!r} is not a seed or a range A-B",
                                     param_hint=opt) from None
        if not span:
            raise click.BadParameter(f"{part!r}: an empty range", param_hint=opt)
        out += span
    if not out or len(set(out)) != len(out):
        raise click.BadParameter(f"{text!r}: give distinct seeds", param_hint=opt)
    return tuple(out)


def sweep_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--backend, --address and --ray-retries: where a command's seeds run
    (:mod:`controller.training.sweep`)."""
    f = click.option("--ray-retries", type=click.IntRange(0), default=2, show_default=True,
                     help="--backend ray: times a seed whose worker was lost is run again.")(f)
    f = click.option("--address", help="--backend ray: an existing Ray cluster (e.g. auto, "
                     "ray://head:10001); default: a local instance for this sweep.")(f)
    return click.option("--backend", type=click.Choice(["serial", "ray"]), default="serial",
                        show_default=True, help="serial: the seeds one after the other in "
                        "this process; ray: each seed a Ray task (the same results).")(f)


def sweep_config(backend: str, address: str | None, ray_retries: int) -> Any:
    """The :class:`controller.training.sweep.SweepConfig` of :func:`sweep_options`."""
    from controller.training.sweep import SweepConfig

    if address is not None and backend != "ray":
        raise click.BadParameter("--address needs --backend ray", param_hint="--address")
    return SweepConfig(backend=backend, address=address,  # type: ignore[arg-type]
                       retries=ray_retries)


def resolve_file(path: Path, sets: tuple[str, ...] | list[str] = ()) -> Resolved:
    """A scenario file of any kind, resolved once with the --set overrides."""
    from channel_server.kinds import resolve

    try:
        return resolve(path, parse_overrides(sets) if sets else None)
    except ScenarioError as e:
        raise click.ClickException(str(e)) from e


def resolve_of_kind(path: Path, sets: tuple[str, ...] | list[str], kind: str) -> Any:
    """The scenario of a command that takes one kind only (paper 001's or 000's)."""
    r = resolve_file(path, sets)
    if r.kind.name != kind:
        raise click.ClickException(f"{path}: a {r.kind.name} scenario; this command takes a "
                                   f"{kind} one")
    return r.scenario


def resolve_scenario(path: Path, sets: tuple[str, ...] | list[str]) -> Scenario:
    """A cellular scenario (the paper-001 commands)."""
    scenario: Scenario = resolve_of_kind(path, sets, "cellular")
    return scenario


def resolve_v2x(path: Path, sets: tuple[str, ...] | list[str]) -> V2xScenario:
    """A V2X scenario (the paper-000 commands)."""
    scenario: V2xScenario = resolve_of_kind(path, sets, "v2x")
    return scenario


def default_out(scenario: Scenario | V2xScenario, scheme: str, runner: str, seed: int) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{scenario.name}-{scheme}-{runner}-s{seed}-{stamp}-{os.getpid()}"


def progress_bar() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), console=console, transient=True)


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log progress of every process.")
@click.option("--plugin", "plugins", multiple=True, metavar="MODULE",
              help="Import MODULE first (repeatable): a plug-in that registers scenario kinds, "
                   "schemes or learners. Also read from $RRMBED_PLUGINS (comma-separated); "
                   "every process of a run loads the same plug-ins.")
def cli(verbose: bool, plugins: tuple[str, ...]) -> None:
    """rrmbed: a network-emulation testbed for learned radio resource management.

    A channel server (the air), one node process per base station and a controller
    exchange real ZeroMQ messages; every byte of signalling and every emulated delay
    is counted. `rrmbed run` is the main entry; the per-process commands are what
    the launcher and docker-compose start.
    """
    setup_logging(verbose)
    if plugins:
        from protocols.plugins import load_plugins

        try:
            load_plugins(plugins)
        except ImportError as e:
            raise click.ClickException(str(e)) from e


# ------------------------------------------------------------------------------ run


def execute(scenario: Path | Resolved, scheme: str, runner: str, slots: int, seed: int,
            out: Path | None, sets: tuple[str, ...], weights: Path | None,
            options: dict[str, Any]) -> dict[str, Any]:
    """One run on either runner, with a progress bar; the summary. ``scenario``: a file
    (resolved here with ``sets``) or a scenario the command already resolved."""
    from controller.deploy.launcher import LaunchError
    from controller.runners.run import RunError
    from controller.runners.run import execute as run

    resolved = scenario if isinstance(scenario, Resolved) else resolve_file(scenario, sets)
    out = out or default_out(resolved.scenario, scheme, runner, seed)
    with progress_bar() as bar:
        task = bar.add_task(f"{scheme} ({runner})", total=slots)
        try:
            return run(resolved, scheme, runner, slots, seed, out, weights, options,
                       lambda d, t: bar.update(task, completed=d))
        except RunError as e:
            raise click.BadParameter(str(e), param_hint="--scheme/--weights") from e
        except LaunchError as e:
            raise click.ClickException(str(e)) from e


SCHEME_HELP = "By scenario kind — " + SCHEMES.help() + "."


class SchemeChoice(click.Choice):  # type: ignore[type-arg]
    """The schemes of ``kind`` that ``pick`` accepts, read from the registry when the command
    line is parsed or the help printed (so the schemes of plug-ins count)."""

    def __init__(self, kind: str, pick: Callable[[Scheme], bool] = lambda s: True) -> None:
        self.kind, self.pick, self.case_sensitive = kind, pick, True

    @property
    def choices(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(s.name for s in SCHEMES.for_kind(self.kind, external=True)
                     if self.pick(s))


def default_help(command: str) -> str:
    """``SCHEME_HELP`` plus the scheme ``command`` runs by default, per kind."""
    kinds = sorted({s.kind for s in SCHEMES})
    found = [f"{d} ({k})" for k in kinds if (d := SCHEMES.default(k, command)) is not None]
    return SCHEME_HELP + (f" Default: {', '.join(found)}." if found else "")


def scheme_or_default(scheme: str | None, resolved: Resolved, command: str) -> str:
    """``scheme``, else the scheme ``command`` runs on the scenario's kind by default."""
    kind = resolved.kind.name
    chosen = scheme or SCHEMES.default(kind, command)
    if chosen is None:
        raise click.BadParameter(f"a {kind} scenario has no default scheme; choose from "
                                 f"{', '.join(SCHEMES.names(kind))}", param_hint="--scheme")
    return chosen


def run_process(coro: Any) -> int:
    """Run a process shell; a peer timeout or protocol failure exits 1 with its message."""
    from protocols.errors import PeerError, PeerTimeout
    from protocols.transport import run

    try:
        return int(run(coro))
    except (PeerTimeout, PeerError) as e:
        console.print(f"[red]error:[/red] {e}")
        return 1
    except KeyboardInterrupt:
        return 130


# ------------------------------------------------------------------------- training


def resume_network(run_dir: Path, kind: str, command: str) -> dict[str, Any]:
    """Continue the network training run in ``run_dir`` (killed, or ended) from its latest
    checkpoint with fresh processes, with the settings it was started with (its run.json);
    the summary. ``kind``: the scenario kind ``command`` trains."""
    from controller.deploy.launcher import RUN_FILE

    try:
        info = json.loads((run_dir / RUN_FILE).read_text())
        scheme, slots, seed = str(info["scheme"]), int(info["slots"]), int(info["seed"])
        options, launch = dict(info["options"]), dict(info["launcher"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise click.BadParameter(f"{run_dir} holds no readable {RUN_FILE} of a network run "
                                 f"({e})", param_hint="--resume") from None
    train = dict(options.get("train") or {})
    if not train:
        raise click.BadParameter(f"{run_dir} is a run, not a training run",
                                 param_hint="--resume")
    resolved = resolve_file(run_dir / str(info["scenario"]))
    if resolved.kind.name != kind:
        raise click.BadParameter(f"{run_dir} trained a {resolved.kind.label or resolved.kind.name}"
                                 f" scenario; resume it with the command that trains those",
                                 param_hint="--resume")
    train["resume"] = int(train.get("resume", 0)) + 1  # this attempt's number
    weights = Path(info["weights"]) if info.get("weights") else None
    keys = Path(launch["keys"]) if launch.get("keys") else None
    console.print(f"{command}: resuming {run_dir} ({scheme}, seed {seed}, {slots} slots), "
                  f"attempt {train['resume']}")
    return execute(resolved, scheme, "network", slots, seed, run_dir, (), weights,
                   {**options, "train": train, **launch, "keys": keys})
