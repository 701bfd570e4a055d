"""Errors raised by the protocol layer."""

from __future__ import annotations


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


def worth_logging(n: int) -> bool:
    """Log the 1st, 10th, 100th, ... occurrence of something (a flood must not flood the
    log)."""
    return str(n).rstrip("0") == "1"
