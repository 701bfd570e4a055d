"""Every command the README shows runs here, at small sizes, and what it writes is checked.

``RUNS`` is the table: README command line (as written, ``.venv/bin/`` dropped) -> the small
argv this test runs and the checker of its output. The small argv is the README's with only
sizes changed (slots, steps, episodes, seeds, drops, round trips), outputs moved into a
temporary folder (``{tmp}``) and ``--no-telemetry`` where the command has it; a test checks
exactly that against the CLI's own option definitions. Commands that need docker or a live
broker are covered by an existing test, named in ``COVERED_ELSEWHERE`` (and that test
function must exist), as is one whose smallest faithful run is too long for this file
(``bench slots``); shell plumbing and make targets are in ``NOT_RRMBED`` with the reason.
A README command in none of these fails ``test_every_readme_command_has_an_entry``.

``NEEDS_AN_EXTRA`` lists the commands that need an optional extra the project's own set-up
(``make test``: ``.[dev]``) does not install. Without the extra the command must fail at
once naming it; with the extra installed, it runs small and is checked like the others.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np
import pytest

from controller.cli import cli
from controller.evaluation.files import PLOTS_ENV
from protocols import weights
from tests.helpers import ROOT, read_csv, rrmbed

README = ROOT / "README.md"
CELLULAR_SCHEMES = ("max-power", "random", "full", "round-robin", "centralized", "wmmse", "fp",
                    "optimum")
"""The README's cellular schemes (its "Schemes:" paragraph)."""
V2X_SCHEMES = ("marl-dqn", "marl-dqn-nofp", "turn-dqn", "random")
WIDE = {"COLUMNS": "200",  # rich tables: one line per row
        PLOTS_ENV: "1"}  # the README's commands as a user runs them: with their plots


# --------------------------------------------------------------------------- the README


def readme_commands(text: str) -> list[str]:
    """Command lines of the README's console/sh code blocks: continuations joined, comments
    and ``.venv/bin/`` dropped, whitespace collapsed."""
    commands = []
    for lang, body in re.findall(r"^```(\w*)\n(.*?)^```", text, re.M | re.S):
        if lang not in ("console", "sh", "shell", "bash"):
            continue
        for line in re.sub(r"\\\n\s*", " ", body).splitlines():
            line = " ".join(_uncomment(line).split())
            if line:
                commands.append(line.removeprefix(".venv/bin/"))
    return commands


def _uncomment(line: str) -> str:
    """``line`` without a trailing ``# comment`` (a ``#`` outside quotes, after a blank)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"" and (i == 0 or line[i - 1] != "\\"):
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def readme_argv(command: str) -> list[str]:
    """The arguments after ``rrmbed`` of a README command, as the shell passes them (up to a
    ``&`` or a redirection)."""
    words = shlex.split(command)
    assert words[0] == "rrmbed", command
    stop = next((i for i, w in enumerate(words) if w in ("&", ">", ">>", "|", "&&", ";")),
                len(words))
    return words[1:stop]


# --------------------------------------------------------------------------- checkers


@dataclass(frozen=True)
class Result:
    """One small command that ran: its output and the temporary folder of the README runs."""

    proc: subprocess.CompletedProcess[str]
    tmp: Path

    def path(self, rel: str) -> Path:
        return self.tmp / rel

    def json(self, rel: str) -> Any:
        return json.loads(self.path(rel).read_text())

    def csv(self, rel: str) -> list[dict[str, str]]:
        return read_csv(self.path(rel))


def table_rows(text: str) -> list[list[str]]:
    """Body rows of the rich tables in ``text``, as stripped cells."""
    return [[c.strip() for c in ln.strip().strip("│").split("│")]
            for ln in text.splitlines() if ln.lstrip().startswith("│")]


def finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def check_run(out: str, scheme: str, runner: str, slots: int, nodes: list[str],
              seed: int = 0) -> Callable[[Result], None]:
    """A cellular run directory: every file of the README's table, one metrics row per slot,
    the summary of this scheme and run."""

    def check(r: Result) -> None:
        d = r.path(out)
        files = ["config.toml", "summary.json", "metrics.csv", "latency.csv", "overhead.csv",
                 "plots/slots.png"]
        if runner == "network":
            files += ["processes.json", "endpoints.json", "status.json", "logs"]
        for f in files:
            assert (d / f).exists(), f"{d / f} missing"
        s = r.json(f"{out}/summary.json")
        assert (s["scheme"], s["runner"], s["seed"], s["slots"]) == (scheme, runner, seed, slots)
        assert not s.get("errors") and not s["lost_nodes"], s
        rows = r.csv(f"{out}/metrics.csv")
        assert [int(row["slot"]) for row in rows] == list(range(slots))
        rates = [float(row["sum_rate_bps_hz"]) for row in rows]
        assert all(math.isfinite(x) and x > 0 for x in rates)
        assert s["sum_rate_bps_hz_mean"] == pytest.approx(np.mean(rates), rel=1e-9)
        lat = r.csv(f"{out}/latency.csv")
        assert len(lat) == slots * len(nodes) and {row["node"] for row in lat} == set(nodes)
        if runner == "network":
            assert sorted(r.json(f"{out}/processes.json")) == sorted(
                ["controller", "channel-server", *nodes])
        cfg = tomllib.loads(r.path(f"{out}/config.toml").read_text())
        assert (cfg["run"]["scheme"], cfg["run"]["slots"]) == (scheme, slots)

    return check


def check_help(r: Result) -> None:
    # the README runs the console script itself: check it too
    script = Path(sys.executable).parent / "rrmbed"
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for text in (r.proc.stdout, done.stdout):
        assert text.startswith("Usage: rrmbed "), text[:200]
        for name in cli.commands:  # every command is listed
            assert re.search(rf"^\s+{re.escape(name)}\s", text, re.M), name


def check_rr_network(r: Result) -> None:
    check_run("run-rr", "round-robin", "network", 20, [f"node-{b}" for b in range(3)], 7)(r)
    s = r.json("run-rr/summary.json")
    assert set(s["backhaul_bytes_per_slot"]["by_kind"]) == {"power_forward"}
    bh = [row for row in r.csv("run-rr/overhead.csv") if row["plane"] == "backhaul"]
    assert sum(int(row["bytes"]) for row in bh) > 0


def check_wmmse_local(r: Result) -> None:
    check_run("run-wmmse", "wmmse", "local", 20, [f"node-{b}" for b in range(7)])(r)
    rows = r.csv("run-wmmse/metrics.csv")
    powers = [c for c in rows[0] if c.startswith("p_bs")]
    assert len(powers) == 7 * 8
    pmax_w = 10 ** (43.0 / 10) / 1e3
    assert all(0.0 <= float(row[c]) <= pmax_w * (1 + 1e-12) for row in rows for c in powers)
    assert r.json("run-wmmse/summary.json")["decision_latency_ms_p50"] == pytest.approx(2.5)


def check_realtime(r: Result) -> None:
    check_run("run-realtime", "full", "network", 20, [f"node-{b}" for b in range(3)])(r)
    cfg = tomllib.loads(r.path("run-realtime/config.toml").read_text())
    assert cfg["timing"]["clock"] == "realtime" and cfg["timing"]["deadline_s"] == 0.002
    s = r.json("run-realtime/summary.json")
    assert s["deadline_ms"] == 2.0
    assert s["wall_s"] >= 19 * cfg["radio"]["slot_s"]  # paced at the slot duration


PLACEMENTS = ("same-core", "two-cores", "os")


def check_bench_transport(r: Result) -> None:
    assert "ratio p50" in r.proc.stdout
    rows = table_rows(r.proc.stdout)
    assert {row[0] for row in rows} >= set(PLACEMENTS)
    for row in rows:
        if row[0] in PLACEMENTS:
            assert all(finite(float(c)) for c in row[2:6]), row  # latencies in µs


def check_bench_transport_json(r: Result) -> None:
    doc = r.json("bench.json")
    assert set(doc) == set(PLACEMENTS)
    for placement, entry in doc.items():
        assert len(entry["runs"]) == 2, placement
        assert all(run["n"] == 20 for run in entry["runs"])
        for key, value in entry["median"].items():
            assert value == float(np.median([run[key] for run in entry["runs"]])), key
    assert "median" in r.proc.stdout


def check_bench_baselines(r: Result) -> None:
    rows = table_rows(r.proc.stdout)
    timing = {(row[0], row[1]): row for row in rows if len(row) == 10}
    assert set(timing) == {(s, a) for s in ("3cell-k2", "7cell-k8") for a in ("wmmse", "fp")}
    assert all(row[8] == "100%" for row in timing.values())  # vectorized = loop iterations
    assert "3cell-k2: mean sum-rate over 10 drops" in r.proc.stdout
    rates = {row[0]: float(row[1]) for row in rows if len(row) == 5}
    assert set(rates) == {"optimum", "wmmse", "fp", "max-power", "random"}
    assert all(x <= rates["optimum"] * (1 + 1e-3) for x in rates.values())


def check_table(which: str) -> Callable[[Result], None]:
    def check(r: Result) -> None:
        d = f"table-{which}"
        rows = r.csv(f"{d}/{which}.csv")
        assert [row["scheme"] for row in rows] == list(CELLULAR_SCHEMES)  # one row per scheme
        assert r.path(f"{d}/plots/{which}.png").is_file()
        by = {row["scheme"]: row for row in rows}
        for scheme in CELLULAR_SCHEMES:
            assert r.json(f"{d}/{scheme}/summary.json")["slots"] == 3
            assert finite(float(by[scheme]["sum_rate_mbps"])), scheme
        bytes_ = {s: float(by[s]["backhaul_bytes_per_slot"]) for s in CELLULAR_SCHEMES}
        assert bytes_["max-power"] == bytes_["random"] == bytes_["full"] == 0
        assert min(bytes_["round-robin"], bytes_["centralized"], bytes_["wmmse"]) > 0
        latency = {s: float(by[s]["latency_emulated_ms_p50"]) for s in CELLULAR_SCHEMES}
        compute = {s: float(by[s]["compute_ms_per_decision"]) for s in CELLULAR_SCHEMES}
        central = ("centralized", "wmmse", "fp", "optimum")
        if which == "exchange":  # the scenario's fixed 0.5 ms compute, 1 ms per backhaul hop
            assert set(compute.values()) == {0.5}
            assert latency == {**dict.fromkeys(("max-power", "random", "full"), 0.5),
                               "round-robin": 3.5, **dict.fromkeys(central, 2.5)}
        else:  # compute time measured: positive; the chain's two hops, up and down: 2 ms
            assert all(finite(c) and c > 0 for c in compute.values()), compute
            assert all(latency[s] >= 2.0 for s in ("round-robin", *central)), latency

    return check


TRAIN_DIR = "train-3cell-k2-centralized-trpo-local"


def check_train_local(r: Result) -> None:
    s = r.json(f"{TRAIN_DIR}/summary.json")
    assert (s["algo"], s["scheme"], s["steps_per_seed"]) == ("trpo", "centralized", 200)
    assert [x["seed"] for x in s["seeds"]] == [0, 1] and s["best_seed"] in (0, 1)
    for x in s["seeds"]:
        assert x["iterations"] == 4 and finite(x["validation_sum_rate_bps_hz"])
        assert x["imitation"]["teacher"] == "wmmse"  # the default warm start (centralized)
        assert len(r.csv(f"{TRAIN_DIR}/seed-{x['seed']}/metrics.csv")) == 4
        assert r.path(f"{TRAIN_DIR}/seed-{x['seed']}/weights.npz").is_file()
    assert len(r.csv(f"{TRAIN_DIR}/metrics.csv")) == 8
    assert r.path(f"{TRAIN_DIR}/plots/training.png").is_file()
    best = weights.load(r.path(f"{TRAIN_DIR}/best-weights.npz"))  # checks its fingerprint
    assert (best.meta.scheme, best.meta.algo) == ("centralized", "trpo")


def check_train_network(r: Result) -> None:
    d = "train-network/seed-0"
    s = r.json(f"{d}/summary.json")
    assert (s["scheme"], s["slots"]) == ("round-robin", 8) and not s["errors"]
    updates = r.csv(f"{d}/training.csv")
    assert len(updates) == 2, f"8 slots, 4 episodes per update: 2 updates, not {len(updates)}"
    warm = r.json(f"{d}/imitation.json")  # the default warm start: round-robin imitates FP
    assert (warm["teacher"], warm["drops"]) == ("fp", 100)
    for b in range(3):  # from the warm start's version 1; the last update lands after the end
        assert s["process_stats"][f"node-{b}"]["weights_versions"] == [1, 2]
    assert {"experience", "weights", "power_forward"} <= set(
        s["backhaul_bytes_per_slot"]["by_kind"])
    assert r.path(f"{d}/weights.npz").is_file()


def check_evaluate(r: Result) -> None:
    e = r.json(f"{TRAIN_DIR}/evaluation.json")
    assert e["n"] == 20
    methods = e["per_user"]["methods"]
    assert set(methods) == {"centralized", "optimum", "wmmse", "fp", "random", "max-power"}
    assert methods["optimum"]["gap_pct"] == 0.0
    assert all(finite(m["mean_sum_rate_bps_hz"]) for m in methods.values())
    # per-user: 6 methods; Pmax sweep: 8 points x 6; sum power: 5 (no optimum)
    assert len(r.csv(f"{TRAIN_DIR}/evaluation.csv")) == 6 + 8 * 6 + 5
    for png in ("sum_rate_bars", "pmax_sweep", "sum_power_bars"):
        assert r.path(f"{TRAIN_DIR}/plots/{png}.png").is_file(), png
    # the network check: the policy over both runners, slot by slot the same
    net = r.csv(f"{TRAIN_DIR}/network-check/centralized-network/metrics.csv")
    loc = r.csv(f"{TRAIN_DIR}/network-check/centralized-local/metrics.csv")
    assert len(net) == len(loc) == 10
    assert [x["sum_rate_bps_hz"] for x in net] == [x["sum_rate_bps_hz"] for x in loc]
    assert "centralized: network runner" in r.proc.stderr and "identical" in r.proc.stderr


def check_bench_trpo(r: Result) -> None:
    doc = r.json("bench-trpo/bench_trpo.json")
    assert len(doc["learners"]) == 4
    for label, run in doc["learners"].items():
        assert run["curve"] and finite(run["deterministic_bps_hz"]), label
    assert r.path("bench-trpo/bench_trpo.png").is_file()


def check_v2x_train(r: Result) -> None:
    with np.load(r.path("marl/weights.npz")) as w:
        assert {f"agent{k}.q.0.weight" for k in range(4)} <= set(w.files)
    curve = r.csv("marl/training.csv")
    assert [int(float(c["episode"])) for c in curve] == [0, 1]
    assert all(0.0 <= float(c["delivery_rate"]) <= 1.0 for c in curve)


def check_v2x_run(r: Result) -> None:
    d = "v2x-run"
    s = r.json(f"{d}/summary.json")
    assert (s["scheme"], s["runner"], s["slots"], s["episodes"]) == (
        "marl-dqn", "network", 100, 1)
    assert not s["errors"] and not s["lost_nodes"]
    assert sorted(s["processes"]) == sorted(
        ["controller", "channel-server", *(f"vehicle-{k}" for k in range(4))])
    assert len(r.csv(f"{d}/metrics.csv")) == 100
    episodes = r.csv(f"{d}/episodes.csv")
    assert s["delivery_rate_mean"] == pytest.approx(
        np.mean([float(e["delivery_rate"]) for e in episodes]))
    assert set(s["backhaul_bytes_per_slot"]["by_kind"]) == {"neighbour_choice"}
    assert r.path(f"{d}/plots/episodes.png").is_file()


def check_v2x_train_network(r: Result) -> None:
    d = "v2x-train-network"
    s = r.json(f"{d}/summary.json")
    assert s["slots"] == 200 and not s["errors"]
    assert [int(float(h["slot"])) for h in r.csv(f"{d}/training.csv")] == [100]
    assert s["weights_versions"] == 2
    assert {"experience", "weights", "fingerprint", "neighbour_choice"} <= set(
        s["backhaul_bytes_per_slot"]["by_kind"])
    with np.load(r.path(f"{d}/weights.npz")) as w:
        assert {f"agent{k}.q.0.weight" for k in range(4)} <= set(w.files)


def check_v2x_compare(r: Result) -> None:
    doc = r.json("v2x-compare/results.json")
    assert set(doc) == {*V2X_SCHEMES, "single_link_bound", "paired"}
    assert len(doc["single_link_bound"]) == 2
    rows = r.csv("v2x-compare/results.csv")
    assert sorted((row["scheme"], row["seed"]) for row in rows) == sorted(
        (s, str(seed)) for s in V2X_SCHEMES for seed in (0, 1))
    assert all(0.0 <= float(row["delivery_rate"]) <= 1.0 for row in rows)
    # every seed's rows were also written as the seed finished
    lines = (r.path("v2x-compare/seeds.jsonl")).read_text().splitlines()
    kept = {(scheme, str(x["seed"])): row for x in map(json.loads, lines)
            for scheme, row in x["rows"].items()}
    assert len(lines) == 2 and kept.keys() == {(row["scheme"], row["seed"]) for row in rows}
    for row in rows:
        assert kept[(row["scheme"], row["seed"])]["delivery_rate"] == pytest.approx(
            float(row["delivery_rate"]), rel=1e-12)
    # the paired differences: every two schemes, each metric, from the rows above
    value = {(row["scheme"], row["seed"]): row for row in rows}
    pairs = r.csv("v2x-compare/paired.csv")
    assert len(pairs) == len(V2X_SCHEMES) * (len(V2X_SCHEMES) - 1)  # 6 pairs x 2 metrics
    for p in pairs:
        d = [float(value[(p["a"], s)][p["metric"]]) - float(value[(p["b"], s)][p["metric"]])
             for s in ("0", "1")]
        assert float(p["mean_difference"]) == pytest.approx(np.mean(d))
        assert float(p["ci95_low"]) <= float(p["mean_difference"]) <= float(p["ci95_high"])


def check_d2d_run(out: str, scheme: str) -> Callable[[Result], None]:
    """A D2D run directory over 10 pair processes: one metrics row per slot, sums and means
    that agree with the rows, no pair lost."""

    def check(r: Result) -> None:
        s = r.json(f"{out}/summary.json")
        assert (s["scheme"], s["runner"], s["slots"]) == (scheme, "network", 20)
        assert not s["errors"] and not s["lost_nodes"], s
        assert sorted(s["processes"]) == sorted(
            ["controller", "channel-server", *(f"pair-{i}" for i in range(10))])
        rows = r.csv(f"{out}/metrics.csv")
        assert [int(x["slot"]) for x in rows] == list(range(20))
        for x in rows:
            assert all(0 <= int(x[f"rb_p{i}"]) < 10 for i in range(10))
            assert float(x["d2d_sum_mbps"]) == pytest.approx(
                sum(float(x[f"d2d_mbps_p{i}"]) for i in range(10)), rel=1e-9)
        assert s["total_reward_mean"] == pytest.approx(
            np.mean([float(x["total_reward"]) for x in rows]), rel=1e-9)
        for f in ("config.toml", "overhead.csv", "processes.json", "logs"):
            assert r.path(f"{out}/{f}").exists(), f

    return check


def check_d2d_train(r: Result) -> None:
    art = weights.load(r.path("maac/weights.npz"))
    assert (art.meta.kind, art.meta.scheme) == ("d2d-underlay", "maac")
    assert art.meta.extra["updates"] > 0
    assert {f"agent{i}.actor.0.weight" for i in range(10)} <= set(art.arrays)
    curve = r.csv("maac/training.csv")
    assert [float(c["slot"]) for c in curve][:2] == [100.0, 200.0]
    assert float(curve[-1]["updates"]) > 0


def check_d2d_maac_run(r: Result) -> None:
    check_d2d_run("d2d-maac", "maac")(r)
    s = r.json("d2d-maac/summary.json")
    with np.load(r.path("maac/weights.npz")) as w:
        own = sum(w[n].nbytes for n in w.files if n.startswith("agent0."))
    assert s["actor_bytes"] == own
    assert s["backhaul_bytes_per_slot"]["by_kind"] == {}  # executing: nothing uploaded


def check_keys(r: Result) -> None:
    names = ["controller", "channel-server", "node-0", "node-1", "node-2"]
    keys = r.tmp / "keys"
    assert sorted(r.json("keys/public.json")) == sorted(names)
    for name in names:
        assert (keys / f"{name}.secret").stat().st_mode & 0o777 == 0o600
    for name in ("mosquitto.passwd", "watch.password"):  # the broker's logins
        assert (keys / name).stat().st_mode & 0o777 == 0o600
    users = [ln.split(":")[0] for ln in (keys / "mosquitto.passwd").read_text().splitlines()]
    assert users == [*names, "watch"]
    assert "user node-2\ntopic write rrmbed/+/node/2/#" in (keys / "mosquitto.acl").read_text()


def check_compose(r: Result) -> None:
    text = r.proc.stdout
    services = re.findall(r"^  ([a-z0-9-]+):$", text, re.M)
    assert sorted(services) == sorted(
        ["mosquitto", "controller", "channel-server", "node-0", "node-1", "node-2"])
    command = text.split("  controller:\n")[1].split("  channel-server:\n")[0]
    for arg in ("round-robin", "--slots", "200", "--seed", "7", "--keys", "/run/secrets",
                "controller.secret", "public.json"):
        assert f'- "{arg}"' in command, arg
    assert "node-1.secret" not in command  # each service holds only its own secret
    secrets = re.findall(r"^  ([a-z0-9.-]+\.secret):$", text, re.M)
    assert len(secrets) == 5
    broker = text.split("  mosquitto:\n")[1].split("  controller:\n")[0]
    assert "allow_anonymous false" in broker and '- "mosquitto.passwd"' in broker


def check_swarm_stack(r: Result) -> None:
    text = r.proc.stdout
    services = re.findall(r"^  ([a-z0-9-]+):$", text.split("\nnetworks:\n")[0], re.M)
    assert services == ["mosquitto", "controller", "channel-server", "node-0", "node-1",
                        "node-2"]
    assert text.count('endpoint_mode: "dnsrr"') == 6
    assert text.count('condition: "none"') == 5  # the run's processes; the broker on-failure
    assert text.count('- "node.role == manager"') == 3  # controller, air, broker
    assert 'networks:\n  rrmbed:\n    driver: "overlay"\n    attachable: true\n' in text
    controller = text.split("  controller:\n")[1].split("  channel-server:\n")[0]
    for arg in ("round-robin", "200", "7", "/run/secrets"):
        assert f'- "{arg}"' in controller, arg
    assert 'source: "controller.secret"' in controller and "node-1.secret" not in controller
    assert text.splitlines()[0].endswith(" --swarm")


def check_live_run(r: Result) -> None:
    check_run("run-live", "round-robin", "network", 30, [f"node-{b}" for b in range(3)])(r)
    s = r.json("run-live/summary.json")
    assert s["wall_s"] >= 29 * 0.02  # realtime: paced at radio.slot_s


def check_ic_wmmse(r: Result) -> None:
    s = r.json("ic-wmmse/summary.json")
    assert s["slots"] == 10 and s["fraction_of_wmmse"] == 1.0, s
    assert sorted(s["processes"]) == sorted(["controller", "channel-server",
                                             *[f"link-{i}" for i in range(20)]])
    assert {"ic_upload", "decision"} <= set(s["backhaul_bytes_per_slot"]["by_kind"])


def check_gnn_train(r: Result) -> None:
    from node.mpgnn import Mpgnn

    art = weights.load(r.path("gnn-k10/weights.npz"))
    assert (art.meta.kind, art.meta.scheme) == ("interference", "mpgnn")
    assert Mpgnn.from_arrays(art.arrays).n_layers == 3
    assert [row["epoch"] for row in r.csv("gnn-k10/training.csv")] == ["0", "1"]


def check_ic_mpgnn(r: Result) -> None:
    s = r.json("ic-mpgnn/summary.json")
    assert s["slots"] == 10 and 0.0 < s["fraction_of_wmmse"] <= 1.05, s
    assert s["backhaul_bytes_per_slot"]["by_kind"]["ic_round"] > 0
    assert s["decision_latency_ms_p50"] == pytest.approx(3 * (1.0 + 0.5))  # 3 x (link + compute)


def check_gnn_cost(r: Result) -> None:
    rows = r.json("gnn-cost/cost.json")
    assert [x["sweep"] for x in rows] == ["reference"] + ["layers"] * 4 + ["encodings"] * 5 \
        + ["latencies"] * 3
    assert r.path("gnn-cost/plots/cost.png").stat().st_size > 0
    assert "What the MPGNN's rounds cost" in r.proc.stdout


SA7 = "scenarios/alcor-7cell-k3.toml"
A7_TRAIN = ("rrmbed train scenarios/alcor-7cell-k3.toml --scheme centralized --user-selection "
            "--steps 100000 --out runs/train-alcor7")


def check_train_alcor7(r: Result) -> None:
    s = r.json("train-alcor7/seed-0/summary.json")
    assert s["iterations"] == 4 and finite(s["validation_sum_rate_bps_hz"]), s
    assert r.path("train-alcor7/seed-0/weights.npz").is_file()
    assert "user_selection = true" in r.path("train-alcor7/seed-0/config.toml").read_text()


def check_alcor_cellular(r: Result) -> None:
    s = r.json("alcor7/summary.json")
    assert (s["scheme"], s["slots"]) == ("alcor-centralized", 60), s
    assert [p["first_slot"] for p in s["demand_phases"]] == [0]
    assert [slot for slot, _ in s["alcor_lambda"]] == [50]  # one iteration of 2 x 25 slots
    assert {"csi_upload", "decision"} <= set(s["backhaul_bytes_per_slot"]["by_kind"])
    rows = r.csv("alcor7/metrics.csv")
    assert len(rows) == 60 and "violation_pct" in rows[0] and "on_bs6_u2" in rows[0]


def check_bench_train(r: Result) -> None:
    out = r.json("bench-train.json")
    rows = {row["trainer"]: row for row in out["rows"]}
    assert {"trpo centralized", "trpo round-robin", "dqn marl-dqn"} <= set(rows)
    for name in ("trpo centralized", "trpo round-robin"):
        row = rows[name]
        assert row["steps"] >= 100 and row["steps_per_s"] > 0
        assert 0 < row["env_s"] + row["forward_s"] + row["update_s"] <= row["wall_s"]
    if out["sb3"] is not None:  # without the 'bench' extra it says so
        assert "'bench' extra" in out["sb3"]
    assert "steps/s" in r.proc.stdout
    assert out["trpo_value_dtype"] in ("bfloat16", "float32")
    assert f"value fit multiplies in {out['trpo_value_dtype']}" in r.proc.stdout


def check_alcor_dist(r: Result) -> None:
    s = r.json("alcor-dist/summary.json")
    assert s["slots"] == 100 and s["demand_phases"][0]["u_min_bps_hz"] == [0.5] * 5, s
    assert s["backhaul_bytes_per_slot"]["by_kind"]["alcor_max"] > 0
    assert all(len(s["process_stats"][f"link-{i}"]["alcor_lambda"]) == 2 for i in range(5))


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Case:
    argv: tuple[str, ...]
    """The small command (after ``rrmbed``); ``{tmp}`` is the README runs' folder."""
    check: Callable[[Result], None]
    needs: tuple[str, ...] = ()
    """README commands whose output this one reads (they run first)."""
    timeout_s: float = 300


S3, S7, SV = "scenarios/3cell-k2.toml", "scenarios/7cell-k8.toml", "scenarios/v2x-manhattan.toml"
TRAIN = ("rrmbed train scenarios/3cell-k2.toml --algo trpo --scheme centralized --steps 100000 "
         "--seeds 0,1,2")
V2X_TRAIN = "rrmbed v2x train --episodes 200 --out runs/marl"
SD = "scenarios/d2d-n10.toml"
D2D_TRAIN = "rrmbed d2d train scenarios/d2d-n10.toml --scheme maac --out runs/maac"
KEYS = "rrmbed keys keys --scenario scenarios/3cell-k2.toml"
SG = "scenarios/ic-geo-k20.toml"
GNN_TRAIN = ("rrmbed gnn train scenarios/ic-gauss-k10.toml --arch mpgnn --mode unsupervised "
             "--samples 2000 --epochs 50 --layers 3 --seed 0 --out runs/gnn-k10")

RUNS: dict[str, Case] = {
    "rrmbed --help": Case(("--help",), check_help),
    "rrmbed run scenarios/3cell-k2.toml --scheme round-robin --runner network --slots 200 "
    "--seed 7": Case(
        ("run", S3, "--scheme", "round-robin", "--runner", "network", "--slots", "20",
         "--seed", "7", "--out", "{tmp}/run-rr", "--no-telemetry"), check_rr_network),
    "rrmbed run scenarios/7cell-k8.toml --scheme wmmse --runner local --slots 500": Case(
        ("run", S7, "--scheme", "wmmse", "--runner", "local", "--slots", "20",
         "--out", "{tmp}/run-wmmse", "--no-telemetry"), check_wmmse_local),
    'rrmbed run scenarios/3cell-k2.toml --scheme full --set timing.clock=\\"realtime\\" '
    "--set timing.deadline_s=0.002": Case(
        ("run", S3, "--scheme", "full", "--set", 'timing.clock="realtime"', "--set",
         "timing.deadline_s=0.002", "--slots", "20", "--out", "{tmp}/run-realtime",
         "--no-telemetry"), check_realtime),
    "rrmbed bench transport": Case(("bench", "transport", "-n", "20"), check_bench_transport),
    "rrmbed bench transport --repeat 5 --json bench.json": Case(
        ("bench", "transport", "--repeat", "2", "-n", "20", "--json", "{tmp}/bench.json"),
        check_bench_transport_json),
    "rrmbed bench baselines": Case(("bench", "baselines", "--batch", "10", "--compare", "10"),
                                   check_bench_baselines),
    "rrmbed table exchange scenarios/3cell-k2.toml": Case(
        ("table", "exchange", S3, "--slots", "3", "--out", "{tmp}/table-exchange"),
        check_table("exchange"), timeout_s=600),
    "rrmbed table latency scenarios/3cell-k2.toml": Case(
        ("table", "latency", S3, "--slots", "3", "--out", "{tmp}/table-latency"),
        check_table("latency"), timeout_s=600),
    TRAIN: Case(
        ("train", S3, "--algo", "trpo", "--scheme", "centralized", "--steps", "200",
         "--episodes", "50", "--seeds", "0,1", "--imitation-drops", "100",
         "--imitation-epochs", "1", "--out", f"{{tmp}}/{TRAIN_DIR}"),
        check_train_local),
    "rrmbed train scenarios/3cell-k2.toml --scheme round-robin --runner network --steps 3000 "
    "--episodes 64": Case(
        ("train", S3, "--scheme", "round-robin", "--runner", "network", "--steps", "24",
         "--episodes", "4", "--imitation-drops", "100", "--imitation-epochs", "1",
         "--validation-episodes", "20", "--out", "{tmp}/train-network"), check_train_network),
    "rrmbed evaluate runs/train-3cell-k2-centralized-trpo-local": Case(
        ("evaluate", f"{{tmp}}/{TRAIN_DIR}", "-n", "20", "--slots", "10"), check_evaluate,
        needs=(TRAIN,)),
    "rrmbed bench trpo": Case(
        ("bench", "trpo", "--steps", "200", "--episodes", "50", "--out", "{tmp}/bench-trpo"),
        check_bench_trpo),
    V2X_TRAIN: Case(("v2x", "train", "--episodes", "2", "--out", "{tmp}/marl"),
                    check_v2x_train),
    "rrmbed run scenarios/v2x-manhattan.toml --scheme marl-dqn --weights runs/marl/weights.npz "
    "--runner network --slots 1000": Case(
        ("run", SV, "--scheme", "marl-dqn", "--weights", "{tmp}/marl/weights.npz", "--runner",
         "network", "--slots", "100", "--out", "{tmp}/v2x-run", "--no-telemetry"),
        check_v2x_run, needs=(V2X_TRAIN,)),
    "rrmbed v2x train --runner network --episodes 50 --broadcast-period 100": Case(
        ("v2x", "train", "--runner", "network", "--episodes", "2", "--broadcast-period", "100",
         "--out", "{tmp}/v2x-train-network"), check_v2x_train_network),
    "rrmbed v2x compare --episodes 200 --seeds 0,1,2": Case(
        ("v2x", "compare", "--episodes", "1", "--seeds", "0,1", "--eval-episodes", "1",
         "--out", "{tmp}/v2x-compare"), check_v2x_compare),
    "rrmbed run scenarios/d2d-n10.toml --scheme best-estimate --runner network --slots 2000":
        Case(("run", SD, "--scheme", "best-estimate", "--runner", "network", "--slots", "20",
              "--out", "{tmp}/d2d-run", "--no-telemetry"),
             check_d2d_run("d2d-run", "best-estimate")),
    D2D_TRAIN: Case(("d2d", "train", SD, "--scheme", "maac", "--slots", "2003", "--out",
                     "{tmp}/maac"), check_d2d_train),
    "rrmbed run scenarios/d2d-n10.toml --scheme maac --weights runs/maac/weights.npz "
    "--runner network --slots 2000": Case(
        ("run", SD, "--scheme", "maac", "--weights", "{tmp}/maac/weights.npz", "--runner",
         "network", "--slots", "20", "--out", "{tmp}/d2d-maac", "--no-telemetry"),
        check_d2d_maac_run, needs=(D2D_TRAIN,)),
    "rrmbed keys keys --scenario scenarios/3cell-k2.toml": Case(
        ("keys", "{tmp}/keys", "--scenario", S3), check_keys),
    "rrmbed compose scenarios/3cell-k2.toml --scheme round-robin --slots 200 --seed 7 --keys "
    "keys > docker-compose.yml": Case(
        ("compose", S3, "--scheme", "round-robin", "--slots", "200", "--seed", "7", "--keys",
         "{tmp}/keys"), check_compose, needs=(KEYS,)),
    "rrmbed compose scenarios/3cell-k2.toml --scheme round-robin --slots 200 --seed 7 --keys "
    "keys --swarm > docker-stack.yml": Case(
        ("compose", S3, "--scheme", "round-robin", "--slots", "200", "--seed", "7", "--keys",
         "{tmp}/keys", "--swarm"), check_swarm_stack, needs=(KEYS,)),
    "rrmbed run scenarios/ic-geo-k20.toml --scheme wmmse --runner network --slots 200": Case(
        ("run", SG, "--scheme", "wmmse", "--runner", "network", "--slots", "10", "--out",
         "{tmp}/ic-wmmse", "--no-telemetry"), check_ic_wmmse),
    GNN_TRAIN: Case(("gnn", "train", "scenarios/ic-gauss-k10.toml", "--arch", "mpgnn", "--mode",
                     "unsupervised", "--samples", "64", "--epochs", "1", "--layers", "3",
                     "--seed", "0", "--out", "{tmp}/gnn-k10"), check_gnn_train),
    "rrmbed run scenarios/ic-geo-k20.toml --scheme mpgnn --weights runs/gnn-k10/weights.npz "
    "--runner network --slots 200": Case(
        ("run", SG, "--scheme", "mpgnn", "--weights", "{tmp}/gnn-k10/weights.npz", "--runner",
         "network", "--slots", "10", "--out", "{tmp}/ic-mpgnn", "--no-telemetry"),
        check_ic_mpgnn, needs=(GNN_TRAIN,)),
    "rrmbed gnn cost scenarios/ic-geo-k20.toml --weights runs/gnn-k10/weights.npz --out "
    "runs/gnn-cost": Case(
        ("gnn", "cost", SG, "--weights", "{tmp}/gnn-k10/weights.npz", "--slots", "3",
         "--out", "{tmp}/gnn-cost"), check_gnn_cost, needs=(GNN_TRAIN,)),
    "rrmbed run scenarios/alcor-gauss-n5.toml --scheme alcor-wmmse-dist --runner network "
    "--slots 9000": Case(
        ("run", "scenarios/alcor-gauss-n5.toml", "--scheme", "alcor-wmmse-dist", "--runner",
         "network", "--slots", "100", "--out", "{tmp}/alcor-dist", "--no-telemetry"),
        check_alcor_dist),
    "rrmbed bench train --json runs/bench-train.json": Case(
        ("bench", "train", "--steps", "200", "--steps-7", "100", "--episodes", "50",
         "--v2x-episodes", "1", "--json", "{tmp}/bench-train.json"), check_bench_train),
    A7_TRAIN: Case(("train", SA7, "--scheme", "centralized", "--user-selection", "--steps",
                    "200", "--episodes", "50", "--out", "{tmp}/train-alcor7"),
                   check_train_alcor7),
    "rrmbed run scenarios/alcor-7cell-k3.toml --scheme alcor-centralized --weights "
    "runs/train-alcor7/seed-0/weights.npz --runner network --slots 9000": Case(
        ("run", SA7, "--scheme", "alcor-centralized", "--weights",
         "{tmp}/train-alcor7/seed-0/weights.npz", "--runner", "network", "--slots", "60",
         "--out", "{tmp}/alcor7", "--no-telemetry"), check_alcor_cellular, needs=(A7_TRAIN,)),
    'rrmbed run scenarios/3cell-k2.toml --scheme round-robin --slots 5000 --set '
    'timing.clock=\\"realtime\\" &': Case(
        ("run", S3, "--scheme", "round-robin", "--slots", "30", "--set",
         'timing.clock="realtime"', "--out", "{tmp}/run-live", "--no-telemetry"),
        check_live_run),
}

NEEDS_AN_EXTRA: dict[str, tuple[str, str, str]] = {
    "rrmbed bench trpo": (
        "bench", "sb3_contrib",
        "compares our TRPO with sb3-contrib's; `make test` installs '.[dev]' only, and the "
        "README says `pip install '.[bench]'`"),
}
"""README command -> (extra, module it provides, why the test set-up lacks it)."""

DEPLOY = "tests/deploy/test_compose.py"
SWARM = "tests/deploy/test_swarm.py::test_swarm_stack_run_equals_local_runner"
TELEMETRY = "tests/integration/test_telemetry.py"
BROKER_AUTH = "tests/integration/test_broker_auth.py"
COVERED_ELSEWHERE: dict[str, tuple[str, str]] = {
    "docker build -t rrmbed:local .": (
        f"{DEPLOY}::test_image_runs_rrmbed_as_non_root",
        "needs docker: its `images` fixture runs scripts/build-images.sh, which builds "
        "rrmbed:local with `docker build` from this Dockerfile (offline base image)"),
    "scripts/build-images.sh": (
        f"{DEPLOY}::test_image_runs_rrmbed_as_non_root",
        "needs docker: the `images` fixture runs it, the test runs the image it built"),
    "docker-compose up --exit-code-from controller": (
        f"{DEPLOY}::test_compose_run_equals_local_network_run",
        "needs docker: `up` of a rendered compose file, controller exit 0, results equal "
        "the local network runner's"),
    "docker-compose down --volumes --remove-orphans": (
        f"{DEPLOY}::test_compose_run_equals_local_network_run",
        "needs docker: `down --volumes --remove-orphans` leaves no container or network"),
    "docker swarm init --advertise-addr 127.0.0.1": (
        SWARM, "needs docker: its `swarm` fixture runs it when the daemon is in no swarm, and "
        "leaves that swarm at the end"),
    "docker stack deploy --resolve-image never -c docker-stack.yml rrmbed": (
        SWARM, "needs a swarm: deploys the file of `rrmbed compose --swarm` with "
        "--resolve-image never, every task exits 0, metrics.csv equals the local runner's"),
    "until docker service ps rrmbed_controller --format '{{.CurrentState}}' | grep -qE "
    "'^(Complete|Failed|Rejected)'; do sleep 2; done": (
        SWARM, "needs a swarm: the test waits for the controller's task to reach a final "
        "state too (docker stack ps, then its task's state and exit code)"),
    "docker stack rm rrmbed": (
        SWARM, "needs a swarm: `docker stack rm` leaves no service, container, network or "
        "secret of the stack"),
    "rrmbed bench slots --repeat 3": (
        "tests/integration/test_bench_slots.py::test_bench_slots_reports_every_cell_from_its_runs",
        "long: every cellular scheme x both runners x 3cell-k2 and 7cell-k8 is some 30 `rrmbed "
        "run` subprocesses even at 5 slots; that test runs this command with two schemes on "
        "3cell-k2 and checks every figure, the JSON and the CSV"),
    "rrmbed bench fuzz --frames 100000": (
        "tests/integration/test_fuzz_live.py::"
        "test_live_fuzz_counts_every_frame_and_no_process_falls",
        "a real-time network run that must outlast the fuzz: that test runs it with 2000 "
        "frames and checks every figure of its JSON"),
    "rrmbed table bits scenarios/3cell-k2.toml --weights-rr RR.npz --weights-central C.npz": (
        "tests/integration/test_wire_runners.py::test_table_bits_writes_its_files",
        "long: trained round-robin and centralized policies and 15 runs; that test runs it "
        "on one scheme and encoding and checks its files"),
    "rrmbed gnn train scenarios/ic-gauss-k10.toml --arch mlp --mode supervised --samples 2000 "
    "--epochs 50": (
        "tests/integration/test_gnn_cli.py::test_gnn_train_mlp_fits_its_k",
        "writes into runs/ (no --out); that test trains the MLP and checks its weights"),
    "rrmbed gnn gap --ks 5,10,20,40 --ms 250,500,1000,2000 --seeds 0,1,2 --form gaussian "
    "--out runs/gnn-gap": (
        "tests/integration/test_gnn_cli.py::test_gnn_gap_quick",
        "long (a study of 15 minutes); that test runs its --quick form and checks the files"),
    "rrmbed gnn gap --quick --out runs/gnn-gap-quick": (
        "tests/integration/test_gnn_cli.py::test_gnn_gap_quick",
        "that test runs exactly this, into a temporary folder"),
    "rrmbed alcor study --ns 5,10,20,50 --snr-db 15 --slots 5000 --seeds 0,1 --ura wmmse "
    "--ura fp --seven-cell 21 --out runs/alcor-study": (
        "tests/unit/test_alcor_study.py::test_study_cli_tiny",
        "long (a study of 9 minutes); that test runs it tiny and checks its files"),
    "rrmbed train scenarios/3cell-k2.toml --scheme centralized --steps 100000 --seeds 0-9 "
    "--backend ray": (
        "tests/integration/test_sweep_ray.py::"
        "test_a_ray_sweep_that_loses_a_worker_equals_the_serial_run",
        "ten seeds of 100000 steps; that test runs two small seeds on Ray, kills a worker, "
        "and compares with the serial run"),
    "rrmbed v2x compare --episodes 200 --seeds 0-4 --backend ray": (
        "tests/integration/test_sweep_ray.py::test_v2x_compare_on_ray_equals_the_serial_run",
        "five seeds of every V2X scheme; that test runs two tiny seeds on Ray and serially"),
    "rrmbed watch --keys KEYS": (
        f"{BROKER_AUTH}::test_watch_logs_in_with_the_keys",
        "needs a broker: watch's entry point logs in with a key directory's watch password "
        "on a real mosquitto with logins, every run, a duration"),
    "rrmbed watch --run NAME --duration 60 --keys KEYS": (
        f"{BROKER_AUTH}::test_watch_logs_in_with_the_keys",
        "needs a broker: one run, a duration, logged in as watch (live publishers shown: "
        f"{TELEMETRY}::test_watch_shows_live_publishers)"),
}
"""README command -> (the test that covers it, why it is not run here)."""

NOT_RRMBED: dict[str, str] = {
    "make demo": "sets up .venv and runs `rrmbed demo` at full size (minutes); no small "
                 "variant of its V2X part exists",
    "make test": "runs this test suite",
    "mkdir -p runs && export RRMBED_UID=$(id -u) RRMBED_GID=$(id -g)": "shell set-up for "
                                                                       "docker-compose",
    "ls runs/3cell-k2-round-robin-s7/": "lists the compose run's results",
}
"""README lines that are not rrmbed commands and no test runs, with the reason."""


# --------------------------------------------------------------------------- argv faithfulness


SIZE_PARAMS = frozenset({"slots", "steps", "episodes_per_iter", "episodes", "eval_episodes",
                         "seeds", "realizations", "count", "repeat", "batch", "compare",
                         "samples", "epochs", "steps_7", "v2x_episodes", "imitation_drops",
                         "imitation_epochs", "validation_episodes"})
"""Options that only say how much work a command does."""
PATH_PARAMS = frozenset({"out", "json_path", "weights", "sources", "directory", "keys_dir"})
"""Options whose README path may move into ``{tmp}`` (``runs/X`` or ``X`` -> ``{tmp}/X``)."""


def leaf_command(argv: list[str]) -> tuple[click.Command, list[str]]:
    """The click command ``argv`` invokes, and the arguments left for it."""
    cmd: click.Command = cli
    args = list(argv)
    while isinstance(cmd, click.Group) and args and not args[0].startswith("-"):
        cmd = cmd.commands[args.pop(0)]
    return cmd, args


def parse(argv: list[str]) -> tuple[click.Command, dict[str, list[str]]]:
    """{parameter name: raw values} of ``argv`` per the CLI's own option definitions."""
    cmd, args = leaf_command(argv)
    options = {o: p for p in cmd.params if isinstance(p, click.Option)
               for o in (*p.opts, *p.secondary_opts)}
    positional = [p for p in cmd.params if isinstance(p, click.Argument)]
    values: dict[str, list[str]] = {}
    rest = []
    while args:
        a = args.pop(0)
        if a == "--help":
            values["help"] = ["true"]
        elif a in options:
            opt = options[a]
            values.setdefault(str(opt.name), []).append("true" if opt.is_flag else args.pop(0))
        else:
            assert not a.startswith("-"), f"unknown option {a} for {cmd.name}"
            rest.append(a)
    for p in positional:
        take = len(rest) if p.nargs == -1 else p.nargs
        if rest[:take]:
            values[str(p.name)] = rest[:take]
        rest = rest[take:]
    assert not rest, f"extra arguments {rest}"
    return cmd, values


def relocated(readme: str, small: str) -> bool:
    return small == "{tmp}/" + readme.removeprefix("runs/")


def argv_changes(command: str, case: Case) -> list[str]:
    """How the small argv differs from the README's beyond sizes, {tmp} paths and
    --no-telemetry (empty: faithful)."""
    cmd_r, r = parse(readme_argv(command))
    cmd_s, s = parse(list(case.argv))
    if cmd_r is not cmd_s:
        return [f"runs {cmd_s.name}, not {cmd_r.name}"]
    bad = []
    for name in sorted(set(r) | set(s)):
        a, b = r.get(name), s.get(name)
        if a == b or name in SIZE_PARAMS:
            continue
        if name in PATH_PARAMS and b is not None and all(y.startswith("{tmp}/") for y in b) and (
                a is None and name == "out" or a is not None and len(a) == len(b)
                and all(relocated(x, y) for x, y in zip(a, b, strict=True))):
            continue
        if name == "no_telemetry" and a is None:
            continue
        bad.append(f"{name}: README {a}, test {b}")
    return bad


# --------------------------------------------------------------------------- tests


def test_every_readme_command_has_an_entry() -> None:
    commands = readme_commands(README.read_text())
    assert len(commands) >= 20, commands  # the parser finds the README's blocks
    known = set(RUNS) | set(COVERED_ELSEWHERE) | set(NOT_RRMBED)
    missing = [c for c in commands if c not in known]
    assert not missing, ("README commands without a test: add each to RUNS (or, needing "
                         "docker or a broker, to COVERED_ELSEWHERE):\n" + "\n".join(missing))
    stale = sorted(known - set(commands))
    assert not stale, "entries for commands the README no longer shows:\n" + "\n".join(stale)
    assert not [c for c in NOT_RRMBED if c.startswith("rrmbed")]  # rrmbed lines are tested
    assert set(NEEDS_AN_EXTRA) <= set(RUNS)


def test_small_commands_change_only_sizes_and_paths() -> None:
    changed = {c: argv_changes(c, case) for c, case in RUNS.items()}
    assert not any(changed.values()), {c: d for c, d in changed.items() if d}
    # nothing is written into the repository's runs/: every output goes to {tmp}
    for command, case in RUNS.items():
        cmd, values = parse(list(case.argv))
        if any(p.name == "out" for p in cmd.params) and "out" not in values:
            assert any(a.startswith("{tmp}/") for a in case.argv), command


def test_argv_check_can_fail() -> None:
    rr = next(c for c in RUNS if "--runner network --slots 200" in c)
    case = RUNS[rr]
    swapped = tuple("full" if a == "round-robin" else a for a in case.argv)
    assert argv_changes(rr, Case(swapped, case.check)) == [
        "scheme: README ['round-robin'], test ['full']"]
    moved = tuple("/elsewhere" if a == "{tmp}/run-rr" else a for a in case.argv)
    assert argv_changes(rr, Case(moved, case.check)) == ["out: README None, test ['/elsewhere']"]


def test_covering_tests_exist() -> None:
    for command, (node, _why) in COVERED_ELSEWHERE.items():
        file, name = node.split("::")
        assert (ROOT / file).is_file(), (command, file)
        assert re.search(rf"^(async )?def {name}\(", (ROOT / file).read_text(), re.M), (
            command, node)


@pytest.fixture(scope="module")
def readme_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The folder every README command writes into, and what has run (in this module)."""
    yield {"tmp": tmp_path_factory.mktemp("readme"), "done": {}}


def run_case(command: str, state: dict[str, Any]) -> Result:
    """Run ``command``'s small argv once (after what it needs) and return its result."""
    done: dict[str, Result] = state["done"]
    if command not in done:
        case = RUNS[command]
        for need in case.needs:
            assert run_case(need, state).proc.returncode == 0, need
        tmp: Path = state["tmp"]
        argv = [a.replace("{tmp}", str(tmp)) for a in case.argv]
        done[command] = Result(rrmbed(*argv, timeout=case.timeout_s,
                                      env={**os.environ, **WIDE}), tmp)
    return done[command]


def extra_missing(command: str) -> str | None:
    """The extra ``command`` needs that is not installed, if any."""
    if command not in NEEDS_AN_EXTRA:
        return None
    extra, module, _why = NEEDS_AN_EXTRA[command]
    return None if importlib.util.find_spec(module) else extra


@pytest.mark.parametrize("command", list(RUNS), ids=list(RUNS))
def test_readme_command(command: str, readme_tmp: dict[str, Any]) -> None:
    r = run_case(command, readme_tmp)
    output = r.proc.stdout[-3000:] + r.proc.stderr[-3000:]
    extra = extra_missing(command)
    if extra is not None:
        # without the extra: a failure at once that names it, before any work
        assert r.proc.returncode != 0, output
        assert f"'{extra}' extra" in r.proc.stderr, output
        assert f"pip install 'rrmbed[{extra}]'" in r.proc.stderr, output
        out = RUNS[command].argv[RUNS[command].argv.index("--out") + 1]
        assert not Path(out.replace("{tmp}", str(r.tmp))).exists(), "it worked before failing"
        return
    assert r.proc.returncode == 0, output
    RUNS[command].check(r)
