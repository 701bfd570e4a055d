"""Independent jobs side by side: in this process one after another, or in spawned worker
processes, with their progress, results as each finishes, and failures that stop nothing
else. (:mod:`controller.training.sweep` is the other way a command spreads its work: a
command's seeds in order or as Ray tasks, ending at the first failure, with the optional
``ray`` extra; this needs only the standard library.)

A job is ``fn(*args, tick=tick)`` with ``fn`` a module-level function and its ``args``
picklable (a worker is a fresh interpreter: ``spawn``, never ``fork``, so no thread or
socket of this process is copied into it). ``tick(done)`` reports the job's progress (any
count: slots, steps); in a worker it reaches this process at most every ``TICK_S``.

A worker loads the run's plug-ins (``$RRMBED_PLUGINS``, as every rrmbed process does), so
its registries are this process's. Where torch is already loaded here, every worker sets
torch's thread count to this process's, so a worker computes what this process would have
(a different thread count may sum a matrix product in another order). A worker ignores
Ctrl-C: this process takes it, and the pool is then terminated. A worker that dies under
its job (SIGKILL, out of memory) fails that job, found within ``2 * WAIT_S`` of its end;
the pool starts another worker for the jobs left.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any

from controller.deploy.tempdirs import process_start
from protocols.plugins import load_plugins

TICK_S = 0.2
"""Shortest time between two progress reports of one job from a worker, seconds."""
WAIT_S = 0.25
"""How often this process looks at the workers' progress while it waits, seconds."""

Tick = Callable[[int], None]
Worker = tuple[int, int | None]
"""A worker process: its pid and start time (:func:`controller.deploy.tempdirs.process_start`;
None where the OS has no /proc, and then a worker is never found gone)."""


class JobError(Exception):
    """A job raised: the text names its exception and holds its traceback."""


def run_jobs(fn: Callable[..., Any], args: Sequence[tuple[Any, ...]], workers: int = 1,
             tick: Callable[[int, int], None] = lambda k, done: None,
             ) -> Iterator[tuple[int, Any]]:
    """``(k, fn(*args[k], tick=...))`` for every job k as it finishes; a job that raised,
    or whose worker process died under it, gives a :class:`JobError` in place of its
    result, and the others carry on.
    ``workers`` 1: here, in order; more: that many worker processes, results in the order
    they finish. ``tick(k, done)``: job k's progress."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if workers == 1:
        for k, a in enumerate(args):
            tick(k, 0)
            yield k, _guarded(fn, a, partial(tick, k))
        return
    ctx = mp.get_context("spawn")
    ticks: mp.Queue[tuple[int, Worker, int]] = ctx.Queue()
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else None
    with ctx.Pool(min(workers, max(len(args), 1)), initializer=_start,
                  initargs=(ticks, threads)) as pool:  # leaving it terminates the workers
        results = pool.imap_unordered(_job, [(k, fn, a) for k, a in enumerate(args)])
        settled: set[int] = set()
        running: dict[Worker, int] = {}
        """Worker -> the job it runs (its last report)."""
        gone: set[Worker] = set()
        """Workers found gone at the last look (a result may still be on its way)."""
        while len(settled) < len(args):
            try:
                k, outcome = results.next(WAIT_S)
            except mp.TimeoutError:
                k = -1
            for j, worker, done in _drained(ticks):
                if j not in settled:
                    running[worker] = j
                    tick(j, done)
            if k >= 0:
                if k not in settled:
                    settled.add(k)
                    yield k, outcome
                continue
            for j, worker in _lost(running, gone, settled):
                settled.add(j)
                yield j, JobError(f"WorkerDied: the worker process (pid {worker[0]}) running "
                                  f"job {j} ended without its result (killed: out of memory, "
                                  "a signal?)")


def _lost(running: dict[Worker, int], gone: set[Worker], settled: set[int],
          ) -> list[tuple[int, Worker]]:
    """The jobs whose worker has been gone two looks in a row (their result never comes),
    taken out of ``running``; ``gone`` keeps the workers first found gone at this look."""
    lost = []
    for worker, j in list(running.items()):
        if j in settled:
            del running[worker]
        elif not _alive(worker):
            if worker in gone:
                del running[worker]
                lost.append((j, worker))
            gone.add(worker)
            continue
        gone.discard(worker)
    return lost


def _alive(worker: Worker) -> bool:
    """The worker's pid still runs the same process (a reused pid has another start time;
    a zombie has none)."""
    return process_start(worker[0]) == worker[1]


def _guarded(fn: Callable[..., Any], args: tuple[Any, ...], tick: Tick) -> Any:
    try:
        return fn(*args, tick=tick)
    except Exception as e:
        return JobError(f"{type(e).__name__}: {e}\n{traceback.format_exc()}")


def _drained(ticks: mp.Queue[tuple[int, Worker, int]]) -> list[tuple[int, Worker, int]]:
    """The progress reports ``(job, worker, done)`` waiting in ``ticks``."""
    got = []
    while True:
        try:
            got.append(ticks.get_nowait())
        except queue.Empty:
            return got


_TICKS: mp.Queue[tuple[int, Worker, int]] | None = None
"""In a worker: where its jobs' progress goes."""


def _start(ticks: mp.Queue[tuple[int, Worker, int]], threads: int | None) -> None:
    global _TICKS
    _TICKS = ticks
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    load_plugins()
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def _job(task: tuple[int, Callable[..., Any], tuple[Any, ...]]) -> tuple[int, Any]:
    k, fn, args = task
    pid = os.getpid()
    me: Worker = (pid, process_start(pid))  # pid and start time: a reused pid is not us
    last = time.monotonic()
    if _TICKS is not None:
        _TICKS.put((k, me, 0))  # the job has begun, in this process

    def tick(done: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= TICK_S and _TICKS is not None:
            last = now
            _TICKS.put((k, me, done))

    return k, _guarded(fn, args, tick)
