"""A D2D pair's decisions (node side, pure numpy) and what a pair process imports."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from channel_server.d2d import D2dScenario
from node.d2d_observation import observation_dim
from node.pair_agent import (
    PairAgent,
    PairObservation,
    actor_logits,
    check_actors,
    own_actor,
)
from tests.helpers import ROOT

S = D2dScenario(name="t")
S2 = dataclasses.replace(S, radio=dataclasses.replace(S.radio, n_pairs=3,
                                                      d2d_power_levels_dbm=(13.0, 20.0, 0.0)))


def obs(scn: D2dScenario, gain: list[float], interference: list[float]) -> PairObservation:
    return PairObservation(np.zeros(observation_dim(scn)), np.array(gain),
                           np.array(interference))


def test_best_estimate_takes_the_best_gain_over_interference_at_the_top_power() -> None:
    a = PairAgent(1, S2, "best-estimate", seed=0)
    gain = [-90.0] * 10
    interference = [-70.0] * 10
    gain[3], interference[7] = -80.0, -85.0  # RB 3: -10 dB, RB 7: -5 dB, others -20 dB
    assert a.select_action(obs(S2, gain, interference)) == 7 + 10 * 1  # level 1 is 20 dBm


def test_random_draws_every_action_from_the_pair_stream() -> None:
    a, b = PairAgent(2, S2, "random", seed=5), PairAgent(2, S2, "random", seed=5)
    o = obs(S2, [0.0] * 10, [0.0] * 10)
    acts = [a.select_action(o) for _ in range(3000)]
    assert acts == [b.select_action(o) for _ in range(3000)]
    counts = np.bincount(acts, minlength=30)
    assert counts.min() > 50 and counts.max() < 150  # uniform over K x beta = 30
    assert acts != [PairAgent(1, S2, "random", seed=5).select_action(o) for _ in range(3000)]


def actors(rng: np.random.Generator, scn: D2dScenario) -> dict[str, np.ndarray]:
    d, a = observation_dim(scn), scn.radio.n_actions
    out = {}
    for i in range(scn.radio.n_pairs):
        for j, (m, n) in enumerate([(8, d), (5, 8), (a, 5)]):
            out[f"agent{i}.actor.{j}.weight"] = rng.normal(size=(m, n))
            out[f"agent{i}.actor.{j}.bias"] = rng.normal(size=m)
    return out


def test_actor_acts_on_the_argmax_of_its_own_mlp() -> None:
    v = actors(np.random.default_rng(0), S2)
    check_actors(S2, v)
    x = np.random.default_rng(1).normal(size=observation_dim(S2))
    w = [v[f"agent2.actor.{j}.weight"] for j in range(3)]
    b = [v[f"agent2.actor.{j}.bias"] for j in range(3)]
    h = np.maximum(w[0] @ x + b[0], 0)
    h = np.maximum(w[1] @ h + b[1], 0)
    logits = w[2] @ h + b[2]
    assert np.allclose(actor_logits(v, 2, x), logits)
    own = own_actor(v, 2)
    assert sorted(own) == sorted(k for k in v if k.startswith("agent2."))
    a = PairAgent(2, S2, "maac", seed=0, variables=own)
    o = PairObservation(x, np.zeros(10), np.zeros(10))
    assert a.select_action(o) == int(np.argmax(logits))
    explored = {a.select_action(dataclasses.replace(o, explore=True)) for _ in range(200)}
    assert len(explored) > 1 and int(np.argmax(logits)) in explored
    with pytest.raises(ValueError, match="pair 0"):
        check_actors(S2, own)
    with pytest.raises(ValueError, match="actions"):
        check_actors(S, actors(np.random.default_rng(0), dataclasses.replace(
            S, radio=dataclasses.replace(S.radio, d2d_power_levels_dbm=(1.0, 2.0)))))


def test_a_pair_process_imports_no_torch() -> None:
    # what `rrmbed node --role pair` imports before and while it acts (issue 14 point 7)
    code = ("import sys, controller.cli, node.process, node.roles.pair, node.pair_agent, "
            "channel_server.roles.d2d; "
            "print(sorted(m for m in ('torch', 'controller.learners.maac') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
