"""The multi-agent V2X environment: determinism, observation (12)/(14) contents, the
vehicle-node ``observe`` path, episode end, silent delivered links, payload and reward
bookkeeping against hand computations from the env's own reported rates and gains."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from channel_server.v2x import (
    ObservationConfig,
    TrafficConfig,
    V2xScenario,
    load_v2x_scenario,
)
from controller.training.v2x_env import (
    LocalSlice,
    V2xEnv,
    decode_action,
    neighbour_counts,
    observe,
    random_policy_metrics,
)

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = load_v2x_scenario(ROOT / "scenarios" / "v2x-manhattan.toml")


def _random_actions(rng: np.random.Generator, env: V2xEnv) -> dict[str, tuple[int, int]]:
    return {a: (int(rng.integers(env.n_rb)), int(rng.integers(env.n_levels)))
            for a in env.agents}


def test_reset_spaces_and_flat_action_encoding() -> None:
    env = V2xEnv(SCENARIO)
    obs, infos = env.reset(seed=3)
    assert env.agents == ["v2v-0", "v2v-1", "v2v-2", "v2v-3"]
    assert set(obs) == set(infos) == set(env.agents)
    assert env.observation_dim == 4 * 4 + 2 + 2 == obs["v2v-0"].shape[0]
    assert obs["v2v-0"].dtype == np.float32
    assert env.n_actions == 16
    rb, level = decode_action(np.arange(16), 4)
    assert rb.tolist() == [0, 1, 2, 3] * 4
    assert level.tolist() == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4
    no_fp = dataclasses.replace(SCENARIO, observation=ObservationConfig(fingerprint=False))
    env2 = V2xEnv(no_fp)
    assert env2.reset(seed=3)[0]["v2v-1"].shape == (18,)


def test_same_seed_same_actions_identical_trajectories() -> None:
    def run(seed: int) -> list[np.ndarray]:
        env = V2xEnv(SCENARIO)
        rng = np.random.default_rng(99)  # the actions, identical for both runs
        trace = []
        for episode in range(2):
            obs, _ = env.reset(seed=seed if episode == 0 else None)
            trace += [obs[a] for a in env.agents]
            while env.agents:
                obs, rew, term, trunc, info = env.step(_random_actions(rng, env))
                trace += [obs[a] for a in obs] + [np.array([rew["v2v-0"]])]
                trace += [np.array([info[a]["v2v_rate_bps"] for a in info])]
        return trace

    a, b, c = run(5), run(5), run(6)
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_observation_contents_by_hand() -> None:
    env = V2xEnv(SCENARIO)
    env.set_fingerprint(1500, 0.3)
    o0, _ = env.reset(seed=8)
    world = env.air.world
    assert world is not None
    gi_db, gv_db = world.gains_db()
    tx, rx = env.air.tx, env.air.rx[0]
    for k, name in enumerate(env.agents):
        x = o0[name]
        np.testing.assert_allclose(x[0:4], (gv_db[0, tx[k], rx[k]] + 100) / 30, rtol=1e-5)
        np.testing.assert_allclose(x[4:8], (gi_db[0, tx[k]] + 100) / 30, rtol=1e-5)
        np.testing.assert_array_equal(x[12:16], 0.0)  # nobody transmitted yet
        np.testing.assert_allclose(x[16:], [1.0, 1.0, 0.5, 0.3], rtol=1e-6)
    # one slot with hand-picked actions: RBs 0, 0, 2, 3 at levels 0, 1, 2, 0
    gi, gv = (10 ** (g / 10) for g in world.gains_db())
    rbs, levels = [0, 0, 2, 3], [0, 1, 2, 0]
    obs, rew, term, trunc, info = env.step(
        {f"v2v-{k}": (rbs[k], levels[k]) for k in range(4)})
    p = [10 ** ((SCENARIO.radio.v2v_power_levels_dbm[lv] - 30) / 10) for lv in levels]
    pc, noise = 10 ** ((23 - 30) / 10), 10 ** ((-114 - 30) / 10)
    for k in range(4):
        x = obs[f"v2v-{k}"]
        for m in range(4):
            interf = pc * gv[0, m, rx[k], m] + noise
            interf += sum(p[j] * gv[0, tx[j], rx[k], m] for j in range(4)
                          if j != k and rbs[j] == m)
            want = (10 * math.log10(interf) + 30 + 114) / 30
            assert x[8 + m] == pytest.approx(want, abs=1e-5)
        others = [rbs[j] for j in range(4) if j != k]
        np.testing.assert_allclose(x[12:16], np.bincount(others, minlength=4) / 3)
        assert x[17] == pytest.approx(0.99)  # U_t / T after one 1 ms slot
        sent = info[f"v2v-{k}"]["v2v_rate_bps"] * 1e-3
        assert x[16] == pytest.approx(max(16960 - sent, 0) / 16960, abs=1e-6)
        assert term[f"v2v-{k}"] is False and trunc[f"v2v-{k}"] is False


def test_observe_from_a_node_slice_equals_the_env_observation() -> None:
    env = V2xEnv(SCENARIO)
    env.reset(seed=12)
    env.set_fingerprint(10, 0.9)
    rng = np.random.default_rng(0)
    for _ in range(3):
        acts = _random_actions(rng, env)
        obs, *_ = env.step(acts)
    slices = env.local_slices()
    last = [acts[f"v2v-{k}"][0] for k in range(4)]
    for k in range(4):
        own = LocalSlice(
            v2v_gain_db=slices.v2v_gain_db[0, k].copy(),
            bs_gain_db=slices.bs_gain_db[0, k].copy(),
            interference_dbm=slices.interference_dbm[0, k].copy(),
            remaining_bits=float(np.asarray(slices.remaining_bits)[0, k]),
            remaining_time_s=0.097,
        )
        counts = neighbour_counts([last[j] for j in range(4) if j != k], 4)
        x = observe(own, counts, SCENARIO, fingerprint=(10, 0.9))
        np.testing.assert_allclose(x, obs[f"v2v-{k}"], rtol=1e-6, atol=1e-6)


def test_episode_ends_at_the_deadline_and_reward_matches_rates() -> None:
    env = V2xEnv(SCENARIO)
    env.reset(seed=21)
    rng = np.random.default_rng(1)
    steps = 0
    sent = np.zeros(4)
    first_full = np.full(4, np.nan)
    while env.agents:
        obs, rew, term, trunc, info = env.step(_random_actions(rng, env))
        steps += 1
        v2v = np.array([info[f"v2v-{k}"]["v2v_rate_bps"] for k in range(4)])
        done = np.array([info[f"v2v-{k}"]["delivered"] for k in range(4)])
        v2i = info["v2v-0"]["v2i_sum_rate_bps"]
        want = 0.1 * v2i / 1e6 + 0.9 * np.where(done, 40.0, v2v / 1e6).sum()
        assert rew["v2v-0"] == pytest.approx(want, rel=1e-9)
        assert len(set(rew.values())) == 1  # one global reward
        sent += v2v * 1e-3
        first_full = np.where(np.isnan(first_full) & (sent >= 16960), steps * 1e-3, first_full)
        np.testing.assert_allclose([info[f"v2v-{k}"]["remaining_bits"] for k in range(4)],
                                   np.maximum(16960 - sent, 0.0), atol=1e-6)
        assert all(term.values()) == (steps == 100)
        assert not any(trunc.values())
    assert steps == 100
    times = env.episode_metrics()["delivery_time_s"][0]
    # delivered at the end of the first slot where the cumulative bits reach B
    np.testing.assert_allclose(times, first_full, rtol=1e-12)
    assert (~np.isnan(times)).any()
    with pytest.raises(RuntimeError):
        env.step(_random_actions(rng, env))


def test_delivered_links_fall_silent() -> None:
    tiny = dataclasses.replace(SCENARIO, traffic=TrafficConfig(payload_bytes=1))
    env = V2xEnv(tiny, n_envs=4)
    env.reset(seed=2)
    rb = np.broadcast_to(np.arange(4), (4, 4))  # link k on RB k, all at 23 dBm
    full = np.zeros((4, 4), dtype=np.int64)
    first = env.step_arrays(rb, full)
    done = first.rates.v2v_rate_bps * 1e-3 >= 8.0
    assert done.any() and not done.all()
    np.testing.assert_allclose(env.episode_metrics()["delivery_time_s"][done], 0.001)
    assert np.isnan(env.episode_metrics()["delivery_time_s"][~done]).all()
    world = env.air.world
    assert world is not None
    gi = 10 ** (world.gains_db()[0] / 10)
    second = env.step_arrays(rb, full)
    assert (second.rates.v2v_rate_bps[done] == 0.0).all()
    # V2I link m only hears V2V link m (vehicle m, on RB m) while that one is active
    pc, noise = 10 ** ((23 - 30) / 10), 10 ** ((-114 - 30) / 10)
    for e in range(4):
        for m in range(4):
            interf = 0.0 if done[e, m] else pc * gi[e, m, m]
            sinr = pc * gi[e, m, m] / (interf + noise)
            assert second.rates.v2i_sinr[e, m] == pytest.approx(sinr, rel=1e-6)


def test_batched_env_shapes_and_random_baseline() -> None:
    env = V2xEnv(SCENARIO, n_envs=3)
    obs, _ = env.reset(seed=4)
    assert obs["v2v-2"].shape == (3, 20)
    acts = {a: np.array([[0, 0], [1, 1], [2, 3]]) for a in env.agents}
    obs, rew, term, trunc, info = env.step(acts)
    assert rew["v2v-0"].shape == (3,)
    assert info["v2v-3"]["v2v_rate_bps"].shape == (3,)
    # batch row 2 of agent 0 chose power level 3 (-100 dBm): near-zero rate
    assert info["v2v-0"]["v2v_rate_bps"][2] < 1e3
    with pytest.raises(ValueError):
        env.step({a: np.array([[4, 0]] * 3) for a in env.agents})
    m1 = random_policy_metrics(SCENARIO, seed=1, n_episodes=20)
    m2 = random_policy_metrics(SCENARIO, seed=1, n_episodes=20)
    assert m1 == m2
    assert 0.0 <= m1["delivery_rate"] <= 1.0
    assert 5.0 < m1["sum_v2i_rate_mbps"] < 80.0


def test_first_reset_needs_a_seed() -> None:
    with pytest.raises(ValueError):
        V2xEnv(V2xScenario(name="t", description="")).reset()
