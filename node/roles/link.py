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

Distributed ALCOR (scheme option ``alcor = "distributed"``, paper 004's Remark III.2): the
link keeps its own multiplier (:class:`node.alcor_online.OnlineAlcor` over itself), draws
its own user selection every slot, learns its rate from the air (``ic_feedback``) and, after
each iteration's last slot, floods ``c + lambda`` over the interference graph for
``alcor.max_rounds`` rounds (``alcor_max``); its next slot waits until the rounds are done
(a slice that comes meanwhile is held), so the new activation probability holds from the
slot after the iteration, as in the centralized variant. Switched off, a link uploads
``active = False`` (a central URA allocates among the others) and transmits nothing.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from channel_server.interference import IcScenario
from node.alcor_online import OnlineAlcor
from node.link_agent import LinkActor
from node.mpgnn import MESSAGE_DIM, message, node_layer, phi
from node.schemes import SCHEMES
from protocols.ic_messages import AlcorMax, IcFeedback, IcRound, IcSlice, IcTransmit, IcUpload
from protocols.messages import Decision, Message, Start
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
    active: bool = True
    """ALCOR switched it on (off: its gains are zero in the GNN, H_xi, and it sends 0 W)."""


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
    switched_off: int = 0
    """Slots ALCOR's user selection kept it off (distributed ALCOR)."""
    max_rounds: int = 0
    """Rounds of max-flooding it completed (distributed ALCOR)."""
    max_missing: int = 0
    """Max-flooding values it went on without (lost or from a silent neighbour)."""


@dataclass
class Flooding:
    """Distributed ALCOR: the max-flooding after an iteration, under way."""

    iteration: int
    known: float
    """The largest c + lambda learned so far (its own to begin with)."""
    since: float
    round: int = 1
    chain_s: float = 0.0


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
        self.uploaded: dict[int, bool] = {}
        """Slots whose CSI is at the controller and whose decision is awaited (and whether
        the link switched itself on)."""
        self.in_nbrs: set[int] | None = None
        """The graph's in-neighbours (known from the first slice; the drop is fixed)."""
        self.gone: set[int] = set()
        """Neighbours declared lost: not waited for any more."""
        self.stats_ = LinkStats()
        self.alcor = (OnlineAlcor(scenario.alcor, [self.i], start.seed)
                      if self.spec.options.get("alcor") == "distributed" else None)
        self.u_min: dict[int, float] = {}
        """Distributed ALCOR: each slot's demand, until its rate comes back."""
        self.out_nbrs: list[int] = []
        self.flooding: Flooding | None = None
        self.maxes: dict[tuple[int, int], dict[int, tuple[float, float]]] = {}
        """(iteration, round) -> sender -> (its value, its chain latency), until the round is
        done."""
        self.carry_s = 0.0
        """Chain latency the next slot's decision starts from: the flooding it waited for."""
        self.held: list[IcSlice] = []
        """Slices that came while the flooding was under way."""

    # ----------------------------------------------------------------- messages

    def on_message(self, msg: Message, now: float, out: Outbox) -> bool:
        if isinstance(msg, IcSlice):
            self.on_slice(msg, now, out)
        elif isinstance(msg, IcRound):
            self.on_round(msg, now, out)
        elif isinstance(msg, Decision):
            self.on_decision(msg, out)
        elif isinstance(msg, IcFeedback):
            self.on_feedback(msg, now, out)
        elif isinstance(msg, AlcorMax):
            self.on_max(msg, now, out)
        else:
            return False
        return True

    def check_slot(self, n: int) -> None:
        if not 0 <= n < self.n_slots:
            raise Rejected(f"slot {n} outside the run's [0, {self.n_slots})")

    def on_slice(self, sl: IcSlice, now: float, out: Outbox) -> None:
        self.check_slot(sl.slot)
        if sl.slot <= self.done_upto or sl.slot in self.waiting or sl.slot in self.uploaded \
                or any(h.slot == sl.slot for h in self.held):
            raise Rejected("a second slice for the slot")
        k = self.scenario.k
        g = check_array(sl.gains_in, "gains_in", (k,), 0.0)
        nbrs = [index_list(sl.in_nbrs, "in_nbrs", k), index_list(sl.out_nbrs, "out_nbrs", k)]
        if self.i in nbrs[0] or self.i in nbrs[1]:
            raise Rejected("a link is not its own neighbour")
        check_number(sl.u_min, "u_min", 0.0)
        self.in_nbrs, self.out_nbrs = set(nbrs[0]), nbrs[1]
        if self.flooding is not None:
            self.held.append(sl)  # the new activation probability is not known yet
            return
        self.stats_.slots += 1
        start_s, self.carry_s = self.carry_s, 0.0
        active = True
        if self.alcor is not None:
            self.u_min[sl.slot] = sl.u_min
            active = bool(self.alcor.draw()[0])
            self.stats_.switched_off += not active
        exchange = self.spec.exchange
        if exchange == "central":
            self.uploaded[sl.slot] = active
            self.stats_.uploads += 1
            out.send(CONTROLLER, IcUpload, slot=sl.slot, chain_latency_s=start_s,
                     gains=np.asarray(g, np.float64), active=active)
            return
        self.node.slot_boundary(self.actor)
        if exchange == "none":
            compute = self.compute_s(0.0)
            self.transmit(sl.slot, self.actor.power(), start_s + compute, compute, 0, out,
                          active)
            return
        if self.actor.net is None:
            raise ValueError(f"{self.node.name}: scheme {self.spec.name!r} has no weights")
        # switched off, the link does not exist in the channel the GNN solves (H_xi)
        f = phi(g, self.radio.pmax_w, self.radio.noise_w) if active else np.zeros(k)
        w = Waiting(f, nbrs[0], nbrs[1], now, chain_s=start_s, active=active)
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
        active = self.uploaded.pop(msg.slot)
        self.stats_.decisions += 1
        self.transmit(msg.slot, float(p[0]), msg.chain_latency_s, 0.0, 0, out, active)

    # ----------------------------------------------------------------- distributed ALCOR

    def on_feedback(self, msg: IcFeedback, now: float, out: Outbox) -> None:
        check_number(msg.rate, "rate", 0.0)
        if self.alcor is None:
            return  # only distributed ALCOR learns from its own rate
        u_min = self.u_min.pop(msg.slot, None)
        if u_min is None:
            raise Rejected(f"feedback for slot {msg.slot}, which it did not play")
        if self.alcor.add(msg.slot, np.array([u_min]), np.array([msg.rate])):
            self.flooding = Flooding(self.alcor.state.k, self.scenario.alcor.c
                                     + float(self.alcor.state.lam[0]), now)
            self.send_max(out)
            self.flood(now, out)

    def send_max(self, out: Outbox) -> None:
        f = self.flooding
        assert f is not None
        name = self.node.kind.node_name
        for j in self.out_nbrs:
            out.send(name(j), AlcorMax, slot=self.done_upto, chain_latency_s=f.chain_s,
                     iteration=f.iteration, round=f.round, value=f.known)

    def on_max(self, msg: AlcorMax, now: float, out: Outbox) -> None:
        if self.alcor is None:
            raise Rejected(f"scheme {self.spec.name!r} exchanges no ALCOR values")
        j = index_of(msg.sender)
        if self.in_nbrs is not None and j not in self.in_nbrs:
            raise Rejected(f"{msg.sender} is not an in-neighbour of {self.node.name}")
        check_number(msg.round, "round", 1, self.scenario.alcor.max_rounds)
        check_number(msg.value, "value", self.scenario.alcor.c)
        done = self.alcor.state.k
        check_number(msg.iteration, "iteration", done, done + 1)
        f = self.flooding
        if f is None and msg.iteration == done or f is not None and (
                msg.iteration, msg.round) < (f.iteration, f.round):
            return  # a round it went on without
        got = self.maxes.setdefault((msg.iteration, msg.round), {})
        if j in got:
            raise Rejected("a second value for the iteration and round")
        got[j] = (msg.value, msg.chain_latency_s)
        self.flood(now, out)

    def flood(self, now: float, out: Outbox, force: bool = False) -> None:
        """Finish every flooding round whose values are in (``force``: the current one
        without the missing); after the last, set kappa and play the held slices."""
        f = self.flooding
        while f is not None:
            got = self.maxes.get((f.iteration, f.round), {})
            needed = [j for j in self.in_nbrs or () if j not in self.gone]
            if not force and not all(j in got for j in needed):
                return
            force = False
            heard = [(v, c) for j, (v, c) in got.items() if j in needed and math.isfinite(c)]
            self.stats_.max_missing += len(needed) - len(heard)
            f.known = max([f.known, *(v for v, _ in heard)])
            f.chain_s = max([f.chain_s, *(c for _, c in heard)])
            self.maxes.pop((f.iteration, f.round), None)
            self.stats_.max_rounds += 1
            f.since = now
            if f.round < self.scenario.alcor.max_rounds:
                f.round += 1
                self.send_max(out)
                continue
            assert self.alcor is not None
            self.alcor.normalise(f.known)
            self.carry_s = f.chain_s  # the next slot's decision waited this long
            self.flooding = f = None
            held, self.held = self.held, []
            for sl in held:
                self.on_slice(sl, now, out)

    # ----------------------------------------------------------------- the GNN's rounds

    def send_round(self, n: int, w: Waiting, out: Outbox) -> None:
        """Tell every out-neighbour the state that feeds layer ``w.layer``."""
        name = self.node.kind.node_name
        own = float(w.phi_in[self.i])
        for j in w.out_nbrs:
            x = message(w.p_frac, own, float(w.phi_in[j]))
            out.send(name(j), IcRound, slot=n, chain_latency_s=w.chain_s, layer=w.layer,
                     power=x[:1], features=x[1:], active=w.active)
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
            # H_xi: no gain to or from a link that is off (the sender's, said in its message;
            # this link's own, if it is off: then the gain its neighbour measured from it)
            theirs = w.phi_in[used] * np.array([got[j].active for j in used], dtype=float)
            if not w.active:
                xs[:, 2] = 0.0
            chain_in = max([got[j].chain_latency_s for j in used], default=w.chain_s)
            t0 = time.perf_counter()
            w.p_frac = node_layer(net, w.p_frac, float(w.phi_in[self.i]), xs, theirs)
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
        self.transmit(n, w.p_frac * self.radio.pmax_w, w.chain_s, w.compute_s, w.missing, out,
                      w.active)

    def transmit(self, n: int, power_w: float, chain_s: float, compute_s: float,
                 missing: int, out: Outbox, active: bool = True) -> None:
        self.done_upto = max(self.done_upto, n)
        out.send(CHANNEL_SERVER, IcTransmit, slot=n, chain_latency_s=chain_s,
                 power_w=min(max(power_w, 0.0), self.radio.pmax_w) if active else 0.0,
                 decision_latency_s=chain_s, compute_s=compute_s, missing=missing,
                 active=active)
        self.node.telemetry.update(slots_done=n + 1)

    def compute_s(self, measured_s: float) -> float:
        timing = self.scenario.timing
        return measured_s if timing.compute_model == "measured" else timing.compute_s

    # ----------------------------------------------------------------- a neighbour vanished

    def quiet_s(self) -> float:
        return self.scenario.timing.peer_timeout_s / 2

    def decide_by(self) -> float | None:
        """The oldest waiting layer (or flooding round) is computed without its missing
        messages half a peer timeout after it began waiting, whatever else came meanwhile."""
        since = [w.since for w in self.waiting.values()]
        if self.flooding is not None:
            since.append(self.flooding.since)
        return min(since) + self.quiet_s() if since else None

    def on_quiet(self, now: float, out: Outbox) -> bool:
        if self.flooding is not None:
            log.error("%s: ALCOR flooding round %d still misses values after %.1f s; going "
                      "on without them", self.node.name, self.flooding.round, self.quiet_s())
            self.stats_.forced += 1
            self.flood(now, out, force=True)
            return True
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
        self.flood(now, out)

    def stats(self) -> dict[str, Any]:
        s = self.stats_
        return {"slots": s.slots, "rounds_sent": s.rounds_sent, "rounds_used": s.rounds_used,
                "missing": s.missing, "late_rounds": s.late, "forced_layers": s.forced,
                "uploads": s.uploads, "decisions": s.decisions,
                "switched_off": s.switched_off, "max_rounds": s.max_rounds,
                "max_missing": s.max_missing,
                **({"alcor_lambda": [[slot, lam[0]] for slot, lam in self.alcor.history]}
                   if self.alcor is not None else {})}
