"""The controller of a vehicular run: the handshake and results of
:class:`controller.roles.process.ControllerProcess`, plus the fingerprint broadcast and, while
training, the multi-agent DQN learner fed by the vehicles' experience.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from channel_server.config import to_toml
from channel_server.v2x import V2xScenario, v2x_scenario_to_dict
from controller.evaluation.v2x_run import SlotRecord, V2xRecorder
from controller.roles.process import ControllerProcess, log, say
from controller.training.v2x_marl import eval_fingerprint, marl_config, scheme_scenario
from controller.training.v2x_net_training import V2xNetworkTrainer
from node.policy_spec import read_weights
from node.vehicle_agent import own_weights
from protocols.messages import (
    Experience,
    Fingerprint,
    Heartbeat,
    Message,
    Resume,
    V2xOutcome,
    Weights,
    WeightsAck,
)
from protocols.peer import CHANNEL_SERVER, Peer, index_of, vehicle_name


class V2xControllerProcess(ControllerProcess):
    node_name = staticmethod(vehicle_name)

    def __init__(self, peer: Peer, scenario: V2xScenario, scheme: str, slots: int, seed: int,
                 out: Path, weights: Path | None = None, options: dict[str, Any] | None = None,
                 startup_timeout_s: float = 60.0) -> None:
        from protocols.peer import telemetry_for

        self.peer = peer
        self.scenario = scheme_scenario(scenario, scheme)  # type: ignore[assignment]
        self.v2x = self.scenario
        self.scheme = scheme
        self.slots = slots
        self.seed = seed
        self.out = out
        self.options = dict(options or {})
        self.startup_timeout_s = startup_timeout_s
        self.n_nodes = scenario.radio.n_v2v
        self.recorder = V2xRecorder(self.v2x, scheme, "network", seed, slots)  # type: ignore
        train = self.options.get("train")
        self.trainer = (V2xNetworkTrainer(self.v2x, scheme, seed, slots,
                                          int(train["broadcast_period"]),
                                          marl_config(str(train.get("sharing", "per-agent"))))
                        if train else None)
        arrays = read_weights(weights) if weights else None
        if self.trainer is not None:
            if arrays is not None:
                self.trainer.dqn.set_variables({k: v for k, v in arrays.items()
                                                if k != "env_fingerprint"})
            arrays = self.trainer.variables()
        if arrays is None and scheme != "random":
            raise ValueError(f"scheme {scheme!r} needs --weights (a trained Q network) "
                             "unless it trains")
        self.snapshot = (1, arrays) if arrays is not None else None
        self.fixed_fingerprint = eval_fingerprint(self.v2x, arrays)
        self.directory: dict[str, str] = {}
        self.config_toml = ""
        self.rejoined: list[str] = []
        self.active = set(range(self.n_nodes))
        self.processes: dict[str, int] = {}
        self.hosts: dict[str, str] = {}
        self.errors: list[str] = []
        self.backlog: list[Any] = []
        self.telemetry = telemetry_for(self.options, "controller", "0")
        self.last_progress = 0.0
        self.experience_latency_s: list[float] = []
        """Emulated latency of every experience upload (uplink included), seconds."""

    def extra_summary(self) -> dict[str, Any]:
        lat = np.asarray(self.experience_latency_s) * 1e3
        lat = lat[np.isfinite(lat)]
        train = self.trainer
        return {"broadcast_period_slots": train.period if train else None,
                "weights_versions": train.version if train else 1,
                "experience_latency_ms_p50": float(np.percentile(lat, 50)) if lat.size else None,
                "experience_latency_ms_p99": float(np.percentile(lat, 99)) if lat.size else None}

    async def send_snapshot(self, name: str, slot: int) -> None:
        """The current weights, only the receiving vehicle's own network of them."""
        if self.snapshot is None:
            log.warning("controller: %s asked for weights, but there are none", name)
            return
        version, arrays = self.snapshot
        own = own_weights(arrays, index_of(name))
        await self.peer.send(name, Weights, slot=slot, version=version, names=list(own),
                             arrays=list(own.values()))

    def scenario_toml(self) -> str:
        return to_toml(v2x_scenario_to_dict(self.v2x))

    def fingerprint(self, slot: int) -> tuple[float, float]:
        return self.trainer.fingerprint(slot) if self.trainer else self.fixed_fingerprint

    async def send_start(self, name: str) -> None:
        await super().send_start(name)
        if name != CHANNEL_SERVER:
            await self.send_fingerprint(name, -1)

    async def send_fingerprint(self, name: str, slot: int) -> None:
        it, eps = self.fingerprint(max(slot, 0))
        await self.peer.send(name, Fingerprint, slot=slot, iteration=int(it), epsilon=eps)

    async def on_message(self, msg: Message) -> bool:
        if isinstance(msg, Experience) and self.trainer is not None:
            self.add_experience(msg)
        elif isinstance(msg, V2xOutcome):
            self.recorder.add(SlotRecord(
                episode_slot=msg.episode_slot, rb=msg.rb, power_level=msg.power_level,
                transmitted=msg.transmitted, v2i_rate_bps=msg.v2i_rate_bps,
                v2v_rate_bps=msg.v2v_rate_bps, reward=msg.reward,
                remaining_bits=msg.remaining_bits, delivery_time_s=msg.delivery_time_s,
                decision_latency_s=msg.decision_latency_s), msg.lost)
            self.active = set(range(self.n_nodes)) - set(msg.lost)
            self.progress()
            done = self.recorder.done
            if self.trainer is not None:
                self.trainer.add_reward(msg.slot, msg.reward)
                if done % self.trainer.period == 0 and done < self.slots:
                    await self.train_iteration(done)
        elif not isinstance(msg, Heartbeat):
            return False
        return True

    def publish_metrics(self) -> None:
        self.telemetry.update(slots_done=self.recorder.done)

    def add_experience(self, msg: Experience) -> None:
        assert self.trainer is not None
        self.trainer.add_experience(msg.slot, index_of(msg.sender), msg.obs[0],
                                    int(msg.action[0]), bool(msg.done[0]))
        self.experience_latency_s.append(msg.chain_latency_s)

    async def train_iteration(self, upto: int) -> None:
        """Wait for the period's experience, update, broadcast weights and fingerprint,
        then let the air go on."""
        assert self.trainer is not None
        deadline = time.monotonic() + self.v2x.timing.peer_timeout_s * 4
        period = range(upto - self.trainer.period, upto)
        while not self.trainer.complete(period, self.active):
            msg = await self.peer.recv(max(0.0, deadline - time.monotonic()))
            if isinstance(msg, Experience):
                self.add_experience(msg)
            else:
                self.backlog.append(msg)
        row = self.trainer.update(upto)
        version = self.trainer.version
        self.snapshot = (version, self.trainer.variables())
        say("TRAIN", version, json.dumps(row))
        names = [self.node_name(k) for k in sorted(self.active)]
        for name in names:
            await self.send_snapshot(name, upto)
            await self.send_fingerprint(name, upto)
        acks = await self.gather(WeightsAck, names, self.v2x.timing.peer_timeout_s * 4,
                                 f"weights v{version} acknowledgement")
        assert all(isinstance(a, WeightsAck) and a.version == version for a in acks.values())
        await self.peer.send(CHANNEL_SERVER, Resume, slot=upto, version=version)

    def final_weights(self) -> dict[str, np.ndarray]:
        assert self.trainer is not None
        return self.trainer.variables()

