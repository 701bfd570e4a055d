"""The environments over real processes (``make_env(..., runner="network")`` and the
Gymnasium centralized view): the same observations and rewards as the in-process
environment for the same seed, every step through a channel server and one node process per
BS (cellular), per link (the interference channel), per D2D pair or per vehicle (V2X),
each episode a run directory with its overhead; PettingZoo's own parallel API test; a node
killed mid-episode is an error that names it, not a hang."""

from __future__ import annotations

import csv
import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from pettingzoo.test import api_test, parallel_api_test

from channel_server.kinds import resolve
from controller.envs import make_env
from controller.envs.central import ENV_ID, CentralPowerEnv
from tests.helpers import ROOT, SCENARIOS, python_example, readme_section, rrmbed

SC = SCENARIOS / "3cell-k2.toml"

Step = tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]


def play_both(net: Any, loc: Any, seed: int, act: Callable[[Any, str], Any]) -> tuple[
        list[dict[str, Any]], list[Step]]:
    """One episode of the network env and the in-process env from ``seed``, every agent
    acting ``act(env, agent)`` in both: every observation, reward, end and info must be the
    same. The actions sent and the network env's steps."""
    on, _ = net.reset(seed=seed)
    ol, _ = loc.reset(seed=seed)
    sent, steps = [], []
    while net.agents:
        for a in net.possible_agents:
            assert np.array_equal(on[a], ol[a]), a
        acts = {a: act(net, a) for a in net.agents}
        sent.append(acts)
        on, *rest = net.step(acts)
        ol, *rest_local = loc.step(acts)
        assert rest == rest_local
        steps.append((on, *rest))
    assert not loc.agents
    return sent, steps


def test_network_env_equals_the_in_process_env(tmp_path: Path) -> None:
    net = make_env(SC, runner="network", out=tmp_path, max_cycles=15)
    loc = make_env(SC, max_cycles=15)
    rng = np.random.default_rng(1)
    try:
        for seed in (3, 8):
            sent, _ = play_both(net, loc, seed, lambda env, a: rng.uniform(
                -0.2, 1.2, size=2).astype(np.float32))
            assert len(sent) == 15
            run = next(tmp_path.glob(f"episode-*-seed-{seed}"))
            summary = json.loads((run / "summary.json").read_text())
            assert (summary["scheme"], summary["slots"], summary["runner"]) == (
                "external-learner", 15, "network")
            assert summary == net.last_summary
            by_kind = summary["backhaul_bytes_per_slot"]["by_kind"]
            assert by_kind["csi_upload"] > 0 and by_kind["decision"] > 0
            with (run / "metrics.csv").open() as f:
                rows = list(csv.DictReader(f))
            pmax = net.radio.pmax_w
            for row, acts in zip(rows, sent, strict=True):  # what the BSs transmitted
                for b in range(3):
                    want = np.clip(acts[f"bs_{b}"].astype(np.float64), 0.0, 1.0) * pmax
                    got = [float(row[f"p_bs{b}_u{k}_w"]) for k in range(2)]
                    assert got == pytest.approx(want.tolist(), rel=1e-12)
            assert sorted(summary["processes"]) == sorted(
                ["controller", "channel-server", "node-0", "node-1", "node-2"])
    finally:
        net.close()


def test_round_robin_network_env_equals_the_in_process_env(tmp_path: Path) -> None:
    """The round-robin AEC game over real processes: the BSs take their turns in the order
    the channel server draws, each observing what its predecessors forwarded over the
    metered chain, and every turn, observation, reward and info equals the in-process
    game's; what the BSs transmitted is what the learner chose."""
    net = make_env(SC, api="aec", runner="network", out=tmp_path, max_cycles=6)
    loc = make_env(SC, api="aec", max_cycles=6)
    rng = np.random.default_rng(5)
    try:
        for seed in (3, 8):
            net.reset(seed=seed)
            loc.reset(seed=seed)
            sent: list[tuple[str, np.ndarray]] = []
            for agent in net.agent_iter():
                assert agent == loc.agent_selection
                for b, a in enumerate(net.possible_agents):  # and those who acted in the slot
                    if a == agent or loc.chosen[b]:
                        assert np.array_equal(net.observe(a), loc.observe(a)), (agent, a)
                obs, *rest = net.last()
                assert rest == list(loc.last()[1:])
                act = None if rest[1] or rest[2] else rng.uniform(
                    -0.2, 1.2, size=2).astype(np.float32)
                if act is not None:
                    sent.append((agent, act))
                net.step(act)
                loc.step(act)
            assert not loc.agents and len(sent) == 6 * 3
            run = next(tmp_path.glob(f"episode-*-seed-{seed}"))
            summary = json.loads((run / "summary.json").read_text())
            assert (summary["scheme"], summary["slots"]) == ("external-round-robin", 6)
            by_kind = summary["backhaul_bytes_per_slot"]["by_kind"]
            assert "csi_upload" not in by_kind  # the chain's own signalling, no central CSI
            assert min(by_kind[k] for k in ("obs_upload", "decision", "power_forward")) > 0
            with (run / "metrics.csv").open() as f:
                rows = list(csv.DictReader(f))
            for n, row in enumerate(rows):  # each slot's three turns, in turn order
                for agent, act in sent[3 * n:3 * n + 3]:
                    b = int(agent.split("_")[1])
                    want = np.clip(act.astype(np.float64), 0.0, 1.0) * net.radio.pmax_w
                    got = [float(row[f"p_bs{b}_u{k}_w"]) for k in range(2)]
                    assert got == pytest.approx(want.tolist(), rel=1e-12)
        with pytest.raises(NotImplementedError, match="only their own observations"):
            net.state()
    finally:
        net.close()


def discrete(rng: np.random.Generator) -> Callable[[Any, str], int]:
    """Uniform discrete actions from ``rng``."""
    return lambda env, a: int(rng.integers(env.action_space(a).n))


def test_interference_network_env_equals_the_in_process_env(tmp_path: Path) -> None:
    """Ten links of the Gaussian interference channel: each link's observation is made of
    the column its node uploaded, its reward of the rates the air recorded."""
    sc = SCENARIOS / "ic-gauss-k10.toml"
    net = make_env(sc, runner="network", out=tmp_path, max_cycles=8)
    loc = make_env(sc, max_cycles=8)
    rng = np.random.default_rng(2)
    try:
        sent, _ = play_both(net, loc, 4, lambda env, a: rng.uniform(
            -0.2, 1.2, size=1).astype(np.float32))
        assert len(sent) == 8
        summary = net.last_summary
        assert summary is not None and summary["scheme"] == "external-learner"
        assert summary["slots"] == 8 and not summary["errors"]
        assert set(summary["backhaul_bytes_per_slot"]["by_kind"]) == {"ic_upload", "decision"}
        with (tmp_path / "episode-0-seed-4" / "metrics.csv").open() as f:
            rows = list(csv.DictReader(f))
        pmax = net.radio.pmax_w
        for row, acts in zip(rows, sent, strict=True):  # what the links transmitted
            want = [float(np.clip(acts[f"link_{i}"][0], 0.0, 1.0)) * pmax for i in range(10)]
            got = [float(row[f"p_w_l{i}"]) for i in range(10)]
            assert got == pytest.approx(want, rel=1e-12)
    finally:
        net.close()


def test_d2d_network_env_equals_the_in_process_env(tmp_path: Path) -> None:
    """Ten D2D pairs: each pair's observation is the one its node built and uploaded, its
    reward and infos those of the air's outcome; what the pairs transmitted is the RB and
    power level of their actions."""
    sc = SCENARIOS / "d2d-n10.toml"
    net = make_env(sc, runner="network", out=tmp_path, max_cycles=8)
    loc = make_env(sc, max_cycles=8)
    rng = np.random.default_rng(4)
    try:
        sent, _ = play_both(net, loc, 3, discrete(rng))
        summary = net.last_summary
        assert summary is not None and (summary["scheme"], summary["slots"]) == (
            "external-learner", 8)
        assert set(summary["backhaul_bytes_per_slot"]["by_kind"]) == {"obs_upload",
                                                                      "action_decision"}
        assert sorted(summary["processes"]) == sorted(
            ["controller", "channel-server", *(f"pair-{i}" for i in range(10))])
        n_rb = net.scenario.radio.n_rb
        with (tmp_path / "episode-0-seed-3" / "metrics.csv").open() as f:
            rows = list(csv.DictReader(f))
        for row, acts in zip(rows, sent, strict=True):
            assert [int(row[f"rb_p{i}"]) for i in range(10)] == [
                acts[f"pair_{i}"] % n_rb for i in range(10)]
    finally:
        net.close()


def test_v2x_network_env_equals_the_in_process_env(tmp_path: Path) -> None:
    """Four vehicles over a 20-slot deadline (so the episode ends by the deadline,
    terminated): each vehicle's observation is the one its node built (its neighbours'
    choices of the last slot heard over the backhaul) and uploaded, reward and infos those
    of the air's outcome, payloads delivered and links falling silent alike."""
    sc = resolve(SCENARIOS / "v2x-manhattan.toml", {"traffic.deadline_s": 0.02})
    net = make_env(sc, runner="network", out=tmp_path, max_cycles=50)
    loc = make_env(sc, max_cycles=50)
    rng = np.random.default_rng(5)
    try:
        _, steps = play_both(net, loc, 3, discrete(rng))
        *_, (_, _, terminated, truncated, _) = steps
        assert len(steps) == 20 and all(terminated.values()) and not any(truncated.values())
        # some payloads got through: the silent links were exercised
        assert any(i["delivered"] for *_, infos in steps for i in infos.values())
        summary = net.last_summary
        assert summary is not None and (summary["scheme"], summary["slots"]) == (
            "external-learner", 20)
        assert set(summary["backhaul_bytes_per_slot"]["by_kind"]) == {
            "obs_upload", "action_decision", "neighbour_choice"}
        with pytest.raises(NotImplementedError, match="fingerprint"):
            net.set_fingerprint(3, 0.1)
    finally:
        net.close()


def test_gymnasium_central_env_over_processes_equals_the_in_process_env(tmp_path: Path) -> None:
    """``gymnasium.make(ENV_ID, ..., runner="network")``: paper 001's centralized view with
    every step through the processes; a second episode (unseeded reset) is run seed + 1."""
    net = gym.make(ENV_ID, scenario=SC, episode_slots=6, runner="network", out=tmp_path)
    loc = CentralPowerEnv(SC, episode_slots=6)
    rng = np.random.default_rng(3)
    try:
        for seed, reset in ((5, 5), (6, None)):
            on, _ = net.reset(seed=reset)
            ol, _ = loc.reset(seed=seed)
            truncated = False
            while not truncated:
                assert np.array_equal(on, ol)
                act = rng.uniform(-0.1, 1.1, 6).astype(np.float32)
                on, rn, tn, truncated, _ = net.step(act)
                ol, rl, tl, trl, _ = loc.step(act)
                assert (rn, tn, truncated) == (rl, tl, trl)
            summary = net.unwrapped.last_summary
            assert (summary["scheme"], summary["slots"], summary["seed"]) == (
                "external-learner", 6, seed)
        with pytest.raises(RuntimeError, match="after the episode's last slot"):
            net.step(act)
    finally:
        net.close()


@pytest.mark.parametrize("api", ["parallel", "aec"])
def test_network_env_passes_pettingzoo_api_test(tmp_path: Path, api: str) -> None:
    env = make_env(SC, api=api, runner="network", out=tmp_path, max_cycles=4)
    try:
        (parallel_api_test if api == "parallel" else api_test)(env, num_cycles=6)
    finally:
        env.close()


def test_a_node_killed_mid_episode_is_named(tmp_path: Path) -> None:
    env = make_env(SC, runner="network", out=tmp_path, max_cycles=50, step_timeout_s=20)
    try:
        env.reset(seed=1)
        acts = {a: np.ones(2, dtype=np.float32) for a in env.agents}
        env.step(acts)
        assert env.episode is not None
        os.kill(env.episode.run.procs["node-1"].pid, signal.SIGKILL)
        with pytest.raises(RuntimeError, match="node-1"):
            for _ in range(49):
                env.step(acts)
    finally:
        env.close()


def test_rrmbed_run_and_compose_refuse_the_external_scheme(tmp_path: Path) -> None:
    for args in (("run", str(SC), "--scheme", "external-learner", "--runner", "local",
                  "--slots", "5", "--out", str(tmp_path / "x")),
                 ("run", str(SC), "--scheme", "external-round-robin", "--slots", "5"),
                 ("compose", str(SC), "--scheme", "external-learner", "--insecure")):
        r = rrmbed(*args)
        assert r.returncode != 0, args
        assert "make_env(..., runner='network')" in " ".join((r.stdout + r.stderr).split())


def test_the_readme_example_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The python block of the README's network-environment section (its run directories
    in a temporary folder instead of runs/)."""
    code = python_example(readme_section("The same environment over real processes"))
    assert 'out="runs/env"' in code and 'out="runs/env/rr"' in code
    monkeypatch.chdir(ROOT)
    scope: dict[str, object] = {}
    exec(compile(code.replace('out="runs/env', f'out="{tmp_path}'), "README.md", "exec"),
         scope)
    assert (tmp_path / "episode-0-seed-7" / "metrics.csv").is_file()
    summary = json.loads((tmp_path / "rr" / "episode-0-seed-7" / "summary.json").read_text())
    assert summary["scheme"] == "external-round-robin" and summary["slots"] == 5
