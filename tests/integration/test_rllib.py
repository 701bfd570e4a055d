"""RLlib on the cellular ParallelEnv (controller.envs.rllib): multi-agent PPO with one policy
shared by every BS trains for a few iterations on a local Ray instance, through RLlib's own
``ParallelPettingZooEnv``. RLlib's counters, its episodes and its reported returns are checked
against an independent replay of the same drops on the pure core, and the README's example
runs and prints the figures the README quotes."""

from __future__ import annotations

import logging
import os
import random
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from channel_server.air import Air
from channel_server.config import RadioConfig, load_scenario
from channel_server.rates import csi_slice, rates_bps_hz, sum_rate_bps_hz
from node.observation import obs_full
from tests.helpers import ROOT, S3, python_example, readme_section

SEED = 5
CYCLES = 10
"""Slots per episode."""
BATCH = 200
"""Env steps (slots) sampled per iteration: 20 whole episodes."""
ITERATIONS = 3
AGENTS = ["bs_0", "bs_1", "bs_2"]


@pytest.fixture
def local_ray(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A local Ray instance of 2 CPUs, quiet, shut down whatever the test's outcome; the
    global state RLlib's seeding changes (torch's deterministic mode, the random, numpy and
    torch generators) is put back, and the empty log folder an Algorithm makes goes under
    tmp_path, not ~/ray_results."""
    import ray
    import torch

    assert not ray.is_initialized(), "a Ray instance is already up in this process"
    monkeypatch.setattr("ray.tune.trainable.trainable.DEFAULT_STORAGE_PATH",
                        str(tmp_path / "ray_results"))
    saved = (random.getstate(), np.random.get_state(), torch.get_rng_state(),
             torch.are_deterministic_algorithms_enabled(), torch.get_num_threads())
    torch.set_num_threads(1)  # small MLPs on 2 busy cores
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR)
    try:
        yield
    finally:
        ray.shutdown()
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        torch.set_rng_state(saved[2])
        torch.use_deterministic_algorithms(saved[3])
        torch.set_num_threads(saved[4])


def link_alone_bound(gains: np.ndarray, radio: RadioConfig) -> float:
    """An upper bound on a slot's sum-rate: every link alone at Pmax, free of interference
    (each rate from ``rates_bps_hz`` with only that link's power on)."""
    b_n, k_n = radio.n_cells, radio.users_per_cell
    total = 0.0
    for b in range(b_n):
        for k in range(k_n):
            powers = np.zeros((b_n, k_n))
            powers[b, k] = radio.pmax_w
            total += float(rates_bps_hz(gains, powers, radio.noise_w)[b, k])
    return total


def test_shared_ppo_trains_on_the_cellular_parallel_env(local_ray: None) -> None:
    from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv
    from ray.tune.registry import ENV_CREATOR, _global_registry

    from controller.envs.rllib import ENV_NAME, SHARED_POLICY, rllib_config

    episodes: list[dict[str, Any]] = []

    def record(*, episode: Any, prev_episode_chunks: Any = None, **_: Any) -> None:
        """RLlib's own record of each finished episode: per agent, the first observation,
        the module's actions and the return (summed over the episode's chunks)."""
        chunks = [*(prev_episode_chunks or []), episode]
        parts = {a: [c.agent_episodes[a] for c in chunks if a in c.agent_episodes]
                 for a in episode.agent_episodes}
        episodes.append({
            "obs0": {a: np.asarray(p[0].get_observations(0)) for a, p in parts.items()},
            "actions": {a: np.concatenate([np.asarray(e.get_actions()) for e in p if len(e)])
                        for a, p in parts.items()},
            "returns": {a: sum(e.get_return() for e in p) for a, p in parts.items()},
        })

    config = rllib_config(S3, seed=SEED, max_cycles=CYCLES, train_batch_size=BATCH)
    config.callbacks(on_episode_end=record)
    assert config.enable_rl_module_and_learner and config.enable_env_runner_and_connector_v2
    assert config.env == ENV_NAME and config.num_env_runners == 0
    assert set(config.policies) == {SHARED_POLICY}
    assert {config.policy_mapping_fn(a, None) for a in AGENTS} == {SHARED_POLICY}
    env = _global_registry.get(ENV_CREATOR, ENV_NAME)(config.env_config)
    assert isinstance(env, ParallelPettingZooEnv)  # RLlib's own wrapper, around ours
    assert sorted(env.possible_agents) == AGENTS

    algo = config.build_algo()
    try:
        before = algo.learner_group.get_weights()[SHARED_POLICY]
        results = [algo.train() for _ in range(ITERATIONS)]
        after = algo.learner_group.get_weights()[SHARED_POLICY]
        sampling = {k: v.detach().numpy() for k, v in
                    algo.get_module(SHARED_POLICY).state_dict().items()}
    finally:
        algo.stop()

    # counters: BATCH slots an iteration, every BS's step through the one shared module
    per_iteration = BATCH // CYCLES
    for i, result in enumerate(results):
        runners = result["env_runners"]
        assert result["training_iteration"] == i + 1
        assert result["num_env_steps_sampled_lifetime"] == BATCH * (i + 1)
        assert int(runners["num_env_steps_sampled"]) == BATCH
        assert int(runners["num_episodes"]) == per_iteration
        assert {int(v) for v in runners["num_agent_steps_sampled"].values()} == {BATCH}
        assert {k: int(v) for k, v in runners["num_module_steps_sampled"].items()} == {
            SHARED_POLICY: len(AGENTS) * BATCH}
    assert len(episodes) == ITERATIONS * per_iteration

    # replay: RLlib's env runner 0 resets with SEED, then takes drop after drop of that air
    radio = load_scenario(S3).radio
    air = Air(radio, SEED)
    replayed, bounds = [], []
    for ep in episodes:
        gains = air.reset()[0]
        for b, agent in enumerate(AGENTS):
            np.testing.assert_allclose(ep["obs0"][agent],
                                       obs_full(csi_slice(gains, b), b, radio), rtol=1e-6)
        actions = np.stack([ep["actions"][a] for a in AGENTS], axis=1)  # (CYCLES, B, K)
        assert actions.shape == (CYCLES, radio.n_cells, radio.users_per_cell)
        total = bound = 0.0
        for slot in range(CYCLES):
            fractions = np.clip((actions[slot] + 1.0) / 2.0, 0.0, 1.0)  # RLlib's unsquash
            total += float(sum_rate_bps_hz(gains, fractions * radio.pmax_w, radio.noise_w))
            bound += link_alone_bound(gains, radio)
            gains = air.step()[0]
        for agent in AGENTS:  # one shared reward: every BS's return is the summed sum-rate
            assert ep["returns"][agent] == pytest.approx(total, rel=1e-5)
        assert 0.0 < total < bound
        replayed.append(total)
        bounds.append(bound)

    # what RLlib reports: each iteration's mean over its own episodes, summed over the BSs
    for i, result in enumerate(results):
        runners = result["env_runners"]
        mine = replayed[i * per_iteration:(i + 1) * per_iteration]
        ceiling = bounds[i * per_iteration:(i + 1) * per_iteration]
        for agent in AGENTS:
            assert runners["agent_episode_returns_mean"][agent] == pytest.approx(
                np.mean(mine), rel=1e-5)
        reported = runners["episode_return_mean"]
        assert np.isfinite(reported)
        assert reported == pytest.approx(len(AGENTS) * np.mean(mine), rel=1e-5)
        assert 0.0 < reported < len(AGENTS) * np.mean(ceiling)

    # the shared policy learned, and the env runner acts with the learner's last policy
    # (RLlib syncs the inference part, encoder and pi, after each update; not the critic)
    assert before.keys() == after.keys()
    assert all(np.isfinite(v).all() for v in after.values())
    changed = [k for k in before if not np.array_equal(before[k], after[k])]
    assert any(k.startswith("pi.") for k in changed), changed
    assert any(k.startswith("encoder.") for k in changed), changed
    acting = [k for k in sampling if k.startswith(("encoder.", "pi."))]
    assert acting and set(acting) <= set(after)
    for key in acting:
        np.testing.assert_array_equal(sampling[key], after[key])


def test_one_policy_per_bs_without_sharing() -> None:
    from controller.envs.rllib import rllib_config

    config = rllib_config(S3, seed=0, shared_policy=False)
    assert set(config.policies) == set(AGENTS)
    assert [config.policy_mapping_fn(a, None) for a in AGENTS] == AGENTS
    assert set(config.rl_module_spec.rl_module_specs) == set(AGENTS)


QUOTED = re.compile(r"iteration (\d+): (\d+) slots, episode return ([\d.]+) = 3 x 10 slots x "
                    r"([\d.]+) bit/s/Hz")


@pytest.mark.timeout(240)
def test_the_readme_example_runs(tmp_path: Path) -> None:
    """The python block of the README's RLlib section, as a fresh clone runs it: a script
    in the repository, with the PYTHONHASHSEED the README names (RLlib orders a step's
    agents by string hashing), its own process group so that nothing of Ray outlives a
    timeout, and HOME in tmp_path (an Algorithm makes an empty folder in ~/ray_results)."""
    section = readme_section("RLlib")
    code = python_example(section)
    quoted = re.search(r"^```\n(iteration .*?)^```", section, re.M | re.S)
    assert quoted, "README's RLlib section quotes no output"
    assert "PYTHONHASHSEED=0" in section
    script = tmp_path / "readme_rllib.py"
    script.write_text(code)
    env = dict(os.environ, PYTHONHASHSEED="0", HOME=str(tmp_path), PYTHONPATH=str(ROOT),
               OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=200)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 0, out + err
    printed = [QUOTED.fullmatch(line) for line in out.strip().splitlines()]
    want = [QUOTED.fullmatch(line) for line in quoted.group(1).strip().splitlines()]
    assert all(printed) and all(want) and len(printed) == len(want) == 3, (out, quoted.group(1))
    for got, line in zip(printed, want, strict=True):
        assert got is not None and line is not None
        assert got.group(1, 2) == line.group(1, 2)  # iterations and slots, exactly
        ret, per_slot = float(got.group(3)), float(got.group(4))
        assert per_slot == pytest.approx(ret / 30, abs=1e-3)
        # the untrained policy's return is the seeded sampling alone: to the printed digit;
        # PPO's updates may move the last digits with the CPU's float kernels
        tolerance = 0.0 if line.group(1) == "1" else 0.02 * float(line.group(3))
        assert ret == pytest.approx(float(line.group(3)), abs=tolerance + 1e-9), (out, line)
