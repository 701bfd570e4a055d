"""Learners of paper 003's power control on the K-user interference channel: the
message-passing GNN (MPGNN) and the centralized MLP, in torch, trained offline on a fixed
set of channel samples.

Both networks are the torch twins of what the nodes run in numpy (:mod:`node.mpgnn`):
same features, same layers, same array names, so :meth:`IcLearner.get_variables` is a
weights file's arrays as they are and the numpy forward gives the torch outputs to
rounding (tests check 1e-6 in float64).

* :class:`TorchMpgnn`: one shared layer ``x_i <- MLP2(x_i, MAX_j MLP1(x_j, e_ji))`` applied
  ``n_layers`` times from full power (IGCNet's weight sharing). Defaults are IGCNet's
  widths: MLP1 ``[4 -> 16 -> 32]`` (ReLU after every layer), MLP2 ``[2 + 32 -> 16 -> 1]``
  (ReLU between, sigmoid out); 3 layers. Its weights fit any K.
* :class:`TorchMlp`: the "learning to optimize" DNN, ``phi(G)`` flattened (K^2 inputs) ->
  200 -> 200 -> 200 -> K power fractions (ReLU, sigmoid out). Its weights fit one K only.

Two losses (``mode``):

* ``unsupervised``: minus the batch's mean sum rate (bit/s/Hz), computed differentiably from
  the gains and the powers (:func:`torch_sum_rate`, the formula of
  :func:`channel_server.interference.sum_rates`);
* ``supervised``: mean squared error between the power fractions and a target's (WMMSE's,
  given in the batch): "imitate WMMSE".

Inputs are standardised (*choice*; the papers do not say): before training, the
features' mean and spread over the training set are taken (the MLP: each of its K^2
inputs; the MPGNN: one pair for the own gains' ``phi``, one for the edges'), and the
networks see ``(phi - mean) / std``. Without it the unsupervised MLP collapses within a few
epochs to one fixed on/off pattern whatever the channel (its sigmoids saturate; seen at
K = 5, M = 1000: 2.34 bit/s/Hz against WMMSE's 4.6, and 4.0 with it). The standardisation
is affine, so it is folded into the first layers of the exported arrays: the nodes' numpy
code computes the raw features.

Adam (1e-3 by default). ``step(batch)`` is one Adam step on one mini-batch; the driver
(:mod:`controller.training.gnn_train`) owns the data, the epochs and the batches.
Randomness: the initial weights come from a ``torch.Generator`` seeded from the generator
given to the constructor (the registry's ``("learner", name)`` stream of the run's seed);
the computation is deterministic on CPU, so the same seed gives the same weights, bit for
bit (with the same torch and thread count).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, cast

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from node.mpgnn import EDGE_DIM, NODE_DIM

Array = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Mode = Literal["unsupervised", "supervised"]
MODES: tuple[Mode, ...] = ("unsupervised", "supervised")

GRAPH_POLICY = "ic-mpgnn"
"""What the ``mpgnn`` learner trains (the registry's ``trains``): a GNN over the interference
graph, whose weights run at any K."""
DENSE_POLICY = "ic-mlp"
"""What the ``ic-mlp`` learner trains: a dense network over all K^2 gains, one K only."""


@dataclass(frozen=True)
class IcDims:
    """The channel a learner trains on: the facts its features and its loss need."""

    n_links: int
    """K, links per sample (the MLP's input is K^2 gains, its output K powers)."""
    pmax_w: float
    """Pmax, watts: powers are fractions of it."""
    noise_w: float
    """sigma^2 at every receiver, watts."""


@dataclass(frozen=True)
class GnnConfig:
    """Hyper-parameters of both learners (each uses its own fields)."""

    mode: Mode = "unsupervised"
    """Loss: minus the sum rate, or the MSE to the batch's target power fractions."""
    n_layers: int = 3
    """MPGNN: times the shared layer is applied (rounds of messages), layers."""
    mlp1_hidden: tuple[int, ...] = (16,)
    """MPGNN: MLP1's hidden widths (IGCNet: 16), units."""
    message_dim: int = 32
    """MPGNN: MLP1's output width, the message and aggregate length (IGCNet: 32), units."""
    mlp2_hidden: tuple[int, ...] = (16,)
    """MPGNN: MLP2's hidden widths (IGCNet: 16), units."""
    mlp_hidden: tuple[int, ...] = (200, 200, 200)
    """MLP: hidden widths (the "learning to optimize" DNN: 3 x 200), units."""
    learning_rate: float = 1e-3
    """Adam step size, per step."""
    standardize: bool = True
    """Standardise the inputs with the training set's statistics (*choice*, see the module
    docstring; folded into the exported first layers)."""
    dtype: Literal["float32", "float64"] = "float32"
    """Precision of the weights and the computation (float32: about twice as fast on a
    CPU; weights files hold this dtype)."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.n_layers < 1 or self.message_dim < 1:
            raise ValueError("n_layers and message_dim must be >= 1")
        if min((*self.mlp1_hidden, *self.mlp2_hidden, *self.mlp_hidden, 1)) < 1:
            raise ValueError("hidden widths must be >= 1")
        if not self.learning_rate > 0:
            raise ValueError("learning_rate must be > 0")

    @property
    def torch_dtype(self) -> torch.dtype:
        return torch.float64 if self.dtype == "float64" else torch.float32


@dataclass(frozen=True)
class IcBatch:
    """One mini-batch of channel samples."""

    gains: Array
    """``(B, K, K)``: ``G[b, j, i]``, transmitter j to receiver i, linear power gain."""
    graph: BoolArray
    """``(B, K, K)``: edge j -> i of the interference graph (the MPGNN's neighbours)."""
    target: Array | None = None
    """``(B, K)``: power fractions to imitate (supervised mode; WMMSE's), else None."""


# --------------------------------------------------------------------------- the maths


def torch_phi(gains: torch.Tensor, pmax_w: float, noise_w: float) -> torch.Tensor:
    """:func:`node.mpgnn.phi` in torch: ``log10(1 + Pmax g / sigma^2)``."""
    return torch.log10(1.0 + gains * (pmax_w / noise_w))


def torch_rates(gains: torch.Tensor, fractions: torch.Tensor, pmax_w: float,
                noise_w: float) -> torch.Tensor:
    """Per-link rates ``(B, K)``, bit/s/Hz, for gains ``(B, K, K)`` and power fractions
    ``(B, K)``: :func:`channel_server.interference.sum_rates` with ``p = fraction Pmax``,
    differentiable. Gains are taken in units of the noise at full power (``Pmax g /
    sigma^2``), so float32 holds the geometric form's 1e-12 gains, and the interference
    sums the other links only (no subtraction of the own signal)."""
    snr = gains * (pmax_w / noise_w)
    k = gains.shape[-1]
    off = 1.0 - torch.eye(k, dtype=gains.dtype, device=gains.device)
    received = torch.einsum("bj,bji->bi", fractions, snr * off)
    signal = fractions * torch.diagonal(snr, dim1=-2, dim2=-1)
    return torch.log2(1.0 + signal / (received + 1.0))


def torch_sum_rate(gains: torch.Tensor, fractions: torch.Tensor, pmax_w: float,
                   noise_w: float) -> torch.Tensor:
    """Sum rate per sample ``(B,)``, bit/s/Hz."""
    return torch_rates(gains, fractions, pmax_w, noise_w).sum(-1)


def _linear(n_in: int, n_out: int, gen: torch.Generator, dtype: torch.dtype) -> nn.Linear:
    """A Linear layer with torch's default initialisation (uniform within 1/sqrt(in) for
    weights and biases) drawn from ``gen`` instead of the global generator."""
    layer = nn.Linear(n_in, n_out, dtype=dtype)
    bound = 1.0 / math.sqrt(n_in)
    with torch.no_grad():
        for p in (layer.weight, layer.bias):
            p.copy_((torch.rand(p.shape, generator=gen, dtype=dtype) * 2.0 - 1.0) * bound)
    return layer


def _sequential(sizes: Sequence[int], gen: torch.Generator, dtype: torch.dtype) -> nn.Sequential:
    """Linear layers at indices 0, 2, 4, ... with ReLU between (none after the last): the
    ``<prefix><l>.weight`` names :func:`node.mlp.layers_of` reads."""
    mods: list[nn.Module] = []
    for j, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        mods.append(_linear(a, b, gen, dtype))
        if j < len(sizes) - 2:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods)


def _export(module: nn.Module, prefix: str, mean: torch.Tensor | None = None,
            std: torch.Tensor | None = None) -> dict[str, np.ndarray]:
    """``<prefix><l>.weight``/``.bias`` of a Sequential; with ``mean``/``std`` (one per
    input of its first layer) the input standardisation ``(x - mean) / std`` is folded
    into the first layer: ``W / std`` and ``b - W (mean / std)``, so the arrays act on the
    raw features, as :mod:`node.mpgnn` computes them."""
    state = {k: v.detach().clone() for k, v in module.state_dict().items()}
    if mean is not None and std is not None:
        w, b = state["0.weight"], state["0.bias"]
        state["0.weight"] = w / std
        state["0.bias"] = b - (w * (mean / std)).sum(dim=1)
    return {f"{prefix}{k}": v.cpu().numpy() for k, v in state.items()}


def _spread(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation of ``x`` over its first axis (std 1 where it is 0 or
    there are too few values)."""
    if x.shape[0] < 2:
        return torch.zeros(x.shape[1:], dtype=x.dtype), torch.ones(x.shape[1:], dtype=x.dtype)
    sd = x.std(dim=0)
    return x.mean(dim=0), torch.where(sd > 0, sd, torch.ones_like(sd))


class TorchMpgnn(nn.Module):
    """The MPGNN of :mod:`node.mpgnn` (features, layer, order of the inputs), batched."""

    scale: torch.Tensor
    """``[[mean, std] of the own gains' phi, [mean, std] of the edges' phi]``."""

    def __init__(self, cfg: GnnConfig, dims: IcDims, gen: torch.Generator) -> None:
        super().__init__()
        dt = cfg.torch_dtype
        self.dims, self.n_layers = dims, cfg.n_layers
        self.mlp1 = _sequential([NODE_DIM + EDGE_DIM, *cfg.mlp1_hidden, cfg.message_dim], gen, dt)
        self.mlp2 = _sequential([NODE_DIM + cfg.message_dim, *cfg.mlp2_hidden, 1], gen, dt)
        # (mean, std) of phi of the own gains and of the edges' gains: inputs standardised
        self.register_buffer("scale", torch.tensor([[0.0, 1.0], [0.0, 1.0]], dtype=dt))

    def standardize(self, f: torch.Tensor, graph: torch.Tensor) -> None:
        """Take the mean and spread of the features ``f = phi(G)`` ``(N, K, K)``: the own
        gains' (diagonal) and the edges' (where ``graph``), from a training set."""
        own = torch.diagonal(f, dim1=-2, dim2=-1).reshape(-1, 1)
        edges = f[graph].reshape(-1, 1)
        rows = [torch.stack(_spread(x)).reshape(2) for x in (own, edges)]
        self.scale.copy_(torch.stack(rows))

    def features(self, gains: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised ``phi`` of the edges ``(B, K, K)`` and of the own gains ``(B, K)``."""
        f = torch_phi(gains, self.dims.pmax_w, self.dims.noise_w)
        mo, so, me, se = self.scale.reshape(4)
        return (f - me) / se, (torch.diagonal(f, dim1=-2, dim2=-1) - mo) / so

    def edge_part(self, f: torch.Tensor) -> torch.Tensor:
        """MLP1's first layer on the edge features alone, ``(B, i, j, H1)``: the part of its
        pre-activation that stays the same in every layer (computed once per forward)."""
        first = cast(nn.Linear, self.mlp1[0])
        w = first.weight[:, NODE_DIM:]  # (H1, 2): phi(G[j, i]), phi(G[i, j])
        # at [b, i, j]: phi(G[j, i]) = f[b, j, i] = f^T[b, i, j], phi(G[i, j]) = f[b, i, j]
        return (f.transpose(1, 2)[..., None] * w[:, 0] + f[..., None] * w[:, 1]
                + first.bias)

    def layer(self, p: torch.Tensor, own: torch.Tensor, edge: torch.Tensor,
              absent: torch.Tensor) -> torch.Tensor:
        """One layer, :func:`node.mpgnn.layer`: fractions ``(B, K)`` -> new fractions.
        Arranged for speed, not read off the formula: the edge part of MLP1's first layer
        is ``edge``, the sender's part is added per layer; an absent edge gets ``-inf``
        before the max over senders, and the ReLU after MLP1 is taken after the max
        (``max_j relu(m_j) = relu(max_j m_j)``, and 0 when no edge is left: as the
        numpy layer's zeros for absent edges)."""
        first = cast(nn.Linear, self.mlp1[0])
        sender = torch.stack([p, own], dim=-1) @ first.weight[:, :NODE_DIM].T  # (B, K, H1)
        h = edge + sender[:, None, :, :]  # [b, i, j]: j's message to i
        for mod in list(self.mlp1)[1:]:
            h = mod(h)
        agg = torch.relu((h + absent).max(dim=2).values)
        return torch.sigmoid(self.mlp2(torch.cat([p[..., None], own[..., None], agg],
                                                 dim=-1))[..., 0])

    def forward(self, gains: torch.Tensor, graph: torch.Tensor) -> torch.Tensor:
        """Power fractions ``(B, K)`` for gains and graphs ``(B, K, K)``."""
        f, own = self.features(gains)
        edge = self.edge_part(f)
        absent = torch.zeros(graph.shape, dtype=f.dtype).masked_fill_(
            ~graph.transpose(1, 2), -math.inf)[..., None]  # [b, i, j]: no edge j -> i
        p = torch.ones_like(own)
        for _ in range(self.n_layers):
            p = self.layer(p, own, edge, absent)
        return p

    def variables(self) -> dict[str, np.ndarray]:
        """``mpgnn.mlp1.<l>.*``, ``mpgnn.mlp2.<l>.*`` (the standardisation folded in) and
        ``mpgnn.n_layers``."""
        mo, so, me, se = self.scale.reshape(4)
        one, zero = torch.ones_like(mo), torch.zeros_like(mo)
        mlp2_n = cast(nn.Linear, self.mlp2[0]).in_features - NODE_DIM
        mean1, std1 = torch.stack([zero, mo, me, me]), torch.stack([one, so, se, se])
        mean2 = torch.cat([torch.stack([zero, mo]), zero.repeat(int(mlp2_n))])
        std2 = torch.cat([torch.stack([one, so]), one.repeat(int(mlp2_n))])
        return {**_export(self.mlp1, "mpgnn.mlp1.", mean1, std1),
                **_export(self.mlp2, "mpgnn.mlp2.", mean2, std2),
                "mpgnn.n_layers": np.asarray(self.n_layers, dtype=np.int64)}


class TorchMlp(nn.Module):
    """The centralized MLP of :func:`node.mpgnn.mlp_forward`: ``phi(G)`` of all K^2 gains,
    row-major (``j K + i``), to K power fractions."""

    mean: torch.Tensor
    """Every input's mean over the training set."""
    std: torch.Tensor
    """Every input's standard deviation over the training set."""

    def __init__(self, cfg: GnnConfig, dims: IcDims, gen: torch.Generator) -> None:
        super().__init__()
        k = dims.n_links
        self.dims = dims
        self.mlp = _sequential([k * k, *cfg.mlp_hidden, k], gen, cfg.torch_dtype)
        self.register_buffer("mean", torch.zeros(k * k, dtype=cfg.torch_dtype))
        self.register_buffer("std", torch.ones(k * k, dtype=cfg.torch_dtype))

    def standardize(self, f: torch.Tensor, graph: torch.Tensor) -> None:
        """Take every input's mean and spread over a training set's ``phi(G)``."""
        mean, std = _spread(f.reshape(f.shape[0], -1))
        self.mean.copy_(mean)
        self.std.copy_(std)

    def forward(self, gains: torch.Tensor, graph: torch.Tensor) -> torch.Tensor:
        f = torch_phi(gains, self.dims.pmax_w, self.dims.noise_w)
        return torch.sigmoid(self.mlp((f.reshape(f.shape[0], -1) - self.mean) / self.std))

    def variables(self) -> dict[str, np.ndarray]:
        """``mlp.<l>.weight`` / ``.bias`` (the standardisation folded in)."""
        return _export(self.mlp, "mlp.", self.mean, self.std)


Net = TorchMpgnn | TorchMlp


# --------------------------------------------------------------------------- the learner


class IcLearner:
    """A :class:`protocols.core.Learner` over one of the two networks: ``step(batch)`` is
    one Adam step on an :class:`IcBatch`; ``get_variables()`` the arrays a node (or the
    controller, for the MLP) acts with."""

    def __init__(self, net: Net, cfg: GnnConfig, dims: IcDims) -> None:
        self.net, self.cfg, self.dims = net, cfg, dims
        self.optimizer = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate)
        self._version = 0

    @property
    def version(self) -> int:
        """Steps taken so far (grows by one per step)."""
        return self._version

    @property
    def dtype(self) -> torch.dtype:
        return self.cfg.torch_dtype

    def tensors(self, gains: npt.ArrayLike, graph: npt.ArrayLike
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Gains and graph as tensors of the learner's dtype (bool graph)."""
        return (torch.as_tensor(np.asarray(gains), dtype=self.dtype),
                torch.as_tensor(np.asarray(graph, dtype=bool)))

    def loss(self, batch: IcBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """The mode's loss (a scalar with its graph) and the batch's sum rates ``(B,)``."""
        g, graph = self.tensors(batch.gains, batch.graph)
        frac = self.net(g, graph)
        rate = torch_sum_rate(g, frac, self.dims.pmax_w, self.dims.noise_w)
        if self.cfg.mode == "unsupervised":
            return -rate.mean(), rate
        if batch.target is None:
            raise ValueError("supervised training needs the batch's target power fractions")
        target = torch.as_tensor(np.asarray(batch.target), dtype=self.dtype)
        return torch.mean((frac - target) ** 2), rate

    def step(self, batch: IcBatch) -> dict[str, float]:
        """One Adam step; the batch's loss and mean sum rate (before the step)."""
        self.net.train()
        loss, rate = self.loss(batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        self.optimizer.step()
        self._version += 1
        return {"loss": float(loss.detach()), "sum_rate": float(rate.detach().mean())}

    @torch.no_grad()
    def fractions(self, gains: npt.ArrayLike, graph: npt.ArrayLike,
                  chunk: int | None = None) -> Array:
        """Power fractions ``(N, K)`` for ``N`` samples (float64), in chunks of ``chunk``
        samples (default: about 10^6 edges a chunk, so K = 250 fits in memory)."""
        self.net.eval()
        g_all, gr_all = np.asarray(gains), np.asarray(graph, dtype=bool)
        k = g_all.shape[-1]
        chunk = chunk or max(1, min(1024, 1_000_000 // (k * k)))
        out = [self.net(*self.tensors(g_all[a:a + chunk], gr_all[a:a + chunk]))
               .to(torch.float64).numpy() for a in range(0, len(g_all), chunk)]
        return np.concatenate(out) if out else np.zeros(g_all.shape[:-1])

    @torch.no_grad()
    def standardize(self, gains: npt.ArrayLike, graph: npt.ArrayLike) -> None:
        """Standardise the network's inputs with the statistics of a training set (before
        training: the features' mean and spread; folded into the exported weights)."""
        g, gr = self.tensors(gains, graph)
        self.net.standardize(torch_phi(g, self.dims.pmax_w, self.dims.noise_w), gr)

    def get_variables(self) -> dict[str, np.ndarray]:
        """The network's named arrays (copies), as a weights file holds them."""
        return self.net.variables()

    def state(self) -> dict[str, torch.Tensor]:
        """The network's parameters (copies), to restore with :meth:`restore`."""
        return {k: v.detach().clone() for k, v in self.net.state_dict().items()}

    def restore(self, state: dict[str, torch.Tensor]) -> None:
        """Parameters saved by :meth:`state` (e.g. the best validation epoch's)."""
        self.net.load_state_dict(state)


def generator(rng: np.random.Generator) -> torch.Generator:
    """A torch generator seeded from ``rng`` (one draw)."""
    return torch.Generator().manual_seed(int(rng.integers(2**63 - 1)))


def make_mpgnn(dims: IcDims, rng: np.random.Generator, config: GnnConfig | None) -> IcLearner:
    """The registry's ``mpgnn`` factory."""
    cfg = config if config is not None else GnnConfig()
    return IcLearner(TorchMpgnn(cfg, dims, generator(rng)), cfg, dims)


def make_mlp(dims: IcDims, rng: np.random.Generator, config: GnnConfig | None) -> IcLearner:
    """The registry's ``ic-mlp`` factory."""
    cfg = config if config is not None else GnnConfig()
    return IcLearner(TorchMlp(cfg, dims, generator(rng)), cfg, dims)
