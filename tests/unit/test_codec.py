"""Codec: every kind round-trips, the wire layout is as documented, bad frames are refused."""

from __future__ import annotations

import dataclasses
import struct
from typing import Any, ClassVar

import msgpack
import numpy as np
import numpy.typing as npt
import pytest

from protocols import messages as m
from protocols.codec import DTYPES, EXT_NDARRAY, CodecLimits, decode, encode, spec_of
from protocols.errors import ProtocolError
from tests.helpers import EXAMPLE_HEADER as HDR
from tests.helpers import MESSAGE_EXAMPLES as EXAMPLES

RNG = np.random.default_rng(7)


def assert_same(a: Any, b: Any, where: str = "") -> None:
    """Field-by-field equality, written independently of protocols.messages.equal."""
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray), where
        assert a.dtype == b.dtype and a.shape == b.shape, where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, list):
        assert type(b) is list and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, dict):
        assert type(b) is dict and sorted(a) == sorted(b), where
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    else:
        assert type(a) is type(b) and a == b, f"{where}: {a!r} != {b!r}"


def assert_messages(a: m.Message, b: m.Message) -> None:
    assert type(a) is type(b)
    for f in dataclasses.fields(a):
        assert_same(getattr(a, f.name), getattr(b, f.name), f.name)


BUILTIN_KINDS = [c for c in m.REGISTRY.values() if c.__module__ == "protocols.messages"]


def test_every_builtin_kind_has_an_example() -> None:
    # a kind added to protocols.messages needs an example here
    assert set(EXAMPLES) == set(BUILTIN_KINDS)


@pytest.mark.parametrize("cls", BUILTIN_KINDS, ids=lambda c: c.KIND)
def test_round_trip_every_kind(cls: type[m.Message]) -> None:
    msg = EXAMPLES[cls]()
    out = decode(encode(msg))
    assert_messages(msg, out)
    assert m.equal(msg, out)


@pytest.mark.parametrize("cls", BUILTIN_KINDS, ids=lambda c: c.KIND)
def test_wire_layout(cls: type[m.Message]) -> None:
    """Decode with plain msgpack: [kind, schema, header..., payload...] in field order."""
    msg = EXAMPLES[cls]()
    obj = msgpack.unpackb(encode(msg), raw=False)
    payload = [f.name for f in dataclasses.fields(cls) if f.name not in m.HEADER_FIELDS]
    assert obj[0] == cls.KIND and obj[1] == m.SCHEMA_VERSION == 1
    assert obj[2:7] == [HDR[k] for k in ("sender", "seq", "slot", "sent_ns", "chain_latency_s")]
    assert len(obj) == 7 + len(payload)
    for name, wire in zip(payload, obj[7:], strict=True):
        value = getattr(msg, name)
        if isinstance(value, np.ndarray):
            assert isinstance(wire, msgpack.ExtType) and wire.code == EXT_NDARRAY
            code, ndim = wire.data[0], wire.data[1]
            shape = struct.unpack_from(f"<{ndim}Q", wire.data, 2)
            assert np.dtype(DTYPES[code]) == value.dtype.newbyteorder("<")
            assert shape == value.shape
            assert (
                wire.data[2 + 8 * ndim :] == value.astype(value.dtype.newbyteorder("<")).tobytes()
            )


SHAPES = [(), (0,), (5,), (2, 3), (2, 0, 3), (1, 2, 3, 2)]
DTYPE_NAMES = [
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float32", "float64", "complex64", "complex128",
]  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPE_NAMES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_arrays_of_every_dtype_and_shape(dtype: str, shape: tuple[int, ...]) -> None:
    n = int(np.prod(shape))
    values = (np.arange(n) * 37 + 3) % 2 if dtype == "bool" else np.arange(n) * 3 - n
    arr = values.astype(dtype).reshape(shape)
    if np.dtype(dtype).kind == "c":
        arr = np.asarray(arr + 2j * arr, dtype=dtype)
    out = decode(encode(m.CsiUpload(arr, **HDR)))
    assert isinstance(out, m.CsiUpload)
    assert out.gains.dtype == np.dtype(dtype) and out.gains.shape == shape
    np.testing.assert_array_equal(out.gains, arr)
    assert out.gains.flags.writeable and out.gains.flags.c_contiguous


def test_noncontiguous_and_big_endian_arrays() -> None:
    base = np.arange(24, dtype=np.float64).reshape(4, 6)
    for arr in (base.T, base[:, ::2], base.astype(">f8"), base.astype(">i4")[::-1]):
        out = decode(encode(m.Decision(arr, **HDR)))
        assert isinstance(out, m.Decision)
        assert out.powers.dtype == arr.dtype.newbyteorder("<")
        np.testing.assert_array_equal(out.powers, arr)


def test_special_floats_and_extreme_ints() -> None:
    hdr = dict(HDR, seq=2**63 - 1, slot=-(2**63), sent_ns=2**64 - 1, chain_latency_s=float("inf"))
    msg = m.Fingerprint(-(2**63), float("nan"), **hdr)
    out = decode(encode(msg))
    assert isinstance(out, m.Fingerprint)
    assert (out.seq, out.slot, out.sent_ns) == (2**63 - 1, -(2**63), 2**64 - 1)
    assert out.chain_latency_s == float("inf") and out.epsilon != out.epsilon


def test_encode_normalizes_numpy_scalars_and_int_floats() -> None:
    hdr: dict[str, Any] = {"seq": np.int64(2), "slot": np.uint8(3), "chain_latency_s": 0}
    msg = m.Fingerprint(np.int32(4), 1, sender="a", sent_ns=5, **hdr)  # type: ignore[arg-type]
    obj = msgpack.unpackb(encode(msg), raw=False)
    assert obj == ["fingerprint", 1, "a", 2, 3, 5, 0.0, 4, 1.0]
    assert type(obj[6]) is float and type(obj[8]) is float and type(obj[7]) is int


def test_decoded_arrays_are_independent_copies() -> None:
    frame = encode(m.Decision(np.ones(3), **HDR))
    a = decode(frame)
    b = decode(frame)
    assert isinstance(a, m.Decision) and isinstance(b, m.Decision)
    a.powers[0] = 7.0
    assert b.powers[0] == 1.0


def test_values_of_other_types_take_the_converting_path() -> None:
    """numpy scalars and an int latency miss the per-kind fast path; the generic checkers
    convert them, so the frame is that of the canonical message."""
    powers = RNG.random((2, 4))
    canonical = m.PowerForward([2, 0], powers, **dict(HDR, chain_latency_s=0.0))
    hdr: dict[str, Any] = dict(HDR, seq=np.int64(17), slot=np.int32(42), chain_latency_s=0)
    other = m.PowerForward([np.int64(2), np.uint8(0)], powers, **hdr)  # type: ignore[list-item]
    assert encode(other) == encode(canonical)
    assert_messages(decode(encode(other)), canonical)


def test_decode_recovers_after_bad_frames() -> None:
    """Small frames go through a reused unpacker: a bad frame must not leave state behind."""
    msg = EXAMPLES[m.PowerForward]()
    good = encode(msg)
    for bad in (b"\xc1", good[:-1], good + b"\x00", good[:3], b"\x93\x01"):
        with pytest.raises(ProtocolError, match="malformed msgpack"):
            decode(bad)
        assert_messages(decode(good), msg)
    assert_messages(decode(bytearray(good)), msg)  # type: ignore[arg-type]
    assert_messages(decode(memoryview(good)), msg)  # type: ignore[arg-type]
    big = m.CsiUpload(RNG.random(20_000), **HDR)  # a frame beyond the reused unpacker's size
    assert len(encode(big)) > 2**16
    assert_messages(decode(encode(big)), big)
    assert_messages(decode(good), msg)


def test_kind_with_post_init_is_built_by_its_init() -> None:
    calls: list[int] = []

    @m.register
    @dataclasses.dataclass(frozen=True, eq=False, slots=True)
    class Checked(m.Message):
        KIND: ClassVar[str] = "test_checked"
        PLANE: ClassVar[m.Plane] = "control"
        value: int

        def __post_init__(self) -> None:
            calls.append(self.value)

    try:
        out = decode(encode(Checked(5, **HDR)))
        assert isinstance(out, Checked) and out.value == 5 and out.seq == HDR["seq"]
        assert calls == [5, 5]
    finally:
        del m.REGISTRY["test_checked"]


def test_equal_helper() -> None:
    a = m.Decision(np.array([1.0, np.nan]), **HDR)
    assert m.equal(a, m.Decision(np.array([1.0, np.nan]), **HDR))
    assert not m.equal(a, m.Decision(np.array([1.0, 2.0]), **HDR))
    assert not m.equal(a, m.Decision(np.array([1.0, np.nan], dtype=np.float32), **HDR))
    assert not m.equal(a, m.Decision(np.array([1.0, np.nan]), **dict(HDR, seq=1)))


# --------------------------------------------------------------------------- refused frames


def frame_of(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def valid_obj(msg: m.Message) -> list[Any]:
    return msgpack.unpackb(encode(msg), raw=False)


def array_ext(code: int, shape: tuple[int, ...], data: bytes) -> msgpack.ExtType:
    return msgpack.ExtType(
        EXT_NDARRAY, struct.pack(f"<BB{len(shape)}Q", code, len(shape), *shape) + data
    )


def expect(frame: bytes, text: str, limits: CodecLimits | None = None) -> None:
    with pytest.raises(ProtocolError, match=text):
        decode(frame) if limits is None else decode(frame, limits)


def test_refuses_garbage_truncated_and_trailing() -> None:
    good = encode(EXAMPLES[m.PowerForward]())
    expect(b"\xc1", "malformed msgpack")
    expect(good[:-1], "malformed msgpack")
    expect(good + b"\x00", "malformed msgpack")
    expect(b"", "malformed msgpack")
    expect(frame_of({"kind": "stop"}), "not a message array")
    expect(frame_of(["stop", 1]), "not a message array")


def test_refuses_kind_and_schema() -> None:
    obj = valid_obj(EXAMPLES[m.Stop]())
    expect(frame_of(["no_such_kind", *obj[1:]]), "unknown message kind 'no_such_kind'")
    expect(frame_of([7, *obj[1:]]), "kind must be str")
    expect(frame_of([obj[0], 2, *obj[2:]]), "schema 2")
    expect(frame_of([obj[0], True, *obj[2:]]), "schema True")
    expect(frame_of([obj[0], "1", *obj[2:]]), "schema '1'")


def test_refuses_missing_and_extra_fields() -> None:
    obj = valid_obj(EXAMPLES[m.Stop]())
    expect(frame_of(obj[:-1]), "expected 6 fields, got 5")
    expect(frame_of([*obj, "extra"]), "expected 6 fields, got 7")


@pytest.mark.parametrize(
    ("cls", "index", "bad", "text"),
    [
        (m.Stop, 2, 5, r"stop\.sender: expected str, got int"),
        (m.Stop, 3, True, r"stop\.seq: expected int, got bool"),
        (m.Stop, 4, 1.0, r"stop\.slot: expected int, got float"),
        (m.Stop, 6, 0, r"stop\.chain_latency_s: expected float, got int"),
        (m.Stop, 7, b"x", r"stop\.reason: expected str, got bytes"),
        (m.Done, 7, False, r"done\.slots: expected int, got bool"),
        (m.Fingerprint, 8, 1, r"fingerprint\.epsilon: expected float, got int"),
        (m.Transmit, 9, 1, r"transmit\.missed: expected bool, got int"),
        (m.CsiSlice, 8, [0, "1"], r"csi_slice\.order: list item: expected int, got str"),
        (m.CsiSlice, 9, [True], r"csi_slice\.active: list item: expected int, got bool"),
        (m.Weights, 8, ["a", 1], r"weights\.names: list item: expected str, got int"),
        (m.Weights, 9, [[1.0]], r"weights\.arrays: list item: expected ndarray, got list"),
        (m.Decision, 7, [0.1, 0.2], r"decision\.powers: expected ndarray, got list"),
        (m.Decision, 7, None, r"decision\.powers: expected ndarray, got NoneType"),
        (m.Start, 11, [], r"start\.options: expected dict, got list"),
        (m.Report, 7, [1], r"report\.rows: list item: expected list, got int"),
    ],
)
def test_refuses_wrong_field_types(cls: type[m.Message], index: int, bad: Any, text: str) -> None:
    obj = valid_obj(EXAMPLES[cls]())
    obj[index] = bad
    expect(frame_of(obj), text)


def test_refuses_bad_any_values() -> None:
    obj = valid_obj(EXAMPLES[m.Start]())
    obj[11] = {"t": msgpack.Timestamp(1, 0)}
    expect(frame_of(obj), "value of type Timestamp is not allowed")
    obj[11] = {"deep": [[[[[[1]]]]]]}
    expect(frame_of(obj), "nesting deeper than 3", CodecLimits(max_depth=3))
    packed = frame_of(obj).replace(b"\xa4deep", b"\xcd\x00\x07")  # map key 7 (uint16)
    expect(packed, "not allowed for map key")


def test_refuses_bad_arrays() -> None:
    obj = valid_obj(EXAMPLES[m.Decision]())
    f8 = DTYPE_NAMES.index("float64")
    cases: list[tuple[msgpack.ExtType, str, CodecLimits | None]] = [
        (array_ext(f8, (3,), bytes(16)), "needs 24 bytes, got 16", None),
        (array_ext(f8, (2, 2), bytes(40)), "needs 32 bytes, got 40", None),
        (array_ext(f8, (2**40, 2**40), b""), "too large", None),
        (array_ext(f8, (0, 2**40), b""), "too large", None),
        (array_ext(f8, (11,), bytes(88)), "too large", CodecLimits(max_array_elements=10)),
        (array_ext(f8, (1,) * 9, bytes(8)), "9 dimensions > 8", None),
        (array_ext(len(DTYPE_NAMES), (1,), bytes(8)), "unknown array dtype code 13", None),
        (array_ext(0, (2,), b"\x01\x02"), "bool array holds bytes other than 0 and 1", None),
        (msgpack.ExtType(EXT_NDARRAY, b"\x0a"), "array header truncated", None),
        (msgpack.ExtType(EXT_NDARRAY, b"\x0a\x02" + bytes(8)), "array shape truncated", None),
        (msgpack.ExtType(5, b"abc"), "unknown msgpack ext type 5", None),
    ]
    for ext, text, limits in cases:
        obj[7] = ext
        expect(frame_of(obj), text, limits)


def test_frame_and_container_limits() -> None:
    msg = m.Error("x" * 1000, **HDR)
    frame = encode(msg)
    small = CodecLimits(max_frame_bytes=len(frame) - 1)
    expect(frame, "max_frame_bytes", small)
    with pytest.raises(ProtocolError, match="max_frame_bytes"):
        encode(msg, small)
    assert isinstance(decode(frame, CodecLimits(max_frame_bytes=len(frame))), m.Error)
    rows = m.Report([[i] for i in range(20)], {}, **HDR)
    expect(encode(rows), "malformed msgpack", CodecLimits(max_container_len=10))
    with pytest.raises(ProtocolError, match="too long"):
        encode(rows, CodecLimits(max_container_len=10))


def test_refuses_non_bytes_frame() -> None:
    with pytest.raises(ProtocolError, match="frame must be bytes"):
        decode("not bytes")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- encode errors


@pytest.mark.parametrize(
    ("msg", "text"),
    [
        (m.Decision(np.zeros(2, dtype=np.float16), **HDR), "dtype float16 is not allowed"),
        (m.Decision(np.array(["a"], dtype=object), **HDR), "dtype object is not allowed"),
        (m.Decision([0.1], **HDR), r"decision\.powers: expected ndarray"),  # type: ignore[arg-type]
        (m.Done(True, **HDR), r"done\.slots: expected int, got bool"),
        (m.Done(1.0, **HDR), r"done\.slots: expected int, got float"),  # type: ignore[arg-type]
        (m.Stop("x", **dict(HDR, sender=None)), r"stop\.sender: expected str"),
        (m.CsiSlice(np.zeros(1), (0,), [], **HDR), r"csi_slice\.order: expected list"),  # type: ignore[arg-type]
        (m.Start("s", 1, 1, "", {1: "x"}, **HDR), "map key must be str"),  # type: ignore[dict-item]
        (m.Start("s", 1, 1, "", {"x": object()}, **HDR), "type object is not allowed"),
        (m.Report([], {"x": 2**64}, **HDR), "msgpack cannot pack"),
        (m.Decision(np.zeros((1,) * 9), **HDR), "9 dimensions > 8"),
    ],
)
def test_encode_refuses(msg: m.Message, text: str) -> None:
    with pytest.raises(ProtocolError, match=text):
        encode(msg)


def test_encode_refuses_unregistered_class() -> None:
    @dataclasses.dataclass(frozen=True, eq=False, slots=True)
    class Unregistered(m.Message):
        KIND: ClassVar[str] = "unregistered_test_kind"
        PLANE: ClassVar[m.Plane] = "control"

    with pytest.raises(ProtocolError, match="not a registered message kind"):
        encode(Unregistered())
    with pytest.raises(ProtocolError, match="not a Message"):
        encode("hello")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- registry


def test_register_new_kind_round_trips() -> None:
    @m.register
    @dataclasses.dataclass(frozen=True, eq=False, slots=True)
    class Probe(m.Message):
        KIND: ClassVar[str] = "test_probe"
        PLANE: ClassVar[m.Plane] = "backhaul"
        values: dict[str, list[float]]
        data: npt.NDArray[Any]

    try:
        assert m.REGISTRY["test_probe"] is Probe
        msg = Probe({"a": [1.0, 2.5], "b": []}, np.arange(3, dtype=np.uint16), **HDR)
        out = decode(encode(msg))
        assert_messages(msg, out)
        obj = valid_obj(msg)
        obj[7] = {"a": [1]}
        expect(frame_of(obj), r"test_probe\.values: map value 'a': list item: expected float")
    finally:
        del m.REGISTRY["test_probe"]


def test_register_refuses_bad_classes() -> None:
    with pytest.raises(TypeError, match="already registered"):

        @m.register
        @dataclasses.dataclass(frozen=True, eq=False, slots=True)
        class Dup(m.Message):
            KIND: ClassVar[str] = "stop"
            PLANE: ClassVar[m.Plane] = "control"

    with pytest.raises(TypeError, match="PLANE must be one of"):

        @m.register
        @dataclasses.dataclass(frozen=True, eq=False, slots=True)
        class NoPlane(m.Message):
            KIND: ClassVar[str] = "test_no_plane"

    with pytest.raises(TypeError, match="not a Message dataclass"):
        m.register(int)  # type: ignore[type-var]


def test_unsupported_annotation_is_a_type_error() -> None:
    @m.register
    @dataclasses.dataclass(frozen=True, eq=False, slots=True)
    class Odd(m.Message):
        KIND: ClassVar[str] = "test_odd_annotation"
        PLANE: ClassVar[m.Plane] = "control"
        when: complex

    try:
        with pytest.raises(TypeError, match="not supported by the codec"):
            spec_of(Odd)
    finally:
        del m.REGISTRY["test_odd_annotation"]
