"""The D2D pairs' online learners (node.pair_learning), against hand-computed updates: SLA's
linear reward-inaction step and its reward normalization, its draws from its probability
vector, its convergence on a stationary bandit; tabular Q-learning's state quantization,
its Q update and its epsilon-greedy choice; the pair agent feeding them only the reward
of the slot it played."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from channel_server.d2d import D2dScenario
from node.d2d_observation import observation_dim
from node.pair_agent import PairAgent, PairObservation, PairReward
from node.pair_learning import (
    AutomatonConfig,
    LearningAutomaton,
    TabularQ,
    TabularQConfig,
)
from node.schemes import SCHEMES

S = D2dScenario(name="t")
S2 = dataclasses.replace(S, radio=dataclasses.replace(S.radio, n_pairs=3, n_rb=4,
                                                      d2d_power_levels_dbm=(13.0, 0.0)))


def test_sla_linear_reward_inaction_by_hand() -> None:
    a = LearningAutomaton(4, -1.0, AutomatonConfig(step=0.1))
    assert a.p.tolist() == [0.25] * 4
    a.learn(2, 3.0)  # best seen 3: u = (3 + 1) / (3 + 1) = 1
    assert a.p == pytest.approx([0.225, 0.225, 0.325, 0.225], abs=1e-15)
    a.learn(0, 1.0)  # u = (1 + 1) / 4 = 0.5: p += 0.05 (e_0 - p)
    want = [0.225 + 0.05 * 0.775, 0.225 * 0.95, 0.325 * 0.95, 0.225 * 0.95]
    assert a.p == pytest.approx(want, abs=1e-15)
    before = a.p.copy()
    a.learn(1, -1.0)  # r_neg: inaction
    assert a.p.tolist() == before.tolist()
    a.learn(3, 7.0)  # a new best: u = 1
    assert a.best == 7.0
    assert a.p == pytest.approx(0.9 * before + 0.1 * np.eye(4)[3], abs=1e-15)
    assert a.p.sum() == pytest.approx(1.0, abs=1e-15)
    with pytest.raises(ValueError, match="step"):
        LearningAutomaton(4, -1.0, AutomatonConfig(step=0.0))


def test_sla_draws_follow_its_probabilities() -> None:
    a = LearningAutomaton(4, -1.0, AutomatonConfig())
    a.p = np.array([0.6, 0.3, 0.1, 0.0])
    rng = np.random.default_rng(0)
    draws = [a.act(rng.gumbel(size=4)) for _ in range(20000)]
    freq = np.bincount(draws, minlength=4) / 20000
    assert freq == pytest.approx([0.6, 0.3, 0.1, 0.0], abs=0.015)
    assert freq[3] == 0.0


def test_sla_converges_on_a_stationary_bandit() -> None:
    """Action 2 pays 5 bits/s/Hz, action 0 pays 1, the others r_neg: the automaton ends on
    action 2 (a plain bandit; L_R-I is epsilon-optimal there)."""
    a = LearningAutomaton(4, -1.0, AutomatonConfig(step=0.05))
    rng = np.random.default_rng(3)
    pay = [1.0, -1.0, 5.0, -1.0]
    for _ in range(1500):
        k = a.act(rng.gumbel(size=4))
        a.learn(k, pay[k])
    assert a.p[2] > 0.95


def test_q_state_quantization_by_hand() -> None:
    q = TabularQ(4, [13.0, 0.0], TabularQConfig(sinr_edges_db=(0.0, 10.0)))
    assert q.n_bins == 3 and q.q.shape == ((8 + 1) * 3, 8)
    gain = np.array([-100.0, -90.0, -80.0, -70.0])
    interference = np.array([-100.0, -95.0, -110.0, -60.0])
    assert q.state(gain, interference, -1, -1) == 0  # no last action
    # RB 1 at 13 dBm: 13 - 90 + 95 = 18 dB -> bin 2; action 1 -> row (1 + 1) * 3 + 2
    assert q.state(gain, interference, 1, 0) == 2 * 3 + 2
    # RB 3 at 0 dBm: 0 - 70 + 60 = -10 dB -> bin 0; action 3 + 4 = 7 -> row 8 * 3
    assert q.state(gain, interference, 3, 1) == 8 * 3 + 0
    # RB 0 at 13 dBm: 13 dB on the edge 10 -> bin 2 (edges are lower bounds)
    assert q.state(gain, interference - 3.0, 0, 0) == 1 * 3 + 2
    with pytest.raises(ValueError, match="increase"):
        TabularQ(4, [13.0], TabularQConfig(sinr_edges_db=(10.0, 0.0)))


def test_q_update_and_epsilon_greedy_by_hand() -> None:
    c = TabularQConfig(alpha=0.5, gamma=0.9, epsilon=0.2)
    q = TabularQ(2, [13.0], c)
    noise = np.array([0.3, -0.1])
    assert q.act(0, noise, u=0.5) == 0  # all Q equal: the tie goes to the larger noise
    assert q.act(0, noise[::-1].copy(), u=0.5) == 1
    q.learn(1, 4.0)  # slot's reward; the update waits for the next state
    assert (q.q == 0).all()
    q.q[5, 0] = 2.0
    a = q.act(5, np.array([-5.0, 5.0]), u=0.1)  # u < epsilon: argmax(noise)
    assert a == 1
    assert q.q[0, 1] == pytest.approx(0.5 * (4.0 + 0.9 * 2.0))  # (s=0, a=1) updated
    q.learn(0, 1.0)  # not the action played: ignored
    assert q.pending == (5, 1, None)
    q.learn(1, -1.0)
    q.act(0, np.zeros(2), u=0.9)
    assert q.q[5, 1] == pytest.approx(0.5 * (-1.0 + 0.9 * q.q[0].max()))
    # greedy: the best action of the state
    q.q[7, :] = [0.0, 3.0]
    assert q.act(7, np.array([9.0, 0.0]), u=0.5) == 1


def pair_obs(slot: int) -> PairObservation:
    return PairObservation(np.zeros(observation_dim(S2)), np.zeros(4), np.zeros(4),
                           last_rb=-1 if slot == 0 else 1, last_level=-1 if slot == 0 else 0,
                           slot=slot)


@pytest.mark.parametrize("scheme", ["sla", "q-learning"])
def test_a_pair_learns_only_from_the_reward_of_the_slot_it_played(scheme: str) -> None:
    a, b = PairAgent(1, S2, scheme, seed=4), PairAgent(1, S2, scheme, seed=4)
    played = [a.select_action(pair_obs(n)) for n in range(3)]
    assert played == [b.select_action(pair_obs(n)) for n in range(3)]
    a.observe(PairReward(1, 5.0))  # a stale slot: nothing learned
    learner = a.automaton if a.automaton is not None else a.qlearner
    assert learner is not None
    table = learner.p if a.automaton is not None else learner.q  # type: ignore[union-attr]
    snapshot = table.copy()
    a.observe(PairReward(1, 5.0))
    assert (table == snapshot).all()
    a.observe(PairReward(2, 5.0))
    a.select_action(pair_obs(3))
    table = learner.p if a.automaton is not None else learner.q  # type: ignore[union-attr]
    assert not (table == snapshot).all()


def test_the_schemes_are_registered_as_online_learners_without_weights() -> None:
    names = SCHEMES.names("d2d-underlay")
    for name in ("sla", "q-learning"):
        spec = SCHEMES.get("d2d-underlay", name)
        assert name in names and not spec.trainable and not spec.needs_weights
        assert spec.exchange == "none"
    assert SCHEMES.get("d2d-underlay", "sla").options["step"] == 0.03
    assert math.isclose(SCHEMES.get("d2d-underlay", "q-learning").options["gamma"], 0.95)
