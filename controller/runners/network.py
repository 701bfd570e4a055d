"""The controller process of a network run: the controller role driven over ZeroMQ, then
the run directory.

It prints one line protocol on stdout for a launcher: ``ADDRESS <endpoint>`` once bound,
``PROGRESS <done> <total>`` while slots run, ``TRAIN <version> <json>`` per training update,
``SUMMARY <path>`` at the end.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from channel_server.kinds import Resolved
from controller.roles.controller import STATE_FILE, ControllerRole
from controller.runners.output import write_run
from protocols.driver import Driver
from protocols.keys import KeyRing
from protocols.meter import Meter
from protocols.names import CONTROLLER
from protocols.transport import Endpoint


def say(*parts: object) -> None:
    print(*parts, flush=True)


async def serve(resolved: Resolved, scheme: str, slots: int, seed: int, out: Path, bind: str,
                advertise: str | None, weights: dict[str, np.ndarray] | None,
                options: dict[str, Any], keys: KeyRing | None, reattach: bool = False) -> int:
    """Run the controller until the run ends; 1 if it had errors or lost nodes (``keys``:
    the run's CURVE keys, None for an insecure run; ``reattach``: continue the run in
    ``out`` whose controller died, see controller.roles.controller)."""
    ctl = ControllerRole(resolved, scheme, slots, seed, "network", weights, options,
                         emit=say, out_dir=out, reattach=reattach)
    endpoint = Endpoint(CONTROLLER, bind, Meter(), keys=keys)
    try:
        say("ADDRESS", advertise or endpoint.address)
        code = await Driver(ctl, endpoint, advertise).run()
        if ctl.failure:
            if ctl.phase in ("hello", "ready"):
                return code or 1  # no slot ran: nothing to write (the log names the cause)
            ctl.errors.append(f"{ctl.name}: {ctl.failure}")
        summary = write_run(ctl, out)
        (out / STATE_FILE).unlink(missing_ok=True)  # the run is over: nothing to restart
        say("SUMMARY", out / "summary.json")
        return 1 if summary["errors"] or summary["lost_nodes"] else 0
    finally:
        endpoint.close(linger_s=2.0)
        sys.stdout.flush()
