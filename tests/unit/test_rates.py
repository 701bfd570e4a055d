"""SINR and sum-rate of channel_server.rates against hand computations and plain loops.

Convention: gains[b, k, c] = |h_{b->k,c}|^2 from BS b to user k of cell c; powers[c, k].
SINR of user (c, k) = p[c,k] g[c,k,c] / (sum_{(b,j) != (c,k)} p[b,j] g[b,k,c] + N).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from channel_server.rates import csi_slice, rates_bps_hz, sinr, sum_rate_bps_hz
from channel_server.rates_torch import sum_rate_torch


def test_two_cells_one_user_each_by_hand() -> None:
    # B = 2, K = 1. gains[b, 0, c]
    gains = np.zeros((2, 1, 2))
    gains[0, 0, 0] = 2.0  # BS 0 -> its user
    gains[1, 0, 0] = 1.0  # BS 1 -> user of cell 0 (interference)
    gains[1, 0, 1] = 6.0  # BS 1 -> its user
    gains[0, 0, 1] = 1.0  # BS 0 -> user of cell 1 (interference)
    powers = np.array([[1.0], [1.0]])
    noise = 1.0
    # SINR_0 = 1*2 / (1*1 + 1) = 1   -> 1 bit
    # SINR_1 = 1*6 / (1*1 + 1) = 3   -> 2 bits
    assert sinr(gains, powers, noise) == pytest.approx(np.array([[1.0], [3.0]]))
    assert rates_bps_hz(gains, powers, noise) == pytest.approx(np.array([[1.0], [2.0]]))
    assert float(sum_rate_bps_hz(gains, powers, noise)) == pytest.approx(3.0)
    # unequal powers: p = (0.5, 2): SINR_0 = 1 / (2 + 1) = 1/3, SINR_1 = 12 / (0.5 + 1) = 8
    powers2 = np.array([[0.5], [2.0]])
    expected = math.log2(1 + 1 / 3) + math.log2(9.0)
    assert float(sum_rate_bps_hz(gains, powers2, noise)) == pytest.approx(expected)


def test_one_cell_two_users_intra_cell_interference_by_hand() -> None:
    # B = 1, K = 2: gains[0, k, 0]
    gains = np.array([[[1.0], [4.0]]])
    powers = np.array([[3.0, 1.0]])
    noise = 1.0
    # user 0: 3*1 / (1*1 + 1) = 3/2 ; user 1: 1*4 / (3*4 + 1) = 4/13
    assert sinr(gains, powers, noise) == pytest.approx(np.array([[1.5, 4 / 13]]))
    expected = math.log2(2.5) + math.log2(17 / 13)
    assert float(sum_rate_bps_hz(gains, powers, noise)) == pytest.approx(expected)


def loop_rates(gains: np.ndarray, powers: np.ndarray, noise: float) -> np.ndarray:
    """Per-link log2(1 + SINR) with plain Python loops, shape (E, B, K)."""
    e_n, b_n, k_n, _ = gains.shape
    out = np.zeros((e_n, b_n, k_n))
    for e in range(e_n):
        for c in range(b_n):
            for k in range(k_n):
                signal = powers[e, c, k] * gains[e, c, k, c]
                interference = 0.0
                for b in range(b_n):
                    for j in range(k_n):
                        if (b, j) != (c, k):
                            interference += powers[e, b, j] * gains[e, b, k, c]
                out[e, c, k] = math.log2(1.0 + signal / (interference + noise))
    return out


def test_vectorized_matches_plain_loop_random() -> None:
    rng = np.random.default_rng(0)
    gains = rng.exponential(1.0, (4, 3, 2, 3)) * 10.0 ** rng.uniform(-3, 0, (4, 3, 2, 3))
    powers = rng.uniform(0.0, 2.0, (4, 3, 2))
    noise = 1e-2
    expected = loop_rates(gains, powers, noise)
    assert rates_bps_hz(gains, powers, noise) == pytest.approx(expected, rel=1e-10)
    assert sum_rate_bps_hz(gains, powers, noise) == pytest.approx(
        expected.sum(axis=(1, 2)), rel=1e-10
    )
    torch_out = sum_rate_torch(torch.from_numpy(gains), torch.from_numpy(powers), noise)
    assert torch_out.numpy() == pytest.approx(expected.sum(axis=(1, 2)), rel=1e-10)


def test_zero_power_link_has_zero_rate() -> None:
    rng = np.random.default_rng(1)
    gains = rng.exponential(1.0, (1, 3, 2, 3))
    powers = rng.uniform(0.5, 1.0, (1, 3, 2))
    powers[0, 1, 0] = 0.0
    r = rates_bps_hz(gains, powers, 0.1)
    assert r[0, 1, 0] == 0.0
    assert (r[0, [0, 2]] > 0.0).all()
    assert r == pytest.approx(loop_rates(gains, powers, 0.1), rel=1e-12)


def test_csi_slice_is_own_bs_row() -> None:
    gains = np.arange(2 * 3 * 2 * 3, dtype=np.float64).reshape(2, 3, 2, 3)
    s = csi_slice(gains, 1)
    assert s.shape == (2, 2, 3)
    assert s[1, 0, 2] == gains[1, 1, 0, 2]
