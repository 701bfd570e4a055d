"""The local runner: an in-memory pump that runs the very role objects of the network
runner (controller, channel server, one node per BS or vehicle) in one process.

The pump delivers each message the way the transport would: encoded by the codec (the
sending role's wire encodings of exchanged arrays included, :mod:`protocols.wire`), metered
at the sender (ZeroMQ framing included), decoded at the receiver and passed through the
receiver's emulated links (:mod:`protocols.links`), in the order the messages were sent.
Time is emulated: when no message is in flight, the earliest timer fires and the clock
jumps to it (a realtime run is paced in emulated time, without sleeping). So the two
runners decide, record and meter the same, by construction.
"""

from __future__ import annotations

import os
import socket
import time
from collections import deque
from collections.abc import Callable, Hashable

from protocols.codec import decode, encode, header_length
from protocols.links import Links
from protocols.messages import Message, Stamper
from protocols.meter import Meter, wire_size
from protocols.role import Outbox, Role
from protocols.telemetry import Telemetry


class MemoryHost:
    """A role's process, in memory: its own meter, no sockets, no telemetry."""

    def __init__(self, name: str, clock: Pump | None = None) -> None:
        self.name = name
        self.clock = clock
        self.address = f"inproc://{name}"
        self.pid = os.getpid()
        self.hostname = socket.gethostname()
        self.meter = Meter()
        self.protocol_errors = 0
        self.dropped: dict[str, int] = {}
        self.curve_bytes = 0
        self.received: dict[tuple[str, str], list[int]] = {}
        self.links = Links()
        self.stamper = Stamper(name)

    def now(self) -> float:
        """The pump's emulated time."""
        return self.clock.now if self.clock is not None else 0.0

    def telemetry(self, broker: str | None, run: str, role: str, ident: str) -> Telemetry:
        return Telemetry(None, run, role, ident)


class Deadlock(RuntimeError):
    """No message in flight, no timer set, and the main role is not done."""


class Pump:
    """Runs ``roles`` (names unique) until ``main`` is done."""

    def __init__(self, roles: list[Role]) -> None:
        self.roles = {r.name: r for r in roles}
        self.now = 0.0
        self.hosts = {r.name: MemoryHost(r.name, self) for r in roles}
        for r in roles:
            r.host = self.hosts[r.name]
        self.queue: deque[tuple[str, str, bytes]] = deque()
        self.timers: dict[tuple[str, Hashable], float] = {}
        self.out = Outbox()
        self.delivered = 0

    def apply(self, name: str) -> None:
        out, host, wire = self.out, self.hosts[name], self.roles[name].wire
        if out.links or out.clock is not None:
            host.links.set(out.links, out.clock)
        for key, at in out.timers.items():
            if at is None:
                self.timers.pop((name, key), None)
            else:
                self.timers[(name, key)] = at
        header = host.stamper.header
        for s in out.sends:
            msg = s.cls(**header(s.slot, s.chain_latency_s, s.numbered), **s.payload)
            frame = encode(msg, wire=wire)
            head = header_length(frame)
            host.meter.record(msg.KIND, msg.PLANE, name, s.dest, s.slot, wire_size(len(frame)),
                              head, len(frame) - head)
            self.queue.append((name, s.dest, frame))
        out.clear()

    def deliver(self, dest: str, frame: bytes) -> None:
        role = self.roles.get(dest)
        if role is None or role.done:
            return  # nobody reads that inbox any more
        host = self.hosts[dest]
        msg: Message = decode(frame)
        got = host.received.setdefault((msg.KIND, msg.sender), [0, 0])
        got[0] += 1
        got[1] += wire_size(len(frame))
        msg, _ = host.links.arrive(msg, time.time_ns())  # no hold: time is emulated
        self.delivered += 1
        role.receive(msg, self.now, self.out)
        self.apply(dest)

    def fire_next_timer(self) -> bool:
        live = {k: at for k, at in self.timers.items() if not self.roles[k[0]].done}
        if not live:
            return False
        (name, key), at = min(live.items(), key=lambda kv: kv[1])
        del self.timers[(name, key)]
        self.now = max(self.now, at)
        self.roles[name].on_timer(key, self.now, self.out)
        self.apply(name)
        return True

    def run(self, main: Role, on_step: Callable[[], None] | None = None) -> None:
        for name, role in self.roles.items():
            role.start(self.now, self.out)
            self.apply(name)
        queue = self.queue
        while not main.done:
            if queue:
                _, dest, frame = queue.popleft()
                self.deliver(dest, frame)
                if on_step is not None:
                    on_step()
            elif not self.fire_next_timer():
                waiting = [n for n, r in self.roles.items() if not r.done]
                raise Deadlock(f"nothing in flight and no timer set; still running: "
                               f"{', '.join(waiting)}")
