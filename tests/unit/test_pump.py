"""The in-memory pump of the local runner, on tiny roles defined here, and one end-to-end
local run checked against the physics recomputed from its own logged channel.

The pump must deliver like the transport: in the order sent, encoded and metered at the
sender (framing included), through the receiver's emulated links; time is emulated (the
earliest timer fires when nothing is in flight), and a run that can no longer move raises
:class:`Deadlock` naming who is still waiting.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Hashable
from pathlib import Path

import numpy as np
import pytest

from channel_server.air import Air
from channel_server.kinds import resolve
from channel_server.rates import csi_slice, sum_rate_bps_hz
from controller.runners.local import run_local
from controller.runners.pump import Deadlock, MemoryHost, Pump
from node.agent import BsAgent, chain_priors
from protocols.codec import encode
from protocols.latency import LinkModel, LinkParams
from protocols.messages import Done, Error, Message, WeightsAck
from protocols.meter import FRAMING_LONG, FRAMING_SHORT, wire_size
from protocols.names import CONTROLLER
from protocols.role import Outbox, Role
from protocols.seeding import rng_for
from tests.helpers import S3

# --------------------------------------------------------------------------- tiny roles



class Toy(Role):
    """A role of these tests: messages between made-up processes, no sender screen (that
    is the rrmbed roles' business, tested in test_roles.py)."""

    def receive(self, msg: Message, now: float, out: Outbox) -> None:
        self.on_message(msg, now, out)

class Ping(Toy):
    """Sends ``n`` numbered messages of growing size to pong at start, waits for every echo."""

    name = "ping"

    def __init__(self, n: int = 6) -> None:
        self.n = n
        self.echoes: list[Message] = []

    def start(self, now: float, out: Outbox) -> None:
        for i in range(self.n):
            out.send("pong", Error, slot=i, text=f"{i}:" + "x" * (60 * i))

    def on_message(self, msg: Message, now: float, out: Outbox) -> None:
        self.echoes.append(msg)
        if len(self.echoes) == self.n:
            self.done = True


class Pong(Toy):
    """Echoes every message back to its sender (control plane), records what came, when."""

    name = "pong"

    def __init__(self, links: dict[str, LinkModel] | None = None) -> None:
        self.links = links
        self.got: list[tuple[float, Message]] = []

    def start(self, now: float, out: Outbox) -> None:
        if self.links:
            out.emulate(self.links, "fast")

    def on_message(self, msg: Message, now: float, out: Outbox) -> None:
        self.got.append((now, msg))
        if isinstance(msg, Error):
            out.send(msg.sender, Done, slot=msg.slot, slots=len(self.got))


class Clock(Toy):
    """Timers: b at 0.5 (which sets c at now + 3 and tells pong), a at 2, d cancelled."""

    name = "clock"

    def __init__(self) -> None:
        self.fired: list[tuple[Hashable, float]] = []

    def start(self, now: float, out: Outbox) -> None:
        out.timer("a", now + 2.0)
        out.timer("b", now + 0.5)
        out.timer("d", now + 1.0)
        out.cancel("d")

    def on_timer(self, key: Hashable, now: float, out: Outbox) -> None:
        self.fired.append((key, now))
        if key == "b":
            out.timer("c", now + 3.0)
            out.send("pong", Done, slot=0, slots=1)
        if key == "a":
            out.timer("late", now - 1.0)  # already due: fires at once, time stays
        if key == "c":
            self.done = True


class Waiter(Toy):
    """Sends one message and waits for an answer that never comes."""

    name = "waiter"

    def start(self, now: float, out: Outbox) -> None:
        out.send("sink", Done, slot=0, slots=0)


class Sink(Toy):
    """Reads one message and is done."""

    name = "sink"

    def on_message(self, msg: Message, now: float, out: Outbox) -> None:
        self.done = True


class Sender(Toy):
    """Sends the given (class, chain latency, payload) messages to pong at start."""

    name = "sender"

    def __init__(self, msgs: list[tuple[type[Message], float, dict[str, object]]]) -> None:
        self.msgs = msgs

    def start(self, now: float, out: Outbox) -> None:
        for cls, chain, payload in self.msgs:
            out.send("pong", cls, slot=0, chain_latency_s=chain, **payload)
        out.timer("end", now + 1.0)

    def on_timer(self, key: Hashable, now: float, out: Outbox) -> None:
        self.done = True


# --------------------------------------------------------------------------- the pump


def test_pump_delivers_in_order_and_meters_what_was_sent() -> None:
    ping, pong = Ping(6), Pong()
    pump = Pump([ping, pong])
    assert isinstance(ping.host, MemoryHost) and ping.host is pump.hosts["ping"]
    pump.run(ping)
    # FIFO: pong got ping's messages in the order sent, and ping the echoes in that order
    sent = [m for _, m in pong.got]
    assert [m.slot for m in sent] == list(range(6))
    assert [m.seq for m in sent] == [1, 2, 3, 4, 5, 6]
    assert all(m.sender == "ping" for m in sent)
    assert [m.slot for m in ping.echoes] == list(range(6))
    assert [m.slots for m in ping.echoes] == [1, 2, 3, 4, 5, 6]  # type: ignore[attr-defined]
    assert pump.delivered == 12
    # metering: every frame as encoded, ZeroMQ framing included (short and long frames)
    sizes = [len(encode(m)) for m in sent]
    assert min(sizes) <= 255 < max(sizes)
    expected = sum(wire_size(s) for s in sizes)
    assert expected == sum(s + (FRAMING_SHORT if s <= 255 else FRAMING_LONG) for s in sizes)
    totals = ping.host.meter.totals()
    assert totals == {("error", "control", "ping", "pong"): (6, expected)}
    assert pong.host.received[("error", "ping")] == [6, expected]
    echo_bytes = sum(wire_size(len(encode(m))) for m in ping.echoes)
    assert pong.host.meter.totals() == {("done", "control", "pong", "ping"): (6, echo_bytes)}
    per_slot = ping.host.meter.per_slot()
    assert per_slot[5]["control"] == (1, wire_size(sizes[5]))


def test_pump_timers_advance_emulated_time() -> None:
    clock, pong = Clock(), Pong()
    pump = Pump([clock, pong])
    pump.run(clock)
    assert clock.fired == [("b", 0.5), ("a", 2.0), ("late", 2.0), ("c", 3.5)]
    assert "d" not in [k for k, _ in clock.fired]  # cancelled
    # the message sent from timer b was delivered at b's time, before timer a
    assert [(t, m.KIND) for t, m in pong.got] == [(0.5, "done")]
    assert pump.now == 3.5


def test_pump_raises_deadlock_naming_the_waiting_roles() -> None:
    with pytest.raises(Deadlock, match=r"still running: waiter, pong"):
        Pump([Waiter(), Pong()]).run(Pong())  # a main role nobody drives: never done
    waiter, sink = Waiter(), Sink()
    with pytest.raises(Deadlock) as e:
        Pump([waiter, sink]).run(waiter)
    assert sink.done
    assert "waiter" in str(e.value) and "sink" not in str(e.value)


def test_pump_does_not_deliver_to_a_finished_role() -> None:
    class Twice(Waiter):
        def start(self, now: float, out: Outbox) -> None:
            out.send("sink", Done, slot=0, slots=0)
            out.send("sink", Done, slot=1, slots=0)
            out.timer("end", now + 1.0)

        def on_timer(self, key: Hashable, now: float, out: Outbox) -> None:
            self.done = True

    twice, sink = Twice(), Sink()
    pump = Pump([twice, sink])
    pump.run(twice)
    assert pump.delivered == 1
    assert sink.host.received == {("done", "waiter"): [1, wire_size(
        len(encode(Done(0, sender="waiter", seq=1, slot=0, sent_ns=2**62))))]}


def test_pump_links_add_latency_to_backhaul_messages_only() -> None:
    link = 0.004
    sender = Sender([(WeightsAck, 0.001, {"version": 1}),     # backhaul: crosses the link
                     (Done, 0.001, {"slots": 1}),              # control: no link
                     (WeightsAck, 0.0025, {"version": 2})])
    pong = Pong({"sender": LinkModel(LinkParams(latency_s=link), rng_for(1, "t"))})
    Pump([sender, pong]).run(sender)
    got = [(m.KIND, m.chain_latency_s) for _, m in pong.got]
    assert got == [("weights_ack", pytest.approx(0.001 + link)), ("done", 0.001),
                   ("weights_ack", pytest.approx(0.0025 + link))]


def test_pump_links_draw_jitter_from_the_links_own_stream() -> None:
    params = LinkParams(model="uniform", latency_s=0.001, jitter_s=0.003)
    sender = Sender([(WeightsAck, 0.0, {"version": v}) for v in range(5)])
    pong = Pong({"sender": LinkModel(params, rng_for(9, "link", "sender", "pong"))})
    Pump([sender, pong]).run(sender)
    twin = LinkModel(params, rng_for(9, "link", "sender", "pong"))
    expected = [twin.sample() for _ in range(5)]
    assert [m.chain_latency_s for _, m in pong.got] == pytest.approx(expected, abs=1e-15)
    assert len(set(expected)) == 5  # the draws differ: this is jitter, not a constant


def test_pump_lost_messages_arrive_at_once_infinitely_late() -> None:
    sender = Sender([(WeightsAck, 0.001, {"version": 1}), (Done, 0.001, {"slots": 1})])
    lossy = LinkParams(latency_s=0.002, loss_probability=1.0)
    pong = Pong({"sender": LinkModel(lossy, rng_for(1, "t"))})
    pump = Pump([sender, pong])
    pump.run(sender)
    (t0, lost), (_, control) = pong.got
    assert math.isinf(lost.chain_latency_s) and t0 == 0.0  # no waiting for a timeout
    assert control.chain_latency_s == 0.001
    assert pump.hosts["pong"].links.lost == 1


# --------------------------------------------------------------------------- end to end


def test_local_round_robin_run_recomputes_from_its_channel(tmp_path: Path) -> None:
    res = resolve(S3)
    sc = res.scenario
    radio, timing = sc.radio, sc.timing
    b_, k_ = radio.n_cells, radio.users_per_cell
    slots, seed = 30, 4
    out = tmp_path / "rr"
    summary = run_local(res, "round-robin", slots, seed, out, options={"log_csi": True})
    assert summary["errors"] == [] and summary["slots"] == slots

    gains = np.load(out / "gains.npy")
    assert gains.shape == (slots, b_, k_, b_)
    air = Air(radio, seed, episodes=1)  # the channel, independently
    for n in range(slots):
        np.testing.assert_array_equal(gains[n], (air.reset() if n == 0 else air.step())[0])

    with (out / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["slot"]) for r in rows] == list(range(slots))
    cols = [f"p_bs{i}_u{j}_w" for i in range(b_) for j in range(k_)]
    powers = np.array([[float(r[c]) for c in cols] for r in rows]).reshape(slots, b_, k_)
    assert np.all((powers > 0) & (powers <= radio.pmax_w))
    rates = np.array([float(r["sum_rate_bps_hz"]) for r in rows])
    np.testing.assert_allclose(rates, sum_rate_bps_hz(gains, powers, radio.noise_w),
                               rtol=1e-12)
    assert summary["sum_rate_bps_hz_mean"] == pytest.approx(rates.mean(), rel=1e-12)

    # the chain: B decisions of compute_s and B - 1 backhaul hops per slot, no miss
    link = sc.backhaul.link("node-0", "node-1").latency_s
    chain = b_ * timing.compute_s + (b_ - 1) * link
    assert chain < timing.deadline_s
    assert [float(r["decision_latency_ms"]) for r in rows] == \
        pytest.approx([chain * 1e3] * slots, abs=1e-9)
    assert [int(r["deadline_misses"]) for r in rows] == [0] * slots

    # the powers are the round-robin chain decided in the seeded order of each slot
    agents = [BsAgent(b, sc, "round-robin", seed) for b in range(b_)]
    order_rng = rng_for(seed, "order")
    forwards: dict[tuple[str, str], int] = {}
    for n in range(slots):
        order = [int(x) for x in order_rng.permutation(b_)]
        decided: dict[int, np.ndarray] = {}
        chain_in = 0.0
        for pos, b in enumerate(order):
            prior, chosen = chain_priors(decided, 1, b_, k_)
            d = agents[b].decide(csi_slice(gains[n], b)[None], np.array([chain_in]), prior,
                                 chosen)
            decided[b] = d.powers_w
            chain_in = float(d.latency_s[0]) + link
            if pos + 1 < b_:
                key = (f"node-{b}", f"node-{order[pos + 1]}")
                forwards[key] = forwards.get(key, 0) + 1
        expected = np.stack([decided[b][0] for b in range(b_)])
        np.testing.assert_allclose(powers[n], expected, rtol=1e-12)

    # the backhaul carried exactly those forwards
    with (out / "overhead.csv").open(newline="") as f:
        overhead = list(csv.DictReader(f))
    pf = {(r["sender"], r["receiver"]): int(r["messages"]) for r in overhead
          if r["kind"] == "power_forward"}
    assert pf == forwards
    assert sum(pf.values()) == slots * (b_ - 1)
    assert {r["kind"] for r in overhead if r["plane"] == "backhaul"} == {"power_forward"}
    assert CONTROLLER in {r["receiver"] for r in overhead}
