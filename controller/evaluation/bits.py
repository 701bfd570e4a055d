"""Sum rate against bits per message (issue 15, point 6): the cellular schemes that exchange
arrays run once per wire encoding of those arrays (``[wire]``, :mod:`protocols.wire`), on
the same seed and weights, and the table reads each run's directory.

The encodings (:func:`wire_for`): powers (``power_forward``, ``decision``) linear over
[0, Pmax] watts; CSI (``csi_upload``) on the dB scale over ``CSI_DB_RANGE``, for every
encoding but float64 (float16 cannot even hold a linear gain of 1e-13). float64 is the
run without any wire encoding, bit for bit.

Bytes per slot are the run phase's backhaul bytes, split into the frames' header, payload
and ZMTP framing (the meter's split); bits per message are those of one exchanged message
(the kinds that declare ``EXCHANGED``), on average.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from channel_server.config import RadioConfig, Scenario, WireConfig
from node.schemes import Scheme
from node.schemes.cellular import sum_rate_schemes
from protocols.messages import REGISTRY
from protocols.wire import BITS, ArrayEncoding

ENCODINGS: Final = ("float64", "float32", "float16", "uint16", "uint8")
"""The table's encodings, widest first."""

CSI_DB_RANGE: Final = (-180.0, -30.0)
"""Range of the uploaded CSI, dB of the linear power gain |h|^2 (pathloss and fading).
On 12,000 slots of 3cell-k2 and 7cell-k8 the gains lie between -217 and -54 dB, 99.99 %
of them above -187 dB; a gain below -180 dB is 70 dB under the noise at Pmax (-98 dBW
noise, 13 dBW Pmax) and clipped without harm; at 8 bits a step is 0.59 dB."""



def default_schemes(radio: RadioConfig) -> list[Scheme]:
    """The cellular schemes that exchange arrays (the chain's forwarded powers, the central
    schemes' uploaded CSI and returned powers): the trainable ones (round-robin,
    centralized) and the non-optimal references (WMMSE: a central scheme without weights,
    so the table means something untrained), those that fit ``radio``."""
    return [s for s in sum_rate_schemes(radio) if s.exchange in ("chain", "central")
            and (s.trainable or (s.options.get("reference")
                                                    and not s.options.get("optimal")))]


def wire_for(encoding: str, radio: RadioConfig) -> WireConfig:
    """The wire configuration of one encoding of the cellular exchanged arrays."""
    if encoding == "float64":
        return WireConfig()
    powers = ArrayEncoding(encoding, "linear", 0.0, radio.pmax_w)  # type: ignore[arg-type]
    csi = ArrayEncoding(encoding, "db", *CSI_DB_RANGE)  # type: ignore[arg-type]
    return WireConfig(arrays={"power_forward": powers, "decision": powers, "csi_upload": csi})


def with_wire(scenario: Scenario, encoding: str) -> Scenario:
    return dataclasses.replace(scenario, wire=wire_for(encoding, scenario.radio))


def exchanged_kinds() -> set[str]:
    """Message kinds that declare exchanged arrays."""
    return {kind for kind, cls in REGISTRY.items() if cls.EXCHANGED}


def row_of(scheme: str, encoding: str, summary: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """One table row from a run's summary and overhead.csv."""
    slots = max(int(summary["slots"]), 1)
    kinds = exchanged_kinds()
    messages = exchanged_bytes = exchanged_payload = 0
    with (run_dir / "overhead.csv").open() as f:
        for r in csv.DictReader(f):
            if r["plane"] == "backhaul" and r["kind"] in kinds:
                messages += int(r["messages"])
                exchanged_bytes += int(r["bytes"])
                exchanged_payload += int(r["payload_bytes"])
    bh = summary["backhaul_bytes_per_slot"]
    return {
        "scheme": scheme,
        "encoding": encoding,
        "bits_per_value": BITS[encoding],
        "sum_rate_bps_hz": summary["sum_rate_bps_hz_mean"],
        "sum_rate_mbps": summary["sum_rate_mbps_mean"],
        "backhaul_bytes_per_slot": bh["total"],
        "header_bytes_per_slot": bh["header"],
        "payload_bytes_per_slot": bh["payload"],
        "framing_bytes_per_slot": bh["framing"],
        "messages_per_slot": messages / slots,
        "bits_per_message": 8 * exchanged_bytes / messages if messages else 0.0,
        "payload_bits_per_message": 8 * exchanged_payload / messages if messages else 0.0,
        "deadline_misses": summary["deadline_misses"],
    }


RunFn = Callable[[str, str, Scenario, Path], dict[str, Any]]
"""run(scheme, encoding, scenario with its [wire], run_dir) -> summary."""


def measure(scenario: Scenario, schemes: list[str], run: RunFn, out: Path,
            encodings: tuple[str, ...] = ENCODINGS) -> list[dict[str, Any]]:
    """Every scheme in every encoding: the table's rows (scheme-major)."""
    rows = []
    for scheme in schemes:
        for encoding in encodings:
            run_dir = out / "runs" / f"{scheme}-{encoding}"
            summary = run(scheme, encoding, with_wire(scenario, encoding), run_dir)
            rows.append(row_of(scheme, encoding, summary, run_dir))
    return rows


COLUMNS: Final = [("scheme", "scheme"), ("encoding", "encoding"), ("bits_per_value", "bits"),
                  ("sum_rate_mbps", "sum-rate Mbit/s"), ("sum_rate_bps_hz", "b/s/Hz"),
                  ("backhaul_bytes_per_slot", "backhaul B/slot"),
                  ("header_bytes_per_slot", "header B/slot"),
                  ("payload_bytes_per_slot", "payload B/slot"),
                  ("framing_bytes_per_slot", "framing B/slot"),
                  ("bits_per_message", "bits/msg"),
                  ("payload_bits_per_message", "payload bits/msg"),
                  ("deadline_misses", "misses")]


def _cell(key: str, v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if key == "sum_rate_bps_hz" else f"{v:.1f}"
    return str(v)


def publish(rows: list[dict[str, Any]], title: str, out: Path, console: Any) -> None:
    """Print the table; write bits.csv, bits.json and plots/bits.png into ``out``."""
    from rich.table import Table

    t = Table(title=title)
    for _, head in COLUMNS:
        t.add_column(head, justify="left" if head in ("scheme", "encoding") else "right")
    for r in rows:
        t.add_row(*[_cell(k, r[k]) for k, _ in COLUMNS])
    console.print(t)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "bits.csv").open("w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(rows[0]))
        wr.writeheader()
        wr.writerows(rows)
    (out / "bits.json").write_text(json.dumps(rows, indent=2))
    plot(rows, title, out / "plots" / "bits.png")


def plot(rows: list[dict[str, Any]], title: str, path: Path) -> None:
    """Sum rate against bits per exchanged message, one line per scheme, each point
    labelled with its encoding."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    for scheme in dict.fromkeys(r["scheme"] for r in rows):
        mine = sorted((r for r in rows if r["scheme"] == scheme),
                      key=lambda r: r["bits_per_message"])
        x = [r["bits_per_message"] for r in mine]
        a1.plot(x, [r["sum_rate_mbps"] for r in mine], marker="o", label=scheme)
        for r in mine:
            a1.annotate(r["encoding"], (r["bits_per_message"], r["sum_rate_mbps"]),
                        fontsize=7, xytext=(3, 3), textcoords="offset points")
        a2.plot([r["bits_per_value"] for r in mine],
                [r["payload_bytes_per_slot"] for r in mine], marker="o", label=f"{scheme} payload")
        a2.plot([r["bits_per_value"] for r in mine],
                [r["header_bytes_per_slot"] for r in mine], marker="x", ls="--",
                label=f"{scheme} header")
    a1.set_xlabel("bits per exchanged message (on the wire)")
    a1.set_ylabel("sum-rate (Mbit/s)")
    a1.legend(fontsize=8)
    a2.set_xscale("log", base=2)
    a2.set_xlabel("bits per value")
    a2.set_ylabel("backhaul bytes per slot")
    a2.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
