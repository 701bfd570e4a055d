"""Local evaluation of trained policies against the classical baselines (paper 001, Sec. IV-B).

``evaluate_local(sources, scenario, n, seed)`` draws ``n`` channel realizations once
(slot 0 of ``Air(radio, seed, episodes=n).reset()``) and runs on exactly those:

* every trained policy (deterministic: the mean action, clipped to [0, 1]); round-robin
  BS orders are drawn per realization from ``rng_for(seed, "evaluate", "order")``, the
  same orders for every policy and every setting;
* WMMSE and FP (the scenario's stopping rules), max-power, random (uniform in
  [0, Pmax], from ``rng_for(seed, "evaluate", "random")``), and the certified optimum
  (branch and bound) when B*K <= 6.

It reports the mean sum-rate (bit/s/Hz and Mbit/s), the optimality gap
``100 (R_opt - R) / R_opt`` in % and the time per allocation, in three settings:

1. ``per_user``: the scenario as trained, per-user limit Pmax (Fig. 11);
2. ``pmax_sweep``: Pmax from 20 to 50 dBm (Fig. 14). The policies are those trained at
   the scenario's Pmax: they see the channel exactly as in training (observations built
   with the training Pmax) and their fractions are scaled by the new Pmax,
   ``p = a * Pmax_new``; the baselines solve each Pmax;
3. ``sum_power``: one budget per BS of Pmax (Fig. 15, ``RadioConfig.sum_power_constraint``).
   Rule for a policy trained with the per-user limit: a BS keeps its K fractions if they
   sum to at most 1 and otherwise scales them down proportionally,
   ``p_bk = Pmax * a_bk / max(1, sum_k a_bk)`` (the per-BS sum never exceeds Pmax, and a
   policy that already fits is unchanged). WMMSE and FP solve the per-BS problem
   (``constraint="per-bs"``, ``bs_budget_w = Pmax``); max-power splits the budget evenly
   (Pmax / K each); random draws uniform fractions and applies the policy's rule. The
   branch and bound handles box constraints only, so this setting has no optimum.
   Paper 001 retrains its policies with the rescaling inside the environment; here the
   per-user policies are rescaled at execution only (no retraining).

Files: ``evaluation.json``, ``evaluation.csv`` (one row per setting, Pmax and method) and
``plots/sum_rate_bars.png``, ``plots/pmax_sweep.png``, ``plots/sum_power_bars.png``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from channel_server.air import Air
from channel_server.config import RadioConfig, Scenario, load_scenario
from channel_server.rates import sum_rate_bps_hz
from controller.baselines.optimum import OptimumResult
from controller.baselines.wmmse import IterInfo
from controller.training.rollout import Variant, scheme_for, variant_dims
from node.observation import obs_central, obs_full, obs_round_robin, round_robin_dims
from node.policy import GaussianPolicy, PolicyConfig, load_arrays
from node.policy_spec import fit_bs_budget, power_fraction
from node.schemes import SCHEMES, Scheme
from node.schemes.cellular import classical
from protocols.seeding import rng_for
from protocols.weights import load as load_weights

Array = npt.NDArray[np.float64]

PMAX_SWEEP_DBM: tuple[float, ...] = (20.0, 25.0, 30.0, 35.0, 40.0, 43.0, 45.0, 50.0)
"""Fig. 14's range, 20..50 dBm, with the training point 43 dBm."""
RESCALE_RULE = "p_bk = Pmax * a_bk / max(1, sum_k a_bk)"


# --------------------------------------------------------------------------- policies


@dataclass(frozen=True)
class TrainedPolicy:
    """A policy loaded from a weights file, with what it was trained for."""

    label: str
    """Name in tables and figures (the scheme, made unique)."""
    scheme: Variant
    """Execution scheme the policy was trained for."""
    policy: GaussianPolicy
    """The network (float64)."""
    path: Path
    """The weights file."""
    meta: dict[str, Any]
    """The file's meta.* entries (algo, seed, pmax_dbm, ...)."""

    @property
    def slug(self) -> str:
        """The label as a file name: "centralized (trpo)" -> "centralized-trpo"."""
        return re.sub(r"[^A-Za-z0-9._-]+", "-", self.label).strip("-")


def weights_file(source: str | Path) -> Path:
    """A weights .npz from a training run dir (best-weights.npz), a seed dir, or the file."""
    p = Path(source)
    if p.is_dir():
        for name in ("best-weights.npz", "weights.npz"):
            if (p / name).is_file():
                return p / name
        raise FileNotFoundError(f"{p}: no best-weights.npz or weights.npz")
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such weights file or run directory")
    return p


def load_policy(source: str | Path, scenario: Scenario, scheme: Variant | None = None,
                label: str | None = None) -> TrainedPolicy:
    """Load the policy of ``source``; its scheme comes from the file unless given."""
    path = weights_file(source)
    artifact = load_weights(path)  # one read: the header's facts and the arrays
    meta = artifact.meta.flat()
    sch = scheme or meta.get("scheme")
    try:
        name = scheme_for(sch).name if isinstance(sch, str) else None
    except ValueError:
        name = None
    if name is None:
        raise ValueError(f"{path}: unknown scheme {sch!r} (pass scheme=...)")
    arrays = dict(artifact.arrays)
    try:  # the scheme's own weights check, as rrmbed run --weights makes it
        SCHEMES.get("cellular", name).check_weights(scenario, arrays, meta)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    cfg = PolicyConfig(*variant_dims(name, scenario.radio))
    policy = GaussianPolicy(cfg)
    load_arrays(policy, arrays)
    return TrainedPolicy(label or name, name, policy, path, meta)


def policy_fractions(
    policy: GaussianPolicy, scheme: Variant, gains: Array, radio: RadioConfig,
    rng: np.random.Generator,
) -> Array:
    """Deterministic power fractions (M, B, K) of ``policy`` on ``gains`` (M, B, K, B).

    ``radio`` is the one the observations are built with (the training Pmax). Round-robin
    orders come from ``rng`` exactly as :func:`controller.training.rollout.play` draws them.
    """
    m, b_n, k_n = gains.shape[0], radio.n_cells, radio.users_per_cell
    exchange = scheme_for(scheme).exchange
    if exchange == "central":
        raw = policy.act(obs_central(gains, radio), "mean")
        return power_fraction(raw, radio.action_map).reshape(m, b_n, k_n)
    if exchange == "none":
        obs = np.stack([obs_full(gains[:, b], b, radio) for b in range(b_n)], axis=1)
        return power_fraction(policy.act(obs, "mean"), radio.action_map)
    if exchange == "chain":
        orders = rng.permuted(np.tile(np.arange(b_n), (m, 1)), axis=1)
        rows = np.arange(m)
        prior = np.zeros((m, b_n, k_n))
        chosen = np.zeros((m, b_n))
        obs = np.empty((m, round_robin_dims(radio)[0]))
        for n in range(b_n):
            acting = orders[:, n]
            for b in range(b_n):
                idx = acting == b
                if idx.any():
                    obs[idx] = obs_round_robin(gains[idx, b], b, prior[idx], chosen[idx], radio)
            prior[rows, acting] = power_fraction(policy.act(obs, "mean"), radio.action_map)
            chosen[rows, acting] = 1.0
        return prior
    raise ValueError(f"unknown scheme {scheme!r}")


# --------------------------------------------------------------------------- one setting


Allocator = Callable[[], Array]


def _timed(fn: Allocator, n: int) -> tuple[Array, float]:
    t0 = time.perf_counter()
    p = fn()
    return p, (time.perf_counter() - t0) / n


def evaluate_setting(
    gains: Array,
    radio: RadioConfig,
    scenario: Scenario,
    policies: Sequence[TrainedPolicy],
    seed: int,
    *,
    obs_radio: RadioConfig | None = None,
    sum_power: bool = False,
    with_optimum: bool = True,
) -> dict[str, Any]:
    """Every method on ``gains`` under ``radio`` (its Pmax; per-BS budget if ``sum_power``).

    Returns {"pmax_dbm", "methods": {name: {mean_sum_rate_bps_hz, mean_sum_rate_mbps,
    std_sum_rate_bps_hz, gap_pct, time_per_alloc_s}}, ...}.
    """
    n, noise, pmax = gains.shape[0], radio.noise_w, radio.pmax_w
    radio = dataclasses.replace(radio, sum_power_constraint=sum_power)
    powers: dict[str, Array] = {}
    times: dict[str, float] = {}
    extra: dict[str, Any] = {}
    # paper 001's figure order: the optimum, the policies, then the classical schemes
    schemes = [s for s in classical(radio) if with_optimum or not s.options.get("optimal")]
    optimal = [s for s in schemes if s.options.get("optimal")]

    def allocate(s: Scheme) -> None:
        rng = rng_for(seed, "evaluate", s.name)  # only a stochastic allocator draws
        (powers[s.name], info), times[s.name] = _timed_pair(
            lambda: s.allocate(gains, radio, scenario.baselines, rng), n)
        if isinstance(info, OptimumResult):
            extra[f"{s.name}_max_certified_gap"] = float(info.gap.max())
        elif isinstance(info, IterInfo):
            extra[f"{s.name}_mean_iterations"] = float(info.iterations.mean())

    for s in optimal:
        allocate(s)
    for pol in policies:
        order_rng = rng_for(seed, "evaluate", "order")
        o_radio = obs_radio or radio

        def run(pol: TrainedPolicy = pol, rng: np.random.Generator = order_rng,
                o_radio: RadioConfig = o_radio) -> Array:
            frac = policy_fractions(pol.policy, pol.scheme, gains, o_radio, rng)
            return (fit_bs_budget(frac) if sum_power else frac) * pmax

        powers[pol.label], times[pol.label] = _timed(run, n)
    for s in schemes:
        if s not in optimal:
            allocate(s)

    rates = {name: sum_rate_bps_hz(gains, p, noise) for name, p in powers.items()}
    ref = float(rates[optimal[0].name].mean()) if optimal else None
    mbps = radio.bandwidth_hz / 1e6
    methods: dict[str, Any] = {}
    for name, r in rates.items():
        mean = float(r.mean())
        methods[name] = {
            "mean_sum_rate_bps_hz": mean,
            "mean_sum_rate_mbps": mean * mbps,
            "std_sum_rate_bps_hz": float(r.std()),
            "gap_pct": None if ref is None else 100.0 * (ref - mean) / ref,
            "time_per_alloc_s": times[name],
        }
    if sum_power:  # the constraint every method must meet
        per_bs = max(float(p.sum(axis=-1).max() / pmax) for p in powers.values())
        extra["max_bs_power_over_budget"] = per_bs
    return {"pmax_dbm": radio.pmax_dbm, "sum_power_constraint": sum_power,
            "methods": methods, **extra}


def _timed_pair(fn: Callable[[], tuple[Array, Any]], n: int) -> tuple[tuple[Array, Any], float]:
    t0 = time.perf_counter()
    out = fn()
    return out, (time.perf_counter() - t0) / n


# --------------------------------------------------------------------------- the driver


def evaluate_local(
    sources: str | Path | Sequence[str | Path],
    scenario_path: str | Path | Scenario,
    n: int = 1000,
    seed: int = 0,
    *,
    out: str | Path | None = None,
    sweep_dbm: Sequence[float] = PMAX_SWEEP_DBM,
    sum_power: bool = True,
    figures: bool = True,
    sweep_optimum: bool = True,
) -> dict[str, Any]:
    """Evaluate one or more trained policies (run dirs or weights files) on ``n`` drops.

    ``sources``: a training run dir (its best-weights.npz), a seed dir (weights.npz) or a
    weights file, or a list of them (e.g. the centralized, round-robin and full runs for
    Fig. 11). ``out`` defaults to the first source's directory. An empty ``sweep_dbm``
    skips Fig. 14, ``sum_power=False`` skips Fig. 15. Returns what evaluation.json holds.
    """
    scenario = (scenario_path if isinstance(scenario_path, Scenario)
                else load_scenario(scenario_path))
    radio = scenario.radio
    srcs = [sources] if isinstance(sources, str | Path) else list(sources)
    policies = load_policies(srcs, scenario)
    out_dir = Path(out) if out is not None else _default_out(srcs)
    t_start = time.perf_counter()
    gains = Air(radio, seed, episodes=n).reset().copy()
    trained = {float(p.meta.get("pmax_dbm", radio.pmax_dbm)) for p in policies}
    if len(trained) > 1:
        raise ValueError(f"policies trained at different Pmax: {sorted(trained)} dBm")
    obs_radio = dataclasses.replace(radio, pmax_dbm=trained.pop()) if trained else radio

    result: dict[str, Any] = {
        "scenario": scenario.name,
        "n": n,
        "seed": seed,
        "bandwidth_hz": radio.bandwidth_hz,
        "policies": {p.label: {"path": str(p.path), "scheme": p.scheme, **p.meta}
                     for p in policies},
        "per_user": evaluate_setting(gains, dataclasses.replace(radio, sum_power_constraint=False),
                                     scenario, policies, seed, obs_radio=obs_radio),
    }
    if sweep_dbm:
        points = [evaluate_setting(gains, dataclasses.replace(radio, pmax_dbm=float(d),
                                                              sum_power_constraint=False),
                                   scenario, policies, seed, obs_radio=obs_radio,
                                   with_optimum=sweep_optimum)
                  for d in sweep_dbm]
        result["pmax_sweep"] = {
            "pmax_dbm": [float(d) for d in sweep_dbm],
            "trained_pmax_dbm": obs_radio.pmax_dbm,
            "rule": "p = a * Pmax (policy fractions a from the policy trained at "
                    f"{obs_radio.pmax_dbm:g} dBm, observations as in training)",
            "points": points,
        }
    if sum_power:
        result["sum_power"] = {
            "budget_dbm": radio.pmax_dbm,
            "rule": RESCALE_RULE,
            **evaluate_setting(gains, dataclasses.replace(radio, sum_power_constraint=True),
                               scenario, policies, seed, obs_radio=obs_radio, sum_power=True),
        }
    result["wall_s"] = time.perf_counter() - t_start
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "evaluation.json").write_text(json.dumps(result, indent=2) + "\n")
    write_csv(out_dir / "evaluation.csv", result)
    if figures:
        result["figures"] = [str(p) for p in make_figures(result, out_dir / "plots")]
        (out_dir / "evaluation.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def load_policies(srcs: Sequence[str | Path], scenario: Scenario) -> list[TrainedPolicy]:
    """The policies of ``srcs``, labelled as in the tables (two of one scheme get a tag)."""
    loaded = [load_policy(s, scenario) for s in srcs]
    counts: dict[str, int] = {}
    for p in loaded:
        counts[p.scheme] = counts.get(p.scheme, 0) + 1
    out = []
    for p in loaded:
        if counts[p.scheme] > 1:  # two policies of one scheme: name them by learner or file
            same = [q for q in loaded if q.scheme == p.scheme]
            algos = [q.meta.get("algo") for q in same]
            tag = p.meta.get("algo") if None not in algos and len(set(algos)) == len(same) \
                else p.path.parent.name
            p = dataclasses.replace(p, label=f"{p.scheme} ({tag})")
        out.append(p)
    return out


def _default_out(srcs: Sequence[str | Path]) -> Path:
    first = Path(srcs[0]) if srcs else Path(".")
    return first if first.is_dir() else first.parent


def _rows(result: dict[str, Any]) -> list[tuple[str, float, dict[str, Any]]]:
    rows = [("per-user", result["per_user"]["pmax_dbm"], result["per_user"])]
    for pt in result.get("pmax_sweep", {}).get("points", []):
        rows.append(("pmax-sweep", pt["pmax_dbm"], pt))
    if "sum_power" in result:
        rows.append(("sum-power", result["sum_power"]["pmax_dbm"], result["sum_power"]))
    return rows


def write_csv(path: Path, result: dict[str, Any]) -> None:
    cols = ("setting", "pmax_dbm", "method", "mean_sum_rate_bps_hz", "mean_sum_rate_mbps",
            "std_sum_rate_bps_hz", "gap_pct", "time_per_alloc_s")
    with path.open("w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(cols)
        for setting, pmax_dbm, block in _rows(result):
            for name, m in block["methods"].items():
                gap = "" if m["gap_pct"] is None else repr(m["gap_pct"])
                wr.writerow([setting, repr(pmax_dbm), name, repr(m["mean_sum_rate_bps_hz"]),
                             repr(m["mean_sum_rate_mbps"]), repr(m["std_sum_rate_bps_hz"]),
                             gap, repr(m["time_per_alloc_s"])])


# --------------------------------------------------------------------------- figures


def _paper_order(names: Sequence[str]) -> list[str]:
    """Bars in paper 001's order: the optimum, the RL schemes (in the given order), then
    the classical schemes from the best to the simplest (FP, WMMSE, random, max-power)."""
    head = [n for n in _optimal() if n in names]
    tail = [s.name for s in classical() if s.name in names and s.name not in head]
    mid = [n for n in names if n not in head and n not in tail]
    return head + mid + tail


def _optimal() -> list[str]:
    """The classical schemes whose powers are the certified optimum."""
    return [s.name for s in classical() if s.options.get("optimal")]


def make_figures(result: dict[str, Any], plots_dir: Path) -> list[Path]:
    """Fig. 11 (bars), Fig. 14 (Pmax sweep), Fig. 15 (sum-power bars) as PNGs."""
    from controller.evaluation.plots import plot_bars, plot_pmax_sweep

    name, n = result["scenario"], result["n"]
    made = []
    methods = result["per_user"]["methods"]
    order = _paper_order(list(methods))
    gaps = {k: f"gap {methods[k]['gap_pct']:.1f} %" for k in order
            if methods[k]["gap_pct"] is not None and k not in _optimal()}
    made.append(plot_bars(
        {k: methods[k]["mean_sum_rate_mbps"] for k in order}, plots_dir / "sum_rate_bars.png",
        f"{name}: average sum-rate over {n} channel realizations, "
        f"Pmax = {result['per_user']['pmax_dbm']:g} dBm per user", notes=gaps))
    if "pmax_sweep" in result:
        sw = result["pmax_sweep"]
        names = _paper_order(list(sw["points"][0]["methods"]))
        series = {k: [pt["methods"][k]["mean_sum_rate_mbps"] for pt in sw["points"]]
                  for k in names}
        made.append(plot_pmax_sweep(
            sw["pmax_dbm"], series, plots_dir / "pmax_sweep.png",
            f"{name}: sum-rate vs Pmax ({n} realizations; RL output scaled)",
            trained_dbm=sw["trained_pmax_dbm"], reference=next(iter(_optimal()), None)))
    if "sum_power" in result:
        sp = result["sum_power"]["methods"]
        order = _paper_order(list(sp))
        made.append(plot_bars(
            {k: sp[k]["mean_sum_rate_mbps"] for k in order}, plots_dir / "sum_power_bars.png",
            f"{name}: sum-power constraint {result['sum_power']['budget_dbm']:g} dBm per BS "
            f"({n} realizations)\nRL policies trained per-user, rescaled: "
            f"p_bk = Pmax a_bk / max(1, sum_k a_bk); WMMSE, FP solve the per-BS problem"))
    return made


def print_evaluation(result: dict[str, Any]) -> None:
    """The per-user and sum-power tables (rich)."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console = Console(width=140)
    for key, title in (("per_user", "per-user Pmax"), ("sum_power", "per-BS sum power")):
        if key not in result:
            continue
        block = result[key]
        t = Table(title=f"{result['scenario']}: {title} {block['pmax_dbm']:g} dBm, "
                        f"{result['n']} realizations (seed {result['seed']})")
        for col in ("method", "bit/s/Hz", "Mbit/s", "gap to optimum", "time/alloc (s)"):
            t.add_column(col, justify="left" if col == "method" else "right")
        for name in _paper_order(list(block["methods"])):
            m = block["methods"][name]
            gap = "-" if m["gap_pct"] is None else f"{m['gap_pct']:.2f}%"
            t.add_row(name, f"{m['mean_sum_rate_bps_hz']:.4f}", f"{m['mean_sum_rate_mbps']:.2f}",
                      gap, f"{m['time_per_alloc_s']:.2e}")
        console.print(t)
    if "pmax_sweep" in result:
        sw = result["pmax_sweep"]
        names = _paper_order(list(sw["points"][0]["methods"]))
        t = Table(title="sum-rate (Mbit/s) vs Pmax")
        t.add_column("method")
        for d in sw["pmax_dbm"]:
            t.add_column(f"{d:g} dBm", justify="right")
        for name in names:
            t.add_row(name, *[f"{pt['methods'][name]['mean_sum_rate_mbps']:.2f}"
                              for pt in sw["points"]])
        console.print(t)
