"""The K-user interference channel over real processes: one link node per pair, the MPGNN
executed as rounds of messages between neighbouring links. The powers equal the GNN computed
in one process on the run's graph and gains (rebuilt independently from the seed); both
runners give the same slots and bytes, also when the backhaul loses messages; a killed link
leaves the others running."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from channel_server.interference import IcChannel
from channel_server.kinds import resolve
from node.mpgnn import forward_graph
from tests.helpers import (
    SCENARIOS,
    Spawn,
    alive,
    mpgnn_weights_file,
    read_csv,
    run_dir,
    wait_for_slot,
)

SC = SCENARIOS / "ic-geo-k20.toml"
K = 8
SETS = ("--set", f"radio.n_links={K}", "--set", "drop.area_m=400.0")
SLOTS = 12


def run_rows(path: Path) -> list[dict[str, str]]:
    """overhead.csv rows but the set-up hello/start (addresses, pids) and the heartbeats."""
    return [r for r in read_csv(path) if r["kind"] not in ("hello", "start", "beat")]


def both(tmp: Path, scheme: str, *extra: str) -> dict[str, Path]:
    return {runner: run_dir(tmp / runner, SC, scheme, runner, SLOTS, 4, *SETS, *extra,
                            *(("--no-telemetry",) if runner == "network" else ()))
            for runner in ("network", "local")}


@pytest.mark.parametrize("n_layers", [1, 3])
def test_gnn_layers_over_the_network_equal_the_gnn_in_one_process(tmp_path: Path,
                                                                  n_layers: int) -> None:
    weights, net = mpgnn_weights_file(tmp_path, n_layers)
    outs = both(tmp_path, "mpgnn", "--weights", str(weights))
    rows, loc = (read_csv(outs[r] / "metrics.csv") for r in ("network", "local"))
    assert len(rows) == SLOTS and rows == loc
    assert run_rows(outs["network"] / "overhead.csv") == run_rows(outs["local"] / "overhead.csv")
    # the run's channel rebuilt from the seed: the GNN on the whole graph, in this process
    s = resolve(SC, {"radio.n_links": K, "drop.area_m": 400.0}).scenario
    ch = IcChannel(s, seed=4)
    graph = ch.layout.graph
    assert 0 < graph.sum() < K * (K - 1)  # some links are neighbours, not all
    for n, row in enumerate(rows):
        gains = ch.gains if n == 0 else ch.step()
        want = forward_graph(net, gains, graph, s.radio.pmax_w, s.radio.noise_w)[0]
        got = [float(row[f"p_w_l{i}"]) / s.radio.pmax_w for i in range(K)]
        assert got == pytest.approx(want, rel=1e-12, abs=1e-15), n
    # one message per edge, layer and slot; the latency is L x (link + compute)
    overhead = run_rows(outs["network"] / "overhead.csv")
    rounds = [r for r in overhead if r["kind"] == "ic_round"]
    assert sum(int(r["messages"]) for r in rounds) == int(graph.sum()) * n_layers * SLOTS
    assert {(r["sender"], r["receiver"]) for r in rounds} == {
        (f"link-{j}", f"link-{i}") for j, i in zip(*np.nonzero(graph[0]), strict=True)}
    summary = json.loads((outs["network"] / "summary.json").read_text())
    assert summary["decision_latency_ms_p50"] == pytest.approx(n_layers * (1.0 + 0.5))
    assert summary["deadline_misses"] == 0 and summary["missing_messages"] == 0
    assert summary["backhaul_bytes_per_slot"]["by_kind"]["ic_round"] > 0


def test_lost_messages_are_left_out_the_same_on_both_runners(tmp_path: Path) -> None:
    weights, _ = mpgnn_weights_file(tmp_path, 2)
    outs = both(tmp_path, "mpgnn", "--weights", str(weights),
                "--set", "backhaul.default.loss_probability=0.2")
    net, loc = (read_csv(outs[r] / "metrics.csv") for r in ("network", "local"))
    assert net == loc
    missing = sum(int(r["missing_messages"]) for r in net)
    s = json.loads((outs["network"] / "summary.json").read_text())
    assert missing > 0 and s["missing_messages"] == missing


def test_central_schemes_upload_and_get_their_power(tmp_path: Path) -> None:
    outs = both(tmp_path, "wmmse")
    net, loc = (read_csv(outs[r] / "metrics.csv") for r in ("network", "local"))
    assert net == loc
    # WMMSE decides on exactly the slot's gains: its sum rate is the air's reference
    for r in net:
        assert float(r["sum_rate_bps_hz"]) == pytest.approx(float(r["wmmse_sum_rate_bps_hz"]),
                                                           rel=1e-12)
    kinds = {r["kind"] for r in run_rows(outs["network"] / "overhead.csv")}
    assert {"ic_upload", "decision"} <= kinds and "ic_round" not in kinds


def test_killed_link_is_reported_and_the_others_go_on(tmp_path: Path, spawn: Spawn) -> None:
    weights, _ = mpgnn_weights_file(tmp_path, 2)
    out, slots, victim = tmp_path / "kill", 300, 2
    proc = spawn("run", str(SC), "--scheme", "mpgnn", "--weights", str(weights), "--runner",
                 "network", "--slots", str(slots), "--seed", "5", "--out", str(out),
                 "--no-telemetry", *SETS, "--set", 'timing.clock="realtime"',
                 "--set", "timing.peer_timeout_s=1.0", "--set", "timing.heartbeat_s=0.2")
    pids = wait_for_slot(proc, out, 40)
    os.kill(pids[f"link-{victim}"], signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2, stdout + stderr  # 2: a node was lost
    assert f"link-{victim}" in stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["lost_nodes"] == [f"link-{victim}"] and s["slots"] == slots, s
    rows = read_csv(out / "metrics.csv")
    p = np.array([[float(r[f"p_w_l{i}"]) for i in range(K)] for r in rows])
    gone = int(np.argmax(p[:, victim] == 0.0))
    assert 40 <= gone < slots - 100
    assert (p[gone:, victim] == 0.0).all() and (np.delete(p, victim, axis=1) > 0).all()
    for role, pid in pids.items():
        assert not alive(pid), f"{role} (pid {pid}) left behind"
