"""Issue 12: hostile frames sent from another process to the inboxes of a running realtime
round-robin network.

Without authentication (``--insecure``) the frames of the issue's probe reach the roles,
which reject and count each one. With the run's CURVE keys (the default), a client without
a key of the run gets nothing in at all, a valid key cannot speak for another process, and
what a key's own process could send is still checked by the role. Either way the run
completes every slot, says in its exit status that it dropped messages, and its
metrics.csv is byte-identical to an unattacked run of the same seed."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np
import zmq

from controller.bench.fuzz import listening_ports
from protocols.codec import decode, encode
from protocols.messages import (
    Done,
    Hello,
    Message,
    PowerForward,
    SlotOutcome,
    Stop,
    Transmit,
)
from tests.helpers import S3, Spawn, rrmbed, wait_for_slot

SETS = ("--set", 'timing.clock="realtime"', "--set", 'timing.compute_model="fixed"', "--set",
        "radio.slot_s=0.005")
SLOTS = 1200
"""6 s of 5 ms slots: the attacks begin at slot 300 and end by about slot 400 here."""


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


def start_run(out: Path, spawn: Spawn, *security: str) -> tuple[subprocess.Popen[str],
                                                                  dict[str, int]]:
    """A 1200-slot realtime run (5 ms slots), once it has passed slot 300; the pids of its
    processes."""
    proc = spawn("run", str(S3), "--scheme", "round-robin", "--runner", "network", "--slots",
                 str(SLOTS), "--seed", "5", "--out", str(out), "--no-telemetry", *SETS, *security)
    return proc, wait_for_slot(proc, out, 300)


def slots_done(out: Path) -> int:
    return int(json.loads((out / "status.json").read_text())["slots_done"])


def attacked_until(out: Path) -> None:
    """The attacks aim at slots up to 220 ahead of the run: they must all be over with room
    to spare, or the run could end before some frames reach it."""
    print("attacks over at slot", slots_done(out))
    assert slots_done(out) < SLOTS - 400, "the run is too short for its attacks"


def send(ctx: zmq.Context[zmq.Socket[bytes]], pid: int, frames: list[bytes],
         key: tuple[bytes, bytes, bytes] | None = None) -> None:
    """Push ``frames`` to the inbox of process ``pid``; ``key``: (server public, own public,
    own secret) for a CURVE client, None for a plain one."""
    (port,) = listening_ports(pid)
    sock = ctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.LINGER, 2000)
    if key is not None:
        sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = key
    sock.connect(f"tcp://127.0.0.1:{port}")
    for frame in frames:
        sock.send(frame)
    sock.close()


def same_as_clean_run(out: Path, tmp_path: Path) -> None:
    clean = tmp_path / "clean"
    r = rrmbed("run", str(S3), "--scheme", "round-robin", "--runner", "local", "--slots",
               str(SLOTS), "--seed", "5", "--out", str(clean), *SETS)
    assert r.returncode == 0, r.stderr
    assert (out / "metrics.csv").read_bytes() == (clean / "metrics.csv").read_bytes()


def test_forged_frames_are_rejected_and_change_nothing(tmp_path: Path, spawn: Spawn) -> None:
    out = tmp_path / "attacked"
    proc, pids = start_run(out, spawn, "--insecure")
    ctx = zmq.Context()
    sent: dict[str, int] = {}
    try:
        for rounds in range(3):
            for target, frames in attacks(slots_done(out) + 100 * rounds).items():
                send(ctx, pids[target], frames)
                sent[target] = sent.get(target, 0) + len(frames)
            time.sleep(0.2)
        attacked_until(out)
    finally:
        ctx.term()
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 3, stdout + stderr  # completed, but dropped messages
    assert "rejected by their receiver" in stdout + stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["slots"] == SLOTS and s["errors"] == [] and s["lost_nodes"] == []
    counted = {who: sum(r.values()) for who, r in s["rejected"].items()}
    assert counted == sent, s["rejected"]
    assert s["rejected_total"] == sum(sent.values())
    reasons = {r for rs in s["rejected"].values() for r in rs}
    for words in ("powers outside", "done after 785", "address 'garbage'",
                  "stop from a node", "order [99]", "transmit from unknown sender"):
        assert any(words in r for r in reasons), (words, reasons)

    same_as_clean_run(out, tmp_path)  # nothing of it reached the results


def test_with_curve_only_the_runs_keys_get_in_and_only_as_themselves(tmp_path: Path,
                                                                      spawn: Spawn) -> None:
    keys = tmp_path / "keys"
    assert rrmbed("keys", str(keys), "--scenario", str(S3)).returncode == 0
    public = {n: k.encode() for n, k in json.loads((keys / "public.json").read_text()).items()}
    node2 = (public["node-2"], (keys / "node-2.secret").read_bytes().strip())
    stranger = zmq.curve_keypair()
    out = tmp_path / "attacked"
    proc, pids = start_run(out, spawn, "--keys", str(keys))
    # a would-be node-1 listens for the Start (config, addresses, CSI) a Hello might earn
    ctx = zmq.Context()
    spy = ctx.socket(zmq.PULL)
    spy_port = spy.bind_to_random_port("tcp://127.0.0.1")
    hello = forge(Hello, "node-1", -1, role="node", node_id=1, pid=1,
                  host=f"tcp://127.0.0.1:{spy_port}")
    impostor = 0
    hostile = 0
    try:
        for _ in range(3):
            now = slots_done(out)
            n = now + 200  # a slot that has not begun when node-2's frames arrive (1 s)
            everything = {t: [hello, *f] for t, f in attacks(now).items()}
            for target, frames in everything.items():
                server = public[target]
                send(ctx, pids[target], frames)                               # no key
                send(ctx, pids[target], frames, (server, *stranger))          # not the run's
                send(ctx, pids[target], frames, (server, *node2))             # node-2's key
                own = sum(decode(f).sender == "node-2" for f in frames)
                impostor += len(frames) - own  # claim to be another process
                hostile += own  # node-2 as itself (a Stop): the role's business
            # node-2's key speaking as node-2: the roles check what it says
            send(ctx, pids["node-1"], [forge(PowerForward, "node-2", n, order=[2, 99],
                                             powers=np.ones((2, 2)))], (public["node-1"], *node2))
            send(ctx, pids["channel-server"], [forge(Transmit, "node-2", n, powers=np.ones(2),
                                                     rb=-1, missed=False,
                                                     decision_latency_s=0.0, compute_s=0.0)],
                 (public["channel-server"], *node2))
            hostile += 2
            time.sleep(0.2)
        assert spy.poll(500) == 0, "an unauthenticated Hello was answered"
        attacked_until(out)
    finally:
        spy.close(linger=0)
        ctx.term()
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 3, stdout + stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["slots"] == SLOTS and s["errors"] == [] and s["lost_nodes"] == []
    # frames without a run key never arrived; node-2's key claiming others: dropped on
    # arrival; node-2 as itself: rejected by the role
    assert s["protocol_errors"] == impostor
    assert s["rejected_total"] == hostile, s["rejected"]
    assert set(s["rejected"]) == {"node-1", "channel-server", "controller"}
    same_as_clean_run(out, tmp_path)


def test_a_process_without_keys_refuses_to_start_unless_told_insecure(tmp_path: Path) -> None:
    for cmd in (("node", "--id", "0"), ("channel-server",)):
        r = rrmbed(*cmd, "--controller", "tcp://127.0.0.1:1", timeout=60)
        assert r.returncode == 2 and "--keys" in r.stderr and "--insecure" in r.stderr
    r = rrmbed("node", "--controller", "tcp://127.0.0.1:1", "--keys", str(tmp_path),
               timeout=60)
    assert r.returncode == 2 and "public.json" in r.stderr
    r = rrmbed("compose", str(S3), timeout=60)
    assert r.returncode == 2 and "--keys" in r.stderr
