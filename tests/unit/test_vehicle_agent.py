"""The vehicle node's numpy Q forward against the torch learner, turn taking, and the
payload bookkeeping of one vehicle against a hand computation."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from channel_server.v2x import load_v2x_scenario
from controller.learners.dqn import Dqn, DqnConfig
from node.vehicle_agent import VehicleAgent, greedy_actions, q_values

SCENARIO = load_v2x_scenario(Path(__file__).resolve().parents[2] / "scenarios"
                             / "v2x-manhattan.toml")


@pytest.mark.parametrize("sharing", ["shared", "per-agent"])
def test_numpy_q_values_equal_the_torch_learner(sharing: str) -> None:
    k_n, dim, n_act = 4, 18, 16
    cfg = DqnConfig(hidden=(32, 16), sharing=sharing)  # type: ignore[arg-type]
    dqn = Dqn(dim, n_act, k_n, cfg, np.random.default_rng(3))
    obs = np.random.default_rng(4).normal(size=(5, k_n, dim))
    want = dqn.q_values(obs)
    v = dqn.get_variables()
    for k in range(k_n):
        np.testing.assert_allclose(q_values(v, k, k_n, obs[:, k]), want[:, k], rtol=1e-5,
                                   atol=1e-6)
    np.testing.assert_array_equal(greedy_actions(v, obs), want.argmax(-1))


def test_turn_dqn_changes_only_the_agent_whose_turn_it_is() -> None:
    v = Dqn(18, 16, 4, DqnConfig(hidden=(8,), sharing="per-agent"),
            np.random.default_rng(0)).get_variables()
    obs = np.random.default_rng(1).normal(size=(50, 18))
    for k in range(4):
        a = VehicleAgent(k, SCENARIO, "turn-dqn", 7, v)
        a.start_episode()
        held = a.held
        for t in range(50):
            act = a.act(obs[t], t)
            if t % 4 != k:
                assert act == held  # not its turn: keeps what it held
            else:
                assert act == int(q_values(v, k, 4, obs[t]).argmax())  # greedy, epsilon 0
                held = act


def test_payload_bookkeeping_by_hand() -> None:
    s = dataclasses.replace(SCENARIO, traffic=dataclasses.replace(SCENARIO.traffic,
                                                                  payload_bytes=1000))
    a = VehicleAgent(0, s, "random", 1)
    a.start_episode()
    a.account(3e6, 0)  # 3000 bits of 8000
    assert a.remaining_bits == pytest.approx(5000) and not a.silent
    a.account(4e6, 1)
    assert a.remaining_bits == pytest.approx(1000)
    a.account(2e6, 2)  # delivered at the end of slot 2 (3 ms)
    assert a.remaining_bits == 0.0 and a.silent
    assert a.delivery_time_s == pytest.approx(0.003)
    a.account(5e6, 3)
    assert a.delivery_time_s == pytest.approx(0.003)  # the first delivery time stays
    assert a.remaining_time_s(40) == pytest.approx(s.traffic.deadline_s - 0.040)
