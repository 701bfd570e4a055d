"""A node's role, sans-IO: one agent process (a base station, a vehicle, ...) for any
scenario kind.

It says hello to the controller, takes the resolved scenario from ``Start``, connects to
its peers, fetches the current weights snapshot when the run has one, says it is ready and
then serves every message until ``Stop``. The kind's node part (named in the kind's
registry entry) decides; this role keeps what every node shares: weights swapped in at a
slot boundary with a version that only grows, rejoining peers, the final report, and the
timeouts: a part waiting on a peer is woken after ``part.quiet_s()`` of silence, and the
node gives up when the channel server and the controller stay silent for 4 peer timeouts.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from typing import Any, Protocol

import numpy as np

from channel_server.kinds import from_toml
from protocols.latency import LinkModel
from protocols.messages import (
    Heartbeat,
    Hello,
    Join,
    Message,
    Report,
    Start,
    Stop,
    Weights,
    WeightsAck,
    WeightsRequest,
)
from protocols.names import CONTROLLER
from protocols.role import Outbox, Role
from protocols.seeding import rng_for

log = logging.getLogger("rrmbed.node")

START_TIMEOUT_S = 60.0
"""Longest wait for the controller's Start, seconds."""


class NodePart(Protocol):
    """A scenario kind's decision logic at one node."""

    def on_message(self, msg: Message, now: float, out: Outbox) -> bool:
        """Serve one message of the run; False if it is not one this part expects."""

    def quiet_s(self) -> float:
        """How long to wait for the next message before :meth:`on_quiet`."""

    def on_quiet(self, now: float, out: Outbox) -> bool:
        """Nothing came for :meth:`quiet_s`; True if something waiting was served."""

    def set_weights(self, arrays: dict[str, np.ndarray]) -> None:
        """Act with these weights from now on."""

    def stats(self) -> dict[str, Any]:
        """This part's figures for the final report."""


class NodeRole(Role):
    def __init__(self, role: str, index: int) -> None:
        self.role = role
        self.index = index
        self.name = f"{role}-{index}"
        self.part: NodePart | None = None
        self.kind: Any = None
        self.scenario: Any = None
        self.start_msg: Start | None = None
        self.early: list[Message] = []
        self.fetching = 0
        """Weights version the node waits for before saying ready (0: none)."""
        self.pending: Weights | None = None
        self.weights_version = 0
        self.versions: list[int] = []
        self.telemetry: Any = None
        self.give_up_s = 0.0

    # ----------------------------------------------------------------- the calls

    def start(self, now: float, out: Outbox) -> None:
        out.send(CONTROLLER, Hello, slot=-1, role=self.role, node_id=self.index,
                 pid=self.host.pid, host=self.host.address)
        out.timer("start", now + START_TIMEOUT_S)

    def on_message(self, msg: Message, now: float, out: Outbox) -> None:
        part = self.part
        if part is None:
            if isinstance(msg, Start):
                self.setup(msg, now, out)
            else:
                self.early.append(msg)
            return
        if self.fetching:
            if isinstance(msg, Weights) and msg.version >= self.fetching:
                self.fetching = 0
                self.ready(now, out, [*self.early, msg])
            else:
                self.early.append(msg)
            return
        self.serve(part, msg, now, out)

    def serve(self, part: NodePart, msg: Message, now: float, out: Outbox) -> None:
        if isinstance(msg, Weights):
            self.pending = msg  # swapped in at the next slot boundary
            out.send(CONTROLLER, WeightsAck, slot=msg.slot, version=msg.version)
        elif isinstance(msg, Join):
            out.connect(self.kind.node_name(msg.node), msg.address)
        elif isinstance(msg, Stop):
            self.report(msg.slot, out)
            return
        elif not part.on_message(msg, now, out):
            log.warning("%s: ignoring %s from %s", self.name, msg.KIND, msg.sender)
        out.timer("quiet", now + part.quiet_s())
        out.timer("give-up", now + self.give_up_s)

    def on_timer(self, key: Hashable, now: float, out: Outbox) -> None:
        if key == "quiet" and self.part is not None:
            if self.part.on_quiet(now, out):
                out.timer("quiet", now + self.part.quiet_s())
        elif key == "give-up":
            self.fail(f"channel server and controller silent for {self.give_up_s:.0f} s; "
                      "giving up")
        elif key == "start":
            self.fail(f"no Start from the controller within {START_TIMEOUT_S:.0f} s")

    # ----------------------------------------------------------------- set-up

    def setup(self, start: Start, now: float, out: Outbox) -> None:
        out.cancel("start")
        resolved = from_toml(start.config_toml)
        self.kind, self.scenario = resolved.kind, resolved.scenario
        self.start_msg = start
        opts = start.options
        directory = opts.get("directory", {})
        for peer, address in directory.items():
            if peer not in (self.name, CONTROLLER):
                out.connect(peer, address)
        backhaul, timing = self.scenario.backhaul, self.scenario.timing
        out.emulate({src: LinkModel(backhaul.link(src, self.name),
                                    rng_for(start.seed, "link", src, self.name))
                     for src in [CONTROLLER, *directory] if src != self.name}, timing.clock)
        self.give_up_s = 4 * timing.peer_timeout_s
        self.telemetry = self.host.telemetry(opts.get("broker"), str(opts.get("run", "run")),
                                             self.role, str(self.index))
        self.part = self.kind.make_node(self, self.scenario, start)
        version = int(opts.get("weights_version", 0))
        if version > 0:  # a snapshot exists: get it before the first decision
            self.fetching = version
            out.send(CONTROLLER, WeightsRequest, slot=-1, have_version=0)
            out.timer("give-up", now + timing.peer_timeout_s)
        else:
            self.ready(now, out, self.early)

    def ready(self, now: float, out: Outbox, backlog: list[Message]) -> None:
        """Connected to every peer: say so, then serve what arrived meanwhile."""
        out.send(CONTROLLER, Heartbeat, slot=-1)
        self.early = []
        assert self.part is not None
        for msg in backlog:
            if self.done:
                break
            self.serve(self.part, msg, now, out)
        out.timer("give-up", now + self.give_up_s)

    # ----------------------------------------------------------------- shared services

    def take_weights(self) -> None:
        """At a slot boundary: swap in weights that arrived (a stale version is ignored)."""
        w = self.pending
        if w is None:
            return
        self.pending = None
        if w.version <= self.weights_version:
            log.warning("%s: ignoring stale weights v%d", self.name, w.version)
            return
        assert self.part is not None
        self.part.set_weights(dict(zip(w.names, w.arrays, strict=True)))
        self.weights_version = w.version
        self.versions.append(w.version)

    def report(self, slot: int, out: Outbox) -> None:
        assert self.part is not None
        out.send(CONTROLLER, Report, slot=slot, rows=self.host.meter.rows(),
                 stats={"pid": self.host.pid, "hostname": self.host.hostname,
                        **self.part.stats(),
                        "weights_version": self.weights_version,
                        "weights_versions": self.versions,
                        "protocol_errors": self.host.protocol_errors})
        self.done = True
