"""Find or start the MQTT broker for telemetry; loopback only.

``ensure_broker(preferred)`` returns ``(url, handle)``:

1. ``preferred`` given and accepting TCP connections: use it (nothing started);
2. else a ``mosquitto`` binary installed: start it from a temporary config with
   ``listener PORT 127.0.0.1`` (port 1883 when free, else a random free port);
3. else ``amqtt`` importable: start it in a child process
   (``python -m controller.deploy.broker --amqtt-port PORT``), bound to 127.0.0.1;
4. else ``(None, handle)``: telemetry is disabled, the run goes on.

``handle.stop()`` stops what was started (nothing for an external broker). A
broker started here never listens on a non-loopback address.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from protocols.telemetry import DEFAULT_PORT, broker_url, parse_broker_url

LOG = logging.getLogger("rrmbed.broker")

LOOPBACK = "127.0.0.1"
MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/bin/mosquitto", "/usr/local/sbin/mosquitto")
BrokerKind = Literal["external", "mosquitto", "amqtt", "none"]


@dataclass
class BrokerHandle:
    """What ``ensure_broker`` found or started; ``stop()`` undoes the starting."""

    url: str | None
    """Broker URL, ``mqtt://host:port``; None when no broker could be had."""
    kind: BrokerKind
    """``external`` (found running), ``mosquitto`` / ``amqtt`` (started here), ``none``."""
    process: subprocess.Popen[bytes] | None = None
    """The broker process started here, if any."""
    log_path: Path | None = None
    """Its stdout/stderr log, inside a temporary directory removed by ``stop()``."""
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Terminate a broker started here (SIGTERM, SIGKILL after ``timeout_s``); idempotent."""
        proc, self.process = self.process, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout_s)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def reachable(url: str, timeout_s: float = 0.5) -> bool:
    """Whether the broker URL's host:port accepts a TCP connection within ``timeout_s``."""
    try:
        host, port = parse_broker_url(url)
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False


def find_mosquitto() -> str | None:
    """Path of the mosquitto binary (PATH, then the Debian locations), or None."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((p for p in MOSQUITTO_PATHS if os.access(p, os.X_OK)), None)


def amqtt_available() -> bool:
    """Whether the embedded broker package ``amqtt`` can be imported."""
    return importlib.util.find_spec("amqtt") is not None


def ensure_broker(
    preferred: str | None,
    *,
    use_mosquitto: bool = True,
    use_amqtt: bool = True,
    start_timeout_s: float = 10.0,
) -> tuple[str | None, BrokerHandle]:
    """A usable broker URL and the handle that stops what was started (module docstring)."""
    if preferred is not None:
        if reachable(preferred):
            return preferred, BrokerHandle(url=preferred, kind="external")
        LOG.warning("MQTT broker %s is not reachable; starting a local one", preferred)
    starters: list[tuple[BrokerKind, list[str]]] = []
    mosquitto = find_mosquitto() if use_mosquitto else None
    if mosquitto is not None:
        starters.append(("mosquitto", [mosquitto, "-c", "{conf}"]))
    if use_amqtt and amqtt_available():
        starters.append(("amqtt", [sys.executable, "-m", "controller.deploy.broker",
                                  "--amqtt-port"]))
    for kind, argv in starters:
        for port in _candidate_ports():
            started = _start(kind, argv, port, start_timeout_s)
            if started is not None:
                LOG.info("started %s MQTT broker at %s", kind, started.url)
                return started.url, started
    LOG.warning("no MQTT broker available (no mosquitto, no amqtt): telemetry disabled")
    return None, BrokerHandle(url=None, kind="none")


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def _candidate_ports() -> list[int]:
    """1883 when free (so ``rrmbed watch`` finds it by default), then random free ports."""
    ports = [DEFAULT_PORT] if _port_free(DEFAULT_PORT) else []
    return ports + [_free_loopback_port() for _ in range(2)]


def _start(kind: BrokerKind, argv: list[str], port: int, timeout_s: float) -> BrokerHandle | None:
    tmp = tempfile.TemporaryDirectory(prefix=f"rrmbed-{kind}-")
    workdir = Path(tmp.name)
    log_path = workdir / "broker.log"
    if kind == "mosquitto":
        conf = workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {port} {LOOPBACK}\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "log_dest stderr\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
        )
        cmd = [a.replace("{conf}", str(conf)) for a in argv]
    else:
        cmd = [*argv, str(port)]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    handle = BrokerHandle(
        url=broker_url(LOOPBACK, port), kind=kind, process=proc, log_path=log_path, _tmp=tmp
    )
    deadline = time.monotonic() + timeout_s
    while not reachable(handle.url or "", timeout_s=0.2):
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = log_path.read_text(errors="replace")[-1000:]
            LOG.warning("%s on port %d did not start: %s", kind, port, tail)
            handle.stop()
            return None
        time.sleep(0.02)
    return handle


# --------------------------------------------------------------------------- embedded broker


async def _serve_amqtt(port: int) -> None:
    from amqtt.broker import Broker  # optional dependency, child process only

    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"{LOOPBACK}:{port}"}},
        "plugins": {
            "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
        },
    }
    broker = Broker(config)
    await broker.start()
    try:
        await asyncio.Event().wait()  # until SIGTERM / SIGINT
    finally:
        await broker.shutdown()


def _amqtt_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="embedded amqtt broker on 127.0.0.1")
    parser.add_argument("--amqtt-port", type=int, required=True)
    args = parser.parse_args(argv)
    import signal

    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_amqtt(args.amqtt_port))
    return 0


if __name__ == "__main__":
    sys.exit(_amqtt_main())
