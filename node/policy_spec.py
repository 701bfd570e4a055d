"""What a policy is, without torch: its shape, how its raw output becomes a power
fraction, and how weights are stored (.npz of named float arrays, never pickled).

Processes that run no policy (channel server, max-power nodes) import only this.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from channel_server.config import RadioConfig
from protocols.seeding import rng_for
from protocols.weights import read_arrays

ActionMode = Literal["mean", "sample"]


@dataclass(frozen=True)
class PolicyConfig:
    """Shape and initialisation of a Gaussian MLP policy."""

    obs_dim: int
    """Length of the observation vector."""
    act_dim: int
    """Number of power fractions produced (users served by the deciding entity)."""
    hidden: tuple[int, ...] = (256, 256, 256)
    """Hidden layer widths (ELU between them)."""
    init_mean: float = 0.5
    """Initial output bias of the mean head (power fraction)."""
    init_log_std: float = -1.0
    """Initial state-independent log standard deviation (power fraction units)."""


def orthogonal(rng: np.random.Generator, rows: int, cols: int, gain: float) -> np.ndarray:
    """A ``(rows, cols)`` matrix with orthonormal rows or columns, times ``gain``: the QR
    of a standard normal draw with the signs of R's diagonal taken into Q (Saxe et al.
    2014; what ``torch.nn.init.orthogonal_`` does, from numpy's generator)."""
    flat = rng.standard_normal((rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))
    return gain * (q.T if rows < cols else q)


def initial_arrays(cfg: PolicyConfig, seed: int) -> dict[str, np.ndarray]:
    """The untrained weights of ``seed``, float64, named as the torch policy's state_dict
    (``mean_net.<l>.weight`` out x in, ``.bias``, ``log_std``): orthogonal layers (gain
    sqrt 2, the output layer 0.01) with zero biases, the mean head's bias ``init_mean``,
    the log-std ``init_log_std``. From ``rng_for(seed, "policy-init")`` in numpy, so that a
    node starts its policy without importing torch and every process starts the same."""
    rng = rng_for(seed, "policy-init")
    sizes = [cfg.obs_dim, *cfg.hidden, cfg.act_dim]
    out: dict[str, np.ndarray] = {"log_std": np.full(cfg.act_dim, cfg.init_log_std)}
    for i in range(len(sizes) - 1):
        last = i == len(sizes) - 2
        out[f"mean_net.{2 * i}.weight"] = orthogonal(rng, sizes[i + 1], sizes[i],
                                                     0.01 if last else float(np.sqrt(2.0)))
        out[f"mean_net.{2 * i}.bias"] = np.full(sizes[i + 1], cfg.init_mean if last else 0.0)
    return out


def check_fits(arrays: dict[str, np.ndarray], shapes: dict[str, tuple[int, ...]]) -> None:
    """ValueError naming what does not fit when ``arrays`` are not exactly the named
    arrays of ``shapes`` (missing, unexpected, or of another shape)."""
    if set(arrays) != set(shapes):
        missing, extra = sorted(set(shapes) - set(arrays)), sorted(set(arrays) - set(shapes))
        raise ValueError(f"weights do not fit the policy: missing {missing}, unexpected {extra}")
    wrong = [f"{k} {np.shape(v)} (expected {shapes[k]})" for k, v in sorted(arrays.items())
             if np.shape(v) != shapes[k]]
    if wrong:
        raise ValueError(f"weights do not fit the policy: {', '.join(wrong)}")


ActionMap = Literal["clip", "sigmoid", "log"]
LOG_MAP_SPAN_DB = 30.0
"""The ``log`` map's dB per unit of raw action: raw 1 is full power, raw 0 is -30 dB."""
LOG_MAP_FLOOR = 1e-9
"""The smallest fraction the ``log`` map's inverse reaches for (0 W: -90 dB)."""
SIGMOID_MAP_FLOOR = 1e-3
"""The ``sigmoid`` map's inverse takes fractions within [this, 1 - this] (raw +-6.9)."""


def power_fraction(raw: np.ndarray, how: str = "clip") -> np.ndarray:
    """A raw Gaussian action as a feasible power fraction in [0, 1] (``radio.action_map``):

    * ``clip``: ``clip(raw, 0, 1)``: what paper 001's clipped Gaussian reads as;
    * ``sigmoid``: ``1 / (1 + exp(-raw))``, a squashed Gaussian (never exactly 0 or 1);
    * ``log``: ``10^(3 (raw - 1))`` up to 1, a log-power: raw 0..1 spans -30..0 dB.
    """
    if how == "clip":
        clipped: np.ndarray = np.clip(raw, 0.0, 1.0)
        return clipped
    if how == "sigmoid":
        out: np.ndarray = 0.5 * (1.0 + np.tanh(0.5 * np.asarray(raw)))  # no overflow
        return out
    if how == "log":
        db = LOG_MAP_SPAN_DB * (np.minimum(raw, 1.0) - 1.0)
        frac: np.ndarray = np.power(10.0, db / 10.0)
        return frac
    raise ValueError(f"unknown action map {how!r}; known: clip, sigmoid, log")


POLICY_VIEW = ("action_map", "feature_center_db", "feature_scale_db")
"""The scenario fields (of :class:`channel_server.config.RadioConfig`) that say how a policy
sees its gains and how its raw action becomes a power: weights trained under one setting
act wrongly under another, so the weights header records them (:func:`policy_view`)."""


def policy_view(radio: RadioConfig) -> dict[str, Any]:
    """The :data:`POLICY_VIEW` fields of ``radio``, for a weights file's header."""
    return {k: getattr(radio, k) for k in POLICY_VIEW}


def check_policy_view(facts: dict[str, Any], radio: RadioConfig) -> None:
    """Raise ValueError naming each :data:`POLICY_VIEW` field that the weights (``facts``:
    their header) were trained with otherwise than ``radio`` says. A file that does not say
    was trained with the fields' defaults (files from before they existed)."""
    defaults = {f.name: f.default for f in dataclasses.fields(RadioConfig)}
    trained = {k: facts.get(k, defaults[k]) for k in POLICY_VIEW}
    wrong = [f"radio.{k} = {v!r} in training, {getattr(radio, k)!r} here"
             for k, v in trained.items() if v != getattr(radio, k)]
    if wrong:
        raise ValueError("the policy was trained with another view of the radio: "
                         + "; ".join(wrong) + " (run it as trained with --set radio.KEY=VALUE)")


def raw_action(fraction: np.ndarray, how: str = "clip") -> np.ndarray:
    """The raw action that :func:`power_fraction` maps to ``fraction`` (the imitation
    warm start's targets); fractions the map cannot reach are taken at its nearest reach
    (0 W: -90 dB for ``log``, 0.001 from 0 or 1 for ``sigmoid``)."""
    f = np.asarray(fraction, dtype=np.float64)
    if how == "clip":
        return np.clip(f, 0.0, 1.0)
    if how == "sigmoid":
        f = np.clip(f, SIGMOID_MAP_FLOOR, 1.0 - SIGMOID_MAP_FLOOR)
        out: np.ndarray = np.log(f / (1.0 - f))
        return out
    if how == "log":
        return 1.0 + 10.0 * np.log10(np.clip(f, LOG_MAP_FLOOR, 1.0)) / LOG_MAP_SPAN_DB
    raise ValueError(f"unknown action map {how!r}; known: clip, sigmoid, log")


def fit_bs_budget(fractions: np.ndarray) -> np.ndarray:
    """The sum-power rule (one budget of Pmax per BS): ``a_bk / max(1, sum_k a_bk)`` over a
    BS's K fractions (last axis)."""
    total = fractions.sum(axis=-1, keepdims=True)
    out: np.ndarray = fractions / np.maximum(total, 1.0)
    return out


def read_weights(path: str | Path) -> dict[str, np.ndarray]:
    """Named arrays from a weights file (:func:`protocols.weights.read_arrays`: header or
    legacy meta.* entries excluded; a bad file raises ``WeightsError`` naming it)."""
    return read_arrays(path)
