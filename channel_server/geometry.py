"""Hexagonal cell layouts, user drops and BS-user distances (paper 001).

Conventions:

* Hexagons are "pointy-top": circumradius ``R``, vertices at angles 30 + 60 i degrees,
  flat edges facing 0, 60, ..., 300 degrees at the apothem ``sqrt(3)/2 R``. Adjacent
  cells therefore have centres ``sqrt(3) R`` apart along those six directions.
* Cell 0 is at the origin. ``'3cell'``: cells 1 and 2 at 0 and 60 degrees (three
  mutually adjacent hexagons meeting at one vertex). ``'7cell-wrap'``: cells 1..6 at
  60 (i - 1) degrees around the centre cell; distances use the wraparound images
  of each BS (the 7-cell cluster tiles the plane).
* ``users[e, c, k]`` is user ``k`` of cell ``c`` in episode ``e``: shape ``(E, B, K, 2)``.
* ``d[e, b, k, c]`` is the distance from BS ``b`` to user ``k`` of cell ``c``:
  shape ``(E, B, K, B)``, the layout of ``gains`` in :mod:`channel_server.rates`.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

SQRT3 = math.sqrt(3.0)

# Unit normals of the three pairs of parallel hexagon edges (0, 60, 120 degrees).
EDGE_NORMALS: Array = np.array(
    [[math.cos(a), math.sin(a)] for a in (0.0, math.pi / 3.0, 2.0 * math.pi / 3.0)]
)


def apothem(radius_m: float) -> float:
    """Distance from the centre of a hexagon of circumradius ``radius_m`` to its edges."""
    return SQRT3 / 2.0 * radius_m


def _neighbour_directions() -> Array:
    angles = np.deg2rad(60.0 * np.arange(6))
    out: Array = np.stack([np.cos(angles), np.sin(angles)], axis=-1)
    return out


def cell_centers(layout: str, radius_m: float) -> Array:
    """BS positions of a layout, metres, shape ``(B, 2)``."""
    step = SQRT3 * radius_m
    if layout == "3cell":
        dirs = _neighbour_directions()[:2]
        out: Array = np.vstack([np.zeros((1, 2)), step * dirs])
        return out
    if layout == "7cell-wrap":
        out = np.vstack([np.zeros((1, 2)), step * _neighbour_directions()])
        return out
    raise ValueError(f"unknown layout {layout!r} (expected '3cell' or '7cell-wrap')")


def wrap_shifts(radius_m: float) -> Array:
    """Zero plus the six translations of the 7-cell cluster, shape ``(7, 2)``.

    The cluster translation is ``2 a1 + a2`` of the hexagonal lattice
    (``a1``, ``a2`` = ``sqrt(3) R`` at 0 and 60 degrees), length ``sqrt(21) R``,
    rotated by multiples of 60 degrees.
    """
    a1 = SQRT3 * radius_m * np.array([1.0, 0.0])
    a2 = SQRT3 * radius_m * np.array([0.5, SQRT3 / 2.0])
    base = 2.0 * a1 + a2
    shifts = [np.zeros(2)]
    for i in range(6):
        t = i * math.pi / 3.0
        rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
        shifts.append(rot @ base)
    out: Array = np.stack(shifts)
    return out


def point_in_hexagon(xy: Array, center: Array, radius_m: float) -> BoolArray:
    """Whether points ``xy[..., 2]`` lie in (or on) the hexagon at ``center`` (broadcast)."""
    rel = np.asarray(xy, dtype=np.float64) - np.asarray(center, dtype=np.float64)
    proj = np.abs(rel @ EDGE_NORMALS.T)  # (..., 3)
    out: BoolArray = np.all(proj <= apothem(radius_m) * (1.0 + 1e-12), axis=-1)
    return out


def valid_position(
    rel: Array, radius_m: float, min_distance_m: float
) -> BoolArray:
    """Whether offsets ``rel[..., 2]`` from a BS are in its hexagon and >= min distance."""
    inside = point_in_hexagon(rel, np.zeros(2), radius_m)
    out: BoolArray = inside & (np.linalg.norm(rel, axis=-1) >= min_distance_m)
    return out


def sample_in_hexagon(
    rng: np.random.Generator, shape: tuple[int, ...], radius_m: float, min_distance_m: float
) -> Array:
    """Offsets uniform in a hexagon centred at 0, at least ``min_distance_m`` from 0.

    Vectorized rejection sampling from the bounding box; shape ``shape + (2,)``.
    """
    out = np.empty(shape + (2,), dtype=np.float64)
    flat = out.reshape(-1, 2)
    todo = np.arange(flat.shape[0])
    half_w = apothem(radius_m)
    while todo.size:
        cand = np.empty((todo.size, 2))
        cand[:, 0] = rng.uniform(-half_w, half_w, todo.size)
        cand[:, 1] = rng.uniform(-radius_m, radius_m, todo.size)
        ok = valid_position(cand, radius_m, min_distance_m)
        flat[todo[ok]] = cand[ok]
        todo = todo[~ok]
    return out


def drop_users(
    rng: np.random.Generator,
    centers: Array,
    radius_m: float,
    min_distance_m: float,
    users_per_cell: int,
    episodes: int,
) -> Array:
    """Users uniform in each cell's hexagon, >= ``min_distance_m`` from its BS.

    Returns positions in metres, shape ``(E, B, K, 2)``.
    """
    n_cells = centers.shape[0]
    rel = sample_in_hexagon(rng, (episodes, n_cells, users_per_cell), radius_m, min_distance_m)
    out: Array = rel + centers[None, :, None, :]
    return out


def bs_user_distances(centers: Array, users: Array, layout: str, radius_m: float) -> Array:
    """``d[e, b, k, c]``: distance from BS ``b`` to user ``k`` of cell ``c``, metres.

    For ``'7cell-wrap'`` the minimum over the 7 wraparound images of BS ``b``.
    ``users`` has shape ``(E, B, K, 2)``; the result ``(E, B, K, B)``.
    """
    if layout == "7cell-wrap":
        shifts = wrap_shifts(radius_m)
    elif layout == "3cell":
        shifts = np.zeros((1, 2))
    else:
        raise ValueError(f"unknown layout {layout!r}")
    images = centers[:, None, :] + shifts[None, :, :]  # (B, S, 2)
    ux = np.swapaxes(users[..., 0], 1, 2)[:, None, :, :]  # (E, 1, K, C)
    uy = np.swapaxes(users[..., 1], 1, 2)[:, None, :, :]
    best: Array | None = None
    for s in range(images.shape[1]):  # few images: loop, keep (E, B, K, C) temporaries
        dx = ux - images[None, :, s, 0, None, None]
        dy = uy - images[None, :, s, 1, None, None]
        d2 = dx * dx + dy * dy
        best = d2 if best is None else np.minimum(best, d2)
    assert best is not None
    out: Array = np.sqrt(best)
    return out
