"""Paper 003's learners (controller.learners.gnn): the torch MPGNN and MLP act exactly as the
numpy code the nodes run (node.mpgnn), through a weights file; their loss is the numpy sum
rate; the registry resolves the schemes' learner names; the same seed gives the same
weights file, byte for byte."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from channel_server.interference import IcScenario, ic_scenario_from_dict, sample_gains, sum_rates
from controller.learners import registry
from controller.learners.gnn import (
    DENSE_POLICY,
    GRAPH_POLICY,
    GnnConfig,
    IcBatch,
    IcDims,
    IcLearner,
    torch_sum_rate,
)
from controller.training.gnn_train import (
    IcTrainConfig,
    artifact,
    dense_scheme,
    graph_scheme,
    ic_dims,
    train_ic,
    trainable,
)
from node.mpgnn import Mpgnn, forward_graph, mlp_forward, mlp_layers
from node.schemes import SCHEMES
from protocols.seeding import rng_for
from protocols.weights import WeightsArtifact, load


def scenario(form: str = "gaussian", k: int = 6) -> IcScenario:
    return ic_scenario_from_dict({"name": f"t-{form}", "radio": {"form": form, "n_links": k},
                                  "drop": {"area_m": 250.0, "edge_radius_m": 90.0}})


def learner(name: str, s: IcScenario, dtype: str = "float64", seed: int = 3) -> IcLearner:
    out = registry.make(name, ic_dims(s), seed, GnnConfig(dtype=dtype))  # type: ignore[arg-type]
    assert isinstance(out, IcLearner)
    # non-trivial input statistics, so the folding of the standardisation is exercised
    out.standardize(*sample_gains(s, rng_for(seed, "stats"), 40))
    return out


def numpy_fractions(name: str, arrays: dict[str, np.ndarray], s: IcScenario,
                    gains: np.ndarray, graph: np.ndarray) -> np.ndarray:
    r = s.radio
    if registry.learner(name).trains == GRAPH_POLICY:
        return forward_graph(Mpgnn.from_arrays(arrays), gains, graph, r.pmax_w, r.noise_w)
    return mlp_forward(mlp_layers(arrays), gains, r.pmax_w, r.noise_w)


def test_the_schemes_learners_are_registered() -> None:
    assert [registry.learner(s.learners[0]).trains for s in trainable()] == [GRAPH_POLICY,
                                                                             DENSE_POLICY]
    assert graph_scheme().weights == "ic-mpgnn" and dense_scheme().weights == "ic-mlp"
    for s in SCHEMES.for_kind("interference"):
        for name in s.learners:
            registry.learner(name)  # resolves


@pytest.mark.parametrize("name", ["mpgnn", "ic-mlp"])
@pytest.mark.parametrize("form", ["gaussian", "geometric"])
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-10), ("float32", 1e-5)])
def test_torch_forward_equals_the_nodes_numpy_forward(tmp_path: Path, name: str, form: str,
                                                      dtype: str, tol: float) -> None:
    s = scenario(form)
    ln = learner(name, s, dtype)
    gains, graph = sample_gains(s, rng_for(0, "test"), 25)
    if form == "geometric":
        assert not graph[~np.eye(s.k, dtype=bool)[None].repeat(25, 0)].all()  # sparse graphs
    art = WeightsArtifact.create(ln.get_variables(), scheme="x", kind="interference",
                                 algo=name, steps=0, dims={})
    loaded = load(art.save(tmp_path / "w.npz")).arrays
    assert loaded.keys() == ln.get_variables().keys()
    torch_p = ln.fractions(gains, graph)
    numpy_p = numpy_fractions(name, loaded, s, gains, graph)
    assert np.abs(torch_p - numpy_p).max() < tol
    assert torch_p.std() > 1e-3  # the inputs matter: not a constant


def test_mpgnn_weights_run_at_any_k_and_the_mlp_names_its_k() -> None:
    s = scenario(k=4)
    ln = learner("mpgnn", s)
    big = scenario(k=9)
    gains, graph = sample_gains(big, rng_for(0, "big"), 5)
    assert ln.fractions(gains, graph).shape == (5, 9)
    assert np.abs(ln.fractions(gains, graph) - numpy_fractions(
        "mpgnn", ln.get_variables(), big, gains, graph)).max() < 1e-10
    mlp = learner("ic-mlp", s)
    assert mlp.get_variables()["mlp.0.weight"].shape[1] == 16
    assert mlp.get_variables()[f"mlp.{2 * 3}.weight"].shape[0] == 4


@pytest.mark.parametrize("form", ["gaussian", "geometric"])
def test_the_loss_is_minus_the_numpy_sum_rate(form: str) -> None:
    s = scenario(form)
    gains, graph = sample_gains(s, rng_for(1, "loss"), 30)
    frac = rng_for(1, "frac").uniform(0.0, 1.0, (30, s.k))
    numpy_rate = sum_rates(gains, frac * s.radio.pmax_w, s.radio.noise_w).sum(-1)
    torch_rate = torch_sum_rate(torch.tensor(gains), torch.tensor(frac), s.radio.pmax_w,
                                s.radio.noise_w).numpy()
    assert np.allclose(torch_rate, numpy_rate, rtol=1e-12, atol=1e-12)
    for name in ("mpgnn", "ic-mlp"):
        ln = learner(name, s)
        loss, _ = ln.loss(IcBatch(gains, graph))
        p = ln.fractions(gains, graph)
        expect = -sum_rates(gains, p * s.radio.pmax_w, s.radio.noise_w).sum(-1).mean()
        assert float(loss.detach()) == pytest.approx(expect, rel=1e-12)


def test_the_supervised_loss_is_the_mse_to_the_target() -> None:
    s = scenario()
    gains, graph = sample_gains(s, rng_for(2, "sup"), 10)
    target = rng_for(2, "target").uniform(0.0, 1.0, (10, s.k))
    dims = ic_dims(s)
    ln = registry.make("mpgnn", dims, 0, GnnConfig(mode="supervised", dtype="float64"))
    assert isinstance(ln, IcLearner)
    loss, _ = ln.loss(IcBatch(gains, graph, target))
    mse = np.mean((ln.fractions(gains, graph) - target) ** 2)
    assert float(loss.detach()) == pytest.approx(mse)
    with pytest.raises(ValueError, match="target"):
        ln.loss(IcBatch(gains, graph))


def test_step_counts_versions_and_changes_the_weights() -> None:
    s = scenario()
    ln = learner("mpgnn", s, "float32")
    before = ln.get_variables()
    gains, graph = sample_gains(s, rng_for(0, "step"), 64)
    stats = ln.step(IcBatch(gains, graph))
    assert ln.version == 1 and set(stats) == {"loss", "sum_rate"}
    assert stats["loss"] == pytest.approx(-stats["sum_rate"])
    after = ln.get_variables()
    assert any(not np.array_equal(before[k], after[k]) for k in before)
    assert int(after["mpgnn.n_layers"]) == 3


def test_same_seed_same_weights_bytes(tmp_path: Path) -> None:
    s = scenario(k=4)
    cfg = IcTrainConfig(samples=96, val_samples=32, epochs=2)
    paths = []
    for run, seed in enumerate((5, 5, 6)):
        res = train_ic(s, graph_scheme(), seed, cfg)
        paths.append(artifact(s, graph_scheme(), cfg, seed, res).save(tmp_path / f"{run}.npz"))
    a, b, c = (p.read_bytes() for p in paths)
    assert a == b
    assert a != c


def test_weights_header_says_what_they_fit() -> None:
    s = scenario(k=4)
    cfg = IcTrainConfig(samples=64, val_samples=16, epochs=1)
    for scheme, dims in ((graph_scheme(), {"n_layers": 3}), (dense_scheme(), {"n_links": 4})):
        res = train_ic(s, scheme, 0, cfg)
        art = artifact(s, scheme, cfg, 0, res)
        assert art.meta.kind == "interference" and art.meta.scheme == scheme.name
        assert art.meta.algo == scheme.learners[0] and art.meta.dims == dims
        assert art.meta.steps == res.steps == 1
        scheme.check_weights(s, art.arrays)  # the scheme's own check accepts them
    with pytest.raises(ValueError, match="K = 5"):
        dense_scheme().check_weights(dataclasses.replace(
            s, radio=dataclasses.replace(s.radio, n_links=5)), art.arrays)


def test_dims_are_the_scenarios() -> None:
    s = scenario("geometric", 5)
    assert ic_dims(s) == IcDims(5, s.radio.pmax_w, s.radio.noise_w)
