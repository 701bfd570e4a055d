"""The controller's part of a V2X run: it records every slot outcome, broadcasts the
fingerprint (training iteration, epsilon) that every observation carries, and while
training feeds the vehicles' experience to the multi-agent DQN learner, updating every
``broadcast_period`` slots and sending each vehicle only its own network."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np

from channel_server.v2x import V2xScenario
from controller.evaluation.v2x_run import SlotRecord, V2xRecorder
from node.vehicle_agent import eval_fingerprint, own_weights, scheme_scenario
from protocols.messages import Experience, Fingerprint, Message, V2xOutcome
from protocols.names import CHANNEL_SERVER, index_of
from protocols.role import Outbox
from protocols.validate import Rejected, check_array, check_indices, check_number
from protocols.weights import WeightsArtifact

if TYPE_CHECKING:
    from controller.roles.controller import ControllerRole


class V2xPart:
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
        self.upto: int | None = None
        self.pause_every = self.trainer.period if self.trainer else 0

    def fingerprint(self, slot: int) -> tuple[float, float]:
        return self.trainer.fingerprint(slot) if self.trainer else self.fixed_fingerprint

    def send_fingerprint(self, name: str, slot: int, out: Outbox) -> None:
        it, eps = self.fingerprint(max(slot, 0))
        out.send(name, Fingerprint, slot=slot, iteration=int(it), epsilon=eps)

    # ----------------------------------------------------------------- the part

    def after_start(self, name: str, out: Outbox) -> None:
        if name != CHANNEL_SERVER:
            self.send_fingerprint(name, -1, out)

    def after_weights(self, name: str, slot: int, out: Outbox) -> None:
        self.send_fingerprint(name, slot, out)

    def busy(self) -> bool:
        """An update waits for the last experience of its iteration."""
        return self.upto is not None

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
            self.trainer.add_experience(msg.slot, index_of(msg.sender), msg.obs[0],
                                        int(msg.action[0]), bool(msg.done[0]))
            self.experience_latency_s.append(msg.chain_latency_s)
            self.try_train(now, out)
        elif isinstance(msg, V2xOutcome):
            self.check_outcome(msg)
            self.recorder.add(SlotRecord(
                episode_slot=msg.episode_slot, rb=msg.rb, power_level=msg.power_level,
                transmitted=msg.transmitted, v2i_rate_bps=msg.v2i_rate_bps,
                v2v_rate_bps=msg.v2v_rate_bps, reward=msg.reward,
                remaining_bits=msg.remaining_bits, delivery_time_s=msg.delivery_time_s,
                decision_latency_s=msg.decision_latency_s), msg.lost)
            self.ctl.outcome_recorded(msg.lost)
            done = self.recorder.done
            if self.trainer is not None:
                self.trainer.add_reward(msg.slot, msg.reward)
                if done % self.trainer.period == 0 and done < self.ctl.slots:
                    self.upto = done
                    self.try_train(now, out)
        else:
            return False
        return True

    def check_outcome(self, msg: V2xOutcome) -> None:
        """The next slot in order, every array of the scenario's shape and range."""
        if msg.slot != self.recorder.done:
            raise Rejected(f"slot {msg.slot} out of order (expected {self.recorder.done})")
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
        """Once the period's experience is in: update, deploy weights and fingerprint."""
        upto, trainer, ctl = self.upto, self.trainer, self.ctl
        if upto is None or trainer is None:
            return
        if not trainer.complete(range(upto - trainer.period, upto), ctl.active):
            return
        self.upto = None
        row = trainer.update(upto)
        version = trainer.version
        self.snapshot = (version, trainer.variables())
        ctl.emit("TRAIN", version, json.dumps(row))
        ctl.deploy(version, upto, now, out)

    # ----------------------------------------------------------------- results

    def live_metrics(self) -> dict[str, Any]:
        return {"slots_done": self.recorder.done}

    def extra_summary(self) -> dict[str, Any]:
        lat = np.asarray(self.experience_latency_s) * 1e3
        lat = lat[np.isfinite(lat)]
        train = self.trainer
        return {"broadcast_period_slots": train.period if train else None,
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
