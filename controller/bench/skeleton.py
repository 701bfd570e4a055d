"""The slot protocol's message pattern in raw pyzmq: the ceiling the transport allows.

One process per role, as in a network run: a channel server, ``n_nodes`` nodes and a
controller, each with a PULL inbox on loopback tcp and a PUSH socket per peer, blocking
calls, no asyncio, no codec, no logic. Frames are dummy bytes of the sizes a real run
sent (its ``overhead.csv``). A slot is, by exchange pattern:

- ``none``: the channel server sends each node its CSI slice; each node sends back its
  transmission;
- ``chain``: as ``none``, but nodes act in turn (node 0 first): each transmits and
  forwards to the next, which acts when it holds both its slice and the forward;
- ``central``: each node uploads to the controller on its slice; the controller answers
  every node once all uploads are in; each node then transmits;

then, with every transmission in, the channel server sends each node its measurement and
the controller the slot's outcome, and starts the next slot. ``rrmbed bench slots`` runs
this beside every network run: the ratio says how much of a slot's cost is ours (codec,
roles, asyncio, metering, files) rather than the sockets'.
"""

from __future__ import annotations

import csv
import multiprocessing as mp
import time
from collections.abc import Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import zmq

HANDSHAKE_S = 60.0
"""Longest wait for a spawned role to report its address."""
IDLE_MS = 30_000
"""A role blocked this long on its inbox gives up (its peer is gone)."""

KINDS = ("csi_slice", "transmit", "measurement", "slot_outcome", "power_forward",
         "csi_upload", "decision")
"""The message kinds of a slot; their sizes come from a run."""
SKELETONS = ("none", "chain", "central")
"""The exchange patterns a skeleton plays."""
DEFAULT_BYTES = 128
"""Frame size of a kind the run did not send."""

_CSI, _FORWARD, _DECISION, _STOP = b"c", b"f", b"d", b"s"


@dataclass(frozen=True)
class Pattern:
    """What one skeleton run plays."""

    exchange: str
    """'none', 'chain' or 'central'."""
    n_nodes: int
    sizes: Mapping[str, int]
    """Frame bytes per kind (missing: ``DEFAULT_BYTES``)."""

    def frame(self, kind: str, tag: bytes) -> bytes:
        return tag + bytes(max(self.sizes.get(kind, DEFAULT_BYTES) - 1, 0))


def _inbox(ctx: zmq.Context[Any]) -> tuple[zmq.Socket[bytes], str]:
    sock: zmq.Socket[bytes] = ctx.socket(zmq.PULL)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, IDLE_MS)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    return sock, f"tcp://127.0.0.1:{port}"


def _push(ctx: zmq.Context[Any], address: str) -> zmq.Socket[bytes]:
    sock: zmq.Socket[bytes] = ctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDTIMEO, IDLE_MS)
    sock.connect(address)
    return sock


def _node(conn: Connection, i: int, pattern: Pattern) -> None:
    ctx = zmq.Context()
    inbox, address = _inbox(ctx)
    conn.send(address)
    directory: dict[str, str] = conn.recv()
    cs = _push(ctx, directory["channel-server"])
    ctl = _push(ctx, directory["controller"]) if pattern.exchange == "central" else None
    nxt = (_push(ctx, directory[f"node-{i + 1}"])
           if pattern.exchange == "chain" and i + 1 < pattern.n_nodes else None)
    transmit = pattern.frame("transmit", b"t")
    forward = pattern.frame("power_forward", _FORWARD)
    upload = pattern.frame("csi_upload", b"u")
    conn.send("ready")
    sent = dict.fromkeys(("transmit", "power_forward", "csi_upload"), 0)
    have_csi = have_forward = False
    try:
        while True:
            tag = inbox.recv()[:1]
            if tag == _STOP:
                break
            if pattern.exchange == "central":
                if tag == _CSI:
                    ctl.send(upload)  # type: ignore[union-attr]
                    sent["csi_upload"] += 1
                elif tag == _DECISION:
                    cs.send(transmit)
                    sent["transmit"] += 1
                continue
            have_csi |= tag == _CSI
            have_forward |= tag == _FORWARD
            if have_csi and (have_forward or i == 0 or pattern.exchange == "none"):
                cs.send(transmit)
                sent["transmit"] += 1
                if nxt is not None:
                    nxt.send(forward)
                    sent["power_forward"] += 1
                have_csi = have_forward = False
        conn.send(sent)
    except zmq.Again:
        pass  # the channel server is gone
    finally:
        ctx.destroy(linger=0)


def _controller(conn: Connection, pattern: Pattern) -> None:
    ctx = zmq.Context()
    inbox, address = _inbox(ctx)
    conn.send(address)
    directory: dict[str, str] = conn.recv()
    nodes = [_push(ctx, directory[f"node-{i}"]) for i in range(pattern.n_nodes)]
    decision = pattern.frame("decision", _DECISION)
    conn.send("ready")
    uploads = decisions = 0
    try:
        while True:
            tag = inbox.recv()[:1]
            if tag == _STOP:
                break
            if tag == b"u":
                uploads += 1
                if uploads == pattern.n_nodes:
                    uploads = 0
                    for sock in nodes:
                        sock.send(decision)
                    decisions += len(nodes)
        conn.send({"decision": decisions})
    except zmq.Again:
        pass
    finally:
        ctx.destroy(linger=0)


def _spawn(target: Any, *args: Any) -> tuple[mp.process.BaseProcess, Connection]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=target, args=(child, *args), daemon=True)
    proc.start()
    child.close()
    if not parent.poll(HANDSHAKE_S):
        proc.kill()
        raise RuntimeError("a skeleton role did not start")
    return proc, parent


def play(pattern: Pattern, slots: int, warmup: int = 200) -> tuple[float, dict[str, int]]:
    """(slots per second over ``slots`` slots after ``warmup``, frames sent per kind in
    all ``warmup + slots`` slots, every role's count); this process plays the channel
    server."""
    if pattern.exchange not in SKELETONS:
        raise ValueError(f"no skeleton for exchange {pattern.exchange!r}")
    ctx = zmq.Context()
    procs: list[mp.process.BaseProcess] = []
    try:
        inbox, address = _inbox(ctx)
        roles = [_spawn(_node, i, pattern) for i in range(pattern.n_nodes)]
        roles.append(_spawn(_controller, pattern))
        procs = [p for p, _ in roles]
        addresses = [conn.recv() for _, conn in roles]
        directory = {f"node-{i}": a for i, a in enumerate(addresses[:-1])}
        directory.update({"controller": addresses[-1], "channel-server": address})
        for _, conn in roles:
            conn.send(directory)
        for _, conn in roles:
            if not conn.poll(HANDSHAKE_S):
                raise RuntimeError("a skeleton role did not connect")
            conn.recv()
        nodes = [_push(ctx, directory[f"node-{i}"]) for i in range(pattern.n_nodes)]
        ctl = _push(ctx, directory["controller"])
        csi = pattern.frame("csi_slice", _CSI)
        measurement = pattern.frame("measurement", b"m")
        outcome = pattern.frame("slot_outcome", b"o")

        def play(n: int) -> None:
            for _ in range(n):
                for sock in nodes:
                    sock.send(csi)
                for _ in nodes:
                    inbox.recv()
                for sock in nodes:
                    sock.send(measurement)
                ctl.send(outcome)

        play(warmup)
        t0 = time.perf_counter()
        play(slots)
        rate = slots / (time.perf_counter() - t0)
        for sock in [*nodes, ctl]:
            sock.send(_STOP)
        played = warmup + slots
        sent = {"csi_slice": played * len(nodes), "measurement": played * len(nodes),
                "slot_outcome": played}
        for _, conn in roles:
            if not conn.poll(HANDSHAKE_S):
                raise RuntimeError("a skeleton role did not report its counts")
            for kind, count in conn.recv().items():
                sent[kind] = sent.get(kind, 0) + count
        return rate, {k: v for k, v in sent.items() if v}
    finally:
        for p in procs:
            p.join(5.0)
            if p.is_alive():
                p.kill()
        ctx.destroy(linger=0)


def sizes_of(overhead_csv: Path) -> dict[str, int]:
    """Mean frame bytes (header and payload, no ZMTP framing) of each slot kind a run sent,
    from its ``overhead.csv``."""
    totals: dict[str, list[int]] = {}
    with open(overhead_csv, newline="") as f:
        for row in csv.DictReader(f):
            if row["kind"] in KINDS:
                t = totals.setdefault(row["kind"], [0, 0])
                t[0] += int(row["messages"])
                t[1] += int(row["header_bytes"]) + int(row["payload_bytes"])
    return {k: round(b / m) for k, (m, b) in totals.items() if m}
