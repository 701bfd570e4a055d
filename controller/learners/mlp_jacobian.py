"""Jacobian products of an ELU MLP at fixed inputs, from cached activations.

A network built by :func:`node.policy.mlp` computes ``h_0 = x``,
``z_l = h_{l-1} W_l^T + b_l``, ``h_l = elu(z_l)`` for the hidden layers and
``y = h_{L-1} W_L^T + b_L``. With J the Jacobian of y (all rows of x) with respect to the
parameters (W_1, b_1, ..., W_L, b_L), at fixed x:

* ``jvp(v)``, J v for a direction v = (dW_1, db_1, ...): the tangents
  ``t_l = (h_{l-1} dW_l^T + db_l + t_{l-1} W_l^T) * elu'(z_l)`` (t_0 = 0, no elu' at the
  output);
* ``vjp(u)``, J^T u for output cotangents u (rows of x by outputs): back through the
  layers, ``dW_l = u_l^T h_{l-1}``, ``db_l = sum of u_l's rows``,
  ``u_{l-1} = (u_l W_l) * elu'(z_{l-1})``.

Both reuse the h_l and elu'(z_l) computed once at construction: two matrix products per
layer and no autograd graph. TRPO's Fisher-vector products are ``J^T (M J v)``
(:func:`controller.learners.trpo.make_fisher_vector_product`), about 1.5 times faster this
way than as a Hessian-vector product by double backpropagation.
"""

from __future__ import annotations

import torch
from torch import nn


class MlpJacobian:
    """J v and J^T u of ``net`` (Linear, ELU, Linear, ..., Linear) at the inputs ``x``."""

    def __init__(self, net: nn.Sequential, x: torch.Tensor) -> None:
        mods = list(net)
        linears = mods[0::2]
        elus = mods[1::2]
        if (len(mods) % 2 != 1 or not all(isinstance(m, nn.Linear) for m in linears)
                or not all(isinstance(m, nn.ELU) for m in elus)):
            raise TypeError("MlpJacobian needs Linear layers with an ELU between each two, "
                            f"got {[type(m).__name__ for m in mods]}")
        self.weights = [m.weight.detach() for m in linears if isinstance(m, nn.Linear)]
        self.inputs: list[torch.Tensor] = [x]  # h_{l-1}, the input of each linear layer
        self.slopes: list[torch.Tensor] = []  # elu'(z_l) of each hidden layer
        with torch.no_grad():
            h = x
            for lin, elu in zip(linears[:-1], elus, strict=True):
                alpha = float(elu.alpha)  # type: ignore[arg-type]
                z = lin(h)
                h = nn.functional.elu(z, alpha)
                # elu'(z) = 1 for z > 0, alpha e^z = elu(z) + alpha otherwise
                self.slopes.append(torch.where(z > 0, torch.ones_like(z), h + alpha))
                self.inputs.append(h)

    def jvp(self, v: list[torch.Tensor]) -> torch.Tensor:
        """J v: the change of the outputs (rows of x by outputs) along the parameter
        direction ``v`` (one tensor per parameter, in ``net.parameters()`` order)."""
        t: torch.Tensor | None = None
        for i, w in enumerate(self.weights):
            dz = self.inputs[i] @ v[2 * i].T + v[2 * i + 1]
            if t is not None:
                dz = dz + t @ w.T
            t = dz * self.slopes[i] if i < len(self.slopes) else dz
        assert t is not None
        return t

    def vjp(self, u: torch.Tensor) -> list[torch.Tensor]:
        """J^T u: one tensor per parameter (``net.parameters()`` order) for the output
        cotangents ``u`` (rows of x by outputs)."""
        grads: list[torch.Tensor] = []
        for i in range(len(self.weights) - 1, -1, -1):
            grads += [u.sum(0), u.T @ self.inputs[i]]  # (db_l, dW_l), reversed below
            if i > 0:
                u = (u @ self.weights[i]) * self.slopes[i - 1]
        return grads[::-1]
