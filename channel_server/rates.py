"""SINR and rates of the multi-cell downlink, batched over leading dimensions.

Conventions used across rrmbed:

* ``gains[..., b, k, c] = |h_{b->k,c}|^2`` (pathloss included): from BS ``b`` to
  user ``k`` of cell ``c``; shape ``(..., B, K, B)``.
* ``powers[..., c, k]``: transmit power of BS ``c`` towards its user ``k``, watts;
  shape ``(..., B, K)``.
* Every BS transmits on the whole band, so user ``(c, k)`` hears every other
  link (intra- and inter-cell) as interference.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


def sinr(gains: Array, powers: Array, noise_w: float) -> Array:
    """SINR of every link, shape ``(..., B, K)``."""
    direct = np.diagonal(gains, axis1=-3, axis2=-1)  # (..., K, B): g[c, k, c]
    direct = np.swapaxes(direct, -1, -2)  # (..., B, K)
    signal = powers * direct
    per_bs = powers.sum(axis=-1)  # (..., B) total power of each BS
    received = np.einsum("...b,...bkc->...ck", per_bs, gains)  # (..., B, K)
    interference = np.maximum(received - signal, 0.0)
    out: Array = signal / (interference + noise_w)
    return out


def rates_bps_hz(gains: Array, powers: Array, noise_w: float) -> Array:
    """Spectral efficiency log2(1 + SINR) of every link, bit/s/Hz, shape ``(..., B, K)``."""
    out: Array = np.log2(1.0 + sinr(gains, powers, noise_w))
    return out


def sum_rate_bps_hz(gains: Array, powers: Array, noise_w: float) -> Array:
    """Sum over all links of log2(1 + SINR), bit/s/Hz, shape ``(...)``."""
    out: Array = rates_bps_hz(gains, powers, noise_w).sum(axis=(-2, -1))
    return out


def csi_slice(gains: Array, bs: int) -> Array:
    """What BS ``bs`` measures: its downlink to every user of every cell, shape ``(..., K, B)``."""
    out: Array = gains[..., bs, :, :]
    return out
