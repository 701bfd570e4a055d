"""A process's messaging face: stamps headers, runs the start-up handshake.

Every rrmbed process owns one :class:`Peer`: an inbox bound on an endpoint, one
outgoing link per peer, a meter, and the emulated link-latency models of the
links that end here (the receiver adds the link latency, DESIGN.md).

Handshake (no sleeps): each process connects to the controller and sends
``Hello`` with its advertised inbox address; the controller, once everyone has
said hello, answers each with ``Start`` carrying the configuration and the
directory of addresses; nodes answer ``Ready``; the channel server is started
last, so no slot begins before every node is connected.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from protocols.errors import PeerError, PeerTimeout
from protocols.latency import LinkModel, make_clock
from protocols.messages import Hello, Message, Start
from protocols.meter import Meter
from protocols.seeding import rng_for
from protocols.telemetry import Telemetry
from protocols.transport import Endpoint

CONTROLLER = "controller"
CHANNEL_SERVER = "channel-server"


def node_name(b: int) -> str:
    return f"node-{b}"


def vehicle_name(k: int) -> str:
    """The node process of V2V transmitter ``k``."""
    return f"vehicle-{k}"


def index_of(name: str) -> int:
    """``node-3`` / ``vehicle-3`` -> 3."""
    return int(name.rsplit("-", 1)[1])


class Peer:
    """Messaging of one process."""

    def __init__(self, name: str, bind: str, advertise: str | None = None) -> None:
        self.name = name
        self.meter = Meter()
        self.endpoint = Endpoint(name, bind, self.meter)
        self.advertise = advertise or self.address
        self.early: list[Message] = []

    @property
    def address(self) -> str:
        return str(self.endpoint.address)

    def connect(self, peer: str, address: str) -> None:
        self.endpoint.connect(peer, address)

    def emulate_links(self, backhaul: Any, seed: int, peers: list[str], clock: str) -> None:
        """Latency models (the scenario's BackhaulConfig) of every link ending here.

        The link src -> self draws from its own stream ``rng_for(seed, "link", src, self)``,
        so a local runner drawing the same streams reproduces every latency.
        """
        self.endpoint.clock = make_clock(clock)
        for src in peers:
            if src != self.name:
                self.endpoint.set_link(src, LinkModel(backhaul.link(src, self.name),
                                                      rng_for(seed, "link", src, self.name)))

    async def send(self, dest: str, cls: type[Message], *, slot: int,
                   chain_latency_s: float = 0.0, **payload: Any) -> int:
        msg = cls(**self.endpoint.header(slot, float(chain_latency_s)), **payload)
        return await self.endpoint.send(dest, msg)

    async def recv(self, timeout_s: float) -> Message:
        return await self.endpoint.recv(timeout_s)

    def close(self, linger_s: float = 0.0) -> None:
        self.endpoint.close(linger_s)

    # ----------------------------------------------------------------- handshake

    async def join(self, controller: str, role: str, node_id: int, timeout_s: float) -> Start:
        """Say hello to the controller and wait for Start; connect to the directory."""
        self.connect(CONTROLLER, controller)
        await self.send(CONTROLLER, Hello, slot=-1, role=role, node_id=node_id,
                        pid=os.getpid(), host=self.advertise)
        deadline = time.monotonic() + timeout_s
        early: list[Message] = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise PeerTimeout(f"{self.name}: no Start from the controller at {controller} "
                                  f"within {timeout_s:.1f} s")
            msg = await self.recv(left)
            if isinstance(msg, Start):
                break
            early.append(msg)
        for peer, address in msg.options.get("directory", {}).items():
            if peer not in (self.name, CONTROLLER):
                self.connect(peer, address)
        self.early = early
        return msg


def telemetry_for(options: dict[str, Any], role: str, ident: str) -> Telemetry:
    """The process's MQTT telemetry, from the run options (disabled without a broker)."""
    return Telemetry(options.get("broker"), str(options.get("run", "run")), role, ident)


def backhaul_bytes(meter: Meter) -> int:
    return meter.plane_totals().get("backhaul", (0, 0))[1]


def check_peer(msg: Message, expected: type[Message], who: str) -> None:
    if not isinstance(msg, expected):
        raise PeerError(f"{who}: expected {expected.__name__}, got {type(msg).__name__} "
                        f"from {msg.sender}")


def as_array(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)
