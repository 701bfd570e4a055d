"""Paper 000's V2X game over real processes (``make_env(path, runner="network")``,
:mod:`controller.envs.network`): one node process per V2V link (vehicle); each slot every
vehicle builds the observation its agent would act on (its own slice of the air, the RBs its
neighbours told it they chose in the last slot, its payload and time left, the fingerprint)
and uploads it, the controller hands them to this env, each vehicle's action comes back as
its decision (and goes on to its neighbours), and the reward and infos are those of the
air's outcome. The same observations, rewards and infos as the in-process env
(:class:`controller.envs.v2x.V2xParallelEnv`) for the same seed.

An episode is a run of ``min(max_cycles, T)`` slots (``T``: the deadline's slots): the
vehicles' fingerprint is the default ``(0, 1)`` (the controller of a run without training
sends no other), so :meth:`set_fingerprint` is refused here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from controller.envs.base import Obs, Slot
from controller.envs.network import OverProcesses
from controller.envs.v2x import V2xParallelEnv
from protocols.messages import V2xOutcome


class V2xNetworkEnv(OverProcesses, V2xParallelEnv):
    """:class:`V2xParallelEnv`'s game, every slot played by real processes."""

    metadata = {"name": "rrmbed_v2x_network_v0", "render_modes": [], "is_parallelizable": True}

    def run_slots(self) -> int:
        return min(self.max_cycles, self.scenario.n_steps)

    def set_fingerprint(self, iteration: float, epsilon: float) -> None:
        raise NotImplementedError("the vehicles of a network run observe the fingerprint "
                                  "(0, 1); set_fingerprint is the in-process env's")

    def _observe(self) -> Obs:
        out: Obs = np.asarray(self.gains).astype(np.float32)  # the vehicles' uploads (K, D)
        return out

    def _play(self, actions: list[Any]) -> Slot:
        msg: V2xOutcome = self._exchange(np.array([int(a) for a in actions], dtype=np.int64))
        v2i = float(msg.v2i_rate_bps.sum())
        infos = [{"v2v_rate_bps": float(msg.v2v_rate_bps[k]),
                  "remaining_bits": float(msg.remaining_bits[k]),
                  "delivered": bool(not np.isnan(msg.delivery_time_s[k])),
                  "v2i_sum_rate_bps": v2i} for k in range(len(actions))]
        return Slot([float(msg.reward)] * len(actions), infos,
                    msg.episode_slot + 1 == self.scenario.n_steps)
