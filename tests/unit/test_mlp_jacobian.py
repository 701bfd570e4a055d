"""MlpJacobian's products against torch.func's forward- and reverse-mode autodiff."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call, jvp, vjp

from controller.learners.mlp_jacobian import MlpJacobian
from node.policy import mlp

# torch.func's first use scripts helpers with torch.jit.script, which torch itself deprecates
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")


def net_and_inputs(dtype: torch.dtype) -> tuple[nn.Sequential, torch.Tensor]:
    torch.manual_seed(0)
    net = mlp([5, 7, 4, 3]).to(dtype)
    with torch.no_grad():  # non-zero biases, so both ELU branches are exercised
        for p in net.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return net, torch.randn(11, 5, dtype=dtype)


def as_function(net: nn.Sequential, x: torch.Tensor):  # type: ignore[no-untyped-def]
    names = [n for n, _ in net.named_parameters()]
    return lambda *params: functional_call(net, dict(zip(names, params, strict=True)), (x,))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_jvp_and_vjp_equal_autodiff(dtype: torch.dtype) -> None:
    net, x = net_and_inputs(dtype)
    params = tuple(p.detach() for p in net.parameters())
    f = as_function(net, x)
    jac = MlpJacobian(net, x)
    tol = {"rtol": 1e-12, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 1e-5,
                                                                           "atol": 1e-6}
    v = tuple(torch.randn_like(p) for p in params)
    _, want_jv = jvp(f, params, v)
    torch.testing.assert_close(jac.jvp(list(v)), want_jv, **tol)
    u = torch.randn(x.shape[0], 3, dtype=dtype)
    _, pullback = vjp(f, *params)
    for got, want in zip(jac.vjp(u), pullback(u), strict=True):
        torch.testing.assert_close(got, want, **tol)


def test_the_products_are_adjoint() -> None:
    """<J v, u> = <v, J^T u> for random v and u."""
    net, x = net_and_inputs(torch.float64)
    jac = MlpJacobian(net, x)
    v = [torch.randn_like(p) for p in net.parameters()]
    u = torch.randn(x.shape[0], 3, dtype=torch.float64)
    left = (jac.jvp(v) * u).sum()
    right = sum((a * b).sum() for a, b in zip(v, jac.vjp(u), strict=True))
    torch.testing.assert_close(left, right, rtol=1e-10, atol=1e-13)


def test_other_networks_are_refused_by_name() -> None:
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    with pytest.raises(TypeError, match="ELU between each two.*Tanh"):
        MlpJacobian(net, torch.zeros(2, 3))
