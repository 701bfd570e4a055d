"""Uniform experience replay over numpy arrays (ring buffers), for the DQN learner.

A :class:`ReplayBuffer` holds named fields (``obs``, ``action``, ...), each a
preallocated array of ``capacity`` rows. ``add`` writes a batch of rows at the
cursor and wraps around, overwriting the oldest rows first (FIFO, as in the
reference DQN memories). ``sample(n, rng)`` draws ``n`` row indices uniformly
**with replacement** from the rows held, using only the generator passed in.

:class:`PerAgentReplay` keeps one such buffer per agent (one network per agent:
every agent learns from its own experience); rows are routed by an agent-id field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Batch = dict[str, npt.NDArray[np.generic]]


@dataclass(frozen=True)
class FieldSpec:
    """Shape and dtype of one row of a replay field."""

    shape: tuple[int, ...]
    """Per-row shape (``()`` for a scalar such as the reward)."""
    dtype: type[np.generic]
    """numpy scalar type of the stored values."""


class ReplayBuffer:
    """A FIFO ring buffer of ``capacity`` rows with uniform sampling."""

    def __init__(self, capacity: int, fields: Mapping[str, FieldSpec]) -> None:
        if capacity < 1:
            raise ValueError("replay capacity must be >= 1")
        if not fields:
            raise ValueError("a replay buffer needs at least one field")
        self.capacity = int(capacity)
        self.fields = dict(fields)
        self.data: Batch = {
            name: np.zeros((self.capacity, *spec.shape), dtype=spec.dtype)
            for name, spec in self.fields.items()
        }
        self.cursor = 0
        """Row the next ``add`` writes first."""
        self.size = 0
        """Rows held (at most ``capacity``)."""
        self.added = 0
        """Rows ever added (for bookkeeping and tests)."""

    def __len__(self) -> int:
        return self.size

    def add(self, batch: Mapping[str, npt.ArrayLike]) -> None:
        """Append ``n`` rows (every field with leading dimension ``n``), overwriting the oldest."""
        if set(batch) != set(self.fields):
            raise ValueError(f"replay fields {sorted(self.fields)}, got {sorted(batch)}")
        arrays = {k: np.asarray(v) for k, v in batch.items()}
        n = {a.shape[0] if a.ndim else -1 for a in arrays.values()}
        if len(n) != 1 or -1 in n:
            raise ValueError("every field needs the same leading (row) dimension")
        rows = n.pop()
        for name, a in arrays.items():
            if a.shape[1:] != self.fields[name].shape:
                raise ValueError(f"field {name!r}: row shape {a.shape[1:]}, "
                                 f"expected {self.fields[name].shape}")
        if rows > self.capacity:  # only the newest `capacity` rows survive
            arrays = {k: a[rows - self.capacity:] for k, a in arrays.items()}
            self.added += rows - self.capacity
            rows = self.capacity
        idx = (self.cursor + np.arange(rows)) % self.capacity
        for name, a in arrays.items():
            self.data[name][idx] = a
        self.cursor = (self.cursor + rows) % self.capacity
        self.size = min(self.size + rows, self.capacity)
        self.added += rows

    def sample(self, n: int, rng: np.random.Generator) -> Batch:
        """``n`` rows drawn uniformly with replacement from the rows held."""
        if self.size == 0:
            raise ValueError("sample() from an empty replay buffer")
        idx = rng.integers(0, self.size, size=int(n))
        return {name: a[idx] for name, a in self.data.items()}

    def ordered(self) -> Batch:
        """The rows held, oldest first (for inspection and tests)."""
        start = self.cursor if self.size == self.capacity else 0
        idx = (start + np.arange(self.size)) % self.capacity
        return {name: a[idx] for name, a in self.data.items()}


class PerAgentReplay:
    """One :class:`ReplayBuffer` of ``capacity`` rows per agent; rows routed by ``agent_field``."""

    def __init__(
        self, n_agents: int, capacity: int, fields: Mapping[str, FieldSpec],
        agent_field: str = "agent",
    ) -> None:
        if agent_field not in fields:
            raise ValueError(f"agent field {agent_field!r} is not among the replay fields")
        self.agent_field = agent_field
        self.buffers = [ReplayBuffer(capacity, fields) for _ in range(int(n_agents))]

    def __len__(self) -> int:
        return min(len(b) for b in self.buffers)

    def add(self, batch: Mapping[str, npt.ArrayLike]) -> None:
        arrays = {k: np.asarray(v) for k, v in batch.items()}
        agent = arrays[self.agent_field]
        if np.any((agent < 0) | (agent >= len(self.buffers))):
            raise ValueError("agent id out of range")
        for i, buffer in enumerate(self.buffers):
            mine = agent == i
            if mine.any():
                buffer.add({k: a[mine] for k, a in arrays.items()})

    def sample(self, agent: int, n: int, rng: np.random.Generator) -> Batch:
        return self.buffers[agent].sample(n, rng)
