"""Large-scale pathloss models (power gains, linear unless named ``_db``)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


def distance_gain(d_m: Array | float, d0_m: float, alpha: float) -> Array:
    """Paper 001's pathloss power gain ``beta = (1 + d/d0)^-alpha`` (d, d0 in metres)."""
    out: Array = np.power(1.0 + np.asarray(d_m, dtype=np.float64) / d0_m, -alpha)
    return out


def log_distance_db(d_m: Array | float, intercept_db: float, slope_db: float) -> Array:
    """3GPP-style loss ``intercept + slope log10(d / 1 km)`` in dB (positive = loss).

    ``log_distance_db(d, 128.1, 37.6)`` is the macro-cell model ``128.1 + 37.6 log10(d km)``.
    """
    d_km = np.asarray(d_m, dtype=np.float64) / 1000.0
    out: Array = intercept_db + slope_db * np.log10(d_km)
    return out


def loss_db_to_gain(loss_db: Array | float) -> Array:
    """Linear power gain ``10^(-loss/10)`` of a loss in dB."""
    out: Array = np.power(10.0, -np.asarray(loss_db, dtype=np.float64) / 10.0)
    return out
