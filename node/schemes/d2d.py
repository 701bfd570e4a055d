"""Paper 002's D2D underlay schemes (Li and Guo), declared once.

Every pair decides alone on its own slice (``none`` exchange); MAAC and NAAC act with
actors trained at the base station (``rrmbed d2d train``). Options read by the D2D modules:
``rule`` (how a pair decides, :mod:`node.pair_agent`), ``critic`` (what the centralized
critic sees: ``all`` pairs, MAAC; the ``neighbours``, NAAC; or the pair's ``own`` state and
action alone, the paper's independent actor-critic baseline, trained by the same learner
and acting the same way). The paper's DQN baseline (``dqn``, rule ``q-network``) is
independent too: one Q network per pair over its own observation, trained by the DQN
learner with a network per agent, each on its own replay (its D2D settings:
:mod:`controller.training.d2d_train`). The paper's uncoupled baselines, SLA and tabular Q-learning,
learn online in each pair from its own rewards alone (:mod:`node.pair_learning`; their
other options are its settings).
"""

from __future__ import annotations

from node.schemes.registry import Scheme, register

KIND = "d2d-underlay"
ACTOR = "node.pair_agent:PairAgent"
CHECK = "node.pair_agent:check_actors"

register(Scheme("maac", KIND, "none", "multi-agent actor-critic: critic over every pair",
                actor=ACTOR, weights="d2d-actors", learners=("maac",), needs_weights=True,
                weights_from="rrmbed d2d train", check=CHECK,
                options={"rule": "actor", "critic": "all"}, default_for=("train",),
                rank=0, color="tab:red"))
register(Scheme("naac", KIND, "none", "neighbour-agent actor-critic: critic over the "
                "lambda nearest pairs", actor=ACTOR, weights="d2d-actors",
                learners=("naac",), needs_weights=True, weights_from="rrmbed d2d train",
                check=CHECK, options={"rule": "actor", "critic": "neighbours"}, rank=1,
                color="tab:blue"))
register(Scheme("iac", KIND, "none", "independent actor-critic: each pair's actor and a "
                "critic over its own state and action only", actor=ACTOR,
                weights="d2d-actors", learners=("maac",), needs_weights=True,
                weights_from="rrmbed d2d train", check=CHECK,
                options={"rule": "actor", "critic": "own"}, rank=3, color="tab:brown"))
register(Scheme("dqn", KIND, "none", "independent deep Q network: each pair's own Q network "
                "over its own observation (Double DQN, own replay), greedy when executing",
                actor=ACTOR, weights="d2d-q-networks", learners=("dqn",), needs_weights=True,
                weights_from="rrmbed d2d train --scheme dqn",
                check="node.pair_agent:check_q_networks", options={"rule": "q-network"},
                rank=4, color="tab:olive"))
register(Scheme("q-learning", KIND, "none", "tabular Q-learning per pair on its quantized own "
                "observation (last action, own SINR estimate bin), learning online",
                actor=ACTOR, options={"rule": "tabular-q", "alpha": 0.1, "gamma": 0.95,
                                      "epsilon": 0.1,
                                      "sinr_edges_db": (0.0, 10.0, 20.0, 30.0)},
                rank=2, color="tab:orange"))
register(Scheme("sla", KIND, "none", "uncoupled stochastic learning automaton per pair "
                "(linear reward-inaction on its own reward), learning online", actor=ACTOR,
                options={"rule": "automaton", "step": 0.03}, rank=5, color="tab:purple"))
register(Scheme("best-estimate", KIND, "none", "the RB with the best own SINR estimate from "
                "last slot's interference, at the highest power", actor=ACTOR,
                options={"rule": "own-sinr"}, rank=8, color="tab:green"))
register(Scheme("random", KIND, "none", "a uniform random RB and power level", actor=ACTOR,
                options={"rule": "uniform"}, default_for=("run", "compose"), rank=9,
                color="tab:gray"))

# A learner outside the testbed: each pair uploads its observation, the controller hands
# them to the learner (controller.envs.network, the environments' network runner) and sends
# each pair the action it chose.
register(Scheme("external-learner", KIND, "central", "a learner outside the testbed decides (the "
                "PettingZoo environment over real processes: "
                "controller.envs.make_env(..., runner='network'))",
                options={"external": True, "tables": False}, rank=20))
