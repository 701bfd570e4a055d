"""The learner interfaces and registry: every registered learner is a core.Learner (and so a
VariableSource), one step on a tiny batch gives finite metrics, moves its variables and its
version; unknown names are refused with the known ones listed."""

from __future__ import annotations

import math
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
import torch

from controller.learners import registry
from controller.learners.registry import QDims, UnknownLearner
from protocols.core import Actor, Learner, VariableSource

OBS_DIM, ACT_DIM = 4, 2


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_batch_gaussian(policy: Any, rng: np.random.Generator) -> Any:
    """16 single-step episodes of a made-up task (reward: -|a - 0.3|^2)."""
    from controller.training.rollout import Batch

    obs = rng.standard_normal((16, OBS_DIM))
    with torch.no_grad():
        mean, log_std = policy(torch.as_tensor(obs))
    noise = torch.as_tensor(rng.standard_normal((16, ACT_DIM)))
    act = (mean + log_std.exp() * noise).detach().numpy()
    rewards = -((act - 0.3) ** 2).sum(-1)
    return Batch(obs, act, rewards, np.ones(16, dtype=bool), rewards.copy())


def tiny_batch_q(dims: QDims, rng: np.random.Generator) -> Any:
    from controller.learners.dqn import Transitions

    n, a = 8, dims.n_agents
    return Transitions(obs=rng.standard_normal((n, a, dims.obs_dim)),
                       actions=rng.integers(0, dims.n_actions, (n, a)),
                       rewards=rng.standard_normal(n),
                       next_obs=rng.standard_normal((n, a, dims.obs_dim)),
                       terminated=np.zeros(n))


def build(name: str) -> tuple[Learner, Any]:
    """A small learner of ``name`` and a batch it can step on."""
    spec = registry.learner(name)
    rng = np.random.default_rng(0)
    if spec.trains == "gaussian":
        from node.policy import PolicyConfig, seeded_policy

        policy = seeded_policy(PolicyConfig(OBS_DIM, ACT_DIM, hidden=(8,)), 1)
        config: Any = None
        if name == "trpo":
            from controller.learners.trpo import TrpoConfig

            config = TrpoConfig(value_hidden=(8,), value_epochs=1, value_minibatch=16)
        elif name == "a2c":
            from controller.learners.a2c import A2cConfig

            config = A2cConfig(value_hidden=(8,))
        return spec.make(policy, 3, config), tiny_batch_gaussian(policy, rng)
    if spec.trains == "d2d-actors":
        from controller.learners.maac import MaacConfig, MaacDims

        mdims = MaacDims(obs_dim=3, n_actions=4, n_agents=3, positions=rng.normal(size=(3, 2)))
        mcfg = MaacConfig(critic="neighbours" if name == "naac" else "all", neighbours=1,
                          actor_hidden=(8,), critic_hidden=(8, 8), batch_size=4,
                          learning_starts=4, replay_capacity=64)
        maac: Any = spec.make(mdims, 3, mcfg)
        maac.observe(rng.standard_normal((8, 3, 3)), rng.integers(0, 4, (8, 3)),
                     rng.standard_normal((8, 3)), rng.standard_normal((8, 3, 3)))
        return maac, None  # it samples its own replay
    if spec.trains in ("ic-mpgnn", "ic-mlp"):
        from channel_server.interference import ic_scenario_from_dict, sample_gains
        from controller.learners.gnn import GnnConfig, IcBatch, IcDims

        s = ic_scenario_from_dict({"name": "tiny", "radio": {"n_links": 4}})
        gains, graph = sample_gains(s, rng, 8)
        dims = IcDims(n_links=4, pmax_w=s.radio.pmax_w, noise_w=s.radio.noise_w)
        cfg_ic = GnnConfig(mlp1_hidden=(8,), message_dim=8, mlp2_hidden=(8,), mlp_hidden=(8,))
        return spec.make(dims, 3, cfg_ic), IcBatch(gains, graph)
    assert spec.trains == "q"
    from controller.learners.dqn import DqnConfig

    dims = QDims(obs_dim=3, n_actions=4, n_agents=2)
    cfg = DqnConfig(hidden=(8,), batch_size=4, learning_starts=4, replay_capacity=64)
    return spec.make(dims, 3, cfg), tiny_batch_q(dims, rng)


@pytest.mark.parametrize("name", registry.names())
def test_every_learner_is_a_learner_and_a_variable_source(name: str) -> None:
    learner, _ = build(name)
    assert isinstance(learner, Learner)
    assert isinstance(learner, VariableSource)
    assert not isinstance(learner, Actor)  # learners do not act through the Actor API


@pytest.mark.parametrize("name", registry.names())
def test_step_gives_finite_metrics_and_moves_the_variables(name: str) -> None:
    learner, batch = build(name)
    before = {k: v.copy() for k, v in learner.get_variables().items()}
    # float weights (an MPGNN also holds its layer count, an integer array)
    assert before and all(isinstance(v, np.ndarray) and v.dtype.kind in "fiu"
                          for v in before.values())
    assert any(v.dtype.kind == "f" for v in before.values())
    v0 = learner.version
    stats = learner.step(batch)
    assert stats and all(isinstance(v, float) for v in stats.values())
    assert all(math.isfinite(v) for v in stats.values()), stats
    after = learner.get_variables()
    assert after.keys() == before.keys()
    assert any(not np.array_equal(after[k], before[k]) for k in before)
    assert learner.version > v0


def test_variables_are_copies() -> None:
    learner, _ = build("trpo")
    v = learner.get_variables()
    k = next(iter(v))
    v[k][...] = 123.0
    assert not np.array_equal(learner.get_variables()[k], v[k])


def test_registry_declares_each_learner_once_with_its_policy_kind() -> None:
    assert registry.names() == ("trpo", "a2c", "dqn", "maac", "naac", "mpgnn", "ic-mlp")
    assert registry.names("gaussian") == ("trpo", "a2c")
    assert registry.names("q") == ("dqn",)
    assert registry.names("d2d-actors") == ("maac", "naac")
    assert registry.names("ic-mpgnn") == ("mpgnn",) and registry.names("ic-mlp") == ("ic-mlp",)
    for spec in registry.LEARNERS.values():
        assert spec.help and "\n" not in spec.help
    with pytest.raises(ValueError, match="already registered"):
        registry.register(registry.LEARNERS["trpo"])


def test_unknown_learner_lists_the_known_ones() -> None:
    with pytest.raises(UnknownLearner) as e:
        registry.learner("ppo")
    assert str(e.value) == ("unknown learner 'ppo'; known: trpo, a2c, dqn, maac, naac, mpgnn, "
                            "ic-mlp")
    assert isinstance(e.value, ValueError)
    with pytest.raises(UnknownLearner, match=r"unknown gaussian-policy learner 'dqn'; "
                                             r"known: trpo, a2c"):
        registry.make("dqn", None, 0, trains="gaussian")


def test_configure_sets_fields_over_the_defaults_and_names_what_is_wrong() -> None:
    from controller.learners.a2c import A2cConfig

    assert registry.configure("trpo", {}) is None  # the factory's defaults
    cfg = registry.configure("a2c", {"learning_rate": 1, "value_hidden": [32, 32],
                                     "optimizer": "adam"})
    assert cfg == A2cConfig(learning_rate=1.0, value_hidden=(32, 32), optimizer="adam")
    assert isinstance(cfg.learning_rate, float)
    with pytest.raises(ValueError, match="a2c option optimizer: expected one of"):
        registry.configure("a2c", {"optimizer": "sgd"})
    with pytest.raises(ValueError, match="a2c option value_hidden: expected an array"):
        registry.configure("a2c", {"value_hidden": 32})
    with pytest.raises(ValueError, match="learner 'dqn' takes no options"):
        registry.configure("dqn", {"gamma": 0.9})
    with pytest.raises(UnknownLearner, match="unknown learner 'ppo'"):
        registry.configure("ppo", {"gamma": 0.9})


def test_net_training_make_learner_is_the_registry_lookup() -> None:
    """Same seed: the registry's learner and make_learner's are the same stream."""
    from controller.learners.experience import make_learner
    from node.policy import PolicyConfig, seeded_policy

    pol = seeded_policy(PolicyConfig(OBS_DIM, ACT_DIM, hidden=(8,)), 1)
    a: Any = make_learner("a2c", pol, 5)
    b: Any = registry.make("a2c", pol, 5)
    for (ka, va), (kb, vb) in zip(a.value.state_dict().items(), b.value.state_dict().items(),
                                  strict=True):
        assert ka == kb and torch.equal(va, vb)
    with pytest.raises(UnknownLearner, match="known: trpo, a2c"):
        make_learner("dqn", pol, 5)
    c: Any = make_learner("trpo", pol, 5, (("max_kl", 0.03),))  # the run's learner options
    assert c.cfg.max_kl == 0.03


def test_a_generator_seed_is_used_as_is() -> None:
    from node.policy import PolicyConfig, seeded_policy

    pol = seeded_policy(PolicyConfig(OBS_DIM, ACT_DIM, hidden=(8,)), 1)
    rng = np.random.default_rng(7)
    registry.make("trpo", pol, rng)
    assert rng.bit_generator.state != np.random.default_rng(7).bit_generator.state


def test_importing_the_interfaces_and_registry_needs_no_torch() -> None:
    code = ("import sys; import controller.learners, controller.learners.registry; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr


def test_the_controllers_trainers_are_variable_sources(tmp_path: Any) -> None:
    from controller.learners.experience import NetworkTrainer, TrainOptions, make_learner
    from node.policy import PolicyConfig, seeded_policy
    from protocols.weights import load

    pol = seeded_policy(PolicyConfig(OBS_DIM, ACT_DIM, hidden=(8,)), 1)
    tr = NetworkTrainer(make_learner("trpo", pol, 0), 1, TrainOptions(scheme="full"))
    assert isinstance(tr, VariableSource) and not isinstance(tr, Learner)
    assert tr.get_variables().keys() == tr.learner.get_variables().keys()
    m = load(tr.artifact().save(tmp_path / "w.npz")).meta
    assert (m.scheme, m.kind, m.algo, m.steps, m.dims) == (
        "full", "cellular", "trpo", 0, {"obs_dim": OBS_DIM, "act_dim": ACT_DIM})
