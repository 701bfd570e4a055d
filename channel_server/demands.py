"""Per-user rate demands that change during a run: a schedule of phases.

A :class:`DemandSchedule` is a list of ``(first slot, u_min)``: from that slot on, user i
asks for ``u_min[i]`` bit/s/Hz on average (Assumption I(ii): demands are constant over
windows much longer than the channel's coherence). Schedules are written by hand (the
paper's Tables II-IV and Fig. 2-4, :func:`paper_phases`) or drawn (:func:`random_schedule`:
every T slots a fresh draw, uniform in a stated range, for a random share of the users).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
import numpy.typing as npt

from protocols.seeding import rng_for

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class DemandSchedule:
    """Demand phases, in slot order."""

    phases: tuple[tuple[int, tuple[float, ...]], ...]
    """``(first slot, u_min per user in bit/s/Hz)``; the first phase starts at slot 0."""

    def __post_init__(self) -> None:
        if not self.phases or self.phases[0][0] != 0:
            raise ValueError("a schedule's first phase starts at slot 0")
        starts = [s for s, _ in self.phases]
        if any(b <= a for a, b in zip(starts, starts[1:], strict=False)):
            raise ValueError("phase starts must increase")
        widths = {len(u) for _, u in self.phases}
        if len(widths) != 1:
            raise ValueError("every phase needs one demand per user")
        if any(x < 0 for _, u in self.phases for x in u):
            raise ValueError("demands are >= 0")

    @classmethod
    def of(cls, phases: Sequence[tuple[int, Sequence[float]]]) -> DemandSchedule:
        return cls(tuple((int(s), tuple(float(x) for x in u)) for s, u in phases))

    @classmethod
    def equal_phases(cls, demands: Sequence[Sequence[float]], phase_slots: int
                     ) -> DemandSchedule:
        """One phase of ``phase_slots`` slots per demand vector."""
        return cls.of([(i * phase_slots, u) for i, u in enumerate(demands)])

    @property
    def n_users(self) -> int:
        return len(self.phases[0][1])

    def starts(self) -> list[int]:
        return [s for s, _ in self.phases]

    def at(self, slot: int) -> Array:
        """u_min in force at ``slot``."""
        current = self.phases[0][1]
        for start, u in self.phases:
            if start > slot:
                break
            current = u
        return np.array(current, dtype=np.float64)

    def per_slot(self, start: int, n: int) -> Array:
        """u_min of slots ``start .. start + n - 1``, ``(n, K)``."""
        return np.stack([self.at(t) for t in range(start, start + n)])

    def bounds(self, total_slots: int) -> list[tuple[int, int]]:
        """``[first, end)`` slots of every phase within a run of ``total_slots``."""
        starts = self.starts() + [total_slots]
        return [(a, min(b, total_slots)) for a, b in zip(starts, starts[1:], strict=False)
                if a < total_slots]


@dataclass(frozen=True)
class DemandConfig:
    """A scenario's ``[demands]`` table: per-user minimum average rates (ALCOR, paper 004)
    that change during a run: fixed phases, or drawn every ``random_period_slots`` slots from
    the run's seed. A user is a link of the scenario kind (the interference kind's link, the
    cellular kind's user ``b * K + k``)."""

    phase_starts: tuple[int, ...] = (0,)
    """First slot of each phase of ``u_min_bps_hz`` (the first is 0)."""
    u_min_bps_hz: tuple[tuple[float, ...], ...] = ()
    """Per phase, each link's demand, bit/s/Hz (K values; 0: no demand). Empty: none."""
    random_period_slots: int = 0
    """> 0: instead of the phases, every this many slots a fresh draw: ``random_share`` of
    the links (at least one) ask for U[random_low, random_high] bit/s/Hz, the others 0."""
    random_low_bps_hz: float = 0.05
    random_high_bps_hz: float = 0.5
    random_share: float = 0.3

    @property
    def any(self) -> bool:
        return bool(self.u_min_bps_hz) or self.random_period_slots > 0


@dataclass(frozen=True)
class AlcorSettings:
    """A scenario's ``[alcor]`` table: Algorithm 1's parameters for the ALCOR schemes (paper
    004, Section IV)."""

    alpha: float = 0.9
    """alpha_k, the fixed step of steps 3 and 7, in (0, 1)."""
    gamma: float = 3.0
    """gamma, the step on the batch means, multiplier per bit/s/Hz (the paper: 1..10)."""
    batch: int = 25
    """B, slots per batch (an extragradient iteration spends 2B)."""
    c: float = 1.0
    """c of kappa_i = (c + lambda_i) / max_l (c + lambda_l)."""
    update: Literal["extragradient", "simple"] = "extragradient"
    """Algorithm 1 as printed, or the paper's simpler one-batch update."""
    max_rounds: int = 1
    """Distributed ALCOR: rounds of max-flooding of c + lambda over the interference graph
    after each iteration (exact when at least the graph's diameter: 1 on the Gaussian form's
    complete graph)."""


def demand_problems(dm: DemandConfig, al: AlcorSettings, n_users: int) -> list[str]:
    """What is wrong with a scenario's ``[demands]`` and ``[alcor]`` tables for ``n_users``
    users (empty: nothing)."""
    checks = [
        (not dm.u_min_bps_hz or len(dm.phase_starts) == len(dm.u_min_bps_hz),
         "demands needs one phase_starts entry per u_min_bps_hz row"),
        (not dm.u_min_bps_hz or dm.phase_starts[0] == 0, "demands.phase_starts begins at 0"),
        (all(b > a for a, b in zip(dm.phase_starts, dm.phase_starts[1:], strict=False)),
         "demands.phase_starts must increase"),
        (all(len(u) == n_users for u in dm.u_min_bps_hz),
         f"demands.u_min_bps_hz rows need one demand per user ({n_users})"),
        (all(x >= 0 for u in dm.u_min_bps_hz for x in u), "demands must be >= 0"),
        (dm.random_period_slots >= 0 and 0 <= dm.random_low_bps_hz <= dm.random_high_bps_hz
         and 0 < dm.random_share <= 1, "demands.random_*: period >= 0, 0 <= low <= high, "
         "share in (0, 1]"),
        (0 < al.alpha < 1 and al.gamma > 0 and al.c > 0 and al.batch >= 1
         and al.max_rounds >= 1, "alcor needs alpha in (0, 1), gamma > 0, c > 0, "
         "batch >= 1, max_rounds >= 1"),
    ]
    return [msg for ok, msg in checks if not ok]


def demands_at(dm: DemandConfig, n_users: int, seed: int, slot: int) -> Array:
    """Each user's demand at ``slot``, bit/s/Hz ``(n_users,)`` (zeros without demands).
    Drawn phases come from the run's seed, phase by phase (``rng_for(seed, "ic-demands",
    p)``, the stream's name from when only the interference kind had demands)."""
    if dm.random_period_slots > 0:
        phase = slot // dm.random_period_slots
        rng = rng_for(seed, "ic-demands", phase)
        u = np.zeros(n_users)
        m = max(1, round(dm.random_share * n_users))
        who = rng.choice(n_users, size=m, replace=False)
        u[who] = rng.uniform(dm.random_low_bps_hz, dm.random_high_bps_hz, m)
        return u
    if not dm.u_min_bps_hz:
        return np.zeros(n_users)
    return _schedule(dm).at(slot)


@lru_cache(maxsize=16)
def _schedule(dm: DemandConfig) -> DemandSchedule:
    """The fixed phases of ``dm``, built once (:func:`demands_at` runs every slot)."""
    return DemandSchedule.of(list(zip(dm.phase_starts, dm.u_min_bps_hz, strict=True)))


@dataclass(frozen=True)
class RandomDemandConfig:
    """Demands redrawn during a run (a seeded stand-in for an application layer's tasks)."""

    period_slots: int = 5000
    """T: slots between redraws (every phase this long)."""
    low: float = 0.05
    """Smallest demand of a demanding user, bit/s/Hz."""
    high: float = 0.5
    """Largest demand of a demanding user, bit/s/Hz (uniform in [low, high])."""
    share: float = 0.3
    """Share of the users with a demand in each phase (the others ask for 0), in (0, 1]."""

    def __post_init__(self) -> None:
        if self.period_slots < 1 or not 0 <= self.low <= self.high:
            raise ValueError("need period_slots >= 1 and 0 <= low <= high")
        if not 0 < self.share <= 1:
            raise ValueError("share must be in (0, 1]")


def random_schedule(cfg: RandomDemandConfig, n_users: int, total_slots: int,
                    rng: np.random.Generator) -> DemandSchedule:
    """A new draw every ``cfg.period_slots`` slots: ``round(share K)`` (at least one) users
    chosen uniformly ask for ``U[low, high]`` bit/s/Hz, the rest for 0."""
    n_phases = max(1, -(-total_slots // cfg.period_slots))
    m = max(1, round(cfg.share * n_users))
    phases = []
    for i in range(n_phases):
        u = np.zeros(n_users)
        who = rng.choice(n_users, size=m, replace=False)
        u[who] = rng.uniform(cfg.low, cfg.high, m)
        phases.append((i * cfg.period_slots, u.tolist()))
    return DemandSchedule.of(phases)


def _users(n: int, spans: Sequence[tuple[int, int, float]]) -> list[float]:
    """Demands from the paper's ``u_{a:b} = x`` notation (1-based, both ends included);
    later spans overwrite earlier ones."""
    u = [0.0] * n
    for a, b, x in spans:
        for i in range(a - 1, b):
            u[i] = x
    return u


@dataclass(frozen=True)
class PaperPhases:
    """The paper's demands for one N: the phases, which phase its fixed DNN was trained for,
    and where each phase comes from."""

    demands: tuple[tuple[float, ...], ...]
    """u_min per phase, bit/s/Hz."""
    fixed_dnn_phase: int
    """Index of the phase whose demands the paper's fixed DNN was trained with."""
    sources: tuple[str, ...]
    """Per phase: the table or figure it is taken from."""


def paper_phases(n: int) -> PaperPhases | None:
    """The demand phases paper 004 reports for N users (Gaussian channel, 15 dB), or None.

    * N = 5: Table IV's u^{min,1}, u^{min,2}, u^{min,3} (WMMSE as the URA there too); the
      fixed DNN was trained for u^{min,2}.
    * N = 10, 20, 50: Table II's demands (all met by every scheme in the paper), then Table
      III's stricter ones (the fixed DNN trained for Table II), then Table II's again (a
      return, to time a second recovery).
    """
    if n == 5:
        return PaperPhases(((0.5,) * 5, (0.0, 1.0, 1.5, 2.0, 0.0), (0.0, 0.0, 0.0, 1.0, 3.0)),
                           1, ("Table IV u1", "Table IV u2", "Table IV u3"))
    table2 = {10: [(1, 10, 0.25)], 20: [(1, 12, 0.1)], 50: [(1, 15, 0.05)]}
    table3 = {10: [(1, 10, 0.1), (5, 5, 0.6), (7, 7, 0.8), (9, 9, 1.0)],
              20: [(1, 10, 0.1), (5, 5, 0.4), (7, 7, 0.6), (12, 12, 0.2), (19, 19, 0.8)],
              50: [(20, 30, 0.3)]}
    if n not in table2:
        return None
    u2, u3 = tuple(_users(n, table2[n])), tuple(_users(n, table3[n]))
    return PaperPhases((u2, u3, u2), 0, ("Table II", "Table III", "Table II"))


def seven_cell_phases(n: int) -> PaperPhases:
    """The 7-cell setting (Section IV-B): a feasible phase, then Fig. 4's demands scaled to N
    (for N = 50: u_{20:25} = 2, u_{25:30} = 3, u_31 = 5, which the paper calls infeasible
    at N = 50),
    then the feasible phase again. *Choice*: the feasible phase asks 0.5 bit/s/Hz of the
    users Fig. 4 loads (the paper gives no feasible demands for this setting)."""
    def at(i: int) -> int:  # the paper's 1-based user i of 50, mapped onto N users
        return max(1, min(n, round(i * n / 50)))

    heavy = _users(n, [(at(20), at(25), 2.0), (at(25), at(30), 3.0), (at(31), at(31), 5.0)])
    light = [0.5 if x > 0 else 0.0 for x in heavy]
    return PaperPhases((tuple(light), tuple(heavy), tuple(light)), 0,
                       ("7-cell, 0.5 for Fig. 4's users", "Fig. 4 demands (scaled to N)",
                        "7-cell, 0.5 for Fig. 4's users"))
