"""Wire encodings over real processes (issue 15 point 6): a run whose exchanged arrays are
sent as 8-bit codes gives the same metrics and the same metered bytes on both runners,
and other metrics than the float64 run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import S3, metrics, read_csv, rrmbed

WIRE = """
[wire.arrays.decision]
encoding = "uint8"
lo = 0.0
hi = 19.952623149688797

[wire.arrays.csi_upload]
encoding = "uint8"
scale = "db"
lo = -180.0
hi = -30.0
"""


def run(tmp: Path, scenario: Path, runner: str, name: str) -> Path:
    out = tmp / name
    r = rrmbed("run", str(scenario), "--scheme", "wmmse", "--runner", runner, "--slots", "25",
               "--seed", "4", "--out", str(out), "--no-telemetry")
    assert r.returncode == 0, r.stdout + r.stderr
    return out


def slot_rows(out: Path) -> list[dict[str, str]]:
    """overhead.csv without the set-up hello/start (addresses, pids)."""
    return [r for r in read_csv(out / "overhead.csv") if r["kind"] not in ("hello", "start")]


def test_uint8_runs_agree_on_both_runners_and_differ_from_float64(tmp_path: Path) -> None:
    wired = tmp_path / "3cell-k2-uint8.toml"
    wired.write_text(S3.read_text() + WIRE)
    net, loc = run(tmp_path, wired, "network", "net"), run(tmp_path, wired, "local", "loc")
    plain = run(tmp_path, S3, "local", "plain")
    assert metrics(net) == metrics(loc)
    assert slot_rows(net) == slot_rows(loc)
    assert metrics(loc) != metrics(plain)
    by_kind = {(r["kind"], r["sender"]): r for r in slot_rows(loc)}
    plain_kind = {(r["kind"], r["sender"]): r for r in slot_rows(plain)}
    up, up0 = by_kind[("csi_upload", "node-0")], plain_kind[("csi_upload", "node-0")]
    assert up["header_bytes"] == up0["header_bytes"]  # the same header, a smaller payload:
    assert int(up["payload_bytes"]) < int(up0["payload_bytes"])  # 6 gains: 6 B, not 48 B
    # an ext8 each (3 B): float64 dtype, ndim, 2 x u64 shape and 48 B; uint8 5 B, 2 x u32
    # shape, the range (16 B) and 6 codes
    assert int(up0["payload_bytes"]) - int(up["payload_bytes"]) == \
        25 * ((3 + 2 + 16 + 48) - (3 + 5 + 8 + 16 + 6))


def test_table_bits_writes_its_files(tmp_path: Path) -> None:
    out = tmp_path / "bits"
    r = rrmbed("table", "bits", str(S3), "--scheme", "wmmse", "--encoding", "float64",
               "--encoding", "uint8", "--slots", "5", "--seed", "4", "--out", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    rows = read_csv(out / "bits.csv")
    assert [(x["scheme"], x["encoding"]) for x in rows] == [("wmmse", "float64"),
                                                           ("wmmse", "uint8")]
    for x in rows:
        parts = sum(float(x[f"{p}_bytes_per_slot"]) for p in ("header", "payload", "framing"))
        assert parts == pytest.approx(float(x["backhaul_bytes_per_slot"]), rel=1e-12)
    assert float(rows[1]["payload_bytes_per_slot"]) < float(rows[0]["payload_bytes_per_slot"])
    assert rows[1]["header_bytes_per_slot"] == rows[0]["header_bytes_per_slot"]
    assert (out / "bits.json").is_file() and (out / "plots" / "bits.png").is_file()
