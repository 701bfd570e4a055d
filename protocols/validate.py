"""Checks a role applies to a message before it acts on it (pure).

A check that fails raises :class:`Rejected` naming what is wrong; the role's ``receive``
(:meth:`protocols.role.Role.receive`) drops the message and counts it under that reason,
and the process goes on.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

ADDRESS = re.compile(r"^(tcp://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):\d{1,5}"
                     r"|(ipc|inproc)://[^\s\x00]{1,200})$")
"""An inbox address a process may announce: ``tcp://host:port``, ``ipc://path`` or
``inproc://name`` (the in-memory pump)."""


class Rejected(Exception):
    """A message that must not be acted on; the text is the reason it is counted under."""


def check_array(x: Any, name: str, shape: tuple[int, ...], lo: float | None = None,
                hi: float | None = None) -> np.ndarray:
    """``x`` is a real numeric array of ``shape``, finite, within [lo, hi] where given."""
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "biuf":
        raise Rejected(f"{name} is not a real numeric array")
    if x.shape != shape:
        raise Rejected(f"{name} has shape {x.shape}, expected {shape}")
    if x.dtype.kind == "f" and x.size and not np.isfinite(x).all():
        raise Rejected(f"{name} holds NaN or infinite values")
    if x.size and ((lo is not None and x.min() < lo) or (hi is not None and x.max() > hi)):
        raise Rejected(f"{name} outside [{lo}, {hi}]")
    return x


def check_number(x: float, name: str, lo: float | None = None, hi: float | None = None,
                 allow_inf: bool = False) -> float:
    """``x`` is a number (not NaN; infinite only where allowed) within [lo, hi]."""
    if x != x or (math.isinf(x) and not allow_inf):
        raise Rejected(f"{name} is {x}")
    if (lo is not None and x < lo) or (hi is not None and x > hi):
        raise Rejected(f"{name} = {x} outside [{lo}, {hi}]")
    return x


def check_indices(xs: Sequence[int], name: str, n: int, distinct: bool = True) -> list[int]:
    """Every entry an index in [0, n), no repeats (where ``distinct``)."""
    out = list(xs)
    if any(not 0 <= i < n for i in out):
        raise Rejected(f"{name} {out[:16]} holds an index outside [0, {n})")
    if distinct and len(set(out)) != len(out):
        raise Rejected(f"{name} {out[:16]} repeats an index")
    return out


def check_address(address: str) -> str:
    if not ADDRESS.match(address):
        raise Rejected(f"address {address[:80]!r} is not tcp://host:port, ipc:// or inproc://")
    return address
