"""Fixtures for integration tests (real processes, real sockets, loopback only); the
broker process itself is :class:`tests.helpers.Mosquitto`."""

from __future__ import annotations

# --------------------------------------------------------------------------- mosquitto
# A real mosquitto broker (Debian package) on a random free loopback port. The
# binary is installed with apt-get when missing and the tests run as root;
# otherwise the fixture fails with instructions (it never skips).
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import Mosquitto

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
