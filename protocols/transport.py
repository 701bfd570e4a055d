"""asyncio ZeroMQ transport: one :class:`Endpoint` per process.

Each endpoint has one inbox (a PULL socket bound to ``bind``, fair-queuing its senders) and
one PUSH socket per peer, connected to that peer's inbox. A message is one ZeroMQ frame made
by :mod:`protocols.codec`; its header names the sender. The sender meters every frame it
writes; the receiver does not.

A frame that does not decode is never raised to the caller of :meth:`Endpoint.recv`: it is
counted in ``protocol_errors`` and by reason in ``dropped`` (last text in
``last_protocol_error``), logged at its 1st, 10th, 100th... occurrence, and ``recv`` keeps
waiting within its deadline.

Inbox memory is bounded: at most ``INBOX_HWM`` messages wait per connected peer (libzmq then
stops reading that peer's socket), and a frame over ``INBOX_FRAME_BYTES`` (ZMQ_MAXMSGSIZE)
closes the connection that carried it before any of it is kept.

Link emulation: every accepted message passes through ``links`` (:mod:`protocols.links`,
the same pure module the in-memory pump uses): it may come out later in the chain (link
latency added), lost (``chain_latency_s = inf``), or held until its realtime latency has
elapsed; held messages do not block others.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import os
import time
from collections.abc import Coroutine
from typing import Any, TypeVar, cast

import zmq
import zmq.asyncio
import zmq.backend
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

from protocols.codec import DEFAULT_LIMITS, CodecLimits, decode, encode, header_length
from protocols.errors import (
    PeerError,
    PeerTimeout,
    ProtocolError,
    count_reason,
    reason_of,
    worth_logging,
)
from protocols.history import HistoryLog
from protocols.keys import KeyRing
from protocols.latency import Clock, LinkModel
from protocols.links import Links
from protocols.messages import Message, Stamper
from protocols.meter import Meter, curve_extra, wire_size
from protocols.wire import WireFormat

log = logging.getLogger(__name__)

INBOX_FRAME_BYTES = 4 << 20
"""Largest frame an inbox takes, bytes: twice the largest legitimate message of every
scenario, a weights message of the papers' policies (three hidden layers of 256, float64:
about 1.1 MB whatever the scenario, since only the input layer grows with it); the per-slot
messages are a few kB. The controller refuses to send weights over half of it."""

INBOX_HWM = 1000
"""Messages an inbox holds per sending peer: far more than the slot protocol has in
flight."""

ZAP_DOMAIN = "rrmbed"
"""ZAP domain of every CURVE inbox."""


class _RunKeys:
    """The ZAP handler's credentials: a client is let in only with a key of the run; its
    connection's User-Id is then that key's process name."""

    def __init__(self) -> None:
        self.names: dict[bytes, str] = {}

    def callback(self, domain: str, key: bytes) -> bool:
        return key in self.names


class _Authenticator(ThreadAuthenticator):
    """pyzmq's ZAP thread on the process's context, naming clients by their key."""

    def __init__(self, context: zmq.Context[Any], keys: _RunKeys) -> None:
        super().__init__(context, log=logging.getLogger("rrmbed.zap"))
        self.keys = keys

    def curve_user_id(self, client_public_key: bytes) -> str:
        return self.keys.names[z85.encode(client_public_key)]


_ZAP: dict[int, _RunKeys] = {}
"""One ZAP handler per context (it binds the context's ZAP address)."""


def _authenticate(ctx: zmq.Context[Any], keys: KeyRing) -> None:
    """Let the run's keys in at every CURVE inbox of ``ctx``."""
    run_keys = _ZAP.get(id(ctx))
    if run_keys is None:
        run_keys = _ZAP[id(ctx)] = _RunKeys()
        auth = _Authenticator(ctx, run_keys)
        auth.configure_curve_callback(ZAP_DOMAIN, run_keys)
        auth.start()
    for name, public in keys.publics.items():
        run_keys.names[public] = name

# Plain ints: pyzmq's flag enums cost a few microseconds per operation on the hot path.
_NOBLOCK = int(zmq.NOBLOCK)
_POLLIN = int(zmq.POLLIN)
_zmq_poll = zmq.backend.zmq_poll
"""``zmq_poll(items, 0)`` reads ZMQ_EVENTS of each socket (processing libzmq's pending
commands, which re-arms ZMQ_FD) at about half the cost of ``Socket.get(zmq.EVENTS)``, whose
option lookup goes through an enum."""

T = TypeVar("T")

_configured: zmq.asyncio.Context | None = None
"""The context already configured (its I/O thread's policy set, or found not settable)."""


def _context() -> zmq.asyncio.Context:
    """The process's ZeroMQ context. Where the OS has SCHED_BATCH (Linux), its I/O thread
    runs under it: a normal-priority thread that does not preempt the thread that woke it.
    Every send wakes the I/O thread. Under the default policy it takes the core from the
    sender at once, once per message; under SCHED_BATCH the sender finishes its burst (a
    slot's sends) and the I/O thread writes them when the sender waits. With more
    processes than cores (3cell-k2 ``full`` over processes on 2 cores, three runs paired
    with the default policy) that gave 10-28 % more slots per second and 5-15 % less CPU
    per slot. Set before the context starts its I/O thread, and only where this thread may
    take the policy itself (libzmq aborts the process when its thread cannot)."""
    global _configured
    ctx = zmq.asyncio.Context.instance()
    if ctx is not _configured:
        if _may_batch():
            ctx.set(zmq.THREAD_SCHED_POLICY, os.SCHED_BATCH)
        _configured = ctx
    return ctx


def _may_batch() -> bool:
    """Whether a thread may switch to SCHED_BATCH here (a container's seccomp profile may
    forbid it): tried on this thread, which is put back to SCHED_OTHER at once."""
    if not hasattr(os, "SCHED_BATCH"):
        return False
    try:
        if os.sched_getscheduler(0) != os.SCHED_OTHER:
            return False
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except OSError:
        return False
    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    return True


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a process's main coroutine on uvloop (measured ~1.4x faster round trips than the
    default loop in ``rrmbed bench transport``), or the default asyncio loop without it."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a declared dependency
        return asyncio.run(coro)
    return uvloop.run(coro)


class Endpoint:
    """A process's messaging endpoint.

    ``name``: own name (the ``sender`` of the messages it makes); ``bind``: inbox address
    (``tcp://host:port``, port 0 or ``*`` for a random port, or ``ipc://path``), None for a
    send-only endpoint; ``meter``: where sent frames are counted; ``limits``: codec limits
    (also the inbox's ZMQ_MAXMSGSIZE); ``hwm``: send and receive high-water marks, messages;
    ``send_timeout_s``: longest wait for room in a full send queue, seconds; ``clock``: clock
    mode used by link emulation; ``keys``: the run's CURVE keys (None: no authentication,
    the user's explicit ``--insecure``). With keys the inbox lets in only the run's keys, a
    frame whose ``sender`` is not the process its key belongs to is dropped as a protocol
    error, and a peer is reached only with its own public key.
    """

    def __init__(
        self,
        name: str,
        bind: str | None,
        meter: Meter,
        limits: CodecLimits = DEFAULT_LIMITS,
        hwm: int = 10000,
        *,
        send_timeout_s: float = 5.0,
        clock: Clock | None = None,
        keys: KeyRing | None = None,
    ) -> None:
        self.name = name
        self.keys = keys
        self.meter = meter
        self.limits = limits
        self.hwm = hwm
        self.send_timeout_s = send_timeout_s
        self.links = Links()
        """Emulated links ending here (:mod:`protocols.links`)."""
        if clock is not None:
            self.links.clock = clock
        self.protocol_errors = 0
        self.last_protocol_error: str | None = None
        self.dropped: dict[str, int] = {}
        """Bad frames by reason (:func:`protocols.errors.reason_of`)."""
        self.received: dict[tuple[str, str], list[int]] = {}
        """(kind, sender) -> [messages, wire bytes] of good frames received (not the meter:
        senders meter; this lets a receiver check what arrived)."""
        self.address: str | None = None
        self.curve_bytes = 0
        """Bytes CURVE added on the wire to what this endpoint sent (not in the meter, which
        counts the protocol's frames: the same with and without keys)."""
        self.history: HistoryLog | None = None
        """Where every message sent and every good frame received is logged, if anywhere."""
        self._ctx = _context()
        self._peers: dict[str, tuple[zmq.asyncio.Socket, zmq.backend.Socket]] = {}
        self._held: list[tuple[int, int, Message]] = []
        self._held_count = 0
        self.header = Stamper(name).header
        """Header fields for a new message (:meth:`protocols.messages.Stamper.header`)."""
        self._ipc_path: str | None = None
        self._inbox: zmq.Socket[bytes] | None = None
        self._fd = -1
        self._poll_items: list[tuple[zmq.Socket[bytes], int]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: list[asyncio.Future[None]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        if bind is not None:
            # A plain socket: recv tries NOBLOCK first and otherwise waits on ZMQ_FD in the
            # event loop (leaner than zmq.asyncio on the hot path).
            sock: zmq.Socket[bytes] = zmq.Socket(self._ctx, zmq.PULL)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.RCVHWM, min(hwm, INBOX_HWM))
            sock.setsockopt(zmq.MAXMSGSIZE, min(limits.max_frame_bytes, INBOX_FRAME_BYTES))
            if keys is not None:
                _authenticate(self._ctx, keys)
                sock.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN.encode())
                sock.setsockopt(zmq.CURVE_SERVER, 1)
                sock.setsockopt(zmq.CURVE_SECRETKEY, keys.secret)
                sock.setsockopt(zmq.CURVE_PUBLICKEY, keys.public)
            try:
                sock.bind(bind)
            except zmq.ZMQError:
                sock.close(linger=0)
                raise
            self.address = sock.getsockopt_string(zmq.LAST_ENDPOINT)
            if self.address.startswith("ipc://") and not self.address.startswith("ipc://@"):
                self._ipc_path = self.address[len("ipc://") :]
            self._inbox = sock
            self._fd = cast(int, sock.getsockopt(zmq.FD))
            self._poll_items = [(sock, _POLLIN)]

    # ------------------------------------------------------------------ peers

    def connect(self, peer: str, endpoint: str) -> None:
        """Connect a PUSH socket to ``peer``'s inbox at ``endpoint`` (replacing an older one).

        Messages sent before the connection is up are queued (ZMQ_IMMEDIATE off)."""
        keys = self.keys
        if keys is not None and peer not in keys.publics:
            raise PeerError(f"{self.name}: no public key for {peer!r} in the run's keys")
        sock = self._ctx.socket(zmq.PUSH)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, self.hwm)
        sock.setsockopt(zmq.IMMEDIATE, 0)
        if keys is not None:
            sock.setsockopt(zmq.CURVE_SERVERKEY, keys.publics[peer])
            sock.setsockopt(zmq.CURVE_PUBLICKEY, keys.public)
            sock.setsockopt(zmq.CURVE_SECRETKEY, keys.secret)
        try:
            sock.connect(endpoint)
        except zmq.ZMQError:
            sock.close(linger=0)
            raise
        self.disconnect(peer)
        # Sends go through a plain backend socket (skips pyzmq's Python-level send wrapper).
        self._peers[peer] = (sock, zmq.backend.Socket(shadow=sock.underlying))

    def disconnect(self, peer: str) -> None:
        """Close the socket to ``peer`` if there is one (queued messages are dropped)."""
        entry = self._peers.pop(peer, None)
        if entry is not None:
            entry[0].close(linger=0)

    @property
    def peers(self) -> tuple[str, ...]:
        """Names of connected peers."""
        return tuple(self._peers)

    def set_link(self, peer: str, model: LinkModel | None) -> None:
        """Emulate the link from ``peer`` to this endpoint with ``model`` (None: no emulation)."""
        if model is None:
            self.links.models.pop(peer, None)
        else:
            self.links.set({peer: model})

    @property
    def lost(self) -> int:
        """Messages lost on the emulated links ending here."""
        return self.links.lost

    # ------------------------------------------------------------------ send / recv

    async def send(self, peer: str, msg: Message, wire: WireFormat | None = None) -> int:
        """Encode (exchanged arrays as ``wire`` says), send and meter ``msg``; returns the
        wire bytes counted.

        Raises PeerError for an unknown peer, ProtocolError for a message that cannot be
        encoded, PeerTimeout if the send queue stays full for ``send_timeout_s``."""
        entry = self._peers.get(peer)
        if entry is None:
            raise PeerError(f"{self.name}: unknown peer {peer!r}")
        frame = encode(msg, self.limits, wire)
        try:
            entry[1].send(frame, _NOBLOCK)
        except zmq.Again:
            try:
                await asyncio.wait_for(entry[0].send(frame), self.send_timeout_s)
            except TimeoutError:
                raise PeerTimeout(
                    f"{self.name}: send to {peer!r} blocked for {self.send_timeout_s} s"
                ) from None
        nbytes = wire_size(len(frame))
        head = header_length(frame)
        self.meter.record(msg.KIND, msg.PLANE, self.name, peer, msg.slot, nbytes, head,
                          len(frame) - head)
        if self.keys is not None:
            self.curve_bytes += curve_extra(len(frame))
        if self.history is not None:
            self.history.row("s", msg.KIND, peer, msg.seq, msg.slot, nbytes)
        return nbytes

    async def recv(self, timeout_s: float) -> Message:
        """The next good message; raises PeerTimeout if none within ``timeout_s`` seconds."""
        inbox = self._inbox
        if inbox is None:
            raise PeerError(f"{self.name}: endpoint has no inbox")
        deadline = time.monotonic() + timeout_s
        woken = False
        while True:
            held = self._held
            if held and held[0][0] <= time.time_ns():
                return heapq.heappop(held)[2]
            # Woken by ZMQ_FD, read at once: most likely a message came (a failing NOBLOCK
            # recv processes libzmq's pending commands as ZMQ_EVENTS does). Otherwise poll
            # the inbox before waiting: after a recv, ZMQ_FD signals only new arrivals, and
            # the poll processes pending commands, which re-arms ZMQ_FD for the wait below.
            if woken or _zmq_poll(self._poll_items, 0):
                woken = False
                try:
                    msg = self._read(inbox)
                except zmq.Again:  # woken, but not by a message: poll and wait
                    continue
                if msg is not None:
                    return msg
                if time.monotonic() >= deadline:
                    raise PeerTimeout(f"{self.name}: no message within {timeout_s} s")
                await asyncio.sleep(0)  # a flood of bad frames must not starve other tasks
                continue
            now = time.monotonic()
            if now >= deadline:
                raise PeerTimeout(f"{self.name}: no message within {timeout_s} s")
            wake_at = deadline
            if held:
                wake_at = min(wake_at, now + (held[0][0] - time.time_ns()) * 1e-9)
            waiter = self._park(wake_at)
            try:
                await waiter
            except BaseException:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
                raise
            if self._inbox is None:
                raise PeerError(f"{self.name}: endpoint closed while receiving")
            woken = True

    def pending(self) -> bool:
        """Messages wait to be read: in the inbox, or held by a link and due."""
        held = self._held
        if held and held[0][0] <= time.time_ns():
            return True
        return self._inbox is not None and bool(_zmq_poll(self._poll_items, 0))

    def _park(self, wake_at: float) -> asyncio.Future[None]:
        """A future done when the inbox's ZMQ_FD signals, or at ``wake_at`` (time.monotonic())
        or earlier: the caller re-checks its own conditions."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._unwatch()
            loop.add_reader(self._fd, self._on_fd)  # stays registered: no churn per message
            self._loop = loop
        # One timer serves every wait: kept while it fires no later than this wait must end
        # (a recv with a long timeout does not re-arm it for each message).
        timer = self._timer
        if timer is None or self._timer_at > wake_at:
            if timer is not None:
                timer.cancel()
            self._timer = loop.call_later(max(wake_at - time.monotonic(), 0.0), self._on_timer)
            self._timer_at = wake_at
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        return waiter

    def _on_fd(self) -> None:
        if self._waiters:
            self._wake_all()  # the woken recv reads the inbox, which clears the fd
        elif self._inbox is not None:
            _zmq_poll(self._poll_items, 0)  # nobody waits: clear the fd ourselves

    def _on_timer(self) -> None:
        self._timer = None
        self._wake_all()

    def _wake_all(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _unwatch(self) -> None:
        if self._timer is not None:
            with contextlib.suppress(Exception):  # its loop may be closed
                self._timer.cancel()
            self._timer = None
        if self._loop is not None:
            with contextlib.suppress(Exception):  # the old loop may be closed
                self._loop.remove_reader(self._fd)
            self._loop = None

    def _read(self, inbox: zmq.Socket[bytes]) -> Message | None:
        """Read one message (the inbox said there is one) and accept it."""
        part = inbox.recv(_NOBLOCK, copy=False)  # a Frame: knows whether more parts follow
        if part.more:
            parts = 1
            while part.more:
                part = inbox.recv(_NOBLOCK, copy=False)
                parts += 1
            self._protocol_error(f"expected one frame per message, got {parts} parts")
            return None
        user_id = str(part.get("User-Id")) if self.keys is not None else None
        return self._accept(part.bytes, user_id)

    def _accept(self, frame: bytes, user_id: str | None = None) -> Message | None:
        """Decode one frame (``user_id``: the process its CURVE key belongs to); None when it
        is bad, lost or held."""
        try:
            msg = decode(frame, self.limits)
        except ProtocolError as e:
            self._protocol_error(str(e))
            return None
        if user_id is not None and msg.sender != user_id:
            self._protocol_error(f"{msg.KIND} says it is from {msg.sender[:40]!r}, but its "
                                 f"key is {user_id!r}'s")
            return None
        key = (msg.KIND, msg.sender)
        got = self.received.get(key)
        if got is None:
            got = self.received[key] = [0, 0]
        got[0] += 1
        nbytes = wire_size(len(frame))
        got[1] += nbytes
        if self.history is not None:
            self.history.row("r", msg.KIND, msg.sender, msg.seq, msg.slot, nbytes)
        links = self.links
        if links.models and msg.PLANE in links.planes:  # only emulated planes pay for it
            now = time.time_ns()
            msg, release_ns = links.arrive(msg, now)
            if release_ns > now:
                self._held_count += 1
                heapq.heappush(self._held, (release_ns, self._held_count, msg))
                return None
        return msg

    def _protocol_error(self, text: str) -> None:
        self.protocol_errors += 1
        self.last_protocol_error = text
        if worth_logging(count_reason(self.dropped, reason_of(text))):
            log.warning("%s: bad frame #%d dropped: %s", self.name, self.protocol_errors, text)

    # ------------------------------------------------------------------ lifetime

    def close(self, linger_s: float = 0.0) -> None:
        """Close every socket and remove the ipc file this endpoint bound.

        ``linger_s`` lets queued outgoing messages (a final report) leave first."""
        for peer in list(self._peers):
            entry = self._peers.pop(peer)
            entry[0].close(linger=int(linger_s * 1000))
        if self._inbox is not None:
            self._unwatch()
            self._wake_all()
            self._inbox.close(linger=0)
            self._inbox = None
        if self._ipc_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._ipc_path)
            self._ipc_path = None
        if self.history is not None:
            self.history.close()

    def __enter__(self) -> Endpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
