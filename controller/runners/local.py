"""The local runner: every role of a run (controller, channel server, nodes) in this
process, driven by the in-memory :class:`~controller.runners.pump.Pump`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from channel_server.kinds import Resolved
from channel_server.roles.air import ChannelServerRole
from controller.roles.controller import ControllerRole
from controller.runners.output import write_run
from controller.runners.pump import Pump
from node.roles.node import NodeRole


def run_local(resolved: Resolved, scheme: str, slots: int, seed: int, out: Path,
              weights: dict[str, np.ndarray] | None = None,
              options: dict[str, Any] | None = None,
              on_progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Run ``slots`` slots of ``scheme`` in this process; write the run directory ``out``
    and return its summary."""
    def emit(*parts: object) -> None:
        if parts and parts[0] == "PROGRESS" and on_progress is not None:
            on_progress(int(parts[1]), int(parts[2]))  # type: ignore[call-overload]

    ctl = ControllerRole(resolved, scheme, slots, seed, "local", weights, options, emit=emit,
                         out_dir=out)
    air = ChannelServerRole()
    nodes = [NodeRole(resolved.kind.node_role, i) for i in range(resolved.n_nodes)]
    try:
        Pump([ctl, air, *nodes]).run(ctl)
    except KeyboardInterrupt:  # Ctrl-C: every slot so far is on disk; say where it stopped
        ctl.errors.append(f"interrupted (Ctrl-C) after {ctl.done_slots} of {slots} slots")
        write_run(ctl, out, partial=True)
        raise
    for role in (ctl, air, *nodes):
        if role.failure:
            ctl.errors.append(f"{role.name}: {role.failure}")
    summary = write_run(ctl, out)
    kept = getattr(air.air, "kept", None)
    if kept:
        np.save(out / "gains.npy", np.stack(kept))
    return summary
