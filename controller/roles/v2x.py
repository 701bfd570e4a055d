"""The controller's part of a V2X run: it records every slot outcome, broadcasts the
fingerprint (training iteration, epsilon) that every observation carries, and while
training feeds the vehicles' experience to the multi-agent DQN learner, updating every
``broadcast_period`` slots and sending each vehicle only its own network.

Training is durable as in the cellular part (:mod:`controller.roles.cellular`): training.csv,
updates.jsonl and weights.npz as updates happen; a checkpoint (the DQN with its replay and
optimizers, the experience held for the next update, the slots recorded, the ledger) at the
first update on an episode boundary once ``checkpoint_every`` updates have passed since the
last one, and at the end of the run. Only episode boundaries: within an episode the air and
the vehicles carry what the agents did (payload left, interference), which the slots played
again on resume, with other weights, would not reproduce; at a boundary both start afresh
and only the slot-driven draws (mobility, fading, the vehicles' exploration) count. The
final checkpoint is taken at the end rather than after the last update, which comes a
broadcast period or more before it (and so acknowledges nothing mid-run).

Under the scheme an outside learner decides (``external-learner``, the environments'
network runner) every vehicle uploads its observation; once every active vehicle's is in,
the slot's observations ``(K, D)`` go to the learner (:mod:`controller.roles.external`) and
each vehicle gets its action back.
"""

from __future__ import annotations

import json
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

import numpy as np

from channel_server.v2x import V2xScenario
from controller.evaluation.v2x_run import SlotRecord, V2xRecorder
from controller.learners.collect import ExperienceLedger
from controller.learners.journal import Checkpoint, TrainingJournal, open_journal
from controller.roles.external import EXTERNAL, ExternalSlots
from node.v2x_observation import observation_dim
from node.vehicle_agent import eval_fingerprint, own_weights, scheme_scenario
from protocols.messages import (
    Experience,
    ExperienceAck,
    Fingerprint,
    Message,
    ObsUpload,
    V2xOutcome,
)
from protocols.names import CHANNEL_SERVER, index_of
from protocols.role import Outbox
from protocols.validate import Rejected, check_array, check_indices, check_number
from protocols.weights import WeightsArtifact

if TYPE_CHECKING:
    from controller.roles.controller import ControllerRole


class V2xPart:
    external: ExternalSlots | None = None
    """Scheme ``external-learner``: a learner outside the testbed decides (set by
    :mod:`controller.envs.network`)."""

    def __init__(self, ctl: ControllerRole, scenario: V2xScenario,
                 weights: dict[str, np.ndarray] | None) -> None:
        self.ctl = ctl
        self.scenario = scheme_scenario(scenario, ctl.scheme)
        self.recorder = V2xRecorder(self.scenario, ctl.scheme, ctl.runner, ctl.seed, ctl.slots)
        if ctl.out_dir is not None:
            self.recorder.stream(ctl.out_dir)
        train = ctl.options.get("train")
        self.trainer: Any = None
        if train:
            from controller.learners.v2x_experience import V2xNetworkTrainer, marl_config

            self.trainer = V2xNetworkTrainer(self.scenario, ctl.scheme, ctl.seed, ctl.slots,
                                             int(train["broadcast_period"]),
                                             marl_config(str(train.get("sharing", "per-agent"))))
            if weights is not None:
                self.trainer.dqn.set_variables({k: v for k, v in weights.items()
                                                if k != "env_fingerprint"})
            weights = self.trainer.variables()
        self.snapshot: tuple[int, dict[str, np.ndarray]] | None = (
            (1, weights) if weights is not None else None)
        self.fixed_fingerprint = eval_fingerprint(weights)
        self.experience_latency_s: list[float] = []
        """Emulated latency of every experience upload (uplink included), seconds."""
        self.pending: list[int] = []
        """Ends of the periods whose update waits for experience, oldest first (more than
        one only while a restarted controller catches up on the slots sent again)."""
        self.pause_every = self.trainer.period if self.trainer else 0
        self.ledger = ExperienceLedger()
        """Which vehicle experience is held or used (deduplication by (vehicle, slot))."""
        self.journal: TrainingJournal | None = None
        self.checkpointed = self.trainer.version if self.trainer else 0
        self.last_checkpoint: str | None = None
        self.replay_until = 0
        """Slots before this one are played again towards a checkpoint, unrecorded."""
        self.replayed = 0
        self.resumed: dict[str, Any] | None = None
        self.resume_snapshot: tuple[int, dict[str, np.ndarray]] | None = None
        if self.trainer is not None and ctl.out_dir is not None:
            self.journal, ck = open_journal(ctl.out_dir, train)
            if ck is not None:
                self.restore(ck)

    def fingerprint(self, slot: int) -> tuple[float, float]:
        return self.trainer.fingerprint(slot) if self.trainer else self.fixed_fingerprint

    def send_fingerprint(self, name: str, slot: int, out: Outbox) -> None:
        it, eps = self.fingerprint(max(slot, 0))
        out.send(name, Fingerprint, slot=slot, iteration=int(it), epsilon=eps)

    # ----------------------------------------------------------------- checkpoints

    RECORD_FIELDS = ("episode_slot", "rb", "power_level", "transmitted", "v2i_rate_bps",
                     "v2v_rate_bps", "reward", "remaining_bits", "delivery_time_s",
                     "decision_latency_s")

    def checkpoint_meta(self) -> dict[str, Any]:
        ctl = self.ctl
        train = ctl.options["train"]
        return {"kind": "v2x", "scheme": ctl.scheme, "seed": ctl.seed, "slots": ctl.slots,
                "broadcast_period": int(train["broadcast_period"]),
                "sharing": str(train.get("sharing", "per-agent"))}

    def records(self) -> dict[str, np.ndarray]:
        rows = self.recorder.rows
        out = {f"rec.{f}": np.stack([np.asarray(getattr(r, f)) for r in rows])
               for f in self.RECORD_FIELDS}
        out["rec.lost"] = np.array(sorted(self.recorder.lost), dtype=np.int64)
        out["experience_latency_s"] = np.array(self.experience_latency_s, dtype=np.float64)
        return out

    def checkpoint(self, slot: int, out: Outbox) -> None:
        """Write a checkpoint (every slot before ``slot`` recorded); acknowledge to each
        active vehicle the experience it now holds, when slots remain."""
        trainer, journal, ctl = self.trainer, self.journal, self.ctl
        assert trainer is not None and journal is not None
        if self.recorder.done != slot:
            raise RuntimeError(f"checkpoint at slot {slot} with {self.recorder.done} recorded")
        path = journal.checkpoint({**trainer.state(), **self.records()},
                                  {**self.checkpoint_meta(), "version": trainer.version,
                                   "slot": slot, "ledger": self.ledger.state()})
        self.checkpointed, self.last_checkpoint = trainer.version, str(path)
        if slot >= ctl.slots:
            return
        for node, upto in self.ledger.durable().items():
            if index_of(node) in ctl.active:
                out.send(node, ExperienceAck, slot=slot, upto=upto)

    def load_records(self, a: dict[str, np.ndarray]) -> None:
        """Record again the slots of :meth:`records` (a fresh recorder writes them anew)."""
        lost = [int(k) for k in a["rec.lost"]]
        for n in range(len(a["rec.reward"])):
            rec = {f: a[f"rec.{f}"][n].copy() for f in self.RECORD_FIELDS}
            rec["episode_slot"], rec["reward"] = int(rec["episode_slot"]), float(rec["reward"])
            self.recorder.add(SlotRecord(**rec), lost if n == 0 else None)
        self.experience_latency_s = [float(x) for x in a["experience_latency_s"]]

    def restore(self, ck: Checkpoint) -> None:
        """Continue from checkpoint ``ck`` (see the module): the slots before ``ck.slot``
        are played again with the run's first weights; at ``ck.slot`` the checkpoint's
        weights and fingerprint are deployed."""
        trainer, ctl = self.trainer, self.ctl
        assert trainer is not None and self.journal is not None
        ck.check(**self.checkpoint_meta())
        trainer.load_state(ck.arrays, ck.meta["history"])
        self.ledger.restore(ck.meta["ledger"])
        self.load_records(ck.arrays)
        if self.recorder.done != ck.slot:
            raise ValueError(f"checkpoint {ck.path}: {self.recorder.done} slots recorded, "
                             f"slot {ck.slot}")
        self.checkpointed, self.last_checkpoint = trainer.version, str(ck.path)
        if ctl.options["train"].get("live"):  # the processes run on: they send it again
            self.snapshot = (trainer.version, trainer.variables())
        else:
            self.replay_until = ck.slot
            self.resume_snapshot = (trainer.version, trainer.variables())
            ctl.options["train"] = {**ctl.options["train"], "replay_until": ck.slot}
        self.resumed = {"checkpoint": str(ck.path), "version": trainer.version,
                        "slot": ck.slot, "attempt": self.journal.attempt}
        self.journal.updated_weights(trainer.artifact())

    def on_reattach(self, now: float, out: Outbox) -> None:
        """A restarted controller (live) has the channel server back: deploy again the
        checkpoint's weights and fingerprint at its slot, as the killed controller was to
        (the air ignores a resume of a slot it left)."""
        n = self.recorder.done
        if self.trainer is None or not n or n % self.pause_every or n >= self.ctl.slots:
            return
        if self.snapshot is not None:
            self.ctl.deploy(self.snapshot[0], n, now, out)

    def expected_slot(self) -> int:
        return self.replayed if self.replayed < self.replay_until else self.recorder.done

    def on_replayed(self, msg: V2xOutcome, now: float, out: Outbox) -> None:
        """A slot before the checkpoint's was played again: nothing recorded; the air goes
        on at once at a pause, and at the checkpoint's slot after the deployment of the
        checkpoint's weights and fingerprint, as the killed controller made it there."""
        ctl = self.ctl
        self.replayed = n = msg.slot + 1
        ctl.outcome_recorded(msg.lost)
        if n % self.pause_every or n >= ctl.slots:
            return
        if n < self.replay_until or self.resume_snapshot is None:
            ctl.resume(n, self.snapshot[0] if self.snapshot else 0, out)
        else:
            self.snapshot = self.resume_snapshot
            ctl.deploy(self.snapshot[0], n, now, out)

    # ----------------------------------------------------------------- the part

    def after_start(self, name: str, out: Outbox) -> None:
        if name != CHANNEL_SERVER:
            self.send_fingerprint(name, -1, out)

    def after_weights(self, name: str, slot: int, out: Outbox) -> None:
        self.send_fingerprint(name, slot, out)

    def busy(self) -> bool:
        """An update waits for the last experience of its iteration."""
        return bool(self.pending)

    def weights_for(self, name: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Only the receiving vehicle's own network."""
        return own_weights(arrays, index_of(name))

    def on_message(self, msg: Message, now: float, out: Outbox) -> bool:
        if isinstance(msg, Experience) and self.trainer is not None:
            if not 0 <= msg.slot < self.ctl.slots:  # it may come after the slot's outcome
                raise Rejected(f"slot {msg.slot} outside [0, {self.ctl.slots})")
            check_array(msg.obs, "obs", (1, *msg.obs.shape[1:]))
            check_array(msg.action, "action", (1,), 0)
            check_array(msg.done, "done", (1,))
            if not self.ledger.admit(msg.sender, msg.slot, msg.seq):
                return True  # held or used already (a resend): dropped, counted
            self.trainer.add_experience(msg.slot, index_of(msg.sender), msg.obs[0],
                                        int(msg.action[0]), bool(msg.done[0]))
            self.experience_latency_s.append(msg.chain_latency_s)
            self.try_train(now, out)
        elif isinstance(msg, ObsUpload) and self.external is not None:
            if not self.recorder.done <= msg.slot < self.ctl.slots:
                raise Rejected(f"slot {msg.slot} outside [{self.recorder.done}, "
                               f"{self.ctl.slots})")
            obs = check_array(msg.obs, "obs", (observation_dim(self.scenario),))
            self.external.collect(msg.slot, index_of(msg.sender), obs, msg.chain_latency_s,
                                  self.ctl.active, self.scenario.radio.n_v2v, now, out)
        elif isinstance(msg, V2xOutcome):
            self.check_outcome(msg)
            if msg.slot < self.replay_until:
                self.on_replayed(msg, now, out)
                return True
            self.recorder.add(SlotRecord(
                episode_slot=msg.episode_slot, rb=msg.rb, power_level=msg.power_level,
                transmitted=msg.transmitted, v2i_rate_bps=msg.v2i_rate_bps,
                v2v_rate_bps=msg.v2v_rate_bps, reward=msg.reward,
                remaining_bits=msg.remaining_bits, delivery_time_s=msg.delivery_time_s,
                decision_latency_s=msg.decision_latency_s), msg.lost)
            self.ctl.outcome_recorded(msg.lost)
            if self.external is not None:
                self.external.learner.outcome(msg)
            done = self.recorder.done
            if self.trainer is not None:
                self.trainer.add_reward(msg.slot, msg.reward)
                if done % self.trainer.period == 0 and done < self.ctl.slots:
                    self.pending.append(done)
                    self.try_train(now, out)
                elif done == self.ctl.slots and self.journal is not None:
                    self.checkpoint(done, out)
        else:
            return False
        return True

    def on_timer(self, key: Hashable, now: float, out: Outbox) -> None:
        """External learner: send each vehicle the action the learner chose."""
        assert key == EXTERNAL and self.external is not None
        self.external.send_actions(now, out, self.ctl.kind.node_name,
                                   self.scenario.timing.compute_s)

    def check_outcome(self, msg: V2xOutcome) -> None:
        """The next slot in order, every array of the scenario's shape and range."""
        if msg.slot != self.expected_slot():
            raise Rejected(f"slot {msg.slot} out of order (expected {self.expected_slot()})")
        radio = self.scenario.radio
        k = radio.n_v2v
        check_number(msg.episode_slot, "episode slot", 0, self.scenario.n_steps - 1)
        check_array(msg.rb, "rb", (k,), -1, radio.n_rb - 1)
        check_array(msg.power_level, "power level", (k,), -1,
                    len(radio.v2v_power_levels_dbm) - 1)
        check_array(msg.transmitted, "transmitted", (k,), 0, 1)
        check_array(msg.v2i_rate_bps, "V2I rates", msg.v2i_rate_bps.shape[:1]
                    if isinstance(msg.v2i_rate_bps, np.ndarray) else (), 0.0)
        check_array(msg.v2v_rate_bps, "V2V rates", (k,), 0.0)
        check_number(msg.reward, "reward")
        check_array(msg.remaining_bits, "remaining bits", (k,), 0.0)
        check_indices(msg.lost, "lost", k)

    def try_train(self, now: float, out: Outbox) -> None:
        """Update on each period whose experience is in, in order."""
        trainer = self.trainer
        while self.pending and trainer is not None and trainer.complete(
                range(self.pending[0] - trainer.period, self.pending[0]), self.ctl.active):
            self.train_on(self.pending.pop(0), now, out)

    def train_on(self, upto: int, now: float, out: Outbox) -> None:
        """Update on the period ending at ``upto``, journal it (a checkpoint when due and
        every slot before ``upto`` is recorded), deploy weights and fingerprint."""
        trainer, ctl = self.trainer, self.ctl
        assert trainer is not None
        row = trainer.update(upto)
        used = self.ledger.use(trainer.taken)
        self.ledger.close_below(upto - 1)  # the period's last slot waits for the next's obs
        version = trainer.version
        self.snapshot = (version, trainer.variables())
        ctl.emit("TRAIN", version, json.dumps(row))
        if self.journal is not None:
            self.journal.updated(row, version, range(upto - trainer.period, upto), used,
                                 trainer.artifact())
            if (version - self.checkpointed >= ctl.options["train"].get("checkpoint_every", 10)
                    and upto % self.scenario.n_steps == 0 and self.recorder.done == upto):
                self.checkpoint(upto, out)
        ctl.deploy(version, upto, now, out)

    # ----------------------------------------------------------------- results

    def live_metrics(self) -> dict[str, Any]:
        return {"slots_done": self.recorder.done}

    def extra_summary(self) -> dict[str, Any]:
        lat = np.asarray(self.experience_latency_s) * 1e3
        lat = lat[np.isfinite(lat)]
        train = self.trainer
        durable = {} if train is None else {
            "duplicate_experience": self.ledger.duplicates, "resumed": self.resumed,
            "last_checkpoint": self.last_checkpoint}
        return {**durable, "broadcast_period_slots": train.period if train else None,
                "weights_versions": train.version if train else 1,
                "experience_latency_ms_p50": float(np.percentile(lat, 50)) if lat.size else None,
                "experience_latency_ms_p99": float(np.percentile(lat, 99)) if lat.size else None}

    def history(self) -> list[dict[str, float]]:
        return self.trainer.history if self.trainer is not None else []

    def final_weights(self) -> WeightsArtifact | None:
        if self.trainer is None or not self.trainer.history:
            return None
        artifact: WeightsArtifact = self.trainer.artifact()
        return artifact
