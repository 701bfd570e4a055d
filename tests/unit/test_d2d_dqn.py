"""Paper 002's DQN baseline (scheme ``dqn``): one Q network per pair over its own
observation, trained by the registry's DQN learner (a network per agent), acted on in the
pair in numpy; its weights file is typed and refused by the actor schemes (and the other
way round)."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from channel_server.d2d import D2dScenario
from channel_server.kinds import resolve
from controller.learners import registry
from controller.learners.maac import MaacConfig
from controller.runners.run import RunError, load_weights
from controller.training.d2d_train import (
    D2dTrainConfig,
    DqnPairs,
    MaacPairs,
    make_learner,
    train_and_write,
)
from node.d2d_observation import observation_dim
from node.pair_agent import PairAgent, PairObservation, check_actors, check_q_networks, q_values
from node.schemes import SCHEMES
from protocols.weights import load
from tests.helpers import SCENARIOS

SMALL = MaacConfig(actor_hidden=(16, 8), critic_hidden=(32, 16, 8), batch_size=8,
                   learning_starts=8, replay_capacity=256)


def small() -> D2dScenario:
    s = D2dScenario(name="t")
    return dataclasses.replace(s, radio=dataclasses.replace(
        s.radio, n_pairs=3, n_rb=4, d2d_power_levels_dbm=(13.0, 3.0)))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def dqn(s: D2dScenario, seed: int = 0, slots: int = 100) -> DqnPairs:
    learner = make_learner(s, "dqn", seed, np.zeros((s.radio.n_pairs, 2)), SMALL, slots)
    assert isinstance(learner, DqnPairs)
    return learner


def test_the_scheme_trains_per_pair_q_networks_with_the_registrys_dqn() -> None:
    spec = SCHEMES.get("d2d-underlay", "dqn")
    assert spec.trainable and spec.needs_weights and spec.exchange == "none"
    assert registry.learner(spec.learners[0]).trains == "q"
    learner = dqn(small())
    cfg = learner.dqn.cfg
    assert (cfg.sharing, cfg.gamma, cfg.fingerprint) == ("per-agent", 0.95, False)
    assert len(learner.dqn.online) == 3 and cfg.hidden == (16, 8)
    # epsilon decays over the half of the updates after the warm-up: 100 slots, 8 warm-up
    assert cfg.epsilon_steps == 46 and learner.epsilon == 1.0
    assert isinstance(make_learner(small(), "iac", 0, np.zeros((3, 2)), SMALL, 100), MaacPairs)


def test_the_pairs_numpy_q_network_is_the_learners_torch_one() -> None:
    s = small()
    learner = dqn(s, seed=3)
    v = learner.get_variables()
    obs = np.random.default_rng(4).normal(size=(7, 3, observation_dim(s)))
    torch_q = learner.dqn.q_values(obs)
    greedy = learner.act(obs, np.random.default_rng(0), explore=False)
    assert (greedy == torch_q.argmax(-1)).all()
    assert len({tuple(g) for g in greedy}) > 1  # the observations matter
    for i in range(3):
        assert np.allclose(q_values(v, i, obs[:, i]), torch_q[:, i], atol=1e-5)
        own = {k: x for k, x in v.items() if k.startswith(f"agent{i}.")}
        pair = PairAgent(i, s, "dqn", seed=0, variables=own)
        for e in range(7):
            o = PairObservation(obs[e, i], np.zeros(4), np.zeros(4), slot=e)
            assert pair.select_action(o) == int(torch_q[e, i].argmax())
    # training: epsilon-greedy at the rate sent with the weights
    own = {k: x for k, x in v.items() if k.startswith("agent0.")}
    o = PairObservation(obs[0, 0], np.zeros(4), np.zeros(4), explore=True)
    best = int(torch_q[0, 0].argmax())
    for eps, low, high in ((1.0, 8, 16), (0.0, 1, 1)):
        pair = PairAgent(0, s, "dqn", seed=0, variables={**own, "agent0.epsilon": np.array([eps])})
        seen = [pair.select_action(o) for _ in range(200)]
        assert low <= len(set(seen)) <= high and best in seen


def test_each_pairs_q_network_learns_from_its_own_experience_only() -> None:
    s = small()
    d = observation_dim(s)
    rng = np.random.default_rng(5)
    obs, nxt = rng.normal(size=(20, 3, d)), rng.normal(size=(20, 3, d))
    act, rew = rng.integers(0, 8, (20, 3)), rng.normal(size=(20, 3))
    a, b = dqn(s, seed=1), dqn(s, seed=1)
    other = obs.copy()
    other[:, 1] += 1.0
    other_rew = rew.copy()
    other_rew[:, 2] -= 3.0
    a.observe(obs, act, rew, nxt)
    b.observe(other, act, other_rew, nxt)
    for _ in range(3):
        assert a.step() and b.step()
    va, vb = a.get_variables(), b.get_variables()
    for i, same in ((0, True), (1, False), (2, False)):
        w = f"agent{i}.q.0.weight"
        assert np.array_equal(va[w], vb[w]) is same, i
    assert a.updates == 3 and va["agent0.epsilon"][0] < 1.0


def test_local_training_writes_typed_weights_and_the_curve(tmp_path: Path) -> None:
    s = small()
    cfg = D2dTrainConfig(maac=dataclasses.replace(SMALL, learning_starts=20), random_slots=20,
                         log_every=10)
    curve = train_and_write(s, "dqn", 60, 2, cfg, tmp_path)
    with (tmp_path / "training.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(float(r["updates"])) for r in rows] == [0, 1, 11, 21, 31, 41]
    eps = [float(r["epsilon"]) for r in rows[1:]]
    assert eps == sorted(eps, reverse=True) and eps[0] > 0.9 and eps[-1] == pytest.approx(0.02)
    assert np.isfinite(float(rows[-1]["loss"])) and curve[-1]["updates"] == 41
    art = load(tmp_path / "weights.npz")
    assert (art.meta.kind, art.meta.scheme, art.meta.algo) == ("d2d-underlay", "dqn", "dqn")
    assert art.meta.dims == {"obs_dim": observation_dim(s), "n_actions": 8, "n_agents": 3}
    assert art.meta.extra["sharing"] == "per-agent" and art.meta.extra["updates"] == 41
    check_q_networks(s, art.arrays)
    untrained = dqn(s, seed=2, slots=60).get_variables()
    assert not np.array_equal(untrained["agent0.q.4.weight"], art.arrays["agent0.q.4.weight"])


def test_a_dqn_run_refuses_actor_weights_and_the_actor_schemes_refuse_q_networks(
        tmp_path: Path) -> None:
    s = small()
    q = dqn(s).get_variables()
    actors = make_learner(s, "maac", 0, np.zeros((3, 2)), SMALL, 100).get_variables()
    with pytest.raises(ValueError, match="no Q network for pair 0.*hold an actor"):
        check_q_networks(s, actors)
    with pytest.raises(ValueError, match="no actor for pair 0.*hold a DQN Q network"):
        check_actors(s, q)
    check_actors(s, actors)
    check_q_networks(s, q)
    # what `rrmbed run --weights` does before any process starts
    resolved = resolve(SCENARIOS / "d2d-n10.toml", {"radio.n_pairs": 3, "radio.n_rb": 4})
    files = {}
    for scheme in ("maac", "dqn"):
        cfg = D2dTrainConfig(maac=SMALL, random_slots=4, log_every=5)
        files[scheme] = tmp_path / scheme / "weights.npz"
        train_and_write(resolved.scenario, scheme, 5, 0, cfg, files[scheme].parent)
    for scheme, foreign in (("dqn", "maac"), ("maac", "dqn"), ("iac", "dqn")):
        spec = SCHEMES.get("d2d-underlay", scheme)
        with pytest.raises(RunError, match=f"{files[foreign]}: no "):
            load_weights(resolved, spec, files[foreign], False)
        assert load_weights(resolved, spec, files["maac" if scheme != "dqn" else "dqn"], False)
