"""Messages of the K-user interference channel kind (paper 003), registered on import.

The air plane carries each link's own slice (channel server -> link) and its transmit power
(link -> channel server); the message-passing GNN's rounds travel between neighbouring
links on the backhaul (``ic_round``, one per layer and edge); the slot's outcome goes to
the controller on the control plane. Central schemes upload with ``ic_upload``
and get their power back in the common ``decision``; distributed ALCOR spreads its
normaliser with ``alcor_max`` and learns each slot's rate from ``ic_feedback``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy.typing as npt

from protocols.messages import Message, Plane, register
from protocols.names import CHANNEL_SERVER, NODES


@register
@dataclass(frozen=True, eq=False, slots=True)
class IcSlice(Message):
    """What link i's receiver measured for the slot, and its neighbours in the interference
    graph (channel server -> link node)."""

    KIND: ClassVar[str] = "ic_slice"
    PLANE: ClassVar[Plane] = "air"
    SENDERS: ClassVar[tuple[str, ...]] = (CHANNEL_SERVER,)
    gains_in: npt.NDArray[Any]
    """``G[j, i]`` for every transmitter j (its own gain at j = i), shape (K,)."""
    in_nbrs: npt.NDArray[Any]
    """Links j whose messages it waits for (edge j -> i), int, ascending."""
    out_nbrs: npt.NDArray[Any]
    """Links it sends its messages to (edge i -> j), int, ascending."""
    u_min: float
    """Its minimum average rate in force, bit/s/Hz (0: none; ALCOR schemes)."""


@register
@dataclass(frozen=True, eq=False, slots=True)
class IcRound(Message):
    """One layer's message of link j to its neighbour i (link node -> link node): together
    ``power`` and ``features`` are :func:`node.mpgnn.message`."""

    KIND: ClassVar[str] = "ic_round"
    PLANE: ClassVar[Plane] = "backhaul"
    SENDERS: ClassVar[tuple[str, ...]] = (NODES,)
    EXCHANGED: ClassVar[tuple[str, ...]] = ("power", "features")
    layer: int
    """The layer it feeds (1..L): built from the sender's state after layer - 1."""
    power: npt.NDArray[Any]
    """``(p_j / Pmax,)``, the sender's power fraction, shape (1,)."""
    features: npt.NDArray[Any]
    """``(phi(G[j, j]), phi(G[i, j]))``: the sender's own gain and the gain its receiver
    measured from the receiving link, in decades (:func:`node.mpgnn.phi`), shape (2,).
    Apart from the power because they span another range (see ``[wire]``)."""
    active: bool
    """False when ALCOR switched the sender off this slot: the receiver then takes the gain
    between them as zero (the GNN runs on H_xi); always True without ALCOR."""


@register
@dataclass(frozen=True, eq=False, slots=True)
class IcTransmit(Message):
    """A link's transmit power for the slot (link node -> channel server)."""

    KIND: ClassVar[str] = "ic_transmit"
    PLANE: ClassVar[Plane] = "air"
    SENDERS: ClassVar[tuple[str, ...]] = (NODES,)
    power_w: float
    """Transmit power, watts."""
    decision_latency_s: float
    """Chain latency of the decision, seconds (its slowest input plus compute)."""
    compute_s: float
    """Compute time of the decision, seconds."""
    missing: int
    """Neighbour messages it decided without (lost, or from a vanished neighbour)."""
    active: bool
    """Whether ALCOR's user selection switched it on this slot (always, without ALCOR)."""


@register
@dataclass(frozen=True, eq=False, slots=True)
class IcFeedback(Message):
    """What link i's receiver measured of the slot: its rate (channel server -> link)."""

    KIND: ClassVar[str] = "ic_feedback"
    PLANE: ClassVar[Plane] = "air"
    SENDERS: ClassVar[tuple[str, ...]] = (CHANNEL_SERVER,)
    rate: float
    """Its rate, bit/s/Hz."""


@register
@dataclass(frozen=True, eq=False, slots=True)
class IcUpload(Message):
    """Central schemes: what link i's receiver measured, to the controller (link node ->
    controller)."""

    KIND: ClassVar[str] = "ic_upload"
    PLANE: ClassVar[Plane] = "backhaul"
    SENDERS: ClassVar[tuple[str, ...]] = (NODES,)
    EXCHANGED: ClassVar[tuple[str, ...]] = ("gains",)
    gains: npt.NDArray[Any]
    """``G[j, i]`` for every transmitter j, shape (K,)."""
    active: bool
    """Distributed ALCOR: whether the link switched itself on (the controller allocates
    among the active links); True otherwise."""


@register
@dataclass(frozen=True, eq=False, slots=True)
class AlcorMax(Message):
    """Distributed ALCOR: one round of max-flooding of c + lambda (link node -> link node)."""

    KIND: ClassVar[str] = "alcor_max"
    PLANE: ClassVar[Plane] = "backhaul"
    SENDERS: ClassVar[tuple[str, ...]] = (NODES,)
    iteration: int
    """The ALCOR iteration whose multipliers it spreads (1, 2, ...)."""
    round: int
    """The flooding round (1..max_rounds)."""
    value: float
    """The largest c + lambda the sender knows of."""


@register
@dataclass(frozen=True, eq=False, slots=True)
class IcOutcome(Message):
    """The channel server's outcome of one slot, sent to the controller."""

    KIND: ClassVar[str] = "ic_outcome"
    PLANE: ClassVar[Plane] = "control"
    SENDERS: ClassVar[tuple[str, ...]] = (CHANNEL_SERVER,)
    powers: npt.NDArray[Any]
    """Every link's transmit power, watts, shape (K,) (0: silent)."""
    rates: npt.NDArray[Any]
    """Every link's rate, bit/s/Hz, shape (K,)."""
    decision_latency_s: npt.NDArray[Any]
    """Chain latency of each link's decision, seconds, shape (K,) (inf: silent)."""
    missed: npt.NDArray[Any]
    """1 where the decision missed the deadline and the link kept its last power, (K,)."""
    missing: npt.NDArray[Any]
    """Neighbour messages each link decided without, shape (K,)."""
    active: npt.NDArray[Any]
    """1 where the link was switched on (ALCOR's user selection), shape (K,)."""
    u_min: npt.NDArray[Any]
    """Each link's demand in force, bit/s/Hz, shape (K,)."""
    reference_rate: float
    """Sum rate WMMSE reaches on the slot's gains (from Pmax), bit/s/Hz: the reference of
    the run's fraction (0 when the scenario turns it off)."""
    lost: list[int]
    """Indices of links whose node vanished."""
