"""Malformed frames: decode raises ProtocolError and nothing else (12,500 examples).

Only bit flips of valid frames may decode, and then to a message that encodes and decodes
again to the same fields.
"""

from __future__ import annotations

import dataclasses
import struct
import time
import typing
from typing import Any

import msgpack
import numpy as np
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols import messages as m
from protocols.codec import DTYPES, EXT_NDARRAY, CodecLimits, decode, encode
from protocols.errors import ProtocolError
from protocols.meter import Meter
from protocols.transport import Endpoint

HDR: dict[str, Any] = {
    "sender": "node-1",
    "seq": 3,
    "slot": 9,
    "sent_ns": 12345,
    "chain_latency_s": 0.5,
}
POOL: list[m.Message] = [
    m.PowerForward([1, 0], np.arange(6.0).reshape(2, 3), **HDR),
    m.CsiSlice(np.linspace(0, 1, 12).reshape(2, 2, 3), [0, 1, 2], [1], **HDR),
    m.Transmit(np.array([0.25, 0.5], dtype=np.float32), 2, False, 0.003, 0.001, **HDR),
    m.Weights(4, ["w", "b"], [np.ones((2, 2), dtype=np.float32), np.zeros(2)], **HDR),
    m.Report([["slot", 0, "air", 2, 40]], {"errors": 0, "ok": True}, **HDR),
    m.Start("central", 10, 1, "x = 1\n", {"k": [1, 2.5, None]}, **HDR),
    m.Experience(
        np.zeros((2, 3), np.float32),
        np.array([1, 2]),
        np.array([0.5, -1.0]),
        np.ones((2, 3), np.float32),
        np.array([False, True]),
        3,
        **HDR,
    ),
    m.Heartbeat(**HDR),
    m.NeighbourChoice(1, 3, **HDR),
]
FRAMES = [encode(msg) for msg in POOL]
OBJS = [msgpack.unpackb(f, raw=False) for f in FRAMES]

FUZZ = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SMALL = CodecLimits(max_array_elements=64)


def refused(frame: bytes, limits: CodecLimits | None = None) -> str:
    """The ProtocolError text; any other outcome fails the test."""
    try:
        decode(frame) if limits is None else decode(frame, limits)
    except ProtocolError as e:
        assert str(e)
        return str(e)
    raise AssertionError(f"decoded a malformed frame {frame[:80]!r}")


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def array_ext(code: int, shape: list[int], data: bytes) -> msgpack.ExtType:
    return msgpack.ExtType(
        EXT_NDARRAY, struct.pack(f"<BB{len(shape)}Q", code, len(shape), *shape) + data
    )


# --------------------------------------------------------------------------- strategies

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.binary(max_size=20),
)
msgpack_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=8), st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=12,
)


def bad_for(annotation: Any) -> st.SearchStrategy[Any]:
    """Values of the wrong type for a field annotation (independent of the codec)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    ints = st.integers(-(2**63), 2**63 - 1)
    not_list = st.one_of(ints, st.text(max_size=5), st.none(), st.floats())
    if annotation is str:
        return st.one_of(
            ints,
            st.floats(),
            st.booleans(),
            st.none(),
            st.binary(),
            st.lists(st.text(), max_size=2),
        )
    if annotation is int:
        return st.one_of(
            st.floats(),
            st.booleans(),
            st.text(),
            st.none(),
            st.binary(),
            st.lists(ints, max_size=3),
        )
    if annotation is float:
        return st.one_of(ints, st.booleans(), st.text(), st.none(), st.binary())
    if annotation is bool:
        return st.one_of(ints, st.floats(), st.text(), st.none())
    if origin is np.ndarray:
        return st.one_of(
            ints, st.floats(), st.text(), st.none(), st.binary(), st.lists(st.floats(), max_size=3)
        )
    if origin is list and args[0] is int:
        return st.one_of(
            not_list,
            st.lists(
                st.one_of(st.text(), st.booleans(), st.floats(), st.none()), min_size=1, max_size=3
            ),
        )
    if origin is list and args[0] is str:
        return st.one_of(
            not_list, st.lists(st.one_of(ints, st.booleans(), st.none()), min_size=1, max_size=3)
        )
    if origin is list:  # list[ndarray] or list[list[Any]]
        return st.one_of(
            not_list, st.lists(st.one_of(ints, st.text(), st.none()), min_size=1, max_size=3)
        )
    if origin is dict:
        return st.one_of(not_list, st.lists(ints, max_size=3))
    raise AssertionError(f"no bad values for {annotation!r}")


def wire_annotations(cls: type[m.Message]) -> list[Any]:
    """Annotation of each wire position from 2 on: header, then payload."""
    hints = typing.get_type_hints(cls)
    names = list(m.HEADER_FIELDS) + [
        f.name for f in dataclasses.fields(cls) if f.name not in m.HEADER_FIELDS
    ]
    return [hints[n] for n in names]


# --------------------------------------------------------------------------- properties


@settings(FUZZ, max_examples=3500)
@given(st.binary(max_size=600))
def test_random_bytes(data: bytes) -> None:
    refused(data)


@settings(FUZZ, max_examples=2000)
@given(st.data())
def test_truncated_frames(data: st.DataObject) -> None:
    order = data.draw(st.lists(st.integers(0, 2**40), max_size=5))
    powers = np.array(data.draw(st.lists(st.floats(), max_size=40)), dtype=np.float64)
    frame = encode(m.PowerForward(order, powers, **dict(HDR, seq=data.draw(st.integers(0, 2**62)))))
    frame = data.draw(st.sampled_from([frame, *FRAMES]))
    cut = data.draw(st.integers(0, len(frame) - 1))
    assert "malformed msgpack" in refused(frame[:cut])


@settings(FUZZ, max_examples=1500)
@given(msgpack_values)
def test_valid_msgpack_of_wrong_structure(value: Any) -> None:
    refused(pack(value))


@settings(FUZZ, max_examples=500)
@given(
    st.sampled_from(OBJS),
    st.one_of(
        st.integers(-(2**63), 2**64 - 1).filter(lambda v: v != 1),
        st.booleans(),
        st.floats(),
        st.text(max_size=4),
        st.none(),
    ),
)
def test_wrong_schema(obj: list[Any], schema: Any) -> None:
    assert "schema" in refused(pack([obj[0], schema, *obj[2:]]))


@settings(FUZZ, max_examples=500)
@given(st.sampled_from(OBJS), st.text(max_size=30).filter(lambda k: k not in m.REGISTRY))
def test_unknown_kind(obj: list[Any], kind: str) -> None:
    assert "unknown message kind" in refused(pack([kind, *obj[1:]]))


@settings(FUZZ, max_examples=500)
@given(
    st.integers(0, len(DTYPES) - 1),
    st.lists(st.integers(0, 2**20), min_size=1, max_size=8).filter(
        lambda s: int(np.prod(s, dtype=object)) > 64 or max(s) > 64
    ),
    st.binary(max_size=64),
)
def test_oversized_arrays(code: int, shape: list[int], data: bytes) -> None:
    obj = list(OBJS[0])
    obj[8] = array_ext(code, shape, data)
    assert "too large" in refused(pack(obj), SMALL)


@settings(FUZZ, max_examples=500)
@given(st.data())
def test_shape_bytes_mismatch(data: st.DataObject) -> None:
    code = data.draw(st.integers(0, len(DTYPES) - 1))
    shape = data.draw(st.lists(st.integers(0, 4), max_size=3))
    need = int(np.prod(shape, dtype=np.int64)) * DTYPES[code].itemsize
    size = data.draw(st.integers(0, 200).filter(lambda n: n != need))
    obj = list(OBJS[0])
    obj[8] = array_ext(code, shape, bytes(size))
    assert "needs" in refused(pack(obj), SMALL)


@settings(FUZZ, max_examples=1500)
@given(st.data())
def test_wrong_field_types(data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(POOL) - 1))
    annotations = wire_annotations(type(POOL[i]))
    pos = data.draw(st.integers(0, len(annotations) - 1))
    obj = list(OBJS[i])
    obj[2 + pos] = data.draw(bad_for(annotations[pos]))
    text = refused(pack(obj))
    assert text.startswith(f"{POOL[i].KIND}.") or "malformed" in text


@settings(FUZZ, max_examples=2000)
@given(st.data())
def test_bit_flips(data: st.DataObject) -> None:
    frame = bytearray(data.draw(st.sampled_from(FRAMES)))
    for bit in data.draw(st.lists(st.integers(0, 8 * len(frame) - 1), min_size=1, max_size=8)):
        frame[bit // 8] ^= 1 << (bit % 8)
    try:
        msg = decode(bytes(frame))
    except ProtocolError:
        return
    assert isinstance(msg, m.Message) and m.REGISTRY[msg.KIND] is type(msg)
    again = decode(encode(msg))
    assert m.equal(msg, again)


# --------------------------------------------------------------------------- on a socket


async def test_endpoint_survives_garbage_burst() -> None:
    rng = np.random.default_rng(11)
    garbage: list[list[bytes]] = [[rng.bytes(int(n))] for n in rng.integers(0, 300, size=200)]
    garbage += [
        [b""],
        [b"two", b"parts"],
        [pack(["stop", 1])],
        [pack(["stop", 2, "", 0, 0, 0, 0.0, "x"])],
    ]
    good = m.Stop("after the garbage", **HDR)
    ep = Endpoint("inbox", "tcp://127.0.0.1:0", Meter())
    ctx = zmq.Context()
    raw = ctx.socket(zmq.PUSH)
    raw.setsockopt(zmq.LINGER, 0)
    try:
        raw.connect(str(ep.address))
        for parts in garbage:
            raw.send_multipart(parts)
        raw.send(encode(good))
        t0 = time.monotonic()
        out = await ep.recv(5.0)
        assert time.monotonic() - t0 < 5.0
        assert isinstance(out, m.Stop) and out.reason == "after the garbage"
        assert ep.protocol_errors == len(garbage)
        assert ep.last_protocol_error is not None and "schema 2" in ep.last_protocol_error
        raw.send(encode(m.Heartbeat(**HDR)))
        assert isinstance(await ep.recv(5.0), m.Heartbeat)
        assert ep.protocol_errors == len(garbage)
    finally:
        raw.close(linger=0)
        ctx.term()
        ep.close()


def test_fuzz_budget_is_at_least_ten_thousand_examples() -> None:
    tests = [
        test_random_bytes,
        test_truncated_frames,
        test_valid_msgpack_of_wrong_structure,
        test_wrong_schema,
        test_unknown_kind,
        test_oversized_arrays,
        test_shape_bytes_mismatch,
        test_wrong_field_types,
        test_bit_flips,
    ]
    total = sum(t._hypothesis_internal_use_settings.max_examples for t in tests)  # type: ignore[attr-defined]
    assert total >= 10_000
