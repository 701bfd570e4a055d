"""The multi-cell downlink of paper 001: B base stations, K users each."""

from __future__ import annotations

from typing import Any

from channel_server.config import (
    Scenario,
    override,
    scenario_from_dict,
    scenario_to_compact_dict,
)
from channel_server.kinds.registry import KINDS, ScenarioKind


class Cellular(ScenarioKind):
    name = "cellular"
    node_role = "node"
    messages = ("csi_slice", "transmit", "measurement", "slot_outcome", "power_forward",
                "csi_upload", "decision", "experience", "weights")
    air_part = "channel_server.roles.cellular:CellularAir"
    node_part = "node.roles.bs:BsPart"
    report = "controller.evaluation.results:report_run"
    air_restartable = True
    controller_part = "controller.roles.cellular:CellularPart"
    env = "controller.envs.cellular:make_env"

    def claims(self, table: dict[str, Any]) -> bool:
        return isinstance(table.get("radio"), dict) and "layout" in table["radio"]

    def from_table(self, table: dict[str, Any], source: str) -> Scenario:
        return scenario_from_dict(table, source)

    def to_table(self, scenario: Scenario) -> dict[str, Any]:
        return scenario_to_compact_dict(scenario)

    def override(self, scenario: Scenario, assignments: dict[str, Any]) -> Scenario:
        return override(scenario, assignments)

    def n_nodes(self, scenario: Scenario) -> int:
        return scenario.radio.n_cells


CELLULAR = KINDS.register(Cellular())
