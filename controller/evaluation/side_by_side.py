"""Independent jobs side by side: in this process one after another, or in spawned worker
processes, with their progress, results as each finishes, and failures that stop nothing
else.

A job is ``fn(*args, tick=tick)`` with ``fn`` a module-level function and its ``args``
picklable (a worker is a fresh interpreter: ``spawn``, never ``fork``, so no thread or
socket of this process is copied into it). ``tick(done)`` reports the job's progress (any
count: slots, steps); in a worker it reaches this process at most every ``TICK_S``.

A worker loads the run's plug-ins (``$RRMBED_PLUGINS``, as every rrmbed process does), so
its registries are this process's. Where torch is already loaded here, every worker sets
torch's thread count to this process's, so a worker computes what this process would have
(a different thread count may sum a matrix product in another order). A worker ignores
Ctrl-C: this process takes it, and the pool is then terminated.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any

from protocols.plugins import load_plugins

TICK_S = 0.2
"""Shortest time between two progress reports of one job from a worker, seconds."""
WAIT_S = 0.25
"""How often this process looks at the workers' progress while it waits, seconds."""

Tick = Callable[[int], None]


class JobError(Exception):
    """A job raised: the text names its exception and holds its traceback."""


def run_jobs(fn: Callable[..., Any], args: Sequence[tuple[Any, ...]], workers: int = 1,
             tick: Callable[[int, int], None] = lambda k, done: None,
             ) -> Iterator[tuple[int, Any]]:
    """``(k, fn(*args[k], tick=...))`` for every job k as it finishes; a job that raised
    gives a :class:`JobError` in place of its result, and the others carry on.
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
    ticks: mp.Queue[tuple[int, int]] = ctx.Queue()
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else None
    with ctx.Pool(min(workers, max(len(args), 1)), initializer=_start,
                  initargs=(ticks, threads)) as pool:  # leaving it terminates the workers
        results = pool.imap_unordered(_job, [(k, fn, a) for k, a in enumerate(args)])
        left = len(args)
        while left:
            try:
                k, outcome = results.next(WAIT_S)
            except mp.TimeoutError:
                _drain(ticks, tick)
                continue
            _drain(ticks, tick)
            left -= 1
            yield k, outcome


def _guarded(fn: Callable[..., Any], args: tuple[Any, ...], tick: Tick) -> Any:
    try:
        return fn(*args, tick=tick)
    except Exception as e:
        return JobError(f"{type(e).__name__}: {e}\n{traceback.format_exc()}")


def _drain(ticks: mp.Queue[tuple[int, int]], tick: Callable[[int, int], None]) -> None:
    while True:
        try:
            k, done = ticks.get_nowait()
        except queue.Empty:
            return
        tick(k, done)


_TICKS: mp.Queue[tuple[int, int]] | None = None
"""In a worker: where its jobs' progress goes."""


def _start(ticks: mp.Queue[tuple[int, int]], threads: int | None) -> None:
    global _TICKS
    _TICKS = ticks
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    load_plugins()
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def _job(task: tuple[int, Callable[..., Any], tuple[Any, ...]]) -> tuple[int, Any]:
    k, fn, args = task
    last = -TICK_S

    def tick(done: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= TICK_S and _TICKS is not None:
            last = now
            _TICKS.put((k, done))

    return k, _guarded(fn, args, tick)
