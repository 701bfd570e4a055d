"""Seed sweeps: one job per seed, in this process one after the other, or as Ray tasks.

A job is a picklable callable ``job(seed) -> result`` (a module-level function bound with
:func:`functools.partial`) whose result depends on the seed and its arguments only (every
random stream of a seed comes from ``protocols.seeding.rng_for(seed, ...)`` and torch runs
with a fixed thread count), so both backends give the same results, bit for bit.

With ``backend = "ray"`` each seed is a Ray task (``max_retries=0``: retries are ours, so
we can say so): on a local Ray instance started here and shut down at the end, or on an
existing cluster (``address``, e.g. ``"auto"`` or ``"ray://head:10001"``), which is left
running. A task whose worker process dies (killed, out of memory, its node lost) is run
again from scratch, up to ``retries`` more times, and :func:`sweep` reports each retry
through ``say``; other failures (an exception inside the job) end the sweep with the job's
error. Each task writes its worker's process id to ``pid_dir/seed-<s>.pid`` when
``pid_dir`` is given (what a person or a test reads to find, or kill, a seed's worker).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

T = TypeVar("T")

Backend = Literal["serial", "ray"]
BACKENDS: tuple[Backend, ...] = ("serial", "ray")


@dataclass(frozen=True)
class SweepConfig:
    """Where a sweep's seeds run."""

    backend: Backend = "serial"
    """``serial``: in this process, in order; ``ray``: one Ray task per seed."""
    address: str | None = None
    """Ray: an existing cluster's address; None starts a local instance for the sweep."""
    retries: int = 2
    """Ray: times a seed whose worker was lost is run again before the sweep fails."""
    num_cpus: int | None = None
    """Ray, local instance: CPUs it may use (None: all of this machine's)."""

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; choose from {BACKENDS}")
        if self.retries < 0:
            raise ValueError("retries must be >= 0")


def _run(job: Callable[[int], T], seed: int, pid_dir: str | None) -> T:
    """A Ray task: note the worker's pid, run the seed."""
    if pid_dir is not None:
        Path(pid_dir).mkdir(parents=True, exist_ok=True)
        Path(pid_dir, f"seed-{seed}.pid").write_text(f"{os.getpid()}\n")
    return job(seed)


def sweep(job: Callable[[int], T], seeds: Sequence[int], cfg: SweepConfig = SweepConfig(),
          *, say: Callable[[str], None] = print, on_done: Callable[[int, T], None] | None = None,
          pid_dir: Path | None = None) -> list[T]:
    """``job(seed)`` for every seed; the results in the order of ``seeds``. ``on_done`` is
    called in the driver as each seed finishes (in finishing order under Ray)."""
    seeds = [int(s) for s in seeds]
    if cfg.backend == "serial":
        out = []
        for s in seeds:
            out.append(job(s))
            if on_done is not None:
                on_done(s, out[-1])
        return out
    return _ray_sweep(job, seeds, cfg, say, on_done, pid_dir)


def _ray_sweep(job: Callable[[int], T], seeds: list[int], cfg: SweepConfig,
               say: Callable[[str], None], on_done: Callable[[int, T], None] | None,
               pid_dir: Path | None) -> list[T]:
    try:
        import ray
        from ray.exceptions import NodeDiedError, WorkerCrashedError
    except ImportError as e:  # the optional extra
        raise RuntimeError("--backend ray needs the 'ray' extra: pip install 'rrmbed[ray]'") \
            from e
    lost: tuple[type[BaseException], ...] = (WorkerCrashedError, NodeDiedError)
    started = not ray.is_initialized()
    if started:
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                  "logging_level": logging.WARNING}
        if cfg.address is None and cfg.num_cpus is not None:
            kwargs["num_cpus"] = cfg.num_cpus
        ray.init(address=cfg.address, **kwargs)
    try:
        task: Any = ray.remote(max_retries=0)(_run)
        where = None if pid_dir is None else str(pid_dir)
        pending = {task.remote(job, s, where): (s, 1) for s in seeds}
        done: dict[int, T] = {}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            seed, attempt = pending.pop(ready[0])
            try:
                done[seed] = ray.get(ready[0])
            except lost as e:
                if attempt > cfg.retries:
                    raise RuntimeError(f"seed {seed}: its Ray worker was lost {attempt} times "
                                       f"({type(e).__name__}); giving up") from e
                say(f"seed {seed}: its Ray worker was lost ({type(e).__name__}); running the "
                    f"seed again (attempt {attempt + 1} of {cfg.retries + 1})")
                pending[task.remote(job, seed, where)] = (seed, attempt + 1)
                continue
            if on_done is not None:
                on_done(seed, done[seed])
        return [done[s] for s in seeds]
    finally:
        if started:
            ray.shutdown()
