"""Paper 001's two cellular games over real processes (``make_env(path, runner="network")``,
:mod:`controller.envs.network`), one node process per BS:

* ``api="parallel"``, :class:`CellularNetworkEnv`, the ``full`` game (scheme
  ``external-learner``): every BS uploads its CSI slice; each BS's observation is
  ``obs_full`` of its slice, its action turned into watts as a BS does;
* ``api="aec"``, :class:`CellularRoundRobinNetworkEnv`, the round-robin game (scheme
  ``external-round-robin``): the BSs act in the order the channel server draws for each slot,
  along the metered ``power_forward`` chain. At its turn a BS uploads the round-robin
  observation its policy would act on (its slice, the powers forwarded so far, who chose
  them); that BS becomes ``agent_selection``, its action goes back to it as watts, and it
  transmits and forwards the chain to the next BS, whose upload is the next turn.

The reward is the air's sum-rate of the slot, for every BS (in the round-robin game when the
slot's last BS has acted, as in-process).
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np

from controller.envs.base import Obs, Slot
from controller.envs.cellular import (
    CellularFullEnv,
    CellularRoundRobinEnv,
    fractions_of,
    rate_infos,
)
from controller.envs.network import OverProcesses
from node.observation import chain_features, full_dims
from protocols.messages import SlotOutcome


class CellularNetworkEnv(OverProcesses, CellularFullEnv):
    """:class:`CellularFullEnv`'s game, every slot played by real processes."""

    metadata = {"name": "rrmbed_cellular_full_network_v0", "render_modes": [],
                "is_parallelizable": True}

    def _play(self, actions: list[Any]) -> Slot:
        frac = np.stack([fractions_of(a, self.radio) for a in actions])
        msg: SlotOutcome = self._exchange(frac * self.radio.pmax_w)
        return Slot([float(msg.sum_rate_bps_hz)] * len(actions), rate_infos(msg.rates))


class CellularRoundRobinNetworkEnv(OverProcesses, CellularRoundRobinEnv):
    """:class:`CellularRoundRobinEnv`'s game, every turn taken by a BS process.

    ``observe(agent)`` of the BS whose turn it is is what it uploaded (the in-process env's
    observation). Another BS's is its CSI features of its last turn (this slot's once it has
    acted in it, the slot before's until then, zeros before its first turn) with the chain's
    part of now: the powers this env sent in the slot so far (at the end of an episode,
    every BS's observation equals the in-process env's). The whole channel never reaches
    the controller in this scheme, so there is no ``state()``."""

    metadata = {"name": "rrmbed_cellular_round_robin_network_v0", "render_modes": [],
                "is_parallelizable": False}
    EXCHANGE = "chain"

    def _new_episode(self, seed: int | None) -> None:
        self.seen = np.zeros((len(self.possible_agents),
                              self.observation_spaces[self.possible_agents[0]].shape[0]))
        if seed is not None or self.episodes == 0:
            self.run_seed = int(seed) if seed is not None else self.run_seed
            self._start(self.run_seed)
        else:
            self._next_episode()

    def _first_turn(self) -> None:
        self._take_turn()

    def _take_turn(self) -> None:
        """The upload in ``self.gains`` is the turn of the BS that sent it."""
        bs, obs = self.gains
        self.seen[bs] = obs
        self.agent_selection = self.possible_agents[bs]

    def _pass_turn(self, fractions: np.ndarray) -> None:
        self._act(fractions * self.radio.pmax_w)
        self.gains = self._wait("slot", self.slot)
        self._take_turn()

    def _play_slot(self, fractions: np.ndarray) -> np.ndarray:
        msg: SlotOutcome = self._exchange(fractions * self.radio.pmax_w)
        return np.asarray(msg.rates)

    def _next_slot(self) -> None:
        self._begin_slot()

    def observe(self, agent: str) -> Obs:
        b = self.index[agent]
        obs: np.ndarray = self.seen[b].copy()
        if agent != self.agent_selection or self.truncations.get(agent):
            obs[full_dims(self.radio)[0]:] = chain_features(b, self.prior, self.chosen)
        return cast(Obs, obs.astype(np.float32))

    def state(self) -> Obs:
        raise NotImplementedError("the round-robin game over real processes has no state(): "
                                  "its BSs upload only their own observations")
