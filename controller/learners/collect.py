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


class ExperienceLedger:
    """Which node experience the controller holds or has used: at-least-once delivery with
    deduplication by (node, seq).

    An experience's seq is the slot it is of: a node uploads at most one ``Experience`` per
    slot it acts in, so (node, slot) names an upload across resends and across restarts of
    either side (the message header's ``seq`` cannot: the transport stamps a new one on
    every send, from 1 again in a new process). It is kept alongside for the record.

    Per node: ``floor``, the highest seq at or below which everything is done with (used by
    an update, or of a slot no update can take any more), ``held``, the seqs above it
    received and not used yet (seq -> header seq), and ``used``, the seqs above it used
    already (a period's last slot is used before the slots below it are closed). An upload
    at or below the floor, held or used already is a duplicate: dropped and counted.
    """

    def __init__(self) -> None:
        self.floor: dict[str, int] = {}
        self.held: dict[str, dict[int, int]] = {}
        self.used: dict[str, set[int]] = {}
        self.duplicates = 0
        """Uploads dropped as already held or used."""

    def admit(self, node: str, seq: int, header_seq: int = 0) -> bool:
        """Note an upload; False (and counted) when it is a duplicate."""
        held = self.held.setdefault(node, {})
        if (seq <= self.floor.get(node, -1) or seq in held
                or seq in self.used.get(node, ())):
            self.duplicates += 1
            return False
        held[seq] = int(header_seq)
        return True

    def use(self, seqs: Iterable[int]) -> dict[str, list[tuple[int, int]]]:
        """Mark every node's held uploads of ``seqs`` used; what each node's were, as
        (seq, header seq), in order."""
        wanted = set(seqs)
        used: dict[str, list[tuple[int, int]]] = {}
        for node in sorted(self.held):
            held = self.held[node]
            mine = sorted(s for s in held if s in wanted)
            if mine:
                used[node] = [(s, held.pop(s)) for s in mine]
                self.used.setdefault(node, set()).update(mine)
                self._settle(node)
        return used

    def _settle(self, node: str) -> None:
        """Raise ``node``'s floor over the used seqs just above it."""
        done, floor = self.used.get(node, set()), self.floor.get(node, -1)
        while floor + 1 in done:
            floor += 1
            done.discard(floor)
        self.floor[node] = floor

    def close_below(self, seq: int) -> None:
        """Nothing below ``seq`` can be used any more: raise every floor to ``seq - 1`` and
        forget what is held below (a slot dropped incomplete)."""
        for node in set(self.held) | set(self.floor):
            self.floor[node] = max(self.floor.get(node, -1), seq - 1)
            held = self.held.get(node, {})
            for s in [s for s in held if s < seq]:
                del held[s]
            self.used[node] = {s for s in self.used.get(node, set()) if s >= seq}
            self._settle(node)

    def durable(self) -> dict[str, int]:
        """Per node, the highest seq such that this ledger covers it and every seq below
        (the floor, then held seqs without a gap): what the controller may acknowledge
        once a checkpoint holds this ledger and what it holds."""
        out = {}
        for node in sorted(set(self.held) | set(self.floor)):
            upto, held = self.floor.get(node, -1), self.held.get(node, {})
            while upto + 1 in held or upto + 1 in self.used.get(node, ()):
                upto += 1
            out[node] = upto
        return out

    def state(self) -> dict[str, Any]:
        """Plain JSON: floors, held seqs (with their header seqs), used seqs above the
        floors and the duplicate count."""
        return {"floor": dict(self.floor),
                "held": {n: [[s, h] for s, h in sorted(d.items())]
                         for n, d in self.held.items() if d},
                "used": {n: sorted(d) for n, d in self.used.items() if d},
                "duplicates": self.duplicates}

    def restore(self, state: dict[str, Any]) -> None:
        self.floor = {str(n): int(f) for n, f in state.get("floor", {}).items()}
        self.held = {str(n): {int(s): int(h) for s, h in rows}
                     for n, rows in state.get("held", {}).items()}
        self.used = {str(n): {int(s) for s in seqs}
                     for n, seqs in state.get("used", {}).items()}
        self.duplicates = int(state.get("duplicates", 0))
