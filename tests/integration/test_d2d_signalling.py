"""Paper 002's signalling table and the D2D scale bench, through the real CLI, checked
against computations of their own: the upload bytes per slot against the codec's size of
one pair's history upload times the pairs, the actor download against the codec's size of
the weights message that carries the run's actor, the paper actor's download against its
parameter count; the scale figures against sane bounds, and no pair process with torch."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from protocols.codec import encode
from protocols.messages import Experience, Weights
from protocols.meter import wire_size
from tests.helpers import ROOT, rrmbed

N, SLOTS, RANDOM, PERIOD = 10, 40, 20, 10


def upload_size(dim: int, slot: int, seq: int) -> int:
    msg = Experience(sender="pair-9", seq=seq, slot=slot, sent_ns=time.time_ns(),
                     obs=np.ones((1, dim), np.float32), action=np.array([7]),
                     reward=np.array([-1.0], np.float32), next_obs=np.zeros((0, dim), np.float32),
                     done=np.zeros(1, bool), step=slot)
    return wire_size(len(encode(msg)))


def test_signalling_table_bytes(tmp_path: Path) -> None:
    out = tmp_path / "sig"
    r = rrmbed("d2d", "signalling", "--ns", str(N), "--schemes", "maac", "--broadcast-periods",
               str(PERIOD), "--backhaul-ms", "0", "--slots", str(SLOTS), "--random-slots",
               str(RANDOM), "--actor-hidden", "8", "--critic-hidden", "8", "--batch-size", "4",
               "--out", str(out), timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    with (out / "signalling.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1
    row = rows[0]
    assert (out / "plots" / "signalling.png").stat().st_size > 1000
    table = json.loads((out / "signalling.json").read_text())["table"]
    assert [(t["n_pairs"], t["scheme"]) for t in table] == [(N, "maac")]
    run_dir = Path(row["run_dir"])

    # the run's actor: its shapes give the observation size and the actions
    z = np.load(run_dir / "weights.npz")
    own = {k: z[k] for k in z.files if k.startswith("agent0.actor.")}
    assert own, z.files
    first = own["agent0.actor.0.weight"]
    last_w = own[max((k for k in own if k.endswith(".weight")),
                     key=lambda k: int(k.split(".")[2]))]
    dim, n_actions = first.shape[1], last_w.shape[0]
    assert first.shape[0] == 8  # --actor-hidden 8 reached the learner

    # uploads: one message per pair and slot; its size bounded by the header's int widths
    lo, hi = upload_size(dim, 0, 0), upload_size(dim, SLOTS, 100 * SLOTS)
    up = float(row["upload_bytes_per_slot"])
    assert N * lo <= up <= N * hi, (up, lo, hi)
    assert abs(float(row["upload_bytes_per_slot_per_pair"]) - up / N) < 1e-9
    assert hi - lo <= 6  # the bound is tight: a wrong kind or a missing pair cannot pass

    # downloads: one weights message per pair at every broadcast inside the run
    def weights_size(slot: int, version: int) -> int:
        return wire_size(len(encode(Weights(sender="controller", slot=slot, seq=0,
                                            sent_ns=time.time_ns(), version=version,
                                            names=list(own), arrays=list(own.values())))))
    one = float(row["actor_download_bytes"])
    assert weights_size(0, 1) - 2 <= one <= weights_size(SLOTS, 99) + 2, one
    broadcasts = len(range(PERIOD, SLOTS, PERIOD))
    down = float(row["download_bytes_per_slot"])
    assert abs(down - N * broadcasts * one / SLOTS) <= N * broadcasts * 4 / SLOTS, down

    # the paper's actor (512, 128): four bytes a parameter plus a small header
    params = (dim * 512 + 512) + (512 * 128 + 128) + (128 * n_actions + n_actions)
    assert int(row["paper_actor_params"]) == params
    paper = int(row["paper_actor_download_bytes"])
    assert 4 * params < paper < 4 * params + 400, (paper, params)
    assert abs(float(row["paper_download_bytes_per_slot"]) - N * paper / PERIOD) < 1e-6

    # sum rate and outage: the run's own slots after the warm-up
    with (run_dir / "metrics.csv").open() as f:
        acting = [m for m in csv.DictReader(f) if int(m["slot"]) >= RANDOM]
    assert len(acting) == SLOTS - RANDOM
    for col, key in (("d2d_sum_rate_mbps", "d2d_sum_mbps"), ("cue_outage", "cue_outage"),
                     ("d2d_outage", "d2d_outage")):
        assert abs(float(row[col]) - np.mean([float(m[key]) for m in acting])) < 1e-9, col


def test_pair_imports_no_torch() -> None:
    """A pair node's modules, imported in a fresh interpreter, leave torch out."""
    code = ("import sys, node.roles.pair, node.pair_agent, node.roles.node, "
            "channel_server.kinds.d2d; print(sorted(m for m in ('torch', 'matplotlib', "
            "'scipy.optimize') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]", r.stdout


def test_scale_rss_and_no_torch(tmp_path: Path) -> None:
    import torch  # noqa: F401 - this process maps torch: the detector must see it

    from controller.bench.d2d_scale import maps_torch, rss_bytes

    assert maps_torch(os.getpid()) is True
    assert (rss_bytes(os.getpid()) or 0) > 50 * 2**20
    out = tmp_path / "scale"
    r = rrmbed("d2d", "scale", "--ns", str(N), "--schemes", "random", "--slots", "200",
               "--interval", "0.05", "--out", str(out), timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = json.loads((out / "scale.json").read_text())["rows"]
    assert len(rows) == 1
    s = rows[0]
    assert s["n_pairs"] == N and s["slots"] == 200 and s["samples"] >= 1
    assert 10 < s["pair_rss_mib_min"] <= s["pair_rss_mib_mean"] <= s["pair_rss_mib_max"] < 400
    assert 10 < s["controller_rss_mib"] < 2000 and 10 < s["channel_server_rss_mib"] < 2000
    assert s["total_rss_mib"] >= N * s["pair_rss_mib_min"] + s["controller_rss_mib"]
    assert s["slots_per_s"] > 0
    assert s["pairs_with_torch"] == []
    procs = json.loads((Path(s["run_dir"]) / "processes.json").read_text())
    assert sum(k.startswith("pair-") for k in procs) == N
