"""Scenario kinds' own command groups, one module each (``v2x``: ``rrmbed v2x ...``).

:func:`load` imports every module of this package; each attaches its commands to the root
group of :mod:`controller.cli.common` (or to a group another module here defines). A new
kind's commands are a new module here: nothing else to edit. Modules import their heavy
dependencies inside the commands, so ``rrmbed --help`` stays quick.
"""

from __future__ import annotations

import importlib
import pkgutil


def load() -> list[str]:
    """Import every command module of this package (sorted); their names."""
    names = sorted(m.name for m in pkgutil.iter_modules(__path__))
    for name in names:
        importlib.import_module(f"{__name__}.{name}")
    return names
