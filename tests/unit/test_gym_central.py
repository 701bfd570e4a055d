"""The Gymnasium environment of the centralized view (controller.envs.central): Gymnasium's
checker, the reward against the pure core, seeding, and Stable-Baselines3 PPO learning on it."""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections.abc import Iterator

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from channel_server.air import Air
from channel_server.config import load_scenario
from channel_server.rates import sum_rate_bps_hz
from controller.envs.central import ENV_ID, CentralPowerEnv, mean_reward, reference_rewards
from controller.learners.threads import torch_threads
from tests.helpers import ROOT, S3, python_example, readme_section

SLOTS = 5


def test_check_env_passes_without_warnings() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env = gym.make(ENV_ID, scenario=str(S3)).unwrapped  # registered: render/close checked
        check_env(env)
        check_env(CentralPowerEnv(S3, episode_slots=3), skip_render_check=True)
    assert [str(w.message) for w in caught] == []
    b, k = 3, 2
    assert env.observation_space.shape == (b * k * b,)
    assert env.observation_space.dtype == np.float32
    assert env.action_space.shape == (b * k,)
    assert float(env.action_space.low.min()) == 0.0 and float(env.action_space.high.max()) == 1.0


@pytest.mark.parametrize("sum_power", [False, True])
def test_reward_is_the_sum_rate_of_the_observed_slot(sum_power: bool) -> None:
    scenario = load_scenario(S3)
    radio = dataclasses.replace(scenario.radio, sum_power_constraint=sum_power)
    scenario = dataclasses.replace(scenario, radio=radio)
    env = CentralPowerEnv(scenario, episode_slots=SLOTS)
    pmax_w = 10.0 ** ((radio.pmax_dbm - 30.0) / 10.0)
    air = Air(radio, 11)  # the same channel, drawn apart from the env
    gains = air.reset()[0]
    env.reset(seed=11)
    rng = np.random.default_rng(0)
    for slot in range(SLOTS):
        action = rng.uniform(-0.5, 1.5, size=6).astype(np.float32)  # out-of-Box values clip
        frac = np.minimum(np.maximum(action.astype(np.float64), 0.0), 1.0).reshape(3, 2)
        if sum_power:
            frac = frac / np.maximum(frac.sum(axis=1, keepdims=True), 1.0)
        want = float(sum_rate_bps_hz(gains, frac * pmax_w, radio.noise_w))
        _, reward, terminated, truncated, info = env.step(action)
        assert reward == pytest.approx(want, rel=1e-12)
        np.testing.assert_allclose(info["powers_w"], frac * pmax_w, rtol=1e-12)
        assert not terminated and truncated == (slot == SLOTS - 1)
        gains = air.step()[0]
    full = pmax_w / 2 if sum_power else pmax_w
    air = Air(radio, 11)
    gains = [air.reset()[0]] + [air.step()[0] for _ in range(SLOTS - 1)]
    want = np.mean([sum_rate_bps_hz(g, np.full((3, 2), full), radio.noise_w) for g in gains])
    assert reference_rewards(env, [11])["max_power"] == pytest.approx(want, rel=1e-12)


def test_same_seed_same_episode() -> None:
    def episode(env: CentralPowerEnv, seed: int | None) -> tuple[np.ndarray, list[float]]:
        obs, _ = env.reset(seed=seed)
        seen, rewards = [obs], []
        for _ in range(SLOTS):
            obs, reward, _, _, _ = env.step(np.full(6, 0.7, dtype=np.float32))
            seen.append(obs)
            rewards.append(reward)
        return np.stack(seen), rewards

    a, b = CentralPowerEnv(S3, SLOTS), CentralPowerEnv(S3, SLOTS)
    obs_a, rew_a = episode(a, 3)
    obs_b, rew_b = episode(b, 3)
    np.testing.assert_array_equal(obs_a, obs_b)
    assert rew_a == rew_b
    assert not np.array_equal(episode(b, 4)[0], obs_a)
    # reset(seed=s) is the air's drop 0 of run s; the next unseeded reset its drop 1
    air = Air(a.radio, 3)
    air.reset()
    next_obs, _ = episode(a, None)
    np.testing.assert_array_equal(next_obs[0], a.observe(air.reset()[0]))
    np.testing.assert_array_equal(episode(a, 3)[0], obs_a)


@pytest.fixture
def one_torch_thread() -> Iterator[None]:  # small MLPs on 2 busy cores: one thread is faster
    with torch_threads(1):
        yield


def test_ppo_learns_better_than_random_power(one_torch_thread: None) -> None:
    from stable_baselines3 import PPO

    env = CentralPowerEnv(S3, episode_slots=10)
    # gamma = 0: powers never change the channel, each slot is its own problem (the testbed's)
    model = PPO("MlpPolicy", env, n_steps=256, batch_size=64, gamma=0.0, seed=0, device="cpu")
    model.learn(total_timesteps=4096)
    seeds = range(1000, 1020)  # evaluation drops apart from the training ones
    ppo = mean_reward(env, lambda obs: model.predict(obs, deterministic=True)[0], seeds)
    ref = reference_rewards(env, seeds)
    assert ppo > max(ref.values()), (ppo, ref)  # random power, and max power too


def test_the_readme_example_runs(one_torch_thread: None, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    """The python block of the README's Gymnasium section, as a fresh clone runs it."""
    section = readme_section("Gymnasium (centralized view)")
    code = python_example(section)
    monkeypatch.chdir(ROOT)
    scope: dict[str, object] = {}
    exec(compile(code, "README.md:Gymnasium", "exec"), scope)
    ref = scope["ref"]
    assert isinstance(ref, dict) and scope["ppo"] > max(ref.values())
    printed = capsys.readouterr().out.strip()
    quoted = re.search(r"`(PPO [^`]*)`", section)
    assert quoted, "README quotes no figures"
    # random and max-power are numpy alone and exact; PPO's last digit may vary with the CPU
    assert printed.split(",")[1:] == quoted.group(1).split(",")[1:], (printed, quoted.group(1))
