"""A link node of the interference kind, driven message by message (the real NodeRole and
LinkPart on an in-memory host): the GNN's rounds on a hand-made neighbourhood against
node.mpgnn computed by hand, a silent neighbour left out after the quiet time, and forged or
malformed rounds refused by reason while the link goes on."""

from __future__ import annotations

import itertools
import time
from typing import Any

import numpy as np
import pytest

from channel_server.kinds import resolve
from controller.runners.pump import MemoryHost
from node.mpgnn import message, node_layer, phi
from node.roles.node import NodeRole
from protocols.ic_messages import IcRound, IcSlice, IcTransmit
from protocols.messages import Message, Start, Weights
from protocols.names import CHANNEL_SERVER, CONTROLLER
from protocols.role import Outbox
from tests.helpers import SCENARIOS, mpgnn_weights_file

RES = resolve(SCENARIOS / "ic-geo-k20.toml", {"radio.n_links": 4})
R = RES.scenario.radio
_seq = itertools.count(1)


def mk(cls: type[Message], sender: str, slot: int = 0, chain: float = 0.0,
       **payload: Any) -> Any:
    return cls(sender=sender, seq=next(_seq), slot=slot, sent_ns=time.time_ns(),
               chain_latency_s=chain, **payload)


def deliver(role: NodeRole, msg: Message, now: float = 0.0) -> Outbox:
    out = Outbox()
    role.receive(msg, now, out)
    return out


def link(tmp: Any, n_layers: int = 2) -> tuple[NodeRole, Any]:
    """link-0 of an mpgnn run, started and holding the GNN's weights."""
    path, net = mpgnn_weights_file(tmp, n_layers)
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files if not k.startswith("__")}
    role = NodeRole("link", 0)
    role.host = MemoryHost("link-0")
    role.start(0.0, Outbox())
    directory = {CHANNEL_SERVER: "inproc://cs", **{f"link-{i}": f"inproc://l{i}"
                                                   for i in range(1, 4)}}
    deliver(role, mk(Start, CONTROLLER, slot=-1, scheme="mpgnn", slots=10, seed=1,
                     config_toml=RES.toml(), options={"directory": directory}))
    deliver(role, mk(Weights, CONTROLLER, slot=-1, version=1, names=list(arrays),
                     arrays=list(arrays.values())))
    return role, net


GAINS = np.array([3e-9, 2e-11, 5e-12, 1e-10])
"""G[j, 0]: what link-0's receiver measures of each transmitter (its own at j = 0)."""


def slice_(slot: int = 0) -> IcSlice:
    # hand-made neighbourhood: link-0 hears links 1 and 2, and tells link 1 only
    return mk(IcSlice, CHANNEL_SERVER, slot=slot, gains_in=GAINS,
              in_nbrs=np.array([1, 2]), out_nbrs=np.array([1]), u_min=0.0)


def round_(j: int, layer: int, p: float, own: float, mine: float, slot: int = 0,
           chain: float = 0.001) -> IcRound:
    return mk(IcRound, f"link-{j}", slot=slot, chain=chain, layer=layer,
              power=np.array([p]), features=np.array([own, mine]), active=True)


def test_rounds_on_a_hand_made_neighbourhood(tmp_path: Any) -> None:
    role, net = link(tmp_path, n_layers=2)
    f = phi(GAINS, R.pmax_w, R.noise_w)
    out = deliver(role, slice_())
    first = [s for s in out.sends if s.cls is IcRound]
    assert [s.dest for s in first] == ["link-1"]  # its out-neighbour only
    assert first[0].payload["layer"] == 1
    sent = np.concatenate([first[0].payload["power"], first[0].payload["features"]])
    assert sent == pytest.approx(message(1.0, f[0], f[1]))  # what link-1 cannot measure
    # layer 1 from the neighbours' messages (their own gains and what they measure of us)
    theirs = {1: (1.0, 4.0, 2.5), 2: (1.0, 3.0, 0.5)}
    assert not deliver(role, round_(1, 1, *theirs[1])).sends  # still waiting for link-2
    out = deliver(role, round_(2, 1, *theirs[2]))
    p1 = node_layer(net, 1.0, f[0], np.array([theirs[1], theirs[2]]), f[[1, 2]])
    second = [s for s in out.sends if s.cls is IcRound]
    assert [s.dest for s in second] == ["link-1"] and second[0].payload["layer"] == 2
    assert second[0].payload["power"][0] == pytest.approx(p1)
    assert second[0].chain_latency_s == pytest.approx(0.001 + RES.scenario.timing.compute_s)
    # layer 2, then the transmission
    later = {1: (0.3, 4.0, 2.5), 2: (0.9, 3.0, 0.5)}
    deliver(role, round_(1, 2, *later[1]))
    out = deliver(role, round_(2, 2, *later[2], chain=0.004))
    p2 = node_layer(net, p1, f[0], np.array([later[1], later[2]]), f[[1, 2]])
    tx = [s for s in out.sends if s.cls is IcTransmit]
    assert len(tx) == 1 and tx[0].payload["power_w"] == pytest.approx(p2 * R.pmax_w)
    assert tx[0].payload["decision_latency_s"] == pytest.approx(
        0.004 + RES.scenario.timing.compute_s)
    assert tx[0].payload["missing"] == 0 and role.rejected == {}


def test_a_silent_neighbour_is_left_out_after_the_quiet_time(tmp_path: Any) -> None:
    role, net = link(tmp_path, n_layers=1)
    f = phi(GAINS, R.pmax_w, R.noise_w)
    deliver(role, slice_(), now=10.0)
    assert not deliver(role, round_(1, 1, 1.0, 4.0, 2.5), now=10.1).sends
    part: Any = role.part
    due = part.decide_by()
    assert due == pytest.approx(10.0 + RES.scenario.timing.peer_timeout_s / 2)
    out = Outbox()
    assert part.on_quiet(due, out)
    tx = [s for s in out.sends if s.cls is IcTransmit]
    want = node_layer(net, 1.0, f[0], np.array([(1.0, 4.0, 2.5)]), f[[1]])
    assert tx[0].payload["power_w"] == pytest.approx(want * R.pmax_w)
    assert tx[0].payload["missing"] == 1
    # its round, coming after the layer was computed without it, is late, not an error
    assert not deliver(role, round_(2, 1, 1.0, 3.0, 0.5), now=12.0).sends
    assert part.stats()["late_rounds"] == 1 and role.rejected == {}


def test_forged_and_malformed_rounds_are_refused_by_reason(tmp_path: Any) -> None:
    role, _ = link(tmp_path, n_layers=2)
    deliver(role, slice_())
    bad = [
        round_(3, 1, 1.0, 4.0, 2.5),                        # link-3 is no in-neighbour
        round_(1, 3, 1.0, 4.0, 2.5),                        # a layer the GNN does not have
        round_(1, 1, 1.5, 4.0, 2.5),                        # a power fraction above 1
        round_(1, 1, 1.0, -4.0, 2.5),                       # a negative gain feature
        round_(1, 1, 1.0, 4.0, 2.5, slot=7),                # a slot that cannot have begun
        mk(IcRound, CHANNEL_SERVER, layer=1, power=np.array([1.0]),
           features=np.array([1.0, 1.0]), active=True),     # only links send rounds
    ]
    for msg in bad:
        assert not deliver(role, msg).sends
    reasons = " | ".join(role.rejected)
    for text in ("not an in-neighbour", "layer", "power outside", "features outside",
                 "cannot have begun", "only node may send it"):
        assert text in reasons, reasons
    assert sum(role.rejected.values()) == len(bad)
    # the link goes on: the genuine rounds still complete its layer
    deliver(role, round_(1, 1, 1.0, 4.0, 2.5))
    out = deliver(role, round_(2, 1, 1.0, 3.0, 0.5))
    assert [s.payload["layer"] for s in out.sends if s.cls is IcRound] == [2]
    deliver(role, round_(1, 1, 1.0, 4.0, 2.5))  # a second round of a layer done: late
    assert role.part.stats()["late_rounds"] == 1  # type: ignore[union-attr]
