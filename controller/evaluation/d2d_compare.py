"""`rrmbed d2d compare`: paper 002's figures (Li and Guo, Fig. 6-11) from one command.

Every registered D2D scheme (or the ones asked for), on every N and seed, with the local
runner (in this process, or side by side in worker processes: :mod:`side_by_side`):

* a scheme that trains (the registry names a learner: MAAC, NAAC, IAC, DQN, ...) is trained
  by :func:`controller.training.d2d_train.train_and_write` for ``train_slots`` slots (the
  first ``random_slots`` uniformly random), then its weights file acts greedily in a run
  of ``rrmbed run --runner local --weights`` of ``train_slots + eval_slots`` slots with the
  same seed (the drop it trained on), measured on the last ``eval_slots``: fading that its
  training never saw. (The first ``train_slots`` slots replay the training's fading; a
  learner measured there is measured on its training data, and every learner here scores
  far higher on it: DQN 53 against 35 total reward on held-out fading, N = 10.)
* a scheme that learns online in the pairs (SLA, tabular Q-learning) or follows a fixed
  rule (best-estimate, random) plays one run of ``train_slots + eval_slots`` slots: its
  "training" is the first ``train_slots`` slots of that run (*choice*: the online learners
  get as many slots to learn as the trained ones), its evaluation the last ``eval_slots``.

So every scheme is measured on the same slots of the same channel.

Figures (PNG, each with a CSV of what it draws; mean and standard deviation over seeds,
ddof 1):

* Fig. 6 ``fig6_training``: total reward per slot, averaged over windows of ``window``
  slots, during training (the online schemes: during the first ``train_slots`` slots of
  their run), at N = ``fig6_n`` with NAAC's lambda = ``learner.neighbours``;
* Fig. 7 / 8 / 9 ``fig7_cue_outage``, ``fig8_d2d_outage``, ``fig9_d2d_sum_rate``: the
  evaluation against N;
* Fig. 10 / 11 ``fig10_outage_lambda``, ``fig11_sum_rate_lambda``: the schemes whose critic
  sees the neighbours (NAAC) against lambda at N = ``sweep_n``, the schemes whose critic
  sees every pair (MAAC) as reference lines.

``results.csv`` (one row per scheme, N, lambda, seed; lambda empty for the schemes without
one), appended as each is done, and ``results.json`` (rewritten then) hold the metrics;
``training_curves.csv`` every seed's curve; ``runs/<scheme>-n<N>[-lam<l>]-s<seed>/`` the
weights, training.csv and run directories. Outage: a CUE below its SINR threshold (share of
CUE-slots), a transmitting pair below the D2D threshold (share of pair-slots), as
``rrmbed run`` reports them.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from channel_server.kinds import Resolved
from controller.evaluation.d2d_run import KIND, rb_switch_rate, scenario_with_pairs
from controller.evaluation.files import CsvStream, write_json
from controller.evaluation.side_by_side import JobError, run_jobs
from controller.learners.maac import MaacConfig
from node.schemes import SCHEMES, Scheme

RUN_OPTIONS: dict[str, Any] = {"action_mode": "mean", "log_csi": False, "history": None}
"""The run options ``rrmbed run --runner local`` gives its processes."""
METRICS = ("total_reward", "d2d_sum_rate_mbps", "cue_sum_rate_mbps", "cue_outage",
           "d2d_outage", "rb_switch_rate")
"""Evaluation metrics of a results row (means per slot; outages as probabilities)."""
COLUMNS = ("scheme", "n_pairs", "lambda", "seed", "trained", "train_slots", "eval_from_slot",
           "eval_slots", *METRICS, "train_final_reward", "wall_s", "run_dir")

Progress = Callable[[int, int, str], None]
"""``(slots done, slots in all, what runs now)``."""


@dataclass(frozen=True)
class D2dCompareConfig:
    """What ``rrmbed d2d compare`` runs."""

    ns: tuple[int, ...] = (10, 20, 30, 40, 50)
    """Numbers of D2D pairs N (Fig. 7-9), pairs."""
    lambdas: tuple[int, ...] = (1, 2, 3, 5, 9)
    """NAAC's lambda values (Fig. 10-11), nearest pairs seen by a critic."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Run seeds (drop, fading, learner); spread is over these."""
    schemes: tuple[str, ...] = ()
    """Schemes to compare; empty: every registered D2D scheme."""
    train_slots: int = 5000
    """Training slots per trained scheme, the random warm-up included (online schemes:
    slots they learn before they are measured), slots."""
    random_slots: int = 2000
    """Slots of uniform random allocation that start a training (the paper's 2000)."""
    eval_slots: int = 1000
    """Slots of every evaluation, slots."""
    window: int = 100
    """Slots per point of the training curves (Fig. 6)."""
    learner: MaacConfig = field(default_factory=MaacConfig)
    """Learner settings (widths, batch); ``neighbours``: NAAC's lambda in Fig. 6-9."""
    fig6_n: int = 10
    """N of the training curves (Fig. 6; the first of ``ns`` if it is not there)."""
    sweep_n: int = 10
    """N of the lambda sweep (Fig. 10-11)."""
    scenarios: Path = Path("scenarios")
    """Where ``d2d-n<N>.toml`` lies; an N without a file is ``d2d-n10.toml`` with
    ``radio.n_pairs = N``."""
    overrides: tuple[tuple[str, Any], ...] = ()
    """Scenario overrides (dotted key, value) applied to every N's scenario, e.g.
    ``(("radio.bs_power_dbm", 36.0),)``."""

    def __post_init__(self) -> None:
        if not (self.ns and self.seeds):
            raise ValueError("need at least one N and one seed")
        if min(self.ns) < 1 or (self.lambdas and min(self.lambdas) < 1):
            raise ValueError("N and lambda must be positive")
        if self.train_slots < 1 or self.eval_slots < 1 or self.window < 1:
            raise ValueError("train_slots, eval_slots and window must be positive")
        if not 0 <= self.random_slots <= self.train_slots:
            raise ValueError("random_slots must lie in [0, train_slots]")


@dataclass(frozen=True)
class Job:
    """One (scheme, N, lambda, seed): a training and an evaluation, or one online run."""

    scheme: Scheme
    n: int
    lam: int | None
    seed: int

    @property
    def tag(self) -> str:
        lam = "" if self.lam is None else f"-lam{self.lam}"
        return f"{self.scheme.name}-n{self.n}{lam}-s{self.seed}"


def methods(cfg: D2dCompareConfig) -> list[Scheme]:
    """The schemes compared, in the registry's (the paper's) order."""
    every = SCHEMES.for_kind(KIND)
    if not cfg.schemes:
        return every
    known = {s.name for s in every}
    unknown = [s for s in cfg.schemes if s not in known]
    if unknown:
        raise ValueError(f"unknown D2D scheme(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(sorted(known))}")
    return [s for s in every if s.name in cfg.schemes]


def critic_of(scheme: Scheme) -> str | None:
    """What the scheme's critic sees ('all', 'neighbours', 'own'), None if it has none."""
    c = scheme.options.get("critic")
    return None if c is None else str(c)


def jobs(cfg: D2dCompareConfig) -> list[Job]:
    """Every job, small N first (an interrupted comparison holds whole Ns); the lambda
    sweep right after the N it runs at, its default lambda shared with the N sweep."""
    found: list[Job] = []
    seen: set[tuple[str, int, int | None, int]] = set()

    def add(j: Job) -> None:
        if (key := (j.scheme.name, j.n, j.lam, j.seed)) not in seen:
            seen.add(key)
            found.append(j)

    ms = methods(cfg)
    ns = list(cfg.ns) + ([cfg.sweep_n] if cfg.lambdas and cfg.sweep_n not in cfg.ns else [])
    for n in sorted(ns):
        if n in cfg.ns:
            for seed in cfg.seeds:
                for s in ms:
                    lam = cfg.learner.neighbours if critic_of(s) == "neighbours" else None
                    add(Job(s, n, lam, seed))
        if n == cfg.sweep_n:
            for seed in cfg.seeds:
                for s in ms:
                    if critic_of(s) == "neighbours":
                        for lam in cfg.lambdas:
                            add(Job(s, n, lam, seed))
                    elif critic_of(s) == "all" and n not in cfg.ns:
                        add(Job(s, n, None, seed))  # the reference lines
    bad = sorted({(j.n, j.lam) for j in found if j.lam is not None and j.lam >= j.n})
    if bad:  # refused before anything runs, not when the run comes up
        raise ValueError("NAAC's lambda must be below N: " + ", ".join(
            f"lambda {lam} at N = {n}" for n, lam in bad))
    return found


def plan(cfg: D2dCompareConfig) -> list[Job]:
    """:func:`jobs`, after every N's scenario (with the overrides) is resolved once: a bad
    scenario, override or lambda is refused (ValueError) before anything runs."""
    todo = jobs(cfg)
    for n in sorted({j.n for j in todo}):
        scenario_for(cfg, n)
    return todo


def scenario_for(cfg: D2dCompareConfig, n: int) -> Resolved:
    """The D2D scenario with N pairs."""
    return scenario_with_pairs(cfg.scenarios, n, dict(cfg.overrides))


def job_slots(cfg: D2dCompareConfig, job: Job) -> int:
    """Slots one job plays: its training, if it trains, and its run of ``train_slots +
    eval_slots`` slots."""
    run = cfg.train_slots + cfg.eval_slots
    return run + cfg.train_slots if job.scheme.trainable else run


# ------------------------------------------------------------------------ one job


def tail_metrics(metrics_csv: Path, start: int) -> dict[str, float]:
    """The evaluation metrics of a run's slots ``start..`` from its metrics.csv, as its
    summary.json computes them over all slots (D2D outage: outages over transmitting
    pair-slots)."""
    with metrics_csv.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["slot"]) >= start]
    if not rows:
        raise ValueError(f"{metrics_csv}: no slot from {start} on")
    rbs = [k for k in rows[0] if k.startswith("rb_p")]
    on = [sum(int(r[k]) >= 0 for k in rbs) for r in rows]
    out_count = [round(float(r["d2d_outage"]) * o) for r, o in zip(rows, on, strict=True)]

    def mean(key: str) -> float:
        return float(np.mean([float(r[key]) for r in rows]))

    return {"total_reward": mean("total_reward"), "d2d_sum_rate_mbps": mean("d2d_sum_mbps"),
            "cue_sum_rate_mbps": mean("cue_sum_mbps"), "cue_outage": mean("cue_outage"),
            "d2d_outage": sum(out_count) / sum(on) if sum(on) else math.nan,
            "rb_switch_rate": rb_switch_rate([[int(r[k]) for k in rbs] for r in rows])}


def window_curve(metrics_csv: Path, slots: int, window: int) -> list[tuple[int, float]]:
    """``(last slot of the window, mean total reward)`` over the first ``slots`` slots."""
    with metrics_csv.open(newline="") as f:
        reward = [float(r["total_reward"]) for r in csv.DictReader(f)][:slots]
    return [(min(i + window, len(reward)), float(np.mean(reward[i:i + window])))
            for i in range(0, len(reward), window)]


def run_job(cfg: D2dCompareConfig, job: Job, out: Path,
            tick: Callable[[int], None] = lambda done: None,
            ) -> tuple[dict[str, Any], list[tuple[int, float]]]:
    """Train and evaluate (or run online) one job in ``out``; its results row and its
    training curve. ``tick(slots done in this job)``."""
    from controller.runners.run import execute
    from controller.training.d2d_train import D2dTrainConfig, train_and_write

    resolved = scenario_for(cfg, job.n)
    run_slots = cfg.train_slots + cfg.eval_slots
    t0 = time.perf_counter()
    if job.scheme.trainable:
        learner = dataclasses.replace(cfg.learner, learning_starts=max(cfg.random_slots, 1),
                                      neighbours=job.lam or cfg.learner.neighbours)
        tcfg = D2dTrainConfig(maac=learner, random_slots=cfg.random_slots,
                              log_every=cfg.window)
        log = train_and_write(resolved.scenario, job.scheme.name, cfg.train_slots, job.seed,
                              tcfg, out / "train", lambda t: tick(t + 1))
        curve = [(int(c["slot"]), float(c["total_reward"])) for c in log]
        summary = execute(resolved, job.scheme.name, "local", run_slots, job.seed,
                          out / "eval", out / "train" / "weights.npz", dict(RUN_OPTIONS),
                          lambda d, t: tick(cfg.train_slots + d))
        run_dir = out / "eval"
    else:
        summary = execute(resolved, job.scheme.name, "local", run_slots, job.seed,
                          out / "run", None, dict(RUN_OPTIONS), lambda d, t: tick(d))
        run_dir = out / "run"
        curve = window_curve(run_dir / "metrics.csv", cfg.train_slots, cfg.window)
    start = cfg.train_slots
    metrics = tail_metrics(run_dir / "metrics.csv", start)
    if summary.get("errors") or summary.get("lost_nodes"):
        raise RuntimeError(f"{job.tag}: the run reported {summary.get('errors')} "
                           f"{summary.get('lost_nodes')}")
    row: dict[str, Any] = {
        "scheme": job.scheme.name, "n_pairs": job.n, "lambda": job.lam, "seed": job.seed,
        "trained": job.scheme.trainable, "train_slots": cfg.train_slots,
        "eval_from_slot": start, "eval_slots": cfg.eval_slots, **metrics,
        "train_final_reward": curve[-1][1] if curve else math.nan,
        "wall_s": time.perf_counter() - t0, "run_dir": str(run_dir)}
    return row, curve


# ------------------------------------------------------------------------ the comparison


@dataclass
class Results:
    """What a comparison has produced so far."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    curves: dict[tuple[str, int, int | None, int], list[tuple[int, float]]] = field(
        default_factory=dict)


def compare(cfg: D2dCompareConfig, out: Path, progress: Progress | None = None,
            console_note: Callable[[str], None] | None = None, workers: int = 1) -> Table:
    """Run every job of ``cfg``, ``workers`` side by side (:mod:`side_by_side`: 1 in this
    process, more in worker processes; the same results either way), writing into ``out``
    as they finish; then the figures. A job that fails is reported and the others carry
    on; a RuntimeError naming the failed ones follows the figures. On an interruption
    (Ctrl-C) the figures of what finished are written before it goes on up. Returns the
    summary table."""
    todo = plan(cfg)
    out.mkdir(parents=True, exist_ok=True)
    sizes = [job_slots(cfg, job) for job in todo]
    total = sum(sizes)
    done = [0] * len(todo)
    rows: dict[int, dict[str, Any]] = {}
    failed: list[tuple[str, JobError]] = []
    res = Results()
    t_start = time.perf_counter()

    def tick(k: int, slots: int) -> None:
        done[k] = min(slots, sizes[k])
        if progress is not None:
            progress(sum(done), total, todo[k].tag)

    with _streams(out) as (rows_csv, curves_csv):
        try:
            for k, outcome in run_jobs(run_numbered, [(cfg, k, job.tag, out)
                                                      for k, job in enumerate(todo)],
                                       workers, tick):
                job = todo[k]
                tick(k, sizes[k])
                if isinstance(outcome, JobError):
                    failed.append((job.tag, outcome))
                    with (out / "errors.txt").open("a") as f:
                        f.write(f"== {job.tag}\n{outcome}\n")
                    if console_note is not None:
                        console_note(f"{job.tag}: FAILED: {str(outcome).splitlines()[0]} "
                                     f"(traceback in {out / 'errors.txt'})")
                    continue
                row, curve = outcome
                rows[k] = row
                res.rows = [rows[i] for i in sorted(rows)]  # job order, however they finish
                res.curves[(job.scheme.name, job.n, job.lam, job.seed)] = curve
                rows_csv.row([_cell(row[c]) for c in COLUMNS])
                for slot, reward in curve:
                    curves_csv.row([job.scheme.name, job.n, _cell(job.lam), job.seed, slot,
                                    repr(reward)])
                _write_json(out, cfg, res, time.perf_counter() - t_start, len(todo))
                if console_note is not None:
                    console_note(f"{job.tag}: D2D {row['d2d_sum_rate_mbps']:.3f} Mbit/s, "
                                 f"CUE outage {row['cue_outage']:.4f}, D2D outage "
                                 f"{row['d2d_outage']:.4f}, RB switch rate "
                                 f"{row['rb_switch_rate']:.3f} ({row['wall_s']:.0f} s)")
        finally:
            if res.rows:
                figures(cfg, res, out)
                _write_json(out, cfg, res, time.perf_counter() - t_start, len(todo))
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(todo)} runs failed: "
                           f"{', '.join(tag for tag, _ in failed)} (tracebacks in "
                           f"{out / 'errors.txt'}); the first: "
                           f"{str(failed[0][1]).splitlines()[0]}") from failed[0][1]
    return summary_table(cfg, res)


def run_numbered(cfg: D2dCompareConfig, k: int, tag: str, out: Path,
                 tick: Callable[[int], None] = lambda done: None,
                 ) -> tuple[dict[str, Any], list[tuple[int, float]]]:
    """:func:`run_job` of ``jobs(cfg)[k]``, which must be ``tag``, in ``out/runs/<tag>``
    (what a worker gets: it finds the job again from the configuration and its registry)."""
    job = jobs(cfg)[k]
    if job.tag != tag:
        raise RuntimeError(f"job {k} is {job.tag} here but {tag} where it was planned: the "
                           "scheme registries differ (a plug-in loaded in one process only?)")
    return run_job(cfg, job, out / "runs" / tag, tick)


@contextmanager
def _streams(out: Path) -> Iterator[tuple[CsvStream, CsvStream]]:
    rows = CsvStream(out / "results.csv", list(COLUMNS))
    curves = CsvStream(out / "training_curves.csv",
                       ["scheme", "n_pairs", "lambda", "seed", "slot", "total_reward"])
    try:
        yield rows, curves
    finally:
        rows.close()
        curves.close()


def _cell(x: Any) -> Any:
    if x is None:
        return ""
    return repr(x) if isinstance(x, float) else x


def _write_json(out: Path, cfg: D2dCompareConfig, res: Results, wall_s: float,
                planned: int) -> None:
    config = {k: (str(v) if isinstance(v, Path) else v)
              for k, v in dataclasses.asdict(cfg).items()}
    write_json(out / "results.json", {
        "config": config, "jobs_planned": planned, "jobs_done": len(res.rows),
        "wall_s": wall_s, "rows": res.rows,
        "convergence": convergence(cfg, res)}, sort_keys=False)


# ------------------------------------------------------------------------ aggregation


def spread(values: Sequence[float | None]) -> tuple[float, float]:
    """Mean and standard deviation (ddof 1; 0 for one value) of the finite values."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if v.size == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def grouped(res: Results, metric: str) -> dict[tuple[str, int, int | None], list[float]]:
    """``(scheme, N, lambda) -> [metric of each seed]``."""
    out: dict[tuple[str, int, int | None], list[float]] = {}
    for r in res.rows:
        out.setdefault((r["scheme"], r["n_pairs"], r["lambda"]), []).append(float(r[metric]))
    return out


def main_lambda(cfg: D2dCompareConfig, scheme: str) -> int | None:
    """The lambda a scheme has in the N sweep (NAAC: ``learner.neighbours``)."""
    return (cfg.learner.neighbours
            if critic_of(SCHEMES.get(KIND, scheme)) == "neighbours" else None)


def fig6_n(cfg: D2dCompareConfig) -> int:
    return cfg.fig6_n if cfg.fig6_n in cfg.ns else cfg.ns[0]


def mean_curves(cfg: D2dCompareConfig, res: Results
                ) -> dict[str, tuple[list[int], list[float], list[float], int]]:
    """Fig. 6: ``scheme -> (slots, mean, std, seeds)`` over the seeds' curves at N =
    :func:`fig6_n` (the windows all seeds have)."""
    n = fig6_n(cfg)
    out: dict[str, tuple[list[int], list[float], list[float], int]] = {}
    for s in methods(cfg):
        lam = main_lambda(cfg, s.name)
        cs = [c for (name, cn, cl, _), c in res.curves.items()
              if name == s.name and cn == n and cl == lam and c]
        if not cs:
            continue
        length = min(len(c) for c in cs)
        x = [c[0] for c in cs[0][:length]]
        stats = [spread([c[i][1] for c in cs]) for i in range(length)]
        out[s.name] = (x, [m for m, _ in stats], [d for _, d in stats], len(cs))
    return out


def convergence(cfg: D2dCompareConfig, res: Results, share: float = 0.9
                ) -> dict[str, dict[str, float | None]]:
    """Per scheme at N = :func:`fig6_n`: the final reward (mean of the last tenth of the
    mean curve, at least one window) and the first slot whose window reaches ``share`` of
    the way from the first window to it (None if the curve never rises: fixed rules, or a
    learner that got worse)."""
    found: dict[str, dict[str, float | None]] = {}
    for name, (x, mean, _, _) in mean_curves(cfg, res).items():
        last = max(len(mean) // 10, 1)
        final = float(np.mean(mean[-last:]))
        first = mean[0]
        reached: float | None = None
        if final > first:
            goal = first + share * (final - first)
            reached = float(next(xi for xi, m in zip(x, mean, strict=True) if m >= goal))
        found[name] = {"first_window_reward": first, "final_reward": final,
                       f"slots_to_{int(share * 100)}pct": reached}
    return found


# ------------------------------------------------------------------------ figures


def figures(cfg: D2dCompareConfig, res: Results, out: Path) -> list[Path]:
    """Every figure (PNG + CSV) that the rows so far allow."""
    from controller.evaluation.plots import plot_spread

    paths: list[Path] = []
    colors = {s.name: s.color for s in SCHEMES.for_kind(KIND)}
    curves = mean_curves(cfg, res)
    if curves:
        with (out / "fig6_training.csv").open("w", newline="") as f:
            wr = csv.writer(f)
            wr.writerow(["scheme", "slot", "total_reward_mean", "total_reward_std", "seeds"])
            for name, (x, m, d, k) in curves.items():
                wr.writerows([name, xi, repr(mi), repr(di), k]
                             for xi, mi, di in zip(x, m, d, strict=True))
        n = fig6_n(cfg)
        paths.append(plot_spread(
            [("", {name: (x, m, d) for name, (x, m, d, _) in curves.items()})],
            out / "fig6_training.png",
            f"Fig. 6: total reward during training, N = {n}, lambda = "
            f"{cfg.learner.neighbours} (mean ± std over {len(cfg.seeds)} seeds; "
            f"{cfg.random_slots} random slots first)",
            xlabel="training slot", ylabel=f"total reward per slot ({cfg.window}-slot mean)",
            band=True, colors=colors))
    against_n = [("fig7_cue_outage", "cue_outage", "CUE outage probability",
                  "Fig. 7: cellular (CUE) outage against N"),
                 ("fig8_d2d_outage", "d2d_outage", "D2D outage probability",
                  "Fig. 8: D2D outage against N"),
                 ("fig9_d2d_sum_rate", "d2d_sum_rate_mbps", "D2D sum rate (Mbit/s)",
                  "Fig. 9: D2D sum rate against N")]
    for stem, metric, ylabel, title in against_n:
        series = _against_n(cfg, res, metric)
        if series:
            _series_csv(out / f"{stem}.csv", "n_pairs", metric, series)
            paths.append(plot_spread(
                [("", series)], out / f"{stem}.png",
                f"{title} (greedy evaluation, {cfg.eval_slots} slots; mean ± std over "
                "seeds)", xlabel="number of D2D pairs N", ylabel=ylabel, colors=colors))
    sweep, refs = _against_lambda(cfg, res)
    if sweep:
        note = f"N = {cfg.sweep_n}; mean ± std over seeds; dashed: references at every lambda"
        for stem, panels, title in (
                ("fig10_outage_lambda",
                 [("cue_outage", "(a) CUE outage probability"),
                  ("d2d_outage", "(b) D2D outage probability")],
                 "Fig. 10: outage against lambda"),
                ("fig11_sum_rate_lambda", [("d2d_sum_rate_mbps", "D2D sum rate (Mbit/s)")],
                 "Fig. 11: D2D sum rate against lambda")):
            with (out / f"{stem}.csv").open("w", newline="") as f:
                wr = csv.writer(f)
                wr.writerow(["scheme", "lambda", "metric", "mean", "std", "seeds"])
                for metric, _ in panels:
                    for name, pts in sweep[metric].items():
                        wr.writerows([name, lam, metric, repr(pm), repr(pd), pk]
                                     for lam, pm, pd, pk in pts)
                    for name, (ref, ref_std, k) in refs[metric].items():
                        wr.writerow([name, "all", metric, repr(ref), repr(ref_std), k])
            paths.append(plot_spread(
                [(sub if len(panels) > 1 else "", {
                    name: ([p[0] for p in pts], [p[1] for p in pts], [p[2] for p in pts])
                    for name, pts in sweep[metric].items()}) for metric, sub in panels],
                out / f"{stem}.png", f"{title} ({note})", xlabel="lambda (neighbours seen "
                "by a critic)", ylabel=[sub.removeprefix("(a) ").removeprefix("(b) ")
                                        for _, sub in panels],
                references=[{name: (m, d) for name, (m, d, _) in refs[metric].items()}
                            for metric, _ in panels], colors=colors))
    return paths


def _against_n(cfg: D2dCompareConfig, res: Results, metric: str
               ) -> dict[str, tuple[list[int], list[float], list[float]]]:
    g = grouped(res, metric)
    series: dict[str, tuple[list[int], list[float], list[float]]] = {}
    for s in methods(cfg):
        lam = main_lambda(cfg, s.name)
        pts = [(n, *spread(g[(s.name, n, lam)])) for n in cfg.ns if (s.name, n, lam) in g]
        if pts:
            series[s.name] = ([p[0] for p in pts], [p[1] for p in pts], [p[2] for p in pts])
    return series


def _series_csv(path: Path, xname: str, metric: str,
                series: dict[str, tuple[list[int], list[float], list[float]]]) -> None:
    with path.open("w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["scheme", xname, f"{metric}_mean", f"{metric}_std"])
        for name, (x, m, d) in series.items():
            wr.writerows([name, xi, repr(mi), repr(di)] for xi, mi, di in zip(x, m, d,
                                                                              strict=True))


def _against_lambda(cfg: D2dCompareConfig, res: Results) -> tuple[
        dict[str, dict[str, list[tuple[int, float, float, int]]]],
        dict[str, dict[str, tuple[float, float, int]]]]:
    """metric -> scheme -> [(lambda, mean, std, seeds)] for the neighbour-critic schemes,
    and metric -> scheme -> (mean, std, seeds) for the every-pair-critic references."""
    sweep: dict[str, dict[str, list[tuple[int, float, float, int]]]] = {}
    refs: dict[str, dict[str, tuple[float, float, int]]] = {}
    for metric in ("cue_outage", "d2d_outage", "d2d_sum_rate_mbps"):
        g = grouped(res, metric)
        sweep[metric], refs[metric] = {}, {}
        for s in methods(cfg):
            if critic_of(s) == "neighbours":
                pts = [(lam, *spread(g[(s.name, cfg.sweep_n, lam)]),
                        len(g[(s.name, cfg.sweep_n, lam)]))
                       for lam in sorted(cfg.lambdas) if (s.name, cfg.sweep_n, lam) in g]
                if pts:
                    sweep[metric][s.name] = pts
            elif critic_of(s) == "all" and (s.name, cfg.sweep_n, None) in g:
                vals = g[(s.name, cfg.sweep_n, None)]
                refs[metric][s.name] = (*spread(vals), len(vals))
    if not any(sweep.values()):
        return {}, {}
    return sweep, refs


# ------------------------------------------------------------------------ the table


def _pm(m: float, d: float, digits: int = 3) -> str:
    if not math.isfinite(m):
        return "-"
    if m != 0.0 and abs(m) < 10 ** -digits:
        return f"{m:.1e} ± {d:.1e}"
    return f"{m:.{digits}f} ± {d:.{digits}f}"


def ratio_to_random(res: Results, row: dict[str, Any]) -> float | None:
    """``row``'s D2D sum rate over random allocation's (the scheme whose rule is uniform) on
    the same N and seed: the same drop and fading, so the drop's own spread, which
    dominates the spread over seeds, cancels. None without a random row there."""
    uniform = {s.name for s in SCHEMES.for_kind(KIND) if s.options.get("rule") == "uniform"}
    for r in res.rows:
        if (r["scheme"] in uniform
                and (r["n_pairs"], r["seed"]) == (row["n_pairs"], row["seed"])):
            base = float(r["d2d_sum_rate_mbps"])
            return float(row["d2d_sum_rate_mbps"]) / base if base > 0 else None
    return None


def summary_table(cfg: D2dCompareConfig, res: Results) -> Table:
    """One line per scheme, N and lambda: the evaluation's mean ± std over seeds, and the
    D2D sum rate as a multiple of random allocation's on the same seed."""
    t = Table(title=f"D2D underlay comparison: {cfg.train_slots} training slots "
                    f"({cfg.random_slots} random), greedy evaluation on {cfg.eval_slots} "
                    "slots; mean ± std over seeds")
    for col in ("scheme", "N", "λ", "seeds", "CUE outage", "D2D outage", "D2D Mbit/s",
                "D2D x random", "total reward", "reward, last training window",
                "RB switch rate"):
        t.add_column(col, justify="left" if col == "scheme" else "right")
    rank = {s.name: i for i, s in enumerate(methods(cfg))}
    groups = {k: [r for r in res.rows if (r["scheme"], r["n_pairs"], r["lambda"]) == k]
              for k in dict.fromkeys((r["scheme"], r["n_pairs"], r["lambda"])
                                     for r in res.rows)}
    for (name, n, lam), rows in sorted(groups.items(), key=lambda kv: (
            kv[0][1], rank.get(kv[0][0], 99), kv[0][2] or 0)):
        cells = [_pm(*spread([r.get(m, math.nan) for r in rows]), 4 if "outage" in m else 3)
                 for m in ("cue_outage", "d2d_outage", "d2d_sum_rate_mbps", "total_reward",
                           "train_final_reward", "rb_switch_rate")]
        cells.insert(3, _pm(*spread([ratio_to_random(res, r) for r in rows])))
        t.add_row(name, str(n), "" if lam is None else str(lam), str(len(rows)), *cells)
    return t


def load_results(out: Path) -> tuple[D2dCompareConfig, Results]:
    """The configuration and results of the comparison in ``out`` (its results.json and
    training_curves.csv), e.g. to draw the figures again."""
    data = json.loads((out / "results.json").read_text())
    def fields(d: dict[str, Any]) -> dict[str, Any]:
        return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}

    c = fields(data["config"])
    learner = MaacConfig(**fields(c.pop("learner")))
    cfg = D2dCompareConfig(**{**c, "learner": learner, "scenarios": Path(c["scenarios"])})
    res = Results(rows=list(data["rows"]))
    with (out / "training_curves.csv").open(newline="") as f:
        for r in csv.DictReader(f):
            key = (r["scheme"], int(r["n_pairs"]), int(r["lambda"]) if r["lambda"] else None,
                   int(r["seed"]))
            res.curves.setdefault(key, []).append((int(r["slot"]), float(r["total_reward"])))
    return cfg, res
