"""What a link node of the K-user interference channel acts with.

:class:`LinkActor` holds the scheme's rule: ``max`` (Pmax), ``uniform`` (a random power
from the link's own stream, per slot) or, for ``mpgnn``, the GNN's layers read from the
weights the controller deployed (:class:`node.mpgnn.Mpgnn`, numpy; no torch in a node).
"""

from __future__ import annotations

from typing import Any

from channel_server.interference import IcScenario
from node.mpgnn import Mpgnn, mlp_layers
from protocols.core import VariableSource
from protocols.seeding import rng_for


class LinkActor:
    def __init__(self, i: int, scenario: IcScenario, scheme: Any, seed: int,
                 source: VariableSource | None = None) -> None:
        self.i = i
        self.pmax_w = scenario.radio.pmax_w
        self.rule = scheme.options.get("rule", "gnn")
        self.rng = rng_for(seed, "interference", "random", i)
        self.source = source
        self.version = 0
        self.net: Mpgnn | None = None

    def update(self) -> None:
        """Take newer weights from the variable source (slot boundaries only)."""
        src = self.source
        if src is not None and src.version > self.version:
            self.net = Mpgnn.from_arrays(src.get_variables())
            self.version = src.version

    def power(self) -> float:
        """A rule's power for the slot, watts (not the GNN's: that takes the rounds)."""
        if self.rule == "max":
            return self.pmax_w
        return float(self.rng.uniform(0.0, self.pmax_w))


def check_mpgnn(scenario: IcScenario, arrays: dict[str, Any],
                facts: dict[str, Any] | None = None) -> None:
    """MPGNN weights run at any K: only their shapes must agree."""
    Mpgnn.from_arrays(arrays)


def check_mlp(scenario: IcScenario, arrays: dict[str, Any],
              facts: dict[str, Any] | None = None) -> None:
    """The MLP's input is every gain of K links: K^2 inputs and K outputs."""
    layers = mlp_layers(arrays)
    k = scenario.k
    n_in, n_out = layers[0][0].shape[0], layers[-1][0].shape[1]
    if (n_in, n_out) != (k * k, k):
        raise ValueError(f"the MLP weights take {n_in} gains and give {n_out} powers; this "
                         f"scenario has K = {k} links ({k * k} gains, {k} powers)")
