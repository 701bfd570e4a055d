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
    if value.ndim > limits.max_ndim:
        raise ProtocolError(f"array has {value.ndim} dimensions > {limits.max_ndim}")
    if value.size > limits.max_array_elements or any(
        d > limits.max_array_elements for d in value.shape
    ):
        raise ProtocolError(f"array of shape {value.shape} is too large")
    if not value.flags.c_contiguous:
        value = np.ascontiguousarray(value)
    header = struct.pack(f"<BB{value.ndim}Q", code, value.ndim, *value.shape)
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
    shape = struct.unpack_from(f"<{ndim}Q", data, 2)
    count = math.prod(shape)
    if count > limits.max_array_elements or any(d > limits.max_array_elements for d in shape):
        raise ProtocolError(f"array of shape {shape} is too large")
    dtype = DTYPES[code]
    if count * dtype.itemsize != len(data) - offset:
        raise ProtocolError(
            f"array of shape {shape} and dtype {dtype} needs {count * dtype.itemsize} bytes, "
            f"got {len(data) - offset}"
        )
    if count == 0:
        return np.zeros(shape, dtype)
    if code == 0 and bool((np.frombuffer(data, np.uint8, offset=offset) > 1).any()):
        raise ProtocolError("bool array holds bytes other than 0 and 1")
    return np.frombuffer(data, dtype, count=count, offset=offset).reshape(shape).copy()


@lru_cache(maxsize=64)
def _ext_hook(limits: CodecLimits) -> Callable[[int, bytes], Any]:
    def hook(code: int, data: bytes) -> Any:
        if code != EXT_NDARRAY:
            raise ProtocolError(f"unknown msgpack ext type {code}")
        return _decode_array(data, limits)

    return hook


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
    encoders: tuple[Checker, ...]
    decoders: tuple[Checker, ...]


_SPECS: dict[type[Message], _Spec] = {}


def spec_of(cls: type[Message]) -> _Spec:
    """The compiled spec of a registered message class (raises TypeError on unsupported
    annotations: call it once after adding a kind)."""
    spec = _SPECS.get(cls)
    if spec is None:
        if REGISTRY.get(getattr(cls, "KIND", "")) is not cls:
            raise ProtocolError(f"{cls.__name__} is not a registered message kind")
        hints = typing.get_type_hints(cls)
        names = HEADER_FIELDS + payload_fields(cls)
        pairs = [_compile(hints[n]) for n in names]
        spec = _Spec(
            names=names,
            getter=attrgetter(*names),
            encoders=tuple(p[0] for p in pairs),
            decoders=tuple(p[1] for p in pairs),
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


def encode(msg: Message, limits: CodecLimits = DEFAULT_LIMITS) -> bytes:
    """The frame of ``msg``; raises ProtocolError if it breaks the protocol or ``limits``."""
    if not isinstance(msg, Message):
        raise ProtocolError(f"cannot encode {type(msg).__name__}: not a Message")
    cls = type(msg)
    spec = _SPECS.get(cls) or spec_of(cls)
    out: list[Any] = [cls.KIND, SCHEMA_VERSION]
    for name, enc, value in zip(spec.names, spec.encoders, spec.getter(msg), strict=True):
        try:
            out.append(enc(value, limits))
        except ProtocolError as e:
            raise ProtocolError(f"{cls.KIND}.{name}: {e}") from None
    try:
        frame: bytes = _packer().pack(out)
    except Exception as e:  # should not happen: every value was checked
        _local.packer = None
        raise ProtocolError(f"{cls.KIND}: msgpack cannot pack: {e}") from None
    if len(frame) > limits.max_frame_bytes:
        raise ProtocolError(
            f"{cls.KIND}: frame of {len(frame)} bytes > max_frame_bytes={limits.max_frame_bytes}"
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
    values = {}
    for name, dec, value in zip(spec.names, spec.decoders, obj[2:], strict=True):
        try:
            values[name] = dec(value, limits)
        except ProtocolError as e:
            raise ProtocolError(f"{kind}.{name}: {e}") from None
    return cls(**values)
