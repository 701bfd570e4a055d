"""Process names: the controller, the channel server, and ``<role>-<index>`` nodes."""

from __future__ import annotations

CONTROLLER = "controller"
CHANNEL_SERVER = "channel-server"
NODES = "node"
"""The class of every indexed node process (of any role: base station, vehicle, ...), as
a message's ``SENDERS`` names it."""


def index_of(name: str) -> int:
    """``node-3`` / ``vehicle-3`` -> 3 (ValueError for a name without an index)."""
    _, sep, index = name.rpartition("-")
    if not sep or not index.isdigit():
        raise ValueError(f"{name!r} names no indexed process")
    return int(index)
