"""Issue 12 point 5: heartbeats over real processes. A process stopped with SIGSTOP (alive,
its sockets open, silent) is declared lost within 3 heartbeats, long before the slot
timeout would notice; the run goes on without a lost node; a stalled controller is
declared lost by the others, which say hello again and are taken back by it when it
resumes, and the run completes; without the air the controller stops the run and says
why."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from tests.helpers import S3, Spawn, wait_for_slot

BEAT_S = 0.2


def start(spawn: Spawn, out: Path, slots: int, peer_timeout_s: float) -> object:
    return spawn("run", str(S3), "--scheme", "round-robin", "--runner", "network", "--slots",
                 str(slots), "--seed", "2", "--out", str(out), "--no-telemetry", "--set",
                 'timing.clock="realtime"', "--set", f"timing.heartbeat_s={BEAT_S}", "--set",
                 f"timing.peer_timeout_s={peer_timeout_s}")


def slots_done(out: Path) -> int:
    return int(json.loads((out / "status.json").read_text())["slots_done"])


def test_a_stopped_node_is_declared_lost_within_three_beats(tmp_path: Path,
                                                            spawn: Spawn) -> None:
    out = tmp_path / "run"
    # the air's own slot timeout is 30 s: only the heartbeats can let the run go on sooner
    proc = start(spawn, out, 500, peer_timeout_s=30.0)
    pids = wait_for_slot(proc, out, 40)  # type: ignore[arg-type]
    os.kill(pids["node-1"], signal.SIGSTOP)
    stopped_at, t0 = slots_done(out), time.monotonic()
    try:
        while slots_done(out) < stopped_at + 20:  # the others are served again
            assert time.monotonic() - t0 < 5.0, "the run stalled on the stopped node"
            time.sleep(0.02)
        stall_s = time.monotonic() - t0
    finally:
        os.kill(pids["node-1"], signal.SIGCONT)  # it wakes up lost, and is stopped at the end
    _, err = proc.communicate(timeout=120)  # type: ignore[attr-defined]
    assert proc.returncode == 2, err  # type: ignore[attr-defined]  # 2: a node was lost
    s = json.loads((out / "summary.json").read_text())
    assert s["lost_nodes"] == ["node-1"] and s["slots"] == 500
    assert s["silent"]["controller"] == {"node-1": 1}
    # 3 beats of 0.2 s, then 20 slots of 20 ms: far below the 30 s slot timeout
    assert stall_s < 3 * BEAT_S + 20 * 0.02 + 2.0, stall_s


def test_a_stalled_controller_is_declared_lost_and_heard_again(tmp_path: Path,
                                                               spawn: Spawn) -> None:
    out = tmp_path / "run"
    proc = start(spawn, out, 300, peer_timeout_s=5.0)
    pids = wait_for_slot(proc, out, 40)  # type: ignore[arg-type]
    os.kill(pids["controller"], signal.SIGSTOP)
    time.sleep(6 * BEAT_S)
    os.kill(pids["controller"], signal.SIGCONT)
    _, err = proc.communicate(timeout=120)  # type: ignore[attr-defined]
    assert proc.returncode == 0, err  # type: ignore[attr-defined]
    s = json.loads((out / "summary.json").read_text())
    assert s["slots"] == 300 and not s["errors"] and not s["lost_nodes"]
    # every other process lost sight of it (once, or again while it caught up on what had
    # come meanwhile); it, reading all that before its next beat, blamed no one
    assert set(s["silent"]) == {"channel-server", "node-0", "node-1", "node-2"}
    assert all(set(v) == {"controller"} and v["controller"] >= 1 for v in s["silent"].values())
    assert "heard again" in (out / "logs" / "node-0.log").read_text()
    # each said hello again and was taken back by the same controller, nothing rejected
    assert set(s["reattached"]) == {"channel-server", "node-0", "node-1", "node-2"}
    assert s["controller_attempt"] == 0 and s["rejected_total"] == 0


def test_a_silent_channel_server_stops_the_run(tmp_path: Path, spawn: Spawn) -> None:
    out = tmp_path / "run"
    proc = start(spawn, out, 2000, peer_timeout_s=2.0)
    pids = wait_for_slot(proc, out, 40)  # type: ignore[arg-type]
    os.kill(pids["channel-server"], signal.SIGSTOP)
    t0 = time.monotonic()
    try:
        while not (out / "summary.json").exists():
            assert time.monotonic() - t0 < 20.0, "the controller never noticed"
            time.sleep(0.02)
    finally:
        os.kill(pids["channel-server"], signal.SIGCONT)
    _, err = proc.communicate(timeout=120)  # type: ignore[attr-defined]
    assert proc.returncode == 2, err  # type: ignore[attr-defined]
    s = json.loads((out / "summary.json").read_text())
    assert s["slots"] < 2000
    assert any("channel-server silent" in e and "3 heartbeats" in e for e in s["errors"])
    assert s["silent"]["controller"] == {"channel-server": 1}
