"""Scenario configuration: TOML files loaded into frozen dataclasses.

Field names carry their units. Derived values are properties, never written back.
A missing, unknown or mistyped field raises :class:`ScenarioError` naming the
field and the file.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from channel_server.demands import AlcorSettings, DemandConfig, demand_problems
from protocols.wire import ArrayEncoding, WireFormat, key_problems

LIGHT_SPEED_MPS = 299_792_458.0


class ScenarioError(ValueError):
    """A scenario file is missing, malformed, or has a wrong field."""



def bessel_j0(x: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Bessel J0, the lag correlation of Jakes' fading. scipy is imported here, not at the
    top: only the channel server needs it, and it adds a quarter of a second to the start
    of every process that reads a scenario."""
    from scipy.special import j0

    out: npt.NDArray[np.float64] = j0(x)
    return out

@dataclass(frozen=True)
class RadioConfig:
    """Multi-cell downlink radio (paper 001, Table I)."""

    layout: Literal["3cell", "7cell-wrap"]
    """Cell layout: three adjacent hexagons, or seven hexagons with wraparound."""
    n_cells: int
    """B, the number of base stations (one per cell)."""
    users_per_cell: int
    """K, single-antenna users served by each BS."""
    cell_radius_m: float
    """Hexagon circumradius, metres."""
    min_distance_m: float
    """Users are dropped at least this far from their BS, metres."""
    d0_m: float
    """Reference distance of the pathloss (1 + d/d0)^-alpha, metres."""
    pathloss_exponent: float
    """alpha of the pathloss."""
    bandwidth_hz: float
    """System bandwidth W, Hz."""
    pmax_dbm: float
    """Per-user maximum transmit power, dBm."""
    noise_psd_dbm_hz: float
    """Noise power spectral density N0, dBm/Hz."""
    noise_figure_db: float
    """Receiver noise figure, dB."""
    carrier_hz: float
    """Carrier frequency, Hz (Doppler from user speed)."""
    slot_s: float
    """Slot duration T, seconds."""
    fading: Literal["iid", "gauss-markov", "jakes"]
    """Small-scale fading process: i.i.d. per slot, first-order Gauss-Markov, or
    sum-of-sinusoids Jakes."""
    doppler_hz: float
    """Maximum Doppler frequency f_d, Hz (ignored for i.i.d. fading)."""
    jakes_paths: int = 16
    """Number of sinusoids per link for the Jakes generator."""
    mobility: Literal["static", "random-walk", "waypoint"] = "static"
    """User mobility inside the cell; pathloss is recomputed every slot if not static."""
    user_speed_mps: float = 0.0
    """User speed for random-walk / waypoint mobility, m/s."""
    sum_power_constraint: bool = False
    """If true, a BS's K powers share one budget of Pmax (paper 001, Fig. 15: "a
    sum-power constraint of 43 dBm") instead of Pmax each."""
    feature_center_db: float = 20.0
    """How a policy sees a channel gain: its full-power SNR in dB enters as
    ``(SNR - feature_center_db) / feature_scale_db``, clipped to [-3, 3]
    (:func:`node.observation.gain_features`), dB."""
    feature_scale_db: float = 20.0
    """The observation's dB per unit (see ``feature_center_db``), dB."""
    action_map: Literal["clip", "sigmoid", "log"] = "clip"
    """How a policy's raw Gaussian action becomes a power fraction in [0, 1]
    (:func:`node.policy_spec.power_fraction`): clipped (paper 001's reading), squashed by
    a sigmoid, or as a log-power (raw 0..1 spans -30..0 dB)."""

    @property
    def pmax_w(self) -> float:
        return float(10.0 ** ((self.pmax_dbm - 30.0) / 10.0))

    @property
    def noise_dbm(self) -> float:
        return self.noise_psd_dbm_hz + 10.0 * math.log10(self.bandwidth_hz) + self.noise_figure_db

    @property
    def noise_w(self) -> float:
        return float(10.0 ** ((self.noise_dbm - 30.0) / 10.0))

    @property
    def rho(self) -> float:
        """Lag-1 correlation of the Gauss-Markov fading, J0(2 pi f_d T); 0 for i.i.d."""
        if self.fading == "iid":
            return 0.0
        return float(bessel_j0(2.0 * np.pi * self.doppler_hz * self.slot_s))

    @property
    def n_links(self) -> int:
        return self.n_cells * self.users_per_cell


@dataclass(frozen=True)
class LinkLatencyConfig:
    """Latency model of one backhaul link."""

    model: Literal["constant", "uniform", "lognormal"] = "constant"
    """constant: latency_s; uniform: latency_s + U(0, jitter_s); lognormal: median
    latency_s with log-standard-deviation sigma."""
    latency_s: float = 0.001
    """Base (or median) one-way latency, seconds."""
    jitter_s: float = 0.0
    """Width of the uniform jitter, seconds."""
    sigma: float = 0.0
    """Log-standard-deviation of the lognormal model."""
    loss_probability: float = 0.0
    """Probability that a message is lost on this link."""


@dataclass(frozen=True)
class BackhaulConfig:
    """Backhaul links: a default model, plus per-link overrides keyed 'src->dst'."""

    default: LinkLatencyConfig = field(default_factory=LinkLatencyConfig)
    """Model of every link without an override."""
    links: dict[str, LinkLatencyConfig] = field(default_factory=dict)
    """Overrides keyed 'node-0->node-1', 'node-2->controller', ..."""

    def link(self, src: str, dst: str) -> LinkLatencyConfig:
        return self.links.get(f"{src}->{dst}", self.default)


@dataclass(frozen=True)
class TimingConfig:
    """Clock mode, deadlines and compute-time model."""

    clock: Literal["fast", "realtime"] = "fast"
    """fast: no sleeping, latency accounted; realtime: messages held for their latency."""
    deadline_s: float = 0.010
    """A decision whose chain latency exceeds this is a miss (falls back)."""
    compute_model: Literal["fixed", "measured"] = "fixed"
    """fixed: every decision costs compute_s (deterministic); measured: wall time."""
    compute_s: float = 0.0005
    """Modelled compute time of one decision, seconds."""
    peer_timeout_s: float = 5.0
    """Wall-clock time after which a silent peer is declared lost."""
    heartbeat_s: float = 0.5
    """Over the network, every process beats to the peers it watches this often (seconds;
    0: no beats); a watched peer silent for 3 beats is declared lost."""


@dataclass(frozen=True)
class WireConfig:
    """How each process puts on the wire the arrays its messages exchange: the fields a
    message kind declares ``EXCHANGED`` (:mod:`protocols.wire`). A scenario kind whose
    scenario has a ``wire`` field of this type gets it applied by every process
    (:func:`wire_format_of`); the default sends every array as computed (float64), the
    very bytes of a run without ``[wire]``.

    Cellular: ``power_forward`` (round-robin: the powers chosen so far, watts),
    ``csi_upload`` (central schemes: a BS's CSI slice, linear power gains) and
    ``decision`` (central schemes: the powers returned, watts) are exchanged; the air's
    messages (the emulated radio), the controller's outcomes, experience and weights are
    not. Powers quantize well linearly over [0, Pmax]; gains span 150 dB, so give
    ``csi_upload`` its own entry with ``scale = "db"`` (e.g. [-180, -30] dB).

    Each entry is an :class:`~protocols.wire.ArrayEncoding`: ``encoding`` (float64,
    float32, float16, uint16, uint8), ``scale`` (linear or db), and the range ``lo``,
    ``hi`` in the field's unit (dB for scale db) that values are clipped to; the uint
    encodings quantize it uniformly in 2^bits - 1 steps of (hi - lo) / (2^bits - 1), so a
    value in range comes back within half a step. Only the sender needs this table: the
    frame says how each array was encoded.
    """

    default: ArrayEncoding = field(default_factory=ArrayEncoding)
    """Encoding of every exchanged array without an entry in ``arrays``."""
    arrays: dict[str, ArrayEncoding] = field(default_factory=dict)
    """Entries keyed ``kind`` (every exchanged field of that message kind, e.g.
    ``decision``) or ``kind.field`` (``csi_upload.gains``), the more specific first."""

    def format(self) -> WireFormat | None:
        """What a sending process's codec applies (None: every array as computed)."""
        wire = WireFormat(self.default, dict(self.arrays))
        return None if wire.identity else wire


def wire_format_of(scenario: Any) -> WireFormat | None:
    """The wire format of a scenario of any kind: from its ``wire`` field (a
    :class:`WireConfig`), None when it has none or sends every array as computed."""
    wire = getattr(scenario, "wire", None)
    return wire.format() if isinstance(wire, WireConfig) else None


@dataclass(frozen=True)
class BaselinesConfig:
    """Stopping rules of the classical allocators run by the controller."""

    wmmse_tol: float = 1e-5
    """WMMSE stops when the relative sum-rate improvement of one iteration is below this."""
    wmmse_max_iter: int = 500
    """WMMSE iteration cap."""
    fp_tol: float = 1e-5
    """FP stops when the relative sum-rate improvement of one iteration is below this."""
    fp_max_iter: int = 500
    """FP iteration cap."""
    optimum_gap: float = 1e-3
    """Relative gap within which the reference optimum is certified (branch and bound)."""


@dataclass(frozen=True)
class Scenario:
    """A network setting: radio, backhaul and timing."""

    name: str
    """Scenario name."""
    description: str
    """One paragraph on what it models, and choices made where the paper is vague."""
    radio: RadioConfig
    backhaul: BackhaulConfig = field(default_factory=BackhaulConfig)
    timing: TimingConfig = field(default_factory=TimingConfig)
    baselines: BaselinesConfig = field(default_factory=BaselinesConfig)
    source: str = "<memory>"
    """File the scenario was loaded from."""
    wire: WireConfig = field(default_factory=WireConfig)
    """Encodings of the exchanged arrays (optional ``[wire]`` table; default float64)."""
    demands: DemandConfig = field(default_factory=DemandConfig)
    """Minimum average rates per user, user ``b * K + k`` (optional; the ALCOR schemes meet
    them, every run with demands reports its violation)."""
    alcor: AlcorSettings = field(default_factory=AlcorSettings)
    """Algorithm 1's parameters (the ALCOR schemes; optional)."""


# --------------------------------------------------------------------------- loading


def check_field(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ScenarioError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ScenarioError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ScenarioError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ScenarioError(f"{where}: expected a string, got {value!r}")
        return value
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ScenarioError(f"{where}: expected one of {list(allowed)}, got {value!r}")
        return value
    if origin is tuple and len(args := typing.get_args(tp)) == 2 and args[1] is Ellipsis:
        if not isinstance(value, list | tuple):
            raise ScenarioError(f"{where}: expected an array, got {value!r}")
        return tuple(check_field(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ScenarioError(f"{where}: expected a table, got {value!r}")
        _, vt = typing.get_args(tp)
        return {str(k): check_field(v, vt, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ScenarioError(f"{where}: expected a table, got {value!r}")
        return build_dataclass(tp, value, where)
    if isinstance(tp, types.UnionType):
        raise ScenarioError(f"{where}: unsupported union type")
    raise ScenarioError(f"{where}: unsupported type {tp!r}")


def build_dataclass(cls: Any, table: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise ScenarioError(f"{where}: unknown field {unknown[0]!r} (known: {sorted(fields)})")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        if name == "source":
            continue
        if name not in table:
            no_default = (
                f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            )
            if no_default:
                raise ScenarioError(f"{where}: missing field {name!r}")
            continue
        kwargs[name] = check_field(table[name], hints[name], f"{where}.{name}")
    try:
        return cls(**kwargs)
    except ScenarioError:
        raise
    except ValueError as e:  # a dataclass that checks itself (protocols.wire.ArrayEncoding)
        raise ScenarioError(f"{where}: {e}") from e


def _validate(s: Scenario, where: str) -> None:
    r = s.radio
    checks = [
        (r.n_cells >= 1, "radio.n_cells must be >= 1"),
        (r.users_per_cell >= 1, "radio.users_per_cell must be >= 1"),
        (r.layout != "3cell" or r.n_cells == 3, "radio.n_cells must be 3 for layout '3cell'"),
        (r.layout != "7cell-wrap" or r.n_cells == 7,
         "radio.n_cells must be 7 for layout '7cell-wrap'"),
        (r.cell_radius_m > r.min_distance_m >= 0, "radio.min_distance_m must be in [0, radius)"),
        (r.d0_m > 0, "radio.d0_m must be > 0"),
        (r.feature_scale_db > 0, "radio.feature_scale_db must be > 0"),
        (r.bandwidth_hz > 0, "radio.bandwidth_hz must be > 0"),
        (r.slot_s > 0, "radio.slot_s must be > 0"),
        (r.doppler_hz >= 0, "radio.doppler_hz must be >= 0"),
        (r.jakes_paths >= 1, "radio.jakes_paths must be >= 1"),
        (r.user_speed_mps >= 0, "radio.user_speed_mps must be >= 0"),
        (s.timing.deadline_s > 0, "timing.deadline_s must be > 0"),
        (s.timing.peer_timeout_s > 0, "timing.peer_timeout_s must be > 0"),
        (s.timing.heartbeat_s >= 0, "timing.heartbeat_s must be >= 0"),
        (s.baselines.wmmse_tol > 0 and s.baselines.fp_tol > 0, "baselines tolerances must be > 0"),
        (s.baselines.wmmse_max_iter >= 1 and s.baselines.fp_max_iter >= 1,
         "baselines iteration caps must be >= 1"),
        (0 < s.baselines.optimum_gap < 1, "baselines.optimum_gap must be in (0, 1)"),
    ]
    for link_name, link in [("default", s.backhaul.default), *s.backhaul.links.items()]:
        checks.append((0.0 <= link.loss_probability < 1.0,
                       f"backhaul.{link_name}.loss_probability must be in [0, 1)"))
        checks.append((link.latency_s >= 0, f"backhaul.{link_name}.latency_s must be >= 0"))
    checks += [(False, f"wire.arrays: {p}") for p in key_problems(s.wire.arrays)]
    checks += [(False, p) for p in demand_problems(s.demands, s.alcor, r.n_links)]
    for ok, msg in checks:
        if not ok:
            raise ScenarioError(f"{where}: {msg}")


def scenario_from_dict(table: dict[str, Any], source: str = "<memory>") -> Scenario:
    """Build and validate a scenario from a parsed TOML table."""
    s: Scenario = dataclasses.replace(build_dataclass(Scenario, table, source), source=source)
    _validate(s, source)
    return s


def read_toml(path: str | Path) -> dict[str, Any]:
    """The table of a scenario file; a missing file or bad TOML is a ScenarioError."""
    p = Path(path)
    if not p.is_file():
        raise ScenarioError(f"{p}: scenario file not found")
    try:
        return tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"{p}: not valid TOML: {e}") from e


def load_scenario(path: str | Path) -> Scenario:
    """Load a scenario TOML file; errors name the file and the field."""
    return scenario_from_dict(read_toml(path), str(path))


def override(s: Scenario, assignments: dict[str, Any]) -> Scenario:
    """Return a copy with dotted fields replaced, e.g. {'radio.pmax_dbm': 30}."""
    return scenario_from_dict(assign(scenario_to_dict(s), assignments), s.source)


def assign(table: dict[str, Any], assignments: dict[str, Any]) -> dict[str, Any]:
    """Set dotted fields of a scenario table in place (unknown fields raise)."""
    for dotted, value in assignments.items():
        node = table
        *parents, leaf = dotted.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise ScenarioError(f"override {dotted!r}: no section {part!r}")
            node = node[part]
        if leaf not in node and parents not in (["backhaul", "links"], ["wire", "arrays"]):
            raise ScenarioError(f"override {dotted!r}: unknown field {leaf!r}")
        node[leaf] = value
    return table


def scenario_to_dict(s: Scenario) -> dict[str, Any]:
    d = dataclasses.asdict(s)
    d.pop("source")
    return d


OPTIONAL_TABLES = {"wire": WireConfig, "demands": DemandConfig, "alcor": AlcorSettings}
"""Tables a scenario may leave out, which came after the first scenarios."""


def scenario_to_compact_dict(s: Scenario) -> dict[str, Any]:
    """:func:`scenario_to_dict` without the optional tables that are their defaults: what the
    processes of a run get, so a scenario without them travels as it did before they
    existed."""
    d = scenario_to_dict(s)
    for name, default in OPTIONAL_TABLES.items():
        if getattr(s, name) == default():
            d.pop(name)
    return d


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} to TOML")


def to_toml(table: dict[str, Any], prefix: str = "") -> str:
    """Write a nested dict as TOML (scalars first, then sub-tables)."""
    lines = []
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in table.items() if isinstance(v, dict)}
    if prefix and (scalars or not tables):
        lines.append(f"[{prefix}]")
    lines += [f"{k} = {_toml_value(v)}" for k, v in scalars.items()]
    out = "\n".join(lines) + ("\n\n" if lines else "")
    for k, v in tables.items():
        key = k if "." not in k and ">" not in k else f'"{k}"'
        out += to_toml(v, f"{prefix}.{key}" if prefix else key)
    return out
