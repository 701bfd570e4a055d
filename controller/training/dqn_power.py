"""Multi-cell downlink power control with discrete power levels, learned by multi-agent DQN.

Each BS is an agent. It observes its own CSI slice (``node.observation.obs_full``,
own cell first) and picks, with one **joint** action index, the power level of each of
its K users: ``action = sum_k level_k * L^k`` (L levels, L^K actions; 100 for 3cell-k2).
Joint per-BS actions rather than one agent per (BS, user) link: the K users of a BS
share the band, so the best choice of one user's power depends on the other's (often
"serve one user, mute the other"); a joint action lets one Q network represent that
directly, while per-link agents would have to coordinate it through the common reward.

Power levels (``level_spacing``): ``linear``: L levels evenly spaced in watts from 0 to
Pmax (default); ``db``: a zero level plus L - 1 levels spaced evenly in dB from
Pmax - ``db_range`` to Pmax (Nasir & Guo's quantisation).

Reward: the common sum-rate ``sum log2(1 + SINR)`` (bit/s/Hz) of the slot, the same for
every BS, times ``reward_scale``. Channels come from :class:`channel_server.air.Air` over
E parallel episodes: each environment step is a new slot, and users are re-dropped at
reset, every ``slots_per_episode`` slots. Episodes end by truncation, so the learner
always bootstraps. The powers do not influence the next channel (the observation holds
CSI only), so the future part of the return does not depend on the action; the default
``gamma = 0`` drops it and its variance (Q(s, a) is then the expected scaled sum-rate).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import torch

from channel_server.air import Air
from channel_server.config import RadioConfig, load_scenario
from channel_server.rates import csi_slice, sum_rate_bps_hz
from controller.baselines.wmmse import wmmse
from controller.learners.dqn import Dqn, DqnConfig, Transitions
from node.observation import obs_full
from protocols.seeding import rng_for

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _default_dqn() -> DqnConfig:
    """Liang et al.'s network (500-250-120), replay (200k) and target period (400), with a
    batch of 256 instead of 2000 and epsilon over 3000 updates so that training fits in a
    few CPU minutes; gamma = 0 (see the module docstring); Adam 1e-3 (tried 5e-4: slower)."""
    return DqnConfig(
        hidden=(500, 250, 120), learning_rate=1e-3, gamma=0.0, batch_size=256,
        replay_capacity=200_000, learning_starts=2000, target_period=400,
        epsilon_steps=3000, epsilon_schedule="linear", sharing="shared",
    )


@dataclass(frozen=True)
class DqnPowerConfig:
    """The power-control environment around the DQN learner."""

    levels: int = 10
    """L, discrete power levels per user (including zero)."""
    level_spacing: Literal["linear", "db"] = "linear"
    """linear: 0, Pmax/(L-1), ..., Pmax in watts; db: 0 and L-1 levels evenly in dB."""
    db_range: float = 30.0
    """db spacing only: the lowest non-zero level is Pmax minus this, dB."""
    episodes: int = 32
    """E, parallel Air episodes (slots per environment step)."""
    slots_per_episode: int = 50
    """Slots before the users are re-dropped (episode truncation), slots."""
    reward_scale: float = 0.1
    """Reward = this times the sum-rate, (bit/s/Hz)^-1 x reward units."""
    updates_per_step: int = 1
    """Learner updates per environment step."""
    dqn: DqnConfig = field(default_factory=_default_dqn)
    """The learner's hyper-parameters."""


def power_levels(radio: RadioConfig, cfg: DqnPowerConfig) -> Array:
    """The L power levels, watts, ascending, first one 0."""
    if cfg.levels < 2:
        raise ValueError("need at least 2 power levels")
    if cfg.level_spacing == "linear":
        return np.linspace(0.0, radio.pmax_w, cfg.levels)
    if cfg.level_spacing == "db":
        db = np.linspace(radio.pmax_dbm - cfg.db_range, radio.pmax_dbm, cfg.levels - 1)
        return np.concatenate([[0.0], 10.0 ** ((db - 30.0) / 10.0)])
    raise ValueError(f"unknown level spacing {cfg.level_spacing!r}")


def n_actions(radio: RadioConfig, cfg: DqnPowerConfig) -> int:
    return int(cfg.levels ** radio.users_per_cell)


def action_powers(actions: IntArray, radio: RadioConfig, cfg: DqnPowerConfig) -> Array:
    """Joint indices (..., B) -> powers (..., B, K) in watts (digit k = level of user k)."""
    digits = cfg.levels ** np.arange(radio.users_per_cell)
    level = (np.asarray(actions)[..., None] // digits) % cfg.levels
    out: Array = power_levels(radio, cfg)[level]
    return out


def observations(gains: Array, radio: RadioConfig) -> Array:
    """Every BS's own-slice observation, (E, B, K*B)."""
    return np.stack([obs_full(csi_slice(gains, b), b, radio) for b in range(radio.n_cells)],
                    axis=-2)


def make_learner(radio: RadioConfig, cfg: DqnPowerConfig, rng: np.random.Generator) -> Dqn:
    obs_dim = radio.users_per_cell * radio.n_cells
    return Dqn(obs_dim, n_actions(radio, cfg), radio.n_cells, cfg.dqn, rng)


def train(
    radio: RadioConfig, steps: int, seed: int, config: DqnPowerConfig | None = None
) -> tuple[dict[str, np.ndarray], dict[str, Array]]:
    """Train for ``steps`` environment steps (E slots each); return the learner's
    variables and the curve: per step the behaviour policy's mean sum-rate (bit/s/Hz),
    epsilon and TD loss (NaN before learning starts)."""
    cfg = config or DqnPowerConfig()
    if cfg.updates_per_step < 1:
        raise ValueError("updates_per_step must be >= 1")
    agent = make_learner(radio, cfg, rng_for(seed, "dqn-power", "learner"))
    act_rng = rng_for(seed, "dqn-power", "act")
    air = Air(radio, seed, episodes=cfg.episodes)
    gains = air.reset()
    curve = {k: np.full(steps, np.nan) for k in ("sum_rate_bps_hz", "epsilon", "loss")}
    for t in range(steps):
        obs = observations(gains, radio)
        eps = agent.epsilon(agent.updates)
        actions = agent.select_action(obs, eps, act_rng)
        rate = sum_rate_bps_hz(gains, action_powers(actions, radio, cfg), radio.noise_w)
        gains = air.step()  # the slot after; truncation still bootstraps from it
        agent.observe(Transitions(
            obs=obs, actions=actions, rewards=cfg.reward_scale * rate,
            next_obs=observations(gains, radio), terminated=np.zeros(cfg.episodes),
        ))
        if air.slot >= cfg.slots_per_episode:
            gains = air.reset()
        for _ in range(cfg.updates_per_step):
            stats = agent.step()
        curve["sum_rate_bps_hz"][t] = rate.mean()
        curve["epsilon"][t] = eps
        curve["loss"][t] = stats.get("loss", np.nan)
    return agent.get_variables(), curve


def evaluation_gains(radio: RadioConfig, n: int, seed: int) -> Array:
    """``n`` independent realizations (fresh drops), (n, B, K, B)."""
    return Air(radio, seed, episodes=n).reset()


def greedy_powers(
    radio: RadioConfig, variables: dict[str, np.ndarray], gains: Array,
    config: DqnPowerConfig | None = None,
) -> Array:
    """Greedy (epsilon = 0) powers (n, B, K), watts, of a trained learner's variables."""
    cfg = config or DqnPowerConfig()
    agent = make_learner(radio, cfg, np.random.default_rng(0))  # weights replaced below
    agent.set_variables(variables)
    actions = agent.select_action(observations(gains, radio), 0.0, np.random.default_rng(0))
    return action_powers(actions, radio, cfg)


def evaluate(
    radio: RadioConfig, variables: dict[str, np.ndarray], n: int, seed: int,
    config: DqnPowerConfig | None = None,
) -> float:
    """Mean sum-rate (bit/s/Hz) of the greedy policy over ``n`` fresh realizations."""
    gains = evaluation_gains(radio, n, seed)
    powers = greedy_powers(radio, variables, gains, config)
    return float(sum_rate_bps_hz(gains, powers, radio.noise_w).mean())


def baselines(
    radio: RadioConfig, n: int, seed: int, config: DqnPowerConfig | None = None
) -> dict[str, float]:
    """Mean sum-rate (bit/s/Hz) of max power and of uniformly random levels on the same
    realizations as :func:`evaluate` (same ``n``, ``seed``)."""
    cfg = config or DqnPowerConfig()
    gains = evaluation_gains(radio, n, seed)
    shape = gains.shape[:-3] + (radio.n_cells, radio.users_per_cell)
    full = np.full(shape, radio.pmax_w)
    level = rng_for(seed, "dqn-power", "random-levels").integers(0, cfg.levels, size=shape)
    random = power_levels(radio, cfg)[level]
    return {
        "max_power": float(sum_rate_bps_hz(gains, full, radio.noise_w).mean()),
        "random_levels": float(sum_rate_bps_hz(gains, random, radio.noise_w).mean()),
    }


def main(argv: list[str] | None = None) -> None:
    """Train on a scenario and print the greedy sum-rate next to max power and random levels."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", default=str(Path(__file__).resolve().parents[2]
                                             / "scenarios" / "3cell-k2.toml"))
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval", type=int, default=20_000)
    p.add_argument("--spacing", choices=["linear", "db"], default="linear")
    p.add_argument("--sharing", choices=["shared", "per-agent"], default="shared")
    p.add_argument("--fingerprint", action="store_true")
    p.add_argument("--gamma", type=float, default=None)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    radio = load_scenario(a.scenario).radio
    cfg = DqnPowerConfig(level_spacing=a.spacing)
    dqn = replace(cfg.dqn, sharing=a.sharing, fingerprint=a.fingerprint)
    if a.gamma is not None:
        dqn = replace(dqn, gamma=a.gamma)
    cfg = replace(cfg, dqn=dqn)
    t0 = time.process_time()
    variables, curve = train(radio, a.steps, a.seed, cfg)
    cpu = time.process_time() - t0
    eval_seed = a.seed + 10_000
    rate = evaluate(radio, variables, a.eval, eval_seed, cfg)
    ref = baselines(radio, a.eval, eval_seed, cfg)
    gains = evaluation_gains(radio, a.eval, eval_seed)
    wmmse_rate = float(sum_rate_bps_hz(gains, wmmse(gains, radio.noise_w, radio.pmax_w)[0],
                                       radio.noise_w).mean())
    last = curve["sum_rate_bps_hz"][-max(a.steps // 10, 1):].mean()
    print(f"steps {a.steps} x {cfg.episodes} slots, CPU {cpu:.0f} s, behaviour (last 10%) "
          f"{last:.3f}; greedy DQN {rate:.3f}  max power {ref['max_power']:.3f}  "
          f"random levels {ref['random_levels']:.3f}  WMMSE (continuous) {wmmse_rate:.3f} "
          f"bit/s/Hz over {a.eval} drops")


if __name__ == "__main__":
    main()
