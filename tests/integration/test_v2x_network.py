"""V2X over real processes: one vehicle node per V2V transmitter, neighbour choices and
fingerprints over the backhaul, network training with experience uploads and periodic
weight broadcasts. Checked against the local runner and independent computations."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from channel_server.v2x import load_v2x_scenario
from controller.training.v2x_marl import (
    MarlConfig,
    epsilon_at,
    marl_config,
    scheme_scenario,
    train_marl,
)
from protocols.codec import encode
from protocols.messages import Experience, NeighbourChoice
from protocols.meter import wire_size
from tests.helpers import SV, Spawn, alive, rrmbed, run_dir, wait_for_slot

SCENARIO = load_v2x_scenario(SV)
K = SCENARIO.radio.n_v2v


def overhead(out: Path) -> list[dict[str, str]]:
    with (out / "overhead.csv").open() as f:
        return list(csv.DictReader(f))


def delivery_from_metrics(out: Path) -> float:
    """Delivery rate recomputed from the per-slot V2V rates: a link delivers when the bits
    it carried in its episode reach the payload (independent of the runners' bookkeeping)."""
    with (out / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    n = SCENARIO.n_steps
    payload = SCENARIO.traffic.payload_bytes * 8
    done = []
    for e in range(len(rows) // n):
        carried = np.zeros(K)
        for r in rows[e * n:(e + 1) * n]:
            carried += [float(r[f"v2v_mbps_v{k}"]) * 1e6 * SCENARIO.radio.slot_s
                        for k in range(K)]
        done.append(carried >= payload * (1 - 1e-12))
    return float(np.mean(done))


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {}
    for sharing in ("per-agent", "shared"):
        variables, _ = train_marl(SCENARIO, "marl-dqn", 6, seed=2, config=marl_config(sharing))
        out[sharing] = tmp_path_factory.mktemp("w") / f"marl-{sharing}.npz"
        np.savez(out[sharing], **variables)
    return out


@pytest.mark.parametrize(("scheme", "sharing"), [("marl-dqn", "per-agent"),
                                                 ("marl-dqn", "shared"), ("random", None)])
def test_v2x_network_runner_matches_local_runner(tmp_path: Path, weights: dict[str, Path],
                                                 scheme: str, sharing: str | None) -> None:
    extra = () if sharing is None else ("--weights", str(weights[sharing]))
    slots = 300
    net = run_dir(tmp_path, SV, scheme, "network", slots, 5, "--no-telemetry", *extra)
    loc = run_dir(tmp_path, SV, scheme, "local", slots, 5, *extra)
    # slot by slot: every vehicle's RB, power level, rate and payload, the rewards
    assert (net / "metrics.csv").read_text() == (loc / "metrics.csv").read_text()
    assert (net / "episodes.csv").read_text() == (loc / "episodes.csv").read_text()
    s_net = json.loads((net / "summary.json").read_text())
    s_loc = json.loads((loc / "summary.json").read_text())
    assert s_net["delivery_rate_mean"] == s_loc["delivery_rate_mean"]
    assert s_net["delivery_rate_mean"] == pytest.approx(delivery_from_metrics(net))
    assert s_net["episodes"] == 3 and not s_net["errors"]
    assert sorted(s_net["processes"]) == sorted(
        ["controller", "channel-server", *(f"vehicle-{k}" for k in range(K))])
    assert len(set(s_net["processes"].values())) == K + 2  # separate OS processes
    rows = overhead(net)
    # each vehicle got only its own slice, once per slot
    slices = {r["receiver"]: int(r["messages"]) for r in rows if r["kind"] == "v2x_slice"}
    assert slices == {f"vehicle-{k}": slots for k in range(K)}
    # every vehicle told every other one its choice every slot: K (K - 1) messages per slot
    choices = [r for r in rows if r["kind"] == "neighbour_choice"]
    pairs = {(r["sender"], r["receiver"]) for r in choices}
    assert pairs == {(f"vehicle-{j}", f"vehicle-{k}") for j in range(K) for k in range(K)
                     if j != k}
    assert all(int(r["messages"]) == slots for r in choices)
    # bytes: the encoded size of one NeighbourChoice (header varints may differ by 4 B)
    one = wire_size(len(encode(NeighbourChoice(2, 1, sender="vehicle-0", seq=1000, slot=150,
                                               sent_ns=1_700_000_000_000_000_000,
                                               chain_latency_s=0.0001))))
    per_slot = s_net["backhaul_bytes_per_slot"]["by_kind"]["neighbour_choice"]
    assert abs(per_slot - K * (K - 1) * one) <= K * (K - 1) * 4
    assert set(s_net["backhaul_bytes_per_slot"]["by_kind"]) == {"neighbour_choice"}


def test_v2x_network_training(tmp_path: Path) -> None:
    out = tmp_path / "train"
    episodes, period = 3, 100
    r = rrmbed("v2x", "train", str(SV), "--runner", "network", "--episodes", str(episodes),
               "--broadcast-period", str(period), "--seed", "4", "--out", str(out), timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    s = json.loads((out / "summary.json").read_text())
    slots = episodes * SCENARIO.n_steps
    assert s["slots"] == slots and not s["errors"]
    # weights go out every `period` slots while slots remain: versions 2 and 3
    with (out / "training.csv").open() as f:
        hist = list(csv.DictReader(f))
    assert [int(float(h["slot"])) for h in hist] == [100, 200]
    assert s["weights_versions"] == 3
    cfg = MarlConfig()
    for k in range(K):
        st = s["process_stats"][f"vehicle-{k}"]
        assert st["weights_versions"] == [1, 2, 3]
        # fingerprints: set-up, then one per broadcast, on the local trainer's schedule
        fp = st["fingerprints"]
        assert [f[0] for f in fp] == [-1, 100, 200]
        fp_iters = SCENARIO.observation.fingerprint_iterations
        for (slot, it, eps) in fp:
            ep = max(slot, 0) // SCENARIO.n_steps
            assert it == ep * fp_iters // episodes
            assert eps == pytest.approx(1.0 + (cfg.epsilon_end - 1.0)
                                        * min(ep / (cfg.explore_fraction * episodes), 1.0))
            assert eps == pytest.approx(epsilon_at(ep, episodes, cfg))
    by_kind = s["backhaul_bytes_per_slot"]["by_kind"]
    assert set(by_kind) == {"experience", "fingerprint", "neighbour_choice", "weights",
                            "weights_ack"}
    # experience: one upload per vehicle and slot, the size of its encoding
    dim = 4 * SCENARIO.radio.n_rb + 4
    exp = wire_size(len(encode(Experience(
        np.zeros((1, dim), np.float32), np.array([3]), np.zeros(1),
        np.zeros((0, dim), np.float32), np.array([False]), 50, sender="vehicle-0", seq=1000,
        slot=150, sent_ns=1_700_000_000_000_000_000, chain_latency_s=0.0))))
    assert abs(by_kind["experience"] - K * exp) <= K * 4
    # weights: each vehicle receives only its own network, twice during the run
    w = np.load(out / "weights.npz")
    own = sum(w[n].nbytes for n in w.files if n.startswith("agent0."))
    per_vehicle = by_kind["weights"] * slots / (2 * K)
    assert own < per_vehicle < own * 1.02
    # experience reaches the controller after the uplink latency of the scenario
    assert s["experience_latency_ms_p50"] == pytest.approx(
        SCENARIO.backhaul.default.latency_s * 1e3)
    assert set(w.files) >= {f"agent{k}.q.0.weight" for k in range(K)}
    assert scheme_scenario(SCENARIO, "marl-dqn").observation.fingerprint


def test_killed_vehicle_is_reported_and_the_others_go_on(tmp_path: Path,
                                                        spawn: Spawn) -> None:
    import os
    import signal
    import time

    out = tmp_path / "kill"
    proc = spawn("run", str(SV), "--scheme", "random", "--runner", "network", "--slots",
                 "3000", "--seed", "2", "--out", str(out), "--no-telemetry",
                 "--set", "timing.clock=\"realtime\"", "--set", "timing.peer_timeout_s=1.0")
    pids = wait_for_slot(proc, out, 150)
    os.kill(pids["vehicle-1"], signal.SIGKILL)
    t_kill = time.monotonic()
    stdout, stderr = proc.communicate(timeout=120)
    assert time.monotonic() - t_kill < 90
    assert proc.returncode == 2, stdout + stderr
    assert "vehicle-1" in stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["lost_nodes"] == ["vehicle-1"], (s, stderr[-3000:])
    assert s["slots"] == 3000  # the other vehicles kept running
    with (out / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    # vehicle 1 fell silent for good; the others still transmitted in the last episode
    assert all(r["on_v1"] == "0" for r in rows[-100:])
    assert any(r["on_v0"] == "1" for r in rows[-100:] if r["episode_slot"] == "0")
    for role, pid in pids.items():
        assert not alive(pid), f"{role} (pid {pid}) left behind"


def test_v2x_bad_weights_and_schemes_are_named_before_anything_starts(tmp_path: Path) -> None:
    r = rrmbed("run", str(SV), "--scheme", "marl-dqn", "--slots", "10", "--out",
               str(tmp_path / "a"))
    assert r.returncode == 2 and "--weights" in r.stderr and "v2x train" in r.stderr
    wrong = tmp_path / "trpo.npz"
    np.savez(wrong, **{"mean_net.0.weight": np.zeros((2, 2)), "log_std": np.zeros(2)})
    r = rrmbed("run", str(SV), "--scheme", "marl-dqn", "--weights", str(wrong), "--slots", "10",
               "--out", str(tmp_path / "b"))
    assert r.returncode == 2 and "no Q network for vehicle(s) [0, 1, 2, 3]" in r.stderr
    r = rrmbed("run", str(SV), "--scheme", "round-robin", "--slots", "10")
    assert r.returncode == 2 and "for a V2X scenario" in r.stderr and "marl-dqn" in r.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
