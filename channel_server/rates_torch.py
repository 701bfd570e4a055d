"""Differentiable sum-rate for learners that need gradients through the rates
(same conventions as :mod:`channel_server.rates`); kept apart so that the channel
server never imports torch."""

from __future__ import annotations

import torch


def sum_rate_torch(gains: torch.Tensor, powers: torch.Tensor, noise_w: float) -> torch.Tensor:
    """Differentiable sum-rate (bit/s/Hz) with the same conventions, for learners."""
    direct = torch.diagonal(gains, dim1=-3, dim2=-1).transpose(-1, -2)
    signal = powers * direct
    received = torch.einsum("...b,...bkc->...ck", powers.sum(-1), gains)
    interference = torch.clamp(received - signal, min=0.0)
    return torch.log2(1.0 + signal / (interference + noise_w)).sum(dim=(-2, -1))
