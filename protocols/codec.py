"""msgpack codec for every message kind (nothing is pickled).

Wire format of one frame: a msgpack array

    [kind, schema, sender, seq, slot, sent_ns, chain_latency_s, payload_1, ..., payload_n]

with the payload fields in dataclass order. A numpy array travels as msgpack ext type
``EXT_NDARRAY`` (1) whose data is ``u8 dtype_code, u8 ndim, ndim x u64 shape`` (little
endian) followed by the C-ordered little-endian raw bytes. Dtype codes: see ``DTYPES``.

An exchanged array (a field a message class names in ``EXCHANGED``) that the sender's
:class:`~protocols.wire.WireFormat` puts in another encoding than float64 travels as ext
type ``EXT_WIRE`` (2) instead, which says how it was encoded (:mod:`protocols.wire`); the
receiver decodes it without knowing the sender's configuration.

The frame's *header* part is the msgpack array's own framing plus the seven header items
(kind to chain_latency_s); the rest is the *payload* (:func:`header_length`).

Decoding is strict: frame size, msgpack container and string sizes, array dimensions and
elements are bounded by :class:`CodecLimits`; shape x itemsize must equal the byte length;
the kind must be registered, the schema equal to ``SCHEMA_VERSION``, the field count exact
and every field of the type its annotation names (an int is not a bool, a float field holds
a float). Anything else raises :class:`ProtocolError` naming the problem. Encoding checks the
same rules (numpy scalars are accepted and converted, ints in float fields become floats), so
a frame that encodes also decodes under the same limits.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import struct
import threading
import types
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
from protocols.wire import EXT_WIRE, WireFormat, decode_array, encode_array

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
_CODE_BY_DTYPE_OBJ: Final[dict[np.dtype[Any], int]] = {d: i for i, d in enumerate(DTYPES)}
"""The same keyed by dtype object: a cheaper lookup than ``dtype.str`` on the hot path."""
_ITEMSIZES: Final[tuple[int, ...]] = tuple(d.itemsize for d in DTYPES)
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
    code = _CODE_BY_DTYPE_OBJ.get(value.dtype)
    if code is None:
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
    if ndim == 1:
        if shape[0] > limits.max_array_elements:
            raise ProtocolError(f"array of shape {shape} is too large")
        header = _HEADER_1D.pack(code, 1, shape[0])
    else:
        if value.size > limits.max_array_elements or (
            ndim and max(shape) > limits.max_array_elements
        ):
            raise ProtocolError(f"array of shape {shape} is too large")
        header = _shape_struct(ndim).pack(code, ndim, *shape)
    if value.nbytes <= _SMALL_ARRAY_BYTES:
        return _ext_type(EXT_NDARRAY, header + value.tobytes())  # C order, whatever the strides
    if not value.flags.c_contiguous:
        value = np.ascontiguousarray(value)
    return _ext_type(EXT_NDARRAY, b"".join((header, value.data)))


_HEADER_1D: Final = _SHAPE_STRUCTS[1]


_SMALL_ARRAY_BYTES: Final = 1 << 16
"""Arrays up to this size are copied with ``tobytes`` (cheaper call) before the header is
prepended; larger ones are joined from a memoryview (one copy instead of two)."""


def _ext_type(code: int, data: bytes) -> msgpack.ExtType:
    """``msgpack.ExtType(code, data)`` without its argument checks (ours are always valid;
    ExtType is a namedtuple)."""
    return tuple.__new__(msgpack.ExtType, (code, data))


_U64: Final = struct.Struct("<Q")


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
    max_elements = limits.max_array_elements
    one_dim = limits.max_ndim >= 1

    def hook(code: int, data: bytes) -> Any:
        if code != EXT_NDARRAY:
            if code == EXT_WIRE:
                return decode_array(data, limits.max_ndim, max_elements)
            raise ProtocolError(f"unknown msgpack ext type {code}")
        # Fast path of a 1-D array (the common case; not bool: its bytes need checking).
        n = len(data)
        if n >= 10 and data[1] == 1 and one_dim and 0 < data[0] < len(DTYPES):
            count: int = _U64.unpack_from(data, 2)[0]
            if count and count * _ITEMSIZES[data[0]] == n - 10 and count <= max_elements:
                return np.frombuffer(data, DTYPES[data[0]], count, 10).copy()
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


# --------------------------------------------------------------------------- fast paths
# Per message class, encode and decode are also compiled into one straight-line function
# (generated source, like dataclasses' own __init__) that only accepts values of exactly the
# annotated types and returns None otherwise (or raises ProtocolError); the caller then runs
# the generic checkers above, which convert what they accept and name the bad field. So the
# fast path changes no result, only the cost of a well-formed message.

FastEncoder = Callable[[Any, CodecLimits], "list[Any] | None"]
FastDecoder = Callable[[list[Any], CodecLimits], "Message | None"]

_SCALAR_TYPES: Final = (int, float, bool, str)


def _only(values: list[Any], t: type) -> bool:
    """Whether every item of ``values`` is exactly of type ``t``."""
    for v in values:  # noqa: SIM110 - a plain loop is cheaper than all() of a generator
        if type(v) is not t:
            return False
    return True


def _fast_field(annotation: Any, v: str, i: int) -> tuple[str, str, str]:
    """(encode condition, encoded value, decode condition) source of one payload field held
    in variable ``v``; ``_enc{i}``/``_dec{i}`` name the field's generic checkers."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation in _SCALAR_TYPES:
        cond = f"type({v}) is {annotation.__name__}"
        return cond, v, cond
    if annotation is np.ndarray or origin is np.ndarray:
        return "True", f"_encode_array({v}, limits)", f"type({v}) is _ndarray"
    if origin is list and len(args) == 1:
        item = args[0]
        if item in _SCALAR_TYPES:
            t = item.__name__
            return (
                f"type({v}) is list and len({v}) <= limits.max_container_len"
                f" and _only({v}, {t})",
                v,
                f"type({v}) is list and _only({v}, {t})",  # msgpack bounded its length
            )
        if item is np.ndarray or typing.get_origin(item) is np.ndarray:
            return (
                f"type({v}) is list and len({v}) <= limits.max_container_len",
                f"[_encode_array(x, limits) for x in {v}]",
                f"type({v}) is list and _only({v}, _ndarray)",
            )
    return "True", f"_enc{i}({v}, limits)", "True"  # the generic checkers decide


def _slot_setters(cls: type[Message], names: tuple[str, ...]) -> list[Callable[..., Any]] | None:
    """Setters of the slots ``names`` when building ``cls`` from them needs nothing but
    setting each (its ``__init__`` is the one dataclasses generated, every field is an init
    field stored in a slot, no ``__post_init__``); None otherwise."""
    fields = dataclasses.fields(cls)
    if (
        {f.name for f in fields} != set(names)
        or not all(f.init for f in fields)
        or hasattr(cls, "__post_init__")
        or getattr(getattr(cls.__init__, "__code__", None), "co_filename", None) != "<string>"
    ):
        return None
    setters = []
    for name in names:
        slot = inspect.getattr_static(cls, name, None)
        if type(slot) is not types.MemberDescriptorType:
            return None
        setters.append(slot.__set__)
    return setters


def _compile_fast(
    cls: type[Message],
    payload: tuple[str, ...],
    hints: dict[str, Any],
    pairs: list[tuple[Checker, Checker]],
) -> tuple[FastEncoder, FastDecoder]:
    """The fast encoder and decoder of a message class (see above)."""
    header = ("sender", "seq", "slot", "sent_ns", "chain")
    fields = [f"f{i}" for i in range(len(payload))]
    head_cond = [
        "type(sender) is str",
        "type(seq) is int",
        "type(slot) is int",
        "type(sent_ns) is int",
        "type(chain) is float",
    ]
    enc_cond, enc_vals, dec_cond, dec_vals = list(head_cond), [], list(head_cond), []
    env: dict[str, Any] = {
        "_cls": cls,
        "_kind": cls.KIND,
        "_schema": SCHEMA_VERSION,
        "_getter": attrgetter(*HEADER_FIELDS, *payload),
        "_encode_array": _encode_array,
        "_ndarray": np.ndarray,
        "_only": _only,
    }
    for i, (name, (enc, dec)) in enumerate(zip(payload, pairs, strict=True)):
        ec, ev, dc = _fast_field(hints[name], fields[i], i)
        enc_cond.append(ec)
        enc_vals.append(ev)
        dec_cond.append(dc)
        dec_vals.append(fields[i] if dc != "True" else f"_dec{i}({fields[i]}, limits)")
        env[f"_enc{i}"], env[f"_dec{i}"] = enc, dec
    names = ", ".join((*header, *fields))
    setters = _slot_setters(cls, HEADER_FIELDS + payload)
    if setters is None:
        kwargs = ", ".join(f"{f}={v}" for f, v in zip(HEADER_FIELDS, header, strict=True))
        construct = f"return _cls({', '.join((*dec_vals, kwargs))})"
    else:  # what the dataclass __init__ does, minus its call and argument parsing
        env["_new"] = object.__new__
        lines = ["msg = _new(_cls)"]
        for j, (setter, value) in enumerate(zip(setters, (*header, *dec_vals), strict=True)):
            env[f"_set{j}"] = setter
            lines.append(f"_set{j}(msg, {value})")
        construct = "\n    ".join((*lines, "return msg"))
    source = f"""
def fast_encode(msg, limits):
    {names}, = _getter(msg)
    if not ({" and ".join(c for c in enc_cond if c != "True")}):
        return None
    return [_kind, _schema, {", ".join((*header, *enc_vals))}]

def fast_decode(obj, limits):
    _k, _s, {names}, = obj
    if not ({" and ".join(c for c in dec_cond if c != "True")}):
        return None
    {construct}
"""
    exec(compile(source, f"<codec fast path of {cls.__name__}>", "exec"), env)
    return env["fast_encode"], env["fast_decode"]


@dataclass(frozen=True)
class _Spec:
    """Compiled wire description of one message class."""

    names: tuple[str, ...]
    getter: Callable[[Any], tuple[Any, ...]]
    payload_names: tuple[str, ...]
    payload_encoders: tuple[Checker, ...]
    payload_decoders: tuple[Checker, ...]
    fast_encode: FastEncoder
    fast_decode: FastDecoder


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
        for name in cls.EXCHANGED:
            if name not in payload or not (hints[name] is np.ndarray
                                           or typing.get_origin(hints[name]) is np.ndarray):
                raise TypeError(f"{cls.__name__}.EXCHANGED names {name!r}, which is not an "
                                "array field")
        pairs = [_compile(hints[n]) for n in payload]
        fast_encode, fast_decode = _compile_fast(cls, payload, hints, pairs)
        spec = _Spec(
            names=HEADER_FIELDS + payload,
            getter=attrgetter(*HEADER_FIELDS, *payload),
            payload_names=payload,
            payload_encoders=tuple(p[0] for p in pairs),
            payload_decoders=tuple(p[1] for p in pairs),
            fast_encode=fast_encode,
            fast_decode=fast_decode,
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


def encode(msg: Message, limits: CodecLimits = DEFAULT_LIMITS,
           wire: WireFormat | None = None) -> bytes:
    """The frame of ``msg``; raises ProtocolError if it breaks the protocol or ``limits``.
    ``wire``: the sending process's encodings of exchanged arrays (None: as computed)."""
    cls = type(msg)
    spec = _SPECS.get(cls)
    if spec is None:
        if not isinstance(msg, Message):
            raise ProtocolError(f"cannot encode {cls.__name__}: not a Message")
        spec = spec_of(cls)
    try:
        out = spec.fast_encode(msg, limits)
    except ProtocolError:
        out = None
    if out is None:  # not exactly the annotated types: convert, or name the bad field
        out = _checked_values(msg, spec, limits)
    if wire is not None and cls.EXCHANGED:
        for i, name, enc in wire.plan(cls):
            try:
                data = encode_array(getattr(msg, name), enc, limits.max_ndim,
                                    limits.max_array_elements)
            except ProtocolError as e:
                raise ProtocolError(f"{cls.KIND}.{name}: {e}") from None
            out[_N_HEADER + i] = _ext_type(EXT_WIRE, data)
    packer = getattr(_local, "packer", None) or _packer()
    try:
        frame: bytes = packer.pack(out)
    except Exception as e:  # should not happen: every value was checked
        _local.packer = None
        raise ProtocolError(f"{cls.KIND}: msgpack cannot pack: {e}") from None
    if len(frame) > limits.max_frame_bytes:
        raise ProtocolError(
            f"{cls.KIND}: frame of {len(frame)} bytes > max_frame_bytes={limits.max_frame_bytes}"
        )
    return frame


def _checked_values(msg: Message, spec: _Spec, limits: CodecLimits) -> list[Any]:
    """The values to pack for ``msg``, by the generic checkers (the slow path of encode)."""
    kind = type(msg).KIND
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
        return [kind, SCHEMA_VERSION, *header] + [
            enc(v, limits) for enc, v in zip(spec.payload_encoders, payload, strict=True)
        ]
    except ProtocolError:
        _check_named(kind, spec.payload_names, spec.payload_encoders, payload, limits)
        raise


def _item_sizes() -> tuple[int, ...]:
    """Bytes of a msgpack item by its first byte, for the header's types (str, int, float,
    nil, bool): the size, or -1 for str8/16/32 (length follows), 0 for anything else."""
    sizes = [0] * 256
    for b in (*range(0x00, 0x80), *range(0xE0, 0x100), 0xC0, 0xC2, 0xC3):
        sizes[b] = 1  # fixints, nil, bools
    for b in range(0xA0, 0xC0):
        sizes[b] = 1 + (b & 0x1F)  # fixstr
    for b, n in ((0xCC, 2), (0xCD, 3), (0xCE, 5), (0xCF, 9), (0xD0, 2), (0xD1, 3), (0xD2, 5),
                 (0xD3, 9), (0xCA, 5), (0xCB, 9)):
        sizes[b] = n
    for b in (0xD9, 0xDA, 0xDB):
        sizes[b] = -1
    return tuple(sizes)


_ITEM_SIZES: Final = _item_sizes()
_STR_WIDTH: Final = {0xD9: 1, 0xDA: 2, 0xDB: 4}
"""Bytes of the length of a str8 / str16 / str32."""


def header_length(frame: bytes) -> int:
    """Bytes of the header part of an encoded frame: the msgpack array's own framing and
    the seven header items (kind, schema, sender, seq, slot, sent_ns, chain_latency_s). The
    rest of the frame is the payload. Raises ProtocolError if ``frame`` does not start with
    such a header."""
    try:
        first = frame[0]
        pos = 1 if 0x90 <= first <= 0x9F else 3 if first == 0xDC else 5 if first == 0xDD else 0
        if pos == 0:
            raise ProtocolError("frame is not a msgpack array")
        for _ in range(_N_HEADER):
            b = frame[pos]
            n = _ITEM_SIZES[b]
            if n < 0:
                width = _STR_WIDTH[b]
                n = 1 + width + int.from_bytes(frame[pos + 1:pos + 1 + width], "big")
            elif n == 0:
                raise ProtocolError(f"header item of msgpack type 0x{b:02x}")
            pos += n
    except IndexError:
        raise ProtocolError("frame header truncated") from None
    if pos > len(frame):
        raise ProtocolError("frame header truncated")
    return pos


def decode(frame: bytes, limits: CodecLimits = DEFAULT_LIMITS) -> Message:
    """The message in ``frame``; raises ProtocolError for anything that is not one."""
    if type(frame) is not bytes and not isinstance(frame, bytes | bytearray | memoryview):
        raise ProtocolError(f"frame must be bytes, got {type(frame).__name__}")
    if len(frame) > limits.max_frame_bytes:
        raise ProtocolError(
            f"frame of {len(frame)} bytes > max_frame_bytes={limits.max_frame_bytes}"
        )
    obj = _unpack(frame, limits)
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
    try:
        msg = spec.fast_decode(obj, limits)
    except ProtocolError:
        msg = None
    if msg is not None:
        return msg
    # Not exactly the annotated types: name the bad field.
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


_REUSE_MAX_BYTES: Final = 1 << 16
"""Frames up to this size (under the default limits) are unpacked by a reused per-thread
``msgpack.Unpacker``: configuring ``unpackb`` anew costs more than unpacking a small frame."""


class _Reader:
    """A per-thread reused Unpacker and the stream offset it should be at."""

    __slots__ = ("offset", "unpacker")

    def __init__(self) -> None:
        self.unpacker = msgpack.Unpacker(
            max_buffer_size=4 * _REUSE_MAX_BYTES, **_unpack_options(DEFAULT_LIMITS)
        )
        self.offset = 0


def _unpack_options(limits: CodecLimits) -> dict[str, Any]:
    return {
        "raw": False,
        "strict_map_key": True,
        "use_list": True,
        "ext_hook": _ext_hook(limits),
        "max_str_len": limits.max_frame_bytes,
        "max_bin_len": limits.max_frame_bytes,
        "max_ext_len": limits.max_frame_bytes,
        "max_array_len": limits.max_container_len,
        "max_map_len": limits.max_container_len,
    }


def _unpack(frame: bytes, limits: CodecLimits) -> Any:
    """The one msgpack object in ``frame``; ProtocolError when there is not exactly one."""
    if limits is DEFAULT_LIMITS and type(frame) is bytes and len(frame) <= _REUSE_MAX_BYTES:
        reader: _Reader = getattr(_local, "reader", None) or _Reader()
        _local.reader = None  # in use: a re-entrant call (signal handler) makes its own
        unpacker = reader.unpacker
        try:
            unpacker.feed(frame)
            obj = unpacker.unpack()
        except Exception:  # malformed or truncated: unpackb below names the problem
            pass  # and this reader, in an unknown state, is dropped
        else:
            end = reader.offset + len(frame)
            if unpacker.tell() == end:  # else trailing bytes: likewise
                reader.offset = end
                _local.reader = reader
                return obj
    try:
        return msgpack.unpackb(frame, **_unpack_options(limits))
    except ProtocolError:
        raise
    except Exception as e:  # msgpack reports malformed input with several exception types
        raise ProtocolError(f"malformed msgpack frame: {type(e).__name__}: {e}") from None
