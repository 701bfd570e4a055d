"""Paper 000's vehicular schemes (Liang, Ye, Li), declared once.

Every vehicle hears its neighbours' resource-block choices of the last slot
(``neighbours`` exchange). Options read by the V2X modules: ``fingerprint`` (observations
carry the training iteration and epsilon, eq. 14), ``turns`` (one agent changes its action
per slot), ``learned`` (acts with trained Q networks).
"""

from __future__ import annotations

from node.schemes.registry import Scheme, register

KIND = "v2x"
ACTOR = "node.vehicle_agent:VehicleAgent"
CHECK = "node.vehicle_agent:check_q_scenario"

register(Scheme("marl-dqn", KIND, "neighbours", "multi-agent DQN with fingerprints",
                actor=ACTOR, weights="q-networks", learners=("dqn",), needs_weights=True,
                weights_from="rrmbed v2x train",
                check=CHECK,
                options={"fingerprint": True, "turns": False, "learned": True},
                default_for=("train",), rank=0))
register(Scheme("marl-dqn-nofp", KIND, "neighbours", "multi-agent DQN without fingerprints",
                actor=ACTOR, weights="q-networks", learners=("dqn",), needs_weights=True,
                weights_from="rrmbed v2x train",
                check=CHECK,
                options={"fingerprint": False, "turns": False, "learned": True}, rank=1))
register(Scheme("turn-dqn", KIND, "neighbours", "DQN agents taking turns (one changes per slot)",
                actor=ACTOR, weights="q-networks", learners=("dqn",), needs_weights=True,
                weights_from="rrmbed v2x train",
                check=CHECK,
                options={"fingerprint": False, "turns": True, "learned": True}, rank=2))
register(Scheme("random", KIND, "neighbours", "a uniform random RB and power level",
                actor=ACTOR, options={"fingerprint": False, "turns": False, "learned": False},
                rank=3))

# A learner outside the testbed: each vehicle uploads the observation its agent would act
# on, the controller hands them to the learner (controller.envs.network, the environments'
# network runner) and sends each vehicle the action it chose; the vehicles still tell their
# neighbours what they chose. The fingerprint in the observation: as the scenario says.
register(Scheme("external-learner", KIND, "neighbours", "a learner outside the testbed decides "
                "(the PettingZoo environment over real processes: "
                "controller.envs.make_env(..., runner='network'))", actor=ACTOR,
                options={"fingerprint": None, "turns": False, "learned": False,
                         "external": True, "tables": False}, rank=20))
