"""Experience collection over the network, pure: what every network trainer shares.

Nodes upload what they acted on (observation, action, whether the episode ended) for each
slot; the channel server reports each slot's reward to the controller. The collector joins
the two by slot: an upload is keyed by ``who`` made it (a BS's (chain step, index), a
vehicle's index; sortable), and a slot is complete once its reward and the expected uploads are in.
A trainer is this collector plus a learner: it turns complete slots into the learner's
batch (on-policy episodes for TRPO/A2C, replay transitions for DQN) and steps the learner.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Upload:
    """One node's experience of one slot."""

    obs: np.ndarray
    action: Any
    done: bool


@dataclass
class SlotExperience:
    uploads: dict[Any, Upload] = field(default_factory=dict)
    reward: float | None = None


class ExperienceCollector:
    """Uploads and rewards by slot, until a trainer takes them."""

    def __init__(self) -> None:
        self.slots: dict[int, SlotExperience] = {}
        self.dropped = 0
        """Slots dropped incomplete (a node vanished before uploading)."""

    def add(self, slot: int, who: Hashable, obs: np.ndarray, action: Any, done: bool) -> None:
        self.slots.setdefault(slot, SlotExperience()).uploads[who] = Upload(obs, action, done)

    def add_reward(self, slot: int, reward: float) -> None:
        self.slots.setdefault(slot, SlotExperience()).reward = float(reward)

    def complete(self, slots: Iterable[int], expected: int | Collection[Hashable]) -> bool:
        """Every slot has its reward and the expected uploads: ``expected`` of them (a
        count), or from every one of ``expected`` (the uploaders)."""
        for n in slots:
            e = self.slots.get(n)
            if e is None or e.reward is None:
                return False
            if isinstance(expected, int):
                if len(e.uploads) != expected:
                    return False
            elif not set(expected) <= set(e.uploads):
                return False
        return True

    def get(self, slot: int) -> SlotExperience | None:
        return self.slots.get(slot)

    def take(self, slot: int) -> SlotExperience:
        """Remove and return a slot's experience."""
        return self.slots.pop(slot)

    def drop_before(self, slot: int) -> None:
        """Forget the slots before ``slot`` still held: they can never complete."""
        for n in [x for x in self.slots if x < slot]:
            del self.slots[n]
            self.dropped += 1
