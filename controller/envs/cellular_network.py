"""The cellular ``full`` game over real processes (``make_env(path, runner="network")``,
:mod:`controller.envs.network`): one node process per BS; each BS's observation is
``obs_full`` of the CSI slice it uploaded, its action turned into watts as a BS does, and
the reward the air's sum-rate of the slot, for every BS."""

from __future__ import annotations

from typing import Any

import numpy as np

from controller.envs.base import Slot
from controller.envs.cellular import CellularFullEnv, fractions_of, rate_infos
from controller.envs.network import OverProcesses
from protocols.messages import SlotOutcome


class CellularNetworkEnv(OverProcesses, CellularFullEnv):
    """:class:`CellularFullEnv`'s game, every slot played by real processes."""

    metadata = {"name": "rrmbed_cellular_full_network_v0", "render_modes": [],
                "is_parallelizable": True}

    def _play(self, actions: list[Any]) -> Slot:
        frac = np.stack([fractions_of(a, self.radio) for a in actions])
        msg: SlotOutcome = self._exchange(frac * self.radio.pmax_w)
        return Slot([float(msg.sum_rate_bps_hz)] * len(actions), rate_infos(msg.rates))
