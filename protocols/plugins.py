"""Plug-ins: lazy references ("module:attribute") and the modules a run loads first.

A registry entry may name its factory as ``"package.module:attr"`` so that a process imports
only what it runs (a node never imports the controller's baselines). :func:`resolve` turns
such a reference (or a callable given directly) into the object.

Third-party scenario kinds, schemes and learners live in modules that register themselves
when imported. ``RRMBED_PLUGINS`` (comma-separated module names) lists them; every rrmbed
process imports them at start (:func:`load_plugins`), and child processes inherit the
variable, so a plug-in registered once is known to the controller, the channel server and
every node.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

ENV = "RRMBED_PLUGINS"


def resolve(ref: Any) -> Any:
    """The object a "module:attr" reference names; anything else is returned as it is."""
    if not isinstance(ref, str):
        return ref
    module, sep, attr = ref.partition(":")
    if not sep:
        raise ValueError(f"plug-in reference {ref!r} is not 'module:attribute'")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def load_plugins(extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Import the modules named in ``$RRMBED_PLUGINS`` and ``extra``; add ``extra`` to the
    variable so child processes load them too. Returns the module names loaded."""
    names = [n.strip() for n in os.environ.get(ENV, "").split(",") if n.strip()]
    for n in extra:
        if n not in names:
            names.append(n)
    if names:
        os.environ[ENV] = ",".join(names)
    for n in names:
        try:
            importlib.import_module(n)
        except ImportError as e:
            raise ImportError(f"plug-in module {n!r} (from ${ENV}) cannot be imported: {e}") from e
    return names
