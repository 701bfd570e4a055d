"""Durable network training (issue 12 point 4), in memory: the experience ledger, the
training journal (training.csv, updates.jsonl, checkpoints), learner state round trips, the
roles' at-least-once experience with deduplication, and resuming a run from a checkpoint
with the local runner (the pump over the very roles of the network runner), which must end
with the weights, curve and slot records of an uninterrupted run, bit for bit."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from channel_server.air import Air
from channel_server.kinds import resolve
from channel_server.rates import csi_slice
from controller.learners.collect import ExperienceLedger
from controller.learners.dqn import Dqn, DqnConfig, Transitions
from controller.learners.journal import (
    TrainingJournal,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from controller.learners.state import dqn_state, load_dqn
from controller.learners.threads import torch_threads
from controller.roles.controller import ControllerRole
from controller.runners.local import run_local
from controller.runners.pump import MemoryHost
from node.agent import BsAgent
from node.roles.node import NodeRole
from protocols.messages import (
    CsiSlice,
    Experience,
    ExperienceAck,
    Heartbeat,
    Hello,
    Message,
    SlotOutcome,
    Start,
    Weights,
)
from protocols.names import CHANNEL_SERVER, CONTROLLER
from protocols.role import Outbox, Role, Send
from protocols.seeding import rng_for
from tests.helpers import S3, SV

RES = resolve(S3)
SC = RES.scenario
B, K = SC.radio.n_cells, SC.radio.users_per_cell
NODES = [f"node-{b}" for b in range(B)]
SEED = 11
DIRECTORY = {CHANNEL_SERVER: "inproc://channel-server", **{n: f"inproc://{n}" for n in NODES}}


@pytest.fixture(autouse=True)
def one_torch_thread() -> Any:
    with torch_threads(1):
        yield


# --------------------------------------------------------------------------- harness
# (the roles driven by hand, as tests/unit/test_roles.py does)

_seq = iter(range(1, 1 << 30))


def mk(cls: type[Message], sender: str, slot: int = 0, **payload: Any) -> Any:
    return cls(sender=sender, seq=next(_seq), slot=slot, sent_ns=time.time_ns(),
               chain_latency_s=0.0, **payload)


def deliver(role: Role, msg: Message, now: float = 0.0) -> Outbox:
    out = Outbox()
    role.receive(msg, now, out)
    return out


def sends(out: Outbox, cls: type[Message]) -> list[Send]:
    return [s for s in out.sends if s.cls is cls]


def as_message(s: Send, sender: str) -> Any:
    """What the receiver gets of a send (a fresh header: a resend gets a new seq)."""
    return mk(s.cls, sender, slot=s.slot, **s.payload)


def gains(slots: int) -> list[np.ndarray]:
    air = Air(SC.radio, SEED, episodes=1)
    return [(air.reset() if n == 0 else air.step())[0].copy() for n in range(slots)]


def controller(out_dir: Path, slots: int = 4, per_iter: int = 2,
               **train: Any) -> ControllerRole:
    """A running 'full' training controller (every node ready)."""
    role = ControllerRole(RES, "full", slots, SEED, "local", out_dir=out_dir,
                          options={"train": {"algo": "a2c", "episodes_per_iter": per_iter,
                                             "checkpoint_every": 1, **train}})
    role.host = MemoryHost(CONTROLLER)
    role.start(0.0, Outbox())
    for name in [CHANNEL_SERVER, *NODES]:
        deliver(role, mk(Hello, name, slot=-1, role="channel-server" if name == CHANNEL_SERVER
                         else "node", node_id=-1 if name == CHANNEL_SERVER else int(name[-1]),
                         pid=1, host=DIRECTORY[name]))
    for name in NODES:
        deliver(role, mk(Heartbeat, name, slot=-1))
    assert role.phase == "run"
    return role


def node(b: int, train: dict[str, Any] | None = None) -> NodeRole:
    role = NodeRole("node", b)
    role.host = MemoryHost(role.name)
    role.start(0.0, Outbox())
    deliver(role, start_msg(train))
    return role


def start_msg(train: dict[str, Any] | None = None, **more: Any) -> Start:
    return mk(Start, CONTROLLER, slot=-1, scheme="full", slots=6, seed=SEED,
              config_toml=RES.toml(),
              options={"directory": dict(DIRECTORY), "action_mode": "sample",
                       "train": {"algo": "a2c", "episodes_per_iter": 2, **(train or {})},
                       **more})


def csi(b: int, n: int, g: np.ndarray) -> CsiSlice:
    return mk(CsiSlice, CHANNEL_SERVER, slot=n, gains=csi_slice(g, b), order=list(range(B)),
              active=list(range(B)))


def outcome(n: int) -> SlotOutcome:
    return mk(SlotOutcome, CHANNEL_SERVER, slot=n, powers=np.ones((B, K)),
              rates=np.ones((B, K)), sum_rate_bps_hz=float(B * K),
              decision_latency_s=np.full(B, 0.002), missed=np.zeros(B, dtype=bool), lost=[],
              wall_s=0.001, compute_s=np.full(B, SC.timing.compute_s))


def experience(b: int, n: int, g: np.ndarray) -> Experience:
    agent = BsAgent(b, SC, "full", SEED, action_mode="sample")
    agent.decide(csi_slice(g, b)[None], np.zeros(1))
    assert agent.last_obs is not None and agent.last_raw is not None
    return mk(Experience, NODES[b], slot=n, obs=agent.last_obs, action=agent.last_raw,
              reward=np.zeros(1), next_obs=np.zeros((0, agent.last_obs.shape[-1])),
              done=np.array([True]), step=0)


def text(path: Path) -> str:
    return path.read_bytes().decode()  # no newline translation: the CSV ends lines \r\n


def updates(out: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (out / "updates.jsonl").read_text().splitlines()]


# --------------------------------------------------------------------------- the ledger


def test_ledger_admits_each_node_seq_once_and_acknowledges_without_gaps() -> None:
    led = ExperienceLedger()
    assert led.admit("node-0", 0, 5) and led.admit("node-0", 1, 9)
    assert not led.admit("node-0", 1, 12)  # a resend: the same seq, a new header seq
    assert led.admit("node-1", 1, 3)  # another node's seq 1 is another experience
    assert led.use(range(0, 2)) == {"node-0": [(0, 5), (1, 9)], "node-1": [(1, 3)]}
    led.close_below(2)
    assert not led.admit("node-0", 0, 20)  # used
    assert not led.admit("node-1", 0, 21)  # of a slot no update can take any more
    assert led.duplicates == 3
    assert led.admit("node-0", 3, 22) and led.admit("node-0", 5, 23)
    assert led.durable() == {"node-0": 1, "node-1": 1}  # 2 missing: 3 and 5 wait
    assert led.admit("node-0", 2, 24)
    assert led.durable() == {"node-0": 3, "node-1": 1}
    back = ExperienceLedger()
    back.restore(json.loads(json.dumps(led.state())))
    assert back.state() == led.state() and not back.admit("node-0", 5, 99)


def test_ledger_remembers_what_it_used_above_its_floor() -> None:
    """A V2X period's last slot is used by the update after the slots below it are closed
    (it waits for the next slot's observations): used above the floor, a resend of it (to a
    restarted controller, which restored this ledger) is still a duplicate."""
    led = ExperienceLedger()
    for seq in (98, 99, 100):
        assert led.admit("vehicle-0", seq, seq)
    assert led.use([100]) == {"vehicle-0": [(100, 100)]}
    led.close_below(99)  # 98 closed; 99 still waits
    back = ExperienceLedger()
    back.restore(json.loads(json.dumps(led.state())))
    for ledger in (led, back):
        assert not ledger.admit("vehicle-0", 100, 7)  # used: never twice
        assert not ledger.admit("vehicle-0", 98, 8)
        assert ledger.durable() == {"vehicle-0": 100}
        assert ledger.use([99]) == {"vehicle-0": [(99, 99)]}
        assert ledger.floor["vehicle-0"] == 100 and not ledger.used.get("vehicle-0")


# --------------------------------------------------------------------------- the journal


def test_journal_streams_rows_and_lines_and_cuts_them_back_to_a_checkpoint(
        tmp_path: Path) -> None:
    j = TrainingJournal(tmp_path)
    assert j.start(resume=True) is None  # nothing to resume: an empty start
    used = {"node-0": [(0, 4), (1, 7)]}
    j.updated({"version": 1.0, "a": 0.5}, 1, range(0, 2), used, None)
    assert text(tmp_path / "training.csv") == "a,version\r\n0.5,1.0\r\n"
    # a row with a new column rewrites the file with the union of the columns
    j.updated({"version": 2.0, "a": 0.25, "b": float("nan")}, 2, range(2, 4), {}, None)
    assert text(tmp_path / "training.csv") == (
        "a,b,version\r\n0.5,,1.0\r\n0.25,nan,2.0\r\n")
    j.checkpoint({"x": np.arange(3)}, {"version": 2, "slot": 4})
    j.updated({"version": 3.0, "a": 0.125, "b": 1.0}, 3, range(4, 6), {}, None)
    assert [u["version"] for u in updates(tmp_path)] == [1, 2, 3]
    assert updates(tmp_path)[0] == {"version": 1, "slots": [0, 1], "attempt": 0,
                                    "experience": {"node-0": [0, 1]},
                                    "message_seq": {"node-0": [4, 7]}}
    with (tmp_path / "updates.jsonl").open("a") as f:
        f.write('{"version": 4, "sl')  # cut short by a kill
    # resumed: back to the checkpoint's version 2
    j2 = TrainingJournal(tmp_path, attempt=1)
    ck = j2.start(resume=True)
    assert ck is not None and ck.version == 2 and ck.slot == 4 and ck.meta["attempt"] == 0
    np.testing.assert_array_equal(ck.arrays["x"], np.arange(3))
    assert [u["version"] for u in updates(tmp_path)] == [1, 2]
    assert text(tmp_path / "training.csv") == (
        "a,b,version\r\n0.5,,1.0\r\n0.25,nan,2.0\r\n")
    j2.updated({"version": 3.0, "a": 0.0, "b": 0.0}, 3, range(4, 6), {}, None)
    assert [(u["version"], u["attempt"]) for u in updates(tmp_path)] == [(1, 0), (2, 0), (3, 1)]
    # a fresh (not resumed) run in the same folder never resumes the old checkpoints
    assert TrainingJournal(tmp_path).start(resume=False) is None
    assert latest_checkpoint(tmp_path) is None and updates(tmp_path) == []
    assert not (tmp_path / "training.csv").exists()


def test_checkpoints_are_whole_files_and_only_the_newest_are_kept(tmp_path: Path) -> None:
    for v in range(1, 6):
        save_checkpoint(tmp_path, {"w": np.full(2, float(v))}, {"version": v, "slot": 8 * v},
                        keep=3)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["ckpt-v000003.npz", "ckpt-v000004.npz", "ckpt-v000005.npz"]
    ck = load_checkpoint(latest_checkpoint(tmp_path))  # type: ignore[arg-type]
    assert ck.version == 5 and ck.slot == 40 and ck.arrays["w"].tolist() == [5.0, 5.0]
    with pytest.raises(ValueError, match="seed = None"):
        ck.check(seed=3)


def test_dqn_state_round_trip_keeps_the_replay_layout(tmp_path: Path) -> None:
    """A restored DQN draws the same replay rows and steps to the same weights, also when
    its replay has wrapped around (sampling draws positions, not ages)."""
    cfg = DqnConfig(hidden=(8,), batch_size=4, replay_capacity=6, learning_starts=1,
                    target_period=2, sharing="per-agent")

    def dqn() -> Dqn:
        return Dqn(3, 4, 2, cfg, rng_for(1, "dqn-test"))

    rng = np.random.default_rng(0)
    a = dqn()
    for _ in range(5):  # 10 rows per agent into 6: wrapped
        a.observe(Transitions(obs=rng.random((2, 2, 3)), actions=rng.integers(0, 4, (2, 2)),
                              rewards=rng.random(2), next_obs=rng.random((2, 2, 3)),
                              terminated=np.zeros(2)))
        a.step()
    b = dqn()
    load_dqn(b, {k: np.array(v) for k, v in dqn_state(a).items()})
    for _ in range(3):
        a.step()
        b.step()
    for k, v in a.get_variables().items():
        np.testing.assert_array_equal(v, b.get_variables()[k], err_msg=k)


# --------------------------------------------------------------------------- roles


def test_a_resent_experience_is_used_exactly_once(tmp_path: Path) -> None:
    """At-least-once, deduplicated: a node keeps what the controller did not acknowledge
    and sends it again to a restarted controller (a second Start); the controller uses each
    (node, seq) once, whatever the header seq, and acknowledges after a checkpoint."""
    g = gains(4)
    nodes = [node(b) for b in range(B)]
    ctl = controller(tmp_path / "run")
    sent: dict[int, list[Experience]] = {b: [] for b in range(B)}

    def play(n: int) -> Outbox:
        """Slot n: every node acts and uploads; the outbox of the slot's outcome."""
        for b, nd in enumerate(nodes):
            got = deliver(nd, csi(b, n, g[n]))
            for s in sends(got, Experience):
                sent[b].append(as_message(s, NODES[b]))
                deliver(ctl, sent[b][-1])
        return deliver(ctl, outcome(n))

    play(0)
    # the controller restarts: every node sends its unacknowledged slot 0 again
    resent = [[as_message(s, NODES[b])
               for s in sends(deliver(nd, start_msg(reattach={})), Experience)]
              for b, nd in enumerate(nodes)]
    assert [[m.slot for m in r] for r in resent] == [[0]] * B
    for b in range(B):
        assert resent[b][0].seq != sent[b][0].seq  # a new header: the seq is the slot
        np.testing.assert_array_equal(resent[b][0].obs, sent[b][0].obs)
        deliver(ctl, resent[b][0])
    assert ctl.part.ledger.duplicates == B
    out = play(1)  # the update of slots 0-1, then a checkpoint (every update)
    lines = updates(tmp_path / "run")
    assert lines == [{"version": 1, "slots": [0, 1], "attempt": 0,
                      "experience": {n: [0, 1] for n in NODES},
                      "message_seq": {n: [sent[b][0].seq, sent[b][1].seq]
                                      for b, n in enumerate(NODES)}}]
    # the batch held one upload per node and slot: the learner's update on it is the
    # controller's (twin: the same slots, no resends)
    twin = controller(tmp_path / "twin")
    for n in range(2):
        for b in range(B):
            deliver(twin, sent[b][n])
        deliver(twin, outcome(n))
    assert twin.part.snapshot is not None and ctl.part.snapshot is not None
    for k, v in twin.part.snapshot[1].items():
        np.testing.assert_array_equal(ctl.part.snapshot[1][k], v)
    # acknowledged: the nodes forget slots 0 and 1 and resend nothing more
    acks = sends(out, ExperienceAck)
    assert sorted(s.dest for s in acks) == NODES and {s.payload["upto"] for s in acks} == {1}
    assert [s.dest for s in out.sends if s.cls in (ExperienceAck, Weights)][:B] == NODES
    for b, nd in enumerate(nodes):
        deliver(nd, as_message(acks[b], CONTROLLER))
        assert sends(deliver(nd, start_msg()), Experience) == []
    # a resend that comes late (after its update) is dropped too, not trained on again
    deliver(ctl, resent[0][0])
    assert ctl.part.ledger.duplicates == B + 1


def test_a_restored_controller_drops_what_its_checkpoint_already_used(tmp_path: Path) -> None:
    g = gains(2)
    ctl = controller(tmp_path, slots=6)
    for n in range(2):
        for b in range(B):
            deliver(ctl, experience(b, n, g[n]))
        deliver(ctl, outcome(n))
    assert ctl.part.last_checkpoint is not None
    back = controller(tmp_path, slots=6, resume=1)
    assert back.part.resumed["slot"] == 2 and back.part.trainer.version == 1
    assert back.options["train"]["replay_until"] == 2  # what the nodes are told in Start
    deliver(back, experience(0, 1, g[1]))  # a node that missed the ack sends slot 1 again
    assert back.part.ledger.duplicates == 1


# --------------------------------------------------------------------------- resume, pump


def resumed_like_uninterrupted(tmp_path: Path, scenario: Path, scheme: str, slots: int,
                               train: dict[str, Any], crash_after: int,
                               files: tuple[str, ...]) -> dict[str, Any]:
    """Run uninterrupted (A); copy it as if the controller had died right after checkpoint
    ``crash_after`` (the later checkpoints gone); resume the copy (B). B must end with A's
    weights, bit for bit, and A's ``files``; B's summary."""
    res = resolve(scenario)
    a, b = tmp_path / "a", tmp_path / "b"
    sa = run_local(res, scheme, slots, 3, a, None, {"train": train, "action_mode": "sample"})
    assert not sa["errors"]
    shutil.copytree(a, b)
    for p in (b / "checkpoints").iterdir():
        if p.name != f"ckpt-v{crash_after:06d}.npz":
            p.unlink()
    assert (b / "checkpoints" / f"ckpt-v{crash_after:06d}.npz").exists()
    sb = run_local(res, scheme, slots, 3, b, None,
                   {"train": {**train, "resume": 1}, "action_mode": "sample"})
    assert not sb["errors"] and sb["resumed"]["version"] == crash_after
    wa, wb = np.load(a / "weights.npz"), np.load(b / "weights.npz")
    assert sorted(wa.files) == sorted(wb.files)
    for k in wa.files:
        if k != "__rrmbed__":
            np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    # what each update used is the same; header seqs are those of other processes
    ua, ub = updates(a), updates(b)
    assert ([{**u, "attempt": 0, "message_seq": {}} for u in ua]
            == [{**u, "attempt": 0, "message_seq": {}} for u in ub])
    assert [u["attempt"] for u in ub] == [0 if u["version"] <= crash_after else 1 for u in ub]
    return sb


def test_resumed_round_robin_training_ends_as_an_uninterrupted_run(tmp_path: Path) -> None:
    sb = resumed_like_uninterrupted(
        tmp_path, S3, "round-robin", 48,
        {"algo": "trpo", "episodes_per_iter": 8, "scheme": "round-robin", "checkpoint_every": 2},
        crash_after=2, files=("training.csv", "metrics.csv", "latency.csv"))
    assert sb["resumed"]["slot"] == 16 and sb["duplicate_experience"] == 0
    assert sb["slots"] == 48


def test_resumed_v2x_training_ends_as_an_uninterrupted_run(tmp_path: Path) -> None:
    """1300 slots, a broadcast every 100: the DQN starts learning at 1000 transitions, so
    the checkpoint of slot 1100 holds a trained network, its optimizers and a replay that
    the update at 1200 samples from."""
    sb = resumed_like_uninterrupted(
        tmp_path, SV, "marl-dqn", 1300,
        {"broadcast_period": 100, "sharing": "per-agent", "checkpoint_every": 1},
        crash_after=12, files=("training.csv", "metrics.csv", "episodes.csv"))
    assert sb["resumed"]["slot"] == 1100
    rows = (tmp_path / "b" / "training.csv").read_text().splitlines()
    assert len(rows) == 1 + 12 and ",1.0," in rows[-1]  # trained in the last updates
