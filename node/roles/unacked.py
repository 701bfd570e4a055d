"""At-least-once experience delivery, the node's side: every upload is kept, by its seq
(the slot it is of: a node uploads at most one per slot), until the controller acknowledges
it as durable (``ExperienceAck``: it is in a training checkpoint), and what is kept is sent
again to a controller that restarted. The controller drops what it already has by
(node, seq) (:class:`controller.learners.collect.ExperienceLedger`)."""

from __future__ import annotations

import logging
from typing import Any

from protocols.messages import Experience
from protocols.names import CONTROLLER
from protocols.role import Outbox

log = logging.getLogger("rrmbed.node")

MAX_UNACKED = 100_000
"""Most unacknowledged uploads a node keeps (the oldest go first beyond it)."""


class Unacked:
    """A node's experience uploads the controller has not acknowledged, by slot."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.kept: dict[int, dict[str, Any]] = {}
        self.forgotten = 0
        """Uploads dropped unacknowledged beyond MAX_UNACKED."""

    def send(self, out: Outbox, slot: int, **payload: Any) -> None:
        """Upload the experience of ``slot`` (payload: the Experience's fields) and keep it
        until acknowledged."""
        self.kept[slot] = payload
        if len(self.kept) > MAX_UNACKED:
            del self.kept[min(self.kept)]
            self.forgotten += 1
            if self.forgotten == 1:
                log.warning("%s: more than %d unacknowledged experience uploads; forgetting "
                            "the oldest", self.name, MAX_UNACKED)
        out.send(CONTROLLER, Experience, slot=slot, **payload)

    def ack(self, upto: int) -> None:
        """The controller holds every upload up to slot ``upto``: forget them."""
        for n in [n for n in self.kept if n <= upto]:
            del self.kept[n]

    def resend(self, out: Outbox) -> None:
        """Send every kept upload again, oldest first (the same slots: the same seqs)."""
        if self.kept:
            log.warning("%s: the controller restarted; sending %d unacknowledged experience "
                        "uploads again", self.name, len(self.kept))
        for n in sorted(self.kept):
            out.send(CONTROLLER, Experience, slot=n, **self.kept[n])
