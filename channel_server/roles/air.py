"""The channel server's role, sans-IO: the slot loop of the air for any scenario kind.

Each slot it asks the kind's air part for every active node's own slice, sends them, waits
(up to ``timing.peer_timeout_s``) for every active node's transmission, then sends the air
part's feedback to each node and the slot's outcome to the controller. A node silent for a
whole slot is lost (served no more, reported in every later outcome); a lost node that
rejoins (``Join``) is served again from the next slot when the kind allows it. While
training, the air pauses every ``pause_every`` slots (shifted by ``pause_offset`` slots:
at slots ``pause_offset + k * pause_every``, k >= 1) until the controller says ``Resume``.
In 'realtime' mode slots start every ``slot_s`` seconds; in 'fast' mode back to back.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Hashable
from typing import Any, Protocol

from channel_server.config import wire_format_of
from channel_server.kinds import from_toml
from protocols.messages import (
    Done,
    Join,
    Leave,
    Message,
    Report,
    Restarted,
    Resume,
    Start,
    Stop,
)
from protocols.names import CHANNEL_SERVER, CONTROLLER
from protocols.role import JOIN_TIMEOUT_S, REATTACH_WAIT_S, RETAINED_OUTCOMES, Outbox, Role
from protocols.validate import Rejected, check_address, check_indices

log = logging.getLogger("rrmbed.channel-server")

TRAINING_PAUSE_S = 900.0
"""Longest wait for the controller to finish one training iteration, seconds."""

Outgoing = tuple[int, type[Message], dict[str, Any]]
"""(node index, message class, payload)."""


class AirPart(Protocol):
    """What a scenario kind's air does in a slot (pure maths behind it)."""

    transmit: type[Message]
    """The message class a node transmits with."""
    rejoins: bool
    """A lost node may come back."""
    lost_consequence: str
    """What losing a node means, for the log."""
    telemetry: dict[str, float]
    """Live figures of the last slot, published with the slot count."""

    def check(self, msg: Message) -> None:
        """A transmission is well formed (shapes, ranges, finite values); raises
        :class:`~protocols.validate.Rejected` naming what is wrong."""

    def slices(self, n: int, active: list[int]) -> list[Outgoing]:
        """Advance the air to slot n; every active node's own slice."""

    def outcome(self, n: int, got: dict[int, Message], active: list[int], lost: list[int],
                wall_s: float) -> tuple[list[Outgoing], tuple[type[Message], dict[str, Any]]]:
        """The slot's transmissions in: each node's feedback and the controller's outcome."""


class ChannelServerRole(Role):
    name = CHANNEL_SERVER

    def __init__(self) -> None:
        self.air: AirPart | None = None
        self.kind: Any = None
        self.scenario: Any = None
        self.slots = 0
        self.n = 0
        self.active: list[int] = []
        self.lost: list[int] = []
        self.joining: list[int] = []
        self.got: dict[int, Message] = {}
        self.collecting = False
        """The slot's slices are out and its transmissions awaited."""
        self.index: dict[str, int] = {}
        """Node name -> index, of every node of the run."""
        self.late = 0
        """Transmissions for a slot already closed, or from a node lost meanwhile."""
        self.pause_every = 0
        self.pause_offset = 0
        self.paused = False
        self.finished = False
        self.t0 = 0.0
        self.t_slot = 0.0
        self.telemetry: Any = None
        self.retained: deque[Outgoing] = deque(maxlen=RETAINED_OUTCOMES)
        """The last slots' outcomes (slot, class, payload), for a restarted controller."""
        self.orphaned = False
        """The controller fell silent: no slot begins and no outcome is sent until it
        answers this process's hello again (the outcomes are kept meanwhile)."""
        self.reattached = 0
        """Times a controller took this process back."""

    # ----------------------------------------------------------------- the calls

    def start(self, now: float, out: Outbox) -> None:
        self.join("channel-server", -1, now, out)

    def on_message(self, msg: Message, now: float, out: Outbox) -> None:
        air = self.air
        if air is None:
            if not isinstance(msg, Start):
                raise Rejected("before Start")
            self.setup(msg, now, out)
            return
        if isinstance(msg, Start):
            self.reattach(msg, now, out)
            return
        if type(msg) is air.transmit:
            b = self.index[msg.sender]  # the role's receive let only the run's nodes in
            if msg.slot > self.n or (msg.slot == self.n and self.paused):
                raise Rejected(f"transmission for slot {msg.slot}, which has not begun")
            if msg.slot < self.n or b not in self.active:
                self.late += 1  # after its slot closed, or from a node lost meanwhile
                return
            if b in self.got:
                raise Rejected("a second transmission for the slot")
            air.check(msg)
            self.got[b] = msg
            if len(self.got) == len(self.active):
                self.end_slot(now, out)
                self.begin_slot(now, out)
        elif isinstance(msg, Resume):
            if self.paused and msg.slot == self.n:  # (a restarted controller's updates
                # since its checkpoint resume slots played long ago: nothing to do)
                self.paused = False
                out.cancel("pause")
                self.t0 = now - self.n * self.scenario.radio.slot_s
                self.begin_slot(now, out, resumed=True)
        elif isinstance(msg, Join):
            if not 0 <= msg.node < len(self.index):
                log.warning("ignoring a join of node %d: the run has %d", msg.node,
                            len(self.index))
            elif air.rejoins:
                out.connect(self.kind.node_name(msg.node), check_address(msg.address))
                self.joining.append(msg.node)
            else:
                log.warning("%s asked to rejoin; it cannot rejoin a run",
                            self.kind.node_name(msg.node))
        elif isinstance(msg, Leave):
            self.leave(msg.node, now, out)
        elif isinstance(msg, Restarted):
            self.controller_lost(now, out)
        elif isinstance(msg, Stop):
            self.report(msg.slot, out)
        else:
            raise Rejected("not expected at the channel server")

    def leave(self, b: int, now: float, out: Outbox) -> None:
        """The controller declared node ``b`` lost: serve the slot and the run without it."""
        check_indices([b], "node", len(self.index))
        if b not in self.active:
            return
        assert self.air is not None
        log.error("%s declared lost by the controller (silent for 3 heartbeats) in slot %d; "
                  "%s", self.kind.node_name(b), self.n, self.air.lost_consequence)
        self.active.remove(b)
        self.lost.append(b)
        self.got.pop(b, None)
        if self.collecting and len(self.got) == len(self.active):
            self.end_slot(now, out)
            self.begin_slot(now, out)

    def on_timer(self, key: Hashable, now: float, out: Outbox) -> None:
        if key == "slot":
            self.begin_slot(now, out)
        elif key == "collect" and self.orphaned:  # the nodes may wait on the controller
            out.timer("collect", now + self.scenario.timing.peer_timeout_s)
        elif key == "collect":
            self.declare_lost(now)
            self.end_slot(now, out)
            self.begin_slot(now, out)
        elif key == "start":
            self.fail(f"no Start from the controller within {JOIN_TIMEOUT_S:.0f} s")
        elif key == "pause":
            self.fail(f"no Resume before slot {self.n} within {TRAINING_PAUSE_S:.0f} s "
                      "(controller lost?)")
        elif key == "stop":
            self.fail("no Stop from the controller after the last slot")
        elif key == "orphan":
            self.fail(f"the controller stayed silent for {REATTACH_WAIT_S:.0f} s after slot "
                      f"{self.n}; giving up")

    # ----------------------------------------------------------------- a lost controller

    def on_silent(self, peer: str, now: float, out: Outbox) -> None:
        """The controller fell silent: hold the slots (keeping the outcomes) and say hello
        again, for a restarted controller to take this process back."""
        if peer == CONTROLLER:
            self.controller_lost(now, out)

    def controller_lost(self, now: float, out: Outbox) -> None:
        """(The controller fell silent, or a restarted one says so.)"""
        if self.air is None or self.orphaned:
            return
        log.error("controller silent: holding slot %d until a controller answers (up to "
                  "%.0f s)", self.n, REATTACH_WAIT_S)
        self.orphaned = True
        out.cancel("stop")
        out.timer("orphan", now + REATTACH_WAIT_S)
        self.hello("channel-server", -1, out, again=True)

    def reattach(self, start: Start, now: float, out: Outbox) -> None:
        """A controller took this process back (``start.options['reattach']``): send it the
        outcomes from the slot it asks for on, then go on."""
        got = start.options.get("reattach")
        if not isinstance(got, dict) or not isinstance(got.get("from_slot"), int):
            raise Rejected("a second Start that is not a reattach")
        first = got["from_slot"]
        if not 0 <= first <= self.n:
            raise Rejected(f"reattach from slot {first}; slot {self.n} is the next to play")
        held = [r for r in self.retained if r[0] >= first]
        if first < self.n and (not held or held[0][0] != first):
            log.error("the controller asks for the outcomes from slot %d on; the oldest kept "
                      "is slot %d", first, self.retained[0][0] if self.retained else self.n)
        for n, cls, payload in held:
            out.send(CONTROLLER, cls, slot=n, **payload)
        self.orphaned = False
        self.reattached += 1
        out.cancel("orphan")
        log.warning("a controller took the channel server back at slot %d (it had slot %d; "
                    "%d outcomes sent again)", self.n, first, len(held))
        if self.finished:
            out.send(CONTROLLER, Done, slot=self.slots, slots=self.slots)
            out.timer("stop", now + 4 * self.scenario.timing.peer_timeout_s)
        elif self.collecting:  # the controller catches up on what it lost first
            out.timer("collect", now + 4 * self.scenario.timing.peer_timeout_s)
        elif not self.paused:
            self.t0 = now - self.n * self.scenario.radio.slot_s
            self.begin_slot(now, out)

    # ----------------------------------------------------------------- the slot loop

    def setup(self, start: Start, now: float, out: Outbox) -> None:
        resolved = from_toml(start.config_toml)
        self.kind, self.scenario = resolved.kind, resolved.scenario
        self.wire = wire_format_of(self.scenario)
        opts = start.options
        train = opts.get("train") or {}
        self.pause_every = int(train.get("pause_every", 0))
        self.pause_offset = int(train.get("pause_offset", 0))
        self.air = self.kind.make_air(self.scenario, start.seed, opts)
        self.slots = start.slots
        self.active = list(range(self.kind.n_nodes(self.scenario)))
        self.index = {self.kind.node_name(b): b for b in self.active}
        self.node_names = frozenset(self.index)
        self.heartbeat_s = self.scenario.timing.heartbeat_s
        self.watched = frozenset({CONTROLLER})
        self.connect_directory(opts.get("directory", {}), out)
        self.history_dir = opts.get("history")
        self.telemetry = self.host.telemetry(opts.get("broker"), str(opts.get("run", "run")),
                                             "channel-server", "0")
        out.cancel("start")
        restart = opts.get("restart")
        if isinstance(restart, dict):  # a new channel server in the place of a dead one
            try:
                self.restart(restart)
            except (Rejected, KeyError, TypeError, ValueError) as e:
                self.fail(f"cannot take over the run: {e}")
                return
        self.t0 = now - self.n * self.scenario.radio.slot_s
        self.begin_slot(now, out)

    def restart(self, restart: dict[str, Any]) -> None:
        """Take over a run whose channel server died: the air brought to the slot the
        controller asks for, the nodes it still had."""
        assert self.air is not None
        first, active = int(restart["from_slot"]), list(restart["active"])
        fast_forward = getattr(self.air, "fast_forward", None)
        if fast_forward is None:
            raise ValueError(f"a {self.kind.name} channel server cannot be restarted mid-run")
        check_indices(active, "active", len(self.index))
        if not 0 <= first <= self.slots:
            raise ValueError(f"restart at slot {first} of {self.slots}")
        fast_forward(first)
        self.n = first
        self.lost = [b for b in self.active if b not in active]
        self.active = sorted(active)
        log.warning("taking over the run at slot %d (%d nodes active)", first, len(active))

    def begin_slot(self, now: float, out: Outbox, resumed: bool = False) -> None:
        """Start slot ``self.n`` (or finish, pause, or wait for its realtime start); slots
        without any active node pass at once, in a loop."""
        air = self.air
        assert air is not None
        while True:
            n = self.n
            if n >= self.slots:
                if not self.finished and not self.orphaned:
                    self.finished = True
                    out.send(CONTROLLER, Done, slot=self.slots, slots=self.slots)
                    out.timer("stop", now + 4 * self.scenario.timing.peer_timeout_s)
                self.finished = True
                return
            if self.orphaned:
                return
            k = n - self.pause_offset
            if self.pause_every and k > 0 and k % self.pause_every == 0 and not resumed:
                self.paused = True
                out.timer("pause", now + TRAINING_PAUSE_S)
                return
            if self.scenario.timing.clock == "realtime" and not resumed:
                due = self.t0 + n * self.scenario.radio.slot_s
                if now < due:
                    out.timer("slot", due)
                    return
            resumed = False
            for b in self.joining:
                self.active = sorted({*self.active, b})
                if b in self.lost:
                    self.lost.remove(b)
                log.warning("%s rejoined: served again from slot %d", self.kind.node_name(b), n)
            self.joining = []
            self.got = {}
            self.t_slot = time.perf_counter()
            name = self.kind.node_name
            for b, cls, payload in air.slices(n, self.active):
                out.send(name(b), cls, slot=n, **payload)
            if self.active:
                self.collecting = True
                out.timer("collect", now + self.scenario.timing.peer_timeout_s)
                return
            self.end_slot(now, out)

    def end_slot(self, now: float, out: Outbox) -> None:
        """The slot's transmissions are in (or the rest is lost): feedback and outcome."""
        air = self.air
        assert air is not None
        n = self.n
        self.collecting = False
        out.cancel("collect")
        wall = time.perf_counter() - self.t_slot
        name = self.kind.node_name
        feedback, (cls, payload) = air.outcome(n, self.got, self.active, self.lost, wall)
        for b, fcls, fpayload in feedback:
            out.send(name(b), fcls, slot=n, **fpayload)
        self.retained.append((n, cls, payload))
        if not self.orphaned:
            out.send(CONTROLLER, cls, slot=n, **payload)
        self.telemetry.update(slots_done=n + 1, **air.telemetry)
        self.n = n + 1

    def declare_lost(self, now: float) -> None:
        """The nodes that sent nothing for this slot are lost: served no more, reported."""
        assert self.air is not None
        for b in sorted(set(self.active) - set(self.got)):
            log.error("%s vanished: no transmission for slot %d within %.1f s; %s",
                      self.kind.node_name(b), self.n, self.scenario.timing.peer_timeout_s,
                      self.air.lost_consequence)
            self.active.remove(b)
            self.lost.append(b)

    def report(self, slot: int, out: Outbox) -> None:
        self.watched = frozenset()
        out.send(CONTROLLER, Report, slot=slot, rows=self.host.meter.rows(),
                 stats={"pid": self.host.pid, "hostname": self.host.hostname,
                        "protocol_errors": self.host.protocol_errors,
                        "dropped": self.host.dropped,
                        "curve_bytes": self.host.curve_bytes,
                        "silent": self.silent,
                        "rejected": self.rejected, "late": self.late,
                        "reattached": self.reattached,
                        "lost": [self.kind.node_name(b) for b in self.lost]
                        if self.kind else []})
        self.done = True
