"""Sans-IO roles: the logic of one rrmbed process as a plain object.

A role (the channel server, a base-station or vehicle node, the controller) knows nothing
of sockets, asyncio or sleeping. It is driven by three calls, each given the time ``now``
(seconds; wall-clock monotonic time over the network, emulated time in the in-memory pump)
and an :class:`Outbox` that collects what the role wants done:

- :meth:`Role.start` once, when the process starts;
- :meth:`Role.receive` for every message that arrives: it checks the sender is one the
  run has and one that may send this kind (the message's ``SENDERS``), then calls
  :meth:`Role.on_message`, which may raise :class:`~protocols.validate.Rejected` for a
  message it must not act on. A rejected message is dropped and counted by reason
  (``rejected``); it never ends the process;
- :meth:`Role.on_timer` when a timer it set falls due;
- :meth:`Role.peer_silent` when a peer it watches (``watched``) has been silent for
  ``BEAT_MISSES`` heartbeats (``heartbeat_s``). Over the network the driver sends the beats
  and keeps the watch; in memory nothing can fall silent, so nothing is watched.

The outbox holds sends (a message class, its header slot and chain latency, its payload),
timers by key (setting a key again moves it; :meth:`Outbox.cancel` removes it), connections
to peers' addresses and the emulated links that end at the role. A driver carries them out:
:mod:`protocols.driver` over the ZeroMQ transport, or the pump of the local runner in
memory. Because both drivers run the same role objects on the same messages, the two
runners agree by construction.

What a role may ask of the place it runs (its meter, pid, address, telemetry) comes
through :class:`Host`.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Protocol

from protocols.errors import count_reason, worth_logging
from protocols.links import LinkModel
from protocols.messages import Hello, Message
from protocols.meter import Meter
from protocols.names import CHANNEL_SERVER, CONTROLLER, NODES
from protocols.telemetry import Telemetry
from protocols.validate import Rejected
from protocols.wire import WireFormat

log = logging.getLogger("rrmbed.role")


@dataclass(slots=True)
class Send:
    """One message to send: the driver stamps the header (sender, seq, sent_ns)."""

    dest: str
    cls: type[Message]
    slot: int
    chain_latency_s: float
    payload: dict[str, Any]
    numbered: bool = True
    """False: seq 0, the sender's count untouched (a message sent again because of the wall
    time, like a beat: the protocol's messages, their seq and so their size, must not
    depend on how many there were)."""


@dataclass(slots=True)
class Outbox:
    """What a role wants done after one call, in order."""

    sends: list[Send] = field(default_factory=list)
    timers: dict[Hashable, float | None] = field(default_factory=dict)
    """key -> due time (seconds, the role's ``now`` scale), or None to cancel."""
    connects: list[tuple[str, str]] = field(default_factory=list)
    """(peer name, address) to connect to (ignored in memory)."""
    links: dict[str, LinkModel] = field(default_factory=dict)
    """Emulated link models of messages arriving from each sender (replacing older ones)."""
    clock: str | None = None
    """Clock mode of the link emulation ('fast' or 'realtime'), when it changes."""

    def send(self, dest: str, cls: type[Message], *, slot: int, chain_latency_s: float = 0.0,
             numbered: bool = True, **payload: Any) -> None:
        self.sends.append(Send(dest, cls, slot, float(chain_latency_s), payload, numbered))

    def timer(self, key: Hashable, at_s: float) -> None:
        """Call :meth:`Role.on_timer` with ``key`` at ``at_s`` (replaces a timer of that key)."""
        self.timers[key] = at_s

    def cancel(self, key: Hashable) -> None:
        self.timers[key] = None

    def connect(self, peer: str, address: str) -> None:
        self.connects.append((peer, address))

    def emulate(self, links: dict[str, LinkModel], clock: str) -> None:
        self.links.update(links)
        self.clock = clock

    def idle(self) -> bool:
        """Nothing to carry out."""
        return not (self.sends or self.timers or self.connects or self.links
                    or self.clock is not None)

    def clear(self) -> None:
        self.sends.clear()
        self.timers.clear()
        self.connects.clear()
        self.links.clear()
        self.clock = None


BEAT_MISSES = 3
"""Heartbeats a watched peer may miss before it is declared lost."""

JOIN_TIMEOUT_S = 60.0
"""Longest wait of a process for the controller's Start, seconds."""

REATTACH_WAIT_S = 120.0
"""Longest wait of a process whose controller fell silent for a controller (restarted, or
no longer stalled) to answer its hello again, seconds."""

RETAINED_OUTCOMES = 20_000
"""Slot outcomes the channel server keeps to send again to a restarted controller (which
saves its state at least every half of that many slots)."""


class Host(Protocol):
    """The process a role runs in, as the role sees it."""

    @property
    def address(self) -> str:
        """Where peers reach this role's inbox."""

    def now(self) -> float:
        """The role's clock now (seconds, the scale of ``now``), for a role that needs the
        time after some work within a call. (Timers a long call sets need not: the driver
        moves them by the call's duration, :meth:`Role.stalled`.)"""

    @property
    def pid(self) -> int: ...

    @property
    def hostname(self) -> str: ...

    @property
    def meter(self) -> Meter:
        """What this role has sent so far (the sender meters)."""

    @property
    def protocol_errors(self) -> int:
        """Frames that arrived and did not decode."""

    @property
    def dropped(self) -> dict[str, int]:
        """Those frames by reason."""

    @property
    def curve_bytes(self) -> int:
        """Bytes CURVE added on the wire to what this process sent (0 in the clear)."""

    @property
    def received(self) -> dict[tuple[str, str], list[int]]:
        """(kind, sender) -> [messages, wire bytes] of the good frames received."""

    def telemetry(self, broker: str | None, run: str, role: str, ident: str) -> Telemetry:
        """This role's MQTT telemetry (a no-op without a broker); the driver starts and
        closes it."""


class Role:
    """Base of every role: no-op hooks, a name, a host, an end state."""

    name: str = ""
    host: Host
    done: bool = False
    """The role has finished: the driver stops driving it."""
    failure: str | None = None
    """Why the role gave up (a peer vanished, ...), None when it ended normally."""
    exit_code: int = 0
    """The process's exit status once done."""
    node_names: frozenset[str] = frozenset()
    """The run's node processes (known once the role has its scenario)."""
    history_dir: str | None = None
    """Over the network, the folder where the driver logs this process's message history
    (:mod:`protocols.history`); None: no history."""
    heartbeat_s: float = 0.0
    """How often the driver beats to the watched peers, seconds (0: no beats)."""
    watched: frozenset[str] = frozenset()
    """Peers whose silence the role wants to hear about (:meth:`peer_silent`)."""
    wire: WireFormat | None = None
    """How this process encodes the arrays its messages exchange (``EXCHANGED`` fields,
    :mod:`protocols.wire`), from its scenario's wire configuration; both drivers encode
    every send with it. None: as computed."""

    def _counts(self, name: str) -> dict[str, int]:
        """The role's own counter ``name`` (roles need not call a base __init__)."""
        got: dict[str, int] = self.__dict__.setdefault(name, {})
        return got

    @property
    def silent(self) -> dict[str, int]:
        """Times each watched peer was declared lost for silence."""
        return self._counts("_silent")

    @property
    def rejected(self) -> dict[str, int]:
        """Messages dropped unread, by reason."""
        return self._counts("_rejected")

    def sender_class(self, name: str) -> str | None:
        """``controller``, ``channel-server`` or ``node`` for a process of the run."""
        if name in (CONTROLLER, CHANNEL_SERVER):
            return name
        return NODES if name in self.node_names else None

    def receive(self, msg: Message, now: float, out: Outbox) -> None:
        """Check where ``msg`` comes from, then act on it (see the module's docstring)."""
        senders = msg.SENDERS
        who = self.sender_class(msg.sender)
        if msg.sender == self.name or who is None:
            self.reject(msg, f"{msg.KIND} from unknown sender")
        elif senders and who not in senders:
            self.reject(msg, f"{msg.KIND} from a {who} (only {' or '.join(senders)} may "
                             "send it)")
        else:
            try:
                self.on_message(msg, now, out)
            except Rejected as e:
                self.reject(msg, f"{msg.KIND}: {e}")
            except OSError:  # the process's own trouble (a full disk), not the message's
                raise
            except Exception as e:  # a message must never end the process
                log.exception("%s: %s from %s broke its handler", self.name, msg.KIND,
                              msg.sender)
                self.reject(msg, f"{msg.KIND}: handler failed ({type(e).__name__})")

    def reject(self, msg: Message, reason: str) -> None:
        """Drop ``msg``, counting it under ``reason`` (logged at the 1st, 10th, 100th... of a
        reason, so a flood cannot flood the log)."""
        n = count_reason(self.rejected, reason)
        if worth_logging(n):
            log.warning("%s: rejected %s from %r in slot %d (%s; %d so far)", self.name,
                        msg.KIND, msg.sender[:40], msg.slot, reason, n)

    def start(self, now: float, out: Outbox) -> None:
        """The process started."""

    def on_message(self, msg: Message, now: float, out: Outbox) -> None:
        """A message arrived."""

    def on_timer(self, key: Hashable, now: float, out: Outbox) -> None:
        """A timer set with ``out.timer(key, ...)`` fell due."""

    def history_version(self) -> int:
        """The weights version this process holds, for its history (0: none)."""
        return 0

    def peer_silent(self, peer: str, silent_s: float, now: float, out: Outbox) -> None:
        """Watched ``peer`` sent nothing for ``silent_s`` seconds (``BEAT_MISSES`` beats):
        count and log it, then :meth:`on_silent`."""
        self.silent[peer] = self.silent.get(peer, 0) + 1
        log.warning("%s: %s silent for %.1f s (%d heartbeats): declared lost", self.name,
                    peer, silent_s, BEAT_MISSES)
        self.on_silent(peer, now, out)

    def peer_back(self, peer: str, silent_s: float) -> None:
        """A peer declared lost was heard again after ``silent_s`` seconds."""
        log.warning("%s: %s heard again after %.1f s of silence", self.name, peer, silent_s)

    def stalled(self, until: float) -> None:
        """Its last call kept this process busy until ``until`` (the driver's clock): a
        watchdog on its peers may count their silence from there (default: none)."""

    def peer_meter(self, beat: Message, now: float) -> None:
        """A beat brought its sender's meter so far (``beat.links``); default: unused."""

    def on_silent(self, peer: str, now: float, out: Outbox) -> None:
        """What losing ``peer`` means to this role (default: nothing more than the log; a
        role's own timeouts decide when to give up)."""

    def join(self, role: str, node_id: int, now: float, out: Outbox) -> None:
        """Say hello to the controller (and give it up to ``JOIN_TIMEOUT_S`` to answer)."""
        self.hello(role, node_id, out)
        out.timer("start", now + JOIN_TIMEOUT_S)

    def hello(self, role: str, node_id: int, out: Outbox, again: bool = False) -> None:
        """Say hello to the controller: this process, where its inbox is. Said ``again``
        (not numbered) when the controller falls silent mid-run: ZeroMQ holds it until a
        controller is back at the address, which then knows this process by its pid and
        takes it back."""
        out.send(CONTROLLER, Hello, slot=-1, role=role, node_id=node_id,
                 pid=self.host.pid, host=self.host.address, numbered=not again)

    def connect_directory(self, directory: dict[str, str], out: Outbox) -> None:
        """Connect to every peer of the run's directory (not to itself or the controller)."""
        for peer, address in directory.items():
            if peer not in (self.name, CONTROLLER):
                out.connect(peer, address)

    def fail(self, why: str, code: int = 1) -> None:
        """End the role, reporting ``why``."""
        self.failure = why
        self.exit_code = code
        self.done = True
