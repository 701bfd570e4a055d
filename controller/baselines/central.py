"""Centralized deciders: the controller receives every BS's CSI slice, rebuilds the
whole channel and decides all powers. Used by the controller process and by the
local runner alike.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from channel_server.config import Scenario
from controller.baselines.fp import FPConfig, fp
from controller.baselines.optimum import OptimumConfig, optimum
from controller.baselines.wmmse import WMMSEConfig, wmmse
from node.agent import policy_config
from node.observation import obs_central
from node.policy_spec import clip_fraction, fit_bs_budget
from protocols.seeding import rng_for

if TYPE_CHECKING:
    from node.policy import GaussianPolicy

CENTRAL_SCHEMES = ("centralized", "wmmse", "fp", "optimum")


class CentralDecider:
    """Decides all B x K powers from the whole channel (E, B, K, B)."""

    def __init__(self, scheme: str, scenario: Scenario, seed: int,
                 policy: GaussianPolicy | None = None, action_mode: str = "mean") -> None:
        if scheme not in CENTRAL_SCHEMES:
            raise ValueError(f"{scheme!r} is not a centralized scheme ({CENTRAL_SCHEMES})")
        self.scheme = scheme
        self.scenario = scenario
        if scheme == "centralized" and policy is None:
            from node.policy import seeded_policy  # torch only where a policy runs

            policy = seeded_policy(policy_config("centralized", scenario), seed)
        self.policy = policy
        self.action_mode = action_mode
        self._noise = rng_for(seed, "controller", "policy-noise")
        self.last_obs: np.ndarray | None = None
        self.last_raw: np.ndarray | None = None

    def powers(self, gains: np.ndarray) -> np.ndarray:
        """Powers (E, B, K) in watts."""
        radio, cfg = self.scenario.radio, self.scenario.baselines
        constraint = "per-bs" if radio.sum_power_constraint else "per-user"
        budget = radio.pmax_w if radio.sum_power_constraint else None
        if self.scheme == "wmmse":
            p, _ = wmmse(gains, radio.noise_w, radio.pmax_w,
                         WMMSEConfig(cfg.wmmse_tol, cfg.wmmse_max_iter),
                         constraint=constraint, bs_budget_w=budget)
            return p
        if self.scheme == "fp":
            p, _ = fp(gains, radio.noise_w, radio.pmax_w, FPConfig(cfg.fp_tol, cfg.fp_max_iter),
                      constraint=constraint, bs_budget_w=budget)
            return p
        if self.scheme == "optimum":
            if radio.sum_power_constraint:
                raise ValueError("the reference optimum handles the per-user limit only")
            return optimum(gains, radio.noise_w, radio.pmax_w,
                           OptimumConfig(eps=cfg.optimum_gap))[0]
        assert self.policy is not None
        obs = obs_central(gains, radio)
        noise = (self._noise.standard_normal((gains.shape[0], radio.n_links))
                 if self.action_mode == "sample" else None)
        raw = self.policy.act(obs, self.action_mode, noise)  # type: ignore[arg-type]
        self.last_obs, self.last_raw = obs, raw
        frac = clip_fraction(raw).reshape(gains.shape[0], radio.n_cells, radio.users_per_cell)
        if radio.sum_power_constraint:
            frac = fit_bs_budget(frac)
        return frac * radio.pmax_w

    def decide(self, gains: np.ndarray) -> tuple[np.ndarray, float]:
        """Powers (E, B, K) and the compute time charged (fixed model or measured)."""
        t0 = time.perf_counter()
        p = self.powers(gains)
        timing = self.scenario.timing
        compute = timing.compute_s if timing.compute_model == "fixed" else time.perf_counter() - t0
        return p, compute
