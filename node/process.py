"""The node process: one base station. It hears only its own CSI slice from the
air, decides through :class:`BsAgent` (alone, along the round-robin chain, or via
the controller), transmits, and keeps serving whatever a peer does.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from channel_server.config import scenario_from_dict
from node.agent import EXCHANGE, BsAgent, Decision, chain_priors
from protocols.errors import PeerTimeout
from protocols.messages import (
    CsiSlice,
    CsiUpload,
    Experience,
    Heartbeat,
    Join,
    Measurement,
    Message,
    PowerForward,
    Report,
    Start,
    Stop,
    Transmit,
    Weights,
    WeightsAck,
    WeightsRequest,
)
from protocols.messages import (
    Decision as DecisionMsg,
)
from protocols.peer import (
    CHANNEL_SERVER,
    CONTROLLER,
    Peer,
    backhaul_bytes,
    node_name,
    telemetry_for,
)
from protocols.telemetry import Telemetry

log = logging.getLogger("rrmbed.node")


@dataclass
class SlotState:
    csi: CsiSlice | None = None
    forward: PowerForward | None = None
    decision: DecisionMsg | None = None
    done: bool = False


@dataclass
class NodeStats:
    slots: int = 0
    measurements: int = 0
    misses: int = 0
    chain_timeouts: int = 0
    weights_version: int = 0
    versions: list[int] = field(default_factory=list)
    csi_shapes: set[tuple[int, ...]] = field(default_factory=set)
    csi_log: list[list[object]] = field(default_factory=list)


class NodeProcess:
    def __init__(self, peer: Peer, bs: int, start: Start, log_csi: bool = False) -> None:
        self.peer = peer
        self.bs = bs
        self.scenario = scenario_from_dict(tomllib.loads(start.config_toml), "<from controller>")
        self.scheme = start.scheme
        self.exchange = EXCHANGE[start.scheme]
        self.agent = BsAgent(bs, self.scenario, start.scheme, start.seed,
                             action_mode=start.options.get("action_mode", "mean"))
        self.pending_weights: Weights | None = None
        self.slots: dict[int, SlotState] = {}
        self.stats = NodeStats()
        self.log_csi = log_csi
        self.telemetry = telemetry_for(start.options, "node", str(bs))
        self.training = bool(start.options.get("train"))
        peer.emulate_links(self.scenario.backhaul, start.seed,
                           [CONTROLLER, *start.options.get("directory", {})],
                           self.scenario.timing.clock)

    # ----------------------------------------------------------------- the loop

    def waiting_chain(self) -> list[int]:
        """Slots whose CSI is in but whose predecessor's power list is not."""
        if self.exchange != "chain":
            return []
        return [n for n, s in self.slots.items() if s.csi is not None and not s.done]

    def recv_timeout_s(self) -> float:
        return self.peer_timeout_s / 2 if self.waiting_chain() else self.peer_timeout_s

    async def on_quiet(self, waited_s: float) -> bool:
        """Nothing came for ``waited_s``: a lost predecessor's slots are decided alone."""
        waiting = self.waiting_chain()
        for n in waiting:
            log.error("%s: no power list for slot %d within %.1f s; predecessor lost, "
                      "deciding alone and counting a miss", self.peer.name, n, waited_s)
            self.stats.chain_timeouts += 1
            await self.act_in_chain(n, lost_predecessor=True)
        return bool(waiting)

    async def handle(self, msg: Message) -> bool:
        """Process one message; True when the node must stop."""
        if isinstance(msg, CsiSlice):
            await self.on_csi(msg)
        elif isinstance(msg, PowerForward):
            self.state(msg.slot).forward = msg
            await self.act_in_chain(msg.slot)
        elif isinstance(msg, DecisionMsg):
            await self.on_decision(msg)
        elif isinstance(msg, Measurement):
            self.stats.measurements += 1
            self.slots.pop(msg.slot, None)
        elif isinstance(msg, Weights):
            self.pending_weights = msg  # swapped in at the next slot boundary
            await self.peer.send(CONTROLLER, WeightsAck, slot=msg.slot, version=msg.version)
        elif isinstance(msg, Join):
            self.peer.connect(node_name(msg.node), msg.address)
        elif isinstance(msg, Stop):
            await self.report(msg.slot)
            return True
        else:
            log.warning("%s: ignoring %s from %s", self.peer.name, type(msg).__name__, msg.sender)
        return False

    @property
    def peer_timeout_s(self) -> float:
        return self.scenario.timing.peer_timeout_s

    def state(self, n: int) -> SlotState:
        return self.slots.setdefault(n, SlotState())

    def swap_weights(self) -> None:
        w = self.pending_weights
        if w is None:
            return
        policy = self.agent.policy
        if policy is None:
            raise RuntimeError(f"{self.peer.name}: scheme {self.scheme!r} runs no policy; "
                               "weights do not apply")
        if w.version <= self.stats.weights_version:
            log.warning("%s: ignoring stale weights v%d", self.peer.name, w.version)
        else:
            from node.policy import load_arrays

            load_arrays(policy, dict(zip(w.names, w.arrays, strict=True)))
            self.stats.weights_version = w.version
            self.stats.versions.append(w.version)
        self.pending_weights = None

    async def on_csi(self, msg: CsiSlice) -> None:
        self.swap_weights()
        st = self.state(msg.slot)
        st.csi = msg
        self.stats.slots += 1
        self.stats.csi_shapes.add(tuple(msg.gains.shape))
        if self.log_csi:
            self.stats.csi_log.append([msg.slot, msg.gains.tobytes().hex()])
        if self.exchange == "none":
            await self.transmit(msg.slot, self.agent.decide(msg.gains[None], np.zeros(1)))
            await self.upload_experience(msg.slot, 0, last=True)
        elif self.exchange == "chain":
            await self.act_in_chain(msg.slot)
        else:
            await self.peer.send(CONTROLLER, CsiUpload, slot=msg.slot, gains=msg.gains)

    async def act_in_chain(self, n: int, lost_predecessor: bool = False) -> None:
        st = self.state(n)
        if st.csi is None or st.done:
            return
        order = st.csi.order
        pos = order.index(self.bs)
        decided: dict[int, np.ndarray] = {}
        if pos == 0:
            chain_in = 0.0
        elif st.forward is not None:
            chain_in = st.forward.chain_latency_s  # the link latency is added on receipt
            decided = {int(b): p[None] for b, p in
                       zip(st.forward.order, st.forward.powers, strict=True)}
        elif lost_predecessor:
            chain_in = float("inf")
        else:
            return  # wait for the power list
        radio = self.scenario.radio
        prior, chosen = chain_priors(decided, 1, radio.n_cells, radio.users_per_cell)
        d = self.agent.decide(st.csi.gains[None], np.array([chain_in]), prior, chosen)
        st.done = True
        await self.transmit(n, d)
        await self.upload_experience(n, pos, last=pos + 1 == len(order))
        if pos + 1 < len(order):
            chain = [*decided, self.bs]
            powers = np.stack([*(decided[b][0] for b in decided), d.powers_w[0]])
            await self.peer.send(node_name(order[pos + 1]), PowerForward, slot=n,
                                 chain_latency_s=float(d.latency_s[0]), order=chain,
                                 powers=powers)

    async def upload_experience(self, n: int, step: int, last: bool) -> None:
        """While training: the policy's observation and raw action go to the learner; the
        reward is the slot's common sum-rate, which the controller joins by slot."""
        if not self.training or self.agent.last_obs is None or self.agent.last_raw is None:
            return
        obs = self.agent.last_obs
        await self.peer.send(CONTROLLER, Experience, slot=n, obs=obs, action=self.agent.last_raw,
                             reward=np.zeros(1), next_obs=np.zeros((0, obs.shape[-1])),
                             done=np.array([last]), step=step)

    async def on_decision(self, msg: DecisionMsg) -> None:
        d = self.agent.commit(np.asarray(msg.powers)[None], np.array([msg.chain_latency_s]), 0.0)
        await self.transmit(msg.slot, d)

    async def transmit(self, n: int, d: Decision) -> None:
        self.stats.misses += int(d.missed[0])
        self.telemetry.update(slots_done=n + 1, deadline_misses=self.stats.misses,
                              backhaul_bytes=backhaul_bytes(self.peer.meter),
                              latency_ms_p50=float(d.latency_s[0]) * 1e3)
        await self.peer.send(CHANNEL_SERVER, Transmit, slot=n,
                             chain_latency_s=float(d.latency_s[0]), powers=d.powers_w[0],
                             rb=-1, missed=bool(d.missed[0]),
                             decision_latency_s=float(d.latency_s[0]), compute_s=d.compute_s)

    async def report(self, slot: int) -> None:
        s = self.stats
        await self.peer.send(CONTROLLER, Report, slot=slot, rows=self.peer.meter.rows(),
                             stats={"pid": os.getpid(), "hostname": socket.gethostname(),
                                    "slots": s.slots,
                                    "measurements": s.measurements, "misses": s.misses,
                                    "chain_timeouts": s.chain_timeouts,
                                    "weights_version": s.weights_version,
                                    "weights_versions": s.versions,
                                    "csi_shapes": [list(x) for x in sorted(s.csi_shapes)],
                                    "csi_log": s.csi_log,
                                    "protocol_errors": self.peer.endpoint.protocol_errors})


async def fetch_weights(peer: Peer, version: int, timeout_s: float) -> Weights:
    """Ask the controller for its current weights snapshot and wait for it."""
    await peer.send(CONTROLLER, WeightsRequest, slot=-1, have_version=0)
    deadline = time.monotonic() + timeout_s
    while True:
        msg = await peer.recv(max(0.0, deadline - time.monotonic()))
        if isinstance(msg, Weights) and msg.version >= version:
            return msg
        peer.early.append(msg)


class AgentProcess(Protocol):
    """What :func:`serve_agent` drives: a node or vehicle process."""

    telemetry: Telemetry

    @property
    def peer_timeout_s(self) -> float: ...

    def recv_timeout_s(self) -> float:
        """How long to wait for the next message before :meth:`on_quiet`."""

    async def handle(self, msg: Message) -> bool:
        """Serve one message; True when the process must stop."""

    async def on_quiet(self, waited_s: float) -> bool:
        """Nothing came for ``waited_s``; True if something waiting was served."""


async def message_loop(name: str, proc: AgentProcess, early: list[Message],
                       peer: Peer) -> None:
    """Serve ``early``, then every message until Stop; give up when the channel server
    and the controller stay silent for 4 peer timeouts."""
    for msg in early:
        if await proc.handle(msg):
            return
    silent_since = time.monotonic()
    give_up_s = 4 * proc.peer_timeout_s
    while True:
        timeout = proc.recv_timeout_s()
        try:
            msg = await peer.recv(timeout)
        except PeerTimeout:
            if await proc.on_quiet(timeout):
                continue
            if time.monotonic() - silent_since > give_up_s:
                raise PeerTimeout(f"{name}: channel server and controller silent for "
                                  f"{give_up_s:.0f} s; giving up") from None
            continue
        silent_since = time.monotonic()
        if await proc.handle(msg):
            return


async def serve_agent(name: str, role: str, index: int, controller: str, bind: str,
                      advertise: str | None, make: Callable[[Peer, Start], AgentProcess]) -> int:
    """Join the controller as ``name``, fetch the weights snapshot if there is one, say
    ready and run the process ``make(peer, start)`` until the controller stops it."""
    peer = Peer(name, bind, advertise)
    try:
        start = await peer.join(controller, role, index, timeout_s=60.0)
        proc = make(peer, start)
        version = int(start.options.get("weights_version", 0))
        # a snapshot exists: get it before the first decision (what else arrives meanwhile
        # waits in peer.early)
        weights = ([await fetch_weights(peer, version, proc.peer_timeout_s)]
                   if version > 0 else [])
        early = [*peer.early, *weights]
        await proc.telemetry.start()
        try:
            await peer.send(CONTROLLER, Heartbeat, slot=-1)  # ready: connected to every peer
            await message_loop(name, proc, early, peer)
        finally:
            await proc.telemetry.close()
        return 0
    finally:
        peer.close(linger_s=2.0)


async def serve(node_id: int, controller: str, bind: str, advertise: str | None) -> int:
    """Run node ``node_id`` until the controller stops it."""
    return await serve_agent(
        node_name(node_id), "node", node_id, controller, bind, advertise,
        lambda peer, start: NodeProcess(peer, node_id, start,
                                        log_csi=bool(start.options.get("log_csi"))))
