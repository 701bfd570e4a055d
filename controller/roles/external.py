"""A learner outside the testbed deciding a run's slots: the scheme registered with
``options={"external": True}`` in a kind, driven by the environments' network runner
(:mod:`controller.envs.network`).

The kind's controller part rebuilds each slot's channel from the nodes' uploads as for any
central scheme, then, instead of deciding, hands it to :class:`ExternalSlots`: the learner
observes it, and the part's timer ``EXTERNAL`` looks every ``EXTERNAL_POLL_S`` for the
powers the learner has given, slot by slot in order. In the kinds whose agents act on
observations of their own (V2X, D2D) the nodes upload those (``ObsUpload``) and get their
discrete actions back (``ActionDecision``): :meth:`ExternalSlots.collect` and
:meth:`ExternalSlots.send_actions`. Everything here runs in the controller's event loop and
never blocks it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

import numpy as np

from protocols.messages import ActionDecision
from protocols.role import Outbox
from protocols.validate import Rejected

EXTERNAL = ("part", "external")
"""The timer key of an external learner's decisions."""
EXTERNAL_POLL_S = 0.0005
"""How often the controller looks for an external learner's powers, seconds."""


class ExternalLearner(Protocol):
    """What the controller calls; none of it may block."""

    def observe(self, slot: int, gains: Any) -> None:
        """What the nodes uploaded for ``slot``: the whole channel (cellular ``(B, K, B)``,
        interference ``(K, K)``), every agent's observation (``(N, D)``), or in a chain the
        turn of one agent ``(index, its observation (D,))``."""

    def action(self, slot: int) -> np.ndarray | None:
        """The decisions of ``slot`` (the kind's: powers in watts, or every agent's discrete
        action), or None while not decided."""

    def outcome(self, msg: Any) -> None:
        """What the air recorded for a slot (the kind's outcome message)."""


class ExternalSlots:
    """The slots handed to the learner whose powers have not come back yet."""

    def __init__(self, learner: ExternalLearner) -> None:
        self.learner = learner
        self.awaiting: dict[int, Any] = {}
        """Slot -> what the part needs to send its decisions (the slot's uploads)."""
        self.uploads: dict[int, dict[int, tuple[np.ndarray, float]]] = {}
        """Observations collected so far: slot -> agent -> (observation, its latency)."""

    def hand(self, slot: int, uploads: Any, gains: Any, now: float, out: Outbox) -> None:
        """Give the learner ``slot``'s channel (or a turn of it) and start looking for its
        powers."""
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

    def collect(self, slot: int, agent: int, obs: np.ndarray, latency_s: float,
                active: set[int], n_agents: int, now: float, out: Outbox) -> None:
        """One agent's observation of ``slot``; every slot whose active agents have all
        uploaded goes to the learner as ``(n_agents, D)``, in slot order (an agent lost
        meanwhile observes zeros)."""
        got = self.uploads.setdefault(slot, {})
        if agent in got:
            raise Rejected(f"a second upload for slot {slot}")
        got[agent] = (np.asarray(obs, dtype=np.float64), latency_s)
        for n in sorted(self.uploads):
            got = self.uploads[n]
            if not active <= set(got):
                return
            del self.uploads[n]
            every = np.zeros((n_agents, obs.shape[-1]))
            for i, (o, _) in got.items():
                every[i] = o
            self.hand(n, got, every, now, out)

    def send_actions(self, now: float, out: Outbox, name: Callable[[int], str],
                     compute_s: float) -> None:
        """Each uploading agent's action of every slot the learner has decided, ready
        ``compute_s`` after the slot's last upload arrived (its uplink latency is added on
        receipt)."""
        for slot, got, actions in self.decided(now, out):
            ready = max(a for _, a in got.values()) + compute_s
            for i in sorted(got):
                out.send(name(i), ActionDecision, slot=slot, chain_latency_s=ready,
                         action=int(actions[i]))
