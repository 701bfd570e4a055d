"""Wire encodings of exchanged arrays (issue 15 point 6): round trips within half a
quantization step (exact for float64, within float precision for float32/16), clipping,
frames that describe themselves, bad frames refused by name, the scenario's [wire] table,
and the meter's header + payload + framing = the bytes on the wire."""

from __future__ import annotations

import csv
import dataclasses
import math
import struct
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest

from channel_server.config import (
    ScenarioError,
    WireConfig,
    load_scenario,
    override,
    scenario_from_dict,
    scenario_to_dict,
    wire_format_of,
)
from channel_server.kinds import KINDS, Resolved
from controller.runners.local import run_local
from protocols import messages as m
from protocols.codec import EXT_NDARRAY, decode, encode, header_length
from protocols.errors import ProtocolError
from protocols.meter import Meter, wire_size
from protocols.wire import EXT_WIRE, ArrayEncoding, WireFormat
from tests.helpers import MESSAGE_EXAMPLES as EXAMPLES
from tests.helpers import S3

HDR: dict[str, Any] = {"sender": "controller", "seq": 9, "slot": 4,
                       "sent_ns": 1_700_000_000_123_456_789, "chain_latency_s": 0.0015}
RNG = np.random.default_rng(15)
PMAX = 19.952623149688797


def via(wire: WireFormat | None, powers: np.ndarray) -> np.ndarray:
    """``powers`` sent in a Decision with ``wire`` and decoded with no configuration."""
    got = decode(encode(m.Decision(powers, **HDR), wire=wire))
    assert isinstance(got, m.Decision)
    return got.powers


def decision_wire(enc: ArrayEncoding) -> WireFormat:
    return WireFormat(arrays={"decision": enc})


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("encoding", ["uint8", "uint16"])
@pytest.mark.parametrize("lo,hi", [(0.0, PMAX), (-3.5, 7.25), (1e-3, 1e-3 + 1e-9)])
def test_quantization_round_trip_within_half_a_step(encoding: str, lo: float, hi: float) -> None:
    enc = ArrayEncoding(encoding, "linear", lo, hi)  # type: ignore[arg-type]
    x = np.concatenate([RNG.uniform(lo, hi, 2000), [lo, hi, (lo + hi) / 2]])
    got = via(decision_wire(enc), x)
    assert got.dtype == np.float64 and got.shape == x.shape
    assert enc.step == (hi - lo) / (2**enc.bits - 1)
    ulps = 4 * np.spacing(max(abs(lo), abs(hi)))  # the arithmetic's own rounding
    assert np.abs(got - x).max() <= enc.step / 2 + ulps
    assert got.min() >= lo and got.max() <= hi
    assert got[-3] == lo and got[-2] == hi  # the range's ends are levels
    levels = (got - lo) / enc.step
    assert np.allclose(levels, np.rint(levels), atol=1e-3)  # every value is a level


@pytest.mark.parametrize("encoding", ["uint8", "uint16"])
def test_quantization_in_db_is_within_half_a_step_in_db(encoding: str) -> None:
    enc = ArrayEncoding(encoding, "db", -180.0, -30.0)  # type: ignore[arg-type]
    gains = 10 ** RNG.uniform(-18.0, -3.0, (7, 8))
    got = decode(encode(m.CsiUpload(gains, **HDR), wire=WireFormat(arrays={"csi_upload": enc})))
    assert isinstance(got, m.CsiUpload) and got.gains.shape == (7, 8)
    err_db = np.abs(10 * np.log10(got.gains) - 10 * np.log10(gains))
    assert err_db.max() <= enc.step / 2 * (1 + 1e-9)


def test_float64_is_the_frame_without_any_encoding() -> None:
    x = RNG.uniform(0, PMAX, 8)
    plain = encode(m.Decision(x, **HDR))
    for wire in (WireFormat(), decision_wire(ArrayEncoding("float64", "db", -1.0, 1.0)),
                 WireFormat(arrays={"csi_upload": ArrayEncoding("uint8", lo=0.0, hi=1.0)})):
        assert encode(m.Decision(x, **HDR), wire=wire) == plain
    assert np.array_equal(via(None, x), x)
    assert WireConfig().format() is None  # the default: the drivers encode as before


@pytest.mark.parametrize("encoding,eps", [("float32", 2.0**-24), ("float16", 2.0**-11)])
def test_floats_round_trip_within_their_precision(encoding: str, eps: float) -> None:
    x = RNG.uniform(0.01, PMAX, 500)
    got = via(decision_wire(ArrayEncoding(encoding)), x)  # type: ignore[arg-type]
    assert got.dtype == np.float64
    assert np.all(np.abs(got - x) <= eps * np.abs(x) * (1 + 1e-12))
    assert np.array_equal(got, x.astype(np.float32 if encoding == "float32" else np.float16))


def test_float32_arrays_come_back_float32() -> None:
    x = RNG.uniform(0, 1, (3, 2)).astype(np.float32)
    for enc in (ArrayEncoding("uint8", lo=0.0, hi=1.0), ArrayEncoding("float16")):
        got = via(decision_wire(enc), x)
        assert got.dtype == np.float32 and got.shape == (3, 2)


# --------------------------------------------------------------------------- clipping


def test_values_are_clipped_to_the_range() -> None:
    x = np.array([-5.0, 0.0, 0.5, 1.0, 7.0, np.inf, -np.inf])
    for encoding in ("uint8", "uint16", "float32", "float16"):
        enc = ArrayEncoding(encoding, lo=0.0, hi=1.0)
        got = via(decision_wire(enc), x)
        assert got[0] == 0.0 and got[4] == 1.0 and got[5] == 1.0 and got[6] == 0.0, encoding
        assert got[1] == 0.0 and got[3] == 1.0 and abs(got[2] - 0.5) < 3e-3, encoding


def test_a_float_never_rounds_out_of_its_range() -> None:
    """Pmax = 43 dBm is no float16: its nearest float16 lies above it, and a node would
    refuse the power as over the limit."""
    assert float(np.float16(PMAX)) > PMAX
    got = via(decision_wire(ArrayEncoding("float16", lo=0.0, hi=PMAX)), np.array([PMAX, 0.0]))
    assert got[0] <= PMAX and PMAX - got[0] < 0.02 and got[1] == 0.0
    big = via(decision_wire(ArrayEncoding("float16")), np.array([1e6, -1e6]))
    assert np.isfinite(big).all() and big[0] == 65504.0  # the largest finite float16


def test_db_scale_sends_zero_as_lo_and_refuses_negative_and_nan() -> None:
    enc = ArrayEncoding("uint8", "db", -180.0, -30.0)
    got = via(decision_wire(enc), np.array([0.0, 1e-5]))
    assert got[0] == 10 ** (-18.0) and abs(10 * np.log10(got[1]) + 50) <= enc.step / 2
    for bad, text in ((np.array([-1.0]), "negative value in dB"),
                      (np.array([np.nan]), "NaN")):
        with pytest.raises(ProtocolError, match=f"decision.powers: .*{text}"):
            encode(m.Decision(bad, **HDR), wire=decision_wire(enc))


# --------------------------------------------------------------------------- the frame


def ext_of(frame: bytes) -> msgpack.ExtType:
    obj = msgpack.unpackb(frame, raw=False, ext_hook=lambda c, d: msgpack.ExtType(c, d))
    ext: msgpack.ExtType = obj[-1]
    return ext


def test_the_frame_describes_itself() -> None:
    enc = ArrayEncoding("uint8", lo=-1.0, hi=3.0)
    x = RNG.uniform(-1, 3, (2, 3))
    frame = encode(m.PowerForward([0, 2], x, **HDR), wire=WireFormat(arrays={"power_forward":
                                                                             enc}))
    ext = ext_of(frame)
    assert ext.code == EXT_WIRE
    method, bits, scale, dtype, ndim = struct.unpack_from("<BBBBB", ext.data)
    assert (method, bits, scale, dtype, ndim) == (2, 8, 0, 0, 2)
    assert struct.unpack_from("<2I", ext.data, 5) == (2, 3)
    assert struct.unpack_from("<dd", ext.data, 13) == (-1.0, 3.0)
    assert len(ext.data) == 5 + 8 + 16 + 6
    # any receiver decodes it, knowing nothing of the sender's configuration
    got = decode(frame)
    assert isinstance(got, m.PowerForward) and got.order == [0, 2]
    assert np.abs(got.powers - x).max() <= enc.step / 2 * (1 + 1e-9)
    # the other arrays of a message, and messages without exchanged arrays, are untouched
    everything = WireFormat(ArrayEncoding("uint8", lo=0.0, hi=1.0))
    slice_frame = encode(m.CsiSlice(x, [0], [1], **HDR), wire=everything)
    assert ext_of(encode(m.Decision(x, **HDR))).code == EXT_NDARRAY
    assert slice_frame == encode(m.CsiSlice(x, [0], [1], **HDR))


def wire_ext(method: int = 2, bits: int = 8, scale: int = 0, dtype: int = 0,
             shape: tuple[int, ...] = (2,), rng: tuple[float, float] | None = (0.0, 1.0),
             data: bytes = b"\x00\xff") -> msgpack.ExtType:
    head = struct.pack("<BBBBB", method, bits, scale, dtype, len(shape))
    head += struct.pack(f"<{len(shape)}I", *shape)
    if rng is not None:
        head += struct.pack("<dd", *rng)
    return msgpack.ExtType(EXT_WIRE, head + data)


def decision_frame(ext: msgpack.ExtType) -> bytes:
    msg = m.Decision(np.zeros(2), **HDR)
    obj = [msg.KIND, m.SCHEMA_VERSION, *(getattr(msg, f) for f in m.HEADER_FIELDS), ext]
    frame: bytes = msgpack.packb(obj, use_bin_type=True)
    return frame


def test_a_well_formed_ext_decodes() -> None:
    got = decode(decision_frame(wire_ext()))
    assert isinstance(got, m.Decision) and got.powers.tolist() == [0.0, 1.0]


@pytest.mark.parametrize("ext,text", [
    (wire_ext(bits=7), "7 bits make no sense for uniform quantization"),
    (wire_ext(bits=32), "32 bits make no sense for uniform quantization"),
    (wire_ext(method=1, bits=8, rng=None), "8 bits make no sense for a float encoding"),
    (wire_ext(method=9), "unknown method 9"),
    (wire_ext(scale=4), "unknown scale code 4"),
    (wire_ext(dtype=5), "unknown dtype code 5"),
    (wire_ext(rng=(math.nan, 1.0)), r"range \[nan, 1.0\] makes no sense"),
    (wire_ext(rng=(0.0, math.nan)), r"range \[0.0, nan\] makes no sense"),
    (wire_ext(rng=(1.0, 1.0)), r"range \[1.0, 1.0\] makes no sense"),
    (wire_ext(rng=(2.0, 1.0)), r"range \[2.0, 1.0\] makes no sense"),
    (wire_ext(rng=(0.0, math.inf)), r"range \[0.0, inf\] makes no sense"),
    (wire_ext(data=b"\x00"), "needs 2 bytes, got 1"),
    (wire_ext(shape=(1, 2, 1, 1, 1, 1, 1, 1, 1), data=b"\x00\x00"), "9 dimensions"),
    (wire_ext(shape=(2**25,), data=b""), "too large"),
    (msgpack.ExtType(EXT_WIRE, b"\x02\x08"), "header truncated"),
    (msgpack.ExtType(EXT_WIRE, struct.pack("<BBBBB", 2, 8, 0, 0, 3)), "shape truncated"),
    (msgpack.ExtType(EXT_WIRE, struct.pack("<BBBBBI", 2, 8, 0, 0, 1, 1)), "range truncated"),
    (msgpack.ExtType(3, b""), "unknown msgpack ext type 3"),
])
def test_bad_wire_arrays_are_refused_by_name(ext: msgpack.ExtType, text: str) -> None:
    with pytest.raises(ProtocolError, match=text):
        decode(decision_frame(ext))


def test_encodings_refuse_ranges_that_make_no_sense() -> None:
    for kwargs, text in (({"encoding": "uint8"}, "quantizes a finite range"),
                         ({"encoding": "uint8", "lo": 0.0, "hi": math.inf}, "finite range"),
                         ({"lo": math.nan}, "not an interval"),
                         ({"lo": 1.0, "hi": 1.0}, "not an interval"),
                         ({"encoding": "int4"}, "encoding 'int4'"),
                         ({"scale": "log2"}, "scale 'log2'")):
        with pytest.raises(ValueError, match=text):
            ArrayEncoding(**kwargs)
    with pytest.raises(ValueError, match="names no registered message kind"):
        WireFormat(arrays={"decisions": ArrayEncoding()})
    with pytest.raises(ValueError, match="exchanges no array"):
        WireFormat(arrays={"csi_slice": ArrayEncoding()})
    with pytest.raises(ValueError, match="exchanges gains, not 'powers'"):
        WireFormat(arrays={"csi_upload.powers": ArrayEncoding()})
    assert WireFormat(arrays={"csi_upload.gains": ArrayEncoding("float16")}).of(
        "csi_upload", "gains").encoding == "float16"


def test_exchanged_fields_must_be_arrays() -> None:
    from protocols.codec import spec_of

    @m.register
    @dataclasses.dataclass(frozen=True, eq=False, slots=True)
    class BadExchange(m.Message):
        KIND = "test_bad_exchange"
        PLANE = "backhaul"
        EXCHANGED = ("count",)
        count: int

    try:
        with pytest.raises(TypeError, match="'count', which is not an array field"):
            spec_of(BadExchange)
    finally:
        del m.REGISTRY["test_bad_exchange"]


# --------------------------------------------------------------------------- the scenario


def test_the_scenario_wire_table(tmp_path: Path) -> None:
    text = S3.read_text() + """
[wire.default]
encoding = "float16"

[wire.arrays.decision]
encoding = "uint8"
lo = 0.0
hi = 19.952623149688797

[wire.arrays."csi_upload.gains"]
encoding = "uint16"
scale = "db"
lo = -180.0
hi = -30.0
"""
    path = tmp_path / "wired.toml"
    path.write_text(text)
    sc = load_scenario(path)
    wire = wire_format_of(sc)
    assert wire is not None
    assert wire.of("decision", "powers") == ArrayEncoding("uint8", "linear", 0.0, PMAX)
    assert wire.of("csi_upload", "gains").scale == "db"
    assert wire.of("power_forward", "powers").encoding == "float16"  # the default
    # what the processes get (the kind's TOML) carries it; without [wire] nothing changes
    kind = KINDS.get("cellular")
    assert "[wire.default]" in kind.to_toml(sc)
    assert kind.from_toml(kind.to_toml(sc)).wire == sc.wire
    plain = load_scenario(S3)
    assert "wire" not in kind.to_toml(plain) and wire_format_of(plain) is None
    assert scenario_to_dict(plain)["wire"]["default"]["encoding"] == "float64"
    # --set overrides, and errors name the field
    assert override(plain, {"wire.default.encoding": "float32"}).wire.default.encoding == \
        "float32"
    entry = {"encoding": "uint8", "lo": 0.0, "hi": 1.0}
    assert override(plain, {"wire.arrays.decision": entry}).wire.arrays["decision"].bits == 8
    table = scenario_to_dict(plain)
    for bad, text in (({"default": {"encoding": "uint8"}}, "wire.default: uint8 quantizes"),
                      ({"arrays": {"transmit": {}}}, "'transmit': message kind 'transmit' "
                                                    "exchanges no array"),
                      ({"default": {"encoding": "int4"}}, "wire.default.encoding")):
        with pytest.raises(ScenarioError, match=text):
            scenario_from_dict({**table, "wire": bad}, "x.toml")


# --------------------------------------------------------------------------- the meter


@pytest.mark.parametrize("cls", list(EXAMPLES), ids=lambda c: c.KIND)
def test_header_and_payload_add_up_to_the_frame(cls: type[m.Message]) -> None:
    msg = EXAMPLES[cls]()
    frame = encode(msg)
    head = header_length(frame)
    obj = msgpack.unpackb(frame, raw=False, ext_hook=lambda c, d: msgpack.ExtType(c, d))
    packed = [len(msgpack.packb(v, use_bin_type=True)) for v in obj]
    array_framing = 1 if len(obj) < 16 else 3
    assert head == array_framing + sum(packed[:7])  # kind .. chain_latency_s
    assert len(frame) - head == sum(packed[7:])  # the payload fields, nothing else


def test_header_length_refuses_what_is_no_header() -> None:
    for bad, text in ((b"", "truncated"), (b"\x81", "not a msgpack array"),
                      (b"\x97\xa1", "truncated"), (b"\x97\xc4\x00", "msgpack type 0xc4")):
        with pytest.raises(ProtocolError, match=text):
            header_length(bad)
    long_sender = encode(m.Heartbeat(sender="n" * 300, seq=2**40, slot=-5))
    assert header_length(long_sender) == len(long_sender)  # a header only, str16 and int64


def test_meter_splits_each_link_into_header_payload_and_framing() -> None:
    meter = Meter()
    frames = [encode(m.Decision(np.zeros(k), **{**HDR, "slot": k % 3 - 1}))
              for k in (1, 8, 40)]
    for f in frames:
        head = header_length(f)
        meter.record("decision", "backhaul", "controller", "node-0", 0, wire_size(len(f)),
                     head, len(f) - head)
    (key, (msgs, nbytes)), = meter.totals().items()
    header, payload, framing = meter.parts()[key]
    assert msgs == 3 and nbytes == sum(wire_size(len(f)) for f in frames)
    assert header + payload == sum(len(f) for f in frames)
    assert framing == 2 + 2 + 9 and header + payload + framing == nbytes
    again = Meter()
    again.merge(meter.rows())  # the split travels in the rows (reports, beats)
    assert again.parts() == meter.parts() and again.totals() == meter.totals()


def test_overhead_of_a_run_adds_up_to_its_frames(tmp_path: Path) -> None:
    """A local run with 8-bit decisions and 16-bit CSI in dB: every overhead.csv row splits
    its bytes exactly, and the exchanged kinds' payloads are those of frames encoded here."""
    sc = load_scenario(S3)
    wire = WireConfig(arrays={"decision": ArrayEncoding("uint8", lo=0.0, hi=sc.radio.pmax_w),
                              "csi_upload": ArrayEncoding("uint16", "db", -180.0, -30.0)})
    resolved = Resolved(KINDS.get("cellular"), dataclasses.replace(sc, wire=wire), S3)
    summary = run_local(resolved, "wmmse", 6, 2, tmp_path / "run")
    with (tmp_path / "run" / "overhead.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert rows
    for r in rows:
        assert int(r["header_bytes"]) + int(r["payload_bytes"]) + int(r["framing_bytes"]) == \
            int(r["bytes"]), r
        assert int(r["framing_bytes"]) in (2 * int(r["messages"]), 9 * int(r["messages"])) \
            or r["kind"] in ("start", "slot_outcome")
    fmt = wire.format()
    gains = np.ones((sc.radio.users_per_cell, sc.radio.n_cells))
    one = {kind: encode(cls, wire=fmt) for kind, cls in (
        ("decision", m.Decision(np.ones(sc.radio.users_per_cell), **HDR)),
        ("csi_upload", m.CsiUpload(gains, **HDR)))}
    for r in rows:
        if r["kind"] in one:
            frame = one[r["kind"]]
            assert int(r["payload_bytes"]) == int(r["messages"]) * (len(frame) -
                                                                     header_length(frame))
    bh = summary["backhaul_bytes_per_slot"]
    assert bh["header"] + bh["payload"] + bh["framing"] == pytest.approx(bh["total"], rel=1e-12)
    assert set(bh["parts_by_kind"]) == {"csi_upload", "decision"}
