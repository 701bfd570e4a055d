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
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from protocols import messages as m

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


def sh(cmd: list[str], timeout: float = 300, env: dict[str, str] | None = None,
       cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` to the end, output captured as text (docker and other tools)."""
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=cwd)


def tail(text: str, lines: int = 40) -> str:
    """The last ``lines`` lines of ``text`` (for assertion messages)."""
    return "\n".join(text.strip().splitlines()[-lines:])


def dockerd_without_iptables() -> bool:
    """Whether the running dockerd was started with ``--iptables=false`` (no embedded DNS,
    no overlay network)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"dockerd") and b"--iptables=false" in argv:
            return True
    return False


def readme_section(heading: str) -> str:
    """The text of the README's ``### <heading>...`` subsection, up to the next heading."""
    text = (ROOT / "README.md").read_text()
    found = re.search(rf"^### {re.escape(heading)}[^\n]*\n(.*?)(?=^##|\Z)", text, re.M | re.S)
    assert found, f"README has no ### {heading} section"
    return found.group(1)


def python_example(section: str) -> str:
    """The first ```python block of a README section."""
    found = re.search(r"^```python\n(.*?)^```", section, re.M | re.S)
    assert found, "that README section has no python example"
    return found.group(1)


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
    from node.policy_spec import policy_view

    sc = load_scenario(scenario)
    cfg = policy_config(scheme, sc)
    assert cfg is not None  # it sees the radio as the scenario does (a weights check)
    save_weights(path, seeded_policy(cfg, seed),
                 **{k: np.array(v) for k, v in policy_view(sc.radio).items()})
    return path


def mpgnn_weights_file(tmp: Path, n_layers: int, seed: int = 0) -> tuple[Path, Any]:
    """A weights file of an MPGNN with random weights (IGCNet's widths) and ``n_layers``
    layers in ``tmp``, and the network as node.mpgnn reads it."""
    from node.mpgnn import Mpgnn
    from protocols.weights import WeightsArtifact

    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {"mpgnn.n_layers": np.array(n_layers)}
    for name, i, o in (("mpgnn.mlp1.0", 4, 16), ("mpgnn.mlp1.2", 16, 32),
                       ("mpgnn.mlp2.0", 34, 16), ("mpgnn.mlp2.2", 16, 1)):
        arrays[f"{name}.weight"] = rng.normal(size=(o, i)) * 0.5
        arrays[f"{name}.bias"] = rng.normal(size=o) * 0.1
    path = tmp / f"mpgnn-{n_layers}.npz"
    WeightsArtifact.create(arrays, scheme="mpgnn", kind="interference", algo="mpgnn",
                           steps=0, dims={}).save(path)
    return path, Mpgnn.from_arrays(arrays)



# --------------------------------------------------------------------------- messages

EXAMPLE_HEADER: dict[str, Any] = {
    "sender": "node-3",
    "seq": 17,
    "slot": 42,
    "sent_ns": 1_700_000_000_123_456_789,
    "chain_latency_s": 0.00125,
}
"""A message header for the examples below."""
_RNG = np.random.default_rng(7)

_HDR = EXAMPLE_HEADER

MESSAGE_EXAMPLES: dict[type[m.Message], Callable[[], m.Message]] = {
    m.Hello: lambda: m.Hello("node", 3, 4242, "tcp://10.0.0.3:5555", **_HDR),
    m.Start: lambda: m.Start(
        "round_robin",
        1000,
        12345,
        'name = "x"\n[radio]\nnum_bs = 3\n',
        {"train": True, "lr": 1e-3, "layers": [64, 64], "nested": {"k": None, "b": b"\x00"}},
        **_HDR,
    ),
    m.Stop: lambda: m.Stop("finished", **_HDR),
    m.Heartbeat: lambda: m.Heartbeat(**_HDR),
    m.Beat: lambda: m.Beat([["link", "run", "transmit", "air", "node-0", "channel-server", 3, 240]],
                           **_HDR),
    m.Leave: lambda: m.Leave(1, **_HDR),
    m.ExperienceAck: lambda: m.ExperienceAck(5, **_HDR),
    m.Done: lambda: m.Done(1000, **_HDR),
    m.Report: lambda: m.Report(
        [
            ["link", "power_forward", "backhaul", "node-0", "node-1", 10, 5590],
            ["slot", 0, "air", 3, 99],
        ],
        {"protocol_errors": 0, "misses": 2, "mean_latency_s": 0.0031},
        **_HDR,
    ),
    m.Error: lambda: m.Error("Traceback: boom ü", **_HDR),
    m.SlotOutcome: lambda: m.SlotOutcome(
        _RNG.random((3, 2)),
        _RNG.random((3, 2)) * 5,
        12.5,
        np.array([0.001, 0.002, np.inf]),
        np.array([False, False, True]),
        [2],
        0.0101,
        np.array([0.0005, 0.0004, 0.0]),
        **_HDR,
    ),
    m.CsiSlice: lambda: m.CsiSlice(_RNG.random((3, 2, 3)), [2, 0, 1], [0, 1], **_HDR),
    m.Transmit: lambda: m.Transmit(np.array([0.5, 1.0]), -1, True, 0.0042, 0.0005, **_HDR),
    m.Measurement: lambda: m.Measurement(np.array([3.5, 0.2]), np.array([2.1, 0.26]), **_HDR),
    m.PowerForward: lambda: m.PowerForward([2, 0], _RNG.random((2, 4)), **_HDR),
    m.CsiUpload: lambda: m.CsiUpload(_RNG.random((2, 3)).astype(np.float32), **_HDR),
    m.Decision: lambda: m.Decision(np.array([[0.1, 0.2]]), **_HDR),
    m.ObsUpload: lambda: m.ObsUpload(_RNG.random(18), **_HDR),
    m.ActionDecision: lambda: m.ActionDecision(13, **_HDR),
    m.Fingerprint: lambda: m.Fingerprint(17, 0.05, **_HDR),
    m.NeighbourChoice: lambda: m.NeighbourChoice(3, 7, **_HDR),
    m.Experience: lambda: m.Experience(
        _RNG.random((4, 6)).astype(np.float32),
        np.array([0, 3, 1, 2], dtype=np.int64),
        _RNG.random(4),
        _RNG.random((4, 6)).astype(np.float32),
        np.array([False, False, False, True]),
        3,
        **_HDR,
    ),
    m.Weights: lambda: m.Weights(
        5, ["fc1.weight", "fc1.bias"], [_RNG.random((4, 3)).astype(np.float32), np.zeros(4)], **_HDR
    ),
    m.WeightsRequest: lambda: m.WeightsRequest(-1, **_HDR),
    m.WeightsAck: lambda: m.WeightsAck(6, **_HDR),
    m.Resume: lambda: m.Resume(6, **_HDR),
    m.Join: lambda: m.Join(2, "tcp://node-2:5552", **_HDR),
    m.Restarted: lambda: m.Restarted(**_HDR),
    m.AirRestart: lambda: m.AirRestart("tcp://channel-server:5551", **_HDR),
    m.V2xSlice: lambda: m.V2xSlice(7, _RNG.normal(-90, 10, 4), _RNG.normal(-100, 10, 4),
                                   _RNG.normal(-110, 5, 4), [0, 1, 3], **_HDR),
    m.V2xTransmit: lambda: m.V2xTransmit(2, 1, 0.0003, 0.0001, **_HDR),
    m.V2xFeedback: lambda: m.V2xFeedback(1.25e6, 3.7, **_HDR),
    m.V2xOutcome: lambda: m.V2xOutcome(
        99, np.array([0, 3, 1, 1]), np.array([0, 0, 2, 3]), np.array([True, True, False, True]),
        _RNG.random(4) * 1e7, _RNG.random(4) * 1e6, 41.5, _RNG.random(4) * 1e4,
        np.array([np.nan, 0.012, 0.003, np.nan]), np.array([1e-4, 2e-4, np.inf, 0.0]), [2],
        **_HDR),
}
