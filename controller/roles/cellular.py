"""The controller's part of a multi-cell downlink run: it records every slot outcome,
decides for central schemes once every active BS has uploaded its CSI slice, and while
training joins the nodes' experience with the slots' rewards, updates the policy every
``episodes_per_iter`` slots and deploys the new weights. Under the schemes a learner
outside the testbed decides (:mod:`controller.roles.external`) it hands that learner the
whole channel of each slot (``external-learner``) or, at each BS's turn in the round-robin
chain, the BS's uploaded observation (``external-round-robin``), and sends back the powers.

Training is durable (:mod:`controller.learners.journal`): every update appends its
training.csv row and updates.jsonl line and rewrites weights.npz; every ``checkpoint_every``
updates (and after the last) a checkpoint holds the learner, the slots recorded so far and
the experience ledger, and each node is told which of its experience is now safe
(``ExperienceAck``). Experience is deduplicated by (node, slot).

A controller restarted live (train option ``live``, :mod:`controller.roles.controller`)
continues from the checkpoint while the processes run on: the nodes send again the
experience not acknowledged, the air the outcomes from the checkpoint's slot on, and the
updates since the checkpoint are made again (their weights, which the nodes already hold,
are deployed again and ignored as not newer; the air goes on at its pause once the update
of that slot is made).

A resumed run (train option ``resume``: the attempt number) starts fresh processes from
slot 0: the slots before the checkpoint's are played again, unrecorded and without
experience uploads, only to bring the channel, the round-robin orders and the nodes' noise
generators to where they were (all advance by slot, whatever the weights: the same
channel realization and the same draws); the air goes on at once at each pause. At the
checkpoint's slot the checkpoint's weights are deployed, as the killed controller had
done, and training goes on: with a deterministic backhaul (constant latency, no loss) and
a modelled compute time, the run ends with the weights an uninterrupted run ends with.
"""

from __future__ import annotations

import json
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

import numpy as np

from channel_server.config import Scenario
from channel_server.demands import demands_at
from controller.baselines.central import CentralDecider
from controller.evaluation.results import RunRecorder
from controller.learners.collect import ExperienceLedger
from controller.learners.journal import Checkpoint, TrainingJournal, open_journal
from controller.roles.external import EXTERNAL, ExternalSlots
from node.agent import node_policy, policy_with_weights, scheme_of
from node.alcor_online import OnlineAlcor
from node.observation import round_robin_dims
from node.policy_spec import policy_view
from protocols.messages import (
    CsiUpload,
    Decision,
    Experience,
    ExperienceAck,
    Message,
    ObsUpload,
    SlotOutcome,
)
from protocols.names import index_of
from protocols.role import Outbox
from protocols.validate import Rejected, check_array, check_indices, check_number
from protocols.weights import WeightsArtifact

if TYPE_CHECKING:
    from controller.roles.controller import ControllerRole


class CellularPart:
    def __init__(self, ctl: ControllerRole, scenario: Scenario,
                 weights: dict[str, np.ndarray] | None) -> None:
        self.ctl = ctl
        self.scenario = scenario
        self.spec = scheme_of(ctl.scheme)
        self.recorder = RunRecorder(scenario, ctl.scheme, ctl.runner, ctl.seed, ctl.slots)
        if ctl.out_dir is not None:
            self.recorder.stream(ctl.out_dir)
        train = ctl.options.get("train")
        self.policy_at_nodes = self.spec.policy is not None and self.spec.exchange != "central"
        self.central: CentralDecider | None = None
        if self.spec.exchange == "central":
            policy = (policy_with_weights(ctl.scheme, scenario, weights)
                      if weights is not None and self.spec.policy is not None else None)
            self.central = CentralDecider(ctl.scheme, scenario, ctl.seed, policy,
                                          "sample" if train else "mean")
        self.trainer = self.make_trainer(train, weights) if train else None
        self.external: ExternalSlots | None = None
        """Scheme ``external-learner``: a learner outside the testbed decides (set by
        :mod:`controller.envs.network`)."""
        self.alcor: OnlineAlcor | None = None
        """ALCOR (paper 004) over the central decider: every user's multiplier."""
        self.usv: dict[int, np.ndarray] = {}
        """ALCOR: each decided slot's user selection (B, K), until its outcome."""
        if self.spec.options.get("alcor"):
            if self.spec.options["alcor"] != "central" or self.central is None or train:
                raise ValueError(f"scheme {ctl.scheme!r}: the cellular kind runs ALCOR with "
                                 "the multipliers at the controller, over a central decider, "
                                 "without training")
            self.alcor = OnlineAlcor(scenario.alcor, list(range(scenario.radio.n_links)),
                                     ctl.seed)
        self.snapshot: tuple[int, dict[str, np.ndarray]] | None = (
            (1, weights) if weights is not None and self.policy_at_nodes else None)
        self.uploads: dict[int, dict[int, tuple[np.ndarray, float]]] = {}
        self.central_compute: dict[int, float] = {}
        self.decided: set[int] = set()
        """Slots decided centrally whose outcome has not come yet."""
        self.duplicate_uploads = 0
        """CSI uploads of slots already decided (sent again to a restarted controller)."""
        self.pending: list[range] = []
        """Iterations whose update waits for experience, oldest first (more than one only
        while a restarted controller catches up on the slots sent again)."""
        self.pause_every = self.trainer.options.episodes_per_iter if self.trainer else 0
        self.ledger = ExperienceLedger()
        """Which node experience is held or used (deduplication by (node, slot))."""
        self.journal: TrainingJournal | None = None
        self.checkpointed = self.trainer.version if self.trainer else 0
        """Weights version of the last checkpoint written (or restored)."""
        self.last_checkpoint: str | None = None
        self.replay_until = 0
        """Slots before this one are played again towards a checkpoint, unrecorded."""
        self.replayed = 0
        """Slots played again so far."""
        self.resumed: dict[str, Any] | None = None
        self.resume_snapshot: tuple[int, dict[str, np.ndarray]] | None = None
        if self.trainer is not None and ctl.out_dir is not None:
            self.journal, ck = open_journal(ctl.out_dir, train)
            if ck is not None:
                self.restore(ck)

    def make_trainer(self, train: dict[str, Any], weights: dict[str, np.ndarray] | None) -> Any:
        """The learner of a network training run, on the same initial weights as the nodes."""
        from controller.learners.experience import NetworkTrainer, TrainOptions, make_learner

        ctl = self.ctl
        policy, per_slot = None, 1
        if self.policy_at_nodes:
            policy, per_slot = node_policy(ctl.scheme, self.scenario, ctl.seed), len(ctl.nodes)
        elif self.central is not None:
            policy = self.central.policy
        if policy is None:
            raise ValueError(f"scheme {ctl.scheme!r} has no policy to train")
        if weights is not None:
            from node.policy import load_arrays

            load_arrays(policy, weights)
        opts = TrainOptions.of(train)
        return NetworkTrainer(make_learner(opts.algo, policy, ctl.seed, opts.learner_options),
                              per_slot, opts, version=1 if weights is not None else 0,
                              facts=policy_view(self.scenario.radio))

    # ----------------------------------------------------------------- checkpoints

    def checkpoint_meta(self) -> dict[str, Any]:
        """The run's settings a checkpoint must agree with."""
        assert self.trainer is not None
        ctl, opts = self.ctl, self.trainer.options
        return {"kind": "cellular", "scheme": ctl.scheme, "seed": ctl.seed, "slots": ctl.slots,
                "algo": opts.algo, "episodes_per_iter": opts.episodes_per_iter}

    def records(self) -> dict[str, np.ndarray]:
        """The slots recorded so far, as arrays (replayed into a fresh recorder on resume)."""
        rec = self.recorder
        return {"rec.sum_rates": np.array(rec.sum_rates, dtype=np.float64),
                "rec.powers": np.stack(rec.powers), "rec.latency_s": np.stack(rec.latency_s),
                "rec.missed": np.stack(rec.missed),
                "rec.wall_s": np.array(rec.wall_s, dtype=np.float64),
                "rec.compute_s": np.array(rec.compute_s, dtype=np.float64),
                "rec.lost": np.array(sorted(rec.lost), dtype=np.int64)}

    def checkpoint(self, slot: int, out: Outbox) -> None:
        """Write a checkpoint (the air waits at ``slot``); acknowledge to each active node
        the experience it now holds, when slots remain."""
        trainer, journal, ctl = self.trainer, self.journal, self.ctl
        assert trainer is not None and journal is not None
        if self.recorder.done != slot:
            raise RuntimeError(f"checkpoint at slot {slot} with {self.recorder.done} recorded")
        path = journal.checkpoint({**trainer.state(), **self.records()},
                                  {**self.checkpoint_meta(), "version": trainer.version,
                                   "slot": slot, "ledger": self.ledger.state()})
        self.checkpointed, self.last_checkpoint = trainer.version, str(path)
        if slot >= ctl.slots:
            return  # the run is over: nothing left to resend
        for node, upto in self.ledger.durable().items():
            if index_of(node) in ctl.active:
                out.send(node, ExperienceAck, slot=slot, upto=upto)

    def load_records(self, a: dict[str, np.ndarray]) -> None:
        """Record again the slots of :meth:`records` (a fresh recorder writes them anew)."""
        rec = self.recorder
        lost = [int(b) for b in a["rec.lost"]]
        for n in range(len(a["rec.sum_rates"])):
            rec.add(float(a["rec.sum_rates"][n]), a["rec.powers"][n], a["rec.latency_s"][n],
                    a["rec.missed"][n], lost if n == 0 else None, float(a["rec.wall_s"][n]),
                    float(a["rec.compute_s"][n]))

    def restore(self, ck: Checkpoint) -> None:
        """Continue from checkpoint ``ck``: the learner, the training rows, the ledger and
        the recorded slots are back; the slots before ``ck.slot`` are played again."""
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
            if self.policy_at_nodes:
                self.snapshot = (trainer.version, trainer.get_variables())
        else:
            self.replay_until = ck.slot
            if self.policy_at_nodes:
                self.resume_snapshot = (trainer.version, trainer.get_variables())
            # nodes upload no experience for the slots played again (Start options)
            ctl.options["train"] = {**ctl.options["train"], "replay_until": ck.slot}
        self.resumed = {"checkpoint": str(ck.path), "version": trainer.version,
                        "slot": ck.slot, "attempt": self.journal.attempt}
        self.journal.updated_weights(trainer.artifact(ctl.scheme))

    def on_air_restart(self, slot: int) -> None:
        """A new channel server plays ``slot`` and later again: their CSI comes again, to be
        decided anew."""
        self.decided = {n for n in self.decided if n < slot}
        for n in [n for n in self.uploads if n >= slot]:
            del self.uploads[n]
        for n in [n for n in self.central_compute if n >= slot]:
            del self.central_compute[n]

    def on_reattach(self, now: float, out: Outbox) -> None:
        """A restarted controller (live) has the channel server back: do again what followed
        the checkpoint at its slot, the deployment of its weights (or the air's resume), in
        case the killed controller had not (the air ignores a resume of a slot it left)."""
        n, trainer = self.recorder.done, self.trainer
        if trainer is None or not n or n % self.pause_every or n >= self.ctl.slots:
            return
        if self.policy_at_nodes and self.snapshot is not None:
            self.ctl.deploy(self.snapshot[0], n, now, out)
        else:
            self.ctl.resume(n, trainer.version, out)

    def expected_slot(self) -> int:
        """The slot whose outcome comes next."""
        return self.replayed if self.replayed < self.replay_until else self.recorder.done

    def on_replayed(self, msg: SlotOutcome, now: float, out: Outbox) -> None:
        """A slot before the checkpoint's was played again: nothing is recorded; at a pause
        the air goes on at once, and at the checkpoint's slot after the checkpoint's weights
        are deployed, as the killed controller deployed them there."""
        ctl = self.ctl
        self.central_compute.pop(msg.slot, None)
        self.replayed = n = msg.slot + 1
        ctl.outcome_recorded(msg.lost)
        if n % self.pause_every or n >= ctl.slots:
            return
        if n < self.replay_until:
            ctl.resume(n, self.snapshot[0] if self.snapshot else 0, out)
        elif self.resume_snapshot is not None:
            self.snapshot = self.resume_snapshot
            ctl.deploy(self.snapshot[0], n, now, out)
        else:
            assert self.trainer is not None
            ctl.resume(n, self.trainer.version, out)

    # ----------------------------------------------------------------- the part

    def after_start(self, name: str, out: Outbox) -> None:
        pass

    def after_weights(self, name: str, slot: int, out: Outbox) -> None:
        pass

    def busy(self) -> bool:
        """An update waits for the last experience of its iteration."""
        return bool(self.pending)

    def weights_for(self, name: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return arrays

    def on_message(self, msg: Message, now: float, out: Outbox) -> bool:
        if isinstance(msg, SlotOutcome):
            self.on_outcome(msg, now, out)
        elif isinstance(msg, CsiUpload) and self.central is not None:
            self.on_upload(msg, out)
        elif isinstance(msg, ObsUpload) and self.external is not None and self.central is None:
            self.on_turn(msg, now, out)
        elif isinstance(msg, Experience) and self.trainer is not None:
            if not 0 <= msg.slot < self.ctl.slots:  # it may come after the slot's outcome
                raise Rejected(f"slot {msg.slot} outside [0, {self.ctl.slots})")
            for name in ("obs", "action"):
                x = getattr(msg, name)
                check_array(x, name, (1, *x.shape[1:]) if isinstance(x, np.ndarray) else ())
            if not self.ledger.admit(msg.sender, msg.slot, msg.seq):
                return True  # held or used already (a resend): dropped, counted
            self.trainer.add_experience(msg.slot, msg.step, msg.obs, msg.action, msg.done,
                                        index_of(msg.sender))
            self.try_train(now, out)
        else:
            return False
        return True

    def check_outcome(self, msg: SlotOutcome) -> None:
        """The next slot in order, with arrays of the scenario's shapes and values a radio can
        give (the air computed them; a forged or corrupted one must not reach the files)."""
        if msg.slot != self.expected_slot():
            raise Rejected(f"slot {msg.slot} out of order (expected {self.expected_slot()})")
        radio = self.scenario.radio
        b, k = radio.n_cells, radio.users_per_cell
        check_array(msg.powers, "powers", (b, k), 0.0, radio.pmax_w * (1 + 1e-12))
        total = float(check_array(msg.rates, "rates", (b, k), 0.0).sum())
        if not abs(check_number(msg.sum_rate_bps_hz, "sum-rate", 0.0) - total) <= 1e-9 * max(
                1.0, total):
            raise Rejected(f"sum-rate {msg.sum_rate_bps_hz} is not the sum of the rates "
                           f"({total})")
        check_number(msg.wall_s, "wall time", 0.0)
        if not isinstance(msg.decision_latency_s, np.ndarray) or np.isnan(
                msg.decision_latency_s).any() or msg.decision_latency_s.shape != (b,):
            raise Rejected("decision latency is not (B,) numbers")
        check_array(msg.missed, "missed", (b,), 0, 1)
        check_array(msg.compute_s, "compute time", (b,), 0.0)
        check_indices(msg.lost, "lost", b)

    def on_outcome(self, msg: SlotOutcome, now: float, out: Outbox) -> None:
        self.check_outcome(msg)
        if msg.slot < self.replay_until:
            self.on_replayed(msg, now, out)
            return
        ctl = self.ctl
        compute = self.central_compute.pop(msg.slot, None)
        self.decided.discard(msg.slot)
        active = sorted(ctl.active)
        demand = None
        if self.recorder.demands is not None or self.alcor is not None:
            u_min = demands_at(self.scenario.demands, self.scenario.radio.n_links, ctl.seed,
                               msg.slot).reshape(msg.rates.shape)
            demand = (u_min, msg.rates,
                      self.usv.pop(msg.slot, np.ones(msg.rates.shape, dtype=np.int64)))
            if self.alcor is not None:
                self.alcor.add(msg.slot, u_min.ravel(), msg.rates.ravel())
        self.recorder.add(msg.sum_rate_bps_hz, msg.powers, msg.decision_latency_s,
                          msg.missed, msg.lost, msg.wall_s,
                          compute if compute is not None else float(
                              np.mean(msg.compute_s[active]) if active else 0.0), demand)
        ctl.outcome_recorded(msg.lost)
        if self.external is not None:
            self.external.learner.outcome(msg)
        if self.alcor is not None:
            self.try_decide(out)
        if self.trainer is not None:
            self.trainer.add_outcome(msg.slot, msg.sum_rate_bps_hz)
            m, done = self.trainer.options.episodes_per_iter, self.recorder.done
            if done % m == 0:
                self.pending.append(range(done - m, done))
                self.try_train(now, out)

    def try_train(self, now: float, out: Outbox) -> None:
        """Update on each iteration whose experience is complete, in order."""
        while self.pending and self.trainer is not None and self.trainer.complete(
                self.pending[0]):
            self.train_on(self.pending.pop(0), now, out)

    def train_on(self, slots: range, now: float, out: Outbox) -> None:
        """Update on ``slots``, journal it (a checkpoint when due and every slot before the
        update's end is recorded, none after it), deploy, resume the air."""
        trainer, ctl = self.trainer, self.ctl
        assert trainer is not None
        weights = trainer.update(slots, ctl.out_dir)
        used = self.ledger.use(slots)
        self.ledger.close_below(slots.stop)
        version = trainer.version
        ctl.emit("TRAIN", version, json.dumps(trainer.history[-1]))
        if self.journal is not None:
            self.journal.updated(trainer.history[-1], version, slots, used,
                                 trainer.artifact(ctl.scheme))
            last = slots.stop + trainer.options.episodes_per_iter > ctl.slots
            due = last or version - self.checkpointed >= trainer.options.checkpoint_every
            if due and self.recorder.done == slots.stop:
                self.checkpoint(slots.stop, out)
        if self.policy_at_nodes:
            self.snapshot = (version, weights)
        if slots.stop >= ctl.slots:
            return  # the air has finished: no slot left to use new weights in
        if self.policy_at_nodes:
            ctl.deploy(version, slots.stop, now, out)
        else:
            ctl.resume(slots.stop, version, out)

    def on_upload(self, msg: CsiUpload, out: Outbox) -> None:
        """Collect one slot's CSI uploads; decide once every active BS has uploaded."""
        assert self.central is not None
        radio = self.scenario.radio
        if not self.expected_slot() <= msg.slot < self.ctl.slots:
            raise Rejected(f"slot {msg.slot} outside [{self.expected_slot()}, {self.ctl.slots})")
        g = check_array(msg.gains, "gains", (radio.users_per_cell, radio.n_cells), 0.0)
        check_number(msg.chain_latency_s, "chain latency", 0.0, allow_inf=True)
        if msg.slot in self.decided:  # sent again to a restarted controller: decided
            self.duplicate_uploads += 1
            return
        got = self.uploads.setdefault(msg.slot, {})
        got[index_of(msg.sender)] = (np.asarray(g), msg.chain_latency_s)
        self.try_decide(out)

    def on_turn(self, msg: ObsUpload, now: float, out: Outbox) -> None:
        """External round-robin: a BS's turn in the chain of ``msg.slot``, its observation
        ``(D,)``, goes to the learner (one turn of a slot at a time: the chain's)."""
        assert self.external is not None
        if not self.expected_slot() <= msg.slot < self.ctl.slots:
            raise Rejected(f"slot {msg.slot} outside [{self.expected_slot()}, {self.ctl.slots})")
        obs = check_array(msg.obs, "obs", (round_robin_dims(self.scenario.radio)[0],))
        check_number(msg.chain_latency_s, "chain latency", 0.0, allow_inf=True)
        if msg.slot in self.external.awaiting:
            raise Rejected(f"a turn of slot {msg.slot} while another waits for its decision")
        bs = index_of(msg.sender)
        self.external.hand(msg.slot, {bs: (obs, msg.chain_latency_s)}, (bs, obs), now, out)

    def try_decide(self, out: Outbox) -> None:
        """Decide every slot whose uploads are all in; under ALCOR only in slot order, each
        once the outcome of the slot before is recorded (the multipliers step on outcomes,
        so both runners draw the same selections with the same probabilities)."""
        for slot in sorted(self.uploads):
            got = self.uploads[slot]
            ready = self.ctl.active <= set(got) and (
                self.alcor is None or self.recorder.done >= slot)
            if ready:
                self.decide(slot, got, out)
            elif self.alcor is not None:
                return

    def decide(self, slot: int, got: dict[int, tuple[np.ndarray, float]], out: Outbox) -> None:
        """Rebuild the whole channel from the uploads and decide every BS's powers. Under
        ALCOR the decider sees ``H_xi`` (the channel of every user off zeroed) and the users
        off get 0 W."""
        assert self.central is not None
        radio = self.scenario.radio
        gains = np.zeros((1, radio.n_cells, radio.users_per_cell, radio.n_cells))
        for bs, (g, _) in got.items():
            gains[0, bs] = g
        on = None
        if self.alcor is not None:
            if slot not in self.usv:
                self.usv[slot] = self.alcor.draw().reshape(
                    radio.n_cells, radio.users_per_cell).astype(np.int64)
            on = self.usv[slot]
            gains = gains * on.T[None, None]  # gains[0, b, k, c]: user (c, k)
        del self.uploads[slot]
        self.decided.add(slot)
        if self.external is not None:
            self.external.hand(slot, got, gains[0], self.ctl.host.now(), out)
            return
        powers, compute_s = self.central.decide(gains)
        if on is not None:
            powers = powers * on[None]
        if self.trainer is not None and slot >= self.replay_until:
            assert self.central.last_obs is not None and self.central.last_raw is not None
            self.trainer.add_experience(slot, 0, self.central.last_obs,
                                        self.central.last_raw, np.array([True]))
        self.send_decision(slot, got, powers[0], compute_s, out)

    def send_decision(self, slot: int, got: dict[int, tuple[np.ndarray, float]],
                      powers: Any, compute_s: float, out: Outbox) -> None:
        """Every uploading BS's powers (``powers[bs]``, watts) of ``slot``, ready
        ``compute_s`` after the last upload arrived (the uplink latency is added on
        receipt)."""
        self.central_compute[slot] = compute_s
        ready = max(a for _, a in got.values()) + compute_s
        name = self.ctl.kind.node_name
        for bs in sorted(got):
            out.send(name(bs), Decision, slot=slot, chain_latency_s=ready, powers=powers[bs])

    def on_timer(self, key: Hashable, now: float, out: Outbox) -> None:
        """An external learner: send the powers it has given (every BS's ``(B, K)``, or the
        ``(K,)`` of the BS whose turn it is), in slot order; look again later for the rest."""
        assert key == EXTERNAL and self.external is not None
        for slot, got, powers in self.external.decided(now, out):
            sent: Any = powers
            if self.central is None:  # a turn of the chain: one BS
                sent = {bs: powers for bs in got}
            self.send_decision(slot, got, sent, self.scenario.timing.compute_s, out)

    # ----------------------------------------------------------------- results

    def live_metrics(self) -> dict[str, Any]:
        """Live metrics over the last 100 slots (cheap enough to run ten times a second)."""
        rec = self.recorder
        lat = rec.decision_latency_s(last=100) * 1e3
        lat = lat[np.isfinite(lat)]
        return {"slots_done": rec.done,
                "sum_rate_bps_hz": float(np.mean(rec.sum_rates[-100:])),
                "latency_ms_p50": float(np.percentile(lat, 50)) if lat.size else None,
                "latency_ms_p99": float(np.percentile(lat, 99)) if lat.size else None,
                "deadline_misses": rec.misses,
                "backhaul_bytes": self.ctl.host.meter.plane_totals().get(
                    "backhaul", (0, 0))[1]}

    def extra_summary(self) -> dict[str, Any]:
        if self.trainer is None:
            extra: dict[str, Any] = (
                {"duplicate_uploads": self.duplicate_uploads} if self.central else {})
            if self.alcor is not None:
                extra["alcor_lambda"] = [[slot, lam] for slot, lam in self.alcor.history]
            return extra
        return {"duplicate_experience": self.ledger.duplicates, "resumed": self.resumed,
                "last_checkpoint": self.last_checkpoint, "updates": len(self.trainer.history),
                "warm_start": (self.ctl.options.get("train") or {}).get("warm_start")}

    def history(self) -> list[dict[str, float]]:
        return self.trainer.history if self.trainer is not None else []

    def final_weights(self) -> WeightsArtifact | None:
        if self.trainer is None or not self.trainer.history:
            return None
        artifact: WeightsArtifact = self.trainer.artifact(self.ctl.scheme)
        return artifact
