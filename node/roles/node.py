"""A node's role, sans-IO: one agent process (a base station, a vehicle, ...) for any
scenario kind.

It says hello to the controller, takes the resolved scenario from ``Start``, connects to
its peers, fetches the current weights snapshot when the run has one, says it is ready and
then serves every message until ``Stop``. The kind's node part (named in the kind's
registry entry) decides; this role keeps what every node shares: weights swapped in at a
slot boundary with a version that only grows, rejoining peers, the final report, and the
timeouts: a part waiting on a peer is woken after ``part.quiet_s()`` of silence, and the
node gives up when the channel server and the controller stay silent for 4 peer timeouts
(one watchdog timer, see :meth:`NodeRole.watch`).
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from typing import Any, Protocol

import numpy as np

from channel_server.config import wire_format_of
from channel_server.kinds import from_toml
from protocols.latency import LinkModel
from protocols.messages import (
    AirRestart,
    Heartbeat,
    Join,
    Leave,
    Message,
    Report,
    Restarted,
    Start,
    Stop,
    Weights,
    WeightsAck,
    WeightsRequest,
)
from protocols.names import CHANNEL_SERVER, CONTROLLER
from protocols.role import REATTACH_WAIT_S, Outbox, Role
from protocols.seeding import rng_for
from protocols.validate import Rejected, check_address, check_indices

log = logging.getLogger("rrmbed.node")

MAX_EARLY = 10_000
"""Most messages a node holds before it is ready."""



class Actor(Protocol):
    """What a node part acts with (protocols.core.Actor) plus the version of the
    weights it acts with."""

    version: int

    def update(self) -> None: ...


class NodePart(Protocol):
    """A scenario kind's decision logic at one node."""

    def on_message(self, msg: Message, now: float, out: Outbox) -> bool:
        """Serve one message of the run; False if it is not one this part expects."""

    def quiet_s(self) -> float:
        """How long to wait for the next message before :meth:`on_quiet`."""

    def on_quiet(self, now: float, out: Outbox) -> bool:
        """Nothing came for :meth:`quiet_s`; True if something waiting was served."""

    # Optional: ``on_lost(node: int, now, out)``, node ``node`` was declared lost (stop
    # waiting on it). A part without it waits for :meth:`on_quiet`. ``decide_by() -> float
    # | None``: a time by which :meth:`on_quiet` is due whatever came meanwhile.

    def stats(self) -> dict[str, Any]:
        """This part's figures for the final report."""


class ReceivedWeights:
    """The controller's weights as they arrived over the backhaul: the node's
    :class:`~protocols.core.VariableSource` (the version only grows)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.version = 0
        self._variables: dict[str, np.ndarray] = {}

    def offer(self, msg: Weights) -> None:
        """Keep ``msg`` if it is newer than what is held (a stale version is ignored)."""
        if msg.version <= self.version:
            log.warning("%s: ignoring stale weights v%d", self.name, msg.version)
            return
        self.version = msg.version
        self._variables = dict(zip(msg.names, msg.arrays, strict=True))

    def get_variables(self) -> dict[str, np.ndarray]:
        return dict(self._variables)


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
        self.weights = ReceivedWeights(self.name)
        """What the node's actor takes its weights from, at slot boundaries."""
        self.versions: list[int] = []
        """Weights versions the actor acted with, in order."""
        self.telemetry: Any = None
        self.give_up_s = 0.0
        self.heard = 0.0
        """When the last message arrived (the watchdog's reference)."""
        self.woken = 0.0
        """When the part was last woken for being quiet."""
        self.orphaned_at: float | None = None
        """When the controller was declared silent (None: it is not): the node waits up to
        ``REATTACH_WAIT_S`` for a controller to take it back."""
        self.air_lost_at: float | None = None
        """When the controller said the channel server died (None: it did not): the node
        waits up to ``REATTACH_WAIT_S`` for the new one."""
        self.reattached = 0
        """Times a controller took this process back."""

    # ----------------------------------------------------------------- the calls

    def start(self, now: float, out: Outbox) -> None:
        self.join(self.role, self.index, now, out)

    def stalled(self, until: float) -> None:
        """A long call of its own (building a policy): its peers' silence counts from its
        end."""
        self.heard = max(self.heard, until)

    def on_message(self, msg: Message, now: float, out: Outbox) -> None:
        part = self.part
        if part is None:
            if isinstance(msg, Start):
                self.setup(msg, now, out)
            else:
                self.keep(msg)
            return
        if self.fetching:
            if isinstance(msg, Weights) and msg.version >= self.fetching:
                self.fetching = 0
                self.ready(now, out, [msg, *self.early])
            else:
                self.keep(msg)
            return
        self.serve(part, msg, now, out)

    def keep(self, msg: Message) -> None:
        """Hold ``msg`` until the node is ready (bounded: a flood before then is dropped)."""
        if len(self.early) >= MAX_EARLY:
            raise Rejected(f"more than {MAX_EARLY} messages before the node was ready")
        self.early.append(msg)

    def serve(self, part: NodePart, msg: Message, now: float, out: Outbox) -> None:
        if isinstance(msg, Weights):
            self.weights.offer(msg)  # the actor takes it at the next slot boundary
            out.send(CONTROLLER, WeightsAck, slot=msg.slot, version=msg.version)
        elif isinstance(msg, Join):
            check_indices([msg.node], "node", len(self.node_names))
            out.connect(self.kind.node_name(msg.node), check_address(msg.address))
        elif isinstance(msg, Leave):
            check_indices([msg.node], "node", len(self.node_names))
            on_lost = getattr(part, "on_lost", None)
            if on_lost is not None:
                on_lost(msg.node, now, out)
        elif isinstance(msg, Stop):
            self.watched = frozenset()
            self.report(msg.slot, out)
            return
        elif isinstance(msg, Restarted):
            self.controller_lost(now, out)
        elif isinstance(msg, AirRestart):
            self.air_restart(part, msg, now, out)
        elif isinstance(msg, Start):  # a controller took this process back
            if not isinstance(msg.options.get("reattach"), dict):
                raise Rejected("a second Start that is not a reattach")
            log.warning("%s: a controller took it back", self.name)
            self.orphaned_at = None
            self.reattached += 1
            part.on_message(msg, now, out)  # a training part sends what is unacknowledged
        elif not part.on_message(msg, now, out):
            raise Rejected(f"not expected at a {self.role}")
        self.heard = now

    def on_timer(self, key: Hashable, now: float, out: Outbox) -> None:
        if key == "watch" and self.part is not None:
            self.watch(now, out)
        elif key == "start":
            what = "Start" if self.part is None else f"weights v{self.fetching}"
            self.fail(f"no {what} from the controller in time")

    def watch(self, now: float, out: Outbox) -> None:
        """The watchdog (one timer, re-armed lazily rather than per message): after
        ``part.quiet_s()`` of silence the part serves what waits on a vanished peer; after
        4 peer timeouts of silence the node gives up."""
        assert self.part is not None
        quiet_at = max(self.heard, self.woken) + self.part.quiet_s()
        decide_by = getattr(self.part, "decide_by", None)
        due = decide_by() if decide_by is not None else None
        if due is not None and due > self.woken:
            quiet_at = min(quiet_at, due)
        give_up_at = self.heard + self.give_up_s
        for since in (self.orphaned_at, self.air_lost_at):  # a restart is on its way
            if since is not None:
                give_up_at = max(give_up_at, since + REATTACH_WAIT_S)
        if now >= give_up_at:
            self.fail(f"channel server and controller silent for {now - self.heard:.0f} s; "
                      "giving up")
            return
        if now >= quiet_at:
            self.woken = now
            self.part.on_quiet(now, out)
            quiet_at = now + self.part.quiet_s()
        out.timer("watch", min(quiet_at, give_up_at))

    def air_restart(self, part: NodePart, msg: AirRestart, now: float, out: Outbox) -> None:
        """The channel server died: wait for the new one; once it is there, connect to it,
        forget what waited for the slots it serves again (optional part hook
        ``on_air_restart(slot)``) and say ready."""
        if not msg.address:
            log.warning("%s: the channel server died; waiting for a new one", self.name)
            self.air_lost_at = now
            self.watch(now, out)
            return
        out.connect(CHANNEL_SERVER, check_address(msg.address))
        hook = getattr(part, "on_air_restart", None)
        if hook is not None:
            hook(msg.slot)
        self.air_lost_at = None
        out.send(CONTROLLER, Heartbeat, slot=msg.slot)
        log.warning("%s: a new channel server at %s serves slot %d on", self.name,
                    msg.address, msg.slot)

    def on_silent(self, peer: str, now: float, out: Outbox) -> None:
        """The controller fell silent: say hello again, for a restarted controller to take
        this node back (the watchdog waits up to ``REATTACH_WAIT_S`` for it)."""
        if peer == CONTROLLER:
            self.controller_lost(now, out)

    def controller_lost(self, now: float, out: Outbox) -> None:
        """(The controller fell silent, or a restarted one says so.)"""
        if self.part is None or self.orphaned_at is not None:
            return
        self.orphaned_at = now
        self.hello(self.role, self.index, out, again=True)
        self.watch(now, out)

    # ----------------------------------------------------------------- set-up

    def setup(self, start: Start, now: float, out: Outbox) -> None:
        out.cancel("start")
        resolved = from_toml(start.config_toml)
        self.kind, self.scenario = resolved.kind, resolved.scenario
        self.wire = wire_format_of(self.scenario)
        self.node_names = frozenset(self.kind.node_names(self.scenario))
        self.start_msg = start
        opts = start.options
        directory = opts.get("directory", {})
        self.connect_directory(directory, out)
        self.history_dir = opts.get("history")
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
            out.timer("start", now + self.give_up_s)
        else:
            self.ready(now, out, self.early)

    def ready(self, now: float, out: Outbox, backlog: list[Message]) -> None:
        """Connected to every peer: say so, then serve what arrived meanwhile."""
        out.cancel("start")
        out.send(CONTROLLER, Heartbeat, slot=-1)
        assert self.scenario is not None
        self.heartbeat_s = self.scenario.timing.heartbeat_s
        self.watched = frozenset({CONTROLLER})
        self.early = []
        assert self.part is not None
        for msg in backlog:
            if self.done:
                break
            self.receive(msg, now, out)
        self.heard = self.woken = now
        self.watch(now, out)

    # ----------------------------------------------------------------- shared services

    def history_version(self) -> int:
        return self.weights_version

    @property
    def weights_version(self) -> int:
        """Version of the weights the actor acts with (0: its initial ones)."""
        return self.versions[-1] if self.versions else 0

    def slot_boundary(self, actor: Actor) -> None:
        """A slot starts: the actor takes newer weights, if any arrived."""
        before = actor.version
        actor.update()
        if actor.version != before:
            self.versions.append(actor.version)

    def report(self, slot: int, out: Outbox) -> None:
        assert self.part is not None
        out.send(CONTROLLER, Report, slot=slot, rows=self.host.meter.rows(),
                 stats={"pid": self.host.pid, "hostname": self.host.hostname,
                        **self.part.stats(),
                        "weights_version": self.weights_version,
                        "weights_versions": self.versions,
                        "protocol_errors": self.host.protocol_errors,
                        "dropped": self.host.dropped,
                        "curve_bytes": self.host.curve_bytes,
                        "reattached": self.reattached,
                        "silent": self.silent,
                        "rejected": self.rejected})
        self.done = True
