"""Deploy tests: real docker images and docker-compose.

They always run, and FAIL naming the problem when docker cannot be started or used; nothing
is skipped. ``RRMBED_DEPLOY_TESTS=off`` (for a machine without docker) deselects them at
collection instead, and says so. Whatever happened is printed at the end of the pytest run
("deploy tests ran: ..." or "deploy tests did NOT run: <why>") by
``pytest_terminal_summary`` below, and stored in the pytest cache under
``rrmbed/deploy-status`` (.pytest_cache/v/rrmbed/deploy-status).

Docker itself is made usable by ``scripts/build-images.sh docker``: it installs
docker.io / docker-compose with apt when missing and starts dockerd when none answers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.helpers import ROOT, sh, tail

BUILD_SCRIPT = ROOT / "scripts" / "build-images.sh"
ENV = "RRMBED_DEPLOY_TESTS"
STATUS_KEY = "rrmbed/deploy-status"


@dataclass
class DeployStatus:
    """What the deploy tests did in this pytest run."""

    reason: str | None = None
    """Why docker was not usable (None: usable, or not probed yet)."""
    outcomes: dict[str, str] = field(default_factory=dict)
    """nodeid -> passed / failed / skipped, for tests marked ``deploy``."""
    marked: set[str] = field(default_factory=set)
    """Node ids of the collected tests marked ``deploy``."""


STATUS = DeployStatus()


def deselected() -> bool:
    """$RRMBED_DEPLOY_TESTS asks to leave the deploy tests out."""
    return os.environ.get(ENV, "").strip().lower() in ("off", "0", "no", "false")


def one_line(text: str, lines: int = 4, limit: int = 400) -> str:
    """The last non-empty lines of ``text`` joined with " | " (for one-line reasons)."""
    all_lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    errors = [ln for ln in all_lines if "ERROR" in ln]
    kept = (errors or all_lines)[-lines:]
    joined = " | ".join(kept)
    return joined if len(joined) <= limit else "..." + joined[-limit:]


def compose_command() -> list[str] | None:
    """``docker compose`` (v2) when the plugin works, else ``docker-compose`` (v1)."""
    if shutil.which("docker"):
        v2 = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True,
                            timeout=30)
        if v2.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def docker_problem() -> str | None:
    """None when docker and compose are usable (starting dockerd if needed), else why not."""
    if not BUILD_SCRIPT.exists():
        return f"{BUILD_SCRIPT} is missing"
    if not shutil.which("bash"):
        return "bash is not installed"
    try:
        r = subprocess.run(["bash", str(BUILD_SCRIPT), "docker"], capture_output=True,
                           text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return f"'{BUILD_SCRIPT.name} docker' (install tools, start dockerd) took over 600 s"
    if r.returncode != 0:
        return (f"'{BUILD_SCRIPT.name} docker' failed (rc {r.returncode}): "
                f"{one_line(r.stdout + r.stderr)}")
    info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                          capture_output=True, text=True, timeout=60)
    if info.returncode != 0:
        return f"'docker info' fails: {one_line(info.stderr)}"
    if compose_command() is None:
        return "neither 'docker compose' nor 'docker-compose' works"
    return None


@pytest.fixture(scope="session")
def docker_ready() -> Iterator[list[str]]:
    """The compose command, once docker answers; the tests fail, naming why, if it does not."""
    problem = docker_problem()
    if problem is not None:
        STATUS.reason = problem
        pytest.fail(f"docker is not usable: {problem} (set {ENV}=off to leave the deploy "
                    "tests out on a machine without docker)", pytrace=False)
    compose = compose_command()
    assert compose is not None
    yield compose


@pytest.fixture(scope="session")
def images(docker_ready: list[str]) -> list[str]:
    """Build (or reuse) rrmbed-base:bookworm and rrmbed:local, once per session; the compose
    command."""
    t0 = time.monotonic()
    r = sh(["bash", str(ROOT / "scripts" / "build-images.sh")], timeout=1500)
    assert r.returncode == 0, f"build-images.sh failed (rc {r.returncode}):\n{tail(r.stderr)}"
    timings = [ln for ln in r.stderr.splitlines() if ln.startswith("[build-images]   ")]
    print(f"\nbuild-images.sh: {time.monotonic() - t0:.1f} s\n" + "\n".join(timings))
    return docker_ready


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    marked = [it for it in items if it.get_closest_marker("deploy")]
    if marked and deselected():
        STATUS.reason = f"deselected by {ENV}={os.environ.get(ENV)}"
        config.hook.pytest_deselected(items=marked)
        items[:] = [it for it in items if not it.get_closest_marker("deploy")]
        return
    STATUS.marked.update(it.nodeid for it in marked)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.nodeid not in STATUS.marked:  # ("deploy" in keywords: also this directory)
        return
    if report.when == "call":
        STATUS.outcomes[report.nodeid] = report.outcome
    elif report.outcome != "passed":  # failed / skipped in setup: the test did not run
        STATUS.outcomes.setdefault(report.nodeid, f"{report.outcome} in {report.when}")


def status_line() -> tuple[str, bool]:
    """The end-of-run line, and whether the deploy tests ran."""
    ran = [o for o in STATUS.outcomes.values() if o in ("passed", "failed")]
    if ran:
        return (f"deploy tests ran: {ran.count('passed')} passed, "
                f"{ran.count('failed')} failed"), True
    if STATUS.reason is not None:
        why = STATUS.reason
    elif STATUS.outcomes:
        why = ", ".join(sorted(set(STATUS.outcomes.values())))
    else:
        why = "not selected (deselected with -m / -k, or not collected)"
    return f"deploy tests did NOT run: {why}", False


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int,
                            config: pytest.Config) -> None:
    line, ran = status_line()
    terminalreporter.write_sep("-", "deploy")
    terminalreporter.write_line(line, yellow=not ran, green=ran)
    cache = getattr(config, "cache", None)
    if cache is not None:
        cache.set(STATUS_KEY, {"ran": ran, "line": line, "reason": STATUS.reason})
