"""What several test files share and that is a plain value or function rather than a fixture:
the repository's paths, the ``rrmbed`` CLI as a subprocess, run directories and their CSV
files, process checks, loopback ports and a mosquitto broker process.

A plain module, not a test module: test files import from here (``from tests.helpers import
...``) and never from one another. Fixtures live in ``tests/conftest.py`` (and the mosquitto
fixtures in ``tests/integration/conftest.py``).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
"""The repository (the folder holding pyproject.toml)."""
SCENARIOS = ROOT / "scenarios"
S3 = SCENARIOS / "3cell-k2.toml"
S7 = SCENARIOS / "7cell-k8.toml"
SV = SCENARIOS / "v2x-manhattan.toml"
SD = SCENARIOS / "d2d-n10.toml"


# --------------------------------------------------------------------------- the CLI


def rrmbed_argv(*args: str) -> list[str]:
    """The command line of ``rrmbed ARGS`` with this interpreter (run it with cwd=ROOT)."""
    return [sys.executable, "-m", "controller.cli", *args]


def rrmbed(*args: str, timeout: float = 240,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``rrmbed ARGS`` in the repository to the end; output captured as text."""
    return subprocess.run(rrmbed_argv(*args), cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


Spawn = Callable[..., "subprocess.Popen[str]"]
"""The ``spawn`` fixture (tests/conftest.py): ``spawn(*args, env=None)`` starts ``rrmbed ARGS``
in the background and returns its Popen (text pipes)."""


def run_dir(tmp: Path, scenario: Path, scheme: str, runner: str, slots: int, seed: int,
            *extra: str) -> Path:
    """``rrmbed run`` into ``tmp/<scheme>-<runner>``, which it returns; the run must succeed."""
    out = tmp / f"{scheme}-{runner}"
    r = rrmbed("run", str(scenario), "--scheme", scheme, "--runner", runner, "--slots",
               str(slots), "--seed", str(seed), "--out", str(out), *extra)
    assert r.returncode == 0, r.stdout + r.stderr
    return out


# --------------------------------------------------------------------------- run directories


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV file as text (no float parsing: comparisons are byte for byte)."""
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def metrics(out: Path) -> list[dict[str, str]]:
    """The per-slot rows of a run directory's metrics.csv."""
    return read_csv(out / "metrics.csv")


# --------------------------------------------------------------------------- processes


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purpose
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


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
    """One mosquitto process on 127.0.0.1:port; restartable on the same port.

    The ``mosquitto`` fixture (tests/integration/conftest.py) finds or installs the binary
    and stops the broker after the test.
    """

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


def wait_for_slot(proc: subprocess.Popen[str], out: Path, slot: int,
                  timeout_s: float = 90.0) -> dict[str, int]:
    """Wait until the network run ``proc`` writing ``out`` has played ``slot`` slots (its
    status.json); the pids of its processes (processes.json)."""
    status = out / "status.json"
    deadline = time.monotonic() + timeout_s
    while not (status.exists() and json.loads(status.read_text())["slots_done"] >= slot):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"the run never reached slot {slot}"
        time.sleep(0.02)
    pids: dict[str, int] = json.loads((out / "processes.json").read_text())
    return pids


@contextlib.contextmanager
def small_disk(folder: Path, size: str = "256k") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``folder`` for the block (a full disk on demand;
    mounting needs root, which CI has: elsewhere the test is skipped, saying why)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                   check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def seeded_weights(path: Path, scheme: str, scenario: Path, seed: int) -> Path:
    """A weights file at ``path``: ``scheme``'s untrained policy on ``scenario`` for ``seed``."""
    from channel_server.config import load_scenario
    from node.agent import policy_config
    from node.policy import save_weights, seeded_policy

    cfg = policy_config(scheme, load_scenario(scenario))
    assert cfg is not None
    save_weights(path, seeded_policy(cfg, seed))
    return path
