"""The local training driver: TRPO or A2C on one paper-001 scheme, several seeds.

``train(scenario, algo, scheme, steps, seeds, out)`` trains, for every seed, a policy
of the scheme on vectorized episodes (:mod:`controller.training.rollout`) and writes

```
out/
  config.toml            the training settings and the resolved scenario
  summary.json           per-seed results, the best seed, reference baselines
  metrics.csv            every seed's per-iteration curve (long format, a seed column)
  best-weights.npz       the policy of the seed with the best validation sum-rate
  plots/training.png     per-iteration reward and its EWMA (w = 0.96) for every seed
  seed-<s>/
    config.toml, summary.json
    imitation.json       with a warm start: the teacher, the MSE per epoch, the validation
                         sum-rate of the imitated policy (also in summary.json)
    metrics.csv          iteration, steps, episodes, sum-rate (bit/s/Hz, Mbit/s), EWMA,
                         wall_s, kl, accepted, ...
    weights.npz          final policy: a protocols.weights artifact (header: scheme, kind,
                         dims, algo, steps; extra: seed, iteration, scenario, pmax_dbm, ...)
    checkpoints/ckpt-<iteration>.npz   resumable: policy, value net, optimizer state,
                         random-generator states, iteration, curve so far
    plots/
```

Steps are counted as paper 001 does (Section IV-A): one decision of the deciding
entity is one step, so a centralized episode is 1 step and a round-robin or fully
decentralized episode is B steps (one per BS); ``steps`` per seed gives
``ceil(steps / (M * steps_per_episode))`` iterations of M episodes.

Randomness (per seed ``s``, all named streams of :func:`protocols.seeding.rng_for`):
policy initialisation ``seeded_policy(cfg, s)``; training channels
``Air(radio, air_seed)`` with ``air_seed`` drawn from stream ("train", "air"); action
noise and round-robin orders from ("train", "rollout"); the learner's own draws (value
net seed, minibatch orders) from ("train", "learner"). No global torch or numpy state is
used, so a checkpoint restores a run exactly.

Choices where the paper is vague: the "final reward" of a seed is the sum-rate of its
deterministic (mean-action) policy on a fixed validation set of channel realizations
(the same for every seed, distinct from training and from ``evaluate``'s default seed);
the best seed is the one with the highest such sum-rate. The training curve records
the mean sum-rate of the sampled actions of each iteration's batch (what the paper's
Fig. 6-9 plot), smoothed with :func:`controller.evaluation.plots.ewma`.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import torch

from channel_server.air import Air
from channel_server.config import (
    Scenario,
    ScenarioError,
    load_scenario,
    read_toml,
    scenario_from_dict,
    scenario_to_dict,
    to_toml,
)
from controller.evaluation.files import plots_wanted, write_json
from controller.evaluation.plots import plot_training
from controller.learners import registry
from controller.learners.a2c import A2c
from controller.learners.state import (
    load_optimizer,
    module_arrays,
    optimizer_arrays,
    prefixed,
    rng_state,
    set_rng_state,
)
from controller.learners.threads import torch_threads
from controller.learners.trpo import Trpo, TrpoConfig, mean_kl
from controller.training.imitation import ImitationConfig, imitate
from controller.training.rollout import (
    PowerEnv,
    Variant,
    collect,
    make_env,
    play,
    scheme_for,
    variant_dims,
)
from controller.training.sweep import SweepConfig, sweep
from node.policy import GaussianPolicy, PolicyConfig, load_arrays, seeded_policy
from node.policy_spec import policy_view
from node.schemes import SCHEMES
from protocols.seeding import rng_for
from protocols.weights import WeightsArtifact

Array = npt.NDArray[np.float64]
Algo = str
"""A registered learner that trains a Gaussian policy (controller.learners.registry)."""
ALGOS: tuple[Algo, ...] = registry.names("gaussian")

VALIDATION_SEED = 1_000_003
"""Air seed of the validation realizations (the same for every training seed)."""
CHECKPOINTS_KEPT = 2
"""Most recent checkpoints kept per seed (older ones are deleted)."""
RUN_OWNED_OPTIONS = frozenset({"episodes_per_iteration", "episodes_per_update"})
"""Learner config fields that the run, not the learner, decides (M: ``--episodes``)."""
CURVE_COLUMNS = (
    "iteration", "steps", "episodes", "sum_rate_bps_hz", "sum_rate_mbps", "ewma_mbps",
    "wall_s", "kl", "accepted", "step_fraction", "value_loss", "std",
)


@dataclass(frozen=True)
class TrainConfig:
    """What one training run does (the same for every seed)."""

    algo: Algo
    """Learner: a registered Gaussian-policy learner ("trpo", paper 001; "a2c", its
    fixed-step baseline)."""
    scheme: Variant
    """Execution scheme: a trainable cellular scheme (node.schemes.cellular.trainable)."""
    steps: int
    """Training steps per seed (decisions; a decentralized episode is B steps)."""
    episodes_per_iter: int = 1000
    """M, episodes per policy update (paper 001: 1000)."""
    checkpoint_every: int = 10
    """A checkpoint every this many iterations (and always after the last one)."""
    threads: int = 1
    """torch intra-op threads while training (1 is fastest for these small nets on a
    shared machine; see the module's measurements in the report)."""
    validation_episodes: int = 1000
    """Channel realizations of the validation set that ranks the seeds."""
    ewma_weight: float = 0.96
    """Smoothing weight w of the reward curve (paper 001 footnote 2)."""
    user_selection: bool = False
    """Paper 004's "diverse" training: each episode a random subset of users is on
    (kappa ~ U(0, 1) per user, on with probability kappa), the channel of the others zeroed
    and their power 0, so the policy learns to allocate among any subset of users, as
    ALCOR's URA must (``alcor-centralized``)."""
    imitation: ImitationConfig | None = None
    """A warm start: before the learner's first update the policy's mean imitates a
    classical scheme (:mod:`controller.training.imitation`); None: from the seeded
    initial weights."""
    learner_options: tuple[tuple[str, Any], ...] = ()
    """Fields of the learner's config set otherwise than its defaults, (name, value) pairs
    (``--learner-option max_kl=0.02``: :func:`controller.learners.registry.configure`)."""

    def __post_init__(self) -> None:
        registry.learner(self.algo, "gaussian")  # UnknownLearner lists the known ones
        if {k for k, _ in self.learner_options} & RUN_OWNED_OPTIONS:
            raise ValueError("the episodes per update, M, are the run's (--episodes), not a "
                             "learner option")
        self.learner_config  # noqa: B018 (ValueError names a bad option now, not mid-run)
        scheme_for(self.scheme)  # ValueError lists the trainable ones
        if self.steps < 1 or self.episodes_per_iter < 1 or self.checkpoint_every < 1:
            raise ValueError("steps, episodes_per_iter and checkpoint_every must be >= 1")
        if self.imitation is not None and self.user_selection:
            raise ValueError("the imitation warm start plays every user; it does not combine "
                             "with user selection")

    @property
    def learner_config(self) -> Any:
        """The learner's config with :attr:`learner_options` (None: its defaults)."""
        return registry.configure(self.algo, dict(self.learner_options))

    def steps_per_episode(self, n_cells: int) -> int:
        """One decision of the deciding entity is a step: the controller's, or each BS's."""
        return 1 if scheme_for(self.scheme).central_policy else n_cells

    def iterations(self, n_cells: int) -> int:
        per_iter = self.episodes_per_iter * self.steps_per_episode(n_cells)
        return max(1, math.ceil(self.steps / per_iter))


def policy_config_for(scheme: Variant, scenario: Scenario) -> PolicyConfig:
    """The policy shape of a scheme: full_dims, round_robin_dims or central_dims."""
    return PolicyConfig(*variant_dims(scheme, scenario.radio))


# --------------------------------------------------------------------------- one seed


class SeedTrainer:
    """Training state of one seed: environment, policy, learner and generators."""

    def __init__(self, scenario: Scenario, cfg: TrainConfig, seed: int) -> None:
        self.scenario = scenario
        self.cfg = cfg
        self.seed = int(seed)
        radio = scenario.radio
        air_seed = int(rng_for(seed, "train", "air").integers(2**31 - 1))
        self.env: PowerEnv = make_env(radio, cfg.scheme, air_seed, cfg.episodes_per_iter)
        self.policy = seeded_policy(policy_config_for(cfg.scheme, scenario), seed)
        self.rollout_rng = rng_for(seed, "train", "rollout")
        self.learner_rng = rng_for(seed, "train", "learner")
        self.selection_rng = rng_for(seed, "train", "selection") if cfg.user_selection else None
        # the episodes per update are this driver's (cfg)
        self.learner = cast("Trpo | A2c", registry.make(
            cfg.algo, self.policy, self.learner_rng, cfg.learner_config, trains="gaussian"))
        self.iteration = 0
        self.steps = 0
        self.episodes = 0
        self.wall_s = 0.0
        self.curve: list[dict[str, float]] = []

    @property
    def iterations_total(self) -> int:
        return self.cfg.iterations(self.scenario.radio.n_cells)

    @property
    def done(self) -> bool:
        return self.iteration >= self.iterations_total

    def step(self) -> dict[str, float]:
        """Collect M episodes, update once; returns the curve row of this iteration."""
        t0 = time.perf_counter()
        batch = collect(self.policy, self.env, self.cfg.episodes_per_iter, self.rollout_rng,
                        selection=self.selection_rng)
        if isinstance(self.learner, A2c):
            obs = torch.as_tensor(batch.obs)
            with torch.no_grad():
                old_mean, old_log_std = self.policy(obs)
            stats = self.learner.step(batch)
            with torch.no_grad():
                stats["kl"] = float(mean_kl(self.policy, obs, old_mean, old_log_std))
            stats["accepted"], stats["step_fraction"] = 1.0, 1.0
        else:
            stats = self.learner.step(batch)
        self.wall_s += time.perf_counter() - t0
        self.iteration += 1
        self.steps += batch.steps
        self.episodes += int(batch.sum_rate_bps_hz.shape[0])  # realizations (paper episodes)
        rate = float(batch.sum_rate_bps_hz.mean())
        mbps = rate * self.scenario.radio.bandwidth_hz / 1e6
        prev = self.curve[-1]["ewma_mbps"] if self.curve else None
        w = self.cfg.ewma_weight
        row = {
            "iteration": float(self.iteration),
            "steps": float(self.steps),
            "episodes": float(self.episodes),
            "sum_rate_bps_hz": rate,
            "sum_rate_mbps": mbps,
            "ewma_mbps": mbps if prev is None else w * prev + (1.0 - w) * mbps,
            "wall_s": self.wall_s,
            "kl": stats["kl"],
            "accepted": stats["accepted"],
            "step_fraction": stats["step_fraction"],
            "value_loss": stats["value_loss"],
            "std": stats["std"],
        }
        self.curve.append(row)
        return row

    # ------------------------------------------------------------------ checkpoints

    def state(self) -> dict[str, np.ndarray]:
        """Everything needed to continue exactly, as named arrays (no pickle)."""
        out: dict[str, np.ndarray] = {}
        out.update({f"policy.{k}": v for k, v in module_arrays(self.policy).items()})
        out.update({f"value.{k}": v for k, v in module_arrays(self.learner.value).items()})
        out.update(optimizer_arrays(self.learner))
        out["rng.rollout"] = rng_state(self.rollout_rng)
        out["rng.learner"] = rng_state(self.learner_rng)
        if self.selection_rng is not None:
            out["rng.selection"] = rng_state(self.selection_rng)
        out["counters"] = np.array([self.iteration, self.steps, self.episodes,
                                    self.learner.iterations, self.env_air().resets],
                                   dtype=np.int64)
        out["wall_s"] = np.array(self.wall_s)
        out["meta.algo"] = np.array(self.cfg.algo)
        out["meta.scheme"] = np.array(self.cfg.scheme)
        out["meta.seed"] = np.array(self.seed)
        out["meta.episodes_per_iter"] = np.array(self.cfg.episodes_per_iter)
        for col in CURVE_COLUMNS:
            out[f"curve.{col}"] = np.array([r[col] for r in self.curve], dtype=np.float64)
        return out

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        for key, want in (("meta.algo", self.cfg.algo), ("meta.scheme", self.cfg.scheme),
                          ("meta.seed", self.seed),
                          ("meta.episodes_per_iter", self.cfg.episodes_per_iter)):
            if arrays[key].item() != want:
                raise ValueError(f"checkpoint {key} = {arrays[key].item()!r}, run has {want!r}")
        load_arrays(self.policy, prefixed(arrays, "policy."))
        load_arrays(self.learner.value, prefixed(arrays, "value."))
        load_optimizer(self.learner, arrays)
        set_rng_state(self.rollout_rng, arrays["rng.rollout"])
        set_rng_state(self.learner_rng, arrays["rng.learner"])
        if (self.selection_rng is not None) != ("rng.selection" in arrays):
            had = "with" if "rng.selection" in arrays else "without"
            raise ValueError(f"checkpoint trained {had} user selection, the run does not")
        if self.selection_rng is not None:
            set_rng_state(self.selection_rng, arrays["rng.selection"])
        it, steps, episodes, learner_it, resets = (int(x) for x in arrays["counters"])
        self.iteration, self.steps, self.episodes = it, steps, episodes
        self.learner.iterations = learner_it
        self.env_air().resets = resets
        self.wall_s = float(arrays["wall_s"])
        n = len(arrays["curve.iteration"])
        self.curve = [{c: float(arrays[f"curve.{c}"][i]) for c in CURVE_COLUMNS}
                      for i in range(n)]

    def env_air(self) -> Air:
        air = self.env.air
        if not isinstance(air, Air):
            raise TypeError("checkpointing needs the environment's Air")
        return air


def checkpoint_path(seed_dir: Path, iteration: int) -> Path:
    return seed_dir / "checkpoints" / f"ckpt-{iteration:06d}.npz"


def latest_checkpoint(seed_dir: Path) -> Path | None:
    found = sorted((seed_dir / "checkpoints").glob("ckpt-*.npz"))
    return found[-1] if found else None


def save_checkpoint(trainer: SeedTrainer, seed_dir: Path) -> Path:
    """Write ``checkpoints/ckpt-<iteration>.npz`` atomically; keep the newest few."""
    path = checkpoint_path(seed_dir, trainer.iteration)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, **cast(dict[str, Any], trainer.state()))
    os.replace(tmp, path)
    for old in sorted(path.parent.glob("ckpt-*.npz"))[:-CHECKPOINTS_KEPT]:
        old.unlink()
    return path


def load_checkpoint(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


# --------------------------------------------------------------------------- validation


def validation_gains(scenario: Scenario, n: int) -> Array:
    """The fixed validation realizations (slot 0 of ``n`` drops), (n, B, K, B)."""
    return Air(scenario.radio, VALIDATION_SEED, episodes=n).reset().copy()


def validate(policy: GaussianPolicy, scheme: Variant, scenario: Scenario, gains: Array) -> float:
    """Mean sum-rate (bit/s/Hz) of the deterministic policy on ``gains``."""
    rng = rng_for(VALIDATION_SEED, "validation", "order")
    batch = play(policy, scheme, gains, scenario.radio, rng, mode="mean")
    return float(batch.sum_rate_bps_hz.mean())


def reference_rates(scenario: Scenario, gains: Array) -> dict[str, float]:
    """Mean sum-rates (bit/s/Hz) on ``gains`` of the deterministic classical schemes that fit
    the scenario (max-power, WMMSE, FP and, for B*K <= 6, the optimum), per-user limit."""
    from channel_server.rates import sum_rate_bps_hz
    from node.schemes.cellular import classical

    radio = dataclasses.replace(scenario.radio, sum_power_constraint=False)
    schemes = [s for s in classical(radio) if not s.options.get("stochastic")]
    out = {}
    for s in sorted(schemes, key=lambda s: s.rank):
        p, _ = s.allocate(gains, radio, scenario.baselines, None)
        out[s.name] = float(sum_rate_bps_hz(gains, p, radio.noise_w).mean())
    return out


# --------------------------------------------------------------------------- files


def write_curve(path: Path, rows: Sequence[dict[str, float]], seed: int | None = None) -> None:
    cols = (("seed",) if seed is not None else ()) + CURVE_COLUMNS
    with path.open("w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(cols)
        for r in rows:
            vals = [repr(int(r[c])) if c in ("iteration", "steps", "episodes")
                    else repr(float(r[c])) for c in CURVE_COLUMNS]
            wr.writerow(([str(seed)] if seed is not None else []) + vals)


def read_curve(path: Path) -> dict[str, Array]:
    """A metrics.csv back as columns of floats."""
    with path.open() as f:
        rows = list(csv.DictReader(f))
    return {c: np.array([float(r[c]) for r in rows]) for c in (rows[0] if rows else CURVE_COLUMNS)}


def _config_toml(scenario: Scenario, cfg: TrainConfig, seeds: Sequence[int]) -> str:
    run = {k: v for k, v in dataclasses.asdict(cfg).items() if v is not None}
    run.pop("learner_options")  # pairs, written as a table when there are any
    if cfg.learner_options:
        run["learner_options"] = dict(cfg.learner_options)
    run["seeds"] = ", ".join(str(s) for s in seeds)  # to_toml writes scalars only
    return to_toml({"train": run, **scenario_to_dict(scenario)})


def weights_artifact(trainer: SeedTrainer) -> WeightsArtifact:
    """The seed's policy with its header (what weights.npz holds)."""
    pc = trainer.policy.cfg
    return WeightsArtifact.create(
        trainer.learner.get_variables(), scheme=trainer.cfg.scheme, kind="cellular",
        dims={"obs_dim": pc.obs_dim, "act_dim": pc.act_dim}, algo=trainer.cfg.algo,
        steps=trainer.steps,
        extra={"seed": trainer.seed, "iteration": trainer.iteration,
               "episodes": trainer.episodes, "hidden": list(pc.hidden),
               "scenario": trainer.scenario.name,
               "pmax_dbm": float(trainer.scenario.radio.pmax_dbm),
               **policy_view(trainer.scenario.radio)},
    )


def _save_policy(path: Path, trainer: SeedTrainer) -> None:
    weights_artifact(trainer).save(path)


# --------------------------------------------------------------------------- the driver


def train(
    scenario_path: str | Path | Scenario,
    algo: Algo,
    scheme: Variant,
    steps: int,
    seeds: Sequence[int],
    out: str | Path,
    episodes_per_iter: int | None = None,
    progress: bool = True,
    *,
    checkpoint_every: int = 10,
    resume: bool = False,
    threads: int = 1,
    plots: bool = True,
    validation_episodes: int = 1000,
    user_selection: bool = False,
    imitation: ImitationConfig | None = None,
    learner_options: Mapping[str, Any] | None = None,
    sweep_config: SweepConfig | None = None,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train ``algo`` on ``scheme`` for ``steps`` steps per seed; write ``out`` (see module).

    ``scenario_path`` is a scenario TOML (or an already resolved :class:`Scenario`, e.g.
    with CLI overrides). ``episodes_per_iter`` defaults to M = 1000. With ``resume``, each
    seed continues from its latest checkpoint in ``out/seed-<s>/checkpoints`` (the run's
    settings must match) up to ``steps``. ``threads``: torch intra-op threads while training;
    ``validation_episodes``: size of the validation set ranking the seeds; ``user_selection``:
    paper 004's diverse training (:attr:`TrainConfig.user_selection`); ``imitation``: a
    warm start imitating a classical scheme (:attr:`TrainConfig.imitation`);
    ``learner_options``: fields of the learner's config to set
    (:attr:`TrainConfig.learner_options`; ValueError names a bad one before anything runs);
    ``sweep_config``:
    where the seeds run (:mod:`controller.training.sweep`: in order here, or as Ray tasks,
    with the same results), ``say`` what a Ray sweep reports. Returns the summary written
    to summary.json.
    """
    scenario = (scenario_path if isinstance(scenario_path, Scenario)
                else load_scenario(scenario_path))
    plots = plots and plots_wanted()
    m = episodes_per_iter if episodes_per_iter is not None else TrpoConfig().episodes_per_iteration
    cfg = TrainConfig(algo=algo, scheme=scheme, steps=int(steps), episodes_per_iter=int(m),
                      checkpoint_every=checkpoint_every, threads=threads,
                      validation_episodes=validation_episodes,
                      user_selection=user_selection, imitation=imitation,
                      learner_options=tuple(sorted((learner_options or {}).items())))
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct and non-empty, got {seeds}")
    out = Path(out)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    (out / "config.toml").write_text(_config_toml(scenario, cfg, seeds))
    mbps = scenario.radio.bandwidth_hz / 1e6

    val_gains = validation_gains(scenario, cfg.validation_episodes)
    t0 = time.perf_counter()
    refs = reference_rates(scenario, val_gains)
    refs_s = time.perf_counter() - t0

    sweep_cfg = sweep_config or SweepConfig()
    if sweep_cfg.backend == "serial":
        with _progress(progress) as bar:
            results = sweep(partial(_train_seed, scenario, cfg, out, resume, val_gains, plots,
                                    bar), seeds)
    else:  # each seed a task: no live bars from the workers, a line as each seed ends
        results = sweep(partial(_train_seed, scenario, cfg, out, resume, val_gains, plots,
                                None), seeds, sweep_cfg, say=say,
                        on_done=lambda s, r: say(
                            f"seed {s} done: validation {r['validation_sum_rate_mbps']:.2f} "
                            f"Mbit/s, {r['wall_s']:.1f} s") if progress else None,
                        pid_dir=out / "workers")

    best = max(results, key=lambda r: r["validation_sum_rate_bps_hz"])
    best_src = out / f"seed-{best['seed']}" / "weights.npz"
    (out / "best-weights.npz").write_bytes(best_src.read_bytes())
    curves = {r["seed"]: read_curve(out / f"seed-{r['seed']}" / "metrics.csv") for r in results}
    with (out / "metrics.csv").open("w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(("seed",) + CURVE_COLUMNS)
        for seed, cur in curves.items():
            for i in range(len(cur["iteration"])):
                wr.writerow([seed, *[repr(float(cur[c][i])) for c in CURVE_COLUMNS]])
    summary: dict[str, Any] = {
        "scenario": scenario.name,
        "algo": algo,
        "scheme": scheme,
        "steps_per_seed": cfg.steps,
        "episodes_per_iter": cfg.episodes_per_iter,
        "iterations_per_seed": cfg.iterations(scenario.radio.n_cells),
        "threads": cfg.threads,
        "seeds": results,
        "best_seed": best["seed"],
        "best_weights": str(out / "best-weights.npz"),
        "validation": {
            "air_seed": VALIDATION_SEED,
            "episodes": cfg.validation_episodes,
            "reference_bps_hz": refs,
            "reference_mbps": {k: v * mbps for k, v in refs.items()},
            "reference_wall_s": refs_s,
        },
        "final_ewma_mbps_mean": float(np.mean([r["final_ewma_mbps"] for r in results])),
        "validation_mbps_mean": float(np.mean([r["validation_sum_rate_mbps"] for r in results])),
    }
    write_json(out / "summary.json", summary)
    if plots:
        plot_run(out)
    return summary


def resume(
    out: str | Path,
    steps: int | None = None,
    progress: bool = True,
    *,
    plots: bool = True,
    sweep_config: SweepConfig | None = None,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Continue the training run in ``out`` (killed, or ended) with the settings it was
    started with (its config.toml: scenario, algo, scheme, seeds, M, warm start...): each
    seed from its latest checkpoint, up to ``steps`` per seed (default: the run's own
    budget; more extends a finished run). A seed without a checkpoint starts over. Returns
    the summary, as :func:`train`. ValueError names what is missing or wrong in ``out``."""
    out = Path(out)
    path = out / "config.toml"
    try:
        table = read_toml(path)
        run = dict(table.pop("train"))
        scenario = scenario_from_dict(table, str(path))
        seeds = [int(x) for x in str(run["seeds"]).split(",")]
        imitation = run.get("imitation")
        settings: dict[str, Any] = dict(
            checkpoint_every=int(run["checkpoint_every"]), threads=int(run["threads"]),
            validation_episodes=int(run["validation_episodes"]),
            user_selection=bool(run["user_selection"]),
            imitation=None if imitation is None else ImitationConfig(**imitation),
            learner_options=run.get("learner_options", {}))
        algo, scheme, m = run["algo"], run["scheme"], int(run["episodes_per_iter"])
        budget = int(steps or run["steps"])
    except ScenarioError as e:
        raise ValueError(f"{out}: not a training run to resume ({e})") from e
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: not the settings of a local training run (missing or "
                         f"bad {e})") from e
    if not any((out / f"seed-{s}").is_dir() for s in seeds):
        raise ValueError(f"{out} holds no seed-<s> folder of its seeds {seeds}: give the "
                         "run's OUT folder (not a seed's)")
    return train(scenario, algo, scheme, budget, seeds, out, m, progress, resume=True,
                 plots=plots, sweep_config=sweep_config, say=say, **settings)


def plot_run(out: str | Path) -> Path:
    """(Re)draw ``out/plots/training.png`` from a finished run's summary.json and curves."""
    out = Path(out)
    summary = json.loads((out / "summary.json").read_text())
    curves = {r["seed"]: read_curve(out / f"seed-{r['seed']}" / "metrics.csv")
              for r in summary["seeds"]}
    n = len(curves)
    refs = summary["validation"]["reference_mbps"]
    return plot_training(
        [(f"seed {s}", c["steps"], c["sum_rate_mbps"]) for s, c in curves.items()],
        out / "plots" / "training.png",
        title=f"{summary['scenario']}: {summary['algo'].upper()} {summary['scheme']} training, "
              f"{n} seed{'s' if n > 1 else ''}, M = {summary['episodes_per_iter']}",
        references={k: v for k, v in refs.items() if _is_reference(k)},
        weight=TrainConfig.ewma_weight, reference_note=" (validation set)",
    )


def _is_reference(name: str) -> bool:
    """A reference line on training curves (the scheme's ``reference`` option)."""
    return any(s.options.get("reference") for s in SCHEMES.named(name))


def _train_seed(
    scenario: Scenario, cfg: TrainConfig, out: Path, resume: bool, val_gains: Array,
    plots: bool, bar: Any, seed: int,
) -> dict[str, Any]:
    """Train one seed into ``out/seed-<seed>`` (torch on ``cfg.threads`` threads, in this
    process or a Ray worker alike)."""
    with torch_threads(cfg.threads):
        return _train_seed_here(scenario, cfg, seed, out, resume, bar, val_gains, plots)


def _train_seed_here(
    scenario: Scenario, cfg: TrainConfig, seed: int, out: Path, resume: bool,
    bar: Any, val_gains: Array, plots: bool,
) -> dict[str, Any]:
    seed_dir = out / f"seed-{seed}"
    (seed_dir / "plots").mkdir(parents=True, exist_ok=True)
    (seed_dir / "checkpoints").mkdir(exist_ok=True)
    (seed_dir / "config.toml").write_text(_config_toml(scenario, cfg, [seed]))
    trainer = SeedTrainer(scenario, cfg, seed)
    resumed_from = None
    if resume and (ck := latest_checkpoint(seed_dir)) is not None:
        trainer.load_state(load_checkpoint(ck))
        resumed_from = trainer.iteration
    elif not resume:  # a fresh run: stale checkpoints must not be resumed later
        for old in (seed_dir / "checkpoints").glob("ckpt-*.npz"):
            old.unlink()
    imitation = None
    if resumed_from is None and cfg.imitation is not None:
        imitation = warm_start(trainer, val_gains)
        write_json(seed_dir / "imitation.json", imitation)
    elif resumed_from is not None and (seed_dir / "imitation.json").exists():
        imitation = json.loads((seed_dir / "imitation.json").read_text())  # its warm start
    total = trainer.iterations_total
    task = None
    if bar is not None:
        task = bar.add_task(f"{cfg.algo} {cfg.scheme} seed {seed}", total=total,
                            completed=trainer.iteration, reward="-")
    while not trainer.done:
        row = trainer.step()
        if trainer.iteration % cfg.checkpoint_every == 0 or trainer.done:
            save_checkpoint(trainer, seed_dir)
            write_curve(seed_dir / "metrics.csv", trainer.curve)
        if bar is not None and task is not None:
            bar.update(task, completed=trainer.iteration,
                       reward=f"{row['ewma_mbps']:.2f} Mbit/s ({row['sum_rate_mbps']:.2f})")
    write_curve(seed_dir / "metrics.csv", trainer.curve)
    _save_policy(seed_dir / "weights.npz", trainer)
    val = validate(trainer.policy, cfg.scheme, scenario, val_gains)
    mbps = scenario.radio.bandwidth_hz / 1e6
    last = trainer.curve[-1] if trainer.curve else None
    res: dict[str, Any] = {
        "seed": seed,
        "iterations": trainer.iteration,
        "steps": trainer.steps,
        "episodes": trainer.episodes,
        "wall_s": trainer.wall_s,
        "s_per_iteration": trainer.wall_s / max(trainer.iteration, 1),
        "resumed_from_iteration": resumed_from,
        "value_dtype": getattr(trainer.learner, "value_dtype", None),
        "final_sum_rate_mbps": None if last is None else last["sum_rate_mbps"],
        "final_ewma_mbps": None if last is None else last["ewma_mbps"],
        "validation_sum_rate_bps_hz": val,
        "validation_sum_rate_mbps": val * mbps,
        "accepted_fraction": float(np.mean([r["accepted"] for r in trainer.curve]))
        if trainer.curve else None,
        "weights": str(seed_dir / "weights.npz"),
    }
    if imitation is not None:
        res["imitation"] = imitation
    write_json(seed_dir / "summary.json", res)
    if plots and trainer.curve:
        cur = read_curve(seed_dir / "metrics.csv")
        plot_training([(f"seed {seed}", cur["steps"], cur["sum_rate_mbps"])],
                      seed_dir / "plots" / "training.png",
                      title=f"{scenario.name}: {cfg.algo.upper()} {cfg.scheme}, seed {seed}",
                      weight=cfg.ewma_weight)
    return res


def warm_start(trainer: SeedTrainer, val_gains: Array) -> dict[str, Any]:
    """The seed's imitation warm start (``cfg.imitation``): what it did, and the validation
    sum rate of the policy it left (bit/s/Hz and Mbit/s). Its realizations come from
    ("train", "imitation", "air"), its orders and minibatches from ("train", "imitation")."""
    cfg, scenario, seed = trainer.cfg, trainer.scenario, trainer.seed
    assert cfg.imitation is not None
    air_seed = int(rng_for(seed, "train", "imitation", "air").integers(2**31 - 1))
    out = imitate(trainer.policy, scheme_for(cfg.scheme).exchange, scenario, cfg.imitation,
                  air_seed, rng_for(seed, "train", "imitation"))
    val = validate(trainer.policy, cfg.scheme, scenario, val_gains)
    mbps = scenario.radio.bandwidth_hz / 1e6
    return {**out, "teacher_sum_rate_mbps": out["teacher_sum_rate_bps_hz"] * mbps,
            "validation_sum_rate_bps_hz": val, "validation_sum_rate_mbps": val * mbps}


WARM_START_FILE = "warm-start.npz"
"""A network training run's imitated initial weights, in its seed folder."""


def warm_start_weights(scenario: Scenario, algo: Algo, scheme: Variant, imitation: ImitationConfig,
                       seed: int, seed_dir: Path, validation_episodes: int = 1000,
                       ) -> tuple[Path, dict[str, Any]]:
    """The network runner's warm start: the seed's policy imitates the teacher exactly as
    the local runner's does (the same initial weights, realizations and minibatches, so the
    same weights), saved as ``seed_dir/warm-start.npz`` for the run to start from (nodes
    and learner alike), with ``imitation.json`` beside it. Returns the weights' path and
    what ``imitation.json`` says."""
    cfg = TrainConfig(algo=algo, scheme=scheme, steps=1, episodes_per_iter=1,
                      validation_episodes=validation_episodes, imitation=imitation)
    trainer = SeedTrainer(scenario, cfg, seed)
    seed_dir.mkdir(parents=True, exist_ok=True)
    with torch_threads(cfg.threads):
        info = warm_start(trainer, validation_gains(scenario, validation_episodes))
    path = seed_dir / WARM_START_FILE
    weights_artifact(trainer).save(path)
    write_json(seed_dir / "imitation.json", info)
    return path, info


@contextmanager
def _progress(enabled: bool) -> Iterator[Any]:
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("avg reward {task.fields[reward]}"), TimeElapsedColumn(),
        TimeRemainingColumn(), console=Console(stderr=True),
    )
    with bar:
        yield bar

