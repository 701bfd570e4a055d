"""The air of D2D underlay spectrum sharing: each pair's own slice out, (RB, power level)
in, each pair's receiver report back, the slot outcome to the controller. One cell, one
drop for the whole run, the fading moving on every slot."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from channel_server.d2d import D2dScenario
from channel_server.d2d_air import D2dAir
from protocols.d2d_messages import D2dFeedback, D2dOutcome, D2dSlice, D2dTransmit
from protocols.messages import Message
from protocols.validate import check_number

log = logging.getLogger("rrmbed.channel-server")

Outgoing = tuple[int, type[Message], dict[str, Any]]


class D2dAirPart:
    transmit = D2dTransmit
    rejoins = False
    lost_consequence = "the pair is silent from now on"

    def __init__(self, scenario: D2dScenario, seed: int, options: dict[str, Any]) -> None:
        self.scenario = scenario
        self.air = D2dAir(scenario, 1, seed)
        self.telemetry: dict[str, float] = {}

    def check(self, msg: Message) -> None:
        """A transmission's RB and power level exist and its latencies are numbers."""
        assert isinstance(msg, D2dTransmit)
        check_number(msg.rb, "rb", 0, self.air.n_rb - 1)
        check_number(msg.power_level, "power level", 0, self.air.n_levels - 1)
        check_number(msg.decision_latency_s, "decision latency", 0.0)
        check_number(msg.compute_s, "compute time", 0.0)

    def slices(self, n: int, active: list[int]) -> list[Outgoing]:
        sl = self.air.slices()
        return [(i, D2dSlice, {"d2d_gain_db": sl.d2d_gain_db[0, i],
                               "bs_gain_db": sl.bs_gain_db[0, i],
                               "interference_dbm": sl.interference_dbm[0, i],
                               "last_rb": int(sl.last_rb[0, i]),
                               "last_level": int(sl.last_level[0, i])}) for i in active]

    def outcome(self, n: int, got: dict[int, Message], active: list[int], lost: list[int],
                wall_s: float) -> tuple[list[Outgoing], tuple[type[Message], dict[str, Any]]]:
        n_pairs = self.scenario.radio.n_pairs
        rb = np.zeros(n_pairs, dtype=np.int64)
        level = np.zeros(n_pairs, dtype=np.int64)
        latency = np.full(n_pairs, np.inf)
        silent = np.ones(n_pairs, dtype=bool)
        for i, msg in got.items():
            assert isinstance(msg, D2dTransmit)
            rb[i], level[i], latency[i] = msg.rb, msg.power_level, msg.decision_latency_s
            silent[i] = False
        out = self.air.step(rb[None], level[None], silent[None])
        self.telemetry = {"reward": float(out.reward[0].sum()),
                          "cue_outage": float(out.cue_outage[0].mean())}
        feedback: list[Outgoing] = [
            (i, D2dFeedback, {"sinr": float(out.rates.d2d_sinr[0, i]),
                              "reward": float(out.reward[0, i])}) for i in got]
        return feedback, (D2dOutcome, {
            "rb": np.where(silent, -1, rb), "power_level": np.where(silent, -1, level),
            "cue_sinr": out.rates.cue_sinr[0], "d2d_sinr": out.rates.d2d_sinr[0],
            "cue_rate_bps": out.rates.cue_rate_bps[0],
            "d2d_rate_bps": out.rates.d2d_rate_bps[0], "reward": out.reward[0],
            "decision_latency_s": latency, "lost": list(lost)})
