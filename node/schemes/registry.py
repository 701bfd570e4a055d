"""The scheme registry: every scheme declared once.

A :class:`Scheme` says which scenario kind it applies to, how its nodes exchange
information in a slot, what builds its decisions (an actor at each node, or a central
decider at the controller), the policy it runs and how its weights are stored, and which
learners can train it. The CLI choices and help, the tables, evaluation, the demo and
docker-compose iterate over this registry; nothing else compares scheme names.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from protocols.plugins import resolve

Exchange = Literal["none", "chain", "central", "neighbours"]
"""How a slot's decision travels: ``none`` (each node alone on its own slice), ``chain`` (the
round-robin forward chain over the backhaul), ``central`` (upload the slice to the
controller, get the decision back), ``neighbours`` (each node broadcasts its choice to the
others, heard in the next slot)."""

EXCHANGE_ORDER: tuple[Exchange, ...] = ("central", "chain", "none", "neighbours")


@dataclass(frozen=True)
class Scheme:
    """One decision scheme."""

    name: str
    """Name on the command line and in results."""
    kind: str
    """Scenario kind it applies to (see channel_server.kinds)."""
    exchange: Exchange
    """Its exchange pattern."""
    help: str
    """One line for --help and tables."""
    actor: Any = None
    """At each node: factory ``(bs, scenario, seed, policy, action_mode) -> actor`` (or a
    "module:attr" reference to it); None for central schemes."""
    central: Any = None
    """At the controller: factory ``(scenario, seed, policy, action_mode) -> decider`` (or a
    reference); None for schemes decided at the nodes."""
    policy: Any = None
    """``(scenario) -> PolicyConfig`` of the trainable policy it runs (or a reference); None
    for schemes without one."""
    weights: str | None = None
    """Format of its weights files: 'gaussian-mlp' (power policy), 'q-networks' (DQN)."""
    weights_from: str = ""
    """The command that trains its weights, for error messages."""
    learners: tuple[str, ...] = ()
    """Learners that can train it (names in controller.learners)."""
    check: Any = None
    """``(scenario, arrays, facts)``: raise ValueError naming what does not fit when the
    weights (``arrays``, and ``facts``: what the file's header says) cannot act in the
    scenario (or a reference to it); None: no check."""
    needs_weights: bool = False
    """It acts only with trained weights (--weights is required unless it trains)."""
    options: dict[str, Any] = field(default_factory=dict)
    """Kind-specific properties read by the kind's own modules (e.g. V2X fingerprints)."""
    rank: int = 100
    """Position in tables (papers' order)."""
    batch: Any = None
    """Vectorized allocator over a batch of channel realizations, for offline comparisons
    (evaluation, benches, training references): ``(gains, radio, baselines, rng) ->
    (powers, info)`` (or a reference); None for schemes without one (learned policies)."""
    label: str | None = None
    """Name in figure legends and axes (default: the name)."""
    color: str | None = None
    """Matplotlib colour of its bars and lines, the same in every figure (None: default)."""
    default_for: tuple[str, ...] = ()
    """CLI commands whose --scheme is this scheme when none is given (per kind)."""

    @property
    def trainable(self) -> bool:
        return bool(self.learners)

    @property
    def display(self) -> str:
        """Its name in figures: the label, else the name."""
        return self.label or self.name

    @property
    def central_policy(self) -> bool:
        """Its policy runs at the controller (uploads, one decision for all nodes)."""
        return self.exchange == "central" and self.policy is not None

    def policy_config(self, scenario: Any) -> Any:
        return None if self.policy is None else resolve(self.policy)(scenario)

    def check_weights(self, scenario: Any, arrays: dict[str, Any],
                      facts: dict[str, Any] | None = None) -> None:
        """Raise ValueError naming why weights (``arrays``, and ``facts``: what their file's
        header says, :func:`protocols.weights.read_meta`) cannot run on ``scenario``."""
        if self.check is not None:
            resolve(self.check)(scenario, arrays, facts or {})

    def make_actor(self, *args: Any) -> Any:
        if self.actor is None:
            raise ValueError(f"scheme {self.name!r} is decided at the controller, not a node")
        return resolve(self.actor)(*args)

    def make_central(self, *args: Any) -> Any:
        if self.central is None:
            raise ValueError(f"scheme {self.name!r} has no central decider")
        return resolve(self.central)(*args)

    def allocate(self, *args: Any) -> Any:
        """Its batch allocator on ``(gains, radio, baselines, rng)``: ``(powers, info)``."""
        if self.batch is None:
            raise ValueError(f"scheme {self.name!r} has no batch allocator")
        return resolve(self.batch)(*args)


class SchemeRegistry:
    def __init__(self) -> None:
        self._schemes: dict[tuple[str, str], Scheme] = {}

    def register(self, scheme: Scheme) -> Scheme:
        key = (scheme.kind, scheme.name)
        if key in self._schemes and self._schemes[key] != scheme:
            raise ValueError(f"scheme {scheme.name!r} is already registered for {scheme.kind!r}")
        self._schemes[key] = scheme
        return scheme

    def get(self, kind: str, name: str) -> Scheme:
        found = self._schemes.get((kind, name))
        if found is None:
            raise KeyError(f"unknown scheme {name!r} for a {kind} scenario; choose from "
                           f"{', '.join(self.names(kind))}")
        return found

    def for_kind(self, kind: str, external: bool = False) -> list[Scheme]:
        """The schemes of ``kind`` in table order; with ``external``, also the one an
        outside learner decides (``options["external"]``: the environments' network runner),
        which the testbed cannot run, compare or train by itself."""
        return sorted((s for s in self._schemes.values() if s.kind == kind
                       and (external or not s.options.get("external"))),
                      key=lambda s: (s.rank, s.name))

    def names(self, kind: str, external: bool = False) -> list[str]:
        return [s.name for s in self.for_kind(kind, external)]

    def named(self, name: str) -> list[Scheme]:
        """Every kind's scheme called ``name`` (kinds in alphabetical order)."""
        return [s for s in self if s.name == name]

    def default(self, kind: str, command: str) -> str | None:
        """The scheme of ``kind`` that ``command`` runs when given none (None: no default)."""
        return next((s.name for s in self.for_kind(kind) if command in s.default_for), None)

    def __iter__(self) -> Iterator[Scheme]:
        return iter(sorted(self._schemes.values(), key=lambda s: (s.kind, s.rank, s.name)))

    def help(self) -> str:
        """One line per kind: its schemes."""
        kinds = sorted({s.kind for s in self})
        return "; ".join(f"{k}: {' | '.join(self.names(k, external=True))}" for k in kinds)


SCHEMES = SchemeRegistry()
register = SCHEMES.register
