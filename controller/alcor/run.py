"""ALCOR and its baselines over a stream of slots, in one process.

One slot = one time instant = one channel realization (the paper's samples). ALCOR spends
its slots in batches: iteration k draws B USVs from ``kappa^k`` for B consecutive slots,
runs the URA on the active users of each (5) and averages ``u_min - R`` (8); the
extragradient update uses two such batches per iteration (2B slots), the simple one one.
Every slot's rates are recorded, so what a user gets over time is what it would see live.

Demands are read at the first slot of each iteration (a change takes effect at the next
iteration boundary; the study puts phase boundaries on iteration boundaries), and a change
restarts the iteration per ``AlcorConfig.restart``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from channel_server.demands import DemandSchedule
from channel_server.interference import sum_rates
from controller.alcor.channels import GainStream
from node.alcor import (
    AlcorConfig,
    AlcorState,
    Allocator,
    MaxExchange,
    distributed_step,
    exact_max,
    initial_state,
    restarted,
    sample_usv,
    simple_step,
    state_from,
    step,
    ura_on_active,
    users_from,
)

Array = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

Progress = Callable[[int], None]
"""Called with the slots done so far."""


@dataclass(frozen=True)
class Trace:
    """What a method did, slot by slot."""

    rates: Array
    """``(T, K)`` per-user rates, bit/s/Hz (0 for a user switched off)."""
    active: BoolArray
    """``(T, K)``: the USV of every slot (all True for methods without time sharing)."""
    lam: Array
    """``(I, K)``: lambda after every iteration (empty for methods without one)."""
    kappa: Array
    """``(I, K)``: kappa after every iteration."""
    iter_slots: IntArray
    """``(I,)``: first slot of every iteration."""
    wall_s: float
    """Wall time of the whole run, seconds."""

    @property
    def slots(self) -> int:
        return len(self.rates)


def batch_rates(stream: GainStream, allocator: Allocator, start: int, n: int,
                active: BoolArray, ura_rng: np.random.Generator | None) -> Array:
    """Rates ``(n, K)`` of slots ``start ..`` with the URA on the active users."""
    g = stream.take(start, n)
    p = ura_on_active(allocator, g, active, stream.scenario, ura_rng)
    out: Array = sum_rates(g, p, stream.scenario.radio.noise_w)
    return out


def run_alcor(stream: GainStream, schedule: DemandSchedule, allocator: Allocator,
              total_slots: int, cfg: AlcorConfig, rng: np.random.Generator,
              ura_rng: np.random.Generator | None = None, distributed: bool = False,
              max_exchange: MaxExchange = exact_max, lam0: Array | None = None,
              progress: Progress | None = None) -> Trace:
    """ALCOR over ``allocator`` for the whole iterations that fit in ``total_slots``.

    ``rng`` draws the USVs (one uniform per user and slot), ``ura_rng`` is handed to the
    allocator. ``distributed``: every user runs its own scalar iteration
    (:func:`node.alcor.distributed_step`) and learns the normaliser from
    ``max_exchange``; with the exact max it is the centralized run, slot for slot.
    """
    k, b = schedule.n_users, cfg.batch
    spi = cfg.slots_per_iteration
    n_iter = total_slots // spi
    t_total = n_iter * spi
    rates = np.zeros((t_total, k))
    active = np.zeros((t_total, k), dtype=bool)
    lams, kappas, starts = np.zeros((n_iter, k)), np.zeros((n_iter, k)), np.zeros(n_iter, int)
    state: AlcorState = initial_state(k, cfg.c, lam0)
    u_prev: Array | None = None
    t0 = time.perf_counter()
    for it in range(n_iter):
        t = it * spi
        u = schedule.at(t)
        if u_prev is not None and not np.array_equal(u, u_prev):
            state = restarted(state, cfg)
        u_prev = u
        f = []
        for j in range(spi // b):
            xi = sample_usv(state.kappa, b, rng)
            r = batch_rates(stream, allocator, t + j * b, b, xi, ura_rng)
            rates[t + j * b: t + (j + 1) * b], active[t + j * b: t + (j + 1) * b] = r, xi
            f.append((u[None, :] - r).mean(axis=0))
        if distributed:
            users = distributed_step(users_from(state), f[0], f[1] if len(f) > 1 else None,
                                     cfg, max_exchange)
            state = state_from(users)
        elif cfg.update == "simple":
            state = simple_step(state, f[0], cfg)
        else:
            state = step(state, f[0], f[1], cfg)
        lams[it], kappas[it], starts[it] = state.lam, state.kappa, t
        if progress is not None:
            progress(t + spi)
    return Trace(rates, active, lams, kappas, starts, time.perf_counter() - t0)


PowerFn = Callable[[Array], Array]
"""Gains ``(n, K, K)`` -> powers ``(n, K)`` in watts, every user on."""


def run_fixed(stream: GainStream, power_fn: PowerFn, total_slots: int, chunk: int = 50,
              progress: Progress | None = None) -> Trace:
    """A method without time sharing (the URA alone, a trained DNN) on the same slots."""
    k = stream.scenario.k
    rates = np.zeros((total_slots, k))
    t0 = time.perf_counter()
    for t in range(0, total_slots, chunk):
        n = min(chunk, total_slots - t)
        g = stream.take(t, n)
        rates[t: t + n] = sum_rates(g, power_fn(g), stream.scenario.radio.noise_w)
        if progress is not None:
            progress(t + n)
    empty = np.zeros((0, k))
    return Trace(rates, np.ones((total_slots, k), dtype=bool), empty, empty,
                 np.zeros(0, dtype=np.int64), time.perf_counter() - t0)


def allocator_power_fn(allocator: Allocator, scenario: Any,
                       rng: np.random.Generator | None = None) -> PowerFn:
    """The URA alone: every user on, every slot."""
    def powers(g: Array) -> Array:
        out: Array = np.asarray(allocator(g, scenario, rng), dtype=np.float64)
        return out

    return powers
