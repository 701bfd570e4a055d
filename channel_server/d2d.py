"""D2D underlay spectrum sharing (paper 002, Li and Guo's MAAC / NAAC): one cell, M CUEs
each holding one RB of the downlink, N D2D pairs reusing those RBs.

Pure and vectorized: every array carries a leading environment axis ``E`` (independent
drops played in lock step). No sockets, no event loop.

Links and indices (Table I of the paper, ``m`` a CUE, ``n``/``i`` D2D pairs, ``k`` an RB):

* CUE ``m`` holds RB ``m`` (``M = K``, as the paper sets it); the BS serves it at
  ``P^b`` on that RB.
* ``g_bc[e, m]``: BS -> CUE m on RB m; ``g_tc[e, n, m]``: D2D transmitter n -> CUE m on
  RB m; ``g_br[e, n, k]``: BS -> D2D receiver n on RB k (the BS transmits to CUE k on it);
  ``g_tr[e, i, n, k]``: D2D transmitter i -> D2D receiver n on RB k (``i = n``: the pair's
  own link).
* SINR (1) of CUE m: ``P^b g_bc[m] / (sum_{n on RB m} p_n g_tc[n, m] + sigma^2)``;
  SINR (2) of pair n on RB k: ``p_n g_tr[n, n, k] / (P^b g_br[n, k]
  + sum_{i != n on RB k} p_i g_tr[i, n, k] + sigma^2)``; rates ``W log2(1 + SINR)``.
* Reward (5)-(7) of pair n: ``log2(1 + SINR_n)`` when the CUE of its RB meets its SINR
  threshold, else ``r_neg`` (-1).

Channel (Table II; choices where the paper is vague are marked *choice*):

* BS-to-UE links (BS -> CUE, BS -> D2D receiver): ``128.1 + 37.6 log10(d / 1 km)``.
* UE-to-UE links (D2D -> D2D, D2D -> CUE): pathloss exponent 4; *choice*: the loss at
  1 m is the free-space loss at the carrier, ``20 log10(4 pi f_c / c)`` (38.47 dB at
  2 GHz), so ``PL = 38.47 + 40 log10(d / 1 m)``.
* No shadowing (*choice*: Table II lists none).
* Rayleigh fast fading, independent per link and per RB, first-order Gauss-Markov over
  slots with ``rho = J0(2 pi f_d T)`` (the module :mod:`channel_server.fading`, as the
  cellular kind); ``fading = "iid"`` redraws it every slot.
* Noise per RB at every UE: ``-174 dBm/Hz + 10 log10(W) + 8 dB``.
* *choice*: ``P^b`` (46 dBm) is the BS power on each RB, as equations (1) and (2) use it
  (``--set radio.bs_power_dbm=36`` spreads 46 dBm over the 10 RBs instead).
* Drop (*choice*): the BS at the centre; CUEs and D2D transmitters uniform over the
  cell area at least ``min_bs_distance_m`` from the BS; each D2D receiver uniform over the
  annulus ``[min_pair_distance_m, max_pair_distance_m]`` around its transmitter, redrawn
  until it lies in the cell. Users do not move (the paper's Fig. 5: a fixed drop).
* D2D outage (Fig. 8; the paper gives no D2D threshold): *choice* SINR below
  ``qos.d2d_sinr_min_db`` (0 dB).
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
    assign,
    bessel_j0,
    read_toml,
)
from channel_server.fading import GaussMarkovFading
from channel_server.v2x import build_config, dbm_to_w
from protocols.seeding import rng_for

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class D2dRadioConfig:
    """Users, resource blocks, powers and noise (Table II)."""

    n_pairs: int = 10
    """N, D2D pairs (the agents)."""
    n_rb: int = 10
    """K resource blocks = M CUEs; CUE m holds RB m."""
    rb_bandwidth_hz: float = 180e3
    """Bandwidth W of one RB, Hz."""
    carrier_hz: float = 2e9
    """Carrier frequency f_c, Hz."""
    slot_s: float = 0.001
    """Slot (decision step) duration T, seconds (one LTE subframe; the paper says "one
    slot")."""
    bs_power_dbm: float = 46.0
    """P^b, the BS transmit power on each RB, dBm."""
    d2d_power_levels_dbm: tuple[float, ...] = (13.0,)
    """The D2D transmit power levels a pair chooses from, dBm (beta levels; one level:
    RB choice only, at P^d)."""
    noise_psd_dbm_hz: float = -174.0
    """Thermal noise density, dBm/Hz."""
    noise_figure_db: float = 8.0
    """UE receiver noise figure, dB."""

    @property
    def n_cue(self) -> int:
        """M, the number of CUEs (one per RB)."""
        return self.n_rb

    @property
    def n_levels(self) -> int:
        """beta, the number of D2D power levels."""
        return len(self.d2d_power_levels_dbm)

    @property
    def n_actions(self) -> int:
        """alpha x beta: a flat action is ``rb + K * level``."""
        return self.n_rb * self.n_levels

    @property
    def noise_dbm(self) -> float:
        """sigma^2 per RB, dBm."""
        return (self.noise_psd_dbm_hz + 10.0 * math.log10(self.rb_bandwidth_hz)
                + self.noise_figure_db)

    @property
    def noise_w(self) -> float:
        """sigma^2 per RB, watts."""
        return float(dbm_to_w(self.noise_dbm))

    @property
    def bs_power_w(self) -> float:
        """P^b, watts."""
        return float(dbm_to_w(self.bs_power_dbm))

    @property
    def d2d_power_levels_w(self) -> Array:
        """The D2D power levels, watts."""
        out: Array = dbm_to_w(np.asarray(self.d2d_power_levels_dbm, dtype=np.float64))
        return out


@dataclass(frozen=True)
class D2dDropConfig:
    """Where users are dropped (one cell, the BS at its centre)."""

    cell_radius_m: float = 500.0
    """Cell radius, metres."""
    min_bs_distance_m: float = 10.0
    """CUEs and D2D users are at least this far from the BS, metres."""
    max_pair_distance_m: float = 30.0
    """Largest D2D transmitter-receiver distance, metres."""
    min_pair_distance_m: float = 2.0
    """Smallest D2D transmitter-receiver distance, metres."""


@dataclass(frozen=True)
class D2dChannelConfig:
    """Pathloss and fast fading."""

    cellular_pathloss_a_db: float = 128.1
    """BS-to-UE pathloss ``a + b log10(d / 1 km)``: a, dB."""
    cellular_pathloss_b_db: float = 37.6
    """b, dB per decade of distance."""
    d2d_pathloss_exponent: float = 4.0
    """UE-to-UE pathloss exponent."""
    d2d_loss_at_1m_db: float = 38.47
    """UE-to-UE loss at 1 m, dB (free space at 2 GHz: 20 log10(4 pi f_c / c))."""
    min_distance_m: float = 1.0
    """Distances below this are raised to it in every pathloss, metres."""
    fading: Literal["gauss-markov", "iid"] = "gauss-markov"
    """Rayleigh fading in time: Gauss-Markov with rho = J0(2 pi f_d T), or i.i.d."""
    doppler_hz: float = 10.0
    """Maximum Doppler frequency f_d, Hz (pedestrians at 1.5 m/s and 2 GHz)."""


@dataclass(frozen=True)
class D2dQosConfig:
    """SINR thresholds and the negative reward."""

    cue_sinr_min_db: float = 0.0
    """xi^c_min, the CUE SINR threshold, dB (below it the CUE is in outage)."""
    d2d_sinr_min_db: float = 0.0
    """A D2D link below this SINR is in outage, dB (figures only; not in the reward)."""
    negative_reward: float = -1.0
    """r_neg, the reward of a pair whose RB's CUE misses its threshold."""


@dataclass(frozen=True)
class D2dObservationConfig:
    """Normalization of a pair's observation (gains and interference in dB)."""

    gain_offset_db: float = -100.0
    """Gain features are (gain_db - gain_offset_db) / gain_scale_db."""
    gain_scale_db: float = 20.0
    """Scale of the gain features, dB."""
    interference_offset_dbm: float = -100.0
    """Interference features are (I_dbm - offset) / interference_scale_db."""
    interference_scale_db: float = 20.0
    """Scale of the interference features, dB."""


@dataclass(frozen=True)
class D2dScenario:
    """A D2D underlay setting."""

    name: str
    """Scenario name."""
    description: str = ""
    """What it models, and the choices made where the paper is vague."""
    radio: D2dRadioConfig = field(default_factory=D2dRadioConfig)
    drop: D2dDropConfig = field(default_factory=D2dDropConfig)
    channel: D2dChannelConfig = field(default_factory=D2dChannelConfig)
    qos: D2dQosConfig = field(default_factory=D2dQosConfig)
    observation: D2dObservationConfig = field(default_factory=D2dObservationConfig)
    backhaul: BackhaulConfig = field(default_factory=BackhaulConfig)
    """Latency models of the links between pair nodes and the controller."""
    timing: TimingConfig = field(default_factory=TimingConfig)
    """Clock mode and peer timeouts of the network runner."""
    source: str = "<memory>"
    """File the scenario was loaded from."""

    @property
    def rho(self) -> float:
        """Lag-1 correlation of the fading, J0(2 pi f_d T); 0 for i.i.d. fading."""
        if self.channel.fading == "iid":
            return 0.0
        return float(bessel_j0(2.0 * math.pi * self.channel.doppler_hz * self.radio.slot_s))


# --------------------------------------------------------------------------- loading


def _validate(s: D2dScenario, where: str) -> None:
    r, d, c = s.radio, s.drop, s.channel
    checks = [
        (r.n_pairs >= 1, "radio.n_pairs must be >= 1"),
        (r.n_rb >= 1, "radio.n_rb must be >= 1"),
        (r.rb_bandwidth_hz > 0, "radio.rb_bandwidth_hz must be > 0"),
        (r.carrier_hz > 0, "radio.carrier_hz must be > 0"),
        (r.slot_s > 0, "radio.slot_s must be > 0"),
        (r.n_levels >= 1, "radio.d2d_power_levels_dbm must not be empty"),
        (d.cell_radius_m > d.min_bs_distance_m >= 0,
         "drop.min_bs_distance_m must be in [0, cell_radius_m)"),
        (0 < d.min_pair_distance_m <= d.max_pair_distance_m,
         "drop needs 0 < min_pair_distance_m <= max_pair_distance_m"),
        (d.max_pair_distance_m < d.cell_radius_m - d.min_bs_distance_m,
         "drop.max_pair_distance_m must be below the cell's usable width"),
        (c.min_distance_m > 0, "channel.min_distance_m must be > 0"),
        (c.doppler_hz >= 0, "channel.doppler_hz must be >= 0"),
        (s.observation.gain_scale_db > 0 and s.observation.interference_scale_db > 0,
         "observation scales must be > 0"),
        (s.timing.peer_timeout_s > 0, "timing.peer_timeout_s must be > 0"),
        (s.timing.heartbeat_s >= 0, "timing.heartbeat_s must be >= 0"),
    ]
    for ok, msg in checks:
        if not ok:
            raise ScenarioError(f"{where}: {msg}")


def d2d_scenario_from_dict(table: dict[str, Any], source: str = "<memory>") -> D2dScenario:
    """Build and validate a D2D scenario from a parsed TOML table (errors name the field)."""
    s = build_config(D2dScenario, table, source)
    s = dataclasses.replace(s, source=source)
    _validate(s, source)
    return s


def load_d2d_scenario(path: str | Path) -> D2dScenario:
    """Load a D2D scenario TOML file (without its ``kind`` key)."""
    table = read_toml(path)
    table.pop("kind", None)
    return d2d_scenario_from_dict(table, str(path))


def d2d_scenario_to_dict(s: D2dScenario) -> dict[str, Any]:
    """The scenario as a TOML-ready table (the inverse of :func:`d2d_scenario_from_dict`)."""
    def plain(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return list(v) if isinstance(v, tuple) else v

    d: dict[str, Any] = plain(dataclasses.asdict(s))
    d.pop("source")
    return d


def d2d_override(s: D2dScenario, assignments: dict[str, Any]) -> D2dScenario:
    """A copy with dotted fields replaced, e.g. {'radio.n_pairs': 20}."""
    return d2d_scenario_from_dict(assign(d2d_scenario_to_dict(s), assignments), s.source)


# --------------------------------------------------------------------------- geometry


def uniform_disc(rng: np.random.Generator, shape: tuple[int, ...], r_min: float,
                 r_max: float) -> Array:
    """Points ``(*shape, 2)`` uniform over the area of the annulus [r_min, r_max] around
    the origin."""
    r = np.sqrt(rng.uniform(r_min**2, r_max**2, shape))
    phi = rng.uniform(0.0, 2.0 * math.pi, shape)
    out: Array = np.stack([r * np.cos(phi), r * np.sin(phi)], axis=-1)
    return out


@dataclass(frozen=True)
class Drop:
    """Positions of ``E`` drops, metres (the BS at the origin)."""

    cue_xy: Array
    """CUE positions ``(E, M, 2)``."""
    tx_xy: Array
    """D2D transmitter positions ``(E, N, 2)``."""
    rx_xy: Array
    """D2D receiver positions ``(E, N, 2)``."""


def drop_users(cfg: D2dDropConfig, n_envs: int, n_cue: int, n_pairs: int,
               rng: np.random.Generator) -> Drop:
    """CUEs and D2D transmitters uniform in the cell (outside ``min_bs_distance_m``); each
    receiver uniform over the annulus around its transmitter, redrawn until it lies in the
    cell outside ``min_bs_distance_m`` too."""
    cue = uniform_disc(rng, (n_envs, n_cue), cfg.min_bs_distance_m, cfg.cell_radius_m)
    tx = uniform_disc(rng, (n_envs, n_pairs), cfg.min_bs_distance_m, cfg.cell_radius_m)
    rx = tx + uniform_disc(rng, (n_envs, n_pairs), cfg.min_pair_distance_m,
                           cfg.max_pair_distance_m)
    for _ in range(1000):
        d = np.linalg.norm(rx, axis=-1)
        bad = (d > cfg.cell_radius_m) | (d < cfg.min_bs_distance_m)
        if not bad.any():
            break
        again = tx + uniform_disc(rng, (n_envs, n_pairs), cfg.min_pair_distance_m,
                                  cfg.max_pair_distance_m)
        rx = np.where(bad[..., None], again, rx)
    else:  # pragma: no cover - an annulus of 30 m around a point of the cell always overlaps it
        raise RuntimeError("could not place the D2D receivers in the cell")
    return Drop(cue_xy=cue, tx_xy=tx, rx_xy=rx)


def distances(a: Array, b: Array) -> Array:
    """Distances ``(..., A, B)`` between points ``a (..., A, 2)`` and ``b (..., B, 2)``."""
    out: Array = np.linalg.norm(a[..., :, None, :] - b[..., None, :, :], axis=-1)
    return out


# --------------------------------------------------------------------------- pathloss


def cellular_pathloss_db(distance_m: Any, c: D2dChannelConfig) -> Array:
    """BS-to-UE pathloss ``a + b log10(d / 1 km)``, dB."""
    d = np.maximum(np.asarray(distance_m, dtype=np.float64), c.min_distance_m)
    out: Array = c.cellular_pathloss_a_db + c.cellular_pathloss_b_db * np.log10(d / 1000.0)
    return out


def d2d_pathloss_db(distance_m: Any, c: D2dChannelConfig) -> Array:
    """UE-to-UE pathloss ``L(1 m) + 10 alpha log10(d / 1 m)``, dB."""
    d = np.maximum(np.asarray(distance_m, dtype=np.float64), c.min_distance_m)
    out: Array = c.d2d_loss_at_1m_db + 10.0 * c.d2d_pathloss_exponent * np.log10(d)
    return out


def free_space_loss_1m_db(carrier_hz: float) -> float:
    """Free-space loss at 1 m, ``20 log10(4 pi f_c / c)``, dB."""
    return 20.0 * math.log10(4.0 * math.pi * carrier_hz / LIGHT_SPEED_MPS)


@dataclass(frozen=True)
class Gains:
    """Linear power gains of one slot (pathloss times Rayleigh fading), leading axis E."""

    bc: Array
    """BS -> CUE m on RB m, ``(E, M)``."""
    tc: Array
    """D2D transmitter n -> CUE m on RB m, ``(E, N, M)``."""
    br: Array
    """BS -> D2D receiver n on RB k, ``(E, N, K)``."""
    tr: Array
    """D2D transmitter i -> D2D receiver n on RB k, ``(E, N, N, K)`` (``[e, i, n, k]``)."""

    @property
    def own(self) -> Array:
        """Each pair's own link gain per RB, ``(E, N, K)``."""
        n = self.tr.shape[1]
        out: Array = self.tr[:, np.arange(n), np.arange(n), :]
        return out


@dataclass(frozen=True)
class D2dRates:
    """Outcome of one slot, leading axis E."""

    cue_sinr: Array
    """SINR (1) of every CUE on its RB, linear, ``(E, M)``."""
    d2d_sinr: Array
    """SINR (2) of every pair on its RB, linear, ``(E, N)`` (0 for silent pairs)."""
    cue_rate_bps: Array
    """``W log2(1 + SINR)`` of every CUE, bit/s, ``(E, M)``."""
    d2d_rate_bps: Array
    """``W log2(1 + SINR)`` of every pair, bit/s, ``(E, N)``."""
    interference_w: Array
    """Interference plus noise each D2D receiver measures on every RB: the BS's signal
    for the RB's CUE, every other transmitting pair on it and the noise, ``(E, N, K)``,
    watts."""


def sinr_and_rates(radio: D2dRadioConfig, g: Gains, rb: IntArray, power_w: Array) -> D2dRates:
    """SINRs (1), (2) and the rates of all links for RB choices ``rb (E, N)`` and D2D powers
    ``power_w (E, N)`` (0: the pair is silent)."""
    k_n = radio.n_rb
    n_n = rb.shape[-1]
    noise = radio.noise_w
    p_b = radio.bs_power_w
    onehot = (rb[..., None] == np.arange(k_n)).astype(np.float64)  # (E, N, K)
    p_rb = power_w[..., None] * onehot  # power of pair n on RB k
    # CUE m on RB m: interference from the pairs on RB m (M = K)
    i_cue = np.einsum("enm,enm->em", p_rb, g.tc) + noise
    cue_sinr = p_b * g.bc / i_cue
    # at D2D receiver n on RB k: BS, every other pair on RB k, noise
    others = 1.0 - np.eye(n_n)
    from_d2d = np.einsum("eik,eink,in->enk", p_rb, g.tr, others)
    interference = p_b * g.br + from_d2d + noise  # (E, N, K)
    own = g.own
    signal = power_w * np.take_along_axis(own, rb[..., None], axis=-1)[..., 0]
    d2d_sinr = signal / np.take_along_axis(interference, rb[..., None], axis=-1)[..., 0]
    w = radio.rb_bandwidth_hz
    return D2dRates(cue_sinr=cue_sinr, d2d_sinr=d2d_sinr,
                    cue_rate_bps=w * np.log2(1.0 + cue_sinr),
                    d2d_rate_bps=w * np.log2(1.0 + d2d_sinr),
                    interference_w=interference)


def db_to_linear(db: float) -> float:
    return float(10.0 ** (db / 10.0))


def cue_outage(qos: D2dQosConfig, cue_sinr: Array) -> BoolArray:
    """CUEs below their SINR threshold, ``(E, M)``."""
    out: BoolArray = cue_sinr < db_to_linear(qos.cue_sinr_min_db)
    return out


def d2d_outage(qos: D2dQosConfig, d2d_sinr: Array, transmitted: BoolArray) -> BoolArray:
    """Transmitting pairs below the D2D SINR threshold, ``(E, N)`` (silent pairs: False)."""
    out: BoolArray = transmitted & (d2d_sinr < db_to_linear(qos.d2d_sinr_min_db))
    return out


def d2d_reward(qos: D2dQosConfig, rates: D2dRates, rb: IntArray,
               transmitted: BoolArray) -> Array:
    """Reward (5)-(7) per pair ``(E, N)``: ``log2(1 + SINR_n)`` when the CUE of pair n's RB
    meets its threshold, else ``r_neg``; 0 for a silent pair."""
    ok = ~cue_outage(qos, rates.cue_sinr)  # (E, M), CUE m on RB m
    ok_rb = np.take_along_axis(ok, rb, axis=-1)  # (E, N)
    r = np.where(ok_rb, np.log2(1.0 + rates.d2d_sinr), qos.negative_reward)
    out: Array = np.where(transmitted, r, 0.0)
    return out


# --------------------------------------------------------------------------- the world


class D2dWorld:
    """Drops and Rayleigh fading of ``E`` cells, advanced slot by slot.

    Randomness: the drop from ``rng_for(seed, "d2d", "drop")``, the fading from
    ``rng_for(seed, "d2d", "fading")`` (the four link families drawn in a fixed order).
    """

    def __init__(self, scenario: D2dScenario, n_envs: int, seed: int) -> None:
        self.scenario = scenario
        r, c = scenario.radio, scenario.channel
        e, m, n, k = int(n_envs), r.n_cue, r.n_pairs, r.n_rb
        self.n_envs = e
        self.drop = drop_users(scenario.drop, e, m, n, rng_for(seed, "d2d", "drop"))
        dr = self.drop
        origin = np.zeros((e, 1, 2))
        self.pathloss_db = {
            "bc": cellular_pathloss_db(distances(origin, dr.cue_xy)[:, 0, :], c),
            "br": cellular_pathloss_db(distances(origin, dr.rx_xy)[:, 0, :], c),
            "tc": d2d_pathloss_db(distances(dr.tx_xy, dr.cue_xy), c),
            "tr": d2d_pathloss_db(distances(dr.tx_xy, dr.rx_xy), c),
        }
        rng = rng_for(seed, "d2d", "fading")
        rho = scenario.rho
        self.fading = {
            "bc": GaussMarkovFading((e, m), rho, rng),
            "tc": GaussMarkovFading((e, n, m), rho, rng),
            "br": GaussMarkovFading((e, n, k), rho, rng),
            "tr": GaussMarkovFading((e, n, n, k), rho, rng),
        }
        self.slot = 0
        self._gains: Gains | None = None

    def gains(self) -> Gains:
        """Linear gains of the current slot: ``10^(-PL/10) |h|^2``."""
        if self._gains is None:
            pl, f = self.pathloss_db, self.fading

            def lin(name: str, per_rb: bool) -> Array:
                loss = np.power(10.0, -pl[name] / 10.0)
                h2 = np.abs(f[name].state) ** 2
                out: Array = (loss[..., None] if per_rb else loss) * h2
                return out

            self._gains = Gains(bc=lin("bc", False), tc=lin("tc", False),
                                br=lin("br", True), tr=lin("tr", True))
        return self._gains

    def advance(self) -> None:
        """Move the fading on by one slot."""
        for name in ("bc", "tc", "br", "tr"):
            self.fading[name].step()
        self.slot += 1
        self._gains = None


def to_db(x: Any) -> Array:
    """10 log10(x) with a floor at -300 dB (a gain of exactly 0)."""
    out: Array = 10.0 * np.log10(np.maximum(np.asarray(x, dtype=np.float64), 1e-30))
    return out
