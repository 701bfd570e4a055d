"""Paper 003's K-user interference game over real processes (``make_env(path,
runner="network")``, :mod:`controller.envs.network`): one node process per link; each slot
every link uploads what its receiver measured (``G[:, i]``), the controller hands the whole
channel to this env, each link's power fraction comes back as its decision, and the reward
is the sum of the rates the air recorded, for every link. The observations are the
in-process env's (:class:`controller.envs.interference.IcParallelEnv`) made of the uploaded
channel; the interference graph of the drop (which links hear which: fixed for a run, and
known to the links from their start) is the drop's of the same seed."""

from __future__ import annotations

from typing import Any

from channel_server.interference import IcChannel
from controller.envs.base import Slot
from controller.envs.interference import IcParallelEnv, fractions, rate_slot
from controller.envs.network import OverProcesses
from protocols.ic_messages import IcOutcome


class IcNetworkEnv(OverProcesses, IcParallelEnv):
    """:class:`IcParallelEnv`'s game, every slot played by real processes."""

    metadata = {"name": "rrmbed_interference_network_v0", "render_modes": [],
                "is_parallelizable": True}

    def _start(self, seed: int) -> None:
        super()._start(seed)
        self.channel = IcChannel(self.scenario, seed)  # the drop's interference graph
        self.last_fraction[:] = 1.0  # the air's fallback before a first decision: Pmax

    def _play(self, actions: list[Any]) -> Slot:
        frac = fractions(actions)
        msg: IcOutcome = self._exchange(frac * self.radio.pmax_w)
        self.last_fraction = frac
        return rate_slot(msg.rates)
