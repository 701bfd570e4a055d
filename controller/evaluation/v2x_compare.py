"""`rrmbed v2x compare`: every V2X scheme trained and evaluated on every seed (local
runner), next to the single-link bound; results.json / results.csv and the table.

Every scheme of a seed is evaluated on the same fresh drops (seed 10^6 + s), so schemes are
compared pair by pair within each seed: :func:`paired` gives, for every pair of schemes
(a, b), the mean over seeds of ``a - b`` (delivery rate and sum V2I rate) with its 95 %
Student-t confidence interval (``n - 1`` degrees of freedom); a pair whose interval leaves
out 0 differs at that level. They are printed as a second table and written to paired.csv
and results.json ``paired``."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table
from scipy import stats

from channel_server.v2x import V2xScenario
from controller.training.sweep import SweepConfig
from controller.training.v2x_marl import evaluate_episodes, run_all, single_link_bound

METRICS = ("delivery_rate", "sum_v2i_mbps")
"""What :func:`paired` compares."""


def difference_ci(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray,
                  level: float = 0.95) -> tuple[float, float, float]:
    """Mean of the paired differences ``a - b`` and its ``level`` Student-t confidence
    interval ``(mean, low, high)`` (NaN bounds with fewer than two pairs)."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    mean = float(d.mean())
    if d.size < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + level / 2, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size))
    return mean, mean - half, mean + half


def paired(results: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Every pair of schemes (in the results' order) on every metric of ``METRICS``: the
    mean paired difference over the seeds they share, its 95 % interval, and whether the
    interval leaves out 0."""
    rows = []
    names = list(results)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            by_seed = {r["seed"]: r for r in results[b]}
            shared = [(r, by_seed[r["seed"]]) for r in results[a] if r["seed"] in by_seed]
            for metric in METRICS:
                mean, low, high = difference_ci([x[metric] for x, _ in shared],
                                                [y[metric] for _, y in shared])
                rows.append({"a": a, "b": b, "metric": metric, "seeds": len(shared),
                             "mean_difference": mean, "ci95_low": low, "ci95_high": high,
                             "differs": bool(low > 0 or high < 0)})
    return rows


def versus(scenario: V2xScenario, learned: str, variables: dict[str, np.ndarray],
           other: str, drops: int, seed: int, trained_episodes: int) -> dict[str, Any]:
    """``learned`` (greedy, ``variables``) against ``other`` on the same ``drops`` fresh
    drops (world seed ``seed``): each one's mean delivery rate, the mean of the per-drop
    differences with its 95 % interval, and a sentence that says whether ``learned`` beats
    ``other`` at that level."""
    a = evaluate_episodes(scenario, learned, variables, drops, seed)["delivery_rate"]
    b = evaluate_episodes(scenario, other, {}, drops, seed)["delivery_rate"]
    mean, low, high = difference_ci(a, b)
    verdict = (f"{learned} beats {other}" if low > 0 else
               f"{other} beats {learned}" if high < 0 else
               f"{learned} is not distinguishable from {other} (the interval holds 0)")
    sentence = (f"delivery on {drops} fresh drops: {learned} {a.mean():.3f}, {other} "
                f"{b.mean():.3f}; paired difference {mean:+.3f}, 95 % interval "
                f"[{low:+.3f}, {high:+.3f}]: {verdict} after {trained_episodes} training "
                "episodes")
    return {"learned": learned, "other": other, "drops": drops, "seed": seed,
            "trained_episodes": trained_episodes, "learned_delivery": float(a.mean()),
            "other_delivery": float(b.mean()), "mean_difference": mean, "ci95_low": low,
            "ci95_high": high, "beats": bool(low > 0), "sentence": sentence}


def paired_table(rows: list[dict[str, Any]], title: str) -> Table:
    t = Table(title=title)
    for col in ("a - b", "metric", "seeds", "mean", "95 % interval", "differs"):
        t.add_column(col, justify="left" if col in ("a - b", "metric") else "right")
    for r in rows:
        t.add_row(f"{r['a']} - {r['b']}", r["metric"], str(r["seeds"]),
                  f"{r['mean_difference']:+.3f}",
                  f"[{r['ci95_low']:+.3f}, {r['ci95_high']:+.3f}]",
                  "yes" if r["differs"] else "no")
    return t


def compare(scenario: V2xScenario, episodes: int, seeds: tuple[int, ...], eval_episodes: int,
            out: Path, sweep_config: SweepConfig | None = None,
            say: Callable[[str], None] = print) -> tuple[Table, Table]:
    """Train and evaluate (the seeds where ``sweep_config`` says); write each seed's rows to
    ``out/seeds.jsonl`` as it finishes (a sweep stopped part-way keeps the seeds it ran),
    then ``out/results.csv``, ``out/paired.csv`` and ``out/results.json``; the table of
    schemes and the table of paired differences."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "seeds.jsonl").write_text("")

    def keep(seed: int, rows: dict[str, dict[str, Any]]) -> None:
        with (out / "seeds.jsonl").open("a") as f:
            f.write(json.dumps({"seed": seed, "rows": rows}) + "\n")

    results = run_all(scenario, episodes, seeds, eval_episodes, sweep_config=sweep_config,
                      say=say, on_seed=keep)
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
    pairs = paired(results)
    with (out / "paired.csv").open("w", newline="") as f:
        dw = csv.DictWriter(f, fieldnames=list(pairs[0]))
        dw.writeheader()
        dw.writerows(pairs)
    (out / "results.json").write_text(json.dumps({**results, "single_link_bound": bounds,
                                                  "paired": pairs}, indent=2) + "\n")
    return t, paired_table(pairs, f"paired differences over {len(seeds)} seeds, same drops")
