"""Durable network training over real processes (issue 12 point 4): a controller SIGKILLed
mid-run leaves checkpoints, and `rrmbed train --resume RUN_DIR` (fresh processes) ends with
the weights, curve and slot records of an uninterrupted run, bit for bit; the same for
`rrmbed v2x train --resume`, and for both with `--controller-restarts` (a new controller
on the same address, the other processes running on).

Every command runs with one torch thread (as the golden runs do): torch's thread count
changes the last bits of forward passes and updates, and the reference here is computed in
this process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np

from channel_server.kinds import resolve
from controller.evaluation.history import check
from controller.learners.threads import torch_threads
from controller.runners.local import run_local
from tests.helpers import S3, SV, Spawn, alive, read_csv, rrmbed

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def same_weights(a: Path, b: Path) -> None:
    wa, wb = np.load(a), np.load(b)
    assert sorted(wa.files) == sorted(wb.files)
    for k in wa.files:
        if k != "__rrmbed__":  # the header: steps, versions, ... compared by the caller
            np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)


def updates(run: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (run / "updates.jsonl").read_text().splitlines()]


def test_killed_network_training_resumes_to_the_uninterrupted_weights(
        tmp_path: Path, spawn: Spawn) -> None:
    m, iters, seed = 8, 8, 3
    out = tmp_path / "train"
    run = out / f"seed-{seed}"
    proc = spawn("train", str(S3), "--scheme", "round-robin", "--runner", "network",
                 "--steps", str(m * iters * 3), "--episodes", str(m), "--seeds", str(seed),
                 "--out", str(out), "--imitate", "none", "--checkpoint-every", "2", env=ENV)
    first = run / "checkpoints" / "ckpt-v000002.npz"
    deadline = time.monotonic() + 120
    while not first.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.01)
    pids: dict[str, int] = json.loads((run / "processes.json").read_text())
    os.kill(pids["controller"], signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode != 0, stdout + stderr
    killed = json.loads((run / "summary.json").read_text())
    assert killed.get("partial"), ("the run ended before the kill", killed)
    assert not any(alive(p) for p in pids.values())
    written = len(read_csv(run / "training.csv"))
    assert 2 <= written < iters  # streamed up to the kill
    assert (run / "weights.npz").exists()

    r = rrmbed("train", "--resume", str(run), "--runner", "network", env=ENV, timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    s = json.loads((run / "summary.json").read_text())
    assert not s["errors"] and not s.get("partial") and s["slots"] == m * iters
    assert s["resumed"]["attempt"] == 1 and s["resumed"]["version"] >= 2
    assert s["resumed"]["slot"] == m * s["resumed"]["version"]
    assert s["duplicate_experience"] == 0
    assert (run / "logs.0" / "controller.log").exists()  # the killed attempt's logs kept

    same_as_uninterrupted(run, tmp_path / "reference", m, iters, seed)
    assert {u["attempt"] for u in updates(run) if u["version"] > s["resumed"]["version"]} == {1}


def same_as_uninterrupted(run: Path, ref: Path, m: int, iters: int, seed: int) -> None:
    """``run`` ends as the uninterrupted run (the same roles in this process: the local
    runner) does: weights, curve and slot records bit for bit; every version made once and
    each node's experience of every slot used once, in order."""
    with torch_threads(1):
        run_local(resolve(S3), "round-robin", m * iters, seed, ref, None,
                  {"train": {"algo": "trpo", "episodes_per_iter": m, "save_batches": False,
                             "scheme": "round-robin", "checkpoint_every": 2},
                   "action_mode": "sample"})
    same_weights(ref / "weights.npz", run / "weights.npz")
    for f in ("training.csv", "metrics.csv", "latency.csv"):
        assert (ref / f).read_bytes() == (run / f).read_bytes(), f
    lines = updates(run)
    assert [u["version"] for u in lines] == list(range(1, iters + 1))
    assert [u["slots"] for u in lines] == [[m * i, m * i + m - 1] for i in range(iters)]
    for b in range(3):
        used = [seq for u in lines for seq in u["experience"][f"node-{b}"]]
        assert used == list(range(m * iters))


def test_a_killed_training_controller_is_restarted_live_to_the_same_weights(
        tmp_path: Path, spawn: Spawn) -> None:
    """--controller-restarts: the launcher restarts the SIGKILLed controller on its address;
    it continues from its latest checkpoint while the air holds the slots and the nodes
    wait, then the nodes send again the experience it had not acknowledged and the air the
    outcomes since the checkpoint; the updates since are made again. The run ends as an
    uninterrupted one, and its message histories hold."""
    m, iters, seed = 8, 8, 3
    out = tmp_path / "train"
    run = out / f"seed-{seed}"
    proc = spawn("train", str(S3), "--scheme", "round-robin", "--runner", "network",
                 "--steps", str(m * iters * 3), "--episodes", str(m), "--seeds", str(seed),
                 "--out", str(out), "--imitate", "none", "--checkpoint-every", "2",
                 "--controller-restarts", "1", "--history", env=ENV)
    first = run / "checkpoints" / "ckpt-v000002.npz"
    deadline = time.monotonic() + 120
    while not first.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.01)
    time.sleep(0.05)  # mostly mid-update two iterations on: two updates are made again
    pids: dict[str, int] = json.loads((run / "processes.json").read_text())
    os.kill(pids["controller"], signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 0, stdout + stderr
    assert "restarting it" in stderr
    s = json.loads((run / "summary.json").read_text())
    assert not s["errors"] and not s.get("partial") and s["slots"] == m * iters, s
    assert s["controller_attempt"] == 1 and s["resumed"]["attempt"] == 1, s
    assert set(s["reattached"]) == {"channel-server", "node-0", "node-1", "node-2"}
    assert s["rejected_total"] == 0 and not s["lost_nodes"], s
    assert (run / "logs" / "controller.1.log").exists()
    same_as_uninterrupted(run, tmp_path / "reference", m, iters, seed)
    assert check(run) == []


def test_v2x_network_training_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    """Lighter: 3 episodes, a broadcast and a checkpoint every 100 slots; the run is cut
    back to its checkpoint of slot 100 (as if killed after it) and resumed."""
    out = tmp_path / "v2x"
    r = rrmbed("v2x", "train", str(SV), "--runner", "network", "--episodes", "3",
               "--broadcast-period", "100", "--checkpoint-every", "1", "--seed", "4",
               "--out", str(out), env=ENV, timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    ref = tmp_path / "uninterrupted"
    shutil.copytree(out, ref)
    for p in (out / "checkpoints").iterdir():
        if p.name != "ckpt-v000002.npz":
            p.unlink()
    r = rrmbed("v2x", "train", "--resume", str(out), "--runner", "network", env=ENV,
               timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    s = json.loads((out / "summary.json").read_text())
    assert not s["errors"] and s["slots"] == 300 and s["weights_versions"] == 3
    assert s["resumed"] == {"checkpoint": str(out / "checkpoints" / "ckpt-v000002.npz"),
                            "version": 2, "slot": 100, "attempt": 1}
    for k in range(4):  # the checkpoint's weights deployed at slot 100, as in the first run
        assert s["process_stats"][f"vehicle-{k}"]["weights_versions"] == [1, 2, 3]
    same_weights(ref / "weights.npz", out / "weights.npz")
    for f in ("training.csv", "metrics.csv", "episodes.csv"):
        assert (ref / f).read_bytes() == (out / f).read_bytes(), f
    assert [(u["version"], u["attempt"]) for u in updates(out)] == [(2, 0), (3, 1)]


def test_v2x_training_controller_restarted_live(tmp_path: Path, spawn: Spawn) -> None:
    """--controller-restarts on V2X: the controller SIGKILLed after its first checkpoint
    (slot 100) is restarted; the vehicles send again their unacknowledged experience (the
    episode's last slot, used already, is not used twice) and the run ends with the
    weights, curve and episodes of an uninterrupted run."""
    args = ["v2x", "train", str(SV), "--runner", "network", "--episodes", "3",
            "--broadcast-period", "100", "--checkpoint-every", "1", "--seed", "4"]
    ref = tmp_path / "uninterrupted"
    r = rrmbed(*args, "--out", str(ref), env=ENV, timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    out = tmp_path / "v2x"
    proc = spawn(*args, "--out", str(out), "--controller-restarts", "1", env=ENV)
    first = out / "checkpoints" / "ckpt-v000002.npz"
    deadline = time.monotonic() + 120
    while not first.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.01)
    time.sleep(0.05)
    os.kill(json.loads((out / "processes.json").read_text())["controller"], signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 0, stdout + stderr
    s = json.loads((out / "summary.json").read_text())
    assert not s["errors"] and s["slots"] == 300 and s["controller_attempt"] == 1, s
    assert set(s["reattached"]) == {"channel-server", *(f"vehicle-{k}" for k in range(4))}
    assert s["rejected_total"] == 0 and s["resumed"]["slot"] == 100, s
    same_weights(ref / "weights.npz", out / "weights.npz")
    for f in ("training.csv", "metrics.csv", "episodes.csv"):
        assert (ref / f).read_bytes() == (out / f).read_bytes(), f
