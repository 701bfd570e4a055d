"""A learner outside the testbed deciding a central scheme's slots: the scheme registered
with ``options={"external": True}`` in a kind, driven by the environments' network runner
(:mod:`controller.envs.network`).

The kind's controller part rebuilds each slot's channel from the nodes' uploads as for any
central scheme, then, instead of deciding, hands it to :class:`ExternalSlots`: the learner
observes it, and the part's timer ``EXTERNAL`` looks every ``EXTERNAL_POLL_S`` for the
powers the learner has given, slot by slot in order. Everything here runs in the
controller's event loop and never blocks it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np

from protocols.role import Outbox

EXTERNAL = ("part", "external")
"""The timer key of an external learner's decisions."""
EXTERNAL_POLL_S = 0.0005
"""How often the controller looks for an external learner's powers, seconds."""


class ExternalLearner(Protocol):
    """What the controller calls; none of it may block."""

    def observe(self, slot: int, gains: np.ndarray) -> None:
        """The whole channel of ``slot``, rebuilt from the nodes' uploads (the kind's
        shape: cellular ``(B, K, B)``, interference ``(K, K)``)."""

    def action(self, slot: int) -> np.ndarray | None:
        """The powers of ``slot`` in watts (the kind's shape), or None while not decided."""

    def outcome(self, msg: Any) -> None:
        """What the air recorded for a slot (the kind's outcome message)."""


class ExternalSlots:
    """The slots handed to the learner whose powers have not come back yet."""

    def __init__(self, learner: ExternalLearner) -> None:
        self.learner = learner
        self.awaiting: dict[int, Any] = {}
        """Slot -> what the part needs to send its decisions (the slot's uploads)."""

    def hand(self, slot: int, uploads: Any, gains: np.ndarray, now: float,
             out: Outbox) -> None:
        """Give the learner ``slot``'s channel and start looking for its powers."""
        self.awaiting[slot] = uploads
        self.learner.observe(slot, gains)
        out.timer(EXTERNAL, now + EXTERNAL_POLL_S)

    def decided(self, now: float, out: Outbox) -> Iterator[tuple[int, Any, np.ndarray]]:
        """``(slot, uploads, powers)`` of every slot the learner has decided, in slot order,
        up to the first it has not (looked for again ``EXTERNAL_POLL_S`` later)."""
        for slot in sorted(self.awaiting):
            powers = self.learner.action(slot)
            if powers is None:
                out.timer(EXTERNAL, now + EXTERNAL_POLL_S)
                return
            yield slot, self.awaiting.pop(slot), powers
