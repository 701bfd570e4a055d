"""Docker Swarm deployment: the stack file of `rrmbed compose --swarm`, deployed with
`docker stack deploy` on a single-node swarm, runs one service per process and gives the
local runner's results, and `docker stack rm` leaves nothing behind.

The swarm is the one this docker daemon is a manager of, or one made here with
`docker swarm init --advertise-addr 127.0.0.1` and left again at the end (unless another
stack runs on it by then). Images come from scripts/build-images.sh, as in test_compose.py;
`--resolve-image never` lets swarm use them without a registry.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import S3, dockerd_without_iptables, read_csv, rrmbed, sh, tail

SCENARIO = S3
IMAGE = "rrmbed:local"
BROKER_IMAGE = "rrmbed-base:bookworm"
N_NODES, SCHEME, SLOTS, SEED = 3, "round-robin", 50, 7
RUN_NAME = "swarm-run"
RUN_SERVICES = ["controller", "channel-server", *(f"node-{b}" for b in range(N_NODES))]
"""The services that end with the run (the broker serves until the stack is removed)."""
FINAL = {"complete", "failed", "rejected", "shutdown", "orphaned", "remove"}
"""Task states after which a task never runs again."""
RUN_TIMEOUT_S = 600
"""Deploy .. controller done, at most."""

DEPLOY = [pytest.mark.deploy, pytest.mark.timeout(1800)]




def iptables_hint() -> str:
    """Why swarm may not work on this host, if dockerd says so on its command line."""
    if dockerd_without_iptables():
        return (" (dockerd runs with --iptables=false: swarm's overlay network and its "
                "DNS need iptables)")
    return ""



def swarm_info() -> dict[str, object]:
    r = sh(["docker", "info", "--format", "{{json .Swarm}}"], timeout=60)
    assert r.returncode == 0, f"docker info: {r.stderr}"
    info: dict[str, object] = json.loads(r.stdout)
    return info


@pytest.fixture(scope="session")
def swarm(images: list[str]) -> Iterator[str]:
    """A swarm manager to deploy on (this daemon's swarm, or a single-node one made here and
    left at the end); its node's hostname."""
    info = swarm_info()
    state = info.get("LocalNodeState")
    created = False
    gwbridge = sh(["docker", "network", "inspect", "docker_gwbridge"], timeout=60)
    if state == "inactive":
        r = sh(["docker", "swarm", "init", "--advertise-addr", "127.0.0.1",
                "--listen-addr", "127.0.0.1:2377"], timeout=120)
        if r.returncode != 0:
            pytest.fail(f"cannot make a single-node swarm: 'docker swarm init "
                        f"--advertise-addr 127.0.0.1' failed: {tail(r.stderr, 4)}"
                        f"{iptables_hint()}", pytrace=False)
        created = True
        print("\nswarm: made a single-node swarm (docker swarm init --advertise-addr 127.0.0.1)")
    elif state != "active":
        pytest.fail(f"this docker daemon's swarm is {state!r} ({info.get('Error') or 'no error'}"
                    "): docker stack deploy needs an active swarm manager", pytrace=False)
    elif not info.get("ControlAvailable"):
        pytest.fail("this docker daemon is a swarm worker: docker stack deploy needs a manager",
                    pytrace=False)
    node = sh(["docker", "node", "inspect", "self", "--format", "{{.Description.Hostname}}"],
              timeout=60)
    try:
        assert node.returncode == 0, node.stderr
        yield node.stdout.strip()
    finally:
        if created:
            stacks = sh(["docker", "stack", "ls", "--format", "{{.Name}}"], timeout=60)
            others = stacks.stdout.split()
            if others:
                print(f"\nswarm: left up, stacks {others} run on it")
            else:
                left = sh(["docker", "swarm", "leave", "--force"], timeout=120)
                assert left.returncode == 0, f"docker swarm leave --force: {left.stderr}"
                if gwbridge.returncode != 0:  # swarm made it; nothing else uses it now
                    sh(["docker", "network", "rm", "docker_gwbridge"], timeout=60)


class Stack:
    """One deployed stack with a unique name; removed on exit."""

    def __init__(self, file: Path, env: dict[str, str]) -> None:
        self.name = f"rrmbedswarm{uuid.uuid4().hex[:10]}"
        self.file = file
        self.env = env

    def deploy(self) -> subprocess.CompletedProcess[str]:
        return sh(["docker", "stack", "deploy", "--resolve-image", "never", "-c",
                   str(self.file), self.name], env=self.env, cwd=self.file.parent)

    def tasks(self) -> dict[str, dict[str, object]]:
        """Service (without the stack's prefix) -> its task (the newest, should there be
        more): state, exit code, error, container and node."""
        ps = sh(["docker", "stack", "ps", self.name, "--no-trunc", "--format",
                 "{{.Name}} {{.ID}}"], timeout=60)
        ids = {}  # task id -> task name (STACK_service.1)
        for line in ps.stdout.splitlines():
            if line.strip():
                name, task_id = line.split()
                ids[task_id] = name
        if not ids:
            return {}
        r = sh(["docker", "inspect", "--type", "task", *ids], timeout=60)
        out: dict[str, tuple[str, dict[str, object]]] = {}
        for task in json.loads(r.stdout or "[]"):
            service = ids[task["ID"]].removeprefix(f"{self.name}_").rsplit(".", 1)[0]
            status = task.get("Status", {})
            container = status.get("ContainerStatus") or {}
            row = {"state": status.get("State"), "exit": container.get("ExitCode"),
                   "error": status.get("Err", ""), "container": container.get("ContainerID"),
                   "node": task.get("NodeID")}
            if service not in out or task["CreatedAt"] > out[service][0]:
                out[service] = (task["CreatedAt"], row)
        return {name: row for name, (_, row) in out.items()}

    def wait(self, services: list[str], timeout_s: float) -> dict[str, dict[str, object]]:
        """Every task of ``services`` in a final state (or the time is up): all tasks."""
        deadline = time.monotonic() + timeout_s
        while True:
            tasks = self.tasks()
            if all(tasks.get(s, {}).get("state") in FINAL for s in services):
                return tasks
            if time.monotonic() > deadline:
                pytest.fail(f"stack {self.name}: {services} not done within {timeout_s:.0f} s"
                            f"{iptables_hint()}\n{self.report()}", pytrace=False)
            time.sleep(1)

    def logs(self, service: str) -> str:
        r = sh(["docker", "service", "logs", "--no-task-ids", f"{self.name}_{service}"],
               timeout=60)
        return r.stdout + r.stderr

    def report(self) -> str:
        ps = sh(["docker", "stack", "ps", self.name, "--no-trunc", "--format",
                 "{{.Name}} {{.Node}} {{.CurrentState}} {{.Error}}"], timeout=60)
        return "tasks:\n" + ps.stdout + ps.stderr + "".join(
            f"--- {s}\n{tail(self.logs(s), 15)}\n" for s in ["controller", "channel-server",
                                                            "node-0"])

    def leftovers(self) -> dict[str, list[str]]:
        label = f"label=com.docker.stack.namespace={self.name}"
        found = {}
        for what in (["service", "ls", "-q"], ["ps", "-a", "-q"], ["network", "ls", "-q"],
                     ["secret", "ls", "-q"]):
            r = sh(["docker", *what, "--filter", label], timeout=60)
            found[what[0]] = r.stdout.split()
        return found

    def remove(self, timeout_s: float = 120) -> dict[str, list[str]]:
        """`docker stack rm`, then wait until its containers and network are gone (removal
        goes on in the background); what is left."""
        sh(["docker", "stack", "rm", self.name], timeout=120)
        deadline = time.monotonic() + timeout_s
        while True:
            left = {k: v for k, v in self.leftovers().items() if v}
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(1)


@DEPLOY[0]
@DEPLOY[1]
def test_swarm_stack_run_equals_local_runner(swarm: str, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    runs.chmod(0o777)  # the controller service writes as uid 10001 (no RRMBED_UID here)
    keys = tmp_path / "keys"
    r = rrmbed("keys", str(keys), "--scenario", str(SCENARIO))
    assert r.returncode == 0, r.stderr
    # The stack file as the README makes it (absolute paths: the test's folders).
    r = rrmbed("compose", str(SCENARIO), "--scheme", SCHEME, "--slots", str(SLOTS), "--seed",
               str(SEED), "--image", IMAGE, "--broker-image", BROKER_IMAGE, "--runs", str(runs),
               "--keys", str(keys), "--swarm")
    assert r.returncode == 0, r.stderr
    file = tmp_path / "docker-stack.yml"
    file.write_text(r.stdout)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RRMBED_")}
    env["RRMBED_RUN"] = RUN_NAME
    stack = Stack(file, env)
    out = runs / RUN_NAME
    try:
        t0 = time.monotonic()
        deployed = stack.deploy()
        assert deployed.returncode == 0, f"docker stack deploy: {deployed.stderr}"
        tasks = stack.wait(["controller"], RUN_TIMEOUT_S)
        t_run = time.monotonic() - t0
        print(f"\nstack deploy .. controller done: {t_run:.1f} s")
        tasks = stack.wait(RUN_SERVICES, 120)  # the nodes exit right after their report
        for name in RUN_SERVICES:
            task = tasks[name]
            assert (task["state"], task["exit"]) == ("complete", 0), (
                f"{name}: {task}\n{stack.report()}")
        assert tasks["mosquitto"]["state"] == "running", tasks["mosquitto"]
        # One service, one task, one container per process, all on this swarm's node.
        assert sorted(tasks) == sorted(["mosquitto", *RUN_SERVICES])
        assert len({t["container"] for t in tasks.values()}) == len(tasks)
        assert (out / "summary.json").exists(), stack.report()

        # The reference: the same scenario, scheme and seed in one process.
        local = tmp_path / "local"
        r = rrmbed("run", str(SCENARIO), "--scheme", SCHEME, "--runner", "local", "--slots",
                   str(SLOTS), "--seed", str(SEED), "--out", str(local), timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        assert (out / "metrics.csv").read_bytes() == (local / "metrics.csv").read_bytes()
        summary = json.loads((out / "summary.json").read_text())
        ref = json.loads((local / "summary.json").read_text())
        assert summary["errors"] == [] and summary["lost_nodes"] == [], summary["errors"]
        assert (summary["slots"], summary["runner"]) == (SLOTS, "network")
        assert math.isclose(summary["backhaul_bytes_per_slot"]["total"],
                            ref["backhaul_bytes_per_slot"]["total"], rel_tol=1e-12)
        # Round-robin forwards go from BS to BS over the overlay network.
        forwards = [row for row in read_csv(out / "overhead.csv")
                    if row["plane"] == "backhaul"]
        assert forwards and {row["kind"] for row in forwards} == {"power_forward"}
        assert all(row["sender"].startswith("node-") and row["receiver"].startswith("node-")
                   for row in forwards)
        # Each process reports the swarm node it ran on (hostname: {{.Node.Hostname}}).
        assert summary["hosts"] == {name: swarm for name in RUN_SERVICES}, summary["hosts"]

        # Logs come back from whichever host ran a service: the broker's shows every
        # process logged in as itself.
        broker_log = stack.logs("mosquitto")
        connected = [ln for ln in broker_log.splitlines() if "New client connected" in ln]
        for name in RUN_SERVICES:
            assert any(f"-{name}-" in ln and f"u'{name}'" in ln for ln in connected), (
                name, connected)

        left = stack.remove()
        assert left == {}, f"docker stack rm left {left}"
    finally:
        stack.remove()
