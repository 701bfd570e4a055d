"""The air of V2X spectrum sharing: each vehicle's own slice out, (RB, power level) in,
each V2V receiver's acknowledgement back, the slot outcome to the controller. Episodes of
``n_steps`` slots run back to back, the vehicles moving on between them."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from channel_server.v2x import V2xScenario
from channel_server.v2x_air import V2xAir
from protocols.messages import Message, V2xFeedback, V2xOutcome, V2xSlice, V2xTransmit

log = logging.getLogger("rrmbed.channel-server")


class V2xAirPart:
    transmit = V2xTransmit
    rejoins = False
    lost_consequence = "its V2V link is silent from now on"

    def __init__(self, scenario: V2xScenario, seed: int, options: dict[str, Any]) -> None:
        self.scenario = scenario
        self.air = V2xAir(scenario, 1, seed)
        self.t = 0
        self.telemetry: dict[str, float] = {}

    def check(self, msg: Message) -> None:
        """Any V2xTransmit: an out-of-range RB or level silences the link for the slot
        (checked in :meth:`outcome`, where it is logged)."""

    def slices(self, n: int, active: list[int]) -> list[tuple[int, type[Message], dict[str, Any]]]:
        if n and self.air.done:
            self.air.start_episode()
        self.t = self.air.t
        sl = self.air.slices()
        return [(k, V2xSlice, {"episode_slot": self.t, "v2v_gain_db": sl.v2v_gain_db[0, k],
                               "bs_gain_db": sl.bs_gain_db[0, k],
                               "interference_dbm": sl.interference_dbm[0, k],
                               "active": list(active)}) for k in active]

    def outcome(self, n: int, got: dict[int, Message], active: list[int], lost: list[int],
                wall_s: float) -> tuple[list[tuple[int, type[Message], dict[str, Any]]],
                                        tuple[type[Message], dict[str, Any]]]:
        k_n = self.scenario.radio.n_v2v
        rb = np.zeros(k_n, dtype=np.int64)
        level = np.zeros(k_n, dtype=np.int64)
        latency = np.full(k_n, np.inf)
        silent = np.ones(k_n, dtype=bool)
        for k, msg in got.items():
            assert isinstance(msg, V2xTransmit)
            if not (0 <= msg.rb < self.air.n_rb and 0 <= msg.power_level < self.air.n_levels):
                log.error("%s sent rb %d, power level %d in slot %d: out of range; its link "
                          "is silent this slot", msg.sender, msg.rb, msg.power_level, n)
                continue
            rb[k], level[k], latency[k] = msg.rb, msg.power_level, msg.decision_latency_s
            silent[k] = False
        out = self.air.step(rb[None], level[None], silent[None])
        feedback: list[tuple[int, type[Message], dict[str, Any]]] = [
            (k, V2xFeedback, {"rate_bps": float(out.rates.v2v_rate_bps[0, k]),
                              "sinr": float(out.rates.v2v_sinr[0, k])}) for k in active]
        return feedback, (V2xOutcome, {
            "episode_slot": self.t, "rb": rb, "power_level": level,
            "transmitted": out.transmitted[0], "v2i_rate_bps": out.rates.v2i_rate_bps[0],
            "v2v_rate_bps": out.rates.v2v_rate_bps[0], "reward": float(out.reward[0]),
            "remaining_bits": out.remaining_bits[0], "delivery_time_s": out.delivery_time_s[0],
            "decision_latency_s": latency, "lost": list(lost)})
