"""The controller's part of a multi-cell downlink run: it records every slot outcome,
decides for central schemes once every active BS has uploaded its CSI slice, and while
training joins the nodes' experience with the slots' rewards, updates the policy every
``episodes_per_iter`` slots and deploys the new weights."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np

from channel_server.config import Scenario
from controller.baselines.central import CentralDecider
from controller.evaluation.results import RunRecorder
from node.agent import node_policy, policy_with_weights, scheme_of
from protocols.messages import CsiUpload, Decision, Experience, Message, SlotOutcome
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
        self.snapshot: tuple[int, dict[str, np.ndarray]] | None = (
            (1, weights) if weights is not None and self.policy_at_nodes else None)
        self.uploads: dict[int, dict[int, tuple[np.ndarray, float]]] = {}
        self.central_compute: dict[int, float] = {}
        self.iteration: range | None = None
        self.pause_every = self.trainer.options.episodes_per_iter if self.trainer else 0

    def make_trainer(self, train: dict[str, Any], weights: dict[str, np.ndarray] | None) -> Any:
        """The learner of a network training run, on the same initial weights as the nodes."""
        from controller.learners.experience import NetworkTrainer, TrainOptions, make_learner

        ctl = self.ctl
        if self.policy_at_nodes:
            policy, per_slot = node_policy(ctl.scheme, self.scenario, ctl.seed), len(ctl.nodes)
        elif self.central is not None and self.central.policy is not None:
            policy, per_slot = self.central.policy, 1
        else:
            raise ValueError(f"scheme {ctl.scheme!r} has no policy to train")
        if weights is not None:
            from node.policy import load_arrays

            load_arrays(policy, weights)
        opts = TrainOptions.of(train)
        return NetworkTrainer(make_learner(opts.algo, policy, ctl.seed), per_slot, opts,
                              version=1 if weights is not None else 0)

    # ----------------------------------------------------------------- the part

    def after_start(self, name: str, out: Outbox) -> None:
        pass

    def after_weights(self, name: str, slot: int, out: Outbox) -> None:
        pass

    def busy(self) -> bool:
        """An update waits for the last experience of its iteration."""
        return self.iteration is not None

    def weights_for(self, name: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return arrays

    def on_message(self, msg: Message, now: float, out: Outbox) -> bool:
        if isinstance(msg, SlotOutcome):
            self.on_outcome(msg, now, out)
        elif isinstance(msg, CsiUpload) and self.central is not None:
            self.on_upload(msg, out)
        elif isinstance(msg, Experience) and self.trainer is not None:
            if not 0 <= msg.slot < self.ctl.slots:  # it may come after the slot's outcome
                raise Rejected(f"slot {msg.slot} outside [0, {self.ctl.slots})")
            for name in ("obs", "action"):
                x = getattr(msg, name)
                check_array(x, name, (1, *x.shape[1:]) if isinstance(x, np.ndarray) else ())
            self.trainer.add_experience(msg.slot, msg.step, msg.obs, msg.action, msg.done,
                                        index_of(msg.sender))
            self.try_train(now, out)
        else:
            return False
        return True

    def check_outcome(self, msg: SlotOutcome) -> None:
        """The next slot in order, with arrays of the scenario's shapes and values a radio can
        give (the air computed them; a forged or corrupted one must not reach the files)."""
        if msg.slot != self.recorder.done:
            raise Rejected(f"slot {msg.slot} out of order (expected {self.recorder.done})")
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
        ctl = self.ctl
        compute = self.central_compute.pop(msg.slot, None)
        active = sorted(ctl.active)
        self.recorder.add(msg.sum_rate_bps_hz, msg.powers, msg.decision_latency_s,
                          msg.missed, msg.lost, msg.wall_s,
                          compute if compute is not None else float(
                              np.mean(msg.compute_s[active]) if active else 0.0))
        ctl.outcome_recorded(msg.lost)
        if self.trainer is not None:
            self.trainer.add_outcome(msg.slot, msg.sum_rate_bps_hz)
            m, done = self.trainer.options.episodes_per_iter, self.recorder.done
            if done % m == 0:
                self.iteration = range(done - m, done)
                self.try_train(now, out)

    def try_train(self, now: float, out: Outbox) -> None:
        """Once the iteration's experience is complete: update, deploy, resume the air."""
        slots, trainer = self.iteration, self.trainer
        if slots is None or trainer is None or not trainer.complete(slots):
            return
        self.iteration = None
        ctl = self.ctl
        weights = trainer.update(slots, ctl.out_dir)
        version = trainer.version
        ctl.emit("TRAIN", version, json.dumps(trainer.history[-1]))
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
        if not self.recorder.done <= msg.slot < self.ctl.slots:
            raise Rejected(f"slot {msg.slot} outside [{self.recorder.done}, {self.ctl.slots})")
        g = check_array(msg.gains, "gains", (radio.users_per_cell, radio.n_cells), 0.0)
        check_number(msg.chain_latency_s, "chain latency", 0.0, allow_inf=True)
        got = self.uploads.setdefault(msg.slot, {})
        got[index_of(msg.sender)] = (np.asarray(g), msg.chain_latency_s)
        if not self.ctl.active <= set(got):
            return
        gains = np.zeros((1, radio.n_cells, radio.users_per_cell, radio.n_cells))
        for bs, (g, _) in got.items():
            gains[0, bs] = g
        powers, compute_s = self.central.decide(gains)
        self.central_compute[msg.slot] = compute_s
        if self.trainer is not None:
            assert self.central.last_obs is not None and self.central.last_raw is not None
            self.trainer.add_experience(msg.slot, 0, self.central.last_obs,
                                        self.central.last_raw, np.array([True]))
        ready = max(a for _, a in got.values()) + compute_s  # uplink latency added on receipt
        name = self.ctl.kind.node_name
        for bs in sorted(got):
            out.send(name(bs), Decision, slot=msg.slot, chain_latency_s=ready,
                     powers=powers[0, bs])
        del self.uploads[msg.slot]

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
        return {}

    def history(self) -> list[dict[str, float]]:
        return self.trainer.history if self.trainer is not None else []

    def final_weights(self) -> WeightsArtifact | None:
        if self.trainer is None or not self.trainer.history:
            return None
        artifact: WeightsArtifact = self.trainer.artifact(self.ctl.scheme)
        return artifact
