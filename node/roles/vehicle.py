"""A vehicle's part of the node role (V2X): one V2V transmitter. It hears its own slice
from the air, the neighbours' RB choices of the last slot over the backhaul and the
fingerprint from the controller; it decides through :class:`node.vehicle_agent.VehicleAgent`,
transmits, tells its neighbours what it chose, and while training uploads its experience
(kept until acknowledged, :mod:`node.roles.unacked`; none for the slots a resumed run plays
again before its checkpoint's, train option ``replay_until``). Under the scheme a learner
outside the testbed decides (``external-learner``) it uploads the observation its agent
would act on and acts with the action the controller sends back."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from channel_server.v2x import V2xScenario
from node.roles.unacked import Unacked
from node.schemes import SCHEMES
from node.v2x_observation import LocalSlice, decode_action, neighbour_counts, observe
from node.vehicle_agent import VehicleAgent, VehicleObservation
from protocols.messages import (
    ActionDecision,
    ExperienceAck,
    Fingerprint,
    Message,
    NeighbourChoice,
    ObsUpload,
    Start,
    V2xFeedback,
    V2xSlice,
    V2xTransmit,
)
from protocols.names import CHANNEL_SERVER, CONTROLLER, index_of
from protocols.role import Outbox
from protocols.validate import Rejected, check_indices, check_number

if TYPE_CHECKING:
    from node.roles.node import NodeRole

log = logging.getLogger("rrmbed.vehicle")


@dataclass
class VehicleStats:
    slots: int = 0
    feedbacks: int = 0
    lost_choices: int = 0
    """Neighbour choices that arrived lost (latency inf): counted as silent neighbours."""
    fingerprints: list[list[float]] = field(default_factory=list)


class VehiclePart:
    def __init__(self, node: NodeRole, scenario: V2xScenario, start: Start) -> None:
        self.node = node
        self.k = node.index
        self.scenario = scenario
        self.training = bool(start.options.get("train"))
        self.n_slots = start.slots
        self.unacked = Unacked(node.name)
        self.replay_until = int((start.options.get("train") or {}).get("replay_until", 0))
        self.agent = VehicleAgent(self.k, scenario, start.scheme, start.seed, {},
                                  source=node.weights)
        self.fingerprint = (0.0, 1.0)
        self.slices: dict[int, V2xSlice] = {}
        self.slice_at: dict[int, float] = {}
        """When each waiting slot's slice came (its neighbours' choices are awaited)."""
        self.choices: dict[int, dict[int, NeighbourChoice]] = {}
        self.stats_ = VehicleStats()
        self.external = bool(SCHEMES.get(node.kind.name, start.scheme).options.get("external"))
        self.uploaded: dict[int, tuple[np.ndarray, int, list[int]]] = {}
        """External learner: slot -> (observation, episode slot, neighbours), until its
        action comes."""

    def on_message(self, msg: Message, now: float, out: Outbox) -> bool:
        if isinstance(msg, V2xSlice):
            self.check_slice(msg)
            self.slices[msg.slot] = msg
            self.slice_at[msg.slot] = now
            self.decide(msg.slot, out)
        elif isinstance(msg, NeighbourChoice):
            self.check_choice(msg)
            self.choices.setdefault(msg.slot, {})[index_of(msg.sender)] = msg
            self.decide(msg.slot + 1, out)
        elif isinstance(msg, ActionDecision) and self.external:
            self.check_slot(msg.slot)
            if msg.slot not in self.uploaded:
                raise Rejected(f"a decision for slot {msg.slot}, which it did not upload")
            check_number(msg.action, "action", 0, self.agent.n_actions - 1)
            obs, t, neighbours = self.uploaded.pop(msg.slot)
            self.act(msg.slot, t, neighbours, obs, msg.action, msg.chain_latency_s, 0.0, out)
        elif isinstance(msg, V2xFeedback):
            self.stats_.feedbacks += 1
            # episodes run back to back from slot 0
            self.agent.account(msg.rate_bps, msg.slot % self.scenario.n_steps)
        elif isinstance(msg, Fingerprint):
            check_number(msg.epsilon, "epsilon", 0.0, 1.0)
            check_number(msg.iteration, "iteration", 0)
            self.fingerprint = (float(msg.iteration), float(msg.epsilon))
            self.stats_.fingerprints.append([msg.slot, msg.iteration, msg.epsilon])
        elif isinstance(msg, ExperienceAck):
            check_number(msg.upto, "upto", -1)
            self.unacked.ack(msg.upto)
        elif isinstance(msg, Start) and self.training:  # the controller restarted
            self.unacked.resend(out)
        else:
            return False
        return True

    def check_slot(self, n: int) -> None:
        if not 0 <= n < self.n_slots:
            raise Rejected(f"slot {n} outside the run's [0, {self.n_slots})")

    def check_slice(self, msg: V2xSlice) -> None:
        self.check_slot(msg.slot)
        if msg.slot in self.slices:
            raise Rejected("a second slice for the slot")
        check_number(msg.episode_slot, "episode slot", 0, self.scenario.n_steps - 1)
        check_indices(msg.active, "active", self.scenario.radio.n_vehicles)

    def check_choice(self, msg: NeighbourChoice) -> None:
        """A choice of slot n (kept until slot n + 1 is decided) with an RB and a power level
        that exist, or -1 for a silent neighbour."""
        self.check_slot(msg.slot)
        radio = self.scenario.radio
        check_number(msg.rb, "rb", -1, radio.n_rb - 1)
        check_number(msg.power_level, "power level", -1, len(radio.v2v_power_levels_dbm) - 1)
        if index_of(msg.sender) in self.choices.get(msg.slot, {}):
            raise Rejected("a second choice for the slot")

    def quiet_s(self) -> float:
        return self.scenario.timing.peer_timeout_s / 2

    def decide_by(self) -> float | None:
        """When the oldest waiting slot is decided without the missing choices: half a peer
        timeout after its slice came, however many other messages came meanwhile (the
        others' late choices must not push it past the air's deadline)."""
        return min(self.slice_at.values()) + self.quiet_s() if self.slice_at else None

    def on_quiet(self, now: float, out: Outbox) -> bool:
        """A neighbour vanished before the air noticed: decide the waiting slots without it."""
        waiting = sorted(self.slices)
        for n in waiting:
            log.error("%s: neighbour choices of slot %d missing after %.1f s; deciding "
                      "without them", self.node.name, n - 1, self.quiet_s())
            self.decide(n, out, force=True)
        return bool(waiting)

    def stats(self) -> dict[str, Any]:
        s = self.stats_
        return {"slots": s.slots, "feedbacks": s.feedbacks, "lost_choices": s.lost_choices,
                "fingerprints": s.fingerprints}

    def decide(self, n: int, out: Outbox, force: bool = False) -> None:
        """Act in slot n once its slice and every active neighbour's choice of slot n-1 are in."""
        sl = self.slices.get(n)
        if sl is None:
            return
        t = sl.episode_slot
        neighbours = [j for j in sl.active if j != self.k]
        got = self.choices.get(n - 1, {}) if t > 0 else {}
        if t > 0 and not force and not set(neighbours) <= set(got):
            return  # wait for the rest of the neighbours' choices
        del self.slices[n]
        self.slice_at.pop(n, None)
        self.choices.pop(n - 1, None)
        self.node.slot_boundary(self.agent)
        if t == 0:
            self.agent.start_episode()
        rbs = []
        for c in got.values():
            if np.isfinite(c.chain_latency_s):
                rbs.append(c.rb)
            else:
                self.stats_.lost_choices += 1
        local = LocalSlice(v2v_gain_db=sl.v2v_gain_db, bs_gain_db=sl.bs_gain_db,
                           interference_dbm=sl.interference_dbm,
                           remaining_bits=self.agent.remaining_bits,
                           remaining_time_s=self.agent.remaining_time_s(t))
        obs = observe(local, neighbour_counts(rbs, self.agent.n_rb), self.scenario,
                      self.fingerprint)
        if self.external:  # the controller decides
            self.uploaded[n] = (obs, t, neighbours)
            out.send(CONTROLLER, ObsUpload, slot=n, obs=obs)
            return
        timing = self.scenario.timing
        t0 = time.perf_counter()
        action = self.agent.select_action(
            VehicleObservation(obs, t, self.fingerprint[1] if self.training else 0.0))
        compute = (time.perf_counter() - t0 if timing.compute_model == "measured"
                   else timing.compute_s)
        self.act(n, t, neighbours, obs, action, compute, compute, out)

    def act(self, n: int, t: int, neighbours: list[int], obs: np.ndarray, action: int,
            latency_s: float, compute_s: float, out: Outbox) -> None:
        """Transmit slot ``n`` (episode slot ``t``) with the flat ``action``, decided
        ``latency_s`` after the slice arrived, and tell the neighbours."""
        rb, level = (int(x) for x in decode_action(action, self.agent.n_rb))
        silent = self.agent.silent
        self.stats_.slots += 1
        out.send(CHANNEL_SERVER, V2xTransmit, slot=n, chain_latency_s=latency_s, rb=rb,
                 power_level=level, decision_latency_s=latency_s, compute_s=compute_s)
        name = self.node.kind.node_name
        for j in neighbours:
            out.send(name(j), NeighbourChoice, slot=n, chain_latency_s=latency_s,
                     rb=-1 if silent else rb, power_level=-1 if silent else level)
        if self.training and n >= self.replay_until:
            self.unacked.send(out, n, obs=obs[None], action=np.array([action]),
                              reward=np.zeros(1),
                              next_obs=np.zeros((0, obs.shape[-1]), dtype=obs.dtype),
                              done=np.array([t + 1 == self.scenario.n_steps]), step=t)
        self.node.telemetry.update(slots_done=n + 1)
