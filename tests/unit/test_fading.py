"""Fading statistics against scipy's J0 and closed forms of complex Gaussians."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.special import j0

from channel_server.config import RadioConfig, load_scenario
from channel_server.fading import (
    GaussMarkovFading,
    IidFading,
    JakesFading,
    make_fading,
)

ROOT = Path(__file__).resolve().parents[2]


def radio_3cell(**changes: object) -> RadioConfig:
    radio = load_scenario(ROOT / "scenarios" / "3cell-k2.toml").radio
    return dataclasses.replace(radio, **changes)  # type: ignore[arg-type]


def run(fading: object, steps: int) -> np.ndarray:
    """Stack the initial state and ``steps`` further slots along axis 0."""
    out = [fading.state.copy()]  # type: ignore[attr-defined]
    for _ in range(steps):
        out.append(fading.step().copy())  # type: ignore[attr-defined]
    return np.stack(out)


def autocorr(g: np.ndarray, lag: int) -> complex:
    """Sample E[g(t + lag) g*(t)] over time (axis 0) and links, normalized by E|g|^2."""
    n = g.shape[0]
    num = np.mean(g[lag:] * np.conj(g[: n - lag]))
    return complex(num / np.mean(np.abs(g) ** 2))


def test_gauss_markov_from_scenario_matches_j0_and_powers() -> None:
    radio = radio_3cell()
    assert radio.fading == "gauss-markov"
    fd_t = radio.doppler_hz * radio.slot_s  # 10 Hz * 20 ms = 0.2
    rho = float(j0(2 * math.pi * fd_t))
    assert rho == pytest.approx(0.6425, abs=1e-3)  # Nasir & Guo's setting
    fading = make_fading(radio, (2000,), np.random.default_rng(1))
    g = run(fading, 99)  # 100 slots x 2000 links = 2e5 samples
    assert g.size >= 100_000
    assert autocorr(g, 1).real == pytest.approx(rho, abs=0.02)
    for k in range(2, 6):
        assert autocorr(g, k).real == pytest.approx(rho**k, abs=0.02)
    assert abs(autocorr(g, 1).imag) < 0.02
    assert np.mean(np.abs(g) ** 2) == pytest.approx(1.0, rel=0.01)


def test_gauss_markov_is_circular_rayleigh() -> None:
    g = run(GaussMarkovFading((5000,), 0.9, np.random.default_rng(2)), 40)
    # real and imaginary parts each of variance 1/2, uncorrelated
    assert np.var(g.real) == pytest.approx(0.5, rel=0.02)
    assert np.var(g.imag) == pytest.approx(0.5, rel=0.02)
    assert abs(np.mean(g.real * g.imag)) < 0.01
    # |g|^2 ~ Exp(1): P(|g|^2 > 1) = e^-1, P(|g|^2 > 3) = e^-3
    p = np.abs(g) ** 2
    assert np.mean(p > 1.0) == pytest.approx(math.exp(-1), abs=0.01)
    assert np.mean(p > 3.0) == pytest.approx(math.exp(-3), abs=0.005)


def test_iid_fading_is_uncorrelated_and_unit_power() -> None:
    radio = radio_3cell(fading="iid")
    assert radio.rho == 0.0
    fading = make_fading(radio, (1000,), np.random.default_rng(3))
    assert isinstance(fading, IidFading)
    g = run(fading, 199)
    for k in range(1, 4):
        assert abs(autocorr(g, k)) < 0.02
    assert np.mean(np.abs(g) ** 2) == pytest.approx(1.0, rel=0.01)


@pytest.mark.parametrize(("doppler_hz", "slot_s"), [(10.0, 0.02), (50.0, 0.001)])
def test_jakes_autocorrelation_follows_j0(doppler_hz: float, slot_s: float) -> None:
    fading = JakesFading((5000,), doppler_hz, slot_s, 16, np.random.default_rng(4))
    g = run(fading, 59)  # 60 slots x 5000 links = 3e5 samples
    for k in range(1, 6):
        expected = float(j0(2 * math.pi * doppler_hz * k * slot_s))
        r = autocorr(g, k)
        assert r.real == pytest.approx(expected, abs=0.03), k
        assert abs(r.imag) < 0.03
    assert np.mean(np.abs(g) ** 2) == pytest.approx(1.0, rel=0.01)


def test_jakes_from_scenario_and_envelope_near_rayleigh() -> None:
    radio = radio_3cell(fading="jakes", jakes_paths=16)
    fading = make_fading(radio, (4000,), np.random.default_rng(5))
    assert isinstance(fading, JakesFading)
    g = run(fading, 49)
    p = np.abs(g) ** 2
    assert np.mean(p) == pytest.approx(1.0, rel=0.01)
    assert np.mean(p > 1.0) == pytest.approx(math.exp(-1), abs=0.02)


def test_fading_is_reproducible_from_generator() -> None:
    for make in (
        lambda rng: GaussMarkovFading((3, 4), 0.5, rng),
        lambda rng: JakesFading((3, 4), 10.0, 0.02, 8, rng),
    ):
        a = run(make(np.random.default_rng(7)), 10)
        b = run(make(np.random.default_rng(7)), 10)
        c = run(make(np.random.default_rng(8)), 10)
        assert a.shape == (11, 3, 4)
        assert np.array_equal(a, b)
        assert not np.array_equal(a, c)


def test_gauss_markov_rejects_bad_rho() -> None:
    with pytest.raises(ValueError, match="rho"):
        GaussMarkovFading((2,), 1.5, np.random.default_rng(0))
