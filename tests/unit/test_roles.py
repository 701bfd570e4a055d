"""The sans-IO roles driven directly: no sockets, no pump.

Each test builds one role (channel server, base-station node, controller), gives it a real
in-memory host (:class:`controller.runners.pump.MemoryHost`), calls ``start`` /
``on_message`` / ``on_timer`` with hand-made messages and checks what lands in the
:class:`~protocols.role.Outbox`. Numbers are checked against independent computations: the
channel from a separately built :class:`channel_server.air.Air`, rates from
:mod:`channel_server.rates`, decisions from a separately built :class:`node.agent.BsAgent`,
central powers from :func:`controller.baselines.wmmse.wmmse`, latencies from the scenario's
timing and backhaul.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections.abc import Hashable
from typing import Any

import numpy as np
import pytest

from channel_server.air import Air
from channel_server.kinds import Resolved, resolve
from channel_server.rates import csi_slice, rates_bps_hz, sinr, sum_rate_bps_hz
from channel_server.roles.air import TRAINING_PAUSE_S, ChannelServerRole
from controller.baselines.wmmse import WMMSEConfig, wmmse
from controller.roles.controller import ControllerRole
from controller.roles.external import EXTERNAL, EXTERNAL_POLL_S, ExternalSlots
from controller.runners.pump import MemoryHost
from node.agent import BsAgent, chain_priors, node_policy, policy_with_weights
from node.observation import obs_round_robin, round_robin_dims
from node.roles.node import NodeRole
from protocols.errors import MAX_REASONS
from protocols.latency import LinkModel, LinkParams
from protocols.messages import (
    AirRestart,
    CsiSlice,
    CsiUpload,
    Decision,
    Done,
    Experience,
    Heartbeat,
    Hello,
    Join,
    Measurement,
    Message,
    ObsUpload,
    PowerForward,
    Report,
    Restarted,
    Resume,
    SlotOutcome,
    Start,
    Stop,
    Transmit,
    Weights,
    WeightsAck,
    WeightsRequest,
)
from protocols.names import CHANNEL_SERVER, CONTROLLER
from protocols.role import JOIN_TIMEOUT_S as START_TIMEOUT_S
from protocols.role import REATTACH_WAIT_S, Outbox, Role, Send
from protocols.seeding import rng_for
from tests.helpers import S3, SV

RES = resolve(S3)
SC = RES.scenario
RADIO, TIMING = SC.radio, SC.timing
B, K = RADIO.n_cells, RADIO.users_per_cell
NODES = [f"node-{b}" for b in range(B)]
SEED = 11
DIRECTORY = {CHANNEL_SERVER: "inproc://channel-server",
             **{n: f"inproc://{n}" for n in NODES}}
"""What the controller puts in Start: every process that said Hello, not itself."""

_seq = itertools.count(1)


# --------------------------------------------------------------------------- harness


def mk(cls: type[Message], sender: str, slot: int = 0, chain: float = 0.0,
       **payload: Any) -> Any:
    """A message as a peer would have sent it (header filled by hand)."""
    return cls(sender=sender, seq=next(_seq), slot=slot, sent_ns=time.time_ns(),
               chain_latency_s=chain, **payload)


def hosted(role: Role, name: str | None = None) -> Any:
    role.host = MemoryHost(name or role.name)
    return role


def start(role: Role, now: float = 0.0) -> Outbox:
    out = Outbox()
    role.start(now, out)
    return out


def deliver(role: Role, msg: Message, now: float = 0.0) -> Outbox:
    out = Outbox()
    role.receive(msg, now, out)
    return out


def fire(role: Role, key: Hashable, now: float) -> Outbox:
    out = Outbox()
    role.on_timer(key, now, out)
    return out


def sends(out: Outbox, cls: type[Message] | None = None, dest: str | None = None) -> list[Send]:
    return [s for s in out.sends
            if (cls is None or s.cls is cls) and (dest is None or s.dest == dest)]


def one(out: Outbox, cls: type[Message], dest: str) -> Send:
    got = sends(out, cls, dest)
    assert len(got) == 1, f"expected one {cls.__name__} to {dest}, got {out.sends}"
    return got[0]


def start_msg(scheme: str, slots: int = 5, options: dict[str, Any] | None = None,
              resolved: Resolved = RES, seed: int = SEED) -> Start:
    return mk(Start, CONTROLLER, slot=-1, scheme=scheme, slots=slots, seed=seed,
              config_toml=resolved.toml(),
              options={"directory": dict(DIRECTORY), **(options or {})})


def orders(seed: int, slots: int) -> list[list[int]]:
    """The round-robin order of each slot, drawn as the scenario says: the run's seeded
    "order" stream, one permutation of the BSs per slot."""
    rng = rng_for(seed, "order")
    return [[int(x) for x in rng.permutation(B)] for _ in range(slots)]


def channel(seed: int, slots: int, resolved: Resolved = RES) -> list[np.ndarray]:
    """The full channel (B, K, B) of each slot, from an independently built Air."""
    air = Air(resolved.scenario.radio, seed, episodes=1)
    return [(air.reset() if n == 0 else air.step())[0].copy() for n in range(slots)]


# =========================================================================== channel server


def air_role(scheme: str = "max-power", slots: int = 5, options: dict[str, Any] | None = None,
             resolved: Resolved = RES, now: float = 0.0) -> tuple[ChannelServerRole, Outbox]:
    role = hosted(ChannelServerRole())
    start(role, now)
    return role, deliver(role, start_msg(scheme, slots, options, resolved), now)


def transmit(sender: str, slot: int, powers: np.ndarray, chain: float = 0.002,
             missed: bool = False) -> Transmit:
    return mk(Transmit, sender, slot=slot, chain=chain, powers=powers, rb=-1, missed=missed,
              decision_latency_s=chain, compute_s=TIMING.compute_s)


def test_channel_server_says_hello_with_its_address() -> None:
    role = hosted(ChannelServerRole())
    out = start(role, now=3.0)
    hello = one(out, Hello, CONTROLLER)
    assert hello.payload["host"] == role.host.address == "inproc://channel-server"
    assert hello.payload["pid"] == role.host.pid
    assert hello.payload["role"] == "channel-server" and hello.slot == -1
    assert out.timers == {"start": 3.0 + START_TIMEOUT_S}
    assert sends(out) == [hello]


def test_channel_server_sends_each_node_only_its_own_slice() -> None:
    role, out = air_role(now=2.0)
    gains = channel(SEED, 1)[0]
    order = orders(SEED, 1)[0]
    assert sorted(out.connects) == sorted((n, DIRECTORY[n]) for n in NODES)
    slices = sends(out, CsiSlice)
    assert [s.dest for s in slices] == NODES  # one each, nothing else on the air
    assert len(out.sends) == B
    for b, s in enumerate(slices):
        assert s.slot == 0
        np.testing.assert_array_equal(s.payload["gains"], csi_slice(gains, b))
        assert s.payload["gains"].shape == (K, B)
        assert s.payload["order"] == order
        assert s.payload["active"] == list(range(B))
    # no node's slice equals another's (each is its own view of the channel)
    assert not np.array_equal(slices[0].payload["gains"], slices[1].payload["gains"])
    assert out.timers == {"start": None, "collect": 2.0 + TIMING.peer_timeout_s}


def test_channel_server_ends_the_slot_only_when_every_node_transmitted() -> None:
    role, _ = air_role(slots=3)
    gains = channel(SEED, 2)
    rng = np.random.default_rng(0)
    powers = rng.uniform(0.0, RADIO.pmax_w, size=(B, K))
    lat = [0.0021, 0.0035, 0.0007]
    for b in range(B - 1):
        out = deliver(role, transmit(NODES[b], 0, powers[b], lat[b]), now=0.1)
        assert out.sends == [] and out.timers == {}
    out = deliver(role, transmit(NODES[-1], 0, powers[-1], lat[-1]), now=0.2)
    rates = rates_bps_hz(gains[0], powers, RADIO.noise_w)
    sinrs = sinr(gains[0], powers, RADIO.noise_w)
    for b in range(B):
        m = one(out, Measurement, NODES[b])
        assert m.slot == 0
        np.testing.assert_allclose(m.payload["rates"], rates[b], rtol=1e-12)
        np.testing.assert_allclose(m.payload["sinr"], sinrs[b], rtol=1e-12)
    outcome = one(out, SlotOutcome, CONTROLLER)
    assert outcome.slot == 0
    assert outcome.payload["sum_rate_bps_hz"] == pytest.approx(
        float(sum_rate_bps_hz(gains[0], powers, RADIO.noise_w)), rel=1e-12)
    assert outcome.payload["sum_rate_bps_hz"] == pytest.approx(float(rates.sum()), rel=1e-12)
    np.testing.assert_array_equal(outcome.payload["powers"], powers)
    np.testing.assert_array_equal(outcome.payload["decision_latency_s"], lat)
    assert outcome.payload["lost"] == []
    assert not outcome.payload["missed"].any()
    # feedback before the next slot's slices, and the next slot is the next channel
    kinds = [s.cls for s in out.sends]
    assert kinds == [Measurement] * B + [SlotOutcome] + [CsiSlice] * B
    for b, s in enumerate(sends(out, CsiSlice)):
        assert s.slot == 1
        np.testing.assert_array_equal(s.payload["gains"], csi_slice(gains[1], b))
        assert s.payload["order"] == orders(SEED, 2)[1]
    assert out.timers["collect"] == pytest.approx(0.2 + TIMING.peer_timeout_s)


def test_channel_server_ignores_unknown_senders_and_wrong_slots() -> None:
    role, _ = air_role(slots=3)
    p = np.ones(K)
    for msg in (transmit("node-7", 0, p),      # no such node
                transmit("node-x", 0, p),      # not a node name at all
                transmit(NODES[0], 1, p),      # a future slot
                transmit(NODES[1], -1, p)):    # the set-up slot
        assert deliver(role, msg).sends == []
    assert role.got == {} and role.n == 0
    # the real transmissions of slot 0 still end it
    for b in range(B - 1):
        assert deliver(role, transmit(NODES[b], 0, p)).sends == []
    out = deliver(role, transmit(NODES[-1], 0, p))
    assert len(sends(out, SlotOutcome)) == 1 and role.n == 1


def test_channel_server_ignores_a_transmit_from_a_name_without_an_index() -> None:
    """'No message can kill a process': a transmit whose sender is the controller (or any
    name without '-<index>') is dropped, like one from an unknown node; so is one from a
    process of another role whose name ends in a node's index."""
    role, _ = air_role(slots=3)
    for sender in (CONTROLLER, "stranger", "vehicle-1"):
        out = deliver(role, transmit(sender, 0, np.ones(K)))
        assert out.sends == []
    assert role.got == {} and not role.done


def test_channel_server_drops_a_transmit_of_the_wrong_shape() -> None:
    """'Every role validates what it receives (shapes, finite values)': powers of the wrong
    shape (or not finite) are dropped, and the slot goes on with the good transmissions."""
    role, _ = air_role(slots=3)
    for b in range(B - 1):
        deliver(role, transmit(NODES[b], 0, np.ones(K)))
    bad = transmit(NODES[-1], 0, np.ones(K + 3))
    out = deliver(role, bad)  # must neither raise nor count as node-2's transmission
    assert sends(out, SlotOutcome) == []
    out = deliver(role, transmit(NODES[-1], 0, np.ones(K)))
    assert len(sends(out, SlotOutcome)) == 1


def test_channel_server_declares_a_silent_node_lost_and_a_join_brings_it_back() -> None:
    role, _ = air_role(slots=6)
    gains = channel(SEED, 6)
    order = orders(SEED, 6)
    p = np.full((B, K), 2.0)
    # slot 0: node-2 stays silent until the collect timer
    for b in (0, 1):
        deliver(role, transmit(NODES[b], 0, p[b]), now=0.5)
    out = fire(role, "collect", now=TIMING.peer_timeout_s)
    outcome = one(out, SlotOutcome, CONTROLLER)
    assert outcome.payload["lost"] == [2]
    assert math.isinf(outcome.payload["decision_latency_s"][2])
    np.testing.assert_array_equal(outcome.payload["powers"][2], np.zeros(K))
    heard = p.copy()
    heard[2] = 0.0
    assert outcome.payload["sum_rate_bps_hz"] == pytest.approx(
        float(sum_rate_bps_hz(gains[0], heard, RADIO.noise_w)), rel=1e-12)
    assert [s.dest for s in sends(out, Measurement)] == NODES[:2]
    # slot 1: node-2 gets no slice; the order leaves it out
    assert [s.dest for s in sends(out, CsiSlice)] == NODES[:2]
    for s in sends(out, CsiSlice):
        assert s.payload["active"] == [0, 1]
        assert s.payload["order"] == [b for b in order[1] if b != 2]
    # a transmit from the lost node is not waited for nor used
    assert deliver(role, transmit(NODES[2], 1, p[2])).sends == []
    deliver(role, transmit(NODES[0], 1, p[0]))
    out = deliver(role, transmit(NODES[1], 1, p[1]))
    outcome = one(out, SlotOutcome, CONTROLLER)
    assert outcome.slot == 1 and outcome.payload["lost"] == [2]
    assert outcome.payload["sum_rate_bps_hz"] == pytest.approx(
        float(sum_rate_bps_hz(gains[1], heard, RADIO.noise_w)), rel=1e-12)
    # node-2 rejoins during slot 2: connected at once, served from slot 3
    join = mk(Join, CONTROLLER, slot=2, node=2, address="inproc://node-2-again")
    out = deliver(role, join)
    assert out.connects == [("node-2", "inproc://node-2-again")] and out.sends == []
    deliver(role, transmit(NODES[0], 2, p[0]))
    out = deliver(role, transmit(NODES[1], 2, p[1]))
    assert one(out, SlotOutcome, CONTROLLER).payload["lost"] == [2]
    assert [s.dest for s in sends(out, CsiSlice)] == NODES
    slice2 = one(out, CsiSlice, NODES[2])
    assert slice2.slot == 3
    np.testing.assert_array_equal(slice2.payload["gains"], csi_slice(gains[3], 2))
    assert slice2.payload["order"] == order[3]
    for b in range(B):
        out = deliver(role, transmit(NODES[b], 3, p[b]))
    outcome = one(out, SlotOutcome, CONTROLLER)
    assert outcome.payload["lost"] == []
    assert outcome.payload["sum_rate_bps_hz"] == pytest.approx(
        float(sum_rate_bps_hz(gains[3], p, RADIO.noise_w)), rel=1e-12)


def test_channel_server_survives_every_node_lost_in_a_long_run() -> None:
    """All nodes silent: the remaining slots run without anyone (rates 0) up to Done, for
    any number of slots (no recursion per slot)."""
    slots = 3000
    role, _ = air_role(slots=slots)
    out = fire(role, "collect", now=TIMING.peer_timeout_s)
    outcomes = sends(out, SlotOutcome)
    assert len(outcomes) == slots
    assert all(o.payload["lost"] == [0, 1, 2] for o in outcomes)
    assert one(out, Done, CONTROLLER).payload["slots"] == slots


def test_channel_server_pauses_for_training_until_resume() -> None:
    role, _ = air_role(slots=5, options={"train": {"pause_every": 2}})
    p = np.ones(K)

    def slot(n: int, now: float) -> Outbox:
        for b in range(B - 1):
            deliver(role, transmit(NODES[b], n, p), now)
        return deliver(role, transmit(NODES[-1], n, p), now)

    assert len(sends(slot(0, 1.0), CsiSlice)) == B  # slot 1 starts
    out = slot(1, 2.0)  # slot 2 would be a multiple of pause_every: pause
    assert len(sends(out, SlotOutcome)) == 1 and sends(out, CsiSlice) == []
    assert out.timers == {"collect": None, "pause": 2.0 + TRAINING_PAUSE_S}
    assert role.paused
    # while paused: transmits are ignored and nothing moves
    assert deliver(role, transmit(NODES[0], 2, p)).sends == []
    assert {m.slot for m in role.got.values()} == {1}  # still slot 1's, nothing of slot 2
    out = deliver(role, mk(Resume, CONTROLLER, slot=2, version=1), now=7.0)
    assert out.timers["pause"] is None
    assert [s.dest for s in sends(out, CsiSlice)] == NODES
    assert {s.slot for s in sends(out, CsiSlice)} == {2}
    # a second Resume is not a second slot
    assert deliver(role, mk(Resume, CONTROLLER, slot=2, version=1), now=7.1).sends == []
    assert len(sends(slot(2, 8.0), CsiSlice)) == B  # slot 3 starts without a pause
    out = slot(3, 9.0)  # slot 4: pause again
    assert sends(out, CsiSlice) == [] and "pause" in out.timers
    # no Resume: the pause timer gives up
    fire(role, "pause", now=9.0 + TRAINING_PAUSE_S)
    assert role.done and role.failure is not None and "Resume" in role.failure


def test_channel_server_realtime_clock_paces_slots_on_a_timer() -> None:
    rt = resolve(S3, {"timing.clock": "realtime"})
    slot_s = rt.scenario.radio.slot_s
    t0 = 10.0
    role, out = air_role(slots=4, resolved=rt, now=t0)
    assert len(sends(out, CsiSlice)) == B  # slot 0 starts at once, at t0
    p = np.ones(K)
    for n in (1, 2):
        now = t0 + (n - 1) * slot_s + 0.004  # the slot's transmissions are in early
        for b in range(B - 1):
            deliver(role, transmit(NODES[b], n - 1, p), now)
        out = deliver(role, transmit(NODES[-1], n - 1, p), now)
        assert len(sends(out, SlotOutcome)) == 1
        assert sends(out, CsiSlice) == []  # not before t0 + n * slot_s
        assert out.timers["slot"] == pytest.approx(t0 + n * slot_s, abs=1e-12)
        out = fire(role, "slot", now=t0 + n * slot_s)
        assert [s.dest for s in sends(out, CsiSlice)] == NODES
        assert {s.slot for s in sends(out, CsiSlice)} == {n}


def test_channel_server_realtime_resume_does_not_pause_the_same_slot_again() -> None:
    """Realtime training: Resume restarts the slot clock at ``now``; the resumed slot must
    start, even where ``(now - n * slot_s) + n * slot_s`` rounds to just above ``now``
    (here now = 0.103, n = 2, slot_s = 0.02)."""
    rt = resolve(S3, {"timing.clock": "realtime"})
    slot_s = rt.scenario.radio.slot_s
    assert (0.103 - 2 * slot_s) + 2 * slot_s > 0.103  # the rounding this test is about
    role, _ = air_role(slots=5, options={"train": {"pause_every": 2}}, resolved=rt, now=0.0)
    p = np.ones(K)
    for b in range(B):
        out = deliver(role, transmit(NODES[b], 0, p), now=0.005)
    fire(role, "slot", now=slot_s)
    for b in range(B):
        out = deliver(role, transmit(NODES[b], 1, p), now=slot_s + 0.005)
    assert role.paused and "pause" in out.timers
    out = deliver(role, mk(Resume, CONTROLLER, slot=2, version=1), now=0.103)
    for _ in range(3):  # a driver fires what falls due
        if sends(out, CsiSlice) or out.timers.get("slot") is None:
            break
        out = fire(role, "slot", now=out.timers["slot"])  # type: ignore[arg-type]
    assert not role.paused, "the resumed slot paused again: it waits for a second Resume"
    assert [s.dest for s in sends(out, CsiSlice)] == NODES
    assert {s.slot for s in sends(out, CsiSlice)} == {2}


def test_channel_server_ignores_a_join_of_a_node_it_does_not_have() -> None:
    """'Every role validates what it receives (ranges)': a Join naming a node index the
    scenario does not have must not make the next slot fail."""
    role, _ = air_role(slots=4)
    joined = deliver(role, mk(Join, CONTROLLER, slot=0, node=7, address="inproc://node-7"))
    p = np.ones(K)
    for b in range(B):
        out = deliver(role, transmit(NODES[b], 0, p))  # ends slot 0, begins slot 1
    assert [s.dest for s in sends(out, CsiSlice)] == NODES
    assert joined.connects == []


def test_channel_server_is_kind_agnostic_v2x_slices_and_no_rejoin() -> None:
    """The same slot loop serves the V2X kind: each vehicle its own slice (as an
    independently built V2X air gives it), and a lost vehicle cannot rejoin."""
    from channel_server.v2x_air import V2xAir
    from protocols.messages import V2xOutcome, V2xSlice, V2xTransmit

    v2x = resolve(SV)
    names = v2x.node_names
    role, out = air_role("random", slots=3, resolved=v2x)
    twin = V2xAir(v2x.scenario, 1, SEED).slices()
    slices = sends(out, V2xSlice)
    assert [s.dest for s in slices] == names and len(out.sends) == len(names)
    for k, s in enumerate(slices):
        np.testing.assert_array_equal(s.payload["v2v_gain_db"], twin.v2v_gain_db[0, k])
        np.testing.assert_array_equal(s.payload["bs_gain_db"], twin.bs_gain_db[0, k])
    for k, name in enumerate(names[:-1]):
        out = deliver(role, mk(V2xTransmit, name, slot=0, rb=k, power_level=0,
                               decision_latency_s=0.0002, compute_s=0.0001))
        assert out.sends == []
    out = fire(role, "collect", now=v2x.scenario.timing.peer_timeout_s)
    assert one(out, V2xOutcome, CONTROLLER).payload["lost"] == [len(names) - 1]
    assert [s.dest for s in sends(out, V2xSlice)] == names[:-1]
    out = deliver(role, mk(Join, CONTROLLER, slot=1, node=len(names) - 1, address="x"))
    assert out.connects == [] and role.joining == []


def test_channel_server_done_after_the_last_slot_then_report_on_stop() -> None:
    role, _ = air_role(slots=2)
    p = np.ones(K)
    for n in range(2):
        for b in range(B):
            out = deliver(role, transmit(NODES[b], n, p), now=float(n))
    done = one(out, Done, CONTROLLER)
    assert done.payload["slots"] == 2 and done.slot == 2
    assert sends(out, CsiSlice) == []
    assert out.timers["stop"] == pytest.approx(1.0 + 4 * TIMING.peer_timeout_s)
    assert not role.done
    role.host.meter.record("csi_slice", "air", CHANNEL_SERVER, NODES[0], 0, 123)
    out = deliver(role, mk(Stop, CONTROLLER, slot=2, reason="run complete"), now=2.0)
    report = one(out, Report, CONTROLLER)
    assert report.payload["rows"] == role.host.meter.rows()
    assert ["link", "run", "csi_slice", "air", CHANNEL_SERVER, NODES[0], 1, 123, 0, 0] in \
        report.payload["rows"]
    assert report.payload["stats"]["lost"] == []
    assert report.payload["stats"]["pid"] == role.host.pid
    assert role.done and role.failure is None


def test_channel_server_gives_up_without_start_or_stop() -> None:
    role = hosted(ChannelServerRole())
    start(role)
    out = deliver(role, transmit(NODES[0], 0, np.ones(K)))  # before Start: ignored
    assert out.sends == [] and role.air is None
    fire(role, "start", now=START_TIMEOUT_S)
    assert role.done and role.exit_code == 1 and "Start" in (role.failure or "")


# =========================================================================== node (BS part)


def node_role(b: int, scheme: str = "full", options: dict[str, Any] | None = None,
              resolved: Resolved = RES, now: float = 0.0) -> tuple[NodeRole, Outbox]:
    role = hosted(NodeRole("node", b))
    start(role, now)
    return role, deliver(role, start_msg(scheme, 10, options, resolved), now)


def csi(b: int, slot: int, gains: np.ndarray, order: list[int] | None = None) -> CsiSlice:
    return mk(CsiSlice, CHANNEL_SERVER, slot=slot, gains=csi_slice(gains, b),
              order=list(range(B)) if order is None else order, active=list(range(B)))


def test_node_says_hello_then_connects_emulates_links_and_says_ready() -> None:
    jittery = resolve(S3, {"backhaul.default.model": "uniform",
                           "backhaul.default.jitter_s": 0.004})
    role = hosted(NodeRole("node", 1))
    out = start(role, now=1.0)
    hello = one(out, Hello, CONTROLLER)
    assert hello.payload == {"role": "node", "node_id": 1, "pid": role.host.pid,
                             "host": "inproc://node-1"}
    assert out.timers == {"start": 1.0 + 60.0}
    out = deliver(role, start_msg("full", 10, resolved=jittery), now=2.0)
    assert sorted(out.connects) == sorted((n, a) for n, a in DIRECTORY.items() if n != "node-1")
    assert set(out.links) == {CONTROLLER, CHANNEL_SERVER, "node-0", "node-2"}
    assert out.clock == "fast"
    backhaul = jittery.scenario.backhaul
    for src, model in out.links.items():
        assert model.params == LinkParams.of(backhaul.link(src, "node-1"))
        # the link draws from its own seeded stream
        twin = LinkModel(backhaul.link(src, "node-1"), rng_for(SEED, "link", src, "node-1"))
        assert [model.sample() for _ in range(4)] == [twin.sample() for _ in range(4)]
    one(out, Heartbeat, CONTROLLER)
    assert [s.cls for s in out.sends] == [Heartbeat]
    assert out.timers["start"] is None
    assert out.timers["watch"] == pytest.approx(2.0 + TIMING.peer_timeout_s)


def test_node_with_a_snapshot_fetches_weights_before_saying_ready() -> None:
    role, out = node_role(0, "full", {"weights_version": 3}, now=1.0)
    req = one(out, WeightsRequest, CONTROLLER)
    assert req.payload == {"have_version": 0}
    assert sends(out, Heartbeat) == []
    assert 1.0 < (out.timers["start"] or 0.0) <= 1.0 + 4 * TIMING.peer_timeout_s
    arrays = node_policy("full", SC, SEED).state_dict()
    snapshot = {k: v.detach().numpy() + 0.05 for k, v in arrays.items()}
    old = mk(Weights, CONTROLLER, slot=-1, version=2, names=list(snapshot),
             arrays=list(snapshot.values()))
    assert deliver(role, old, now=1.5).sends == []  # older than announced: keep waiting
    new = mk(Weights, CONTROLLER, slot=-1, version=3, names=list(snapshot),
             arrays=list(snapshot.values()))
    out = deliver(role, new, now=2.0)
    one(out, Heartbeat, CONTROLLER)
    assert out.timers["start"] is None
    gains = channel(SEED, 1)[0]
    out = deliver(role, csi(0, 0, gains), now=2.5)
    assert role.weights_version == 3
    expected = BsAgent(0, SC, "full", SEED, policy=policy_with_weights("full", SC, snapshot))
    d = expected.decide(csi_slice(gains, 0)[None], np.zeros(1))
    np.testing.assert_allclose(one(out, Transmit, CHANNEL_SERVER).payload["powers"],
                               d.powers_w[0], rtol=1e-6)


def test_node_decides_its_first_slot_with_the_fetched_weights() -> None:
    """A slice that arrives while the node still fetches the snapshot (a node restarted
    while the air still serves it) is decided with the snapshot, not the seeded policy:
    'a snapshot exists: get it before the first decision'."""
    role, _ = node_role(0, "full", {"weights_version": 4})
    gains = channel(SEED, 1)[0]
    assert deliver(role, csi(0, 0, gains)).sends == []  # kept until the weights are in
    base = {k: v.detach().numpy() for k, v in node_policy("full", SC, SEED).state_dict().items()}
    snapshot = {k: v + 0.05 for k, v in base.items()}
    out = deliver(role, mk(Weights, CONTROLLER, slot=-1, version=4, names=list(snapshot),
                           arrays=list(snapshot.values())))
    one(out, Heartbeat, CONTROLLER)
    tx = one(out, Transmit, CHANNEL_SERVER)
    expected = BsAgent(0, SC, "full", SEED, policy=policy_with_weights("full", SC, snapshot))
    d = expected.decide(csi_slice(gains, 0)[None], np.zeros(1))
    assert role.weights_version == 4
    np.testing.assert_allclose(tx.payload["powers"], d.powers_w[0], rtol=1e-6)


def test_node_without_weights_gives_up_on_the_fetch() -> None:
    role, out = node_role(0, "full", {"weights_version": 2})
    fire(role, "start", now=out.timers["start"] or 0.0)
    assert role.done and "weights v2" in (role.failure or "")


def test_node_full_transmits_on_its_slice_at_once() -> None:
    role, _ = node_role(2, "full")
    gains = channel(SEED, 2)
    twin = BsAgent(2, SC, "full", SEED)
    for n in range(2):
        out = deliver(role, csi(2, n, gains[n]), now=0.1 * n)
        tx = one(out, Transmit, CHANNEL_SERVER)
        assert [s.cls for s in out.sends] == [Transmit]  # no exchange, no training upload
        d = twin.decide(csi_slice(gains[n], 2)[None], np.zeros(1))
        np.testing.assert_allclose(tx.payload["powers"], d.powers_w[0], rtol=1e-6)
        assert np.all((tx.payload["powers"] >= 0) & (tx.payload["powers"] <= RADIO.pmax_w))
        assert tx.slot == n
        assert tx.chain_latency_s == tx.payload["decision_latency_s"] == TIMING.compute_s
        assert tx.payload["compute_s"] == TIMING.compute_s
        assert tx.payload["missed"] is False and tx.payload["rb"] == -1


def test_node_max_power_transmits_pmax() -> None:
    role, _ = node_role(0, "max-power")
    out = deliver(role, csi(0, 0, channel(SEED, 1)[0]))
    np.testing.assert_array_equal(one(out, Transmit, CHANNEL_SERVER).payload["powers"],
                                  np.full(K, RADIO.pmax_w))


def test_node_round_robin_chain_forwards_the_powers_so_far() -> None:
    gains = channel(SEED, 1)[0]
    order = [1, 0, 2]
    first, _ = node_role(1, "round-robin")
    mid, _ = node_role(0, "round-robin")
    last, _ = node_role(2, "round-robin")
    twins = {b: BsAgent(b, SC, "round-robin", SEED) for b in range(B)}
    link = SC.backhaul.link("node-1", "node-0").latency_s

    # the first in order decides alone and forwards its powers to the next
    out = deliver(first, csi(1, 0, gains, order))
    tx1 = one(out, Transmit, CHANNEL_SERVER)
    fwd1 = one(out, PowerForward, "node-0")
    assert [s.dest for s in out.sends] == [CHANNEL_SERVER, "node-0"]
    prior, chosen = chain_priors({}, 1, B, K)
    d1 = twins[1].decide(csi_slice(gains, 1)[None], np.zeros(1), prior, chosen)
    np.testing.assert_allclose(tx1.payload["powers"], d1.powers_w[0], rtol=1e-6)
    assert fwd1.payload["order"] == [1]
    np.testing.assert_array_equal(fwd1.payload["powers"], tx1.payload["powers"][None])
    assert fwd1.chain_latency_s == tx1.payload["decision_latency_s"] == TIMING.compute_s

    # a later node waits for the forward, then decides with the earlier powers
    assert deliver(mid, csi(0, 0, gains, order)).sends == []
    arrived = mk(PowerForward, "node-1", slot=0, chain=fwd1.chain_latency_s + link,
                 order=fwd1.payload["order"], powers=fwd1.payload["powers"])
    out = deliver(mid, arrived)
    tx0 = one(out, Transmit, CHANNEL_SERVER)
    fwd0 = one(out, PowerForward, "node-2")
    chain0 = TIMING.compute_s + link + TIMING.compute_s
    assert tx0.payload["decision_latency_s"] == pytest.approx(chain0, abs=1e-15)
    assert fwd0.chain_latency_s == pytest.approx(chain0, abs=1e-15)
    prior, chosen = chain_priors({1: tx1.payload["powers"][None]}, 1, B, K)
    d0 = twins[0].decide(csi_slice(gains, 0)[None], np.array([chain0]), prior, chosen)
    np.testing.assert_allclose(tx0.payload["powers"], d0.powers_w[0], rtol=1e-6)
    assert fwd0.payload["order"] == [1, 0]
    np.testing.assert_array_equal(fwd0.payload["powers"],
                                  np.stack([tx1.payload["powers"], tx0.payload["powers"]]))

    # the last one: forward first, CSI after; it closes the chain (no forward)
    arrived = mk(PowerForward, "node-0", slot=0, chain=fwd0.chain_latency_s + link,
                 order=fwd0.payload["order"], powers=fwd0.payload["powers"])
    assert deliver(last, arrived).sends == []
    out = deliver(last, csi(2, 0, gains, order))
    assert [s.cls for s in out.sends] == [Transmit]
    chain2 = 3 * TIMING.compute_s + 2 * link
    assert one(out, Transmit, CHANNEL_SERVER).payload["decision_latency_s"] == \
        pytest.approx(chain2, abs=1e-15)
    assert one(out, Transmit, CHANNEL_SERVER).payload["missed"] is False


def test_node_round_robin_late_forward_is_a_miss_and_falls_back() -> None:
    gains = channel(SEED, 2)
    role, _ = node_role(0, "round-robin")
    order = [2, 0, 1]
    deliver(role, csi(0, 0, gains[0], order))
    late = TIMING.deadline_s + 0.001
    out = deliver(role, mk(PowerForward, "node-2", slot=0, chain=late, order=[2],
                           powers=np.ones((1, K))))
    tx = one(out, Transmit, CHANNEL_SERVER)
    assert tx.payload["missed"] is True
    # the fallback before any decision is full power
    np.testing.assert_array_equal(tx.payload["powers"], np.full(K, RADIO.pmax_w))
    assert tx.payload["decision_latency_s"] == pytest.approx(late + TIMING.compute_s)


def test_node_round_robin_quiet_timer_decides_alone_with_a_miss() -> None:
    role, out = node_role(0, "round-robin", now=0.0)
    timeout = TIMING.peer_timeout_s
    assert out.timers["watch"] == pytest.approx(timeout)
    gains = channel(SEED, 1)[0]
    out = deliver(role, csi(0, 0, gains, [2, 0, 1]), now=1.0)
    assert out.sends == []
    out = fire(role, "watch", now=timeout)  # 4 s after the CSI: predecessor lost
    tx = one(out, Transmit, CHANNEL_SERVER)
    assert math.isinf(tx.payload["decision_latency_s"]) and math.isinf(tx.chain_latency_s)
    assert tx.payload["missed"] is True
    np.testing.assert_array_equal(tx.payload["powers"], np.full(K, RADIO.pmax_w))
    fwd = one(out, PowerForward, "node-1")
    assert fwd.payload["order"] == [0] and math.isinf(fwd.chain_latency_s)
    assert out.timers["watch"] > timeout  # re-armed
    # the forward that finally comes changes nothing: the slot was decided
    assert deliver(role, mk(PowerForward, "node-2", slot=0, chain=0.001, order=[2],
                            powers=np.ones((1, K))), now=timeout + 0.1).sends == []
    out = deliver(role, mk(Stop, CONTROLLER, slot=1, reason="run complete"),
                  now=timeout + 0.2)
    stats = one(out, Report, CONTROLLER).payload["stats"]
    assert stats["chain_timeouts"] == 1 and stats["misses"] == 1


def test_node_quiet_timer_does_nothing_when_nothing_waits() -> None:
    role, _ = node_role(0, "round-robin")
    out = fire(role, "watch", now=TIMING.peer_timeout_s)
    assert out.sends == [] and not role.done
    assert list(out.timers) == ["watch"]


def test_node_weights_are_acked_at_once_and_swapped_at_the_next_slice() -> None:
    role, _ = node_role(1, "full")
    gains = channel(SEED, 4)
    base = {k: v.detach().numpy() for k, v in node_policy("full", SC, SEED).state_dict().items()}
    w2 = {k: v + 0.05 for k, v in base.items()}
    w1 = {k: v - 0.05 for k, v in base.items()}

    def weights(version: int, arrays: dict[str, np.ndarray], slot: int) -> Weights:
        return mk(Weights, CONTROLLER, slot=slot, version=version, names=list(arrays),
                  arrays=list(arrays.values()))

    def powers_with(arrays: dict[str, np.ndarray], n: int) -> np.ndarray:
        agent = BsAgent(1, SC, "full", SEED, policy=policy_with_weights("full", SC, arrays))
        return agent.decide(csi_slice(gains[n], 1)[None], np.zeros(1)).powers_w[0]

    out = deliver(role, csi(1, 0, gains[0]))
    p0 = one(out, Transmit, CHANNEL_SERVER).payload["powers"]
    np.testing.assert_allclose(p0, powers_with(base, 0), rtol=1e-6)
    out = deliver(role, weights(2, w2, 1))
    ack = one(out, WeightsAck, CONTROLLER)
    assert ack.payload == {"version": 2} and ack.slot == 1
    assert role.weights_version == 0  # not before the slot boundary
    out = deliver(role, csi(1, 1, gains[1]))
    assert role.weights_version == 2 and role.versions == [2]
    p1 = one(out, Transmit, CHANNEL_SERVER).payload["powers"]
    np.testing.assert_allclose(p1, powers_with(w2, 1), rtol=1e-6)
    assert not np.allclose(p1, powers_with(base, 1), rtol=1e-3)  # the swap mattered
    # a stale version is ignored at the boundary: the version only grows
    deliver(role, weights(1, w1, 2))
    out = deliver(role, csi(1, 2, gains[2]))
    assert role.weights_version == 2 and role.versions == [2]
    np.testing.assert_allclose(one(out, Transmit, CHANNEL_SERVER).payload["powers"],
                               powers_with(w2, 2), rtol=1e-6)


def test_node_keeps_the_newest_of_two_weights_that_arrive_in_one_slot() -> None:
    """Both versions are acknowledged; the one used from the next slot must be the newest
    (the ack of v3 says 'I use v3 from my next slot')."""
    role, _ = node_role(0, "full")
    base = {k: v.detach().numpy() for k, v in node_policy("full", SC, SEED).state_dict().items()}
    for version in (3, 2):
        arrays = {k: v + 0.01 * version for k, v in base.items()}
        out = deliver(role, mk(Weights, CONTROLLER, slot=0, version=version,
                               names=list(arrays), arrays=list(arrays.values())))
        assert one(out, WeightsAck, CONTROLLER).payload["version"] == version
    deliver(role, csi(0, 0, channel(SEED, 1)[0]))
    assert role.weights_version == 3 and role.versions == [3]


def test_node_uploads_experience_while_training() -> None:
    gains = channel(SEED, 1)[0]
    order = [2, 0, 1]
    role, _ = node_role(0, "round-robin", {"train": {"algo": "a2c"}})
    deliver(role, csi(0, 0, gains, order))
    out = deliver(role, mk(PowerForward, "node-2", slot=0, chain=0.001, order=[2],
                           powers=np.full((1, K), 5.0)))
    assert [(s.cls, s.dest) for s in out.sends] == [
        (Transmit, CHANNEL_SERVER), (Experience, CONTROLLER), (PowerForward, "node-1")]
    exp = one(out, Experience, CONTROLLER)
    twin = BsAgent(0, SC, "round-robin", SEED)
    prior, chosen = chain_priors({2: np.full((1, K), 5.0)}, 1, B, K)
    twin.decide(csi_slice(gains, 0)[None], np.array([0.001]), prior, chosen)
    assert twin.last_obs is not None and twin.last_raw is not None
    np.testing.assert_allclose(exp.payload["obs"], twin.last_obs, rtol=1e-6)
    np.testing.assert_allclose(exp.payload["action"], twin.last_raw, rtol=1e-6)
    assert exp.payload["step"] == 1  # its position in the chain
    assert exp.payload["done"].tolist() == [False]  # not the last of the chain
    assert exp.slot == 0


def test_node_central_uploads_its_slice_and_commits_the_decision() -> None:
    role, _ = node_role(1, "wmmse")
    gains = channel(SEED, 2)
    out = deliver(role, csi(1, 0, gains[0]))
    up = one(out, CsiUpload, CONTROLLER)
    assert [s.cls for s in out.sends] == [CsiUpload]
    np.testing.assert_array_equal(up.payload["gains"], csi_slice(gains[0], 1))
    p = np.array([3.0, 7.0])
    out = deliver(role, mk(Decision, CONTROLLER, slot=0, chain=0.004, powers=p))
    tx = one(out, Transmit, CHANNEL_SERVER)
    np.testing.assert_array_equal(tx.payload["powers"], p)
    assert tx.payload["decision_latency_s"] == 0.004 and tx.payload["missed"] is False
    deliver(role, csi(1, 1, gains[1]))
    out = deliver(role, mk(Decision, CONTROLLER, slot=1, chain=TIMING.deadline_s * 2,
                           powers=np.array([1.0, 1.0])))
    tx = one(out, Transmit, CHANNEL_SERVER)
    assert tx.payload["missed"] is True
    np.testing.assert_array_equal(tx.payload["powers"], p)  # the previous slot's powers


def test_node_external_round_robin_uploads_its_turn_then_forwards_the_decision() -> None:
    """Scheme external-round-robin: at its turn a BS uploads the round-robin observation its
    policy would act on; the powers that come back are transmitted and forwarded."""
    gains = channel(SEED, 1)[0]
    order = [1, 0, 2]
    first, _ = node_role(1, "external-round-robin")
    out = deliver(first, csi(1, 0, gains, order))
    up = one(out, ObsUpload, CONTROLLER)
    assert [s.cls for s in out.sends] == [ObsUpload] and up.chain_latency_s == 0.0
    np.testing.assert_array_equal(up.payload["obs"], obs_round_robin(
        csi_slice(gains, 1), 1, np.zeros((B, K)), np.zeros(B), RADIO))

    mid, _ = node_role(0, "external-round-robin")
    assert deliver(mid, csi(0, 0, gains, order)).sends == []  # not its turn yet
    p1 = np.array([2.0, 5.0])
    out = deliver(mid, mk(PowerForward, "node-1", slot=0, chain=0.003, order=[1],
                          powers=p1[None]))
    up = one(out, ObsUpload, CONTROLLER)
    assert up.chain_latency_s == 0.003
    prior, chosen = np.zeros((B, K)), np.zeros(B)
    prior[1], chosen[1] = p1 / RADIO.pmax_w, 1.0
    np.testing.assert_array_equal(up.payload["obs"], obs_round_robin(
        csi_slice(gains, 0), 0, prior, chosen, RADIO))
    p0 = np.array([1.0, 4.0])
    out = deliver(mid, mk(Decision, CONTROLLER, slot=0, chain=0.007, powers=p0))
    assert [(s.cls, s.dest) for s in out.sends] == [(Transmit, CHANNEL_SERVER),
                                                    (PowerForward, "node-2")]
    np.testing.assert_array_equal(one(out, Transmit, CHANNEL_SERVER).payload["powers"], p0)
    fwd = one(out, PowerForward, "node-2")
    assert fwd.payload["order"] == [1, 0] and fwd.chain_latency_s == 0.007
    np.testing.assert_array_equal(fwd.payload["powers"], np.stack([p1, p0]))
    # a second decision, and one for a turn it never uploaded, are refused
    deliver(mid, mk(Decision, CONTROLLER, slot=0, powers=p0))
    only_reason(mid, "second decision")
    mid.rejected.clear()  # type: ignore[attr-defined]
    deliver(mid, csi(0, 1, gains, order))
    assert deliver(mid, mk(Decision, CONTROLLER, slot=1, powers=p0)).sends == []
    only_reason(mid, "did not upload")


def test_controller_hands_each_round_robin_turn_to_the_external_learner() -> None:
    role = running("external-round-robin", slots=2)

    class Learner:  # the outside learner's side of controller.roles.external
        def __init__(self) -> None:
            self.seen: list[tuple[int, Any]] = []
            self.powers: dict[int, np.ndarray] = {}

        def observe(self, slot: int, turn: Any) -> None:
            self.seen.append((slot, turn))

        def action(self, slot: int) -> np.ndarray | None:
            return self.powers.pop(slot, None)

        def outcome(self, msg: Any) -> None:
            pass

    learner = Learner()
    role.part.external = ExternalSlots(learner)  # type: ignore[attr-defined]
    obs = np.arange(round_robin_dims(RADIO)[0], dtype=np.float64)
    out = deliver(role, mk(ObsUpload, "node-2", slot=0, chain=0.004, obs=obs), now=1.0)
    assert out.sends == [] and out.timers == {EXTERNAL: 1.0 + EXTERNAL_POLL_S}
    (slot, (bs, seen)), = learner.seen
    assert (slot, bs) == (0, 2) and np.array_equal(seen, obs)
    # another BS's turn of the slot while one waits is a forged frame
    deliver(role, mk(ObsUpload, "node-0", slot=0, obs=obs), now=1.0)
    only_reason(role, "another waits")
    assert fire(role, EXTERNAL, now=1.001).timers == {EXTERNAL: 1.001 + EXTERNAL_POLL_S}
    learner.powers[0] = np.array([0.5, 1.5])
    out = fire(role, EXTERNAL, now=1.002)
    dec = one(out, Decision, "node-2")
    assert [s.dest for s in out.sends] == ["node-2"]
    np.testing.assert_array_equal(dec.payload["powers"], [0.5, 1.5])
    assert dec.chain_latency_s == pytest.approx(0.004 + TIMING.compute_s)


def test_node_stop_sends_its_report() -> None:
    role, _ = node_role(0, "full")
    gains = channel(SEED, 3)
    for n in range(3):
        deliver(role, csi(0, n, gains[n]))
    for n in range(2):
        deliver(role, mk(Measurement, CHANNEL_SERVER, slot=n, sinr=np.ones(K),
                         rates=np.ones(K)))
    role.host.meter.record("transmit", "air", "node-0", CHANNEL_SERVER, 0, 77)
    out = deliver(role, mk(Stop, CONTROLLER, slot=3, reason="run complete"))
    rep = one(out, Report, CONTROLLER)
    assert rep.slot == 3
    assert rep.payload["rows"] == role.host.meter.rows() != []
    stats = rep.payload["stats"]
    assert stats["slots"] == 3 and stats["measurements"] == 2 and stats["misses"] == 0
    assert stats["weights_version"] == 0 and stats["csi_shapes"] == [[K, B]]
    assert role.done and role.failure is None


def test_node_gives_up_when_everyone_is_silent() -> None:
    role, _ = node_role(0, "full", now=0.0)
    give_up = 4 * TIMING.peer_timeout_s
    deliver(role, csi(0, 0, channel(SEED, 1)[0]), now=3.0)
    t = 0.0
    for _ in range(10):  # follow the watchdog as a driver would
        out = fire(role, "watch", now=max(t, TIMING.peer_timeout_s))
        if role.done:
            break
        t = out.timers["watch"] or 0.0
        assert t <= 3.0 + give_up + 1e-9
    assert role.done and role.exit_code == 1
    assert t == pytest.approx(3.0 + give_up)
    assert "giving up" in (role.failure or "") and f"{give_up:.0f} s" in (role.failure or "")


def test_node_without_start_gives_up() -> None:
    role = hosted(NodeRole("node", 0))
    start(role)
    fire(role, "start", now=60.0)
    assert role.done and "no Start" in (role.failure or "")


# =========================================================================== controller


def controller(scheme: str = "max-power", slots: int = 4,
               weights: dict[str, np.ndarray] | None = None,
               startup_timeout_s: float = 30.0) -> tuple[ControllerRole, Outbox]:
    role = hosted(ControllerRole(RES, scheme, slots, SEED, "local", weights,
                                 startup_timeout_s=startup_timeout_s))
    return role, start(role, now=0.0)


def hello(name: str) -> Hello:
    return mk(Hello, name, slot=-1, role="channel-server" if name == CHANNEL_SERVER else "node",
              node_id=-1 if name == CHANNEL_SERVER else int(name[-1]), pid=1000,
              host=DIRECTORY[name])


def running(scheme: str = "max-power", slots: int = 4,
            weights: dict[str, np.ndarray] | None = None) -> ControllerRole:
    role, _ = controller(scheme, slots, weights)
    for name in [CHANNEL_SERVER, *NODES]:
        deliver(role, hello(name))
    for name in NODES:
        deliver(role, mk(Heartbeat, name, slot=-1))
    assert role.phase == "run"
    return role


def outcome(slot: int, lost: list[int] | None = None) -> SlotOutcome:
    return mk(SlotOutcome, CHANNEL_SERVER, slot=slot, powers=np.ones((B, K)),
              rates=np.ones((B, K)), sum_rate_bps_hz=float(B * K),
              decision_latency_s=np.full(B, 0.002), missed=np.zeros(B, dtype=bool),
              lost=lost or [], wall_s=0.001, compute_s=np.full(B, TIMING.compute_s))


def test_controller_handshake_order() -> None:
    role, out = controller(startup_timeout_s=30.0)
    assert out.timers == {"startup": 30.0} and out.sends == []
    # Hellos: nothing is started before every process said hello
    for name in [NODES[0], CHANNEL_SERVER, NODES[1]]:
        assert deliver(role, hello(name), now=1.0).sends == []
    out = deliver(role, hello(NODES[2]), now=2.0)
    assert sorted(out.connects) == sorted(DIRECTORY.items())
    starts = sends(out, Start)
    assert [s.dest for s in starts] == NODES  # the nodes only: the air starts last
    for s in starts:
        assert s.payload["scheme"] == "max-power" and s.payload["slots"] == 4
        assert s.payload["seed"] == SEED
        assert s.payload["config_toml"] == RES.toml()
        assert s.payload["options"]["directory"] == DIRECTORY
        assert s.payload["options"]["weights_version"] == 0
    assert set(out.links) == {CHANNEL_SERVER, *NODES}
    for src, model in out.links.items():
        assert model.params == LinkParams.of(SC.backhaul.link(src, CONTROLLER))
    assert out.timers == {"startup": 2.0 + 30.0}
    # readiness: the channel server starts only when every node is ready
    for name in NODES[:2]:
        assert deliver(role, mk(Heartbeat, name, slot=-1), now=3.0).sends == []
    out = deliver(role, mk(Heartbeat, NODES[2], slot=-1), now=4.0)
    air_start = one(out, Start, CHANNEL_SERVER)
    assert [s.dest for s in out.sends] == [CHANNEL_SERVER]
    assert air_start.payload["config_toml"] == RES.toml()
    assert out.timers["startup"] is None
    assert out.timers["silence"] == pytest.approx(4.0 + 2 * TIMING.peer_timeout_s)
    assert role.phase == "run"


def test_controller_keeps_an_early_heartbeat_for_the_ready_phase() -> None:
    role, _ = controller()
    deliver(role, mk(Heartbeat, NODES[0], slot=-1))  # before all hellos: kept
    for name in [CHANNEL_SERVER, *NODES]:
        deliver(role, hello(name))
    assert role.ready == {NODES[0]}
    deliver(role, mk(Heartbeat, NODES[1], slot=-1))
    out = deliver(role, mk(Heartbeat, NODES[2], slot=-1))
    one(out, Start, CHANNEL_SERVER)


def test_controller_startup_timer_names_the_missing_processes() -> None:
    role, _ = controller()
    deliver(role, hello(NODES[1]))
    fire(role, "startup", now=30.0)
    assert role.done and role.exit_code == 1
    assert role.failure is not None
    assert "hello" in role.failure
    assert f"{CHANNEL_SERVER}, node-0, node-2" in role.failure
    assert "node-1" not in role.failure  # it said hello

    role, _ = controller()
    for name in [CHANNEL_SERVER, *NODES]:
        deliver(role, hello(name))
    deliver(role, mk(Heartbeat, NODES[1], slot=-1))
    fire(role, "startup", now=60.0)
    assert role.failure is not None and "ready signal" in role.failure
    assert "node-0, node-2" in role.failure and "node-1" not in role.failure


def test_controller_serves_weights_requests_from_its_snapshot() -> None:
    arrays = {k: v.detach().numpy() + 0.01
              for k, v in node_policy("full", SC, SEED).state_dict().items()}
    role, _ = controller("full", weights=arrays)
    for name in [CHANNEL_SERVER, *NODES]:
        out = deliver(role, hello(name))
    assert {s.payload["options"]["weights_version"] for s in sends(out, Start)} == {1}
    out = deliver(role, mk(WeightsRequest, NODES[1], slot=-1, have_version=0))
    w = one(out, Weights, NODES[1])
    assert w.payload["version"] == 1 and w.slot == -1
    assert w.payload["names"] == list(arrays)
    for name, a in zip(w.payload["names"], w.payload["arrays"], strict=True):
        np.testing.assert_array_equal(a, arrays[name])
    for name in NODES:
        deliver(role, mk(Heartbeat, name, slot=-1))
    deliver(role, outcome(0))
    out = deliver(role, mk(WeightsRequest, NODES[2], slot=1, have_version=0))
    w = one(out, Weights, NODES[2])
    assert w.slot == 1 and w.payload["version"] == 1  # stamped with the slots done


def test_controller_without_a_snapshot_sends_no_weights() -> None:
    role, _ = controller("full")
    for name in [CHANNEL_SERVER, *NODES]:
        deliver(role, hello(name))
    out = deliver(role, mk(WeightsRequest, NODES[0], slot=-1, have_version=0))
    assert sends(out, Weights) == []


def test_controller_done_stops_everyone_and_gathers_reports() -> None:
    role = running(slots=2)
    for n in range(2):
        deliver(role, outcome(n))
    assert role.part.recorder.done == 2
    out = deliver(role, mk(Done, CHANNEL_SERVER, slot=2, slots=2), now=5.0)
    stops = sends(out, Stop)
    assert sorted(s.dest for s in stops) == sorted([CHANNEL_SERVER, *NODES])
    assert {s.slot for s in stops} == {2}
    assert out.timers["reports"] == pytest.approx(5.0 + TIMING.peer_timeout_s)
    assert out.timers["silence"] is None
    rows = [["link", "run", "transmit", "air", NODES[0], CHANNEL_SERVER, 2, 60]]
    for name in [CHANNEL_SERVER, *NODES[:2]]:
        assert deliver(role, mk(Report, name, slot=2, rows=rows, stats={})).sends == []
        assert not role.done
    out = deliver(role, mk(Report, NODES[2], slot=2, rows=rows, stats={"slots": 2}))
    assert role.done and out.timers["reports"] is None
    assert set(role.reports) == {CHANNEL_SERVER, *NODES}
    totals = role.meter().totals()
    assert totals[("transmit", "air", NODES[0], CHANNEL_SERVER)] == (2 * 4, 60 * 4)


def test_controller_names_a_missing_report() -> None:
    role = running(slots=1)
    deliver(role, outcome(0))
    deliver(role, mk(Done, CHANNEL_SERVER, slot=1, slots=1), now=1.0)
    for name in [CHANNEL_SERVER, NODES[0], NODES[2]]:
        deliver(role, mk(Report, name, slot=1, rows=[], stats={}))
    assert not role.done
    fire(role, "reports", now=1.0 + TIMING.peer_timeout_s)
    assert role.done and role.failure is None
    assert any("no report from node-1" in e for e in role.errors), role.errors
    assert not any("node-0" in e or "node-2" in e for e in role.errors)


def test_controller_does_not_wait_for_the_report_of_a_lost_node() -> None:
    role = running(slots=2)
    deliver(role, outcome(0, lost=[1]))
    deliver(role, outcome(1, lost=[1]))
    deliver(role, mk(Done, CHANNEL_SERVER, slot=2, slots=2))
    for name in [CHANNEL_SERVER, NODES[0], NODES[2]]:
        deliver(role, mk(Report, name, slot=2, rows=[], stats={}))
    assert role.done and role.errors == []


def test_controller_silence_timer_rearms_while_the_air_speaks_then_stops_the_run() -> None:
    role = running(slots=10)
    t = 2 * TIMING.peer_timeout_s
    deliver(role, outcome(0), now=t - 1.0)
    out = fire(role, "silence", now=t)
    assert out.timers == {"silence": pytest.approx(t - 1.0 + t)} and out.sends == []
    out = fire(role, "silence", now=2 * t)
    assert len(sends(out, Stop)) == 1 + B
    assert any("silent" in e for e in role.errors)


def test_controller_silence_counts_from_the_end_of_its_own_stall() -> None:
    """A training update that kept the controller busy past the silence limit (the driver
    says so with ``stalled``) does not make the channel server silent: the timer re-arms
    from the stall's end, and the run stops only when the air stays silent after it."""
    role = running(slots=10)
    t = 2 * TIMING.peer_timeout_s
    deliver(role, outcome(0), now=1.0)
    role.stalled(1.0 + t + 3.0)  # busy from 1 s until well past the limit
    out = fire(role, "silence", now=1.0 + t + 3.0)
    assert out.timers == {"silence": pytest.approx(1.0 + 2 * t + 3.0)} and out.sends == []
    assert role.errors == []
    out = fire(role, "silence", now=1.0 + 2 * t + 3.0)
    assert len(sends(out, Stop)) == 1 + B and any("silent" in e for e in role.errors)


def test_controller_wmmse_decides_once_every_active_bs_uploaded() -> None:
    role = running("wmmse", slots=4)
    gains = channel(SEED, 2)
    chains = {0: 0.0011, 1: 0.0032, 2: 0.0017}
    for b in (2, 0):
        out = deliver(role, mk(CsiUpload, NODES[b], slot=0, chain=chains[b],
                               gains=csi_slice(gains[0], b)))
        assert out.sends == []
    out = deliver(role, mk(CsiUpload, NODES[1], slot=0, chain=chains[1],
                           gains=csi_slice(gains[0], 1)))
    base = SC.baselines
    expected, _ = wmmse(gains[0][None], RADIO.noise_w, RADIO.pmax_w,
                        WMMSEConfig(base.wmmse_tol, base.wmmse_max_iter))
    decisions = sends(out, Decision)
    assert [d.dest for d in decisions] == NODES
    for b, d in enumerate(decisions):
        assert d.slot == 0
        assert d.payload["powers"].shape == (K,)
        np.testing.assert_allclose(d.payload["powers"], expected[0, b], rtol=1e-9)
        assert d.chain_latency_s == pytest.approx(max(chains.values()) + TIMING.compute_s,
                                                  abs=1e-15)
    # WMMSE beats full power on this channel (the decision is not just any powers)
    full = np.full((B, K), RADIO.pmax_w)
    assert sum_rate_bps_hz(gains[0], expected[0], RADIO.noise_w) > \
        sum_rate_bps_hz(gains[0], full, RADIO.noise_w)

    # node-2 lost: the next slot is decided once node-0 and node-1 uploaded, for them only
    deliver(role, outcome(0, lost=[2]))
    deliver(role, mk(CsiUpload, NODES[0], slot=1, chain=0.001, gains=csi_slice(gains[1], 0)))
    out = deliver(role, mk(CsiUpload, NODES[1], slot=1, chain=0.001,
                           gains=csi_slice(gains[1], 1)))
    decisions = sends(out, Decision)
    assert [d.dest for d in decisions] == NODES[:2]
    partial = gains[1].copy()
    partial[2] = 0.0  # the lost BS's row of the channel is unknown at the controller
    expected, _ = wmmse(partial[None], RADIO.noise_w, RADIO.pmax_w,
                        WMMSEConfig(base.wmmse_tol, base.wmmse_max_iter))
    for b, d in enumerate(decisions):
        np.testing.assert_allclose(d.payload["powers"], expected[0, b], rtol=1e-9)


def test_controller_ignores_a_stranger_and_an_unexpected_message() -> None:
    role = running("max-power", slots=2)
    out = deliver(role, mk(Hello, "intruder", slot=0, role="node", node_id=9, pid=1,
                           host="tcp://evil:1"))
    assert out.sends == [] and out.connects == []
    assert "intruder" not in role.directory
    out = deliver(role, mk(CsiUpload, NODES[0], slot=0, gains=np.ones((K, B))))
    assert out.sends == []  # not a central scheme: nothing to decide


def test_controller_late_joiner_gets_start_then_join_goes_to_the_others() -> None:
    role = running("max-power", slots=10)
    deliver(role, outcome(0, lost=[2]))
    assert role.active == {0, 1}
    rejoin = mk(Hello, NODES[2], slot=1, role="node", node_id=2, pid=2000,
                host="inproc://node-2-new")
    out = deliver(role, rejoin)
    assert out.connects == [(NODES[2], "inproc://node-2-new")]
    st = one(out, Start, NODES[2])
    assert st.payload["options"]["directory"][NODES[2]] == "inproc://node-2-new"
    out = deliver(role, mk(Heartbeat, NODES[2], slot=1))
    joins = sends(out, Join)
    assert sorted(j.dest for j in joins) == sorted([CHANNEL_SERVER, *NODES[:2]])
    assert {j.payload["node"] for j in joins} == {2}
    assert {j.payload["address"] for j in joins} == {"inproc://node-2-new"}
    assert role.active == {0, 1, 2} and role.rejoined == [NODES[2]]


def test_controller_ignores_a_csi_upload_from_a_process_that_is_not_a_node() -> None:
    """'No message can kill a process': an upload whose sender is not one of the run's
    nodes (the channel server, a stranger, node-9) is dropped and the slot still decides
    once the real nodes uploaded."""
    role = running("wmmse", slots=2)
    gains = channel(SEED, 1)[0]
    for sender in (CHANNEL_SERVER, "stranger", "node-9"):
        out = deliver(role, mk(CsiUpload, sender, slot=0, gains=csi_slice(gains, 0)))
        assert out.sends == []
    for b in range(B):
        out = deliver(role, mk(CsiUpload, NODES[b], slot=0, gains=csi_slice(gains, b)))
    assert [d.dest for d in sends(out, Decision)] == NODES


def test_controller_training_start_tells_the_air_when_to_pause() -> None:
    role = hosted(ControllerRole(RES, "full", 6, SEED, "local",
                                 options={"train": {"algo": "a2c", "episodes_per_iter": 3}}))
    start(role)
    for name in [CHANNEL_SERVER, *NODES]:
        out = deliver(role, hello(name))
    for s in sends(out, Start):
        assert s.payload["options"]["train"] == {"algo": "a2c", "episodes_per_iter": 3,
                                                 "pause_every": 3}
    for name in NODES:
        out = deliver(role, mk(Heartbeat, name, slot=-1))
    air = one(out, Start, CHANNEL_SERVER)
    assert air.payload["options"]["train"]["pause_every"] == 3


@pytest.mark.parametrize("scheme", ["max-power", "wmmse"])
def test_a_training_controller_refuses_a_scheme_without_a_policy(scheme: str) -> None:
    """Neither the nodes nor a central decider run a policy: nothing to train, said by
    name before the run starts."""
    with pytest.raises(ValueError, match=f"scheme '{scheme}' has no policy to train"):
        hosted(ControllerRole(RES, scheme, 6, SEED, "local",
                              options={"train": {"algo": "a2c", "episodes_per_iter": 2}}))


def training_controller(slots: int = 6, per_iter: int = 2) -> ControllerRole:
    role = hosted(ControllerRole(RES, "full", slots, SEED, "local",
                                 options={"train": {"algo": "a2c",
                                                    "episodes_per_iter": per_iter}}))
    start(role)
    for name in [CHANNEL_SERVER, *NODES]:
        deliver(role, hello(name))
    for name in NODES:
        deliver(role, mk(Heartbeat, name, slot=-1))
    return role


def experience(b: int, slot: int, gains: np.ndarray) -> Experience:
    agent = BsAgent(b, SC, "full", SEED, action_mode="sample")
    agent.decide(csi_slice(gains, b)[None], np.zeros(1))
    assert agent.last_obs is not None and agent.last_raw is not None
    return mk(Experience, NODES[b], slot=slot, obs=agent.last_obs, action=agent.last_raw,
              reward=np.zeros(1), next_obs=np.zeros((0, agent.last_obs.shape[-1])),
              done=np.array([True]), step=0)


def test_controller_deploys_weights_after_an_iteration_and_resumes_after_every_ack() -> None:
    role = training_controller(slots=6, per_iter=2)
    before = {k: v.detach().numpy().copy()
              for k, v in node_policy("full", SC, SEED).state_dict().items()}
    gains = channel(SEED, 2)
    out = Outbox()
    for n in range(2):
        for b in range(B):
            out = deliver(role, experience(b, n, gains[n]), now=1.0)
            assert sends(out, Weights) == []
        out = deliver(role, outcome(n), now=1.0 + n)
    weights = sends(out, Weights)
    assert [w.dest for w in weights] == NODES
    assert {w.payload["version"] for w in weights} == {1} and {w.slot for w in weights} == {2}
    assert role.part.snapshot is not None and role.part.snapshot[0] == 1
    new = dict(zip(weights[0].payload["names"], weights[0].payload["arrays"], strict=True))
    assert set(new) == set(before)
    assert any(not np.array_equal(new[k], before[k]) for k in before)  # it learned
    for k, v in role.part.snapshot[1].items():
        np.testing.assert_array_equal(new[k], v)
    assert out.timers["acks"] == pytest.approx(2.0 + 4 * TIMING.peer_timeout_s)
    assert sends(out, Resume) == []
    # acks: a wrong version does not count; Resume once all have the new version
    assert deliver(role, mk(WeightsAck, NODES[0], slot=2, version=0)).sends == []
    for name in NODES[:2]:
        assert deliver(role, mk(WeightsAck, name, slot=2, version=1)).sends == []
    out = deliver(role, mk(WeightsAck, NODES[2], slot=2, version=1))
    resume = one(out, Resume, CHANNEL_SERVER)
    assert resume.slot == 2 and resume.payload == {"version": 1}
    assert out.timers["acks"] is None and role.deploying is None


def test_controller_names_the_nodes_that_did_not_acknowledge_weights() -> None:
    role = training_controller(slots=6, per_iter=2)
    gains = channel(SEED, 2)
    for n in range(2):
        for b in range(B):
            deliver(role, experience(b, n, gains[n]))
        deliver(role, outcome(n))
    deliver(role, mk(WeightsAck, NODES[1], slot=2, version=1))
    out = fire(role, "acks", now=30.0)
    assert any("no weights v1 acknowledgement from node-0, node-2" in e for e in role.errors)
    assert sorted(s.dest for s in sends(out, Stop)) == sorted([CHANNEL_SERVER, *NODES])
    assert role.phase == "reports"


# =========================================================================== validation
# Issue 12, point 2: each hostile or malformed message of the probe, fed to the
# real role through ``Role.receive`` (the entry both drivers use), is dropped and counted
# under a reason that names the problem; the role's state is what it was.


def only_reason(role: object, *words: str) -> str:
    """The one reason ``role`` rejected under; it holds every word."""
    reasons = role.rejected  # type: ignore[attr-defined]
    assert len(reasons) == 1, reasons
    (reason, n), = reasons.items()
    assert n == 1
    for w in words:
        assert w in reason, reason
    return reason


def test_reasons_are_bounded() -> None:
    role, _ = air_role(slots=3)
    for i in range(MAX_REASONS + 10):
        role.reject(transmit(NODES[0], 0, np.ones(K)), "reason " + "x" * i)
    assert len(role.rejected) == MAX_REASONS + 1
    assert role.rejected["other reasons"] == 10


# ----------------------------------------------------------------------------- the air

@pytest.mark.parametrize(("powers", "words"), [
    (np.full(K, 1000.0), ("powers outside",)),          # the 1000 W per user
    (np.array([np.nan] * K), ("NaN",)),
    (np.ones(K + 1), ("shape",)),
])
def test_air_drops_a_transmission_a_radio_cannot_send(powers: np.ndarray,
                                                       words: tuple[str, ...]) -> None:
    role, _ = air_role(slots=3)
    assert deliver(role, transmit(NODES[0], 0, powers)).sends == []
    only_reason(role, "transmit", *words)
    assert role.got == {} and role.n == 0


def test_air_counts_senders_that_may_not_transmit_and_second_transmissions() -> None:
    role, _ = air_role(slots=3)
    deliver(role, transmit("node-9", 0, np.ones(K)))    # the IndexError
    deliver(role, transmit(CONTROLLER, 0, np.ones(K)))  # a process that does not transmit
    deliver(role, transmit(NODES[0], 0, np.ones(K)))
    deliver(role, transmit(NODES[0], 0, np.ones(K)))
    assert role.rejected == {"transmit from unknown sender": 1,
                             "transmit from a controller (only node may send it)": 1,
                             "transmit: a second transmission for the slot": 1}
    assert sorted(role.got) == [0]


def test_a_node_cannot_stop_or_start_the_air() -> None:
    role, _ = air_role(slots=3)
    out = deliver(role, mk(Stop, NODES[1], slot=0, reason="forged"))
    assert out.sends == [] and not role.done
    only_reason(role, "stop", "only controller")


# ----------------------------------------------------------------------------- a node

def test_node_drops_a_power_list_with_a_bs_it_does_not_have() -> None:
    role, _ = node_role(1, "round-robin")
    g = channel(11, 1)[0]
    deliver(role, mk(PowerForward, NODES[0], slot=0, order=[99], powers=np.ones((1, K))))
    only_reason(role, "power_forward", "order", "outside")
    # the slot still runs: the real list then the slice decide it
    role.rejected.clear()
    deliver(role, mk(PowerForward, NODES[0], slot=0, order=[0], powers=np.ones((1, K))))
    out = deliver(role, csi(1, 0, g, order=[0, 1, 2]))
    assert [s.cls for s in out.sends][0] is Transmit and role.rejected == {}


@pytest.mark.parametrize(("sender", "order", "powers", "words"), [
    (NODES[0], [0], np.full((1, K), 1e9), ("outside",)),      # the 1e9 W
    (NODES[0], [0], np.full((1, K), np.nan), ("NaN",)),
    (NODES[2], [0], np.ones((1, K)), ("ends with BS 0",)),    # not from its last BS
    (NODES[0], [0, 0], np.ones((2, K)), ("repeats",)),
    (NODES[0], [1], np.ones((1, K)), ("holds this BS",)),
    (NODES[0], [0], np.ones((2, K)), ("shape",)),
])
def test_node_drops_forged_power_lists(sender: str, order: list[int], powers: np.ndarray,
                                       words: tuple[str, ...]) -> None:
    role, _ = node_role(1, "round-robin")
    assert deliver(role, mk(PowerForward, sender, slot=0, order=order,
                            powers=powers)).sends == []
    only_reason(role, "power_forward", *words)
    assert role.part.slots.get(0) is None or role.part.slots[0].forward is None


def test_node_drops_slices_and_decisions_from_the_wrong_process_or_slot() -> None:
    role, _ = node_role(0, "centralized")
    g = channel(11, 1)[0]
    forged = dataclasses.replace(csi(0, 0, g), sender=NODES[1])
    deliver(role, forged)
    deliver(role, mk(Decision, CONTROLLER, slot=10**9, powers=np.ones(K)))
    deliver(role, mk(Decision, CONTROLLER, slot=0, powers=np.full(K, -1.0)))
    assert role.rejected == {
        "csi_slice from a node (only channel-server may send it)": 1,
        "decision: slot 1000000000 outside the run's [0, 10)": 1,
        "decision: powers outside [0.0, %r]" % (RADIO.pmax_w * (1 + 1e-12)): 1}
    assert role.part.slots == {}


def test_node_drops_a_join_with_a_bad_address() -> None:
    role, _ = node_role(0, "full")
    out = deliver(role, mk(Join, CONTROLLER, slot=3, node=1, address="garbage"))
    assert out.connects == []
    only_reason(role, "join", "address")


# ----------------------------------------------------------------------------- controller

def test_controller_drops_a_hello_with_a_garbage_address_or_a_false_role() -> None:
    role, _ = controller()
    deliver(role, dataclasses.replace(hello(NODES[0]), host="garbage"))
    deliver(role, dataclasses.replace(hello(NODES[1]), node_id=2))
    deliver(role, dataclasses.replace(hello(NODES[1]), sender="node-9"))
    assert role.rejected == {
        "hello: address 'garbage' is not tcp://host:port, ipc:// or inproc://": 1,
        "hello: node-1 claims role 'node' id 2": 1,
        "hello from unknown sender": 1}
    assert role.directory == {}


@pytest.mark.parametrize(("change", "words"), [
    ({"sum_rate_bps_hz": math.inf}, ("sum-rate is inf",)),
    ({"sum_rate_bps_hz": 1e9}, ("not the sum of the rates",)),    # the 1e9
    ({"sum_rate_bps_hz": math.nan}, ("sum-rate is nan",)),
    ({"powers": np.full((B, K), 1e9)}, ("powers outside",)),
    ({"rates": np.full((B, K), np.nan)}, ("rates", "NaN")),
    ({"powers": np.ones((B + 1, K))}, ("powers has shape",)),
    ({"slot": 1}, ("out of order",)),
    ({"lost": [B]}, ("lost",)),
])
def test_controller_drops_forged_outcomes_and_records_nothing(change: dict[str, object],
                                                              words: tuple[str, ...]) -> None:
    role = running(slots=4)
    deliver(role, dataclasses.replace(outcome(0), **change))
    only_reason(role, "slot_outcome", *words)
    assert role.part.recorder.done == 0
    deliver(role, outcome(0))  # the real one is recorded
    assert role.part.recorder.done == 1


def test_controller_ignores_a_forged_done_and_outcomes_from_a_node() -> None:
    role = running(slots=4)
    deliver(role, mk(Done, CHANNEL_SERVER, slot=1, slots=1))
    deliver(role, dataclasses.replace(outcome(0), sender=NODES[0]))
    assert not role.air_done and role.phase == "run"
    assert role.rejected == {"done: done after 1 slots; the run has 4": 1,
                             "slot_outcome from a node (only channel-server may send it)": 1}
    summary = role.summary_extra()
    assert summary["rejected"] == {CONTROLLER: role.rejected} and summary["rejected_total"] == 2


def test_rejected_messages_are_csi_slices_only_from_the_air() -> None:
    assert CsiSlice.SENDERS == (CHANNEL_SERVER,) and Hello.SENDERS == (CHANNEL_SERVER, "node")
    assert SlotOutcome.SENDERS == (CHANNEL_SERVER,)


# =========================================================================== restarts


def test_channel_server_holds_the_slots_for_a_silent_controller_and_sends_them_again() -> None:
    """The controller falls silent: the air says hello again, finishes the slot under way
    (feedback to the nodes, its outcome kept, not sent), begins no new one; a controller that
    takes it back from slot 1 gets the outcomes of slots 1 and 2 again, in order, and the
    next slot begins."""
    role, _ = air_role(slots=6)
    gains = channel(SEED, 4)
    p = np.full((B, K), 2.0)
    for b in range(B):
        out = deliver(role, transmit(NODES[b], 0, p[b]))
    first = one(out, SlotOutcome, CONTROLLER)
    for b in range(B):
        deliver(role, transmit(NODES[b], 1, p[b]))
    out = Outbox()
    role.peer_silent(CONTROLLER, 1.5, 2.0, out)
    assert one(out, Hello, CONTROLLER).payload["pid"] == role.host.pid
    # said again because of the wall time: not numbered, the protocol's seqs stay the same
    assert not one(out, Hello, CONTROLLER).numbered
    assert out.timers["orphan"] == 2.0 + REATTACH_WAIT_S
    for b in range(B):  # slot 2 ends while the controller is lost
        out = deliver(role, transmit(NODES[b], 2, p[b]), now=2.5)
    assert sends(out, SlotOutcome) == [] and sends(out, CsiSlice) == []
    assert len(sends(out, Measurement)) == B
    # a Start that is not a reattach, or one from a slot not played yet, is rejected
    assert deliver(role, start_msg("max-power", 6)).sends == []
    too_far = start_msg("max-power", 6, {"reattach": {"from_slot": 4}})
    assert deliver(role, too_far).sends == []
    assert sum(role.rejected.values()) == 2 and role.orphaned
    out = deliver(role, start_msg("max-power", 6, {"reattach": {"from_slot": 1}}), now=3.0)
    again = sends(out, SlotOutcome, CONTROLLER)
    assert [s.slot for s in again] == [1, 2]
    for s in again:
        assert s.payload["sum_rate_bps_hz"] == pytest.approx(
            float(sum_rate_bps_hz(gains[s.slot], p, RADIO.noise_w)), rel=1e-12)
    assert first.payload["sum_rate_bps_hz"] == pytest.approx(
        float(sum_rate_bps_hz(gains[0], p, RADIO.noise_w)), rel=1e-12)
    assert out.timers["orphan"] is None and not role.orphaned
    assert {s.slot for s in sends(out, CsiSlice)} == {3}


def test_channel_server_waits_for_the_controller_rather_than_losing_nodes() -> None:
    """While the controller is lost the nodes may be waiting on it (central decisions): the
    collect timer is put off instead of declaring them lost; without any controller for
    REATTACH_WAIT_S the channel server gives up."""
    role, _ = air_role(slots=4)
    role.peer_silent(CONTROLLER, 1.5, 1.0, Outbox())
    out = fire(role, "collect", now=TIMING.peer_timeout_s)
    assert role.active == list(range(B)) and out.timers["collect"] > TIMING.peer_timeout_s
    fire(role, "orphan", now=1.0 + REATTACH_WAIT_S)
    assert role.done and "silent for" in (role.failure or "")


def test_node_waits_for_a_silent_controller_and_uploads_again_what_waits_on_it() -> None:
    """A central node whose controller falls silent says hello again and waits up to
    REATTACH_WAIT_S (not 4 peer timeouts); a controller that takes it back gets the CSI of
    the slot still waiting for a decision again; the decision is then taken once."""
    role, _ = node_role(1, "wmmse")
    gains = channel(SEED, 2)
    deliver(role, csi(1, 0, gains[0]))
    out = Outbox()
    role.peer_silent(CONTROLLER, 1.5, 2.0, out)
    assert one(out, Hello, CONTROLLER).payload["node_id"] == 1
    assert not one(out, Hello, CONTROLLER).numbered  # said again: not numbered
    fire(role, "watch", now=4 * TIMING.peer_timeout_s + 3.0)
    assert not role.done  # a node whose controller was not lost gives up at 4 timeouts
    fire(role, "watch", now=2.0 + REATTACH_WAIT_S - 0.1)
    assert not role.done
    assert deliver(role, start_msg("wmmse")).sends == []  # not a reattach: rejected
    out = deliver(role, start_msg("wmmse", options={"reattach": {}}), now=5.0)
    up = one(out, CsiUpload, CONTROLLER)
    assert up.slot == 0
    np.testing.assert_array_equal(up.payload["gains"], csi_slice(gains[0], 1))
    decision = mk(Decision, CONTROLLER, slot=0, chain=0.004, powers=np.array([3.0, 7.0]))
    one(deliver(role, decision), Transmit, CHANNEL_SERVER)
    assert deliver(role, decision).sends == []  # the same decision twice: rejected
    assert role.reattached == 1 and role.orphaned_at is None


def test_a_restarted_controller_continues_from_its_state_and_takes_the_run_back(
        tmp_path: Any) -> None:
    """The state a controller saves, loaded by a new one (``reattach``): the slots recorded,
    the processes by pid; a survivor's hello gets a reattach Start, the channel server's one
    from the first slot not recorded; what the channel server sent before its hello is
    dropped (it sends it again) and the run goes on."""
    role, _ = controller(slots=6)
    role.out_dir = tmp_path
    for name in [CHANNEL_SERVER, *NODES]:
        deliver(role, hello(name))
    for name in NODES:
        deliver(role, mk(Heartbeat, name, slot=-1))
    for n in range(3):
        deliver(role, outcome(n))
    role.save_state()
    with pytest.raises(ValueError, match="seed"):
        ControllerRole(RES, "max-power", 6, SEED + 1, "network", out_dir=tmp_path,
                       reattach=True)
    with pytest.raises(ValueError, match="does not exist"):
        ControllerRole(RES, "max-power", 6, SEED, "network", out_dir=tmp_path / "x",
                       reattach=True)
    new = hosted(ControllerRole(RES, "max-power", 6, SEED, "network", out_dir=tmp_path,
                                reattach=True))
    assert new.phase == "reattach" and new.done_slots == 3 and new.attempt == 1
    assert new.part.recorder.sum_rates == role.part.recorder.sum_rates
    out = start(new)
    assert sorted(out.connects) == sorted(DIRECTORY.items())
    # every process is told: one that missed the old controller's death says hello again
    assert sorted(s.dest for s in sends(out, Restarted)) == sorted(DIRECTORY)
    assert deliver(new, outcome(3)).sends == []  # before the channel server's hello: kept
    stranger = mk(Hello, NODES[0], slot=-1, role="node", node_id=0, pid=4242,
                  host=DIRECTORY[NODES[0]])
    assert deliver(new, stranger).sends == []  # another pid: not a survivor, kept for later
    out = deliver(new, hello(NODES[1]))
    assert one(out, Start, NODES[1]).payload["options"]["reattach"] == {}
    assert not one(out, Start, NODES[1]).numbered  # answers a hello said again
    out = deliver(new, hello(CHANNEL_SERVER), now=1.0)
    start_air = one(out, Start, CHANNEL_SERVER)
    assert start_air.payload["options"]["reattach"] == {"from_slot": 3}
    assert new.phase == "run" and new.superseded == 1 and new.done_slots == 3
    assert one(out, Start, NODES[0]).payload["options"].get("reattach") is None  # rejoins
    deliver(new, outcome(3))
    assert new.done_slots == 4 and not new.rejected
    assert new.summary_extra()["reattached"] == [NODES[1], CHANNEL_SERVER]
    metrics = (tmp_path / "metrics.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in metrics[1:]] == ["0", "1", "2", "3"]


def test_a_new_channel_server_takes_over_with_the_channel_fast_forwarded() -> None:
    """Start with ``restart``: the air made as the dead one made it up to the slot, the
    nodes it still had; slot 3's slices are the channel and order an uninterrupted air
    gives slot 3 (independently built)."""
    role, out = air_role(slots=6, options={"restart": {"from_slot": 3, "active": [0, 2]}})
    gains, order = channel(SEED, 4), orders(SEED, 4)
    slices = sends(out, CsiSlice)
    assert [s.dest for s in slices] == [NODES[0], NODES[2]] and {s.slot for s in slices} == {3}
    for s in slices:
        b = NODES.index(s.dest)
        np.testing.assert_array_equal(s.payload["gains"], csi_slice(gains[3], b))
        assert s.payload["order"] == [x for x in order[3] if x != 1]
    assert role.n == 3 and role.lost == [1]
    bad, _ = air_role(slots=6, options={"restart": {"from_slot": 9, "active": [0]}})
    assert bad.done and "cannot take over" in (bad.failure or "")


def test_node_waits_for_a_new_channel_server_and_serves_its_slots_again() -> None:
    role, _ = node_role(0, "full")
    gains = channel(SEED, 2)
    one(deliver(role, csi(0, 0, gains[0])), Transmit, CHANNEL_SERVER)
    deliver(role, mk(AirRestart, CONTROLLER, slot=1, address=""), now=1.0)
    fire(role, "watch", now=1.0 + 4 * TIMING.peer_timeout_s + 1.0)
    assert not role.done  # waiting for the new channel server, not giving up
    deliver(role, csi(0, 1, gains[1]), now=2.0)  # the old one's last slice, never served
    out = deliver(role, mk(AirRestart, CONTROLLER, slot=1, address="inproc://air-2"), now=3.0)
    assert out.connects == [(CHANNEL_SERVER, "inproc://air-2")]
    assert one(out, Heartbeat, CONTROLLER).slot == 1
    out = deliver(role, csi(0, 1, gains[1]), now=3.1)  # slot 1 again: served, not rejected
    one(out, Transmit, CHANNEL_SERVER)
    assert not role.rejected and role.air_lost_at is None


def test_controller_replaces_a_dead_channel_server_once_the_nodes_are_ready() -> None:
    role, _ = controller(scheme="max-power", slots=6)
    role.options["air_restarts"] = 1
    role.air_restarts_left = 1
    for name in [CHANNEL_SERVER, *NODES]:
        deliver(role, hello(name))
    for name in NODES:
        deliver(role, mk(Heartbeat, name, slot=-1))
    deliver(role, outcome(0))
    out = Outbox()
    role.peer_silent(CHANNEL_SERVER, 0.6, 5.0, out)
    assert [(s.dest, s.payload["address"]) for s in sends(out, AirRestart)] == [
        (n, "") for n in NODES]
    assert not role.done and role.phase == "run"
    fire(role, "silence", now=5.0 + 3 * TIMING.peer_timeout_s)  # waits, does not stop
    assert role.phase == "run"
    new = mk(Hello, CHANNEL_SERVER, slot=-1, role="channel-server", node_id=-1, pid=2000,
             host="inproc://air-2")
    out = deliver(role, new, now=6.0)
    assert out.connects == [(CHANNEL_SERVER, "inproc://air-2")]
    assert {(s.dest, s.slot) for s in sends(out, AirRestart)} == {(n, 1) for n in NODES}
    assert sends(out, Start) == []
    for name in NODES[:-1]:
        assert sends(deliver(role, mk(Heartbeat, name, slot=1)), Start) == []
    out = deliver(role, mk(Heartbeat, NODES[-1], slot=1), now=6.5)
    start_air = one(out, Start, CHANNEL_SERVER)
    assert start_air.payload["options"]["restart"] == {"from_slot": 1, "active": [0, 1, 2]}
    deliver(role, outcome(1))
    assert role.done_slots == 2 and role.summary_extra()["air_restarts"] == 1
    # no restart left: a second death stops the run, a third hello is refused
    role.peer_silent(CHANNEL_SERVER, 0.6, 9.0, Outbox())
    assert role.phase == "reports" and "silent" in role.errors[-1]


def test_a_restarted_controllers_word_counts_as_the_old_ones_silence() -> None:
    """``Restarted`` from a new controller: the air and a node that had not noticed the old
    one die hold on and say hello again, once."""
    air, _ = air_role(slots=4)
    nd, _ = node_role(2, "full")
    for role, pid_key in ((air, "pid"), (nd, "node_id")):
        out = deliver(role, mk(Restarted, CONTROLLER, slot=-1))
        assert pid_key in one(out, Hello, CONTROLLER).payload
        assert deliver(role, mk(Restarted, CONTROLLER, slot=-1)).sends == []
    assert air.orphaned and nd.orphaned_at is not None
