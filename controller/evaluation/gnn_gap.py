"""`rrmbed gnn gap`: paper 003's measure, the optimality gap of the MLP and the MPGNN on the
K-user interference channel, against K and against the number of training samples M.

The paper's claim (Example 1): with M samples, the MLP's optimality gap is O(sqrt(K) eps)
when the MPGNN's is O(eps), so ``gap_MLP / gap_GNN`` grows as sqrt(K). Measured here:

* every (network, K, M, seed) of the K sweep (``ks`` at M = ``m``) and the M sweep (``ms``
  at K = ``m_k``) is trained by :func:`controller.training.gnn_train.train_ic` (both
  networks on the same training and validation sets, drawn from the seed) and tested on a
  held-out test set of ``test_samples`` samples from its own stream
  (``("ic-gap", "test", form, K)``);
* optimality gap = ``1 - mean sum rate / mean reference sum rate``, in percent, over the
  test set (a ratio of means, as IGCNet and "learning to optimize" report "percent of
  WMMSE"); reference = the certified global optimum (branch and bound, relative gap 1e-3)
  in the Gaussian form where K <= 6 (the geometric form's SNRs defeat it), else the best
  of WMMSE from ``random_starts + 1`` starts (full power and ``random_starts`` uniform
  random points), which the table names. Against the latter a
  gap can be (slightly) negative: the network beat every WMMSE start;
* the ratio ``gap_MLP / gap_GNN`` per K (means over seeds) against sqrt(K), with the
  least-squares line through the origin (its slope, and R^2 against the mean ratio: near 1
  if the line explains the trend, 0 or below if a constant does as well), and the power
  law ``ratio ~ K^alpha`` fitted on log-log axes (alpha = 0.5 is the claim);
* generalization: the MPGNN trained at ``gen_k`` (the K sweep's network when it has that
  K, else one trained here) evaluated without retraining at ``gen_k x factor`` for each of
  ``gen_factors`` and, in the geometric form, on a layout ``dense_factor`` times denser
  (a smaller square, same K); each as a fraction of WMMSE's sum rate (from full power) on
  its test set, and its gap to the reference.

Forms: ``gaussian`` (CN(0, 1) gains, SNR ``snr_db``) or ``geometric`` (the authors'
weighted power control setting; *choice*: the square's side grows with K so that the
density stays ``density_per_km2`` links per km^2, the K = 50 in 1000 m x 1000 m of the
scenario file ic-geo-k50 by default; at a fixed area a small K would be links too far
apart to interfere).

``results.csv`` (a row per network, K, M and seed, appended as each finishes; Ctrl-C keeps
them and draws the figures of what finished), ``generalization.csv`` (likewise),
``results.json`` (everything, with the analysis), ``gap_vs_k.png``, ``gap_vs_m.png``,
``ratio_vs_sqrtk.png``, ``generalization.png``.
"""

from __future__ import annotations

import dataclasses
import math
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from channel_server.interference import Form, IcScenario, ic_scenario_from_dict, sum_rates
from controller.baselines.ic import best_wmmse, ic_optimum
from controller.baselines.optimum import MAX_LINKS
from controller.evaluation.files import CsvStream, write_json
from controller.learners.gnn import IcLearner
from controller.training.gnn_train import (
    IcTrainConfig,
    Samples,
    dense_scheme,
    draw,
    graph_scheme,
    train_ic,
)
from node.schemes import Scheme

Progress = Callable[[int, int, str], None]
"""``(training steps done, steps in all, what runs now)``."""
COLUMNS = ("arch", "role", "form", "n_links", "samples", "seed", "mode", "sum_rate",
           "reference_sum_rate", "reference", "gap_pct", "wmmse_sum_rate", "fraction_of_wmmse",
           "max_power_sum_rate", "best_epoch", "steps", "train_wall_s")
"""results.csv's columns; sum rates: mean per test sample, bit/s/Hz."""
GEN_COLUMNS = ("form", "trained_n_links", "test_n_links", "layout", "area_m", "seed",
               "samples", "sum_rate", "wmmse_sum_rate", "fraction_of_wmmse",
               "reference_sum_rate", "reference", "gap_pct", "max_power_sum_rate")
"""generalization.csv's columns."""
GEOMETRIC_AREA_K50_M = 1000.0
"""The geometric drop of ic-geo-k50: 50 links in this square's side, metres."""


@dataclass(frozen=True)
class GapConfig:
    """What ``rrmbed gnn gap`` measures."""

    form: Form = "gaussian"
    """Channel form of the K and M sweeps."""
    snr_db: float = 10.0
    """Gaussian form: Pmax / sigma^2, dB (IGCNet: noise 0.1 at Pmax 1, 10 dB)."""
    density_per_km2: float = 50.0
    """Geometric form: links per km^2 (the square's side is sqrt(K / density) km)."""
    ks: tuple[int, ...] = (5, 10, 20, 40)
    """K of the K sweep, links."""
    m: int = 1000
    """M of the K sweep, training samples."""
    ms: tuple[int, ...] = (250, 500, 1000, 2000)
    """M of the M sweep, training samples ('()': no M sweep)."""
    m_k: int = 10
    """K of the M sweep, links."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds: each its own training, validation and test sets and initial weights."""
    train: IcTrainConfig = field(default_factory=IcTrainConfig)
    """Training settings (its ``samples`` is replaced by each job's M; mode, epochs, ...)."""
    test_samples: int = 500
    """Held-out test samples per (form, K, seed)."""
    random_starts: int = 20
    """Random starts of the best-of-WMMSE reference (plus the full-power start)."""
    gen_k: int = 10
    """K the generalization's MPGNN is trained at, links."""
    gen_factors: tuple[int, ...] = (2, 5)
    """Test at ``gen_k`` times these ('()': only the trained K and the denser layout)."""
    gen_forms: tuple[Form, ...] = ("gaussian", "geometric")
    """Forms of the generalization ('()': none); the denser layout is the geometric form's."""
    dense_factor: float = 4.0
    """The denser layout: this many times the links per area (the side / sqrt of it)."""

    def __post_init__(self) -> None:
        if not (self.ks and self.seeds):
            raise ValueError("need at least one K and one seed")
        if min((*self.ks, *self.ms, self.m, self.m_k, self.gen_k)) < 1:
            raise ValueError("K and M must be >= 1")
        if self.test_samples < 1 or self.random_starts < 0:
            raise ValueError("test_samples must be >= 1 and random_starts >= 0")
        if any(f < 1 for f in self.gen_factors) or self.dense_factor <= 0:
            raise ValueError("gen_factors must be >= 1 and dense_factor > 0")
        forms = (self.form, *self.gen_forms)
        if any(f not in ("gaussian", "geometric") for f in forms):
            raise ValueError("forms are 'gaussian' or 'geometric'")
        if self.density_per_km2 <= 0:
            raise ValueError("density_per_km2 must be > 0")


# ------------------------------------------------------------------------ scenarios


def scenario(cfg: GapConfig, form: Form, k: int, denser: float = 1.0) -> IcScenario:
    """The form's scenario with K links (geometric: the square holding K links at the
    configured density, times ``denser``)."""
    radio: dict[str, Any] = {"form": form, "n_links": k, "snr_db": cfg.snr_db}
    table: dict[str, Any] = {"name": f"ic-{form}-k{k}", "radio": radio}
    if form == "geometric":
        area = 1000.0 * math.sqrt(k / (cfg.density_per_km2 * denser))
        table["drop"] = {"area_m": area}
        if denser != 1.0:
            table["name"] += f"-dense{denser:g}"
    return ic_scenario_from_dict(table)


def certified(form: str, k: int) -> bool:
    """Whether the reference is the certified optimum: the Gaussian form up to
    MAX_LINKS links. The geometric form's SNRs (up to 1e9) defeat the branch and bound: at
    K = 4 it hit its node cap uncertified (gap 4.8 %) after 50 s for 20 samples."""
    return form == "gaussian" and k <= MAX_LINKS


def reference_name(form: str, k: int, random_starts: int) -> str:
    """How tables name the reference of K links in a form."""
    if certified(form, k):
        return "certified optimum"
    return f"best of WMMSE from {random_starts + 1} starts"


@dataclass(frozen=True)
class TestSet:
    """A held-out test set and its baselines' mean sum rates (bit/s/Hz per sample)."""

    samples: Samples
    reference: str
    reference_sum_rate: float
    wmmse_sum_rate: float
    max_power_sum_rate: float


def mean_rate(s: IcScenario, gains: np.ndarray, powers_w: np.ndarray) -> float:
    """Mean sum rate per sample, bit/s/Hz, of powers in watts."""
    return float(sum_rates(gains, powers_w, s.radio.noise_w).sum(-1).mean())


def held_out(cfg: GapConfig, s: IcScenario, seed: int, *stream: str | int) -> TestSet:
    """Draw a test set from ``("ic-gap", *stream)`` and compute its references."""
    from protocols.seeding import rng_for

    smp = draw(s, seed, cfg.test_samples, "ic-gap", *stream)
    pmax = s.radio.pmax_w
    if certified(s.radio.form, s.k):
        ref = ic_optimum(smp.gains, s)
    else:
        ref = best_wmmse(smp.gains, s, rng_for(seed, "ic-gap", "starts", *stream),
                         cfg.random_starts)
    ref_rate = mean_rate(s, smp.gains, ref)
    wmmse_rate = mean_rate(s, smp.gains, smp.wmmse * pmax)
    # the certified optimum is within 1e-3 of the best: never below WMMSE's from full power
    return TestSet(smp, reference_name(s.radio.form, s.k, cfg.random_starts),
                   max(ref_rate, wmmse_rate), wmmse_rate,
                   mean_rate(s, smp.gains, np.full(smp.gains.shape[:-1], pmax)))


def gap_pct(sum_rate: float, reference_sum_rate: float) -> float:
    """Optimality gap, percent: ``100 (1 - sum rate / reference)``."""
    return 100.0 * (1.0 - sum_rate / reference_sum_rate)


# ------------------------------------------------------------------------ jobs


@dataclass(frozen=True)
class Job:
    """One training set (form, K, M, seed), on which both networks train."""

    form: Form
    k: int
    m: int
    seed: int

    @property
    def tag(self) -> str:
        return f"{self.form}-k{self.k}-m{self.m}-s{self.seed}"


def jobs(cfg: GapConfig) -> list[Job]:
    """Every training set, seed by seed: the K sweep, then the M sweep, then the
    generalization's trainings the sweeps do not hold already."""
    out: list[Job] = []
    for seed in cfg.seeds:
        for k in cfg.ks:
            out.append(Job(cfg.form, k, cfg.m, seed))
        for m in cfg.ms:
            out.append(Job(cfg.form, cfg.m_k, m, seed))
    for form in cfg.gen_forms:
        for seed in cfg.seeds:
            out.append(Job(form, cfg.gen_k, cfg.m, seed))
    return list(dict.fromkeys(out))


def _archs(job: Job, cfg: GapConfig) -> list[Scheme]:
    """Networks trained on a job: both in the sweeps, the MPGNN alone for a
    generalization-only training."""
    in_sweeps = job.form == cfg.form and (
        (job.k in cfg.ks and job.m == cfg.m) or (job.k == cfg.m_k and job.m in cfg.ms))
    return [graph_scheme(), dense_scheme()] if in_sweeps else [graph_scheme()]


def steps_of(cfg: GapConfig, m: int) -> int:
    """Adam steps of one training on M samples."""
    t = dataclasses.replace(cfg.train, samples=m)
    return t.n_epochs * t.steps_per_epoch


@dataclass
class Results:
    """What a study has produced so far."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    gen_rows: list[dict[str, Any]] = field(default_factory=list)


def run_job(cfg: GapConfig, job: Job, tests: dict[tuple[Any, ...], TestSet],
            on_step: Callable[[int], None] | None = None
            ) -> tuple[list[dict[str, Any]], dict[str, IcLearner]]:
    """Train the job's networks on one training set; their results rows, and the
    learners by scheme name."""
    s = scenario(cfg, job.form, job.k)
    tcfg = dataclasses.replace(cfg.train, samples=job.m)
    train = draw(s, job.seed, job.m, "ic-train", "train")
    val = draw(s, job.seed, tcfg.val_samples, "ic-train", "validation")
    key = (job.form, job.k, job.seed)
    if key not in tests:
        tests[key] = held_out(cfg, s, job.seed, "test", job.form, job.k)
    t = tests[key]
    rows, learners, done = [], {}, 0
    for scheme in _archs(job, cfg):
        def tick(d: int, total: int, base: int = done) -> None:
            if on_step is not None:
                on_step(base + d)

        res = train_ic(s, scheme, job.seed, tcfg, tick, train, val)
        done += res.steps
        frac = res.learner.fractions(t.samples.gains, t.samples.graph)
        rate = mean_rate(s, t.samples.gains, frac * s.radio.pmax_w)
        learners[scheme.name] = res.learner
        rows.append({
            "arch": scheme.name, "role": "graph" if scheme == graph_scheme() else "dense",
            "form": job.form, "n_links": job.k, "samples": job.m, "seed": job.seed,
            "mode": tcfg.learner.mode, "sum_rate": rate,
            "reference_sum_rate": t.reference_sum_rate, "reference": t.reference,
            "gap_pct": gap_pct(rate, t.reference_sum_rate),
            "wmmse_sum_rate": t.wmmse_sum_rate, "fraction_of_wmmse": rate / t.wmmse_sum_rate,
            "max_power_sum_rate": t.max_power_sum_rate, "best_epoch": res.best_epoch,
            "steps": res.steps, "train_wall_s": res.wall_s})
    return rows, learners


def generalize(cfg: GapConfig, form: Form, seed: int, learner: IcLearner
               ) -> list[dict[str, Any]]:
    """The MPGNN trained at ``gen_k`` on larger K and (geometric) a denser layout."""
    settings: list[tuple[int, str, float]] = [(cfg.gen_k * f, "same density", 1.0)
                                              for f in dict.fromkeys((1, *cfg.gen_factors))]
    if form == "geometric":
        settings.append((cfg.gen_k, f"{cfg.dense_factor:g}x denser", cfg.dense_factor))
    rows = []
    for k, layout, denser in settings:
        s = scenario(cfg, form, k, denser)
        t = held_out(cfg, s, seed, "gen", form, k, layout)
        frac = learner.fractions(t.samples.gains, t.samples.graph)
        rate = mean_rate(s, t.samples.gains, frac * s.radio.pmax_w)
        rows.append({
            "form": form, "trained_n_links": cfg.gen_k, "test_n_links": k, "layout": layout,
            "area_m": s.drop.area_m if form == "geometric" else math.nan, "seed": seed,
            "samples": cfg.m, "sum_rate": rate, "wmmse_sum_rate": t.wmmse_sum_rate,
            "fraction_of_wmmse": rate / t.wmmse_sum_rate,
            "reference_sum_rate": t.reference_sum_rate, "reference": t.reference,
            "gap_pct": gap_pct(rate, t.reference_sum_rate),
            "max_power_sum_rate": t.max_power_sum_rate})
    return rows


def study(cfg: GapConfig, out: Path, progress: Progress | None = None,
          console_note: Callable[[str], None] | None = None) -> tuple[Results, Table]:
    """Run every job, appending results as they finish; then the figures and the table.
    On an interruption (Ctrl-C) the figures of what finished are written before it goes
    on up."""
    todo = jobs(cfg)
    out.mkdir(parents=True, exist_ok=True)
    costs = [steps_of(cfg, j.m) * len(_archs(j, cfg)) for j in todo]
    total = sum(costs)
    res = Results()
    tests: dict[tuple[Any, ...], TestSet] = {}
    t0 = time.perf_counter()
    with _streams(out) as (rows_csv, gen_csv):
        try:
            for n, job in enumerate(todo):
                base = sum(costs[:n])

                def tick(d: int, base: int = base, job: Job = job) -> None:
                    if progress is not None:
                        progress(base + d, total, job.tag)

                tick(0)
                rows, learners = run_job(cfg, job, tests, tick)
                for row in rows:
                    res.rows.append(row)
                    rows_csv.row([_cell(row[c]) for c in COLUMNS])
                if job.form in cfg.gen_forms and job.k == cfg.gen_k and job.m == cfg.m:
                    for row in generalize(cfg, job.form, job.seed,
                                          learners[graph_scheme().name]):
                        res.gen_rows.append(row)
                        gen_csv.row([_cell(row[c]) for c in GEN_COLUMNS])
                _write_json(out, cfg, res, time.perf_counter() - t0, len(todo))
                if console_note is not None:
                    console_note(f"{job.tag}: " + ", ".join(
                        f"{r['arch']} gap {r['gap_pct']:.2f} % ({r['fraction_of_wmmse']:.3f} "
                        "of WMMSE)" for r in rows))
        finally:
            if res.rows or res.gen_rows:
                figures(cfg, res, out)
                _write_json(out, cfg, res, time.perf_counter() - t0, len(todo))
    return res, summary_table(cfg, res)


@contextmanager
def _streams(out: Path) -> Iterator[tuple[CsvStream, CsvStream]]:
    rows = CsvStream(out / "results.csv", list(COLUMNS))
    gen = CsvStream(out / "generalization.csv", list(GEN_COLUMNS))
    try:
        yield rows, gen
    finally:
        rows.close()
        gen.close()


def _cell(x: Any) -> Any:
    return repr(float(x)) if isinstance(x, float | np.floating) else x


def _write_json(out: Path, cfg: GapConfig, res: Results, wall_s: float, planned: int) -> None:
    write_json(out / "results.json", {
        "config": dataclasses.asdict(cfg), "jobs_planned": planned, "wall_s": wall_s,
        "rows": res.rows, "generalization": res.gen_rows, "analysis": analysis(cfg, res)})


# ------------------------------------------------------------------------ analysis


def spread(values: list[float]) -> tuple[float, float]:
    """Mean and standard deviation (ddof 1; 0 for one value) of the finite values."""
    v = np.asarray([x for x in values if math.isfinite(x)], dtype=float)
    if v.size == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def gaps(res: Results, role: str, form: str, k: int | None = None, m: int | None = None
         ) -> dict[tuple[int, int], list[float]]:
    """``(K, M) -> [gap of each seed]`` of one role ('graph': the MPGNN, 'dense': the
    MLP)."""
    out: dict[tuple[int, int], list[float]] = {}
    for r in res.rows:
        if r["role"] == role and r["form"] == form and (k is None or r["n_links"] == k) \
                and (m is None or r["samples"] == m):
            out.setdefault((r["n_links"], r["samples"]), []).append(float(r["gap_pct"]))
    return out


def fit_through_origin(x: list[float], y: list[float]) -> dict[str, float]:
    """Least squares ``y = slope x``: the slope and R^2 against the mean of y (1 - SSE /
    SST; 0 or below: the line explains no more than a constant)."""
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xa.size == 0:
        return {"slope": math.nan, "r2": math.nan}
    slope = float((xa * ya).sum() / (xa * xa).sum())
    sst = float(((ya - ya.mean()) ** 2).sum())
    sse = float(((ya - slope * xa) ** 2).sum())
    return {"slope": slope, "r2": 1.0 - sse / sst if sst > 0 else math.nan}


def fit_power_law(k: list[float], y: list[float]) -> dict[str, float]:
    """``y = c K^alpha`` by least squares on logs: alpha, its standard error (nan below 3
    points) and c."""
    if len(k) < 2:
        return {"alpha": math.nan, "alpha_se": math.nan, "c": math.nan}
    lx, ly = np.log(np.asarray(k, dtype=float)), np.log(np.asarray(y, dtype=float))
    a, b = np.polyfit(lx, ly, 1)
    se = math.nan
    if len(k) > 2:
        resid = ly - (a * lx + b)
        se = float(math.sqrt((resid ** 2).sum() / (len(k) - 2) / ((lx - lx.mean()) ** 2).sum()))
    return {"alpha": float(a), "alpha_se": se, "c": float(math.exp(b))}


def ratios(cfg: GapConfig, res: Results) -> list[dict[str, Any]]:
    """Per K of the K sweep: mean gaps over seeds, their ratio MLP / GNN (nan when the
    GNN's mean gap is not positive) and the seeds' own ratios."""
    g, d = gaps(res, "graph", cfg.form, m=cfg.m), gaps(res, "dense", cfg.form, m=cfg.m)
    out = []
    for k in cfg.ks:
        if (k, cfg.m) not in g or (k, cfg.m) not in d:
            continue
        gg, dd = g[(k, cfg.m)], d[(k, cfg.m)]
        mg, md = spread(gg)[0], spread(dd)[0]
        per_seed = [b / a if a > 0 else math.nan for a, b in zip(gg, dd, strict=False)]
        out.append({"n_links": k, "sqrt_k": math.sqrt(k), "gnn_gap_pct": mg,
                    "mlp_gap_pct": md, "ratio": md / mg if mg > 0 else math.nan,
                    "seed_ratios": per_seed,
                    "reference": reference_name(cfg.form, k, cfg.random_starts)})
    return out


def analysis(cfg: GapConfig, res: Results) -> dict[str, Any]:
    """The ratio against sqrt(K): both fits on the ratios of the mean gaps, the power law
    also on every seed's own ratio (less sensitive to one badly trained seed, more points),
    and a verdict on the sqrt(K) claim."""
    all_pts = ratios(cfg, res)
    pts = [p for p in all_pts if math.isfinite(p["ratio"]) and p["ratio"] > 0]
    line = fit_through_origin([p["sqrt_k"] for p in pts], [p["ratio"] for p in pts])
    law = fit_power_law([p["n_links"] for p in pts], [p["ratio"] for p in pts])
    seeds = [(p["n_links"], r) for p in all_pts for r in p["seed_ratios"]
             if math.isfinite(r) and r > 0]
    seed_law = fit_power_law([k for k, _ in seeds], [r for _, r in seeds])
    return {"ratios": all_pts, "through_origin": line, "power_law": law,
            "power_law_seeds": seed_law, "verdict": verdict(law, line, len(pts)),
            "verdict_seeds": verdict(seed_law, None, len(seeds))}


def verdict(law: dict[str, float], line: dict[str, float] | None, n: int) -> str:
    """One sentence on whether ``ratio ~ sqrt(K)`` held: the fitted exponent alpha with two
    standard errors against 0.5 (the claim) and 0 (no growth)."""
    a, se = law["alpha"], law["alpha_se"]
    if n < 3 or not math.isfinite(a):
        return f"undecided: {n} usable ratios (need 3 with a positive GNN gap)"
    lo, hi = a - 2 * se, a + 2 * se
    fit = f"ratio ~ K^{a:.2f} (± {2 * se:.2f}, 2 s.e., {n} points)"
    if line is not None:
        fit += (f"; line through the origin: slope {line['slope']:.2f} per sqrt(K), "
                f"R^2 {line['r2']:.2f}")
    if lo <= 0.5 <= hi and lo <= 0.0:
        return f"inconclusive, both sqrt(K) and no growth fit: {fit}"
    if lo <= 0.5 <= hi:
        return f"consistent with sqrt(K): {fit}"
    if lo > 0.5:
        return f"grows faster than sqrt(K): {fit}"
    if hi < 0.0:
        return f"does not hold, the ratio shrinks with K: {fit}"
    if lo > 0.0:
        return f"grows, but slower than sqrt(K): {fit}"
    return f"does not hold, no significant growth: {fit}"


# ------------------------------------------------------------------------ figures


def figures(cfg: GapConfig, res: Results, out: Path) -> list[Path]:
    """Every figure that the rows so far allow."""
    from controller.evaluation.plots import plot_spread

    paths: list[Path] = []
    names = {"graph": graph_scheme().name, "dense": dense_scheme().name}
    colors = {graph_scheme().name: graph_scheme().color, dense_scheme().name:
              dense_scheme().color}
    refs = ", ".join(dict.fromkeys(reference_name(cfg.form, k, cfg.random_starts)
                                   for k in cfg.ks))
    mode = cfg.train.learner.mode
    for stem, pick, xlabel, title in (
            ("gap_vs_k", {"m": cfg.m}, "number of links K",
             f"optimality gap against K (M = {cfg.m}, {mode}; reference: {refs})"),
            ("gap_vs_m", {"k": cfg.m_k}, "training samples M",
             f"optimality gap against M (K = {cfg.m_k}, {mode}; reference: "
             f"{reference_name(cfg.form, cfg.m_k, cfg.random_starts)})")):
        series = {}
        for role, name in names.items():
            g = gaps(res, role, cfg.form, **pick)
            key = 0 if stem == "gap_vs_k" else 1
            pts = sorted((kv[0][key], *spread(kv[1])) for kv in g.items())
            if stem == "gap_vs_m" and len(pts) < 2:
                continue
            if pts:
                series[name] = ([p[0] for p in pts], [p[1] for p in pts], [p[2] for p in pts])
        if series:
            paths.append(plot_spread([("", series)], out / f"{stem}.png",
                                     _wrap(f"{title}; {cfg.form} form, mean ± std over "
                                           "seeds"),
                                     xlabel=xlabel, ylabel="optimality gap (%)",
                                     colors=colors))
    if ratios(cfg, res):
        paths.append(plot_ratio(cfg, res, out / "ratio_vs_sqrtk.png"))
    if res.gen_rows:
        series = {}
        for form in cfg.gen_forms:
            for layout in dict.fromkeys(r["layout"] for r in res.gen_rows):
                rows = [r for r in res.gen_rows if r["form"] == form and r["layout"] == layout]
                ks = sorted({r["test_n_links"] for r in rows})
                if ks:
                    stats = [spread([r["fraction_of_wmmse"] for r in rows
                                     if r["test_n_links"] == k]) for k in ks]
                    series[f"MPGNN, {form}, {layout}"] = (ks, [m for m, _ in stats],
                                                          [d for _, d in stats])
        paths.append(plot_spread(
            [("", series)], out / "generalization.png",
            _wrap(f"MPGNN trained at K = {cfg.gen_k} (M = {cfg.m}, {mode}), tested without "
                  "retraining; mean ± std over seeds"), xlabel="number of links K at test",
            ylabel="fraction of WMMSE's sum rate"))
    return paths


def _wrap(title: str, width: int = 100) -> str:
    return "\n".join(textwrap.wrap(title, width))


def plot_ratio(cfg: GapConfig, res: Results, path: Path) -> Path:
    """gap_MLP / gap_GNN against sqrt(K): each seed, the ratio of mean gaps, the line
    through the origin and the fitted power law."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    a = analysis(cfg, res)
    fig = Figure(figsize=(7.2, 4.4), dpi=130, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    pts = a["ratios"]
    for p in pts:
        ys = [r for r in p["seed_ratios"] if math.isfinite(r)]
        ax.scatter([p["sqrt_k"]] * len(ys), ys, s=14, color="grey", alpha=0.6,
                   label="one seed" if p is pts[0] else None)
    ok = [p for p in pts if math.isfinite(p["ratio"])]
    ax.plot([p["sqrt_k"] for p in ok], [p["ratio"] for p in ok], "o", color="tab:red",
            label="ratio of the mean gaps")
    xs = np.linspace(0.0, max((p["sqrt_k"] for p in pts), default=1.0) * 1.05, 50)
    line, law = a["through_origin"], a["power_law"]
    if math.isfinite(line["slope"]):
        ax.plot(xs, line["slope"] * xs, "--", color="black",
                label=f"through the origin: {line['slope']:.2f} sqrt(K) (R^2 {line['r2']:.2f})")
    if math.isfinite(law["alpha"]):
        ax.plot(xs[1:], law["c"] * (xs[1:] ** 2) ** law["alpha"], ":", color="tab:blue",
                label=f"power law: {law['c']:.2f} K^{law['alpha']:.2f}")
    for p in pts:
        ax.annotate(f"K={p['n_links']}", (p["sqrt_k"], p["ratio"] if math.isfinite(
            p["ratio"]) else 0.0), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel("sqrt(K)")
    ax.set_ylabel("gap_MLP / gap_GNN")
    ax.set_xlim(left=0.0)
    ax.set_ylim(bottom=0.0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.suptitle(_wrap(f"MLP / MPGNN optimality gap against sqrt(K) (M = {cfg.m}, "
                       f"{cfg.train.learner.mode}, {cfg.form}). Ratio of mean gaps: "
                       f"{a['verdict']}. Every seed's ratio: {a['verdict_seeds']}", 120),
                 fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


# ------------------------------------------------------------------------ the table


def _pm(values: list[float], digits: int = 2) -> str:
    m, d = spread(values)
    return "-" if not math.isfinite(m) else f"{m:.{digits}f} ± {d:.{digits}f}"


def summary_table(cfg: GapConfig, res: Results) -> Table:
    """One line per (K, M): both networks' gaps and fractions of WMMSE, the ratio and the
    reference; then the generalization."""
    steps = sorted({steps_of(cfg, m) for m in (cfg.m, *cfg.ms)})
    t = Table(title=f"Optimality gap, {cfg.form} form, {cfg.train.learner.mode} training, "
                    f"{'/'.join(map(str, steps))} Adam steps; test: {cfg.test_samples} "
                    "samples per K and seed; mean ± std over seeds")
    gnn, mlp = graph_scheme().name, dense_scheme().name
    for col in ("K", "M", "seeds", f"{gnn} gap %", f"{mlp} gap %", "gap ratio",
                f"{gnn} / WMMSE", f"{mlp} / WMMSE", "max power / WMMSE", "reference"):
        t.add_column(col, justify="right")
    keys = dict.fromkeys((r["n_links"], r["samples"]) for r in res.rows
                         if r["form"] == cfg.form)
    for k, m in sorted(keys):
        rows = [r for r in res.rows if (r["n_links"], r["samples"]) == (k, m)
                and r["form"] == cfg.form]
        g = [r for r in rows if r["role"] == "graph"]
        d = [r for r in rows if r["role"] == "dense"]
        mg, md = spread([r["gap_pct"] for r in g])[0], spread([r["gap_pct"] for r in d])[0]
        ratio = f"{md / mg:.2f}" if math.isfinite(mg) and mg > 0 and math.isfinite(md) else "-"
        t.add_row(str(k), str(m), str(len(g)), _pm([r["gap_pct"] for r in g]),
                  _pm([r["gap_pct"] for r in d]), ratio,
                  _pm([r["fraction_of_wmmse"] for r in g], 3),
                  _pm([r["fraction_of_wmmse"] for r in d], 3),
                  _pm([r["max_power_sum_rate"] / r["wmmse_sum_rate"] for r in g], 3),
                  rows[0]["reference"])
    for form in dict.fromkeys(r["form"] for r in res.gen_rows):
        for layout in dict.fromkeys(r["layout"] for r in res.gen_rows):
            sel = [r for r in res.gen_rows if r["form"] == form and r["layout"] == layout]
            for k in sorted({r["test_n_links"] for r in sel}):
                rk = [r for r in sel if r["test_n_links"] == k]
                t.add_row(f"{k} ({form}, {layout})", f"{cfg.m} @ K={cfg.gen_k}",
                          str(len(rk)), _pm([r["gap_pct"] for r in rk]), "-", "-",
                          _pm([r["fraction_of_wmmse"] for r in rk], 3), "-",
                          _pm([r["max_power_sum_rate"] / r["wmmse_sum_rate"] for r in rk], 3),
                          rk[0]["reference"])
    return t
