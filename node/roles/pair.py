"""A D2D pair's part of the node role (paper 002): one D2D transmitter-receiver pair. It
hears only its own slice from the air (its D2D gain and its gain from the BS on every RB,
the interference its receiver measured in the last slot, its last RB), decides through
:class:`node.pair_agent.PairAgent` and transmits; its receiver's report (SINR, reward)
comes back. While training it uploads its history ``(s, a, r)`` of every slot to the
base station's trainer (the controller) and acts with the actor weights the trainer
broadcasts. Under the scheme a learner outside the testbed decides (``external-learner``)
it uploads its observation instead and transmits the action the controller sends back.
No torch here."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from channel_server.d2d import D2dScenario
from node.d2d_observation import decode_action, observation_dim, observe
from node.pair_agent import PairAgent, PairObservation, PairReward
from node.schemes import SCHEMES
from protocols.d2d_messages import D2dFeedback, D2dSlice, D2dTransmit
from protocols.messages import ActionDecision, Experience, Message, ObsUpload, Start
from protocols.names import CHANNEL_SERVER, CONTROLLER
from protocols.role import Outbox
from protocols.validate import Rejected, check_array, check_number

if TYPE_CHECKING:
    from node.roles.node import NodeRole


@dataclass
class PairStats:
    slots: int = 0
    feedbacks: int = 0
    uploads: int = 0


class PairPart:
    def __init__(self, node: NodeRole, scenario: D2dScenario, start: Start) -> None:
        self.node = node
        self.i = node.index
        self.scenario = scenario
        train = start.options.get("train") or {}
        self.training = bool(train)
        self.random_slots = int(train.get("random_slots", 0))
        """While training: the slots before this one are drawn uniformly (warm-up)."""
        self.n_slots = start.slots
        self.external = bool(SCHEMES.get(node.kind.name, start.scheme).options.get("external"))
        self.agent = None if self.external else PairAgent(self.i, scenario, start.scheme,
                                                          start.seed, None,
                                                          source=node.weights)
        self.dim = observation_dim(scenario)
        self.uploaded: set[int] = set()
        """External learner: the slots whose observation went to the controller, until
        decided."""
        self.acted: dict[int, tuple[np.ndarray, int]] = {}
        """Slot -> (observation, action), until its feedback comes (training)."""
        self.stats_ = PairStats()

    def on_message(self, msg: Message, now: float, out: Outbox) -> bool:
        if isinstance(msg, D2dSlice):
            self.check_slice(msg)
            self.decide(msg, out)
        elif isinstance(msg, ActionDecision) and self.external:
            self.check_slot(msg.slot)
            if msg.slot not in self.uploaded:
                raise Rejected(f"a decision for slot {msg.slot}, which it did not upload")
            check_number(msg.action, "action", 0, self.scenario.radio.n_actions - 1)
            self.uploaded.discard(msg.slot)
            self.transmit(msg.slot, msg.action, msg.chain_latency_s, 0.0, out)
        elif isinstance(msg, D2dFeedback):
            self.check_slot(msg.slot)
            check_number(msg.sinr, "sinr", 0.0)
            check_number(msg.reward, "reward")
            self.stats_.feedbacks += 1
            if self.agent is not None:
                self.agent.observe(PairReward(msg.slot, msg.reward))  # (online learners)
            acted = self.acted.pop(msg.slot, None)
            if self.training and acted is not None:
                obs, action = acted
                out.send(CONTROLLER, Experience, slot=msg.slot, obs=obs[None].astype(np.float32),
                         action=np.array([action], dtype=np.int64),
                         reward=np.array([msg.reward], dtype=np.float32),
                         next_obs=np.zeros((0, self.dim), dtype=np.float32),
                         done=np.zeros(1, dtype=bool), step=msg.slot)
                self.stats_.uploads += 1
        else:
            return False
        return True

    def check_slot(self, n: int) -> None:
        if not 0 <= n < self.n_slots:
            raise Rejected(f"slot {n} outside the run's [0, {self.n_slots})")

    def check_slice(self, msg: D2dSlice) -> None:
        self.check_slot(msg.slot)
        r = self.scenario.radio
        for name in ("d2d_gain_db", "bs_gain_db", "interference_dbm"):
            check_array(getattr(msg, name), name, (r.n_rb,))
        check_number(msg.last_rb, "last rb", -1, r.n_rb - 1)
        check_number(msg.last_level, "last level", -1, r.n_levels - 1)

    def decide(self, sl: D2dSlice, out: Outbox) -> None:
        n = sl.slot
        obs = observe(self.scenario, sl.d2d_gain_db, sl.bs_gain_db, sl.interference_dbm,
                      sl.last_rb, sl.last_level)
        if self.agent is None:  # an external learner decides, through the controller
            self.uploaded.add(n)
            out.send(CONTROLLER, ObsUpload, slot=n, obs=obs)
            return
        self.node.slot_boundary(self.agent)
        timing = self.scenario.timing
        t0 = time.perf_counter()
        action = self.agent.select_action(PairObservation(
            obs, sl.d2d_gain_db, sl.interference_dbm, explore=self.training,
            uniform=self.training and n < self.random_slots, last_rb=sl.last_rb,
            last_level=sl.last_level, slot=n))
        compute = (time.perf_counter() - t0 if timing.compute_model == "measured"
                   else timing.compute_s)
        if self.training:
            self.acted[n] = (obs, action)
        self.transmit(n, action, compute, compute, out)

    def transmit(self, n: int, action: int, latency_s: float, compute_s: float,
                 out: Outbox) -> None:
        """Transmit slot ``n`` with the flat ``action``, decided ``latency_s`` after the
        slice arrived."""
        rb, level = (int(x) for x in decode_action(action, self.scenario.radio.n_rb))
        self.stats_.slots += 1
        out.send(CHANNEL_SERVER, D2dTransmit, slot=n, chain_latency_s=latency_s, rb=rb,
                 power_level=level, decision_latency_s=latency_s, compute_s=compute_s)
        self.node.telemetry.update(slots_done=n + 1)

    def quiet_s(self) -> float:
        return self.scenario.timing.peer_timeout_s

    def on_quiet(self, now: float, out: Outbox) -> bool:
        return False

    def stats(self) -> dict[str, Any]:
        s = self.stats_
        return {"slots": s.slots, "feedbacks": s.feedbacks, "uploads": s.uploads}
