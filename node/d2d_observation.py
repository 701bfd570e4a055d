"""A D2D pair's observation (paper 002, Section III-A): pure numpy, vectorized over any
leading axes, used by the pair node process and the one-process training alike.

``s = [G^d, G^c, I^{t-1}, K^{t-1}]``, per RB where the quantity is per RB (*choice*: the
paper does not say how each part is encoded):

* ``G^d``: the pair's own D2D link gain on each RB, ``(g_db - offset) / scale``;
* ``G^c``: the gain from the BS to the pair's receiver on each RB (the interference link of
  SINR (2)), same normalization;
* ``I^{t-1}``: the interference plus noise its receiver measured on each RB in the last
  slot, ``(I_dbm - offset) / scale``;
* ``K^{t-1}``: its RB in the last slot, one-hot over the K RBs (all zero before the first
  slot), and with several power levels its last level, one-hot over the beta levels.

Length ``4 K`` (one power level) or ``4 K + beta``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from channel_server.d2d import D2dScenario

Array = npt.NDArray[np.float64]


def observation_dim(scenario: D2dScenario) -> int:
    """Length of one pair's observation."""
    r = scenario.radio
    return 4 * r.n_rb + (r.n_levels if r.n_levels > 1 else 0)


def one_hot(index: npt.ArrayLike, n: int) -> Array:
    """``(..., n)`` one-hot of ``index`` (all zero where ``index`` is -1)."""
    idx = np.asarray(index, dtype=np.int64)
    out: Array = (idx[..., None] == np.arange(n)).astype(np.float64)
    return out


def observe(scenario: D2dScenario, d2d_gain_db: npt.ArrayLike, bs_gain_db: npt.ArrayLike,
            interference_dbm: npt.ArrayLike, last_rb: npt.ArrayLike,
            last_level: npt.ArrayLike) -> Array:
    """Observations ``(..., D)`` from slices ``(..., K)`` and last choices ``(...)``."""
    o, r = scenario.observation, scenario.radio
    parts = [
        (np.asarray(d2d_gain_db, dtype=np.float64) - o.gain_offset_db) / o.gain_scale_db,
        (np.asarray(bs_gain_db, dtype=np.float64) - o.gain_offset_db) / o.gain_scale_db,
        (np.asarray(interference_dbm, dtype=np.float64) - o.interference_offset_dbm)
        / o.interference_scale_db,
        one_hot(last_rb, r.n_rb),
    ]
    if r.n_levels > 1:
        parts.append(one_hot(last_level, r.n_levels))
    out: Array = np.concatenate(parts, axis=-1)
    return out


def decode_action(action: npt.ArrayLike, n_rb: int) -> tuple[npt.NDArray[np.int64],
                                                             npt.NDArray[np.int64]]:
    """Flat action ``rb + K * level`` -> (rb, level)."""
    a = np.asarray(action, dtype=np.int64)
    return a % n_rb, a // n_rb
