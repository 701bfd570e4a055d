"""Errors raised by the protocol layer."""

from __future__ import annotations

import re


class ProtocolError(ValueError):
    """A frame or a message that breaks the wire protocol.

    Raised by the codec for anything that does not decode to a valid message (garbage,
    truncated or oversized frames, unknown kind, wrong schema, wrong field types) and for
    messages that cannot be encoded. The text names the problem.
    """


class PeerError(RuntimeError):
    """A transport call that names a peer the endpoint does not know, or needs an inbox it
    does not have."""


class PeerTimeout(TimeoutError):
    """Nothing arrived (or nothing could be sent) within the allowed time."""


MAX_REASONS = 64
"""Distinct reasons a count keeps apart (a fuzzer's varied frames must not grow it without
bound); the rest are counted as "other reasons"."""

_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def reason_of(text: str) -> str:
    """The reason ``text`` names, with what varies from case to case (quoted names,
    numbers) blanked out, so alike troubles share one count: ``"frame of 9 bytes"`` and
    ``"frame of 12 bytes"`` are both ``"frame of N bytes"``."""
    return _NUMBER.sub("N", _QUOTED.sub("'…'", text))[:160]


def count_reason(counts: dict[str, int], reason: str) -> int:
    """Count one more ``reason`` in ``counts``, keeping at most ``MAX_REASONS`` apart; the
    count of that reason so far."""
    if reason not in counts and len(counts) >= MAX_REASONS:
        reason = "other reasons"
    n = counts[reason] = counts.get(reason, 0) + 1
    return n


def worth_logging(n: int) -> bool:
    """Log the 1st, 10th, 100th, ... occurrence of something (a flood must not flood the
    log)."""
    return str(n).rstrip("0") == "1"
