"""One D2D pair's decisions (paper 002, actor side). Pure numpy: no torch, so a pair process
that only acts stays small (issue 14 point 7); the pair node process and the local runner
drive the same :class:`PairAgent`, so both runners choose the same actions for a seed.

The scheme's registry options say how it decides (``rule``):

* ``uniform``: a uniform (RB, power level) every slot;
* ``own-sinr``: the RB with the best SINR estimate from its own slice, own gain over
  the interference its receiver measured on that RB in the last slot, at the highest
  power level (ties: the lowest RB);
* ``actor``: the MAAC / NAAC actor (a ReLU MLP on its own observation, its output the
  logits of the K x beta actions): the argmax when executing; while training it samples
  the softmax (the Gumbel-max draw ``argmax(logits + Gumbel noise)``), and during the
  training's random warm-up it draws uniformly;
* ``automaton``: SLA, the uncoupled stochastic learning automaton, and ``tabular-q``:
  tabular Q-learning on a quantized own observation; both learn online from the pair's
  own rewards (:mod:`node.pair_learning`, settings from the scheme's other options).

Weights: ``agent<i>.actor.<l>.weight`` (out x in) and ``.bias`` per pair ``i``, as
:class:`controller.learners.maac.Maac` writes them (the target actors, which the paper's
pairs download). Randomness: ``rng_for(seed, "d2d", "pair", i)``, one stream per pair,
drawn the same way whatever the outcome of a slot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from channel_server.d2d import D2dScenario
from node.d2d_observation import observation_dim
from node.pair_learning import AutomatonConfig, LearningAutomaton, TabularQ, TabularQConfig
from node.schemes import SCHEMES
from protocols.core import VariableSource
from protocols.seeding import rng_for

Array = npt.NDArray[np.float64]
KIND = "d2d-underlay"


def actor_layers(variables: dict[str, np.ndarray], agent: int) -> list[tuple[Array, Array]]:
    """(weight, bias) of pair ``agent``'s actor, input layer first."""
    prefix = f"agent{agent}.actor."
    idx = sorted({int(k[len(prefix):].split(".")[0]) for k in variables if k.startswith(prefix)})
    if not idx:
        raise ValueError(f"no actor for pair {agent} in the weights (expected "
                         f"{prefix}<l>.weight arrays)")
    return [(np.asarray(variables[f"{prefix}{i}.weight"], dtype=np.float64),
             np.asarray(variables[f"{prefix}{i}.bias"], dtype=np.float64)) for i in idx]


def actor_logits(variables: dict[str, np.ndarray], agent: int, obs: npt.ArrayLike) -> Array:
    """Logits ``(..., K beta)`` of pair ``agent``'s actor for observations ``(..., D)``."""
    x = np.asarray(obs, dtype=np.float64)
    layers = actor_layers(variables, agent)
    for j, (w, b) in enumerate(layers):
        x = x @ w.T + b
        if j < len(layers) - 1:
            x = np.maximum(x, 0.0)
    return x


def own_actor(variables: dict[str, np.ndarray], agent: int) -> dict[str, np.ndarray]:
    """The arrays pair ``agent`` acts with (its own actor only)."""
    prefix = f"agent{agent}."
    return {k: v for k, v in variables.items() if k.startswith(prefix)}


def check_actors(scenario: D2dScenario, variables: dict[str, np.ndarray]) -> None:
    """Raise ValueError naming the problem unless ``variables`` hold an actor for every pair
    of ``scenario`` with its observation and action sizes."""
    r = scenario.radio
    d = observation_dim(scenario)
    for i in range(r.n_pairs):
        layers = actor_layers(variables, i)
        if layers[0][0].shape[1] != d or layers[-1][0].shape[0] != r.n_actions:
            raise ValueError(f"the actor of pair {i} maps {layers[0][0].shape[1]} inputs to "
                             f"{layers[-1][0].shape[0]} actions; the scenario has {d} and "
                             f"{r.n_actions}")


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
    """Sample the actor's softmax instead of taking its argmax (training)."""
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
        u = float(self.rng.random()) if self.qlearner is not None else 0.0  # (likewise)
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
            raise ValueError(f"pair {self.i} has no actor weights")
        logits = actor_logits(self.variables, self.i, o.features)
        return int(np.argmax(logits + noise if o.explore else logits))

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
            self.version = src.version
