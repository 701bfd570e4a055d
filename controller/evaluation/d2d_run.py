"""D2D underlay runs: the recorder both runners fill, and the end-of-run report.

The channel server sends the controller each slot's outcome (:class:`D2dOutcome`); the
controller's part fills a :class:`D2dRecorder`, which writes the run directory as slots
complete: ``metrics.csv`` (per slot: total reward, D2D and CUE sum rates, CUE and D2D
outage fractions, then every pair's RB, power level, rate and reward and every CUE's
SINR), ``overhead.csv``, ``config.toml`` and ``summary.json`` (means, outage
probabilities, how often pairs change RB, bytes per slot by kind, decision latency, slots
per second).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from rich.console import Console
from rich.table import Table

from channel_server.d2d import D2dScenario, d2d_scenario_to_dict, db_to_linear, to_db
from channel_server.kinds import Resolved
from channel_server.kinds.registry import resolve
from controller.evaluation.files import CsvStream, write_run_files
from controller.evaluation.results import fmt, run_keys, run_tail
from protocols.d2d_messages import D2dOutcome
from protocols.meter import Meter

KIND = "d2d-underlay"
"""The scenario kind of these runs."""


def scenario_with_pairs(folder: Path, n: int,
                        overrides: Mapping[str, Any] | None = None) -> Resolved:
    """The D2D scenario with ``n`` pairs: ``folder/d2d-n<n>.toml``, else ``d2d-n10.toml``
    there with ``radio.n_pairs = n``; ``overrides`` (dotted keys) applied. ValueError when
    the file is not a D2D scenario with ``n`` pairs."""
    path = folder / f"d2d-n{n}.toml"
    overrides = dict(overrides or {})
    if path.exists():
        resolved = resolve(path, overrides or None)
    else:
        resolved = resolve(folder / "d2d-n10.toml",
                           {**overrides, "radio.n_pairs": n, "name": f"d2d-n{n}"})
    if resolved.kind.name != KIND or resolved.scenario.radio.n_pairs != n:
        raise ValueError(f"{path}: not a {KIND} scenario with {n} pairs")
    return resolved


def rb_switch_rate(rbs: npt.ArrayLike) -> float:
    """How often a pair changes its RB: over every two consecutive slots (rows of ``rbs``,
    slots by pairs, -1 for a silent pair) in which a pair transmits in both, the fraction in
    which its RB differs; NaN without such a pair and slot. Random RBs out of K change with
    probability (K - 1) / K; 0 is a static allocation, one that follows neither the fading
    nor the interference."""
    a = np.asarray(rbs, dtype=np.int64)
    if a.ndim != 2 or a.shape[0] < 2:
        return math.nan
    both = (a[1:] >= 0) & (a[:-1] >= 0)
    n = int(both.sum())
    return float(((a[1:] != a[:-1]) & both).sum() / n) if n else math.nan


@dataclass
class D2dRecorder:
    """Collects the slots of a D2D run and writes its run directory."""

    scenario: D2dScenario
    scheme: str
    runner: str
    seed: int
    slots: int
    rows: list[D2dOutcome] = field(default_factory=list)
    lost: set[int] = field(default_factory=set)
    stream_: CsvStream | None = None

    @property
    def done(self) -> int:
        return len(self.rows)

    def add(self, rec: D2dOutcome, lost: list[int] | None = None) -> None:
        self.rows.append(rec)
        self.lost.update(lost or [])
        if self.stream_ is not None:
            self.stream_.row(self._metrics_row(self.done - 1))

    def stream(self, out: Path) -> None:
        """Write metrics.csv into ``out`` as slots complete."""
        out.mkdir(parents=True, exist_ok=True)
        self.stream_ = CsvStream(out / "metrics.csv", self._metrics_header())

    # ------------------------------------------------------------------ per slot

    def cue_outage(self, r: D2dOutcome) -> np.ndarray:
        out: np.ndarray = r.cue_sinr < db_to_linear(self.scenario.qos.cue_sinr_min_db)
        return out

    def d2d_outage(self, r: D2dOutcome) -> np.ndarray:
        """Transmitting pairs below the D2D threshold (silent pairs are not counted)."""
        out: np.ndarray = (r.rb >= 0) & (r.d2d_sinr < db_to_linear(
            self.scenario.qos.d2d_sinr_min_db))
        return out

    def _metrics_header(self) -> list[str]:
        r = self.scenario.radio
        return ["slot", "total_reward", "d2d_sum_mbps", "cue_sum_mbps", "cue_outage",
                "d2d_outage",
                *[f"{c}_p{i}" for i in range(r.n_pairs)
                  for c in ("rb", "level", "d2d_mbps", "reward", "latency_ms")],
                *[f"cue_sinr_db_c{m}" for m in range(r.n_cue)]]

    def _metrics_row(self, n: int) -> list[Any]:
        r = self.rows[n]
        on = r.rb >= 0
        return [n, fmt(r.reward.sum()), fmt(r.d2d_rate_bps.sum() / 1e6),
                fmt(r.cue_rate_bps.sum() / 1e6), fmt(self.cue_outage(r).mean()),
                fmt(self.d2d_outage(r).sum() / max(int(on.sum()), 1)),
                *[x for i in range(len(r.rb)) for x in (
                    int(r.rb[i]), int(r.power_level[i]), fmt(r.d2d_rate_bps[i] / 1e6),
                    fmt(r.reward[i]), fmt(r.decision_latency_s[i] * 1e3))],
                *[fmt(x) for x in to_db(r.cue_sinr)]]

    # ------------------------------------------------------------------ the run

    def summary(self, overhead: Meter, processes: dict[str, int], wall_s: float,
                extra: dict[str, Any] | None = None) -> dict[str, Any]:
        rows = self.rows

        def mean(f: Any) -> float | None:
            return float(np.mean([f(r) for r in rows])) if rows else None

        on = sum(int((r.rb >= 0).sum()) for r in rows)
        lat = (np.concatenate([r.decision_latency_s for r in rows]) * 1e3 if rows
               else np.zeros(0))
        s: dict[str, Any] = {
            **run_keys(self.scenario.name, self.scheme, self.runner, self.seed, self.done,
                       self.slots),
            "n_pairs": self.scenario.radio.n_pairs, "n_rb": self.scenario.radio.n_rb,
            "total_reward_mean": mean(lambda r: r.reward.sum()),
            "d2d_sum_rate_mbps_mean": mean(lambda r: r.d2d_rate_bps.sum() / 1e6),
            "cue_sum_rate_mbps_mean": mean(lambda r: r.cue_rate_bps.sum() / 1e6),
            "cue_outage_probability": mean(lambda r: self.cue_outage(r).mean()),
            "d2d_outage_probability": (sum(int(self.d2d_outage(r).sum()) for r in rows) / on
                                       if on else None),
            "rb_switch_rate": rb_switch_rate([r.rb for r in rows]),  # NaN: null in JSON
            **run_tail(overhead, self.done, lat, wall_s, (f"pair-{i}" for i in self.lost),
                       processes),
        }
        s.update(extra or {})
        return s

    def write(self, out: Path, overhead: Meter, processes: dict[str, int], wall_s: float,
              extra: dict[str, Any] | None = None) -> dict[str, Any]:
        return write_run_files(
            out, {"run": {"scheme": self.scheme, "runner": self.runner, "seed": self.seed,
                          "slots": self.slots}, "kind": "d2d-underlay",
                  **d2d_scenario_to_dict(self.scenario)},
            [self.stream_] if self.stream_ is not None else [],
            {"metrics.csv": (self._metrics_header(),
                             (self._metrics_row(n) for n in range(self.done)))},
            overhead, self.done, lambda: self.summary(overhead, processes, wall_s, extra))


def report_run(summary: dict[str, Any], out: Path, console: Console) -> None:
    """The end of a D2D run: the summary table."""
    print_d2d_summary([summary], console)


def _f(x: float | None, digits: int) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def print_d2d_summary(summaries: list[dict[str, Any]], console: Console | None = None,
                      title: str = "rrmbed D2D underlay run") -> None:
    console = console or Console()
    t = Table(title=title)
    for col in ("scheme", "runner", "N", "slots", "total reward", "D2D Mbit/s",
                "CUE Mbit/s", "CUE outage", "D2D outage", "RB switch rate", "backhaul B/slot",
                "air B/slot", "slots/s"):
        t.add_column(col, justify="left" if col in ("scheme", "runner") else "right")
    for s in summaries:
        t.add_row(s["scheme"], s["runner"], str(s["n_pairs"]), str(s["slots"]),
                  _f(s["total_reward_mean"], 2), _f(s["d2d_sum_rate_mbps_mean"], 3),
                  _f(s["cue_sum_rate_mbps_mean"], 2), _f(s["cue_outage_probability"], 4),
                  _f(s["d2d_outage_probability"], 4), _f(s.get("rb_switch_rate"), 3),
                  f"{s['backhaul_bytes_per_slot']['total']:.1f}",
                  f"{s['air_bytes_per_slot']:.1f}", f"{s['wall_slots_per_s']:.0f}")
    console.print(t)
    kinds = sorted({k for s in summaries for k in s["backhaul_bytes_per_slot"]["by_kind"]})
    if kinds:
        t = Table(title="backhaul bytes per slot, by kind")
        t.add_column("run")
        for k in kinds:
            t.add_column(k, justify="right")
        for s in summaries:
            by = s["backhaul_bytes_per_slot"]["by_kind"]
            t.add_row(f"{s['scheme']} ({s['runner']})", *[f"{by.get(k, 0.0):.1f}"
                                                          for k in kinds])
        console.print(t)
