"""The network launcher: starts the controller, the channel server and one node per
BS as separate OS processes on loopback, follows the run, and always cleans up.

Children die with the launcher (PR_SET_PDEATHSIG on Linux) and are terminated,
then killed, on Ctrl-C or any error, so no process is left behind. The run's temporary
folders (fresh keys, the broker's config, ipc sockets) go with it; those of a launcher
that was SIGKILLed, which cannot remove them, go when the next launcher starts
(:mod:`controller.deploy.tempdirs`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from controller.deploy.broker import (
    BrokerAuth,
    BrokerHandle,
    die_with_parent,
    ensure_broker,
    write_broker_auth,
)
from controller.deploy.tempdirs import make_tempdir, remove_orphans
from controller.evaluation.files import write_json
from controller.roles.controller import STATE_FILE
from protocols.keys import KeysError, load_keys, write_keys

if TYPE_CHECKING:
    from channel_server.kinds import Resolved

RUN_FILE = "run.json"
"""What a network run was started with (scenario file, scheme, slots, seed, weights, run
options, launcher settings), written before any process starts: `--resume` reads it."""
LOOPBACK_BIND = "tcp://127.0.0.1:0"
ADDRESS_TIMEOUT_S = 60.0
EXIT_GRACE_S = 10.0


class LaunchError(RuntimeError):
    """A process of the run failed to start or to finish."""


def rrmbed_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "controller.cli", *args]


class NetworkRun:
    """One network run: the processes and their lifetimes."""

    def __init__(self, out: Path, log_dir: Path | None = None) -> None:
        self.out = out
        self.log_dir = log_dir or out / "logs"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[IO[bytes]] = []

    def spawn(self, role: str, args: list[str], stdout_pipe: bool = False,
              log: str | None = None) -> subprocess.Popen[bytes]:
        """Start ``role`` (logging to ``log``, default ``<role>.log``)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        err = open(self.log_dir / (log or f"{role}.log"), "wb")  # noqa: SIM115 - cleanup()
        self._logs.append(err)
        p = subprocess.Popen(rrmbed_cmd(*args), stdout=subprocess.PIPE if stdout_pipe else err,
                             stderr=err, stdin=subprocess.DEVNULL,
                             preexec_fn=functools.partial(die_with_parent, os.getpid()))
        self.procs[role] = p
        return p

    def write_json(self, name: str, data: object) -> None:
        """Atomically (re)write a small JSON file of the run directory."""
        self.out.mkdir(parents=True, exist_ok=True)
        write_json(self.out / name, data)

    def cleanup(self) -> list[str]:
        """Terminate whatever is still running; return the roles that had to be killed."""
        killed = []
        for role, p in self.procs.items():
            if p.poll() is None:
                p.terminate()
                killed.append(role)
        deadline = time.monotonic() + 5.0
        for p in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(max(0.0, deadline - time.monotonic()))
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
        for f in self._logs:
            f.close()
        return killed


def _read_line(stream: IO[bytes], timeout_s: float) -> str:
    ready, _, _ = select.select([stream], [], [], timeout_s)
    if not ready:
        return ""
    return stream.readline().decode(errors="replace").strip()


def run_network(
    resolved: Resolved,
    scheme: str,
    slots: int,
    seed: int,
    out: Path,
    weights: Path | None = None,
    options: dict[str, Any] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    endpoints: str = "tcp",
    telemetry: bool = True,
    broker: str | None = None,
    insecure: bool = False,
    keys: Path | None = None,
    controller_restarts: int = 0,
    air_restarts: int = 0,
) -> dict[str, Any]:
    """Run ``scheme`` over real processes; return the controller's summary.

    A controller that dies before its summary is restarted on its address, up to
    ``controller_restarts`` times, when the run saved a state to continue from; the
    processes still running reattach to it (:mod:`controller.roles.controller`). A channel
    server that dies is replaced, up to ``air_restarts`` times, when the scenario kind's air
    can be restarted (not while training): the new one takes over at the first slot the
    controller has not recorded.

    Every process gets a fresh CURVE key pair (:mod:`protocols.keys`, in a private temporary
    folder removed afterwards), or its pair from ``keys`` (a directory of ``rrmbed keys``),
    so it talks only to this run's processes; ``insecure`` runs them without authentication.
    The telemetry broker started for a run with keys lets in only the run's processes,
    each writing its own topics, and ``watch`` (:mod:`controller.deploy.broker`); with
    ``insecure`` it is anonymous, on loopback.

    ``endpoints``: 'tcp' (loopback, OS-assigned ports) or 'ipc' (unix sockets in a
    private temporary folder, removed afterwards whatever happened). Each temporary folder
    is marked as this launcher's; the folders of launchers that were killed before they
    could remove theirs are removed first (:func:`controller.deploy.tempdirs.remove_orphans`).
    With
    ``telemetry``, every process publishes to ``broker`` (or a local broker started
    for the run); a missing broker only turns telemetry off.
    """
    if insecure and keys is not None:
        raise LaunchError("--keys and --insecure exclude each other")
    auth: BrokerAuth | None = None
    if keys is not None:
        try:
            for name in resolved.process_names:
                load_keys(keys, name)
            auth = BrokerAuth.of(keys)
        except KeysError as e:
            raise LaunchError(f"--keys: {e}") from None
    orphans = remove_orphans()
    if orphans:
        print(f"rrmbed: removed the temporary folders of killed runs: "
              f"{', '.join(map(str, orphans))}", file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    attempt = int(((options or {}).get("train") or {}).get("resume", 0))
    if attempt and (out / "logs").is_dir():  # keep the logs of the attempt that died
        kept = out / f"logs.{attempt - 1}"
        while kept.exists():
            kept = kept.with_name(kept.name + "+")
        (out / "logs").rename(kept)
    run = NetworkRun(out)
    scenario_path = out / "scenario.toml"  # resolved once: the processes read this copy
    scenario_path.write_text(resolved.toml())
    run.write_json(RUN_FILE, {
        "scenario": scenario_path.name, "scheme": scheme, "slots": slots, "seed": seed,
        "weights": str(weights.resolve()) if weights is not None else None,
        "options": options or {},
        "launcher": {"endpoints": endpoints, "telemetry": telemetry, "broker": broker,
                     "insecure": insecure, "keys": str(keys) if keys is not None else None}})
    fresh: Path | None = None
    sockdir: Path | None = None
    handle = BrokerHandle(None, "none")
    try:
        if not insecure and keys is None:
            fresh = make_tempdir("keys")
            write_keys(fresh, resolved.process_names)
            auth = write_broker_auth(fresh, resolved.process_names)
        keydir = keys or fresh
        security = ["--insecure"] if keydir is None else ["--keys", str(keydir)]
        url = None
        if telemetry:
            url, handle = ensure_broker(broker, auth=auth)
        options = {**(options or {}), "broker": url, "run": out.name}
        if not resolved.kind.air_restartable or options.get("train"):
            air_restarts = 0
        if air_restarts:  # the controller waits for the new channel server
            options["air_restarts"] = air_restarts
        if url is not None:
            login = "anonymous, --insecure" if keydir is None else f"logins from {keydir}"
            watch = f"rrmbed watch --broker {url} --run {out.name}"
            watch += "" if keydir is None else f" --keys {keydir}"
            print(f"rrmbed: telemetry on {url} ({login}; watch with: {watch})",
                  file=sys.stderr)
        if endpoints == "ipc":
            sockdir = make_tempdir("ipc")

        def bind(role: str) -> str:
            return f"ipc://{sockdir}/{role}.sock" if sockdir else LOOPBACK_BIND

        ctl_args = ["controller", str(scenario_path), "--scheme", scheme, "--slots",
                    str(slots), "--seed", str(seed), "--out", str(out),
                    "--bind", bind("controller")]
        if weights is not None:
            ctl_args += ["--weights", str(weights)]
        ctl_args += ["--options", json.dumps(options), *security]
        ctl, address = _start_controller(run, ctl_args)
        run.write_json("endpoints.json", {"controller": address})
        air_args = ["channel-server", "--controller", address, "--bind",
                    bind("channel-server"), *security]
        run.spawn("channel-server", air_args)
        air_left = [air_restarts]

        def restart(role: str) -> bool:
            """Start a new channel server in the place of a dead one, while any are left."""
            if role != "channel-server" or air_left[0] <= 0:
                return False
            air_left[0] -= 1
            k = air_restarts - air_left[0]
            print(f"rrmbed: channel-server exited with code {run.procs[role].returncode}; "
                  f"starting a new one ({k} of {air_restarts})", file=sys.stderr)
            run.spawn(role, air_args, log=f"channel-server.{k}.log")
            run.write_json("processes.json", {r: p.pid for r, p in run.procs.items()})
            return True

        for role in resolved.node_names:
            run.spawn(role, ["node", "--role", resolved.kind.node_role, "--id",
                             role.rsplit("-", 1)[1], "--controller", address,
                             "--bind", bind(role), *security])
        run.write_json("processes.json", {r: p.pid for r, p in run.procs.items()})

        def progress(done: int, total: int) -> None:
            run.write_json("status.json", {"slots_done": done, "slots": total})
            if on_progress is not None:
                on_progress(done, total)

        try:
            summary_path = _follow(ctl, run, progress, restart)
            for attempt in range(1, controller_restarts + 1):
                if summary_path is not None or not (out / STATE_FILE).exists():
                    break
                print(f"rrmbed: the controller exited with code {ctl.poll()} before the run "
                      f"ended; restarting it on {address} ({attempt} of "
                      f"{controller_restarts})", file=sys.stderr)
                bind_at = ctl_args.index("--bind") + 1
                again = [*ctl_args[:bind_at], address, *ctl_args[bind_at + 1:], "--reattach"]
                ctl, _ = _start_controller(run, again, f"controller.{attempt}.log", address)
                summary_path = _follow(ctl, run, progress, restart)
        except KeyboardInterrupt:  # Ctrl-C: the rows so far are on disk; say where it stopped
            run.cleanup()
            print("rrmbed: " + partial_summary(run, resolved, scheme, slots, seed, ctl,
                                               "interrupted (Ctrl-C)"), file=sys.stderr)
            raise
        with contextlib.suppress(subprocess.TimeoutExpired):
            ctl.wait(EXIT_GRACE_S)
        if summary_path is None:
            raise LaunchError(partial_summary(run, resolved, scheme, slots, seed, ctl))
        for role, p in run.procs.items():
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(EXIT_GRACE_S)
            if p.poll() is None:
                raise LaunchError(f"{role} did not exit after the run")
        summary: dict[str, Any] = json.loads(Path(summary_path).read_text())
        summary["exit_codes"] = {r: p.returncode for r, p in run.procs.items()}
        return summary
    finally:
        killed = run.cleanup()
        if killed:
            print(f"rrmbed: stopped leftover processes: {', '.join(killed)}", file=sys.stderr)
        if sockdir is not None:
            shutil.rmtree(sockdir, ignore_errors=True)  # sockets of killed processes
        if fresh is not None:
            shutil.rmtree(fresh, ignore_errors=True)
        handle.stop()


def _start_controller(run: NetworkRun, args: list[str], log: str = "controller.log",
                      address: str | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """Start the controller; it and the address it bound (``address``: the one it must)."""
    ctl = run.spawn("controller", args, stdout_pipe=True, log=log)
    assert ctl.stdout is not None
    line = _read_line(ctl.stdout, ADDRESS_TIMEOUT_S)
    if not line.startswith("ADDRESS "):
        raise LaunchError(f"controller did not start (see {run.log_dir / log})")
    bound = line.split(" ", 1)[1]
    if address is not None and bound != address:
        raise LaunchError(f"the restarted controller bound {bound}, not {address}")
    return ctl, bound


def partial_summary(run: NetworkRun, resolved: Resolved, scheme: str, slots: int, seed: int,
                    ctl: subprocess.Popen[bytes], cause: str | None = None) -> str:
    """The controller ended without its summary (killed, crashed, or ``cause``): write
    summary.json saying so, with the last slot whose row reached metrics.csv; the error
    text."""
    metrics = run.out / "metrics.csv"
    done = max(0, len(metrics.read_bytes().splitlines()) - 1) if metrics.exists() else 0
    code = ctl.poll()
    if cause is None:
        cause = (f"the controller exited with code {code}" if code is not None
                 else "the controller stopped answering")
        last = _last_line(run.log_dir / "controller.log")
        if code is not None and code > 0 and last:
            cause += f" ({last})"
    try:
        run.write_json("summary.json", {
            "partial": True, "cause": cause, "scenario": resolved.scenario.name,
            "scheme": scheme, "runner": "network", "seed": seed, "slots": done,
            "slots_requested": slots, "processes": {r: p.pid for r, p in run.procs.items()},
            "exit_codes": {r: p.poll() for r, p in run.procs.items()}})
    except OSError as e:
        cause += f"; summary.json not written either: {e.strerror or e}"
    return (f"{cause} after {done} of {slots} slots: partial results in {run.out} "
            f"(metrics.csv up to slot {done - 1}); logs in {run.log_dir}")


def _last_line(path: Path) -> str:
    """The last line of a process's log (its error, when it died of one)."""
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def _follow(ctl: subprocess.Popen[bytes], run: NetworkRun,
            on_progress: Callable[[int, int], None],
            restart: Callable[[str], bool] = lambda role: False) -> str | None:
    """Read the controller's progress lines until it prints its summary or exits; a process
    that fails meanwhile is reported, unless ``restart(role)`` started a new one."""
    assert ctl.stdout is not None
    reported: set[str] = set()
    while True:
        line = _read_line(ctl.stdout, 1.0)
        if line.startswith("SUMMARY "):
            return line.split(" ", 1)[1]
        if line.startswith("PROGRESS "):
            done, total = line.split()[1:]
            on_progress(int(done), int(total))
        if not line and ctl.poll() is not None:
            return None
        for role, p in list(run.procs.items()):
            if role not in reported and p.poll() not in (None, 0) and not restart(role):
                reported.add(role)
                print(f"rrmbed: {role} exited with code {p.returncode} "
                      f"(log: {run.log_dir / (role + '.log')})", file=sys.stderr)


def install_sigterm_as_interrupt() -> None:
    """Make SIGTERM behave like Ctrl-C so the launcher's cleanup runs."""
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
