"""How well demands are met: the violation (12) and the time to recover after a change.

Violation (12) of average rates ``R`` against demands ``u_min`` (percent):

    viol = max_i max(0, u_min_i - R_i) / u_min_i x 100

over the users with a demand (``u_min_i > 0``; a user asking for nothing cannot be
violated, and (12) would divide by zero); 0 when nobody asks for anything.

Time to recover (our definition; the paper shows it in Fig. 2-3 without a number): after a
demand change at slot ``t0``, the moving average of each user's rate over the last ``window``
slots *of the new phase* (fewer at its start: slots before the change never count), and its
violation ``v(t)``; the recovery time is the first ``t - t0`` from which ``v`` stays below
``threshold`` percent for ``hold`` consecutive slots. None when that never happens within
the phase. The threshold has to sit above the noise of a ``window``-slot average of rates
that switch on and off: at ALCOR's fixed point a binding user's mean rate equals its demand,
so its moving average is below it about half the time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


def violation(u_min: Array, rates: Array) -> Array:
    """(12) in percent along the last axis; ``rates`` are the users' average rates, bit/s/Hz
    (any leading axes, e.g. one row per moving-average slot)."""
    u = np.asarray(u_min, dtype=np.float64)
    r = np.asarray(rates, dtype=np.float64)
    demanding = u > 0
    short = np.where(demanding, np.maximum(0.0, u - r) / np.where(demanding, u, 1.0), 0.0)
    out: Array = 100.0 * short.max(axis=-1)
    return out


def moving_average(x: Array, window: int) -> Array:
    """Mean of the last ``window`` rows at every row (fewer at the start), ``x``: ``(T, ...)``."""
    a = np.asarray(x, dtype=np.float64)
    c = np.cumsum(a, axis=0)
    out = np.empty_like(c)
    w = min(window, len(a))
    out[:w] = c[:w] / np.arange(1, w + 1).reshape((-1,) + (1,) * (a.ndim - 1))
    out[w:] = (c[w:] - c[:-w]) / window
    return out


@dataclass(frozen=True)
class RecoveryConfig:
    """The time-to-recover rule (see the module docstring)."""

    window: int = 1000
    """Moving-average length, slots (20 extragradient iterations of B = 25)."""
    threshold: float = 10.0
    """Violation (12) of the moving average below which a phase counts as met, percent."""
    hold: int = 1000
    """Slots the moving average must stay below the threshold, slots."""


def violation_curve(rates: Array, u_min: Array, start: int, end: int, window: int) -> Array:
    """``v(t)`` for t in ``[start, end)``: (12) of the moving average of ``rates[start:t+1]``
    over its last ``window`` slots."""
    return violation(u_min, moving_average(rates[start:end], window))


def recovery_slots(rates: Array, u_min: Array, start: int, end: int,
                   cfg: RecoveryConfig) -> int | None:
    """Slots after ``start`` until the demands count as met (module docstring), or None."""
    below = violation_curve(rates, u_min, start, end, cfg.window) < cfg.threshold
    n = len(below)
    if n < cfg.hold:
        return None
    # run[t] = consecutive True values from t onwards
    run = np.zeros(n + 1, dtype=np.int64)
    for t in range(n - 1, -1, -1):
        run[t] = run[t + 1] + 1 if below[t] else 0
    hits = np.flatnonzero(run[:n] >= cfg.hold)
    return int(hits[0]) if len(hits) else None


def settled_window(start: int, end: int, share: float = 0.5) -> tuple[int, int]:
    """The last ``share`` of a phase ``[start, end)``: where its average rates are read."""
    return end - max(1, round(share * (end - start))), end
