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
from node.policy_spec import ActionMode, PolicyConfig, fit_bs_budget
from node.schemes import SCHEMES, Scheme
from protocols.core import VariableSource

if TYPE_CHECKING:
    from node.policy import GaussianPolicy

KIND = "cellular"


def scheme_of(name: str) -> Scheme:
    """The cellular scheme called ``name`` (ValueError naming the known ones)."""
    try:
        return SCHEMES.get(KIND, name)
    except KeyError as e:
        raise ValueError(e.args[0]) from None


def policy_config(scheme: str, scenario: Scenario) -> PolicyConfig | None:
    """The policy ``scheme`` runs (at each BS, or at the controller for a central policy);
    None for schemes without one."""
    cfg: PolicyConfig | None = scheme_of(scheme).policy_config(scenario)
    return cfg


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


@dataclass(frozen=True)
class BsObservation:
    """What a BS decides on: its own CSI slice and what the round-robin chain brought."""

    csi: np.ndarray
    """(E, K, B) own downlink gains."""
    chain_in_s: np.ndarray
    """(E,) chain latency on arrival, seconds."""
    prior_w: np.ndarray | None = None
    """(E, B, K) powers chosen earlier in the slot (round-robin), watts."""
    chosen: np.ndarray | None = None
    """(E, B) which BSs chose earlier."""


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
        source: VariableSource | None = None,
    ) -> None:
        self.bs = bs
        self.source = source
        """Where :meth:`update` takes newer weights from (the controller's, received)."""
        self.version = 0
        """Version of the weights this BS acts with (0: its initial ones)."""
        self.scenario = scenario
        self.scheme = scheme_of(scheme)
        self.actor = (self.scheme.make_actor(bs, scenario, seed, policy, action_mode)
                      if self.scheme.actor is not None else None)
        radio = scenario.radio
        k = radio.users_per_cell
        # the fallback before any decision: full power, within the BS budget if there is one
        self.previous_w = np.full((episodes, k), radio.pmax_w / (k if radio.sum_power_constraint
                                                                 else 1))

    @property
    def last_obs(self) -> np.ndarray | None:
        """The observation of the last policy decision (what a learner needs)."""
        return None if self.actor is None else self.actor.last_obs

    @property
    def last_raw(self) -> np.ndarray | None:
        """The raw Gaussian action of the last policy decision."""
        return None if self.actor is None else self.actor.last_raw

    # ------------------------------------------------------------------ the Actor

    def select_action(self, observation: BsObservation) -> Decision:
        """The decision for the own CSI slice (and what the chain brought)."""
        o = observation
        return self.decide(o.csi, o.chain_in_s, o.prior_w, o.chosen)

    def observe(self, transition: object) -> None:
        """Nothing to keep: the node uploads ``last_obs``/``last_raw`` as experience."""

    def update(self) -> None:
        """Take newer weights from the variable source into the policy."""
        src = self.source
        if src is None or src.version <= self.version:
            return
        if not hasattr(self.actor, "load"):
            raise RuntimeError(f"BS {self.bs}: scheme {self.scheme.name!r} runs no policy; "
                               "weights do not apply")
        self.actor.load(src.get_variables())  # type: ignore[union-attr]
        self.version = src.version

    # ------------------------------------------------------------------ deciding

    def fractions(
        self, csi: np.ndarray, prior_w: np.ndarray | None = None, chosen: np.ndarray | None = None
    ) -> np.ndarray:
        """Power fractions (E, K) from the own CSI slice (E, K, B).

        Round-robin also takes the powers already chosen ``prior_w`` (E, B, K) watts
        and the mask ``chosen`` (E, B) of BSs that decided before this one.
        """
        if self.actor is None:
            raise RuntimeError(f"scheme {self.scheme.name!r} is decided by the controller, "
                               "not a BS")
        out: np.ndarray = self.actor.fractions(csi, prior_w, chosen)
        return out

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
