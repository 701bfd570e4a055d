"""One run on either runner, from a scenario resolved once: check the scheme and the
weights before any process starts, then run locally (the pump) or over real
processes (the launcher)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from channel_server.kinds import Resolved
from node.schemes import SCHEMES, Scheme


class RunError(ValueError):
    """The run cannot start: a wrong scheme, missing or foreign weights, ..."""


def scheme_for(resolved: Resolved, scheme: str) -> Scheme:
    kind = resolved.kind
    if scheme not in SCHEMES.names(kind.name, external=True):
        raise RunError(f"unknown scheme {scheme!r} for a {kind.label or kind.name} scenario; "
                       f"choose from {', '.join(SCHEMES.names(kind.name))}")
    return SCHEMES.get(kind.name, scheme)


def load_weights(resolved: Resolved, spec: Scheme, path: Path | None,
                 training: bool) -> dict[str, np.ndarray] | None:
    """The weights a run starts from; named errors for what cannot work."""
    if path is None:
        if spec.needs_weights and not training:
            hint = f" of `{spec.weights_from}`" if spec.weights_from else ""
            raise RunError(f"scheme {spec.name!r} acts with trained weights: pass --weights "
                           f"(the {spec.weights} weights.npz{hint})")
        return None
    if spec.weights is None:
        raise RunError(f"scheme {spec.name!r} runs no policy; --weights does not apply")
    from protocols.weights import load

    try:
        artifact = load(path)  # its errors name the file
        arrays, facts = dict(artifact.arrays), artifact.meta.flat()
    except ValueError as e:
        raise RunError(str(e)) from e
    try:
        spec.check_weights(resolved.scenario, arrays, facts)
    except ValueError as e:
        raise RunError(f"{path}: {e}") from e
    return arrays


def execute(resolved: Resolved, scheme: str, runner: str, slots: int, seed: int, out: Path,
            weights: Path | None, options: dict[str, Any],
            on_progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Run ``scheme`` on the resolved scenario; write the run directory ``out``; the
    summary. ``options``: the processes' run options plus the launcher's ``endpoints``,
    ``telemetry``, ``broker``, ``insecure``, ``keys``, ``controller_restarts`` and
    ``air_restarts``."""
    spec = scheme_for(resolved, scheme)
    if spec.options.get("external"):
        raise RunError(f"scheme {scheme!r} waits for a learner outside the testbed every "
                       "slot: run it through controller.envs.make_env(..., runner='network')")
    arrays = load_weights(resolved, spec, weights, bool(options.get("train")))
    launcher = ("endpoints", "telemetry", "broker", "insecure", "keys", "controller_restarts",
                "air_restarts")
    opts = {k: v for k, v in options.items() if k not in launcher}
    if runner == "network":
        from controller.deploy.launcher import run_network

        return run_network(resolved, scheme, slots, seed, out, weights, opts, on_progress,
                           endpoints=options.get("endpoints", "tcp"),
                           telemetry=options.get("telemetry", True),
                           broker=options.get("broker"),
                           insecure=bool(options.get("insecure")), keys=options.get("keys"),
                           controller_restarts=int(options.get("controller_restarts") or 0),
                           air_restarts=int(options.get("air_restarts") or 0))
    from controller.runners.local import run_local

    return run_local(resolved, scheme, slots, seed, out, arrays, opts, on_progress)
