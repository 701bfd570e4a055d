"""A base station's part of the node role (multi-cell downlink): it hears only its own CSI
slice from the air, decides through :class:`node.agent.BsAgent` with the scheme's exchange
(alone, along the round-robin chain, or via the controller), transmits, and while training
uploads its experience.

Experience is delivered at least once: the node keeps every upload (by slot, its seq) until
the controller acknowledges it as durable (``ExperienceAck``, after a checkpoint) and sends
what it keeps again to a controller that says ``Start`` once more (a restarted one); the
controller drops what it already has. To such a controller it also uploads again the CSI
of the slots still waiting for a central decision. In a resumed run (train option
``replay_until``) the slots before the checkpoint's are played again without uploads.

Under the scheme ``external-round-robin`` a learner outside the testbed decides: at its turn
in the chain the BS uploads the round-robin observation its policy would act on
(``ObsUpload``), and transmits and forwards the powers that come back (``Decision``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from channel_server.config import Scenario
from node.agent import BsAgent, BsObservation, Decision, chain_priors
from node.observation import obs_round_robin
from node.roles.unacked import Unacked
from protocols.messages import (
    CsiSlice,
    CsiUpload,
    ExperienceAck,
    Measurement,
    Message,
    ObsUpload,
    PowerForward,
    Start,
    Transmit,
)
from protocols.messages import Decision as DecisionMsg
from protocols.names import CHANNEL_SERVER, CONTROLLER
from protocols.role import Outbox
from protocols.validate import Rejected, check_array, check_indices, check_number

if TYPE_CHECKING:
    from node.roles.node import NodeRole

log = logging.getLogger("rrmbed.node")


@dataclass
class SlotState:
    csi: CsiSlice | None = None
    forward: PowerForward | None = None
    done: bool = False
    asked: dict[int, np.ndarray] | None = None
    """External round-robin: the powers forwarded to this BS, once it uploaded its
    observation (until the learner's decision comes back)."""


@dataclass
class BsStats:
    slots: int = 0
    measurements: int = 0
    misses: int = 0
    chain_timeouts: int = 0
    csi_shapes: set[tuple[int, ...]] = field(default_factory=set)
    csi_log: list[list[object]] = field(default_factory=list)


class BsPart:
    def __init__(self, node: NodeRole, scenario: Scenario, start: Start) -> None:
        self.node = node
        self.bs = node.index
        self.scenario = scenario
        self.agent = BsAgent(self.bs, scenario, start.scheme, start.seed,
                             action_mode=start.options.get("action_mode", "mean"),
                             source=node.weights)
        self.exchange = self.agent.scheme.exchange
        self.external = bool(self.agent.scheme.options.get("external"))
        self.slots: dict[int, SlotState] = {}
        self.stats_ = BsStats()
        self.log_csi = bool(start.options.get("log_csi"))
        self.training = bool(start.options.get("train"))
        self.n_slots = start.slots
        self.unacked = Unacked(node.name)
        self.replay_until = int((start.options.get("train") or {}).get("replay_until", 0))
        """Slots before this one are played again towards a checkpoint: no uploads."""

    # ----------------------------------------------------------------- the part

    def on_message(self, msg: Message, now: float, out: Outbox) -> bool:
        if isinstance(msg, CsiSlice):
            self.check_csi(msg)
            self.on_csi(msg, out)
        elif isinstance(msg, PowerForward):
            self.check_forward(msg)
            self.state(msg.slot).forward = msg
            self.act_in_chain(msg.slot, out)
        elif isinstance(msg, DecisionMsg):
            self.check_slot(msg.slot)
            radio = self.scenario.radio
            check_array(msg.powers, "powers", (radio.users_per_cell,), 0.0,
                        radio.pmax_w * (1 + 1e-12))
            check_number(msg.chain_latency_s, "chain latency", 0.0, allow_inf=True)
            st = self.state(msg.slot)
            if st.done:
                raise Rejected("a second decision for the slot")
            if self.exchange == "chain" and st.asked is None:
                raise Rejected("a decision for a turn this BS did not upload")
            st.done = True
            d = self.agent.commit(np.asarray(msg.powers)[None],
                                  np.array([msg.chain_latency_s]), 0.0)
            self.transmit(msg.slot, d, out)
            if st.asked is not None:
                self.forward(msg.slot, st.asked, d, out)
        elif isinstance(msg, Measurement):
            self.stats_.measurements += 1
            self.slots.pop(msg.slot, None)
        elif isinstance(msg, ExperienceAck):
            check_number(msg.upto, "upto", -1)
            self.unacked.ack(msg.upto)
        elif isinstance(msg, Start):  # a controller took this node back (restarted)
            if self.training:
                self.unacked.resend(out)
            if self.exchange == "central":  # uploads it may never have had
                for n, st in sorted(self.slots.items()):
                    if st.csi is not None and not st.done:
                        out.send(CONTROLLER, CsiUpload, slot=n, gains=st.csi.gains)
        else:
            return False
        return True

    def on_air_restart(self, slot: int) -> None:
        """A new channel server serves ``slot`` on: what was begun of it and later is
        forgotten (its slices come again)."""
        for n in [n for n in self.slots if n >= slot]:
            del self.slots[n]

    def waiting_chain(self) -> list[int]:
        """Slots whose CSI is in but whose predecessor's power list is not."""
        if self.exchange != "chain":
            return []
        return [n for n, s in self.slots.items()
                if s.csi is not None and not s.done and s.asked is None]

    def quiet_s(self) -> float:
        timeout = self.scenario.timing.peer_timeout_s
        return timeout / 2 if self.waiting_chain() else timeout

    def on_quiet(self, now: float, out: Outbox) -> bool:
        """A lost predecessor's slots are decided alone (and counted as misses)."""
        waiting = self.waiting_chain()
        for n in waiting:
            log.error("%s: no power list for slot %d within %.1f s; predecessor lost, "
                      "deciding alone and counting a miss", self.node.name, n, self.quiet_s())
            self.stats_.chain_timeouts += 1
            self.act_in_chain(n, out, lost_predecessor=True)
        return bool(waiting)

    def on_lost(self, b: int, now: float, out: Outbox) -> None:
        """BS ``b`` was declared lost: the slots waiting for its power list are decided
        alone now (counted as chain timeouts), not after :meth:`quiet_s`."""
        for n in self.waiting_chain():
            order = self.slots[n].csi.order  # type: ignore[union-attr]
            pos = order.index(self.bs)
            if pos > 0 and order[pos - 1] == b:
                log.error("%s: predecessor node-%d of slot %d declared lost; deciding alone "
                          "and counting a miss", self.node.name, b, n)
                self.stats_.chain_timeouts += 1
                self.act_in_chain(n, out, lost_predecessor=True)

    def stats(self) -> dict[str, Any]:
        s = self.stats_
        return {"slots": s.slots, "measurements": s.measurements, "misses": s.misses,
                "chain_timeouts": s.chain_timeouts,
                "csi_shapes": [list(x) for x in sorted(s.csi_shapes)], "csi_log": s.csi_log}

    # ----------------------------------------------------------------- checks

    def check_slot(self, n: int) -> None:
        if not 0 <= n < self.n_slots:
            raise Rejected(f"slot {n} outside the run's [0, {self.n_slots})")

    def check_csi(self, msg: CsiSlice) -> None:
        """This BS's (K, B) gains, finite and non-negative; an order of distinct BSs that
        holds this one; a slot not served yet."""
        self.check_slot(msg.slot)
        st = self.slots.get(msg.slot)
        if st is not None and st.csi is not None:
            raise Rejected("a second CSI slice for the slot")
        radio = self.scenario.radio
        check_array(msg.gains, "gains", (radio.users_per_cell, radio.n_cells), 0.0)
        if self.bs not in check_indices(msg.order, "order", radio.n_cells):
            raise Rejected(f"order {msg.order[:16]} lacks BS {self.bs}")

    def check_forward(self, msg: PowerForward) -> None:
        """Powers decided by distinct other BSs, from the last of them, within [0, Pmax]."""
        self.check_slot(msg.slot)
        st = self.slots.get(msg.slot)
        if st is not None and (st.forward is not None or st.done):
            raise Rejected("a second power list for the slot")
        radio = self.scenario.radio
        order = check_indices(msg.order, "order", radio.n_cells)
        if not order or self.bs in order:
            raise Rejected(f"order {order[:16]} is empty or holds this BS")
        if msg.sender != self.node.kind.node_name(order[-1]):
            raise Rejected(f"power list from {msg.sender}, whose order ends with BS {order[-1]}")
        check_array(msg.powers, "powers", (len(order), radio.users_per_cell), 0.0,
                    radio.pmax_w * (1 + 1e-12))
        check_number(msg.chain_latency_s, "chain latency", 0.0, allow_inf=True)

    # ----------------------------------------------------------------- deciding

    def state(self, n: int) -> SlotState:
        return self.slots.setdefault(n, SlotState())

    def on_csi(self, msg: CsiSlice, out: Outbox) -> None:
        self.node.slot_boundary(self.agent)
        st = self.state(msg.slot)
        st.csi = msg
        self.stats_.slots += 1
        self.stats_.csi_shapes.add(tuple(msg.gains.shape))
        if self.log_csi:
            self.stats_.csi_log.append([msg.slot, msg.gains.tobytes().hex()])
        if self.exchange == "none":
            self.transmit(msg.slot, self.agent.select_action(
                BsObservation(msg.gains[None], np.zeros(1))), out)
            self.upload_experience(msg.slot, 0, True, out)
        elif self.exchange == "chain":
            self.act_in_chain(msg.slot, out)
        else:
            out.send(CONTROLLER, CsiUpload, slot=msg.slot, gains=msg.gains)

    def act_in_chain(self, n: int, out: Outbox, lost_predecessor: bool = False) -> None:
        st = self.state(n)
        if st.csi is None or st.done or st.asked is not None:
            return
        order = st.csi.order
        pos = order.index(self.bs)
        decided: dict[int, np.ndarray] = {}
        if pos == 0:
            chain_in = 0.0
        elif st.forward is not None:
            chain_in = st.forward.chain_latency_s  # the link latency was added on receipt
            decided = {int(b): p[None] for b, p in
                       zip(st.forward.order, st.forward.powers, strict=True)}
        elif lost_predecessor:
            chain_in = float("inf")
        else:
            return  # wait for the power list
        radio = self.scenario.radio
        prior, chosen = chain_priors(decided, 1, radio.n_cells, radio.users_per_cell)
        if self.external:  # the learner outside decides: the policy's observation goes up
            st.asked = decided
            obs = obs_round_robin(st.csi.gains, self.bs, prior[0] / radio.pmax_w, chosen[0],
                                  radio)
            out.send(CONTROLLER, ObsUpload, slot=n, chain_latency_s=chain_in, obs=obs)
            return
        d = self.agent.select_action(
            BsObservation(st.csi.gains[None], np.array([chain_in]), prior, chosen))
        st.done = True
        self.transmit(n, d, out)
        self.upload_experience(n, pos, pos + 1 == len(order), out)
        self.forward(n, decided, d, out)

    def forward(self, n: int, decided: dict[int, np.ndarray], d: Decision, out: Outbox) -> None:
        """The powers decided so far in slot ``n``'s chain, this BS's last, to the next BS
        (none after the last)."""
        csi = self.slots[n].csi
        assert csi is not None
        pos = csi.order.index(self.bs)
        if pos + 1 < len(csi.order):
            powers = np.stack([*(decided[b][0] for b in decided), d.powers_w[0]])
            out.send(self.node.kind.node_name(csi.order[pos + 1]), PowerForward, slot=n,
                     chain_latency_s=float(d.latency_s[0]), order=[*decided, self.bs],
                     powers=powers)

    def upload_experience(self, n: int, step: int, last: bool, out: Outbox) -> None:
        """While training: the policy's observation and raw action go to the learner; the
        reward is the slot's common sum-rate, which the controller joins by slot."""
        obs, raw = self.agent.last_obs, self.agent.last_raw
        if not self.training or obs is None or raw is None or n < self.replay_until:
            return
        self.unacked.send(out, n, obs=obs, action=raw, reward=np.zeros(1),
                          next_obs=np.zeros((0, obs.shape[-1])), done=np.array([last]),
                          step=step)

    def transmit(self, n: int, d: Decision, out: Outbox) -> None:
        self.stats_.misses += int(d.missed[0])
        latency = float(d.latency_s[0])
        self.node.telemetry.update(slots_done=n + 1, deadline_misses=self.stats_.misses,
                                   backhaul_bytes=self.node.host.meter.plane_totals().get(
                                       "backhaul", (0, 0))[1],
                                   latency_ms_p50=latency * 1e3)
        out.send(CHANNEL_SERVER, Transmit, slot=n, chain_latency_s=latency,
                 powers=d.powers_w[0], rb=-1, missed=bool(d.missed[0]),
                 decision_latency_s=latency, compute_s=d.compute_s)
