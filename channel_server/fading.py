"""Small-scale Rayleigh fading processes, complex ``g`` with ``E|g|^2 = 1``.

Every process has the same tiny interface: ``.state`` (the current ``g``, complex,
the given shape) and ``.step() -> g`` (advance one slot and return the new ``g``).

* :class:`GaussMarkovFading`: ``g[n+1] = rho g[n] + sqrt(1 - rho^2) w``, ``w ~ CN(0, 1)``;
  lag-k correlation ``rho^k``. With ``rho = J0(2 pi f_d T)`` it matches Jakes' lag-1
  correlation (Nasir & Guo). ``rho = 0`` is paper 001's i.i.d. fading.
* :class:`JakesFading`: sum of sinusoids (Zheng & Xiao, 2003) with random arrival
  angles and phases; its ensemble autocorrelation is ``J0(2 pi f_d k T)`` at lag k.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
import numpy.typing as npt

from channel_server.config import RadioConfig

ComplexArray = npt.NDArray[np.complex128]
Array = npt.NDArray[np.float64]


class Fading(Protocol):
    """A small-scale fading process advanced once per slot."""

    @property
    def state(self) -> ComplexArray:
        """The current complex fading coefficients."""
        ...

    def step(self) -> ComplexArray:
        """Advance one slot and return the new coefficients."""
        ...


def complex_normal(rng: np.random.Generator, shape: tuple[int, ...]) -> ComplexArray:
    """Samples of CN(0, 1): independent real and imaginary parts of variance 1/2."""
    z = rng.standard_normal((2, *shape))
    out: ComplexArray = (z[0] + 1j * z[1]) * math.sqrt(0.5)
    return out


class GaussMarkovFading:
    """First-order Gauss-Markov (AR(1)) complex Gaussian fading."""

    def __init__(self, shape: tuple[int, ...], rho: float, rng: np.random.Generator) -> None:
        if not -1.0 <= rho <= 1.0:
            raise ValueError(f"rho must be in [-1, 1], got {rho}")
        self.shape = tuple(shape)
        self.rho = float(rho)
        self._rng = rng
        self._innovation = math.sqrt(1.0 - self.rho**2)
        self._g = complex_normal(rng, self.shape)

    @property
    def state(self) -> ComplexArray:
        return self._g

    def step(self) -> ComplexArray:
        w = complex_normal(self._rng, self.shape)
        self._g = self.rho * self._g + self._innovation * w
        return self._g


class IidFading(GaussMarkovFading):
    """Independent CN(0, 1) fading every slot (paper 001): Gauss-Markov with rho = 0."""

    def __init__(self, shape: tuple[int, ...], rng: np.random.Generator) -> None:
        super().__init__(shape, 0.0, rng)


class JakesFading:
    """Sum-of-sinusoids Rayleigh fading with a Jakes (J0) autocorrelation.

    Zheng & Xiao's model: for each link and each of M paths n, angle
    ``alpha_n = (2 pi n - pi + theta) / (4 M)``, phases ``psi_n``, ``phi_n`` and ``theta``
    uniform on [-pi, pi)::

        g(t) = sqrt(2 / M) sum_n exp(j psi_n) cos(2 pi f_d t cos(alpha_n) + phi_n)

    so ``E|g|^2 = 1`` and ``E[g(t + tau) g*(t)] = J0(2 pi f_d tau)`` for any M (the
    ``alpha_n`` of one link cover [0, pi/2) evenly once theta is averaged over).
    """

    def __init__(
        self,
        shape: tuple[int, ...],
        doppler_hz: float,
        slot_s: float,
        n_paths: int,
        rng: np.random.Generator,
    ) -> None:
        if n_paths < 1:
            raise ValueError("n_paths must be >= 1")
        self.shape = tuple(shape)
        self.doppler_hz = float(doppler_hz)
        self.slot_s = float(slot_s)
        self.n_paths = int(n_paths)
        m = self.n_paths
        full = (*self.shape, m)
        theta = rng.uniform(-math.pi, math.pi, (*self.shape, 1))
        n = np.arange(1, m + 1, dtype=np.float64)
        alpha = (2.0 * math.pi * n - math.pi + theta) / (4.0 * m)
        # phase advance of each sinusoid per slot, radians
        self._omega_slot: Array = 2.0 * math.pi * self.doppler_hz * self.slot_s * np.cos(alpha)
        self._phi: Array = rng.uniform(-math.pi, math.pi, full)
        psi = rng.uniform(-math.pi, math.pi, full)
        self._weights: ComplexArray = np.exp(1j * psi) * math.sqrt(2.0 / m)
        self.slot = 0
        self._g = self._at(0)

    def _at(self, slot: int) -> ComplexArray:
        c = np.cos(self._omega_slot * float(slot) + self._phi)
        out: ComplexArray = np.einsum("...m,...m->...", self._weights, c)
        return out

    @property
    def state(self) -> ComplexArray:
        return self._g

    def step(self) -> ComplexArray:
        self.slot += 1
        self._g = self._at(self.slot)
        return self._g


def make_fading(radio: RadioConfig, shape: tuple[int, ...], rng: np.random.Generator) -> Fading:
    """The fading process named by ``radio.fading``, for links of ``shape``."""
    if radio.fading == "iid":
        return IidFading(shape, rng)
    if radio.fading == "gauss-markov":
        return GaussMarkovFading(shape, radio.rho, rng)
    if radio.fading == "jakes":
        return JakesFading(shape, radio.doppler_hz, radio.slot_s, radio.jakes_paths, rng)
    raise ValueError(f"unknown fading {radio.fading!r}")
