"""Centralized deciders: the controller receives every BS's CSI slice, rebuilds the
whole channel and decides all powers. Used by the controller role of both runners.

Each scheme's decider (named in its registry entry) maps the whole channel (E, B, K, B) to
powers (E, B, K) in watts; :class:`CentralDecider` wraps it with the compute-time model.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from channel_server.config import Scenario
from controller.baselines.batch import fp_powers, optimum_powers, wmmse_powers
from node.agent import scheme_of
from node.observation import obs_central
from node.policy_spec import fit_bs_budget, power_fraction
from protocols.seeding import rng_for

if TYPE_CHECKING:
    from node.policy import GaussianPolicy


class Baseline:
    """A classical allocator: no policy, nothing to learn. The deciders run the batch
    allocators of :mod:`controller.baselines.batch` on the scenario's radio and rules."""

    policy: GaussianPolicy | None = None
    last_obs: np.ndarray | None = None
    last_raw: np.ndarray | None = None

    def __init__(self, scenario: Scenario, *_: Any) -> None:
        self.scenario = scenario


class WmmseDecider(Baseline):
    def powers(self, gains: np.ndarray) -> np.ndarray:
        return wmmse_powers(gains, self.scenario.radio, self.scenario.baselines)[0]


class FpDecider(Baseline):
    def powers(self, gains: np.ndarray) -> np.ndarray:
        return fp_powers(gains, self.scenario.radio, self.scenario.baselines)[0]


class OptimumDecider(Baseline):
    def powers(self, gains: np.ndarray) -> np.ndarray:
        return optimum_powers(gains, self.scenario.radio, self.scenario.baselines)[0]


class ExternalDecider(Baseline):
    """Scheme ``external-learner``: the powers come from a learner outside the testbed
    (:mod:`controller.envs.network`), never from here."""

    def powers(self, gains: np.ndarray) -> np.ndarray:
        raise RuntimeError("scheme 'external-learner' is decided by a learner outside the testbed: "
                           "drive it with controller.envs.make_env(..., runner='network')")


class PolicyDecider:
    """The learned central policy: the whole channel in, all B x K fractions out."""

    def __init__(self, scenario: Scenario, seed: int, policy: GaussianPolicy | None,
                 action_mode: str, config: Any) -> None:
        if policy is None:
            from node.policy import seeded_policy  # torch only where a policy runs

            policy = seeded_policy(config, seed)
        self.scenario = scenario
        self.policy = policy
        self.action_mode = action_mode
        self.noise = rng_for(seed, "controller", "policy-noise")
        self.last_obs: np.ndarray | None = None
        self.last_raw: np.ndarray | None = None

    def powers(self, gains: np.ndarray) -> np.ndarray:
        radio = self.scenario.radio
        obs = obs_central(gains, radio)
        noise = (self.noise.standard_normal((gains.shape[0], radio.n_links))
                 if self.action_mode == "sample" else None)
        raw = self.policy.act(obs, self.action_mode, noise)  # type: ignore[arg-type]
        self.last_obs, self.last_raw = obs, raw
        frac = power_fraction(raw, radio.action_map).reshape(gains.shape[0], radio.n_cells,
                                                            radio.users_per_cell)
        if radio.sum_power_constraint:
            frac = fit_bs_budget(frac)
        out: np.ndarray = frac * radio.pmax_w
        return out


class CentralDecider:
    """Decides all B x K powers from the whole channel (E, B, K, B) with the decider of a
    central scheme, and charges its compute time."""

    def __init__(self, scheme: str, scenario: Scenario, seed: int,
                 policy: GaussianPolicy | None = None, action_mode: str = "mean") -> None:
        spec = scheme_of(scheme)
        if spec.central is None:
            raise ValueError(f"{scheme!r} is not a centralized scheme")
        self.scheme = spec
        self.scenario = scenario
        self.decider = spec.make_central(scenario, seed, policy, action_mode,
                                         spec.policy_config(scenario))

    @property
    def policy(self) -> GaussianPolicy | None:
        policy: GaussianPolicy | None = self.decider.policy
        return policy

    @property
    def last_obs(self) -> np.ndarray | None:
        obs: np.ndarray | None = self.decider.last_obs
        return obs

    @property
    def last_raw(self) -> np.ndarray | None:
        raw: np.ndarray | None = self.decider.last_raw
        return raw

    def powers(self, gains: np.ndarray) -> np.ndarray:
        """Powers (E, B, K) in watts."""
        p: np.ndarray = self.decider.powers(gains)
        return p

    def decide(self, gains: np.ndarray) -> tuple[np.ndarray, float]:
        """Powers (E, B, K) and the compute time charged (fixed model or measured)."""
        t0 = time.perf_counter()
        p = self.powers(gains)
        timing = self.scenario.timing
        compute = timing.compute_s if timing.compute_model == "fixed" else time.perf_counter() - t0
        return p, compute
