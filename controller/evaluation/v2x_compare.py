"""`rrmbed v2x compare`: every V2X scheme trained and evaluated on every seed (local
runner), next to the single-link bound; results.json / results.csv and the table."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from rich.table import Table

from channel_server.v2x import V2xScenario
from controller.training.sweep import SweepConfig
from controller.training.v2x_marl import run_all, single_link_bound


def compare(scenario: V2xScenario, episodes: int, seeds: tuple[int, ...], eval_episodes: int,
            out: Path, sweep_config: SweepConfig | None = None,
            say: Callable[[str], None] = print) -> Table:
    """Train and evaluate (the seeds where ``sweep_config`` says); write
    ``out/results.csv`` and ``out/results.json``; the table."""
    results = run_all(scenario, episodes, seeds, eval_episodes, sweep_config=sweep_config,
                      say=say)
    out.mkdir(parents=True, exist_ok=True)
    t = Table(title=f"{scenario.name}: greedy evaluation on {eval_episodes} fresh drops per "
                    "seed")
    for col in ("scheme", "delivery rate (per seed)", "mean", "sum V2I Mbit/s", "delivery ms"):
        t.add_column(col, justify="left" if col == "scheme" else "right")
    with (out / "results.csv").open("w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["scheme", "seed", "delivery_rate", "sum_v2i_mbps", "mean_delivery_ms"])
        for scheme, rows in results.items():
            for r in rows:
                wr.writerow([scheme, r["seed"], r["delivery_rate"], r["sum_v2i_mbps"],
                             r["mean_delivery_ms"]])
            d = [r["delivery_rate"] for r in rows]
            t.add_row(scheme, " ".join(f"{x:.3f}" for x in d), f"{np.mean(d):.3f}",
                      f"{np.mean([r['sum_v2i_mbps'] for r in rows]):.2f}",
                      f"{np.nanmean([r['mean_delivery_ms'] for r in rows]):.1f}")
    bounds = [single_link_bound(scenario, eval_episodes, 1_000_000 + x) for x in seeds]
    t.add_row("bound: each link alone", " ".join(f"{x:.3f}" for x in bounds),
              f"{np.mean(bounds):.3f}", "-", "-")
    (out / "results.json").write_text(json.dumps({**results, "single_link_bound": bounds},
                                                 indent=2) + "\n")
    return t
