"""Jobs side by side (controller.evaluation.side_by_side): in this process and in spawned
worker processes, every job's result comes back once, a failing or killed job stops no
other, two workers run two jobs at once, progress reaches this process, and a worker
computes with this process's torch threads."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import torch

from controller.evaluation.side_by_side import JobError, run_jobs


def square_after(x: int, pause_s: float, tick=lambda done: None) -> tuple[int, int]:
    """x squared and its process; ticks 1..3 on the way."""
    for done in (1, 2, 3):
        time.sleep(pause_s / 3)
        tick(done)
    if x == -9:
        os.kill(os.getpid(), signal.SIGKILL)
    if x < 0:
        raise ValueError(f"no square for {x} here")
    return x * x, os.getpid()


@pytest.mark.parametrize("workers", [1, 2])
def test_every_result_once_and_a_failure_stops_nothing_else(workers: int) -> None:
    xs = [3, -1, 4, 5]
    got = dict(run_jobs(square_after, [(x, 0.3) for x in xs], workers))
    assert sorted(got) == [0, 1, 2, 3]
    assert [got[k][0] for k in (0, 2, 3)] == [9, 16, 25]
    err = got[1]
    assert isinstance(err, JobError)
    assert str(err).startswith("ValueError: no square for -1 here")
    assert "square_after" in str(err)  # its traceback comes along
    pids = {got[k][1] for k in (0, 2, 3)}
    assert (pids == {os.getpid()}) == (workers == 1)
    if workers > 1:
        assert os.getpid() not in pids


def meet(k: int, folder: str, tick=lambda done: None) -> tuple[int, int]:
    """Job k of two: says it began (a file), waits until the other one has too, so they
    run at the same time; its process and torch's thread count there."""
    Path(folder, str(k)).write_text("began")
    tick(1)
    deadline = time.monotonic() + 60.0
    while not Path(folder, str(1 - k)).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {1 - k} never began beside job {k}")
        time.sleep(0.01)
    tick(2)
    return os.getpid(), torch.get_num_threads()


def test_workers_run_at_once_with_this_process_threads_and_report_progress(
        tmp_path: Path) -> None:
    saved = torch.get_num_threads()
    torch.set_num_threads(1 if saved > 1 else 2)
    want = torch.get_num_threads()
    ticks: list[tuple[int, int]] = []
    try:
        got = dict(run_jobs(meet, [(k, str(tmp_path)) for k in (0, 1)], 2,
                            lambda k, done: ticks.append((k, done))))
    finally:
        torch.set_num_threads(saved)
    assert not any(isinstance(r, JobError) for r in got.values()), got
    assert got[0][0] != got[1][0] and os.getpid() not in (got[0][0], got[1][0])
    assert got[0][1] == got[1][1] == want
    for k in (0, 1):  # each job's start report came through, then its progress in order
        seen = [d for j, d in ticks if j == k]
        assert seen[0] == 0 and seen == sorted(seen) and set(seen) <= {0, 1, 2}


def test_serial_ticks_start_at_zero_and_workers_must_be_positive() -> None:
    ticks: list[tuple[int, int]] = []
    assert [k for k, _ in run_jobs(square_after, [(2, 0.0), (3, 0.0)], 1,
                                   lambda k, d: ticks.append((k, d)))] == [0, 1]
    assert ticks == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1), (1, 2), (1, 3)]
    with pytest.raises(ValueError, match="workers must be at least 1"):
        list(run_jobs(square_after, [(2, 0.0)], 0))


def test_a_worker_killed_under_its_job_fails_that_job_alone() -> None:
    t0 = time.monotonic()
    got = dict(run_jobs(square_after, [(x, 0.3) for x in (2, -9, 3, 4)], 2))
    assert sorted(got) == [0, 1, 2, 3]
    assert [got[k][0] for k in (0, 2, 3)] == [4, 9, 16]
    assert isinstance(got[1], JobError)
    assert str(got[1]).startswith("WorkerDied: the worker process (pid ")
    assert "running job 1 ended without its result" in str(got[1])
    assert time.monotonic() - t0 < 60  # found, not waited for
