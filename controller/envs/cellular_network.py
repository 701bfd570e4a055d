"""The cellular ``full`` game over real processes (``make_env(path, runner="network")``,
:mod:`controller.envs.network`): one node process per BS; each BS's observation is
``obs_full`` of the CSI slice it uploaded, its action turned into watts as a BS does, and
the reward the air's sum-rate of the slot, for every BS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from channel_server.config import Scenario
from channel_server.kinds import Resolved
from controller.envs.base import DEFAULT_MAX_CYCLES, Slot
from controller.envs.cellular import CellularFullEnv, fractions_of, rate_infos
from controller.envs.network import STEP_TIMEOUT_S, OverProcesses
from protocols.messages import SlotOutcome


class CellularNetworkEnv(OverProcesses, CellularFullEnv):
    """:class:`CellularFullEnv`'s game, every slot played by real processes."""

    metadata = {"name": "rrmbed_cellular_full_network_v0", "render_modes": [],
                "is_parallelizable": True}

    def __init__(self, scenario: Scenario, resolved: Resolved, seed: int = 0,
                 max_cycles: int = DEFAULT_MAX_CYCLES, out: str | Path = "runs/env",
                 step_timeout_s: float = STEP_TIMEOUT_S) -> None:
        super().__init__(scenario, seed, max_cycles)
        self._network(resolved, out, step_timeout_s)

    def _play(self, actions: list[Any]) -> Slot:
        frac = np.stack([fractions_of(a, self.radio) for a in actions])
        msg: SlotOutcome = self._exchange(frac * self.radio.pmax_w)
        return Slot([float(msg.sum_rate_bps_hz)] * len(actions), rate_infos(msg.rates))
