"""msgpack codec for every message kind (nothing is pickled).

Wire format of one frame: a msgpack array

    [kind, schema, sender, seq, slot, sent_ns, chain_latency_s, payload_1, ..., payload_n]

with the payload fields in dataclass order. A numpy array travels as msgpack ext type
``EXT_NDARRAY`` (1) whose data is ``u8 dtype_code, u8 ndim, ndim x u64 shape`` (little
endian) followed by the C-ordered little-endian raw bytes. Dtype codes: see ``DTYPES``.

Decoding is strict: frame size, msgpack container and string sizes, array dimensions and
elements are bounded by :class:`CodecLimits`; shape x itemsize must equal the byte length;
the kind must be registered, the schema equal to ``SCHEMA_VERSION``, the field count exact
and every field of the type its annotation names (an int is not a bool, a float field holds
a float). Anything else raises :class:`ProtocolError` naming the problem. Encoding checks the
same rules (numpy scalars are accepted and converted, ints in float fields become floats), so
a frame that encodes also decodes under the same limits.
"""

from __future__ import annotations

import math
import struct
import threading
import typing
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from operator import attrgetter
from typing import Any, Final

import msgpack
import numpy as np

from protocols.errors import ProtocolError
from protocols.messages import HEADER_FIELDS, REGISTRY, SCHEMA_VERSION, Message, payload_fields

EXT_NDARRAY: Final = 1
"""msgpack ext type code of a numpy array."""

DTYPES: Final[tuple[np.dtype[Any], ...]] = tuple(
    np.dtype(s)
    for s in (
        "|b1", "|i1", "<i2", "<i4", "<i8", "|u1", "<u2", "<u4", "<u8",
        "<f4", "<f8", "<c8", "<c16",
    )
)  # fmt: skip
"""Allowed array dtypes; the index is the wire dtype code."""

_CODE_BY_DTYPE: Final[dict[str, int]] = {d.str: i for i, d in enumerate(DTYPES)}
_N_HEADER: Final = 2 + len(HEADER_FIELDS)


@dataclass(frozen=True)
class CodecLimits:
    """Bounds applied when decoding (and encoding) a frame."""

    max_frame_bytes: int = 64 * 2**20
    """Largest frame, bytes."""
    max_array_elements: int = 2**24
    """Largest number of elements of one array (and of any one dimension)."""
    max_ndim: int = 8
    """Largest number of array dimensions."""
    max_container_len: int = 2**22
    """Largest msgpack array or map length (entries)."""
    max_depth: int = 32
    """Deepest nesting of lists and maps inside ``Any``-typed fields."""


DEFAULT_LIMITS: Final = CodecLimits()

Checker = Callable[[Any, CodecLimits], Any]


# --------------------------------------------------------------------------- arrays


_SHAPE_STRUCTS: Final = tuple(struct.Struct(f"<BB{n}Q") for n in range(33))
"""Array ext header (dtype code, ndim, shape) for each ndim up to 32."""


def _shape_struct(ndim: int) -> struct.Struct:
    return _SHAPE_STRUCTS[ndim] if ndim < len(_SHAPE_STRUCTS) else struct.Struct(f"<BB{ndim}Q")


def _encode_array(value: Any, limits: CodecLimits) -> msgpack.ExtType:
    if not isinstance(value, np.ndarray):
        raise ProtocolError(f"expected ndarray, got {type(value).__name__}")
    code = _CODE_BY_DTYPE.get(value.dtype.str)
    if code is None:  # maybe a big-endian array of an allowed dtype
        little = value.dtype.newbyteorder("<")
        code = _CODE_BY_DTYPE.get(little.str)
        if code is None:
            raise ProtocolError(f"array dtype {value.dtype} is not allowed")
        value = value.astype(little)
    shape = value.shape
    ndim = len(shape)
    if ndim > limits.max_ndim:
        raise ProtocolError(f"array has {ndim} dimensions > {limits.max_ndim}")
    if value.size > limits.max_array_elements or (ndim and max(shape) > limits.max_array_elements):
        raise ProtocolError(f"array of shape {shape} is too large")
    if not value.flags.c_contiguous:
        value = np.ascontiguousarray(value)
    header = _shape_struct(ndim).pack(code, ndim, *shape)
    return msgpack.ExtType(EXT_NDARRAY, b"".join((header, value.data)))


def _decode_array(data: bytes, limits: CodecLimits) -> np.ndarray[Any, Any]:
    if len(data) < 2:
        raise ProtocolError("array header truncated")
    code, ndim = data[0], data[1]
    if code >= len(DTYPES):
        raise ProtocolError(f"unknown array dtype code {code}")
    if ndim > limits.max_ndim:
        raise ProtocolError(f"array has {ndim} dimensions > {limits.max_ndim}")
    offset = 2 + 8 * ndim
    if len(data) < offset:
        raise ProtocolError("array shape truncated")
    shape = _shape_struct(ndim).unpack_from(data)[2:]
    count = math.prod(shape)
    if count > limits.max_array_elements or (ndim and max(shape) > limits.max_array_elements):
        raise ProtocolError(f"array of shape {shape} is too large")
    dtype = DTYPES[code]
    if count * dtype.itemsize != len(data) - offset:
        raise ProtocolError(
            f"array of shape {shape} and dtype {dtype} needs {count * dtype.itemsize} bytes, "
            f"got {len(data) - offset}"
        )
    if count == 0:
        return np.zeros(shape, dtype)
    if code == 0 and data[offset:].translate(None, b"\x00\x01"):
        raise ProtocolError("bool array holds bytes other than 0 and 1")
    return np.frombuffer(data, dtype, count, offset).reshape(shape).copy()


@lru_cache(maxsize=64)
def _make_ext_hook(limits: CodecLimits) -> Callable[[int, bytes], Any]:
    def hook(code: int, data: bytes) -> Any:
        if code != EXT_NDARRAY:
            raise ProtocolError(f"unknown msgpack ext type {code}")
        return _decode_array(data, limits)

    return hook


def _ext_hook(limits: CodecLimits) -> Callable[[int, bytes], Any]:
    return _DEFAULT_HOOK if limits is DEFAULT_LIMITS else _make_ext_hook(limits)


# --------------------------------------------------------------------------- checkers
# Encode checkers take the message's value and return what goes to msgpack; decode checkers
# take msgpack's value and return the field value. Both raise ProtocolError.


def _type_name(value: Any) -> str:
    return type(value).__name__


def _enc_int(value: Any, limits: CodecLimits) -> Any:
    if type(value) is int:
        return value
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return int(value)
    raise ProtocolError(f"expected int, got {_type_name(value)}")


def _dec_int(value: Any, limits: CodecLimits) -> Any:
    if type(value) is int:
        return value
    raise ProtocolError(f"expected int, got {_type_name(value)}")


def _enc_float(value: Any, limits: CodecLimits) -> Any:
    if type(value) is float:
        return value
    if isinstance(value, float | int | np.floating | np.integer) and not isinstance(value, bool):
        return float(value)
    raise ProtocolError(f"expected float, got {_type_name(value)}")


def _dec_float(value: Any, limits: CodecLimits) -> Any:
    if type(value) is float:
        return value
    raise ProtocolError(f"expected float, got {_type_name(value)}")


def _enc_bool(value: Any, limits: CodecLimits) -> Any:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    raise ProtocolError(f"expected bool, got {_type_name(value)}")


def _dec_bool(value: Any, limits: CodecLimits) -> Any:
    if type(value) is bool:
        return value
    raise ProtocolError(f"expected bool, got {_type_name(value)}")


def _check_str(value: Any, limits: CodecLimits) -> Any:
    if type(value) is str:
        return value
    raise ProtocolError(f"expected str, got {_type_name(value)}")


def _dec_array(value: Any, limits: CodecLimits) -> Any:
    if type(value) is np.ndarray:
        return value
    raise ProtocolError(f"expected ndarray, got {_type_name(value)}")


def _list_of(item: Checker) -> Checker:
    def check(value: Any, limits: CodecLimits) -> Any:
        if type(value) is not list:
            raise ProtocolError(f"expected list, got {_type_name(value)}")
        if len(value) > limits.max_container_len:
            raise ProtocolError(f"list of {len(value)} items is too long")
        try:
            return [item(v, limits) for v in value]
        except ProtocolError as e:
            raise ProtocolError(f"list item: {e}") from None

    return check


def _dict_of(item: Checker) -> Checker:
    def check(value: Any, limits: CodecLimits) -> Any:
        if type(value) is not dict:
            raise ProtocolError(f"expected dict, got {_type_name(value)}")
        if len(value) > limits.max_container_len:
            raise ProtocolError(f"map of {len(value)} items is too long")
        out = {}
        for k, v in value.items():
            if type(k) is not str:
                raise ProtocolError(f"map key must be str, got {_type_name(k)}")
            try:
                out[k] = item(v, limits)
            except ProtocolError as e:
                raise ProtocolError(f"map value {k!r}: {e}") from None
        return out

    return check


_SCALARS: Final = (type(None), bool, int, float, str, bytes)


def _any(encoding: bool) -> Checker:
    """Checker of an ``Any`` field: msgpack-native values and arrays, bounded nesting."""

    def walk(value: Any, limits: CodecLimits, depth: int) -> Any:
        t = type(value)
        if t in _SCALARS:
            return value
        if t is list or (encoding and t is tuple):
            if depth >= limits.max_depth:
                raise ProtocolError(f"nesting deeper than {limits.max_depth}")
            if len(value) > limits.max_container_len:
                raise ProtocolError(f"list of {len(value)} items is too long")
            return [walk(v, limits, depth + 1) for v in value]
        if t is dict:
            if depth >= limits.max_depth:
                raise ProtocolError(f"nesting deeper than {limits.max_depth}")
            if len(value) > limits.max_container_len:
                raise ProtocolError(f"map of {len(value)} items is too long")
            out = {}
            for k, v in value.items():
                if type(k) is not str:
                    raise ProtocolError(f"map key must be str, got {_type_name(k)}")
                out[k] = walk(v, limits, depth + 1)
            return out
        if encoding:
            if isinstance(value, np.ndarray):
                return _encode_array(value, limits)
            if isinstance(value, np.bool_):
                return bool(value)
            if isinstance(value, np.integer):
                return int(value)
            if isinstance(value, np.floating):
                return float(value)
            if isinstance(value, str | bytes | int | float):  # subclasses of natives
                return value
        elif t is np.ndarray:
            return value
        raise ProtocolError(f"value of type {t.__name__} is not allowed")

    def check(value: Any, limits: CodecLimits) -> Any:
        return walk(value, limits, 0)

    return check


_DEFAULT_HOOK: Final = _make_ext_hook(DEFAULT_LIMITS)
_ANY_ENC: Final = _any(encoding=True)
_ANY_DEC: Final = _any(encoding=False)


def _compile(annotation: Any) -> tuple[Checker, Checker]:
    """(encode checker, decode checker) of one field annotation."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is int:
        return _enc_int, _dec_int
    if annotation is float:
        return _enc_float, _dec_float
    if annotation is bool:
        return _enc_bool, _dec_bool
    if annotation is str:
        return _check_str, _check_str
    if annotation is Any:
        return _ANY_ENC, _ANY_DEC
    if annotation is np.ndarray or origin is np.ndarray:
        return _encode_array, _dec_array
    if origin is list and len(args) == 1:
        enc, dec = _compile(args[0])
        return _list_of(enc), _list_of(dec)
    if origin is dict and len(args) == 2 and args[0] is str:
        enc, dec = _compile(args[1])
        return _dict_of(enc), _dict_of(dec)
    raise TypeError(f"annotation {annotation!r} is not supported by the codec")


@dataclass(frozen=True)
class _Spec:
    """Compiled wire description of one message class."""

    names: tuple[str, ...]
    getter: Callable[[Any], tuple[Any, ...]]
    payload_names: tuple[str, ...]
    payload_encoders: tuple[Checker, ...]
    payload_decoders: tuple[Checker, ...]


_SPECS: dict[type[Message], _Spec] = {}


def spec_of(cls: type[Message]) -> _Spec:
    """The compiled spec of a registered message class (raises TypeError on unsupported
    annotations: call it once after adding a kind)."""
    spec = _SPECS.get(cls)
    if spec is None:
        if REGISTRY.get(getattr(cls, "KIND", "")) is not cls:
            raise ProtocolError(f"{cls.__name__} is not a registered message kind")
        hints = typing.get_type_hints(cls)
        for name, expected in zip(HEADER_FIELDS, (str, int, int, int, float), strict=True):
            if hints[name] is not expected:
                raise TypeError(f"{cls.__name__}.{name} must stay {expected.__name__}")
        payload = payload_fields(cls)
        pairs = [_compile(hints[n]) for n in payload]
        spec = _Spec(
            names=HEADER_FIELDS + payload,
            getter=attrgetter(*HEADER_FIELDS, *payload),
            payload_names=payload,
            payload_encoders=tuple(p[0] for p in pairs),
            payload_decoders=tuple(p[1] for p in pairs),
        )
        _SPECS[cls] = spec
    return spec


# --------------------------------------------------------------------------- encode / decode

_local = threading.local()


def _packer() -> Any:
    packer = getattr(_local, "packer", None)
    if packer is None:
        packer = _local.packer = msgpack.Packer(use_bin_type=True, datetime=False)
    return packer


_HEADER_ENC: Final = (_check_str, _enc_int, _enc_int, _enc_int, _enc_float)
_HEADER_DEC: Final = (_check_str, _dec_int, _dec_int, _dec_int, _dec_float)


def _check_named(
    kind: str,
    names: tuple[str, ...],
    checkers: tuple[Checker, ...],
    values: list[Any] | tuple[Any, ...],
    limits: CodecLimits,
) -> list[Any]:
    """Checked values, or ProtocolError naming the first bad field (the slow path)."""
    out = []
    for name, check, value in zip(names, checkers, values, strict=True):
        try:
            out.append(check(value, limits))
        except ProtocolError as e:
            raise ProtocolError(f"{kind}.{name}: {e}") from None
    return out


def encode(msg: Message, limits: CodecLimits = DEFAULT_LIMITS) -> bytes:
    """The frame of ``msg``; raises ProtocolError if it breaks the protocol or ``limits``."""
    if not isinstance(msg, Message):
        raise ProtocolError(f"cannot encode {type(msg).__name__}: not a Message")
    cls = type(msg)
    kind = cls.KIND
    spec = _SPECS.get(cls) or spec_of(cls)
    values = spec.getter(msg)
    header = values[: _N_HEADER - 2]
    sender, seq, slot, sent_ns, chain = header
    if not (
        type(sender) is str
        and type(seq) is int
        and type(slot) is int
        and type(sent_ns) is int
        and type(chain) is float
    ):  # numpy scalars, an int latency, or an error
        header = tuple(_check_named(kind, HEADER_FIELDS, _HEADER_ENC, header, limits))
    payload = values[_N_HEADER - 2 :]
    try:
        out = [kind, SCHEMA_VERSION, *header] + [
            enc(v, limits) for enc, v in zip(spec.payload_encoders, payload, strict=True)
        ]
    except ProtocolError:
        _check_named(kind, spec.payload_names, spec.payload_encoders, payload, limits)
        raise
    try:
        frame: bytes = _packer().pack(out)
    except Exception as e:  # should not happen: every value was checked
        _local.packer = None
        raise ProtocolError(f"{kind}: msgpack cannot pack: {e}") from None
    if len(frame) > limits.max_frame_bytes:
        raise ProtocolError(
            f"{kind}: frame of {len(frame)} bytes > max_frame_bytes={limits.max_frame_bytes}"
        )
    return frame


def decode(frame: bytes, limits: CodecLimits = DEFAULT_LIMITS) -> Message:
    """The message in ``frame``; raises ProtocolError for anything that is not one."""
    if not isinstance(frame, bytes | bytearray | memoryview):
        raise ProtocolError(f"frame must be bytes, got {type(frame).__name__}")
    if len(frame) > limits.max_frame_bytes:
        raise ProtocolError(
            f"frame of {len(frame)} bytes > max_frame_bytes={limits.max_frame_bytes}"
        )
    try:
        obj = msgpack.unpackb(
            frame,
            raw=False,
            strict_map_key=True,
            use_list=True,
            ext_hook=_ext_hook(limits),
            max_str_len=limits.max_frame_bytes,
            max_bin_len=limits.max_frame_bytes,
            max_ext_len=limits.max_frame_bytes,
            max_array_len=limits.max_container_len,
            max_map_len=limits.max_container_len,
        )
    except ProtocolError:
        raise
    except Exception as e:  # msgpack reports malformed input with several exception types
        raise ProtocolError(f"malformed msgpack frame: {type(e).__name__}: {e}") from None
    if type(obj) is not list or len(obj) < _N_HEADER:
        raise ProtocolError(f"frame is not a message array (got {type(obj).__name__})")
    kind = obj[0]
    if type(kind) is not str:
        raise ProtocolError(f"kind must be str, got {type(kind).__name__}")
    cls = REGISTRY.get(kind)
    if cls is None:
        raise ProtocolError(f"unknown message kind {kind[:64]!r}")
    schema = obj[1]
    if type(schema) is not int or schema != SCHEMA_VERSION:
        raise ProtocolError(f"{kind}: schema {schema!r} != {SCHEMA_VERSION}")
    spec = _SPECS.get(cls) or spec_of(cls)
    if len(obj) - 2 != len(spec.names):
        raise ProtocolError(f"{kind}: expected {len(spec.names)} fields, got {len(obj) - 2}")
    sender, seq, slot, sent_ns, chain = obj[2:_N_HEADER]
    if not (
        type(sender) is str
        and type(seq) is int
        and type(slot) is int
        and type(sent_ns) is int
        and type(chain) is float
    ):
        _check_named(kind, HEADER_FIELDS, _HEADER_DEC, obj[2:_N_HEADER], limits)
    raw_payload = obj[_N_HEADER:]
    try:
        payload = [
            dec(v, limits) for dec, v in zip(spec.payload_decoders, raw_payload, strict=True)
        ]
    except ProtocolError:
        _check_named(kind, spec.payload_names, spec.payload_decoders, raw_payload, limits)
        raise
    return cls(*payload, sender=sender, seq=seq, slot=slot, sent_ns=sent_ns, chain_latency_s=chain)
