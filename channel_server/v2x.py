"""Vehicular (V2X) spectrum sharing: K V2V links reuse the RBs of M V2I links (paper 000).

The setting of Liang, Ye and Li's multi-agent RL for V2X (survey paper 000, section
IV-C), with the public reference implementation's parameters (3GPP TR 36.885 urban
Manhattan grid). All arrays carry a leading episode axis ``E``.

Links and indices:

* ``N`` vehicles; V2I link ``m`` (one per RB, ``m < M <= N``) is vehicle ``m``
  transmitting to the BS on RB ``m`` at the fixed power ``v2i_power_dbm``.
* V2V link ``k = i * v2v_neighbors + n`` is vehicle ``i`` transmitting to its
  ``(n+1)``-th nearest vehicle (chosen at the start of each episode, fixed during it);
  it chooses an RB and a power level each slot. ``tx[k]`` and ``rx[e, k]``.
* ``v2i_gain[e, n, m]``: vehicle n -> BS on RB m; ``v2v_gain[e, i, j, m]``: vehicle
  i -> vehicle j on RB m. Gains are *effective* power gains: ``-pathloss - shadowing +
  fast fading + tx antenna gain + rx antenna gain - rx noise figure`` (dB), so the SINR
  is ``p g / (sum p' g' + noise)`` with the thermal noise ``noise_dbm``.
* ``v2v_gain[e, j, j, m]`` (a vehicle to itself) is ``-self_isolation_db`` plus antenna
  gains: a vehicle that transmits on the RB it receives on (its V2I RB, or its own V2V
  link towards its transmitter) is jammed, as in the reference (a 50 dB "self pathloss").

Channel (choices where the papers are vague are marked *choice*):

* V2I pathloss ``128.1 + 37.6 log10(sqrt(d^2 + (h_bs - h_veh)^2) / 1 km)``.
* V2V pathloss WINNER+ B1 (TR 36.885 urban): LOS when both vehicles are in one street
  corridor (same street, intersections belong to both), else the Manhattan NLOS model
  ``min(PL(d1, d2), PL(d2, d1))`` with ``d1 = |dx|``, ``d2 = |dy|``,
  ``PL(dk, dl) = PL_LOS(dk) + 20 - 12.5 n_j + 10 n_j log10(dl) + 3 log10(fc/5 GHz)``,
  ``n_j = max(2.8 - 0.0024 dk, 1.84)``. Effective antenna heights ``h - 1 m`` in both
  the breakpoint and the far-LOS formula (as WINNER+; the reference code uses 1.5 m in
  the far formula, a 16.5 dB jump at the breakpoint, and takes ``n_j`` from ``dl``).
  Distances below ``v2v_min_distance_m`` (3 m, TR 36.885) are raised to it.
* Shadowing log-normal, correlated over the distance moved (Gudmundson):
  ``s' = exp(-dd / d_corr) s + sqrt(1 - exp(-2 dd / d_corr)) N(0, sigma^2)``; ``dd`` is
  the vehicle's displacement (V2I) or the sum of both vehicles' displacements (V2V,
  as the reference); V2V shadowing is symmetric.
* Fast fading Rayleigh, independent per link direction and per RB, first-order
  Gauss-Markov in time with ``rho = J0(2 pi f_d T)``, ``f_d = v f_c / c``. V2I: ``v`` is
  the vehicle's speed (the BS is static). V2V, *choice* ``v2v_doppler``:
  ``"both-ends"`` (default) uses the mobile-to-mobile (Akki-Haber) correlation
  ``J0(2 pi f_tx T) J0(2 pi f_rx T)``; ``"relative"`` the relative speed; ``"transmitter"``
  the transmitter speed. ``fading = "iid"`` redraws every slot, as the reference does.

Traffic, reward, metrics: each V2V link must deliver ``payload_bytes`` within
``deadline_s``; it delivers ``rate * slot_s`` bits per slot and falls silent once done
(no interference, as the reference's inactive links). Reward (13) and the revised
reward are in :func:`v2x_reward`.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeVar

import numpy as np
import numpy.typing as npt

from channel_server.config import (
    LIGHT_SPEED_MPS,
    BackhaulConfig,
    ScenarioError,
    TimingConfig,
    assign,
    bessel_j0,
    build_dataclass,
    check_field,
    read_toml,
)
from channel_server.fading import complex_normal
from channel_server.v2x_mobility import ManhattanMobility, RoadGrid, same_street
from protocols.seeding import rng_for

Array = npt.NDArray[np.float64]
ComplexArray = npt.NDArray[np.complex128]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
T = TypeVar("T")

MBPS = 1e6


def dbm_to_w(dbm: Any) -> Any:
    """dBm to watts (scalar or array)."""
    return np.power(10.0, (np.asarray(dbm, dtype=np.float64) - 30.0) / 10.0)


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class RoadConfig:
    """Manhattan grid of TR 36.885, halved as in the reference (3 x 3 blocks)."""

    blocks_x: int = 3
    """Blocks along x; there are blocks_x + 1 vertical streets (border ones included)."""
    blocks_y: int = 3
    """Blocks along y; there are blocks_y + 1 horizontal streets."""
    block_width_m: float = 125.0
    """Distance between the centre lines of adjacent vertical streets, metres."""
    block_height_m: float = 216.5
    """Distance between the centre lines of adjacent horizontal streets, metres."""
    lanes_per_direction: int = 2
    """Lanes in each direction of every street."""
    lane_width_m: float = 3.5
    """Lane width, metres."""
    bs_x_m: float = 187.5
    """BS position x, metres (default: centre of the area)."""
    bs_y_m: float = 324.75
    """BS position y, metres (default: centre of the area)."""

    @property
    def width_m(self) -> float:
        return self.blocks_x * self.block_width_m

    @property
    def height_m(self) -> float:
        return self.blocks_y * self.block_height_m

    @property
    def grid(self) -> RoadGrid:
        return RoadGrid(
            street_x_m=tuple(j * self.block_width_m for j in range(self.blocks_x + 1)),
            street_y_m=tuple(i * self.block_height_m for i in range(self.blocks_y + 1)),
            lane_offsets_m=tuple(
                (i + 0.5) * self.lane_width_m for i in range(self.lanes_per_direction)
            ),
            street_half_width_m=self.lanes_per_direction * self.lane_width_m,
        )


@dataclass(frozen=True)
class V2xMobilityConfig:
    """Vehicle speeds and manoeuvres at intersections (TR 36.885)."""

    speed_min_mps: float = 10.0
    """Lowest vehicle speed, m/s (speeds are uniform and constant per drop)."""
    speed_max_mps: float = 15.0
    """Highest vehicle speed, m/s."""
    p_straight: float = 0.5
    """Probability of going straight at an intersection."""
    p_left: float = 0.25
    """Probability of turning left."""
    p_right: float = 0.25
    """Probability of turning right."""


@dataclass(frozen=True)
class V2xRadioConfig:
    """Links, powers, antennas and noise (reference implementation values)."""

    n_vehicles: int = 4
    """N vehicles; vehicle m < M also carries V2I link m."""
    n_rb: int = 4
    """M resource blocks = M V2I links (M <= N)."""
    v2v_neighbors: int = 1
    """Receivers per vehicle (its nearest ones): K = N * v2v_neighbors V2V links."""
    rb_bandwidth_hz: float = 1e6
    """Bandwidth W of one RB, Hz."""
    carrier_hz: float = 2e9
    """Carrier frequency f_c, Hz."""
    slot_s: float = 0.001
    """Slot (decision step) duration T, seconds."""
    noise_dbm: float = -114.0
    """Thermal noise power per RB, dBm (receiver noise figures come on top)."""
    v2i_power_dbm: float = 23.0
    """Fixed V2I transmit power, dBm."""
    v2v_power_levels_dbm: tuple[float, ...] = (23.0, 15.0, 5.0, -100.0)
    """Discrete V2V power levels, dBm (the last one is practically off)."""
    bs_height_m: float = 25.0
    """BS antenna height, metres."""
    vehicle_height_m: float = 1.5
    """Vehicle antenna height, metres."""
    bs_antenna_gain_dbi: float = 8.0
    """BS antenna gain, dBi."""
    bs_noise_figure_db: float = 5.0
    """BS receiver noise figure, dB."""
    vehicle_antenna_gain_dbi: float = 3.0
    """Vehicle antenna gain, dBi."""
    vehicle_noise_figure_db: float = 9.0
    """Vehicle receiver noise figure, dB."""

    @property
    def n_v2v(self) -> int:
        """K, the number of V2V links (agents)."""
        return self.n_vehicles * self.v2v_neighbors

    @property
    def noise_w(self) -> float:
        return float(dbm_to_w(self.noise_dbm))

    @property
    def v2i_power_w(self) -> float:
        return float(dbm_to_w(self.v2i_power_dbm))

    @property
    def v2v_power_levels_w(self) -> Array:
        out: Array = dbm_to_w(np.asarray(self.v2v_power_levels_dbm))
        return out


@dataclass(frozen=True)
class V2xChannelConfig:
    """Shadowing, fast fading and pathloss details."""

    v2i_shadow_std_db: float = 8.0
    """V2I log-normal shadowing standard deviation, dB."""
    v2i_decorrelation_m: float = 50.0
    """V2I shadowing decorrelation distance, metres."""
    v2v_shadow_std_db: float = 3.0
    """V2V log-normal shadowing standard deviation, dB."""
    v2v_decorrelation_m: float = 10.0
    """V2V shadowing decorrelation distance, metres."""
    fading: Literal["gauss-markov", "iid"] = "gauss-markov"
    """Fast fading in time: Gauss-Markov with rho = J0(2 pi f_d T), or i.i.d. per slot."""
    v2v_doppler: Literal["both-ends", "relative", "transmitter"] = "both-ends"
    """V2V fading correlation: J0(2 pi f_tx T) J0(2 pi f_rx T), J0 of the relative speed's
    Doppler, or J0 of the transmitter's Doppler."""
    v2v_pathloss: Literal["winner-b1", "reference-code"] = "winner-b1"
    """V2V pathloss formula: WINNER+ B1 as published, or as the public reference code
    computes it (far-LOS term with the actual 1.5 m heights, NLOS n_j from the second
    leg), to compare with the paper's numbers."""
    v2v_min_distance_m: float = 3.0
    """V2V distances (and NLOS street legs) below this are raised to it, metres."""
    effective_height_offset_m: float = 1.0
    """WINNER+ B1 effective antenna height is h minus this, metres."""
    self_isolation_db: float = 50.0
    """Loss from a vehicle's transmitter to its own receiver, dB."""


@dataclass(frozen=True)
class TrafficConfig:
    """V2V payload and deadline (paper 000, Fig. 8)."""

    payload_bytes: int = 2120
    """B, the payload every V2V link must deliver per episode, bytes."""
    deadline_s: float = 0.1
    """T, the delivery deadline = episode length, seconds (a multiple of slot_s)."""

    @property
    def payload_bits(self) -> float:
        return 8.0 * self.payload_bytes


@dataclass(frozen=True)
class RewardConfig:
    """Reward (13) and its revised form; rates enter in Mbps (= bit/s/Hz on 1 MHz RBs)."""

    variant: Literal["revised", "eq13"] = "revised"
    """eq13: V2V term = sum of V2V rates; revised: per link, its rate while its payload is
    undelivered and beta once delivered (the slot it completes included)."""
    lambda_c: float = 0.1
    """Weight of the sum V2I rate (per Mbps)."""
    lambda_v: float = 0.9
    """Weight of the V2V term (per Mbps)."""
    lambda_p_per_s: float = 0.0
    """Weight of the elapsed time T - U_t (per second, U_t at the start of the slot)."""
    beta_mbps: float = 40.0
    """Reward of a delivered link, Mbps-equivalent; above any reachable V2V rate
    (about 33 bit/s/Hz at the 3 m minimum distance with +10 dB fading)."""


@dataclass(frozen=True)
class ObservationConfig:
    """Observation (12) normalization and the fingerprint (14)."""

    fingerprint: bool = True
    """Append (training iteration / fingerprint_iterations, epsilon) to every observation."""
    fingerprint_iterations: int = 3000
    """Number of training iterations that maps the iteration feature to [0, 1]."""
    gain_offset_db: float = -100.0
    """Channel-gain features are (gain_db - gain_offset_db) / gain_scale_db."""
    gain_scale_db: float = 30.0
    """Scale of the channel-gain features, dB."""
    interference_offset_dbm: float = -114.0
    """Interference features are (I_dbm - offset) / interference_scale_db."""
    interference_scale_db: float = 30.0
    """Scale of the interference features, dB."""


@dataclass(frozen=True)
class V2xScenario:
    """A vehicular spectrum-sharing setting."""

    name: str
    """Scenario name."""
    description: str
    """What it models, and the choices made where the papers are vague."""
    road: RoadConfig = field(default_factory=RoadConfig)
    mobility: V2xMobilityConfig = field(default_factory=V2xMobilityConfig)
    radio: V2xRadioConfig = field(default_factory=V2xRadioConfig)
    channel: V2xChannelConfig = field(default_factory=V2xChannelConfig)
    traffic: TrafficConfig = field(default_factory=TrafficConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    observation: ObservationConfig = field(default_factory=ObservationConfig)
    backhaul: BackhaulConfig = field(default_factory=BackhaulConfig)
    """Latency models of the links between vehicle nodes and the controller."""
    timing: TimingConfig = field(default_factory=TimingConfig)
    """Clock mode and peer timeouts of the network runner."""
    source: str = "<memory>"
    """File the scenario was loaded from."""

    @property
    def n_steps(self) -> int:
        """Slots per episode, deadline_s / slot_s."""
        return int(round(self.traffic.deadline_s / self.radio.slot_s))


# --------------------------------------------------------------------------- loading


def _split_sequences(
    cls: Any, table: dict[str, Any], where: str
) -> tuple[dict[str, Any], list[tuple[tuple[str, ...], tuple[Any, ...]]]]:
    """Take the ``tuple[X, ...]`` fields (TOML arrays) out of ``table``, type-checked."""
    hints = typing.get_type_hints(cls)
    defaults = {f.name: f for f in dataclasses.fields(cls)}
    rest = dict(table)
    found: list[tuple[tuple[str, ...], tuple[Any, ...]]] = []
    for name, hint in hints.items():
        if name not in table:
            continue
        value = table[name]
        if typing.get_origin(hint) is tuple:
            f = defaults[name]
            assert f.default is not dataclasses.MISSING, f"sequence field {name} needs a default"
            if not isinstance(value, list | tuple):
                raise ScenarioError(f"{where}.{name}: expected an array, got {value!r}")
            item_type = typing.get_args(hint)[0]
            items = tuple(
                check_field(v, item_type, f"{where}.{name}[{i}]") for i, v in enumerate(value)
            )
            found.append(((name,), items))
            del rest[name]
        elif dataclasses.is_dataclass(hint) and isinstance(value, dict):
            sub, sub_found = _split_sequences(hint, value, f"{where}.{name}")
            rest[name] = sub
            found += [((name, *path), items) for path, items in sub_found]
    return rest, found


def _replace_path(obj: Any, path: tuple[str, ...], value: Any) -> Any:
    head, *tail = path
    new = value if not tail else _replace_path(getattr(obj, head), tuple(tail), value)
    return dataclasses.replace(obj, **{head: new})


def build_config(cls: type[T], table: dict[str, Any], where: str) -> T:
    """Build the frozen dataclass ``cls`` from a TOML table with the strict scenario
    loader of :mod:`channel_server.config` (unknown, missing or mistyped fields raise
    ``ScenarioError`` naming ``where`` and the field), extended to ``tuple[X, ...]``
    fields written as TOML arrays."""
    rest, sequences = _split_sequences(cls, table, where)
    obj = build_dataclass(cls, rest, where)
    for path, items in sequences:
        obj = _replace_path(obj, path, items)
    out: T = obj
    return out


def _validate_v2x(s: V2xScenario, where: str) -> None:
    r, m, c, t = s.radio, s.mobility, s.channel, s.traffic
    n_steps = t.deadline_s / r.slot_s
    probs = (m.p_straight, m.p_left, m.p_right)
    checks = [
        (s.road.blocks_x >= 1 and s.road.blocks_y >= 1, "road.blocks_x/blocks_y must be >= 1"),
        (s.road.lanes_per_direction >= 1, "road.lanes_per_direction must be >= 1"),
        (s.road.lane_width_m > 0, "road.lane_width_m must be > 0"),
        (min(s.road.block_width_m, s.road.block_height_m)
         > 4 * s.road.lanes_per_direction * s.road.lane_width_m,
         "road.block_width_m/block_height_m must exceed twice the street width"),
        (0 < m.speed_min_mps <= m.speed_max_mps, "mobility speeds need 0 < min <= max"),
        (min(probs) >= 0 and abs(sum(probs) - 1.0) < 1e-9,
         "mobility.p_straight + p_left + p_right must be 1 (each >= 0)"),
        (r.n_rb >= 1, "radio.n_rb must be >= 1"),
        (r.n_vehicles >= max(r.n_rb, 2), "radio.n_vehicles must be >= max(n_rb, 2)"),
        (1 <= r.v2v_neighbors < r.n_vehicles, "radio.v2v_neighbors must be in [1, n_vehicles)"),
        (r.rb_bandwidth_hz > 0, "radio.rb_bandwidth_hz must be > 0"),
        (r.carrier_hz > 0, "radio.carrier_hz must be > 0"),
        (r.slot_s > 0, "radio.slot_s must be > 0"),
        (len(r.v2v_power_levels_dbm) >= 1, "radio.v2v_power_levels_dbm must not be empty"),
        (r.bs_height_m > r.vehicle_height_m > c.effective_height_offset_m,
         "heights need bs_height_m > vehicle_height_m > channel.effective_height_offset_m"),
        (c.v2i_decorrelation_m > 0 and c.v2v_decorrelation_m > 0,
         "channel decorrelation distances must be > 0"),
        (c.v2i_shadow_std_db >= 0 and c.v2v_shadow_std_db >= 0,
         "channel shadowing std must be >= 0"),
        (c.v2v_min_distance_m > 0, "channel.v2v_min_distance_m must be > 0"),
        (t.payload_bytes >= 1, "traffic.payload_bytes must be >= 1"),
        (t.deadline_s > 0 and abs(n_steps - round(n_steps)) < 1e-6 and round(n_steps) >= 1,
         "traffic.deadline_s must be a positive multiple of radio.slot_s"),
        (s.reward.beta_mbps > 0, "reward.beta_mbps must be > 0"),
        (s.observation.fingerprint_iterations >= 1,
         "observation.fingerprint_iterations must be >= 1"),
        (s.observation.gain_scale_db > 0 and s.observation.interference_scale_db > 0,
         "observation scales must be > 0"),
    ]
    for ok, msg in checks:
        if not ok:
            raise ScenarioError(f"{where}: {msg}")


def v2x_scenario_from_dict(table: dict[str, Any], source: str = "<memory>") -> V2xScenario:
    """Build and validate a V2X scenario from a parsed TOML table."""
    s = build_config(V2xScenario, table, source)
    s = dataclasses.replace(s, source=source)
    _validate_v2x(s, source)
    return s


def load_v2x_scenario(path: str | Path) -> V2xScenario:
    """Load a V2X scenario TOML file; errors name the file and the field."""
    return v2x_scenario_from_dict(read_toml(path), str(path))


def v2x_scenario_to_dict(s: V2xScenario) -> dict[str, Any]:
    """The scenario as a TOML-ready table (the inverse of :func:`v2x_scenario_from_dict`)."""
    def plain(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return list(v) if isinstance(v, tuple) else v

    d: dict[str, Any] = plain(dataclasses.asdict(s))
    d.pop("source")
    return d


def v2x_override(s: V2xScenario, assignments: dict[str, Any]) -> V2xScenario:
    """Return a copy with dotted fields replaced, e.g. {'traffic.payload_bytes': 4240}."""
    return v2x_scenario_from_dict(assign(v2x_scenario_to_dict(s), assignments), s.source)


def is_v2x_table(table: dict[str, Any]) -> bool:
    """A scenario table describes a vehicular world (it has a ``[road]`` section)."""
    return "road" in table


# --------------------------------------------------------------------------- pathloss


def v2i_pathloss_db(distance_m: Any, bs_height_m: float, vehicle_height_m: float) -> Array:
    """``128.1 + 37.6 log10(d3D / 1 km)``, ``d3D`` from the horizontal distance and heights."""
    d = np.asarray(distance_m, dtype=np.float64)
    d3 = np.sqrt(d**2 + (bs_height_m - vehicle_height_m) ** 2)
    out: Array = 128.1 + 37.6 * np.log10(d3 / 1000.0)
    return out


def winner_b1_los_db(
    d_m: Any, carrier_hz: float, h1_eff_m: float, h2_eff_m: float, d_min_m: float,
    far_heights_m: tuple[float, float] | None = None,
) -> Array:
    """WINNER+ B1 LOS pathloss (dB) with effective antenna heights, below/above breakpoint.

    ``far_heights_m`` replaces the heights of the far (beyond breakpoint) formula; the
    reference code passes the actual heights there."""
    d = np.maximum(np.asarray(d_m, dtype=np.float64), d_min_m)
    fc_ghz = carrier_hz / 1e9
    d_bp = 4.0 * h1_eff_m * h2_eff_m * carrier_hz / LIGHT_SPEED_MPS
    h1, h2 = far_heights_m if far_heights_m is not None else (h1_eff_m, h2_eff_m)
    near = 22.7 * np.log10(d) + 41.0 + 20.0 * math.log10(fc_ghz / 5.0)
    far = (40.0 * np.log10(d) + 9.45 - 17.3 * math.log10(h1)
           - 17.3 * math.log10(h2) + 2.7 * math.log10(fc_ghz / 5.0))
    out: Array = np.where(d < d_bp, near, far)
    return out


def winner_b1_nlos_db(
    d1_m: Any, d2_m: Any, carrier_hz: float, h1_eff_m: float, h2_eff_m: float, d_min_m: float,
    far_heights_m: tuple[float, float] | None = None, nj_from_second_leg: bool = False,
) -> Array:
    """WINNER+ B1 Manhattan NLOS pathloss (dB) for street legs d1 = |dx|, d2 = |dy|.

    ``far_heights_m`` and ``nj_from_second_leg`` reproduce the reference code."""
    d1 = np.maximum(np.asarray(d1_m, dtype=np.float64), d_min_m)
    d2 = np.maximum(np.asarray(d2_m, dtype=np.float64), d_min_m)
    fc_ghz = carrier_hz / 1e9

    def leg(dk: Array, dl: Array) -> Array:
        n_j = np.maximum(2.8 - 0.0024 * (dl if nj_from_second_leg else dk), 1.84)
        los = winner_b1_los_db(dk, carrier_hz, h1_eff_m, h2_eff_m, d_min_m, far_heights_m)
        pl: Array = (los + 20.0
                     - 12.5 * n_j + 10.0 * n_j * np.log10(dl) + 3.0 * math.log10(fc_ghz / 5.0))
        return pl

    out: Array = np.minimum(leg(d1, d2), leg(d2, d1))
    return out


def v2v_pathloss_db(xy: Array, los: BoolArray, radio: V2xRadioConfig,
                    channel: V2xChannelConfig) -> Array:
    """Pathloss between all vehicle pairs ``(..., N, N)`` (dB; diagonal meaningless)."""
    delta = xy[..., :, None, :] - xy[..., None, :, :]
    h = radio.vehicle_height_m - channel.effective_height_offset_m
    dmin = channel.v2v_min_distance_m
    ref = channel.v2v_pathloss == "reference-code"
    far = (radio.vehicle_height_m, radio.vehicle_height_m) if ref else None
    d = np.hypot(delta[..., 0], delta[..., 1])
    los_pl = winner_b1_los_db(d, radio.carrier_hz, h, h, dmin, far)
    nlos_pl = winner_b1_nlos_db(np.abs(delta[..., 0]), np.abs(delta[..., 1]),
                                radio.carrier_hz, h, h, dmin, far, ref)
    out: Array = np.where(los, los_pl, nlos_pl)
    return out


# --------------------------------------------------------------------------- random processes


def shadowing_step(
    s_db: Array, moved_m: Any, decorrelation_m: float, std_db: float, rng: np.random.Generator
) -> Array:
    """Distance-correlated log-normal shadowing update (Gudmundson), dB.

    ``s' = a s + sqrt(1 - a^2) N(0, std^2)`` with ``a = exp(-moved / decorrelation)``, so the
    correlation after moving a total distance d is ``exp(-d / decorrelation)``.
    """
    a = np.exp(-np.asarray(moved_m, dtype=np.float64) / decorrelation_m)
    out: Array = a * s_db + np.sqrt(1.0 - a**2) * rng.normal(0.0, std_db, np.shape(s_db))
    return out


def doppler_rho(speed_mps: Any, carrier_hz: float, slot_s: float) -> Array:
    """Lag-1 correlation ``J0(2 pi f_d T)`` of Jakes fading, ``f_d = v f_c / c``."""
    fd = np.asarray(speed_mps, dtype=np.float64) * carrier_hz / LIGHT_SPEED_MPS
    out: Array = bessel_j0(2.0 * math.pi * fd * slot_s)
    return out


def gauss_markov_step(g: ComplexArray, rho: Array, rng: np.random.Generator) -> ComplexArray:
    """``g' = rho g + sqrt(1 - rho^2) w``, ``w ~ CN(0, 1)``, with a per-entry ``rho``."""
    w = complex_normal(rng, g.shape)
    out: ComplexArray = rho * g + np.sqrt(np.maximum(1.0 - rho**2, 0.0)) * w
    return out


# --------------------------------------------------------------------------- links and rates


def nearest_receivers(xy: Array, neighbors: int) -> tuple[IntArray, IntArray]:
    """V2V links: ``tx[k] = k // neighbors`` and ``rx[e, k]`` its (k % neighbors + 1)-th
    nearest other vehicle (Euclidean; ties broken by the lower index)."""
    n = xy.shape[-2]
    d = np.linalg.norm(xy[..., :, None, :] - xy[..., None, :, :], axis=-1)
    d = d + np.where(np.eye(n, dtype=bool), np.inf, 0.0)
    order = np.argsort(d, axis=-1, kind="stable")[..., :neighbors]
    rx: IntArray = order.reshape(*xy.shape[:-2], n * neighbors).astype(np.int64)
    tx: IntArray = np.repeat(np.arange(n, dtype=np.int64), neighbors)
    return tx, rx


@dataclass(frozen=True)
class V2xRates:
    """Outcome of one slot."""

    v2i_sinr: Array
    """SINR of every V2I link, ``(E, M)``."""
    v2v_sinr: Array
    """SINR of every V2V link on its RB, ``(E, K)`` (0 for silent links)."""
    v2i_rate_bps: Array
    """V2I capacity ``W log2(1 + SINR)``, ``(E, M)``, bit/s."""
    v2v_rate_bps: Array
    """V2V capacity, ``(E, K)``, bit/s."""
    v2v_interference_w: Array
    """Interference plus noise each V2V receiver measures on every RB, from the V2I link
    of the RB and every other transmitting V2V link, ``(E, K, M)``, watts."""


def link_rates(
    radio: V2xRadioConfig,
    v2i_gain: Array,
    v2v_gain: Array,
    tx: IntArray,
    rx: IntArray,
    rb: IntArray,
    power_w: Array,
) -> V2xRates:
    """SINR and capacities of all links (paper 000's V2X system).

    ``v2i_gain (E, N, M)``, ``v2v_gain (E, N, N, M)`` linear effective gains; ``tx (K,)``,
    ``rx (E, K)``; ``rb (E, K)`` the RB of every V2V link and ``power_w (E, K)`` its power
    (0 for a silent link).

    V2I link m: ``P_c g[m -> BS, m] / (sum_{k on m} p_k g[tx_k -> BS, m] + noise)``.
    V2V link k on RB m: ``p_k g[tx_k -> rx_k, m] / (P_c g[m -> rx_k, m]
    + sum_{k' != k on m} p_k' g[tx_k' -> rx_k, m] + noise)``.
    """
    n_e, k_n = rb.shape
    m_n = v2i_gain.shape[-1]
    noise = radio.noise_w
    p_c = radio.v2i_power_w
    rbs = np.arange(m_n)
    onehot = (rb[..., None] == rbs).astype(np.float64)  # (E, K, M)
    p_rb = power_w[..., None] * onehot  # power of link k on RB m
    e_idx = np.arange(n_e)[:, None, None]
    # V2I
    g_tx_bs = v2i_gain[:, tx, :]  # (E, K, M)
    i_bs = (p_rb * g_tx_bs).sum(axis=1) + noise  # (E, M)
    s_v2i = p_c * v2i_gain[:, rbs, rbs]  # vehicle m on RB m
    v2i_sinr = s_v2i / i_bs
    # V2V: g_rx[e, k, k', m] = gain from tx of k' to rx of k on RB m
    g_rx = v2v_gain[e_idx, tx[None, None, :], rx[:, :, None]]  # (E, K, K', M)
    from_v2i = p_c * v2v_gain[e_idx, rbs[None, None, :], rx[:, :, None], rbs[None, None, :]]
    others = 1.0 - np.eye(k_n)
    from_v2v = np.einsum("ekjm,ejm,kj->ekm", g_rx, p_rb, others)
    interference = from_v2i + from_v2v + noise  # (E, K, M)
    own = g_rx[:, np.arange(k_n), np.arange(k_n), :]  # (E, K, M)
    signal = power_w * np.take_along_axis(own, rb[..., None], axis=-1)[..., 0]
    v2v_sinr = signal / np.take_along_axis(interference, rb[..., None], axis=-1)[..., 0]
    w = radio.rb_bandwidth_hz
    return V2xRates(
        v2i_sinr=v2i_sinr,
        v2v_sinr=v2v_sinr,
        v2i_rate_bps=w * np.log2(1.0 + v2i_sinr),
        v2v_rate_bps=w * np.log2(1.0 + v2v_sinr),
        v2v_interference_w=interference,
    )


def account_payload(
    remaining_bits: Array,
    rate_bps: Array,
    slot_s: float,
    elapsed_s: Any,
    delivery_time_s: Array,
) -> tuple[Array, Array]:
    """Deliver ``rate * slot_s`` bits of every link in the slot that starts at ``elapsed_s``.

    Returns the remaining payload (never negative) and the delivery times: a link that
    empties its payload in this slot gets ``elapsed_s + slot_s`` (the end of the slot);
    undelivered links keep NaN, delivered ones their time.
    """
    remaining = np.maximum(remaining_bits - rate_bps * slot_s, 0.0)
    done_now = np.isnan(delivery_time_s) & (remaining <= 0.0)
    end = np.broadcast_to(np.asarray(elapsed_s, dtype=np.float64) + slot_s,
                          np.shape(remaining_bits)[:-1])[..., None]
    times: Array = np.where(done_now, end, delivery_time_s)
    return remaining, times


def v2x_reward(
    cfg: RewardConfig,
    v2i_rate_bps: Array,
    v2v_rate_bps: Array,
    delivered: BoolArray,
    elapsed_s: Any,
) -> Array:
    """Reward (13) ``lambda_c sum C_V2I + lambda_v V - lambda_p (T - U_t)`` per episode ``(E,)``.

    Rates in Mbps. ``eq13``: ``V = sum_k C_V2V[k]``; ``revised``: ``V = sum_k (beta if
    link k's payload is delivered by the end of this slot else C_V2V[k])``.
    ``elapsed_s = T - U_t`` is the time already used at the start of the slot.
    """
    c = v2i_rate_bps.sum(-1) / MBPS
    v2v = v2v_rate_bps / MBPS
    if cfg.variant == "revised":
        v2v = np.where(delivered, cfg.beta_mbps, v2v)
    out: Array = (cfg.lambda_c * c + cfg.lambda_v * v2v.sum(-1)
                  - cfg.lambda_p_per_s * np.asarray(elapsed_s, dtype=np.float64))
    return out


# --------------------------------------------------------------------------- the world


class V2xRngs(NamedTuple):
    """The four random streams of the vehicular world."""

    drop: np.random.Generator
    mobility: np.random.Generator
    shadowing: np.random.Generator
    fading: np.random.Generator

    @classmethod
    def from_seed(cls, seed: int) -> V2xRngs:
        """``rng_for(seed, "v2x", <stream>)`` for each stream."""
        return cls(*(rng_for(seed, "v2x", name) for name in cls._fields))


class V2xWorld:
    """Vehicles, large-scale and fast fading of E independent drops, advanced slot by slot.

    ``gains()`` gives the effective linear gains of the current slot; ``advance()`` moves
    the vehicles by one slot and updates shadowing and fading.
    """

    def __init__(self, scenario: V2xScenario, n_envs: int, rngs: V2xRngs) -> None:
        self.scenario = scenario
        r, c = scenario.radio, scenario.channel
        self.n_envs = int(n_envs)
        self._rngs = rngs
        m = scenario.mobility
        self.mobility = ManhattanMobility.drop(
            scenario.road.grid, self.n_envs, r.n_vehicles,
            (m.speed_min_mps, m.speed_max_mps), (m.p_straight, m.p_left, m.p_right),
            rngs.drop, rngs.mobility,
        )
        e, n, k = self.n_envs, r.n_vehicles, r.n_rb
        self.v2i_shadow_db: Array = rngs.shadowing.normal(0.0, c.v2i_shadow_std_db, (e, n))
        self.v2v_shadow_db: Array = _symmetric(
            rngs.shadowing.normal(0.0, c.v2v_shadow_std_db, (e, n, n)))
        self.v2i_fading: ComplexArray = complex_normal(rngs.fading, (e, n, k))
        self.v2v_fading: ComplexArray = complex_normal(rngs.fading, (e, n, n, k))
        self.slot = 0
        self._gains_db: tuple[Array, Array] | None = None
        self._update_pathloss()

    @property
    def positions(self) -> Array:
        return self.mobility.positions

    def _update_pathloss(self) -> None:
        s = self.scenario
        xy = self.positions
        bs = np.array([s.road.bs_x_m, s.road.bs_y_m])
        d_bs = np.linalg.norm(xy - bs, axis=-1)
        self.v2i_pathloss_db = v2i_pathloss_db(d_bs, s.radio.bs_height_m,
                                               s.radio.vehicle_height_m)
        self.los = same_street(s.road.grid, xy)
        self.v2v_pathloss_db = v2v_pathloss_db(xy, self.los, s.radio, s.channel)
        self._gains_db = None

    def gains_db(self) -> tuple[Array, Array]:
        """Effective gains of the current slot, dB: ``v2i (E, N, M)``, ``v2v (E, N, N, M)``."""
        if self._gains_db is None:
            r, c = self.scenario.radio, self.scenario.channel
            tiny = 1e-30
            v2i = (-(self.v2i_pathloss_db + self.v2i_shadow_db)[..., None]
                   + 10.0 * np.log10(np.abs(self.v2i_fading) ** 2 + tiny)
                   + r.vehicle_antenna_gain_dbi + r.bs_antenna_gain_dbi - r.bs_noise_figure_db)
            v2v = (-(self.v2v_pathloss_db + self.v2v_shadow_db)[..., None]
                   + 10.0 * np.log10(np.abs(self.v2v_fading) ** 2 + tiny))
            n = r.n_vehicles
            diag = np.eye(n, dtype=bool)[None, :, :, None]
            v2v = np.where(diag, -c.self_isolation_db, v2v)
            v2v = v2v + 2.0 * r.vehicle_antenna_gain_dbi - r.vehicle_noise_figure_db
            self._gains_db = (v2i, v2v)
        return self._gains_db

    def gains(self) -> tuple[Array, Array]:
        """Effective linear power gains of the current slot (see :meth:`gains_db`)."""
        v2i, v2v = self.gains_db()
        return np.power(10.0, v2i / 10.0), np.power(10.0, v2v / 10.0)

    def fading_rho(self) -> tuple[Array, Array]:
        """Lag-1 fading correlation of every link for the next slot: ``(E, N)`` (V2I) and
        ``(E, N, N)`` (V2V, ``[tx, rx]``)."""
        r, c = self.scenario.radio, self.scenario.channel
        e, n = self.n_envs, r.n_vehicles
        if c.fading == "iid":
            return np.zeros((e, n)), np.zeros((e, n, n))
        speed = self.mobility.speeds_mps
        rho_i = doppler_rho(speed, r.carrier_hz, r.slot_s)
        if c.v2v_doppler == "both-ends":
            rho_v = rho_i[..., :, None] * rho_i[..., None, :]
        elif c.v2v_doppler == "transmitter":
            rho_v = np.broadcast_to(rho_i[..., :, None], (e, n, n)).copy()
        else:
            vel = self.mobility.velocities_mps
            rel = np.linalg.norm(vel[..., :, None, :] - vel[..., None, :, :], axis=-1)
            rho_v = doppler_rho(rel, r.carrier_hz, r.slot_s)
        return rho_i, rho_v

    def advance(self) -> None:
        """Move to the next slot: fading, mobility, shadowing, pathloss."""
        c = self.scenario.channel
        rho_i, rho_v = self.fading_rho()
        self.v2i_fading = gauss_markov_step(self.v2i_fading, rho_i[..., None], self._rngs.fading)
        self.v2v_fading = gauss_markov_step(self.v2v_fading, rho_v[..., None], self._rngs.fading)
        moved = self.mobility.step(self.scenario.radio.slot_s)
        sh = self._rngs.shadowing
        self.v2i_shadow_db = shadowing_step(
            self.v2i_shadow_db, moved, c.v2i_decorrelation_m, c.v2i_shadow_std_db, sh)
        pair_moved = moved[..., :, None] + moved[..., None, :]
        s = shadowing_step(
            self.v2v_shadow_db, pair_moved, c.v2v_decorrelation_m, c.v2v_shadow_std_db, sh)
        self.v2v_shadow_db = _symmetric(s)
        self.slot += 1
        self._update_pathloss()


def _symmetric(a: Array) -> Array:
    """The symmetric matrix (last two axes) built from the strict upper triangle of ``a``."""
    up = np.triu(a, k=1)
    out: Array = up + np.swapaxes(up, -1, -2)
    return out
