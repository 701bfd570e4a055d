"""Certified global optimum of the sum-rate for small networks (B*K <= 6), by branch and bound.

Problem: ``max_p sum_i log2(1 + g_ii p_i / (sum_{j != i} g_ij p_j + noise))`` over the box
``0 <= p <= Pmax`` (per-user limit), links ``i = (c, k)`` flattened ``c*K + k`` and
``g_ij = gains[b_j, k_i, c_i]`` (all links in one band, :mod:`channel_server.rates`).
Powers are normalised ``x = p / Pmax`` and gains to ``G = g Pmax / noise``, so the noise is 1.

Bounds on a box ``[lo, hi]`` (the smaller of two valid upper bounds is kept):

* monotone bound: every rate grows with its own power and falls with the others', so
  ``sum_i log(1 + G_ii hi_i / (1 + sum_{j != i} G_ij lo_j))`` bounds the box;
* DC bound: the rate of link ``i`` is ``log(1 + G_i.x) - log(1 + Goff_i.x)``, a difference
  of concave functions of ``x``. The first is below its tangent at the box centre, the second
  above its chord over ``[Goff_i.lo, Goff_i.hi]``; tangent minus chord is linear in ``x``
  and its maximum over the box is at a vertex, in closed form. The error of this bound is
  second order in the box width, so boxes around interior optima close fast.

The incumbent (lower bound) starts as the best of all 2^L on/off vectors and of WMMSE
started from each of them (WMMSE keeps a link that is off at zero, so each run is a local
solution on that support); every box then contributes its centre and the vertex that
maximises its DC bound. Best-first: each round splits the ``batch`` boxes with the largest
upper bounds along their longest side; a box is pruned once its upper bound is within
``eps`` (relative) of the incumbent. On return ``value >= upper_bound / (1 + gap)`` with
``gap <= eps`` unless the node cap was hit (then a warning is issued and ``gap`` is what
was certified).
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from controller.baselines.wmmse import Array, WMMSEConfig, as_batch, iterate_monotone, wmmse_update

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

MAX_LINKS = 6
_LN2 = float(np.log(2.0))


@dataclass(frozen=True)
class OptimumConfig:
    """Branch-and-bound settings."""

    eps: float = 1e-3
    """Relative optimality gap to certify: stop when (upper bound - value) <= eps * value."""
    max_nodes: int = 2_000_000
    """Cap on the boxes created per instance; when hit, warn and report the certified gap."""
    batch: int = 512
    """Boxes split per round (best-first in batches; larger is faster per box in numpy)."""
    seed_wmmse: WMMSEConfig = WMMSEConfig(tol=1e-7, max_iter=300)
    """WMMSE settings of the local runs that seed the incumbent."""


@dataclass(frozen=True)
class OptimumResult:
    """Certified optimum per instance (shapes drop N for a single (B, K, B) input)."""

    powers: Array
    """Best powers found, watts, shape (N, B, K)."""
    value: Array
    """Their sum-rate, bit/s/Hz, shape (N,)."""
    upper_bound: Array
    """Certified upper bound on the optimal sum-rate, bit/s/Hz, shape (N,)."""
    gap: Array
    """Certified relative gap (upper_bound - value) / value, shape (N,)."""
    nodes: IntArray
    """Boxes created by the branch and bound, shape (N,)."""
    certified: BoolArray
    """True where gap <= eps (the node cap was not hit), shape (N,)."""


def link_matrix(gains: Array) -> Array:
    """``G[n, i, j]`` = gain from link j's transmitter to link i's receiver, shape (N, L, L)."""
    n, b, k, _ = gains.shape
    g_ckb = np.transpose(gains, (0, 3, 2, 1))  # [n, c, k, b] = gains[n, b, k, c]
    full = np.broadcast_to(g_ckb[..., None], (n, b, k, b, k))  # [n, c, k, b, k']
    out: Array = full.reshape(n, b * k, b * k).copy()
    return out


def sum_rate_nats(g: Array, x: Array) -> Array:
    """Sum of ln(1 + SINR) for normalised gains g (L, L) (noise 1) and points x (M, L)."""
    diag = np.diagonal(g)
    total = x @ g.T + 1.0
    signal = x * diag
    out: Array = np.log(total / np.maximum(total - signal, 1e-300)).sum(axis=1)
    return out


def _bounds(
    g: Array, goff: Array, lo: Array, hi: Array
) -> tuple[Array, Array]:
    """Upper bound (nats) of every box (M, L) and the box vertex maximising its DC bound."""
    diag = np.diagonal(g)
    t_lo = lo @ goff.T  # interference at the lower corner
    mono = np.log1p(diag * hi / (1.0 + t_lo)).sum(axis=1)

    mid = 0.5 * (lo + hi)
    s_mid = 1.0 + mid @ g.T  # 1 + G_i . x at the centre
    t_hi = hi @ goff.T
    dt = t_hi - t_lo
    z = dt / (1.0 + t_lo)
    ratio = np.where(z > 1e-12, np.log1p(z) / np.where(z > 1e-12, z, 1.0), 1.0 - 0.5 * z)
    slope = ratio / (1.0 + t_lo)  # chord slope of log(1 + t) on [t_lo, t_hi]
    # tangent_i(x) - chord_i(x) = const_i + (G_i / s_mid_i - slope_i Goff_i) . x
    coef = (1.0 / s_mid) @ g - slope @ goff
    const = (np.log(s_mid) - (mid @ g.T) / s_mid - np.log1p(t_lo) + slope * t_lo).sum(axis=1)
    vertex = np.where(coef > 0.0, hi, lo)
    dc = const + (coef * vertex).sum(axis=1)
    return np.minimum(mono, dc), vertex


def _bnb_one(
    g: Array, x0: Array, v0: float, config: OptimumConfig
) -> tuple[Array, float, float, int]:
    """Branch and bound on one normalised instance; returns x, value, upper bound (nats), nodes."""
    n_links = g.shape[0]
    goff = g - np.diag(np.diagonal(g))
    best_x, best_v = x0.copy(), v0
    lo = np.zeros((1, n_links))
    hi = np.ones((1, n_links))
    ub, _ = _bounds(g, goff, lo, hi)
    nodes = 1
    eps = config.eps
    pruned_ub = -np.inf  # largest upper bound of a discarded box
    while True:
        keep = ub > best_v * (1.0 + eps)
        if not keep.all():
            pruned_ub = max(pruned_ub, float(ub[~keep].max()))
        lo, hi, ub = lo[keep], hi[keep], ub[keep]
        if len(ub) == 0:
            return best_x, best_v, max(best_v, pruned_ub), nodes
        if nodes >= config.max_nodes:
            return best_x, best_v, max(best_v, pruned_ub, float(ub.max())), nodes
        if len(ub) > config.batch:
            top = np.argpartition(-ub, config.batch)[: config.batch]
            rest = np.ones(len(ub), dtype=bool)
            rest[top] = False
            lo_s, hi_s, ub_s = lo[top], hi[top], ub[top]
            lo, hi, ub = lo[rest], hi[rest], ub[rest]
        else:
            lo_s, hi_s, ub_s = lo, hi, ub
            lo, hi, ub = lo[:0], hi[:0], ub[:0]
        m = len(ub_s)
        axis = np.argmax(hi_s - lo_s, axis=1)
        rows = np.arange(m)
        cut = 0.5 * (lo_s[rows, axis] + hi_s[rows, axis])
        lo_a, hi_a = lo_s.copy(), hi_s.copy()
        hi_a[rows, axis] = cut
        lo_b, hi_b = lo_s.copy(), hi_s.copy()
        lo_b[rows, axis] = cut
        c_lo = np.concatenate([lo_a, lo_b])
        c_hi = np.concatenate([hi_a, hi_b])
        c_ub, vertex = _bounds(g, goff, c_lo, c_hi)
        c_ub = np.minimum(c_ub, np.concatenate([ub_s, ub_s]))
        nodes += 2 * m
        cand = np.concatenate([vertex, 0.5 * (c_lo + c_hi)])
        vals = sum_rate_nats(g, cand)
        j = int(np.argmax(vals))
        if vals[j] > best_v:
            best_v, best_x = float(vals[j]), cand[j].copy()
        lo = np.concatenate([lo, c_lo])
        hi = np.concatenate([hi, c_hi])
        ub = np.concatenate([ub, c_ub])


def _seed(g: Array, gains: Array, noise_w: float, pmax_w: float, config: OptimumConfig
          ) -> tuple[Array, Array]:
    """Best of the 2^L on/off vectors and of WMMSE from each of them: x (N, L), nats (N,)."""
    n, n_links = g.shape[:2]
    onoff = np.array(list(itertools.product([0.0, 1.0], repeat=n_links)))[1:]  # (V, L)
    v = len(onoff)
    best_x = np.zeros((n, n_links))
    best_v = np.zeros(n)
    for i in range(n):
        vals = sum_rate_nats(g[i], onoff)
        j = int(np.argmax(vals))
        best_x[i], best_v[i] = onoff[j], vals[j]
    # WMMSE from every on/off start, all instances at once (starts as extra batch entries).
    b, k = gains.shape[1], gains.shape[2]
    rep = np.repeat(gains, v, axis=0)  # (N*V, B, K, B)
    starts = np.tile(onoff, (n, 1))  # (N*V, L)
    p = _wmmse_from(rep, starts.reshape(-1, b, k) * pmax_w, noise_w, pmax_w, config)
    x = p.reshape(n, v, n_links) / pmax_w
    for i in range(n):
        vals = sum_rate_nats(g[i], x[i])
        j = int(np.argmax(vals))
        if vals[j] > best_v[i]:
            best_x[i], best_v[i] = x[i, j], vals[j]
    return best_x, best_v


def _wmmse_from(gains: Array, p0: Array, noise_w: float, pmax_w: float,
                config: OptimumConfig) -> Array:
    """WMMSE from given starting powers (the public wmmse starts at full power)."""

    def step(gb: Array, db: Array, pb: Array, tb: Array) -> Array:
        return wmmse_update(gb, db, pb, tb, pmax_w)

    cfg = config.seed_wmmse
    p, _ = iterate_monotone(step, gains, p0, noise_w, cfg.tol, cfg.max_iter)
    return p


def global_optimum(
    gains: Array, noise_w: float, pmax_w: float, config: OptimumConfig = OptimumConfig()
) -> OptimumResult:
    """Certified global maximum of the sum-rate under 0 <= p <= pmax_w, for B*K <= 6.

    gains: (N, B, K, B) or (B, K, B); noise_w, pmax_w in watts. Loops over instances.
    """
    gb, single = as_batch(gains)
    n, b, k, _ = gb.shape
    if b * k > MAX_LINKS:
        raise ValueError(f"global_optimum is for B*K <= {MAX_LINKS} links, got {b * k}")
    if config.eps <= 0:
        raise ValueError("eps must be > 0")
    g = link_matrix(gb) * (pmax_w / noise_w)
    x0, v0 = _seed(g, gb, noise_w, pmax_w, config)
    xs = np.zeros((n, b * k))
    value = np.zeros(n)
    upper = np.zeros(n)
    nodes = np.zeros(n, dtype=np.int64)
    for i in range(n):
        xs[i], value[i], upper[i], nodes[i] = _bnb_one(g[i], x0[i], float(v0[i]), config)
    gap = (upper - value) / np.maximum(value, 1e-300)
    certified = gap <= config.eps * (1.0 + 1e-12)
    if not certified.all():
        warnings.warn(
            f"branch and bound hit the node cap ({config.max_nodes}) on "
            f"{int((~certified).sum())} instance(s); worst certified gap {gap.max():.3g}",
            RuntimeWarning,
            stacklevel=2,
        )
    res = OptimumResult(
        powers=(xs * pmax_w).reshape(n, b, k),
        value=value / _LN2,
        upper_bound=upper / _LN2,
        gap=gap,
        nodes=nodes,
        certified=certified,
    )
    if single:
        return OptimumResult(
            powers=res.powers[0], value=res.value[0], upper_bound=res.upper_bound[0],
            gap=res.gap[0], nodes=res.nodes[0], certified=res.certified[0],
        )
    return res



def optimum(
    gains: Array, noise_w: float, pmax_w: float, config: OptimumConfig = OptimumConfig()
) -> tuple[Array, OptimumResult]:
    """Powers of :func:`global_optimum` first (the deciders' calling convention), then all."""
    res = global_optimum(gains, noise_w, pmax_w, config)
    return res.powers, res
