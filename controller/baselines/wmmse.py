"""WMMSE power allocation for the multi-cell downlink (Shi, Razaviyayn, Luo and He, 2011).

SISO interference-channel variant, as used by Sun et al. 2018 and compared against in
paper 001. With ``L = B*K`` links, link ``(c, k)`` (BS ``c`` towards its user ``k``)
has direct gain ``gains[c, k, c]``; the signal of link ``(b, k')`` reaches user
``(c, k)`` through ``gains[b, k, c]`` for every ``k'`` (all links share one band, see
:mod:`channel_server.rates`). In amplitudes ``v = sqrt(p)`` one iteration is

* ``u_i = sqrt(g_ii) v_i / (sum_j g_ij v_j^2 + noise)``  (MMSE receiver),
* ``w_i = 1 / (1 - u_i sqrt(g_ii) v_i)``  (= 1 + SINR_i),
* ``v_j = [u_j w_j sqrt(g_jj) / sum_i g_ij u_i^2 w_i]_0^sqrt(Pmax)``

(``g_ij``: gain from transmitter ``j`` to receiver ``i``; both sums include ``i = j``).
Because all links of one BS reach a user through the same gain, ``sum_i g_ij u_i^2 w_i``
only depends on the BS of ``j``; the update is computed per BS, O(B^2 K) per instance.

Every block update exactly minimises the weighted-MSE objective, whose minimum over
``(u, w)`` is ``-sum log(1 + SINR)``, so the sum-rate never decreases. The optional
per-BS sum-power variant solves the ``v`` block exactly with one multiplier per BS
(:func:`solve_bs_budget`).

This module also holds the machinery FP shares: batch handling, the per-BS budget
solver and the iteration driver with the per-instance stopping rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
Constraint = Literal["per-user", "per-bs"]

TINY = 1e-300


@dataclass(frozen=True)
class WMMSEConfig:
    """Stopping rule of WMMSE."""

    tol: float = 1e-5
    """Stop an instance once its relative sum-rate improvement (R_t - R_{t-1}) / R_{t-1}
    over one iteration falls below this (dimensionless)."""
    max_iter: int = 500
    """Iteration cap per instance (one iteration = one u, w, v sweep)."""


@dataclass(frozen=True)
class IterInfo:
    """How an iterative allocator ran, per instance."""

    iterations: IntArray
    """Iterations each instance ran, shape (N,) (shape () for a single instance)."""
    converged: BoolArray
    """True where the tolerance was met before the cap, shape (N,)."""
    history: Array
    """Sum-rate in bit/s/Hz after 0, 1, ..., T iterations, shape (N, T + 1) where T is the
    largest iteration count of the batch; after an instance stopped, its row repeats
    its final value (its powers no longer change)."""


# --------------------------------------------------------------------------- shared helpers


def as_batch(gains: Array) -> tuple[Array, bool]:
    """Gains as shape (N, B, K, B), and whether the input was a single (B, K, B) instance."""
    g = np.asarray(gains, dtype=np.float64)
    if g.ndim == 3:
        return g[None], True
    if g.ndim != 4 or g.shape[1] != g.shape[3]:
        raise ValueError(f"gains must have shape (N, B, K, B) or (B, K, B), got {g.shape}")
    return g, False


def direct_gains(gains: Array) -> Array:
    """``g[n, c, k, c]`` of every link, shape (N, B, K)."""
    out: Array = np.swapaxes(np.diagonal(gains, axis1=1, axis2=3), 1, 2)
    return out


def received_power(gains: Array, powers: Array) -> Array:
    """Total power every user receives from all links (its own included), shape (N, B, K)."""
    out: Array = np.einsum("nb,nbkc->nck", powers.sum(axis=2), gains)
    return out


def per_bs_weighted(gains: Array, weights: Array) -> Array:
    """``sum_{c,k} gains[n, b, k, c] * weights[n, c, k]`` for every BS ``b``, shape (N, B, 1)."""
    n, b, k, _ = gains.shape
    w = np.swapaxes(weights, 1, 2).reshape(n, k * b, 1)  # [n, k*B + c]
    out: Array = gains.reshape(n, b, k * b) @ w  # batched matmul: faster than einsum here
    return out


def sum_rate_from(direct: Array, powers: Array, total: Array) -> Array:
    """Sum of log2(1 + SINR), bit/s/Hz, shape (N,), from ``total`` = received + noise."""
    signal = direct * powers
    out: Array = np.log2(total / np.maximum(total - signal, TINY)).sum(axis=(1, 2))
    return out


def solve_bs_budget(
    a: Array, c: Array, cap_w: float, budget_w: float, iters: int = 100
) -> Array:
    """Exact solution of the per-BS subproblem shared by WMMSE and FP.

    For every BS (last axis = its K links) returns ``x_k = min(cap, a_k^2 / (c_k + mu)^2)``
    with the smallest ``mu >= 0`` such that ``sum_k x_k <= budget``: the KKT point of
    ``max sum_k 2 a_k sqrt(x_k) - c_k x_k`` s.t. ``0 <= x_k <= cap``, ``sum_k x_k <= budget``
    (a concave problem, so the KKT point is its maximiser). ``mu`` is found by bisection
    to machine precision and the feasible end of the bracket is returned.
    """
    a2 = np.square(a)
    cb = np.broadcast_to(c, a.shape)

    def x_of(mu: Array) -> Array:
        out: Array = np.minimum(cap_w, a2 / np.maximum(np.square(cb + mu), TINY))
        return out

    x0 = x_of(np.zeros(a.shape[:-1] + (1,)))
    need = x0.sum(axis=-1, keepdims=True) > budget_w
    if not need.any():
        return x0
    lo = np.zeros(a.shape[:-1] + (1,))
    hi = np.sqrt(a2.sum(axis=-1, keepdims=True) / budget_w)  # sum a^2 / hi^2 = budget
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        over = x_of(mid).sum(axis=-1, keepdims=True) > budget_w
        lo = np.where(over, mid, lo)
        hi = np.where(over, hi, mid)
        if np.all(hi - lo <= 4e-16 * hi):
            break
    return np.where(need, x_of(hi), x0)


def initial_powers(
    shape: tuple[int, ...], pmax_w: float, constraint: Constraint, budget_w: float
) -> Array:
    """Full power: Pmax per user, or the BS budget split evenly over its K users."""
    k = shape[-1]
    level = pmax_w if constraint == "per-user" else budget_w / k
    return np.full(shape, level, dtype=np.float64)


def resolve_budget(
    constraint: Constraint, bs_budget_w: float | None, pmax_w: float, k: int
) -> float:
    """The per-BS budget in watts (K * Pmax unless given); checks the constraint name."""
    if constraint not in ("per-user", "per-bs"):
        raise ValueError(f"constraint must be 'per-user' or 'per-bs', got {constraint!r}")
    if pmax_w <= 0:
        raise ValueError("pmax_w must be > 0")
    budget = k * pmax_w if bs_budget_w is None else float(bs_budget_w)
    if budget <= 0:
        raise ValueError("bs_budget_w must be > 0")
    return budget


Step = Callable[[Array, Array, Array, Array], Array]
"""``step(gains, direct, powers, total) -> new powers``, all batched over the first axis;
``direct`` = :func:`direct_gains`, ``total`` = :func:`received_power` + noise at ``powers``."""


def iterate_monotone(
    step: Step, gains: Array, p0: Array, noise_w: float, tol: float, max_iter: int
) -> tuple[Array, IterInfo]:
    """Run ``p <- step(...)`` on a batch, stopping each instance on its own.

    An instance stops after the first iteration whose relative sum-rate improvement is
    below ``tol`` (that last iterate is kept) or after ``max_iter`` iterations. Finished
    instances are frozen; the working set is compacted once half of it has finished.
    """
    if tol < 0 or max_iter < 0:
        raise ValueError("tol and max_iter must be >= 0")
    n = gains.shape[0]
    p_all = p0.copy()
    g_w, d_w, p_w = gains, direct_gains(gains), p_all.copy()
    t_w = received_power(g_w, p_w) + noise_w
    r_w = sum_rate_from(d_w, p_w, t_w)
    iterations = np.zeros(n, dtype=np.int64)
    converged = np.zeros(n, dtype=bool)
    idx = np.arange(n)  # working set, indices into the batch
    live = np.ones(n, dtype=bool)  # mask over the working set
    trace = [(idx, r_w)]  # (working set, its sum-rates) after each iteration
    t = 0
    while t < max_iter and live.any():
        t += 1
        p_new = step(g_w, d_w, p_w, t_w)
        t_new = received_power(g_w, p_new) + noise_w
        r_new = sum_rate_from(d_w, p_new, t_new)
        done = live & ((r_new - r_w) < tol * np.maximum(r_w, TINY))
        if live.all():
            p_w, t_w, r_w = p_new, t_new, r_new
        else:  # finished instances keep their values
            p_w = np.where(live[:, None, None], p_new, p_w)
            t_w = np.where(live[:, None, None], t_new, t_w)
            r_w = np.where(live, r_new, r_w)
        trace.append((idx, r_w))
        if done.any():
            iterations[idx[done]] = t
            converged[idx[done]] = True
            live &= ~done
            if live.sum() <= len(idx) // 2:
                p_all[idx] = p_w
                g_w, d_w, p_w, t_w, r_w = g_w[live], d_w[live], p_w[live], t_w[live], r_w[live]
                idx = idx[live]
                live = np.ones(len(idx), dtype=bool)
    p_all[idx] = p_w
    iterations[~converged] = t
    history = np.empty((len(trace), n))
    for row, (ids, rates) in enumerate(trace):
        if row > 0 and len(ids) < n:
            history[row] = history[row - 1]  # instances that left the working set
        history[row, ids] = rates
    info = IterInfo(iterations=iterations, converged=converged, history=history.T.copy())
    return p_all, info


def allocate(update: Callable[..., Array], gains: Array, noise_w: float, pmax_w: float,
             tol: float, max_iter: int, constraint: Constraint,
             bs_budget_w: float | None) -> tuple[Array, IterInfo]:
    """Drive an iterative allocator's ``update(gains, direct, powers, total, pmax_w,
    constraint, budget)`` from full power until each instance converges (WMMSE and FP)."""
    g, single = as_batch(gains)
    budget = resolve_budget(constraint, bs_budget_w, pmax_w, g.shape[2])

    def step(gb: Array, db: Array, pb: Array, tb: Array) -> Array:
        return update(gb, db, pb, tb, pmax_w, constraint, budget)

    p0 = initial_powers(g.shape[:3], pmax_w, constraint, budget)
    p, info = iterate_monotone(step, g, p0, noise_w, tol, max_iter)
    if single:
        return p[0], squeeze_info(info)
    return p, info


def squeeze_info(info: IterInfo) -> IterInfo:
    """Drop the batch axis of a single instance's info."""
    return IterInfo(
        iterations=info.iterations[0], converged=info.converged[0], history=info.history[0]
    )


# --------------------------------------------------------------------------- WMMSE


def wmmse_update(
    gains: Array,
    direct: Array,
    powers: Array,
    total: Array,
    pmax_w: float,
    constraint: Constraint = "per-user",
    budget_w: float = np.inf,
) -> Array:
    """One WMMSE sweep (u, then w, then v) given ``total`` = received power + noise.

    With ``den_i = total_i - g_ii p_i`` (interference + noise) the closed forms reduce to
    ``u_i w_i sqrt(g_ii) = g_ii v_i / den_i`` and ``u_i^2 w_i = g_ii p_i / (total_i den_i)``,
    which is how they are computed (fewer array operations, no cancellation in ``w``).
    """
    signal = direct * powers
    den = np.maximum(total - signal, TINY)  # 1 - u_i sqrt(g_ii) v_i = den_i / total_i
    v = np.sqrt(powers)
    a = direct * v / den  # u_i w_i sqrt(g_ii), numerator of the v update
    c = per_bs_weighted(gains, signal / (total * den))  # sum_i g_ij u_i^2 w_i, per BS
    if constraint == "per-user":
        v_new = np.minimum(a / np.maximum(c, TINY), np.sqrt(pmax_w))  # a >= 0: clip at 0 idle
        out: Array = np.square(v_new)
        return out
    return solve_bs_budget(a, c, np.inf, budget_w)


def wmmse_step(
    gains: Array,
    powers: Array,
    noise_w: float,
    pmax_w: float,
    constraint: Constraint = "per-user",
    budget_w: float = np.inf,
) -> Array:
    """One WMMSE sweep on a batch (N, B, K, B) from powers (N, B, K); returns new powers."""
    total = received_power(gains, powers) + noise_w
    return wmmse_update(gains, direct_gains(gains), powers, total, pmax_w, constraint, budget_w)


def wmmse(
    gains: Array,
    noise_w: float,
    pmax_w: float,
    config: WMMSEConfig = WMMSEConfig(),
    *,
    constraint: Constraint = "per-user",
    bs_budget_w: float | None = None,
) -> tuple[Array, IterInfo]:
    """WMMSE powers for a batch of channel realizations.

    gains: (N, B, K, B) or (B, K, B); noise_w: noise power, W; pmax_w: per-user limit, W.
    constraint "per-user": 0 <= p <= pmax_w; "per-bs": p >= 0 and each BS's K powers sum
    to at most ``bs_budget_w`` (default K * pmax_w), no per-user limit.
    Starts at full power. Returns powers (N, B, K) (or (B, K)) in watts and the run info.
    """
    return allocate(wmmse_update, gains, noise_w, pmax_w, config.tol, config.max_iter,
                    constraint, bs_budget_w)
