"""The network learner's transition assembly (controller/v2x_net_training.py) and the V2X
scenario's override / TOML round trip, checked by hand."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest

from channel_server.config import ScenarioError, to_toml
from channel_server.v2x import (
    load_v2x_scenario,
    v2x_override,
    v2x_scenario_from_dict,
    v2x_scenario_to_dict,
)
from controller.learners.v2x_experience import V2xNetworkTrainer
from controller.training.v2x_marl import scheme_scenario
from node.vehicle_agent import own_weights

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = load_v2x_scenario(ROOT / "scenarios" / "v2x-manhattan.toml")


def test_scenario_round_trips_through_toml_and_overrides() -> None:
    back = v2x_scenario_from_dict(tomllib.loads(to_toml(v2x_scenario_to_dict(SCENARIO))),
                                  SCENARIO.source)
    assert back == SCENARIO
    s = v2x_override(SCENARIO, {"traffic.deadline_s": 0.003, "timing.peer_timeout_s": 1.0})
    assert s.n_steps == 3 and s.timing.peer_timeout_s == 1.0
    assert s.radio.v2v_power_levels_dbm == SCENARIO.radio.v2v_power_levels_dbm
    with pytest.raises(ScenarioError, match="nope"):
        v2x_override(SCENARIO, {"traffic.nope": 1})


def test_transitions_join_next_observations_rewards_and_episode_ends() -> None:
    scn = scheme_scenario(v2x_override(SCENARIO, {"traffic.deadline_s": 0.003}), "marl-dqn")
    k_n = scn.radio.n_v2v
    tr = V2xNetworkTrainer(scn, "marl-dqn", seed=0, slots=6, broadcast_period=3)
    dim = tr.dqn.obs_dim
    obs = {(n, k): np.full(dim, 10.0 * n + k) for n in range(4) for k in range(k_n)}
    for n in range(4):  # slots 0-2 are episode 0 (ends at slot 2), slot 3 starts episode 1
        for k in range(k_n):
            tr.add_experience(n, k, obs[n, k], action=(n + k) % tr.dqn.n_actions,
                              done=n == 2)
        tr.add_reward(n, 100.0 + n)
    assert tr.complete(range(0, 3), set(range(k_n)))
    assert not tr.complete(range(0, 5), set(range(k_n)))
    tr.update(3)
    assert tr.stored == 3 and sorted(tr.experience.slots) == [3]  # slot 3 waits for slot 4
    for k in range(k_n):
        buf = tr.dqn.replay.buffers[k]  # type: ignore[union-attr]
        assert buf.size == 3
        np.testing.assert_array_equal(buf.data["obs"][:3, 0], [k, 10 + k, 20 + k])
        np.testing.assert_array_equal(buf.data["next_obs"][:2, 0], [10 + k, 20 + k])
        np.testing.assert_array_equal(buf.data["terminated"][:3], [0, 0, 1])
        np.testing.assert_allclose(buf.data["reward"][:3],
                                   np.array([100, 101, 102]) * tr.cfg.reward_scale)
        np.testing.assert_array_equal(buf.data["action"][:3],
                                      [(n + k) % tr.dqn.n_actions for n in range(3)])
    assert tr.version == 2
    # a vehicle receives only its own network
    v = tr.variables()
    mine = own_weights(v, 1)
    assert mine and all(n.startswith("agent1.") or n == "env_fingerprint" for n in mine)
    assert sum(n.startswith("agent") for n in v) == k_n * sum(n.startswith("agent") for n in mine)


def test_slots_a_vanished_vehicle_never_completes_are_dropped() -> None:
    scn = scheme_scenario(v2x_override(SCENARIO, {"traffic.deadline_s": 0.003}), "marl-dqn")
    k_n = scn.radio.n_v2v
    tr = V2xNetworkTrainer(scn, "marl-dqn", seed=0, slots=9, broadcast_period=3)
    for n in range(6):
        for k in range(k_n - (1 if n >= 2 else 0)):  # the last vehicle is gone from slot 2
            tr.add_experience(n, k, np.zeros(tr.dqn.obs_dim), 0, done=n % 3 == 2)
        tr.add_reward(n, 1.0)
    tr.update(3)
    assert tr.stored == 1 and tr.dropped == 1 and sorted(tr.experience.slots) == [2, 3, 4, 5]
    tr.update(6)  # slot 1 needed slot 2's full upload; 2..4 are incomplete
    assert tr.stored == 1 and tr.dropped == 4 and sorted(tr.experience.slots) == [5]
