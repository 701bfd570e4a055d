"""The message-passing GNN of paper 003, equation (1), in numpy: what a link node runs.

One layer updates every link's node feature from its in-neighbours' messages:

    x_i(k) = MLP2(x_i(k-1), MAX_{j in N(i)} MLP1(x_j(k-1), e_ji))

Features (*choice*: the paper leaves them to the problem; IGCNet, the authors' code for this
channel, uses the raw gains, which span ten decades in the geometric form):

* ``phi(g) = log10(1 + Pmax g / sigma^2)``, a gain as the SNR it gives at full power, in
  decades;
* node feature ``x_i = (p_i / Pmax, phi(G[i, i]))``: the link's power fraction and own gain;
* edge feature ``e_ji = (phi(G[j, i]), phi(G[i, j]))``: how strongly transmitter j reaches
  receiver i, and i reaches j's receiver.

MLP1 (``mpgnn.mlp1.<l>``) maps ``(x_j, e_ji)`` (4 inputs) to a message with ReLU after every
layer, so messages are non-negative and a link with no neighbour aggregates zeros; MLP2
(``mpgnn.mlp2.<l>``) maps ``(x_i, aggregate)`` to one output, ReLU between layers and a
sigmoid at the end: the new power fraction. The same layer is applied ``n_layers`` times
(IGCNet's weight sharing), starting from every link at Pmax.

Over the network (:mod:`node.roles.link`) receiver i measures ``G[i, i]`` and ``G[j, i]``;
``G[i, j]`` is measured at j's receiver, so j's message to i carries it:
:func:`message` is what j sends (its node feature and ``phi(G[i, j])``), :func:`node_layer`
what i computes from the messages it got. :func:`forward` computes every link at once on a
whole graph; both give the same powers.

The centralized MLP baseline (``mlp.<l>``; the "learning to optimize" DNN) maps the flattened
``phi(G)`` of all K^2 gains to K power fractions, ReLU hidden layers and a sigmoid output.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from node.mlp import Layers, forward, layers_of

Array = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

NODE_DIM = 2
"""Length of a node feature x_i."""
EDGE_DIM = 2
"""Length of an edge feature e_ji."""
MESSAGE_DIM = NODE_DIM + 1
"""What j sends i each layer: x_j and phi(G[i, j])."""


def phi(gains: npt.ArrayLike, pmax_w: float, noise_w: float) -> Array:
    """A gain as the SNR it gives at full power, in decades: log10(1 + Pmax g / sigma^2)."""
    out: Array = np.log10(1.0 + np.asarray(gains, dtype=np.float64) * (pmax_w / noise_w))
    return out


def _sigmoid(x: Array) -> Array:
    out: Array = 0.5 * (1.0 + np.tanh(0.5 * x))
    return out


@dataclass(frozen=True)
class Mpgnn:
    """An MPGNN's layers, read once from its named arrays."""

    mlp1: Layers
    mlp2: Layers
    n_layers: int

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, npt.ArrayLike]) -> Mpgnn:
        """From ``mpgnn.mlp1.<l>.weight``/``.bias``, ``mpgnn.mlp2.*`` and ``mpgnn.n_layers``."""
        if "mpgnn.n_layers" not in arrays:
            raise ValueError("no 'mpgnn.n_layers' among the arrays: not MPGNN weights")
        n_layers = int(np.asarray(arrays["mpgnn.n_layers"]).reshape(()))
        net = cls(layers_of(arrays, "mpgnn.mlp1."), layers_of(arrays, "mpgnn.mlp2."), n_layers)
        hidden = net.mlp1[-1][0].shape[1]
        if net.mlp1[0][0].shape[0] != NODE_DIM + EDGE_DIM or net.mlp2[-1][0].shape[1] != 1 \
                or net.mlp2[0][0].shape[0] != NODE_DIM + hidden or n_layers < 1:
            raise ValueError("MPGNN arrays of the wrong shapes: MLP1 takes "
                             f"{NODE_DIM + EDGE_DIM} inputs, MLP2 {NODE_DIM} + MLP1's "
                             "outputs and gives 1; n_layers >= 1")
        return net

    @property
    def message_dim(self) -> int:
        """Width of MLP1's output (an aggregate)."""
        return int(self.mlp1[-1][0].shape[1])

    def messages(self, inputs: Array) -> Array:
        """MLP1 on ``(..., 4)`` inputs ``(x_j, e_ji)``: non-negative messages."""
        out: Array = np.maximum(forward(self.mlp1, inputs, "relu"), 0.0)
        return out

    def update(self, x: Array, aggregate: Array) -> Array:
        """MLP2 on ``(x_i, aggregate)``: the new power fractions ``(...)``."""
        z = forward(self.mlp2, np.concatenate([x, aggregate], axis=-1), "relu")
        return _sigmoid(z[..., 0])


def message(p_frac: float, phi_own: float, phi_to_them: float) -> Array:
    """What link j sends a neighbour i in a layer: ``(p_j / Pmax, phi(G[j, j]),
    phi(G[i, j]))``."""
    return np.array([p_frac, phi_own, phi_to_them], dtype=np.float64)


def node_layer(net: Mpgnn, p_frac: float, phi_own: float, got: Array,
               phi_from_them: Array) -> float:
    """Link i's power fraction after one layer, from its own state and the messages
    ``got`` ``(n, 3)`` of its in-neighbours, whose gains to i's receiver are
    ``phi_from_them`` ``(n,)`` (same order). No message: the aggregate is zero."""
    if len(got):
        inputs = np.column_stack([got[:, 0], got[:, 1], phi_from_them, got[:, 2]])
        agg = net.messages(inputs).max(axis=0)
    else:
        agg = np.zeros(net.message_dim)
    return float(net.update(np.array([p_frac, phi_own]), agg))


def layer(net: Mpgnn, p_frac: Array, f: Array, graph: BoolArray) -> Array:
    """One layer on whole graphs: fractions ``(E, K)``, ``f = phi(G)`` ``(E, K, K)``,
    ``graph[e, j, i]``: edge j -> i. The new fractions ``(E, K)``."""
    own = np.diagonal(f, axis1=-2, axis2=-1)
    # inputs[e, j, i] = (p_j, phi_jj, phi(G[j, i]), phi(G[i, j]))
    inputs = np.stack([np.broadcast_to(p_frac[..., :, None], f.shape),
                       np.broadcast_to(own[..., :, None], f.shape),
                       f, np.swapaxes(f, -1, -2)], axis=-1)
    msgs = net.messages(inputs)
    msgs = np.where(graph[..., None], msgs, 0.0)  # non-negative: absent edges never win
    agg = msgs.max(axis=-3)
    return net.update(np.stack([p_frac, own], axis=-1), agg)


def forward_graph(net: Mpgnn, gains: Array, graph: BoolArray, pmax_w: float,
                  noise_w: float) -> Array:
    """Power fractions ``(E, K)`` after ``n_layers`` layers from full power."""
    f = phi(gains, pmax_w, noise_w)
    p = np.ones(f.shape[:-1])
    for _ in range(net.n_layers):
        p = layer(net, p, f, graph)
    return p


def mlp_layers(arrays: Mapping[str, npt.ArrayLike]) -> Layers:
    """The centralized MLP's layers (``mlp.<l>``)."""
    return layers_of(arrays, "mlp.")


def mlp_forward(layers: Layers, gains: Array, pmax_w: float, noise_w: float) -> Array:
    """The centralized MLP's power fractions ``(..., K)`` for gains ``(..., K, K)``."""
    f = phi(gains, pmax_w, noise_w)
    z = forward(layers, f.reshape(*f.shape[:-2], -1), "relu")
    return _sigmoid(z)
