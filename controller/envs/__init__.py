"""Environments of every scenario kind for outside learners.

:func:`make_env` builds the PettingZoo environment of any scenario: each kind names its
factory in its registry entry (``ScenarioKind.env``, a "module:attr" reference to a module
of this package, one per kind, none importing another's; :mod:`controller.envs.base` is
what they share). Every one plays the kind's own pure air and observation builders, so a
policy trained here sees what the testbed's nodes see.

========================  ============================  ==================================
kind                      ``api="parallel"``            ``api="aec"``
========================  ============================  ==================================
cellular                  ``full``: every BS at once    ``round-robin``: the slot's order
v2x                       every V2V link at once        PettingZoo's ``parallel_to_aec``
d2d-underlay              every D2D pair at once        PettingZoo's ``parallel_to_aec``
interference              every link at once            PettingZoo's ``parallel_to_aec``
========================  ============================  ==================================

Importing this package imports no environment library; the kind's module (and PettingZoo)
is imported when an environment is made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from channel_server.kinds import KINDS, Resolved, ScenarioKind, resolve
from protocols.plugins import resolve as resolve_ref

__all__ = ["make_env"]


def make_env(scenario: str | Path | Resolved | Any, *, api: str = "parallel", seed: int = 0,
             kind: str | ScenarioKind | None = None, **options: Any) -> Any:
    """The PettingZoo environment of ``scenario``: a scenario file (its kind read from it),
    a :class:`~channel_server.kinds.Resolved` (``resolve(path, {"radio.n_cells": 3})`` for
    overrides) or a scenario object with its ``kind``.

    ``api``: "parallel" (a ``pettingzoo.ParallelEnv``) or "aec" (a ``pettingzoo.AECEnv``);
    ``seed``: the seed of a first ``reset()`` without one (``reset(seed=s)`` rebuilds the
    world from ``s``); ``options``: ``max_cycles`` (slots per episode, default 100) and the
    kind's own (V2X: ``fingerprint``).
    """
    if isinstance(scenario, str | Path):
        scenario = resolve(scenario)
    if isinstance(scenario, Resolved):
        the_kind: ScenarioKind = scenario.kind
        config = scenario.scenario
    elif kind is None:
        raise TypeError("make_env of a scenario object needs its kind "
                        f"(one of {', '.join(KINDS.names())})")
    else:
        the_kind = KINDS.get(kind) if isinstance(kind, str) else kind
        config = scenario
    if the_kind.env is None:
        raise ValueError(f"scenario kind {the_kind.name!r} has no environment "
                         "(ScenarioKind.env)")
    return resolve_ref(the_kind.env)(config, int(seed), api=api, **options)
