"""Vehicular spectrum sharing of paper 000: K V2V links share M V2I resource blocks."""

from __future__ import annotations

from typing import Any

from channel_server.kinds.registry import KINDS, ScenarioKind
from channel_server.v2x import (
    V2xScenario,
    is_v2x_table,
    v2x_override,
    v2x_scenario_from_dict,
    v2x_scenario_to_dict,
)


class V2x(ScenarioKind):
    name = "v2x"
    label = "V2X"
    node_role = "vehicle"
    messages = ("v2x_slice", "v2x_transmit", "v2x_feedback", "v2x_outcome",
                "neighbour_choice", "fingerprint", "experience", "weights")
    air_part = "channel_server.roles.v2x:V2xAirPart"
    node_part = "node.roles.vehicle:VehiclePart"
    report = "controller.evaluation.v2x_run:report_run"
    controller_part = "controller.roles.v2x:V2xPart"
    env = "controller.envs.v2x:make_env"

    def claims(self, table: dict[str, Any]) -> bool:
        return is_v2x_table(table)

    def from_table(self, table: dict[str, Any], source: str) -> V2xScenario:
        return v2x_scenario_from_dict(table, source)

    def to_table(self, scenario: V2xScenario) -> dict[str, Any]:
        return v2x_scenario_to_dict(scenario)

    def override(self, scenario: V2xScenario, assignments: dict[str, Any]) -> V2xScenario:
        return v2x_override(scenario, assignments)

    def n_nodes(self, scenario: V2xScenario) -> int:
        return scenario.radio.n_v2v


V2X = KINDS.register(V2x())
