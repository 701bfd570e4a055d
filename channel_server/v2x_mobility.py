"""Vehicle mobility on a Manhattan road grid (3GPP TR 36.885 urban case), vectorized.

Geometry (all in metres):

* Vertical streets have their centre lines at ``x = street_x_m[j]``, horizontal streets
  at ``y = street_y_m[i]``; the outermost streets are the border of the area.
* Each street carries ``len(lane_offsets_m)`` lanes per direction, right-hand traffic:
  a lane of a vehicle heading in unit direction ``u`` lies at ``centre + o * n(u)``
  where ``n(u) = (u_y, -u_x)`` is the right-hand normal and ``o`` a lane offset
  (1.75 m and 5.25 m for two 3.5 m lanes). The outer lanes of the border streets
  therefore lie up to ``street_half_width_m`` outside the nominal area.
* Headings: 0 = east (+x), 1 = north (+y), 2 = west (-x), 3 = south (-y); heading
  ``h + 1`` is a left turn of ``h``, ``h + 3`` a right turn.

Motion: constant speed along the lane. Before reaching the next intersection a
vehicle draws its manoeuvre there: straight, left or right with probabilities
``p_straight, p_left, p_right`` (TR 36.885: 1/2, 1/4, 1/4), renormalized over the
manoeuvres the grid allows (no street beyond the border: at a T junction two
choices are left, at a corner one). A turn happens at the point where the current
lane crosses the target lane (same lane index), so a vehicle is always exactly on a
lane and every step is an L1 path of length ``speed * dt``. The next intersection
is the first crossing street whose centre is more than ``street_half_width_m``
ahead (a vehicle inside an intersection goes through it). Vehicles are dropped on
lanes at least ``street_half_width_m`` from the border streets, so a next
intersection always exists.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

EAST, NORTH, WEST, SOUTH = 0, 1, 2, 3
UNIT: Array = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
"""Unit vector of each heading."""
RIGHT_NORMAL: Array = np.stack([UNIT[:, 1], -UNIT[:, 0]], axis=-1)
"""Right-hand normal ``(u_y, -u_x)`` of each heading: where its lanes lie from the centre."""

STRAIGHT, LEFT, RIGHT = 0, 1, 2


@dataclass(frozen=True)
class RoadGrid:
    """A Manhattan grid of two-way streets."""

    street_x_m: tuple[float, ...]
    """Centre-line x of the vertical (north-south) streets, increasing, metres."""
    street_y_m: tuple[float, ...]
    """Centre-line y of the horizontal (east-west) streets, increasing, metres."""
    lane_offsets_m: tuple[float, ...]
    """Distance of each lane (per direction) from the street centre line, metres."""
    street_half_width_m: float
    """Half the width of a street (all lanes of one direction), metres."""

    def streets(self, axis: int) -> Array:
        """Centre lines of the streets crossed when moving along ``axis`` (0: x, 1: y)."""
        return np.asarray(self.street_x_m if axis == 0 else self.street_y_m, dtype=np.float64)


def street_membership(grid: RoadGrid, xy: Array) -> BoolArray:
    """Which street corridors (full width, intersections included) contain each point.

    ``xy`` has shape ``(..., 2)``; the result ``(..., n_vertical + n_horizontal)``.
    """
    hw = grid.street_half_width_m
    sx, sy = grid.streets(0), grid.streets(1)
    x, y = xy[..., 0:1], xy[..., 1:2]
    in_y = (y >= sy[0] - hw) & (y <= sy[-1] + hw)
    in_x = (x >= sx[0] - hw) & (x <= sx[-1] + hw)
    vertical = (np.abs(x - sx) <= hw + 1e-9) & in_y
    horizontal = (np.abs(y - sy) <= hw + 1e-9) & in_x
    out: BoolArray = np.concatenate([vertical, horizontal], axis=-1)
    return out


def same_street(grid: RoadGrid, xy: Array) -> BoolArray:
    """Line of sight by street geometry: ``out[..., i, j]`` is true when vehicles i and j
    share a street corridor (``xy`` of shape ``(..., N, 2)``)."""
    m = street_membership(grid, xy).astype(np.float64)
    out: BoolArray = np.einsum("...is,...js->...ij", m, m) > 0.0
    return out


class ManhattanMobility:
    """Vehicles of E independent drops moving on one road grid; arrays are flat ``(E*N,)``.

    ``positions`` is ``(E, N, 2)``; ``step(dt_s)`` moves every vehicle by ``speed * dt_s``
    along the roads and returns the distance travelled ``(E, N)``.
    """

    def __init__(
        self,
        grid: RoadGrid,
        positions: Array,
        heading: IntArray,
        street: IntArray,
        lane: IntArray,
        speed_mps: Array,
        turn_probabilities: tuple[float, float, float],
        rng: np.random.Generator,
    ) -> None:
        self.grid = grid
        self._shape = positions.shape[:-1]
        self.pos: Array = np.array(positions, dtype=np.float64).reshape(-1, 2)
        self.heading: IntArray = np.array(heading, dtype=np.int64).reshape(-1)
        self.street: IntArray = np.array(street, dtype=np.int64).reshape(-1)
        """Index of the street driven on (into street_x_m if heading north/south)."""
        self.lane: IntArray = np.array(lane, dtype=np.int64).reshape(-1)
        self.speed_mps: Array = np.array(speed_mps, dtype=np.float64).reshape(-1)
        p = np.asarray(turn_probabilities, dtype=np.float64)
        if p.shape != (3,) or (p < 0).any() or abs(p.sum() - 1.0) > 1e-9:
            raise ValueError(f"turn probabilities must be 3 non-negative numbers summing to 1: {p}")
        self.turn_p = p
        self._rng = rng
        self.turn_counts: IntArray = np.zeros(3, dtype=np.int64)
        """Manoeuvres drawn at intersections where all three were allowed."""
        n = self.pos.shape[0]
        self.event_along: Array = np.zeros(n)
        self.event_kind: IntArray = np.zeros(n, dtype=np.int64)
        self.event_street: IntArray = np.zeros(n, dtype=np.int64)
        self._plan(np.arange(n))

    @classmethod
    def drop(
        cls,
        grid: RoadGrid,
        n_envs: int,
        n_vehicles: int,
        speed_range_mps: tuple[float, float],
        turn_probabilities: tuple[float, float, float],
        rng_drop: np.random.Generator,
        rng_turns: np.random.Generator,
    ) -> ManhattanMobility:
        """Drop ``n_vehicles`` per env on lanes: vehicle i heads ``i % 4`` (E, N, W, S in
        turn, as the reference drops one vehicle per direction), on a uniformly drawn
        street and lane, uniformly along it; speeds uniform in ``speed_range_mps``."""
        shape = (n_envs, n_vehicles)
        heading = np.broadcast_to(np.arange(n_vehicles) % 4, shape).astype(np.int64)
        axis = heading % 2  # axis of motion: 0 = x, 1 = y
        n_lanes = len(grid.lane_offsets_m)
        # the street driven on is parallel to the motion: horizontal streets for x motion
        n_parallel = np.where(axis == 0, len(grid.street_y_m), len(grid.street_x_m))
        street = (rng_drop.random(shape) * n_parallel).astype(np.int64)
        lane = rng_drop.integers(0, n_lanes, size=shape)
        hw = grid.street_half_width_m
        lo = np.where(axis == 0, grid.street_x_m[0], grid.street_y_m[0]) + hw
        hi = np.where(axis == 0, grid.street_x_m[-1], grid.street_y_m[-1]) - hw
        along = lo + rng_drop.random(shape) * (hi - lo)
        centre = np.where(axis == 0, np.take(grid.street_y_m, street, mode="clip"),
                          np.take(grid.street_x_m, street, mode="clip"))
        offset = np.asarray(grid.lane_offsets_m)[lane]
        normal = RIGHT_NORMAL[heading]  # (E, N, 2)
        cross = centre + offset * np.where(axis == 0, normal[..., 1], normal[..., 0])
        pos = np.where((axis == 0)[..., None], np.stack([along, cross], -1),
                       np.stack([cross, along], -1))
        lo_v, hi_v = speed_range_mps
        speed = lo_v + rng_drop.random(shape) * (hi_v - lo_v)
        return cls(grid, pos, heading, street, lane, speed, turn_probabilities, rng_turns)

    # ------------------------------------------------------------------ state

    @property
    def positions(self) -> Array:
        """Vehicle positions ``(E, N, 2)``, metres."""
        out: Array = self.pos.reshape(*self._shape, 2)
        return out

    @property
    def headings(self) -> IntArray:
        """Vehicle headings ``(E, N)`` (0 E, 1 N, 2 W, 3 S)."""
        out: IntArray = self.heading.reshape(self._shape)
        return out

    @property
    def speeds_mps(self) -> Array:
        """Vehicle speeds ``(E, N)``, m/s."""
        out: Array = self.speed_mps.reshape(self._shape)
        return out

    @property
    def velocities_mps(self) -> Array:
        """Velocity vectors ``(E, N, 2)``, m/s."""
        out: Array = (UNIT[self.heading] * self.speed_mps[:, None]).reshape(*self._shape, 2)
        return out

    # ------------------------------------------------------------------ motion

    def _plan(self, idx: IntArray) -> None:
        """Draw the manoeuvre at the next intersection of vehicles ``idx``."""
        if idx.size == 0:
            return
        g = self.grid
        h = self.heading[idx]
        axis = h % 2
        sign = np.where(h < 2, 1.0, -1.0)
        along = self.pos[idx, axis]
        hw = g.street_half_width_m
        u = self._rng.random(idx.size)
        for a in (0, 1):
            sel = axis == a
            if not sel.any():
                continue
            crossing = g.streets(a)  # perpendicular streets met when moving along a
            parallel_n = len(g.streets(1 - a))  # streets the vehicle can be driving on
            s = sign[sel]
            al = along[sel]
            j_fwd = np.searchsorted(crossing, al + hw, side="right")
            j_bwd = np.searchsorted(crossing, al - hw, side="left") - 1
            j = np.where(s > 0, j_fwd, j_bwd)
            if ((j < 0) | (j >= len(crossing))).any():
                raise RuntimeError("a vehicle left the road grid (no intersection ahead)")
            hs = h[sel]
            cur = self.street[idx[sel]]
            left_h, right_h = (hs + 1) % 4, (hs + 3) % 4
            sign_l = np.where(left_h < 2, 1, -1)
            sign_r = np.where(right_h < 2, 1, -1)
            ok = np.stack([
                (j + s.astype(np.int64) >= 0) & (j + s.astype(np.int64) < len(crossing)),
                (cur + sign_l >= 0) & (cur + sign_l < parallel_n),
                (cur + sign_r >= 0) & (cur + sign_r < parallel_n),
            ], axis=-1)
            w = self.turn_p * ok
            cdf = np.cumsum(w / w.sum(-1, keepdims=True), axis=-1)
            kind = np.minimum((u[sel, None] >= cdf).sum(-1), 2)
            all_ok = ok.all(-1)
            self.turn_counts += np.bincount(kind[all_ok], minlength=3)
            offset = np.asarray(g.lane_offsets_m)[self.lane[idx[sel]]]
            new_h = np.where(kind == LEFT, left_h, right_h)
            turn_point = crossing[j] + offset * RIGHT_NORMAL[new_h, a]
            ev = np.where(kind == STRAIGHT, crossing[j], turn_point)
            self.event_along[idx[sel]] = ev
            self.event_kind[idx[sel]] = kind
            self.event_street[idx[sel]] = j

    def step(self, dt_s: float) -> Array:
        """Move every vehicle by ``speed * dt_s`` along the roads; return that distance."""
        travelled = self.speed_mps * float(dt_s)
        remaining = travelled.copy()
        active = np.ones(remaining.shape, dtype=bool)
        for _ in range(100_000):
            idx = np.flatnonzero(active)
            if idx.size == 0:
                break
            h = self.heading[idx]
            axis = h % 2
            sign = np.where(h < 2, 1.0, -1.0)
            dist = np.maximum(sign * (self.event_along[idx] - self.pos[idx, axis]), 0.0)
            reach = remaining[idx] >= dist
            go = idx[~reach]  # finishes its move on the current lane
            self.pos[go, axis[~reach]] += sign[~reach] * remaining[go]
            remaining[go] = 0.0
            active[go] = False
            hit = idx[reach]
            if hit.size == 0:
                break
            self.pos[hit, axis[reach]] = self.event_along[hit]
            remaining[hit] -= dist[reach]
            turning = hit[self.event_kind[hit] != STRAIGHT]
            kind = self.event_kind[turning]
            self.heading[turning] = (self.heading[turning] + np.where(kind == LEFT, 1, 3)) % 4
            self.street[turning] = self.event_street[turning]
            self._plan(hit)
        else:  # pragma: no cover - a step crossing 100k intersections
            raise RuntimeError("mobility step did not converge")
        out: Array = travelled.reshape(self._shape)
        return out
