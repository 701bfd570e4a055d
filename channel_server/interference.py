"""The K-user interference channel of paper 003 (Shen et al., message-passing GNNs).

K transmitter-receiver pairs (links) share one band; transmitter ``j`` reaches receiver ``i``
through the power gain ``G[j, i]`` (``G[i, i]``: link i's own gain). Link i's rate, bit/s/Hz:

    r_i = log2(1 + p_i G[i, i] / (sum_{j != i} p_j G[j, i] + sigma^2))

Two forms (``radio.form``):

* ``gaussian``: ``G[j, i] = |h_ji|^2`` with ``h_ji ~ CN(0, 1)`` for every pair of nodes,
  ``Pmax = 1`` and ``sigma^2 = 10^(-snr_db / 10)`` (the paper's and IGCNet's setting). The
  interference graph is complete.
* ``geometric``: K transmitters uniform over a square of side ``drop.area_m``, each
  receiver uniform over the annulus ``[min_link_m, max_link_m]`` around its transmitter
  (redrawn until it lies in the square), ``G[j, i]`` = pathloss x Rayleigh fading. The
  interference graph keeps the edge ``j -> i`` when transmitter j is within
  ``drop.edge_radius_m`` of receiver i: only those neighbours exchange messages; every
  transmitter still interferes in the rates.

Channel (choices marked *choice*; yshenaw/GNN-Resource-Management's "weighted power
control" setting has the sizes and powers, not its pathloss model):

* *choice*: log-distance pathloss ``PL(d) = PL(1 m) + 10 n log10(d / 1 m)`` with the
  free-space loss at the carrier at 1 m (40.05 dB at 2.4 GHz) and ``n = 3.5``; no shadowing.
* Rayleigh fading independent per link, first-order Gauss-Markov over slots with
  ``rho = J0(2 pi f_d T)`` (:mod:`channel_server.fading`, as the other kinds);
  ``fading = "iid"`` redraws it every slot (the paper's samples are independent).
* The drop is fixed for a run (users do not move); training sets draw a new drop per
  sample (:func:`sample_gains`).

Pure and vectorized: arrays carry a leading environment axis ``E``; no sockets, no event
loop.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from channel_server.config import (
    LIGHT_SPEED_MPS,
    BackhaulConfig,
    ScenarioError,
    TimingConfig,
    WireConfig,
    assign,
    bessel_j0,
    read_toml,
)
from channel_server.demands import AlcorSettings, DemandConfig, demand_problems
from channel_server.fading import GaussMarkovFading, complex_normal
from channel_server.v2x import build_config, dbm_to_w
from protocols.seeding import rng_for
from protocols.wire import key_problems

Array = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

Form = Literal["gaussian", "geometric"]


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class IcRadioConfig:
    """Links, powers and noise."""

    form: Form = "gaussian"
    """``gaussian`` (CN(0, 1) gains, one SNR) or ``geometric`` (a drop in a square)."""
    n_links: int = 10
    """K, transmitter-receiver pairs (one node process each)."""
    snr_db: float = 10.0
    """Gaussian form: Pmax / sigma^2 with E|h|^2 = 1, dB (Pmax = 1 W there)."""
    pmax_dbm: float = 40.0
    """Geometric form: the largest transmit power, dBm (the Gaussian form uses 1 W)."""
    bandwidth_hz: float = 5e6
    """Bandwidth of the shared band, Hz (Mbit/s figures; the Gaussian form's rates are
    reported per Hz as well)."""
    carrier_hz: float = 2.4e9
    """Carrier frequency, Hz (the geometric pathloss at 1 m)."""
    noise_psd_dbm_hz: float = -169.0
    """Geometric form: noise density at every receiver (noise figure included), dBm/Hz."""
    slot_s: float = 0.001
    """Slot duration, seconds."""

    @property
    def pmax_w(self) -> float:
        """Pmax, watts (1 in the Gaussian form)."""
        return 1.0 if self.form == "gaussian" else float(dbm_to_w(self.pmax_dbm))

    @property
    def noise_w(self) -> float:
        """sigma^2, watts."""
        if self.form == "gaussian":
            return float(10.0 ** (-self.snr_db / 10.0))
        return float(dbm_to_w(self.noise_psd_dbm_hz + 10.0 * math.log10(self.bandwidth_hz)))


@dataclass(frozen=True)
class IcDropConfig:
    """Geometric form: where the links are dropped and which interferers are neighbours."""

    area_m: float = 1000.0
    """Side of the square area, metres."""
    min_link_m: float = 2.0
    """Shortest transmitter-receiver distance of a link, metres."""
    max_link_m: float = 65.0
    """Longest transmitter-receiver distance of a link, metres."""
    edge_radius_m: float = 300.0
    """Edge ``j -> i`` of the interference graph when transmitter j is this close to
    receiver i, metres (the GNN's neighbours; all transmitters interfere in the rates)."""


@dataclass(frozen=True)
class IcChannelConfig:
    """Pathloss (geometric form) and fast fading (both forms)."""

    pathloss_exponent: float = 3.5
    """n of the log-distance pathloss."""
    min_distance_m: float = 1.0
    """Distances below this are raised to it, metres."""
    fading: Literal["gauss-markov", "iid"] = "gauss-markov"
    """Rayleigh fading in time: Gauss-Markov with rho = J0(2 pi f_d T), or i.i.d."""
    doppler_hz: float = 10.0
    """Maximum Doppler frequency f_d, Hz."""


@dataclass(frozen=True)
class IcScenario:
    """A K-user interference channel setting."""

    name: str
    """Scenario name."""
    description: str = ""
    """What it models, and the choices made where the paper is vague."""
    radio: IcRadioConfig = field(default_factory=IcRadioConfig)
    drop: IcDropConfig = field(default_factory=IcDropConfig)
    channel: IcChannelConfig = field(default_factory=IcChannelConfig)
    backhaul: BackhaulConfig = field(default_factory=BackhaulConfig)
    """Latency models of the links between link nodes and the controller."""
    timing: TimingConfig = field(default_factory=TimingConfig)
    """Clock mode, deadline and peer timeouts of the network runner."""
    demands: DemandConfig = field(default_factory=DemandConfig)
    """Minimum average rates per link (ALCOR schemes; the others ignore them but the run
    reports its violation)."""
    alcor: AlcorSettings = field(default_factory=AlcorSettings)
    """Algorithm 1's parameters (ALCOR schemes)."""
    wire: WireConfig = field(default_factory=WireConfig)
    """Encodings of the exchanged arrays (optional ``[wire]``; default float64): the GNN's
    ``ic_round.power`` (a fraction in [0, 1]) and ``ic_round.features`` (decades of SNR),
    the central schemes' ``ic_upload`` (gains, watts per watt) and ``decision`` (watts)."""
    source: str = "<memory>"
    """File the scenario was loaded from."""

    @property
    def k(self) -> int:
        return self.radio.n_links

    @property
    def rho(self) -> float:
        """Lag-1 correlation of the fading, J0(2 pi f_d T); 0 for i.i.d. fading."""
        if self.channel.fading == "iid":
            return 0.0
        return float(bessel_j0(2.0 * math.pi * self.channel.doppler_hz * self.radio.slot_s))


def _validate(s: IcScenario, where: str) -> None:
    r, d, c = s.radio, s.drop, s.channel
    checks = [
        (r.form in ("gaussian", "geometric"), "radio.form must be 'gaussian' or 'geometric'"),
        (r.n_links >= 1, "radio.n_links must be >= 1"),
        (r.bandwidth_hz > 0, "radio.bandwidth_hz must be > 0"),
        (r.carrier_hz > 0, "radio.carrier_hz must be > 0"),
        (r.slot_s > 0, "radio.slot_s must be > 0"),
        (0 < d.min_link_m <= d.max_link_m < d.area_m,
         "drop needs 0 < min_link_m <= max_link_m < area_m"),
        (d.edge_radius_m > 0, "drop.edge_radius_m must be > 0"),
        (c.pathloss_exponent > 0, "channel.pathloss_exponent must be > 0"),
        (c.min_distance_m > 0, "channel.min_distance_m must be > 0"),
        (c.doppler_hz >= 0, "channel.doppler_hz must be >= 0"),
        (s.timing.peer_timeout_s > 0, "timing.peer_timeout_s must be > 0"),
        (s.timing.heartbeat_s >= 0, "timing.heartbeat_s must be >= 0"),
    ]
    checks += [(False, p) for p in demand_problems(s.demands, s.alcor, r.n_links)]
    checks += [(False, f"wire.arrays: {p}") for p in key_problems(s.wire.arrays)]
    for ok, msg in checks:
        if not ok:
            raise ScenarioError(f"{where}: {msg}")


def ic_scenario_from_dict(table: dict[str, Any], source: str = "<memory>") -> IcScenario:
    """Build and validate a scenario from a parsed TOML table (errors name the field)."""
    s = build_config(IcScenario, table, source)
    s = dataclasses.replace(s, source=source)
    _validate(s, source)
    return s


def load_ic_scenario(path: str | Path) -> IcScenario:
    """Load a scenario TOML file (without its ``kind`` key)."""
    table = read_toml(path)
    table.pop("kind", None)
    return ic_scenario_from_dict(table, str(path))


def ic_scenario_to_dict(s: IcScenario, compact: bool = False) -> dict[str, Any]:
    """The scenario as a TOML-ready table (the inverse of :func:`ic_scenario_from_dict`);
    ``compact``: without a ``[wire]`` table that is the default."""
    d: dict[str, Any] = dataclasses.asdict(s)
    d.pop("source")
    if compact and s.wire == WireConfig():
        d.pop("wire")
    return d


def ic_override(s: IcScenario, assignments: dict[str, Any]) -> IcScenario:
    """A copy with dotted fields replaced, e.g. {'radio.n_links': 20}."""
    return ic_scenario_from_dict(assign(ic_scenario_to_dict(s), assignments), s.source)


# --------------------------------------------------------------------------- geometry


def drop_links(s: IcScenario, rng: np.random.Generator, n_envs: int) -> tuple[Array, Array]:
    """Transmitter and receiver positions, each ``(E, K, 2)`` metres."""
    d, k = s.drop, s.k
    tx = rng.uniform(0.0, d.area_m, (n_envs, k, 2))
    rx = np.empty_like(tx)
    todo: BoolArray = np.ones((n_envs, k), dtype=bool)
    while todo.any():
        n = int(todo.sum())
        r = np.sqrt(rng.uniform(d.min_link_m**2, d.max_link_m**2, n))
        phi = rng.uniform(0.0, 2.0 * math.pi, n)
        rx[todo] = tx[todo] + np.stack([r * np.cos(phi), r * np.sin(phi)], axis=-1)
        todo = np.asarray(((rx < 0.0) | (rx > d.area_m)).any(axis=-1))
    return tx, rx


def tx_rx_distances(tx: Array, rx: Array) -> Array:
    """``D[e, j, i]``: transmitter j to receiver i, metres."""
    out: Array = np.linalg.norm(tx[..., :, None, :] - rx[..., None, :, :], axis=-1)
    return out


def pathloss_db(distance_m: Any, s: IcScenario) -> Array:
    """``PL(1 m) + 10 n log10(d)`` with free-space loss at the carrier at 1 m, dB."""
    c = s.channel
    loss_1m = 20.0 * math.log10(4.0 * math.pi * s.radio.carrier_hz / LIGHT_SPEED_MPS)
    d = np.maximum(np.asarray(distance_m, dtype=np.float64), c.min_distance_m)
    out: Array = loss_1m + 10.0 * c.pathloss_exponent * np.log10(d)
    return out


@dataclass(frozen=True)
class Layout:
    """What stays fixed for a run: mean gains and the interference graph."""

    mean_gain: Array
    """``(E, K, K)``: E[G[j, i]] (1 in the Gaussian form; the pathloss gain otherwise)."""
    graph: BoolArray
    """``(E, K, K)``: edge ``j -> i`` (j's messages reach i); never on the diagonal."""


def layout(s: IcScenario, rng: np.random.Generator, n_envs: int) -> Layout:
    """A drop of every environment: its mean gains and interference graph."""
    k = s.k
    off_diagonal = ~np.eye(k, dtype=bool)
    if s.radio.form == "gaussian":
        return Layout(np.ones((n_envs, k, k)), np.broadcast_to(off_diagonal, (n_envs, k, k)).copy())
    tx, rx = drop_links(s, rng, n_envs)
    dist = tx_rx_distances(tx, rx)
    mean = 10.0 ** (-pathloss_db(dist, s) / 10.0)
    graph = (dist <= s.drop.edge_radius_m) & off_diagonal
    return Layout(mean, graph)


# --------------------------------------------------------------------------- rates


def sum_rates(gains: Array, powers: Array, noise_w: float) -> Array:
    """Per-link rates ``(..., K)`` in bit/s/Hz for gains ``(..., K, K)`` (``G[j, i]``: tx j to
    rx i) and powers ``(..., K)`` in watts."""
    g = np.asarray(gains, dtype=np.float64)
    p = np.asarray(powers, dtype=np.float64)
    direct = np.diagonal(g, axis1=-2, axis2=-1)
    received = np.einsum("...j,...ji->...i", p, g)
    signal = p * direct
    out: Array = np.log2(1.0 + signal / (received - signal + noise_w))
    return out


def as_cellular(gains: Array) -> Array:
    """The gains in the cellular allocators' layout ``(..., B, K, B)`` with one user per
    "cell" (``gains[j, 0, i]``: transmitter j to receiver i): WMMSE, FP and the certified
    optimum of :mod:`controller.baselines` solve this channel unchanged."""
    g = np.asarray(gains, dtype=np.float64)
    out: Array = g[..., :, None, :]
    return out


# --------------------------------------------------------------------------- the channel


class IcChannel:
    """The gains of ``n_envs`` independent drops, advanced one slot at a time."""

    def __init__(self, s: IcScenario, seed: int, n_envs: int = 1) -> None:
        self.scenario = s
        self.layout = layout(s, rng_for(seed, "interference", "drop"), n_envs)
        self.fading = GaussMarkovFading((n_envs, s.k, s.k), s.rho,
                                        rng_for(seed, "interference", "fading"))
        self.gains = self._gains(self.fading.state)

    def _gains(self, h: npt.NDArray[np.complex128]) -> Array:
        out: Array = self.layout.mean_gain * np.abs(h) ** 2
        return out

    def step(self) -> Array:
        """Advance one slot; the new gains ``(E, K, K)``."""
        self.gains = self._gains(self.fading.step())
        return self.gains


def sample_gains(s: IcScenario, rng: np.random.Generator, n: int) -> tuple[Array, BoolArray]:
    """``n`` independent samples (a fresh drop and fading each): gains ``(n, K, K)`` and
    interference graphs ``(n, K, K)``; a training or test set."""
    lay = layout(s, rng, n)
    h = complex_normal(rng, (n, s.k, s.k))
    gains: Array = lay.mean_gain * np.abs(h) ** 2
    return gains, lay.graph
