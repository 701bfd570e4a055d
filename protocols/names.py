"""Process names: the controller, the channel server, and ``<role>-<index>`` nodes."""

from __future__ import annotations

CONTROLLER = "controller"
CHANNEL_SERVER = "channel-server"


def index_of(name: str) -> int:
    """``node-3`` / ``vehicle-3`` -> 3 (ValueError for a name without an index)."""
    return int(name.rsplit("-", 1)[1])
