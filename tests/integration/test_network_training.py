"""Training over real processes: experience up, versioned weights down, and the same
update as the in-process learner on the same batch."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from protocols.weights import read_meta
from tests.helpers import ROOT, S3, rrmbed, run_dir

ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
"""The controller and the reference learner both start with one thread: the comparison is
bit for bit, and sums split over threads differ in the last bit."""

REFERENCE = """
import sys
from pathlib import Path
import numpy as np
from channel_server.config import load_scenario
from controller.learners.experience import make_learner
from controller.training.rollout import Batch
from node.agent import node_policy
from node.policy import load_arrays
from protocols.weights import read_arrays
from tests.helpers import S3
scheme, seed, iters, first, run, out = *sys.argv[1:3], *map(int, sys.argv[3:5]), *sys.argv[5:]
policy = node_policy(scheme, load_scenario(S3), int(seed))
if first:  # the run started from its warm start's weights (version 1)
    load_arrays(policy, read_arrays(f"{run}/warm-start.npz"))
learner = make_learner("trpo", policy, int(seed), (("max_kl", 0.02),))  # the run's option
Path(out).mkdir()
for v in range(first, first + iters):
    with np.load(f"{run}/batch-{v}.npz") as z:
        learner.step(Batch(z["obs"], z["actions"], z["rewards"], z["dones"], z["sum_rate"]))
    np.savez(f"{out}/v{v + 1}.npz",
             **{k: t.detach().numpy() for k, t in policy.state_dict().items()})
"""
"""Steps a fresh learner on the controller's saved batches; writes its weights after each."""


@pytest.mark.parametrize("warm", ["none", "fp"])
def test_network_training_round_robin(tmp_path: Path, warm: str) -> None:
    """The paper's recipe (``--imitate none --set radio.action_map=clip``: the nodes' seeded
    weights are version 0, their powers clipped linearly) and
    the default warm start (``fp`` for round-robin: its imitated weights are version 1,
    the nodes' and the learner's first)."""
    scheme, m, iters, seed = "round-robin", 12, 3, 5
    first = 0 if warm == "none" else 1
    out = tmp_path / "train"
    r = rrmbed("train", str(S3), "--scheme", scheme, "--runner", "network", "--steps",
               str(m * iters * 3), "--episodes", str(m), "--seeds", str(seed), "--out", str(out),
               "--save-batches", "--learner-option", "max_kl=0.02",
               *(("--imitate", "none", "--set", "radio.action_map=clip") if warm == "none" else
                                   ("--imitation-drops", "200", "--imitation-epochs", "2",
                                    "--validation-episodes", "50")),
               timeout=400, env=ONE_THREAD)
    assert r.returncode == 0, r.stdout + r.stderr
    run = out / f"seed-{seed}"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["slots"] == m * iters and not summary["errors"]
    assert (run / "warm-start.npz").exists() == (warm != "none")
    # the summary says how the training went: its updates and its warm start (the
    # imitation.json beside it)
    assert summary["updates"] == iters  # one per iteration (the last after the final slot)
    if warm == "none":
        assert summary["warm_start"] is None
    else:
        assert summary["warm_start"] == json.loads((run / "imitation.json").read_text())
        assert summary["warm_start"]["teacher"] == "fp"
    # the paper's recipe, clipped linear powers: the processes read the overridden scenario
    want_map = "clip" if warm == "none" else "log"
    assert f'action_map = "{want_map}"' in (run / "scenario.toml").read_text()
    assert read_meta(run / "weights.npz")["action_map"] == want_map  # and the weights say so

    # every node's weights version advanced with each iteration, from the warm start's
    # version 1 where there is one (the last update lands after the final slot)
    for b in range(3):
        assert summary["process_stats"][f"node-{b}"]["weights_versions"] == list(
            range(1, first + iters))
    # the experience bytes the controller received are those the nodes sent
    with (run / "overhead.csv").open() as f:
        sent = {r["sender"]: int(r["bytes"]) for r in csv.DictReader(f)
                if r["kind"] == "experience"}
    received = {s: b for k, s, _m, b in summary["received"] if k == "experience"}
    assert sent == received and len(sent) == 3 and min(sent.values()) > 0

    # the controller's update equals a fresh learner's with the run's learner option on the
    # same batches (its trust region is twice the default's: without the option the
    # weights would differ from the first update), stepped in a fresh process started as
    # the controller was (torch's state in this test process depends on the tests before
    # it: a thread count changed and restored at run time does not sum exactly as one set
    # at start)
    with np.load(run / f"batch-{first}.npz") as z:
        assert z["obs"].shape == (m * 3, 15) and z["dones"].sum() == m
    ref = tmp_path / "reference"
    done = subprocess.run([sys.executable, "-c", REFERENCE, scheme, str(seed), str(iters),
                           str(first), str(run), str(ref)], cwd=ROOT, env=ONE_THREAD,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for v in range(first, first + iters):
        with np.load(ref / f"v{v + 1}.npz") as mine, np.load(run / f"weights-v{v + 1}.npz") as z:
            assert set(mine.files) <= set(z.files)
            for k in mine.files:
                assert np.array_equal(mine[k], z[k]), (v, k)

    if warm != "none":  # the warm start is the local runner's, for the same seed
        local = tmp_path / "local"
        r = rrmbed("train", str(S3), "--scheme", scheme, "--steps", "12", "--episodes", "4",
                   "--seeds", str(seed), "--imitation-drops", "200", "--imitation-epochs", "2",
                   "--validation-episodes", "50", "--out", str(local), env=ONE_THREAD)
        assert r.returncode == 0, r.stdout + r.stderr
        net_warm, loc_warm = (json.loads((d / "imitation.json").read_text())
                              for d in (run, local / f"seed-{seed}"))
        assert net_warm.pop("wall_s") > 0 and loc_warm.pop("wall_s") > 0
        assert net_warm == loc_warm and net_warm["teacher"] == "fp"

    # the trained policy deployed with --weights: network and local runners agree exactly,
    # and every node ran the weights (not the seeded initial policy)
    outs = {}
    for runner in ("network", "local"):  # (with the map they were trained with)
        outs[runner] = run_dir(tmp_path, S3, scheme, runner, 40, 9, "--weights",
                               str(run / "weights.npz"), "--set", f"radio.action_map={want_map}")
    with (outs["network"] / "metrics.csv").open() as f:
        net = list(csv.DictReader(f))
    with (outs["local"] / "metrics.csv").open() as f:
        loc = list(csv.DictReader(f))
    assert net == loc
    untrained = run_dir(tmp_path / "untrained", S3, scheme, "local", 40, 9)
    with (untrained / "metrics.csv").open() as f:
        assert list(csv.DictReader(f)) != loc
