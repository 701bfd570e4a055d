"""Local (one-process) multi-agent DQN for V2X spectrum sharing (paper 000, Liang-Ye-Li).

Schemes (CleanRL style: one training loop, one evaluation loop):

* ``"marl-dqn"``: every V2V agent acts at once, epsilon-greedy; one Double DQN **per
  agent** (as in the paper), all trained centrally in this process on their own replay;
  the fingerprint (14) (training iteration e, epsilon) is appended to every observation
  by the environment. ``e`` is the training episode mapped to
  ``[0, fingerprint_iterations]`` over the run, so the feature spans [0, 1] whatever the
  episode budget; evaluation uses the final fingerprint (``fingerprint_iterations``,
  final epsilon), which is stored in the returned variables as ``env_fingerprint``.
* ``"marl-dqn-nofp"``: the same without the fingerprint (observation 4 M + 2).
* ``"turn-dqn"``: the single-agent baseline: in slot t only agent ``t mod K`` may change
  its action, the others keep their previous one (actions at an episode start: uniform
  random). Same per-agent networks, no fingerprint; every agent's transition is stored
  with the action it actually held.
* ``"random"``: uniform (rb, power level) every slot; nothing is trained.

Training: ``n_envs`` episodes run in lock step per training episode (the environment is
vectorized); the vehicles keep moving between episodes and are re-dropped every
``redrop_every`` episodes. Epsilon decays linearly from 1 to ``epsilon_end`` over the
first ``explore_fraction`` of the episodes. Rewards are the environment's revised reward
(V2V rate until delivery, beta after), multiplied by ``reward_scale`` before learning
(a positive scale does not change the optimal policy; it keeps Q values near 1).
Randomness: ``rng_for(seed, "v2x-marl", ...)`` streams only; torch runs on one thread.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from channel_server.v2x import V2xScenario
from controller.learners.dqn import Dqn, DqnConfig, Transitions
from controller.learners.threads import torch_threads
from controller.training.sweep import SweepConfig, sweep
from controller.training.v2x_env import V2xEnv, decode_action
from node.schemes import SCHEMES
from node.v2x_observation import observation_dim
from node.vehicle_agent import eval_fingerprint, greedy_actions, scheme_scenario
from protocols.seeding import rng_for
from protocols.weights import WeightsArtifact

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class MarlConfig:
    """Training settings of the local multi-agent DQN."""

    dqn: DqnConfig = field(default_factory=lambda: DqnConfig(
        hidden=(64, 64), batch_size=256, replay_capacity=50_000, learning_starts=1000,
        target_period=100, gamma=0.95, learning_rate=1e-3, sharing="per-agent"))
    """Learner hyper-parameters (its epsilon schedule is unused: epsilon is set here)."""
    n_envs: int = 4
    """Episodes played in lock step per training episode."""
    train_every: int = 4
    """Environment slots between learner updates (one update per network each time)."""
    epsilon_end: float = 0.02
    """Exploration rate after the decay (probability of a uniform random action)."""
    explore_fraction: float = 0.8
    """Fraction of the training episodes over which epsilon decays linearly from 1."""
    redrop_every: int = 10
    """Training episodes between new vehicle drops (the world continues otherwise)."""
    reward_scale: float = 0.01
    """Factor applied to the environment reward before it enters the replay (1/reward)."""


def marl_config(sharing: str = "per-agent") -> MarlConfig:
    """The default training settings with one Q network per agent or one shared network."""
    if sharing not in ("per-agent", "shared"):
        raise ValueError(f"sharing must be 'per-agent' or 'shared', got {sharing!r}")
    cfg = MarlConfig()
    return dataclasses.replace(cfg, dqn=dataclasses.replace(cfg.dqn, sharing=sharing))  # type: ignore[arg-type]


def options_of(scheme: str) -> dict[str, Any]:
    """The V2X scheme's registry options (fingerprint, turns, learned)."""
    return SCHEMES.get("v2x", scheme).options


def turn_actions(previous: IntArray, proposed: IntArray, t: int) -> IntArray:
    """Round robin: agent ``t mod K`` takes its proposed action, the others keep theirs."""
    k = previous.shape[-1]
    out: IntArray = np.where(np.arange(k) == t % k, proposed, previous).astype(np.int64)
    return out


def stack_obs(env: V2xEnv, obs: dict[str, Any]) -> Array:
    """PettingZoo observation dict of a vectorized env -> ``(E, K, D)`` float64."""
    return np.stack([obs[a] for a in env.possible_agents], axis=1).astype(np.float64)


def epsilon_at(episode: int, episodes: int, cfg: MarlConfig) -> float:
    """Linear decay 1 -> epsilon_end over the first explore_fraction of the episodes."""
    frac = min(episode / max(cfg.explore_fraction * episodes, 1.0), 1.0)
    return 1.0 + (cfg.epsilon_end - 1.0) * frac


def train_marl(
    scenario: V2xScenario, scheme: str, episodes: int, seed: int,
    config: MarlConfig | None = None,
) -> tuple[dict[str, np.ndarray], list[dict[str, float]]]:
    """Train ``scheme``; returns (variables, curve) with one curve row per episode
    (epsilon, mean return, delivery rate, sum V2I Mbps, last update's loss)."""
    cfg = config if config is not None else MarlConfig()
    if not options_of(scheme)["learned"]:
        return {}, []
    with torch_threads(1):
        return _train(scheme_scenario(scenario, scheme), scheme, episodes, seed, cfg)


def _train(scn: V2xScenario, scheme: str, episodes: int, seed: int,
           cfg: MarlConfig) -> tuple[dict[str, np.ndarray], list[dict[str, float]]]:
    env = V2xEnv(scn, n_envs=cfg.n_envs)
    dqn = Dqn(env.observation_dim, env.n_actions, env.n_agents, cfg.dqn,
              rng_for(seed, "v2x-marl", "learner"))
    act_rng = rng_for(seed, "v2x-marl", "act")
    world_rng = rng_for(seed, "v2x-marl", "world")
    fp_iters = scn.observation.fingerprint_iterations
    shape = (cfg.n_envs, env.n_agents)
    curve: list[dict[str, float]] = []
    stats: dict[str, float] = {}
    for ep in range(episodes):
        eps = epsilon_at(ep, episodes, cfg)
        env.set_fingerprint(ep * fp_iters // max(episodes, 1), eps)
        redrop = ep % cfg.redrop_every == 0
        obs = stack_obs(env, env.reset(seed=int(world_rng.integers(2**31 - 1))
                                       if redrop else None)[0])
        held = act_rng.integers(0, env.n_actions, shape)
        ret = np.zeros(cfg.n_envs)
        done = False
        while not done:
            t = env.t
            action = dqn.select_action(obs, eps, act_rng)
            if options_of(scheme)["turns"]:
                action = turn_actions(held, action, t)
            held = action
            out = env.step_arrays(*decode_action(action, env.n_rb))
            done = out.done
            ret += out.reward
            dqn.observe(Transitions(obs=obs, actions=action,
                                    rewards=out.reward * cfg.reward_scale,
                                    next_obs=out.obs.astype(np.float64),
                                    terminated=np.full(cfg.n_envs, float(done))))
            obs = out.obs.astype(np.float64)
            if t % cfg.train_every == 0:
                stats = dqn.step()
        m = env.episode_metrics()
        curve.append({"episode": float(ep), "epsilon": eps, "return": float(ret.mean()),
                      "delivery_rate": float(m["delivery_rate"].mean()),
                      "sum_v2i_mbps": float(m["sum_v2i_rate_bps"].mean() / 1e6),
                      "loss": float(stats.get("loss", np.nan))})
    variables = dqn.get_variables()
    if options_of(scheme)["fingerprint"]:
        variables["env_fingerprint"] = np.array([fp_iters, cfg.epsilon_end])
    return variables, curve


def q_dims(scenario: V2xScenario) -> dict[str, int]:
    """The sizes a V2X weights file must agree with (the scheme scenario given)."""
    r = scenario.radio
    return {"obs_dim": observation_dim(scenario),
            "n_actions": r.n_rb * len(r.v2v_power_levels_dbm), "n_agents": r.n_v2v}


def marl_artifact(
    scenario: V2xScenario, scheme: str, variables: dict[str, np.ndarray], steps: int,
    config: MarlConfig | None = None, extra: dict[str, Any] | None = None,
) -> WeightsArtifact:
    """Trained variables (with their env_fingerprint) as a weights file's artifact:
    kind 'v2x', algo 'dqn' ('none' when there are no variables: the random scheme),
    ``steps`` the environment steps (slots x parallel episodes) trained on."""
    cfg = config if config is not None else MarlConfig()
    return WeightsArtifact.create(
        variables, scheme=scheme, kind="v2x", dims=q_dims(scheme_scenario(scenario, scheme)),
        algo="dqn" if variables else "none", steps=steps,
        extra={"scenario": scenario.name, "sharing": cfg.dqn.sharing, **(extra or {})})


def train_steps(scenario: V2xScenario, episodes: int, config: MarlConfig | None = None) -> int:
    """Environment steps :func:`train_marl` takes: episodes x slots x parallel episodes."""
    cfg = config if config is not None else MarlConfig()
    return episodes * scenario.n_steps * cfg.n_envs


def evaluate_marl(
    scenario: V2xScenario, scheme: str, variables: dict[str, np.ndarray], episodes: int,
    seed: int,
) -> dict[str, float]:
    """Greedy evaluation on ``episodes`` fresh drops (:func:`evaluate_episodes`): mean
    delivery rate, mean sum V2I rate (Mbps), mean delivery time (ms) of the delivered
    links."""
    m = evaluate_episodes(scenario, scheme, variables, episodes, seed)
    times = m["delivery_time_s"]
    return {
        "delivery_rate": float(m["delivery_rate"].mean()),
        "sum_v2i_mbps": float(m["sum_v2i_rate_bps"].mean() / 1e6),
        "mean_delivery_ms": float(np.nanmean(times) * 1e3) if np.isfinite(times).any()
        else float("nan"),
    }


def evaluate_episodes(
    scenario: V2xScenario, scheme: str, variables: dict[str, np.ndarray], episodes: int,
    seed: int,
) -> dict[str, np.ndarray]:
    """Greedy evaluation on ``episodes`` fresh drops (one vectorized batch, world seed
    ``seed``): each episode's metrics (``V2xEnv.episode_metrics``: delivery rate and sum
    V2I rate ``(episodes,)``, delivery time ``(episodes, K)``). ``"random"`` draws from
    ``rng_for(seed, "v2x", "random-policy")`` exactly as
    :func:`controller.training.v2x_env.random_policy_metrics`; ``"turn-dqn"`` keeps the
    round robin (initial actions from ``rng_for(seed, "v2x-marl", "eval")``)."""
    scn = scheme_scenario(scenario, scheme)
    env = V2xEnv(scn, n_envs=episodes)
    shape = (episodes, env.n_agents)
    env.set_fingerprint(*eval_fingerprint(variables))
    opts = options_of(scheme)
    obs = stack_obs(env, env.reset(seed=seed)[0])
    if not opts["learned"]:
        rng = rng_for(seed, "v2x", "random-policy")
    else:
        rng = rng_for(seed, "v2x-marl", "eval")
        held = rng.integers(0, env.n_actions, shape)
    done = False
    while not done:
        if not opts["learned"]:
            out = env.step_arrays(rng.integers(0, env.n_rb, shape),
                                  rng.integers(0, env.n_levels, shape))
        else:
            action = greedy_actions(variables, obs)
            if options_of(scheme)["turns"]:
                action = turn_actions(held, action, env.t)
            held = action
            out = env.step_arrays(*decode_action(action, env.n_rb))
        obs, done = out.obs.astype(np.float64), out.done
    metrics: dict[str, np.ndarray] = env.episode_metrics()
    return metrics


def single_link_bound(scenario: V2xScenario, episodes: int, seed: int) -> float:
    """Delivery rate no scheme can beat on these drops: every V2V link alone (the other
    V2V links silent), at the highest power level, on its best RB in every slot, so only
    the V2I links interfere. Same drops as :func:`evaluate_marl` with the same seed."""
    from channel_server.v2x import link_rates
    from channel_server.v2x_air import V2xAir

    air = V2xAir(scenario, episodes, seed)
    r = scenario.radio
    e_n, k_n, m_n = episodes, air.n_agents, air.n_rb
    remaining = np.full((e_n, k_n), scenario.traffic.payload_bits)
    top = float(np.max(r.v2v_power_levels_w))
    for _ in range(scenario.n_steps):
        v2i_gain, v2v_gain = air.world.gains()
        best = np.zeros((e_n, k_n))
        for k in range(k_n):
            power = np.zeros((e_n, k_n))
            power[:, k] = top
            for m in range(m_n):
                rb = np.zeros((e_n, k_n), dtype=np.int64)
                rb[:, k] = m
                rate = link_rates(r, v2i_gain, v2v_gain, air.tx, air.rx, rb, power)
                best[:, k] = np.maximum(best[:, k], rate.v2v_rate_bps[:, k])
        remaining = remaining - best * r.slot_s
        air.world.advance()
    return float(np.mean(remaining <= 0.0))


def run_all(scenario: V2xScenario, episodes: int, seeds: tuple[int, ...],
            eval_episodes: int = 100, config: MarlConfig | None = None,
            sweep_config: SweepConfig | None = None,
            say: Callable[[str], None] = print,
            on_seed: Callable[[int, dict[str, dict[str, Any]]], None] | None = None,
            ) -> dict[str, Any]:
    """Every scheme x seed: train, then evaluate greedily on fresh drops (seed 10^6 + s).
    ``sweep_config``: where the seeds run (each seed every scheme; in order here, or one Ray
    task per seed, with the same results); ``on_seed(seed, rows)`` as each seed finishes."""
    per_seed = sweep(partial(seed_rows, scenario, episodes, eval_episodes, config), seeds,
                     sweep_config or SweepConfig(), say=say, on_done=on_seed)
    return {scheme: [rows[scheme] for rows in per_seed] for scheme in SCHEMES.names("v2x")}


def seed_rows(scenario: V2xScenario, episodes: int, eval_episodes: int,
              config: MarlConfig | None, seed: int) -> dict[str, dict[str, Any]]:
    """One seed of :func:`run_all`: every scheme trained and evaluated."""
    out: dict[str, dict[str, Any]] = {}
    for scheme in SCHEMES.names("v2x"):
        variables, curve = train_marl(scenario, scheme, episodes, seed, config)
        row = evaluate_marl(scenario, scheme, variables, eval_episodes, 1_000_000 + seed)
        out[scheme] = {"seed": seed, **row,
                       "final_train_delivery": curve[-1]["delivery_rate"] if curve else None}
    return out


def train_and_write(scenario: V2xScenario, scheme: str, episodes: int, seed: int,
                    config: MarlConfig, out: Path) -> list[dict[str, float]]:
    """Train ``scheme`` locally; write ``out/weights.npz`` (a typed weights file) and
    ``out/training.csv``; the training curve."""
    variables, curve = train_marl(scenario, scheme, episodes, seed, config)
    out.mkdir(parents=True, exist_ok=True)
    steps = train_steps(scenario, episodes, config) if curve else 0  # random: nothing trained
    marl_artifact(scenario, scheme, variables, steps, config,
                  extra={"seed": seed, "episodes": episodes}).save(out / "weights.npz")
    if curve:
        with (out / "training.csv").open("w", newline="") as f:
            wr = csv.DictWriter(f, fieldnames=list(curve[0]))
            wr.writeheader()
            wr.writerows(curve)
    return curve
