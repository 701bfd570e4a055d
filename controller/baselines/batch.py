"""The classical schemes' allocators over a batch of channel realizations (paper 001).

Each classical scheme names its allocator in the registry (``Scheme.batch``); evaluation,
the baseline benches and the training references run them on the same drops. An allocator
maps gains (N, B, K, B) to powers (N, B, K) in watts under ``radio`` (its Pmax; one budget
of Pmax per BS when ``radio.sum_power_constraint``), with the stopping rules of
``baselines``, and returns what it knows about the run as the second element (the
iterative solvers' :class:`IterInfo`, the branch and bound's :class:`OptimumResult`,
None). Only ``random_power`` draws from ``rng``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from channel_server.config import BaselinesConfig, RadioConfig
from controller.baselines.fp import FPConfig, fp
from controller.baselines.optimum import OptimumConfig, optimum
from controller.baselines.wmmse import Array, Constraint, WMMSEConfig, wmmse
from node.policy_spec import fit_bs_budget


def _constraint(radio: RadioConfig) -> tuple[Constraint, float | None]:
    """The solvers' constraint and per-BS budget for ``radio``."""
    if radio.sum_power_constraint:
        return "per-bs", radio.pmax_w
    return "per-user", None


def wmmse_powers(gains: Array, radio: RadioConfig, baselines: BaselinesConfig,
                 rng: np.random.Generator | None = None) -> tuple[Array, Any]:
    constraint, budget = _constraint(radio)
    return wmmse(gains, radio.noise_w, radio.pmax_w,
                 WMMSEConfig(baselines.wmmse_tol, baselines.wmmse_max_iter),
                 constraint=constraint, bs_budget_w=budget)


def fp_powers(gains: Array, radio: RadioConfig, baselines: BaselinesConfig,
              rng: np.random.Generator | None = None) -> tuple[Array, Any]:
    constraint, budget = _constraint(radio)
    return fp(gains, radio.noise_w, radio.pmax_w,
              FPConfig(baselines.fp_tol, baselines.fp_max_iter),
              constraint=constraint, bs_budget_w=budget)


def optimum_powers(gains: Array, radio: RadioConfig, baselines: BaselinesConfig,
                   rng: np.random.Generator | None = None) -> tuple[Array, Any]:
    if radio.sum_power_constraint:
        raise ValueError("the reference optimum handles the per-user limit only")
    return optimum(gains, radio.noise_w, radio.pmax_w,
                   OptimumConfig(eps=baselines.optimum_gap))


def max_power(gains: Array, radio: RadioConfig, baselines: BaselinesConfig,
              rng: np.random.Generator | None = None) -> tuple[Array, Any]:
    """Every user at Pmax; with a per-BS budget, Pmax / K each."""
    k = radio.users_per_cell
    pmax = radio.pmax_w
    return np.full(gains.shape[:3], pmax / k if radio.sum_power_constraint else pmax), None


def random_power(gains: Array, radio: RadioConfig, baselines: BaselinesConfig,
                 rng: np.random.Generator | None = None) -> tuple[Array, Any]:
    """A uniform fraction of Pmax per user from ``rng``; with a per-BS budget, a BS whose
    fractions sum above 1 scales them down (``fit_bs_budget``)."""
    if rng is None:
        raise ValueError("random allocation needs a generator")
    frac = rng.uniform(0.0, 1.0, size=gains.shape[:3])
    out: Array = (fit_bs_budget(frac) if radio.sum_power_constraint else frac) * radio.pmax_w
    return out, None
