"""Fractional-programming power control (Shen and Yu 2018, "FPLinQ"-style direct update).

Sum-rate ``sum_i log(1 + SINR_i)`` with ``SINR_i = A_i / B_i``, ``A_i = g_ii p_i``,
``B_i = sum_{j != i} g_ij p_j + noise`` (``g_ij``: gain from transmitter ``j`` to
receiver ``i``, all links in one band, see :mod:`channel_server.rates`).

1. Lagrangian dual transform (auxiliary ``gamma``):
   ``f_r(p, gamma) = sum_i log(1 + gamma_i) - gamma_i + (1 + gamma_i) A_i / (A_i + B_i)``;
   for fixed ``p`` it is concave in ``gamma`` with maximiser ``gamma_i = SINR_i`` and
   maximum the sum-rate.
2. Quadratic transform of the sum of ratios (auxiliary ``y``):
   ``(1 + gamma_i) A_i / (A_i + B_i) >= 2 y_i sqrt((1 + gamma_i) A_i) - y_i^2 (A_i + B_i)``,
   equality at ``y_i = sqrt((1 + gamma_i) g_ii p_i) / (sum_j g_ij p_j + noise)``.
3. For fixed ``(gamma, y)`` the surrogate is separable and concave in ``p``:
   ``sum_j 2 a_j sqrt(p_j) - c_j p_j + const`` with ``a_j = y_j sqrt((1 + gamma_j) g_jj)``
   and ``c_j = sum_i y_i^2 g_ij``. Per-user limit: ``p_j = min(Pmax, a_j^2 / c_j^2)``
   (closed form). Per-BS budget: ``p_j = a_j^2 / (c_j + mu_b)^2`` with the BS multiplier
   ``mu_b`` found by bisection (:func:`controller.baselines.wmmse.solve_bs_budget`).

Each step maximises a minorant that touches the sum-rate at the current point, so the
sum-rate never decreases (minorization-maximization). As for WMMSE, ``c_j`` only
depends on the BS of ``j``: O(B^2 K) per instance and iteration.

Note: for single-antenna links this map is the WMMSE sweep in other variables
(``1 + gamma_i = w_i``, ``y_i^2 = u_i^2 w_i``, same ``a`` and ``c``), so from the same start
FP and :mod:`controller.baselines.wmmse` give identical iterates (a test checks it).
Paper 001 reports FP slightly above WMMSE; that difference must come from its
implementations' starting points or stopping rules, not from the updates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from controller.baselines.wmmse import (
    TINY,
    Array,
    Constraint,
    IterInfo,
    allocate,
    direct_gains,
    per_bs_weighted,
    received_power,
    solve_bs_budget,
)


@dataclass(frozen=True)
class FPConfig:
    """Stopping rule of FP."""

    tol: float = 1e-5
    """Stop an instance once its relative sum-rate improvement (R_t - R_{t-1}) / R_{t-1}
    over one iteration falls below this (dimensionless)."""
    max_iter: int = 500
    """Iteration cap per instance (one iteration = one gamma, y, p update)."""


def fp_update(
    gains: Array,
    direct: Array,
    powers: Array,
    total: Array,
    pmax_w: float,
    constraint: Constraint = "per-user",
    budget_w: float = np.inf,
) -> Array:
    """One FP iteration (gamma, then y, then p) given ``total`` = received power + noise."""
    signal = direct * powers  # A_i; total = A_i + B_i
    one_gamma = 1.0 + signal / np.maximum(total - signal, TINY)  # 1 + gamma_i, gamma = SINR
    y = np.sqrt(one_gamma * signal) / total
    a = y * np.sqrt(one_gamma * direct)
    c = per_bs_weighted(gains, np.square(y))  # sum_i y_i^2 g_ij, shared per BS
    if constraint == "per-user":
        out: Array = np.minimum(pmax_w, np.square(a / np.maximum(c, TINY)))
        return out
    return solve_bs_budget(a, c, np.inf, budget_w)


def fp_step(
    gains: Array,
    powers: Array,
    noise_w: float,
    pmax_w: float,
    constraint: Constraint = "per-user",
    budget_w: float = np.inf,
) -> Array:
    """One FP iteration on a batch (N, B, K, B) from powers (N, B, K); returns new powers."""
    total = received_power(gains, powers) + noise_w
    return fp_update(gains, direct_gains(gains), powers, total, pmax_w, constraint, budget_w)


def fp(
    gains: Array,
    noise_w: float,
    pmax_w: float,
    config: FPConfig = FPConfig(),
    *,
    constraint: Constraint = "per-user",
    bs_budget_w: float | None = None,
) -> tuple[Array, IterInfo]:
    """FP powers for a batch of channel realizations.

    gains: (N, B, K, B) or (B, K, B); noise_w: noise power, W; pmax_w: per-user limit, W.
    constraint "per-user": 0 <= p <= pmax_w; "per-bs": p >= 0 and each BS's K powers sum
    to at most ``bs_budget_w`` (default K * pmax_w), no per-user limit.
    Starts at full power (per-bs: the budget split evenly). Returns powers (N, B, K) (or
    (B, K)) in watts and the run info.
    """
    return allocate(fp_update, gains, noise_w, pmax_w, config.tol, config.max_iter,
                    constraint, bs_budget_w)
