"""Live fuzzing: hostile frames against every bound socket of a running network.

``rrmbed bench fuzz [SCENARIO] --frames 100000`` starts a real network run (every process
a real OS process, CURVE on every socket, real-time slots), waits until it plays, then
sends ``--frames`` frames round-robin to the inbox of every process, through CURVE with a
valid key of the run (a node's: the worst case, a stolen key). The frames are drawn from
the run's seed, in these families:

``garbage``         random bytes, 0 to 300 of them
``truncated``       a valid frame cut short
``nested``          a report whose stats nest deeper than the codec allows
``huge_shape``      an array declaring 2^62 elements, with a few bytes of data
``wrong_type``      a valid frame with one field of the wrong type
``unknown_kind``    a valid frame whose kind no one knows
``wrong_schema``    a valid frame with another schema version
``multipart``       a message in 2 to 4 ZeroMQ parts
``forged_sender``   a well-formed message claiming another process than its key's
``forbidden_kind``  a well-formed message of a kind the key's node may never send

Each must be counted by the process it reached: by reason in ``dropped`` (the transport:
it did not decode, or its sender is not its key's) or in ``rejected`` (the role). A few
``oversized`` frames (one byte over the run's inbox bound) go last, each on a connection of
its own: libzmq closes that connection before the application sees the frame, so they are
counted here, not by the receiver.

It reports per process: frames sent, counted, RSS growth (VmRSS from /proc, from slot 20
to after the fuzz) and whether it is still alive, and fails (exit status 1) when a process
died, a frame went uncounted or RSS grew by ``--max-rss-mb`` or more.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import zmq
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from controller.deploy.tempdirs import make_tempdir, remove_orphans
from protocols.codec import EXT_NDARRAY, encode
from protocols.keys import KeyRing, load_keys
from protocols.messages import (
    SCHEMA_VERSION,
    CsiSlice,
    Done,
    Heartbeat,
    Message,
    Start,
    Stop,
    Transmit,
    Weights,
)
from protocols.transport import INBOX_FRAME_BYTES

ROOT = Path(__file__).resolve().parents[2]
WARMUP_SLOTS = 20
"""The run plays this many slots before RSS is first read and the fuzz begins."""
SEND_TIMEOUT_S = 5.0
"""Longest wait for room in a target's inbox (a full inbox is a result, not a hang)."""


# --------------------------------------------------------------------------- frames


def _header(rng: np.random.Generator, sender: str) -> dict[str, Any]:
    return {"sender": sender, "seq": int(rng.integers(1, 10**6)),
            "slot": int(rng.integers(0, 1000)), "sent_ns": int(rng.integers(0, 2**62)),
            "chain_latency_s": 0.0}


def _valid(rng: np.random.Generator, sender: str) -> Message:
    """A well-formed message from ``sender`` of a kind a node may send."""
    h = _header(rng, sender)
    if rng.random() < 0.5:
        return Heartbeat(**h)
    return Transmit(rng.random(2), -1, False, 0.0, 0.0, **h)


def _forbidden(rng: np.random.Generator, sender: str) -> Message:
    """A well-formed message of a kind only the controller or the channel server sends."""
    h = _header(rng, sender)
    pick = int(rng.integers(0, 5))
    if pick == 0:
        return Stop("fuzz", **h)
    if pick == 1:
        return Done(int(rng.integers(0, 10**6)), **h)
    if pick == 2:
        return Start("full", 10, 0, "x = 1\n", {}, **h)
    if pick == 3:
        return Weights(9, ["w"], [rng.random(4)], **h)
    return CsiSlice(rng.random((2, 2)), [0], [0], **h)


def _obj(rng: np.random.Generator, sender: str) -> list[Any]:
    return msgpack.unpackb(encode(_valid(rng, sender)), raw=False)  # type: ignore[no-any-return]


def _pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]


def _nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


Family = Callable[[np.random.Generator, str, list[str]], list[bytes]]
"""(rng, the key's process, the run's processes) -> the frame's parts."""

FAMILIES: dict[str, Family] = {
    "garbage": lambda rng, me, names: [rng.bytes(int(rng.integers(0, 300)))],
    "truncated": lambda rng, me, names: [
        (f := encode(_valid(rng, me)))[: int(rng.integers(0, len(f)))]],
    "nested": lambda rng, me, names: [_pack([
        "report", SCHEMA_VERSION, me, 1, 0, 0, 0.0, [],
        {"x": _nested(int(rng.integers(40, 400)))}])],
    "huge_shape": lambda rng, me, names: [_pack([
        "transmit", SCHEMA_VERSION, me, 1, 0, 0, 0.0,
        msgpack.ExtType(EXT_NDARRAY, bytes([0, 1]) + (2**62).to_bytes(8, "little") + b"\0" * 8),
        -1, False, 0.0, 0.0])],
    "wrong_type": lambda rng, me, names: [_pack([
        *(o := _obj(rng, me))[:3], "not an int", *o[4:]])],
    "unknown_kind": lambda rng, me, names: [_pack([
        "kind-" + rng.bytes(6).hex(), *_obj(rng, me)[1:]])],
    "wrong_schema": lambda rng, me, names: [_pack([
        (o := _obj(rng, me))[0], SCHEMA_VERSION + 1 + int(rng.integers(0, 100)), *o[2:]])],
    "multipart": lambda rng, me, names: [
        encode(_valid(rng, me)) for _ in range(int(rng.integers(2, 5)))],
    "forged_sender": lambda rng, me, names: [encode(_valid(
        rng, str(rng.choice([n for n in names if n != me]))))],
    "forbidden_kind": lambda rng, me, names: [encode(_forbidden(rng, me))],
}


def frames(seed: int, n: int, me: str, names: list[str]) -> list[tuple[str, list[bytes]]]:
    """``n`` hostile frames (family, parts) from ``seed``, families drawn at random."""
    rng = np.random.default_rng(seed)
    order = list(FAMILIES)
    picks = rng.integers(0, len(order), n)
    return [(order[k], FAMILIES[order[k]](rng, me, names)) for k in picks]


# --------------------------------------------------------------------------- processes


def listening_ports(pid: int) -> list[int]:
    """The TCP ports process ``pid`` listens on (its sockets' inodes matched against
    /proc/net/tcp)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    ports = []
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        if f[3] == "0A" and f[9] in inodes:  # 0A: LISTEN
            ports.append(int(f[1].rsplit(":", 1)[1], 16))
    return sorted(ports)


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` (VmRSS), MB; NaN when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


# --------------------------------------------------------------------------- the run


@dataclass
class Target:
    """One bound socket of the run, and what was done to it."""

    name: str
    pid: int
    address: str
    sent: Counter[str] = field(default_factory=Counter)
    """Frames sent, by family."""
    timed_out: int = 0
    """Frames its full inbox did not take within ``SEND_TIMEOUT_S``."""
    oversized: int = 0
    """Frames over the inbox bound, each on its own connection."""
    rss_before_mb: float = 0.0
    rss_after_mb: float = 0.0
    counted: dict[str, dict[str, int]] = field(default_factory=dict)
    """What the process counted: ``dropped`` and ``rejected``, by reason."""
    alive: bool = True


def _socket(ctx: zmq.Context[Any], keys: KeyRing, target: Target) -> zmq.Socket[Any]:
    sock: zmq.Socket[Any] = ctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.LINGER, 2000)
    sock.setsockopt(zmq.SNDTIMEO, int(SEND_TIMEOUT_S * 1000))
    sock.setsockopt(zmq.CURVE_SERVERKEY, keys.publics[target.name])
    sock.setsockopt(zmq.CURVE_PUBLICKEY, keys.public)
    sock.setsockopt(zmq.CURVE_SECRETKEY, keys.secret)
    sock.connect(target.address)
    return sock


def _wait_slots(out: Path, proc: subprocess.Popen[bytes], slots: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    status = out / "status.json"
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the run ended early (exit {proc.returncode}); see {out}")
        if status.exists():
            try:
                done = int(json.loads(status.read_text())["slots_done"])
            except (ValueError, KeyError):
                done = 0
            if done >= slots:
                return done
        if time.monotonic() > deadline:
            raise RuntimeError(f"the run did not reach slot {slots} in {timeout_s:.0f} s")
        time.sleep(0.05)


def run_fuzz(scenario: Path, n_frames: int, seed: int, slots: int, scheme: str | None,
             work: Path, console: Console) -> tuple[list[Target], dict[str, Any]]:
    """Start the run, fuzz it, let it finish; the targets and the run's summary."""
    from channel_server.kinds import resolve

    names = resolve(scenario).process_names
    keys_dir, out = work / "keys", work / "run"
    rrmbed = [sys.executable, "-m", "controller.cli"]
    subprocess.run([*rrmbed, "keys", str(keys_dir), "--scenario", str(scenario)], cwd=ROOT,
                   check=True, capture_output=True)
    me = names[-1]  # the stolen key: the last node's
    keys = load_keys(keys_dir, me)
    todo = frames(seed, n_frames, me, names)
    cmd = [*rrmbed, "run", str(scenario), "--runner", "network", "--slots", str(slots),
           *(["--scheme", scheme] if scheme else []), "--seed", str(seed), "--out", str(out),
           "--keys", str(keys_dir), "--no-telemetry", "--set", 'timing.clock="realtime"']
    log = (work / "run.log").open("wb")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_slots(out, proc, WARMUP_SLOTS, 120.0)
        pids: dict[str, int] = json.loads((out / "processes.json").read_text())
        targets = []
        for name in names:
            ports = listening_ports(pids[name])
            if len(ports) != 1:
                raise RuntimeError(f"{name} listens on {ports}, expected one inbox")
            targets.append(Target(name, pids[name], f"tcp://127.0.0.1:{ports[0]}",
                                  rss_before_mb=rss_mb(pids[name])))
        ctx: zmq.Context[Any] = zmq.Context()
        socks = [_socket(ctx, keys, t) for t in targets]
        columns = (TextColumn("fuzz"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task("fuzz", total=len(todo))
            for i, (family, parts) in enumerate(todo):
                k = i % len(targets)
                try:
                    socks[k].send_multipart(parts)
                    targets[k].sent[family] += 1
                except zmq.Again:
                    targets[k].timed_out += 1
                if i % 500 == 0:
                    bar.update(task, completed=i)
            # one byte over the bound: libzmq closes the connection that carried it
            big = b"\0" * (INBOX_FRAME_BYTES + 1)
            for t in targets:
                for _ in range(3):
                    s = _socket(ctx, keys, t)
                    s.send(big)
                    s.close(linger=2000)
                    t.oversized += 1
        for s in socks:
            s.close(linger=int(SEND_TIMEOUT_S * 1000))
        ctx.term()
        playing = _wait_slots(out, proc, 0, 1.0)
        if playing >= slots:
            raise RuntimeError(f"the run ended before the fuzz did: raise --slots ({slots})")
        time.sleep(1.0)  # let the inboxes drain before reading RSS
        for t in targets:
            t.rss_after_mb = rss_mb(t.pid)
            t.alive = alive(t.pid)
        proc.wait(timeout=slots * 0.02 * 3 + 120)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=60)
        log.close()
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text())
    summary["exit_code"] = proc.returncode
    for t in targets:
        t.counted = {"dropped": summary.get("dropped", {}).get(t.name, {}),
                     "rejected": summary.get("rejected", {}).get(t.name, {})}
    return targets, summary


def verdict(targets: list[Target], summary: dict[str, Any], max_rss_mb: float) -> list[str]:
    """What went wrong (empty: the processes held)."""
    problems = [f"run: {e}" for e in summary.get("errors", [])]
    if summary.get("lost_nodes"):
        problems.append(f"run: lost {', '.join(summary['lost_nodes'])}")
    if summary["exit_code"] not in (0, 3):  # 3: the run dropped messages, as it must here
        problems.append(f"run: exit status {summary['exit_code']}")
    for t in targets:
        counted = sum(sum(r.values()) for r in t.counted.values())
        if counted != sum(t.sent.values()):
            problems.append(f"{t.name}: {sum(t.sent.values())} frames sent, {counted} counted")
        growth = t.rss_after_mb - t.rss_before_mb
        if not growth < max_rss_mb:
            problems.append(f"{t.name}: RSS grew by {growth:.1f} MB (limit {max_rss_mb} MB)")
        if not t.alive:
            problems.append(f"{t.name}: gone after the fuzz")
    return problems


def report(targets: list[Target], console: Console) -> None:
    table = Table(title="live fuzz: frames per process (through CURVE, a node's key)")
    for col in ("process", "sent", "dropped", "rejected", "timed out", "oversized",
                "RSS before MB", "RSS growth MB", "alive after"):
        table.add_column(col, justify="left" if col == "process" else "right")
    for t in targets:
        table.add_row(t.name, str(sum(t.sent.values())),
                      str(sum(t.counted["dropped"].values())),
                      str(sum(t.counted["rejected"].values())), str(t.timed_out),
                      str(t.oversized), f"{t.rss_before_mb:.1f}",
                      f"{t.rss_after_mb - t.rss_before_mb:+.1f}", "yes" if t.alive else "NO")
    console.print(table)
    reasons: Counter[str] = Counter()
    for t in targets:
        for counts in t.counted.values():
            reasons.update(counts)
    top = Table(title="reasons counted (all processes)")
    top.add_column("reason")
    top.add_column("frames", justify="right")
    for reason, n in reasons.most_common(15):
        top.add_row(reason, str(n))
    console.print(top)


def to_json(targets: list[Target]) -> dict[str, Any]:
    return {t.name: {"pid": t.pid, "address": t.address, "sent": dict(t.sent),
                     "timed_out": t.timed_out, "oversized": t.oversized,
                     "rss_before_mb": t.rss_before_mb, "rss_after_mb": t.rss_after_mb,
                     "counted": t.counted, "alive": t.alive} for t in targets}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="rrmbed bench fuzz", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenario", nargs="?", type=Path, default=ROOT / "scenarios/3cell-k2.toml")
    p.add_argument("--frames", type=int, default=100_000, help="hostile frames in all")
    p.add_argument("--seed", type=int, default=0, help="seed of the run and of the frames")
    p.add_argument("--slots", type=int, default=3000,
                   help="slots of the run (20 ms each in real time); it must outlast the fuzz")
    p.add_argument("--scheme", help="scheme of the run (default: the scenario kind's)")
    p.add_argument("--max-rss-mb", type=float, default=50.0,
                   help="largest RSS growth of a process that passes, MB")
    p.add_argument("--json", type=Path, help="write the figures here")
    args = p.parse_args(argv)
    console = Console(stderr=True)
    remove_orphans()  # what a killed bench left (it holds CURVE secrets)
    tmp = make_tempdir("fuzz")
    try:
        targets, summary = run_fuzz(args.scenario, args.frames, args.seed, args.slots,
                                    args.scheme, tmp, console)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        console.print(f"[red]fuzz failed:[/red] {e}")
        log = tmp / "run.log"
        if log.exists():
            console.print(log.read_text(errors="replace")[-2000:])
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(targets, Console())
    if args.json is not None:
        args.json.write_text(json.dumps(to_json(targets), indent=1))
    problems = verdict(targets, summary, args.max_rss_mb)
    for line in problems:
        console.print(f"[red]{line}[/red]")
    print("fuzz: " + ("FAILED" if problems else "every frame counted, every process held"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
