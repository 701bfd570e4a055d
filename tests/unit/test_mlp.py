"""node.mlp: the numpy forward a BS acts with equals the torch policy's, and a node that
receives new weights acts with them."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from channel_server.kinds import resolve
from node.agent import BsAgent
from node.mlp import forward, layers_of
from node.policy import GaussianPolicy, load_arrays, seeded_policy, state_arrays
from node.policy_spec import PolicyConfig, initial_arrays, power_fraction
from tests.helpers import S3


@pytest.mark.parametrize("dims", [(6, 2), (30, 8)])
def test_numpy_forward_equals_the_torch_policy(dims: tuple[int, int]) -> None:
    pol = seeded_policy(PolicyConfig(*dims), 3)
    with torch.no_grad():  # outputs far from the initial 0.5, ELU on both sides of 0
        pol.mean_net[-1].weight.mul_(100.0)
    obs = np.random.default_rng(0).standard_normal((500, dims[0])) * 3.0
    want = pol.act(obs, "mean")
    got = forward(layers_of(state_arrays(pol), "mean_net."), obs, "elu")
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    assert np.ptp(want) > 1.0  # a spread the comparison can see


def test_relu_and_missing_layers() -> None:
    w = {"n.0.weight": np.array([[1.0, -1.0]]), "n.0.bias": np.array([0.5]),
         "n.2.weight": np.array([[2.0]]), "n.2.bias": np.array([-1.0])}
    x = np.array([[1.0, 3.0], [3.0, 1.0]])
    # hidden: 1 - 3 + 0.5 = -1.5 -> 0; 3 - 1 + 0.5 = 2.5; out 2 h - 1
    np.testing.assert_array_equal(forward(layers_of(w, "n."), x, "relu"), [[-1.0], [4.0]])
    with pytest.raises(ValueError, match="no layer 'm.<l>.weight'"):
        layers_of(w, "m.")


class Source:
    """Weights of version 1 (a :class:`protocols.core.VariableSource`)."""

    version = 1

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays

    def get_variables(self) -> dict[str, np.ndarray]:
        return self.arrays


def test_a_bs_acts_with_the_weights_it_received() -> None:
    sc = resolve(S3).scenario
    other = state_arrays(seeded_policy(PolicyConfig(6, 2), 99))
    other["mean_net.6.weight"] = other["mean_net.6.weight"] * 100.0
    src = Source(other)
    agent = BsAgent(0, sc, "full", 1, source=src)
    csi = np.random.default_rng(1).exponential(1e-9, (4, 2, 3))
    before = agent.fractions(csi)
    agent.update()
    after = agent.fractions(csi)
    torch_policy = GaussianPolicy(PolicyConfig(6, 2))
    load_arrays(torch_policy, other)
    want = power_fraction(torch_policy.act(agent.last_obs, "mean"), sc.radio.action_map)
    assert agent.version == 1 and not np.allclose(before, after)
    np.testing.assert_allclose(after, want, rtol=1e-12)
    other["mean_net.2.weight"] = other["mean_net.2.weight"][:, :5]  # a broadcast that does
    src.version = 2                                                 # not fit is refused
    with pytest.raises(ValueError, match=r"mean_net.2.weight \(256, 5\) \(expected"):
        agent.update()


@pytest.mark.parametrize("dims", [(6, 2), (300, 8)])
def test_initial_weights_are_orthogonal_layers_with_the_configured_heads(
        dims: tuple[int, int]) -> None:
    """What a node starts from, drawn in numpy: orthonormal rows or columns times the gain
    (sqrt 2 inside, 0.01 at the output), zero biases but the mean head's, the configured
    log-std; the seeded torch policy holds the same arrays, and another seed others."""
    cfg = PolicyConfig(*dims)
    a = initial_arrays(cfg, 5)
    sizes = [cfg.obs_dim, *cfg.hidden, cfg.act_dim]
    for i in range(len(sizes) - 1):
        w = a[f"mean_net.{2 * i}.weight"]
        last = i == len(sizes) - 2
        gain = 0.01 if last else np.sqrt(2.0)
        assert w.shape == (sizes[i + 1], sizes[i])
        small = min(w.shape)
        gram = w @ w.T if w.shape[0] == small else w.T @ w
        np.testing.assert_allclose(gram, gain**2 * np.eye(small), atol=1e-12)
        assert np.all(a[f"mean_net.{2 * i}.bias"] == (cfg.init_mean if last else 0.0))
    assert np.all(a["log_std"] == cfg.init_log_std)
    held = state_arrays(seeded_policy(cfg, 5))
    assert list(held) == list(a) and all(np.array_equal(held[k], a[k]) for k in a)
    assert not np.array_equal(initial_arrays(cfg, 6)["mean_net.0.weight"],
                              a["mean_net.0.weight"])


def test_a_bs_policy_starts_without_torch() -> None:
    code = ("import sys\nfrom channel_server.kinds import resolve\n"
            "from node.agent import BsAgent\nsc = resolve(sys.argv[1]).scenario\n"
            "for s in ('full', 'round-robin'):\n    BsAgent(0, sc, s, 3).fractions("
            "__import__('numpy').ones((1, 2, 3)) * 1e-9, __import__('numpy').zeros((1, 3, 2)),"
            " __import__('numpy').zeros((1, 3)))\nprint('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(S3)], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
