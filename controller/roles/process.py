"""The controller process: orchestrates the handshake, decides for centralized
schemes, collects slot outcomes and reports, and writes the run directory.

It prints one line protocol on stdout for a launcher: ``ADDRESS <endpoint>`` once
bound, ``PROGRESS <done> <total>`` while slots run, ``SUMMARY <path>`` at the end.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from channel_server.config import Scenario, scenario_to_dict, to_toml
from controller.baselines.central import CentralDecider
from controller.evaluation.results import RunRecorder
from node.agent import EXCHANGE, policy_with_weights
from node.policy_spec import read_weights
from protocols.errors import PeerTimeout
from protocols.messages import (
    CsiUpload,
    Decision,
    Done,
    Error,
    Experience,
    Heartbeat,
    Hello,
    Join,
    Message,
    Report,
    Resume,
    SlotOutcome,
    Start,
    Stop,
    Weights,
    WeightsAck,
    WeightsRequest,
)
from protocols.meter import Meter
from protocols.peer import (
    CHANNEL_SERVER,
    CONTROLLER,
    Peer,
    backhaul_bytes,
    node_name,
    telemetry_for,
)

log = logging.getLogger("rrmbed.controller")


def say(*parts: object) -> None:
    print(*parts, flush=True)


class ControllerProcess:
    node_name = staticmethod(node_name)
    """Name of node process ``b``."""

    def __init__(self, peer: Peer, scenario: Scenario, scheme: str, slots: int, seed: int,
                 out: Path, weights: Path | None = None, options: dict[str, Any] | None = None,
                 startup_timeout_s: float = 60.0) -> None:
        self.peer = peer
        self.scenario = scenario
        self.scheme = scheme
        self.slots = slots
        self.seed = seed
        self.out = out
        self.options = dict(options or {})
        self.startup_timeout_s = startup_timeout_s
        self.weights = read_weights(weights) if weights else None
        self.n_nodes = scenario.radio.n_cells
        self.recorder = RunRecorder(scenario, scheme, "network", seed, slots)
        self.central = None
        train = self.options.get("train")
        if EXCHANGE[scheme] == "central":
            policy = None
            if self.weights is not None and scheme == "centralized":
                policy = policy_with_weights(scheme, scenario, self.weights)
            self.central = CentralDecider(scheme, scenario, seed, policy,
                                          "sample" if train else "mean")
        self.trainer = self.make_trainer(train) if train else None
        self.snapshot: tuple[int, dict[str, np.ndarray]] | None = (
            (1, self.weights) if self.weights is not None and scheme in ("full", "round-robin")
            else None)
        """The current node weights (version, arrays) served to nodes that ask."""
        self.directory: dict[str, str] = {}
        self.config_toml = ""
        self.joining: dict[str, int] = {}
        self.rejoined: list[str] = []
        self.uploads: dict[int, dict[int, tuple[np.ndarray, float]]] = {}
        self.central_compute: dict[int, float] = {}
        self.active = set(range(self.n_nodes))
        self.processes: dict[str, int] = {}
        self.hosts: dict[str, str] = {}
        self.reports: dict[str, Report] = {}
        self.errors: list[str] = []
        self.backlog: list[Message] = []
        """Messages that arrived while waiting for something else; served first."""
        self.telemetry = telemetry_for(self.options, "controller", "0")
        self.last_progress = 0.0

    def make_trainer(self, train: dict[str, Any]) -> Any:
        """The learner of a network training run, on the same initial weights as the nodes."""
        from controller.training.net_training import NetworkTrainer, TrainOptions, make_learner
        from node.agent import node_policy

        if self.scheme in ("full", "round-robin"):
            policy = node_policy(self.scheme, self.scenario, self.seed)
            per_slot = self.n_nodes
        elif self.scheme == "centralized":
            assert self.central is not None
            policy, per_slot = self.central.policy, 1
        else:
            raise ValueError(f"scheme {self.scheme!r} has no policy to train")
        if self.weights is not None:
            from node.policy import load_arrays

            load_arrays(policy, self.weights)
        opts = TrainOptions.of(train)
        return NetworkTrainer(make_learner(opts.algo, policy, self.seed), per_slot, opts,
                              version=1 if self.weights is not None else 0)

    @property
    def roles(self) -> list[str]:
        return [CHANNEL_SERVER, *(self.node_name(b) for b in range(self.n_nodes))]

    async def gather(self, kind: type[Message], names: list[str], timeout_s: float,
                     what: str, serve_snapshots: bool = False) -> dict[str, Message]:
        """Wait until every name sent a message of ``kind``; name the missing ones. Other
        messages wait in the backlog, except weights requests with ``serve_snapshots``
        (answered at once as set-up traffic: nodes fetch the snapshot before saying ready)."""
        got: dict[str, Message] = {}
        deadline = time.monotonic() + timeout_s
        while set(names) - set(got):
            left = deadline - time.monotonic()
            try:
                if left <= 0:
                    raise PeerTimeout(what)
                msg = await self.peer.recv(left)
            except PeerTimeout:
                missing = sorted(set(names) - set(got))
                raise PeerTimeout(f"controller: no {what} from {', '.join(missing)} "
                                  f"within {timeout_s:.1f} s") from None
            if isinstance(msg, kind) and msg.sender in names:
                got[msg.sender] = msg
            elif isinstance(msg, Error):
                self.errors.append(f"{msg.sender}: {msg.text}")
            elif serve_snapshots and isinstance(msg, WeightsRequest):
                await self.send_snapshot(msg.sender, slot=-1)
            else:
                self.backlog.append(msg)
        return got

    async def handshake(self) -> None:
        hellos = await self.gather(Hello, self.roles, self.startup_timeout_s, "hello")
        directory = {}
        for name, h in hellos.items():
            assert isinstance(h, Hello)
            self.peer.connect(name, h.host)
            directory[name] = h.host
            self.processes[name] = h.pid
        self.directory = directory
        self.config_toml = self.scenario_toml()
        nodes = [self.node_name(b) for b in range(self.n_nodes)]
        for name in nodes:
            await self.send_start(name)
        self.peer.emulate_links(self.scenario.backhaul, self.seed, self.roles,
                                self.scenario.timing.clock)
        await self.gather(Heartbeat, nodes, self.startup_timeout_s, "ready signal",
                          serve_snapshots=True)
        await self.send_start(CHANNEL_SERVER)

    def extra_summary(self) -> dict[str, Any]:
        """More summary.json keys of this kind of run."""
        return {}

    def scenario_toml(self) -> str:
        return to_toml(scenario_to_dict(self.scenario))

    async def send_start(self, name: str) -> None:
        opts = {**self.options, "directory": self.directory,
                "weights_version": self.snapshot[0] if self.snapshot else 0}
        await self.peer.send(name, Start, slot=-1, scheme=self.scheme, slots=self.slots,
                             seed=self.seed, config_toml=self.config_toml, options=opts)

    async def send_snapshot(self, name: str, slot: int) -> None:
        if self.snapshot is None:
            log.warning("controller: %s asked for weights, but there are none", name)
            return
        version, arrays = self.snapshot
        await self.peer.send(name, Weights, slot=slot, version=version,
                             names=list(arrays), arrays=list(arrays.values()))

    async def on_late_hello(self, msg: Hello) -> None:
        """A node (re)started mid-run: give it the configuration; it fetches the weights."""
        if msg.role != "node" or msg.sender not in self.roles:
            log.warning("controller: ignoring hello from %s", msg.sender)
            return
        log.warning("controller: %s joins at slot %d", msg.sender, self.recorder.done)
        self.peer.connect(msg.sender, msg.host)
        self.directory[msg.sender] = msg.host
        self.processes[msg.sender] = msg.pid
        self.joining[msg.sender] = msg.node_id
        await self.send_start(msg.sender)

    async def on_ready(self, msg: Heartbeat) -> None:
        """A joining node holds the current weights: let the air serve it again."""
        b = self.joining.pop(msg.sender, None)
        if b is None:
            return
        for name in self.roles:
            if name != msg.sender:
                await self.peer.send(name, Join, slot=self.recorder.done, node=b,
                                     address=self.directory[msg.sender])
        self.active.add(b)
        self.rejoined.append(msg.sender)

    async def run(self) -> dict[str, Any]:
        await self.telemetry.start()
        try:
            return await self._run()
        finally:
            await self.telemetry.close()

    async def _run(self) -> dict[str, Any]:
        t_start = time.perf_counter()
        await self.handshake()
        t0 = time.perf_counter()
        wait = self.scenario.timing.peer_timeout_s * 2
        while True:
            try:
                msg = self.backlog.pop(0) if self.backlog else await self.peer.recv(wait)
            except PeerTimeout:
                self.errors.append(f"channel-server silent for {wait:.1f} s after slot "
                                   f"{self.recorder.done}; stopping the run")
                log.error(self.errors[-1])
                break
            if isinstance(msg, Done):
                break
            if isinstance(msg, Error):
                self.errors.append(f"{msg.sender}: {msg.text}")
            elif isinstance(msg, WeightsRequest):
                await self.send_snapshot(msg.sender, slot=self.recorder.done)
            elif not await self.on_message(msg):
                log.warning("controller: unexpected %s from %s", type(msg).__name__, msg.sender)
        wall = time.perf_counter() - t0
        return await self.finish(wall, time.perf_counter() - t_start)

    def progress(self) -> None:
        """PROGRESS line and live metrics, at most ten times a second and at the end."""
        now = time.perf_counter()
        if now - self.last_progress > 0.1 or self.recorder.done == self.slots:
            say("PROGRESS", self.recorder.done, self.slots)
            self.last_progress = now
            self.publish_metrics()

    async def on_message(self, msg: Message) -> bool:
        """Serve one message of the run; False if this kind of run does not expect it."""
        if isinstance(msg, Experience) and self.trainer is not None:
            self.trainer.add_experience(msg.slot, msg.step, msg.obs, msg.action, msg.done)
        elif isinstance(msg, SlotOutcome):
            compute = self.central_compute.pop(msg.slot, None)
            self.recorder.add(msg.sum_rate_bps_hz, msg.powers, msg.decision_latency_s,
                              msg.missed, msg.lost, msg.wall_s,
                              compute if compute is not None else float(
                                  np.mean(msg.compute_s[list(self.active)] if self.active
                                          else 0.0)))
            self.active = set(range(self.n_nodes)) - set(msg.lost)
            self.progress()
            if self.trainer is not None:
                self.trainer.add_outcome(msg.slot, msg.sum_rate_bps_hz)
                m = self.trainer.options.episodes_per_iter
                if self.recorder.done % m == 0:
                    await self.train_iteration(range(self.recorder.done - m,
                                                     self.recorder.done))
        elif isinstance(msg, CsiUpload):
            await self.on_upload(msg)
        elif isinstance(msg, Hello):
            await self.on_late_hello(msg)
        elif isinstance(msg, Heartbeat):
            await self.on_ready(msg)
        else:
            return False
        return True

    async def train_iteration(self, slots: range) -> None:
        """Wait for the slots' experience, update, deploy the weights, resume the air."""
        assert self.trainer is not None
        deadline = time.monotonic() + self.scenario.timing.peer_timeout_s * 4
        while not self.trainer.complete(slots):
            msg = await self.peer.recv(max(0.0, deadline - time.monotonic()))
            if isinstance(msg, Experience):
                self.trainer.add_experience(msg.slot, msg.step, msg.obs, msg.action, msg.done)
            else:
                self.backlog.append(msg)
        weights = self.trainer.update(slots, self.out)
        version = self.trainer.version
        if self.scheme != "centralized":
            self.snapshot = (version, weights)
        say("TRAIN", version, json.dumps(self.trainer.history[-1]))
        if slots.stop >= self.slots:
            return  # the air has finished: no slot left to use new weights in
        nodes = [self.node_name(b) for b in sorted(self.active)]
        if self.scheme != "centralized":
            for name in nodes:
                await self.peer.send(name, Weights, slot=slots.stop, version=version,
                                     names=list(weights), arrays=list(weights.values()))
            acks = await self.gather(WeightsAck, nodes, self.scenario.timing.peer_timeout_s * 4,
                                     f"weights v{version} acknowledgement")
            assert all(isinstance(a, WeightsAck) and a.version == version for a in acks.values())
        await self.peer.send(CHANNEL_SERVER, Resume, slot=slots.stop, version=version)

    def publish_metrics(self) -> None:
        """Live metrics over the last 100 slots (cheap enough to run ten times a second)."""
        rec = self.recorder
        lat = rec.decision_latency_s(last=100) * 1e3
        lat = lat[np.isfinite(lat)]
        self.telemetry.update(
            slots_done=rec.done, sum_rate_bps_hz=float(np.mean(rec.sum_rates[-100:])),
            latency_ms_p50=float(np.percentile(lat, 50)) if lat.size else None,
            latency_ms_p99=float(np.percentile(lat, 99)) if lat.size else None,
            deadline_misses=rec.misses,
            backhaul_bytes=backhaul_bytes(self.peer.meter))

    def write_training(self) -> None:
        """training.csv (one row per update) and the final weights.npz."""
        if self.trainer is None or not self.trainer.history:
            return
        import csv

        keys = sorted({k for h in self.trainer.history for k in h})
        with (self.out / "training.csv").open("w", newline="") as f:
            wr = csv.DictWriter(f, fieldnames=keys)
            wr.writeheader()
            wr.writerows(self.trainer.history)
        np.savez(self.out / "weights.npz", **self.final_weights())

    def final_weights(self) -> dict[str, np.ndarray]:
        from node.policy import state_arrays

        assert self.trainer is not None
        return state_arrays(self.trainer.learner.policy)

    async def on_upload(self, msg: CsiUpload) -> None:
        """Collect one slot's CSI uploads; decide once every active BS has uploaded."""
        assert self.central is not None
        b = int(msg.sender.split("-")[1])
        arrival = msg.chain_latency_s  # the uplink latency was added on receipt
        got = self.uploads.setdefault(msg.slot, {})
        got[b] = (np.asarray(msg.gains), arrival)
        if not self.active <= set(got):
            return
        radio = self.scenario.radio
        gains = np.zeros((1, radio.n_cells, radio.users_per_cell, radio.n_cells))
        for bs, (g, _) in got.items():
            gains[0, bs] = g
        powers, compute_s = self.central.decide(gains)
        self.central_compute[msg.slot] = compute_s
        if self.trainer is not None:
            assert self.central.last_obs is not None and self.central.last_raw is not None
            self.trainer.add_experience(msg.slot, 0, self.central.last_obs,
                                        self.central.last_raw, np.array([True]))
        ready = max(a for _, a in got.values()) + compute_s
        for bs in sorted(got):
            await self.peer.send(node_name(bs), Decision, slot=msg.slot, chain_latency_s=ready,
                                 powers=powers[0, bs])
        del self.uploads[msg.slot]

    async def finish(self, wall_s: float, total_s: float) -> dict[str, Any]:
        for name in self.roles:
            await self.peer.send(name, Stop, slot=self.recorder.done, reason="run complete")
        alive = [CHANNEL_SERVER, *(self.node_name(b) for b in sorted(self.active))]
        try:
            got = await self.gather(Report, alive, self.scenario.timing.peer_timeout_s, "report")
        except PeerTimeout as e:
            self.errors.append(str(e))
            got = {}
        meter = Meter()
        meter.merge(self.peer.meter.rows())
        stats = {}
        for name, rep in got.items():
            assert isinstance(rep, Report)
            meter.merge(rep.rows)
            stats[name] = rep.stats
            self.hosts[name] = str(rep.stats.get("hostname", ""))
        self.processes[CONTROLLER] = os.getpid()
        self.hosts[CONTROLLER] = socket.gethostname()
        self.out.mkdir(parents=True, exist_ok=True)
        self.write_training()
        summary = self.recorder.write(
            self.out, meter, self.processes, wall_s,
            extra={"hosts": self.hosts, "errors": self.errors, "process_stats": stats,
                   "rejoined": self.rejoined, **self.extra_summary(),
                   "received": [[k, s, m, b] for (k, s), (m, b) in
                                sorted(self.peer.endpoint.received.items())],
                   "setup_s": total_s - wall_s,
                   "protocol_errors": self.peer.endpoint.protocol_errors
                   + sum(int(s.get("protocol_errors", 0)) for s in stats.values())})
        say("SUMMARY", self.out / "summary.json")
        return summary


async def serve(scenario: Any, scheme: str, slots: int, seed: int, out: Path, bind: str,
                advertise: str | None, weights: Path | None, options: dict[str, Any],
                process: type[ControllerProcess] = ControllerProcess) -> int:
    """Run the controller (``process``: the kind of run) until the run ends."""
    peer = Peer(CONTROLLER, bind, advertise)
    try:
        say("ADDRESS", peer.advertise)
        proc = process(peer, scenario, scheme, slots, seed, out, weights, options)
        summary = await proc.run()
        return 1 if summary["errors"] or summary["lost_nodes"] else 0
    finally:
        peer.close(linger_s=2.0)
        sys.stdout.flush()
