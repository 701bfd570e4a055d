"""What a round of the message-passing GNN costs (issue 15 point 6): ``rrmbed gnn cost``.

The MPGNN applies one shared layer L times, so trained weights run at any number of
layers. Three sweeps of metered runs of ``mpgnn`` on one scenario and seed:

* **layers** (L = 1, 2, ...; float64 messages, the scenario's backhaul): ``ic_round`` bytes
  per slot and per layer, decision latency (L x (link latency + compute)), deadline misses
  and the sum rate;
* **encodings** (the weights' L): each ``ic_round`` array sent as float64, float32,
  float16, 16-bit or 8-bit uniform quantization (the power fraction over [0, 1], the gain
  features over ``feature_range`` decades): header and payload bytes, sum rate;
* **latencies** (the weights' L, float64): a constant backhaul latency per link, so the
  decision latency passes the deadline and misses appear.

WMMSE at the controller on the same slots is the reference row (its uploads and decisions
are its signalling). Every run is a run directory under ``OUT/runs``; the rows go to
``cost.csv`` as each run finishes (Ctrl-C keeps them), then ``cost.json`` and
``plots/cost.png``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from channel_server.config import WireConfig
from channel_server.kinds import Resolved
from protocols.weights import WeightsArtifact
from protocols.wire import BITS, ArrayEncoding

RunFn = Callable[[Resolved, str, Path, Path | None], dict[str, Any]]
"""``run(resolved, scheme, run_dir, weights) -> summary`` (one metered run)."""

GNN_KINDS = ("ic_round",)
"""The message kinds of the GNN's signalling."""
CENTRAL_KINDS = ("csi_upload", "decision")
"""The message kinds of a central scheme's signalling."""


@dataclass(frozen=True)
class CostConfig:
    layers: tuple[int, ...] = (1, 2, 3, 4)
    """Numbers of layers (message rounds) of the layer sweep."""
    encodings: tuple[str, ...] = ("float64", "float32", "float16", "uint16", "uint8")
    """Wire encodings of the encoding sweep."""
    latencies_ms: tuple[float, ...] = (0.5, 2.0, 4.0)
    """Constant one-way backhaul latencies of the latency sweep, ms."""
    feature_range: tuple[float, float] = (0.0, 12.0)
    """Range of the quantized gain features, decades of SNR at full power (the power
    fraction is quantized over [0, 1])."""


def with_layers(arrays: dict[str, np.ndarray], n_layers: int) -> dict[str, np.ndarray]:
    """The same shared layer, applied ``n_layers`` times."""
    return {**arrays, "mpgnn.n_layers": np.array(n_layers, dtype=np.int64)}


def wire_for(encoding: str, feature_range: tuple[float, float]) -> WireConfig:
    """``ic_round``'s arrays in ``encoding``: power fraction over [0, 1], features over
    ``feature_range``."""
    lo, hi = feature_range
    return WireConfig(arrays={
        "ic_round.power": ArrayEncoding(encoding, "linear", 0.0, 1.0),  # type: ignore[arg-type]
        "ic_round.features": ArrayEncoding(encoding, "linear", lo, hi)})  # type: ignore[arg-type]


def with_latency(resolved: Resolved, latency_ms: float) -> Resolved:
    s = resolved.scenario
    default = dataclasses.replace(s.backhaul.default, model="constant",
                                  latency_s=latency_ms / 1e3)
    backhaul = dataclasses.replace(s.backhaul, default=default, links={})
    return dataclasses.replace(resolved, scenario=dataclasses.replace(s, backhaul=backhaul))


def with_wire(resolved: Resolved, wire: WireConfig) -> Resolved:
    return dataclasses.replace(resolved, scenario=dataclasses.replace(resolved.scenario,
                                                                      wire=wire))


def row_of(sweep: str, scheme: str, layers: int, encoding: str, latency_ms: float,
           summary: dict[str, Any], kinds: tuple[str, ...]) -> dict[str, Any]:
    backhaul = summary["backhaul_bytes_per_slot"]
    signalling = sum(backhaul["by_kind"].get(k, 0.0) for k in kinds)
    parts = [backhaul["parts_by_kind"].get(k, {}) for k in kinds]
    header = sum(p.get("header", 0.0) for p in parts)
    payload = sum(p.get("payload", 0.0) for p in parts)
    return {
        "sweep": sweep, "scheme": scheme, "layers": layers, "encoding": encoding,
        "bits_per_value": BITS[encoding], "latency_ms": latency_ms,
        "signalling_bytes_per_slot": signalling,
        "bytes_per_layer_per_slot": signalling / layers if layers else None,
        "header_bytes_per_slot": header, "payload_bytes_per_slot": payload,
        "sum_rate_bps_hz": summary["sum_rate_bps_hz_mean"],
        "fraction_of_wmmse": summary["fraction_of_wmmse"],
        "decision_latency_ms_p50": summary["decision_latency_ms_p50"],
        "decision_latency_ms_p99": summary["decision_latency_ms_p99"],
        "deadline_misses": summary["deadline_misses"],
        "missing_messages": summary["missing_messages"],
        "slots": summary["slots"],
    }


def measure(resolved: Resolved, weights: Path, cfg: CostConfig, run: RunFn,
            out: Path) -> list[dict[str, Any]]:
    """Every run of the three sweeps and the WMMSE reference; the rows (also appended to
    ``out/cost.csv`` as they come)."""
    art = WeightsArtifact.load(weights)
    own_layers = int(np.asarray(art.arrays["mpgnn.n_layers"]))
    out.mkdir(parents=True, exist_ok=True)
    base_latency = float(resolved.scenario.backhaul.default.latency_s * 1e3)
    rows: list[dict[str, Any]] = []
    csv_path = out / "cost.csv"
    writer: csv.DictWriter[str] | None = None
    f = csv_path.open("w", newline="")

    def record(row: dict[str, Any]) -> None:
        nonlocal writer
        rows.append(row)
        if writer is None:
            writer = csv.DictWriter(f, fieldnames=list(row))
            writer.writeheader()
        writer.writerow(row)
        f.flush()

    def weights_at(n_layers: int) -> Path:
        path = out / "weights" / f"mpgnn-L{n_layers}.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        WeightsArtifact(art.meta, with_layers(art.arrays, n_layers)).save(path)
        return path

    try:
        ref = run(resolved, "wmmse", out / "runs" / "wmmse", None)
        record(row_of("reference", "wmmse", 0, "float64", base_latency, ref, CENTRAL_KINDS))
        for n_layers in cfg.layers:
            s = run(resolved, "mpgnn", out / "runs" / f"layers-{n_layers}", weights_at(n_layers))
            record(row_of("layers", "mpgnn", n_layers, "float64", base_latency, s, GNN_KINDS))
        for enc in cfg.encodings:
            s = run(with_wire(resolved, wire_for(enc, cfg.feature_range)), "mpgnn",
                    out / "runs" / f"wire-{enc}", weights_at(own_layers))
            record(row_of("encodings", "mpgnn", own_layers, enc, base_latency, s, GNN_KINDS))
        for lat in cfg.latencies_ms:
            s = run(with_latency(resolved, lat), "mpgnn", out / "runs" / f"latency-{lat:g}ms",
                    weights_at(own_layers))
            record(row_of("latencies", "mpgnn", own_layers, "float64", lat, s, GNN_KINDS))
    finally:
        f.close()
    (out / "cost.json").write_text(json.dumps(rows, indent=2))
    if rows:
        plot(rows, resolved, out / "plots" / "cost.png")
    return rows


def plot(rows: list[dict[str, Any]], resolved: Resolved, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    ref = next((r for r in rows if r["sweep"] == "reference"), None)
    lay = [r for r in rows if r["sweep"] == "layers"]
    enc = [r for r in rows if r["sweep"] == "encodings"]
    lat = [r for r in rows if r["sweep"] == "latencies"]
    a = axes[0]
    a.plot([r["layers"] for r in lay], [r["sum_rate_bps_hz"] for r in lay], "o-", label="MPGNN")
    if ref is not None:
        a.axhline(ref["sum_rate_bps_hz"], ls="--", color="tab:green", label="WMMSE")
    a.set_xlabel("layers (message rounds)")
    a.set_ylabel("sum rate, bit/s/Hz")
    b = a.twinx()
    b.plot([r["layers"] for r in lay], [r["signalling_bytes_per_slot"] for r in lay], "s:",
           color="tab:red")
    b.set_ylabel("ic_round bytes per slot", color="tab:red")
    a.legend(loc="lower right")
    a = axes[1]
    a.plot([r["bits_per_value"] for r in enc], [r["sum_rate_bps_hz"] for r in enc], "o-")
    for r in enc:
        a.annotate(r["encoding"], (r["bits_per_value"], r["sum_rate_bps_hz"]), fontsize=8)
    a.set_xscale("log", base=2)
    a.set_xlabel("bits per exchanged value")
    a.set_ylabel("sum rate, bit/s/Hz")
    a = axes[2]
    a.plot([r["latency_ms"] for r in lat], [r["decision_latency_ms_p50"] for r in lat], "o-",
           label="decision latency p50")
    a.axhline(resolved.scenario.timing.deadline_s * 1e3, color="red", ls=":", label="deadline")
    a.set_xlabel("backhaul latency per link, ms")
    a.set_ylabel("ms")
    c = a.twinx()
    c.bar([r["latency_ms"] for r in lat], [r["deadline_misses"] / max(r["slots"], 1)
                                          for r in lat], width=0.3, alpha=0.3, color="gray")
    c.set_ylabel("misses per slot")
    a.legend(loc="upper left")
    fig.suptitle(f"{resolved.name}: what the MPGNN's message rounds cost")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
