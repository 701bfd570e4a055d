"""Fixtures shared by every test layer. Plain helpers (paths, the CLI as a subprocess, CSV
rows, ...) are in ``tests/helpers.py``; the mosquitto fixtures in
``tests/integration/conftest.py``."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator

import pytest

from controller.evaluation.files import PLOTS_ENV
from tests.helpers import ROOT, Spawn, rrmbed_argv

# Runs started by the tests (and their processes) draw no plots of themselves: matplotlib's
# import and first figure cost about a second of CPU per run, more than most runs here.
# The tests that check those PNGs (the README's commands, the training run directory) set
# it back to 1.
os.environ[PLOTS_ENV] = "0"

if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    # started as a background job of a non-interactive shell (`make test &`): SIGINT is
    # ignored there and every process we start would inherit that, so the Ctrl-C tests
    # could not interrupt anything. A handler is reset to the default in a child.
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """torch on one intra-op thread while the test runs (small nets on a shared 2-core box:
    more threads only oversubscribe it). A module asks for it with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    from controller.learners.threads import torch_threads

    with torch_threads(1):
        yield


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start ``rrmbed ARGS`` in the background: ``spawn(*args, env=None)`` returns the Popen
    (text pipes for stdout and stderr, cwd the repository).

    Whatever the test's outcome, nothing it spawned outlives it: a process still running at
    teardown gets SIGTERM (the launcher treats it as Ctrl-C and stops its own children), then
    SIGKILL after 30 s, and is reaped.
    """
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        proc = subprocess.Popen(rrmbed_argv(*args), cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate(timeout=30)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        proc.wait()
