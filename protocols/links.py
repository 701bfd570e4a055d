"""Link emulation at a receiver, pure: what a message looks like when it arrives, and when.

Both drivers use it: the ZeroMQ transport on every frame it accepts, and the in-memory pump
of the local runner on every message it delivers, so latency draws, losses and holds are
the same in both. For a message of an emulated plane (backhaul by default) from a sender
with a :class:`~protocols.latency.LinkModel`, the link is sampled once (draws in arrival
order, from the link's own generator) and the message is delivered with
``chain_latency_s`` increased by the link latency. A lost message is delivered at once,
marked infinitely late (``chain_latency_s = inf``), so the receiver counts a deadline miss
instead of waiting on a wall-clock timeout. In 'realtime' mode a message is held until its
latency has elapsed since ``sent_ns``; in 'fast' mode never.
"""

from __future__ import annotations

import dataclasses
import math

from protocols.latency import Clock, FastClock, LinkModel, make_clock
from protocols.messages import Message

__all__ = ["LinkModel", "Links"]


class Links:
    """The emulated links that end at one receiver, keyed by sender name."""

    def __init__(self, planes: tuple[str, ...] = ("backhaul",)) -> None:
        self.models: dict[str, LinkModel] = {}
        self.clock: Clock = FastClock()
        self.planes = planes
        """Planes whose messages cross an emulated link."""
        self.lost = 0
        """Messages lost on an emulated link so far."""

    def set(self, models: dict[str, LinkModel], clock: str | None = None) -> None:
        """Add (or replace) the models of messages from the named senders."""
        self.models.update(models)
        if clock is not None:
            self.clock = make_clock(clock)

    def arrive(self, msg: Message, now_ns: int) -> tuple[Message, int]:
        """``msg`` as delivered, and the wall time (ns) before which it is held (0: none)."""
        if not self.models or msg.PLANE not in self.planes:
            return msg, 0
        model = self.models.get(msg.sender)
        if model is None:
            return msg, 0
        latency = model.sample()
        msg = dataclasses.replace(msg, chain_latency_s=msg.chain_latency_s + latency)
        if math.isinf(latency):
            self.lost += 1
            return msg, 0
        hold = self.clock.hold_s(msg.sent_ns, latency, now_ns)
        return msg, (now_ns + int(hold * 1e9) if hold > 0.0 else 0)
