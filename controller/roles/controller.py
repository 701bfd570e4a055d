"""The controller's role, sans-IO: the handshake, the run, training deployments and the
final reports, for any scenario kind.

Handshake (no sleeps): every process says ``Hello`` with its inbox address; once all have,
the controller connects to them, sends each node ``Start`` (the resolved scenario, the
directory of addresses, the run options), waits until every node says it is ready (nodes
first fetch the current weights when a snapshot exists) and starts the channel server
last, so no slot begins before every node is connected. During the run it serves weights
requests, late joiners and the kind's part (slot outcomes, central decisions, experience);
after ``Done`` it stops everyone and gathers their reports (meters and statistics).

Training deployments: the part calls :meth:`ControllerRole.deploy`; the controller sends
each active node its weights, waits for every acknowledgement and lets the air resume.

A controller killed mid-run can be restarted on the same address (``reattach``, the
launcher's ``--controller-restarts``): during the run the controller saves its state
(``STATE_FILE``: the slots recorded, the processes and their addresses, its errors) at
least every ``STATE_EVERY_S`` seconds; the restarted one loads it, and the processes still
running, which said hello again when the controller fell silent (the channel server holds
the slots meanwhile and keeps their outcomes), are taken back by their pid: each gets
``Start`` again, marked ``reattach``, and the channel server sends the outcomes from the
first slot the state lacks. What came before the channel server's hello is dropped for
those it sends again (``superseded``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from channel_server.config import wire_format_of
from channel_server.kinds import Resolved
from protocols.durable import read_archive, write_archive
from protocols.latency import LinkModel
from protocols.messages import (
    AirRestart,
    Done,
    Error,
    Heartbeat,
    Hello,
    Join,
    Leave,
    Message,
    Report,
    Restarted,
    Resume,
    Start,
    Stop,
    Weights,
    WeightsAck,
    WeightsRequest,
)
from protocols.meter import Meter
from protocols.names import CHANNEL_SERVER, CONTROLLER, index_of
from protocols.role import REATTACH_WAIT_S, RETAINED_OUTCOMES, Outbox, Role
from protocols.seeding import rng_for
from protocols.transport import INBOX_FRAME_BYTES
from protocols.validate import Rejected, check_address
from protocols.weights import WeightsArtifact

log = logging.getLogger("rrmbed.controller")

MAX_BACKLOG = 10_000
"""Most messages the controller holds before the run starts."""

STATE_FILE = "controller-state.npz"
"""The controller's state in the run directory, for a restarted controller."""
STATE_EVERY_S = 1.0
"""Least seconds between two saves of the state (more for a long run, whose save takes
longer: at most a tenth of the time goes to saving)."""


class ControllerPart(Protocol):
    """A scenario kind's work at the controller."""

    scenario: Any
    """The scenario the nodes get (a scheme may adjust the kind's file)."""
    recorder: Any
    """Collects the slots; ``done`` (slots recorded) and ``write(...)``."""
    snapshot: tuple[int, dict[str, np.ndarray]] | None
    """The current node weights (version, arrays) served to nodes that ask."""
    pause_every: int
    """While training: the air waits for Resume after every this many slots (0: never). A
    part may also have ``pause_offset`` (default 0): the air then waits at slots
    ``pause_offset + k * pause_every``."""

    def after_start(self, name: str, out: Outbox) -> None:
        """``name`` was just sent Start."""

    def on_message(self, msg: Message, now: float, out: Outbox) -> bool:
        """Serve one message of the run; False if this part does not expect it."""

    def after_weights(self, name: str, slot: int, out: Outbox) -> None:
        """``name`` was just sent a training deployment's weights."""

    def busy(self) -> bool:
        """Work that waits for messages still in flight (a training update waiting for the
        last experience): the run does not end before it is done."""

    def weights_for(self, name: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The part of a weights snapshot node ``name`` runs."""

    def live_metrics(self) -> dict[str, Any]:
        """Telemetry figures of the run so far."""

    def extra_summary(self) -> dict[str, Any]:
        """More summary.json keys of this kind of run."""

    def final_weights(self) -> WeightsArtifact | None:
        """The trained weights to write at the end (None when not training)."""

    def history(self) -> list[dict[str, float]]:
        """One row per training update."""

    # Optional, for a restarted controller: ``records() -> dict[str, np.ndarray]`` (the
    # slots recorded so far), ``load_records(arrays)`` (record them again) and
    # ``on_reattach(now, out)`` (the channel server is back: what a training part must do
    # again after its checkpoint). For a new channel server: ``on_air_restart(slot)`` (it
    # plays ``slot`` and later again: forget what was begun of them). A part that sets
    # timers keys them ``("part", ...)`` and has ``on_timer(key, now, out)``.


class ControllerRole(Role):
    name = CONTROLLER

    def __init__(self, resolved: Resolved, scheme: str, slots: int, seed: int, runner: str,
                 weights: dict[str, np.ndarray] | None = None,
                 options: dict[str, Any] | None = None, startup_timeout_s: float = 60.0,
                 emit: Callable[..., None] | None = None, out_dir: Path | None = None,
                 reattach: bool = False) -> None:
        self.kind = resolved.kind
        self.scheme = scheme
        self.slots = slots
        self.seed = seed
        self.runner = runner
        self.options = dict(options or {})
        self.out_dir = out_dir
        """The run directory (training may save batches there)."""
        self.startup_timeout_s = startup_timeout_s
        self.emit = emit or (lambda *parts: None)
        """Where the lines for a launcher go (PROGRESS, TRAIN)."""
        self.nodes = self.kind.node_names(resolved.scenario)
        self.node_names = frozenset(self.nodes)
        self.roles = [CHANNEL_SERVER, *self.nodes]
        self.active = set(range(len(self.nodes)))
        state = self.read_state() if reattach else None
        if state is not None and self.options.get("train"):  # the part resumes its journal
            self.options["train"] = {**self.options["train"], "live": True,
                                     "resume": int(state[1]["attempt"]) + 1}
        self.part: ControllerPart = self.kind.make_controller(self, resolved.scenario, weights)
        self.scenario = self.part.scenario
        self.timing = self.scenario.timing
        self.wire = wire_format_of(self.scenario)
        self.phase = "hello"
        self.directory: dict[str, str] = {}
        self.config_toml = ""
        self.processes: dict[str, int] = {}
        self.hosts: dict[str, str] = {}
        self.ready: set[str] = set()
        self.joining: dict[str, int] = {}
        self.rejoined: list[str] = []
        self.deploying: tuple[int, int, set[str]] | None = None
        """(version, slot, nodes still to acknowledge) of a weights deployment."""
        self.backlog: list[Message] = []
        self.reports: dict[str, Report] = {}
        self.errors: list[str] = []
        self.live_meters: dict[str, list[list[Any]]] = {}
        """Process -> its meter's link rows from its last beat."""
        self.last_overhead = 0.0
        self.t_begin = time.perf_counter()
        self.t_run = 0.0
        self.t_end = 0.0
        self.last_progress = 0.0
        self.heard = 0.0
        """When the last message of the run arrived (the silence timer's reference)."""
        self.air_done = False
        """The channel server has played every slot."""
        self.telemetry: Any = None
        self.attempt = int((self.options.get("train") or {}).get("resume", 0))
        """How many controllers of this run came before this one (resumed or restarted)."""
        self.reattached: list[str] = []
        """Processes taken back after the controller fell silent or was restarted."""
        self.superseded = 0
        """Messages of the channel server dropped because it sends them again."""
        self.prior_meter: list[list[Any]] = []
        """What earlier controllers of the run had sent, as of their last saved state."""
        self.air_restarts_left = int(self.options.get("air_restarts") or 0) if (
            self.kind.air_restartable and not self.options.get("train")) else 0
        """New channel servers the launcher will start in the place of a dead one."""
        self.air_lost: float | None = None
        """When the channel server was found dead, while a new one is awaited."""
        self.air_waiting: tuple[int, set[str]] | None = None
        """(slot, nodes not ready yet) while a new channel server waits for its Start."""
        self.air_restarted = 0
        self.state_at = -math.inf
        self.state_cost = 0.0
        self.state_slot = 0
        if state is not None:
            self.load_state(*state)

    # ----------------------------------------------------------------- the calls

    def start(self, now: float, out: Outbox) -> None:
        self.telemetry = self.host.telemetry(self.options.get("broker"),
                                             str(self.options.get("run", "run")),
                                             "controller", "0")
        self.history_dir = self.options.get("history")
        out.timer("startup", now + self.startup_timeout_s)
        if self.phase == "reattach":
            for name, address in self.directory.items():
                out.connect(name, address)
                out.send(name, Restarted, slot=-1)  # (one that missed the old one's death)
            self.config_toml = self.kind.to_toml(self.scenario)
            self.emulate(out)

    def history_version(self) -> int:
        snapshot = self.part.snapshot
        return snapshot[0] if snapshot else 0

    def stalled(self, until: float) -> None:
        """A long call of its own (a training update): the run's silence counts from its
        end, not from the message that started it."""
        self.heard = max(self.heard, until)

    def on_message(self, msg: Message, now: float, out: Outbox) -> None:
        if isinstance(msg, Error):
            self.errors.append(f"{msg.sender}: {msg.text}")
            return
        phase = self.phase
        if phase == "run":
            self.heard = now
            self.serve(msg, now, out)
        elif phase == "hello":
            if isinstance(msg, Hello):
                self.check_hello(msg)
                if msg.sender in self.directory:
                    raise Rejected("a second hello")
                self.directory[msg.sender] = msg.host
                self.processes[msg.sender] = msg.pid
                if len(self.directory) == len(self.roles):
                    self.start_nodes(now, out)
            else:
                self.keep(msg)
        elif phase == "ready":
            if isinstance(msg, Heartbeat) and msg.sender in self.nodes:
                self.ready.add(msg.sender)
                if len(self.ready) == len(self.nodes):
                    self.start_air(now, out)
            elif isinstance(msg, WeightsRequest):
                self.send_snapshot(msg.sender, -1, out)
            else:
                self.keep(msg)
        elif phase == "reattach":
            if isinstance(msg, Hello) and self.processes.get(msg.sender) == msg.pid:
                self.take_back(msg, now, out)
            else:
                self.keep(msg)
        elif phase == "reports" and isinstance(msg, Report):
            if msg.sender in self.reports:
                raise Rejected("a second report")
            self.reports[msg.sender] = msg
            if set(self.alive()) <= set(self.reports):
                self.complete(out)

    def on_timer(self, key: Hashable, now: float, out: Outbox) -> None:
        if isinstance(key, tuple) and key[:1] == ("part",):  # the part's own timers
            if not self.done:
                self.part.on_timer(key, now, out)  # type: ignore[attr-defined]
        elif key == "startup":
            if self.phase == "hello":
                missing, what = sorted(set(self.roles) - set(self.directory)), "hello"
            elif self.phase == "reattach":
                missing, what = [CHANNEL_SERVER], "hello (reattach)"
            else:
                missing, what = sorted(set(self.nodes) - self.ready), "ready signal"
            self.fail(f"no {what} from {', '.join(missing)} within "
                      f"{self.startup_timeout_s:.1f} s")
        elif key == "silence" and (self.air_lost is not None
                                   or now < self.heard + 2 * self.timing.peer_timeout_s):
            out.timer("silence", max(self.heard + 2 * self.timing.peer_timeout_s,
                                     now + self.timing.peer_timeout_s))  # lazy re-arm
        elif key == "air":
            self.errors.append(f"no new channel-server took over within "
                               f"{REATTACH_WAIT_S:.0f} s after slot {self.done_slots}; "
                               "stopping the run")
            log.error(self.errors[-1])
            self.finish(now, out)
        elif key == "silence" and self.air_done:
            self.errors.append(f"the last training update still lacked experience "
                               f"{2 * self.timing.peer_timeout_s:.1f} s after the last slot; "
                               "stopping without it")
            log.error(self.errors[-1])
            self.finish(now, out)
        elif key == "silence":
            self.errors.append(f"channel-server silent for {2 * self.timing.peer_timeout_s:.1f} "
                               f"s after slot {self.part.recorder.done}; stopping the run")
            log.error(self.errors[-1])
            self.finish(now, out)
        elif key == "acks" and self.deploying is not None:
            version, _, unacked = self.deploying
            self.errors.append(f"controller: no weights v{version} acknowledgement from "
                               f"{', '.join(sorted(unacked))} within "
                               f"{4 * self.timing.peer_timeout_s:.1f} s")
            self.finish(now, out)
        elif key == "reports":
            missing = sorted(set(self.alive()) - set(self.reports))
            self.errors.append(f"controller: no report from {', '.join(missing)} within "
                               f"{self.timing.peer_timeout_s:.1f} s")
            self.complete(out)

    # ----------------------------------------------------------------- handshake

    def start_nodes(self, now: float, out: Outbox) -> None:
        for name, address in self.directory.items():
            out.connect(name, address)
        self.config_toml = self.kind.to_toml(self.scenario)
        for name in self.nodes:
            self.send_start(name, out)
        self.emulate(out)
        self.phase = "ready"
        out.timer("startup", now + self.startup_timeout_s)
        self.replay(now, out)

    def emulate(self, out: Outbox) -> None:
        """The emulated backhaul links into the controller."""
        backhaul = self.scenario.backhaul
        out.emulate({src: LinkModel(backhaul.link(src, CONTROLLER),
                                    rng_for(self.seed, "link", src, CONTROLLER))
                     for src in self.roles}, self.timing.clock)

    def start_air(self, now: float, out: Outbox) -> None:
        self.send_start(CHANNEL_SERVER, out)
        self.run_phase(now, out)

    def run_phase(self, now: float, out: Outbox) -> None:
        out.cancel("startup")
        self.phase = "run"
        self.heard = now
        self.heartbeat_s = self.timing.heartbeat_s
        self.watched = frozenset(self.roles)
        self.t_run = time.perf_counter()
        out.timer("silence", now + 2 * self.timing.peer_timeout_s)
        self.replay(now, out)

    def replay(self, now: float, out: Outbox) -> None:
        """Serve, one by one, what came before its phase."""
        backlog, self.backlog = self.backlog, []
        for msg in backlog:
            self.receive(msg, now, out)

    def keep(self, msg: Message) -> None:
        """Hold ``msg`` for the next phase (bounded: a flood before the run is dropped)."""
        if len(self.backlog) >= MAX_BACKLOG:
            raise Rejected(f"more than {MAX_BACKLOG} messages before the run")
        self.backlog.append(msg)

    def send_start(self, name: str, out: Outbox, **special: Any) -> None:
        """Start ``name``; ``special`` options: ``reattach`` (take a running process back:
        not numbered, as the hello it answers) or ``restart`` (a new channel server takes
        over the run)."""
        snapshot = self.part.snapshot
        opts = {**self.options, "directory": self.directory,
                "weights_version": snapshot[0] if snapshot else 0, **special}
        if self.part.pause_every:
            opts["train"] = {**opts["train"], "pause_every": self.part.pause_every}
            offset = getattr(self.part, "pause_offset", 0)
            if offset:
                opts["train"]["pause_offset"] = offset
        out.send(name, Start, slot=-1, scheme=self.scheme, slots=self.slots, seed=self.seed,
                 config_toml=self.config_toml, options=opts, numbered="reattach" not in special)
        if not special:
            self.part.after_start(name, out)

    def send_snapshot(self, name: str, slot: int, out: Outbox) -> None:
        if self.part.snapshot is None:
            log.warning("controller: %s asked for weights, but there are none", name)
            return
        version, arrays = self.part.snapshot
        own = self.part.weights_for(name, arrays)
        size = sum(a.nbytes for a in own.values())
        if 2 * size > INBOX_FRAME_BYTES:
            self.errors.append(f"controller: weights v{version} for {name} ({size} bytes) are "
                               f"over half the inboxes' bound ({INBOX_FRAME_BYTES} bytes); "
                               "not sent")
            log.error(self.errors[-1])
            return
        out.send(name, Weights, slot=slot, version=version, names=list(own),
                 arrays=list(own.values()))

    # ----------------------------------------------------------------- the run

    @property
    def done_slots(self) -> int:
        return int(self.part.recorder.done)

    def serve(self, msg: Message, now: float, out: Outbox) -> None:
        if isinstance(msg, Done):
            if msg.slots != self.slots:
                raise Rejected(f"done after {msg.slots} slots; the run has {self.slots}")
            self.air_done = True
        elif isinstance(msg, WeightsRequest):
            self.send_snapshot(msg.sender, self.done_slots, out)
        elif isinstance(msg, WeightsAck):  # of a deployment, or of a snapshot it fetched
            if self.deploying is None:
                return
            version, slot, missing = self.deploying
            if msg.version == version:
                missing.discard(msg.sender)
                if not missing:
                    self.deploying = None
                    out.cancel("acks")
                    out.send(CHANNEL_SERVER, Resume, slot=slot, version=version)
        elif isinstance(msg, Hello):
            if self.processes.get(msg.sender) == msg.pid and (
                    msg.sender == CHANNEL_SERVER or index_of(msg.sender) in self.active):
                self.take_back(msg, now, out)
            elif msg.sender == CHANNEL_SERVER:
                self.new_air(msg, now, out)
            else:
                self.late_hello(msg, out)
        elif isinstance(msg, Heartbeat):
            self.on_ready(msg, now, out)
        elif not self.part.on_message(msg, now, out):
            raise Rejected("not expected at the controller")
        if self.air_done and not self.part.busy():
            self.finish(now, out)

    def peer_meter(self, beat: Message, now: float) -> None:
        """Keep the sender's latest meter (checked: a malformed one is rejected) for the
        overhead written as the run goes, and for a process that never reports."""
        links = getattr(beat, "links", [])
        try:
            Meter().merge(links)
        except ValueError as e:
            self.reject(beat, f"beat: {e}")
            return
        self.live_meters[beat.sender] = links

    def on_silent(self, peer: str, now: float, out: Outbox) -> None:
        """A watched process fell silent: without the air the run cannot go on; without a
        node the air serves the others (the node may rejoin)."""
        if self.phase != "run" or self.air_done:
            return
        if peer == CHANNEL_SERVER and self.air_lost is None and self.air_restarts_left > 0:
            self.lose_air(now, out)
            return
        if peer == CHANNEL_SERVER:
            if self.air_lost is None:
                self.errors.append(f"channel-server silent for {3 * self.heartbeat_s:.1f} s "
                                   f"(3 heartbeats) after slot {self.done_slots}; stopping "
                                   "the run")
                log.error(self.errors[-1])
                self.finish(now, out)
            return
        b = index_of(peer)
        if b in self.active:
            self.active.discard(b)
            for name in self.alive():
                out.send(name, Leave, slot=self.done_slots, node=b)

    # ----------------------------------------------------------------- a new channel server

    def lose_air(self, now: float, out: Outbox) -> None:
        """The channel server died and a new one is coming (the launcher restarts it): the
        nodes are told to wait for it; the run waits up to ``REATTACH_WAIT_S``."""
        self.air_restarts_left -= 1
        self.air_lost = now
        log.error("controller: channel-server lost after slot %d; waiting for a new one",
                  self.done_slots)
        for b in sorted(self.active):
            out.send(self.nodes[b], AirRestart, slot=self.done_slots, address="")
        out.timer("air", now + REATTACH_WAIT_S)

    def new_air(self, msg: Hello, now: float, out: Outbox) -> None:
        """A new channel-server process said hello in the place of the dead one: the nodes
        connect to it and forget what waits for the slots it plays again; once every one
        is ready it gets ``Start`` with the slot to take over at."""
        if self.air_lost is None and self.air_restarts_left <= 0:
            raise Rejected("only a node may join a running run")
        self.check_hello(msg)
        if self.air_lost is None:  # its hello came before the old one was found silent
            self.lose_air(now, out)
        out.connect(CHANNEL_SERVER, msg.host)
        self.directory[CHANNEL_SERVER] = msg.host
        self.processes[CHANNEL_SERVER] = msg.pid
        slot, names = self.done_slots, {self.nodes[b] for b in self.active}
        self.air_waiting = (slot, names)
        on_air_restart = getattr(self.part, "on_air_restart", None)
        if on_air_restart is not None:
            on_air_restart(slot)
        for name in sorted(names, key=index_of):
            out.send(name, AirRestart, slot=slot, address=msg.host)
        out.timer("air", now + self.startup_timeout_s)
        if not names:
            self.start_new_air(now, out)

    def start_new_air(self, now: float, out: Outbox) -> None:
        assert self.air_waiting is not None
        slot = self.air_waiting[0]
        self.send_start(CHANNEL_SERVER, out,
                        restart={"from_slot": slot, "active": sorted(self.active)})
        log.warning("controller: a new channel-server takes over at slot %d", slot)
        self.air_waiting, self.air_lost = None, None
        self.air_restarted += 1
        self.heard = now
        out.cancel("air")

    def check_hello(self, msg: Hello) -> None:
        """The role, id and address a process announces agree with its name."""
        if msg.sender == CHANNEL_SERVER:
            role, node_id = CHANNEL_SERVER, -1
        else:
            role, node_id = self.kind.node_role, index_of(msg.sender)
        if (msg.role, msg.node_id) != (role, node_id):
            raise Rejected(f"{msg.sender} claims role {msg.role[:40]!r} id {msg.node_id}")
        check_address(msg.host)

    def late_hello(self, msg: Hello, out: Outbox) -> None:
        """A node (re)started mid-run: give it the configuration; it fetches the weights."""
        if msg.sender not in self.node_names:
            raise Rejected("only a node may join a running run")
        self.check_hello(msg)
        log.warning("controller: %s joins at slot %d", msg.sender, self.done_slots)
        out.connect(msg.sender, msg.host)
        self.directory[msg.sender] = msg.host
        self.processes[msg.sender] = msg.pid
        self.joining[msg.sender] = msg.node_id
        self.send_start(msg.sender, out)

    def take_back(self, msg: Hello, now: float, out: Outbox) -> None:
        """A process of the run that found this controller silent (it was restarted, or
        stalled) said hello again: take it back. The channel server sends the outcomes from
        the first slot not recorded here on; what it sent before its hello is dropped."""
        self.check_hello(msg)
        name = msg.sender
        self.reattached.append(name)
        log.warning("controller: %s taken back at slot %d", name, self.done_slots)
        if name != CHANNEL_SERVER:
            self.send_start(name, out, reattach={})
            return
        self.send_start(name, out, reattach={"from_slot": self.done_slots})
        if self.phase == "reattach":
            kept = [m for m in self.backlog if m.sender != CHANNEL_SERVER]
            self.superseded += len(self.backlog) - len(kept)
            self.backlog = kept
            self.air_done = False
            self.run_phase(now, out)
            on_reattach = getattr(self.part, "on_reattach", None)
            if on_reattach is not None:
                on_reattach(now, out)

    def on_ready(self, msg: Heartbeat, now: float, out: Outbox) -> None:
        """A joining node holds the current weights: let the air serve it again; a node is
        ready for a new channel server: start it once all are."""
        waiting = self.air_waiting
        if waiting is not None and msg.sender in waiting[1]:
            waiting[1].discard(msg.sender)
            if not waiting[1]:
                self.start_new_air(now, out)
            return
        b = self.joining.pop(msg.sender, None)
        if b is None:
            return
        for name in self.roles:
            if name != msg.sender:
                out.send(name, Join, slot=self.done_slots, node=b,
                         address=self.directory[msg.sender])
        self.active.add(b)
        self.rejoined.append(msg.sender)

    def outcome_recorded(self, lost: list[int]) -> None:
        """A slot outcome was recorded: the active nodes, progress and live metrics."""
        self.active = set(range(len(self.nodes))) - set(lost)
        now = time.perf_counter()
        if now - self.last_progress > 0.1 or self.done_slots == self.slots:
            self.emit("PROGRESS", self.done_slots, self.slots)
            self.last_progress = now
            self.telemetry.update(**self.part.live_metrics())
        if self.out_dir is not None and self.live_meters and now - self.last_overhead > 1.0:
            self.last_overhead = now
            self.meter().to_csv(self.out_dir / "overhead.csv", max(self.done_slots, 1))
        if self.restartable and (
                now - self.state_at >= max(STATE_EVERY_S, 10 * self.state_cost)
                or self.done_slots - self.state_slot >= RETAINED_OUTCOMES // 2):
            self.save_state()
            self.state_at, self.state_slot = now, self.done_slots
            self.state_cost = time.perf_counter() - now

    # ----------------------------------------------------------------- restarts

    @property
    def restartable(self) -> bool:
        """The run saves a state a restarted controller continues from (over the network:
        in memory there is nothing to restart)."""
        return (self.runner == "network" and self.out_dir is not None
                and hasattr(self.part, "records"))

    def state_meta(self) -> dict[str, Any]:
        """The run's settings a saved state must agree with."""
        return {"kind": self.kind.name, "scheme": self.scheme, "seed": self.seed,
                "slots": self.slots}

    def save_state(self) -> None:
        """Save what a restarted controller needs (``STATE_FILE``, atomically): the slots
        recorded (while training, the checkpoints hold them), the processes, the errors."""
        assert self.out_dir is not None
        meta = {**self.state_meta(), "slot": self.done_slots, "directory": self.directory,
                "processes": self.processes, "active": sorted(self.active),
                "rejoined": self.rejoined, "errors": self.errors, "attempt": self.attempt,
                "meter": self.own_meter().rows()}
        training = bool(self.options.get("train"))
        records = {} if training else self.part.records()  # type: ignore[attr-defined]
        write_archive(self.out_dir / STATE_FILE, records, meta)

    def read_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The state a killed controller of this run saved (ValueError when there is none,
        or it is not this run's)."""
        if self.out_dir is None:
            raise ValueError("a restarted controller needs the run directory")
        path = self.out_dir / STATE_FILE
        if not path.exists():
            raise ValueError(f"{path} does not exist: the run saved no state to restart its "
                             "controller from (it saves one once a slot is recorded)")
        arrays, meta = read_archive(path)
        for key, want in self.state_meta().items():
            if meta.get(key) != want:
                raise ValueError(f"{path}: {key} = {meta.get(key)!r}, but the run has {want!r}")
        return arrays, meta

    def load_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Continue a run whose controller was restarted from its saved state: the slots
        recorded (a training part restored its checkpoint already), the processes."""
        if not self.restartable or not hasattr(self.part, "load_records"):
            raise ValueError(f"a {self.kind.name} run's controller cannot be restarted")
        if not self.options.get("train"):
            self.part.load_records(arrays)
            if self.done_slots != meta["slot"]:
                raise ValueError(f"{STATE_FILE}: {self.done_slots} slots recorded, slot "
                                 f"{meta['slot']}")
        self.directory, self.processes = dict(meta["directory"]), dict(meta["processes"])
        self.active = {int(b) for b in meta["active"]}
        self.rejoined, self.errors = list(meta["rejoined"]), list(meta["errors"])
        self.prior_meter, self.attempt = meta["meter"], int(meta["attempt"]) + 1
        self.state_slot = self.done_slots
        self.phase = "reattach"
        log.warning("controller: restarted (attempt %d) at slot %d; waiting for the run's "
                    "processes to say hello again", self.attempt, self.done_slots)

    def deploy(self, version: int, slot: int, now: float, out: Outbox) -> None:
        """Send every active node its part of snapshot ``version`` and resume the air at
        ``slot`` once all have acknowledged it."""
        names = {self.nodes[b] for b in sorted(self.active)}
        for name in sorted(names, key=index_of):
            self.send_snapshot(name, slot, out)
            self.part.after_weights(name, slot, out)
        self.deploying = (version, slot, names)
        out.timer("acks", now + 4 * self.timing.peer_timeout_s)

    def resume(self, slot: int, version: int, out: Outbox) -> None:
        """Let the air go on without a deployment (the policy runs at the controller)."""
        out.send(CHANNEL_SERVER, Resume, slot=slot, version=version)

    # ----------------------------------------------------------------- the end

    def alive(self) -> list[str]:
        return [CHANNEL_SERVER, *(self.nodes[b] for b in sorted(self.active))]

    def finish(self, now: float, out: Outbox) -> None:
        if self.phase == "reports":
            return
        self.t_end = time.perf_counter()
        self.watched = frozenset()  # the end: who falls silent now no longer matters
        for name in self.roles:
            out.send(name, Stop, slot=self.done_slots, reason="run complete")
        out.cancel("silence")
        out.cancel("acks")
        self.phase = "reports"
        out.timer("reports", now + self.timing.peer_timeout_s)

    def complete(self, out: Outbox) -> None:
        out.cancel("reports")
        self.done = True

    def meter(self) -> Meter:
        """Every process's sent bytes, merged: from its final report, else (still running,
        or lost) from its last beat."""
        meter = self.own_meter()
        for rep in self.reports.values():
            meter.merge(rep.rows)
        for name, links in self.live_meters.items():
            if name not in self.reports:
                meter.merge(links)
        return meter

    def own_meter(self) -> Meter:
        """What the controllers of this run sent (earlier ones: as of their last state)."""
        meter = Meter()
        meter.merge(self.prior_meter)
        meter.merge(self.host.meter.rows())
        return meter

    def summary_extra(self) -> dict[str, Any]:
        stats = {name: rep.stats for name, rep in self.reports.items()}
        hosts = {name: str(s.get("hostname", "")) for name, s in stats.items()}
        hosts[CONTROLLER] = self.host.hostname
        rejected = {name: s["rejected"] for name, s in stats.items() if s.get("rejected")}
        if self.rejected:
            rejected[CONTROLLER] = dict(self.rejected)
        dropped = {name: s["dropped"] for name, s in stats.items() if s.get("dropped")}
        if self.host.dropped:
            dropped[CONTROLLER] = dict(self.host.dropped)
        silent = {name: s["silent"] for name, s in stats.items() if s.get("silent")}
        if self.silent:
            silent[CONTROLLER] = dict(self.silent)
        return {"hosts": hosts, "errors": self.errors, "process_stats": stats,
                "rejected": rejected,
                "rejected_total": sum(n for r in rejected.values() for n in r.values()),
                "dropped": dropped, "silent": silent, "rejoined": self.rejoined,
                "controller_attempt": self.attempt, "reattached": self.reattached,
                "air_restarts": self.air_restarted,
                "superseded": self.superseded,
                **self.part.extra_summary(),
                "received": [[k, s, m, b] for (k, s), (m, b) in
                             sorted(self.host.received.items())],
                "setup_s": self.t_run - self.t_begin,
                "protocol_errors": self.host.protocol_errors
                + sum(int(s.get("protocol_errors", 0)) for s in stats.values()),
                "curve_bytes": self.host.curve_bytes
                + sum(int(s.get("curve_bytes", 0)) for s in stats.values())}

    @property
    def wall_s(self) -> float:
        return (self.t_end or time.perf_counter()) - (self.t_run or self.t_begin)
