"""Wire encodings of exchanged arrays: how a process puts on the wire the arrays its
messages exchange (a round-robin power list, an uploaded CSI slice, a central decision,
...), and how any receiver reads them back without knowing how they were sent.

A message class names its exchanged array fields in ``EXCHANGED``
(:class:`protocols.messages.Message`); a scenario's wire configuration
(``channel_server.config.WireConfig``) gives each of them an :class:`ArrayEncoding`, and
the sending process's codec (:func:`protocols.codec.encode` with a :class:`WireFormat`)
applies it:

- ``float64``: the array as computed, an ordinary ``EXT_NDARRAY`` (a run whose encodings
  are all float64 sends the very bytes of a run without any wire configuration);
- ``float32`` / ``float16``: each value rounded to the nearest value of the format within
  the stated range [lo, hi] (clipped to it first; an infinite bound is the format's
  largest finite value, so nothing becomes infinite);
- ``uint16`` / ``uint8``: uniform quantization of [lo, hi] (both finite) with
  ``2^bits - 1`` steps of ``(hi - lo) / (2^bits - 1)``: a value is clipped to the range
  and sent as the code of its nearest level, so it comes back within half a step.

``scale = "db"`` applies the encoding to ``10 log10(x)`` (lo and hi in dB) and the
receiver returns ``10^(y / 10)``: channel gains span many decades, which a linear range
cannot quantize (a 0 becomes ``lo``; a negative value cannot be sent).

Every encoding but float64 travels as msgpack ext type ``EXT_WIRE`` (2), self-describing::

    u8 method (1 float, 2 uniform quantization), u8 bits (float: 32 or 16; quantization:
    16 or 8), u8 scale (0 linear, 1 dB), u8 dtype of the decoded array (0 float64,
    1 float32), u8 ndim, ndim x u32 shape, [quantization: f64 lo, f64 hi],
    then the values (float32 / float16 / uint16 / uint8), C order, little endian.

The receiver returns an array of the sender's dtype and shape; a frame whose method, bits,
scale, dtype, shape or range make no sense raises :class:`ProtocolError` naming it.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np

from protocols.errors import ProtocolError
from protocols.messages import REGISTRY, Message, payload_fields

EXT_WIRE: Final = 2
"""msgpack ext type code of an array in a wire encoding other than float64."""

Encoding = Literal["float64", "float32", "float16", "uint16", "uint8"]
Scale = Literal["linear", "db"]

ENCODINGS: Final[tuple[str, ...]] = ("float64", "float32", "float16", "uint16", "uint8")
BITS: Final[dict[str, int]] = {"float64": 64, "float32": 32, "float16": 16, "uint16": 16,
                               "uint8": 8}
"""Bits per value of each encoding."""

_FLOAT, _QUANT = 1, 2
_METHOD_BITS: Final = {_FLOAT: (32, 16), _QUANT: (16, 8)}
_SCALES: Final[tuple[str, ...]] = ("linear", "db")
_TARGETS: Final[tuple[np.dtype[Any], ...]] = (np.dtype("<f8"), np.dtype("<f4"))
"""Dtypes an exchanged array may have, by their wire code."""
_VALUES: Final[dict[tuple[int, int], np.dtype[Any]]] = {
    (_FLOAT, 32): np.dtype("<f4"), (_FLOAT, 16): np.dtype("<f2"),
    (_QUANT, 16): np.dtype("<u2"), (_QUANT, 8): np.dtype("|u1")}
"""Dtype of the values on the wire, by (method, bits)."""
_HEAD: Final = struct.Struct("<BBBBB")
_RANGE: Final = struct.Struct("<dd")


@dataclass(frozen=True)
class ArrayEncoding:
    """How one exchanged array goes on the wire (see the module docstring)."""

    encoding: Encoding = "float64"
    """float64 (as computed), float32, float16, uint16 or uint8 (uniform quantization)."""
    scale: Scale = "linear"
    """linear: the range and the encoding apply to the value itself (in the field's unit,
    e.g. watts); db: to 10 log10 of it (lo and hi in dB of that unit)."""
    lo: float = -math.inf
    """Lowest value sent (smaller ones are clipped to it), in the field's unit, or dB for
    scale db; must be finite for uint16 / uint8. Unused by float64."""
    hi: float = math.inf
    """Highest value sent (larger ones are clipped to it); finite for uint16 / uint8."""

    def __post_init__(self) -> None:
        if self.encoding not in ENCODINGS:
            raise ValueError(f"encoding {self.encoding!r} is not one of {list(ENCODINGS)}")
        if self.scale not in _SCALES:
            raise ValueError(f"scale {self.scale!r} is not one of {list(_SCALES)}")
        if math.isnan(self.lo) or math.isnan(self.hi) or not self.lo < self.hi:
            raise ValueError(f"range [{self.lo}, {self.hi}] is not an interval lo < hi")
        if self.quantized and not (math.isfinite(self.lo) and math.isfinite(self.hi)):
            raise ValueError(f"{self.encoding} quantizes a finite range; got "
                             f"[{self.lo}, {self.hi}]")

    @property
    def bits(self) -> int:
        """Bits per value on the wire."""
        return BITS[self.encoding]

    @property
    def quantized(self) -> bool:
        return self.encoding.startswith("uint")

    @property
    def step(self) -> float:
        """Quantization step, (hi - lo) / (2^bits - 1), in the range's unit (0: floats)."""
        return (self.hi - self.lo) / (2**self.bits - 1) if self.quantized else 0.0


AS_COMPUTED: Final = ArrayEncoding()
"""float64: the array as computed."""


@dataclass(frozen=True)
class WireFormat:
    """The encodings a sending process applies: keys ``kind`` (every exchanged field of
    that message kind) or ``kind.field``, the more specific first, else ``default``."""

    default: ArrayEncoding = AS_COMPUTED
    arrays: dict[str, ArrayEncoding] = field(default_factory=dict)
    _plans: dict[type[Message], tuple[tuple[int, str, ArrayEncoding], ...]] = field(
        default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        problems = key_problems(self.arrays)
        if problems:
            raise ValueError("; ".join(problems))

    def of(self, kind: str, name: str) -> ArrayEncoding:
        """The encoding of field ``name`` of message kind ``kind``."""
        return self.arrays.get(f"{kind}.{name}") or self.arrays.get(kind) or self.default

    def plan(self, cls: type[Message]) -> tuple[tuple[int, str, ArrayEncoding], ...]:
        """(payload index, field, encoding) of each exchanged field of ``cls`` that is not
        sent as computed (cached per class)."""
        got = self._plans.get(cls)
        if got is None:
            payload = payload_fields(cls)
            got = tuple((payload.index(name), name, enc) for name in cls.EXCHANGED
                        if (enc := self.of(cls.KIND, name)).encoding != "float64")
            self._plans[cls] = got
        return got

    @property
    def identity(self) -> bool:
        """Every exchanged array is sent as computed."""
        return (self.default.encoding == "float64"
                and all(e.encoding == "float64" for e in self.arrays.values()))


def key_problems(arrays: dict[str, ArrayEncoding]) -> list[str]:
    """What is wrong with the keys of a wire configuration's ``arrays``: each must name a
    registered message kind that declares exchanged fields, and a ``kind.field`` one of
    them."""
    problems = []
    for key in arrays:
        kind, _, name = key.partition(".")
        cls = REGISTRY.get(kind)
        if cls is None:
            problems.append(f"{key!r} names no registered message kind")
        elif not cls.EXCHANGED:
            problems.append(f"{key!r}: message kind {kind!r} exchanges no array")
        elif name and name not in cls.EXCHANGED:
            problems.append(f"{key!r}: {kind} exchanges {', '.join(cls.EXCHANGED)}, "
                            f"not {name!r}")
    return problems


# --------------------------------------------------------------------------- encode


def encode_array(x: Any, enc: ArrayEncoding, max_ndim: int, max_elements: int) -> bytes:
    """The ``EXT_WIRE`` data of array ``x`` in encoding ``enc`` (not float64)."""
    if not isinstance(x, np.ndarray) or x.dtype.newbyteorder("<") not in _TARGETS:
        got = type(x).__name__ if not isinstance(x, np.ndarray) else f"{x.dtype} array"
        raise ProtocolError(f"an exchanged array must be float64 or float32, got {got}")
    if x.ndim > max_ndim:
        raise ProtocolError(f"array has {x.ndim} dimensions > {max_ndim}")
    if x.size > max_elements or (x.ndim and max(x.shape) > max_elements):
        raise ProtocolError(f"array of shape {x.shape} is too large")
    target = _TARGETS.index(x.dtype.newbyteorder("<"))
    values = transform(np.asarray(x, np.float64), enc.scale)
    if values.size and np.isnan(values).any():
        what = "NaN or a negative value in dB" if enc.scale == "db" else "NaN"
        raise ProtocolError(f"cannot send {what} as {enc.encoding}")
    method = _QUANT if enc.quantized else _FLOAT
    head = _HEAD.pack(method, enc.bits, _SCALES.index(enc.scale), target, x.ndim)
    shape = struct.pack(f"<{x.ndim}I", *x.shape)
    if enc.quantized:
        codes = quantize(values, enc)
        return b"".join((head, shape, _RANGE.pack(enc.lo, enc.hi), codes.tobytes()))
    return b"".join((head, shape, round_within(values, _VALUES[(_FLOAT, enc.bits)], enc.lo,
                                               enc.hi).tobytes()))


def transform(values: np.ndarray, scale: str) -> np.ndarray:
    """Values on the encoding's scale: as they are (linear) or 10 log10 (db; 0 -> -inf,
    a negative value -> NaN)."""
    if scale == "linear":
        return values
    with np.errstate(divide="ignore", invalid="ignore"):
        out: np.ndarray = 10.0 * np.log10(values)
    return out


def untransform(values: np.ndarray, scale: str) -> np.ndarray:
    """The inverse of :func:`transform`."""
    if scale == "linear":
        return values
    out: np.ndarray = 10.0 ** (values / 10.0)
    return out


def quantize(values: np.ndarray, enc: ArrayEncoding) -> np.ndarray:
    """Codes of the nearest of the ``2^bits`` levels lo + c * step (values clipped to [lo,
    hi] first)."""
    levels = 2**enc.bits - 1
    clipped = np.clip(values, enc.lo, enc.hi)
    codes = np.rint((clipped - enc.lo) * (levels / (enc.hi - enc.lo)))
    out: np.ndarray = np.clip(codes, 0, levels).astype(_VALUES[(_QUANT, enc.bits)])
    return out


def dequantize(codes: np.ndarray, bits: int, lo: float, hi: float) -> np.ndarray:
    """The levels of ``codes``: lo + (hi - lo) * c / (2^bits - 1), within [lo, hi] (so the
    code of hi gives hi, whatever the rounding)."""
    levels: np.ndarray = lo + (hi - lo) * (codes / (2**bits - 1))
    out: np.ndarray = np.clip(levels, lo, hi)
    return out


def round_within(values: np.ndarray, dtype: np.dtype[Any], lo: float, hi: float) -> np.ndarray:
    """``values`` clipped to [lo, hi] and to the finite values of ``dtype``, then rounded to
    the nearest value of ``dtype``, except that one rounded out of the range is moved one
    ulp back in (a power never exceeds its stated limit)."""
    big = float(np.finfo(dtype).max)
    lo, hi = max(lo, -big), min(hi, big)
    out: np.ndarray = np.clip(values, lo, hi).astype(dtype)
    above, below = out.astype(np.float64) > hi, out.astype(np.float64) < lo
    if above.any():
        out[above] = np.nextafter(out[above], dtype.type(-np.inf))
    if below.any():
        out[below] = np.nextafter(out[below], dtype.type(np.inf))
    return out


# --------------------------------------------------------------------------- decode


def decode_array(data: bytes, max_ndim: int, max_elements: int) -> np.ndarray:
    """The array an ``EXT_WIRE`` ext holds; ProtocolError naming what makes no sense."""
    if len(data) < _HEAD.size:
        raise ProtocolError("wire array header truncated")
    method, bits, scale, target, ndim = _HEAD.unpack_from(data)
    allowed = _METHOD_BITS.get(method)
    if allowed is None:
        raise ProtocolError(f"wire array: unknown method {method} (1 float, 2 quantized)")
    if bits not in allowed:
        what = "a float encoding" if method == _FLOAT else "uniform quantization"
        raise ProtocolError(f"wire array: {bits} bits make no sense for {what} (only "
                            f"{' or '.join(map(str, allowed))})")
    if scale >= len(_SCALES):
        raise ProtocolError(f"wire array: unknown scale code {scale}")
    if target >= len(_TARGETS):
        raise ProtocolError(f"wire array: unknown dtype code {target}")
    if ndim > max_ndim:
        raise ProtocolError(f"wire array has {ndim} dimensions > {max_ndim}")
    offset = _HEAD.size + 4 * ndim
    if len(data) < offset:
        raise ProtocolError("wire array shape truncated")
    shape = struct.unpack_from(f"<{ndim}I", data, _HEAD.size)
    count = math.prod(shape)
    if count > max_elements or (ndim and max(shape) > max_elements):
        raise ProtocolError(f"wire array of shape {shape} is too large")
    lo = hi = 0.0
    if method == _QUANT:
        if len(data) < offset + _RANGE.size:
            raise ProtocolError("wire array range truncated")
        lo, hi = _RANGE.unpack_from(data, offset)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ProtocolError(f"wire array: range [{lo}, {hi}] makes no sense (finite, "
                                "lo < hi)")
        offset += _RANGE.size
    dtype = _VALUES[(method, bits)]
    if count * dtype.itemsize != len(data) - offset:
        raise ProtocolError(f"wire array of shape {shape} in {bits}-bit values needs "
                            f"{count * dtype.itemsize} bytes, got {len(data) - offset}")
    raw = np.frombuffer(data, dtype, count, offset)
    values = (dequantize(raw, bits, lo, hi) if method == _QUANT
              else raw.astype(np.float64))
    out: np.ndarray = untransform(values, _SCALES[scale]).astype(_TARGETS[target])
    return out.reshape(shape)
