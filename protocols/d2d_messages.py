"""Messages of the D2D underlay kind (paper 002), registered with the codec on import.

The air plane carries each pair's own slice (channel server -> pair), the pair's choice
(pair -> channel server) and what its receiver reports (channel server -> pair); the
slot's outcome goes to the controller on the control plane. Experience uploads and
weights downloads use the common ``experience`` and ``weights`` kinds (backhaul). Under the
scheme an outside learner decides (``external-learner``) each pair uploads its observation
and gets its action back (the common ``obs_upload`` and ``action_decision``, backhaul).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy.typing as npt

from protocols.messages import Message, Plane, register
from protocols.names import CHANNEL_SERVER, NODES


@register
@dataclass(frozen=True, eq=False, slots=True)
class D2dSlice(Message):
    """A D2D pair's own view of the slot (channel server -> pair node)."""

    KIND: ClassVar[str] = "d2d_slice"
    PLANE: ClassVar[Plane] = "air"
    SENDERS: ClassVar[tuple[str, ...]] = (CHANNEL_SERVER,)
    d2d_gain_db: npt.NDArray[Any]
    """Own D2D link gain per RB, dB, shape (K,)."""
    bs_gain_db: npt.NDArray[Any]
    """Gain from the BS to its receiver per RB, dB, shape (K,)."""
    interference_dbm: npt.NDArray[Any]
    """Interference plus noise its receiver measured per RB in the last slot, dBm, (K,)."""
    last_rb: int
    """RB it used in the last slot (-1: none)."""
    last_level: int
    """Power level it used in the last slot (-1: none)."""


@register
@dataclass(frozen=True, eq=False, slots=True)
class D2dTransmit(Message):
    """A pair's transmission for the slot (pair node -> channel server)."""

    KIND: ClassVar[str] = "d2d_transmit"
    PLANE: ClassVar[Plane] = "air"
    SENDERS: ClassVar[tuple[str, ...]] = (NODES,)
    rb: int
    """Resource block."""
    power_level: int
    """Index into the scenario's D2D power levels."""
    decision_latency_s: float
    """Chain latency of the decision, seconds."""
    compute_s: float
    """Compute time of the decision, seconds."""


@register
@dataclass(frozen=True, eq=False, slots=True)
class D2dFeedback(Message):
    """What a pair's receiver reports for the slot (channel server -> pair node)."""

    KIND: ClassVar[str] = "d2d_feedback"
    PLANE: ClassVar[Plane] = "air"
    SENDERS: ClassVar[tuple[str, ...]] = (CHANNEL_SERVER,)
    sinr: float
    """Linear SINR of the D2D link."""
    reward: float
    """The pair's reward (log2(1 + SINR), or r_neg when the RB's CUE missed its
    threshold)."""


@register
@dataclass(frozen=True, eq=False, slots=True)
class D2dOutcome(Message):
    """The channel server's outcome of one D2D slot, sent to the controller."""

    KIND: ClassVar[str] = "d2d_outcome"
    PLANE: ClassVar[Plane] = "control"
    SENDERS: ClassVar[tuple[str, ...]] = (CHANNEL_SERVER,)
    rb: npt.NDArray[Any]
    """RB of every pair, shape (N,) (-1: silent)."""
    power_level: npt.NDArray[Any]
    """Power level of every pair, shape (N,) (-1: silent)."""
    cue_sinr: npt.NDArray[Any]
    """Linear SINR of every CUE, shape (M,)."""
    d2d_sinr: npt.NDArray[Any]
    """Linear SINR of every pair, shape (N,)."""
    cue_rate_bps: npt.NDArray[Any]
    """Rate of every CUE, bit/s, shape (M,)."""
    d2d_rate_bps: npt.NDArray[Any]
    """Rate of every pair, bit/s, shape (N,)."""
    reward: npt.NDArray[Any]
    """Reward of every pair, shape (N,)."""
    decision_latency_s: npt.NDArray[Any]
    """Chain latency of each pair's decision, seconds, shape (N,) (inf: silent)."""
    lost: list[int]
    """Indices of pairs whose node vanished."""

