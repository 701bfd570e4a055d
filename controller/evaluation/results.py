"""The run directory: per-slot records in, config.toml / summary.json / metrics.csv /
latency.csv / overhead.csv out, and the summary table printed at the end.

Both runners fill the same recorder, so their files compare line by line.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from channel_server.config import Scenario, scenario_to_dict
from controller.alcor.track import DemandTrack
from controller.evaluation.files import CsvStream, plots_wanted, write_run_files
from protocols.meter import Meter

AIR, BACKHAUL = "air", "backhaul"
LATENCY_HEADER = ["slot", "node", "decision_latency_ms", "missed"]


def fmt(x: float) -> str:
    """Exact float text (repr round-trips), so two runs' CSVs compare byte for byte."""
    return repr(float(x))


@dataclass
class RunRecorder:
    """Collects what each slot produced."""

    scenario: Scenario
    scheme: str
    runner: str
    seed: int
    slots: int
    sum_rates: list[float] = field(default_factory=list)
    powers: list[np.ndarray] = field(default_factory=list)
    latency_s: list[np.ndarray] = field(default_factory=list)
    missed: list[np.ndarray] = field(default_factory=list)
    lost: set[int] = field(default_factory=set)
    wall_s: list[float] = field(default_factory=list)
    compute_s: list[float] = field(default_factory=list)
    misses: int = 0
    """Deadline misses so far (running count, read live by telemetry)."""
    streams: list[CsvStream] = field(default_factory=list)
    """metrics.csv and latency.csv, written slot by slot once :meth:`stream` opened them."""
    demands: DemandTrack | None = None
    """With the scenario's ``[demands]``: each user's demand, rate and selection per slot
    (metrics.csv gains a violation column and each user's rate, selection and demand)."""
    violations: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.scenario.demands.any:
            self.demands = DemandTrack()

    def add(self, sum_rate: float, powers: np.ndarray, latency_s: np.ndarray,
            missed: np.ndarray, lost: list[int] | None = None, wall_s: float = 0.0,
            compute_s: float = 0.0, demand: tuple[np.ndarray, ...] | None = None) -> None:
        """One slot: sum-rate, powers (B, K), each BS's decision latency and miss flag,
        lost BSs, the wall-clock decision time and the compute time per decision; with
        demands, ``demand``: the users' demands, rates and selection, each (B, K)."""
        if self.demands is not None:
            if demand is None:
                raise ValueError("a run with demands records each slot's demands and rates")
            self.violations.append(self.demands.add(*demand))
        self.wall_s.append(float(wall_s))
        self.compute_s.append(float(compute_s))
        self.sum_rates.append(float(sum_rate))
        self.powers.append(np.asarray(powers, dtype=np.float64))
        self.latency_s.append(np.asarray(latency_s, dtype=np.float64))
        self.missed.append(np.asarray(missed, dtype=bool))
        self.misses += int(self.missed[-1].sum())
        self.lost.update(lost or [])
        if self.streams:
            n = self.done - 1
            self.streams[0].row(self._metrics_row(n))
            for row in self._latency_rows(n):
                self.streams[1].row(row)

    def stream(self, out: Path) -> None:
        """Write metrics.csv and latency.csv into ``out`` as slots come (a crash keeps every
        slot recorded before it)."""
        out.mkdir(parents=True, exist_ok=True)
        self.streams = [CsvStream(out / "metrics.csv", self._metrics_header()),
                        CsvStream(out / "latency.csv", LATENCY_HEADER)]

    @property
    def done(self) -> int:
        return len(self.sum_rates)

    def decision_latency_s(self, last: int | None = None) -> np.ndarray:
        """Per-slot decision latency (when the last BS of the slot had decided), of every
        slot or of the ``last`` ones."""
        rows = self.latency_s if last is None else self.latency_s[-last:]
        if not rows:
            return np.zeros(0)
        lat = np.stack(rows)
        out: np.ndarray = np.where(np.isfinite(lat), lat, np.nan).max(axis=1, initial=-np.inf)
        return out

    # --------------------------------------------------------------------- files

    def write(
        self,
        out: Path,
        overhead: Meter,
        processes: dict[str, int],
        wall_s: float,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Write every file of the run directory and return the summary."""
        (out / "plots").mkdir(parents=True, exist_ok=True)
        (out / "checkpoints").mkdir(exist_ok=True)
        return write_run_files(
            out, {"run": {"scheme": self.scheme, "runner": self.runner, "seed": self.seed,
                          "slots": self.slots}, **scenario_to_dict(self.scenario)},
            self.streams,
            {"metrics.csv": (self._metrics_header(),
                             (self._metrics_row(n) for n in range(self.done))),
             "latency.csv": (list(LATENCY_HEADER),
                             (row for n in range(self.done) for row in self._latency_rows(n)))},
            overhead, self.done, lambda: self.summary(overhead, processes, wall_s, extra))

    def _metrics_header(self) -> list[str]:
        b, k = self.scenario.radio.n_cells, self.scenario.radio.users_per_cell
        users = [f"bs{i}_u{j}" for i in range(b) for j in range(k)]
        return ["slot", "sum_rate_bps_hz", "sum_rate_mbps", *[f"p_{u}_w" for u in users],
                "decision_latency_ms", "deadline_misses",
                *(["violation_pct", *[f"{c}_{u}" for u in users for c in ("rate", "on", "u_min")]]
                  if self.demands is not None else [])]

    def _metrics_row(self, n: int) -> list[Any]:
        r, p, m = self.sum_rates[n], self.powers[n], self.missed[n]
        lat = self.latency_s[n]
        latest = np.where(np.isfinite(lat), lat, np.nan).max(initial=-np.inf)
        w_mhz = self.scenario.radio.bandwidth_hz / 1e6
        row = [n, fmt(r), fmt(r * w_mhz), *[fmt(x) for x in p.ravel()], fmt(latest * 1e3),
               int(m.sum())]
        if self.demands is not None:
            d = self.demands
            row += [fmt(self.violations[n]), *[x for i in range(len(d.rates[n])) for x in (
                fmt(d.rates[n][i]), int(d.active[n][i]), fmt(d.u_min[n][i]))]]
        return row

    def _latency_rows(self, n: int) -> list[list[Any]]:
        return [[n, f"node-{b}", fmt(x * 1e3), int(miss)]
                for b, (x, miss) in enumerate(zip(self.latency_s[n], self.missed[n],
                                                  strict=True))]

    # ------------------------------------------------------------------- summary

    def summary(self, overhead: Meter, processes: dict[str, int], wall_s: float,
                extra: dict[str, Any] | None = None) -> dict[str, Any]:
        rates = np.asarray(self.sum_rates) if self.sum_rates else np.zeros(1)
        lat_ms = self.decision_latency_s() * 1e3
        s: dict[str, Any] = {
            **run_keys(self.scenario.name, self.scheme, self.runner, self.seed, self.done,
                       self.slots),
            "sum_rate_bps_hz_mean": float(rates.mean()),
            "sum_rate_mbps_mean": float(rates.mean() * self.scenario.radio.bandwidth_hz / 1e6),
            **run_tail(overhead, self.done, lat_ms, wall_s, (f"node-{b}" for b in self.lost),
                       processes),
            "decision_wall_ms_p50": pct(np.asarray(self.wall_s) * 1e3, 50),
            "decision_wall_ms_p99": pct(np.asarray(self.wall_s) * 1e3, 99),
            "compute_ms_mean": float(np.mean(self.compute_s) * 1e3) if self.compute_s else None,
            "deadline_misses": self.misses,
            "deadline_ms": self.scenario.timing.deadline_s * 1e3,
        }
        if self.demands is not None:
            s["demand_phases"] = self.demands.phases()
        s.update(extra or {})
        return s


def report_run(summary: dict[str, Any], out: Path, console: Console) -> None:
    """The end of a cellular run: the summary table and plots/slots.png."""
    print_summary([summary], console)
    if summary["slots"] and plots_wanted():
        plot_run(out)


def run_keys(scenario: str, scheme: str, runner: str, seed: int, done: int,
             requested: int) -> dict[str, Any]:
    """The keys that open every run's summary.json: what ran, and how many slots of it."""
    return {"scenario": scenario, "scheme": scheme, "runner": runner, "seed": seed,
            "slots": done, "slots_requested": requested}


PARTS = ("header", "payload", "framing")
"""How the meter splits a frame's bytes on the wire (protocols.meter)."""


def overhead_summary(overhead: Meter, slots: int) -> dict[str, Any]:
    """``backhaul_bytes_per_slot`` (total and by kind; its ``header``, ``payload`` and
    ``framing`` bytes, which add up to the total, and the same split by kind in
    ``parts_by_kind``) and ``air_bytes_per_slot`` of the run phase (set-up traffic before
    slot 0 is not per-slot traffic)."""
    by_kind: dict[str, float] = {}
    planes: dict[str, int] = {}
    for (kind, plane, _src, _dst), (_m, nbytes) in overhead.totals("run").items():
        planes[plane] = planes.get(plane, 0) + nbytes
        if plane == BACKHAUL:
            by_kind[kind] = by_kind.get(kind, 0.0) + nbytes / slots
    parts = [0, 0, 0]
    parts_by_kind: dict[str, list[int]] = {}
    for (kind, plane, _src, _dst), split in overhead.parts("run").items():
        if plane == BACKHAUL:
            mine = parts_by_kind.setdefault(kind, [0, 0, 0])
            for i, n in enumerate(split):
                parts[i] += n
                mine[i] += n
    return {"backhaul_bytes_per_slot": {
                "total": planes.get(BACKHAUL, 0) / slots,
                "by_kind": dict(sorted(by_kind.items())),
                **{name: n / slots for name, n in zip(PARTS, parts, strict=True)},
                "parts_by_kind": {kind: {name: n / slots for name, n in
                                         zip(PARTS, split, strict=True)}
                                  for kind, split in sorted(parts_by_kind.items())}},
            "air_bytes_per_slot": planes.get(AIR, 0) / slots}


def pct(x: np.ndarray, q: float) -> float | None:
    return float(np.percentile(x, q)) if x.size else None


def run_tail(overhead: Meter, done: int, latency_ms: np.ndarray, wall_s: float,
             lost: Any, processes: dict[str, int]) -> dict[str, Any]:
    """The keys every kind's summary shares: bytes per slot (:func:`overhead_summary`), the
    decision latency's p50 and p99 (of the finite ones), wall time and slots per second,
    the lost nodes' names and the processes."""
    lat = latency_ms[np.isfinite(latency_ms)]
    return {**overhead_summary(overhead, max(done, 1)),
            "decision_latency_ms_p50": pct(lat, 50),
            "decision_latency_ms_p99": pct(lat, 99),
            "wall_s": wall_s,
            "wall_slots_per_s": done / wall_s if wall_s > 0 else math.inf,
            "lost_nodes": sorted(lost),
            "processes": processes}


def print_summary(summaries: list[dict[str, Any]], console: Console | None = None,
                  title: str = "rrmbed run") -> None:
    """One comparison row per run."""
    console = console or Console()
    t = Table(title=title)
    for col in ("scheme", "runner", "slots", "sum-rate b/s/Hz", "sum-rate Mbit/s",
                "backhaul B/slot", "air B/slot", "latency p50 ms", "p99 ms", "misses",
                "slots/s"):
        t.add_column(col, justify="left" if col in ("scheme", "runner") else "right")
    for s in summaries:
        t.add_row(
            s["scheme"], s["runner"], str(s["slots"]),
            f"{s['sum_rate_bps_hz_mean']:.3f}", f"{s['sum_rate_mbps_mean']:.1f}",
            f"{s['backhaul_bytes_per_slot']['total']:.1f}", f"{s['air_bytes_per_slot']:.1f}",
            _ms(s["decision_latency_ms_p50"]), _ms(s["decision_latency_ms_p99"]),
            str(s["deadline_misses"]), f"{s['wall_slots_per_s']:.0f}",
        )
    console.print(t)


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def plot_run(out: Path) -> Path:
    """plots/slots.png: sum-rate per slot (with a moving mean) and decision latency."""
    from matplotlib.figure import Figure  # not pyplot: no backend to resolve at start

    with (out / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    summary = json.loads((out / "summary.json").read_text())
    slots = np.array([int(r["slot"]) for r in rows])
    rate = np.array([float(r["sum_rate_mbps"]) for r in rows])
    lat = np.array([float(r["decision_latency_ms"]) for r in rows])
    window = max(1, min(50, len(rate) // 10))
    mean = np.convolve(rate, np.ones(window) / window, mode="valid")
    fig = Figure(figsize=(9, 5.5))
    a1, a2 = fig.subplots(2, 1, sharex=True)
    a1.plot(slots, rate, lw=0.8, alpha=0.5, label="per slot")
    a1.plot(slots[window - 1:], mean, lw=1.8, label=f"moving mean ({window} slots)")
    a1.set_ylabel("sum-rate (Mbit/s)")
    a1.legend(loc="lower right", fontsize=8)
    a2.plot(slots, lat, lw=0.8, color="tab:red")
    deadline = summary.get("deadline_ms")
    if deadline:
        a2.axhline(deadline, ls="--", color="k", lw=0.8, label="deadline")
        a2.legend(loc="upper right", fontsize=8)
    a2.set_ylim(bottom=0)
    a2.set_ylabel("decision latency (ms)")
    a2.set_xlabel("slot")
    fig.suptitle(f"{summary['scenario']} · {summary['scheme']} · {summary['runner']} runner · "
                 f"seed {summary['seed']}: {summary['sum_rate_mbps_mean']:.1f} Mbit/s, "
                 f"{summary['backhaul_bytes_per_slot']['total']:.0f} B/slot backhaul")
    fig.tight_layout()
    (out / "plots").mkdir(exist_ok=True)
    path = out / "plots" / "slots.png"
    fig.savefig(path, dpi=100)
    return path
