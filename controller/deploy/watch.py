"""``rrmbed watch``: a live table of every process's telemetry, read from MQTT.

Subscribes to ``rrmbed/#`` (or ``rrmbed/<run>/#``) on the broker and keeps one
row per (run, role, id): its status, latest metrics and the age of its last
message. The state (``WatchState``) and the table (``render_table``) are plain
functions of the messages received; ``watch`` is the thin async shell around
them, reconnecting with backoff if the broker goes away.

A run's broker lets in only its users: ``--keys DIR`` logs in as ``watch`` with the
password in ``DIR/watch.password`` (read-only access to ``rrmbed/#``); without it,
``watch`` connects anonymously, which only an ``--insecure`` run's broker accepts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from controller.deploy.broker import watch_login
from protocols.telemetry import (
    DEFAULT_PORT,
    JsonScalar,
    MqttLogin,
    broker_url,
    decode_metrics,
    parse_broker_url,
    parse_topic,
    subscription,
)

DEFAULT_BROKER = os.environ.get("RRMBED_BROKER", broker_url("127.0.0.1", DEFAULT_PORT))
STATUS_STYLE = {"starting": "yellow", "running": "green", "done": "blue", "lost": "bold red"}


@dataclass
class Row:
    """What is known of one publishing process."""

    run: str
    """Run name."""
    role: str
    """Process role."""
    ident: str
    """Process id within its role."""
    status: str = "?"
    """Last status text received ("?" before any)."""
    metrics: dict[str, JsonScalar] = field(default_factory=dict)
    """Last metrics object received."""
    last_seen: float = 0.0
    """``time.monotonic()`` of the last message for this process (s)."""


@dataclass
class WatchState:
    """Every row seen so far, and message counters."""

    rows: dict[tuple[str, str, str], Row] = field(default_factory=dict)
    """Rows keyed by (run, role, id)."""
    received: int = 0
    """Telemetry messages applied."""
    rejected: int = 0
    """Messages ignored: foreign topic, or a metrics payload that is not a JSON object."""
    connected: bool = False
    """Whether the watcher's broker connection is up."""
    connection_failures: int = 0
    """Failed or lost broker connections of the watcher."""
    last_error: str = ""
    """Why the last connection failed or ended ("": none yet), e.g. a refused login."""

    def apply(self, topic: str, payload: bytes, now: float) -> bool:
        """Fold one message in (``now``: monotonic seconds); False if it was rejected."""
        parts = parse_topic(topic)
        if parts is None:
            self.rejected += 1
            return False
        metrics: dict[str, JsonScalar] | None = None
        if parts.kind == "metrics":
            try:
                metrics = decode_metrics(payload)
            except ValueError:
                self.rejected += 1
                return False
        key = (parts.run, parts.role, parts.ident)
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = Row(parts.run, parts.role, parts.ident)
        if metrics is None:
            row.status = payload.decode("utf-8", errors="replace")
        else:
            row.metrics = metrics
            if row.status in ("?", "starting"):
                row.status = "running"
        row.last_seen = now
        self.received += 1
        return True


def _num(value: JsonScalar, fmt: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    return format(value, fmt)


def _bytes(value: JsonScalar) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024.0 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024.0
    return "-"  # unreachable


def render_table(state: WatchState, now: float, title: str = "rrmbed telemetry") -> Table:
    """The live table: one row per process, sorted by run, role, id."""
    link = "connected" if state.connected else "not connected"
    if not state.connected and state.last_error:
        link += f": {state.last_error}"
    table = Table(title=f"{title} ({link}, {state.received} msgs)", expand=False)
    for name in ("run", "role/id", "status", "slots", "sum-rate b/s/Hz", "backhaul"):
        table.add_column(name, justify="left" if name in ("run", "role/id", "status") else "right")
    for name in ("p50/p99 ms", "misses", "age s"):
        table.add_column(name, justify="right")
    for key in sorted(state.rows):
        row = state.rows[key]
        m = row.metrics
        lat = f"{_num(m.get('latency_ms_p50'), '.2f')}/{_num(m.get('latency_ms_p99'), '.2f')}"
        table.add_row(
            row.run,
            f"{row.role}/{row.ident}",
            Text(row.status, style=STATUS_STYLE.get(row.status, "")),
            _num(m.get("slots_done"), "d"),
            _num(m.get("sum_rate_bps_hz"), ".3f"),
            _bytes(m.get("backhaul_bytes")),
            lat,
            _num(m.get("deadline_misses"), "d"),
            f"{max(0.0, now - row.last_seen):.1f}",
        )
    return table


def _payload_bytes(payload: object) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return b"" if payload is None else str(payload).encode()


async def _receive(
    host: str, port: int, topic: str, state: WatchState, connect_timeout_s: float,
    login: MqttLogin | None,
) -> None:
    backoff = 0.2
    while True:
        try:
            async with aiomqtt.Client(
                host, port, identifier=f"rrmbed-watch-{os.getpid()}-{secrets.token_hex(8)}",
                timeout=connect_timeout_s,
                username=None if login is None else login.username,
                password=None if login is None else login.password,
            ) as client:
                await client.subscribe(topic, qos=1)
                state.connected, backoff = True, 0.2
                async for message in client.messages:
                    payload = _payload_bytes(message.payload)
                    state.apply(str(message.topic), payload, time.monotonic())
        except aiomqtt.MqttError as exc:  # broker gone, not up yet, or refused: shown, retried
            state.connection_failures += 1
            state.last_error = str(exc) or type(exc).__name__
        state.connected = False
        await asyncio.sleep(backoff)
        backoff = min(2.0 * backoff, 5.0)


async def watch(
    broker_url: str,
    run: str | None = None,
    duration_s: float | None = None,
    *,
    console: Console | None = None,
    refresh_s: float = 0.25,
    connect_timeout_s: float = 2.0,
    login: MqttLogin | None = None,
) -> WatchState:
    """Show the live table until ``duration_s`` passes (forever if None); the final state.

    ``login``: credentials for the broker (``watch``'s, :func:`watch_login`); None:
    anonymous."""
    host, port = parse_broker_url(broker_url)
    topic = subscription(run)
    state = WatchState()
    title = f"rrmbed telemetry {broker_url} {topic}"

    def frame() -> Table:
        return render_table(state, time.monotonic(), title)

    with Live(frame(), console=console, auto_refresh=False) as live:

        async def refresh() -> None:
            while True:
                live.update(frame(), refresh=True)
                await asyncio.sleep(refresh_s)

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(duration_s), asyncio.TaskGroup() as tasks:
                tasks.create_task(refresh(), name="watch-refresh")
                tasks.create_task(
                    _receive(host, port, topic, state, connect_timeout_s, login),
                    name="watch-receive",
                )
        live.update(frame(), refresh=True)
    return state


def main(broker: str | None = None, run: str | None = None, duration: float | None = None,
         keys: Path | None = None) -> int:
    """Entry point of ``rrmbed watch [--broker URL] [--run NAME] [--duration S]
    [--keys DIR]``; exit code."""
    url = broker or DEFAULT_BROKER
    try:
        parse_broker_url(url)
        subscription(run)
        login = None if keys is None else watch_login(keys)
    except ValueError as exc:  # a bad URL or run name; no watch password (a KeysError)
        print(f"rrmbed watch: {exc}", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(watch(url, run, duration, login=login))
    return 0
