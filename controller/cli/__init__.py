"""The ``rrmbed`` command line: the kind-independent commands.

The root group and the helpers are in :mod:`controller.cli.common`; a scenario kind's own
commands (``rrmbed v2x ...``, ``rrmbed d2d ...``) are modules of
:mod:`controller.cli.commands`, all loaded below, so a new kind adds a module there and
edits nothing here.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from controller.cli import commands
from controller.cli.common import (
    SCHEME_HELP,
    SchemeChoice,
    cli,
    console,
    default_help,
    default_out,
    execute,
    parse_overrides,
    resolve_file,
    resolve_scenario,
    resolve_v2x,
    resume_network,
    run_process,
    scheme_or_default,
    sweep_config,
    sweep_options,
)
from controller.cli.common import (
    seed_list as seed_list_of,
)
from controller.learners import registry as learners
from node.schemes import SCHEMES
from node.schemes.cellular import trainable


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
        for err in summary.get("errors", []):
            console.print(f"[red]error:[/red] {err}")
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
@click.option("--d2d", "d2d_scenario", type=click.Path(exists=True, dir_okay=False,
              path_type=Path), default="scenarios/d2d-n10.toml", show_default=True,
              help="D2D underlay scenario of the D2D part.")
@click.option("--no-d2d", is_flag=True, help="Skip the D2D part.")
@click.option("--gnn", "gnn_scenario", type=click.Path(exists=True, dir_okay=False,
              path_type=Path), default="scenarios/ic-geo-k20.toml", show_default=True,
              help="Interference-channel scenario of the GNN part.")
@click.option("--alcor", "alcor_scenario", type=click.Path(exists=True, dir_okay=False,
              path_type=Path), default="scenarios/alcor-gauss-n5.toml", show_default=True,
              help="Scenario (with demands) of the ALCOR rows of the GNN part.")
@click.option("--no-gnn", is_flag=True, help="Skip the GNN / ALCOR part.")
def demo(scenario: Path, train_steps: int, slots: int, seed: int, out: Path,
         v2x_scenario: Path | None, no_v2x: bool, d2d_scenario: Path | None,
         no_d2d: bool, gnn_scenario: Path, alcor_scenario: Path, no_gnn: bool) -> None:
    """The main job: train the three TRPO schemes briefly, then run every scheme over
    real processes and print one comparison table (sum-rate, optimality gap, backhaul
    bytes per slot, decision latency); then the V2X part: multi-agent DQN and random with
    one process per vehicle, and a short training run over the network; then the D2D
    part: MAAC's actors and the untrained schemes with one process per D2D pair, and a
    short training run over the network; then the GNN part: the MPGNN (as rounds of
    messages between link processes) and the MLP trained briefly, next to WMMSE, and ALCOR
    meeting changing rate demands."""
    if no_v2x:
        v2x_scenario = None
    if no_d2d:
        d2d_scenario = None
    from controller.evaluation.demo import (
        DemoConfig,
        run_d2d_demo,
        run_demo,
        run_gnn_demo,
        run_v2x_demo,
    )

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
    if d2d_scenario is not None:
        run_d2d_demo(d2d_scenario, out, cfg, lambda scheme, run_dir, weights, n, options:
                     execute(d2d_scenario, scheme, "network", n, seed, run_dir, (), weights,
                             options), wide)
    if not no_gnn:
        run_gnn_demo(gnn_scenario, out, cfg, lambda scheme, run_dir, weights: execute(
            gnn_scenario, scheme, "network", cfg.gnn_slots, seed, run_dir, (), weights, {}),
            lambda scheme, run_dir: execute(alcor_scenario, scheme, "network", 9000, seed,
                                            run_dir, (), None, {}), wide)


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
@click.option("--seeds", default="0", show_default=True,
              help="Seeds: comma-separated, or ranges such as 0-9.")
@sweep_options
@click.option("--out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--weights", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Network runner: start from these weights (no warm start then).")
@click.option("--save-batches", is_flag=True, hidden=True)
@click.option("--checkpoint-every", type=click.IntRange(1), default=10, show_default=True,
              help="A checkpoint every N updates (and after the last one).")
@click.option("--validation-episodes", type=click.IntRange(1), default=1000,
              show_default=True, help="Channel realizations of the validation set that ranks the "
              "seeds (best-weights.npz, local runner) and rates the warm start.")
@click.option("--user-selection", is_flag=True,
              help="Local runner: paper 004's diverse training, each episode a random subset "
                   "of users on (the others' channel zeroed, 0 W): the policy ALCOR needs as "
                   "its URA (alcor-centralized).")
@click.option("--imitate", "teacher", metavar="SCHEME|auto|none", default="auto",
              show_default=True,
              help="A warm start: before the first update the policy's mean is fitted to "
                   "this classical scheme's powers (fp, wmmse, ...) on fresh realizations, "
                   "from what the scheme's deciders observe (seed-<s>/imitation.json says "
                   "how close it got; over the network the weights it gives, "
                   "seed-<s>/warm-start.npz, are the run's first). auto: the teacher that "
                   "won for the scheme (centralized: wmmse; round-robin, full: fp), none "
                   "with --user-selection or --weights; none: the paper's recipe, from "
                   "seeded random weights.")
@click.option("--imitation-drops", type=click.IntRange(1), default=20_000, show_default=True,
              help="The warm start's channel realizations (the teacher solves each).")
@click.option("--imitation-epochs", type=click.IntRange(1), default=10, show_default=True,
              help="The warm start's passes over them.")
@click.option("--learner-option", "learner_option", multiple=True, metavar="KEY=VALUE",
              help="Set a field of the learner's config (trpo: TrpoConfig, a2c: A2cConfig in "
                   "controller/learners/), for ablations: max_kl=0.02, gae_lambda=1.0, "
                   "value_hidden=[64,64]; repeatable. An unknown key lists the known ones; "
                   "the run's config.toml keeps them for --resume.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override a scenario field for the run, e.g. --set radio.action_map=clip "
                   "(paper 001's clipped linear powers), --set "
                   "radio.noise_psd_dbm_hz=-164; repeatable. The run keeps the resolved "
                   "scenario (config.toml, scenario.toml) for --resume.")
@click.option("--history", is_flag=True,
              help="Network runner: every process logs its messages to OUT/seed-<s>/history/ "
                   "(check with `rrmbed history OUT/seed-<s>`).")
@click.option("--resume", "resume_dir", type=click.Path(exists=True, file_okay=False,
              path_type=Path), help="Continue a training run that was killed (or extend "
              "one that ended) from its latest checkpoints, with the settings it was "
              "started with: a local run's OUT folder (every seed; --steps, when given, is "
              "the new budget per seed), or a network run's seed-<s> folder.")
@click.option("--controller-restarts", type=click.IntRange(0), default=0, show_default=True,
              help="Network runner: restart a controller that dies (up to N times) on its "
                   "address; it continues from its latest checkpoint while the other "
                   "processes wait and send again what it lacks.")
def train(scenario: Path | None, algo: str, scheme: str, runner: str, steps: int,
          episodes_per_iter: int | None, seeds: str, backend: str, address: str | None,
          ray_retries: int, out: Path | None, weights: Path | None,
          save_batches: bool, checkpoint_every: int, validation_episodes: int,
          user_selection: bool, teacher: str, imitation_drops: int,
          imitation_epochs: int, learner_option: tuple[str, ...], sets: tuple[str, ...],
          history: bool, resume_dir: Path | None, controller_restarts: int) -> None:
    """Train a paper-001 policy for SCHEME with a registered learner (--algo); writes
    weights (a weights file with a header: scheme, kind, dims, algo, steps) and curves.

    With --runner network, each seed's run directory (OUT/seed-<s>) is written as the run
    goes: training.csv and updates.jsonl (what each update used) row by row, weights.npz
    after every update, checkpoints/ every --checkpoint-every updates; `rrmbed train
    --resume OUT/seed-<s> --runner network` continues a run that was killed.

    With --backend ray (local runner), each seed is a Ray task on a local Ray instance, or
    on an existing cluster with --address; the seeds give the same weights and curves as
    in one process, and a seed whose worker is lost is run again (and said so)."""
    from controller.evaluation.results import print_summary

    if resume_dir is not None:
        if scenario is not None or sets:
            raise click.UsageError("--resume RUN_DIR takes the run's own settings: give no "
                                   "SCENARIO or --set")
        from controller.deploy.launcher import RUN_FILE

        if not (resume_dir / RUN_FILE).exists():  # a local run's OUT folder
            from controller.training.train import resume

            ctx = click.get_current_context()
            new_steps = (None if ctx.get_parameter_source("steps")
                         == click.core.ParameterSource.DEFAULT else steps)
            try:
                resume(resume_dir, new_steps, sweep_config=sweep_config(
                    backend, address, ray_retries), say=click.echo)
            except ValueError as e:
                raise click.BadParameter(str(e), param_hint="--resume") from e
            return
        summary = resume_network(resume_dir, "cellular", "train")
        print_summary([summary], Console(), title=f"network training: {summary['scheme']}")
        return
    if scenario is None:
        raise click.UsageError("missing SCENARIO (or --resume RUN_DIR)")
    seed_list = seed_list_of(seeds)
    sweep = sweep_config(backend, address, ray_retries)
    sc = resolve_scenario(scenario, sets)
    out = out or Path("runs") / f"train-{sc.name}-{scheme}-{algo}-{runner}"
    from controller.training.imitation import ImitationConfig, resolve_teacher

    try:
        name = resolve_teacher(teacher, SCHEMES.get("cellular", scheme),
                               user_selection=user_selection, weights=weights is not None)
        imitation = (None if name is None else
                     ImitationConfig(name, imitation_drops, imitation_epochs))
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--imitate") from e
    options = parse_overrides(learner_option, "--learner-option")
    try:
        from controller.training.train import TrainConfig

        TrainConfig(algo, scheme, steps, learner_options=tuple(options.items()))
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--learner-option") from e
    if runner == "local":
        from controller.training.train import train as train_local

        if weights is not None:
            raise click.UsageError("--weights is the network runner's: the local runner "
                                   "starts from the seed's weights or a warm start (--imitate)")
        train_local(sc, algo, scheme, steps, seed_list, out, episodes_per_iter, True,
                    checkpoint_every=checkpoint_every, sweep_config=sweep, say=click.echo,
                    validation_episodes=validation_episodes, user_selection=user_selection,
                    imitation=imitation, learner_options=options)
        return
    if sweep.backend != "serial" or user_selection:
        raise click.UsageError("--backend ray and --user-selection are the local runner's")
    m = episodes_per_iter or 64
    per_slot = 1 if SCHEMES.get("cellular", scheme).central_policy else sc.radio.n_cells
    slots = max(m, (steps // per_slot) // m * m)
    summaries = []
    for seed in seed_list:
        start, warm = weights, None
        if imitation is not None:
            from controller.training.train import warm_start_weights

            click.echo(f"seed {seed}: warm start, imitating {imitation.teacher} on "
                       f"{imitation.drops} realizations", err=True)
            start, warm = warm_start_weights(sc, algo, scheme, imitation, seed,
                                             out / f"seed-{seed}", validation_episodes)
        summaries.append(execute(scenario, scheme, "network", slots, seed, out / f"seed-{seed}",
                                 sets, start, {"train": {"algo": algo, "episodes_per_iter": m,
                                                         "save_batches": save_batches,
                                                         "scheme": scheme,
                                                         "checkpoint_every": checkpoint_every,
                                                         "learner_options": options,
                                                         "warm_start": warm},
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
@click.option("--swarm", is_flag=True,
              help="A Docker Swarm stack file for `docker stack deploy` (several hosts) "
                   "instead of a compose file: overlay network, one service per process.")
@click.option("--require-labels", is_flag=True,
              help="With --swarm: run each service only on hosts labelled rrmbed.role="
                   "controller (controller, channel-server, broker) or rrmbed.role=<node "
                   "role> (node, vehicle, pair, link); default: those three on a manager, "
                   "the nodes anywhere.")
def compose(scenario: Path, nodes: int | None, scheme: str | None, slots: int, seed: int,
            weights: str | None, image: str, runs_dir: str, broker_image: str | None,
            no_telemetry: bool, run_name: str | None, subnet: str | None,
            keys_dir: str | None, insecure: bool, swarm: bool, require_labels: bool) -> None:
    """Print a docker-compose file for SCENARIO: one container per process.

    Example: rrmbed keys keys --scenario scenarios/3cell-k2.toml && rrmbed compose
    scenarios/3cell-k2.toml --scheme round-robin --keys keys > docker-compose.yml
    (the services run as $RRMBED_UID, default 10001, which must be able to read the
    secrets: chown 10001 keys/*.secret, or set RRMBED_UID to the keys' owner).

    With --swarm, a stack file instead: docker stack deploy --resolve-image never -c
    docker-stack.yml rrmbed (docs/deploy.md: hosts, labels, results).
    """
    if (keys_dir is None) == (not insecure):
        raise click.UsageError("pass --keys DIR (written by `rrmbed keys`) or --insecure")
    if swarm and subnet is not None:
        raise click.UsageError("--subnet is for compose on daemons without embedded DNS; "
                               "swarm services find each other through swarm's DNS")
    if require_labels and not swarm:
        raise click.UsageError("--require-labels places swarm services: add --swarm")
    from controller.deploy.compose import DEFAULT_BROKER_IMAGE, render_compose
    resolved = resolve_file(scenario)
    kind, n = resolved.kind.node_role, resolved.n_nodes
    scheme = scheme_or_default(scheme, resolved, "compose")
    if scheme not in SCHEMES.names(resolved.kind.name, external=True):
        raise click.BadParameter(f"unknown scheme {scheme!r} for a {resolved.kind.name} "
                                 f"scenario; choose from "
                                 f"{', '.join(SCHEMES.names(resolved.kind.name))}",
                                 param_hint="--scheme")
    if SCHEMES.get(resolved.kind.name, scheme).options.get("external"):
        raise click.BadParameter(f"scheme {scheme!r} waits for a learner outside the testbed "
                                 "every slot: run it through controller.envs.make_env(..., "
                                 "runner='network')", param_hint="--scheme")
    if swarm:
        from controller.deploy.swarm import render_stack

        click.echo(render_stack(str(scenario), nodes or n, scheme, slots, seed,
                                weights, image, runs_dir,
                                broker_image=broker_image or DEFAULT_BROKER_IMAGE,
                                telemetry=not no_telemetry, run_name=run_name,
                                node_kind=kind, keys=keys_dir, insecure=insecure,
                                require_labels=require_labels), nl=False)
        return
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


@bench.command("train")
@click.option("--steps", type=click.IntRange(1), default=20_000, show_default=True,
              help="Env steps of TRPO centralized on 3cell-k2 (and of sb3-contrib's).")
@click.option("--steps-7", "steps_7", type=click.IntRange(1), default=8_000,
              show_default=True, help="Env steps of TRPO round-robin on 7cell-k8.")
@click.option("--episodes", type=click.IntRange(1), default=1000, show_default=True,
              help="Episodes per TRPO update, M.")
@click.option("--v2x-episodes", type=click.IntRange(1), default=20, show_default=True,
              help="Training episodes of the V2X multi-agent DQN.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--no-sb3", is_flag=True, help="Leave out sb3-contrib's TRPO.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the figures as JSON here.")
def bench_train(steps: int, steps_7: int, episodes: int, v2x_episodes: int, seed: int,
                no_sb3: bool, json_path: Path | None) -> None:
    """Env steps per second of the local trainers (TRPO 3cell-k2 centralized, TRPO 7cell-k8
    round-robin, V2X multi-agent DQN), TRPO's time split into env, policy forward and update,
    beside sb3-contrib's TRPO on the same task (with the 'bench' extra)."""
    from controller.bench.train import print_bench_train, run_bench_train

    result = run_bench_train(steps, steps_7, episodes, v2x_episodes, seed, not no_sb3)
    print_bench_train(result)
    if json_path is not None:
        json_path.write_text(json.dumps(result, indent=2) + "\n")


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
    its summary.json wall_slots_per_s (slot phase only, handshake excluded). After each
    network run, the same slot's messages (the scheme's exchange, the run's frame sizes) are
    played in raw pyzmq between as many processes: the 'raw zmq' column, the sockets'
    ceiling, and 'net/raw'. Every run gets OMP_NUM_THREADS=1 and MKL_NUM_THREADS=1 (torch's
    thread count otherwise depends on the core count). Another checkout: python -m
    controller.bench.slots --root PATH."""
    from controller.bench.slots import ROOT, BenchError, run_bench

    try:
        code = run_bench(ROOT, scenarios, schemes, slots, slots_7, repeat, sets, out, json_path)
    except BenchError as e:
        raise click.ClickException(str(e)) from e
    sys.exit(code)

commands.load()


def main() -> None:
    from controller.deploy.launcher import install_sigterm_as_interrupt
    from protocols.plugins import load_plugins

    install_sigterm_as_interrupt()
    load_plugins()
    cli(prog_name="rrmbed")


if __name__ == "__main__":
    main()
