"""K-user interference channel runs: the recorder both runners fill, and the report.

The channel server sends the controller each slot's outcome (:class:`IcOutcome`); the
controller's part fills an :class:`IcRecorder`, which writes the run directory as slots
complete: ``metrics.csv`` (per slot: sum rate, WMMSE's sum rate on the same gains and the
fraction of it reached, misses, messages decided without, then every link's power, rate and
decision latency), ``overhead.csv``, ``config.toml``, ``summary.json`` and
``plots/slots.png``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from channel_server.interference import IcScenario, ic_scenario_to_dict
from controller.alcor.track import DemandTrack
from controller.evaluation.files import CsvStream, plots_wanted, write_run_files
from controller.evaluation.results import fmt, run_keys, run_tail
from protocols.ic_messages import IcOutcome
from protocols.meter import Meter


@dataclass
class IcRecorder:
    """Collects the slots of a run and writes its run directory."""

    scenario: IcScenario
    scheme: str
    runner: str
    seed: int
    slots: int
    rows: list[IcOutcome] = field(default_factory=list)
    demands: DemandTrack = field(default_factory=DemandTrack)
    """Each slot's demands, rates and user selection (1: the link was on)."""
    violations: list[float] = field(default_factory=list)
    """Each slot's violation column, percent."""
    lost: set[int] = field(default_factory=set)
    stream_: CsvStream | None = None

    @property
    def done(self) -> int:
        return len(self.rows)

    def add(self, rec: IcOutcome, active: np.ndarray | None = None) -> None:
        """One slot's outcome; ``active``: the user selection the controller drew (central
        ALCOR), else the links' own word in the outcome."""
        self.violations.append(self.demands.add(rec.u_min, rec.rates,
                                                rec.active if active is None else active))
        self.rows.append(rec)
        self.lost.update(rec.lost)
        if self.stream_ is not None:
            self.stream_.row(self._metrics_row(self.done - 1))

    def stream(self, out: Path) -> None:
        """Write metrics.csv into ``out`` as slots complete."""
        out.mkdir(parents=True, exist_ok=True)
        self.stream_ = CsvStream(out / "metrics.csv", self._metrics_header())

    def _metrics_header(self) -> list[str]:
        return ["slot", "sum_rate_bps_hz", "wmmse_sum_rate_bps_hz", "fraction_of_wmmse",
                "misses", "missing_messages", "violation_pct",
                *[f"{c}_l{i}" for i in range(self.scenario.k)
                  for c in ("p_w", "rate", "latency_ms", "on", "u_min")]]

    def _metrics_row(self, n: int) -> list[Any]:
        r = self.rows[n]
        total = float(r.rates.sum())
        return [n, fmt(total), fmt(r.reference_rate),
                fmt(total / r.reference_rate if r.reference_rate > 0 else math.nan),
                int(r.missed.sum()), int(r.missing.sum()),
                fmt(self.violations[n]),
                *[x for i in range(len(r.powers)) for x in (
                    fmt(r.powers[i]), fmt(r.rates[i]), fmt(r.decision_latency_s[i] * 1e3),
                    int(self.demands.active[n][i]), fmt(r.u_min[i]))]]

    def sum_rates(self) -> np.ndarray:
        return np.array([float(r.rates.sum()) for r in self.rows])

    def summary(self, overhead: Meter, processes: dict[str, int], wall_s: float,
                extra: dict[str, Any] | None = None) -> dict[str, Any]:
        rows = self.rows
        rates = self.sum_rates()
        ref = np.array([r.reference_rate for r in rows])
        lat = (np.concatenate([r.decision_latency_s for r in rows]) * 1e3 if rows
               else np.zeros(0))
        s: dict[str, Any] = {
            **run_keys(self.scenario.name, self.scheme, self.runner, self.seed, self.done,
                       self.slots),
            "form": self.scenario.radio.form, "n_links": self.scenario.k,
            "sum_rate_bps_hz_mean": float(rates.mean()) if rows else None,
            "sum_rate_mbps_mean": (float(rates.mean()) * self.scenario.radio.bandwidth_hz / 1e6
                                   if rows else None),
            "wmmse_sum_rate_bps_hz_mean": float(ref.mean()) if rows else None,
            "fraction_of_wmmse": (float(rates.sum() / ref.sum()) if rows and ref.sum() > 0
                                  else None),
            "deadline_misses": int(sum(int(r.missed.sum()) for r in rows)),
            "demand_phases": self.demands.phases() if self.demands.any else [],
            "missing_messages": int(sum(int(r.missing.sum()) for r in rows)),
            **run_tail(overhead, self.done, lat, wall_s, (f"link-{i}" for i in self.lost),
                       processes),
        }
        s.update(extra or {})
        return s

    def write(self, out: Path, overhead: Meter, processes: dict[str, int], wall_s: float,
              extra: dict[str, Any] | None = None) -> dict[str, Any]:
        summary = write_run_files(
            out, {"run": {"scheme": self.scheme, "runner": self.runner, "seed": self.seed,
                          "slots": self.slots}, "kind": "interference",
                  **ic_scenario_to_dict(self.scenario)},
            [self.stream_] if self.stream_ is not None else [],
            {"metrics.csv": (self._metrics_header(),
                             (self._metrics_row(n) for n in range(self.done)))},
            overhead, self.done, lambda: self.summary(overhead, processes, wall_s, extra))
        if self.rows and plots_wanted():
            plot_slots(self, out / "plots" / "slots.png")
        return summary


def plot_slots(rec: IcRecorder, path: Path) -> None:
    """Sum rate per slot against WMMSE's, and the decision latency against the deadline."""
    from matplotlib.figure import Figure  # not pyplot: no backend to resolve at start

    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(8, 6))
    a, b = fig.subplots(2, 1, sharex=True)
    slots = np.arange(rec.done)
    a.plot(slots, rec.sum_rates(), lw=0.8, label=rec.scheme)
    a.plot(slots, [r.reference_rate for r in rec.rows], lw=0.8, ls="--", label="WMMSE")
    a.set_ylabel("sum rate, bit/s/Hz")
    a.legend()
    lat = np.array([np.max(np.where(np.isfinite(r.decision_latency_s),
                                    r.decision_latency_s, 0.0)) for r in rec.rows]) * 1e3
    b.plot(slots, lat, lw=0.8, label="slowest link")
    b.axhline(rec.scenario.timing.deadline_s * 1e3, color="red", ls=":", label="deadline")
    b.set_xlabel("slot")
    b.set_ylabel("decision latency, ms")
    b.legend()
    fig.suptitle(f"{rec.scenario.name}: {rec.scheme} ({rec.runner})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def report_run(summary: dict[str, Any], out: Path, console: Console) -> None:
    """The end of a run: the summary table."""
    print_ic_summary([summary], console)


def _f(x: float | None, digits: int) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def print_ic_summary(summaries: list[dict[str, Any]], console: Console | None = None,
                     title: str = "rrmbed K-user interference run") -> None:
    console = console or Console()
    t = Table(title=title)
    for col in ("scheme", "runner", "K", "slots", "bit/s/Hz", "of WMMSE", "worst viol %",
                "misses", "missing msgs", "latency p50 ms", "backhaul B/slot", "slots/s"):
        t.add_column(col, justify="left" if col in ("scheme", "runner") else "right")
    for s in summaries:
        frac = s["fraction_of_wmmse"]
        t.add_row(s["scheme"], s["runner"], str(s["n_links"]), str(s["slots"]),
                  _f(s["sum_rate_bps_hz_mean"], 3),
                  "-" if frac is None else f"{100 * frac:.1f}%",
                  _f(max((p["violation_pct"] for p in s["demand_phases"]), default=None), 2),
                  str(s["deadline_misses"]),
                  str(s["missing_messages"]), _f(s["decision_latency_ms_p50"], 3),
                  f"{s['backhaul_bytes_per_slot']['total']:.1f}",
                  f"{s['wall_slots_per_s']:.0f}")
    console.print(t)
