"""Pluggability: a toy scheme and a toy scenario kind, declared in this file alone.

- ``half-power``: a cellular scheme (every user at Pmax / 2), one registration.
- ``two-link``: a two-link interference channel (transmitter i serves receiver i, each
  hears the other's transmission as interference) with its own node role ``tx``, its own
  air, node and controller parts and its own messages.

Both run over real processes (the plug-in module reaches every process through
$RRMBED_PLUGINS) and over the in-memory pump, with identical results; nothing outside this
file was edited for them. This module is imported by those processes, so everything at
its top level is a registration.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from channel_server.config import (
    BackhaulConfig,
    TimingConfig,
    assign,
    build_dataclass,
    to_toml,
)
from channel_server.kinds import KINDS, ScenarioKind
from node.schemes import Scheme, register
from node.schemes.cellular import MaxPower
from protocols.messages import Message, Plane
from protocols.messages import register as register_message
from protocols.meter import Meter
from protocols.names import CHANNEL_SERVER
from protocols.role import Outbox
from protocols.seeding import rng_for
from protocols.validate import check_number
from tests.helpers import S3, read_csv
from tests.helpers import rrmbed as run_cli

PLUGIN = __name__

# ----------------------------------------------------------------------------- the scheme


class HalfPower(MaxPower):
    """Every user at half of Pmax."""

    def fractions(self, csi: np.ndarray, prior_w: np.ndarray | None = None,
                  chosen: np.ndarray | None = None) -> np.ndarray:
        return np.full((csi.shape[0], self.k), 0.5)


register(Scheme("half-power", "cellular", "none", "every user at half Pmax (a plug-in)",
                actor=HalfPower, rank=90))

# ------------------------------------------------------------------------- the scenario kind


@dataclass(frozen=True)
class TwoLinkRadio:
    """Two transmitter-receiver pairs in one band, Rayleigh fading per slot."""

    direct_gain: float = 1.0
    """Mean power gain of transmitter i to its own receiver i."""
    cross_gain: float = 0.5
    """Mean power gain of transmitter i to the other receiver."""
    pmax_w: float = 1.0
    """Maximum transmit power, watts."""
    noise_w: float = 0.1
    """Receiver noise power, watts."""
    slot_s: float = 0.001
    """Slot duration, seconds."""


@dataclass(frozen=True)
class TwoLinkScenario:
    name: str
    radio: TwoLinkRadio = field(default_factory=TwoLinkRadio)
    backhaul: BackhaulConfig = field(default_factory=BackhaulConfig)
    timing: TimingConfig = field(default_factory=TimingConfig)
    source: str = "<memory>"


def _msg(cls: Any) -> Any:
    return register_message(dataclass(frozen=True, eq=False, slots=True)(cls))


@_msg
class TwoLinkSlice(Message):
    """Air -> tx-i: the gain to its own receiver and the gain of the interferer there."""

    KIND: ClassVar[str] = "two_link_slice"
    PLANE: ClassVar[Plane] = "air"
    direct: float
    cross: float


@_msg
class TwoLinkPower(Message):
    """tx-i -> air: its transmit power, watts."""

    KIND: ClassVar[str] = "two_link_power"
    PLANE: ClassVar[Plane] = "air"
    power_w: float


@_msg
class TwoLinkOutcome(Message):
    """Air -> controller: the slot's gains G[tx, rx], powers and rates."""

    KIND: ClassVar[str] = "two_link_outcome"
    PLANE: ClassVar[Plane] = "control"
    gains: npt.NDArray[Any]
    powers: npt.NDArray[Any]
    rates: npt.NDArray[Any]
    lost: list[int]


def rates_of(gains: np.ndarray, powers: np.ndarray, noise_w: float) -> np.ndarray:
    """log2(1 + p_i G_ii / (p_j G_ji + N)) for both links."""
    out = np.zeros(2)
    for i in (0, 1):
        j = 1 - i
        out[i] = math.log2(1.0 + powers[i] * gains[i, i] / (powers[j] * gains[j, i] + noise_w))
    return out


class TwoLinkAir:
    transmit = TwoLinkPower
    rejoins = False
    lost_consequence = "its link is silent from now on"

    def __init__(self, scenario: TwoLinkScenario, seed: int, options: dict[str, Any]) -> None:
        self.radio = scenario.radio
        self.rng = rng_for(seed, "two-link", "fading")
        self.gains = np.zeros((2, 2))
        self.telemetry: dict[str, float] = {}

    def check(self, msg: Message) -> None:
        assert isinstance(msg, TwoLinkPower)
        check_number(msg.power_w, "power", 0.0, self.radio.pmax_w)

    def slices(self, n: int, active: list[int]) -> list[tuple[int, type[Message], dict[str, Any]]]:
        mean = np.array([[self.radio.direct_gain, self.radio.cross_gain],
                         [self.radio.cross_gain, self.radio.direct_gain]])
        self.gains = mean * self.rng.exponential(1.0, (2, 2))
        return [(i, TwoLinkSlice, {"direct": float(self.gains[i, i]),
                                   "cross": float(self.gains[1 - i, i])}) for i in active]

    def outcome(self, n: int, got: dict[int, Message], active: list[int], lost: list[int],
                wall_s: float) -> tuple[list[Any], tuple[type[Message], dict[str, Any]]]:
        powers = np.zeros(2)
        for i, msg in got.items():
            assert isinstance(msg, TwoLinkPower)
            powers[i] = min(max(msg.power_w, 0.0), self.radio.pmax_w)
        rates = rates_of(self.gains, powers, self.radio.noise_w)
        return [], (TwoLinkOutcome, {"gains": self.gains, "powers": powers, "rates": rates,
                                     "lost": list(lost)})


class TxPart:
    """A transmitter: decides its power from its own slice with the scheme's actor."""

    def __init__(self, node: Any, scenario: TwoLinkScenario, start: Any) -> None:
        self.node = node
        self.scenario = scenario
        spec = SCHEMES_OF_KIND[start.scheme]
        self.actor = spec.make_actor(node.index, scenario, start.seed)
        self.slots = 0

    def on_message(self, msg: Message, now: float, out: Outbox) -> bool:
        if not isinstance(msg, TwoLinkSlice):
            return False
        self.slots += 1
        out.send(CHANNEL_SERVER, TwoLinkPower, slot=msg.slot,
                 power_w=self.actor.power(msg.direct, msg.cross))
        return True

    def quiet_s(self) -> float:
        return self.scenario.timing.peer_timeout_s

    def on_quiet(self, now: float, out: Outbox) -> bool:
        return False

    def set_weights(self, arrays: dict[str, np.ndarray]) -> None:
        raise ValueError("two-link schemes take no weights")

    def stats(self) -> dict[str, Any]:
        return {"slots": self.slots}


@dataclass
class TwoLinkRecorder:
    scenario: TwoLinkScenario
    scheme: str
    runner: str
    rows: list[TwoLinkOutcome] = field(default_factory=list)
    lost: set[int] = field(default_factory=set)

    @property
    def done(self) -> int:
        return len(self.rows)

    def write(self, out: Path, overhead: Meter, processes: dict[str, int], wall_s: float,
              extra: dict[str, Any] | None = None) -> dict[str, Any]:
        with (out / "metrics.csv").open("w", newline="") as f:
            wr = csv.writer(f)
            wr.writerow(["slot", "g00", "g01", "g10", "g11", "p0", "p1", "r0", "r1"])
            for n, o in enumerate(self.rows):
                wr.writerow([n, *map(repr, o.gains.ravel().tolist()),
                             *map(repr, o.powers.tolist()), *map(repr, o.rates.tolist())])
        overhead.to_csv(out / "overhead.csv", max(self.done, 1))
        summary = {"scenario": self.scenario.name, "scheme": self.scheme,
                   "runner": self.runner, "slots": self.done,
                   "sum_rate_mean": float(np.mean([o.rates.sum() for o in self.rows]))
                   if self.rows else None,
                   "lost_nodes": sorted(f"tx-{i}" for i in self.lost), "processes": processes,
                   **(extra or {})}
        (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
        return summary


class TwoLinkController:
    snapshot = None
    pause_every = 0

    def __init__(self, ctl: Any, scenario: TwoLinkScenario, weights: Any) -> None:
        self.ctl = ctl
        self.scenario = scenario
        self.recorder = TwoLinkRecorder(scenario, ctl.scheme, ctl.runner)

    def after_start(self, name: str, out: Outbox) -> None:
        pass

    def after_weights(self, name: str, slot: int, out: Outbox) -> None:
        pass

    def weights_for(self, name: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return arrays

    def busy(self) -> bool:
        return False

    def on_message(self, msg: Message, now: float, out: Outbox) -> bool:
        if not isinstance(msg, TwoLinkOutcome):
            return False
        self.recorder.rows.append(msg)
        self.recorder.lost.update(msg.lost)
        self.ctl.outcome_recorded(msg.lost)
        return True

    def live_metrics(self) -> dict[str, Any]:
        return {"slots_done": self.recorder.done}

    def extra_summary(self) -> dict[str, Any]:
        return {}

    def history(self) -> list[dict[str, float]]:
        return []

    def final_weights(self) -> None:
        return None


def report(summary: dict[str, Any], out: Path, console: Any) -> None:
    console.print(f"two-link {summary['scheme']} ({summary['runner']}): "
                  f"{summary['slots']} slots, mean sum-rate {summary['sum_rate_mean']:.3f}")


class TwoLink(ScenarioKind):
    name = "two-link"
    node_role = "tx"
    messages = ("two_link_slice", "two_link_power", "two_link_outcome")
    air_part = TwoLinkAir
    node_part = TxPart
    controller_part = TwoLinkController
    report = staticmethod(report)

    def from_table(self, table: dict[str, Any], source: str) -> TwoLinkScenario:
        s: TwoLinkScenario = build_dataclass(TwoLinkScenario, table, source)
        return dataclasses.replace(s, source=source)

    def to_table(self, scenario: TwoLinkScenario) -> dict[str, Any]:
        d = dataclasses.asdict(scenario)
        d.pop("source")
        return d

    def override(self, scenario: TwoLinkScenario, assignments: dict[str, Any]) -> Any:
        return self.from_table(assign(self.to_table(scenario), assignments), scenario.source)

    def n_nodes(self, scenario: TwoLinkScenario) -> int:
        return 2


KINDS.register(TwoLink())


class FullPower:
    def __init__(self, i: int, scenario: TwoLinkScenario, seed: int) -> None:
        self.pmax = scenario.radio.pmax_w

    def power(self, direct: float, cross: float) -> float:
        return self.pmax


class Threshold(FullPower):
    """Transmit at full power only when the own link is stronger than the interference."""

    def power(self, direct: float, cross: float) -> float:
        return self.pmax if direct >= cross else 0.0


SCHEMES_OF_KIND = {
    s.name: s for s in (
        register(Scheme("full-power", "two-link", "none", "both at Pmax", actor=FullPower)),
        register(Scheme("threshold", "two-link", "none", "on when the own gain beats the "
                        "interferer's", actor=Threshold)),
    )}

# ----------------------------------------------------------------------------- the tests


def rrmbed(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env={**os.environ, "RRMBED_PLUGINS": PLUGIN, "OMP_NUM_THREADS": "1"})


def both_runners(tmp: Path, scenario: Path, scheme: str, slots: int) -> dict[str, Path]:
    outs = {}
    for runner in ("network", "local"):
        out = tmp / runner
        extra = ("--no-telemetry",) if runner == "network" else ()
        r = rrmbed("run", str(scenario), "--scheme", scheme, "--runner", runner, "--slots",
                   str(slots), "--seed", "5", "--out", str(out), *extra)
        assert r.returncode == 0, r.stdout + r.stderr
        outs[runner] = out
    return outs


def run_rows(path: Path) -> list[dict[str, str]]:
    """overhead.csv rows apart from the set-up hello/start (they carry addresses, pids) and
    the heartbeats (over the network only, as many as the wall time allows)."""
    return [r for r in read_csv(path) if r["kind"] not in ("hello", "start", "beat")]


def test_a_plug_in_scheme_runs_on_both_runners_identically(tmp_path: Path) -> None:
    outs = both_runners(tmp_path, S3, "half-power", 30)
    net, loc = (read_csv(outs[r] / "metrics.csv") for r in ("network", "local"))
    assert net == loc and len(net) == 30
    pmax_w = 10 ** ((43.0 - 30.0) / 10)
    powers = [float(v) for r in net for k, v in r.items() if k.startswith("p_bs")]
    assert len(powers) == 30 * 6 and all(p == pmax_w / 2 for p in powers)
    assert run_rows(outs["network"] / "overhead.csv") == run_rows(outs["local"] / "overhead.csv")


def test_a_plug_in_scenario_kind_with_its_own_node_role(tmp_path: Path) -> None:
    scenario = tmp_path / "two-link.toml"
    scenario.write_text(to_toml({"kind": "two-link", "name": "two-link",
                                 "radio": {"direct_gain": 1.0, "cross_gain": 0.8,
                                           "pmax_w": 2.0, "noise_w": 0.1}}))
    outs = both_runners(tmp_path, scenario, "threshold", 50)
    net, loc = (read_csv(outs[r] / "metrics.csv") for r in ("network", "local"))
    assert net == loc and len(net) == 50
    # its own node processes, and traffic of its own message kinds only
    procs = json.loads((outs["network"] / "processes.json").read_text())
    assert sorted(procs) == ["channel-server", "controller", "tx-0", "tx-1"]
    kinds = {r["kind"] for r in run_rows(outs["network"] / "overhead.csv")}
    assert {"two_link_slice", "two_link_power", "two_link_outcome"} <= kinds
    assert run_rows(outs["network"] / "overhead.csv") == run_rows(outs["local"] / "overhead.csv")
    # the rates, recomputed independently from the recorded gains and powers
    on = 0
    for r in net:
        g = np.array([[float(r["g00"]), float(r["g01"])], [float(r["g10"]), float(r["g11"])]])
        p = np.array([float(r["p0"]), float(r["p1"])])
        for i in (0, 1):
            assert p[i] == (2.0 if g[i, i] >= g[1 - i, i] else 0.0)
            sinr = p[i] * g[i, i] / (p[1 - i] * g[1 - i, i] + 0.1)
            assert abs(float(r[f"r{i}"]) - np.log2(1 + sinr)) <= 1e-12
        on += int(p.sum() > 0)
    assert 0 < on <= 50
