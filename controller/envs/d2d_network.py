"""Paper 002's D2D underlay game over real processes (``make_env(path, runner="network")``,
:mod:`controller.envs.network`): one node process per D2D pair; each slot every pair builds
its observation from its own slice of the air (:func:`node.d2d_observation.observe`, as its
actor would) and uploads it, the controller hands them to this env, each pair's action
comes back as its decision, and the rewards are those the air recorded (each pair's own).
The same observations, rewards and infos as the in-process env
(:class:`controller.envs.d2d.D2dParallelEnv`) for the same seed."""

from __future__ import annotations

from typing import Any

import numpy as np

from channel_server.d2d import cue_outage
from controller.envs.base import Obs, Slot
from controller.envs.d2d import D2dParallelEnv
from controller.envs.network import OverProcesses
from protocols.d2d_messages import D2dOutcome


class D2dNetworkEnv(OverProcesses, D2dParallelEnv):
    """:class:`D2dParallelEnv`'s game, every slot played by real processes."""

    metadata = {"name": "rrmbed_d2d_underlay_network_v0", "render_modes": [],
                "is_parallelizable": True}

    def _observe(self) -> Obs:
        out: Obs = np.asarray(self.gains).astype(np.float32)  # the pairs' uploads (N, D)
        return out

    def _play(self, actions: list[Any]) -> Slot:
        msg: D2dOutcome = self._exchange(np.array([int(a) for a in actions], dtype=np.int64))
        cue_out = cue_outage(self.scenario.qos, msg.cue_sinr)[msg.rb]
        infos = [{"d2d_rate_bps": float(msg.d2d_rate_bps[i]), "sinr": float(msg.d2d_sinr[i]),
                  "cue_outage": bool(cue_out[i])} for i in range(len(actions))]
        return Slot([float(x) for x in msg.reward], infos)
