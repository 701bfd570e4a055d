"""The environments over real processes (``make_env(path, runner="network", out=DIR)``):
every ``step()`` goes through the channel server and the kind's node processes, so the
user's own learner drives agents that are separate processes on the metered,
latency-modelled backhaul.

This module is what every kind's network environment shares; a kind's own (one module per
kind and view: :mod:`controller.envs.cellular_network`,
:mod:`controller.envs.interference_network`, :mod:`controller.envs.d2d_network`,
:mod:`controller.envs.v2x_network`, :mod:`controller.envs.central_network`) mixes
:class:`OverProcesses` into the kind's in-process environment and gives it only how a slot
is played: the same game (spaces, observations, rewards, agent names) for the same seed.
Each episode is one run of the kind's scheme registered with ``options={"external": True}``
(``external-learner``: the nodes upload what they measured or observed and the controller's
part hands it to this env, :mod:`controller.roles.external`) into its own run directory
``DIR/episode-<i>-seed-<s>`` (metrics.csv, overhead.csv, latency.csv, summary.json, the
processes' logs), with ``max_cycles`` slots:

* ``reset(seed=s)`` starts a channel server and the node processes (fresh CURVE keys,
  loopback tcp) and a controller in this process, on a thread of its own; a ``reset()``
  without a seed starts the next run with seed ``s + 1`` (a fresh set of processes: the
  in-process env's unseeded reset, which goes on in the same world, has no counterpart
  here);
* each slot the nodes upload to the controller, which hands the slot to this env as
  ``self.gains``: the whole channel (cellular, interference) or every agent's observation
  (D2D, V2X), what the in-process env's observations are made of;
* ``step(actions)`` turns the actions into the nodes' decisions as the nodes would (watts,
  or the kind's discrete action), the controller sends each node its own, the nodes
  transmit, and the air's slot outcome gives the rewards;
* after the last slot the run writes its run directory, and ``last_summary`` holds its
  summary (bytes per slot, decision latency, ...); ``close()`` stops a run mid-way.

The controller polls for this env's decisions every 0.5 ms, so a learner may take its time
between steps, up to the scenario's ``timing.peer_timeout_s`` (twice that and the
controller gives the channel server up). Errors name what failed: a process that died, a
run that ended early, a step that waited longer than ``step_timeout_s``.
"""

from __future__ import annotations

import asyncio
import copy
import queue
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np

from channel_server.kinds import Resolved
from controller.deploy.launcher import LOOPBACK_BIND, NetworkRun
from controller.deploy.tempdirs import make_tempdir
from controller.envs.base import DEFAULT_MAX_CYCLES
from controller.roles.controller import ControllerRole
from controller.roles.external import ExternalSlots
from controller.runners.output import write_run
from node.schemes import SCHEMES
from protocols.driver import Driver
from protocols.keys import load_keys, write_keys
from protocols.meter import Meter
from protocols.names import CONTROLLER
from protocols.transport import Endpoint

STEP_TIMEOUT_S = 60.0


def external_scheme(resolved: Resolved, exchange: str | None = None) -> str:
    """The scheme of ``resolved``'s kind whose slots an outside learner decides (with the
    given exchange pattern; None: its first)."""
    found = [s.name for s in SCHEMES.for_kind(resolved.kind.name, external=True)
             if s.options.get("external") and exchange in (None, s.exchange)]
    if not found:
        raise ValueError(f"scenario kind {resolved.kind.name!r} has no scheme an outside "
                         "learner decides (options external = True)"
                         + (f" with exchange {exchange!r}" if exchange else ""))
    return found[0]


class Bridge:
    """Hands slots between the controller's event loop (a thread of this process) and the
    env: uploads and outcomes one way, decisions the other. Never blocks the loop."""

    def __init__(self) -> None:
        self.events: queue.Queue[tuple[str, int, Any]] = queue.Queue()
        self.actions: dict[int, np.ndarray] = {}
        self.lock = threading.Lock()
        self.early: list[tuple[str, int, Any]] = []
        """Events that came before the one waited for (a node's upload of slot n + 1, two
        hops from the air, may overtake the air's outcome of slot n, one hop)."""

    # the controller's side (controller.roles.external.ExternalLearner)
    def observe(self, slot: int, gains: Any) -> None:
        self.events.put(("slot", slot, copy.deepcopy(gains)))

    def action(self, slot: int) -> np.ndarray | None:
        with self.lock:
            return self.actions.pop(slot, None)

    def outcome(self, msg: Any) -> None:
        self.events.put(("outcome", msg.slot, msg))

    # the env's side
    def act(self, slot: int, decisions: np.ndarray) -> None:
        with self.lock:
            self.actions[slot] = decisions

    def wait(self, want: str, slot: int, timeout_s: float, alive: Any) -> Any:
        """The ``want`` event ("slot" or "outcome") of ``slot``; RuntimeError naming what
        went wrong when the run ends or ``alive()`` says why it cannot go on."""
        for i, (kind, n, payload) in enumerate(self.early):
            if (kind, n) == (want, slot):
                del self.early[i]
                return payload
        waited = 0.0
        while True:
            try:
                kind, n, payload = self.events.get(timeout=0.2)
            except queue.Empty:
                waited += 0.2
                why = alive()
                if why is None and waited > timeout_s:
                    why = f"nothing within {timeout_s:.0f} s"
                if why is not None:
                    raise RuntimeError(f"waiting for the {want} of slot {slot}: {why}") from None
                continue
            if kind == "end":
                raise RuntimeError(f"the run ended before the {want} of slot {slot}: "
                                   f"{payload}")
            if (kind, n) == (want, slot):
                return payload
            if n > slot:
                self.early.append((kind, n, payload))
                continue
            raise RuntimeError(f"expected the {want} of slot {slot}, got the {kind} of {n}")


class Episode:
    """One run of ``max_cycles`` slots: the processes, the controller on its thread."""

    def __init__(self, resolved: Resolved, scheme: str, seed: int, slots: int,
                 out: Path) -> None:
        self.out = out
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        self.bridge = Bridge()
        self.keydir = make_tempdir("keys")
        write_keys(self.keydir, resolved.process_names)
        self.ctl = ControllerRole(resolved, scheme, slots, seed, "network",
                                  None, {}, out_dir=out)
        self.ctl.part.external = ExternalSlots(self.bridge)  # type: ignore[attr-defined]
        self.summary: dict[str, Any] | None = None
        self.error: BaseException | None = None
        self.endpoint = Endpoint(CONTROLLER, LOOPBACK_BIND, Meter(),
                                 keys=load_keys(self.keydir, CONTROLLER))
        self.run = NetworkRun(out)
        self.thread = threading.Thread(target=self._serve, name=f"rrmbed-env-{out.name}",
                                       daemon=True)
        self.thread.start()
        address, security = str(self.endpoint.address), ["--keys", str(self.keydir)]
        self.run.spawn("channel-server", ["channel-server", "--controller", address,
                                          "--bind", LOOPBACK_BIND, *security])
        for role in resolved.node_names:
            self.run.spawn(role, ["node", "--role", resolved.kind.node_role, "--id",
                                  role.rsplit("-", 1)[1], "--controller", address, "--bind",
                                  LOOPBACK_BIND, *security])

    def _serve(self) -> None:
        try:
            asyncio.run(Driver(self.ctl, self.endpoint).run())
            if self.ctl.failure:
                self.ctl.errors.append(f"{self.ctl.name}: {self.ctl.failure}")
            if self.ctl.phase not in ("hello", "ready"):
                self.summary = write_run(self.ctl, self.out)
        except BaseException as e:  # noqa: BLE001 - handed to the env's thread
            self.error = e
        finally:
            self.endpoint.close(linger_s=1.0)
            self.bridge.events.put(("end", -1, self.why_ended()))

    def why_ended(self) -> str:
        if self.error is not None:
            return f"the controller failed: {self.error!r}"
        errors = (self.summary or {}).get("errors") or self.ctl.errors
        return "; ".join(errors) if errors else (self.ctl.failure or "the run is over")

    def alive(self) -> str | None:
        """Why the run cannot go on (None: it can)."""
        for role, p in self.run.procs.items():
            if p.poll() is not None and not self.ctl.done:
                return f"{role} exited with code {p.returncode} (see {self.out / 'logs'})"
        if not self.thread.is_alive() and self.bridge.events.empty():
            return self.why_ended()
        return None

    def finish(self, timeout_s: float) -> dict[str, Any]:
        """Wait for the run's end (after its last slot); its summary."""
        self.thread.join(timeout_s)
        if self.thread.is_alive():
            raise RuntimeError(f"the run in {self.out} did not end within {timeout_s:.0f} s")
        self.close()
        if self.summary is None:
            raise RuntimeError(f"the run in {self.out} wrote no summary: {self.why_ended()}")
        return self.summary

    def close(self) -> None:
        """Stop whatever still runs (a run stopped mid-way keeps the rows it recorded)."""
        if self.thread.is_alive():  # mid-way: the controller stops at its next beat
            self.ctl.failure = self.ctl.failure or "closed by the environment mid-way"
            self.ctl.done = True
        self.run.cleanup()
        self.thread.join(10.0)
        shutil.rmtree(self.keydir, ignore_errors=True)


class OverProcesses:
    """Mixed in before a kind's in-process environment (whose observations are made of
    ``self.gains``): its world comes from real processes. The kind's class calls
    :meth:`_network` in its ``__init__`` and plays a slot with :meth:`_exchange`."""

    max_cycles: int
    run_seed: int
    gains: Any
    EXCHANGE: str | None = None
    """The exchange pattern of the kind's external scheme this env plays (None: the
    kind's first external scheme)."""

    def __init__(self, scenario: Any, resolved: Resolved, seed: int = 0,
                 max_cycles: int = DEFAULT_MAX_CYCLES, out: str | Path = "runs/env",
                 step_timeout_s: float = STEP_TIMEOUT_S) -> None:
        super().__init__(scenario, seed, max_cycles)  # type: ignore[call-arg]
        self._network(resolved, out, step_timeout_s)

    def _network(self, resolved: Resolved, out: str | Path, step_timeout_s: float) -> None:
        self.resolved = resolved
        self.out = Path(out)
        self.step_timeout_s = float(step_timeout_s)
        self.episode: Episode | None = None
        self.episodes = 0
        """Runs started so far."""
        self.slot = 0
        """The slot of the current run whose channel the agents observe."""
        self.last_summary: dict[str, Any] | None = None
        """The summary.json of the last run that ended."""

    def run_slots(self) -> int:
        """Slots of an episode's run (a kind whose episodes end sooner says so)."""
        return self.max_cycles

    def _start(self, seed: int) -> None:
        self.close()
        self.episode = Episode(self.resolved, external_scheme(self.resolved, self.EXCHANGE),
                               seed, self.run_slots(),
                               self.out / f"episode-{self.episodes}-seed-{seed}")
        self.episodes += 1
        self.slot = 0
        self.gains = self._wait("slot", 0)

    def _next_episode(self) -> None:
        self.run_seed += 1
        self._start(self.run_seed)

    def _wait(self, want: str, slot: int) -> Any:
        assert self.episode is not None
        return self.episode.bridge.wait(want, slot, self.step_timeout_s, self.episode.alive)

    def _act(self, decisions: np.ndarray) -> None:
        """Hand the controller ``decisions`` for the current slot."""
        assert self.episode is not None
        self.episode.bridge.act(self.slot, decisions)

    def _exchange(self, decisions: np.ndarray) -> Any:
        """Play the current slot with ``decisions`` (the kind's: powers in watts, or each
        agent's discrete action): the air's outcome message of it; the next slot's upload is
        then in ``self.gains``."""
        self._act(decisions)
        msg = self._wait("outcome", self.slot)
        self.slot += 1
        if self.slot < self.run_slots():
            self.gains = self._wait("slot", self.slot)
        else:
            assert self.episode is not None
            self.last_summary = self.episode.finish(self.step_timeout_s)
            self.episode = None
        return msg

    def close(self) -> None:
        if self.episode is not None:
            self.episode.close()
            self.episode = None
