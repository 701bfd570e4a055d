"""`rrmbed gnn train` and `rrmbed gnn gap` as real processes: the weights file loads with
the numpy GNN the nodes run (and the MLP's passes its scheme's check for the scenario's K),
the run directory holds its curve, and a quick study writes every output."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from channel_server.interference import load_ic_scenario, sample_gains
from node.mpgnn import Mpgnn, forward_graph
from node.schemes import SCHEMES
from protocols.seeding import rng_for
from protocols.weights import load
from tests.helpers import SCENARIOS, rrmbed

SCEN = SCENARIOS / "ic-gauss-k10.toml"
PNG = b"\x89PNG\r\n\x1a\n"


def test_gnn_train_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "gnn"
    r = rrmbed("gnn", "train", str(SCEN), "--samples", "128", "--val-samples", "32",
               "--epochs", "3", "--layers", "2", "--seed", "7", "--set", "radio.n_links=6",
               "--out", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"weights: {out / 'weights.npz'}" in r.stdout
    art = load(out / "weights.npz")
    net = Mpgnn.from_arrays(art.arrays)  # what a link node acts with
    assert net.n_layers == 2
    assert (art.meta.kind, art.meta.algo, art.meta.dims) == ("interference", "mpgnn",
                                                              {"n_layers": 2})
    assert art.meta.extra["seed"] == 7 and art.meta.extra["trained_n_links"] == 6
    s = load_ic_scenario(SCEN)
    gains, graph = sample_gains(s, rng_for(0, "any-k"), 4)  # trained at K = 6, runs at 10
    p = forward_graph(net, gains, graph, s.radio.pmax_w, s.radio.noise_w)
    assert p.shape == (4, 10) and np.all((p > 0) & (p < 1))
    with (out / "training.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["0", "1", "2", "3"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 3 * 2 and summary["n_links"] == 6
    assert (out / "training.png").read_bytes()[:8] == PNG
    # the same command again is refused (the run is there), and --overwrite replaces it
    again = rrmbed("gnn", "train", str(SCEN), "--samples", "128", "--val-samples", "32",
                   "--epochs", "3", "--layers", "2", "--seed", "7", "--set",
                   "radio.n_links=6", "--out", str(out))
    assert again.returncode != 0 and "--overwrite" in again.stderr


def test_gnn_train_mlp_fits_its_k(tmp_path: Path) -> None:
    out = tmp_path / "mlp"
    r = rrmbed("gnn", "train", str(SCEN), "--arch", "mlp", "--mode", "supervised",
               "--samples", "64", "--val-samples", "16", "--epochs", "2",
               "--mlp-hidden", "32,32", "--out", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    art = load(out / "weights.npz")
    assert art.meta.dims == {"n_links": 10} and art.meta.extra["mode"] == "supervised"
    SCHEMES.get("interference", "mlp").check_weights(load_ic_scenario(SCEN), art.arrays)


def test_gnn_gap_quick(tmp_path: Path) -> None:
    out = tmp_path / "gap"
    r = rrmbed("gnn", "gap", "--quick", "--ks", "3,5", "--seeds", "0", "--out", str(out),
               env=None, timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "sqrt(K) claim, ratio of the mean gaps:" in r.stdout and "wall time:" in r.stdout
    for name in ("gap_vs_k.png", "gap_vs_m.png", "ratio_vs_sqrtk.png", "generalization.png"):
        assert (out / name).read_bytes()[:8] == PNG
    with (out / "results.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["form"] == "gaussian"]
    # K = 3, 5 at M = 200 and K = 5 at M = 100 (the quick M sweep at K = 5), two networks
    assert sorted((r["n_links"], r["samples"], r["role"]) for r in rows) == sorted(
        (k, m, role) for k, m in (("3", "200"), ("5", "200"), ("5", "100"))
        for role in ("graph", "dense"))
    data = json.loads((out / "results.json").read_text())
    assert data["analysis"]["ratios"] and data["generalization"]
    refused = rrmbed("gnn", "gap", "--quick", "--out", str(out))
    assert refused.returncode != 0 and "--overwrite" in refused.stderr
