"""Paper 003's schemes on the K-user interference channel (Shen et al.), declared once.

``mpgnn`` runs the message-passing GNN as what the paper says it is, a distributed
algorithm: each layer is one round of messages between neighbouring link nodes over the
backhaul (``neighbours`` exchange, :mod:`node.roles.link`). ``mlp`` is the centralized
"learning to optimize" DNN: every link uploads what its receiver measured, the controller
decides all powers. WMMSE, FP and the certified optimum decide centrally too (the
optimum only up to 6 links); max-power and random need no message.
"""

from __future__ import annotations

from node.schemes.registry import Scheme, register

KIND = "interference"
ACTOR = "node.link_agent:LinkActor"
CENTRAL = "controller.baselines.ic:IcCentral"

register(Scheme("mpgnn", KIND, "neighbours", "message-passing GNN, one round of messages "
                "between neighbouring links per layer", actor=ACTOR, weights="ic-mpgnn",
                learners=("mpgnn",), needs_weights=True, weights_from="rrmbed gnn train",
                check="node.link_agent:check_mpgnn", rank=0, color="tab:red"))
register(Scheme("mlp", KIND, "central", "centralized MLP over every link's gains (all CSI "
                "uploaded)", central=CENTRAL, weights="ic-mlp", learners=("ic-mlp",),
                needs_weights=True, weights_from="rrmbed gnn train --arch mlp",
                check="node.link_agent:check_mlp", rank=1, color="tab:blue"))
register(Scheme("wmmse", KIND, "central", "WMMSE at the controller from full power",
                central=CENTRAL, batch="controller.baselines.ic:ic_wmmse", rank=2,
                color="tab:green", default_for=("run", "compose")))
register(Scheme("fp", KIND, "central", "fractional programming at the controller",
                central=CENTRAL, batch="controller.baselines.ic:ic_fp", rank=3,
                color="tab:olive"))
register(Scheme("optimum", KIND, "central", "certified global optimum (branch and bound, "
                "K <= 6)", central=CENTRAL, batch="controller.baselines.ic:ic_optimum",
                options={"max_links": 6}, rank=4, color="black"))
register(Scheme("max-power", KIND, "none", "every link at Pmax", actor=ACTOR,
                batch="controller.baselines.ic:ic_max_power", options={"rule": "max"},
                rank=8, color="tab:orange"))
register(Scheme("random", KIND, "none", "a uniform random power in [0, Pmax] per slot",
                actor=ACTOR, batch="controller.baselines.ic:ic_random",
                options={"rule": "uniform"}, rank=9, color="tab:gray"))

# ALCOR (paper 004): time sharing over a central URA; the multipliers at the controller
# (``central``) or at each link, spread by max-flooding (``distributed``)
for ura, batch in (("wmmse", "ic_wmmse"), ("fp", "ic_fp")):
    register(Scheme(f"alcor-{ura}", KIND, "central", f"ALCOR over {ura.upper()}: the "
                    "controller keeps every link's multiplier, switches links off at random "
                    "and runs the URA among the others", central=CENTRAL,
                    batch=f"controller.baselines.ic:{batch}", options={"alcor": "central"},
                    rank=10))
register(Scheme("alcor-mlp", KIND, "central", "ALCOR over the centralized MLP (multipliers "
                "at the controller; the MLP's weights)", central=CENTRAL, weights="ic-mlp",
                needs_weights=True, weights_from="rrmbed gnn train --arch mlp",
                check="node.link_agent:check_mlp", options={"alcor": "central"}, rank=11))
register(Scheme("alcor-wmmse-dist", KIND, "central", "distributed ALCOR over WMMSE: each "
                "link keeps its own multiplier and switches itself off; max_l (c + lambda_l) "
                "by max-flooding over the backhaul", central=CENTRAL,
                batch="controller.baselines.ic:ic_wmmse", options={"alcor": "distributed"},
                rank=12))
register(Scheme("alcor-max-power", KIND, "none", "distributed ALCOR over max power: no "
                "message but the max-flooding", actor=ACTOR,
                batch="controller.baselines.ic:ic_max_power",
                options={"rule": "max", "alcor": "distributed"}, rank=13))
register(Scheme("alcor-mpgnn", KIND, "neighbours", "distributed ALCOR over the MPGNN: each "
                "link keeps its own multiplier; a link switched off takes part in the rounds "
                "with zero gains (the GNN on H_xi) and sends 0 W", actor=ACTOR,
                weights="ic-mpgnn", needs_weights=True, weights_from="rrmbed gnn train",
                check="node.link_agent:check_mpgnn", options={"alcor": "distributed"},
                rank=14))

# A learner outside the testbed: every link uploads what its receiver measured, the
# controller hands the whole channel to the learner (controller.envs.network, the
# environments' network runner) and sends back the powers it chose.
register(Scheme("external-learner", KIND, "central", "a learner outside the testbed decides (the "
                "PettingZoo environment over real processes: "
                "controller.envs.make_env(..., runner='network'))", central=CENTRAL,
                options={"external": True, "tables": False}, rank=20))
