"""Slot-indexed channel gains for the ALCOR study: the same slot gives the same gains to
every method, however each method walks through the slots.

Gains are ``(n, K, K)`` with ``G[n, j, i]`` = power gain transmitter j -> receiver i
(:mod:`channel_server.interference`'s layout). A stream draws blocks of ``block`` slots,
block b from its own generator ``rng_for(seed, "alcor", form, purpose, b)``, so ``take(t, n)``
depends only on the seed and the slots asked for (``purpose``: "run" for the evaluated slots,
another name, e.g. "train", for an independent training set).

* :class:`GaussianStream`: ``h_ij ~ CN(0, 1)`` independent per slot (the paper reports
  i.i.d. samples, Section IV), ``Pmax = 1`` and ``sigma^2 = 10^(-SNR/10)``: the
  interference kind's Gaussian form.
* :class:`SevenCellStream`: Section IV-B. Transmitters at the centres of 7 hexagonal cells
  (pointy-top, circumradius ``radius_m``, centres ``sqrt(3) radius_m`` apart; no
  wraparound), link i in cell ``i mod 7``; each receiver uniform in its cell's hexagon at
  least ``min_distance_m`` from the centre, so 50..500 m away with the defaults. Gain
  ``|h_ji|^2 = |g_ji|^2 / 10^(PL(d_ji) / 10)``, ``PL = 120.9 + 37.6 log10(d / 1 km)`` dB,
  ``g ~ CN(0, 1)`` new every slot; the receivers (so the pathloss) are redrawn every
  ``slow_factor`` slots (large-scale fading 50 times slower than small-scale). Noise
  -114 dBm, Pmax 38 dBm. *Choices* (the paper gives none): the hexagon as "the cell", links
  spread over the cells in turn, no shadowing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from channel_server.fading import complex_normal
from channel_server.geometry import cell_centers, sample_in_hexagon
from channel_server.interference import IcScenario, ic_scenario_from_dict
from protocols.seeding import rng_for

Array = npt.NDArray[np.float64]


class GainStream(Protocol):
    """Gains by slot, and the scenario the allocators read Pmax and the noise from."""

    scenario: IcScenario

    def take(self, start: int, n: int) -> Array:
        """Gains of slots ``start .. start + n - 1``, ``(n, K, K)``."""
        ...


class _Blocks:
    """Gains cached by block; subclasses draw one block."""

    block = 50

    def __init__(self) -> None:
        self._cache: dict[int, Array] = {}

    def _draw(self, b: int) -> Array:
        raise NotImplementedError

    def _get(self, b: int) -> Array:
        if b not in self._cache:
            if len(self._cache) > 8:
                self._cache.pop(min(self._cache))
            self._cache[b] = self._draw(b)
        return self._cache[b]

    def take(self, start: int, n: int) -> Array:
        if n <= 0:
            raise ValueError("take at least one slot")
        first, last = start // self.block, (start + n - 1) // self.block
        joined = np.concatenate([self._get(b) for b in range(first, last + 1)])
        out: Array = joined[start - first * self.block: start - first * self.block + n]
        return out


def gaussian_scenario(n_users: int, snr_db: float) -> IcScenario:
    """The interference kind's Gaussian form with N links at ``snr_db`` (Pmax = 1 W)."""
    return ic_scenario_from_dict({"name": f"alcor-gaussian-n{n_users}",
                                  "radio": {"form": "gaussian", "n_links": n_users,
                                            "snr_db": float(snr_db)},
                                  "channel": {"fading": "iid"}})


class GaussianStream(_Blocks):
    """``G[j, i] = |h_ji|^2``, ``h ~ CN(0, 1)`` i.i.d. over slots."""

    def __init__(self, n_users: int, snr_db: float, seed: int, purpose: str = "run") -> None:
        super().__init__()
        self.scenario = gaussian_scenario(n_users, snr_db)
        self.seed, self.k, self.purpose = seed, n_users, purpose

    def _draw(self, b: int) -> Array:
        rng = rng_for(self.seed, "alcor", "gaussian", self.purpose, b)
        h = complex_normal(rng, (self.block, self.k, self.k))
        out: Array = np.abs(h) ** 2
        return out


@dataclass(frozen=True)
class SevenCellConfig:
    """The 7-cell setting of Section IV-B."""

    n_users: int = 21
    """N links (transmitter-receiver pairs), spread over the 7 cells in turn."""
    radius_m: float = 500.0
    """Cell circumradius, metres: the farthest a receiver can be from its transmitter."""
    min_distance_m: float = 50.0
    """Closest a receiver can be to its transmitter, metres."""
    noise_dbm: float = -114.0
    """Noise power at every receiver, dBm."""
    pmax_dbm: float = 38.0
    """Largest transmit power, dBm."""
    pl_intercept_db: float = 120.9
    """Pathloss at 1 km, dB."""
    pl_slope_db: float = 37.6
    """Pathloss per decade of distance, dB."""
    slow_factor: int = 50
    """Slots per drop of the receivers (large-scale fading this many times slower)."""

    def __post_init__(self) -> None:
        if self.n_users < 1 or self.slow_factor < 1:
            raise ValueError("n_users and slow_factor must be >= 1")
        if not 0 < self.min_distance_m < self.radius_m:
            raise ValueError("need 0 < min_distance_m < radius_m")


def seven_cell_scenario(cfg: SevenCellConfig) -> IcScenario:
    """An interference-kind scenario whose Pmax and noise are the 7-cell setting's, for the
    allocators: the geometric form with 10 MHz and the noise density that makes -114 dBm
    over it (rates are per Hz, so the bandwidth is only bookkeeping)."""
    bw = 10e6
    return ic_scenario_from_dict({"name": f"alcor-7cell-n{cfg.n_users}",
                                  "radio": {"form": "geometric", "n_links": cfg.n_users,
                                            "pmax_dbm": cfg.pmax_dbm, "bandwidth_hz": bw,
                                            "noise_psd_dbm_hz": cfg.noise_dbm
                                            - 10.0 * math.log10(bw)},
                                  "channel": {"fading": "iid"}})


def seven_cell_pathloss_db(distance_m: Array, cfg: SevenCellConfig) -> Array:
    """``120.9 + 37.6 log10(d / 1 km)`` dB."""
    out: Array = cfg.pl_intercept_db + cfg.pl_slope_db * np.log10(
        np.asarray(distance_m, dtype=np.float64) / 1000.0)
    return out


def seven_cell_drop(cfg: SevenCellConfig, rng: np.random.Generator) -> tuple[Array, Array]:
    """Transmitter and receiver positions ``(N, 2)``, metres."""
    centres = cell_centers("7cell-wrap", cfg.radius_m)
    tx = centres[np.arange(cfg.n_users) % len(centres)]
    rx = tx + sample_in_hexagon(rng, (cfg.n_users,), cfg.radius_m, cfg.min_distance_m)
    return tx, rx


class SevenCellStream(_Blocks):
    """The 7-cell gains: one drop per ``slow_factor`` slots, Rayleigh fading per slot."""

    def __init__(self, cfg: SevenCellConfig, seed: int, purpose: str = "run") -> None:
        super().__init__()
        self.cfg, self.seed, self.purpose = cfg, seed, purpose
        self.block = cfg.slow_factor
        self.scenario = seven_cell_scenario(cfg)

    def mean_gains(self, b: int) -> Array:
        """Pathloss gains ``(N, N)`` of drop b (``[j, i]``: tx j -> rx i)."""
        rng = rng_for(self.seed, "alcor", "7cell-drop", self.purpose, b)
        tx, rx = seven_cell_drop(self.cfg, rng)
        d = np.linalg.norm(tx[:, None, :] - rx[None, :, :], axis=-1)
        out: Array = 10.0 ** (-seven_cell_pathloss_db(d, self.cfg) / 10.0)
        return out

    def _draw(self, b: int) -> Array:
        n = self.cfg.n_users
        rng = rng_for(self.seed, "alcor", "7cell-fading", self.purpose, b)
        g = complex_normal(rng, (self.block, n, n))
        out: Array = self.mean_gains(b)[None] * np.abs(g) ** 2
        return out
