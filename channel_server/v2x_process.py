"""The channel server of a vehicular run: it drives :class:`V2xAir` for one episode
stream, sends each vehicle node its own slice, gathers the transmissions, returns each
V2V receiver's acknowledgement and reports the slot outcome to the controller.
No maths here.
"""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np

from channel_server.process import declare_lost, gather_transmissions, wait_resume
from channel_server.v2x import V2xScenario
from channel_server.v2x_air import V2xAir
from protocols.messages import Done, Join, Message, V2xFeedback, V2xOutcome, V2xSlice, V2xTransmit
from protocols.peer import CONTROLLER, Peer, vehicle_name
from protocols.telemetry import Telemetry

log = logging.getLogger("rrmbed.channel-server")


class V2xChannelServer:
    def __init__(self, peer: Peer, scenario: V2xScenario, slots: int, seed: int,
                 telemetry: Telemetry, pause_every: int = 0) -> None:
        self.peer = peer
        self.scenario = scenario
        self.slots = slots
        self.telemetry = telemetry
        self.pause_every = pause_every
        """While training: wait for Resume after every this many slots (0: never)."""
        self.air = V2xAir(scenario, 1, seed)
        k_n = scenario.radio.n_v2v
        self.active = list(range(k_n))
        self.lost: list[int] = []

    @staticmethod
    def name_of(k: int) -> str:
        return vehicle_name(k)

    async def run(self) -> None:
        s = self.scenario
        realtime = s.timing.clock == "realtime"
        t_start = time.monotonic()
        for n in range(self.slots):
            if self.pause_every and n and n % self.pause_every == 0:
                await wait_resume(self.peer, n)
                t_start = time.monotonic() - n * s.radio.slot_s
            if realtime:
                await asyncio.sleep(max(0.0, t_start + n * s.radio.slot_s - time.monotonic()))
            if n and self.air.done:
                self.air.start_episode()
            t = self.air.t
            sl = self.air.slices()
            for k in self.active:
                await self.peer.send(vehicle_name(k), V2xSlice, slot=n, episode_slot=t,
                                     v2v_gain_db=sl.v2v_gain_db[0, k],
                                     bs_gain_db=sl.bs_gain_db[0, k],
                                     interference_dbm=sl.interference_dbm[0, k],
                                     active=list(self.active))
            rb, level, latency, bad = await self.collect(n)
            silent = np.ones(len(rb), dtype=bool)
            silent[[k for k in self.active if k not in bad]] = False
            out = self.air.step(rb[None], level[None], silent[None])
            for k in self.active:
                await self.peer.send(vehicle_name(k), V2xFeedback, slot=n,
                                     rate_bps=float(out.rates.v2v_rate_bps[0, k]),
                                     sinr=float(out.rates.v2v_sinr[0, k]))
            self.telemetry.update(slots_done=n + 1)
            await self.peer.send(CONTROLLER, V2xOutcome, slot=n, episode_slot=t, rb=rb,
                                 power_level=level, transmitted=out.transmitted[0],
                                 v2i_rate_bps=out.rates.v2i_rate_bps[0],
                                 v2v_rate_bps=out.rates.v2v_rate_bps[0],
                                 reward=float(out.reward[0]),
                                 remaining_bits=out.remaining_bits[0],
                                 delivery_time_s=out.delivery_time_s[0],
                                 decision_latency_s=latency, lost=list(self.lost))
        await self.peer.send(CONTROLLER, Done, slot=self.slots, slots=self.slots)

    async def collect(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, set[int]]:
        """Every active vehicle's transmission of slot n (RB, level, decision latency, and
        the links silent this slot); a silent vehicle is lost."""
        k_n = self.scenario.radio.n_v2v
        rb = np.zeros(k_n, dtype=np.int64)
        level = np.zeros(k_n, dtype=np.int64)
        latency = np.full(k_n, np.inf)
        silent: set[int] = set()
        got, missing = await gather_transmissions(
            self.peer, V2xTransmit, n, set(self.active), self.scenario.timing.peer_timeout_s,
            self.on_join)
        declare_lost(self, missing, n, "its V2V link is silent from now on")
        for k, msg in got.items():
            if not (0 <= msg.rb < self.air.n_rb and 0 <= msg.power_level < self.air.n_levels):
                log.error("%s sent rb %d, power level %d in slot %d: out of range; its link "
                          "is silent this slot", msg.sender, msg.rb, msg.power_level, n)
                silent.add(k)
                continue
            rb[k], level[k], latency[k] = msg.rb, msg.power_level, msg.decision_latency_s
        return rb, level, latency, silent

    @staticmethod
    def on_join(msg: Message) -> bool:
        if not isinstance(msg, Join):
            return False
        log.warning("vehicle-%d asked to rejoin; vehicles cannot rejoin a run", msg.node)
        return True
