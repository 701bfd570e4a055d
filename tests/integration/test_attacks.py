"""Issue 12: the hostile frames of the issue's probe, sent from another process to the inboxes
of a running realtime round-robin network, are rejected and counted by the process they
reach; the run completes every slot, says in its exit status that it dropped messages, and
its metrics.csv is byte-identical to an unattacked run of the same seed."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import zmq

from protocols.codec import encode
from protocols.messages import (
    Done,
    Hello,
    Message,
    PowerForward,
    SlotOutcome,
    Stop,
    Transmit,
)
from tests.helpers import S3, Spawn, listening_ports, rrmbed

SETS = ("--set", 'timing.clock="realtime"', "--set", 'timing.compute_model="fixed"')


def forge(cls: type[Message], sender: str, slot: int, **payload: object) -> bytes:
    return encode(cls(sender=sender, seq=10**6 + slot, slot=slot, sent_ns=time.time_ns(),
                      chain_latency_s=0.0, **payload))


def attacks(slot: int) -> dict[str, list[bytes]]:
    """Frames per target process, aimed at slots just ahead of ``slot``."""
    n = slot + 20
    return {
        "controller": [
            forge(SlotOutcome, "channel-server", n, powers=np.full((3, 2), 1e9),
                  rates=np.ones((3, 2)), sum_rate_bps_hz=1e9,
                  decision_latency_s=np.zeros(3), missed=np.zeros(3, bool), lost=[],
                  wall_s=0.0, compute_s=np.zeros(3)),
            forge(SlotOutcome, "channel-server", n, powers=np.ones((2, 2)),
                  rates=np.full((3, 2), np.nan), sum_rate_bps_hz=float("nan"),
                  decision_latency_s=np.zeros(3), missed=np.zeros(3, bool), lost=[],
                  wall_s=0.0, compute_s=np.zeros(3)),
            forge(Done, "channel-server", n, slots=785),
            forge(Hello, "node-1", -1, role="node", node_id=1, pid=1, host="garbage"),
            forge(Stop, "node-2", n, reason="forged"),
        ],
        "node-1": [
            forge(PowerForward, "node-0", n, order=[99], powers=np.ones((1, 2))),
            forge(PowerForward, "node-0", n, order=[0], powers=np.full((1, 2), 1e9)),
            forge(Stop, "node-0", n, reason="forged"),
        ],
        "channel-server": [
            forge(Transmit, "node-9", n, powers=np.ones(2), rb=-1, missed=False,
                  decision_latency_s=0.0, compute_s=0.0),
            forge(Transmit, "node-0", n, powers=np.full(2, 1000.0), rb=-1, missed=False,
                  decision_latency_s=0.0, compute_s=0.0),
        ],
    }


def test_forged_frames_are_rejected_and_change_nothing(tmp_path: Path, spawn: Spawn) -> None:
    out = tmp_path / "attacked"
    proc = spawn("run", str(S3), "--scheme", "round-robin", "--runner", "network", "--slots",
                 "3000", "--seed", "5", "--out", str(out), "--no-telemetry", *SETS)
    status = out / "status.json"
    deadline = time.monotonic() + 90
    while not (status.exists() and json.loads(status.read_text())["slots_done"] >= 300):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never reached slot 300"
        time.sleep(0.02)
    pids = json.loads((out / "processes.json").read_text())
    ctx = zmq.Context()
    sent: dict[str, int] = {}
    try:
        for rounds in range(3):
            done = json.loads(status.read_text())["slots_done"]
            for target, frames in attacks(done + 100 * rounds).items():
                (port,) = listening_ports(pids[target])
                sock = ctx.socket(zmq.PUSH)
                sock.setsockopt(zmq.LINGER, 2000)
                sock.connect(f"tcp://127.0.0.1:{port}")
                for frame in frames:
                    sock.send(frame)
                sock.close()
                sent[target] = sent.get(target, 0) + len(frames)
            time.sleep(0.2)
    finally:
        ctx.term()
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 3, stdout + stderr  # completed, but dropped messages
    assert "rejected by their receiver" in stdout + stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["slots"] == 3000 and s["errors"] == [] and s["lost_nodes"] == []
    counted = {who: sum(r.values()) for who, r in s["rejected"].items()}
    assert counted == sent, s["rejected"]
    assert s["rejected_total"] == sum(sent.values())
    reasons = {r for rs in s["rejected"].values() for r in rs}
    for words in ("powers outside", "done after 785", "address 'garbage'",
                  "stop from a node", "order [99]", "transmit from unknown sender"):
        assert any(words in r for r in reasons), (words, reasons)

    # nothing of it reached the results: the same run without the attack, in memory
    clean = tmp_path / "clean"
    r = rrmbed("run", str(S3), "--scheme", "round-robin", "--runner", "local", "--slots",
               "3000", "--seed", "5", "--out", str(clean), *SETS)
    assert r.returncode == 0, r.stderr
    assert (out / "metrics.csv").read_bytes() == (clean / "metrics.csv").read_bytes()
