"""Scenario kinds: one interface, one registry.

A scenario kind (multi-cell downlink, V2X spectrum sharing, ...) knows how to read its TOML
file into frozen config dataclasses, validate, override and write them back, how many node
processes it needs and under which role name, and where its three parts live: the air (the
channel server's kind-specific slot work), the node agent and the controller's part
(recording, central decisions, training). Parts are named as "module:attr" references so
that each process imports only its own.

The CLI resolves a scenario file once (:func:`resolve`); processes get the resolved
configuration in ``Start`` as TOML and rebuild it with :meth:`ScenarioKind.from_toml`.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from channel_server.config import ScenarioError, read_toml, to_toml
from protocols.names import CHANNEL_SERVER, CONTROLLER
from protocols.plugins import resolve as resolve_ref


class ScenarioKind:
    """Base of every scenario kind; subclasses set the class attributes and the methods."""

    name: str = ""
    """Registry name, also the optional top-level ``kind = "..."`` key of a scenario file."""
    label: str = ""
    """How messages name the kind ("V2X"); the registry name when empty."""
    node_role: str = "node"
    """Name prefix of its node processes (``node-0``) and their CLI command."""
    messages: tuple[str, ...] = ()
    """Message kinds its roles exchange (besides the common control messages)."""
    air_part: Any = None
    """Factory ``(scenario, seed, options) -> air part`` or a "module:attr" reference."""
    node_part: Any = None
    """Factory ``(node_role, scenario, start) -> node part`` or a reference."""
    controller_part: Any = None
    """Factory ``(controller_role, scenario, weights) -> controller part`` or a reference."""
    air_restartable: bool = False
    """A channel server of this kind can be restarted mid-run: its air part's
    ``fast_forward(n)`` brings a new one to slot n (the air's state depends on the slot
    only, not on what the nodes did)."""
    report: Any = None
    """``(summary, run_dir, console)``: the summary table (and plots) at the end of a run,
    or a reference to it."""
    env: Any = None
    """Factory ``(scenario, seed: int, **options) -> env`` of the kind's PettingZoo
    environment, or a "module:attr" reference to it (resolved with
    :func:`protocols.plugins.resolve`; the kind files name one in ``controller.envs``, so the
    channel server never imports it). Options every factory takes: ``api`` ("parallel": a
    ``pettingzoo.ParallelEnv``; "aec": a ``pettingzoo.AECEnv``) and ``max_cycles`` (slots
    per episode before truncation); :func:`controller.envs.make_env` is the public entry."""

    def claims(self, table: dict[str, Any]) -> bool:
        """A scenario table without a ``kind`` key is of this kind."""
        return False

    def from_table(self, table: dict[str, Any], source: str) -> Any:
        raise NotImplementedError

    def to_table(self, scenario: Any) -> dict[str, Any]:
        raise NotImplementedError

    def override(self, scenario: Any, assignments: dict[str, Any]) -> Any:
        raise NotImplementedError

    def n_nodes(self, scenario: Any) -> int:
        raise NotImplementedError

    # ----------------------------------------------------------------- shared behaviour

    def node_name(self, i: int) -> str:
        return f"{self.node_role}-{i}"

    def node_names(self, scenario: Any) -> list[str]:
        return [self.node_name(i) for i in range(self.n_nodes(scenario))]

    def to_toml(self, scenario: Any) -> str:
        return to_toml({"kind": self.name, **self.to_table(scenario)})

    def from_toml(self, text: str, source: str = "<from controller>") -> Any:
        table = tomllib.loads(text)
        table.pop("kind", None)
        return self.from_table(table, source)

    def make_air(self, *args: Any) -> Any:
        return resolve_ref(self.air_part)(*args)

    def make_node(self, *args: Any) -> Any:
        return resolve_ref(self.node_part)(*args)

    def make_controller(self, *args: Any) -> Any:
        return resolve_ref(self.controller_part)(*args)


class KindRegistry:
    def __init__(self) -> None:
        self._kinds: dict[str, ScenarioKind] = {}

    def register(self, kind: ScenarioKind) -> ScenarioKind:
        self._kinds[kind.name] = kind
        return kind

    def get(self, name: str) -> ScenarioKind:
        if name not in self._kinds:
            raise ScenarioError(f"unknown scenario kind {name!r}; known: "
                                f"{', '.join(sorted(self._kinds))}")
        return self._kinds[name]

    def names(self) -> list[str]:
        return sorted(self._kinds)

    def of_table(self, table: dict[str, Any], source: str) -> ScenarioKind:
        """The kind of a scenario table: its ``kind`` key, else the kind that claims it."""
        if "kind" in table:
            return self.get(str(table["kind"]))
        claimed = [k for k in self._kinds.values() if k.claims(table)]
        if len(claimed) != 1:
            raise ScenarioError(f"{source}: cannot tell the scenario kind; add a top-level "
                                f"kind = one of {', '.join(self.names())}")
        return claimed[0]

    def by_role(self, role: str) -> list[ScenarioKind]:
        return [k for k in self._kinds.values() if k.node_role == role]


KINDS = KindRegistry()


@dataclass(frozen=True)
class Resolved:
    """A scenario file resolved once: its kind and its configuration (overrides applied)."""

    kind: ScenarioKind
    scenario: Any
    path: Path | None = None

    @property
    def name(self) -> str:
        return str(self.scenario.name)

    @property
    def n_nodes(self) -> int:
        return self.kind.n_nodes(self.scenario)

    @property
    def node_names(self) -> list[str]:
        return self.kind.node_names(self.scenario)

    @property
    def process_names(self) -> list[str]:
        """Every process of a run: the controller, the channel server, the nodes."""
        return [CONTROLLER, CHANNEL_SERVER, *self.node_names]

    def toml(self) -> str:
        return self.kind.to_toml(self.scenario)


def resolve(path: str | Path, assignments: dict[str, Any] | None = None) -> Resolved:
    """Load a scenario file of any kind, apply dotted overrides; errors name the file."""
    table = read_toml(path)
    kind = KINDS.of_table(table, str(path))
    table.pop("kind", None)
    scenario = kind.from_table(table, str(path))
    if assignments:
        scenario = kind.override(scenario, assignments)
    return Resolved(kind, scenario, Path(path))


def from_toml(text: str, source: str = "<from controller>") -> Resolved:
    """A resolved scenario from the TOML a controller sends in ``Start``."""
    table = tomllib.loads(text)
    kind = KINDS.of_table(table, source)
    table.pop("kind", None)
    return Resolved(kind, kind.from_table(table, source))
