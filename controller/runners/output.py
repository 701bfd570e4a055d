"""The run directory of either runner, from the controller role at the end of a run."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from controller.roles.controller import ControllerRole
from protocols.names import CONTROLLER


def write_training(ctl: ControllerRole, out: Path) -> None:
    """training.csv (one row per update) and the final weights.npz (a typed weights file,
    protocols.weights) of a training run."""
    history = ctl.part.history()
    weights = ctl.part.final_weights()
    if not history or weights is None:
        return
    keys = sorted({k for h in history for k in h})
    with (out / "training.csv").open("w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=keys)
        wr.writeheader()
        wr.writerows(history)
    weights.save(out / "weights.npz")


def write_run(ctl: ControllerRole, out: Path, partial: bool = False) -> dict[str, Any]:
    """Write every file of the run directory; the summary (``partial``: the run was cut
    short, the summary says so and why: the last of ``ctl.errors``)."""
    out.mkdir(parents=True, exist_ok=True)
    write_training(ctl, out)
    processes = {**ctl.processes, CONTROLLER: os.getpid()}
    extra = ctl.summary_extra()
    if partial:
        extra.update(partial=True, cause=ctl.errors[-1])
    summary: dict[str, Any] = ctl.part.recorder.write(out, ctl.meter(), processes, ctl.wall_s,
                                                     extra=extra)
    return summary
