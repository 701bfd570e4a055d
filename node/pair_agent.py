"""One D2D pair's decisions (paper 002, actor side). Pure numpy: no torch, so a pair process
that only acts stays small (issue 14 point 7); the pair node process and the local runner
drive the same :class:`PairAgent`, so both runners choose the same actions for a seed.

The scheme's registry options say how it decides (``rule``):

* ``uniform``: a uniform (RB, power level) every slot;
* ``own-sinr``: the RB with the best SINR estimate from its own slice, own gain over
  the interference its receiver measured on that RB in the last slot, at the highest
  power level (ties: the lowest RB);
* ``actor``: the MAAC / NAAC / IAC actor (a ReLU MLP on its own observation, its output the
  logits of the K x beta actions): the argmax when executing; while training it samples
  the softmax (the Gumbel-max draw ``argmax(logits + Gumbel noise)``), and during the
  training's random warm-up it draws uniformly;
* ``q-network``: the paper's DQN baseline, the pair's own Q network (a ReLU MLP on its own
  observation, its output one Q value per action): the argmax when executing; while
  training epsilon-greedy with the exploration rate the trainer sends with the weights
  (``agent<i>.epsilon``), uniform during the warm-up;
* ``automaton``: SLA, the uncoupled stochastic learning automaton, and ``tabular-q``:
  tabular Q-learning on a quantized own observation; both learn online from the pair's
  own rewards (:mod:`node.pair_learning`, settings from the scheme's other options).

Weights: ``agent<i>.actor.<l>.weight`` (out x in) and ``.bias`` per pair ``i``, as
:class:`controller.learners.maac.Maac` writes them (the target actors, which the paper's
pairs download); for ``q-network`` ``agent<i>.q.<l>.weight`` / ``.bias`` as the per-agent
:class:`controller.learners.dqn.Dqn` writes them (its online networks; ``<l>`` the index in
the layer sequence, so 0, 2, 4) and ``agent<i>.epsilon`` (1,). Randomness:
``rng_for(seed, "d2d", "pair", i)``, one stream per pair, drawn the same way whatever the
outcome of a slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from channel_server.d2d import D2dScenario
from node.d2d_observation import observation_dim
from node.mlp import Layers, forward
from node.pair_learning import AutomatonConfig, LearningAutomaton, TabularQ, TabularQConfig
from node.schemes import SCHEMES
from protocols.core import VariableSource
from protocols.seeding import rng_for

Array = npt.NDArray[np.float64]
KIND = "d2d-underlay"


NETS = {"actor": "an actor (maac, naac or iac: `rrmbed d2d train --scheme maac`)",
        "q": "a DQN Q network (`rrmbed d2d train --scheme dqn`)"}
"""The networks a pair may act with, by their name in the weights, and what trains them."""


def mlp_layers(variables: dict[str, np.ndarray], agent: int,
               net: str = "actor") -> list[tuple[Array, Array]]:
    """(weight, bias) of pair ``agent``'s network ``net`` (``actor`` or ``q``), input layer
    first; a ValueError names what the weights hold instead when it is missing."""
    prefix = f"agent{agent}.{net}."
    idx = sorted({int(k[len(prefix):].split(".")[0]) for k in variables if k.startswith(prefix)})
    if not idx:
        held = [what for other, what in NETS.items() if other != net
                and any(k.startswith(f"agent{agent}.{other}.") for k in variables)]
        instead = f"; the weights hold {held[0]} instead" if held else ""
        raise ValueError(f"no {'actor' if net == 'actor' else 'Q network'} for pair {agent} "
                         f"in the weights (expected {prefix}<l>.weight arrays){instead}")
    return [(np.asarray(variables[f"{prefix}{i}.weight"], dtype=np.float64),
             np.asarray(variables[f"{prefix}{i}.bias"], dtype=np.float64)) for i in idx]


def actor_layers(variables: dict[str, np.ndarray], agent: int) -> list[tuple[Array, Array]]:
    """(weight, bias) of pair ``agent``'s actor, input layer first."""
    return mlp_layers(variables, agent, "actor")


def mlp_output(variables: dict[str, np.ndarray], agent: int, obs: npt.ArrayLike,
               net: str = "actor") -> Array:
    """Outputs ``(..., K beta)`` of pair ``agent``'s network for observations ``(..., D)``."""
    return forward([(w.T, b) for w, b in mlp_layers(variables, agent, net)], obs, "relu")


def actor_logits(variables: dict[str, np.ndarray], agent: int, obs: npt.ArrayLike) -> Array:
    """Logits ``(..., K beta)`` of pair ``agent``'s actor for observations ``(..., D)``."""
    return mlp_output(variables, agent, obs, "actor")


def q_values(variables: dict[str, np.ndarray], agent: int, obs: npt.ArrayLike) -> Array:
    """Q values ``(..., K beta)`` of pair ``agent``'s Q network for observations ``(..., D)``."""
    return mlp_output(variables, agent, obs, "q")


def own_actor(variables: dict[str, np.ndarray], agent: int) -> dict[str, np.ndarray]:
    """The arrays pair ``agent`` acts with (its own network and exploration rate only)."""
    prefix = f"agent{agent}."
    return {k: v for k, v in variables.items() if k.startswith(prefix)}


def _check_nets(scenario: D2dScenario, variables: dict[str, np.ndarray], net: str) -> None:
    r = scenario.radio
    d = observation_dim(scenario)
    for i in range(r.n_pairs):
        layers = mlp_layers(variables, i, net)
        if layers[0][0].shape[1] != d or layers[-1][0].shape[0] != r.n_actions:
            raise ValueError(f"the {'actor' if net == 'actor' else 'Q network'} of pair {i} "
                             f"maps {layers[0][0].shape[1]} inputs to "
                             f"{layers[-1][0].shape[0]} actions; the scenario has {d} and "
                             f"{r.n_actions}")


def check_actors(scenario: D2dScenario, variables: dict[str, np.ndarray],
                 facts: dict[str, Any] | None = None) -> None:
    """Raise ValueError naming the problem unless ``variables`` hold an actor for every pair
    of ``scenario`` with its observation and action sizes."""
    _check_nets(scenario, variables, "actor")


def check_q_networks(scenario: D2dScenario, variables: dict[str, np.ndarray],
                     facts: dict[str, Any] | None = None) -> None:
    """Raise ValueError naming the problem unless ``variables`` hold a Q network for every
    pair of ``scenario`` with its observation and action sizes."""
    _check_nets(scenario, variables, "q")


@dataclass(frozen=True)
class PairObservation:
    """What a pair acts on in a slot."""

    features: np.ndarray
    """The observation vector (:func:`node.d2d_observation.observe`)."""
    d2d_gain_db: np.ndarray
    """Own gain per RB, dB (rule-based schemes)."""
    interference_dbm: np.ndarray
    """Last slot's interference per RB, dBm (rule-based schemes)."""
    explore: bool = False
    """Sample the actor's softmax (epsilon-greedy on the Q values) instead of taking the
    argmax (training)."""
    uniform: bool = False
    """Draw a uniform action whatever the scheme (the training's random warm-up)."""
    last_rb: int = -1
    """Its RB in the last slot (-1: none; online learners)."""
    last_level: int = -1
    """Its power level in the last slot (-1: none; online learners)."""
    slot: int = -1
    """The slot it acts in (online learners match the reward to it)."""


@dataclass(frozen=True)
class PairReward:
    """What a pair's receiver reported of a slot (online learners learn from it)."""

    slot: int
    reward: float


class PairAgent:
    """Decisions of D2D pair ``i`` (a :class:`protocols.core.Actor`)."""

    def __init__(self, i: int, scenario: D2dScenario, scheme: str, seed: int,
                 variables: dict[str, np.ndarray] | None = None,
                 source: VariableSource | None = None) -> None:
        try:
            spec = SCHEMES.get(KIND, scheme)
        except KeyError as e:
            raise ValueError(e.args[0]) from None
        self.i = i
        self.scenario = scenario
        self.rule = str(spec.options["rule"])
        r = scenario.radio
        self.n_rb, self.n_levels, self.n_actions = r.n_rb, r.n_levels, r.n_actions
        self.top_level = int(np.argmax(r.d2d_power_levels_dbm))
        self.variables = variables
        self.layers: Layers | None = None
        """Its own network's layers (read from ``variables`` once per version)."""
        self.source = source
        self.version = 0
        self.rng = rng_for(seed, "d2d", "pair", i)
        learning = {k: v for k, v in spec.options.items() if k != "rule"}
        self.automaton = (LearningAutomaton(r.n_actions, scenario.qos.negative_reward,
                                            AutomatonConfig(**learning))
                          if self.rule == "automaton" else None)
        self.qlearner = (TabularQ(r.n_rb, r.d2d_power_levels_dbm, TabularQConfig(**learning))
                         if self.rule == "tabular-q" else None)
        self.played: tuple[int, int] | None = None
        """(slot, action) of the last slot it acted in (online learners)."""

    def select_action(self, o: PairObservation) -> int:
        """The flat action ``rb + K * level`` for this slot."""
        action = self.choose(o)
        self.played = (o.slot, action)
        return action

    def choose(self, o: PairObservation) -> int:
        noise = self.rng.gumbel(size=self.n_actions)  # drawn every slot, whatever happens
        u = (float(self.rng.random()) if self.qlearner is not None or self.rule == "q-network"
             else 0.0)  # (likewise)
        if o.uniform or self.rule == "uniform":
            return int(np.argmax(noise))  # the Gumbel-max of equal logits: uniform
        if self.automaton is not None:
            return self.automaton.act(noise)
        if self.qlearner is not None:
            q = self.qlearner
            return q.act(q.state(o.d2d_gain_db, o.interference_dbm, o.last_rb, o.last_level),
                         noise, u)
        if self.rule == "own-sinr":
            est = np.asarray(o.d2d_gain_db) - np.asarray(o.interference_dbm)
            return int(np.argmax(est)) + self.n_rb * self.top_level
        if self.variables is None:
            raise ValueError(f"pair {self.i} has no {self.rule} weights")
        if self.rule == "q-network":
            eps = self.variables.get(f"agent{self.i}.epsilon")
            if o.explore and eps is not None and u < float(np.asarray(eps).reshape(-1)[0]):
                return int(np.argmax(noise))  # uniform
            return int(np.argmax(forward(self.net_layers(), o.features, "relu")))
        logits = forward(self.net_layers(), o.features, "relu")
        return int(np.argmax(logits + noise if o.explore else logits))

    def net_layers(self) -> Layers:
        """Its own actor's or Q network's layers, ``(W^T, b)``: read from the weights once,
        not every slot."""
        if self.layers is None:
            assert self.variables is not None
            net = "q" if self.rule == "q-network" else "actor"
            self.layers = [(w.T, b) for w, b in mlp_layers(self.variables, self.i, net)]
        return self.layers

    def observe(self, transition: object) -> None:
        """A slot's reward (:class:`PairReward`): the online learners learn from it (the
        pair node uploads the experience of trained schemes itself)."""
        if not isinstance(transition, PairReward) or self.played is None \
                or self.played[0] != transition.slot:
            return
        action = self.played[1]
        for learner in (self.automaton, self.qlearner):
            if learner is not None:
                learner.learn(action, transition.reward)

    def update(self) -> None:
        """Take a newer actor from the variable source."""
        src = self.source
        if src is not None and src.version > self.version:
            self.variables = src.get_variables()
            self.layers = None
            self.version = src.version
