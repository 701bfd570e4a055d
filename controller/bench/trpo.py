"""Peer benchmark: our centralized TRPO against sb3-contrib's TRPO on the same task.

The task is paper 001's centralized scheme on ``3cell-k2``: a single-slot episode, the
observation is ``obs_central(H)`` (B*B*K features), the action the B*K power fractions
(a ``Box(0, 1)``; both learners sample a Gaussian and clip to the box), the reward the
sum-rate in bit/s/Hz. :class:`CentralPowerEnv` wraps it as a ``gymnasium.Env``; it draws
its realizations ``chunk`` at a time from ``Air(radio, air_seed, episodes=chunk)``, so
with ``chunk = M`` both learners see exactly the same channel realizations in the same
order (our runner draws one ``Air.reset()`` of M episodes per iteration).

Both run in the same process, one torch thread each, for the same number of environment
steps, M steps per policy update. sb3-contrib is configured to match ours (paper 001,
Table II and :class:`controller.learners.trpo.TrpoConfig`): policy and value nets 3 x 256 ELU,
initial log-std -1 and initial mean 0.5 (the action head's bias is set after
construction), line-search factor 0.9 with up to 30 steps, 10 CG steps, damping 0.1,
value net by Adam (lr 1e-3, 5 epochs of minibatches of 256), gamma 0.99, normalized
advantages. Differences that remain: sb3 computes in float32 (ours float64), steps the
environment one slot at a time through a VecEnv (ours vectorized), and seeds torch's
global generator.

The trust region. sb3-contrib's ``kl_divergence(...).mean()`` for a Box action space
averages the per-dimension Gaussian KL over the batch AND the action dimensions (its
Fisher-vector products show it: the log-std block has curvature 2 / act_dim instead of
2), whereas TRPO, paper 001 and ours bound the KL of the joint action distribution (the
sum over dimensions). sb3's ``target_kl = 0.01`` therefore bounds our KL by
``act_dim * 0.01`` (0.06 for B*K = 6). The benchmark runs four learners:

* ``trpo (ours)``: delta = 0.01 (paper 001);
* ``trpo (sb3-contrib)``: ``target_kl = 0.01 / act_dim``, the same trust region: the
  like-for-like comparison, whose final reward is the target;
* ``trpo (sb3, default KL)``: ``target_kl = 0.01`` as sb3 reads it (summed KL 0.06);
* ``trpo (ours, delta x act_dim)``: ours with delta = 0.06, the same region as the
  previous one, which shows that the difference between those two is the trust region.

The reward of an iteration is the mean reward of the batch collected with the policy of
that iteration (sampled actions); its wall time is the time at which that batch was
collected, counted from the start of training. Reported: reward against steps and wall
time (a rich table at checkpoints and ``bench_trpo.png``), each final policy's
deterministic sum-rate on 1000 validation realizations, and the wall time each learner
needs to reach the like-for-like sb3 run's final reward (trailing mean of the last
``window`` iterations; a learner has reached it when its own trailing mean first does).

Needs the optional extra ``bench`` (sb3-contrib). Run ``python -m controller.bench.trpo``.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import torch

from channel_server.air import Air
from channel_server.config import RadioConfig, load_scenario
from channel_server.rates import sum_rate_bps_hz
from controller.learners.threads import torch_threads
from controller.learners.trpo import Trpo, TrpoConfig
from controller.training.rollout import collect, make_env, play
from controller.training.train import validation_gains
from node.observation import central_dims, obs_central
from node.policy import PolicyConfig, seeded_policy
from node.schemes.cellular import trainable
from protocols.seeding import rng_for

Array = npt.NDArray[np.float64]
SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "3cell-k2.toml"
OURS, SB3 = "trpo (ours)", "trpo (sb3-contrib)"
SB3_DEFAULT, OURS_WIDE = "trpo (sb3, default KL)", "trpo (ours, delta x act_dim)"
LEARNERS = (OURS, SB3, SB3_DEFAULT, OURS_WIDE)


def _gym() -> Any:
    """gymnasium, once the 'bench' extra is there (sb3-contrib: gymnasium alone comes with
    the 'envs' extra)."""
    try:
        import gymnasium
        import sb3_contrib  # noqa: F401
    except ImportError as e:  # pragma: no cover - depends on the optional extra
        raise ImportError("the TRPO benchmark needs the 'bench' extra: "
                          "pip install 'rrmbed[bench]' (sb3-contrib)") from e
    return gymnasium


def make_gym_env(radio: RadioConfig, air_seed: int, chunk: int) -> Any:
    """A :class:`gymnasium.Env` of the single-slot centralized task (see the module)."""
    gym = _gym()
    from gymnasium import spaces

    base: Any = gym.Env

    class CentralPowerEnv(base):  # type: ignore[misc]
        """Single-slot episode: observe obs_central(H), act B*K fractions, get the sum-rate."""

        metadata: dict[str, Any] = {"render_modes": []}

        def __init__(self) -> None:
            obs_dim, act_dim = central_dims(radio)
            self.observation_space = spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
            self.action_space = spaces.Box(0.0, 1.0, (act_dim,), np.float32)
            self.air = Air(radio, air_seed, episodes=chunk)
            self._chunk: Array = np.zeros((0, radio.n_cells, radio.users_per_cell,
                                           radio.n_cells))
            self._next = 0
            self._gains: Array | None = None

        def _obs(self) -> npt.NDArray[np.float32]:
            assert self._gains is not None
            return obs_central(self._gains, radio).astype(np.float32)

        def reset(self, *, seed: int | None = None,
                  options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
            super().reset(seed=seed)
            if self._next >= self._chunk.shape[0]:
                self._chunk, self._next = self.air.reset().copy(), 0
            self._gains = self._chunk[self._next]
            self._next += 1
            return self._obs(), {}

        def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
            assert self._gains is not None
            frac = np.clip(np.asarray(action, dtype=np.float64), 0.0, 1.0)
            powers = frac.reshape(radio.n_cells, radio.users_per_cell) * radio.pmax_w
            reward = float(sum_rate_bps_hz(self._gains, powers, radio.noise_w))
            return self._obs(), reward, True, False, {}

    return CentralPowerEnv()


# --------------------------------------------------------------------------- the two runs


def central_scheme() -> str:
    """The trainable scheme whose policy decides at the controller (the task above)."""
    return next(s.name for s in trainable() if s.central_policy)


def run_ours(radio: RadioConfig, steps: int, seed: int, m: int, air_seed: int,
             val: Array, max_kl: float = 0.01) -> dict[str, Any]:
    scheme = central_scheme()
    env = make_env(radio, scheme, air_seed, m)
    policy = seeded_policy(PolicyConfig(*central_dims(radio)), seed)
    cfg = TrpoConfig(max_kl=max_kl, episodes_per_iteration=m)
    learner = Trpo(policy, cfg, rng_for(seed, "bench", "trpo"))
    rng = rng_for(seed, "bench", "rollout")
    rows: list[tuple[int, float, float]] = []
    done = 0
    t0 = time.perf_counter()
    while done < steps:
        batch = collect(policy, env, m, rng)
        done += batch.steps
        rows.append((done, time.perf_counter() - t0, float(batch.sum_rate_bps_hz.mean())))
        learner.step(batch)
    wall = time.perf_counter() - t0
    det = play(policy, scheme, val, radio, rng, mode="mean").sum_rate_bps_hz.mean()
    return {"curve": rows, "wall_s": wall, "deterministic_bps_hz": float(det)}


def run_sb3(radio: RadioConfig, steps: int, seed: int, m: int, air_seed: int,
            val: Array, target_kl: float = 0.01) -> dict[str, Any]:
    _gym()
    from sb3_contrib import TRPO
    from stable_baselines3.common.callbacks import BaseCallback

    env = make_gym_env(radio, air_seed, m)
    with warnings.catch_warnings():  # a last short value minibatch, as ours has
        warnings.filterwarnings("ignore", message="You have specified a mini-batch size")
        model = TRPO(
            "MlpPolicy", env, learning_rate=1e-3, n_steps=m, batch_size=min(256, m),
            gamma=0.99, cg_max_steps=10, cg_damping=0.1, line_search_shrinking_factor=0.9,
            line_search_max_iter=30, n_critic_updates=5, target_kl=target_kl,
            normalize_advantage=True,
            policy_kwargs={"net_arch": {"pi": [256, 256, 256], "vf": [256, 256, 256]},
                           "activation_fn": torch.nn.ELU, "log_std_init": -1.0},
            seed=seed, device="cpu", verbose=0,
        )
    with torch.no_grad():  # same initial mean fraction as ours
        cast(Any, model.policy).action_net.bias.fill_(0.5)
    rows: list[tuple[int, float, float]] = []

    class Record(BaseCallback):
        t0 = 0.0

        def _on_training_start(self) -> None:
            self.t0 = time.perf_counter()

        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            rew = float(np.mean(cast(Any, self.model).rollout_buffer.rewards))
            rows.append((int(self.model.num_timesteps), time.perf_counter() - self.t0, rew))

    t0 = time.perf_counter()
    model.learn(total_timesteps=steps, callback=Record())
    wall = time.perf_counter() - t0
    act, _ = model.predict(obs_central(val, radio).astype(np.float32), deterministic=True)
    frac = np.clip(np.asarray(act, dtype=np.float64), 0.0, 1.0).reshape(val.shape[:3])
    det = sum_rate_bps_hz(val, frac * radio.pmax_w, radio.noise_w).mean()
    return {"curve": rows, "wall_s": wall, "deterministic_bps_hz": float(det)}


def trailing_mean(x: Array, window: int) -> Array:
    """Mean of the last ``window`` values at every index (fewer at the start)."""
    c = np.cumsum(np.concatenate([[0.0], x]))
    idx = np.arange(1, len(x) + 1)
    lo = np.maximum(idx - window, 0)
    out: Array = (c[idx] - c[lo]) / (idx - lo)
    return out


def time_to_reach(wall: Array, reward: Array, target: float, window: int) -> float | None:
    """Wall time at which the trailing mean of ``reward`` first reaches ``target``."""
    hit = np.nonzero(trailing_mean(reward, window) >= target)[0]
    return float(wall[hit[0]]) if hit.size else None


def run_bench(
    steps: int = 60_000,
    seed: int = 0,
    *,
    episodes_per_iter: int = 1000,
    window: int = 5,
    out: str | Path | None = None,
    progress: bool = True,
    learners: tuple[str, ...] = LEARNERS,
) -> dict[str, Any]:
    """Train the TRPO learners for ``steps`` env steps each (M = ``episodes_per_iter`` per update).

    Returns {"learners": {label: {"curve": [(steps, wall_s, reward)], "wall_s",
    "deterministic_bps_hz", "kl_bound"}}, "target_bps_hz", "time_to_target_s": {label: s or
    None}, ...}; writes ``bench_trpo.json`` and ``bench_trpo.png`` into ``out`` (default
    runs/bench-trpo) and prints the table when ``progress``. ``learners`` must include
    :data:`SB3` (the target).
    """
    if SB3 not in learners or not set(learners) <= set(LEARNERS):
        raise ValueError(f"learners must include {SB3!r} and be among {LEARNERS}")
    _gym()  # without the 'bench' extra, fail now rather than after training ours
    scenario = load_scenario(SCENARIO)
    radio = scenario.radio
    act_dim = radio.n_links
    air_seed = int(rng_for(seed, "bench", "air").integers(2**31 - 1))
    val = validation_gains(scenario, 1000)
    out_dir = Path(out) if out is not None else Path("runs") / "bench-trpo"
    delta = TrpoConfig().max_kl
    runs: dict[str, dict[str, Any]] = {}
    with torch_threads(1):
        for label in learners:
            args = (radio, steps, seed, episodes_per_iter, air_seed, val)
            if label == OURS:
                runs[label] = run_ours(*args, max_kl=delta)
                runs[label]["kl_bound"] = delta
            elif label == OURS_WIDE:
                runs[label] = run_ours(*args, max_kl=delta * act_dim)
                runs[label]["kl_bound"] = delta * act_dim
            elif label == SB3:
                runs[label] = run_sb3(*args, target_kl=delta / act_dim)
                runs[label]["kl_bound"] = delta
            else:
                runs[label] = run_sb3(*args, target_kl=delta)
                runs[label]["kl_bound"] = delta * act_dim
    arr = {k: np.array(v["curve"], dtype=np.float64) for k, v in runs.items()}
    target = float(trailing_mean(arr[SB3][:, 2], window)[-1])
    reach = {k: time_to_reach(a[:, 1], a[:, 2], target, window) for k, a in arr.items()}
    mbps = radio.bandwidth_hz / 1e6
    result: dict[str, Any] = {
        "scenario": scenario.name, "steps": steps, "seed": seed,
        "episodes_per_iter": episodes_per_iter, "window": window,
        "kl_bound_note": "kl_bound: bound on the mean KL of the joint action distribution "
                         "(sum over the B*K dimensions), nats",
        "learners": runs,
        "target": SB3,
        "target_bps_hz": target, "target_mbps": target * mbps,
        "time_to_target_s": reach,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench_trpo.json").write_text(json.dumps(result, indent=2) + "\n")
    from controller.evaluation.plots import plot_reward_vs

    plot_reward_vs(
        [(k, a[:, 0], a[:, 1], a[:, 2]) for k, a in arr.items()],
        out_dir / "bench_trpo.png",
        f"{scenario.name} centralized TRPO, ours vs sb3-contrib: M = {episodes_per_iter}, "
        f"seed {seed}", target=target, target_label=f"final reward of {SB3}")
    result["figure"] = str(out_dir / "bench_trpo.png")
    if progress:
        print_bench(result)
    return result


def print_bench(result: dict[str, Any], checkpoints: int = 10) -> None:
    from rich.console import Console
    from rich.table import Table

    runs = result["learners"]
    curves = {k: np.array(v["curve"]) for k, v in runs.items()}
    n = min(len(c) for c in curves.values())
    picks = sorted({max(0, round(i * n / checkpoints) - 1) for i in range(1, checkpoints + 1)})
    t = Table(title=f"TRPO on {result['scenario']} (centralized): reward = mean sum-rate "
                    "(bit/s/Hz) of the iteration's sampled actions / wall time (s)")
    t.add_column("steps", justify="right")
    for k in runs:
        t.add_column(k, justify="right")
    for i in picks:
        t.add_row(f"{int(curves[SB3][i, 0])}",
                  *[f"{c[i, 2]:.3f} / {c[i, 1]:.1f} s" for c in curves.values()])
    console = Console() if Console().is_terminal else Console(width=150)
    console.print(t)
    s = Table(title=f"target: final reward of {result['target']} (trailing mean of "
                    f"{result['window']}) = {result['target_bps_hz']:.4f} bit/s/Hz")
    for col in ("learner", "KL bound (joint)", "time to target", "total wall (s)",
                "deterministic sum-rate (val.)"):
        s.add_column(col, justify="left" if col == "learner" else "right")
    for k, v in runs.items():
        reach = result["time_to_target_s"][k]
        s.add_row(k, f"{v['kl_bound']:.3g}", "not reached" if reach is None else f"{reach:.1f} s",
                  f"{v['wall_s']:.1f}", f"{v['deterministic_bps_hz']:.4f}")
    console.print(s)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--episodes-per-iter", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    return run_bench(args.steps, args.seed, episodes_per_iter=args.episodes_per_iter,
                     out=args.out)


if __name__ == "__main__":
    main()
