"""The controller's part of a D2D underlay run: it records every slot outcome and, while
training (paper 002's centralized training at the base station), feeds the pairs' uploaded
histories to the scheme's trainer (MAAC / NAAC / IAC, DQN), updating every
``broadcast_period`` slots and sending each pair only what it acts with (its own target
actor, which the paper's pairs download; DQN: its own Q network and exploration rate).

Asynchronous training (``train.asynchronous``): the pairs keep acting while their uploads
travel, and a new actor reaches them when the backhaul has carried it. Everything is in
emulated slots, so a run stays reproducible: the upload of slot n counts for an update at
slot U only if it arrived by then (sent at the end of slot n, ``chain_latency_s`` later),
the rest waits for the next update; the actors of the update at U go live at slot U + D,
D the controller -> pair latency in slots (the air pauses there, not at U). With no
backhaul latency it trains exactly as the synchronous mode.

Under the scheme an outside learner decides (``external-learner``, the environments'
network runner) every pair uploads its observation; once every active pair's is in, the
slot's observations ``(N, D)`` go to the learner (:mod:`controller.roles.external`) and each
pair gets its action back.

Not durable yet (no checkpoints or resume, unlike the cellular and V2X parts): a killed
controller ends the training run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

import numpy as np

from channel_server.d2d import D2dScenario
from controller.evaluation.d2d_run import D2dRecorder
from controller.roles.external import EXTERNAL, ExternalSlots
from node.d2d_observation import observation_dim
from node.pair_agent import own_actor
from protocols.d2d_messages import D2dOutcome
from protocols.messages import Experience, Message, ObsUpload
from protocols.names import CONTROLLER, index_of
from protocols.role import Outbox
from protocols.validate import Rejected, check_array, check_indices
from protocols.weights import WeightsArtifact

if TYPE_CHECKING:
    from controller.roles.controller import ControllerRole


def arrival_slot(slot: int, latency_s: float, slot_s: float) -> float:
    """The slot at whose start the upload of slot ``slot``, sent at its end, has arrived
    ``latency_s`` later (inf: lost)."""
    return slot + 1 + math.ceil(latency_s / slot_s - 1e-9) if math.isfinite(latency_s) \
        else math.inf


def deployment_lag(scenario: D2dScenario, nodes: list[str], period: int) -> int:
    """Slots the controller -> pair links take to carry a deployment (their base latency,
    the slowest pair's). ValueError naming both when it is not shorter than the broadcast
    ``period``: a deployment would land after the next update."""
    slot_s = scenario.radio.slot_s
    lag = max((math.ceil(scenario.backhaul.link(CONTROLLER, name).latency_s / slot_s - 1e-9)
               for name in nodes), default=0)
    if lag >= period:
        raise ValueError(f"actors take {lag} slots to reach the pairs over the backhaul, not "
                         f"less than the broadcast period ({period})")
    return lag


class D2dPart:
    external: ExternalSlots | None = None
    """Scheme ``external-learner``: a learner outside the testbed decides (set by
    :mod:`controller.envs.network`)."""

    def __init__(self, ctl: ControllerRole, scenario: D2dScenario,
                 weights: dict[str, np.ndarray] | None) -> None:
        self.ctl = ctl
        self.scenario = scenario
        self.recorder = D2dRecorder(scenario, ctl.scheme, ctl.runner, ctl.seed, ctl.slots)
        if ctl.out_dir is not None:
            self.recorder.stream(ctl.out_dir)
        train = ctl.options.get("train")
        self.trainer: Any = None
        if train:
            from controller.learners.d2d_experience import D2dNetworkTrainer

            self.trainer = D2dNetworkTrainer(scenario, ctl.scheme, ctl.seed, train, ctl.slots)
            if weights is not None:
                self.trainer.set_variables(weights)
            weights = self.trainer.get_variables()
        self.snapshot: tuple[int, dict[str, np.ndarray]] | None = (
            (1, weights) if weights is not None else None)
        self.pause_every = self.trainer.period if self.trainer else 0
        self.asynchronous = bool(self.trainer is not None and train and train.get("asynchronous"))
        self.pause_offset = (deployment_lag(scenario, ctl.nodes, self.trainer.period)
                             if self.asynchronous else 0)
        """Slots between an update and the slot its actors go live (asynchronous mode)."""
        self.upto: int | None = None
        self.experience_latency_s: list[float] = []

    # ----------------------------------------------------------------- the part

    def after_start(self, name: str, out: Outbox) -> None:
        pass

    def after_weights(self, name: str, slot: int, out: Outbox) -> None:
        pass

    def busy(self) -> bool:
        """An update waits for the last histories of its period."""
        return self.upto is not None

    def weights_for(self, name: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Only the receiving pair's own arrays."""
        return own_actor(arrays, index_of(name))

    def on_message(self, msg: Message, now: float, out: Outbox) -> bool:
        if isinstance(msg, Experience) and self.trainer is not None:
            if not 0 <= msg.slot < self.ctl.slots:
                raise Rejected(f"slot {msg.slot} outside [0, {self.ctl.slots})")
            check_array(msg.obs, "obs", (1, self.trainer.obs_dim))
            check_array(msg.action, "action", (1,), 0, self.scenario.radio.n_actions - 1)
            check_array(msg.reward, "reward", (1,))
            self.trainer.add_experience(msg.slot, index_of(msg.sender), msg.obs[0],
                                        int(msg.action[0]), float(msg.reward[0]),
                                        arrival_slot(msg.slot, msg.chain_latency_s,
                                                     self.scenario.radio.slot_s))
            self.experience_latency_s.append(msg.chain_latency_s)
            self.try_train(now, out)
        elif isinstance(msg, ObsUpload) and self.external is not None:
            self.on_upload(msg, now, out)
        elif isinstance(msg, D2dOutcome):
            self.check_outcome(msg)
            self.recorder.add(msg, msg.lost)
            self.ctl.outcome_recorded(msg.lost)
            if self.external is not None:
                self.external.learner.outcome(msg)
            upto = self.recorder.done - self.pause_offset  # the update's data boundary
            if self.trainer is not None and upto > 0 and upto % self.trainer.period == 0 \
                    and self.recorder.done < self.ctl.slots:
                self.upto = upto
                self.try_train(now, out)
        else:
            return False
        return True

    def check_outcome(self, msg: D2dOutcome) -> None:
        """The next slot in order, every array of the scenario's shape and range."""
        if msg.slot != self.recorder.done:
            raise Rejected(f"slot {msg.slot} out of order (expected {self.recorder.done})")
        r = self.scenario.radio
        n = r.n_pairs
        check_array(msg.rb, "rb", (n,), -1, r.n_rb - 1)
        check_array(msg.power_level, "power level", (n,), -1, r.n_levels - 1)
        check_array(msg.cue_sinr, "CUE SINR", (r.n_cue,), 0.0)
        check_array(msg.d2d_sinr, "D2D SINR", (n,), 0.0)
        check_array(msg.cue_rate_bps, "CUE rates", (r.n_cue,), 0.0)
        check_array(msg.d2d_rate_bps, "D2D rates", (n,), 0.0)
        check_array(msg.reward, "rewards", (n,))
        if not isinstance(msg.decision_latency_s, np.ndarray) \
                or msg.decision_latency_s.shape != (n,):
            raise Rejected("decision latencies of the wrong shape")
        check_indices(msg.lost, "lost", n)

    def on_upload(self, msg: ObsUpload, now: float, out: Outbox) -> None:
        assert self.external is not None
        if not self.recorder.done <= msg.slot < self.ctl.slots:
            raise Rejected(f"slot {msg.slot} outside [{self.recorder.done}, {self.ctl.slots})")
        obs = check_array(msg.obs, "obs", (observation_dim(self.scenario),))
        self.external.collect(msg.slot, index_of(msg.sender), obs, msg.chain_latency_s,
                              self.ctl.active, self.scenario.radio.n_pairs, now, out)

    def on_timer(self, key: Hashable, now: float, out: Outbox) -> None:
        """External learner: send each pair the action the learner chose."""
        assert key == EXTERNAL and self.external is not None
        self.external.send_actions(now, out, self.ctl.kind.node_name,
                                   self.scenario.timing.compute_s)

    def try_train(self, now: float, out: Outbox) -> None:
        """Once the period's histories are in: update, deploy the actors."""
        upto, trainer, ctl = self.upto, self.trainer, self.ctl
        if upto is None or trainer is None:
            return
        if not trainer.complete(range(upto - trainer.period, upto), ctl.active):
            return
        self.upto = None
        row = trainer.update(upto, arrived=self.asynchronous)
        self.snapshot = (trainer.version, trainer.get_variables())
        ctl.emit("TRAIN", trainer.version, json.dumps(row))
        ctl.deploy(trainer.version, upto + self.pause_offset, now, out)

    # ----------------------------------------------------------------- results

    def live_metrics(self) -> dict[str, Any]:
        return {"slots_done": self.recorder.done}

    def extra_summary(self) -> dict[str, Any]:
        lat = np.asarray(self.experience_latency_s) * 1e3
        lat = lat[np.isfinite(lat)]
        train = self.trainer
        actor = (sum(a.nbytes for a in own_actor(self.snapshot[1], 0).values())
                 if self.snapshot else None)
        return {"broadcast_period_slots": train.period if train else None,
                "asynchronous": self.asynchronous, "deployment_lag_slots": self.pause_offset,
                "weights_versions": train.version if train else (1 if self.snapshot else 0),
                "actor_bytes": actor,
                "experience_latency_ms_p50": float(np.percentile(lat, 50)) if lat.size else None,
                "experience_latency_ms_p99": float(np.percentile(lat, 99)) if lat.size else None}

    def history(self) -> list[dict[str, float]]:
        return self.trainer.history if self.trainer is not None else []

    def final_weights(self) -> WeightsArtifact | None:
        if self.trainer is None or not self.trainer.history:
            return None
        artifact: WeightsArtifact = self.trainer.artifact()
        return artifact
