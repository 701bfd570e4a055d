"""Transport benchmark: rrmbed backhaul hop vs raw pyzmq REQ/REP, round trips on loopback.

(a) raw: sync pyzmq REQ -> REP echo of a bytes payload as long as our frame, no codec.
(b) ours: ``Endpoint.send`` of a PowerForward (float64 array payload) to an echo peer that
    decodes it and sends it back with its own Endpoint; codec and asyncio included.

Besides the round-trip percentiles, the CPU time client and echo peer spent per round trip
(Linux schedstat, all threads, kernel time included) is reported for both: on one core a
round trip costs exactly that much CPU, so it explains the same-core ratio without the
scheduling noise of the percentiles.

Each echo peer runs in its own spawned OS process, binds a random loopback port, and exits
by itself after ``IDLE_S`` seconds without traffic (if the parent vanishes).

Run: ``rrmbed bench transport [-n 2000] [--repeat 3] [--json FILE]`` (or
``python -m controller.bench.transport``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import multiprocessing as mp
import os
import shutil
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import zmq
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from controller.deploy.tempdirs import make_tempdir, remove_orphans
from protocols.codec import encode
from protocols.errors import PeerTimeout
from protocols.keys import load_keys, write_keys
from protocols.messages import PowerForward, Stop
from protocols.meter import Meter
from protocols.transport import Endpoint, run

IDLE_S = 10.0
"""An echo peer exits after this many seconds without a message."""
HANDSHAKE_S = 60.0
"""Longest wait for a spawned peer to report its address."""


# --------------------------------------------------------------------------- echo peers


def _raw_peer(conn: Connection) -> None:
    ctx = zmq.Context()
    rep = ctx.socket(zmq.REP)
    rep.setsockopt(zmq.LINGER, 0)
    rep.setsockopt(zmq.RCVTIMEO, int(IDLE_S * 1000))
    port = rep.bind_to_random_port("tcp://127.0.0.1")
    conn.send(f"tcp://127.0.0.1:{port}")
    conn.close()
    try:
        while True:
            data = rep.recv()
            rep.send(data)
            if not data:  # empty payload: stop
                break
    except zmq.Again:
        pass  # parent gone
    finally:
        rep.close(linger=0)
        ctx.term()


async def _our_peer_async(conn: Connection, keydir: str | None) -> None:
    keys = load_keys(Path(keydir), "peer") if keydir else None
    with Endpoint("peer", "tcp://127.0.0.1:0", Meter(), keys=keys) as ep:
        conn.send(ep.address)
        if not conn.poll(HANDSHAKE_S):
            return
        ep.connect("bench", conn.recv())
        conn.close()
        while True:
            try:
                msg = await ep.recv(IDLE_S)
            except PeerTimeout:
                return  # parent gone
            if isinstance(msg, Stop):
                return
            await ep.send("bench", dataclasses.replace(msg, sender=ep.name))  # its own name:
            # under CURVE a frame must come from the process its key belongs to


def _our_peer(conn: Connection, keydir: str | None) -> None:
    run(_our_peer_async(conn, keydir))


def _spawn(target: Any, *args: Any) -> tuple[mp.process.BaseProcess, Connection]:
    ctx = mp.get_context("spawn")
    parent_conn, child_conn = ctx.Pipe()
    proc = ctx.Process(target=target, args=(child_conn, *args), daemon=True,
                       name=target.__name__)
    proc.start()
    child_conn.close()
    if not parent_conn.poll(HANDSHAKE_S):
        proc.kill()
        raise RuntimeError(f"{target.__name__} did not start")
    return proc, parent_conn


# --------------------------------------------------------------------------- measurements


def _cpu_ns(*pids: int) -> int:
    """CPU time the processes' threads have run, ns (Linux schedstat: user and kernel time,
    context switches included); 0 where the kernel does not report it."""
    total = 0
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                continue  # a thread that just ended
    return total


def _percentiles_us(samples_ns: list[int]) -> tuple[float, float]:
    arr = np.asarray(samples_ns, dtype=np.float64) / 1e3
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


def _raw_round_trips(req: zmq.Socket[bytes], payload: bytes, count: int) -> list[int]:
    samples = []
    for _ in range(count):
        t0 = time.perf_counter_ns()
        req.send(payload)
        req.recv()
        samples.append(time.perf_counter_ns() - t0)
    return samples


async def _our_round_trips(ep: Endpoint, powers: np.ndarray, count: int) -> list[int]:
    samples = []
    for _ in range(count):
        msg = PowerForward([0, 1, 2], powers, **ep.header(slot=0))
        t0 = time.perf_counter_ns()
        await ep.send("peer", msg)
        reply = await ep.recv(IDLE_S)
        samples.append(time.perf_counter_ns() - t0)
        if not (isinstance(reply, PowerForward) and reply.seq == msg.seq):
            raise RuntimeError(f"unexpected echo {reply!r}")
    return samples


PLACEMENTS = ("same-core", "two-cores", "os")
"""Where the client and the echo peers run: all pinned to one core, client and peers pinned
to two different cores, or wherever the OS schedules them."""


def placement_cpus(placement: str, cpus: set[int]) -> tuple[set[int], set[int]]:
    """(client CPUs, peer CPUs) of a placement, from the CPUs this process may use."""
    first = sorted(cpus)
    if placement == "same-core":
        return {first[0]}, {first[0]}
    if placement == "two-cores":
        if len(first) < 2:
            raise ValueError("placement 'two-cores' needs at least two CPUs")
        return {first[0]}, {first[1]}
    if placement == "os":
        return set(cpus), set(cpus)
    raise ValueError(f"unknown placement {placement!r} ({', '.join(PLACEMENTS)})")


async def _measure(n: int, payload_floats: int, rounds: int, placement: str,
                   keydir: str | None) -> tuple[list[int], list[int], int, tuple[int, int]]:
    """Both peers run side by side; timed blocks alternate raw/ours so that load on the
    machine affects both alike. Also returns the CPU time (ns) the client and the echo peer
    spent over the timed raw and our blocks."""
    powers = np.linspace(0.0, 1.0, payload_floats)
    frame_len = len(encode(PowerForward([0, 1, 2], powers)))
    payload = bytes(frame_len)
    original = os.sched_getaffinity(0)
    client_cpus, peer_cpus = placement_cpus(placement, original)
    os.sched_setaffinity(0, peer_cpus)  # the peers inherit it
    try:
        raw_proc, raw_conn = _spawn(_raw_peer)
        our_proc, our_conn = _spawn(_our_peer, keydir)
    finally:
        os.sched_setaffinity(0, client_cpus)  # before the client's zmq threads start
    assert raw_proc.pid is not None and our_proc.pid is not None  # started
    zctx = zmq.Context()
    req = zctx.socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    req.setsockopt(zmq.RCVTIMEO, int(IDLE_S * 1000))
    req.setsockopt(zmq.SNDTIMEO, int(IDLE_S * 1000))
    req.connect(raw_conn.recv())
    raw: list[int] = []
    ours: list[int] = []
    raw_cpu = our_cpu = 0
    me = os.getpid()
    try:
        keys = load_keys(Path(keydir), "bench") if keydir else None
        with Endpoint("bench", "tcp://127.0.0.1:0", Meter(), keys=keys) as ep:
            peer_address = our_conn.recv()
            our_conn.send(ep.address)
            ep.connect("peer", peer_address)
            warmup = max(200, n // 10)
            _raw_round_trips(req, payload, warmup)
            await _our_round_trips(ep, powers, warmup)
            per_round = -(-n // rounds)
            while len(raw) < n:
                count = min(per_round, n - len(raw))
                c0 = _cpu_ns(me, raw_proc.pid)
                raw += _raw_round_trips(req, payload, count)
                raw_cpu += _cpu_ns(me, raw_proc.pid) - c0
                c0 = _cpu_ns(me, our_proc.pid)
                ours += await _our_round_trips(ep, powers, count)
                our_cpu += _cpu_ns(me, our_proc.pid) - c0
            req.send(b"")
            req.recv()
            await ep.send("peer", Stop("done", **ep.header(slot=-1)))
            ep.close(linger_s=1.0)
    finally:
        req.close(linger=0)
        zctx.term()
        raw_proc.join(IDLE_S)
        our_proc.join(IDLE_S)
        os.sched_setaffinity(0, original)
    return raw, ours, frame_len, (raw_cpu, our_cpu)


def run_bench(n: int = 2000, payload_floats: int = 64, rounds: int = 4,
              placement: str = "os", curve: bool = False) -> dict[str, float]:
    """Round-trip percentiles and CPU time per round trip (microseconds) of raw REQ/REP and of
    our backhaul hop (``curve``: authenticated and encrypted with the run's CURVE keys, as
    rrmbed runs by default), measured in ``rounds`` alternating blocks after a warm-up, with
    processes placed per ``placement``."""
    remove_orphans()  # what a killed bench left (it holds CURVE secrets)
    tmp = make_tempdir("bench-keys")
    try:
        keydir = None
        if curve:
            keydir = str(tmp / "keys")
            write_keys(Path(keydir), ["bench", "peer"])
        raw, ours, frame_len, (raw_cpu, our_cpu) = run(
            _measure(n, payload_floats, rounds, placement, keydir))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    raw_p50, raw_p99 = _percentiles_us(raw)
    our_p50, our_p99 = _percentiles_us(ours)
    return {
        "n": float(n),
        "curve": float(curve),
        "payload_floats": float(payload_floats),
        "frame_bytes": float(frame_len),
        "raw_p50_us": raw_p50,
        "raw_p99_us": raw_p99,
        "ours_p50_us": our_p50,
        "ours_p99_us": our_p99,
        "ratio_p50": our_p50 / raw_p50,
        "ratio_p99": our_p99 / raw_p99,
        # CPU per round trip, client and echo peer together (NaN where not reported)
        "raw_cpu_us": raw_cpu / n / 1e3 if raw_cpu else math.nan,
        "ours_cpu_us": our_cpu / n / 1e3 if our_cpu else math.nan,
        "ratio_cpu": our_cpu / raw_cpu if raw_cpu else math.nan,
    }


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    """Each figure's median over repeated runs (ratios are medians of the per-run ratios,
    each measured side by side within its run)."""
    return {key: float(np.median([r[key] for r in runs])) for key in runs[0]}


def run_repeated(placements: tuple[str, ...], repeat: int, n: int, payload_floats: int,
                 progress: bool = True, curve: bool = False) -> dict[str, list[dict[str, float]]]:
    """``repeat`` independent runs (fresh processes) per placement, placements interleaved
    (``curve``: our hop with CURVE keys)."""
    results: dict[str, list[dict[str, float]]] = {p: [] for p in placements}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), disable=not progress, transient=True) as bar:
        task = bar.add_task("transport bench", total=repeat * len(placements))
        for _ in range(repeat):
            for placement in placements:
                bar.update(task, description=f"transport bench: {placement}")
                results[placement].append(run_bench(n, payload_floats, placement=placement,
                                                    curve=curve))
                bar.advance(task)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=2000, help="timed round trips per path")
    parser.add_argument("--payload-floats", type=int, default=64, help="float64 array length")
    parser.add_argument("--repeat", type=int, default=1, help="independent runs per placement")
    parser.add_argument("--placement", choices=PLACEMENTS, action="append")
    args = parser.parse_args(argv)
    print_bench(run_repeated(tuple(args.placement or PLACEMENTS), args.repeat, args.n,
                             args.payload_floats))


def print_bench(results: dict[str, list[dict[str, float]]]) -> None:
    """One row per placement and run, and with several runs a median row per placement."""
    r0 = next(iter(results.values()))[0]
    table = Table(
        title=f"round trip over loopback tcp, n={int(r0['n'])} per path, "
        f"{int(r0['payload_floats'])} float64 ({int(r0['frame_bytes'])}-byte frame), "
        f"rrmbed hop {'with CURVE' if r0.get('curve') else 'in the clear'}"
    )
    for col in ("placement", "run", "raw REQ/REP p50 us", "p99 us", "rrmbed hop p50 us",
                "p99 us", "ratio p50", "ratio p99", "CPU us/rt raw", "ours"):
        table.add_column(col, justify="left" if col in ("placement", "run") else "right")
    for placement, runs in results.items():
        rows = [(str(i + 1), r) for i, r in enumerate(runs)]
        if len(runs) > 1:
            rows.append(("median", median_of(runs)))
        for label, r in rows:
            table.add_row(placement, label, f"{r['raw_p50_us']:.1f}", f"{r['raw_p99_us']:.1f}",
                          f"{r['ours_p50_us']:.1f}", f"{r['ours_p99_us']:.1f}",
                          f"{r['ratio_p50']:.2f}", f"{r['ratio_p99']:.2f}",
                          f"{r['raw_cpu_us']:.1f}", f"{r['ours_cpu_us']:.1f}",
                          end_section=label == rows[-1][0])
    Console().print(table)


if __name__ == "__main__":
    main()


def write_json(results: dict[str, list[dict[str, Any]]], path: Path) -> None:
    """Every run's figures and the medians per placement (OSError when unwritable)."""
    doc = {p: {"runs": runs, "median": median_of(runs)} for p, runs in results.items()}
    path.write_text(json.dumps(doc, indent=2) + "\n")
