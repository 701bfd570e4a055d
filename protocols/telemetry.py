"""Live MQTT telemetry: every process publishes its status and a few metrics.

Topic scheme (``<run>``, ``<role>`` and ``<id>`` are single MQTT topic levels: no
``/``, ``+``, ``#`` and not empty)::

    rrmbed/<run>/<role>/<id>/status    retained, QoS 1, UTF-8 text, one of
                                       "starting"  connected, no metrics yet
                                       "running"   metrics have been reported
                                       "done"      closed cleanly
                                       "lost"      the broker's last will: the
                                                   connection died without a
                                                   clean disconnect
    rrmbed/<run>/<role>/<id>/metrics   not retained, QoS 0, a JSON object:
                                       slots_done       slots completed (count)
                                       sum_rate_bps_hz  moving mean of the sum-rate (bit/s/Hz)
                                       backhaul_bytes   backhaul bytes written so far (bytes)
                                       latency_ms_p50   median decision-chain latency (ms)
                                       latency_ms_p99   99th percentile of it (ms)
                                       deadline_misses  decisions past the slot deadline (count)
                                       t_wall           publisher's wall clock at publication
                                                        (Unix time, s)
                                       plus any other key the publisher passed to update().
                                       Non-finite numbers travel as null.

Telemetry is optional and must never hurt a run: ``Telemetry`` stores the latest
values in ``update()`` (synchronous, O(1)) and a background task publishes them
every ``period_s``. A broker that is down at start or disappears mid-run only
costs dropped samples: connection attempts run in the background with
exponential backoff, a TCP probe with a short timeout comes first (so a black-holed
host never parks a thread in a blocking connect), every publish has a timeout, and
failures are counted (``published``, ``dropped``, ``reconnects``), never raised.
Telemetry is not metered by the overhead meter (plane ``telemetry``).

Authentication: a publisher given an ``MqttLogin`` connects with that user name and
password (a process of a run with keys: its name and :func:`protocols.keys.mqtt_password`);
the broker's ACL lets each user write only its own ``rrmbed/+/<role>/<id>/#``
(:func:`process_levels`). Its MQTT client id carries 128 random bits, so another client,
even one with valid credentials, cannot guess it to take the connection over.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import numbers
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final
from urllib.parse import urlsplit

import aiomqtt

LOG = logging.getLogger("rrmbed.telemetry")

TOPIC_ROOT: Final = "rrmbed"
STATUS_STARTING: Final = "starting"
STATUS_RUNNING: Final = "running"
STATUS_DONE: Final = "done"
STATUS_LOST: Final = "lost"
STATUSES: Final = (STATUS_STARTING, STATUS_RUNNING, STATUS_DONE, STATUS_LOST)
METRIC_FIELDS: Final = (
    "slots_done",
    "sum_rate_bps_hz",
    "backhaul_bytes",
    "latency_ms_p50",
    "latency_ms_p99",
    "deadline_misses",
    "t_wall",
)
DEFAULT_PORT: Final = 1883

JsonScalar = bool | int | float | str | None


# --------------------------------------------------------------------------- pure helpers


def parse_broker_url(url: str) -> tuple[str, int]:
    """``(host, port)`` of ``mqtt://host:port``, ``tcp://host:port``, ``host:port`` or ``host``.

    Raises ``ValueError`` for another scheme, a missing host or a bad port.
    """
    text = url.strip()
    if "://" not in text:
        text = "mqtt://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("mqtt", "tcp"):
        raise ValueError(f"unsupported broker URL scheme {parts.scheme!r} in {url!r}")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"bad port in broker URL {url!r}") from exc
    if not parts.hostname:
        raise ValueError(f"no host in broker URL {url!r}")
    return parts.hostname, DEFAULT_PORT if port is None else port


def broker_url(host: str, port: int) -> str:
    """The canonical ``mqtt://host:port`` URL."""
    return f"mqtt://{host}:{port}"


def check_level(name: str, what: str) -> str:
    """``name`` if it is usable as one topic level, else ``ValueError``."""
    if not name or any(c in name for c in "/+#\0"):
        raise ValueError(f"{what} {name!r} must be non-empty without '/', '+', '#' or NUL")
    return name


def status_topic(run: str, role: str, ident: str) -> str:
    """``rrmbed/<run>/<role>/<id>/status``."""
    return f"{TOPIC_ROOT}/{run}/{role}/{ident}/status"


def metrics_topic(run: str, role: str, ident: str) -> str:
    """``rrmbed/<run>/<role>/<id>/metrics``."""
    return f"{TOPIC_ROOT}/{run}/{role}/{ident}/metrics"


def process_levels(process: str) -> tuple[str, str]:
    """The ``(<role>, <id>)`` topic levels process ``process`` publishes under.

    ``node-3`` -> (``node``, ``3``), ``vehicle-0`` -> (``vehicle``, ``0``); a process
    without an index (``controller``, ``channel-server``) -> (its name, ``0``).
    """
    role, sep, index = process.rpartition("-")
    if sep and role and index.isdigit():
        return check_level(role, "role"), index
    return check_level(process, "process"), "0"


def subscription(run: str | None) -> str:
    """The topic filter for every telemetry topic, or those of one run."""
    return f"{TOPIC_ROOT}/#" if run is None else f"{TOPIC_ROOT}/{check_level(run, 'run')}/#"


@dataclass(frozen=True)
class TopicParts:
    """A parsed telemetry topic."""

    run: str
    """Run name."""
    role: str
    """Process role (``bs``, ``vehicle``, ``controller``, ...)."""
    ident: str
    """Process id within its role."""
    kind: str
    """``status`` or ``metrics``."""


def parse_topic(topic: str) -> TopicParts | None:
    """The parts of a telemetry topic, or None for any other topic."""
    levels = topic.split("/")
    if len(levels) != 5 or levels[0] != TOPIC_ROOT or levels[4] not in ("status", "metrics"):
        return None
    if not all(levels[1:4]):
        return None
    return TopicParts(run=levels[1], role=levels[2], ident=levels[3], kind=levels[4])


def _json_scalar(value: object) -> JsonScalar:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        f = float(value)
        return f if math.isfinite(f) else None
    return str(value)


def encode_metrics(values: Mapping[str, object], t_wall: float) -> bytes:
    """The JSON payload of a metrics message (``t_wall`` in Unix seconds).

    Known fields come first in ``METRIC_FIELDS`` order; numpy scalars become plain
    numbers, non-finite numbers null, anything else its ``str``.
    """
    out: dict[str, JsonScalar] = {}
    for key in METRIC_FIELDS:
        if key in values:
            out[key] = _json_scalar(values[key])
    for key, value in values.items():
        if key not in out:
            out[str(key)] = _json_scalar(value)
    out["t_wall"] = _json_scalar(t_wall)
    return json.dumps(out, separators=(",", ":"), allow_nan=False).encode()


def decode_metrics(payload: bytes | bytearray | str) -> dict[str, JsonScalar]:
    """The object of a metrics payload; ``ValueError`` if it is not a flat JSON object."""
    try:
        obj = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"metrics payload is not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise ValueError("metrics payload is not a JSON object")
    out: dict[str, JsonScalar] = {}
    for key, value in obj.items():
        if not (value is None or isinstance(value, bool | int | float | str)):
            raise ValueError(f"metrics field {key!r} is not a scalar")
        out[key] = value
    return out


# --------------------------------------------------------------------------- publisher


@dataclass(frozen=True)
class MqttLogin:
    """The user name and password an MQTT client logs in with."""

    username: str
    """User name: a process's name (``node-0``, ``controller``, ...) or ``watch``."""
    password: str = field(repr=False)
    """Its password (never shown in a repr)."""


@dataclass(frozen=True)
class TelemetryTiming:
    """Timeouts and backoff of the telemetry publisher."""

    connect_timeout_s: float = 1.0
    """Limit on the TCP probe and on waiting for the broker's CONNACK (s)."""
    publish_timeout_s: float = 0.5
    """Limit on one publish (s); a publish that passes it is dropped."""
    backoff_initial_s: float = 0.2
    """Delay before the second connection attempt after a failure (s)."""
    backoff_max_s: float = 5.0
    """Cap of the doubling backoff between connection attempts (s)."""
    keepalive_s: int = 10
    """MQTT keepalive; a silent dead connection is noticed within 1.5x this (s)."""
    close_timeout_s: float = 2.0
    """Limit on ``close()``, final publications and DISCONNECT included (s)."""


class Telemetry:
    """Publishes one process's status and latest metrics to MQTT, in the background.

    ``broker_url`` None disables it: every method is then a cheap no-op and no task
    is started. ``login``: the user name and password to connect with (None:
    anonymous). Use from the event loop's thread (``update`` from any coroutine or
    plain function running on it).
    """

    def __init__(
        self,
        broker_url: str | None,
        run: str,
        role: str,
        ident: str,
        period_s: float = 1.0,
        *,
        timing: TelemetryTiming = TelemetryTiming(),
        login: MqttLogin | None = None,
    ) -> None:
        if not period_s > 0:
            raise ValueError(f"period_s must be > 0, got {period_s}")
        self.run = check_level(run, "run")
        self.role = check_level(role, "role")
        self.ident = check_level(ident, "ident")
        self.period_s = float(period_s)
        self.timing = timing
        self.login = login
        """Credentials for the broker; None connects anonymously."""
        self.client_id = f"rrmbed-{run}-{role}-{ident}-{os.getpid()}-{secrets.token_hex(16)}"
        """MQTT client id: readable prefix, 128 random bits (module docstring)."""
        self._refusal_logged = False
        self._address = None if broker_url is None else parse_broker_url(broker_url)
        self._status_topic = status_topic(run, role, ident)
        self._metrics_topic = metrics_topic(run, role, ident)
        self._latest: dict[str, object] = {}
        self._status = STATUS_STARTING
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._closing = False
        self._connected = False
        self._connections = 0
        self.published = 0
        """Metrics messages handed to the broker connection."""
        self.dropped = 0
        """Metrics samples due but not published (no connection, timeout, error)."""
        self.reconnects = 0
        """Successful connections after the first one."""

    @property
    def enabled(self) -> bool:
        """False when constructed with ``broker_url`` None."""
        return self._address is not None

    @property
    def connected(self) -> bool:
        """Whether a broker connection is currently up."""
        return self._connected

    @property
    def running(self) -> bool:
        """Whether the background task exists and has not finished."""
        return self._task is not None and not self._task.done()

    def update(self, **metrics: object) -> None:
        """Store the latest values (see the module docstring for field names).

        O(number of keywords); never blocks, never raises; publication happens in
        the background at the next period.
        """
        self._latest.update(metrics)
        self._status = STATUS_RUNNING

    async def start(self) -> None:
        """Spawn the background publisher (no-op when disabled or already started)."""
        if self._address is None or self._task is not None:
            return
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(
            self._run(self._address, self._wake), name=f"telemetry-{self.role}-{self.ident}"
        )
        self._task.add_done_callback(_report_crash)

    async def close(self) -> None:
        """Publish the last metrics and status "done", disconnect, stop the task.

        Takes at most ``timing.close_timeout_s``; past it the task is cancelled
        (the broker then publishes the will, "lost").
        """
        task, wake = self._task, self._wake
        if task is None or wake is None:
            return
        self._closing = True
        wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), self.timing.close_timeout_s)
        except TimeoutError:
            LOG.warning("telemetry %s/%s: close timed out, cancelling", self.role, self.ident)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._connected = False

    async def __aenter__(self) -> Telemetry:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ----------------------------------------------------------------- background task

    async def _run(self, address: tuple[str, int], wake: asyncio.Event) -> None:
        """Connect with backoff, publish status on change and metrics every period.

        ``wake`` is set by ``close()`` and by a session's loss watcher; the flags
        (``_closing``, ``session.lost``) say which.
        """
        loop = asyncio.get_running_loop()
        timing = self.timing
        backoff = timing.backoff_initial_s
        next_connect = loop.time()
        next_tick = loop.time() + self.period_s
        session: _Session | None = None
        sent_status: str | None = None
        try:
            while not self._closing:
                if session is not None and session.lost:
                    await self._disconnect(session)
                    session, next_connect = None, loop.time()
                if session is None and loop.time() >= next_connect:
                    session = await self._connect(address, wake)
                    if session is None:
                        next_connect = loop.time() + backoff
                        backoff = min(2.0 * backoff, timing.backoff_max_s)
                    else:
                        backoff = timing.backoff_initial_s
                        sent_status = None
                if session is not None and sent_status != self._status:
                    status = self._status
                    if await self._publish(session, self._status_topic, status, 1, True):
                        sent_status = status
                now = loop.time()
                if now >= next_tick:
                    next_tick += self.period_s
                    if next_tick <= now:  # fell behind: no burst of catch-up samples
                        next_tick = now + self.period_s
                    payload = self._payload()
                    if payload is None:
                        pass  # nothing reported yet
                    elif session is not None and await self._publish(
                        session, self._metrics_topic, payload, 0, False
                    ):
                        self.published += 1
                    else:
                        self.dropped += 1
                if session is not None and not session.lost:
                    wake_at = next_tick
                else:
                    wake_at = min(next_tick, next_connect)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), max(0.0, wake_at - loop.time()))
                wake.clear()
            if session is not None and not session.lost:
                payload = self._payload()
                if payload is not None and await self._publish(
                    session, self._metrics_topic, payload, 0, False
                ):
                    self.published += 1
                await self._publish(session, self._status_topic, STATUS_DONE, 1, True)
        finally:
            if session is not None:
                await self._disconnect(session)

    async def _connect(self, address: tuple[str, int], wake: asyncio.Event) -> _Session | None:
        host, port = address
        timeout = self.timing.connect_timeout_s
        try:  # cheap, cancellable probe: aiomqtt's own connect runs in a thread
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        except (OSError, TimeoutError):
            return None
        writer.close()
        stack = contextlib.AsyncExitStack()
        login = self.login
        client = aiomqtt.Client(
            host,
            port,
            username=None if login is None else login.username,
            password=None if login is None else login.password,
            identifier=self.client_id,
            will=aiomqtt.Will(self._status_topic, STATUS_LOST, qos=1, retain=True),
            timeout=timeout,
            keepalive=self.timing.keepalive_s,
            max_queued_outgoing_messages=64,
        )
        try:
            await stack.enter_async_context(client)
        except (aiomqtt.MqttError, OSError) as exc:
            await stack.aclose()
            if isinstance(exc, aiomqtt.MqttCodeError) and not self._refusal_logged:
                self._refusal_logged = True  # once: it retries with backoff, silently
                LOG.warning("telemetry %s/%s: broker %s:%d refused the connection (%s)",
                            self.role, self.ident, host, port, exc)
            return None
        self._connections += 1
        if self._connections > 1:
            self.reconnects += 1
        self._connected = True
        LOG.info("telemetry %s/%s connected to %s:%d", self.role, self.ident, host, port)
        watcher = asyncio.create_task(
            _await_loss(client, wake), name=f"telemetry-{self.role}-{self.ident}-link"
        )
        return _Session(client, stack, watcher)

    async def _publish(
        self, session: _Session, topic: str, payload: str | bytes, qos: int, retain: bool
    ) -> bool:
        """Publish, giving up at the timeout or as soon as the connection is lost."""
        if session.lost:
            return False
        publish = asyncio.ensure_future(
            session.client.publish(
                topic, payload, qos=qos, retain=retain, timeout=self.timing.publish_timeout_s
            )
        )
        await asyncio.wait((publish, session.watcher), return_when=asyncio.FIRST_COMPLETED)
        if not publish.done():  # connection lost first
            publish.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await publish
            return False
        exc = publish.exception()
        if exc is not None:
            level = logging.DEBUG if isinstance(exc, aiomqtt.MqttError) else logging.WARNING
            LOG.log(level, "telemetry publish to %s failed: %r", topic, exc)
            return False
        return True

    def _payload(self) -> bytes | None:
        if not self._latest:
            return None
        try:
            return encode_metrics(self._latest, time.time())
        except (TypeError, ValueError) as exc:  # e.g. a value whose str() fails
            LOG.warning("telemetry metrics not encodable: %s", exc)
            return encode_metrics({}, time.time())

    async def _disconnect(self, session: _Session) -> None:
        if self._connected:
            LOG.info("telemetry %s/%s disconnected", self.role, self.ident)
        self._connected = False
        session.watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await session.watcher
        try:
            await asyncio.wait_for(session.stack.aclose(), self.timing.close_timeout_s)
        except (aiomqtt.MqttError, OSError, TimeoutError) as exc:
            LOG.debug("telemetry disconnect: %s", exc)


def _report_crash(task: asyncio.Task[None]) -> None:
    """Log a publisher task that died of a bug (close() re-raises it as well)."""
    if not task.cancelled() and task.exception() is not None:
        LOG.error("telemetry task %s crashed", task.get_name(), exc_info=task.exception())


async def _await_loss(client: aiomqtt.Client, wake: asyncio.Event) -> None:
    """Return when the connection is lost (public API: the message iterator ends with
    ``MqttError`` on disconnection; nothing is subscribed, so no message arrives)."""
    with contextlib.suppress(aiomqtt.MqttError):
        async for _ in client.messages:
            pass
    wake.set()


@dataclass(frozen=True)
class _Session:
    client: aiomqtt.Client
    stack: contextlib.AsyncExitStack
    watcher: asyncio.Task[None]

    @property
    def lost(self) -> bool:
        return self.watcher.done()
