"""Endpoints on real sockets: tcp on random loopback ports and ipc in tmp_path."""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from protocols import messages as m
from protocols.codec import encode
from protocols.errors import PeerError, PeerTimeout
from protocols.latency import LinkModel, LinkParams, RealtimeClock
from protocols.meter import Meter
from protocols.transport import Endpoint


def same(a: m.Message, b: m.Message) -> None:
    assert type(a) is type(b)
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and x.shape == y.shape
            np.testing.assert_array_equal(x, y)
        elif isinstance(x, list) and x and isinstance(x[0], np.ndarray):
            assert len(x) == len(y)
            for u, v in zip(x, y, strict=True):
                np.testing.assert_array_equal(u, v)
        else:
            assert x == y, f.name


def pair(addr_a: str, addr_b: str) -> tuple[Endpoint, Endpoint]:
    a = Endpoint("a", addr_a, Meter())
    b = Endpoint("b", addr_b, Meter())
    a.connect("b", str(b.address))
    b.connect("a", str(a.address))
    return a, b


def framed(frame: bytes) -> int:
    # ZMTP/3, computed here: flags + 1-byte size up to 255 bytes, flags + 8-byte size above
    return len(frame) + (2 if len(frame) <= 255 else 9)


async def exchange(a: Endpoint, b: Endpoint) -> None:
    rng = np.random.default_rng(3)
    to_b: list[m.Message] = [
        m.PowerForward([0, 2], rng.random((2, 4)), **a.header(slot=1, chain_latency_s=0.002)),
        m.Weights(7, ["w"], [rng.random((300, 40)).astype(np.float32)], **a.header(slot=1)),
        m.Stop("bye", **a.header(slot=2)),
    ]
    to_a: list[m.Message] = [
        m.Decision(rng.random(3), **b.header(slot=1)),
        m.Heartbeat(**b.header(slot=1)),
    ]
    sent_a = [await a.send("b", msg) for msg in to_b]
    sent_b = [await b.send("a", msg) for msg in to_a]
    for msg in to_b:
        same(msg, await b.recv(5.0))
    for msg in to_a:
        same(msg, await a.recv(5.0))
    # the sender meters frame + ZMTP framing; the receiver meters nothing
    assert sent_a == [framed(encode(msg)) for msg in to_b]
    assert sent_a[0] < 255 + 2 < sent_a[1]
    assert a.meter.totals() == {
        ("power_forward", "backhaul", "a", "b"): (1, sent_a[0]),
        ("weights", "backhaul", "a", "b"): (1, sent_a[1]),
        ("stop", "control", "a", "b"): (1, sent_a[2]),
    }
    assert b.meter.totals() == {
        ("decision", "backhaul", "b", "a"): (1, sent_b[0]),
        ("heartbeat", "control", "b", "a"): (1, sent_b[1]),
    }
    assert a.protocol_errors == b.protocol_errors == 0


async def test_tcp_random_ports_both_ways() -> None:
    a, b = pair("tcp://127.0.0.1:0", "tcp://127.0.0.1:*")
    try:
        assert a.address is not None and b.address is not None
        assert a.address.startswith("tcp://127.0.0.1:") and not a.address.endswith(":0")
        assert a.address != b.address
        await exchange(a, b)
    finally:
        a.close()
        b.close()


async def test_ipc_both_ways_and_files_removed(tmp_path: Path) -> None:
    pa, pb = tmp_path / "a.ipc", tmp_path / "b.ipc"
    a, b = pair(f"ipc://{pa}", f"ipc://{pb}")
    try:
        assert a.address == f"ipc://{pa}"
        assert pa.exists() and pb.exists()
        await exchange(a, b)
    finally:
        a.close()
        b.close()
    assert not pa.exists() and not pb.exists()
    a.close()  # idempotent


async def test_recv_timeout_within_bounds() -> None:
    ep = Endpoint("lonely", "tcp://127.0.0.1:0", Meter())
    try:
        t0 = time.monotonic()
        with pytest.raises(PeerTimeout, match="no message within 0.2 s"):
            await ep.recv(0.2)
        elapsed = time.monotonic() - t0
        assert 0.2 <= elapsed < 0.7
        assert issubclass(PeerTimeout, TimeoutError)
    finally:
        ep.close()


async def test_unknown_peer_and_missing_inbox() -> None:
    ep = Endpoint("sender-only", None, Meter())
    try:
        assert ep.address is None
        with pytest.raises(PeerError, match="unknown peer 'nobody'"):
            await ep.send("nobody", m.Heartbeat())
        with pytest.raises(PeerError, match="no inbox"):
            await ep.recv(0.1)
    finally:
        ep.close()


async def test_messages_queue_until_the_peer_binds(tmp_path: Path) -> None:
    path = tmp_path / "late.ipc"
    a = Endpoint("a", None, Meter())
    a.connect("late", f"ipc://{path}")
    await a.send("late", m.Done(5, **a.header(slot=5)))
    late = Endpoint("late", f"ipc://{path}", Meter())
    try:
        msg = await late.recv(5.0)
        assert isinstance(msg, m.Done) and msg.slots == 5 and msg.sender == "a"
    finally:
        a.close()
        late.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_send_times_out_when_the_queue_stays_full() -> None:
    ep = Endpoint("a", None, Meter(), hwm=2, send_timeout_s=0.2)
    ep.connect("absent", f"tcp://127.0.0.1:{free_port()}")
    try:
        sent = 0
        t0 = time.monotonic()
        with pytest.raises(PeerTimeout, match="blocked for 0.2 s"):
            for _ in range(100):
                await ep.send("absent", m.Heartbeat())
                sent += 1
        assert 1 <= sent <= 10
        assert 0.2 <= time.monotonic() - t0 < 2.0
        assert ep.meter.totals()[("heartbeat", "control", "a", "absent")][0] == sent
    finally:
        ep.close()


async def test_link_emulation_fast_clock() -> None:
    a, b = pair("tcp://127.0.0.1:0", "tcp://127.0.0.1:0")
    rng = np.random.default_rng(0)
    try:
        b.set_link("a", LinkModel(LinkParams("constant", latency_s=0.003), rng))
        await a.send("b", m.Fingerprint(1, 0.1, **a.header(slot=0, chain_latency_s=0.002)))
        await a.send("b", m.Stop("control plane: no emulation", **a.header(slot=0)))
        got = await b.recv(5.0)
        assert isinstance(got, m.Fingerprint) and got.chain_latency_s == pytest.approx(0.005)
        stop = await b.recv(5.0)
        assert isinstance(stop, m.Stop) and stop.chain_latency_s == 0.0
        b.set_link("a", LinkModel(LinkParams(loss_probability=1.0), rng))
        for i in range(3):
            await a.send("b", m.Fingerprint(i, 0.1, **a.header(slot=1)))
        for i in range(3):  # lost: delivered at once, infinitely late
            lost = await b.recv(5.0)
            assert isinstance(lost, m.Fingerprint) and lost.iteration == i
            assert lost.chain_latency_s == float("inf")
        assert b.lost == 3
        b.set_link("a", None)
        await a.send("b", m.Fingerprint(3, 0.1, **a.header(slot=2, chain_latency_s=0.001)))
        again = await b.recv(5.0)
        assert isinstance(again, m.Fingerprint) and again.chain_latency_s == 0.001
    finally:
        a.close()
        b.close()


async def test_realtime_clock_holds_messages_without_blocking_others() -> None:
    inbox = Endpoint("inbox", "tcp://127.0.0.1:0", Meter(), clock=RealtimeClock())
    slow = Endpoint("slow", None, Meter())
    fast = Endpoint("fast", None, Meter())
    inbox.set_link("slow", LinkModel(LinkParams(latency_s=0.150), np.random.default_rng(1)))
    inbox.set_link("fast", LinkModel(LinkParams(latency_s=0.0), np.random.default_rng(2)))
    try:
        for ep in (slow, fast):
            ep.connect("inbox", str(inbox.address))
        first: dict[str, Any] = slow.header(slot=0)
        await slow.send("inbox", m.NeighbourChoice(1, 1, **first))
        with pytest.raises(PeerTimeout):  # the slow message arrives and is held
            await inbox.recv(0.05)
        await fast.send("inbox", m.NeighbourChoice(2, 2, **fast.header(slot=0)))
        a = await inbox.recv(5.0)
        assert isinstance(a, m.NeighbourChoice) and a.sender == "fast"
        assert (time.time_ns() - first["sent_ns"]) * 1e-9 < 0.150
        b = await inbox.recv(5.0)
        assert isinstance(b, m.NeighbourChoice) and b.sender == "slow"
        held = (time.time_ns() - first["sent_ns"]) * 1e-9
        assert 0.150 <= held < 1.5
        assert b.chain_latency_s == pytest.approx(0.150)
    finally:
        for ep in (inbox, slow, fast):
            ep.close()


async def test_close_wakes_a_pending_recv() -> None:
    ep = Endpoint("x", "tcp://127.0.0.1:0", Meter())
    task = asyncio.create_task(ep.recv(5.0))
    await asyncio.sleep(0.05)
    t0 = time.monotonic()
    ep.close()
    with pytest.raises(PeerError, match="closed"):
        await task
    assert time.monotonic() - t0 < 1.0


HDR_RAW: dict[str, Any] = {"sender": "raw", "seq": 1, "slot": 0, "sent_ns": 1}


async def test_multipart_message_is_one_protocol_error() -> None:
    ep = Endpoint("inbox", "tcp://127.0.0.1:0", Meter())
    ctx = zmq.Context()
    raw = ctx.socket(zmq.PUSH)
    raw.setsockopt(zmq.LINGER, 0)
    try:
        raw.connect(str(ep.address))
        raw.send_multipart([encode(m.Heartbeat()), b"x", b"y"])
        raw.send(encode(m.Stop("after", **HDR_RAW)))
        out = await ep.recv(5.0)
        assert isinstance(out, m.Stop) and out.reason == "after"
        assert ep.protocol_errors == 1
        assert ep.last_protocol_error == "expected one frame per message, got 3 parts"
        assert ep.received == {("stop", "raw"): [1, framed(encode(m.Stop("after", **HDR_RAW)))]}
    finally:
        raw.close(linger=0)
        ctx.term()
        ep.close()



async def test_timeouts_with_one_shared_timer() -> None:
    """recv keeps one timer armed across calls: a shorter timeout still ends on time, and
    concurrent waits each end at their own deadline."""
    ep = Endpoint("x", "tcp://127.0.0.1:0", Meter())
    peer = Endpoint("p", None, Meter())
    peer.connect("x", str(ep.address))
    try:
        await peer.send("x", m.Heartbeat(**peer.header(slot=0)))
        assert isinstance(await ep.recv(5.0), m.Heartbeat)  # leaves a 5 s timer armed
        t0 = time.monotonic()
        with pytest.raises(PeerTimeout):
            await ep.recv(0.1)
        assert 0.1 <= time.monotonic() - t0 < 0.6
        t0 = time.monotonic()
        short = asyncio.create_task(ep.recv(0.1))
        long = asyncio.create_task(ep.recv(0.4))
        with pytest.raises(PeerTimeout):
            await short
        assert 0.1 <= time.monotonic() - t0 < 0.35
        with pytest.raises(PeerTimeout):
            await long
        assert 0.4 <= time.monotonic() - t0 < 0.9
        await peer.send("x", m.Done(3, **peer.header(slot=0)))
        got = await ep.recv(5.0)
        assert isinstance(got, m.Done) and got.slots == 3
    finally:
        ep.close()
        peer.close()


async def test_cancelled_recv_leaves_the_endpoint_usable() -> None:
    ep = Endpoint("x", "tcp://127.0.0.1:0", Meter())
    peer = Endpoint("p", None, Meter())
    peer.connect("x", str(ep.address))
    try:
        task = asyncio.create_task(ep.recv(5.0))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await peer.send("x", m.Done(1, **peer.header(slot=0)))
        got = await ep.recv(5.0)
        assert isinstance(got, m.Done) and got.slots == 1
    finally:
        ep.close()
        peer.close()


# --------------------------------------------------------------------------- CURVE


def test_curve_endpoints_talk_and_refuse_strangers_and_impostors(tmp_path: Path) -> None:
    from protocols.keys import load_keys, write_keys

    write_keys(tmp_path / "k", ["a", "b", "c"])
    ka, kb, kc = (load_keys(tmp_path / "k", n) for n in "abc")
    a = Endpoint("a", "tcp://127.0.0.1:0", Meter(), keys=ka)
    b = Endpoint("b", "tcp://127.0.0.1:0", Meter(), keys=kb)
    c = Endpoint("c", None, Meter(), keys=kc)
    a.connect("b", str(b.address))
    b.connect("a", str(a.address))
    c.connect("a", str(a.address))

    async def go() -> None:
        await exchange(a, b)  # the run's keys: everything arrives, metered as before
        # c holds a key of the run, but says it is b: dropped on arrival
        await c.send("a", m.Heartbeat(**{**c.header(slot=3), "sender": "b"}))
        with pytest.raises(PeerTimeout):
            await a.recv(0.5)
        assert a.protocol_errors == 1 and "key is 'c'" in str(a.last_protocol_error)
        # as itself it gets in
        await c.send("a", m.Heartbeat(**c.header(slot=4)))
        assert (await a.recv(5.0)).sender == "c"

    try:
        asyncio.run(go())
        # a plain client and a client with a key not of the run: not a frame gets through
        ctx = zmq.Context()
        stranger = zmq.curve_keypair()
        for key in (None, stranger):
            sock = ctx.socket(zmq.PUSH)
            sock.setsockopt(zmq.LINGER, 0)
            if key is not None:
                sock.curve_serverkey = ka.public
                sock.curve_publickey, sock.curve_secretkey = key
            sock.connect(str(a.address))
            sock.send(encode(m.Heartbeat(**b.header(slot=5))), zmq.NOBLOCK)
            time.sleep(0.3)
            sock.close()
        ctx.term()

        async def nothing() -> None:
            with pytest.raises(PeerTimeout):
                await a.recv(0.5)

        asyncio.run(nothing())
        assert a.protocol_errors == 1
        with pytest.raises(PeerError, match="no public key"):
            a.connect("d", "tcp://127.0.0.1:1")
    finally:
        for ep in (a, b, c):
            ep.close()


def test_io_thread_runs_under_sched_batch_and_the_caller_keeps_its_policy() -> None:
    """A fresh process: its endpoint's ZeroMQ I/O thread is SCHED_BATCH, the main thread
    keeps the default policy."""
    code = textwrap.dedent("""
        import os, time
        from protocols.meter import Meter
        from protocols.transport import Endpoint
        with Endpoint("a", "tcp://127.0.0.1:0", Meter()):
            deadline = time.monotonic() + 10
            while True:  # a new thread names itself and sets its policy as it starts
                policies = {"main": os.sched_getscheduler(0)}
                for tid in os.listdir("/proc/self/task"):
                    with open(f"/proc/self/task/{tid}/comm") as f:
                        policies[f.read().strip()] = os.sched_getscheduler(int(tid))
                if "ZMQbg/IO/0" in policies or time.monotonic() > deadline:
                    break
                time.sleep(0.01)
        print(policies)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60, cwd=Path(__file__).parents[2]).stdout
    policies = ast.literal_eval(out)
    assert policies["ZMQbg/IO/0"] == os.SCHED_BATCH, policies
    assert policies["main"] == os.SCHED_OTHER, policies
