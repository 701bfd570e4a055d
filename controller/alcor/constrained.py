"""The per-instance rate-constrained optimum (the paper's GP benchmark (iv), after Chiang et
al. [3]): for one channel instance, every user on,

    maximize  sum_i R_i(p)   s.t.  R_i(p) >= u_min_i,  0 <= p_i <= Pmax.

*Choice of solver*: the paper solves it by iterative geometric programming. A rate floor is
an SINR floor ``gamma_i = 2^u_i - 1``, and ``SINR_i >= gamma_i`` is *linear* in p:

    p_i G_ii - gamma_i sum_{j != i} p_j G_ji >= gamma_i sigma^2,

so feasibility is exact and cheap: with ``M_ij = gamma_i G_ji / G_ii`` (j != i) and
``b_i = gamma_i sigma^2 / G_ii``, the instance is feasible iff the spectral radius of M is
below 1 and the least-power point ``p* = (I - M)^-1 b`` is within Pmax (Perron-Frobenius;
the same test as MAPEL's [37]). The sum rate is then maximized over that polytope by
scipy's SLSQP (a maintained solver rrmbed already depends on) on the exact rates with their
analytic gradient, from ``p*`` (feasible), from the URA's point if given, and from random
points, keeping the best feasible result (``p*`` itself when no start does better). The GP
route would need cvxpy and either the high-SINR approximation ``log(1 + SINR) ~ log SINR``,
which is wrong exactly where these demands live (rates below 1 bit/s/Hz, SINR < 1), or
Chiang's successive condensation, a sequence of GPs converging to a KKT point of this same
problem. Both give a local optimum of the same problem; SLSQP reaches it without a new
dependency.

Everything is solved in normalized units (``x = p / Pmax``, gains ``G Pmax / sigma^2``,
noise 1), which keeps the 7-cell gains (1e-16..1e-7) well conditioned.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize

Array = npt.NDArray[np.float64]

LN2 = math.log(2.0)


@dataclass(frozen=True)
class ConstrainedConfig:
    """SLSQP on one instance."""

    random_starts: int = 2
    """Uniform random starting points besides p* (and the URA's point)."""
    max_iter: int = 200
    """SLSQP iterations per start."""
    tol: float = 1e-9
    """SLSQP's ftol."""
    feasibility_tol: float = 1e-6
    """A result counts as meeting a demand when its rate is at least u_min - this, bit/s/Hz."""


@dataclass(frozen=True)
class ConstrainedResult:
    """One instance."""

    feasible: bool
    """Whether any powers meet every demand (exact test)."""
    powers: Array | None
    """``(K,)`` watts, None when infeasible."""
    rates: Array | None
    """``(K,)`` bit/s/Hz at those powers."""
    wall_s: float


def normalized(gains: Array, noise_w: float, pmax_w: float) -> Array:
    """``G Pmax / sigma^2``: gains in units of the noise at full power."""
    out: Array = np.asarray(gains, dtype=np.float64) * (pmax_w / noise_w)
    return out


def rates_of(gn: Array, x: Array) -> Array:
    """Rates ``(K,)`` for normalized gains ``gn[j, i]`` and power shares ``x``."""
    total = x @ gn + 1.0
    signal = x * np.diagonal(gn)
    out: Array = np.log2(total / (total - signal))
    return out


def sum_rate_grad(gn: Array, x: Array) -> Array:
    """d sum_i R_i / d x_j = [sum_i gn_ji (1/T_i - 1/I_i) + gn_jj / I_j] / ln 2, with T the
    total received power plus noise and I = T - signal."""
    total = x @ gn + 1.0
    interference = total - x * np.diagonal(gn)
    out: Array = (gn @ (1.0 / total - 1.0 / interference) + np.diagonal(gn) / interference) / LN2
    return out


def least_power_point(gn: Array, u_min: Array) -> Array | None:
    """The least powers (shares of Pmax) meeting every demand, or None when none exist."""
    gamma = np.exp2(np.asarray(u_min, dtype=np.float64)) - 1.0
    d = np.diagonal(gn)
    m = gamma[:, None] * gn.T / d[:, None]
    np.fill_diagonal(m, 0.0)
    if not np.any(gamma > 0):
        return np.zeros(len(d))
    if np.max(np.abs(np.linalg.eigvals(m))) >= 1.0:
        return None
    x = np.linalg.solve(np.eye(len(d)) - m, gamma / d)
    if np.any(x > 1.0 + 1e-12) or np.any(x < -1e-12):
        return None
    out: Array = np.clip(x, 0.0, 1.0)
    return out


def solve_instance(gains: Array, u_min: Array, noise_w: float, pmax_w: float,
                   cfg: ConstrainedConfig, rng: np.random.Generator,
                   warm_w: Array | None = None) -> ConstrainedResult:
    """The rate-constrained sum-rate maximum of one instance ``gains (K, K)`` (watts)."""
    t0 = time.perf_counter()
    gn = normalized(gains, noise_w, pmax_w)
    u = np.asarray(u_min, dtype=np.float64)
    x_star = least_power_point(gn, u)
    if x_star is None:
        return ConstrainedResult(False, None, None, time.perf_counter() - t0)
    k = len(u)
    gamma = np.exp2(u) - 1.0
    d = np.diagonal(gn)
    rows = np.flatnonzero(gamma > 0)
    # (I - M) x >= b, one row per demanding user, divided by G_ii for conditioning
    a = -(gamma[:, None] * gn.T) / d[:, None]
    a[np.arange(k), np.arange(k)] = 1.0
    a, b = a[rows], (gamma / d)[rows]
    cons = [{"type": "ineq", "fun": lambda x: a @ x - b, "jac": lambda x: a}] if len(rows) else []
    starts = [x_star]
    if warm_w is not None:
        starts.append(np.clip(np.asarray(warm_w, np.float64) / pmax_w, 0.0, 1.0))
    starts += [rng.uniform(0.0, 1.0, k) for _ in range(cfg.random_starts)]
    best, best_val = x_star, float(rates_of(gn, x_star).sum())
    for x0 in starts:
        res = minimize(lambda x: -rates_of(gn, x).sum(), x0, jac=lambda x: -sum_rate_grad(gn, x),
                       bounds=[(0.0, 1.0)] * k, constraints=cons, method="SLSQP",
                       options={"maxiter": cfg.max_iter, "ftol": cfg.tol})
        x = np.clip(res.x, 0.0, 1.0)
        r = rates_of(gn, x)
        if np.all(r >= u - cfg.feasibility_tol) and r.sum() > best_val:
            best, best_val = x, float(r.sum())
    return ConstrainedResult(True, best * pmax_w, rates_of(gn, best), time.perf_counter() - t0)
