"""One base station's decision logic, pure: the node process and the local runner
both drive it, so the two runners decide identically by construction.

A decision is a power fraction per user in [0, 1] plus its emulated latency. A
decision whose chain latency passes the slot deadline is a miss: the BS falls
back to the powers it transmitted in the previous slot.

Every array carries a leading episode dimension E (E = 1 in the network runner).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from channel_server.config import Scenario
from node.observation import (
    central_dims,
    full_dims,
    obs_full,
    obs_round_robin,
    round_robin_dims,
)
from node.policy_spec import ActionMode, PolicyConfig, clip_fraction, fit_bs_budget

if TYPE_CHECKING:
    from node.policy import GaussianPolicy
from protocols.seeding import rng_for

# How each scheme decides: alone on its own slice, along the round-robin chain,
# or at the controller (centralized deciders).
EXCHANGE = {
    "max-power": "none",
    "random": "none",
    "full": "none",
    "round-robin": "chain",
    "centralized": "central",
    "wmmse": "central",
    "fp": "central",
    "optimum": "central",
}
SCHEMES = tuple(EXCHANGE)


def policy_config(scheme: str, scenario: Scenario) -> PolicyConfig | None:
    """The policy ``scheme`` runs (at each BS, or at the controller for 'centralized');
    None for schemes without one."""
    if scheme == "full":
        return PolicyConfig(*full_dims(scenario.radio))
    if scheme == "round-robin":
        return PolicyConfig(*round_robin_dims(scenario.radio))
    if scheme == "centralized":
        return PolicyConfig(*central_dims(scenario.radio))
    return None


def policy_with_weights(scheme: str, scenario: Scenario,
                        arrays: dict[str, np.ndarray]) -> GaussianPolicy:
    """The policy of ``scheme`` holding the given weights (from --weights or a snapshot)."""
    cfg = policy_config(scheme, scenario)
    if cfg is None:
        raise ValueError(f"scheme {scheme!r} runs no policy; weights do not apply")
    from node.policy import GaussianPolicy, load_arrays  # torch only where a policy runs

    policy = GaussianPolicy(cfg)
    load_arrays(policy, arrays)
    return policy


def node_policy(scheme: str, scenario: Scenario, seed: int) -> GaussianPolicy | None:
    """The seeded untrained policy every BS starts from (weights may replace it)."""
    cfg = policy_config(scheme, scenario)
    if cfg is None:
        return None
    from node.policy import seeded_policy  # torch only where a policy runs

    return seeded_policy(cfg, seed)


@dataclass(frozen=True)
class Decision:
    """What a BS transmits in one slot."""

    powers_w: np.ndarray
    """(E, K) transmit powers actually used (fallback applied), watts."""
    latency_s: np.ndarray
    """(E,) emulated chain latency at which the decision was ready, seconds."""
    missed: np.ndarray
    """(E,) True where the deadline was missed and the previous powers were reused."""
    compute_s: float
    """Compute time charged to this decision, seconds."""


class BsAgent:
    """Decision logic of BS ``bs`` for one run."""

    def __init__(
        self,
        bs: int,
        scenario: Scenario,
        scheme: str,
        seed: int,
        episodes: int = 1,
        policy: GaussianPolicy | None = None,
        action_mode: ActionMode = "mean",
    ) -> None:
        if scheme not in EXCHANGE:
            raise ValueError(f"unknown scheme {scheme!r}; known: {', '.join(SCHEMES)}")
        self.bs = bs
        self.scenario = scenario
        self.scheme = scheme
        if policy is None and EXCHANGE[scheme] != "central":
            policy = node_policy(scheme, scenario, seed)
        self.policy = policy
        self.action_mode = action_mode
        self._random = rng_for(seed, "node", bs, "random-power")
        self._noise = rng_for(seed, "node", bs, "policy-noise")
        radio = scenario.radio
        k = radio.users_per_cell
        # the fallback before any decision: full power, within the BS budget if there is one
        self.previous_w = np.full((episodes, k), radio.pmax_w / (k if radio.sum_power_constraint
                                                                 else 1))
        self.last_obs: np.ndarray | None = None
        """The observation of the last policy decision (what a learner needs)."""
        self.last_raw: np.ndarray | None = None
        """The raw Gaussian action of the last policy decision."""

    # ------------------------------------------------------------------ deciding

    def fractions(
        self, csi: np.ndarray, prior_w: np.ndarray | None = None, chosen: np.ndarray | None = None
    ) -> np.ndarray:
        """Power fractions (E, K) from the own CSI slice (E, K, B).

        Round-robin also takes the powers already chosen ``prior_w`` (E, B, K) watts
        and the mask ``chosen`` (E, B) of BSs that decided before this one.
        """
        radio = self.scenario.radio
        e, k = csi.shape[0], radio.users_per_cell
        if self.scheme == "max-power":
            return np.ones((e, k))
        if self.scheme == "random":
            return self._random.uniform(0.0, 1.0, size=(e, k))
        if self.policy is None:
            raise RuntimeError(f"scheme {self.scheme!r} is decided by the controller, not a BS")
        if self.scheme == "full":
            obs = obs_full(csi, self.bs, radio)
        else:
            if prior_w is None or chosen is None:
                raise ValueError("round-robin needs the powers chosen so far")
            obs = obs_round_robin(csi, self.bs, prior_w / radio.pmax_w, chosen, radio)
        noise = self._noise.standard_normal((e, k)) if self.action_mode == "sample" else None
        self.last_obs = obs
        self.last_raw = self.policy.act(obs, self.action_mode, noise)
        return clip_fraction(self.last_raw)

    def decide(
        self,
        csi: np.ndarray,
        chain_in_s: np.ndarray,
        prior_w: np.ndarray | None = None,
        chosen: np.ndarray | None = None,
    ) -> Decision:
        """Decide, charge compute time, apply the deadline and the fallback."""
        t0 = time.perf_counter()
        frac = self.fractions(csi, prior_w, chosen)
        if self.scenario.radio.sum_power_constraint:
            frac = fit_bs_budget(frac)
        timing = self.scenario.timing
        compute_s = (
            timing.compute_s if timing.compute_model == "fixed" else time.perf_counter() - t0
        )
        return self.commit(frac * self.scenario.radio.pmax_w, chain_in_s + compute_s, compute_s)

    def commit(self, powers_w: np.ndarray, latency_s: np.ndarray, compute_s: float) -> Decision:
        """Apply the deadline to powers decided here or received from the controller."""
        missed = latency_s > self.scenario.timing.deadline_s
        used = np.where(missed[:, None], self.previous_w, powers_w)
        self.previous_w = used
        return Decision(used, latency_s, missed, compute_s)


def chain_priors(
    decided: dict[int, np.ndarray], episodes: int, b: int, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The (prior_w, chosen) view of a round-robin BS given the powers decided so far."""
    prior = np.zeros((episodes, b, k))
    chosen = np.zeros((episodes, b))
    for bs, p in decided.items():
        prior[:, bs] = p
        chosen[:, bs] = 1.0
    return prior, chosen
