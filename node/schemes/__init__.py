"""Schemes: :mod:`node.schemes.registry` and the built-in schemes, registered on import."""

from node.schemes import cellular, d2d, interference, v2x  # noqa: F401  (registration)
from node.schemes.registry import SCHEMES, Exchange, Scheme, register

__all__ = ["SCHEMES", "Exchange", "Scheme", "register"]
