"""Scale of the D2D underlay over real processes (issue 14 point 7): one pair process per
D2D pair, N = 10..50 on one machine. For each N and scheme, the real CLI
``python -m controller.cli run scenarios/d2d-n<N>.toml --scheme S --runner network
--no-telemetry`` runs in a subprocess while this module samples, every ``interval_s``,
``VmRSS`` of every process of the run (pids from the run directory's ``processes.json``,
the launcher's own file) from ``/proc/<pid>/status``, and whether its ``/proc/<pid>/maps``
holds a torch library. The figures per process are the largest sample (peak resident set
while the slots ran) — ``VmHWM`` would also count the start-up; slots per second is the
run's ``summary.json`` ``wall_slots_per_s`` (slot phase only).

A trained scheme (MAAC, NAAC, ...) acts with the paper's actor (hidden 512, 128): its
weights file comes from ``rrmbed d2d train --runner local`` of a few slots (the actors'
numbers do not matter to memory or speed, their sizes do).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PINS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
RUN_TIMEOUT_S = 1800.0
MIB = 1024 * 1024


def default_schemes() -> tuple[str, ...]:
    """The D2D schemes ``rrmbed run`` and ``rrmbed d2d train`` take by default (random, MAAC):
    a pair that only draws, and one that runs the paper's actor."""
    from node.schemes import SCHEMES
    from node.schemes.d2d import KIND

    return tuple(s for s in (SCHEMES.default(KIND, "run"), SCHEMES.default(KIND, "train"))
                 if s is not None)


@dataclass(frozen=True)
class ScaleConfig:
    ns: tuple[int, ...] = (10, 30, 50)
    schemes: tuple[str, ...] = field(default_factory=default_schemes)
    slots: int = 500
    seed: int = 0
    interval_s: float = 0.25
    """Seconds between /proc samples."""


def rss_bytes(pid: int) -> int | None:
    """Resident set of ``pid`` in bytes (``VmRSS``); None when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def maps_torch(pid: int) -> bool | None:
    """Whether ``pid`` has a torch library mapped (None: unreadable, gone)."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            return any("/torch/" in line for line in f)
    except OSError:
        return None


@dataclass
class Sampler:
    """Samples the processes of a run directory from another thread."""

    run_dir: Path
    interval_s: float
    launcher: int | None = None
    peak: dict[str, int] = field(default_factory=dict)
    torch: dict[str, bool] = field(default_factory=dict)
    samples: int = 0
    stop_: threading.Event = field(default_factory=threading.Event)

    def pids(self) -> dict[str, int]:
        try:
            found: dict[str, int] = json.loads((self.run_dir / "processes.json").read_text())
        except (OSError, ValueError):
            found = {}
        if self.launcher is not None:
            found = {**found, "launcher": self.launcher}
        return found

    def running(self) -> bool:
        """The slots run (the status file says some are done and not all)."""
        try:
            st = json.loads((self.run_dir / "status.json").read_text())
            return 0 < int(st["slots_done"]) < int(st["slots"])
        except (OSError, ValueError, KeyError):
            return False

    def sample(self) -> None:
        if not self.running():
            return
        self.samples += 1
        for name, pid in self.pids().items():
            rss = rss_bytes(pid)
            if rss is not None:
                self.peak[name] = max(self.peak.get(name, 0), rss)
            t = maps_torch(pid)
            if t is not None:
                self.torch[name] = self.torch.get(name, False) or t

    def loop(self) -> None:
        while not self.stop_.wait(self.interval_s):
            self.sample()


def weights_for(scenario: Path, scheme: str, out: Path, env: dict[str, str]) -> Path:
    """A weights file of ``scheme`` with the paper's actor, from a local training of a few
    slots (the real CLI)."""
    path = out / "weights.npz"
    cmd = [sys.executable, "-m", "controller.cli", "d2d", "train", str(scenario), "--scheme",
           scheme, "--runner", "local", "--slots", "3", "--random-slots", "2",
           "--batch-size", "2", "--actor-hidden", "512,128", "--critic-hidden", "16",
           "--out", str(out)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    if done.returncode != 0 or not path.is_file():
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout[-1500:]}{done.stderr[-1500:]}")
    return path


def measure_one(scenario: Path, n: int, scheme: str, cfg: ScaleConfig,
                out: Path) -> dict[str, Any]:
    """One network run of ``scheme`` on ``scenario``, sampled."""
    from node.schemes import SCHEMES

    env = {**os.environ, **ENV_PINS}
    run_dir = out / "runs" / f"n{n}-{scheme}"
    weights = None
    if SCHEMES.get("d2d-underlay", scheme).trainable:
        weights = weights_for(scenario, scheme, out / "weights" / f"n{n}-{scheme}", env)
    cmd = [sys.executable, "-m", "controller.cli", "run", str(scenario), "--scheme", scheme,
           "--runner", "network", "--slots", str(cfg.slots), "--seed", str(cfg.seed),
           "--no-telemetry", "--out", str(run_dir)]
    if weights is not None:
        cmd += ["--weights", str(weights)]
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(out / "runs" / f"n{n}-{scheme}.log", "w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        sampler = Sampler(run_dir, cfg.interval_s, launcher=proc.pid)
        thread = threading.Thread(target=sampler.loop, daemon=True)
        thread.start()
        try:
            rc = proc.wait(RUN_TIMEOUT_S)
        finally:
            sampler.stop_.set()
            thread.join()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    wall = time.perf_counter() - t0
    if rc != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {rc}; see {out / 'runs'}/n{n}-{scheme}.log")
    summary = json.loads((run_dir / "summary.json").read_text())
    pairs = [v for k, v in sampler.peak.items() if k.startswith("pair-")]
    if len(pairs) != n:
        raise RuntimeError(f"sampled {len(pairs)} of {n} pair processes "
                           f"({sampler.samples} samples); run longer (--slots)")
    total = sum(sampler.peak.values())
    return {
        "n_pairs": n, "scheme": scheme, "slots": int(summary["slots"]),
        "slots_per_s": float(summary["wall_slots_per_s"]),
        "pair_rss_mib_mean": sum(pairs) / len(pairs) / MIB,
        "pair_rss_mib_max": max(pairs) / MIB, "pair_rss_mib_min": min(pairs) / MIB,
        "controller_rss_mib": sampler.peak.get("controller", 0) / MIB,
        "channel_server_rss_mib": sampler.peak.get("channel-server", 0) / MIB,
        "launcher_rss_mib": sampler.peak.get("launcher", 0) / MIB,
        "total_rss_mib": total / MIB,
        "pairs_with_torch": sorted(k for k, v in sampler.torch.items()
                                   if v and k.startswith("pair-")),
        "controller_torch": sampler.torch.get("controller"),
        "samples": sampler.samples, "setup_s": summary.get("setup_s"),
        "wall_s": wall, "run_dir": str(run_dir),
    }


def run_scale(cfg: ScaleConfig, scenario_of: Callable[[int], Path], out: Path,
              on_row: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    rows = []
    for n in cfg.ns:
        for scheme in cfg.schemes:
            rows.append(measure_one(scenario_of(n), n, scheme, cfg, out))
            if on_row is not None:
                on_row(rows[-1])
            write(rows, out)
    return rows


def write(rows: list[dict[str, Any]], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "scale.json").write_text(json.dumps(
        {"method": "peak VmRSS sampled from /proc while the slots ran; slots/s from "
                   "summary.json wall_slots_per_s; OMP/MKL threads pinned to 1",
         "machine": {"cpus": os.cpu_count(),
                     "mem_total_mib": _mem_total_mib()},
         "rows": rows}, indent=2))
    with (out / "scale.csv").open("w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(rows[0]))
        wr.writeheader()
        for r in rows:
            wr.writerow({**r, "pairs_with_torch": " ".join(r["pairs_with_torch"])})


def _mem_total_mib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            return int(f.readline().split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None


def publish(rows: list[dict[str, Any]], out: Path, console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    write(rows, out)
    t = Table(title="D2D scale: resident memory (peak while the slots ran, MiB) and slots/s")
    for h in ("N", "scheme", "pair mean", "pair max", "controller", "channel server",
              "launcher", "total", "slots/s", "pairs with torch"):
        t.add_column(h, justify="left" if h == "scheme" else "right")
    for r in rows:
        t.add_row(str(r["n_pairs"]), r["scheme"], f"{r['pair_rss_mib_mean']:.1f}",
                  f"{r['pair_rss_mib_max']:.1f}", f"{r['controller_rss_mib']:.1f}",
                  f"{r['channel_server_rss_mib']:.1f}", f"{r['launcher_rss_mib']:.1f}",
                  f"{r['total_rss_mib']:.0f}", f"{r['slots_per_s']:.1f}",
                  str(len(r["pairs_with_torch"])))
    (console or Console(width=max(160, Console().width))).print(t)
