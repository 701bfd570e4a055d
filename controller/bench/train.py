"""`rrmbed bench train`: how fast the local trainers learn, in environment steps per second,
and where the time goes.

Three trainers, each measured for ``steps`` environment steps (a step is one decision of
the deciding entity: the controller's for the centralized scheme, each BS's in
round-robin, each V2V link's for V2X), in this process with one torch thread:

* TRPO, ``centralized`` on ``3cell-k2`` and ``round-robin`` on ``7cell-k8``, M episodes
  per update (paper 001). Each iteration is split into **env** (drawing the channel
  realizations and computing the rates: :func:`controller.training.rollout.play` minus its
  policy calls), **forward** (the policy's ``act`` calls while playing) and **update**
  (the learner's step: advantages, value fit, natural gradient, line search);
* the V2X multi-agent DQN (``marl-dqn`` on ``v2x-manhattan``), whole training only:
  ``train_marl`` interleaves environment, forward and update slot by slot;
* beside TRPO centralized, sb3-contrib's TRPO on the same single-slot task and the same
  realizations (:func:`controller.bench.trpo.run_sb3`), when the 'bench' extra is there.

The issue's goal on a 2-core machine: 10^4 env steps/s on 3cell-k2 and 5 x 10^3 on
7cell-k8.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from channel_server.config import load_scenario
from channel_server.kinds import resolve
from controller.learners.threads import torch_threads
from controller.learners.trpo import Trpo, TrpoConfig, resolve_value_dtype
from controller.training.rollout import make_env, play
from controller.training.train import policy_config_for
from node.policy import seeded_policy
from protocols.seeding import rng_for

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
GOALS = {"3cell-k2": 1e4, "7cell-k8": 5e3}
"""Env steps per second the learning issue asks for, by scenario."""


class TimedPolicy:
    """A policy whose ``act`` calls are timed (what playing spends in the network)."""

    def __init__(self, policy: Any) -> None:
        self.policy = policy
        self.seconds = 0.0

    def act(self, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return self.policy.act(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t0


@dataclass(frozen=True)
class Row:
    """One trainer's figures."""

    trainer: str
    scenario: str
    steps: int
    wall_s: float
    env_s: float | None
    forward_s: float | None
    update_s: float | None

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.wall_s

    def as_dict(self) -> dict[str, Any]:
        return {"trainer": self.trainer, "scenario": self.scenario, "steps": self.steps,
                "wall_s": self.wall_s, "steps_per_s": self.steps_per_s, "env_s": self.env_s,
                "forward_s": self.forward_s, "update_s": self.update_s,
                "goal_steps_per_s": GOALS.get(self.scenario)}


def trpo_row(scenario_name: str, scheme: str, steps: int, m: int, seed: int) -> Row:
    """TRPO on ``scheme`` for at least ``steps`` steps, M = ``m``; time split by phase."""
    scenario = load_scenario(SCENARIOS / f"{scenario_name}.toml")
    radio = scenario.radio
    env = make_env(radio, scheme, int(rng_for(seed, "bench", "air").integers(2**31 - 1)), m)
    policy = seeded_policy(policy_config_for(scheme, scenario), seed)
    learner = Trpo(policy, TrpoConfig(episodes_per_iteration=m), rng_for(seed, "bench", "l"))
    timed = TimedPolicy(policy)
    rng = rng_for(seed, "bench", "rollout")
    done, play_s, update_s = 0, 0.0, 0.0
    t0 = time.perf_counter()
    while done < steps:
        t = time.perf_counter()
        batch = play(timed, scheme, env.draw_gains(m), radio, rng)  # type: ignore[arg-type]
        play_s += time.perf_counter() - t
        t = time.perf_counter()
        learner.step(batch)
        update_s += time.perf_counter() - t
        done += batch.steps
    wall = time.perf_counter() - t0
    return Row(f"trpo {scheme}", scenario_name, done, wall, play_s - timed.seconds,
               timed.seconds, update_s)


def v2x_row(episodes: int, seed: int) -> Row:
    """The V2X multi-agent DQN (marl-dqn) trained for ``episodes`` episodes."""
    from controller.training.v2x_marl import MarlConfig, train_marl, train_steps

    resolved = resolve(SCENARIOS / "v2x-manhattan.toml")
    scenario = resolved.scenario
    config = MarlConfig()
    t0 = time.perf_counter()
    train_marl(scenario, "marl-dqn", episodes, seed, config)
    wall = time.perf_counter() - t0
    return Row("dqn marl-dqn", scenario.name, int(train_steps(scenario, episodes, config)),
               wall, None, None, None)


def sb3_row(steps: int, m: int, seed: int) -> Row | str:
    """sb3-contrib's TRPO on the centralized 3cell-k2 task, or why it cannot run."""
    from controller.bench.trpo import run_sb3
    from controller.training.train import validation_gains

    scenario = load_scenario(SCENARIOS / "3cell-k2.toml")
    try:
        res = run_sb3(scenario.radio, steps, seed, m,
                      int(rng_for(seed, "bench", "air").integers(2**31 - 1)),
                      validation_gains(scenario, 10))
    except ImportError as e:
        return str(e)
    return Row("trpo sb3-contrib centralized", "3cell-k2", int(res["curve"][-1][0]),
               float(res["wall_s"]), None, None, None)


def run_bench_train(steps: int = 20_000, steps_7: int = 8_000, episodes: int = 1000,
                    v2x_episodes: int = 20, seed: int = 0,
                    sb3: bool = True) -> dict[str, Any]:
    """Every trainer's row (one torch thread); the sb3 row or why it is missing."""
    with torch_threads(1):
        rows = [trpo_row("3cell-k2", "centralized", steps, episodes, seed),
                trpo_row("7cell-k8", "round-robin", steps_7, episodes, seed),
                v2x_row(v2x_episodes, seed)]
        other = sb3_row(steps, episodes, seed) if sb3 else "skipped (--no-sb3)"
    if isinstance(other, Row):
        rows.insert(1, other)
    return {"rows": [r.as_dict() for r in rows],
            "sb3": None if isinstance(other, Row) else other,
            "trpo_value_dtype": resolve_value_dtype(TrpoConfig().value_dtype),
            "ratio_ours_to_sb3": (rows[0].steps_per_s / other.steps_per_s
                                  if isinstance(other, Row) else None)}


def print_bench_train(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="rrmbed bench train: env steps per second of the local trainers "
                    "(one torch thread)")
    for col in ("trainer", "scenario", "steps", "wall s", "steps/s", "goal", "env %",
                "forward %", "update %"):
        t.add_column(col, justify="left" if col in ("trainer", "scenario") else "right")
    for r in result["rows"]:
        def pct(x: float | None, r: dict[str, Any] = r) -> str:
            return "-" if x is None else f"{100 * x / r['wall_s']:.0f}"
        goal = r["goal_steps_per_s"]
        t.add_row(r["trainer"], r["scenario"], str(r["steps"]), f"{r['wall_s']:.1f}",
                  f"{r['steps_per_s']:.0f}", "-" if goal is None else f"{goal:.0f}",
                  pct(r["env_s"]), pct(r["forward_s"]), pct(r["update_s"]))
    Console(width=max(120, Console().width)).print(t)
    print(f"TRPO's value fit multiplies in {result['trpo_value_dtype']} on this CPU "
          "(TrpoConfig.value_dtype = auto)")
    if result["ratio_ours_to_sb3"] is not None:
        print(f"ours / sb3-contrib, TRPO centralized 3cell-k2: "
              f"{result['ratio_ours_to_sb3']:.2f}x the env steps per second")
    else:
        print(f"sb3-contrib: {result['sb3']}")
