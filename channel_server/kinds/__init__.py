"""Scenario kinds: the registry and the built-in kinds, registered on import."""

from channel_server.kinds import cellular, d2d, interference, v2x  # noqa: F401  (registration)
from channel_server.kinds.registry import KINDS, Resolved, ScenarioKind, from_toml, resolve

__all__ = ["KINDS", "Resolved", "ScenarioKind", "from_toml", "resolve"]
