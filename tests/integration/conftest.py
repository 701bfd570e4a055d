"""Fixtures for integration tests (real processes, real sockets, loopback only)."""

from __future__ import annotations

# --------------------------------------------------------------------------- mosquitto
# A real mosquitto broker (Debian package) on a random free loopback port. The
# binary is installed with apt-get when missing and the tests run as root;
# otherwise the fixture fails with instructions (it never skips).
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

MOSQUITTO_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/bin/mosquitto", "/usr/local/sbin/mosquitto")


def _find_mosquitto() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((p for p in MOSQUITTO_CANDIDATES if os.access(p, os.X_OK)), None)


def _install_mosquitto() -> str:
    if os.geteuid() != 0:
        pytest.fail(
            "mosquitto is not installed and the tests do not run as root, so they cannot "
            "install it: run `sudo apt-get install -y mosquitto` and run the tests again"
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", "mosquitto"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:  # stale package lists: refresh once and retry
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=600)
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    binary = _find_mosquitto()
    if done.returncode != 0 or binary is None:
        pytest.fail(f"apt-get install mosquitto failed (rc {done.returncode}):\n{done.stderr}")
    return binary


def free_loopback_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, timeout_s: float = 0.2) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s):
            return True
    except OSError:
        return False


class Mosquitto:
    """One mosquitto process on 127.0.0.1:port; restartable on the same port."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = free_loopback_port()
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0) -> None:
        """Start it and return once it accepts connections."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "log_dest stderr\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
        )
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout_s
        while not port_open(self.port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"mosquitto not ready in {timeout_s} s")
            time.sleep(0.01)

    def kill(self) -> None:
        """SIGKILL, without waiting: the broker vanishes as a crashed host would."""
        assert self.proc is not None
        self.proc.kill()

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL after 5 s) and reap it."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def restart(self) -> None:
        """Stop (if needed) and start again on the same port."""
        self.stop()
        self.start()


@pytest.fixture(scope="session")
def mosquitto_binary() -> str:
    """Path of the mosquitto binary, installed with apt-get if missing (as root)."""
    return _find_mosquitto() or _install_mosquitto()


@pytest.fixture
def mosquitto(mosquitto_binary: str, tmp_path: Path) -> Iterator[Mosquitto]:
    """A running mosquitto on a random loopback port, stopped after the test."""
    broker = Mosquitto(mosquitto_binary, tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


# --------------------------------------------------------------------------- end mosquitto
