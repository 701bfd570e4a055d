"""node.mlp: the numpy forward a BS acts with equals the torch policy's, and a node that
receives new weights acts with them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from channel_server.kinds import resolve
from node.agent import BsAgent
from node.mlp import forward, layers_of
from node.policy import seeded_policy, state_arrays
from node.policy_spec import PolicyConfig
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
    fresh = BsAgent(0, sc, "full", 1)
    fresh.policy.load_state_dict({k: torch.as_tensor(v) for k, v in other.items()})
    want = np.clip(fresh.policy.act(agent.last_obs, "mean"), 0.0, 1.0)
    assert agent.version == 1 and not np.allclose(before, after)
    np.testing.assert_allclose(after, want, rtol=1e-12)
