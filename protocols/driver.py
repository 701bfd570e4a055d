"""The asyncio driver: runs one sans-IO :class:`~protocols.role.Role` over the ZeroMQ
transport. It is the only place where a role's wishes meet sockets and the clock: it stamps
and sends the role's messages, connects to peers, installs the emulated links, keeps the
role's timers and feeds it every message that arrives, until the role is done.

It also keeps the role's heartbeats: every ``role.heartbeat_s`` it sends a ``Beat`` to each
peer in ``role.watched`` and tells the role (:meth:`~protocols.role.Role.peer_silent`) of a
watched peer it has heard nothing from (any message counts) for ``BEAT_MISSES`` beats.
Beats are consumed here; roles never see one. A beat is sent when due even while messages
wait to be read (a busy process still beats), but while any wait, or when the beat itself
came late, no peer is declared silent: a process that was itself stalled must not blame
its peers for what it has not read yet. Beats carry seq 0 and leave the sender's count
alone, so the protocol's messages are the same bytes however many beats a run had.

A role computes its timers from the ``now`` it is called with. When a call runs long (over
``STALL_S``: a training update, say), the timers it set are moved by the call's duration
(a wait for a peer's answer starts when the request leaves, not when the call began), and
the role is told (:meth:`~protocols.role.Role.stalled`).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from collections.abc import Hashable
from pathlib import Path

from protocols.errors import PeerError, PeerTimeout
from protocols.history import HistoryLog
from protocols.messages import Beat, Message
from protocols.meter import Meter
from protocols.role import BEAT_MISSES, Outbox, Role
from protocols.telemetry import MqttLogin, Telemetry
from protocols.transport import Endpoint

log = logging.getLogger(__name__)

_BEAT = ("driver", "beat")
"""The driver's own timer key: send beats, check the watched peers."""

STALL_S = 0.5
"""A role call longer than this moves the timers it set by its duration."""
IDLE_WAIT_S = 3600.0
"""Longest single wait when the role has no timer (it always sets one where a peer can
vanish)."""


class EndpointHost:
    """A role's view of its process: the endpoint's meter and errors, pid, telemetry."""

    def __init__(self, endpoint: Endpoint, advertise: str | None = None) -> None:
        self.endpoint = endpoint
        self.address = advertise or str(endpoint.address)
        self.pid = os.getpid()
        self.hostname = socket.gethostname()
        self.telemetries: list[Telemetry] = []
        self._started = 0

    @staticmethod
    def now() -> float:
        return time.monotonic()

    @property
    def meter(self) -> Meter:
        return self.endpoint.meter

    @property
    def protocol_errors(self) -> int:
        return self.endpoint.protocol_errors

    @property
    def dropped(self) -> dict[str, int]:
        return self.endpoint.dropped

    @property
    def curve_bytes(self) -> int:
        return self.endpoint.curve_bytes

    @property
    def received(self) -> dict[tuple[str, str], list[int]]:
        return self.endpoint.received

    def telemetry(self, broker: str | None, run: str, role: str, ident: str) -> Telemetry:
        """A publisher that logs in as this process (its name and key-derived password)
        when the run has keys, anonymously without."""
        keys = self.endpoint.keys
        login = None if keys is None else MqttLogin(keys.name, keys.mqtt_password)
        t = Telemetry(broker, run, role, ident, login=login)
        self.telemetries.append(t)
        return t

    @property
    def telemetry_pending(self) -> bool:
        """A telemetry publisher waits to be started."""
        return self._started < len(self.telemetries)

    async def start_telemetry(self) -> None:
        while self._started < len(self.telemetries):
            await self.telemetries[self._started].start()
            self._started += 1

    async def close(self) -> None:
        for t in self.telemetries[: self._started]:
            await t.close()


class Driver:
    """Drives ``role`` over ``endpoint`` (already bound; ``connect``: peers known at start)."""

    def __init__(self, role: Role, endpoint: Endpoint, advertise: str | None = None,
                 connect: dict[str, str] | None = None) -> None:
        self.role = role
        self.endpoint = endpoint
        self.host = EndpointHost(endpoint, advertise)
        role.host = self.host
        for peer, address in (connect or {}).items():
            endpoint.connect(peer, address)
        self.timers: dict[Hashable, float] = {}
        self.next_due = math.inf
        """The earliest timer (inf: none)."""
        self.out = Outbox()
        self.heard: dict[str, float] = {}
        """Watched peer -> when its last message arrived (time.monotonic())."""
        self.lost_at: dict[str, float] = {}
        """Watched peers declared lost -> when they were last heard."""

    def settle(self, called_at: float) -> None:
        """After a role call made at ``called_at`` (time.monotonic()): if it ran longer than
        ``STALL_S``, move the timers it set by its duration and tell the role."""
        took = time.monotonic() - called_at
        if took > STALL_S:
            out = self.out
            out.timers = {k: None if at is None else at + took for k, at in out.timers.items()}
            self.role.stalled(called_at + took)

    async def apply(self) -> None:
        """Carry out what the role asked for in its last call."""
        out, ep = self.out, self.endpoint
        if self.role.history_dir and ep.history is None:  # from the run's Start on
            ep.history = HistoryLog(Path(self.role.history_dir), ep.name,
                                    self.role.history_version)
        for peer, address in out.connects:
            ep.connect(peer, address)
        if out.links or out.clock is not None:
            ep.links.set(out.links, out.clock)
        if out.timers:
            for key, at in out.timers.items():
                if at is None:
                    self.timers.pop(key, None)
                else:
                    self.timers[key] = at
            self.next_due = min(self.timers.values(), default=math.inf)
        sends = out.sends
        if sends:
            header, wire = ep.header, self.role.wire
            for s in sends:
                msg = s.cls(**header(s.slot, s.chain_latency_s, s.numbered), **s.payload)
                try:
                    await ep.send(s.dest, msg, wire)
                except (PeerError, PeerTimeout) as e:
                    log.error("%s: %s not sent: %s", ep.name, s.cls.KIND, e)
        out.clear()
        if self.host.telemetry_pending:
            await self.host.start_telemetry()
        role = self.role
        if role.heartbeat_s > 0 and role.watched and _BEAT not in self.timers:
            self.timers[_BEAT] = time.monotonic() + role.heartbeat_s
            self.next_due = min(self.next_due, self.timers[_BEAT])

    def deliver(self, msg: Message, now: float) -> None:
        """Hand ``msg`` to the role, noting when a watched peer was heard."""
        role, sender = self.role, msg.sender
        if sender in role.watched:
            self.heard[sender] = now
            if sender in self.lost_at:
                role.peer_back(sender, now - self.lost_at.pop(sender))
        if type(msg) is Beat:
            if role.sender_class(sender) is None:
                role.reject(msg, "beat from unknown sender")
            else:
                role.peer_meter(msg, now)
            return
        role.receive(msg, now, self.out)

    async def beat(self, now: float, late_s: float) -> None:
        """Declare the watched peers silent for ``BEAT_MISSES`` beats lost, beat to every
        watched peer, and set the next beat. A beat more than an interval late means this
        process was stalled itself (stopped, swapped out): what its peers sent meanwhile
        may not even have reached its inbox yet, so they get a fresh grace instead."""
        role, ep = self.role, self.endpoint
        if role.heartbeat_s <= 0 or not role.watched:
            return
        if late_s > role.heartbeat_s:
            for peer in role.watched:
                self.heard[peer] = max(self.heard.get(peer, now), now)
        for peer in [] if ep.pending() else sorted(role.watched):
            last = self.heard.setdefault(peer, now)  # watched from now: a grace of 3 beats
            if peer not in self.lost_at and now - last > BEAT_MISSES * role.heartbeat_s:
                self.lost_at[peer] = last
                role.peer_silent(peer, now - last, now, self.out)
        if ep.history is not None:
            ep.history.flush()  # a killed process keeps its history up to its last beat
        connected = set(ep.peers)
        links = ep.meter.links()
        for peer in sorted(role.watched & connected):
            try:
                # beats are not numbered: how many there are depends on the wall time, and
                # the protocol's messages (their seq, hence their size) must not
                await ep.send(peer, Beat(**ep.header(-1, numbered=False), links=links))
            except (PeerError, PeerTimeout) as e:
                log.error("%s: beat not sent: %s", ep.name, e)
        self.timers[_BEAT] = now + role.heartbeat_s
        self.next_due = min(self.timers.values())
        await self.apply()

    def due(self, now: float) -> list[Hashable]:
        return sorted((k for k, at in self.timers.items() if at <= now),
                      key=lambda k: self.timers[k])

    async def run(self) -> int:
        """Drive the role until it is done; its exit code."""
        role, out = self.role, self.out
        try:
            called = time.monotonic()
            role.start(called, out)
            self.settle(called)
            await self.apply()
            recv = self.endpoint.recv
            while not role.done:
                now = time.monotonic()
                if self.next_due <= now:
                    if self.timers.get(_BEAT, math.inf) <= now:
                        await self.beat(now, now - self.timers.pop(_BEAT))
                        continue
                    # a timer says "nothing came in time": serve what has already come first
                    try:
                        msg = await recv(0.0)
                    except PeerTimeout:
                        pass
                    else:
                        called = time.monotonic()
                        self.deliver(msg, called)
                        self.settle(called)
                        await self.apply()
                        continue
                    for key in self.due(now):
                        if key in self.timers and not role.done:
                            del self.timers[key]
                            self.next_due = min(self.timers.values(), default=math.inf)
                            called = time.monotonic()
                            role.on_timer(key, now, out)
                            self.settle(called)
                            await self.apply()
                    continue
                wait = min(self.next_due - now, IDLE_WAIT_S)
                try:
                    msg = await recv(wait)
                except PeerTimeout:
                    continue
                called = time.monotonic()
                self.deliver(msg, called)
                self.settle(called)
                if not out.idle() or self.host.telemetry_pending:
                    await self.apply()
        finally:
            await self.host.close()
        if role.failure:
            log.error("%s: %s", role.name, role.failure)
        return role.exit_code
