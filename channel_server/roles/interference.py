"""The air of the K-user interference channel: each link's measured gains, its neighbours
and its rate demand out, its transmit power in, each link's rate back to it and the slot's
rates to the controller. One drop for the whole run, the fading moving every slot.

A decision whose chain latency passes ``timing.deadline_s`` is a miss: the link keeps the
power it had in the last slot (full power before its first). Every slot the air also solves
the slot with WMMSE from full power, the reference of the run's "fraction of WMMSE".
"""

from __future__ import annotations

from typing import Any

import numpy as np

from channel_server.demands import demands_at
from channel_server.interference import IcChannel, IcScenario, as_cellular, sum_rates
from controller.baselines.wmmse import wmmse
from protocols.ic_messages import IcFeedback, IcOutcome, IcSlice, IcTransmit
from protocols.latency import is_miss
from protocols.messages import Message
from protocols.validate import check_number

Outgoing = tuple[int, type[Message], dict[str, Any]]


class IcAirPart:
    transmit = IcTransmit
    rejoins = False
    lost_consequence = "its link is silent from now on"

    def __init__(self, scenario: IcScenario, seed: int, options: dict[str, Any]) -> None:
        self.scenario = scenario
        self.radio = scenario.radio
        self.seed = seed
        self.channel = IcChannel(scenario, seed)
        self.u_min = np.zeros(scenario.k)
        graph = self.channel.layout.graph[0]
        self.in_nbrs = [np.flatnonzero(graph[:, i]) for i in range(scenario.k)]
        self.out_nbrs = [np.flatnonzero(graph[i, :]) for i in range(scenario.k)]
        self.last_power = np.full(scenario.k, self.radio.pmax_w)
        self.telemetry: dict[str, float] = {}

    def check(self, msg: Message) -> None:
        """A power within [0, Pmax] and latencies that are numbers."""
        assert isinstance(msg, IcTransmit)
        check_number(msg.power_w, "power", 0.0, self.radio.pmax_w)
        check_number(msg.decision_latency_s, "decision latency", 0.0, allow_inf=True)
        check_number(msg.compute_s, "compute time", 0.0)
        check_number(msg.missing, "missing messages", 0, self.scenario.k)

    def slices(self, n: int, active: list[int]) -> list[Outgoing]:
        gains = self.channel.gains[0] if n == 0 else self.channel.step()[0]
        self.u_min = demands_at(self.scenario.demands, self.scenario.k, self.seed, n)
        return [(i, IcSlice, {"gains_in": np.ascontiguousarray(gains[:, i]),
                              "in_nbrs": self.in_nbrs[i], "out_nbrs": self.out_nbrs[i],
                              "u_min": float(self.u_min[i])})
                for i in active]

    def outcome(self, n: int, got: dict[int, Message], active: list[int], lost: list[int],
                wall_s: float) -> tuple[list[Outgoing], tuple[type[Message], dict[str, Any]]]:
        k = self.scenario.k
        powers = np.zeros(k)
        latency = np.full(k, np.inf)
        missed = np.zeros(k, dtype=np.int64)
        missing = np.zeros(k, dtype=np.int64)
        on = np.zeros(k, dtype=np.int64)
        deadline = self.scenario.timing.deadline_s
        for i, msg in got.items():
            assert isinstance(msg, IcTransmit)
            latency[i], missing[i], on[i] = msg.decision_latency_s, msg.missing, msg.active
            if is_miss(msg.decision_latency_s, deadline):
                missed[i] = 1
                powers[i] = self.last_power[i]
            else:
                powers[i] = msg.power_w
        self.last_power = powers.copy()
        gains = self.channel.gains[0]
        rates = sum_rates(gains, powers, self.radio.noise_w)
        reference, _ = wmmse(as_cellular(gains), self.radio.noise_w, self.radio.pmax_w)
        ref_rate = float(sum_rates(gains, reference[:, 0], self.radio.noise_w).sum())
        self.telemetry = {"sum_rate": float(rates.sum()), "reference": ref_rate}
        feedback: list[Outgoing] = [(i, IcFeedback, {"rate": float(rates[i])}) for i in got]
        return feedback, (IcOutcome, {"powers": powers, "rates": rates,
                                      "decision_latency_s": latency, "missed": missed,
                                      "missing": missing, "active": on, "u_min": self.u_min,
                                      "reference_rate": ref_rate, "lost": list(lost)})
