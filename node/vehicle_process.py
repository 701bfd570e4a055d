"""The vehicle node process: one V2V transmitter. It hears its own slice from the air,
the neighbours' RB choices of the last slot over the backhaul and the fingerprint from
the controller; it decides through :class:`VehicleAgent`, transmits, tells its neighbours
what it chose, and (while training) uploads its experience to the controller.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import tomllib
from dataclasses import dataclass, field

import numpy as np

from channel_server.v2x import v2x_scenario_from_dict
from node.process import serve_agent
from node.v2x_observation import LocalSlice, decode_action, neighbour_counts, observe
from node.vehicle_agent import VehicleAgent
from protocols.messages import (
    Experience,
    Fingerprint,
    Message,
    NeighbourChoice,
    Report,
    Start,
    Stop,
    V2xFeedback,
    V2xSlice,
    V2xTransmit,
    Weights,
    WeightsAck,
)
from protocols.peer import CHANNEL_SERVER, CONTROLLER, Peer, index_of, telemetry_for, vehicle_name

log = logging.getLogger("rrmbed.vehicle")


@dataclass
class VehicleStats:
    slots: int = 0
    feedbacks: int = 0
    lost_choices: int = 0
    """Neighbour choices that arrived lost (latency inf): counted as silent neighbours."""
    weights_version: int = 0
    versions: list[int] = field(default_factory=list)
    fingerprints: list[list[float]] = field(default_factory=list)


class VehicleProcess:
    def __init__(self, peer: Peer, k: int, start: Start) -> None:
        self.peer = peer
        self.k = k
        scenario = v2x_scenario_from_dict(tomllib.loads(start.config_toml), "<from controller>")
        self.scenario = scenario
        self.scheme = start.scheme
        self.training = bool(start.options.get("train"))
        self.agent = VehicleAgent(k, scenario, start.scheme, start.seed,
                                  None if start.scheme == "random" else {})
        self.fingerprint = (0.0, 1.0)
        self.pending_weights: Weights | None = None
        self.slices: dict[int, V2xSlice] = {}
        self.choices: dict[int, dict[int, NeighbourChoice]] = {}
        self.stats = VehicleStats()
        self.telemetry = telemetry_for(start.options, "vehicle", str(k))
        peer.emulate_links(scenario.backhaul, start.seed,
                           [CONTROLLER, *start.options.get("directory", {})],
                           scenario.timing.clock)

    @property
    def peer_timeout_s(self) -> float:
        return self.scenario.timing.peer_timeout_s

    def recv_timeout_s(self) -> float:
        return self.peer_timeout_s / 2

    async def on_quiet(self, waited_s: float) -> bool:
        """A neighbour vanished before the air noticed: decide the waiting slots without it."""
        waiting = sorted(self.slices)
        for n in waiting:
            log.error("%s: neighbour choices of slot %d missing after %.1f s; deciding "
                      "without them", self.peer.name, n - 1, waited_s)
            await self.decide(n, force=True)
        return bool(waiting)

    async def handle(self, msg: Message) -> bool:
        """Process one message; True when the node must stop."""
        if isinstance(msg, V2xSlice):
            self.slices[msg.slot] = msg
            await self.decide(msg.slot)
        elif isinstance(msg, NeighbourChoice):
            self.choices.setdefault(msg.slot, {})[index_of(msg.sender)] = msg
            await self.decide(msg.slot + 1)
        elif isinstance(msg, V2xFeedback):
            self.stats.feedbacks += 1
            # episodes run back to back from slot 0
            self.agent.account(msg.rate_bps, msg.slot % self.scenario.n_steps)
        elif isinstance(msg, Fingerprint):
            self.fingerprint = (float(msg.iteration), float(msg.epsilon))
            self.stats.fingerprints.append([msg.slot, msg.iteration, msg.epsilon])
        elif isinstance(msg, Weights):
            self.pending_weights = msg  # swapped in at the next slot boundary
            await self.peer.send(CONTROLLER, WeightsAck, slot=msg.slot, version=msg.version)
        elif isinstance(msg, Stop):
            await self.report(msg.slot)
            return True
        else:
            log.warning("%s: ignoring %s from %s", self.peer.name, type(msg).__name__, msg.sender)
        return False

    def swap_weights(self) -> None:
        w = self.pending_weights
        if w is None:
            return
        if w.version <= self.stats.weights_version:
            log.warning("%s: ignoring stale weights v%d", self.peer.name, w.version)
        else:
            self.agent.variables = dict(zip(w.names, w.arrays, strict=True))
            self.stats.weights_version = w.version
            self.stats.versions.append(w.version)
        self.pending_weights = None

    async def decide(self, n: int, force: bool = False) -> None:
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
        self.choices.pop(n - 1, None)
        self.swap_weights()
        if t == 0:
            self.agent.start_episode()
        rbs = []
        for c in got.values():
            if np.isfinite(c.chain_latency_s):
                rbs.append(c.rb)
            else:
                self.stats.lost_choices += 1
        local = LocalSlice(v2v_gain_db=sl.v2v_gain_db, bs_gain_db=sl.bs_gain_db,
                           interference_dbm=sl.interference_dbm,
                           remaining_bits=self.agent.remaining_bits,
                           remaining_time_s=self.agent.remaining_time_s(t))
        obs = observe(local, neighbour_counts(rbs, self.agent.n_rb), self.scenario,
                      self.fingerprint)
        t0 = time.perf_counter()
        action = self.agent.act(obs, t, self.fingerprint[1] if self.training else 0.0)
        compute = (time.perf_counter() - t0 if self.scenario.timing.compute_model == "measured"
                   else self.scenario.timing.compute_s)
        rb, level = (int(x) for x in decode_action(action, self.agent.n_rb))
        silent = self.agent.silent
        self.stats.slots += 1
        await self.peer.send(CHANNEL_SERVER, V2xTransmit, slot=n, chain_latency_s=compute,
                             rb=rb, power_level=level, decision_latency_s=compute,
                             compute_s=compute)
        for j in neighbours:
            await self.peer.send(vehicle_name(j), NeighbourChoice, slot=n,
                                 chain_latency_s=compute, rb=-1 if silent else rb,
                                 power_level=-1 if silent else level)
        if self.training:
            await self.peer.send(CONTROLLER, Experience, slot=n, obs=obs[None],
                                 action=np.array([action]), reward=np.zeros(1),
                                 next_obs=np.zeros((0, obs.shape[-1]), dtype=obs.dtype),
                                 done=np.array([t + 1 == self.scenario.n_steps]), step=t)
        self.telemetry.update(slots_done=n + 1)

    async def report(self, slot: int) -> None:
        s = self.stats
        await self.peer.send(CONTROLLER, Report, slot=slot, rows=self.peer.meter.rows(),
                             stats={"pid": os.getpid(), "hostname": socket.gethostname(),
                                    "slots": s.slots, "feedbacks": s.feedbacks,
                                    "lost_choices": s.lost_choices,
                                    "weights_version": s.weights_version,
                                    "weights_versions": s.versions,
                                    "fingerprints": s.fingerprints,
                                    "protocol_errors": self.peer.endpoint.protocol_errors})


async def serve(k: int, controller: str, bind: str, advertise: str | None) -> int:
    """Run the node of V2V transmitter ``k`` until the controller stops it."""
    return await serve_agent(vehicle_name(k), "vehicle", k, controller, bind, advertise,
                             lambda peer, start: VehicleProcess(peer, k, start))
