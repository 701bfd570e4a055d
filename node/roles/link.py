"""A link's part of the node role (K-user interference channel, paper 003): one
transmitter-receiver pair.

Each slot the air sends the link what its receiver measured (``G[j, i]`` for every
transmitter j) and its neighbours in the interference graph. Then, by the scheme's exchange:

* ``none`` (max-power, random): it transmits at once.
* ``central`` (mlp, wmmse, fp, optimum): it uploads its measurements to the controller
  (``csi_upload``) and transmits the power of the ``decision`` that comes back.
* ``neighbours`` (mpgnn): the GNN runs as rounds of messages. Before layer ``k`` every link
  sends each out-neighbour its state after layer ``k - 1`` (``ic_round``:
  :func:`node.mpgnn.message`), and computes layer ``k`` once it has every in-neighbour's
  round-``k`` message (:func:`node.mpgnn.node_layer`). A message lost on the backhaul
  (infinitely late) is left out of the MAX, and so is a neighbour that fell silent (after
  half a peer timeout of waiting, or at once when the controller says it is lost); the
  transmission says how many messages it decided without. The decision's chain latency is
  the slowest input of each layer plus its compute time, layer after layer:
  ``L x (link latency + compute)`` on a uniform backhaul. The air applies the deadline.

Messages can come early (a neighbour's round of a slot whose slice has not come yet, or of
a later layer): they wait in :attr:`LinkPart.rounds`.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from channel_server.interference import IcScenario
from node.link_agent import LinkActor
from node.mpgnn import MESSAGE_DIM, message, node_layer, phi
from node.schemes import SCHEMES
from protocols.ic_messages import IcRound, IcSlice, IcTransmit
from protocols.messages import CsiUpload, Decision, Message, Start
from protocols.names import CHANNEL_SERVER, CONTROLLER, index_of
from protocols.role import Outbox
from protocols.validate import Rejected, check_array, check_indices, check_number

if TYPE_CHECKING:
    from node.roles.node import NodeRole

log = logging.getLogger("rrmbed.link")


@dataclass
class Waiting:
    """A slot whose GNN rounds are under way."""

    phi_in: np.ndarray
    """phi(G[j, i]) for every transmitter j (its own gain at j = i)."""
    in_nbrs: list[int]
    out_nbrs: list[int]
    since: float
    """When its current layer began waiting (wall clock of the driver)."""
    layer: int = 1
    """The layer it computes next."""
    p_frac: float = 1.0
    """Its power fraction after layer ``layer - 1`` (full power before the first)."""
    chain_s: float = 0.0
    """Chain latency of that state."""
    missing: int = 0
    compute_s: float = 0.0
    """Compute time of its layers so far."""


@dataclass
class LinkStats:
    slots: int = 0
    rounds_sent: int = 0
    rounds_used: int = 0
    missing: int = 0
    """Neighbour messages decided without (lost or from a silent neighbour)."""
    late: int = 0
    """Rounds that came after their layer was computed without them."""
    forced: int = 0
    """Layers computed without waiting for a silent neighbour."""
    uploads: int = 0
    decisions: int = 0


def index_list(a: Any, name: str, k: int) -> list[int]:
    """A 1-D integer array of distinct link indices, as a list."""
    if not isinstance(a, np.ndarray) or a.ndim != 1 or a.dtype.kind not in "iu":
        raise Rejected(f"{name} is not a 1-D integer array")
    return check_indices(a.tolist(), name, k)


class LinkPart:
    def __init__(self, node: NodeRole, scenario: IcScenario, start: Start) -> None:
        self.node = node
        self.i = node.index
        self.scenario = scenario
        self.radio = scenario.radio
        self.n_slots = start.slots
        self.spec = SCHEMES.get(node.kind.name, start.scheme)
        self.actor = LinkActor(self.i, scenario, self.spec, start.seed, source=node.weights)
        self.waiting: dict[int, Waiting] = {}
        self.rounds: dict[tuple[int, int], dict[int, IcRound]] = {}
        """(slot, layer) -> sender -> its round, until the layer is computed."""
        self.done_upto = -1
        """Every slot up to this one is decided (its rounds are late)."""
        self.uploaded: set[int] = set()
        """Slots whose CSI is at the controller and whose decision is awaited."""
        self.in_nbrs: set[int] | None = None
        """The graph's in-neighbours (known from the first slice; the drop is fixed)."""
        self.gone: set[int] = set()
        """Neighbours declared lost: not waited for any more."""
        self.stats_ = LinkStats()

    # ----------------------------------------------------------------- messages

    def on_message(self, msg: Message, now: float, out: Outbox) -> bool:
        if isinstance(msg, IcSlice):
            self.on_slice(msg, now, out)
        elif isinstance(msg, IcRound):
            self.on_round(msg, now, out)
        elif isinstance(msg, Decision):
            self.on_decision(msg, out)
        else:
            return False
        return True

    def check_slot(self, n: int) -> None:
        if not 0 <= n < self.n_slots:
            raise Rejected(f"slot {n} outside the run's [0, {self.n_slots})")

    def on_slice(self, sl: IcSlice, now: float, out: Outbox) -> None:
        self.check_slot(sl.slot)
        if sl.slot <= self.done_upto or sl.slot in self.waiting or sl.slot in self.uploaded:
            raise Rejected("a second slice for the slot")
        k = self.scenario.k
        g = check_array(sl.gains_in, "gains_in", (k,), 0.0)
        nbrs = [index_list(sl.in_nbrs, "in_nbrs", k), index_list(sl.out_nbrs, "out_nbrs", k)]
        if self.i in nbrs[0] or self.i in nbrs[1]:
            raise Rejected("a link is not its own neighbour")
        self.in_nbrs = set(nbrs[0])
        self.stats_.slots += 1
        exchange = self.spec.exchange
        if exchange == "central":
            self.uploaded.add(sl.slot)
            self.stats_.uploads += 1
            out.send(CONTROLLER, CsiUpload, slot=sl.slot, gains=np.asarray(g, np.float64))
            return
        self.node.slot_boundary(self.actor)
        if exchange == "none":
            compute = self.compute_s(0.0)
            self.transmit(sl.slot, self.actor.power(), compute, compute, 0, out)
            return
        if self.actor.net is None:
            raise ValueError(f"{self.node.name}: scheme {self.spec.name!r} has no weights")
        f = phi(g, self.radio.pmax_w, self.radio.noise_w)
        w = Waiting(f, nbrs[0], nbrs[1], now)
        self.waiting[sl.slot] = w
        self.send_round(sl.slot, w, out)
        self.advance(sl.slot, now, out)

    def on_round(self, msg: IcRound, now: float, out: Outbox) -> None:
        if self.spec.exchange != "neighbours":
            raise Rejected(f"scheme {self.spec.name!r} exchanges no rounds")
        self.check_slot(msg.slot)
        if msg.slot > self.done_upto + 2:
            raise Rejected(f"a round of slot {msg.slot}, which cannot have begun")
        j = index_of(msg.sender)
        if self.in_nbrs is not None and j not in self.in_nbrs:
            raise Rejected(f"{msg.sender} is not an in-neighbour of {self.node.name}")
        net = self.actor.net
        n_layers = net.n_layers if net is not None else 1 << 16
        check_number(msg.layer, "layer", 1, n_layers)
        check_array(msg.power, "power", (1,), 0.0, 1.0)
        check_array(msg.features, "features", (MESSAGE_DIM - 1,), 0.0)
        w = self.waiting.get(msg.slot)
        if msg.slot <= self.done_upto and w is None or (w is not None and msg.layer < w.layer):
            self.stats_.late += 1  # its layer was computed without it
            return
        got = self.rounds.setdefault((msg.slot, msg.layer), {})
        if j in got:
            raise Rejected("a second round message for the slot and layer")
        got[j] = msg
        if w is not None:
            self.advance(msg.slot, now, out)

    def on_decision(self, msg: Decision, out: Outbox) -> None:
        if msg.slot not in self.uploaded:
            raise Rejected(f"a decision for slot {msg.slot}, which waits for none")
        p = check_array(msg.powers, "powers", (1,), 0.0, self.radio.pmax_w)
        check_number(msg.chain_latency_s, "chain latency", 0.0, allow_inf=True)
        self.uploaded.discard(msg.slot)
        self.stats_.decisions += 1
        self.transmit(msg.slot, float(p[0]), msg.chain_latency_s, 0.0, 0, out)

    # ----------------------------------------------------------------- the GNN's rounds

    def send_round(self, n: int, w: Waiting, out: Outbox) -> None:
        """Tell every out-neighbour the state that feeds layer ``w.layer``."""
        name = self.node.kind.node_name
        own = float(w.phi_in[self.i])
        for j in w.out_nbrs:
            x = message(w.p_frac, own, float(w.phi_in[j]))
            out.send(name(j), IcRound, slot=n, chain_latency_s=w.chain_s, layer=w.layer,
                     power=x[:1], features=x[1:])
        self.stats_.rounds_sent += len(w.out_nbrs)

    def advance(self, n: int, now: float, out: Outbox, force: bool = False) -> None:
        """Compute every layer of slot n whose messages are in (``force``: the current one
        without those still missing); transmit after the last."""
        w = self.waiting[n]
        net = self.actor.net
        assert net is not None
        while w.layer <= net.n_layers:
            got = self.rounds.get((n, w.layer), {})
            needed = [j for j in w.in_nbrs if j not in self.gone]
            if not force and not all(j in got for j in needed):
                return
            force = False
            used = [j for j in w.in_nbrs if j in got and math.isfinite(got[j].chain_latency_s)]
            w.missing += len(w.in_nbrs) - len(used)
            xs = np.array([np.concatenate([got[j].power, got[j].features]) for j in used],
                          dtype=np.float64).reshape(-1, MESSAGE_DIM)
            chain_in = max([got[j].chain_latency_s for j in used], default=w.chain_s)
            t0 = time.perf_counter()
            w.p_frac = node_layer(net, w.p_frac, float(w.phi_in[self.i]), xs,
                                  w.phi_in[used])
            compute = self.compute_s(time.perf_counter() - t0)
            w.chain_s = chain_in + compute
            w.compute_s += compute
            self.stats_.rounds_used += len(used)
            self.rounds.pop((n, w.layer), None)
            w.layer += 1
            w.since = now
            if w.layer <= net.n_layers:
                self.send_round(n, w, out)
        del self.waiting[n]
        self.stats_.missing += w.missing
        self.transmit(n, w.p_frac * self.radio.pmax_w, w.chain_s, w.compute_s, w.missing, out)

    def transmit(self, n: int, power_w: float, chain_s: float, compute_s: float,
                 missing: int, out: Outbox) -> None:
        self.done_upto = max(self.done_upto, n)
        out.send(CHANNEL_SERVER, IcTransmit, slot=n, chain_latency_s=chain_s,
                 power_w=min(max(power_w, 0.0), self.radio.pmax_w),
                 decision_latency_s=chain_s, compute_s=compute_s, missing=missing)
        self.node.telemetry.update(slots_done=n + 1)

    def compute_s(self, measured_s: float) -> float:
        timing = self.scenario.timing
        return measured_s if timing.compute_model == "measured" else timing.compute_s

    # ----------------------------------------------------------------- a neighbour vanished

    def quiet_s(self) -> float:
        return self.scenario.timing.peer_timeout_s / 2

    def decide_by(self) -> float | None:
        """The oldest waiting layer is computed without its missing messages half a peer
        timeout after it began waiting, whatever else came meanwhile."""
        return min(w.since for w in self.waiting.values()) + self.quiet_s() \
            if self.waiting else None

    def on_quiet(self, now: float, out: Outbox) -> bool:
        if not self.waiting:
            return False
        n = min(self.waiting, key=lambda s: self.waiting[s].since)
        log.error("%s: round %d of slot %d still misses neighbour messages after %.1f s; "
                  "computing it without them", self.node.name, self.waiting[n].layer, n,
                  self.quiet_s())
        self.stats_.forced += 1
        self.advance(n, now, out, force=True)
        return True

    def on_lost(self, node: int, now: float, out: Outbox) -> None:
        """A neighbour was declared lost: stop waiting for it."""
        self.gone.add(node)
        for n in sorted(self.waiting):
            self.advance(n, now, out)

    def stats(self) -> dict[str, Any]:
        s = self.stats_
        return {"slots": s.slots, "rounds_sent": s.rounds_sent, "rounds_used": s.rounds_used,
                "missing": s.missing, "late_rounds": s.late, "forced_layers": s.forced,
                "uploads": s.uploads, "decisions": s.decisions}
