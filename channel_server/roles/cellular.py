"""The air of the multi-cell downlink: fading and mobility per slot, each BS's own CSI
slice out, powers in, SINR and rates back, the slot outcome to the controller."""

from __future__ import annotations

from typing import Any

import numpy as np

from channel_server.air import Air
from channel_server.config import Scenario
from channel_server.rates import csi_slice, sinr
from protocols.messages import CsiSlice, Measurement, Message, SlotOutcome, Transmit
from protocols.seeding import rng_for
from protocols.validate import check_array, check_number


class CellularAir:
    transmit = Transmit
    rejoins = True
    lost_consequence = "its BS is silent from now on"

    def __init__(self, scenario: Scenario, seed: int, options: dict[str, Any]) -> None:
        self.scenario = scenario
        self.air = Air(scenario.radio, seed, episodes=1)
        self.order_rng = rng_for(seed, "order")
        self.gains = np.zeros(0)
        self.keep_gains = bool(options.get("log_csi"))
        self.kept: list[np.ndarray] = []
        """Every slot's full channel (with the log_csi option, for tests)."""
        self.telemetry: dict[str, float] = {}

    def check(self, msg: Message) -> None:
        """Powers for this BS's K users, finite, within [0, Pmax], and a decision latency
        that is not NaN (it may be infinite: a chain that was lost)."""
        assert isinstance(msg, Transmit)
        radio = self.scenario.radio
        check_array(msg.powers, "powers", (radio.users_per_cell,), 0.0,
                    radio.pmax_w * (1 + 1e-12))
        check_number(msg.decision_latency_s, "decision latency", 0.0, allow_inf=True)

    def advance(self, n: int) -> list[int]:
        """The channel and the round-robin order of slot n (the previous slot's were made)."""
        self.gains = (self.air.reset() if n == 0 else self.air.step())[0]
        return [int(x) for x in self.order_rng.permutation(self.scenario.radio.n_cells)]

    def fast_forward(self, n: int) -> None:
        """A restarted channel server: make slots 0..n-1 as the first one made them."""
        for m in range(n):
            self.advance(m)

    def slices(self, n: int, active: list[int]) -> list[tuple[int, type[Message], dict[str, Any]]]:
        order = self.advance(n)
        if self.keep_gains:
            self.kept.append(self.gains.copy())
        order = [b for b in order if b in active]
        return [(b, CsiSlice, {"gains": csi_slice(self.gains, b), "order": order,
                               "active": list(active)}) for b in active]

    def outcome(self, n: int, got: dict[int, Message], active: list[int], lost: list[int],
                wall_s: float) -> tuple[list[tuple[int, type[Message], dict[str, Any]]],
                                        tuple[type[Message], dict[str, Any]]]:
        radio = self.scenario.radio
        powers = np.zeros((radio.n_cells, radio.users_per_cell))
        latency = np.full(radio.n_cells, np.inf)
        missed = np.zeros(radio.n_cells, dtype=bool)
        compute = np.zeros(radio.n_cells)
        for b, msg in got.items():
            assert isinstance(msg, Transmit)
            powers[b], latency[b] = msg.powers, msg.decision_latency_s
            missed[b], compute[b] = msg.missed, msg.compute_s
        g = self.gains
        s = sinr(g, powers, radio.noise_w)
        r = np.log2(1.0 + s)  # rates_bps_hz and sum_rate_bps_hz, from the one SINR
        total = float(r.sum(axis=(-2, -1)))
        self.telemetry = {"sum_rate_bps_hz": total}
        feedback: list[tuple[int, type[Message], dict[str, Any]]] = [
            (b, Measurement, {"sinr": s[b], "rates": r[b]}) for b in active]
        return feedback, (SlotOutcome, {
            "powers": powers, "rates": r, "sum_rate_bps_hz": total,
            "decision_latency_s": latency, "missed": missed, "lost": list(lost),
            "wall_s": wall_s, "compute_s": compute})
