"""Paper 001's Tables III (information exchange) and IV (execution time), measured:
every scheme runs over the network runner and the table reads its run directory.

Bytes per BS count what a BS sends plus what it receives on the backhaul.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from channel_server.config import RadioConfig  # noqa: E402
from node.schemes import SCHEMES  # noqa: E402
from node.schemes.cellular import KIND, sum_rate_schemes  # noqa: E402

PAPER_EXCHANGE = {"central": "O(KB^2)", "chain": "O(KB) per BS", "none": "0"}
"""Paper 001's Table III: information exchanged per slot, by exchange pattern."""


def table_schemes(radio: RadioConfig) -> list[str]:
    """Every cellular scheme that can run on ``radio``, in the tables' order (rank)."""
    return [s.name for s in sum_rate_schemes(radio)]


def paper_time_s(scheme: str) -> float | None:
    """Paper 001's Table IV execution time of ``scheme`` per decision (None: not reported)."""
    t: float | None = SCHEMES.get(KIND, scheme).options.get("paper_time_s")
    return t


def per_bs_backhaul(run_dir: Path, n_bs: int, slots: int) -> list[float]:
    """Backhaul bytes per slot that each BS sends or receives."""
    per = [0.0] * n_bs
    with (run_dir / "overhead.csv").open() as f:
        for r in csv.DictReader(f):
            if r["plane"] != "backhaul":
                continue
            run_bytes = int(r["bytes"]) - int(r["setup_bytes"])
            for end in (r["sender"], r["receiver"]):
                if end.startswith("node-"):
                    per[int(end.split("-")[1])] += run_bytes / slots
    return per


def row_of(scheme: str, summary: dict[str, Any], run_dir: Path, n_bs: int) -> dict[str, Any]:
    per_bs = per_bs_backhaul(run_dir, n_bs, summary["slots"])
    return {
        "scheme": scheme,
        "paper_exchange": PAPER_EXCHANGE.get(SCHEMES.get(KIND, scheme).exchange),
        "backhaul_bytes_per_slot": summary["backhaul_bytes_per_slot"]["total"],
        "backhaul_bytes_per_bs_mean": sum(per_bs) / n_bs,
        "backhaul_bytes_per_bs_max": max(per_bs),
        "latency_emulated_ms_p50": summary["decision_latency_ms_p50"],
        "latency_emulated_ms_p99": summary["decision_latency_ms_p99"],
        "latency_wall_ms_p50": summary["decision_wall_ms_p50"],
        "latency_wall_ms_p99": summary["decision_wall_ms_p99"],
        "compute_ms_per_decision": summary["compute_ms_mean"],
        "paper_execution_ms": None if (t := paper_time_s(scheme)) is None else t * 1e3,
        "sum_rate_mbps": summary["sum_rate_mbps_mean"],
        "deadline_misses": summary["deadline_misses"],
    }


def measure(schemes: list[str], run: Callable[[str, Path], dict[str, Any]], out: Path,
            n_bs: int) -> list[dict[str, Any]]:
    """Run every scheme (``run(scheme, run_dir) -> summary``) and collect table rows."""
    rows = []
    for scheme in schemes:
        run_dir = out / scheme
        rows.append(row_of(scheme, run(scheme, run_dir), run_dir, n_bs))
    return rows


EXCHANGE_COLUMNS = [("scheme", "scheme"), ("paper_exchange", "paper"),
                    ("backhaul_bytes_per_slot", "backhaul B/slot"),
                    ("backhaul_bytes_per_bs_mean", "per BS mean"),
                    ("backhaul_bytes_per_bs_max", "per BS max"),
                    ("sum_rate_mbps", "sum-rate Mbit/s")]
LATENCY_COLUMNS = [("scheme", "scheme"),
                   ("latency_emulated_ms_p50", "emulated p50 ms"),
                   ("latency_emulated_ms_p99", "emulated p99 ms"),
                   ("latency_wall_ms_p50", "wall p50 ms"), ("latency_wall_ms_p99", "wall p99 ms"),
                   ("compute_ms_per_decision", "compute ms"),
                   ("paper_execution_ms", "paper ms (i5, TF 1.14)"),
                   ("deadline_misses", "misses"), ("sum_rate_mbps", "sum-rate Mbit/s")]


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def publish(rows: list[dict[str, Any]], which: str, title: str, out: Path,
            console: Console | None = None) -> None:
    """Print the table, write <which>.csv, <which>.json and plots/<which>.png."""
    columns = EXCHANGE_COLUMNS if which == "exchange" else LATENCY_COLUMNS
    t = Table(title=title)
    for _, head in columns:
        t.add_column(head, justify="left" if head == "scheme" else "right")
    for r in rows:
        t.add_row(*[_cell(r[k]) for k, _ in columns])
    (console or Console()).print(t)
    out.mkdir(parents=True, exist_ok=True)
    with (out / f"{which}.csv").open("w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(rows[0]))
        wr.writeheader()
        wr.writerows(rows)
    (out / f"{which}.json").write_text(json.dumps(rows, indent=2))
    plot(rows, which, title, out / "plots" / f"{which}.png")


def plot(rows: list[dict[str, Any]], which: str, title: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    names = [r["scheme"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    if which == "exchange":
        panels = [("backhaul_bytes_per_slot", "backhaul bytes per slot"),
                  ("backhaul_bytes_per_bs_max", "bytes per slot, busiest BS")]
    else:
        panels = [("latency_emulated_ms_p50", "emulated decision latency p50 (ms)"),
                  ("latency_wall_ms_p50", "wall decision latency p50 (ms)")]
    for ax, (key, label) in zip(axes, panels, strict=True):
        vals = [r[key] or 0.0 for r in rows]
        ax.bar(names, vals, color="tab:blue")
        ax.set_ylabel(label)
        ax.tick_params(axis="x", rotation=35)
        for i, v in enumerate(vals):
            ax.text(i, v, f"{v:.0f}" if v >= 100 else f"{v:.3g}", ha="center", va="bottom",
                    fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
