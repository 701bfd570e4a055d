"""What a V2X agent observes (paper 000, observation (12) plus the fingerprint (14)).

Shared by the vehicle node process and the one-process environment
(:class:`controller.training.v2x_env.V2xEnv`): :func:`observe` builds an agent's observation from
its own slice only (what a vehicle node holds), the neighbours' RB choices received over
the backhaul, and the fingerprint broadcast by the controller.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from channel_server.v2x import V2xScenario

Array = npt.NDArray[np.float64]


def agent_name(k: int) -> str:
    return f"v2v-{k}"


def observation_dim(scenario: V2xScenario) -> int:
    """Length of one agent's observation."""
    return 4 * scenario.radio.n_rb + 2 + (2 if scenario.observation.fingerprint else 0)


def decode_action(a: Any, n_rb: int) -> tuple[Any, Any]:
    """Flat action index -> (rb, power level): ``rb = a % M``, ``level = a // M``."""
    a = np.asarray(a, dtype=np.int64)
    return a % n_rb, a // n_rb


@dataclass(frozen=True)
class LocalSlice:
    """What one V2V agent knows at the start of a slot (arrays may carry batch axes)."""

    v2v_gain_db: Array
    """Own V2V link effective gain per RB, dB, ``(..., M)``."""
    bs_gain_db: Array
    """Effective gain from own transmitter to the BS per RB, dB, ``(..., M)``."""
    interference_dbm: Array
    """Interference plus noise measured at own receiver per RB last slot, dBm, ``(..., M)``."""
    remaining_bits: Array | float
    """Payload left, bits."""
    remaining_time_s: Array | float
    """Time left before the deadline, seconds."""


def neighbour_counts(neighbour_rbs: Sequence[int], n_rb: int) -> Array:
    """Counts per RB of the RB choices received from the other agents; a choice of -1
    comes from a silent agent (payload delivered) and is not counted."""
    rbs = np.asarray(neighbour_rbs, dtype=np.int64).reshape(-1)
    out: Array = np.bincount(rbs[rbs >= 0], minlength=n_rb).astype(np.float64)
    return out


def observe(
    local: LocalSlice,
    neighbour_rb_counts: Array,
    scenario: V2xScenario,
    fingerprint: tuple[float, float] | None = None,
) -> npt.NDArray[np.float32]:
    """Observation (12), plus (14) when ``scenario.observation.fingerprint``.

    ``neighbour_rb_counts (..., M)`` counts the other transmitting agents per RB last slot
    (see :func:`neighbour_counts`); ``fingerprint = (iteration, epsilon)``.
    """
    o = scenario.observation
    k_n = scenario.radio.n_v2v
    g = (np.asarray(local.v2v_gain_db) - o.gain_offset_db) / o.gain_scale_db
    h = (np.asarray(local.bs_gain_db) - o.gain_offset_db) / o.gain_scale_db
    i = (np.asarray(local.interference_dbm) - o.interference_offset_dbm) / o.interference_scale_db
    n = np.asarray(neighbour_rb_counts, dtype=np.float64) / max(k_n - 1, 1)
    batch = g.shape[:-1]
    load = np.broadcast_to(np.asarray(local.remaining_bits) / scenario.traffic.payload_bits,
                           batch)[..., None]
    time_left = np.broadcast_to(
        np.asarray(local.remaining_time_s) / scenario.traffic.deadline_s, batch)[..., None]
    parts = [g, h, i, n, load, time_left]
    if o.fingerprint:
        it, eps = fingerprint if fingerprint is not None else (0.0, 1.0)
        fp = np.array([it / o.fingerprint_iterations, eps], dtype=np.float64)
        parts.append(np.broadcast_to(fp, (*batch, 2)))
    return np.concatenate(parts, axis=-1).astype(np.float32)
