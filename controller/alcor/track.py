"""How a run meets its users' demands, slot by slot: what every kind's recorder keeps for
ALCOR (paper 004).

:class:`DemandTrack` takes each slot's demands, rates and user selection, in slot order. It
gives the per-slot violation column (12) of each user's moving-average rate over the last
``window`` slots of the current demand phase (running sums: O(1) per slot), and at the end
every demand phase's violation and mean sum rate over its second half (after ALCOR's
transient) and its recovery time (:func:`controller.alcor.metrics.recovery_slots`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from controller.alcor.metrics import RecoveryConfig, recovery_slots, violation

Array = npt.NDArray[np.float64]

AVERAGE_SLOTS = 1000
"""Window of the per-slot violation column, slots."""


class DemandTrack:
    """Demands, rates and selections of the slots recorded so far."""

    def __init__(self, window: int = AVERAGE_SLOTS) -> None:
        self.window = window
        self.u_min: list[Array] = []
        self.rates: list[Array] = []
        self.active: list[npt.NDArray[np.int64]] = []
        self.cum_rates: list[Array] = []
        """Running sums of every user's rate."""
        self.phase_starts: list[int] = []
        """Each slot's demand phase's first slot."""

    @property
    def done(self) -> int:
        return len(self.rates)

    @property
    def any(self) -> bool:
        """Whether any slot had a demand."""
        return any(u.any() for u in self.u_min)

    def add(self, u_min: Array, rates: Array, active: Array) -> float:
        """One slot's demands, rates (bit/s/Hz) and selection (1: on); its violation column,
        percent (0 without demands)."""
        u = np.asarray(u_min, dtype=np.float64).ravel()
        r = np.asarray(rates, dtype=np.float64).ravel()
        n = self.done
        start = n if n == 0 or not np.array_equal(self.u_min[-1], u) else self.phase_starts[-1]
        self.phase_starts.append(start)
        self.cum_rates.append(r + (self.cum_rates[-1] if n else 0.0))
        self.u_min.append(u)
        self.rates.append(r)
        self.active.append(np.asarray(active, dtype=np.int64).ravel())
        return float(violation(u, self.average_rates(n))) if u.any() else 0.0

    def average_rates(self, n: int) -> Array:
        """Each user's mean rate over the last ``window`` slots up to ``n`` of the demand
        phase slot ``n`` is in (what violation (12) measures)."""
        first = max(self.phase_starts[n], n - self.window + 1)
        before = self.cum_rates[first - 1] if first > 0 else 0.0
        out: Array = (self.cum_rates[n] - before) / (n - first + 1)
        return out

    def phases(self, recovery: RecoveryConfig | None = None) -> list[dict[str, Any]]:
        """Every demand phase: its slots, demands, the violation (12) and mean sum rate over
        its second half, the share of users on, and the slots it took to recover (None: not
        within the phase)."""
        recovery = recovery or RecoveryConfig(window=self.window, hold=self.window)
        rates = np.asarray(self.rates)
        out: list[dict[str, Any]] = []
        starts = sorted(set(self.phase_starts)) + [self.done]
        for start, end in zip(starts, starts[1:], strict=False):
            half = (start + end + 1) // 2
            mean = rates[half:end].mean(axis=0)
            u = self.u_min[start]
            out.append({"first_slot": start, "end_slot": end, "u_min_bps_hz": u.tolist(),
                        "violation_pct": float(violation(u, mean)),
                        "sum_rate_bps_hz": float(mean.sum()),
                        "on_share": float(np.mean(self.active[half:end])),
                        "recover_slots": recovery_slots(rates, u, start, end, recovery)
                        if u.any() else 0})
        return out
