"""ALCOR (paper 004) over real processes on the K-user interference channel: centralized
(the controller keeps the multipliers) and distributed (each link keeps its own; the
normaliser by max-flooding over the backhaul) give the same slots when the backhaul is
ideal, both runners agree, and the powers equal an independent replay of Algorithm 1 slot
by slot on the rebuilt channel."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from channel_server.demands import demands_at
from channel_server.interference import IcChannel, sum_rates
from channel_server.kinds import resolve
from controller.baselines.ic import ic_wmmse
from node.alcor import AlcorConfig, initial_state, step
from protocols.seeding import rng_for
from tests.helpers import SCENARIOS, read_csv, run_dir

SC = SCENARIOS / "alcor-gauss-n5.toml"
K = 5
SLOTS = 400
SETS = ("--set", "demands.phase_starts=[0, 150, 300]", "--set", "alcor.batch=10")


def but_latency(row: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in row.items() if not k.startswith("latency_ms")}


def powers(rows: list[dict[str, str]]) -> np.ndarray:
    return np.array([[float(r[f"p_w_l{i}"]) for i in range(K)] for r in rows])


def test_distributed_equals_centralized_and_an_independent_replay(tmp_path: Path) -> None:
    central = run_dir(tmp_path, SC, "alcor-wmmse", "local", SLOTS, 3, *SETS)
    dist = run_dir(tmp_path, SC, "alcor-wmmse-dist", "local", SLOTS, 3, *SETS)
    rows, drows = read_csv(central / "metrics.csv"), read_csv(dist / "metrics.csv")
    assert [but_latency(r) for r in rows] == [but_latency(r) for r in drows]
    # the distributed links waited for one flooding round (1 ms) before the first slot of
    # every iteration: its decisions start from there
    for n, (c, d) in enumerate(zip(rows, drows, strict=True)):
        extra = 1.0 if n and n % 20 == 0 else 0.0
        for i in range(K):
            assert float(d[f"latency_ms_l{i}"]) == pytest.approx(
                float(c[f"latency_ms_l{i}"]) + extra), n
    # the replay: the same channel, demands and per-link selection streams
    s = resolve(SC, {"demands.phase_starts": [0, 150, 300], "alcor.batch": 10}).scenario
    ch = IcChannel(s, seed=3)
    cfg = AlcorConfig(alpha=0.9, gamma=3.0, batch=10)
    state = initial_state(K)
    streams = [rng_for(3, "alcor", "usv", i) for i in range(K)]
    sums = np.zeros((2, K))
    off = 0
    for n, row in enumerate(rows):
        gains = ch.gains[0] if n == 0 else ch.step()[0]
        on = np.array([st.random() for st in streams]) < state.kappa
        g = gains * on[:, None] * on[None, :] if not on.all() else gains
        p = np.where(on, ic_wmmse(g[None], s)[0], 0.0)
        assert powers([row])[0] == pytest.approx(p, rel=1e-12, abs=1e-15), n
        assert [int(row[f"on_l{i}"]) for i in range(K)] == on.astype(int).tolist()
        rates = sum_rates(gains, p, s.radio.noise_w)
        sums[(n % 20) // 10] += demands_at(s.demands, s.k, 3, n) - rates
        if n % 20 == 19:
            state = step(state, sums[0] / 10, sums[1] / 10, cfg)
            sums[:] = 0.0
        off += int((~on).sum())
    assert off > 0  # the demands of the second phase switch links off
    central_s = json.loads((central / "summary.json").read_text())
    dist_s = json.loads((dist / "summary.json").read_text())
    assert [x for _, x in central_s["alcor_lambda"]][-1] == pytest.approx(state.lam.tolist())
    assert central_s["demand_phases"] == dist_s["demand_phases"]
    by = dist_s["backhaul_bytes_per_slot"]["by_kind"]
    assert by["alcor_max"] > 0 and "alcor_max" not in central_s["backhaul_bytes_per_slot"][
        "by_kind"]


def test_distributed_alcor_over_the_network_equals_the_pump(tmp_path: Path) -> None:
    outs = {r: run_dir(tmp_path / r, SC, "alcor-wmmse-dist", r, 120, 5, *SETS,
                       *(("--no-telemetry",) if r == "network" else ()))
            for r in ("network", "local")}
    assert read_csv(outs["network"] / "metrics.csv") == read_csv(outs["local"] / "metrics.csv")
    rounds = [r for r in read_csv(outs["network"] / "overhead.csv") if r["kind"] == "alcor_max"]
    # one flooding round after each of the 6 iterations of 20 slots, to every other link
    assert sum(int(r["messages"]) for r in rounds) == 6 * K * (K - 1)


def test_demands_already_met_leave_the_allocator_alone(tmp_path: Path) -> None:
    """The simple update with demands WMMSE meets by far: lambda stays 0, every link is on
    in every slot, and the powers are plain WMMSE's."""
    tiny = ("--set", "demands.u_min_bps_hz=[[0.01, 0.01, 0.01, 0.01, 0.01]]",
            "--set", "demands.phase_starts=[0]", "--set", 'alcor.update="simple"')
    alcor = read_csv(run_dir(tmp_path, SC, "alcor-wmmse", "local", 200, 4, *tiny) / "metrics.csv")
    plain = read_csv(run_dir(tmp_path, SC, "wmmse", "local", 200, 4, *tiny) / "metrics.csv")
    assert np.array_equal(powers(alcor), powers(plain))
    assert all(int(r[f"on_l{i}"]) == 1 for r in alcor for i in range(K))


def test_alcor_over_the_gnn_runs_it_on_the_links_that_are_on(tmp_path: Path) -> None:
    """alcor-mpgnn: the links ALCOR switched off send 0 W and take part in the rounds with
    zero gains, so the powers are the GNN on H_xi (computed here in one process from the
    rebuilt channel and the recorded selection), on both runners alike."""
    from channel_server.interference import IcChannel
    from node.mpgnn import forward_graph
    from tests.helpers import mpgnn_weights_file

    weights, net = mpgnn_weights_file(tmp_path, 2)
    outs = {r: run_dir(tmp_path / r, SC, "alcor-mpgnn", r, 120, 6, *SETS, "--weights",
                       str(weights), *(("--no-telemetry",) if r == "network" else ()))
            for r in ("network", "local")}
    rows = read_csv(outs["network"] / "metrics.csv")
    assert rows == read_csv(outs["local"] / "metrics.csv")
    s = resolve(SC, {"demands.phase_starts": [0, 150, 300], "alcor.batch": 10}).scenario
    ch = IcChannel(s, seed=6)
    off = 0
    for n, row in enumerate(rows):
        gains = ch.gains[0] if n == 0 else ch.step()[0]
        on = np.array([int(row[f"on_l{i}"]) for i in range(K)], dtype=bool)
        g = gains * on[:, None] * on[None, :]
        want = np.where(on, forward_graph(net, g[None], ch.layout.graph, s.radio.pmax_w,
                                          s.radio.noise_w)[0] * s.radio.pmax_w, 0.0)
        assert powers([row])[0] == pytest.approx(want, rel=1e-12, abs=1e-15), n
        off += int((~on).sum())
    summary = json.loads((outs["network"] / "summary.json").read_text())
    stats = summary["process_stats"]
    assert off == sum(stats[f"link-{i}"]["switched_off"] for i in range(K)) > 0
