"""Vehicular runs: the recorder both runners fill, the local runner, the run directory.

A run plays ``slots`` slots of the V2X world (episodes of ``n_steps`` slots back to back,
the vehicles moving on between episodes) with one :class:`node.vehicle_agent.VehicleAgent`
per V2V link. The local runner does it in this process; the network runner's channel
server sends the same slot outcomes to the controller, which fills the same recorder, so
the two runs' ``metrics.csv`` compare line by line.

Run directory: ``config.toml``, ``summary.json``, ``metrics.csv`` (per slot: RB, power
level and rate of every V2V link, sum V2I rate, reward), ``episodes.csv`` (per episode:
delivery rate, sum V2I rate, per-link delivery time), ``overhead.csv`` and
``plots/episodes.png``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from channel_server.v2x import V2xScenario, v2x_scenario_to_dict
from controller.evaluation.files import CsvStream, plots_wanted, write_run_files
from controller.evaluation.results import fmt, run_keys, run_tail
from controller.training.v2x_env import V2xEnv
from node.v2x_observation import decode_action
from node.vehicle_agent import VehicleAgent, eval_fingerprint, scheme_scenario
from protocols.meter import Meter


@dataclass(frozen=True)
class SlotRecord:
    """One vehicular slot, as the channel server reports it (arrays over the K links)."""

    episode_slot: int
    rb: np.ndarray
    power_level: np.ndarray
    transmitted: np.ndarray
    v2i_rate_bps: np.ndarray
    v2v_rate_bps: np.ndarray
    reward: float
    remaining_bits: np.ndarray
    delivery_time_s: np.ndarray
    decision_latency_s: np.ndarray


@dataclass
class V2xRecorder:
    """Collects the slots of a vehicular run and writes its run directory."""

    scenario: V2xScenario
    scheme: str
    runner: str
    seed: int
    slots: int
    rows: list[SlotRecord] = field(default_factory=list)
    lost: set[int] = field(default_factory=set)
    streams: list[CsvStream] = field(default_factory=list)
    """metrics.csv and episodes.csv, written as slots and episodes end once :meth:`stream`
    opened them."""

    @property
    def done(self) -> int:
        return len(self.rows)

    def add(self, rec: SlotRecord, lost: list[int] | None = None) -> None:
        self.rows.append(rec)
        self.lost.update(lost or [])
        if self.streams:
            n = self.scenario.n_steps
            self.streams[0].row(self._metrics_row(self.done - 1))
            if self.done % n == 0:
                self.streams[1].row(self._episode_row(self.episode(self.done // n - 1)))

    def stream(self, out: Path) -> None:
        """Write metrics.csv and episodes.csv into ``out`` as slots and episodes end."""
        out.mkdir(parents=True, exist_ok=True)
        self.streams = [CsvStream(out / "metrics.csv", self._metrics_header()),
                        CsvStream(out / "episodes.csv", self._episodes_header())]

    def _metrics_header(self) -> list[str]:
        return ["slot", "episode", "episode_slot", "reward", "sum_v2i_mbps",
                *[f"{c}_v{k}" for k in range(self.scenario.radio.n_v2v)
                  for c in ("rb", "level", "on", "v2v_mbps", "remaining_bits")]]

    def _metrics_row(self, n: int) -> list[Any]:
        r = self.rows[n]
        return [n, n // self.scenario.n_steps, r.episode_slot, fmt(r.reward),
                fmt(r.v2i_rate_bps.sum() / 1e6),
                *[x for k in range(self.scenario.radio.n_v2v) for x in (
                    int(r.rb[k]), int(r.power_level[k]), int(r.transmitted[k]),
                    fmt(r.v2v_rate_bps[k] / 1e6), fmt(r.remaining_bits[k]))]]

    def _episodes_header(self) -> list[str]:
        return ["episode", "delivery_rate", "sum_v2i_mbps", "return",
                *[f"delivery_ms_v{k}" for k in range(self.scenario.radio.n_v2v)]]

    @staticmethod
    def _episode_row(e: dict[str, Any]) -> list[Any]:
        return [e["episode"], fmt(e["delivery_rate"]), fmt(e["sum_v2i_mbps"]),
                fmt(e["return"]), *[fmt(t) for t in e["delivery_ms"]]]

    def episodes(self) -> list[dict[str, Any]]:
        """Metrics of every complete episode (see :meth:`episode`)."""
        return [self.episode(e) for e in range(self.done // self.scenario.n_steps)]

    def episode(self, e: int) -> dict[str, Any]:
        """Episode ``e``'s delivery rate, mean sum V2I rate (Mbit/s), delivery time of every
        link (ms, NaN when not delivered) and return."""
        n = self.scenario.n_steps
        chunk = self.rows[e * n:(e + 1) * n]
        times = chunk[-1].delivery_time_s
        return {
            "episode": e,
            "delivery_rate": float(np.mean(~np.isnan(times))),
            "sum_v2i_mbps": float(np.mean([r.v2i_rate_bps.sum() for r in chunk]) / 1e6),
            "delivery_ms": [float(t * 1e3) for t in times],
            "return": float(sum(r.reward for r in chunk)),
        }

    def summary(self, overhead: Meter, processes: dict[str, int], wall_s: float,
                extra: dict[str, Any] | None = None) -> dict[str, Any]:
        eps = self.episodes()
        times = np.array([t for e in eps for t in e["delivery_ms"]], dtype=np.float64)
        lat_ms = (np.stack([r.decision_latency_s for r in self.rows]).max(axis=1) * 1e3
                  if self.rows else np.zeros(0))
        s: dict[str, Any] = {
            **run_keys(self.scenario.name, self.scheme, self.runner, self.seed, self.done,
                       self.slots),
            "episodes": len(eps),
            "delivery_rate_mean": float(np.mean([e["delivery_rate"] for e in eps]))
            if eps else None,
            "sum_v2i_rate_mbps_mean": float(np.mean([e["sum_v2i_mbps"] for e in eps]))
            if eps else None,
            "delivery_ms_mean": float(np.nanmean(times)) if np.isfinite(times).any() else None,
            "return_mean": float(np.mean([e["return"] for e in eps])) if eps else None,
            **run_tail(overhead, self.done, lat_ms, wall_s,
                       (f"vehicle-{k}" for k in self.lost), processes),
        }
        s.update(extra or {})
        return s

    def write(self, out: Path, overhead: Meter, processes: dict[str, int], wall_s: float,
              extra: dict[str, Any] | None = None) -> dict[str, Any]:
        summary = write_run_files(
            out, {"run": {"scheme": self.scheme, "runner": self.runner, "seed": self.seed,
                          "slots": self.slots}, **v2x_scenario_to_dict(self.scenario)},
            self.streams,
            {"metrics.csv": (self._metrics_header(),
                             (self._metrics_row(n) for n in range(self.done))),
             "episodes.csv": (self._episodes_header(),
                              (self._episode_row(e) for e in self.episodes()))},
            overhead, self.done, lambda: self.summary(overhead, processes, wall_s, extra))
        if self.episodes() and plots_wanted():
            plot_episodes(out, self)
        return summary


def run_v2x_local(
    scenario: V2xScenario, scheme: str, slots: int, seed: int,
    variables: dict[str, np.ndarray] | None = None,
    on_slot: Callable[[int], None] | None = None,
) -> tuple[V2xRecorder, float]:
    """Play ``slots`` greedy slots of ``scheme`` in this process (the network runner's twin):
    same world stream, same per-vehicle agents, same fingerprint. Returns (recorder, wall s)."""
    scn = scheme_scenario(scenario, scheme)
    env = V2xEnv(scn, n_envs=1)
    env.set_fingerprint(*eval_fingerprint(variables))
    agents = [VehicleAgent(k, scn, scheme, seed, variables) for k in range(env.n_agents)]
    rec = V2xRecorder(scn, scheme, "local", seed, slots)
    t0 = time.perf_counter()
    obs: np.ndarray = np.zeros((1, env.n_agents, env.observation_dim))
    for n in range(slots):
        t = n % scn.n_steps
        if t == 0:
            obs = np.stack(list(env.reset(seed=seed if n == 0 else None)[0].values()), axis=1)
            for a in agents:
                a.start_episode()
        action = np.array([[a.act(obs[0, a.k], t) for a in agents]])
        rb, level = decode_action(action, env.n_rb)
        air = env.air
        assert air is not None
        out = env.step_arrays(rb, level)
        delivered = air.delivery_time_s[0]
        rec.add(SlotRecord(
            episode_slot=t, rb=rb[0], power_level=level[0],
            transmitted=air.last_on[0].copy(), v2i_rate_bps=out.rates.v2i_rate_bps[0],
            v2v_rate_bps=out.rates.v2v_rate_bps[0], reward=float(out.reward[0]),
            remaining_bits=out.remaining_bits[0], delivery_time_s=delivered.copy(),
            decision_latency_s=np.full(env.n_agents, scn.timing.compute_s)))
        obs = out.obs
        if on_slot is not None:
            on_slot(n)
    return rec, time.perf_counter() - t0


def report_run(summary: dict[str, Any], out: Path, console: Console) -> None:
    """The end of a V2X run: the summary table (plots/episodes.png is already written)."""
    print_v2x_summary([summary], console)


def print_v2x_summary(summaries: list[dict[str, Any]], console: Console | None = None,
                      title: str = "rrmbed V2X run") -> None:
    console = console or Console()
    t = Table(title=title)
    for col in ("scheme", "runner", "slots", "episodes", "delivery rate", "sum V2I Mbit/s",
                "delivery ms", "backhaul B/slot", "air B/slot", "slots/s"):
        t.add_column(col, justify="left" if col in ("scheme", "runner") else "right")
    for s in summaries:
        t.add_row(s["scheme"], s["runner"], str(s["slots"]), str(s["episodes"]),
                  _f(s["delivery_rate_mean"], 3), _f(s["sum_v2i_rate_mbps_mean"], 2),
                  _f(s["delivery_ms_mean"], 1), f"{s['backhaul_bytes_per_slot']['total']:.1f}",
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
            period = s.get("broadcast_period_slots")
            label = s["scheme"] + (f" (training, weights every {period} slots)" if period
                                   else "")
            t.add_row(label, *[f"{by.get(k, 0.0):.1f}" for k in kinds])
        console.print(t)


def _f(x: float | None, digits: int) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def plot_episodes(out: Path, rec: V2xRecorder) -> Path:
    """plots/episodes.png: delivery rate and sum V2I rate per episode."""
    from matplotlib.figure import Figure  # not pyplot: no backend to resolve at start

    eps = rec.episodes()
    x = [e["episode"] for e in eps]
    fig = Figure(figsize=(8, 5))
    a1, a2 = fig.subplots(2, 1, sharex=True)
    a1.plot(x, [e["delivery_rate"] for e in eps], "o-", ms=3)
    a1.set_ylim(-0.05, 1.05)
    a1.set_ylabel("V2V delivery rate")
    a2.plot(x, [e["sum_v2i_mbps"] for e in eps], "o-", ms=3, color="tab:green")
    a2.set_ylabel("sum V2I rate (Mbit/s)")
    a2.set_xlabel("episode")
    fig.suptitle(f"{rec.scenario.name} · {rec.scheme} · {rec.runner} runner · seed {rec.seed}")
    fig.tight_layout()
    (out / "plots").mkdir(exist_ok=True)
    path = out / "plots" / "episodes.png"
    fig.savefig(path, dpi=100)
    return path


def write_local(rec: V2xRecorder, wall_s: float, out: Path) -> dict[str, Any]:
    return rec.write(out, Meter(), {"local": os.getpid()}, wall_s)
