"""Cell layouts, wraparound distances, user drops, pathloss and mobility.

Expected values are hand computations (hexagon geometry) or independent checks
(a cross-product polygon test, plain loops), never the functions under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from channel_server.geometry import (
    bs_user_distances,
    cell_centers,
    drop_users,
    point_in_hexagon,
    wrap_shifts,
)
from channel_server.mobility import RandomWalk, RandomWaypoint, Static
from channel_server.pathloss import distance_gain, log_distance_db, loss_db_to_gain

R = 1000.0
S3 = math.sqrt(3.0)


def inside_convex_polygon(points: np.ndarray, center: np.ndarray, radius: float) -> np.ndarray:
    """Independent inside test: left of every CCW edge of the hexagon (cross products)."""
    verts = [
        (center[0] + radius * math.cos(math.radians(30 + 60 * i)),
         center[1] + radius * math.sin(math.radians(30 + 60 * i)))
        for i in range(6)
    ]
    ok = np.ones(points.shape[:-1], dtype=bool)
    for i in range(6):
        (x0, y0), (x1, y1) = verts[i], verts[(i + 1) % 6]
        cross = (x1 - x0) * (points[..., 1] - y0) - (y1 - y0) * (points[..., 0] - x0)
        ok &= cross >= -1e-9 * radius
    return ok


# --------------------------------------------------------------------------- layouts


def test_3cell_centres_form_equilateral_triangle_sharing_a_vertex() -> None:
    c = cell_centers("3cell", R)
    assert c.shape == (3, 2)
    for i in range(3):
        for j in range(i + 1, 3):
            assert math.dist(c[i], c[j]) == pytest.approx(S3 * R)
    # the three hexagons meet at the point (sqrt(3)/2 R, R/2): a vertex of each, at R from all
    common = np.array([S3 / 2 * R, R / 2])
    for i in range(3):
        assert math.dist(c[i], common) == pytest.approx(R)


def test_7cell_centres_ring_of_six_neighbours() -> None:
    c = cell_centers("7cell-wrap", R)
    assert c.shape == (7, 2)
    assert np.allclose(c[0], 0.0)
    for i in range(1, 7):
        assert math.dist(c[0], c[i]) == pytest.approx(S3 * R)
        # consecutive ring cells are also adjacent
        assert math.dist(c[i], c[i % 6 + 1]) == pytest.approx(S3 * R)


def test_unknown_layout_rejected() -> None:
    with pytest.raises(ValueError, match="layout"):
        cell_centers("19cell", R)


def test_wrap_shifts_are_7cell_cluster_translations() -> None:
    s = wrap_shifts(R)
    assert s.shape == (7, 2)
    assert np.allclose(s[0], 0.0)
    # 2 a1 + a2 = sqrt(3) R (2.5, sqrt(3)/2) = (5 sqrt(3)/2 R, 3/2 R), length sqrt(21) R
    assert s[1] == pytest.approx([5 * S3 / 2 * R, 1.5 * R])
    lengths = np.linalg.norm(s[1:], axis=1)
    assert lengths == pytest.approx([math.sqrt(21.0) * R] * 6)
    angles = np.degrees(np.arctan2(s[1:, 1], s[1:, 0]))
    steps = np.diff(np.unwrap(np.radians(angles)))
    assert np.degrees(steps) == pytest.approx([60.0] * 5)


def test_wrap_makes_every_pair_of_cells_adjacent() -> None:
    """With wraparound every BS is sqrt(3) R from the centre of every other cell."""
    c = cell_centers("7cell-wrap", R)
    users = c[None, :, None, :].copy()  # one user at each cell centre, E = 1, K = 1
    d = bs_user_distances(c, users, "7cell-wrap", R)
    assert d.shape == (1, 7, 1, 7)
    for b in range(7):
        for cc in range(7):
            expected = 0.0 if b == cc else S3 * R
            assert d[0, b, 0, cc] == pytest.approx(expected, abs=1e-6)


def test_wrap_distance_centre_bs_to_outer_vertex_of_edge_cell() -> None:
    """User at the outer vertex (30 deg) of cell 1: direct sqrt(7) R, wrapped image 2 R."""
    c = cell_centers("7cell-wrap", R)
    vertex = np.array([S3 * R + S3 / 2 * R, R / 2])  # (3 sqrt(3)/2 R, R/2)
    users = np.tile(c[None, :, None, :], (1, 1, 1, 1))
    users[0, 1, 0] = vertex
    d_wrap = bs_user_distances(c, users, "7cell-wrap", R)
    # nearest image of BS 0 is 2 a1 + a2 = (5 sqrt(3)/2 R, 3/2 R): offset (sqrt(3) R, R) -> 2 R
    assert d_wrap[0, 0, 0, 1] == pytest.approx(2.0 * R)
    # without wraparound the same geometry gives the direct distance sqrt(27/4 + 1/4) R = sqrt(7) R
    c3 = cell_centers("3cell", R)
    users3 = np.zeros((1, 3, 1, 2))
    users3[0, 1, 0] = vertex
    users3[0, 0, 0] = [10.0, 0.0]
    users3[0, 2, 0] = c3[2]
    d3 = bs_user_distances(c3, users3, "3cell", R)
    assert d3[0, 0, 0, 1] == pytest.approx(math.sqrt(7.0) * R)
    assert d3[0, 1, 0, 0] == pytest.approx(S3 * R - 10.0)  # BS 1 at (sqrt3 R, 0) to (10, 0)


def test_distances_match_plain_loop_with_images() -> None:
    rng = np.random.default_rng(3)
    c = cell_centers("7cell-wrap", R)
    users = drop_users(rng, c, R, 10.0, 3, 2)
    d = bs_user_distances(c, users, "7cell-wrap", R)
    shifts = [(0.0, 0.0)] + [
        (math.sqrt(21) * R * math.cos(math.atan2(1.5, 2.5 * S3) + k * math.pi / 3),
         math.sqrt(21) * R * math.sin(math.atan2(1.5, 2.5 * S3) + k * math.pi / 3))
        for k in range(6)
    ]
    for e in range(2):
        for b in range(7):
            for k in range(3):
                for cc in range(7):
                    ux, uy = users[e, cc, k]
                    best = min(
                        math.hypot(ux - c[b, 0] - sx, uy - c[b, 1] - sy) for sx, sy in shifts
                    )
                    assert d[e, b, k, cc] == pytest.approx(best, rel=1e-12)


def test_point_in_hexagon() -> None:
    center = np.array([100.0, -50.0])
    a = S3 / 2 * R
    inside = np.array([[100.0, -50.0], [100.0 + 0.999 * a, -50.0], [100.0, -50.0 + 0.999 * R]])
    outside = np.array([[100.0 + 1.001 * a, -50.0], [100.0, -50.0 + 1.001 * R],
                        [100.0 + 0.9 * a, -50.0 + 0.9 * R]])  # beyond the slanted edge
    assert point_in_hexagon(inside, center, R).all()
    assert not point_in_hexagon(outside, center, R).any()


# --------------------------------------------------------------------------- drops


def test_users_uniform_in_hexagon() -> None:
    rng = np.random.default_rng(0)
    dmin = 50.0
    c = cell_centers("3cell", R)
    u = drop_users(rng, c, R, dmin, users_per_cell=4, episodes=5000)
    assert u.shape == (5000, 3, 4, 2)
    rel = u - c[None, :, None, :]
    for b in range(3):
        assert inside_convex_polygon(u[:, b], c[b], R).all()
    r = np.linalg.norm(rel, axis=-1)
    assert r.min() >= dmin
    # mean position is the centre (std of the mean ~ 0.4 R / sqrt(20000) ~ 0.003 R)
    assert np.abs(rel.reshape(-1, 2).mean(axis=0)).max() < 0.015 * R
    # hand: hexagon area 3 sqrt(3)/2 R^2, polar moment 5 sqrt(3)/8 R^4; minus the disc
    area = 1.5 * S3 * R**2 - math.pi * dmin**2
    second_moment = (5 * S3 / 8 * R**4 - math.pi * dmin**4 / 2) / area
    assert np.mean(r**2) == pytest.approx(second_moment, rel=0.01)
    frac_half = (math.pi * (R / 2) ** 2 - math.pi * dmin**2) / area
    assert np.mean(r < R / 2) == pytest.approx(frac_half, abs=0.01)


def test_drop_is_reproducible_from_generator() -> None:
    c = cell_centers("7cell-wrap", R)
    a = drop_users(np.random.default_rng(5), c, R, 10.0, 8, 3)
    b = drop_users(np.random.default_rng(5), c, R, 10.0, 8, 3)
    d = drop_users(np.random.default_rng(6), c, R, 10.0, 8, 3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, d)


# --------------------------------------------------------------------------- pathloss


def test_distance_gain_hand_values() -> None:
    d0 = 0.3920
    # d = 9 d0 -> (1 + 9)^-alpha = 10^-3.76
    assert float(distance_gain(9 * d0, d0, 3.76)) == pytest.approx(10**-3.76, rel=1e-12)
    assert float(distance_gain(0.0, d0, 4.0)) == 1.0
    # d = 99 d0, alpha 4 -> 100^-4 = 1e-8
    assert float(distance_gain(np.array(99 * d0), d0, 4.0)) == pytest.approx(1e-8, rel=1e-12)
    # cell edge, 1000 m: 10 log10 of (1 + 1000/0.392)^-3.76 = -3.76 * 10 * log10(2552.02...)
    g = float(distance_gain(1000.0, d0, 3.76))
    assert 10 * math.log10(g) == pytest.approx(-128.1, abs=0.05)  # the 3GPP intercept


def test_log_distance_db_hand_values() -> None:
    assert float(log_distance_db(1000.0, 128.1, 37.6)) == pytest.approx(128.1)
    assert float(log_distance_db(100.0, 128.1, 37.6)) == pytest.approx(90.5)
    assert float(log_distance_db(10_000.0, 128.1, 37.6)) == pytest.approx(165.7)
    assert float(loss_db_to_gain(30.0)) == pytest.approx(1e-3)


# --------------------------------------------------------------------------- mobility


SMALL_R = 50.0
SMALL_DMIN = 10.0
SPEED = 100.0
SLOT = 0.02


@pytest.mark.parametrize("mover_cls", [RandomWalk, RandomWaypoint])
def test_mobility_keeps_users_in_cell(mover_cls: type) -> None:
    """Small cells and fast users: 2 m steps in a 50 m cell hit the edges and the BS disc."""
    rng = np.random.default_rng(11)
    c = cell_centers("7cell-wrap", SMALL_R)
    users = drop_users(rng, c, SMALL_R, SMALL_DMIN, 4, 20)
    mover = mover_cls(c, users, SMALL_R, SMALL_DMIN, SPEED, SLOT, rng)
    assert mover.moving
    step_m = SPEED * SLOT
    prev = users
    start = users.copy()
    max_travel = np.zeros(users.shape[:-1])
    full_steps = 0
    for _ in range(1000):
        cur = mover.step()
        for b in range(7):
            assert inside_convex_polygon(cur[:, b], c[b], SMALL_R).all()
        assert (np.linalg.norm(cur - c[None, :, None, :], axis=-1) >= SMALL_DMIN - 1e-9).all()
        moved = np.linalg.norm(cur - prev, axis=-1)
        assert (moved <= step_m + 1e-9).all()
        full_steps += int(np.isclose(moved, step_m).sum())
        max_travel = np.maximum(max_travel, np.linalg.norm(cur - start, axis=-1))
        prev = cur
    # most steps are whole steps of speed * slot_s; users roam far across their cell
    assert full_steps > 0.9 * 1000 * users[..., 0].size
    assert np.median(max_travel) > 40.0


def test_static_users_do_not_move() -> None:
    rng = np.random.default_rng(2)
    c = cell_centers("3cell", R)
    users = drop_users(rng, c, R, 10.0, 2, 3)
    mover = Static(users)
    assert not mover.moving
    for _ in range(5):
        assert np.array_equal(mover.step(), users)


def test_mobility_rejects_users_outside_cell() -> None:
    c = cell_centers("3cell", R)
    users = np.tile(c[None, :, None, :], (1, 1, 1, 1)) + 1.0
    users[0, 0, 0] = [2 * R, 0.0]
    with pytest.raises(ValueError, match="cell"):
        RandomWalk(c, users, R, 0.0, 1.0, 0.02, np.random.default_rng(0))
