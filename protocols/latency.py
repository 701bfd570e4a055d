"""Link latency and loss models, compute-time clocks, chain accounting and clock modes.

Pure: no sockets, no sleeping. The transport asks a :class:`Clock` how long to hold a
message and does the waiting itself.

Chain accounting: a message carries ``chain_latency_s``, the emulated latency of the causal
chain that produced it. The receiver's chain is that plus the link's one-way latency
(:func:`after_link`); a decision adds its compute time (:func:`after_compute`); a decision
whose chain exceeds the slot deadline is a miss (:func:`is_miss`). A lost message has
latency ``math.inf`` and so is always a miss.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Final, Literal, Protocol

import numpy as np

LinkModelName = Literal["constant", "uniform", "lognormal"]
MODELS: Final[tuple[str, ...]] = ("constant", "uniform", "lognormal")


class LinkLatencyLike(Protocol):
    """Anything shaped like channel_server.config.LinkLatencyConfig."""

    @property
    def model(self) -> str: ...
    @property
    def latency_s(self) -> float: ...
    @property
    def jitter_s(self) -> float: ...
    @property
    def sigma(self) -> float: ...
    @property
    def loss_probability(self) -> float: ...


@dataclass(frozen=True)
class LinkParams:
    """Latency model of one link."""

    model: str = "constant"
    """'constant': latency_s; 'uniform': latency_s + U(0, jitter_s); 'lognormal': median
    latency_s, log-standard-deviation sigma."""
    latency_s: float = 0.001
    """Base (or median) one-way latency, seconds."""
    jitter_s: float = 0.0
    """Width of the uniform jitter, seconds."""
    sigma: float = 0.0
    """Log-standard-deviation of the lognormal model (dimensionless)."""
    loss_probability: float = 0.0
    """Probability that a message is lost, in [0, 1]."""

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"unknown latency model {self.model!r}; expected one of {MODELS}")
        for name in ("latency_s", "jitter_s", "sigma"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"{name} must be finite and >= 0, got {value}")
        if not 0.0 <= self.loss_probability <= 1.0:
            raise ValueError(f"loss_probability must be in [0, 1], got {self.loss_probability}")

    @classmethod
    def of(cls, cfg: LinkLatencyLike) -> LinkParams:
        """Parameters read from a config-like object (duck-typed)."""
        return cls(
            model=str(cfg.model),
            latency_s=float(cfg.latency_s),
            jitter_s=float(cfg.jitter_s),
            sigma=float(cfg.sigma),
            loss_probability=float(cfg.loss_probability),
        )


class LinkModel:
    """One link's latency/loss sampler, driven by its own Generator.

    Each :meth:`sample` draws, in order: one uniform for the loss test (only when
    loss_probability > 0), then the latency draw of the model (none for 'constant'), so the
    same seed gives the same sequence.
    """

    def __init__(self, params: LinkParams | LinkLatencyLike, rng: np.random.Generator) -> None:
        self.params = params if isinstance(params, LinkParams) else LinkParams.of(params)
        self.rng = rng

    def sample(self) -> float:
        """One-way latency of the next message, seconds; ``math.inf`` if it is lost."""
        p = self.params
        if p.loss_probability > 0.0 and self.rng.random() < p.loss_probability:
            return math.inf
        if p.model == "constant":
            return p.latency_s
        if p.model == "uniform":
            return p.latency_s + p.jitter_s * float(self.rng.random())
        return p.latency_s * math.exp(p.sigma * float(self.rng.standard_normal()))


class ComputeClock:
    """Compute time of a decision: 'fixed' returns ``compute_s`` (deterministic), 'measured'
    returns the perf_counter time elapsed since :meth:`start`."""

    def __init__(self, mode: Literal["fixed", "measured"], compute_s: float = 0.0) -> None:
        if mode not in ("fixed", "measured"):
            raise ValueError(f"compute mode must be 'fixed' or 'measured', got {mode!r}")
        if not (math.isfinite(compute_s) and compute_s >= 0.0):
            raise ValueError(f"compute_s must be finite and >= 0, got {compute_s}")
        self.mode = mode
        self.compute_s = compute_s

    def start(self) -> float:
        """A start mark to pass to :meth:`elapsed`."""
        return time.perf_counter()

    def elapsed(self, start: float) -> float:
        """Compute time since ``start``, seconds (the model's value in 'fixed' mode)."""
        if self.mode == "fixed":
            return self.compute_s
        return time.perf_counter() - start


def after_link(chain_latency_s: float, link_latency_s: float) -> float:
    """Chain latency on arrival: the message's chain plus the link latency (inf if lost)."""
    return chain_latency_s + link_latency_s


def after_compute(chain_latency_s: float, compute_s: float) -> float:
    """Chain latency after a decision that took ``compute_s``."""
    return chain_latency_s + compute_s


def is_miss(chain_latency_s: float, deadline_s: float) -> bool:
    """A decision misses when its chain latency exceeds the deadline (lost: always)."""
    return not chain_latency_s <= deadline_s


class Clock(Protocol):
    """Clock mode: how long the transport holds a received message."""

    mode: str

    def hold_s(self, sent_ns: int, latency_s: float, now_ns: int) -> float:
        """Seconds to hold a message sent at ``sent_ns`` over a link of ``latency_s``, at
        wall time ``now_ns`` (ns since the epoch)."""
        ...


class FastClock:
    """'fast': never sleep; latency is only accounted in the chain."""

    mode: str = "fast"

    def hold_s(self, sent_ns: int, latency_s: float, now_ns: int) -> float:
        return 0.0


class RealtimeClock:
    """'realtime': hold each message until ``latency_s`` has elapsed since it was sent, and
    never longer than ``latency_s``: a message stamped in the future (a skewed clock, a
    forged header) must not be held for as long as its stamp says."""

    mode: str = "realtime"

    def hold_s(self, sent_ns: int, latency_s: float, now_ns: int) -> float:
        return min(latency_s, max(0.0, latency_s - (now_ns - sent_ns) * 1e-9))


def make_clock(mode: str) -> Clock:
    """The clock of a mode name ('fast' or 'realtime')."""
    if mode == "fast":
        return FastClock()
    if mode == "realtime":
        return RealtimeClock()
    raise ValueError(f"clock mode must be 'fast' or 'realtime', got {mode!r}")
