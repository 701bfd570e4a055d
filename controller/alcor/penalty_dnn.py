"""The paper's "fixed DNN" baseline (Section IV, benchmark (i)): a centralized MLP over the
full channel, trained unsupervised for one fixed demand vector with the penalty reward (10):

    reward = sum_i E_H[R_i] - L sum_i max(0, u_fix_i - E_H[R_i]),   L = 100,

where the expectations are batch means (batches of 1000 in the paper): the penalty is on
the *average* rate of each user, not per channel instance. It never switches users off and
its demands are baked into its weights: new demands need a new training.

Network: the paper's sizes ``{N^2, hidden..., N}`` (N = 5: 100, 50; N = 10, 20: 400, 200;
N = 50: 400, 400), ReLU, batch normalization on the hidden layers, a sigmoid output scaled
to Pmax, float32. *Choice*: the input is ``log(1 + G Pmax / sigma^2)`` of every gain (the received
SNR of each pair, compressed), which puts the Gaussian and the 7-cell gains (1e-16..1e-7 W/W)
on one scale; Adam with lr 1e-3. Needs torch (a main dependency of rrmbed).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from protocols.seeding import rng_for

Array = npt.NDArray[np.float64]

PAPER_HIDDEN = {5: (100, 50), 10: (400, 200), 20: (400, 200), 50: (400, 400)}
"""Hidden widths of the paper's fixed DNNs per N (Section IV-A and Table IV)."""


def _torch() -> Any:
    try:
        import torch
    except ImportError as e:  # pragma: no cover - torch is a main dependency
        raise ImportError("the fixed-DNN baseline needs torch: pip install 'torch==2.13.0' "
                          "(the version `make` pins)") from e
    return torch


@dataclass(frozen=True)
class PenaltyDnnConfig:
    """Training of the fixed DNN."""

    hidden: tuple[int, ...] | None = None
    """Hidden widths; None: the paper's for N (:data:`PAPER_HIDDEN`), else (200, 200)."""
    penalty: float = 100.0
    """L of (10), per bit/s/Hz of average shortfall."""
    batch: int = 1000
    """Channel samples per expectation (and per update)."""
    steps: int = 1000
    """Adam updates."""
    lr: float = 1e-3
    """Adam learning rate."""
    batch_norm: bool = True
    """Batch normalization after every hidden layer (as the paper)."""
    threads: int = 1
    """torch intra-op threads while training (1: small nets on a shared machine run faster
    on one thread than fighting for two)."""

    def widths(self, n_users: int) -> tuple[int, ...]:
        return self.hidden or PAPER_HIDDEN.get(n_users, (200, 200))


def features(gains: Any, noise_w: float, pmax_w: float) -> Any:
    """``log(1 + G Pmax / sigma^2)`` flattened, ``(n, K*K)`` (numpy or torch)."""
    x = gains * (pmax_w / noise_w)
    if isinstance(x, np.ndarray):
        return np.log1p(x).reshape(len(x), -1)
    return x.log1p().reshape(x.shape[0], -1)


def torch_rates(snr_gains: Any, frac: Any) -> Any:
    """Rates ``(n, K)`` in bit/s/Hz from ``G Pmax / sigma^2`` and powers as shares of Pmax."""
    torch = _torch()
    received = torch.einsum("nj,nji->ni", frac, snr_gains)
    signal = frac * torch.diagonal(snr_gains, dim1=-2, dim2=-1)
    return torch.log2(1.0 + signal / (received - signal + 1.0))


def penalty_loss(rates: Any, u_fix: Any, penalty: float) -> Any:
    """``-reward`` of (10) on a batch: ``-(sum_i mean R_i - L sum_i relu(u_i - mean R_i))``."""
    torch = _torch()
    mean = rates.mean(dim=0)
    return -(mean.sum() - penalty * torch.relu(u_fix - mean).sum())


def build_net(n_users: int, cfg: PenaltyDnnConfig) -> Any:
    torch = _torch()
    layers: list[Any] = []
    width = n_users * n_users
    for h in cfg.widths(n_users):
        layers.append(torch.nn.Linear(width, h))
        if cfg.batch_norm:
            layers.append(torch.nn.BatchNorm1d(h))
        layers.append(torch.nn.ReLU())
        width = h
    layers += [torch.nn.Linear(width, n_users), torch.nn.Sigmoid()]
    return torch.nn.Sequential(*layers)


class PenaltyDnn:
    """A trained fixed DNN: gains ``(n, K, K)`` -> powers ``(n, K)`` in watts."""

    def __init__(self, net: Any, noise_w: float, pmax_w: float, u_fix: Array,
                 curve: list[float], wall_s: float) -> None:
        self.net, self.noise_w, self.pmax_w = net.eval(), noise_w, pmax_w
        self.u_fix, self.curve, self.wall_s = u_fix, curve, wall_s

    def __call__(self, gains: Array) -> Array:
        torch = _torch()
        x = torch.as_tensor(features(np.asarray(gains, np.float64), self.noise_w, self.pmax_w),
                            dtype=torch.float32)
        with torch.no_grad():
            frac = self.net(x).double().numpy()
        out: Array = frac * self.pmax_w
        return out


SampleFn = Callable[[int, int], Array]
"""``(step, n) -> n`` training gains ``(n, K, K)`` for update ``step``."""


def train_penalty_dnn(sample: SampleFn, u_fix: Array, noise_w: float, pmax_w: float,
                      cfg: PenaltyDnnConfig, seed: int,
                      progress: Callable[[int], None] | None = None) -> PenaltyDnn:
    """Train the fixed DNN for demands ``u_fix`` (bit/s/Hz) on ``cfg.steps`` batches."""
    torch = _torch()
    k = len(u_fix)
    t0 = time.perf_counter()
    with torch.random.fork_rng():
        torch.manual_seed(int(rng_for(seed, "alcor", "penalty-dnn").integers(2**31)))
        net = build_net(k, cfg)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    u = torch.as_tensor(np.asarray(u_fix, np.float32))
    curve: list[float] = []
    scale = pmax_w / noise_w
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        _fit(net, opt, sample, u, cfg, noise_w, pmax_w, scale, curve, progress)
    finally:
        torch.set_num_threads(threads)
    if not all(math.isfinite(x) for x in curve):
        raise FloatingPointError("the fixed DNN's training diverged")
    return PenaltyDnn(net, noise_w, pmax_w, np.asarray(u_fix, np.float64), curve,
                      time.perf_counter() - t0)


def _fit(net: Any, opt: Any, sample: SampleFn, u: Any, cfg: PenaltyDnnConfig, noise_w: float,
         pmax_w: float, scale: float, curve: list[float],
         progress: Callable[[int], None] | None) -> None:
    torch = _torch()
    for s in range(cfg.steps):
        g = torch.as_tensor(np.asarray(sample(s, cfg.batch), np.float32))
        frac = net(features(g, noise_w, pmax_w))
        loss = penalty_loss(torch_rates(g * scale, frac), u, cfg.penalty)
        opt.zero_grad()
        loss.backward()
        opt.step()
        curve.append(float(loss.detach()))
        if progress is not None:
            progress(s + 1)
