"""The ``rrmbed`` command line."""

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
from controller.learners import registry as learners
from node.schemes import SCHEMES, Scheme
from node.schemes.cellular import trainable

console = Console(stderr=True)


def parse_overrides(pairs: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``radio.pmax_dbm=30`` -> {'radio.pmax_dbm': 30} (values parsed as TOML scalars)."""
    import tomllib

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--set")
        try:
            out[key.strip()] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = raw
    return out


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
        return tuple(s.name for s in SCHEMES.for_kind(self.kind) if self.pick(s))


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


@cli.command()
@click.argument("scenario", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--scheme", help=default_help("run"))
@click.option("--runner", type=click.Choice(["network", "local"]), default="network",
              show_default=True, help="network: real processes; local: one process.")
@click.option("--slots", type=click.IntRange(1), default=200, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True,
              help="Every random stream of the run derives from it.")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Policy weights (.npz) for full / round-robin / centralized.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Run directory (default runs/<scenario>-<scheme>-<runner>-s<seed>-<time>).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override a scenario field, e.g. --set radio.pmax_dbm=30 "
                   "--set timing.clock=realtime.")
@click.option("--action", type=click.Choice(["mean", "sample"]), default="mean",
              show_default=True, help="Execute the policy mean, or sample the Gaussian.")
@click.option("--endpoints", type=click.Choice(["tcp", "ipc"]), default="tcp", show_default=True,
              help="Network runner transport: loopback tcp or unix-socket ipc.")
@click.option("--no-telemetry", is_flag=True, help="Do not publish live metrics over MQTT.")
@click.option("--broker", metavar="URL", envvar="RRMBED_BROKER",
              help="MQTT broker for telemetry (default: start mosquitto/amqtt on loopback).")
@click.option("--log-csi", is_flag=True, hidden=True,
              help="Nodes log every CSI slice they receive (for tests).")
@click.option("--keys", "keys_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Network runner: the run's CURVE keys from `rrmbed keys` (default: a fresh "
                   "key pair per process, removed after the run); needed to let a node "
                   "you start yourself join.")
@click.option("--insecure", is_flag=True,
              help="Network runner: no CURVE authentication at all.")
@click.option("--overwrite", is_flag=True,
              help="Replace the run already in --out (otherwise a non-empty --out is refused).")
@click.option("--history", is_flag=True,
              help="Network runner: every process logs each message it sends and receives to "
                   "RUN_DIR/history/ (check it with `rrmbed history RUN_DIR`).")
@click.option("--controller-restarts", type=click.IntRange(0), default=0, show_default=True,
              help="Network runner: restart a controller that dies mid-run (up to N times) "
                   "on its address; the other processes hold the run meanwhile and reattach.")
@click.option("--air-restarts", type=click.IntRange(0), default=0, show_default=True,
              help="Network runner: start a new channel server in the place of one that dies "
                   "(up to N times; scenario kinds whose air can be restarted, e.g. "
                   "cellular); it takes over at the first slot not recorded.")
def run(scenario: Path, scheme: str | None, runner: str, slots: int, seed: int,
        weights: Path | None,
        out: Path | None, sets: tuple[str, ...], action: str, endpoints: str,
        no_telemetry: bool, broker: str | None, log_csi: bool, keys_dir: Path | None,
        insecure: bool, overwrite: bool, history: bool, controller_restarts: int,
        air_restarts: int) -> None:
    """Run SCHEME on SCENARIO for N slots and write a run directory.

    A cellular scenario runs one node process per BS; a V2X scenario (one with a [road]
    section) one vehicle node process per V2V transmitter, and its DQN schemes need
    --weights from `rrmbed v2x train`. The run directory holds config.toml, summary.json,
    metrics.csv (per slot), overhead.csv (bytes per kind/plane/link), plots/ and the
    processes' logs.
    """
    from protocols.plugins import resolve as resolve_ref

    resolved = resolve_file(scenario, sets)
    scheme = scheme_or_default(scheme, resolved, "run")
    out = out or default_out(resolved.scenario, scheme, runner, seed)
    from controller.evaluation.files import OutError, claim_out

    created = not out.exists()
    try:
        lock = claim_out(out, overwrite)
    except OutError as e:
        raise click.BadParameter(str(e), param_hint="--out") from e
    try:
        with lock:  # held while the run writes its folder
            summary = execute(resolved, scheme, runner, slots, seed, out, sets, weights,
                              {"action_mode": action, "log_csi": log_csi,
                               "history": str(out.resolve() / "history") if history else None,
                               "endpoints": endpoints, "telemetry": not no_telemetry,
                               "broker": broker, "insecure": insecure, "keys": keys_dir,
                               "controller_restarts": controller_restarts,
                               "air_restarts": air_restarts})
    finally:
        (out / ".lock").unlink(missing_ok=True)
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # refused before it wrote anything: leave no folder behind
    resolve_ref(resolved.kind.report)(summary, out, Console(width=max(120, Console().width)))
    click.echo(f"run directory: {out}")
    if summary.get("errors") or summary.get("lost_nodes"):
        for e in summary.get("errors", []):
            console.print(f"[red]error:[/red] {e}")
        if summary.get("lost_nodes"):
            console.print(f"[red]lost nodes:[/red] {', '.join(summary['lost_nodes'])} "
                          "(silent for the rest of the run)")
        sys.exit(2)
    if summary.get("rejected_total") or summary.get("protocol_errors"):
        console.print(f"[red]dropped messages:[/red] {summary.get('protocol_errors', 0)} frames "
                      f"that did not decode, {summary.get('rejected_total', 0)} rejected by "
                      "their receiver")
        for what in ("dropped", "rejected"):
            for name, reasons in summary.get(what, {}).items():
                console.print(f"  {what} by {name}: {json.dumps(reasons)}")
        sys.exit(3)


@cli.command()
@click.argument("scenario", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                default="scenarios/3cell-k2.toml")
@click.option("--train-steps", type=click.IntRange(1), default=60_000, show_default=True,
              help="TRPO training steps per scheme (local runner).")
@click.option("--slots", type=click.IntRange(1), default=200, show_default=True,
              help="Slots of each network evaluation run.")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/demo"),
              show_default=True)
@click.option("--v2x", "v2x_scenario", type=click.Path(exists=True, dir_okay=False,
              path_type=Path), default="scenarios/v2x-manhattan.toml", show_default=True,
              help="V2X scenario of the vehicular part.")
@click.option("--no-v2x", is_flag=True, help="Skip the vehicular part.")
def demo(scenario: Path, train_steps: int, slots: int, seed: int, out: Path,
         v2x_scenario: Path | None, no_v2x: bool) -> None:
    """The main job: train the three TRPO schemes briefly, then run every scheme over
    real processes and print one comparison table (sum-rate, optimality gap, backhaul
    bytes per slot, decision latency); then the V2X part: multi-agent DQN and random with
    one process per vehicle, and a short training run over the network."""
    if no_v2x:
        v2x_scenario = None
    from controller.evaluation.demo import DemoConfig, run_demo, run_v2x_demo

    cfg = DemoConfig(train_steps=train_steps, slots=slots, seed=seed)
    wide = Console(width=max(120, Console().width))
    run_demo(scenario, out, cfg, lambda scheme, run_dir, weights: execute(
        scenario, scheme, "network", slots, seed, run_dir, (), weights, {}), wide)
    if v2x_scenario is not None:
        def run_v2x(scheme: str, run_dir: Path, weights: Path | None,
                    options: dict[str, Any]) -> dict[str, Any]:
            n = (cfg.v2x_train_episodes * resolve_v2x(v2x_scenario, ()).n_steps
                 if options.get("train") else cfg.v2x_slots)
            return execute(v2x_scenario, scheme, "network", n, seed, run_dir, (), weights,
                           options)

        run_v2x_demo(v2x_scenario, out, cfg, run_v2x, wide)


# ------------------------------------------------------------------- the processes


def security_options(f: Callable[..., None]) -> Callable[..., None]:
    """--keys and --insecure: how a process authenticates itself and its peers."""
    f = click.option("--insecure", is_flag=True, envvar="RRMBED_INSECURE",
                     help="Run without CURVE authentication (any local process can then "
                          "talk to this one).")(f)
    return click.option("--keys", "keys_dir", type=click.Path(file_okay=False, path_type=Path),
                        envvar="RRMBED_KEYS",
                        help="The run's CURVE key directory (public.json and this process's "
                             "<name>.secret; see `rrmbed keys`). [env: RRMBED_KEYS]")(f)


def key_ring(keys_dir: Path | None, insecure: bool, name: str) -> Any:
    """This process's keys, or None with --insecure (UsageError for neither or both)."""
    from protocols.keys import KeysError, load_keys

    if keys_dir is not None and insecure:
        raise click.UsageError("--keys and --insecure exclude each other")
    if keys_dir is None:
        if not insecure:
            raise click.UsageError("no keys: pass --keys DIR (written by `rrmbed keys`) or "
                                   "--insecure to run without authentication")
        return None
    try:
        return load_keys(keys_dir, name)
    except KeysError as e:
        raise click.BadParameter(str(e), param_hint="--keys") from e


@cli.command("controller")
@click.argument("scenario", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--scheme", required=True, help=SCHEME_HELP)
@click.option("--slots", type=click.IntRange(1), required=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--bind", default="tcp://127.0.0.1:0", show_default=True,
              help="Inbox endpoint (tcp://host:port, port 0 = any; or ipc://path).")
@click.option("--advertise", help="Address peers use to reach this inbox "
                                  "(default: the bound address).")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE")
@click.option("--options", default="{}", help="JSON run options passed to every process.")
@click.option("--broker", metavar="URL", help="MQTT broker for every process's telemetry.")
@click.option("--no-telemetry", is_flag=True, help="No telemetry.")
@click.option("--reattach", is_flag=True,
              help="Continue the run in --out whose controller died: load its saved state, "
                   "bind the same --bind address and take back the processes still running.")
@security_options
def controller_cmd(scenario: Path, scheme: str, slots: int, seed: int, out: Path, bind: str,
                   advertise: str | None, weights: Path | None, sets: tuple[str, ...],
                   options: str, broker: str | None, no_telemetry: bool, reattach: bool,
                   keys_dir: Path | None, insecure: bool) -> None:
    """The controller process: handshake, central decisions, results."""
    from controller.runners.network import serve
    from controller.runners.run import RunError, load_weights, scheme_for
    from protocols.names import CONTROLLER

    keys = key_ring(keys_dir, insecure, CONTROLLER)

    opts = json.loads(options)
    if broker is not None:
        opts["broker"] = broker
    if no_telemetry:
        opts["broker"] = None
    opts.setdefault("run", out.name)
    resolved = resolve_file(scenario, sets)
    try:
        arrays = load_weights(resolved, scheme_for(resolved, scheme), weights,
                              bool(opts.get("train")))
    except RunError as e:
        raise click.BadParameter(str(e), param_hint="--scheme/--weights") from e
    try:
        code = run_process(serve(resolved, scheme, slots, seed, out, bind, advertise, arrays,
                                 opts, keys, reattach))
    except ValueError as e:  # no state to reattach to, or another run's
        raise click.ClickException(str(e)) from None
    sys.exit(code)


def worker_options(f: Callable[..., None]) -> Callable[..., None]:
    """--controller, --bind and --advertise: what every process the controller runs takes."""
    f = click.option("--advertise", help="Address peers use to reach this inbox.")(f)
    f = click.option("--bind", default="tcp://127.0.0.1:0", show_default=True)(f)
    return click.option("--controller", required=True,
                        help="Controller inbox, e.g. tcp://controller:5550.")(f)


def index_option(dest: str, what: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """--id, defaulting to $RRMBED_NODE_ID (set per container by docker-compose)."""
    return click.option("--id", dest, type=click.IntRange(0),
                        default=lambda: int(os.environ.get("RRMBED_NODE_ID", "0")),
                        help=f"{what} (default: $RRMBED_NODE_ID).")


@cli.command("channel-server")
@worker_options
@security_options
def channel_server_cmd(controller: str, bind: str, advertise: str | None,
                       keys_dir: Path | None, insecure: bool) -> None:
    """The channel-server process (the air)."""
    from channel_server.process import serve
    from protocols.names import CHANNEL_SERVER

    keys = key_ring(keys_dir, insecure, CHANNEL_SERVER)
    sys.exit(run_process(serve(controller, bind, advertise, keys)))


@cli.command("node")
@index_option("node_id", "Node index")
@click.option("--role", default="node", show_default=True,
              help="Node role of the scenario kind: node (a BS), vehicle, ...")
@worker_options
@security_options
def node_cmd(node_id: int, role: str, controller: str, bind: str,
             advertise: str | None, keys_dir: Path | None, insecure: bool) -> None:
    """A node process: one base station (or, with --role, a vehicle, ...)."""
    from node.process import serve

    keys = key_ring(keys_dir, insecure, f"{role}-{node_id}")
    sys.exit(run_process(serve(role, node_id, controller, bind, advertise, keys)))


@cli.command("vehicle")
@index_option("vehicle_id", "V2V transmitter index")
@worker_options
@security_options
def vehicle_cmd(vehicle_id: int, controller: str, bind: str, advertise: str | None,
                keys_dir: Path | None, insecure: bool) -> None:
    """A vehicle node process (one V2V transmitter of a V2X scenario)."""
    from node.process import serve

    keys = key_ring(keys_dir, insecure, f"vehicle-{vehicle_id}")
    sys.exit(run_process(serve("vehicle", vehicle_id, controller, bind, advertise, keys)))


@cli.command("keys")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--scenario", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="The scenario whose processes get keys.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Scenario overrides (they may change the number of nodes).")
def keys_cmd(directory: Path, scenario: Path, sets: tuple[str, ...]) -> None:
    """Write a CURVE key pair for every process of SCENARIO into DIRECTORY.

    DIRECTORY gets public.json (every process's public key) and one <name>.secret per
    process (mode 0600). Give each process the public file and only its own secret (docker
    secrets, or a copy per host) and start it with --keys; `rrmbed compose --keys DIRECTORY`
    mounts them so. `rrmbed run --runner network` makes fresh keys by itself.

    For the telemetry broker: mosquitto.passwd (each process logs in as itself with a
    password derived from its secret, plus the read-only user `watch`), mosquitto.acl
    (each process writes only its own topics) and watch.password (0600) for
    `rrmbed watch --keys DIRECTORY`.
    """
    from controller.deploy.broker import write_broker_auth
    from protocols.keys import KeysError, write_keys

    names = resolve_file(scenario, sets).process_names
    try:
        write_keys(directory, names)
        write_broker_auth(directory, names)
    except KeysError as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"wrote keys of {len(names)} processes to {directory}: {', '.join(names)}")


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


@cli.command()
@click.argument("scenario", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                required=False)
@click.option("--algo", type=click.Choice(learners.names("gaussian")), default="trpo",
              show_default=True, help=learners.help_text("gaussian") + ".")
@click.option("--scheme", type=SchemeChoice("cellular", lambda s: s in trainable()),
              default=SCHEMES.default("cellular", "train"), show_default=True)
@click.option("--runner", type=click.Choice(["local", "network"]), default="local",
              show_default=True, help="local: vectorized episodes in one process; network: "
              "nodes upload experience, the controller trains and broadcasts weights.")
@click.option("--steps", type=click.IntRange(1), default=100_000, show_default=True,
              help="Environment steps (decisions) to train for.")
@click.option("--episodes", "episodes_per_iter", type=click.IntRange(1),
              help="Episodes per update, M (default: 1000 local, 64 network).")
@click.option("--seeds", default="0", show_default=True, help="Comma-separated seeds.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--weights", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Start from these weights.")
@click.option("--save-batches", is_flag=True, hidden=True)
@click.option("--checkpoint-every", type=click.IntRange(1), default=10, show_default=True,
              help="A checkpoint every N updates (and after the last one).")
@click.option("--history", is_flag=True,
              help="Network runner: every process logs its messages to OUT/seed-<s>/history/ "
                   "(check with `rrmbed history OUT/seed-<s>`).")
@click.option("--resume", "resume_dir", type=click.Path(exists=True, file_okay=False,
              path_type=Path), help="Continue the network training run RUN_DIR (a "
              "seed-<s> folder) from its latest checkpoint, with the settings it was started "
              "with, after a crash or a kill.")
@click.option("--controller-restarts", type=click.IntRange(0), default=0, show_default=True,
              help="Network runner: restart a controller that dies (up to N times) on its "
                   "address; it continues from its latest checkpoint while the other "
                   "processes wait and send again what it lacks.")
def train(scenario: Path | None, algo: str, scheme: str, runner: str, steps: int,
          episodes_per_iter: int | None, seeds: str, out: Path | None, weights: Path | None,
          save_batches: bool, checkpoint_every: int, history: bool,
          resume_dir: Path | None, controller_restarts: int) -> None:
    """Train a paper-001 policy for SCHEME with a registered learner (--algo); writes
    weights (a weights file with a header: scheme, kind, dims, algo, steps) and curves.

    With --runner network, each seed's run directory (OUT/seed-<s>) is written as the run
    goes: training.csv and updates.jsonl (what each update used) row by row, weights.npz
    after every update, checkpoints/ every --checkpoint-every updates; `rrmbed train
    --resume OUT/seed-<s> --runner network` continues a run that was killed."""
    from controller.evaluation.results import print_summary

    if resume_dir is not None:
        if scenario is not None or runner != "network":
            raise click.UsageError("--resume RUN_DIR takes the run's own settings: give no "
                                   "SCENARIO, and --runner network")
        summary = resume_network(resume_dir, "cellular", "train")
        print_summary([summary], Console(), title=f"network training: {summary['scheme']}")
        return
    if scenario is None:
        raise click.UsageError("missing SCENARIO (or --resume RUN_DIR)")
    seed_list = [int(x) for x in seeds.split(",") if x.strip()]
    sc = resolve_scenario(scenario, ())
    out = out or Path("runs") / f"train-{sc.name}-{scheme}-{algo}-{runner}"
    if runner == "local":
        from controller.training.train import train as train_local

        train_local(scenario, algo, scheme, steps, seed_list, out, episodes_per_iter, True,
                    checkpoint_every=checkpoint_every)
        return
    m = episodes_per_iter or 64
    per_slot = 1 if SCHEMES.get("cellular", scheme).central_policy else sc.radio.n_cells
    slots = max(m, (steps // per_slot) // m * m)
    summaries = []
    for seed in seed_list:
        summaries.append(execute(scenario, scheme, "network", slots, seed, out / f"seed-{seed}",
                                 (), weights, {"train": {"algo": algo, "episodes_per_iter": m,
                                                         "save_batches": save_batches,
                                                         "scheme": scheme,
                                                         "checkpoint_every": checkpoint_every},
                                               "action_mode": "sample",
                                               "history": str((out / f"seed-{seed}" / "history")
                                                              .resolve()) if history else None,
                                               "controller_restarts": controller_restarts}))
    print_summary(summaries, Console(), title=f"network training: {scheme}, {algo}")


@cli.command()
@click.argument("sources", nargs=-1, required=True,
                type=click.Path(exists=True, path_type=Path))
@click.option("--scenario", "scenario_path", type=click.Path(exists=True, dir_okay=False,
              path_type=Path), default="scenarios/3cell-k2.toml", show_default=True)
@click.option("-n", "--realizations", type=click.IntRange(1), default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--slots", type=click.IntRange(1), default=200, show_default=True,
              help="Slots of the network-runner check of each trained policy.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path))
def evaluate(sources: tuple[Path, ...], scenario_path: Path, realizations: int, seed: int,
             slots: int, out: Path | None) -> None:
    """Compare trained policies (training run dirs or weights files) with WMMSE, FP,
    max-power, random and the reference optimum on the same realizations, write the paper's
    figures, then run each policy over the network runner and check it matches the local
    runner slot by slot."""
    from controller.evaluation.evaluate import (
        evaluate_local,
        load_policies,
        print_evaluation,
        weights_file,
    )

    sc = resolve_scenario(scenario_path, ())
    result = evaluate_local(list(sources), sc, realizations, seed, out=out)
    print_evaluation(result)
    base = Path(out) if out else weights_file(sources[0]).parent
    for pol in load_policies(list(sources), sc):
        runs = {r: execute(scenario_path, pol.scheme, r, slots, seed,
                           base / "network-check" / f"{pol.slug}-{r}", (), pol.path, {})
                for r in ("network", "local")}
        same = (runs["network"]["sum_rate_bps_hz_mean"] == runs["local"]["sum_rate_bps_hz_mean"])
        console.print(f"{pol.label}: network runner {runs['network']['sum_rate_mbps_mean']:.2f} "
                      f"Mbit/s, local {runs['local']['sum_rate_mbps_mean']:.2f} Mbit/s over "
                      f"{slots} slots: {'identical' if same else '[red]DIFFERENT[/red]'}")
        if not same:
            sys.exit(2)


# ---------------------------------------------------------------------------- V2X


@cli.group()
def v2x() -> None:
    """Vehicular spectrum sharing (paper 000): multi-agent DQN with fingerprints."""


@v2x.command("train")
@click.argument("scenario", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                default="scenarios/v2x-manhattan.toml")
@click.option("--scheme", type=SchemeChoice("v2x", lambda s: s.trainable),
              default=SCHEMES.default("v2x", "train"), show_default=True)
@click.option("--runner", type=click.Choice(["local", "network"]), default="local",
              show_default=True, help="local: vectorized episodes in one process; network: "
              "vehicle nodes upload experience, the controller trains and broadcasts weights.")
@click.option("--episodes", type=click.IntRange(1), default=200, show_default=True,
              help="Training episodes (each deadline_s / slot_s slots).")
@click.option("--broadcast-period", type=click.IntRange(1), default=100, show_default=True,
              help="Network runner: slots between weight broadcasts.")
@click.option("--sharing", type=click.Choice(["per-agent", "shared"]), default="per-agent",
              show_default=True, help="One Q network per vehicle (the paper) or one shared "
              "network with the vehicle id one-hot in its input.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--checkpoint-every", type=click.IntRange(1), default=10, show_default=True,
              help="Network runner: a checkpoint at the first update on an episode boundary "
              "once N updates have passed since the last one, and at the end.")
@click.option("--resume", "resume_dir", type=click.Path(exists=True, file_okay=False,
              path_type=Path), help="Continue the network training run RUN_DIR from its "
              "latest checkpoint, with the settings it was started with.")
@click.option("--controller-restarts", type=click.IntRange(0), default=0, show_default=True,
              help="Network runner: restart a controller that dies (up to N times); it "
              "continues from its latest checkpoint while the vehicles and the air wait.")
def v2x_train(scenario: Path, scheme: str, runner: str, episodes: int, broadcast_period: int,
              sharing: str, seed: int, out: Path | None, checkpoint_every: int,
              resume_dir: Path | None, controller_restarts: int) -> None:
    """Train SCHEME's Q networks; writes OUT/weights.npz (for `rrmbed run --weights`) and
    the training curve (training.csv). Over the network (durable as `rrmbed train`'s):
    updates.jsonl, checkpoints/, and `--resume OUT --runner network` after a kill."""
    if resume_dir is not None:
        if runner != "network":
            raise click.UsageError("--resume RUN_DIR continues a --runner network run")
        from controller.evaluation.v2x_run import print_v2x_summary

        summary = resume_network(resume_dir, "v2x", "v2x train")
        print_v2x_summary([summary], Console(width=max(120, Console().width)),
                          title=f"network training: {summary['scheme']}")
        click.echo(f"weights: {resume_dir / 'weights.npz'}")
        return
    sc = resolve_v2x(scenario, ())
    out = out or Path("runs") / f"v2x-train-{scheme}-{runner}-s{seed}"
    if runner == "network":
        summary = execute(scenario, scheme, "network", episodes * sc.n_steps, seed, out, (),
                          None, {"train": {"broadcast_period": broadcast_period,
                                           "sharing": sharing,
                                           "checkpoint_every": checkpoint_every},
                           "controller_restarts": controller_restarts})
        from controller.evaluation.v2x_run import print_v2x_summary

        print_v2x_summary([summary], Console(width=max(120, Console().width)),
                          title=f"network training: {scheme}")
    else:
        from controller.training.v2x_marl import marl_config, train_and_write

        with progress_bar() as bar:
            bar.add_task(f"{scheme}: {episodes} episodes (local)", total=None)
            curve = train_and_write(sc, scheme, episodes, seed, marl_config(sharing), out)
        last = curve[-10:]
        if last:
            console.print(f"last {len(last)} training episodes: delivery rate "
                          f"{sum(c['delivery_rate'] for c in last) / len(last):.3f}")
    click.echo(f"weights: {out / 'weights.npz'}")


@v2x.command("compare")
@click.argument("scenario", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                default="scenarios/v2x-manhattan.toml")
@click.option("--episodes", type=click.IntRange(1), default=200, show_default=True,
              help="Training episodes per scheme and seed.")
@click.option("--seeds", default="0,1,2", show_default=True, help="Comma-separated seeds.")
@click.option("--eval-episodes", type=click.IntRange(1), default=100, show_default=True,
              help="Fresh drops each trained policy is evaluated on (greedy).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("runs/v2x-compare"), show_default=True)
def v2x_compare(scenario: Path, episodes: int, seeds: str, eval_episodes: int,
                out: Path) -> None:
    """Train and evaluate marl-dqn, marl-dqn-nofp, turn-dqn and random on every seed (local
    runner); print the delivery rates and sum V2I rates next to the single-link bound (each
    V2V link alone on its best RB at full power: no scheme can deliver more); write
    results.json / results.csv."""
    from controller.evaluation.v2x_compare import compare

    sc = resolve_v2x(scenario, ())
    seed_list = tuple(int(x) for x in seeds.split(",") if x.strip())
    with progress_bar() as bar:
        bar.add_task(f"every V2X scheme x {len(seed_list)} seeds x {episodes} episodes",
                     total=None)
        table = compare(sc, episodes, seed_list, eval_episodes, out)
    Console(width=max(120, Console().width)).print(table)
    click.echo(f"results: {out / 'results.json'}")


# ---------------------------------------------------------------------------- D2D


@cli.group()
def d2d() -> None:
    """D2D underlay spectrum sharing (paper 002): MAAC and NAAC trained at the base station."""


@d2d.command("train")
@click.argument("scenario", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                default="scenarios/d2d-n10.toml")
@click.option("--scheme", type=SchemeChoice("d2d-underlay", lambda s: s.trainable),
              default=SCHEMES.default("d2d-underlay", "train"), show_default=True)
@click.option("--runner", type=click.Choice(["local", "network"]), default="local",
              show_default=True, help="local: one process, an update every slot; network: "
              "pair nodes upload their histories, the controller trains and broadcasts the "
              "actors every --broadcast-period slots.")
@click.option("--slots", type=click.IntRange(1), default=5000, show_default=True,
              help="Training slots, the random warm-up included.")
@click.option("--random-slots", type=click.IntRange(0), default=2000, show_default=True,
              help="Slots of random allocation before the actors act and updates start.")
@click.option("--neighbours", type=click.IntRange(1), default=3, show_default=True,
              help="lambda: the nearest pairs a NAAC critic sees.")
@click.option("--batch-size", type=click.IntRange(1), default=128, show_default=True)
@click.option("--actor-hidden", default="512,128", show_default=True,
              help="Actor hidden widths, comma-separated.")
@click.option("--critic-hidden", default="1024,512,256", show_default=True,
              help="Critic hidden widths, comma-separated.")
@click.option("--broadcast-period", type=click.IntRange(1), default=100, show_default=True,
              help="Network runner: slots between actor broadcasts (and updates).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="The run's seed: the drop, the fading, the learner (evaluate with the same "
                   "seed to act on the drop the actors trained on).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Scenario overrides, e.g. --set radio.n_pairs=20.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path))
def d2d_train(scenario: Path, scheme: str, runner: str, slots: int, random_slots: int,
              neighbours: int, batch_size: int, actor_hidden: str, critic_hidden: str,
              broadcast_period: int, seed: int, sets: tuple[str, ...],
              out: Path | None) -> None:
    """Train SCHEME's actors (MAAC or NAAC); writes OUT/weights.npz (the target actors, for
    `rrmbed run --scheme SCHEME --weights`) and OUT/training.csv."""
    from controller.learners.maac import MaacConfig

    resolved = resolve_file(scenario, sets)
    if resolved.kind.name != "d2d-underlay":
        raise click.ClickException(f"{scenario}: a {resolved.kind.name} scenario; this "
                                   "command takes a d2d-underlay one")
    sc = resolved.scenario

    def widths(text: str, opt: str) -> tuple[int, ...]:
        try:
            return tuple(int(x) for x in text.split(",") if x.strip())
        except ValueError:
            raise click.BadParameter(f"{text!r} is not comma-separated integers",
                                     param_hint=opt) from None

    maac = MaacConfig(neighbours=neighbours, batch_size=batch_size,
                      actor_hidden=widths(actor_hidden, "--actor-hidden"),
                      critic_hidden=widths(critic_hidden, "--critic-hidden"),
                      learning_starts=max(random_slots, 1))
    out = out or Path("runs") / f"d2d-train-{sc.name}-{scheme}-{runner}-s{seed}"
    if runner == "network":
        from controller.evaluation.d2d_run import print_d2d_summary

        summary = execute(resolved, scheme, "network", slots, seed, out, (), None,
                          {"train": {"broadcast_period": broadcast_period,
                                     "random_slots": random_slots,
                                     "learner": {"neighbours": neighbours,
                                              "batch_size": batch_size,
                                              "actor_hidden": list(maac.actor_hidden),
                                              "critic_hidden": list(maac.critic_hidden)}}})
        print_d2d_summary([summary], Console(width=max(120, Console().width)),
                          title=f"network training: {scheme}")
    else:
        from controller.training.d2d_train import D2dTrainConfig, train_and_write

        cfg = D2dTrainConfig(maac=maac, random_slots=random_slots)
        with progress_bar() as bar:
            task = bar.add_task(f"{scheme}: {slots} slots (local)", total=slots)
            curve = train_and_write(sc, scheme, slots, seed, cfg, out,
                                    lambda t: bar.update(task, completed=t + 1))
        last = curve[-1]
        span = int(last["slot"]) - (int(curve[-2]["slot"]) if len(curve) > 1 else 0)
        console.print(f"last {span} slots: total reward {last['total_reward']:.3f}, D2D sum rate "
                      f"{last['d2d_sum_mbps']:.3f} Mbit/s, CUE outage {last['cue_outage']:.4f}, "
                      f"D2D outage {last['d2d_outage']:.4f}")
    click.echo(f"weights: {out / 'weights.npz'}")


# ------------------------------------------------------------------------- tables


@cli.group()
def table() -> None:
    """Paper 001's Tables III and IV, measured over the network runner."""


def _table(which: str, scenario: Path, slots: int, seed: int, out: Path | None,
           schemes: tuple[str, ...], sets: tuple[str, ...]) -> None:
    from controller.evaluation.tables import measure, publish, table_schemes

    sc = resolve_scenario(scenario, sets)
    chosen = list(schemes) or table_schemes(sc.radio)
    out = out or Path("runs") / f"table-{which}-{sc.name}-s{seed}"
    rows = measure(chosen, lambda scheme, run_dir: execute(
        scenario, scheme, "network", slots, seed, run_dir, sets, None, {}), out, sc.radio.n_cells)
    title = (f"{'Information exchange' if which == 'exchange' else 'Decision latency'} "
             f"— {sc.name}, {slots} slots, network runner")
    publish(rows, which, title, out, Console(width=max(140, Console().width)))
    click.echo(f"written: {out}/{which}.csv, {out}/plots/{which}.png")


TABLE_OPTIONS = [
    click.argument("scenario", type=click.Path(exists=True, dir_okay=False, path_type=Path)),
    click.option("--slots", type=click.IntRange(1), default=200, show_default=True),
    click.option("--seed", type=int, default=0, show_default=True),
    click.option("--out", type=click.Path(file_okay=False, path_type=Path)),
    click.option("--scheme", "schemes", multiple=True, help="Only these schemes (repeatable)."),
]


def table_options(f: Any) -> Any:
    for opt in reversed(TABLE_OPTIONS):
        f = opt(f)
    return f


@table.command("exchange")
@table_options
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE")
def table_exchange(scenario: Path, slots: int, seed: int, out: Path | None,
                   schemes: tuple[str, ...], sets: tuple[str, ...]) -> None:
    """Backhaul bytes per slot, total and per BS, of every scheme (Table III)."""
    _table("exchange", scenario, slots, seed, out, schemes, sets)


@table.command("latency")
@table_options
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              default=('timing.compute_model="measured"',), show_default=True,
              help="Scenario overrides; by default compute time is measured, not modelled.")
def table_latency(scenario: Path, slots: int, seed: int, out: Path | None,
                  schemes: tuple[str, ...], sets: tuple[str, ...]) -> None:
    """Decision latency (emulated and wall) and compute time of every scheme (Table IV)."""
    _table("latency", scenario, slots, seed, out, schemes, sets)


# ------------------------------------------------------------------------ benches


@cli.command("history")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--staleness", type=click.IntRange(0), default=0, show_default=True,
              help="Weights versions a node's decision may lag behind the newest one sent "
                   "to it (0: a training run that pauses until every node has the new one).")
def history_cmd(run_dir: Path, staleness: int) -> None:
    """Check the message histories of a run made with `rrmbed run --history`: weights
    versions only increase, staleness within the bound, every used experience used once,
    nothing lost or changed between processes, and the meter agrees. Exit status 1 and one
    line per violation when something is wrong."""
    from controller.evaluation.history import check, load

    problems = check(run_dir, staleness)
    incs = load(run_dir / "history")
    rows = sum(len(i.rows) for i in incs)
    click.echo(f"{len(incs)} process histories, {rows} messages")
    for line in problems:
        click.echo(f"violation: {line}")
    if problems:
        sys.exit(1)
    click.echo("history: every check holds")


@cli.command()
@click.option("--broker", metavar="URL", envvar="RRMBED_BROKER",
              help="MQTT broker (default $RRMBED_BROKER, else mqtt://127.0.0.1:1883).")
@click.option("--run", "run_name", help="Only this run (the run directory's name).")
@click.option("--duration", type=float, help="Stop after this many seconds.")
@click.option("--keys", "keys_dir", type=click.Path(file_okay=False, path_type=Path),
              help="The run's key directory: log in as the read-only user `watch` "
                   "(DIR/watch.password). Without it, anonymous (an --insecure run's broker).")
def watch(broker: str | None, run_name: str | None, duration: float | None,
          keys_dir: Path | None) -> None:
    """Live table of every process's status and metrics, from MQTT telemetry."""
    from controller.deploy.watch import main as watch_main

    sys.exit(watch_main(broker, run_name, duration, keys_dir))


@cli.command()
@click.argument("scenario", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--nodes", type=click.IntRange(1),
              help="Node services (default: radio.n_cells, or radio.n_v2v for V2X).")
@click.option("--scheme", help=default_help("compose"))
@click.option("--slots", type=click.IntRange(1), default=200, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--weights", help="Policy weights (.npz) on the host, mounted read-only.")
@click.option("--image", default="rrmbed:local", show_default=True, help="rrmbed image.")
@click.option("--runs", "runs_dir", default="./runs", show_default=True,
              help="Host folder (or named volume) mounted at /runs for the results.")
@click.option("--broker-image", help="MQTT broker image (default eclipse-mosquitto).")
@click.option("--no-telemetry", is_flag=True, help="No broker service, no telemetry.")
@click.option("--run-name", help="Run directory name under /runs.")
@click.option("--subnet", help="Fixed addresses on this subnet plus /etc/hosts entries, for "
                               "docker engines without embedded DNS (--iptables=false).")
@click.option("--keys", "keys_dir", help="Key directory from `rrmbed keys` on the host: each "
                                         "service gets the public keys and its own secret "
                                         "as compose secrets.")
@click.option("--insecure", is_flag=True, help="No keys: the services run without CURVE.")
def compose(scenario: Path, nodes: int | None, scheme: str | None, slots: int, seed: int,
            weights: str | None, image: str, runs_dir: str, broker_image: str | None,
            no_telemetry: bool, run_name: str | None, subnet: str | None,
            keys_dir: str | None, insecure: bool) -> None:
    """Print a docker-compose file for SCENARIO: one container per process.

    Example: rrmbed keys keys --scenario scenarios/3cell-k2.toml && rrmbed compose
    scenarios/3cell-k2.toml --scheme round-robin --keys keys > docker-compose.yml
    (the services run as $RRMBED_UID, default 10001, which must be able to read the
    secrets: chown 10001 keys/*.secret, or set RRMBED_UID to the keys' owner).
    """
    if (keys_dir is None) == (not insecure):
        raise click.UsageError("pass --keys DIR (written by `rrmbed keys`) or --insecure")
    from controller.deploy.compose import DEFAULT_BROKER_IMAGE, render_compose
    resolved = resolve_file(scenario)
    kind, n = resolved.kind.node_role, resolved.n_nodes
    scheme = scheme_or_default(scheme, resolved, "compose")
    if scheme not in SCHEMES.names(resolved.kind.name):
        raise click.BadParameter(f"unknown scheme {scheme!r} for a {resolved.kind.name} "
                                 f"scenario; choose from "
                                 f"{', '.join(SCHEMES.names(resolved.kind.name))}",
                                 param_hint="--scheme")
    click.echo(render_compose(str(scenario), nodes or n, scheme, slots, seed,
                              weights, image, runs_dir,
                              broker_image=broker_image or DEFAULT_BROKER_IMAGE,
                              telemetry=not no_telemetry, run_name=run_name, subnet=subnet,
                              node_kind=kind, keys=keys_dir, insecure=insecure),
               nl=False)


@cli.group()
def bench() -> None:
    """Benchmarks: figures measured side by side in one run."""


@bench.command("transport")
@click.option("-n", "--count", type=click.IntRange(10), default=2000, show_default=True,
              help="Timed round trips per path and run.")
@click.option("--floats", type=click.IntRange(1), default=64, show_default=True,
              help="float64 values in the payload.")
@click.option("--placement", "placements", multiple=True,
              type=click.Choice(["same-core", "two-cores", "os"]),
              help="Process placement (repeatable; default: all three).")
@click.option("--repeat", type=click.IntRange(1), default=1, show_default=True,
              help="Independent runs (fresh processes) per placement; with more than one, "
                   "a median row per placement.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write every run's figures (and the medians) to this JSON file.")
@click.option("--curve", is_flag=True,
              help="Our hop with CURVE keys (authenticated and encrypted, as runs are by "
                   "default); without it, our hop in the clear, as with --insecure.")
def bench_transport(count: int, floats: int, placements: tuple[str, ...], repeat: int,
                    json_path: Path | None, curve: bool) -> None:
    """Round trip of one rrmbed backhaul hop vs raw pyzmq REQ/REP, same run, per placement:
    all processes on one core, client and echo peers on two cores, or as the OS schedules."""
    from controller.bench.transport import PLACEMENTS, print_bench, run_repeated, write_json

    results = run_repeated(placements or PLACEMENTS, repeat, count, floats, curve=curve)
    print_bench(results)
    if json_path is not None:
        try:
            write_json(results, json_path)
        except OSError as e:
            raise click.ClickException(f"cannot write {json_path}: {e.strerror or e}") from e
        click.echo(f"wrote {json_path}")


@bench.command("fuzz", context_settings={"ignore_unknown_options": True,
                                         "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def bench_fuzz(args: tuple[str, ...]) -> None:
    """Hostile frames against every socket of a running network run, through CURVE with a
    stolen node key: every frame counted by reason, no crash, RSS growth bounded
    (``rrmbed bench fuzz --help`` for the options)."""
    from controller.bench.fuzz import main as fuzz_main

    sys.exit(fuzz_main(list(args)))


@bench.command("baselines")
@click.option("--batch", type=click.IntRange(1), default=1000, show_default=True)
@click.option("--compare", type=click.IntRange(0), default=1000, show_default=True,
              help="3cell-k2 drops for the sum-rate / optimality-gap comparison (0: skip).")
def bench_baselines(batch: int, compare: int) -> None:
    """Vectorized WMMSE / FP vs a per-instance loop, 3cell-k2 and 7cell-k8, same run; then
    the mean sum-rates and optimality gaps of every baseline on the same drops."""
    from controller.bench.baselines import main as bench_main

    bench_main(["--batch", str(batch), "--compare", str(compare)])


@bench.command("dqn-power")
@click.option("--steps", type=click.IntRange(1), default=3000, show_default=True,
              help="Training steps (each a batch of parallel slots).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--eval", "eval_drops", type=click.IntRange(1), default=20_000, show_default=True,
              help="Evaluation drops, shared by every allocator.")
def bench_dqn_power(steps: int, seed: int, eval_drops: int) -> None:
    """Multi-agent DQN with 10 discrete power levels on 3cell-k2: greedy sum-rate next to
    WMMSE, max power and random levels on the same drops."""
    from controller.training.dqn_power import main as dqn_main

    dqn_main(["--steps", str(steps), "--seed", str(seed), "--eval", str(eval_drops)])


@bench.command("trpo")
@click.option("--steps", type=click.IntRange(1), default=60_000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--episodes", type=click.IntRange(1), default=1000, show_default=True,
              help="Episodes per update for both learners.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path))
def bench_trpo(steps: int, seed: int, episodes: int, out: Path | None) -> None:
    """Our centralized TRPO vs sb3-contrib's TRPO on the same 3cell-k2 env, same steps
    (needs the 'bench' extra: pip install '.[bench]')."""
    from controller.bench.trpo import print_bench, run_bench

    try:
        print_bench(run_bench(steps, seed, episodes_per_iter=episodes, out=out))
    except ImportError as e:
        raise click.ClickException(str(e)) from e


@bench.command("slots")
@click.option("--slots", type=click.IntRange(1), default=2000, show_default=True,
              help="Slots per run.")
@click.option("--slots-7", "slots_7", type=click.IntRange(1),
              help="Slots per run on a 7-cell scenario (default: --slots / 4).")
@click.option("--repeat", type=click.IntRange(1), default=1, show_default=True,
              help="Runs per cell; the table shows their median.")
@click.option("--scheme", "schemes", multiple=True,
              help="Only this scheme (repeatable; default: every cellular scheme).")
@click.option("--scenario", "scenarios", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Scenario file (repeatable; default: scenarios/3cell-k2.toml and "
                   "scenarios/7cell-k8.toml).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Passed to every run, e.g. --set timing.compute_model='\"fixed\"'.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for slots.json, slots.csv and the run directories "
                   "(default runs/bench-slots-<time>).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write every run's figures and the medians to this JSON file.")
def bench_slots(slots: int, slots_7: int | None, repeat: int, schemes: tuple[str, ...],
                scenarios: tuple[Path, ...], sets: tuple[str, ...], out: Path | None,
                json_path: Path | None) -> None:
    """Slots per second of every cellular scheme over real processes (--runner network) and
    the in-memory pump (--runner local), 3cell-k2 and 7cell-k8, side by side with the
    network/local ratio. Each run is `rrmbed run ... --seed 0` in a subprocess; the figure is
    its summary.json wall_slots_per_s (slot phase only, handshake excluded). Every run gets
    OMP_NUM_THREADS=1 and MKL_NUM_THREADS=1 (torch's thread count otherwise depends on the
    core count). Another checkout: python -m controller.bench.slots --root PATH."""
    from controller.bench.slots import ROOT, BenchError, run_bench

    try:
        code = run_bench(ROOT, scenarios, schemes, slots, slots_7, repeat, sets, out, json_path)
    except BenchError as e:
        raise click.ClickException(str(e)) from e
    sys.exit(code)


def main() -> None:
    from controller.deploy.launcher import install_sigterm_as_interrupt
    from protocols.plugins import load_plugins

    install_sigterm_as_interrupt()
    load_plugins()
    cli(prog_name="rrmbed")


if __name__ == "__main__":
    main()
