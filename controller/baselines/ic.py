"""Allocators of the K-user interference channel (paper 003), over a batch of samples.

Each maps gains ``(N, K, K)`` (``G[n, j, i]``: transmitter j to receiver i) to powers
``(N, K)`` in watts under the scenario's Pmax and noise. WMMSE, FP and the certified optimum
are the cellular solvers of this package on the channel in their layout (one user per
"cell", :func:`channel_server.interference.as_cellular`). The certified optimum (branch and
bound) is feasible up to :data:`controller.baselines.optimum.MAX_LINKS` links; above it the
reference is :func:`best_wmmse`, the best of WMMSE from full power and from ``starts``
random points, named as such wherever it is used. Only the random allocators draw from
``rng``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from channel_server.interference import IcScenario, as_cellular, sum_rates
from controller.baselines.fp import fp
from controller.baselines.optimum import MAX_LINKS, OptimumConfig, global_optimum
from controller.baselines.wmmse import Array, WMMSEConfig, iterate_monotone, wmmse, wmmse_update
from node.mpgnn import mlp_forward, mlp_layers

Rng = np.random.Generator | None


def ic_wmmse(gains: Array, s: IcScenario, rng: Rng = None) -> Array:
    p, _ = wmmse(as_cellular(gains), s.radio.noise_w, s.radio.pmax_w)
    out: Array = p[..., 0]
    return out


def ic_fp(gains: Array, s: IcScenario, rng: Rng = None) -> Array:
    p, _ = fp(as_cellular(gains), s.radio.noise_w, s.radio.pmax_w)
    out: Array = p[..., 0]
    return out


def ic_optimum(gains: Array, s: IcScenario, rng: Rng = None) -> Array:
    """The certified global optimum (relative gap 1e-3), K <= MAX_LINKS."""
    if s.k > MAX_LINKS:
        raise ValueError(f"the certified optimum is for K <= {MAX_LINKS} links, not {s.k}; "
                         "use the best of WMMSE from many starts (best-wmmse)")
    out: Array = global_optimum(as_cellular(gains), s.radio.noise_w, s.radio.pmax_w,
                                OptimumConfig()).powers[..., 0]
    return out


def ic_max_power(gains: Array, s: IcScenario, rng: Rng = None) -> Array:
    return np.full(np.shape(gains)[:-1], s.radio.pmax_w)


def ic_random(gains: Array, s: IcScenario, rng: Rng = None) -> Array:
    if rng is None:
        raise ValueError("random powers need a generator")
    return rng.uniform(0.0, s.radio.pmax_w, np.shape(gains)[:-1])


def best_wmmse(gains: Array, s: IcScenario, rng: np.random.Generator,
               starts: int = 20) -> Array:
    """The best (highest sum rate) of WMMSE from full power and from ``starts`` uniform
    random initial powers, per sample: the reference where no optimum is certified."""
    g = as_cellular(np.asarray(gains, dtype=np.float64))
    single = g.ndim == 3
    if single:
        g = g[None]
    noise, pmax = s.radio.noise_w, s.radio.pmax_w
    cfg = WMMSEConfig()

    def step(gb: Array, db: Array, pb: Array, tb: Array) -> Array:
        return wmmse_update(gb, db, pb, tb, pmax)

    best, _ = wmmse(g, noise, pmax, cfg)
    best_rate = sum_rates(g[:, :, 0, :], best[..., 0], noise).sum(-1)
    for _ in range(starts):
        p0 = rng.uniform(0.0, pmax, best.shape)
        p, _ = iterate_monotone(step, g, p0, noise, cfg.tol, cfg.max_iter)
        rate = sum_rates(g[:, :, 0, :], p[..., 0], noise).sum(-1)
        better = rate > best_rate
        best[better], best_rate[better] = p[better], rate[better]
    out: Array = best[..., 0]
    return out[0] if single else out


class IcCentral:
    """A central scheme at the controller: every link's power from all links' uploads,
    with the scheme's batch allocator or, for the MLP, its trained layers."""

    def __init__(self, scheme: Any, s: IcScenario, seed: int,
                 weights: dict[str, np.ndarray] | None) -> None:
        self.scenario = s
        self.scheme = scheme
        self.layers = None
        if scheme.weights is not None:
            if weights is None:
                raise ValueError(f"scheme {scheme.name!r} needs --weights")
            self.layers = mlp_layers(weights)

    def decide(self, gains: Array) -> tuple[Array, float]:
        """Powers ``(K,)`` for gains ``(K, K)``, and the wall time it took, seconds."""
        t0 = time.perf_counter()
        r = self.scenario.radio
        if self.layers is not None:
            p = mlp_forward(self.layers, gains, r.pmax_w, r.noise_w) * r.pmax_w
        else:
            p = self.scheme.allocate(gains[None], self.scenario, None)[0]
        out: Array = np.clip(p, 0.0, r.pmax_w)
        return out, time.perf_counter() - t0
