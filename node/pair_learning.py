"""Online learners a D2D pair runs alone (paper 002's uncoupled baselines, Section V): each
pair learns from its own reward only, with no message to anyone, while the run plays.
Pure numpy, no torch (a pair process stays small, issue 14 point 7).

* :class:`LearningAutomaton`, the uncoupled stochastic learning algorithm (SLA, the paper's
  reference [14]): a probability vector over the pair's K x beta actions, uniform at first;
  each slot the pair draws its action from it and, once its receiver reports the reward
  ``r``, moves it towards that action by the linear reward-inaction rule
  ``p <- p + b * u * (e_a - p)``, with ``u`` the reward normalized into [0, 1]:
  ``(r - r_neg) / (r_best - r_neg)``, ``r_best`` the largest reward the pair has seen so
  far (*choice*: the paper's reward is unbounded above, the automaton needs ``u <= 1``;
  a pair knows no bound but its own history). A reward of ``r_neg`` (the CUE on its RB
  missed its threshold) leaves ``p`` as it was.
* :class:`TabularQ`, tabular Q-learning on a quantized local observation (*choice*: the
  paper does not say which): the state is the pair's last action (or none) and the bin
  of its own SINR estimate on that RB, ``P(level) + G^d - I^{t-1}`` in dB, between the
  ``sinr_edges_db``; epsilon-greedy over ``Q[s]`` (ties broken at random), and after each
  slot ``Q[s, a] += alpha (r + gamma max Q[s'] - Q[s, a])`` once the next state ``s'`` is
  seen (the next slice).

Randomness: the caller's per-pair stream (:class:`node.pair_agent.PairAgent` draws the
same numbers every slot, whatever the outcome): ``noise``, K x beta Gumbel variates (a
draw from ``p`` is ``argmax(log p + noise)``; a uniform draw ``argmax(noise)``) and, for
Q-learning, one uniform ``u`` for the epsilon test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class AutomatonConfig:
    """SLA's settings (the scheme's registry options)."""

    step: float = 0.03
    """b, the learning step of the linear reward-inaction update, in (0, 1] (0.03: the
    best of 0.1, 0.03 and 0.01 on d2d-n10 over 4 seeds and 3000 slots)."""


@dataclass(frozen=True)
class TabularQConfig:
    """Tabular Q-learning's settings (the scheme's registry options)."""

    alpha: float = 0.1
    """Learning rate of the Q update."""
    gamma: float = 0.95
    """Discount (the paper's gamma)."""
    epsilon: float = 0.1
    """Probability of a uniform action in a slot (constant)."""
    sinr_edges_db: tuple[float, ...] = (0.0, 10.0, 20.0, 30.0)
    """Bin edges of the own SINR estimate, dB: len + 1 bins."""


class LearningAutomaton:
    """SLA for one pair: a probability vector over its actions."""

    def __init__(self, n_actions: int, negative_reward: float, config: AutomatonConfig) -> None:
        if not 0.0 < config.step <= 1.0:
            raise ValueError(f"the automaton's step must lie in (0, 1], not {config.step}")
        self.config = config
        self.negative_reward = float(negative_reward)
        self.p: Array = np.full(n_actions, 1.0 / n_actions)
        """The action probabilities (sum 1)."""
        self.best = self.negative_reward
        """The largest reward seen so far."""

    def act(self, noise: Array) -> int:
        """An action drawn from ``p`` (Gumbel-max over ``log p``)."""
        with np.errstate(divide="ignore"):
            return int(np.argmax(np.log(self.p) + noise))

    def normalized(self, reward: float) -> float:
        """``u`` in [0, 1] for ``reward`` (after taking it into the best seen)."""
        self.best = max(self.best, float(reward))
        span = self.best - self.negative_reward
        return 0.0 if span <= 0.0 else min(max((reward - self.negative_reward) / span, 0.0), 1.0)

    def learn(self, action: int, reward: float) -> None:
        """The linear reward-inaction step for the action played and its reward."""
        u = self.normalized(reward)
        target = np.zeros_like(self.p)
        target[action] = 1.0
        self.p = self.p + self.config.step * u * (target - self.p)


class TabularQ:
    """Tabular Q-learning for one pair on its quantized own observation."""

    def __init__(self, n_rb: int, power_levels_dbm: npt.ArrayLike,
                 config: TabularQConfig) -> None:
        self.config = config
        self.n_rb = n_rb
        self.power_dbm = np.asarray(power_levels_dbm, dtype=np.float64)
        self.n_actions = n_rb * len(self.power_dbm)
        self.edges = np.asarray(config.sinr_edges_db, dtype=np.float64)
        if self.edges.size and (np.diff(self.edges) <= 0).any():
            raise ValueError(f"sinr_edges_db must increase: {config.sinr_edges_db}")
        self.n_bins = self.edges.size + 1
        self.q: Array = np.zeros(((self.n_actions + 1) * self.n_bins, self.n_actions))
        """Q[s, a]; rows: (last action + 1) x SINR bin (last action -1: none)."""
        self.pending: tuple[int, int, float | None] | None = None
        """(state, action, reward once reported) of the last slot played."""

    def state(self, d2d_gain_db: npt.ArrayLike, interference_dbm: npt.ArrayLike,
              last_rb: int, last_level: int) -> int:
        """The state index of an observation (its last RB and level, -1 if none)."""
        if last_rb < 0 or last_level < 0:
            return 0
        est = (self.power_dbm[last_level] + float(np.asarray(d2d_gain_db)[last_rb])
               - float(np.asarray(interference_dbm)[last_rb]))
        b = int(np.searchsorted(self.edges, est, side="right"))
        return (last_rb + self.n_rb * last_level + 1) * self.n_bins + b

    def act(self, state: int, noise: Array, u: float) -> int:
        """Learn from the last slot (``state`` is its next state), then an epsilon-greedy
        action in ``state``."""
        c = self.config
        if self.pending is not None and self.pending[2] is not None:
            s, a, r = self.pending
            target = r + c.gamma * self.q[state].max()
            self.q[s, a] += c.alpha * (target - self.q[s, a])
        if u < c.epsilon:
            action = int(np.argmax(noise))
        else:
            row = self.q[state]
            action = int(np.argmax(np.where(row >= row.max(), noise, -np.inf)))
        self.pending = (state, action, None)
        return action

    def learn(self, action: int, reward: float) -> None:
        """The reward of the action just played (its update waits for the next state)."""
        if self.pending is not None and self.pending[1] == action:
            self.pending = (self.pending[0], action, float(reward))
