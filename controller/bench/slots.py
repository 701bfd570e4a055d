"""Slot-rate benchmark: slots per second of every cellular scheme over real processes
(``--runner network``) and over the in-memory pump (``--runner local``), on 3cell-k2 and
7cell-k8, measured in one run and printed side by side with the network/local ratio.

Each measurement is the real CLI in a subprocess,
``python -m controller.cli run SCENARIO --scheme S --runner R --slots N --seed 0 --out DIR``
(plus ``--no-telemetry`` on the network runner), started in the repository ``root`` whose
code is measured; the figure is the run directory's ``summary.json`` ``wall_slots_per_s``:
slots done over the wall time of the slot phase, handshake and process start excluded.
Every subprocess gets ``OMP_NUM_THREADS=1`` and ``MKL_NUM_THREADS=1``: torch's intra-op
thread count otherwise follows the machine's core count.

After each good network run, :mod:`controller.bench.skeleton` plays the same slot pattern
(the scheme's exchange, as many node processes, the frame sizes of the run's
``overhead.csv``) in raw pyzmq for as many slots: the "raw zmq" column, the sockets'
ceiling, and "net/raw", the share of it the testbed reaches.

A scheme whose ``options["max_links"]`` is below a scenario's number of links (B*K) is not
run there, nor is a scheme that acts only with trained weights (ALCOR's centralized URA):
their cells read "-" with a note. With ``--repeat R`` each cell is the median of R
runs; the runs go round by round (every cell once, then again), so slow drift of the
machine spreads over all cells alike.

Output, in ``--out DIR`` (default ``runs/bench-slots-<time>``): ``slots.json`` (every run,
the medians and ratios; rewritten after each run, so an interrupted bench keeps what it
measured), ``slots.csv`` (one row per scenario and scheme), and ``runs/`` with every run
directory (its logs say why a run failed).

Run: ``rrmbed bench slots [--slots 2000] [--repeat 3]``, or, to measure another checkout of
the project (whose ``run`` command takes the same options) with this same script,
``python -m controller.bench.slots --root PATH ...``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from controller.bench import skeleton

ROOT = Path(__file__).resolve().parents[2]
"""This repository: the default ``--root``."""
DEFAULT_SCENARIOS = ("scenarios/3cell-k2.toml", "scenarios/7cell-k8.toml")
DEFAULT_SLOTS = 2000
"""Slots per run on every scenario but the 7-cell ones."""
SEVEN_CELL_DIVISOR = 4
"""Slots on a 7-cell scenario default to ``--slots`` over this."""
RUNNERS = ("network", "local")
ENV_PINS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
"""Environment of every measured run (torch's thread count otherwise follows the cores)."""
RUN_TIMEOUT_S = 1800.0
"""A run still going after this long is stopped and counted as failed."""
ERROR_TAIL = 1500
"""Characters of a failed run's output kept in slots.json."""
JSON_NAME, CSV_NAME = "slots.json", "slots.csv"
CSV_FIELDS = ("scenario", "scheme", "network_slots_per_s", "local_slots_per_s",
              "network_over_local", "raw_slots_per_s", "network_over_raw", "network_runs",
              "local_runs", "note")

ENV_HELP = ("Every run gets OMP_NUM_THREADS=1 and MKL_NUM_THREADS=1 (torch's thread count "
            "otherwise depends on the core count).")


class BenchError(Exception):
    """A bad option or an unusable output path, found before anything runs."""


# ------------------------------------------------------------------------------ the plan


@dataclass(frozen=True)
class Target:
    """One scenario of the bench."""

    path: Path
    """Absolute path of the scenario file."""
    name: str
    """Its name (the scenario's ``name``), the column group of the table."""
    n_links: int
    """B*K."""
    n_nodes: int
    """B: one node process per BS."""
    slots: int
    """Slots of each run on it."""


@dataclass(frozen=True)
class Plan:
    """What one bench measures, fixed before the first run."""

    root: Path
    """Repository whose code runs (cwd of every run)."""
    targets: tuple[Target, ...]
    schemes: tuple[str, ...]
    """In the registry's order."""
    exchanges: dict[str, str]
    """scheme -> its exchange pattern (which raw-pyzmq skeleton it is measured against)."""
    skipped: dict[tuple[str, str], str]
    """(scenario name, scheme) -> why it is not run there."""
    repeat: int
    sets: tuple[str, ...]
    out: Path
    """Absolute (the runs' cwd is ``root``)."""

    def cells(self) -> list[tuple[Target, str, str]]:
        """Every (scenario, scheme, runner) that runs, in table order."""
        return [(t, s, r) for t in self.targets for s in self.schemes
                if (t.name, s) not in self.skipped for r in RUNNERS]


def _overrides(sets: Sequence[str]) -> dict[str, Any]:
    """``timing.clock="fast"`` -> {'timing.clock': 'fast'} (values as TOML scalars), as
    ``rrmbed run --set`` reads them."""
    out: dict[str, Any] = {}
    for pair in sets:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise BenchError(f"--set {pair!r} is not KEY=VALUE")
        try:
            out[key.strip()] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = raw
    return out


def _scenario_file(path: Path, root: Path) -> Path:
    """A relative path from the working directory, else from ``root``."""
    for p in (path, root / path) if not path.is_absolute() else (path,):
        if p.is_file():
            return p.resolve()
    raise BenchError(f"--scenario {path}: no such file"
                     + ("" if path.is_absolute() else f" (here or under {root})"))


def make_plan(root: Path, scenarios: Sequence[Path], schemes: Sequence[str], slots: int,
              slots_7: int | None, repeat: int, sets: Sequence[str], out: Path) -> Plan:
    """Check every option against this repository's scenario kinds and scheme registry."""
    from channel_server.config import ScenarioError
    from channel_server.kinds import resolve
    from node.schemes import SCHEMES

    if not (root / "controller").is_dir():
        raise BenchError(f"--root {root}: not an rrmbed checkout (no controller/ folder)")
    if slots < 1 or (slots_7 is not None and slots_7 < 1) or repeat < 1:
        raise BenchError("--slots, --slots-7 and --repeat must be at least 1")
    overrides = _overrides(sets)
    targets: list[Target] = []
    for path in dict.fromkeys(scenarios or [Path(s) for s in DEFAULT_SCENARIOS]):
        file = _scenario_file(path, root)
        try:
            resolved = resolve(file, overrides or None)
        except ScenarioError as e:
            raise BenchError(f"--scenario {path}: {e}") from e
        if resolved.kind.name != "cellular":
            raise BenchError(f"--scenario {path}: a {resolved.kind.name} scenario; the slot "
                             "bench runs cellular ones")
        radio = resolved.scenario.radio
        n = (slots_7 if slots_7 is not None else max(1, slots // SEVEN_CELL_DIVISOR)) \
            if radio.n_cells == 7 else slots
        if any(t.name == resolved.scenario.name for t in targets):
            raise BenchError(f"--scenario {path}: a second scenario named "
                             f"{resolved.scenario.name!r}")
        targets.append(Target(file, resolved.scenario.name, radio.n_links, radio.n_cells, n))
    registry = SCHEMES.for_kind("cellular")
    names = [s.name for s in registry]
    unknown = [s for s in schemes if s not in names]
    if unknown:
        raise BenchError(f"--scheme {', '.join(unknown)}: not a cellular scheme; choose from "
                         f"{', '.join(names)}")
    chosen = [s for s in registry if not schemes or s.name in schemes]
    skipped: dict[tuple[str, str], str] = {}
    for t in targets:
        for s in chosen:
            limit = s.options.get("max_links")
            if s.needs_weights:
                skipped[(t.name, s.name)] = (f"{s.name} not run: it acts only with trained "
                                             "weights (--weights)")
            elif limit is not None and limit < t.n_links:
                skipped[(t.name, s.name)] = (f"{s.name} not run on {t.name}: {t.n_links} links, "
                                             f"max_links {limit}")
    return Plan(root.resolve(), tuple(targets), tuple(s.name for s in chosen),
                {s.name: s.exchange for s in chosen}, skipped, repeat, tuple(sets),
                out.absolute())


def prepare_out(out: Path, json_path: Path | None) -> None:
    """Create ``out`` and check that it, and ``json_path``'s folder, take files: an
    unusable path is named before anything runs."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise BenchError(f"cannot write to --out {out}: {e.strerror or e}") from e
    if json_path is not None:
        parent = json_path.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK) or json_path.is_dir():
            why = "a folder" if json_path.is_dir() else (
                "no such folder" if not parent.is_dir() else "folder not writable")
            raise BenchError(f"cannot write --json {json_path}: {why}")


# ------------------------------------------------------------------------------ one run


def run_command(target: Target, scheme: str, runner: str, run_dir: Path,
                sets: Sequence[str]) -> list[str]:
    """The ``rrmbed run`` command line of one measurement."""
    cmd = [sys.executable, "-m", "controller.cli", "run", str(target.path), "--scheme", scheme,
           "--runner", runner, "--slots", str(target.slots), "--seed", "0",
           "--out", str(run_dir)]
    if runner == "network":
        cmd.append("--no-telemetry")
    for s in sets:
        cmd += ["--set", s]
    return cmd


def run_env(root: Path) -> dict[str, str]:
    """The subprocess environment: ours, the thread pins, and ``root`` first on the path
    (so that its packages, not an installed copy, are imported)."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, **ENV_PINS,
            "PYTHONPATH": str(root) + (os.pathsep + path if path else "")}


def _tail(text: str) -> str:
    text = text.strip()
    return text if len(text) <= ERROR_TAIL else "..." + text[-ERROR_TAIL:]


def measure_one(plan: Plan, target: Target, scheme: str, runner: str, rep: int) -> dict[str, Any]:
    """Run one measurement to the end; its record (``ok`` false with ``error`` on failure)."""
    run_dir = plan.out / "runs" / f"{target.name}-{scheme}-{runner}-r{rep}"
    rec: dict[str, Any] = {
        "scenario": target.name, "scheme": scheme, "runner": runner, "repeat": rep,
        "slots_requested": target.slots, "slots": None, "wall_slots_per_s": None,
        "wall_s": None, "process_s": None, "rc": None, "ok": False, "error": None,
        "run_dir": str(run_dir), "raw_slots_per_s": None,
    }
    t0 = time.perf_counter()
    try:
        done = subprocess.run(run_command(target, scheme, runner, run_dir, plan.sets),
                              cwd=plan.root, env=run_env(plan.root), capture_output=True,
                              text=True, timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        rec["process_s"] = time.perf_counter() - t0
        rec["error"] = f"did not finish in {RUN_TIMEOUT_S:.0f} s"
        return rec
    rec["process_s"] = time.perf_counter() - t0
    rec["rc"] = done.returncode
    summary_file = run_dir / "summary.json"
    try:
        summary = json.loads(summary_file.read_text())
    except (OSError, ValueError) as e:
        rec["error"] = (f"exit {done.returncode}, no readable {summary_file} ({e}): "
                        f"{_tail(done.stderr or done.stdout)}")
        return rec
    rate = summary.get("wall_slots_per_s")
    rec.update(slots=summary.get("slots"), wall_s=summary.get("wall_s"),
               wall_slots_per_s=rate if isinstance(rate, int | float) and math.isfinite(rate)
               else None)
    if done.returncode != 0:
        rec["error"] = f"exit {done.returncode}: {_tail(done.stderr or done.stdout)}"
    elif rec["slots"] != target.slots:
        rec["error"] = f"{rec['slots']} of {target.slots} slots done"
    elif rec["wall_slots_per_s"] is None or rec["wall_slots_per_s"] <= 0:
        rec["error"] = f"no usable wall_slots_per_s in {summary_file}: {rate!r}"
    else:
        rec["ok"] = True
        if runner == "network" and plan.exchanges.get(scheme) in skeleton.SKELETONS:
            rec["raw_slots_per_s"] = skeleton.play(
                skeleton.Pattern(plan.exchanges[scheme], target.n_nodes,
                                 skeleton.sizes_of(run_dir / "overhead.csv")), target.slots)[0]
    return rec


# ------------------------------------------------------------------------------ results


def _git(root: Path) -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                                  text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD"), "dirty": None if status is None else bool(status)}


def _meta(plan: Plan) -> dict[str, Any]:
    return {
        "root": str(plan.root), "git": _git(plan.root), "python": sys.executable,
        "python_version": platform.python_version(), "host": platform.node(),
        "cpus": os.cpu_count(), "env": ENV_PINS, "seed": 0, "repeat": plan.repeat,
        "sets": list(plan.sets), "run_timeout_s": RUN_TIMEOUT_S,
        "scenarios": [{"name": t.name, "path": str(t.path), "links": t.n_links,
                       "slots": t.slots} for t in plan.targets],
        "schemes": list(plan.schemes),
    }


@dataclass
class Bench:
    """The plan, the runs measured so far, and the document made of them."""

    plan: Plan
    runs: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    started: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))

    def rows(self) -> list[dict[str, Any]]:
        """One per scenario and scheme, in table order: each runner's figures of the good
        runs and their median, and the network/local ratio of the medians."""
        rows = []
        for t in self.plan.targets:
            for s in self.plan.schemes:
                row: dict[str, Any] = {"scenario": t.name, "scheme": s,
                                       "skipped": self.plan.skipped.get((t.name, s))}
                for r in RUNNERS:
                    mine = [x for x in self.runs
                            if (x["scenario"], x["scheme"], x["runner"]) == (t.name, s, r)]
                    good = [x["wall_slots_per_s"] for x in mine if x["ok"]]
                    row[r] = {"slots_per_s": good,
                              "median": float(np.median(good)) if good else None,
                              "failed": len(mine) - len(good)}
                net, loc = row["network"]["median"], row["local"]["median"]
                row["network_over_local"] = net / loc if net and loc else None
                raw = [x["raw_slots_per_s"] for x in self.runs
                       if (x["scenario"], x["scheme"], x["runner"]) == (t.name, s, "network")
                       and x.get("raw_slots_per_s")]
                row["raw"] = {"slots_per_s": raw,
                              "median": float(np.median(raw)) if raw else None}
                row["network_over_raw"] = (net / row["raw"]["median"]
                                           if net and row["raw"]["median"] else None)
                rows.append(row)
        return rows

    def document(self, complete: bool) -> dict[str, Any]:
        return {"bench": "slots", "complete": complete, "started": self.started,
                "meta": self.meta, "runs": self.runs, "rows": self.rows()}


def _num(x: float | None) -> str:
    """A figure of slots.csv: the float exactly as in slots.json, empty for none."""
    return "" if x is None else repr(x)


def csv_rows(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The rows of slots.csv (strings, as written)."""
    out = []
    for row in rows:
        note = row["skipped"] or "; ".join(
            f"{row[r]['failed']} {r} run(s) failed" for r in RUNNERS if row[r]["failed"])
        out.append({
            "scenario": row["scenario"], "scheme": row["scheme"],
            "network_slots_per_s": _num(row["network"]["median"]),
            "local_slots_per_s": _num(row["local"]["median"]),
            "network_over_local": _num(row["network_over_local"]),
            "raw_slots_per_s": _num(row["raw"]["median"]),
            "network_over_raw": _num(row["network_over_raw"]),
            "network_runs": str(len(row["network"]["slots_per_s"])),
            "local_runs": str(len(row["local"]["slots_per_s"])),
            "note": note,
        })
    return out


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json(bench: Bench, path: Path, complete: bool) -> None:
    _atomic_write(path, json.dumps(bench.document(complete), indent=2) + "\n")


def write_csv(bench: Bench, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        wr.writeheader()
        wr.writerows(csv_rows(bench.rows()))
    os.replace(tmp, path)


def print_table(bench: Bench, console: Console) -> None:
    """Rows: schemes; columns: each scenario's network and local slots/s and their ratio."""
    plan = bench.plan
    table = Table(title="slots per second")
    table.add_column("scheme", style="bold")
    for t in plan.targets:
        table.add_column(f"{t.name}\nnetwork", justify="right")
        table.add_column(f"{t.name}\nlocal", justify="right")
        table.add_column(f"{t.name}\nnet/local", justify="right")
        table.add_column(f"{t.name}\nraw zmq", justify="right")
        table.add_column(f"{t.name}\nnet/raw", justify="right")
    rows = {(r["scenario"], r["scheme"]): r for r in bench.rows()}
    notes: list[str] = []
    for s in plan.schemes:
        cells = [s]
        for t in plan.targets:
            row = rows[(t.name, s)]
            if row["skipped"]:
                cells += ["-"] * 5
                notes.append(f"-: {row['skipped']}")
                continue
            for r in RUNNERS:
                m = row[r]["median"]
                cells.append("[red]failed[/red]" if m is None else f"{m:,.0f}")
                if row[r]["failed"]:
                    notes.append(f"{t.name} {s} {r}: {row[r]['failed']} of "
                                 f"{row[r]['failed'] + len(row[r]['slots_per_s'])} run(s) "
                                 "failed (see slots.json)")
            ratio = row["network_over_local"]
            cells.append("" if ratio is None else f"{ratio:.2f}")
            raw, over = row["raw"]["median"], row["network_over_raw"]
            cells.append("" if raw is None else f"{raw:,.0f}")
            cells.append("" if over is None else f"{over:.2f}")
        table.add_row(*cells)
    console.print(table)
    slots = ", ".join(f"{t.slots} slots on {t.name}" for t in plan.targets)
    console.print(f"median of {plan.repeat} run(s) per cell; {slots}; seed 0; code in "
                  f"{plan.root}; OMP_NUM_THREADS=MKL_NUM_THREADS=1")
    console.print("raw zmq: the same slot's messages, of the run's sizes, between as many "
                  "processes in raw pyzmq, right after each network run (no codec, roles or "
                  "asyncio: the sockets' ceiling); blank for schemes without a skeleton")
    for n in notes:
        console.print(n)


# ------------------------------------------------------------------------------ driver


def run_bench(root: Path, scenarios: Sequence[Path], schemes: Sequence[str], slots: int,
              slots_7: int | None, repeat: int, sets: Sequence[str], out: Path | None,
              json_path: Path | None, console: Console | None = None,
              on_run: Callable[[dict[str, Any]], None] | None = None) -> int:
    """Plan, measure, print and write; 0 when every run succeeded, else 1. Raises
    :class:`BenchError` on a bad option or an unusable path, before anything runs."""
    console = console or Console(width=max(120, Console().width))
    out = out or Path("runs") / f"bench-slots-{time.strftime('%Y%m%d-%H%M%S')}"
    plan = make_plan(root, scenarios, schemes, slots, slots_7, repeat, sets, out)
    prepare_out(out, json_path)
    bench = Bench(plan)
    bench.meta = _meta(plan)
    cells = plan.cells()
    write_json(bench, out / JSON_NAME, complete=False)
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                        MofNCompleteColumn(), TimeElapsedColumn(),
                        console=Console(stderr=True), transient=True)
    with progress:
        task = progress.add_task("slots bench", total=len(cells) * repeat)
        for rep in range(repeat):
            for target, scheme, runner in cells:
                progress.update(task, description=f"{target.name} {scheme} {runner} "
                                                  f"(round {rep + 1}/{repeat})")
                rec = measure_one(plan, target, scheme, runner, rep)
                bench.runs.append(rec)
                write_json(bench, out / JSON_NAME, complete=False)
                if on_run is not None:
                    on_run(rec)
                progress.advance(task)
    print_table(bench, console)
    write_json(bench, out / JSON_NAME, complete=True)
    write_csv(bench, out / CSV_NAME)
    written = [out / JSON_NAME, out / CSV_NAME]
    if json_path is not None:
        try:
            write_json(bench, json_path, complete=True)
        except OSError as e:
            raise BenchError(f"cannot write --json {json_path}: {e.strerror or e} "
                             f"(the results are in {out / JSON_NAME})") from e
        written.append(json_path)
    console.print("wrote " + ", ".join(str(p) for p in written))
    failed = [r for r in bench.runs if not r["ok"]]
    for r in failed:
        console.print(f"[red]failed:[/red] {r['scenario']} {r['scheme']} {r['runner']} "
                      f"(round {r['repeat'] + 1}): {r['error']}")
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m controller.bench.slots",
        description="Slots per second of every cellular scheme, network vs local runner, "
                    "side by side. " + ENV_HELP)
    p.add_argument("--root", type=Path, default=ROOT,
                   help="Repository whose code runs (cwd of every run; default: this one, "
                        f"{ROOT}). A relative --scenario is looked up here first, then there.")
    p.add_argument("--slots", type=int, default=DEFAULT_SLOTS,
                   help="Slots per run (default %(default)s).")
    p.add_argument("--slots-7", type=int, default=None, dest="slots_7",
                   help=f"Slots per run on a 7-cell scenario (default --slots/"
                        f"{SEVEN_CELL_DIVISOR}).")
    p.add_argument("--repeat", type=int, default=1,
                   help="Runs per cell; the table shows their median (default 1).")
    p.add_argument("--scheme", action="append", default=[], dest="schemes",
                   help="Only this scheme (repeatable; default: every cellular scheme).")
    p.add_argument("--scenario", action="append", type=Path, default=[], dest="scenarios",
                   help=f"Scenario file (repeatable; default: {' and '.join(DEFAULT_SCENARIOS)}).")
    p.add_argument("--set", action="append", default=[], dest="sets", metavar="KEY=VALUE",
                   help="Passed to every run, e.g. --set timing.compute_model='\"fixed\"'.")
    p.add_argument("--out", type=Path, default=None,
                   help="Folder for slots.json, slots.csv and the run directories "
                        "(default runs/bench-slots-<time>).")
    p.add_argument("--json", type=Path, default=None, dest="json_path",
                   help="Also write slots.json's content (every run, medians) to this file.")
    a = p.parse_args(argv)
    from protocols.plugins import load_plugins

    load_plugins()
    try:
        return run_bench(a.root, a.scenarios, a.schemes, a.slots, a.slots_7, a.repeat, a.sets,
                         a.out, a.json_path)
    except BenchError as e:
        Console(stderr=True).print(f"[red]error:[/red] {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
