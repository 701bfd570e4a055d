"""The tiny interfaces between actors, learners and the weights they share (after Acme's
``core.py``).

* A :class:`Learner` turns batches of experience into new weights: ``step(batch)`` is one
  learning step and returns its metrics; ``get_variables()`` gives the current weights.
* A :class:`VariableSource` is anything that hands out named weights with a ``version``
  that only grows: a learner in the same process, or the controller's published weights
  received over the backhaul.
* An :class:`Actor` acts: ``select_action(observation)``, ``observe(...)`` the step it
  took (a no-op for actors that do not learn), ``update()`` to take new weights from its
  variable source at a slot boundary.

Variables are named float arrays (numpy, never tensors), the same names in memory, on the
wire and in weights files. No torch here: nodes and the CLI import this without it.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

Variables = dict[str, np.ndarray]
"""Named float arrays: a policy's or a Q network's weights."""


@runtime_checkable
class VariableSource(Protocol):
    """Hands out the current weights and their version."""

    @property
    def version(self) -> int:
        """Grows by at least one whenever the variables may have changed; never shrinks."""
        ...

    def get_variables(self) -> Variables:
        """The current weights (copies: changing them changes nothing in the source)."""
        ...


@runtime_checkable
class Learner(VariableSource, Protocol):
    """Learns from batches of experience; a learner is its own variable source."""

    def step(self, batch: Any) -> dict[str, float]:
        """One learning step on ``batch`` (the learner's batch type); returns its metrics."""
        ...


@runtime_checkable
class Actor(Protocol):
    """Acts in the environment with weights from a variable source."""

    def select_action(self, observation: Any) -> Any:
        """The action for ``observation``."""
        ...

    def observe(self, transition: Any) -> None:
        """Record the step just taken (what it uploads as experience); may be a no-op."""
        ...

    def update(self) -> None:
        """Take newer weights from the variable source, if it has any."""
        ...
