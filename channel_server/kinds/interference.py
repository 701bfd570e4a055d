"""The K-user interference channel of paper 003: one ``link`` node per transmitter-receiver
pair; the message-passing GNN runs as rounds of messages between neighbouring links."""

from __future__ import annotations

from typing import Any

import protocols.ic_messages  # noqa: F401  (registers the kind's messages in every process)
from channel_server.interference import (
    IcScenario,
    ic_override,
    ic_scenario_from_dict,
    ic_scenario_to_dict,
)
from channel_server.kinds.registry import KINDS, ScenarioKind


class Interference(ScenarioKind):
    name = "interference"
    label = "IC"
    node_role = "link"
    messages = ("ic_slice", "ic_round", "ic_transmit", "ic_feedback", "ic_upload", "decision",
                "alcor_max", "ic_outcome")
    air_part = "channel_server.roles.interference:IcAirPart"
    node_part = "node.roles.link:LinkPart"
    controller_part = "controller.roles.interference:IcPart"
    env = "controller.envs.interference:make_env"
    air_restartable = False
    report = "controller.evaluation.ic_run:report_run"

    def from_table(self, table: dict[str, Any], source: str) -> IcScenario:
        return ic_scenario_from_dict(table, source)

    def to_table(self, scenario: IcScenario) -> dict[str, Any]:
        return ic_scenario_to_dict(scenario, compact=True)

    def override(self, scenario: IcScenario, assignments: dict[str, Any]) -> IcScenario:
        return ic_override(scenario, assignments)

    def n_nodes(self, scenario: IcScenario) -> int:
        return scenario.k


INTERFERENCE = KINDS.register(Interference())
