"""MAAC / NAAC (paper 002): NAAC's neighbour selection, the critics' input widths, the soft
target update, the actors the pairs download, and the local training driver's files."""

from __future__ import annotations

import copy
import csv
import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from channel_server.d2d import D2dScenario
from channel_server.d2d_air import D2dAir
from controller.learners import registry
from controller.learners.maac import (
    Maac,
    MaacConfig,
    MaacDims,
    critic_members,
    soft_update,
)
from controller.training.d2d_train import D2dTrainConfig, pair_positions, train_and_write
from node.d2d_observation import observation_dim
from node.pair_agent import actor_logits, check_actors, own_actor
from protocols.weights import load

SMALL = MaacConfig(actor_hidden=(16, 8), critic_hidden=(32, 16, 8), batch_size=8,
                   learning_starts=8, replay_capacity=256)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_naac_neighbours_are_the_nearest_pairs_itself_first() -> None:
    xy = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [7.0, 0.0], [8.0, 0.0]])
    nb = critic_members(xy, "neighbours", 2)
    assert nb.tolist() == [[0, 1, 2], [1, 0, 2], [2, 1, 0], [3, 4, 2], [4, 3, 2]]
    # ties go to the lower index
    assert critic_members([[0, 0], [1, 0], [-1, 0]], "neighbours", 1).tolist() == [
        [0, 1], [1, 0], [2, 0]]
    # MAAC: every pair, in index order, for every critic
    assert critic_members(xy, "all", 3).tolist() == [list(range(5))] * 5
    with pytest.raises(ValueError, match="lambda"):
        critic_members(xy, "neighbours", 5)


def test_naac_neighbours_of_a_drop_by_pair_midpoints() -> None:
    s = D2dScenario(name="t")
    air = D2dAir(s, 1, seed=3)
    d = air.world.drop
    mid = (d.tx_xy[0] + d.rx_xy[0]) / 2
    assert np.allclose(pair_positions(air), mid)
    nb = critic_members(mid, "neighbours", 3)
    for i in range(10):
        dist = np.linalg.norm(mid - mid[i], axis=1)
        dist[i] = np.inf
        assert nb[i, 0] == i and set(nb[i, 1:]) == set(np.argsort(dist)[:3])
        assert list(dist[nb[i, 1:]]) == sorted(dist[nb[i, 1:]])


def maac(critic: str, n: int = 5, d: int = 40, a: int = 10, cfg: MaacConfig = SMALL,
         seed: int = 0) -> Maac:
    rng = np.random.default_rng(seed)
    dims = MaacDims(obs_dim=d, n_actions=a, n_agents=n, positions=rng.normal(size=(n, 2)))
    name = "maac" if critic == "all" else "naac"
    out: Maac = registry.make(name, dims, seed, dataclasses.replace(cfg, critic=critic),
                              trains="d2d-actors")
    return out


@pytest.mark.parametrize(("critic", "members"), [("all", 5), ("neighbours", 4), ("own", 1)])
def test_critic_input_widths(critic: str, members: int) -> None:
    m = maac(critic)
    # MAAC: all N = 5 pairs' states (40 each) and one-hot actions (10 each);
    # NAAC with lambda = 3: the pair and its 3 neighbours
    assert (m.critic_state_width, m.critic_action_width) == (members * 40, members * 10)
    assert tuple(m.critic.state_layer.weight.shape) == (5, members * 40, 32)
    assert tuple(m.critic.layers[0].weight.shape) == (5, 32 + members * 10, 16)
    assert m.members.shape == (5, members)
    x = torch.arange(5 * 3 * 2, dtype=torch.float32).reshape(3, 5, 2)  # (B, N, F)
    g = m._gather(x)
    for i in range(5):  # critic i sees exactly its members' features, in order
        assert torch.equal(g[i], x[:, m.members[i]].reshape(3, -1))


def pair_params(m: Maac, i: int) -> list[torch.Tensor]:
    """Pair ``i``'s slice of every actor and critic parameter (online and target)."""
    return [p[i].detach().clone() for net in (m.actor, m.critic, m.actor_target,
                                              m.critic_target) for p in net.parameters()]


@pytest.mark.parametrize("critic", ["own", "all"])
def test_independent_critics_learn_from_their_own_pair_only(critic: str) -> None:
    """IAC (``own``): what the other pairs observed, did and got leaves pair 0's actor and
    critic exactly as they were; MAAC's (``all``) critic 0 sees them. (The global
    gradient-norm clip would couple the scales: off here.)"""
    cfg = dataclasses.replace(SMALL, max_grad_norm=math.inf)
    assert critic_members(np.zeros((4, 2)), "own", 3).tolist() == [[0], [1], [2], [3]]
    rng = np.random.default_rng(5)
    obs, act = rng.normal(size=(16, 5, 40)), rng.integers(0, 10, (16, 5))
    rew, nxt = rng.normal(size=(16, 5)), rng.normal(size=(16, 5, 40))
    other = obs.copy(), act.copy(), rew.copy(), nxt.copy()
    other[0][:, 1:] += 1.0
    other[1][:, 1:] = (other[1][:, 1:] + 3) % 10
    other[2][:, 1:] -= 2.0
    other[3][:, 1:] *= -1.0
    a, b = maac(critic, cfg=cfg), maac(critic, cfg=cfg)
    a.observe(obs, act, rew, nxt)
    b.observe(*other)
    for _ in range(3):
        assert a.step() and b.step()
    same = [torch.equal(x, y) for x, y in zip(pair_params(a, 0), pair_params(b, 0),
                                               strict=True)]
    if critic == "own":
        assert all(same)
        assert not all(torch.equal(x, y) for x, y in zip(pair_params(a, 1),
                                                         pair_params(b, 1), strict=True))
    else:
        assert not all(same)


def test_paper_sizes_and_the_actor_a_pair_downloads() -> None:
    cfg = MaacConfig()
    assert (cfg.actor_hidden, cfg.critic_hidden) == ((512, 128), (1024, 512, 256))
    assert (cfg.actor_learning_rate, cfg.critic_learning_rate, cfg.gamma, cfg.tau) == (
        1e-4, 1e-3, 0.95, 0.01)
    assert (cfg.replay_capacity, cfg.learning_starts, cfg.neighbours) == (1_000_000, 2000, 3)
    m = maac("neighbours", n=4, cfg=dataclasses.replace(cfg, replay_capacity=16))
    own = own_actor(m.get_variables(), 2)
    shapes = [own[f"agent2.actor.{j}.weight"].shape for j in range(3)]
    assert shapes == [(512, 40), (128, 512), (10, 128)]
    # one actor: (40 + 1) 512 + (512 + 1) 128 + (128 + 1) 10 float32 = 351,784 bytes,
    # the paper's "about 300 KB"
    assert sum(v.nbytes for v in own.values()) == 4 * (41 * 512 + 513 * 128 + 129 * 10)


def test_soft_update_moves_targets_by_tau() -> None:
    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    old = copy.deepcopy(b)
    soft_update(b, a, 0.25)
    for t, o, x in zip(b.parameters(), a.parameters(), old.parameters(), strict=True):
        assert torch.allclose(t, 0.25 * o + 0.75 * x)
    # in the learner: after one step, every target = tau online + (1 - tau) old target
    m = maac("neighbours", cfg=dataclasses.replace(SMALL, tau=0.1))
    rng = np.random.default_rng(1)
    m.observe(rng.normal(size=(16, 5, 40)), rng.integers(0, 10, (16, 5)),
              rng.normal(size=(16, 5)), rng.normal(size=(16, 5, 40)))
    before = [copy.deepcopy(m.actor_target), copy.deepcopy(m.critic_target)]
    online_before = [p.detach().clone() for p in m.critic.parameters()]
    stats = m.step()
    assert set(stats) == {"critic_loss", "actor_loss", "q_mean", "entropy"} and m.version == 1
    for tgt, onl, old_t in ((m.actor_target, m.actor, before[0]),
                            (m.critic_target, m.critic, before[1])):
        for t, o, x in zip(tgt.parameters(), onl.parameters(), old_t.parameters(),
                           strict=True):
            assert torch.allclose(t, 0.1 * o + 0.9 * x, atol=1e-7)
    assert any(not torch.equal(p, q) for p, q in zip(m.critic.parameters(), online_before,
                                                     strict=True))


@pytest.mark.parametrize("critic", ["all", "neighbours", "own"])
def test_every_own_actions_q_in_one_pass_is_the_critic_on_each_one_hot(critic: str) -> None:
    """Critics.each_own_action against the critic called once per own action, with that
    action's one-hot put into the pair's own slot of the members' actions."""
    m = maac(critic, seed=7)
    rng = np.random.default_rng(8)
    obs = torch.as_tensor(rng.normal(size=(6, 5, 40)), dtype=torch.float32)
    act = torch.nn.functional.one_hot(torch.as_tensor(rng.integers(0, 10, (6, 5))),
                                      10).float()
    members = m.members.shape[1]
    states, actions = m._gather(obs), m._gather(act).reshape(5, 6, members, 10)
    own = torch.as_tensor(m.members == np.arange(5)[:, None])[:, None, :, None]
    with torch.no_grad():
        fast = m.critic.each_own_action(states, torch.where(own, 0.0, actions).flatten(2),
                                        m.own_rows)
        for k in range(10):
            put = torch.where(own, torch.eye(10)[k], actions).flatten(2)
            assert torch.allclose(fast[:, :, k], m.critic(states, put), atol=1e-5)


def test_the_expected_update_turns_each_actor_to_its_critics_best_action() -> None:
    """With the critics held still (and their weights scaled up, so that their Q values
    differ between actions by about 0.4), the expected policy gradient (no entropy) turns
    the actors' greedy actions to the ones their critics value most, state by state (a
    softmax policy gradient can stall where the best action's probability got small:
    most, not all)."""
    cfg = dataclasses.replace(SMALL, actor_hidden=(64,), critic_learning_rate=0.0,
                              actor_learning_rate=1e-2, entropy=0.0, batch_size=32,
                              max_grad_norm=math.inf)
    m = maac("own", cfg=cfg, seed=9)
    with torch.no_grad():
        for p in m.critic.parameters():
            p.mul_(3.0)
    rng = np.random.default_rng(10)
    obs = rng.normal(size=(32, 5, 40))
    m.observe(obs, rng.integers(0, 10, (32, 5)), rng.normal(size=(32, 5)),
              rng.normal(size=(32, 5, 40)))
    x = torch.as_tensor(obs, dtype=torch.float32)
    with torch.no_grad():
        q = m.critic.each_own_action(m._gather(x), torch.zeros(5, 32, 10), m.own_rows)
    best = q.argmax(-1).T.numpy()  # (B, N)
    agree = lambda: float((m.logits(obs).argmax(-1) == best).mean())  # noqa: E731
    before = agree()
    for _ in range(300):
        m.step()
    assert len(np.unique(best)) >= 5  # the best action depends on the state
    assert before < 0.3 and agree() > 0.8


def test_learner_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="actor_update"):
        MaacConfig(actor_update="soft")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="gamma"):
        MaacConfig(gamma=1.0)
    with pytest.raises(ValueError, match="entropy"):
        MaacConfig(entropy=-0.1)


def test_no_update_before_the_warm_up_fills_the_replay() -> None:
    m = maac("all", cfg=dataclasses.replace(SMALL, learning_starts=20))
    rng = np.random.default_rng(2)
    m.observe(rng.normal(size=(19, 5, 40)), rng.integers(0, 10, (19, 5)),
              rng.normal(size=(19, 5)), rng.normal(size=(19, 5, 40)))
    assert m.step() == {} and m.version == 0
    m.observe(rng.normal(size=(1, 5, 40)), rng.integers(0, 10, (1, 5)),
              rng.normal(size=(1, 5)), rng.normal(size=(1, 5, 40)))
    assert m.step() and m.version == 1


def test_the_pairs_numpy_actor_is_the_learners_target_actor() -> None:
    m = maac("all", seed=4)
    obs = np.random.default_rng(3).normal(size=(6, 5, 40))
    v = m.get_variables()
    torch_logits = m.logits(obs, target=True)
    for i in range(5):
        assert np.allclose(actor_logits(v, i, obs[:, i]), torch_logits[:, i], atol=1e-5)
    other = maac("all", seed=5)
    other.set_actor_variables(v)
    assert np.allclose(other.logits(obs), torch_logits, atol=1e-6)
    assert np.allclose(other.logits(obs, target=True), torch_logits, atol=1e-6)


def test_local_training_writes_weights_a_run_can_load(tmp_path: Path) -> None:
    s = D2dScenario(name="t")
    s = dataclasses.replace(s, radio=dataclasses.replace(s.radio, n_pairs=3, n_rb=4))
    cfg = D2dTrainConfig(maac=dataclasses.replace(SMALL, neighbours=1), random_slots=20,
                         log_every=10)
    curve = train_and_write(s, "naac", 40, 2, cfg, tmp_path)
    assert [int(c["slot"]) for c in curve] == [10, 20, 30, 40]
    assert [int(c["updates"]) for c in curve] == [0, 1, 11, 21]  # from slot 19 on
    with (tmp_path / "training.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and float(rows[-1]["updates"]) == 21
    art = load(tmp_path / "weights.npz")
    assert (art.meta.kind, art.meta.scheme, art.meta.algo) == ("d2d-underlay", "naac", "naac")
    assert art.meta.dims == {"obs_dim": observation_dim(s), "n_actions": 4, "n_agents": 3}
    assert len(art.meta.extra["critic_members"]) == 3
    check_actors(s, art.arrays)
