"""Message types: frozen dataclasses, one per kind, and the kind registry.

Every message carries the common header (``sender``, ``seq``, ``slot``, ``sent_ns``,
``chain_latency_s``; keyword-only, declared on :class:`Message`) and a typed payload (its
own fields, positional). ``KIND`` names the message on the wire and in overhead reports;
``PLANE`` is the plane it is metered on: ``air`` (emulated radio), ``backhaul`` (the
signalling under study) or ``control`` (start, stop, heartbeats, reports).

Field annotations are the wire contract: the codec checks every decoded field against them.
Supported annotations: ``int``, ``float``, ``str``, ``bool``, ``npt.NDArray[Any]``,
``list[X]``, ``dict[str, X]`` and ``Any`` (msgpack-native values: None, bool, int, float,
str, bytes, arrays, lists, string-keyed maps).

Messages compare by identity (arrays make ``==`` ambiguous); use :func:`equal` to compare
field by field. Decoded arrays are fresh writable copies.

To add a kind::

    @register
    @dataclass(frozen=True, eq=False, slots=True)
    class MyKind(Message):
        KIND: ClassVar[str] = "my_kind"
        PLANE: ClassVar[Plane] = "backhaul"
        value: int
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal, TypeVar

import numpy as np
import numpy.typing as npt

from protocols.names import CHANNEL_SERVER, CONTROLLER, NODES

SCHEMA_VERSION: Final = 1
"""Wire schema version; a frame with any other version is rejected."""

Plane = Literal["air", "backhaul", "control"]
PLANES: Final[tuple[str, ...]] = ("air", "backhaul", "control")

HEADER_FIELDS: Final[tuple[str, ...]] = ("sender", "seq", "slot", "sent_ns", "chain_latency_s")
"""Names of the common header fields, in wire order."""


class Stamper:
    """The header fields of one process's messages: its name, a seq that counts its numbered
    messages (1, 2, ...; 0 on the unnumbered ones), the slot, the wall-clock send time
    (``time.time_ns``). Both drivers stamp with it: the endpoint of a process and the pump's
    in-memory host."""

    def __init__(self, sender: str) -> None:
        self.sender = sender
        self.seq = 0

    def header(self, slot: int, chain_latency_s: float = 0.0,
               numbered: bool = True) -> dict[str, Any]:
        """The header of a new message (``numbered``: the next seq, else 0 and the count
        untouched)."""
        if numbered:
            self.seq += 1
        return {"sender": self.sender, "seq": self.seq if numbered else 0, "slot": slot,
                "sent_ns": time.time_ns(), "chain_latency_s": chain_latency_s}


@dataclass(frozen=True, eq=False, slots=True, kw_only=True)
class Message:
    """Common header of every message."""

    KIND: ClassVar[str]
    PLANE: ClassVar[Plane]
    SENDERS: ClassVar[tuple[str, ...]] = ()
    """Who may send this kind: ``controller``, ``channel-server`` and/or ``node`` (any node
    of the run); empty: any process of the run. A receiving role drops the rest."""
    EXCHANGED: ClassVar[tuple[str, ...]] = ()
    """Array fields this kind exchanges between agents (the signalling a scheme's wire
    encoding applies to, :mod:`protocols.wire`): the sending process encodes each as its
    scenario's wire configuration says; the frame says how, so a receiver needs no
    configuration. Empty: every array travels as computed."""

    sender: str = ""
    """Name of the sending endpoint ('node-0', 'controller', 'channel')."""
    seq: int = 0
    """Per-sender sequence number."""
    slot: int = 0
    """Slot the message belongs to."""
    sent_ns: int = 0
    """Wall-clock send time, ns since the epoch (time.time_ns())."""
    chain_latency_s: float = 0.0
    """Emulated latency of the causal chain that produced the message, seconds."""


M = TypeVar("M", bound=type[Message])

REGISTRY: dict[str, type[Message]] = {}
"""KIND -> message class."""


def register(cls: M) -> M:
    """Class decorator: add a message dataclass to :data:`REGISTRY` under its ``KIND``."""
    if not (isinstance(cls, type) and issubclass(cls, Message) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"{cls!r} is not a Message dataclass")
    kind = cls.__dict__.get("KIND")
    if not isinstance(kind, str) or not kind:
        raise TypeError(f"{cls.__name__} must define KIND: ClassVar[str]")
    if getattr(cls, "PLANE", None) not in PLANES:
        raise TypeError(f"{cls.__name__}.PLANE must be one of {PLANES}")
    if kind in REGISTRY and REGISTRY[kind] is not cls:
        raise TypeError(f"kind {kind!r} is already registered to {REGISTRY[kind].__name__}")
    REGISTRY[kind] = cls
    return cls


def payload_fields(cls: type[Message]) -> tuple[str, ...]:
    """Names of the payload fields of a message class, in wire order."""
    return tuple(f.name for f in dataclasses.fields(cls) if f.name not in HEADER_FIELDS)


def equal(a: Message, b: Message) -> bool:
    """True when both messages have the same class and equal fields (arrays: same dtype,
    shape and values, NaN equal to NaN)."""
    if type(a) is not type(b):
        return False
    return all(_values_equal(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))


def _values_equal(x: Any, y: Any) -> bool:
    if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
        if not (isinstance(x, np.ndarray) and isinstance(y, np.ndarray)):
            return False
        if x.dtype != y.dtype or x.shape != y.shape:
            return False
        return bool(np.array_equal(x, y, equal_nan=x.dtype.kind in "fc"))
    if type(x) is not type(y):
        return False
    if isinstance(x, list):
        return len(x) == len(y) and all(_values_equal(u, v) for u, v in zip(x, y, strict=True))
    if isinstance(x, dict):
        return x.keys() == y.keys() and all(_values_equal(x[k], y[k]) for k in x)
    if isinstance(x, float) and x != x:
        return bool(y != y)
    return bool(x == y)


# --------------------------------------------------------------------------- control


@register
@dataclass(frozen=True, eq=False, slots=True)
class Hello(Message):
    """A process announces itself to the controller."""

    KIND: ClassVar[str] = "hello"
    PLANE: ClassVar[Plane] = "control"
    SENDERS: ClassVar[tuple[str, ...]] = (CHANNEL_SERVER, NODES)
    role: str
    """'node', 'channel', 'controller'."""
    node_id: int
    """Index of the node (-1 for processes that are not nodes)."""
    pid: int
    """OS process id."""
    host: str
    """Host name or inbox address of the process."""


@register
@dataclass(frozen=True, eq=False, slots=True)
class Start(Message):
    """The controller starts a run."""

    KIND: ClassVar[str] = "start"
    PLANE: ClassVar[Plane] = "control"
    SENDERS: ClassVar[tuple[str, ...]] = (CONTROLLER,)
    scheme: str
    """Scheme name."""
    slots: int
    """Number of slots to run."""
    seed: int
    """Run seed."""
    config_toml: str
    """Resolved configuration, TOML text."""
    options: dict[str, Any]
    """Scheme options."""


@register
@dataclass(frozen=True, eq=False, slots=True)
class Stop(Message):
    """Stop the run."""

    KIND: ClassVar[str] = "stop"
    PLANE: ClassVar[Plane] = "control"
    SENDERS: ClassVar[tuple[str, ...]] = (CONTROLLER,)
    reason: str
    """Why."""


@register
@dataclass(frozen=True, eq=False, slots=True)
class Heartbeat(Message):
    """Liveness signal (header only)."""

    KIND: ClassVar[str] = "heartbeat"
    PLANE: ClassVar[Plane] = "control"
    SENDERS: ClassVar[tuple[str, ...]] = (CHANNEL_SERVER, NODES)


@register
@dataclass(frozen=True, eq=False, slots=True)
class Beat(Message):
    """A process is alive: sent every ``timing.heartbeat_s`` to the peers it watches, over
    the network only (the driver sends and consumes it: a role only sees ``links``)."""

    KIND: ClassVar[str] = "beat"
    PLANE: ClassVar[Plane] = "control"
    SENDERS: ClassVar[tuple[str, ...]] = (CONTROLLER, CHANNEL_SERVER, NODES)
    links: list[list[Any]]
    """The sender's meter so far, its ``link`` rows (:meth:`protocols.meter.Meter.links`):
    the controller writes the overhead as the run goes, and keeps a lost process's."""


@register
@dataclass(frozen=True, eq=False, slots=True)
class Leave(Message):
    """The controller tells the air and the nodes that node ``node`` is lost (silent for 3
    heartbeats): the air serves the run without it from now on, until it rejoins; a node
    waiting on it (for a power list) stops waiting."""

    KIND: ClassVar[str] = "leave"
    PLANE: ClassVar[Plane] = "control"
    SENDERS: ClassVar[tuple[str, ...]] = (CONTROLLER,)
    node: int
    """Index of the lost node."""


@register
@dataclass(frozen=True, eq=False, slots=True)
class Done(Message):
    """A process finished its slots."""

    KIND: ClassVar[str] = "done"
    PLANE: ClassVar[Plane] = "control"
    SENDERS: ClassVar[tuple[str, ...]] = (CHANNEL_SERVER,)
    slots: int
    """Number of slots completed."""


@register
@dataclass(frozen=True, eq=False, slots=True)
class Report(Message):
    """A process's final overhead-meter table and statistics."""

    KIND: ClassVar[str] = "report"
    PLANE: ClassVar[Plane] = "control"
    SENDERS: ClassVar[tuple[str, ...]] = (CHANNEL_SERVER, NODES)
    rows: list[list[Any]]
    """Meter.rows() of the process."""
    stats: dict[str, Any]
    """Free-form statistics (counts, protocol errors, misses, ...)."""


@register
@dataclass(frozen=True, eq=False, slots=True)
class Error(Message):
    """A process reports a fatal error."""

    KIND: ClassVar[str] = "error"
    PLANE: ClassVar[Plane] = "control"
    text: str
    """Error text."""


@register
@dataclass(frozen=True, eq=False, slots=True)
class SlotOutcome(Message):
    """The channel server's outcome of one slot, sent to the controller."""

    KIND: ClassVar[str] = "slot_outcome"
    PLANE: ClassVar[Plane] = "control"
    SENDERS: ClassVar[tuple[str, ...]] = (CHANNEL_SERVER,)
    powers: npt.NDArray[Any]
    """Transmit powers, watts, shape (B, K)."""
    rates: npt.NDArray[Any]
    """Achieved rates, bit/s/Hz, shape (B, K)."""
    sum_rate_bps_hz: float
    """Sum of rates, bit/s/Hz."""
    decision_latency_s: npt.NDArray[Any]
    """Chain latency of each BS's decision, seconds, shape (B,)."""
    missed: npt.NDArray[Any]
    """Whether each BS missed the deadline, bool, shape (B,)."""
    lost: list[int]
    """Indices of BSs whose transmit never arrived."""
    wall_s: float
    """Wall-clock decision time of the slot: first CSI slice sent to last transmission
    received at the channel server, seconds."""
    compute_s: npt.NDArray[Any]
    """Compute time each BS reported for its decision, seconds, shape (B,)."""


# --------------------------------------------------------------------------- air


@register
@dataclass(frozen=True, eq=False, slots=True)
class CsiSlice(Message):
    """A node's own CSI for the slot (channel server -> node)."""

    KIND: ClassVar[str] = "csi_slice"
    PLANE: ClassVar[Plane] = "air"
    SENDERS: ClassVar[tuple[str, ...]] = (CHANNEL_SERVER,)
    gains: npt.NDArray[Any]
    """The node's slice of the channel gains |h|^2."""
    order: list[int]
    """The slot's round-robin order of BSs (empty when unused)."""
    active: list[int]
    """Indices of active links/users."""


@register
@dataclass(frozen=True, eq=False, slots=True)
class Transmit(Message):
    """A node's transmission for the slot (node -> channel server)."""

    KIND: ClassVar[str] = "transmit"
    PLANE: ClassVar[Plane] = "air"
    SENDERS: ClassVar[tuple[str, ...]] = (NODES,)
    powers: npt.NDArray[Any]
    """Transmit powers, watts."""
    rb: int
    """Chosen resource block (-1 when unused)."""
    missed: bool
    """The decision missed the deadline and these are fallback powers."""
    decision_latency_s: float
    """Chain latency of the decision, seconds."""
    compute_s: float
    """Compute time of the node's own decision, seconds."""


@register
@dataclass(frozen=True, eq=False, slots=True)
class Measurement(Message):
    """What a node's receivers report back (channel server -> node)."""

    KIND: ClassVar[str] = "measurement"
    PLANE: ClassVar[Plane] = "air"
    SENDERS: ClassVar[tuple[str, ...]] = (CHANNEL_SERVER,)
    sinr: npt.NDArray[Any]
    """Linear SINR of the node's users."""
    rates: npt.NDArray[Any]
    """Rates of the node's users, bit/s/Hz."""


# --------------------------------------------------------------------------- backhaul


@register
@dataclass(frozen=True, eq=False, slots=True)
class PowerForward(Message):
    """Round-robin: decisions so far, forwarded to the next BS."""

    KIND: ClassVar[str] = "power_forward"
    PLANE: ClassVar[Plane] = "backhaul"
    SENDERS: ClassVar[tuple[str, ...]] = (NODES,)
    EXCHANGED: ClassVar[tuple[str, ...]] = ("powers",)
    order: list[int]
    """BSs whose decisions are included, in order."""
    powers: npt.NDArray[Any]
    """Their powers, watts, one row per BS in ``order`` (exchanged: encoded as the
    scenario's ``[wire]`` says; a BS passes its predecessors' rows on as it received
    them)."""


@register
@dataclass(frozen=True, eq=False, slots=True)
class CsiUpload(Message):
    """Centralized: a node uploads its CSI slice to the controller."""

    KIND: ClassVar[str] = "csi_upload"
    PLANE: ClassVar[Plane] = "backhaul"
    SENDERS: ClassVar[tuple[str, ...]] = (NODES,)
    EXCHANGED: ClassVar[tuple[str, ...]] = ("gains",)
    gains: npt.NDArray[Any]
    """The node's CSI slice, linear power gains (exchanged: encoded as the scenario's
    ``[wire]`` says; gains span many decades, so quantize them on the dB scale)."""


@register
@dataclass(frozen=True, eq=False, slots=True)
class Decision(Message):
    """Centralized: the controller's powers for one node."""

    KIND: ClassVar[str] = "decision"
    PLANE: ClassVar[Plane] = "backhaul"
    SENDERS: ClassVar[tuple[str, ...]] = (CONTROLLER,)
    EXCHANGED: ClassVar[tuple[str, ...]] = ("powers",)
    powers: npt.NDArray[Any]
    """Powers, watts (exchanged: encoded as the scenario's ``[wire]`` says)."""


@register
@dataclass(frozen=True, eq=False, slots=True)
class ObsUpload(Message):
    """A learner outside the testbed decides (scheme ``external-learner`` of a kind whose
    agents act on their own observations: V2X, D2D; the cellular ``external-round-robin``,
    at the BS's turn in the chain): a node's observation of the slot, to the controller."""

    KIND: ClassVar[str] = "obs_upload"
    PLANE: ClassVar[Plane] = "backhaul"
    SENDERS: ClassVar[tuple[str, ...]] = (NODES,)
    EXCHANGED: ClassVar[tuple[str, ...]] = ("obs",)
    obs: npt.NDArray[Any]
    """What the node's agent observes, shape (D,) (exchanged: encoded as the scenario's
    ``[wire]`` says)."""


@register
@dataclass(frozen=True, eq=False, slots=True)
class ActionDecision(Message):
    """The outside learner's action for one node (controller -> node): the kind's flat
    discrete action."""

    KIND: ClassVar[str] = "action_decision"
    PLANE: ClassVar[Plane] = "backhaul"
    SENDERS: ClassVar[tuple[str, ...]] = (CONTROLLER,)
    action: int
    """The flat action index."""


@register
@dataclass(frozen=True, eq=False, slots=True)
class Fingerprint(Message):
    """Multi-agent fingerprint (training iteration and exploration rate)."""

    KIND: ClassVar[str] = "fingerprint"
    PLANE: ClassVar[Plane] = "backhaul"
    SENDERS: ClassVar[tuple[str, ...]] = (CONTROLLER,)
    iteration: int
    """Training iteration."""
    epsilon: float
    """Exploration rate."""


@register
@dataclass(frozen=True, eq=False, slots=True)
class NeighbourChoice(Message):
    """A neighbour's resource-block and power-level choice."""

    KIND: ClassVar[str] = "neighbour_choice"
    PLANE: ClassVar[Plane] = "backhaul"
    SENDERS: ClassVar[tuple[str, ...]] = (NODES,)
    rb: int
    """Resource block."""
    power_level: int
    """Index of the discrete power level."""


@register
@dataclass(frozen=True, eq=False, slots=True)
class Experience(Message):
    """A batch of transitions uploaded to the learner."""

    KIND: ClassVar[str] = "experience"
    PLANE: ClassVar[Plane] = "backhaul"
    SENDERS: ClassVar[tuple[str, ...]] = (NODES,)
    obs: npt.NDArray[Any]
    """Observations, shape (N, ...)."""
    action: npt.NDArray[Any]
    """Actions, shape (N, ...)."""
    reward: npt.NDArray[Any]
    """Rewards, shape (N,)."""
    next_obs: npt.NDArray[Any]
    """Next observations, shape (N, ...)."""
    done: npt.NDArray[Any]
    """Episode-end flags, bool, shape (N,)."""
    step: int
    """Position of the first transition within its episode (round-robin: chain position)."""


@register
@dataclass(frozen=True, eq=False, slots=True)
class Weights(Message):
    """A weights snapshot; ``version`` only grows."""

    KIND: ClassVar[str] = "weights"
    PLANE: ClassVar[Plane] = "backhaul"
    SENDERS: ClassVar[tuple[str, ...]] = (CONTROLLER,)
    version: int
    """Snapshot version."""
    names: list[str]
    """Parameter names."""
    arrays: list[npt.NDArray[Any]]
    """Parameter values, one per name."""


@register
@dataclass(frozen=True, eq=False, slots=True)
class WeightsRequest(Message):
    """A node asks for the current weights snapshot."""

    KIND: ClassVar[str] = "weights_request"
    PLANE: ClassVar[Plane] = "backhaul"
    SENDERS: ClassVar[tuple[str, ...]] = (NODES,)
    have_version: int
    """Version the node holds (-1 for none)."""


@register
@dataclass(frozen=True, eq=False, slots=True)
class WeightsAck(Message):
    """A node confirms it holds weights ``version`` and uses them from its next slot."""

    KIND: ClassVar[str] = "weights_ack"
    PLANE: ClassVar[Plane] = "backhaul"
    SENDERS: ClassVar[tuple[str, ...]] = (NODES,)
    version: int
    """Snapshot version now held."""


@register
@dataclass(frozen=True, eq=False, slots=True)
class ExperienceAck(Message):
    """The controller holds the receiving node's experience up to ``upto`` durably (in a
    training checkpoint): the node may forget it. Until then a node keeps what it uploaded,
    to send it again to a restarted controller (at-least-once; the controller drops what it
    already has by (node, seq), the seq of an experience being its slot)."""

    KIND: ClassVar[str] = "experience_ack"
    PLANE: ClassVar[Plane] = "backhaul"
    SENDERS: ClassVar[tuple[str, ...]] = (CONTROLLER,)
    upto: int
    """Highest experience seq (slot) acknowledged; every lower one is acknowledged too."""


@register
@dataclass(frozen=True, eq=False, slots=True)
class Join(Message):
    """The controller tells the air and the other nodes that node ``node`` (re)joined at
    ``address``: reconnect to it, and serve it from the next slot on."""

    KIND: ClassVar[str] = "join"
    PLANE: ClassVar[Plane] = "control"
    SENDERS: ClassVar[tuple[str, ...]] = (CONTROLLER,)
    node: int
    """Index of the BS that joined."""
    address: str
    """Its inbox address."""


@register
@dataclass(frozen=True, eq=False, slots=True)
class Restarted(Message):
    """A restarted controller to every process of the run it continues: treat the old one
    as lost and say hello again (a process that found it silent has already)."""

    KIND: ClassVar[str] = "restarted"
    PLANE: ClassVar[Plane] = "control"
    SENDERS: ClassVar[tuple[str, ...]] = (CONTROLLER,)


@register
@dataclass(frozen=True, eq=False, slots=True)
class AirRestart(Message):
    """The controller tells the nodes that the channel server died and a new one is coming
    (``address`` empty: wait for it), or that the new one listens at ``address`` and serves
    the header's slot next: reconnect, forget what waits for that slot and later ones, and
    say ready (``Heartbeat``)."""

    KIND: ClassVar[str] = "air_restart"
    PLANE: ClassVar[Plane] = "control"
    SENDERS: ClassVar[tuple[str, ...]] = (CONTROLLER,)
    address: str
    """The new channel server's inbox ("" while it is not there yet)."""


@register
@dataclass(frozen=True, eq=False, slots=True)
class Resume(Message):
    """The controller lets the channel server go on after a training iteration."""

    KIND: ClassVar[str] = "resume"
    PLANE: ClassVar[Plane] = "control"
    SENDERS: ClassVar[tuple[str, ...]] = (CONTROLLER,)
    version: int
    """Weights version every node now holds."""


# --------------------------------------------------------------------------- vehicular


@register
@dataclass(frozen=True, eq=False, slots=True)
class V2xSlice(Message):
    """A V2V transmitter's own view of the slot (channel server -> vehicle node)."""

    KIND: ClassVar[str] = "v2x_slice"
    PLANE: ClassVar[Plane] = "air"
    SENDERS: ClassVar[tuple[str, ...]] = (CHANNEL_SERVER,)
    episode_slot: int
    """Slot within the episode (0: a new episode starts, the payload is refilled)."""
    v2v_gain_db: npt.NDArray[Any]
    """Own V2V link effective gain per RB, dB, shape (M,)."""
    bs_gain_db: npt.NDArray[Any]
    """Effective gain from own transmitter to the BS per RB, dB, shape (M,)."""
    interference_dbm: npt.NDArray[Any]
    """Interference plus noise own receiver measured per RB in the last slot, dBm, (M,)."""
    active: list[int]
    """V2V links whose nodes take part in the slot (whose neighbour choices will come)."""


@register
@dataclass(frozen=True, eq=False, slots=True)
class V2xTransmit(Message):
    """A vehicle's transmission for the slot (vehicle node -> channel server)."""

    KIND: ClassVar[str] = "v2x_transmit"
    PLANE: ClassVar[Plane] = "air"
    SENDERS: ClassVar[tuple[str, ...]] = (NODES,)
    rb: int
    """Resource block."""
    power_level: int
    """Index into the scenario's V2V power levels (ignored once the payload is delivered)."""
    decision_latency_s: float
    """Chain latency of the decision, seconds."""
    compute_s: float
    """Compute time of the decision, seconds."""


@register
@dataclass(frozen=True, eq=False, slots=True)
class V2xFeedback(Message):
    """What a V2V receiver acknowledges for the slot (channel server -> vehicle node)."""

    KIND: ClassVar[str] = "v2x_feedback"
    PLANE: ClassVar[Plane] = "air"
    SENDERS: ClassVar[tuple[str, ...]] = (CHANNEL_SERVER,)
    rate_bps: float
    """Capacity of the V2V link in the slot, bit/s (0 when silent)."""
    sinr: float
    """Linear SINR of the V2V link."""


@register
@dataclass(frozen=True, eq=False, slots=True)
class V2xOutcome(Message):
    """The channel server's outcome of one vehicular slot, sent to the controller."""

    KIND: ClassVar[str] = "v2x_outcome"
    PLANE: ClassVar[Plane] = "control"
    SENDERS: ClassVar[tuple[str, ...]] = (CHANNEL_SERVER,)
    episode_slot: int
    """Slot within the episode."""
    rb: npt.NDArray[Any]
    """RB of every V2V link, shape (K,)."""
    power_level: npt.NDArray[Any]
    """Power-level index of every V2V link, shape (K,)."""
    transmitted: npt.NDArray[Any]
    """Whether each V2V link still transmitted (payload not yet delivered), bool, (K,)."""
    v2i_rate_bps: npt.NDArray[Any]
    """Capacity of every V2I link, bit/s, shape (M,)."""
    v2v_rate_bps: npt.NDArray[Any]
    """Capacity of every V2V link, bit/s, shape (K,)."""
    reward: float
    """Global reward of the slot."""
    remaining_bits: npt.NDArray[Any]
    """Payload left after the slot, bits, shape (K,)."""
    delivery_time_s: npt.NDArray[Any]
    """Delivery time of every V2V link in the episode so far, s (NaN: not yet), (K,)."""
    decision_latency_s: npt.NDArray[Any]
    """Chain latency of each vehicle's decision, seconds, shape (K,) (inf: lost)."""
    lost: list[int]
    """Indices of V2V links whose node vanished."""
