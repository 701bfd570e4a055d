"""User mobility inside each user's own hexagonal cell, one step per slot.

Every mover keeps users inside their cell's hexagon and at least
``min_distance_m`` from their BS. Interface: ``.positions`` (``(E, B, K, 2)``,
metres), ``.moving`` (False for :class:`Static`: pathloss never changes) and
``.step() -> positions``.

* :class:`Static`: users never move.
* :class:`RandomWalk`: constant speed; the heading is redrawn uniformly with
  probability ``slot_s / turn_interval_s`` each slot (a random-direction walk with
  mean leg ``turn_interval_s``); users bounce specularly off the hexagon edges
  and off the ``min_distance_m`` disc around the BS (mirrored across its tangent
  where the move enters it), so no step is longer than ``speed * slot_s``.
* :class:`RandomWaypoint`: each user walks in a straight line at constant speed
  to a waypoint drawn uniformly in its cell (whose segment clears the BS disc),
  and draws a new one on arrival (no pause; the rest of the arrival step is lost).
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
import numpy.typing as npt

from channel_server.config import RadioConfig
from channel_server.geometry import EDGE_NORMALS, apothem, sample_in_hexagon, valid_position

Array = npt.NDArray[np.float64]


class Mobility(Protocol):
    """Moves users once per slot."""

    @property
    def positions(self) -> Array:
        """Current user positions, metres, ``(E, B, K, 2)``."""
        ...

    @property
    def moving(self) -> bool:
        """Whether positions can change (pathloss must be recomputed)."""
        ...

    def step(self) -> Array:
        """Advance one slot and return the new positions."""
        ...


class Static:
    """Users stay where they were dropped."""

    def __init__(self, users: Array) -> None:
        self._xy = np.array(users, dtype=np.float64)

    @property
    def positions(self) -> Array:
        return self._xy

    @property
    def moving(self) -> bool:
        return False

    def step(self) -> Array:
        return self._xy


class _CellMover:
    """Common state: positions relative to the user's own BS."""

    def __init__(
        self,
        centers: Array,
        users: Array,
        radius_m: float,
        min_distance_m: float,
        speed_mps: float,
        slot_s: float,
        rng: np.random.Generator,
    ) -> None:
        self.centers = np.asarray(centers, dtype=np.float64)
        self.radius_m = float(radius_m)
        self.min_distance_m = float(min_distance_m)
        self.step_m = float(speed_mps) * float(slot_s)
        self._rng = rng
        self._shape = users.shape
        self._rel: Array = (users - self.centers[None, :, None, :]).reshape(-1, 2).copy()
        if not valid_position(self._rel, self.radius_m, self.min_distance_m).all():
            raise ValueError("initial users must lie in their cell, >= min_distance_m from the BS")

    @property
    def positions(self) -> Array:
        out: Array = self._rel.reshape(self._shape) + self.centers[None, :, None, :]
        return out

    @property
    def moving(self) -> bool:
        return True


class RandomWalk(_CellMover):
    """Constant-speed random-direction walk, reflecting off the cell edge and the BS disc."""

    def __init__(
        self,
        centers: Array,
        users: Array,
        radius_m: float,
        min_distance_m: float,
        speed_mps: float,
        slot_s: float,
        rng: np.random.Generator,
        turn_interval_s: float = 1.0,
    ) -> None:
        super().__init__(centers, users, radius_m, min_distance_m, speed_mps, slot_s, rng)
        self.turn_probability = min(1.0, float(slot_s) / float(turn_interval_s))
        self._heading: Array = np.asarray(rng.uniform(0.0, 2.0 * math.pi, self._rel.shape[0]))

    def step(self) -> Array:
        n = self._rel.shape[0]
        turn = self._rng.random(n) < self.turn_probability
        fresh = self._rng.uniform(0.0, 2.0 * math.pi, n)
        heading = np.where(turn, fresh, self._heading)
        v = self.step_m * np.stack([np.cos(heading), np.sin(heading)], axis=-1)
        p = self._rel + v
        a = apothem(self.radius_m)
        for normal in EDGE_NORMALS:  # specular reflection off each pair of parallel edges
            s = p @ normal
            excess = np.where(s > a, s - a, np.where(s < -a, s + a, 0.0))
            hit = excess != 0.0
            p = p - 2.0 * excess[:, None] * normal
            v = np.where(hit[:, None], v - 2.0 * (v @ normal)[:, None] * normal, v)
        # bounce off the BS disc: mirror across its tangent where the move q -> p enters it
        q = self._rel
        d = p - q
        enters = _segment_clearance(q, p) < self.min_distance_m
        qd = (q * d).sum(-1)
        dd = np.where(enters, (d * d).sum(-1), 1.0)
        disc = np.maximum(qd**2 - dd * ((q * q).sum(-1) - self.min_distance_m**2), 0.0)
        t = np.clip((-qd - np.sqrt(disc)) / dd, 0.0, 1.0)
        x = q + t[:, None] * d
        normal_x = x / np.maximum(np.linalg.norm(x, axis=-1), 1e-300)[:, None]
        depth = ((p - x) * normal_x).sum(-1)  # < 0: p is behind the tangent
        p = np.where(enters[:, None], p - 2.0 * np.minimum(depth, 0.0)[:, None] * normal_x, p)
        v = np.where(enters[:, None], v - 2.0 * (v * normal_x).sum(-1)[:, None] * normal_x, v)
        heading = np.arctan2(v[:, 1], v[:, 0])
        ok = valid_position(p, self.radius_m, self.min_distance_m)
        # a move that double reflections cannot fix (a corner, a huge step): stay, turn back
        self._rel = np.where(ok[:, None], p, self._rel)
        self._heading = np.where(ok, heading, heading + math.pi)
        return self.positions


class RandomWaypoint(_CellMover):
    """Straight walks at constant speed to uniformly drawn waypoints inside the cell."""

    CLEARANCE_M = 1e-6
    """Extra margin of a leg beyond ``min_distance_m`` so rounding never enters the disc."""

    def __init__(
        self,
        centers: Array,
        users: Array,
        radius_m: float,
        min_distance_m: float,
        speed_mps: float,
        slot_s: float,
        rng: np.random.Generator,
    ) -> None:
        super().__init__(centers, users, radius_m, min_distance_m, speed_mps, slot_s, rng)
        self._target = self._draw_targets(self._rel)

    def _draw_targets(self, start: Array) -> Array:
        """Waypoints whose straight leg from ``start`` stays >= min distance from the BS."""
        out = np.empty_like(start)
        todo = np.arange(start.shape[0])
        while todo.size:
            cand = sample_in_hexagon(self._rng, (todo.size,), self.radius_m, self.min_distance_m)
            ok = _segment_clearance(start[todo], cand) >= self.min_distance_m + self.CLEARANCE_M
            out[todo[ok]] = cand[ok]
            todo = todo[~ok]
        return out

    def step(self) -> Array:
        to_target = self._target - self._rel
        dist = np.linalg.norm(to_target, axis=-1)
        arrive = dist <= self.step_m
        safe = np.where(arrive, 1.0, dist)
        moved = self._rel + to_target * (self.step_m / safe)[:, None]
        self._rel = np.where(arrive[:, None], self._target, moved)
        idx = np.flatnonzero(arrive)
        if idx.size:
            self._target[idx] = self._draw_targets(self._rel[idx])
        return self.positions


def _segment_clearance(a: Array, b: Array) -> Array:
    """Distance from the origin to each segment ``a[i] -> b[i]``."""
    d = b - a
    dd = (d * d).sum(-1)
    t = np.clip(-(a * d).sum(-1) / np.where(dd > 0.0, dd, 1.0), 0.0, 1.0)
    closest = a + t[:, None] * d
    out: Array = np.linalg.norm(closest, axis=-1)
    return out


def make_mobility(
    radio: RadioConfig, centers: Array, users: Array, rng: np.random.Generator
) -> Mobility:
    """The mover named by ``radio.mobility`` for users ``(E, B, K, 2)`` around ``centers``."""
    args = (
        centers,
        users,
        radio.cell_radius_m,
        radio.min_distance_m,
        radio.user_speed_mps,
        radio.slot_s,
        rng,
    )
    if radio.mobility == "static":
        return Static(users)
    if radio.mobility == "random-walk":
        return RandomWalk(*args)
    if radio.mobility == "waypoint":
        return RandomWaypoint(*args)
    raise ValueError(f"unknown mobility {radio.mobility!r}")
