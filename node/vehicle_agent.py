"""One V2V transmitter's decisions (paper 000's multi-agent DQN, actor side).

Pure and numpy only: the vehicle node process and the local runner both drive a
:class:`VehicleAgent`, so the two runners choose the same actions for the same seed.

Schemes:

* ``marl-dqn`` / ``marl-dqn-nofp``: epsilon-greedy on the agent's Q network (greedy when
  ``epsilon`` is 0); with fingerprints the observation carries (e, epsilon).
* ``turn-dqn``: the single-agent baseline: only agent ``t mod K`` may change its action in
  slot ``t`` of an episode, the others keep theirs (uniform random at an episode start).
* ``random``: a uniform (RB, power level) every slot.

Weights are named arrays: one network per agent (``agent<k>.q.<i>.weight`` / ``.bias``)
or one shared network (``q.<i>.weight``) whose input ends with the agent's one-hot id,
as :class:`controller.learners.dqn.Dqn` writes them; layers are ReLU MLPs.
Randomness: ``rng_for(seed, "v2x", "vehicle", k)``, one stream per agent.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from channel_server.v2x import V2xScenario, account_payload
from node.schemes import SCHEMES
from protocols.core import VariableSource
from protocols.seeding import rng_for

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def q_layers(variables: dict[str, np.ndarray], prefix: str) -> list[tuple[Array, Array]]:
    """(weight, bias) of the MLP whose arrays are ``<prefix><i>.weight`` / ``.bias``."""
    idx = sorted({int(name[len(prefix):].split(".")[0]) for name in variables
                  if name.startswith(prefix)})
    if not idx:
        raise ValueError(f"no Q-network arrays named {prefix}<i>.weight in the weights")
    return [(variables[f"{prefix}{i}.weight"], variables[f"{prefix}{i}.bias"]) for i in idx]


def q_values(variables: dict[str, np.ndarray], agent: int, n_agents: int,
             obs: npt.ArrayLike) -> Array:
    """Q values ``(..., n_actions)`` of agent ``agent`` for observations ``(..., D)``."""
    x: np.ndarray = np.asarray(obs, dtype=np.float32)
    if f"agent{agent}.q.0.weight" in variables:
        layers = q_layers(variables, f"agent{agent}.q.")
    else:  # shared network: the agent id is one-hot encoded after the observation
        layers = q_layers(variables, "q.")
        one_hot = np.broadcast_to(np.eye(n_agents, dtype=np.float32)[agent],
                                  (*x.shape[:-1], n_agents))
        x = np.concatenate([x, one_hot], axis=-1)
    for j, (w, b) in enumerate(layers):
        x = x @ w.T + b
        if j < len(layers) - 1:
            x = np.maximum(x, 0.0)
    out: Array = x.astype(np.float64)
    return out


def check_q_weights(variables: dict[str, np.ndarray], n_agents: int) -> None:
    """Raise ValueError naming the problem unless ``variables`` hold a Q network for each of
    ``n_agents`` agents (one per agent, or one shared)."""
    if "q.0.weight" in variables:
        return
    missing = [k for k in range(n_agents) if f"agent{k}.q.0.weight" not in variables]
    if missing:
        have = ", ".join(sorted(variables)[:4]) or "nothing"
        raise ValueError(f"these weights hold no Q network for vehicle(s) {missing} (expected "
                         f"q.<i>.weight or agent<k>.q.<i>.weight arrays; found {have}...)")


def check_q_scenario(scenario: V2xScenario, variables: dict[str, np.ndarray],
                     facts: dict[str, Any] | None = None) -> None:
    """The weights check of the DQN schemes: Q networks for the scenario's V2V links."""
    check_q_weights(variables, scenario.radio.n_v2v)


def own_weights(variables: dict[str, np.ndarray], agent: int) -> dict[str, np.ndarray]:
    """The arrays agent ``agent`` acts with: its own network (``agent<k>.*``) of per-agent
    weights, or the whole shared network; other agents' networks are left out."""
    return {name: v for name, v in variables.items()
            if not name.startswith("agent") or name.startswith(f"agent{agent}.")}


def greedy_actions(variables: dict[str, np.ndarray], obs: npt.ArrayLike) -> IntArray:
    """Greedy flat actions ``(E, K)`` for observations ``(E, K, D)`` (ties: lowest index)."""
    x = np.asarray(obs)
    k_n = x.shape[1]
    out: IntArray = np.stack([q_values(variables, k, k_n, x[:, k]).argmax(-1)
                              for k in range(k_n)], axis=1).astype(np.int64)
    return out


@dataclass(frozen=True)
class VehicleObservation:
    """What a vehicle acts on in slot ``t`` of the episode."""

    features: np.ndarray
    """The observation vector (12)+(14)."""
    t: int
    """Slot within the episode."""
    epsilon: float = 0.0
    """Exploration rate (0: greedy)."""


class VehicleAgent:
    """Decisions and payload bookkeeping of V2V transmitter ``k``."""

    def __init__(self, k: int, scenario: V2xScenario, scheme: str, seed: int,
                 variables: dict[str, np.ndarray] | None = None,
                 source: VariableSource | None = None) -> None:
        try:
            spec = SCHEMES.get("v2x", scheme)
        except KeyError as e:
            raise ValueError(e.args[0]) from None
        if spec.needs_weights and variables is None:
            raise ValueError(f"scheme {scheme!r} needs Q-network weights")
        self.k = k
        self.scenario = scenario
        self.scheme = scheme
        self.learned = bool(spec.options["learned"])
        self.turns = bool(spec.options["turns"])
        r = scenario.radio
        self.n_agents, self.n_rb = r.n_v2v, r.n_rb
        self.n_actions = r.n_rb * len(r.v2v_power_levels_dbm)
        self.variables = variables
        self.rng = rng_for(seed, "v2x", "vehicle", k)
        self.held = 0
        self.source = source
        """Where :meth:`update` takes newer Q networks from (the controller's, received)."""
        self.version = 0
        """Version of the weights it acts with (0: the initial ones)."""
        self.remaining_bits = scenario.traffic.payload_bits
        self.delivery_time_s = float("nan")

    @property
    def silent(self) -> bool:
        """Payload delivered: the link transmits no more in this episode."""
        return not np.isnan(self.delivery_time_s)

    # ------------------------------------------------------------------ the Actor

    def select_action(self, observation: VehicleObservation) -> int:
        """The flat action ``rb + M * level`` for this slot's observation."""
        o = observation
        return self.act(o.features, o.t, o.epsilon)

    def observe(self, transition: object) -> None:
        """Nothing to keep: the vehicle uploads its observation and action as experience."""

    def update(self) -> None:
        """Take newer Q networks from the variable source."""
        src = self.source
        if src is not None and src.version > self.version:
            self.variables = src.get_variables()
            self.version = src.version

    def start_episode(self) -> None:
        self.remaining_bits = self.scenario.traffic.payload_bits
        self.delivery_time_s = float("nan")
        if self.turns:
            self.held = int(self.rng.integers(self.n_actions))

    def act(self, obs: npt.ArrayLike, t: int, epsilon: float = 0.0) -> int:
        """Flat action ``rb + M * level`` in slot ``t`` of the episode for observation ``obs``.

        DQN schemes draw one uniform and one random action every slot whatever epsilon
        is, so the random stream does not depend on the outcome."""
        if not self.learned:
            return int(self.rng.integers(self.n_actions))
        assert self.variables is not None
        q = q_values(self.variables, self.k, self.n_agents, obs)
        explore = self.rng.random() < epsilon
        other = int(self.rng.integers(self.n_actions))
        proposed = other if explore else int(q.argmax())
        if self.turns:
            if t % self.n_agents == self.k:
                self.held = proposed
            return self.held
        return proposed

    def account(self, rate_bps: float, t: int) -> None:
        """Payload bookkeeping after slot ``t``: ``rate_bps`` is what the receiver acked."""
        slot_s = self.scenario.radio.slot_s
        left, when = account_payload(np.array([self.remaining_bits]), np.array([rate_bps]),
                                     slot_s, t * slot_s, np.array([self.delivery_time_s]))
        self.remaining_bits, self.delivery_time_s = float(left[0]), float(when[0])

    def remaining_time_s(self, t: int) -> float:
        return self.scenario.traffic.deadline_s - t * self.scenario.radio.slot_s



def scheme_scenario(scenario: V2xScenario, scheme: str) -> V2xScenario:
    """The scenario as ``scheme`` sees it: the fingerprint in the observation only for the
    schemes that use one (a scheme whose option is None: as the scenario says)."""
    fingerprint = SCHEMES.get("v2x", scheme).options["fingerprint"]
    if fingerprint is None:
        return scenario
    obs = dataclasses.replace(scenario.observation, fingerprint=bool(fingerprint))
    return dataclasses.replace(scenario, observation=obs)


def eval_fingerprint(variables: dict[str, np.ndarray] | None) -> tuple[float, float]:
    """The fingerprint (e, epsilon) a trained policy acts with: the one it ended training
    with (``env_fingerprint``), else (0, 1) (no fingerprint in the observation anyway)."""
    if variables is not None and "env_fingerprint" in variables:
        it, eps = (float(v) for v in variables["env_fingerprint"])
        return it, eps
    return 0.0, 1.0
