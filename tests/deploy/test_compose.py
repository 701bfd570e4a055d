"""docker-compose deployment: one container per process gives the same run as the local
network runner (same seed), each BS in its own container, and `down` leaves nothing behind.

Images come from scripts/build-images.sh (offline: debootstrap base + wheelhouse); the
broker service runs mosquitto from the base image (no registry needed).
"""

from __future__ import annotations

import json
import math
import os
import random
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.deploy.compose import render_compose
from tests.helpers import S3, SD, SV, dockerd_without_iptables, read_csv, rrmbed, sh, tail

SCENARIO = S3
IMAGE = "rrmbed:local"
BROKER_IMAGE = "rrmbed-base:bookworm"
N_NODES, SCHEME, SLOTS, SEED = 3, "round-robin", 200, 7
RUN_NAME = "compose-run"

DEPLOY = [pytest.mark.deploy, pytest.mark.timeout(1800)]
CONTAINER_USER = 10001
"""The image's user, which the rrmbed services run as when RRMBED_UID is not set."""
ANONYMOUS_CONNECT = (
    "import socket; s = socket.create_connection(('127.0.0.1', 1883), 5); "
    "s.sendall(bytes([0x10, 13, 0, 4]) + b'MQTT' + bytes([4, 2, 0, 60, 0, 1]) + b'x'); "
    "print(s.recv(4).hex())")
"""An MQTT 3.1.1 CONNECT without user name (client id "x"); prints the CONNACK in hex."""


def container_keys(tmp: Path, scenario: Path) -> str:
    """``rrmbed keys`` for the scenario, the secrets (the broker's password file too)
    readable by the containers' user."""
    keys = tmp / "keys"
    r = rrmbed("keys", str(keys), "--scenario", str(scenario))
    assert r.returncode == 0, r.stderr
    for f in [*keys.glob("*.secret"), keys / "mosquitto.passwd"]:
        os.chown(f, CONTAINER_USER, CONTAINER_USER)
    return str(keys)





def compose_subnet() -> str | None:
    """A fixed subnet when the daemon runs without iptables (no embedded DNS then)."""
    if os.environ.get("RRMBED_COMPOSE_SUBNET"):
        return os.environ["RRMBED_COMPOSE_SUBNET"]
    if dockerd_without_iptables():
        return f"172.30.{random.randrange(256)}.0/24"
    return None


@DEPLOY[0]
@DEPLOY[1]
def test_image_runs_rrmbed_as_non_root(images: list[str]) -> None:
    r = sh(["docker", "run", "--rm", IMAGE, "rrmbed", "--help"], timeout=120)
    assert r.returncode == 0, r.stderr
    for command in ("controller", "channel-server", "node", "run"):
        assert command in r.stdout
    # The entrypoint prepends `rrmbed` to a bare subcommand.
    r = sh(["docker", "run", "--rm", IMAGE, "node", "--help"], timeout=120)
    assert r.returncode == 0 and "--controller" in r.stdout, r.stdout + r.stderr
    r = sh(["docker", "run", "--rm", IMAGE, "id", "-u"], timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "10001", r.stdout + r.stderr
    r = sh(["docker", "image", "inspect", "-f", "{{json .Config.Volumes}}", IMAGE], timeout=60)
    assert "/runs" in json.loads(r.stdout)


class Project:
    """One compose project with a unique name; `down` on exit."""

    def __init__(self, compose: list[str], file: Path, env: dict[str, str]) -> None:
        self.name = f"rrmbeddeploy{uuid.uuid4().hex[:10]}"
        self.base = [*compose, "-p", self.name, "-f", str(file)]
        self.env = env
        self.cwd = file.parent

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return sh([*self.base, *args], timeout=timeout, env=self.env, cwd=self.cwd)

    def container(self, service: str) -> str:
        r = self.run("ps", "-q", service, timeout=60)
        assert r.returncode == 0 and r.stdout.strip(), f"no container for {service}: {r.stderr}"
        return r.stdout.strip().splitlines()[0]

    def logs(self) -> str:
        return tail(self.run("logs", "--no-color", timeout=60).stdout, 60)

    def leftovers(self) -> tuple[list[str], list[str]]:
        label = f"label=com.docker.compose.project={self.name}"
        ps = sh(["docker", "ps", "-a", "-q", "--filter", label], timeout=60).stdout.split()
        nets = sh(["docker", "network", "ls", "--format", "{{.Name}}"], timeout=60).stdout.split()
        nets_labelled = sh(["docker", "network", "ls", "-q", "--filter", label],
                           timeout=60).stdout.split()
        return ps, [n for n in nets if n.startswith(self.name)] + nets_labelled


@pytest.fixture
def project(images: list[str], tmp_path: Path) -> Iterator[tuple[Project, Path]]:
    runs = tmp_path / "runs"
    runs.mkdir()
    runs.chmod(0o777)  # the controller container writes as uid 10001
    file = tmp_path / "docker-compose.yml"
    file.write_text(render_compose(str(SCENARIO), N_NODES, SCHEME, SLOTS, SEED, None, IMAGE,
                                   str(runs), broker_image=BROKER_IMAGE,
                                   subnet=compose_subnet(),
                                   keys=container_keys(tmp_path, SCENARIO)))
    overrides = ("RRMBED_IMAGE", "RRMBED_BROKER_IMAGE", "RRMBED_UID", "RRMBED_GID")
    env = {k: v for k, v in os.environ.items() if k not in overrides}
    env["RRMBED_RUN"] = RUN_NAME
    p = Project(images, file, env)
    try:
        yield p, runs / RUN_NAME
    finally:
        p.run("down", "--volumes", "--remove-orphans", "--timeout", "5", timeout=120)


@DEPLOY[0]
@DEPLOY[1]
def test_compose_run_equals_local_network_run(project: tuple[Project, Path],
                                              tmp_path: Path) -> None:
    proj, out = project
    # The reference: the same scenario, scheme and seed with the local network runner.
    local = tmp_path / "local"
    r = rrmbed("run", str(SCENARIO), "--scheme", SCHEME, "--runner", "network", "--slots",
               str(SLOTS), "--seed", str(SEED), "--out", str(local), timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr

    t0 = time.monotonic()
    up = proj.run("up", "-d", timeout=300)
    assert up.returncode == 0, up.stderr
    controller = proj.container("controller")
    waited = sh(["docker", "wait", controller], timeout=600)
    t_run = time.monotonic() - t0
    print(f"\ncompose up -d .. controller exit: {t_run:.1f} s")
    assert waited.stdout.strip() == "0", f"controller exit {waited.stdout!r}\n{proj.logs()}"
    assert (out / "summary.json").exists(), proj.logs()

    # Every rrmbed container finished cleanly.
    roles = ["controller", "channel-server", *(f"node-{b}" for b in range(N_NODES))]
    ids = {role: proj.container(role) for role in roles}
    for role, cid in ids.items():
        if role == "controller":
            continue
        sh(["docker", "wait", cid], timeout=120)
        state = sh(["docker", "inspect", "-f", "{{.State.ExitCode}}", cid], timeout=60)
        assert state.stdout.strip() == "0", f"{role} exit {state.stdout!r}\n{proj.logs()}"

    summary = json.loads((out / "summary.json").read_text())
    ref = json.loads((local / "summary.json").read_text())
    assert summary["errors"] == [] and summary["lost_nodes"] == [], summary["errors"]
    assert summary["slots"] == SLOTS

    # Per-slot sum-rate (and powers): the same text, slot by slot.
    got, want = read_csv(out / "metrics.csv"), read_csv(local / "metrics.csv")
    assert len(got) == len(want) == SLOTS
    assert [row["sum_rate_bps_hz"] for row in got] == [row["sum_rate_bps_hz"] for row in want]
    power_cols = [c for c in want[0] if c.startswith("p_")]
    assert len(power_cols) == N_NODES * 2
    assert [[row[c] for c in power_cols] for row in got] == \
        [[row[c] for c in power_cols] for row in want]

    # Backhaul bytes: identical per kind and link; per slot as the summary states it.
    def backhaul(rows: list[dict[str, str]]) -> list[dict[str, str]]:
        return sorted((r for r in rows if r["plane"] == "backhaul"),
                      key=lambda r: (r["kind"], r["sender"], r["receiver"]))

    bh_got = backhaul(read_csv(out / "overhead.csv"))
    bh_want = backhaul(read_csv(local / "overhead.csv"))
    assert bh_got, "round-robin must forward powers over the backhaul"
    assert bh_got == bh_want
    per_slot = sum(int(r["bytes"]) for r in bh_got) / SLOTS
    assert math.isclose(summary["backhaul_bytes_per_slot"]["total"], per_slot, rel_tol=1e-12)
    assert summary["backhaul_bytes_per_slot"]["total"] == ref["backhaul_bytes_per_slot"]["total"]
    # The round-robin chain: BS b forwards to BS b' (never through the controller).
    assert {r["kind"] for r in bh_got} == {"power_forward"}
    assert all(r["sender"].startswith("node-") and r["receiver"].startswith("node-")
               for r in bh_got)

    # Each process ran in its own container: the hostname each reported is that
    # container's hostname, and all differ (locally they are all this host's name).
    hosts = summary["hosts"]
    for role, cid in ids.items():
        hostname = sh(["docker", "inspect", "-f", "{{.Config.Hostname}}", cid], timeout=60)
        assert hosts[role] == hostname.stdout.strip(), (role, hosts)
        assert cid.startswith(hosts[role])  # compose's default hostname: the short id
    assert len({hosts[role] for role in roles}) == len(roles)
    assert set(ref["hosts"].values()) == {socket.gethostname()}

    # Telemetry went through the broker container: every process connected to it, logged
    # in as itself; the broker lets no one in anonymously.
    broker_log = proj.run("logs", "--no-color", "mosquitto", timeout=60).stdout
    connected = [ln for ln in broker_log.splitlines() if "New client connected" in ln]
    for role in roles:
        assert any(f"-{role}-" in ln and f"u'{role}'" in ln for ln in connected), (role,
                                                                                    connected)
    anonymous = sh(["docker", "exec", proj.container("mosquitto"), "python3", "-c",
                    ANONYMOUS_CONNECT], timeout=60)
    assert anonymous.stdout.strip() == "20020005", anonymous  # CONNACK: not authorised

    # down removes every container and the network of this project.
    down = proj.run("down", "--volumes", "--remove-orphans", "--timeout", "5", timeout=120)
    assert down.returncode == 0, down.stderr
    containers, networks = proj.leftovers()
    assert containers == [] and networks == [], (containers, networks)


def test_render_weights_named_volume_static_addresses_and_dollars() -> None:
    """No docker needed: the rendered text, against values written out by hand."""
    text = render_compose("/srv/a$b/3cell.toml", 3, "full", 50, 1, "models/w.npz",
                          "rrmbed:test", "rrmbed-runs", subnet="10.77.0.0/28",
                          run_name="r1", insecure=True)
    lines = [ln.strip() for ln in text.splitlines()]
    # The scenario and weights are mounted read-only where the controller reads them.
    assert '- "/srv/a$$b/3cell.toml:/scenario/3cell.toml:ro"' in lines
    assert '- "./models/w.npz:/weights/w.npz:ro"' in lines
    i = lines.index('- "--weights"')
    assert lines[i + 1] == '- "/weights/w.npz"'
    i = lines.index('- "--out"')
    assert lines[i + 1] == '- "/runs/${RRMBED_RUN:-r1}"'
    # A bare name is a named volume, declared at the top level.
    assert '- "rrmbed-runs:/runs"' in lines
    assert text.endswith("volumes:\n  rrmbed-runs: {}\n")
    assert lines.count('- "--insecure"') == 5 and "secrets:" not in lines
    # Fixed addresses: gateway 10.77.0.1, then one per service in order; each service
    # lists every other one in extra_hosts.
    want = {"mosquitto": "10.77.0.2", "controller": "10.77.0.3",
            "channel-server": "10.77.0.4", "node-0": "10.77.0.5", "node-1": "10.77.0.6",
            "node-2": "10.77.0.7"}
    for name, ip in want.items():
        assert lines.count(f'ipv4_address: "{ip}"') == 1
        assert lines.count(f'- "{name}:{ip}"') == len(want) - 1
    assert '- subnet: "10.77.0.0/28"' in lines
    # Every rrmbed service runs the image (overridable), the broker its own.
    assert lines.count('image: "${RRMBED_IMAGE:-rrmbed:test}"') == 5
    assert lines.count('image: "${RRMBED_BROKER_IMAGE:-eclipse-mosquitto:2}"') == 1
    for b in range(3):
        assert f'- "tcp://node-{b}:5552"' in lines
    with pytest.raises(ValueError):
        render_compose("s.toml", 3, "full", 50, 1, None, "i", "r", subnet="10.77.0.0/29",
                       insecure=True)
    with pytest.raises(ValueError):
        render_compose("s.toml", 0, "full", 50, 1, None, "i", "r", insecure=True)
    with pytest.raises(ValueError, match="keys"):  # neither keys nor --insecure
        render_compose("s.toml", 3, "full", 50, 1, None, "i", "r")
    no_tel = render_compose("s.toml", 2, "full", 50, 1, None, "i", "./r", telemetry=False,
                            keys="k")
    assert "mosquitto" not in no_tel and '- "--no-telemetry"' in no_tel
    assert '- "./s.toml:/scenario/s.toml:ro"' in no_tel and '- "./r:/runs"' in no_tel
    # with keys: every rrmbed service reads its own secret and the public keys from
    # /run/secrets, and runs as $RRMBED_UID
    assert no_tel.count('- "/run/secrets"') == 4 and "--insecure" not in no_tel
    assert no_tel.count('user: "${RRMBED_UID:-10001}:${RRMBED_GID:-10001}"') == 4
    for name in ("controller", "channel-server", "node-0", "node-1"):
        assert no_tel.count(f'- "{name}.secret"') == 1
        assert f'  {name}.secret:\n    file: "./k/{name}.secret"' in no_tel


@DEPLOY[0]
@DEPLOY[1]
@pytest.mark.parametrize(("scenario", "n", "scheme", "slots", "seed", "backhaul_kind"), [
    (SV, 4, "random", 200, 3, "neighbour_choice"),
    (SD, 10, "q-learning", 200, 5, None),
], ids=["v2x", "d2d"])
def test_kind_compose_run_equals_local_runner(images: list[str], tmp_path: Path, scenario: Path,
                                              n: int, scheme: str, slots: int, seed: int,
                                              backhaul_kind: str | None) -> None:
    """A V2X run (one container per vehicle) and a D2D run (one container per pair, each
    learning online) play the local runner's slots exactly, every process on its own host."""
    from channel_server.kinds import resolve

    role = resolve(scenario).kind.node_role
    runs = tmp_path / "runs"
    runs.mkdir()
    runs.chmod(0o777)
    file = tmp_path / "docker-compose.yml"
    file.write_text(render_compose(str(scenario), n, scheme, slots, seed, None, IMAGE,
                                   str(runs), telemetry=False, subnet=compose_subnet(),
                                   node_kind=role, keys=container_keys(tmp_path, scenario)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RRMBED_")}
    env["RRMBED_RUN"] = role
    proj = Project(images, file, env)
    try:
        up = proj.run("up", "-d", timeout=300)
        assert up.returncode == 0, up.stderr
        waited = sh(["docker", "wait", proj.container("controller")], timeout=600)
        assert waited.stdout.strip() == "0", f"controller exit {waited.stdout!r}\n{proj.logs()}"
        out = runs / role
        local = tmp_path / "local"
        r = rrmbed("run", str(scenario), "--scheme", scheme, "--runner", "local", "--slots",
                   str(slots), "--seed", str(seed), "--out", str(local), timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        assert (out / "metrics.csv").read_text() == (local / "metrics.csv").read_text()
        summary = json.loads((out / "summary.json").read_text())
        assert summary["errors"] == [] and summary["lost_nodes"] == []
        roles = ["controller", "channel-server", *(f"{role}-{k}" for k in range(n))]
        assert len({summary["hosts"][name] for name in roles}) == len(roles)
        if backhaul_kind:
            assert summary["backhaul_bytes_per_slot"]["by_kind"][backhaul_kind] > 0
    finally:
        proj.run("down", "--volumes", "--remove-orphans", "--timeout", "5", timeout=120)
