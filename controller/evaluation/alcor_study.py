"""``rrmbed alcor study``: paper 004's experiments in one process (issue 16 points 1, 2, 5).

For each setting (the Gaussian interference channel, ``h_ij ~ CN(0, 1)`` at ``snr_db``, for
every N; and optionally the 7-cell layout of Section IV-B) and seed, the demands change
during the run (phases of ``phase_slots`` slots, :mod:`channel_server.demands`: the
paper's Table II -> III -> II for N = 10, 20, 50, Table IV's three for N = 5, seeded random
draws otherwise or with ``demands = "random"``). On the same slots (the same channel
realizations, :mod:`controller.alcor.channels`) it runs:

* ALCOR (Algorithm 1) over each chosen URA (a registered interference scheme's batch
  allocator, e.g. WMMSE, FP) used as a black box;
* the URA alone (every user on every slot);
* the fixed DNN trained with the penalty reward (10) for one phase's demands (the paper's:
  Table II's, or u^{min,2} for N = 5), trained once per N and setting on an independent
  training stream of the first seed;
* the per-instance rate-constrained optimum (:mod:`controller.alcor.constrained`) on
  ``opt_instances`` slots of each phase, every user on: the share of feasible instances and
  the sum rate over them (the paper's GP, also reported on feasible instances only).

Per method and phase: the sum rate and the violation (12) of the users' average rates over
the settled part of the phase (its last ``settle_share``), and the slots to recover after
the phase began (:mod:`controller.alcor.metrics`). The paper's own numbers (Tables II-IV)
are quoted beside ours where it gives them; note which URA the paper ran ALCOR over.

Writes ``results.csv`` (a row per method, phase, setting and seed, as each finishes),
``results.json``, ``trace-*.npz`` (rates, lambda, kappa of the plotted run) and figures:
``recovery-*.png`` (per-user moving-average rates against their demands and lambda over
time, like the paper's Fig. 3) and ``violation-vs-n.png`` / ``sum-rate-vs-n.png``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from rich.table import Table

from channel_server.demands import (
    DemandSchedule,
    PaperPhases,
    RandomDemandConfig,
    paper_phases,
    random_schedule,
    seven_cell_phases,
)
from controller.alcor.channels import GainStream, GaussianStream, SevenCellConfig, SevenCellStream
from controller.alcor.constrained import ConstrainedConfig, solve_instance
from controller.alcor.metrics import RecoveryConfig, moving_average, recovery_slots, violation
from controller.alcor.metrics import settled_window as settled
from controller.alcor.penalty_dnn import PenaltyDnn, PenaltyDnnConfig, train_penalty_dnn
from controller.alcor.run import Trace, allocator_power_fn, run_alcor, run_fixed
from controller.evaluation.files import CsvStream, write_json
from node.alcor import AlcorConfig, Allocator
from node.schemes import SCHEMES, Scheme
from protocols.seeding import rng_for

KIND = "interference"
SEVEN_CELL = "7cell"
GAUSSIAN = "gaussian"

Note = Callable[[str], None]
Tick = Callable[[float, str], None]
"""Progress: (work units done so far, what is running)."""


@dataclass(frozen=True)
class AlcorStudyConfig:
    """What ``rrmbed alcor study`` runs."""

    ns: tuple[int, ...] = (5, 10, 20, 50)
    """Users N of the Gaussian setting."""
    snr_db: float = 15.0
    """Gaussian setting: Pmax / sigma^2 with E|h|^2 = 1, dB (the paper's 15)."""
    seeds: tuple[int, ...] = (0,)
    """Run seeds: channels, USVs, random demands, the DNN's initialization."""
    phase_slots: int = 5000
    """Slots per demand phase (rounded up to whole ALCOR iterations)."""
    uras: tuple[str, ...] = ()
    """Interference schemes with a batch allocator to run ALCOR over; () = the kind's run
    default (WMMSE)."""
    alcor: AlcorConfig = field(default_factory=lambda: AlcorConfig(gamma=3.0))
    """Algorithm 1's parameters (alpha 0.9, B 25 as the paper; gamma 3, within its 1..10)."""
    demands: Literal["paper", "drawn"] = "paper"
    """``paper``: the paper's demands where it has them for N (drawn elsewhere); ``drawn``: seeded
    random draws (:attr:`random`) for every N."""
    random: RandomDemandConfig = field(default_factory=RandomDemandConfig)
    """Random demands (the period is set to ``phase_slots``)."""
    random_phases: int = 3
    """Phases of a random schedule."""
    recovery: RecoveryConfig = field(default_factory=RecoveryConfig)
    """The time-to-recover rule."""
    settle_share: float = 0.5
    """Share of each phase, at its end, over which average rates are read."""
    dnn: PenaltyDnnConfig | None = field(default_factory=PenaltyDnnConfig)
    """The fixed DNN's training; None skips the baseline."""
    opt_instances: int = 100
    """Slots per phase solved by the per-instance constrained optimum; 0 skips it."""
    opt_max_n: int = 50
    """Largest N the per-instance optimum is run for."""
    seven_cell: SevenCellConfig | None = None
    """The 7-cell setting, or None to skip it."""
    plot_n: int | None = None
    """N of the Gaussian run drawn as Fig. 3 (default: 20 if studied, else the largest)."""

    def __post_init__(self) -> None:
        if not self.ns or min(self.ns) < 1 or not self.seeds:
            raise ValueError("give at least one N >= 1 and one seed")
        if self.phase_slots < 1:
            raise ValueError("phase_slots must be >= 1")

    @property
    def phase_len(self) -> int:
        """``phase_slots`` rounded up to whole iterations."""
        spi = self.alcor.slots_per_iteration
        return -(-self.phase_slots // spi) * spi


# --------------------------------------------------------------------------- the paper's numbers

PAPER: dict[tuple[str, int, str], tuple[float, float | None, str]] = {
    # (source, N, method) -> (sum rate bit/s/Hz, violation %, the paper's URA / note)
    ("Table IV u1", 5, "alcor"): (5.27, 0.00, "WMMSE"),
    ("Table IV u2", 5, "alcor"): (5.09, 0.00, "WMMSE"),
    ("Table IV u3", 5, "alcor"): (4.81, 0.00, "WMMSE"),
    ("Table IV u1", 5, "fixed-dnn"): (5.35, 100.0, "trained for u2"),
    ("Table IV u2", 5, "fixed-dnn"): (5.35, 0.00, "trained for u2"),
    ("Table IV u3", 5, "fixed-dnn"): (5.35, 30.04, "trained for u2"),
    ("Table II", 10, "alcor"): (5.41, 0.0, "DNN URA"),
    ("Table II", 20, "alcor"): (6.56, 0.0, "DNN URA"),
    ("Table II", 50, "alcor"): (6.67, 0.0, "DNN URA"),
    ("Table II", 10, "fixed-dnn"): (6.82, 0.0, ""),
    ("Table II", 20, "fixed-dnn"): (6.73, 0.0, ""),
    ("Table II", 50, "fixed-dnn"): (6.16, 0.0, ""),
    ("Table II", 10, "per-instance"): (3.86, 0.0, "GP, feasible instances"),
    ("Table II", 20, "per-instance"): (3.81, 0.0, "GP, feasible instances"),
    ("Table II", 50, "per-instance"): (4.73, 0.0, "GP, feasible instances"),
    ("Table III", 10, "alcor"): (3.13, 0.61, "DNN URA"),
    ("Table III", 20, "alcor"): (3.97, 0.00, "DNN URA"),
    ("Table III", 50, "alcor"): (6.09, 1.37, "DNN URA"),
    ("Table III", 10, "fixed-dnn"): (6.35, 37.71, "trained for Table II"),
    ("Table III", 20, "fixed-dnn"): (6.58, 60.45, "trained for Table II"),
    ("Table III", 50, "fixed-dnn"): (6.17, 64.14, "trained for Table II"),
}
"""Paper 004's Tables II-IV (Gaussian channel, 15 dB). Table II's demands are met by every
scheme there (violation 0). In Table IV the paper's ALCOR runs over WMMSE, as ours."""

COLUMNS = ("setting", "n", "seed", "method", "family", "phase", "source", "slots",
           "sum_rate", "violation_pct", "recovery_slots", "feasible_share", "wall_s",
           "paper_sum_rate", "paper_violation_pct", "paper_note")


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Setting:
    """One channel setting at one N: its streams and its demands."""

    name: str
    n: int
    stream: Callable[[int, str], GainStream]
    """``(seed, purpose) -> stream``."""
    phases: PaperPhases | None
    """The paper's demands, or None for random ones."""

    def schedule(self, cfg: AlcorStudyConfig, seed: int) -> tuple[DemandSchedule, tuple[str, ...]]:
        """The run's demand schedule and each phase's source."""
        if self.phases is not None and cfg.demands == "paper":
            return (DemandSchedule.equal_phases(self.phases.demands, cfg.phase_len),
                    self.phases.sources)
        rnd = dataclasses.replace(cfg.random, period_slots=cfg.phase_len)
        sched = random_schedule(rnd, self.n, cfg.phase_len * cfg.random_phases,
                                rng_for(seed, "alcor", "demands", self.name, self.n))
        return sched, tuple(f"random {i + 1}" for i in range(len(sched.phases)))

    def dnn_phase(self, cfg: AlcorStudyConfig) -> int:
        """Which phase's demands the fixed DNN is trained for."""
        if self.phases is not None and cfg.demands == "paper":
            return self.phases.fixed_dnn_phase
        return 0


def _gaussian_streams(n: int, snr_db: float) -> Callable[[int, str], GainStream]:
    def make(seed: int, purpose: str) -> GainStream:
        return GaussianStream(n, snr_db, seed, purpose)

    return make


def settings(cfg: AlcorStudyConfig) -> list[Setting]:
    out = [Setting(GAUSSIAN, n, _gaussian_streams(n, cfg.snr_db), paper_phases(n))
           for n in cfg.ns]
    if cfg.seven_cell is not None:
        sc = cfg.seven_cell
        out.append(Setting(SEVEN_CELL, sc.n_users,
                           lambda seed, purpose: SevenCellStream(sc, seed, purpose),
                           seven_cell_phases(sc.n_users)))
    return out


def ura_schemes(cfg: AlcorStudyConfig) -> list[Scheme]:
    """The URAs, from the registry."""
    names = cfg.uras or tuple(x for x in [SCHEMES.default(KIND, "run")] if x is not None)
    found = [SCHEMES.get(KIND, n) for n in names]
    for s in found:
        if s.batch is None or s.options.get("alcor"):
            raise ValueError(f"scheme {s.name!r} is not an allocator to run ALCOR over (it "
                             f"{'has no batch allocator' if s.batch is None else 'is ALCOR'})")
    return found


def allocator_of(scheme: Scheme) -> Allocator:
    def alloc(gains: Any, scenario: Any, rng: Any) -> Any:
        return scheme.allocate(gains, scenario, rng)

    return alloc


# --------------------------------------------------------------------------- one setting


def phase_rows(setting: Setting, seed: int, method: str, family: str, trace: Trace,
               sched: DemandSchedule, sources: Sequence[str], cfg: AlcorStudyConfig,
               wall_s: float) -> list[dict[str, Any]]:
    """A row per demand phase: settled sum rate and violation, recovery slots."""
    rows = []
    for i, ((a, b), src) in enumerate(zip(sched.bounds(trace.slots), sources, strict=False)):
        u = sched.at(a)
        s0, s1 = settled(a, b, cfg.settle_share)
        rates = trace.rates[s0:s1]
        rows.append(_row(setting, seed, method, family, i, src, b - a,
                         float(rates.sum(axis=1).mean()),
                         float(violation(u, rates.mean(axis=0))),
                         recovery_slots(trace.rates, u, a, b, cfg.recovery), None, wall_s))
    return rows


def _row(setting: Setting, seed: int, method: str, family: str, phase: int, source: str,
         slots: int, sum_rate: float, viol: float | None, recovery: int | None,
         feasible: float | None, wall_s: float) -> dict[str, Any]:
    paper = PAPER.get((source, setting.n, family)) if setting.name == GAUSSIAN else None
    return {"setting": setting.name, "n": setting.n, "seed": seed, "method": method,
            "family": family, "phase": phase, "source": source, "slots": slots,
            "sum_rate": sum_rate, "violation_pct": viol, "recovery_slots": recovery,
            "feasible_share": feasible, "wall_s": wall_s,
            "paper_sum_rate": paper[0] if paper else None,
            "paper_violation_pct": paper[1] if paper else None,
            "paper_note": paper[2] if paper else ""}


def per_instance_rows(setting: Setting, seed: int, stream: GainStream, sched: DemandSchedule,
                      sources: Sequence[str], total: int, cfg: AlcorStudyConfig,
                      warm: Allocator | None) -> list[dict[str, Any]]:
    """The constrained optimum on ``opt_instances`` evenly spread slots of every phase."""
    s = stream.scenario
    rows = []
    ccfg = ConstrainedConfig()
    for i, ((a, b), src) in enumerate(zip(sched.bounds(total), sources, strict=False)):
        t0 = time.perf_counter()
        u = sched.at(a)
        slots = np.linspace(a, b - 1, min(cfg.opt_instances, b - a)).astype(int)
        feasible, sr = 0, []
        for t in slots:
            g = stream.take(int(t), 1)
            p0 = None if warm is None else warm(g, s, None)[0]
            res = solve_instance(g[0], u, s.radio.noise_w, s.radio.pmax_w, ccfg,
                                 rng_for(seed, "alcor", "per-instance", int(t)), p0)
            if res.feasible and res.rates is not None:
                feasible += 1
                sr.append(float(res.rates.sum()))
        rows.append(_row(setting, seed, "per-instance optimum", "per-instance", i, src,
                         len(slots), float(np.mean(sr)) if sr else float("nan"),
                         0.0 if sr else None, None, feasible / max(1, len(slots)),
                         time.perf_counter() - t0))
    return rows


@dataclass
class Results:
    rows: list[dict[str, Any]] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)


def work_units(cfg: AlcorStudyConfig) -> float:
    """Rough progress units: one per slot of every method run, plus the DNN's steps."""
    n_set = len(settings(cfg))
    slots = cfg.phase_len * 3
    per_run = slots * (2 * max(1, len(cfg.uras) or 1))
    dnn = (cfg.dnn.steps if cfg.dnn else 0) * n_set
    return n_set * len(cfg.seeds) * per_run + dnn


def study(cfg: AlcorStudyConfig, out: Path, tick: Tick | None = None,
          note: Note | None = None) -> Table:
    """Run everything, writing as it goes; figures and JSON at the end (also after Ctrl-C)."""
    out.mkdir(parents=True, exist_ok=True)
    res = Results()
    t_start = time.perf_counter()
    done = [0.0]

    def advance(units: float, what: str) -> None:
        done[0] += units
        if tick is not None:
            tick(done[0], what)

    uras = ura_schemes(cfg)
    plotted: dict[str, Any] = {}
    with _stream(out) as csv:
        def emit(rows: list[dict[str, Any]]) -> None:
            for r in rows:
                res.rows.append(r)
                csv.row([_cell(r[c]) for c in COLUMNS])

        try:
            for st in settings(cfg):
                dnn: PenaltyDnn | None = None
                for seed in cfg.seeds:
                    sched, sources = st.schedule(cfg, seed)
                    total = cfg.phase_len * len(sched.phases)
                    stream = st.stream(seed, "run")
                    if cfg.dnn is not None and dnn is None:
                        dnn = _train_dnn(st, cfg, cfg.dnn, sched, seed, advance, note)
                    for scheme in uras:
                        alloc = allocator_of(scheme)
                        what = f"{st.name} N={st.n} seed {seed}: ALCOR over {scheme.display}"
                        trace = run_alcor(stream, sched, alloc, total, cfg.alcor,
                                          rng_for(seed, "alcor", "usv", st.name, st.n),
                                          rng_for(seed, "alcor", "ura", st.name, st.n),
                                          progress=_slots_ticker(advance, what))
                        emit(phase_rows(st, seed, f"alcor({scheme.display})", "alcor", trace,
                                        sched, sources, cfg, trace.wall_s))
                        if _plot_this(cfg, st, seed) and not plotted:
                            plotted.update(trace=trace, sched=sched, setting=st,
                                           ura=scheme.display, seed=seed)
                        what = f"{st.name} N={st.n} seed {seed}: {scheme.display} alone"
                        alone = run_fixed(stream, allocator_power_fn(alloc, stream.scenario),
                                          total, progress=_slots_ticker(advance, what))
                        emit(phase_rows(st, seed, f"{scheme.display} alone", "ura", alone,
                                        sched, sources, cfg, alone.wall_s))
                    if dnn is not None:
                        fixed = run_fixed(stream, dnn, total)
                        emit(phase_rows(st, seed, "fixed DNN (penalty L=100)", "fixed-dnn",
                                        fixed, sched, sources, cfg, fixed.wall_s))
                    if cfg.opt_instances > 0 and st.n <= cfg.opt_max_n:
                        emit(per_instance_rows(st, seed, stream, sched, sources, total, cfg,
                                               allocator_of(uras[0])))
                    _write_json(out, cfg, res, time.perf_counter() - t_start)
                    if note is not None:
                        note(_brief(res.rows, st, seed))
        finally:
            if res.rows:
                res.figures = figures(cfg, res, out, plotted)
                _write_json(out, cfg, res, time.perf_counter() - t_start)
    return summary_table(res)


def _slots_ticker(advance: Tick, what: str) -> Callable[[int], None]:
    """A run's progress (slots done so far) as increments of the study's units."""
    last = [0]

    def tick(slots_done: int) -> None:
        advance(slots_done - last[0], what)
        last[0] = slots_done

    return tick


def _plot_this(cfg: AlcorStudyConfig, st: Setting, seed: int) -> bool:
    want = cfg.plot_n or (20 if 20 in cfg.ns else max(cfg.ns))
    return st.name == GAUSSIAN and st.n == want and seed == cfg.seeds[0]


def _train_dnn(st: Setting, cfg: AlcorStudyConfig, dcfg: PenaltyDnnConfig,
               sched: DemandSchedule, seed: int, advance: Tick, note: Note | None) -> PenaltyDnn:
    phase = st.dnn_phase(cfg)
    u_fix = sched.at(sched.starts()[min(phase, len(sched.phases) - 1)])
    train = st.stream(seed, "train")
    s = train.scenario
    what = f"{st.name} N={st.n}: training the fixed DNN"
    dnn = train_penalty_dnn(lambda step, m: train.take(step * m, m), u_fix, s.radio.noise_w,
                            s.radio.pmax_w, dcfg, seed, lambda k: advance(1, what))
    if note is not None:
        note(f"{what}: {dcfg.steps} steps in {dnn.wall_s:.0f} s, final loss "
             f"{dnn.curve[-1]:.3f}")
    return dnn


def _brief(rows: list[dict[str, Any]], st: Setting, seed: int) -> str:
    mine = [r for r in rows if r["setting"] == st.name and r["n"] == st.n and r["seed"] == seed]
    parts = []
    for r in mine:
        if r["family"] in ("alcor", "ura") and r["phase"] == 1:
            parts.append(f"{r['method']} SR {r['sum_rate']:.2f} viol {r['violation_pct']:.1f}%")
    return f"{st.name} N={st.n} seed {seed} (phase 2): " + "; ".join(parts)


@contextmanager
def _stream(out: Path) -> Iterator[CsvStream]:
    csv = CsvStream(out / "results.csv", list(COLUMNS))
    try:
        yield csv
    finally:
        csv.close()


def _cell(x: Any) -> Any:
    if x is None:
        return ""
    return repr(x) if isinstance(x, float) else x


def _write_json(out: Path, cfg: AlcorStudyConfig, res: Results, wall_s: float) -> None:
    write_json(out / "results.json", {
        "config": dataclasses.asdict(cfg), "wall_s": wall_s, "rows": res.rows,
        "figures": [str(p) for p in res.figures],
        "paper": [{"source": k[0], "n": k[1], "method": k[2], "sum_rate": v[0],
                   "violation_pct": v[1], "note": v[2]} for k, v in PAPER.items()]})


# --------------------------------------------------------------------------- summary


def aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean over seeds per (setting, N, method, phase)."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["setting"], r["n"], r["method"], r["phase"]), []).append(r)
    out = []
    for key, rs in groups.items():
        def mean(col: str, rs: list[dict[str, Any]] = rs) -> float | None:
            v = [float(r[col]) for r in rs if r[col] is not None and np.isfinite(r[col])]
            return float(np.mean(v)) if v else None

        rec = [r["recovery_slots"] for r in rs]
        out.append({**rs[0], "sum_rate": mean("sum_rate"), "violation_pct": mean("violation_pct"),
                    "feasible_share": mean("feasible_share"),
                    "recovery_slots": (float(np.mean(rec)) if all(x is not None for x in rec)
                                       else None),
                    "recovered": sum(x is not None for x in rec), "seeds": len(rs)})
        del key
    return out


def summary_table(res: Results) -> Table:
    t = Table(title="ALCOR study: per demand phase, mean over seeds (paper 004's numbers in "
                    "the last columns)")
    for c in ("setting", "N", "phase", "method", "SR", "viol %", "recover (slots)",
              "feasible", "paper SR", "paper viol %", "paper note"):
        t.add_column(c, justify="left" if c in ("setting", "phase", "method", "paper note")
                     else "right")
    for r in aggregate(res.rows):
        t.add_row(r["setting"], str(r["n"]), f"{r['phase'] + 1} {r['source']}", r["method"],
                  _f(r["sum_rate"], 2), _f(r["violation_pct"], 2),
                  _rec(r), _f(r["feasible_share"], 2), _f(r["paper_sum_rate"], 2),
                  _f(r["paper_violation_pct"], 2), r["paper_note"])
    return t


def _f(x: Any, digits: int) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def _rec(r: dict[str, Any]) -> str:
    if r["family"] == "per-instance":
        return "-"
    if r["recovery_slots"] is not None:
        return f"{r['recovery_slots']:.0f}"
    return f"never ({r['recovered']}/{r['seeds']} seeds)" if r["recovered"] else "never"


# --------------------------------------------------------------------------- figures


def figures(cfg: AlcorStudyConfig, res: Results, out: Path, plotted: dict[str, Any]
            ) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    paths = []
    if plotted:
        paths.append(recovery_figure(cfg, plotted, out))
    gauss = [r for r in aggregate(res.rows) if r["setting"] == GAUSSIAN]
    if gauss:
        paths += against_n(gauss, out)
    return paths


def recovery_figure(cfg: AlcorStudyConfig, p: dict[str, Any], out: Path) -> Path:
    """Fig. 3-like: moving-average rates of the (up to 12) users with the largest demands
    against their demands, and lambda, over the run."""
    import matplotlib.pyplot as plt

    trace: Trace = p["trace"]
    sched: DemandSchedule = p["sched"]
    st: Setting = p["setting"]
    u = sched.per_slot(0, trace.slots)
    peak = u.max(axis=0)
    who = np.sort([i for i in np.argsort(-peak, kind="stable")[:12] if peak[i] > 0])
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    colors = plt.get_cmap("tab20")(np.linspace(0, 1, max(len(who), 1)))
    bounds = sched.bounds(trace.slots)
    for c, i in zip(colors, who, strict=False):
        ma = np.concatenate([moving_average(trace.rates[a:b, i], cfg.recovery.window)
                             for a, b in bounds])
        ax1.plot(ma, color=c, lw=1.0, label=f"user {i + 1}")
        ax1.plot(u[:, i], color=c, lw=1.0, ls="--")
        ax2.plot(trace.iter_slots, trace.lam[:, i], color=c, lw=1.0)
    for a, _ in bounds[1:]:
        for ax in (ax1, ax2):
            ax.axvline(a, color="grey", lw=0.5)
    ax1.set_ylabel(f"rate, {cfg.recovery.window}-slot moving average (bit/s/Hz)")
    ax1.set_title(f"ALCOR over {p['ura']}, N = {st.n}, seed {p['seed']}: demands dashed")
    ax1.legend(fontsize=7, ncol=4)
    ax2.set_ylabel("lambda")
    ax2.set_xlabel("slot")
    fig.tight_layout()
    path = out / f"recovery-{st.name}-n{st.n}.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    np.savez_compressed(out / f"trace-{st.name}-n{st.n}.npz", rates=trace.rates,
                        active=trace.active, lam=trace.lam, kappa=trace.kappa,
                        iter_slots=trace.iter_slots, demands=u)
    return path


def against_n(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """Violation and sum rate against N, one panel per phase, a line per method."""
    import matplotlib.pyplot as plt

    phases = sorted({r["phase"] for r in rows})
    methods = sorted({r["method"] for r in rows})
    paths = []
    for metric, label, name in (("violation_pct", "violation (12), %", "violation-vs-n"),
                                ("sum_rate", "sum rate (bit/s/Hz)", "sum-rate-vs-n")):
        fig, axes = plt.subplots(1, len(phases), figsize=(4.5 * len(phases), 3.8),
                                 squeeze=False)
        for ax, ph in zip(axes[0], phases, strict=False):
            for m in methods:
                pts = sorted((r["n"], r[metric]) for r in rows
                             if r["phase"] == ph and r["method"] == m and r[metric] is not None)
                if pts:
                    ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", label=m)
            ax.set_title(f"phase {ph + 1}")
            ax.set_xlabel("N")
            ax.set_ylabel(label)
        axes[0][0].legend(fontsize=7)
        fig.tight_layout()
        path = out / f"{name}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths
