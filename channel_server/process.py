"""The channel-server process: the air. It owns the full channel, sends each node
its own CSI slice, gathers the transmissions, computes rates and reports the slot
outcome to the controller. No maths here: it drives :class:`Air` and ``rates``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np

from channel_server.air import Air
from channel_server.config import Scenario, scenario_from_dict
from channel_server.rates import csi_slice, rates_bps_hz, sinr, sum_rate_bps_hz
from channel_server.v2x import is_v2x_table, v2x_scenario_from_dict
from protocols.errors import PeerTimeout
from protocols.messages import (
    CsiSlice,
    Done,
    Join,
    Measurement,
    Message,
    Report,
    Resume,
    SlotOutcome,
    Stop,
    Transmit,
)
from protocols.peer import CHANNEL_SERVER, CONTROLLER, Peer, index_of, node_name, telemetry_for
from protocols.seeding import rng_for
from protocols.telemetry import Telemetry

if TYPE_CHECKING:
    from channel_server.v2x_process import V2xChannelServer

log = logging.getLogger("rrmbed.channel-server")
TRAINING_PAUSE_S = 900.0
"""Longest wait for the controller to finish one training iteration, seconds."""


@dataclass
class SlotCollect:
    powers: np.ndarray
    latency: np.ndarray
    missed: np.ndarray
    compute: np.ndarray


async def wait_resume(peer: Peer, n: int) -> None:
    """Hold slot n until the controller has trained and every node holds the weights."""
    deadline = time.monotonic() + TRAINING_PAUSE_S
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise PeerTimeout(f"channel-server: no Resume before slot {n} within "
                              f"{TRAINING_PAUSE_S:.0f} s (controller lost?)")
        msg = await peer.recv(left)
        if isinstance(msg, Resume):
            return
        if isinstance(msg, Stop):
            raise asyncio.CancelledError(f"stopped by {msg.sender}: {msg.reason}")
        log.warning("unexpected %s from %s while paused", type(msg).__name__, msg.sender)


class ChannelServer:
    def __init__(self, peer: Peer, scenario: Scenario, slots: int, seed: int,
                 telemetry: Telemetry, pause_every: int = 0) -> None:
        self.peer = peer
        self.telemetry = telemetry
        self.pause_every = pause_every
        """While training: wait for Resume after every this many slots (0: never)."""
        self.scenario = scenario
        self.slots = slots
        self.seed = seed
        radio = scenario.radio
        self.air = Air(radio, seed, episodes=1)
        self.order_rng = rng_for(seed, "order")
        self.active = list(range(radio.n_cells))
        self.lost: list[int] = []
        """BSs currently lost (a node that rejoins leaves this list)."""
        self.joining: list[int] = []
        self.protocol_errors = 0

    @staticmethod
    def name_of(b: int) -> str:
        return node_name(b)

    async def run(self) -> None:
        radio, timing = self.scenario.radio, self.scenario.timing
        realtime = timing.clock == "realtime"
        t_start = time.monotonic()
        for n in range(self.slots):
            if self.pause_every and n and n % self.pause_every == 0:
                await wait_resume(self.peer, n)
                t_start = time.monotonic() - n * radio.slot_s
            if realtime:
                await asyncio.sleep(max(0.0, t_start + n * radio.slot_s - time.monotonic()))
            gains = (self.air.reset() if n == 0 else self.air.step())[0]
            for b in self.joining:
                self.active = sorted({*self.active, b})
                if b in self.lost:
                    self.lost.remove(b)
                log.warning("node-%d rejoined: served again from slot %d", b, n)
            self.joining = []
            order = [int(x) for x in self.order_rng.permutation(radio.n_cells)]
            order = [b for b in order if b in self.active]
            t0 = time.perf_counter()
            for b in self.active:
                await self.peer.send(node_name(b), CsiSlice, slot=n, gains=csi_slice(gains, b),
                                     order=order, active=list(self.active))
            got = await self.collect(n)
            wall = time.perf_counter() - t0
            powers = got.powers
            s = sinr(gains, powers, radio.noise_w)
            r = rates_bps_hz(gains, powers, radio.noise_w)
            total = float(sum_rate_bps_hz(gains, powers, radio.noise_w))
            for b in self.active:
                await self.peer.send(node_name(b), Measurement, slot=n, sinr=s[b], rates=r[b])
            self.telemetry.update(slots_done=n + 1, sum_rate_bps_hz=total)
            await self.peer.send(CONTROLLER, SlotOutcome, slot=n, powers=powers, rates=r,
                                 sum_rate_bps_hz=total, decision_latency_s=got.latency,
                                 missed=got.missed, lost=list(self.lost), wall_s=wall,
                                 compute_s=got.compute)
        await self.peer.send(CONTROLLER, Done, slot=self.slots, slots=self.slots)

    async def collect(self, n: int) -> SlotCollect:
        """Wait for every active node's Transmit of slot n; a silent node is lost."""
        radio = self.scenario.radio
        powers = np.zeros((radio.n_cells, radio.users_per_cell))
        latency = np.full(radio.n_cells, np.inf)
        missed = np.zeros(radio.n_cells, dtype=bool)
        compute = np.zeros(radio.n_cells)
        got, missing = await gather_transmissions(
            self.peer, Transmit, n, set(self.active), self.scenario.timing.peer_timeout_s,
            self.on_join)
        declare_lost(self, missing, n, "its BS is silent from now on")
        for b, msg in got.items():
            powers[b], latency[b] = msg.powers, msg.decision_latency_s
            missed[b], compute[b] = msg.missed, msg.compute_s
        return SlotCollect(powers, latency, missed, compute)

    def on_join(self, msg: Message) -> bool:
        """A node rejoined: reconnect, serve it from the next slot."""
        if not isinstance(msg, Join):
            return False
        self.peer.connect(node_name(msg.node), msg.address)
        self.joining.append(msg.node)
        return True


T = TypeVar("T", bound=Message)


async def gather_transmissions(peer: Peer, kind: type[T], n: int, expected: set[int],
                               timeout_s: float, on_other: Callable[[Message], bool]
                               ) -> tuple[dict[int, T], list[int]]:
    """The ``kind`` messages of slot n from the nodes ``expected`` (by index), and the nodes
    still silent after ``timeout_s``. ``on_other`` serves any other message (False: not
    expected, logged); Stop ends the run."""
    got: dict[int, T] = {}
    deadline = time.monotonic() + timeout_s
    while expected - set(got):
        left = deadline - time.monotonic()
        try:
            if left <= 0:
                raise PeerTimeout("slot deadline")
            msg = await peer.recv(left)
        except PeerTimeout:
            break
        if isinstance(msg, kind) and msg.slot == n:
            got[index_of(msg.sender)] = msg
        elif isinstance(msg, Stop):
            raise asyncio.CancelledError(f"stopped by {msg.sender}: {msg.reason}")
        elif not on_other(msg):
            log.warning("unexpected %s from %s in slot %d", type(msg).__name__, msg.sender, n)
    return got, sorted(expected - set(got))


class Served(Protocol):
    active: list[int]
    lost: list[int]
    scenario: Any

    def name_of(self, b: int) -> str: ...


def declare_lost(server: Served, missing: list[int], n: int, consequence: str) -> None:
    """The nodes that sent nothing for slot n are lost: served no more, reported."""
    for b in missing:
        log.error("%s vanished: no transmission for slot %d within %.1f s; %s",
                  server.name_of(b), n, server.scenario.timing.peer_timeout_s, consequence)
        server.active.remove(b)
        server.lost.append(b)


async def serve(controller: str, bind: str, advertise: str | None) -> int:
    """Run one channel server until the controller stops it."""
    peer = Peer(CHANNEL_SERVER, bind, advertise)
    try:
        start = await peer.join(controller, "channel-server", -1, timeout_s=60.0)
        table = tomllib.loads(start.config_toml)
        telemetry = telemetry_for(start.options, "channel-server", "0")
        await telemetry.start()
        train = start.options.get("train") or {}
        server: ChannelServer | V2xChannelServer
        if is_v2x_table(table):
            from channel_server.v2x_process import V2xChannelServer

            server = V2xChannelServer(peer, v2x_scenario_from_dict(table, "<from controller>"),
                                      start.slots, start.seed, telemetry,
                                      int(train.get("broadcast_period", 0)))
        else:
            server = ChannelServer(peer, scenario_from_dict(table, "<from controller>"),
                                   start.slots, start.seed, telemetry,
                                   int(train.get("episodes_per_iter", 0)))
        try:
            await server.run()
        finally:
            await telemetry.close()
        # Wait for Stop, then report the meter.
        stop_wait = server.scenario.timing.peer_timeout_s * 4
        while True:
            msg = await peer.recv(stop_wait)
            if isinstance(msg, Stop):
                break
        await peer.send(CONTROLLER, Report, slot=start.slots, rows=peer.meter.rows(),
                        stats={"pid": os.getpid(), "hostname": socket.gethostname(),
                               "protocol_errors": peer.endpoint.protocol_errors,
                               "lost": [server.name_of(b) for b in server.lost]})
        return 0
    finally:
        peer.close(linger_s=2.0)

