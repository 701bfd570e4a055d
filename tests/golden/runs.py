"""The golden runs: a fixed list of `rrmbed` commands and the output files whose hashes
were recorded (tests/golden/hashes.json) before the redesign, so that
tests/integration/test_golden.py can prove the redesign changes nothing a user sees.

Plain data and helpers, no pytest: ``python -m tests.golden.record`` (re)records the
hashes, the test replays the runs. Every run writes into ``<base>/<run name>``: the run
directory's name travels in the Start message (options["run"]), so it must be the same
when recording and replaying.

What is hashed (see :func:`canonical_bytes`): most files byte for byte; a weights .npz
by its arrays (not its zip container, whose entries can carry timestamps); and two
canonical projections that leave out what is not deterministic, each explained below
(``WALL_CLOCK_COLUMNS``, ``MASKED_SETUP_KINDS``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
"""Repository root: every command runs with this working directory (the scenario and
weights paths below are relative to it, and they travel in config.toml / Start)."""
HASHES = Path(__file__).resolve().parent / "hashes.json"
V2X_WEIGHTS = "tests/golden/v2x-marl-dqn-weights.npz"
"""Fixed Q-network weights of the V2X marl-dqn runs: produced once, on the recording
commit, by ``rrmbed v2x train --episodes 2 --seed 0`` (local runner); an input from now on."""

ENV_PINS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MKL_CBWR": "COMPATIBLE",
            "ATEN_CPU_CAPABILITY": "avx2"}
"""Environment of every golden command. torch's intra-op thread count defaults to the
number of cores and changes the last bits of policy forward passes and learner updates
(measured: metrics.csv of a network round-robin training run differs between 1 and 2
threads, e.g. sum-rate 0.42666705199876015 vs 0.4266670547914259 at slot 0). Pinning one
thread makes the hashes independent of the machine's core count. (The local `train`
driver already pins torch to one thread itself.)

The kernels are pinned too, so that the hashes do not depend on the CPU: numpy's OpenBLAS
picks its kernels by the CPU it recognizes (SkylakeX on the recording machine of sessions
1-14, Haswell on an AMD family-26 EPYC it does not know), MKL (torch's BLAS) takes other
paths on AMD than on Intel, and ATen dispatches AVX2 or AVX-512 code. Each changes the last
bits of a matrix product, and 16 policy runs' hashes failed on the second machine while
every other file matched. Every rrmbed process takes OpenBLAS's Haswell kernels itself
(``controller/__init__.py``); here ``MKL_CBWR=COMPATIBLE`` (MKL's conditional numerical
reproducibility: the same results on every x86 CPU) and ``ATEN_CPU_CAPABILITY=avx2`` pin
torch's code as well."""

RUN_TIMEOUT_S = 240.0
"""Per command; below pytest-timeout's 300 s so a hung run fails with its output."""

CELL_SCHEMES = ("max-power", "random", "full", "round-robin", "centralized", "wmmse", "fp",
                "optimum")
CELL_FILES = ("metrics.csv", "latency.csv", "overhead.csv")
V2X_FILES = ("metrics.csv", "episodes.csv", "overhead.csv")


@dataclass(frozen=True)
class GoldenRun:
    name: str
    """Short id, also the run directory's name (and the test id)."""
    args: tuple[str, ...]
    """Arguments of ``python -m controller.cli``, without ``--out``."""
    files: tuple[str, ...]
    """Output files to hash, relative to the run directory."""

    def command(self, out: Path) -> list[str]:
        return [sys.executable, "-m", "controller.cli", *self.args, "--out", str(out)]


def _cellular(scenario: str, slots: int) -> list[GoldenRun]:
    stem = Path(scenario).stem
    runs = []
    for scheme in CELL_SCHEMES:
        if scheme == "optimum" and stem == "7cell-k8":
            continue  # exhaustive search: only for small scenarios
        for runner in ("local", "network"):
            extra = ("--no-telemetry",) if runner == "network" else ()
            runs.append(GoldenRun(
                f"{stem}-{scheme}-{runner}",
                ("run", scenario, "--scheme", scheme, "--runner", runner,
                 "--slots", str(slots), "--seed", "3", *extra),
                CELL_FILES))
    return runs


def _v2x() -> list[GoldenRun]:
    runs = []
    for scheme in ("random", "marl-dqn"):
        weights = ("--weights", V2X_WEIGHTS) if scheme != "random" else ()
        for runner in ("local", "network"):
            extra = ("--no-telemetry",) if runner == "network" else ()
            runs.append(GoldenRun(
                f"v2x-manhattan-{scheme}-{runner}",
                ("run", "scenarios/v2x-manhattan.toml", "--scheme", scheme, "--runner", runner,
                 "--slots", "200", "--seed", "3", *weights, *extra),
                V2X_FILES))
    return runs


def _training() -> list[GoldenRun]:
    return [
        # centralized: 1 step per episode, M = 50 episodes per update, 100 steps ->
        # ceil(100 / 50) = 2 TRPO updates (controller/train.py TrainConfig.iterations).
        # The validation set (1000 drops) and the reference rates are computed as always.
        GoldenRun(
            "train-trpo-centralized-local",
            ("train", "scenarios/3cell-k2.toml", "--algo", "trpo", "--scheme", "centralized",
             "--runner", "local", "--steps", "100", "--episodes", "50", "--seeds", "0",
             "--imitate", "none"),
            ("metrics.csv", "seed-0/metrics.csv", "seed-0/weights.npz")),
        # round-robin: 3 steps per slot; slots = max(M, (steps // 3) // M * M) = 20 slots,
        # an update every M = 10 slots -> 2 TRPO updates (controller/cli.py `train`).
        # Telemetry cannot be turned off for `train` (see MASKED_SETUP_KINDS).
        GoldenRun(
            "train-trpo-round-robin-network",
            ("train", "scenarios/3cell-k2.toml", "--algo", "trpo", "--scheme", "round-robin",
             "--runner", "network", "--steps", "60", "--episodes", "10", "--seeds", "0",
             "--imitate", "none"),
            tuple(f"seed-0/{f}" for f in (*CELL_FILES, "training.csv", "weights.npz"))),
        # 2 episodes = 200 slots, weights broadcast every 100 slots.
        GoldenRun(
            "v2x-train-marl-dqn-network",
            ("v2x", "train", "scenarios/v2x-manhattan.toml", "--scheme", "marl-dqn",
             "--runner", "network", "--episodes", "2", "--broadcast-period", "100",
             "--seed", "0"),
            (*V2X_FILES, "training.csv", "weights.npz")),
    ]


RUNS: tuple[GoldenRun, ...] = (
    *_cellular("scenarios/3cell-k2.toml", 40),
    *_cellular("scenarios/7cell-k8.toml", 20),
    *_v2x(),
    *_training(),
)
BY_NAME = {r.name: r for r in RUNS}
assert len(BY_NAME) == len(RUNS), "run names must be unique"


def execute(run: GoldenRun, base: Path) -> Path:
    """Run ``run`` into ``base / run.name`` (from the repository root, ENV_PINS set);
    return the run directory. Raises RuntimeError with the output on a non-zero exit or
    a timeout."""
    out = base / run.name
    env = {**os.environ, **ENV_PINS}
    try:
        done = subprocess.run(run.command(out), cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(f"golden run {run.name} did not finish in {RUN_TIMEOUT_S:.0f} s: "
                           f"{' '.join(run.command(out))}\n{e.stdout!r:.3000}"
                           f"\n{e.stderr!r:.3000}") from e
    if done.returncode != 0:
        raise RuntimeError(f"golden run {run.name} exited {done.returncode}: "
                           f"{' '.join(run.command(out))}\n{done.stdout[-3000:]}"
                           f"\n{done.stderr[-3000:]}")
    return out


# --------------------------------------------------------------------------- hashing

WALL_CLOCK_COLUMNS = ("wall_s",)
"""CSV columns dropped before hashing: wall-clock seconds (the local `train` driver's
metrics.csv, top level and per seed, has the cumulative training time per iteration)."""

MASKED_SETUP_KINDS = ("hello", "start")
"""overhead.csv rows whose ``bytes`` and ``setup_bytes`` are masked (replaced by ``*``):
set-up messages whose size depends on the machine and the moment, not on the code:

- ``hello`` carries the sender's OS pid (a msgpack int: 1, 2, 3 or 5 bytes depending on
  its value, e.g. pids above 65535 on machines with a large kernel.pid_max) and its inbox
  address ``tcp://127.0.0.1:<OS-assigned port>``;
- ``start`` carries options["directory"] (every process's inbox address, with its
  OS-assigned port) and options["broker"] (the telemetry broker's URL: None with
  --no-telemetry, but the `train` commands cannot turn telemetry off, so it is
  ``mqtt://127.0.0.1:<1883 or a random port>`` on a machine with mosquitto or amqtt
  and None without).

Everything else of those rows is kept: kind, plane, sender, receiver, the message count
and ``bytes_per_slot`` (they are set-up only, so it stays 0.0). Every other row, hence
all per-slot traffic and the other set-up messages (weights snapshots, heartbeats,
fingerprints, ...), is hashed exactly. On the recording machine (pid_max 32768, ports
from 32768-60999, no broker installed) two recordings agreed even without the mask."""


def _csv_bytes(rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue().encode()


def _read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="") as f:
        return list(csv.reader(f))


def drop_columns(rows: list[list[str]], names: tuple[str, ...]) -> list[list[str]]:
    keep = [i for i, c in enumerate(rows[0]) if c not in names] if rows else []
    return [[r[i] for i in keep] for r in rows]


LIVENESS_KINDS = ("beat",)
"""overhead.csv rows left out: the heartbeats a network run's processes exchange every
``timing.heartbeat_s`` of wall time (added after the recording), as many as the run's wall
time allows; in memory there are none."""


SPLIT_COLUMNS = ("header_bytes", "payload_bytes", "framing_bytes", "header_bytes_per_slot",
                 "payload_bytes_per_slot")
"""overhead.csv columns left out: the split of each row's bytes into the frames' header,
payload and ZMTP framing, added after the recording (issue 15). They are a function of
the frames whose total ``bytes`` is hashed; tests/unit/test_wire_encoding.py checks that
they add up to it, against the frames' own lengths."""


def overhead_projection(rows: list[list[str]]) -> list[list[str]]:
    """overhead.csv without SPLIT_COLUMNS, with bytes and setup_bytes masked in
    MASKED_SETUP_KINDS rows, without LIVENESS_KINDS rows."""
    if not rows:
        return rows
    rows = drop_columns(rows, SPLIT_COLUMNS)
    head = rows[0]
    kind, masked = head.index("kind"), [head.index("bytes"), head.index("setup_bytes")]
    out = [head]
    for r in rows[1:]:
        if r[kind] in LIVENESS_KINDS:
            continue
        if r[kind] in MASKED_SETUP_KINDS:
            r = [("*" if i in masked else v) for i, v in enumerate(r)]
        out.append(r)
    return out


WEIGHTS_METADATA = ("__rrmbed__", "meta.")
"""Entries of a weights file that are metadata, not weights: the typed header the redesign
added (protocols.weights) and the ``meta.*`` entries that older cellular files carried
instead. The weights are compared, the way each format stores facts about them is not."""


def npz_bytes(path: Path) -> bytes:
    """A weights file's arrays without its zip container (whose entries carry time stamps)
    and without metadata (WEIGHTS_METADATA): for every array in sorted key order, its name,
    dtype, shape and C-order bytes."""
    h = hashlib.sha256()
    with np.load(path, allow_pickle=False) as f:
        for key in sorted(k for k in f.files if not k.startswith(WEIGHTS_METADATA)):
            a = np.ascontiguousarray(f[key])
            h.update(f"{key}\0{a.dtype.str}\0{a.shape}\0".encode())
            h.update(a.tobytes())
    return h.digest()


def canonical_bytes(path: Path) -> bytes:
    """The deterministic content of an output file (see the module docstring)."""
    if path.suffix == ".npz":
        return npz_bytes(path)
    if path.name == "overhead.csv":
        return _csv_bytes(overhead_projection(_read_csv(path)))
    if path.suffix == ".csv":
        rows = _read_csv(path)
        if rows and any(c in WALL_CLOCK_COLUMNS for c in rows[0]):
            return _csv_bytes(drop_columns(rows, WALL_CLOCK_COLUMNS))
    return path.read_bytes()


def hash_run(out_dir: Path, files: tuple[str, ...] | list[str]) -> dict[str, str]:
    """sha256 hex digest of the canonical content of every named file of a run directory
    (a missing file raises FileNotFoundError)."""
    return {f: hashlib.sha256(canonical_bytes(Path(out_dir) / f)).hexdigest() for f in files}
