"""Paper 001's schemes for the multi-cell downlink, declared once.

Node-side actors turn a BS's own CSI slice (E, K, B) into power fractions (E, K) in [0, 1]:
``max-power`` and ``random`` without any exchange, ``full`` (the policy on the own slice)
and ``round-robin`` (the policy on the own slice plus the powers chosen earlier in the
slot's chain). The central schemes (``centralized`` policy, WMMSE, FP, the reference
optimum) decide at the controller; their deciders live in controller.baselines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from node.mlp import forward, layers_of
from node.observation import central_dims, full_dims, obs_full, obs_round_robin, round_robin_dims
from node.policy_spec import (
    ActionMode,
    PolicyConfig,
    check_fits,
    check_policy_view,
    initial_arrays,
    power_fraction,
)
from node.schemes.registry import SCHEMES, Scheme, register
from protocols.seeding import rng_for

if TYPE_CHECKING:
    from channel_server.config import RadioConfig, Scenario
    from node.policy import GaussianPolicy

KIND = "cellular"


class MaxPower:
    """Every user at Pmax."""

    last_obs: np.ndarray | None = None
    last_raw: np.ndarray | None = None

    def __init__(self, bs: int, scenario: Scenario, seed: int, *_: Any) -> None:
        self.k = scenario.radio.users_per_cell

    def fractions(self, csi: np.ndarray, prior_w: np.ndarray | None = None,
                  chosen: np.ndarray | None = None) -> np.ndarray:
        return np.ones((csi.shape[0], self.k))


class RandomPower(MaxPower):
    """A uniform fraction per user, from the BS's own seeded stream."""

    def __init__(self, bs: int, scenario: Scenario, seed: int, *_: Any) -> None:
        super().__init__(bs, scenario, seed)
        self.rng = rng_for(seed, "node", bs, "random-power")

    def fractions(self, csi: np.ndarray, prior_w: np.ndarray | None = None,
                  chosen: np.ndarray | None = None) -> np.ndarray:
        return self.rng.uniform(0.0, 1.0, size=(csi.shape[0], self.k))


class PolicyActor:
    """A Gaussian policy at the BS: observation -> raw action -> power fraction. It acts
    in numpy (:mod:`node.mlp`) on the policy's named arrays: its seed's untrained ones
    (:func:`node.policy_spec.initial_arrays`, no torch in a node process), those of
    ``policy`` when given, then each broadcast's."""

    def __init__(self, bs: int, scenario: Scenario, seed: int,
                 policy: GaussianPolicy | None, action_mode: ActionMode) -> None:
        self.bs = bs
        self.radio = scenario.radio
        if policy is None:
            arrays = initial_arrays(self.config(scenario), seed)
        else:
            from node.policy import state_arrays

            arrays = state_arrays(policy)
        self.shapes = {k: np.shape(v) for k, v in arrays.items()}
        """The names and shapes every later set of weights must have."""
        self.load(arrays)
        self.action_mode = action_mode
        self.noise = rng_for(seed, "node", bs, "policy-noise")
        self.last_obs: np.ndarray | None = None
        """The observation of the last decision (what a learner needs)."""
        self.last_raw: np.ndarray | None = None
        """The raw Gaussian action of the last decision."""

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        """New weights (a broadcast, a weights file): the numpy layers it acts with.
        ValueError naming what does not fit the policy."""
        check_fits(arrays, self.shapes)
        self.layers = layers_of(arrays, "mean_net.")
        self.std = np.exp(np.asarray(arrays["log_std"], dtype=np.float64))

    @staticmethod
    def config(scenario: Scenario) -> PolicyConfig:
        raise NotImplementedError

    def observe(self, csi: np.ndarray, prior_w: np.ndarray | None,
                chosen: np.ndarray | None) -> np.ndarray:
        raise NotImplementedError

    def fractions(self, csi: np.ndarray, prior_w: np.ndarray | None = None,
                  chosen: np.ndarray | None = None) -> np.ndarray:
        obs = self.observe(csi, prior_w, chosen)
        e, k = csi.shape[0], self.radio.users_per_cell
        noise = self.noise.standard_normal((e, k)) if self.action_mode == "sample" else None
        self.last_obs = obs
        mean = forward(self.layers, obs, "elu")
        self.last_raw = mean if noise is None else mean + self.std * noise
        return power_fraction(self.last_raw, self.radio.action_map)


class FullPolicy(PolicyActor):
    """Fully decentralized: the policy sees only the BS's own slice."""

    @staticmethod
    def config(scenario: Scenario) -> PolicyConfig:
        return PolicyConfig(*full_dims(scenario.radio))

    def observe(self, csi: np.ndarray, prior_w: np.ndarray | None,
                chosen: np.ndarray | None) -> np.ndarray:
        return obs_full(csi, self.bs, self.radio)


class RoundRobinPolicy(PolicyActor):
    """Partially decentralized: own slice plus the powers chosen earlier in the chain."""

    @staticmethod
    def config(scenario: Scenario) -> PolicyConfig:
        return PolicyConfig(*round_robin_dims(scenario.radio))

    def observe(self, csi: np.ndarray, prior_w: np.ndarray | None,
                chosen: np.ndarray | None) -> np.ndarray:
        if prior_w is None or chosen is None:
            raise ValueError("round-robin needs the powers chosen so far")
        return obs_round_robin(csi, self.bs, prior_w / self.radio.pmax_w, chosen, self.radio)


def central_config(scenario: Scenario) -> PolicyConfig:
    return PolicyConfig(*central_dims(scenario.radio))


def policy_fits(config: Any) -> Any:
    """The weights check of a scheme whose policy has ``config(scenario)``: the first
    layer's input width must be the observation length, and the file's header must not
    say the policy saw its gains or mapped its actions otherwise than the scenario does
    (:func:`node.policy_spec.check_policy_view`)."""
    def check(scenario: Scenario, arrays: dict[str, np.ndarray], facts: dict[str, Any]) -> None:
        cfg = config(scenario)
        first = next((v for _, v in sorted(arrays.items()) if v.ndim == 2), None)
        if first is not None and first.shape[1] != cfg.obs_dim:
            raise ValueError(f"policy input of {first.shape[1]} in the file, {cfg.obs_dim} "
                             f"on scenario {scenario.name}")
        check_policy_view(facts, scenario.radio)
    return check


POLICY_LEARNERS = ("trpo", "a2c")
DECIDERS = "controller.baselines.central"
BATCH = "controller.baselines.batch"

# Options read by the cellular modules (tables, evaluation, demo, benches):
#   tables          False: not one of paper 001's sum-rate schemes (its tables, the demo);
#   max_links       the scheme decides only networks of at most this many links (B*K);
#   per_user_only   it handles the per-user limit only (no per-BS sum-power budget);
#   optimal         its powers are the certified global optimum: the reference of every
#                   optimality gap;
#   reference       a reference line on training curves (and the demo's gap reference
#                   when no optimal scheme fits the scenario);
#   stochastic      its batch allocator draws from the caller's generator;
#   paper_time_s    paper 001's Table IV execution time per decision, seconds;
#   warm_start      the classical scheme `rrmbed train` imitates before its first update
#                   by default (--imitate auto): the teacher that won where it was measured
#                   (README, "A warm start by imitation").
# Ranks are the order of paper 001's tables (and the README): no exchange, the chain,
# then the central schemes.

register(Scheme("max-power", KIND, "none", "every user at Pmax", actor=MaxPower,
                batch=f"{BATCH}:max_power", label="max power", color="#8c564b", rank=0))
register(Scheme("random", KIND, "none", "a uniform random power per user",
                actor=RandomPower, batch=f"{BATCH}:random_power", color="#9467bd",
                options={"stochastic": True, "paper_time_s": 1.75e-4}, rank=1))
register(Scheme("full", KIND, "none", "each BS runs the policy on its own CSI slice",
                actor=FullPolicy, policy=FullPolicy.config,
                check=policy_fits(FullPolicy.config), weights="gaussian-mlp",
                learners=POLICY_LEARNERS, label="fully decentr. RL", color="#17becf",
                options={"paper_time_s": 6.5e-4, "warm_start": "fp"}, rank=2))
register(Scheme("round-robin", KIND, "chain", "BSs decide in a seeded order, each forwarding "
                "the powers chosen so far", actor=RoundRobinPolicy,
                policy=RoundRobinPolicy.config, check=policy_fits(RoundRobinPolicy.config),
                weights="gaussian-mlp", learners=POLICY_LEARNERS,
                label="partially decentr. RL", color="#2ca02c",
                options={"paper_time_s": 1.99e-3, "warm_start": "fp"},
                default_for=("run", "compose"), rank=3))
register(Scheme("centralized", KIND, "central", "learned central policy on the whole channel",
                central=f"{DECIDERS}:PolicyDecider", policy=central_config,
                check=policy_fits(central_config),
                weights="gaussian-mlp", learners=POLICY_LEARNERS, label="centralized RL",
                color="#1f77b4", options={"paper_time_s": 6.5e-4, "warm_start": "wmmse"},
                default_for=("train",),
                rank=4))
register(Scheme("wmmse", KIND, "central", "WMMSE at the controller",
                central=f"{DECIDERS}:WmmseDecider", batch=f"{BATCH}:wmmse_powers",
                label="WMMSE", color="#d62728",
                options={"reference": True, "paper_time_s": 0.60}, rank=5))
register(Scheme("fp", KIND, "central", "fractional programming at the controller",
                central=f"{DECIDERS}:FpDecider", batch=f"{BATCH}:fp_powers", label="FP",
                color="#ff7f0e", options={"paper_time_s": 0.64}, rank=6))
register(Scheme("optimum", KIND, "central", "reference global optimum (small settings only)",
                central=f"{DECIDERS}:OptimumDecider", batch=f"{BATCH}:optimum_powers",
                label="optimum (B&B)", color="#222222",
                options={"max_links": 6, "per_user_only": True, "optimal": True,
                         "reference": True}, rank=7))


# ALCOR (paper 004) over the central deciders: the controller keeps every user's multiplier,
# switches users off at random each slot and runs the decider on the others' channel
# (controller.roles.cellular). The URA is any central scheme above; over the trained
# centralized policy it needs that policy's weights.
ALCOR_HELP = ("ALCOR over {}: the controller keeps every user's multiplier for its demand, "
              "switches users off at random and decides among the others")
register(Scheme("alcor-centralized", KIND, "central",
                ALCOR_HELP.format("the trained centralized policy"),
                central=f"{DECIDERS}:PolicyDecider", policy=central_config,
                check=policy_fits(central_config), weights="gaussian-mlp", needs_weights=True,
                weights_from="rrmbed train --scheme centralized",
                label="ALCOR (centralized RL)", color="#393b79",
                options={"alcor": "central", "tables": False}, rank=10))
register(Scheme("alcor-wmmse", KIND, "central", ALCOR_HELP.format("WMMSE"),
                central=f"{DECIDERS}:WmmseDecider", label="ALCOR (WMMSE)", color="#843c39",
                options={"alcor": "central", "tables": False}, rank=11))
register(Scheme("alcor-fp", KIND, "central", ALCOR_HELP.format("FP"),
                central=f"{DECIDERS}:FpDecider", label="ALCOR (FP)", color="#8c6d31",
                options={"alcor": "central", "tables": False}, rank=12))


# A learner outside the testbed: every BS uploads its CSI slice, the controller hands the
# whole channel to the learner (controller.envs.network, the environments' network runner)
# and sends back the powers it chose.
register(Scheme("external-learner", KIND, "central", "a learner outside the testbed decides (the "
                "PettingZoo and Gymnasium environments over real processes: "
                "controller.envs.make_env(..., runner='network'))",
                central=f"{DECIDERS}:ExternalDecider", options={"external": True,
                                                              "tables": False}, rank=20))
# The round-robin game of such a learner: at its turn in the slot's chain each BS uploads its
# round-robin observation (its CSI slice, the powers forwarded so far and who chose them), the
# learner's powers come back, and the BS transmits them and forwards the chain
# (make_env(..., api='aec', runner='network')).
register(Scheme("external-round-robin", KIND, "chain", "a learner outside the testbed decides "
                "each BS's powers at its turn in the round-robin chain (the AEC environment "
                "over real processes: controller.envs.make_env(..., api='aec', "
                "runner='network'))", options={"external": True, "tables": False}, rank=21))


def sum_rate_schemes(radio: RadioConfig) -> list[Scheme]:
    """Paper 001's schemes that fit ``radio``, in its tables' order: every cellular scheme
    but those marked ``tables = False``: the ALCOR wrappers, which trade sum rate for the
    users' demands (paper 004), and the external learner."""
    return [s for s in SCHEMES.for_kind(KIND) if fits(s, radio) and s.options.get("tables",
                                                                                    True)]

def fits(scheme: Scheme, radio: RadioConfig) -> bool:
    """Whether ``scheme`` can decide in a network of ``radio`` (its ``max_links`` and
    ``per_user_only`` options)."""
    limit = scheme.options.get("max_links")
    if limit is not None and radio.n_links > limit:
        return False
    return not (scheme.options.get("per_user_only") and radio.sum_power_constraint)


def classical(radio: RadioConfig | None = None) -> list[Scheme]:
    """The schemes with a batch allocator (that fit ``radio``, when given), in paper 001's
    figure order (Fig. 11): the optimal one first, then from the best to the simplest
    (the table order reversed)."""
    found = [s for s in SCHEMES.for_kind(KIND)
             if s.batch is not None and (radio is None or fits(s, radio))]
    return sorted(found, key=lambda s: (not s.options.get("optimal"), -s.rank, s.name))


def trainable() -> list[Scheme]:
    """The schemes whose policy the local trainer and `rrmbed train` train."""
    return [s for s in SCHEMES.for_kind(KIND) if s.trainable and s.policy is not None]
