"""What a policy is, without torch: its shape, how its raw output becomes a power
fraction, and how weights are stored (.npz of named float arrays, never pickled).

Processes that run no policy (channel server, max-power nodes) import only this.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from protocols.weights import read_arrays

ActionMode = Literal["mean", "sample"]


@dataclass(frozen=True)
class PolicyConfig:
    """Shape and initialisation of a Gaussian MLP policy."""

    obs_dim: int
    """Length of the observation vector."""
    act_dim: int
    """Number of power fractions produced (users served by the deciding entity)."""
    hidden: tuple[int, ...] = (256, 256, 256)
    """Hidden layer widths (ELU between them)."""
    init_mean: float = 0.5
    """Initial output bias of the mean head (power fraction)."""
    init_log_std: float = -1.0
    """Initial state-independent log standard deviation (power fraction units)."""


def clip_fraction(raw: np.ndarray) -> np.ndarray:
    """Map a raw Gaussian action to a feasible power fraction in [0, 1]."""
    return np.clip(raw, 0.0, 1.0)


def fit_bs_budget(fractions: np.ndarray) -> np.ndarray:
    """The sum-power rule (one budget of Pmax per BS): ``a_bk / max(1, sum_k a_bk)`` over a
    BS's K fractions (last axis)."""
    total = fractions.sum(axis=-1, keepdims=True)
    out: np.ndarray = fractions / np.maximum(total, 1.0)
    return out


def read_weights(path: str | Path) -> dict[str, np.ndarray]:
    """Named arrays from a weights file (:func:`protocols.weights.read_arrays`: header or
    legacy meta.* entries excluded; a bad file raises ``WeightsError`` naming it)."""
    return read_arrays(path)
