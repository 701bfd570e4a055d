"""D2D underlay over real processes: one pair node process per D2D pair, each hearing only
its own slice; the same run on the in-memory pump gives the same slots and the same bytes.
The recorded rates and rewards are recomputed from an independent replay of the air."""

from __future__ import annotations

import json
import math
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from channel_server.d2d_air import D2dAir
from channel_server.kinds import resolve
from tests.helpers import SCENARIOS, Spawn, alive, read_csv, run_dir, wait_for_slot

SC = SCENARIOS / "d2d-n10.toml"
N = 4
SETS = ("--set", f"radio.n_pairs={N}", "--set", "radio.d2d_power_levels_dbm=[13.0, 3.0]")
SLOTS = 25


def setup_rows(path: Path) -> list[dict[str, str]]:
    """overhead.csv rows but the set-up hello/start (addresses, pids) and the heartbeats."""
    return [r for r in read_csv(path) if r["kind"] not in ("hello", "start", "beat")]


@pytest.mark.parametrize("scheme", ["random", "best-estimate"])
def test_network_equals_local_and_the_air_replayed(tmp_path: Path, scheme: str) -> None:
    outs = {runner: run_dir(tmp_path, SC, scheme, runner, SLOTS, 7, *SETS,
                            *(("--no-telemetry",) if runner == "network" else ()))
            for runner in ("network", "local")}
    net, loc = (read_csv(outs[r] / "metrics.csv") for r in ("network", "local"))
    assert len(net) == SLOTS and net == loc
    assert setup_rows(outs["network"] / "overhead.csv") == setup_rows(
        outs["local"] / "overhead.csv")
    procs = json.loads((outs["network"] / "processes.json").read_text())
    assert sorted(procs) == sorted(["controller", "channel-server",
                                    *[f"pair-{i}" for i in range(N)]])
    rows = setup_rows(outs["network"] / "overhead.csv")
    # each pair hears only its own slice: one d2d_slice per slot, to itself
    slices = [r for r in rows if r["kind"] == "d2d_slice"]
    assert sorted(r["receiver"] for r in slices) == [f"pair-{i}" for i in range(N)]
    assert all(int(r["messages"]) == SLOTS for r in slices)
    # replay the air with the recorded choices: same rates; rewards follow the rule
    scenario = resolve(SC, {"radio.n_pairs": N,
                            "radio.d2d_power_levels_dbm": [13.0, 3.0]}).scenario
    air = D2dAir(scenario, 1, seed=7)
    levels = set()
    for row in net:
        rb = np.array([[int(row[f"rb_p{i}"]) for i in range(N)]])
        lev = np.array([[int(row[f"level_p{i}"]) for i in range(N)]])
        levels.update(lev[0].tolist())
        sl = air.slices()
        if scheme == "best-estimate":  # the rule, from the pair's own slice
            est = sl.d2d_gain_db[0] - sl.interference_dbm[0]
            assert rb[0].tolist() == est.argmax(-1).tolist() and (lev == 0).all()
        out = air.step(rb, lev)
        mbps = [float(row[f"d2d_mbps_p{i}"]) for i in range(N)]
        assert mbps == pytest.approx(out.rates.d2d_rate_bps[0] / 1e6, rel=1e-12)
        cue_ok = [float(row[f"cue_sinr_db_c{m}"]) >= 0.0 for m in range(10)]
        for i in range(N):
            sinr = 2 ** (mbps[i] * 1e6 / 180e3) - 1
            want = math.log2(1 + sinr) if cue_ok[rb[0, i]] else -1.0
            assert float(row[f"reward_p{i}"]) == pytest.approx(want, rel=1e-9, abs=1e-12)
    if scheme == "random":
        assert levels == {0, 1}
    summary = json.loads((outs["network"] / "summary.json").read_text())
    assert summary["slots"] == SLOTS and summary["lost_nodes"] == []
    assert summary["total_reward_mean"] == pytest.approx(
        np.mean([float(r["total_reward"]) for r in net]))
    rbs = np.array([[int(r[f"rb_p{i}"]) for i in range(N)] for r in net])
    both = (rbs[1:] >= 0) & (rbs[:-1] >= 0)  # transmitting in two consecutive slots
    moved = (rbs[1:] != rbs[:-1]) & both
    assert summary["rb_switch_rate"] == pytest.approx(moved.sum() / both.sum(), rel=1e-12)


TRAIN = ("--slots", "60", "--random-slots", "20", "--broadcast-period", "20", "--set",
         "radio.n_pairs=3", "--set", "radio.n_rb=4", "--neighbours", "1", "--actor-hidden",
         "16,8", "--critic-hidden", "32,16,8", "--batch-size", "8", "--seed", "2")


def test_network_training_uploads_histories_and_broadcasts_actors(tmp_path: Path) -> None:
    from controller.runners.run import execute
    from protocols.weights import load
    from tests.helpers import rrmbed

    net = tmp_path / "net"
    r = rrmbed("d2d", "train", str(SC), "--scheme", "naac", "--runner", "network", *TRAIN,
               "--gamma", "0.5", "--actor-update", "gumbel", "--out", str(net))
    assert r.returncode == 0, r.stdout + r.stderr
    # the same training on the in-memory pump, with the options the command gave
    run = json.loads((net / "run.json").read_text())
    resolved = resolve(SC, {"radio.n_pairs": 3, "radio.n_rb": 4})
    pump = tmp_path / "pump"
    execute(resolved, "naac", "local", 60, 2, pump, None, run["options"])
    assert read_csv(net / "metrics.csv") == read_csv(pump / "metrics.csv")
    assert read_csv(net / "training.csv") == read_csv(pump / "training.csv")
    a, b = load(net / "weights.npz"), load(pump / "weights.npz")
    assert a.meta.fingerprint == b.meta.fingerprint and a.meta.kind == "d2d-underlay"
    # the learner settings reached the controller's learner
    assert (a.meta.extra["gamma"], a.meta.extra["actor_update"]) == (0.5, "gumbel")
    # updates at slots 20 and 40: the transitions of slots 0..18, then 19..38
    train = read_csv(net / "training.csv")
    assert [(float(t["slot"]), float(t["transitions"])) for t in train] == [(20, 19), (40, 39)]
    assert [float(t["version"]) for t in train] == [2.0, 3.0]
    # every pair uploaded its (s, a, r) of every slot; each got its actor three times (the
    # snapshot before slot 0 and two broadcasts), only its own
    rows = setup_rows(net / "overhead.csv")
    exp = {x["sender"]: int(x["messages"]) for x in rows if x["kind"] == "experience"}
    assert exp == {f"pair-{i}": 60 for i in range(3)}
    weights = [x for x in read_csv(net / "overhead.csv") if x["kind"] == "weights"]
    assert sorted(x["receiver"] for x in weights) == [f"pair-{i}" for i in range(3)]
    assert all(int(x["messages"]) == 3 for x in weights)
    actor = 4 * ((16 + 1) * 16 + (16 + 1) * 8 + (8 + 1) * 4)  # float32, obs 16 = 4 x 4 RBs
    summary = json.loads((net / "summary.json").read_text())
    assert summary["actor_bytes"] == actor
    per = int(weights[0]["bytes"]) / 3
    assert actor < per < actor + 600  # the arrays plus names and headers
    # during the warm-up the pairs drew uniformly; the metrics hold every pair's RB
    m = read_csv(net / "metrics.csv")
    assert {int(x[f"rb_p{i}"]) for x in m[:20] for i in range(3)} == {0, 1, 2, 3}


def test_killed_pair_is_reported_and_the_others_go_on(tmp_path: Path, spawn: Spawn) -> None:
    """SIGKILL one pair process of d2d-n10 mid-run: the heartbeats declare it lost, the run
    plays every slot without it (its RB -1 from then on, its interference gone from the
    others' SINRs, checked against a replay of the air), exits 2 naming it, and leaves no
    process behind."""
    out, slots, victim = tmp_path / "kill", 400, 3
    proc = spawn("run", str(SC), "--scheme", "random", "--runner", "network", "--slots",
                 str(slots), "--seed", "5", "--out", str(out), "--no-telemetry",
                 "--set", 'timing.clock="realtime"', "--set", "timing.peer_timeout_s=1.0",
                 "--set", "timing.heartbeat_s=0.2")
    pids = wait_for_slot(proc, out, 50)
    os.kill(pids[f"pair-{victim}"], signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2, stdout + stderr  # 2: a node was lost
    assert f"pair-{victim}" in stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["lost_nodes"] == [f"pair-{victim}"] and s["slots"] == slots, s
    assert s["errors"] == [] and s["silent"]["controller"] == {f"pair-{victim}": 1}, s
    rows = read_csv(out / "metrics.csv")
    assert len(rows) == slots
    rb = np.array([[int(r[f"rb_p{i}"]) for i in range(10)] for r in rows])
    lev = np.array([[int(r[f"level_p{i}"]) for i in range(10)] for r in rows])
    # the victim transmitted, then fell silent for good; every other pair to the end
    gone = int(np.argmax(rb[:, victim] < 0))
    assert 50 <= gone < slots - 150 and (rb[:gone, victim] >= 0).all()
    assert (rb[gone:, victim] == -1).all() and (lev[gone:, victim] == -1).all()
    assert (np.delete(rb, victim, axis=1) >= 0).all()
    # the air replayed with the recorded choices and the victim silent from ``gone``; a
    # second replay, with the victim still on its last choice at ``gone``, shows its
    # interference would have shown in that slot's CUE SINR
    scenario = resolve(SC, {}).scenario
    air, ghost = D2dAir(scenario, 1, seed=5), D2dAir(scenario, 1, seed=5)
    for n, row in enumerate(rows):
        silent = rb[n] < 0
        a_rb, a_lev = np.where(silent, 0, rb[n])[None], np.where(silent, 0, lev[n])[None]
        air.slices()
        o = air.step(a_rb, a_lev, silent[None])
        mbps = [float(row[f"d2d_mbps_p{i}"]) for i in range(10)]
        assert mbps == pytest.approx(o.rates.d2d_rate_bps[0] / 1e6, rel=1e-12), n
        assert float(row["d2d_sum_mbps"]) == pytest.approx(sum(mbps), rel=1e-9)
        cue_db = [float(row[f"cue_sinr_db_c{m}"]) for m in range(10)]
        assert cue_db == pytest.approx(10 * np.log10(o.rates.cue_sinr[0]), abs=1e-9), n
        if n >= gone:
            assert mbps[victim] == 0.0 and float(row[f"reward_p{victim}"]) == 0.0
        if n <= gone:
            ghost.slices()
            on = silent.copy()
            on[victim] = False
            a_rb[0, victim], a_lev[0, victim] = rb[gone - 1, victim], lev[gone - 1, victim]
            g = ghost.step(a_rb, a_lev, on[None])
            if n == gone:
                m = rb[gone - 1, victim]
                # (by how much depends on the slot the kill lands in: 0.075 % in one run)
                assert g.rates.cue_sinr[0, m] < o.rates.cue_sinr[0, m] * (1 - 1e-9)
    for role, pid in pids.items():
        assert not alive(pid), f"{role} (pid {pid}) left behind"


def replay_online_learner(scheme: str, rows: list[dict[str, str]], seed: int) -> list[list[int]]:
    """The actions the pairs of ``rows`` should have played, from this test's own SLA and
    tabular Q-learning (the registry's settings), each pair's generator and the rewards
    and slices of a replay of the air."""
    from node.schemes import SCHEMES
    from protocols.seeding import rng_for

    opts = SCHEMES.get("d2d-underlay", scheme).options
    scenario = resolve(SC, {"radio.n_pairs": N,
                            "radio.d2d_power_levels_dbm": [13.0, 3.0]}).scenario
    k, power = 10, np.array([13.0, 3.0])
    air, rngs = D2dAir(scenario, 1, seed=7), [rng_for(7, "d2d", "pair", i) for i in range(N)]
    p = np.full((N, 2 * k), 1 / (2 * k))
    best = np.full(N, -1.0)
    edges = np.array(opts.get("sinr_edges_db", ()))
    q = np.zeros((N, (2 * k + 1) * (len(edges) + 1), 2 * k))
    last: list[tuple[int, int, float] | None] = [None] * N
    played = []
    for row in rows:
        sl, acts = air.slices(), []
        for i in range(N):
            g = rngs[i].gumbel(size=2 * k)
            if scheme == "sla":
                acts.append(int(np.argmax(np.log(p[i]) + g)))
                continue
            u = rngs[i].random()
            rb, lev = int(sl.last_rb[0, i]), int(sl.last_level[0, i])
            s = 0 if rb < 0 else (rb + k * lev + 1) * (len(edges) + 1) + int(np.sum(
                power[lev] + sl.d2d_gain_db[0, i, rb] - sl.interference_dbm[0, i, rb] >= edges))
            if last[i] is not None:
                s0, a0, r0 = last[i]  # type: ignore[misc]
                q[i, s0, a0] += opts["alpha"] * (r0 + opts["gamma"] * q[i, s].max()
                                                 - q[i, s0, a0])
            top = q[i, s] >= q[i, s].max()
            greedy = int(np.argmax(np.where(top, g, -np.inf)))
            a = int(np.argmax(g)) if u < opts["epsilon"] else greedy
            acts.append(a)
            last[i] = (s, a, 0.0)
        played.append(acts)
        rb_, lev_ = np.array(acts) % k, np.array(acts) // k
        air.step(rb_[None], lev_[None])
        for i in range(N):
            r = float(row[f"reward_p{i}"])
            if scheme == "sla":
                best[i] = max(best[i], r)
                u_ = min(max((r + 1) / (best[i] + 1), 0.0), 1.0) if best[i] > -1 else 0.0
                p[i] += opts["step"] * u_ * (np.eye(2 * k)[acts[i]] - p[i])
            else:
                s0, a0, _ = last[i]  # type: ignore[misc]
                last[i] = (s0, a0, r)
    return played


@pytest.mark.parametrize("scheme", ["sla", "q-learning"])
def test_online_learners_network_equals_local_and_learn_in_the_pair(tmp_path: Path,
                                                                    scheme: str) -> None:
    """SLA and tabular Q-learning learn in the pair process from their own rewards: the
    network and local runners agree byte for byte, and every action equals this test's
    own replay of the learner (which departs from the draws without learning)."""
    from protocols.seeding import rng_for

    slots = 100
    outs = {runner: run_dir(tmp_path, SC, scheme, runner, slots, 7, *SETS,
                            *(("--no-telemetry",) if runner == "network" else ()))
            for runner in ("network", "local")}
    net, loc = (read_csv(outs[r] / "metrics.csv") for r in ("network", "local"))
    assert len(net) == slots and net == loc
    assert setup_rows(outs["network"] / "overhead.csv") == setup_rows(
        outs["local"] / "overhead.csv")
    rows = setup_rows(outs["network"] / "overhead.csv")
    assert not [r for r in rows if r["plane"] == "backhaul"]  # uncoupled: no signalling
    acts = [[int(r[f"rb_p{i}"]) + 10 * int(r[f"level_p{i}"]) for i in range(N)] for r in net]
    assert acts == replay_online_learner(scheme, net, 7)
    # without learning (p uniform, Q all zero) each action would be the Gumbel-max draw
    rngs = [rng_for(7, "d2d", "pair", i) for i in range(N)]
    unlearned = []
    for _ in range(slots):
        row = []
        for g in rngs:
            row.append(int(np.argmax(g.gumbel(size=20))))
            if scheme == "q-learning":
                g.random()
        unlearned.append(row)
    assert acts[0] == unlearned[0]
    assert sum(a != b for a, b in zip(acts, unlearned, strict=True)) > slots // 10


def test_independent_actor_critic_trains_and_acts_over_processes(tmp_path: Path) -> None:
    """IAC (the paper's AC baseline: each pair's critic sees its own state and action only)
    trains with ``rrmbed d2d train --scheme iac`` and acts over pair processes as on the
    in-memory pump; every action is the argmax of its own actor on its own observation,
    computed here from the weights file and a replay of the air."""
    from node.d2d_observation import observe
    from protocols.weights import load
    from tests.helpers import rrmbed

    w = tmp_path / "iac"
    r = rrmbed("d2d", "train", str(SC), "--scheme", "iac", "--slots", "30", "--random-slots",
               "10", *SETS, "--actor-hidden", "16,8", "--critic-hidden", "32,16,8",
               "--batch-size", "8", "--seed", "7", "--gamma", "0", "--entropy", "0.2", "--out",
               str(w))
    assert r.returncode == 0, r.stdout + r.stderr
    art = load(w / "weights.npz")
    assert art.meta.extra["critic"] == "own" and art.meta.scheme == "iac"
    assert (art.meta.extra["gamma"], art.meta.extra["actor_update"],
            art.meta.extra["entropy"]) == (0.0, "expected", 0.2)
    assert art.meta.extra["updates"] > 0
    assert art.meta.extra["critic_members"] == [[i] for i in range(N)]
    outs = {runner: run_dir(tmp_path, SC, "iac", runner, 40, 7, *SETS, "--weights",
                            str(w / "weights.npz"),
                            *(("--no-telemetry",) if runner == "network" else ()))
            for runner in ("network", "local")}
    net, loc = (read_csv(outs[x] / "metrics.csv") for x in ("network", "local"))
    assert len(net) == 40 and net == loc
    scenario = resolve(SC, {"radio.n_pairs": N,
                            "radio.d2d_power_levels_dbm": [13.0, 3.0]}).scenario
    air = D2dAir(scenario, 1, seed=7)
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in art.arrays.items()}
    for row in net:
        sl = air.slices()
        x = observe(scenario, sl.d2d_gain_db[0], sl.bs_gain_db[0], sl.interference_dbm[0],
                    sl.last_rb[0], sl.last_level[0])
        acts = []
        for i in range(N):
            h = x[i]
            for j in range(3):
                h = h @ arrays[f"agent{i}.actor.{j}.weight"].T + arrays[f"agent{i}.actor.{j}.bias"]
                h = np.maximum(h, 0.0) if j < 2 else h
            acts.append(int(np.argmax(h)))
        assert [int(row[f"rb_p{i}"]) + 10 * int(row[f"level_p{i}"]) for i in range(N)] == acts
        air.step((np.array(acts) % 10)[None], (np.array(acts) // 10)[None])


def test_dqn_trains_over_processes_as_on_the_pump_and_acts_greedily(tmp_path: Path) -> None:
    """The DQN baseline (one Q network per pair, scheme ``dqn``): pairs upload, the controller
    trains and broadcasts each pair its Q network and exploration rate, the same slot by slot
    on the in-memory pump; then a run with the weights file acts greedily: every action the
    argmax of the pair's own Q network, computed here from the file on a replay of the air."""
    from controller.runners.run import execute
    from node.d2d_observation import observe
    from protocols.weights import load
    from tests.helpers import rrmbed

    net = tmp_path / "train"
    r = rrmbed("d2d", "train", str(SC), "--scheme", "dqn", "--runner", "network", "--slots",
               "60", "--random-slots", "20", "--broadcast-period", "20", *SETS,
               "--actor-hidden", "16,8", "--batch-size", "8", "--seed", "7", "--out", str(net))
    assert r.returncode == 0, r.stdout + r.stderr
    run = json.loads((net / "run.json").read_text())
    overrides = {"radio.n_pairs": N, "radio.d2d_power_levels_dbm": [13.0, 3.0]}
    pump = tmp_path / "pump"
    execute(resolve(SC, overrides), "dqn", "local", 60, 7, pump, None, run["options"])
    assert read_csv(net / "metrics.csv") == read_csv(pump / "metrics.csv")
    train = read_csv(net / "training.csv")
    assert train == read_csv(pump / "training.csv")
    art = load(net / "weights.npz")
    assert art.meta.fingerprint == load(pump / "weights.npz").meta.fingerprint
    assert (art.meta.kind, art.meta.scheme, art.meta.algo) == ("d2d-underlay", "dqn", "dqn")
    # none at slot 20 (19 transitions, fewer than the warm-up's 20), then one per slot:
    # epsilon decayed over half of the 40 slots after the warm-up, 1 -> 0.02
    assert [float(t["updates"]) for t in train] == [0.0, 20.0]
    assert float(train[1]["epsilon"]) == pytest.approx(0.02)
    exp = {x["sender"]: int(x["messages"]) for x in setup_rows(net / "overhead.csv")
           if x["kind"] == "experience"}
    assert exp == {f"pair-{i}": 60 for i in range(N)}
    # execution: greedy on the pair's own Q network
    out = run_dir(tmp_path, SC, "dqn", "network", 20, 7, *SETS, "--weights",
                  str(net / "weights.npz"), "--no-telemetry")
    rows = read_csv(out / "metrics.csv")
    scenario = resolve(SC, overrides).scenario
    air = D2dAir(scenario, 1, seed=7)
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in art.arrays.items()}
    played = set()
    for row in rows:
        sl = air.slices()
        x = observe(scenario, sl.d2d_gain_db[0], sl.bs_gain_db[0], sl.interference_dbm[0],
                    sl.last_rb[0], sl.last_level[0])
        acts = []
        for i in range(N):
            h = x[i]
            for j in (0, 2, 4):
                h = h @ arrays[f"agent{i}.q.{j}.weight"].T + arrays[f"agent{i}.q.{j}.bias"]
                h = np.maximum(h, 0.0) if j < 4 else h
            acts.append(int(np.argmax(h)))
        assert [int(row[f"rb_p{i}"]) + 10 * int(row[f"level_p{i}"]) for i in range(N)] == acts
        played.update(acts)
        air.step((np.array(acts) % 10)[None], (np.array(acts) // 10)[None])
    assert len(rows) == 20 and len(played) > 1


def test_asynchronous_training_lags_uploads_and_deployments_by_the_backhaul(
        tmp_path: Path) -> None:
    """--asynchronous with uploads taking 5 ms and deployments 3 ms (1 ms slots): an update
    at slot U stores only the transitions whose uploads (their own and the next slot's, each
    sent at the end of its slot) arrived by U, and every pair switches to the new actor at
    slot U + 3, as its message history shows; the in-memory pump plays the same run. With no
    backhaul latency the asynchronous mode trains exactly as the synchronous one."""
    from controller.runners.run import execute
    from tests.helpers import rrmbed

    up, down = 5, 3  # slots
    lat = {f"backhaul.links.pair-{i}->controller": up for i in range(3)}
    lat.update({f"backhaul.links.controller->pair-{i}": down for i in range(3)})
    links = [f'{k}={{model = "constant", latency_s = {v / 1000}}}' for k, v in lat.items()]
    net = tmp_path / "net"
    r = rrmbed("d2d", "train", str(SC), "--scheme", "maac", "--runner", "network", *TRAIN,
               "--asynchronous", *(x for s in links for x in ("--set", s)), "--out", str(net))
    assert r.returncode == 0, r.stdout + r.stderr
    run = json.loads((net / "run.json").read_text())
    assert run["options"]["train"]["asynchronous"] is True
    overrides = {"radio.n_pairs": 3, "radio.n_rb": 4,
                 **{k: {"model": "constant", "latency_s": v / 1000} for k, v in lat.items()}}
    resolved = resolve(SC, overrides)
    pump = tmp_path / "pump"
    execute(resolved, "maac", "local", 60, 2, pump, None, run["options"])
    assert read_csv(net / "metrics.csv") == read_csv(pump / "metrics.csv")
    train = read_csv(net / "training.csv")
    assert train == read_csv(pump / "training.csv")
    # slot n's transition needs the uploads of n and n + 1, the latter arriving at the start
    # of slot n + 2 + up: stored by the update at U if n <= U - 2 - up
    assert [(float(t["slot"]), float(t["transitions"])) for t in train] == [
        (20, 20 - 1 - up), (40, 40 - 1 - up)]
    summary = json.loads((net / "summary.json").read_text())
    assert summary["asynchronous"] is True and summary["deployment_lag_slots"] == down
    # the weights version each pair held when it transmitted: new actors from U + down on
    hist = tmp_path / "hist"
    execute(resolved, "maac", "network", 60, 2, tmp_path / "again", None,
            {**run["options"], "history": str(hist)})
    for i in range(3):
        (log,) = hist.glob(f"pair-{i}.*.csv")
        held = {int(row["slot"]): int(row["version"])
                for row in read_csv(log) if row["kind"] == "d2d_transmit"}
        assert [held[n] for n in (19, 20 + down - 1, 20 + down, 40 + down - 1, 40 + down)] \
            == [1, 1, 2, 2, 3], held

    # no latency: the same training as the synchronous mode, slot by slot
    zero = {"radio.n_pairs": 3, "radio.n_rb": 4, "backhaul.default.latency_s": 0.0}
    options = {k: v for k, v in run["options"]["train"].items() if k != "asynchronous"}
    for mode, extra in (("sync", {}), ("async", {"asynchronous": True})):
        execute(resolve(SC, zero), "maac", "local", 60, 2, tmp_path / mode, None,
                {**run["options"], "train": {**options, **extra}})
    assert read_csv(tmp_path / "sync" / "metrics.csv") == read_csv(
        tmp_path / "async" / "metrics.csv")
    assert read_csv(tmp_path / "sync" / "training.csv") == read_csv(
        tmp_path / "async" / "training.csv")
