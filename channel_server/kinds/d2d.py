"""D2D underlay spectrum sharing of paper 002: N D2D pairs reuse the RBs of M CUEs."""

from __future__ import annotations

from typing import Any

import protocols.d2d_messages  # noqa: F401  (registers the kind's messages in every process)
from channel_server.d2d import (
    D2dScenario,
    d2d_override,
    d2d_scenario_from_dict,
    d2d_scenario_to_dict,
)
from channel_server.kinds.registry import KINDS, ScenarioKind


class D2dUnderlay(ScenarioKind):
    name = "d2d-underlay"
    label = "D2D"
    node_role = "pair"
    messages = ("d2d_slice", "d2d_transmit", "d2d_feedback", "d2d_outcome", "experience",
                "weights")
    air_part = "channel_server.roles.d2d:D2dAirPart"
    node_part = "node.roles.pair:PairPart"
    controller_part = "controller.roles.d2d:D2dPart"
    env = "controller.envs.d2d:make_env"
    report = "controller.evaluation.d2d_run:report_run"

    def claims(self, table: dict[str, Any]) -> bool:
        return "drop" in table and "qos" in table

    def from_table(self, table: dict[str, Any], source: str) -> D2dScenario:
        return d2d_scenario_from_dict(table, source)

    def to_table(self, scenario: D2dScenario) -> dict[str, Any]:
        return d2d_scenario_to_dict(scenario)

    def override(self, scenario: D2dScenario, assignments: dict[str, Any]) -> D2dScenario:
        return d2d_override(scenario, assignments)

    def n_nodes(self, scenario: D2dScenario) -> int:
        return scenario.radio.n_pairs


D2D = KINDS.register(D2dUnderlay())
