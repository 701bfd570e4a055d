"""Issue 12 point 6: chaos over 20 seeded real-process runs, each checked afterwards.

Every seed draws from its own generator what to break and when, in a real-time 3cell-k2
run over real processes with CURVE keys and message histories (round-robin, its chain of
power lists between the nodes, in 1 seed in 4; max-power in the others, at a quarter of
the CPU time):

- node chaos (7 seeds of 20): a random node is SIGKILLed at a random slot, declared lost
  by the heartbeats, and a new process of it is started, which rejoins the run. The
  history checker must find nothing: versions only increase, nothing is lost or changed
  between the processes that lived to the end, and the meter agrees with the histories.
- broker chaos (1 seed in 4): the telemetry broker is SIGKILLed at a random slot and a new
  one started in its place; telemetry must never hurt a run: its metrics.csv equals the
  local runner's, row for row, and the history holds as well.
- controller chaos (1 seed in 4, max-power, round-robin or the central WMMSE in turn): the
  controller is SIGKILLed at a random slot; the launcher (``--controller-restarts 1``)
  starts a new one on its address, which continues from its saved state while the channel
  server holds the slots; every other process reattaches. The run must end as if nothing
  happened: metrics.csv equals the local runner's, and the history holds.

- channel-server chaos (3 seeds of 20, max-power, round-robin and WMMSE in turn): the
  channel server is SIGKILLed at a random slot; the launcher (``--air-restarts 1``) starts
  a new one, the nodes connect to it and forget what waited for the slots it plays again,
  and it takes over at the first slot the controller has not recorded, its channel
  fast-forwarded there. Again metrics.csv equals the local runner's and the history holds.

The runs use 5 ms slots (``radio.slot_s``) and share one key directory, one at a time:
two at once starved each other's heartbeats when this machine ran slow (a process stalled
past three beats was declared lost: 2 of 20 runs failed so); each seed's failures are
collected and reported together.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from channel_server.kinds import resolve
from controller.evaluation.history import check
from controller.runners.local import run_local
from tests.helpers import S3, Spawn, metrics, rrmbed, wait_for_slot

SEEDS = range(20)
SLOTS = 700
OVERRIDES = {"timing.clock": "realtime", "radio.slot_s": 0.005, "timing.heartbeat_s": 0.2,
             "timing.peer_timeout_s": 1.0, "timing.compute_model": "fixed"}
SETS = tuple(x for k, v in OVERRIDES.items() for x in ("--set", f"{k}={json.dumps(v)}"))


def children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


@pytest.mark.timeout(1200)  # 20 real-time runs, one at a time: about 5 minutes here
def test_chaos_over_twenty_seeded_runs(tmp_path: Path, spawn: Spawn,
                                       mosquitto_binary: str) -> None:
    """(``mosquitto_binary``: the broker the launcher starts for the broker chaos is
    installed, not the amqtt fallback.)"""
    keys = tmp_path / "keys"
    assert rrmbed("keys", str(keys), "--scenario", str(S3)).returncode == 0

    def one(seed: int) -> str | None:
        try:
            chaos(seed, tmp_path / f"seed-{seed}", keys, spawn)
        except Exception as e:  # noqa: BLE001 - every seed's failure is reported below
            return f"seed {seed}: {type(e).__name__}: {str(e)[-1500:]}"
        return None

    failures = [f for f in map(one, SEEDS) if f is not None]
    assert not failures, "\n".join(failures)


def chaos(seed: int, tmp_path: Path, keys: Path, spawn: Spawn) -> None:
    """One seeded run with its chaos, checked (the module's docstring)."""
    rng = np.random.default_rng(seed)
    broker_chaos, controller_chaos, air_chaos = seed % 4 == 3, seed % 4 == 1, seed % 8 == 2
    scheme = "round-robin" if seed % 4 == 0 else "max-power"
    if controller_chaos:
        scheme = ("max-power", "round-robin", "wmmse")[seed // 4 % 3]
    if air_chaos:
        scheme = ("max-power", "round-robin", "wmmse")[seed // 8 % 3]
    kill_at = int(rng.integers(30, 150))
    victim = f"node-{int(rng.integers(0, 3))}"
    out = tmp_path / "run"
    args = ["run", str(S3), "--scheme", scheme, "--runner", "network", "--slots",
            str(SLOTS), "--seed", str(seed), "--out", str(out), "--keys", str(keys),
            "--history", *SETS]
    if controller_chaos:
        args += ["--controller-restarts", "1"]
    if air_chaos:
        args += ["--air-restarts", "1"]
    proc = spawn(*args, *([] if broker_chaos else ["--no-telemetry"]))
    pids = wait_for_slot(proc, out, kill_at)
    restarted: subprocess.Popen[str] | None = None
    broker: subprocess.Popen[bytes] | None = None
    try:
        if broker_chaos:
            (old,) = [p for p in children(proc.pid) if comm(p) == "mosquitto"]
            cmdline = Path(f"/proc/{old}/cmdline").read_bytes().split(b"\0")[:-1]
            os.kill(old, signal.SIGKILL)
            time.sleep(float(rng.uniform(0.05, 0.5)))
            broker = subprocess.Popen([c.decode() for c in cmdline], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
        elif controller_chaos or air_chaos:
            os.kill(pids["controller" if controller_chaos else "channel-server"],
                    signal.SIGKILL)
        else:
            os.kill(pids[victim], signal.SIGKILL)
            wait_for_slot(proc, out, kill_at + 20)  # declared lost: the others go on
            controller = json.loads((out / "endpoints.json").read_text())["controller"]
            restarted = spawn("node", "--id", victim[-1], "--controller", controller,
                              "--keys", str(keys))
        stdout, stderr = proc.communicate(timeout=120)
        if restarted is not None:
            restarted.communicate(timeout=60)
    finally:
        if broker is not None:
            broker.kill()
            broker.wait()
    s = json.loads((out / "summary.json").read_text())
    assert s["slots"] == SLOTS, (s, stderr[-2000:])
    if broker_chaos or controller_chaos or air_chaos:
        assert proc.returncode == 0, stderr[-2000:]
        if air_chaos:
            assert s["air_restarts"] == 1 and not s["errors"] and not s["lost_nodes"], s
            assert s["rejected_total"] == 0 and s["protocol_errors"] == 0, s
            assert len(list((out / "history").glob("channel-server.*.csv"))) == 2
        if controller_chaos:
            assert s["controller_attempt"] == 1 and not s["errors"], s
            assert s["rejected_total"] == 0 and s["protocol_errors"] == 0, s
            assert sorted(set(s["reattached"])) == ["channel-server", "node-0", "node-1",
                                                    "node-2"], s
            assert len(list((out / "history").glob("controller.*.csv"))) == 2
        local = tmp_path / "local"  # the in-memory runner, in this process
        run_local(resolve(S3, OVERRIDES), scheme, SLOTS, seed, local)
        assert metrics(out) == metrics(local)
    else:
        assert proc.returncode == 2, stderr[-2000:]  # 2: a node was lost
        assert s["lost_nodes"] == [victim] and s["rejoined"] == [victim], s
        assert restarted is not None and restarted.returncode == 0
        assert len(list((out / "history").glob(f"{victim}.*.csv"))) == 2  # two incarnations
    problems = check(out)
    assert problems == [], problems
