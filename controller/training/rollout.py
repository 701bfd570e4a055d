"""Vectorized paper-001 environments for fast training in one process.

The trainable cellular schemes (``node.schemes.cellular.trainable``) play by their
exchange pattern; paper 001's three (Section III), all on the same air
(:class:`channel_server.air.Air`) and the same observation builders as the nodes,
so a policy trained here runs unchanged in the network runner:

* ``central`` (``centralized``): one single-slot episode per channel realization; the state is the
  whole channel (``obs_central``), the action all B*K power fractions; the reward is
  the sum-rate.
* ``chain`` (``round-robin``): a B-step episode per realization. The BSs act in a random order
  (drawn per episode from the caller's generator); BS ``b`` sees its own CSI, the
  fractions chosen by earlier BSs and the mask of who has chosen
  (``obs_round_robin``). Rewards are 0 except the last step, which gets the sum-rate.
* ``none`` (``full``): every BS acts at once on its own CSI (``obs_full``) with the shared
  policy; each BS's decision is a single-step episode whose reward is the common
  sum-rate.

Rewards are the network sum-rate in bit/s/Hz (multiply by ``radio.bandwidth_hz`` for
bit/s). A power is ``power_fraction(raw, radio.action_map) * radio.pmax_w``; the batch
keeps the raw Gaussian action, which the learners need for log-probabilities. All randomness is
from the air's own seeded streams and the generator passed in.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from channel_server.air import Air
from channel_server.config import RadioConfig
from channel_server.rates import sum_rate_bps_hz
from node.agent import scheme_of
from node.observation import (
    central_dims,
    full_dims,
    obs_central,
    obs_full,
    obs_round_robin,
    round_robin_dims,
)
from node.policy import ActionMode, GaussianPolicy, PolicyConfig
from node.policy_spec import power_fraction
from node.schemes import Scheme
from node.schemes.cellular import trainable

Array = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Variant = str
"""The name of a trainable cellular scheme (``node.schemes.cellular.trainable``)."""
DIMS: dict[str, Callable[[RadioConfig], tuple[int, int]]] = {
    "central": central_dims, "chain": round_robin_dims, "none": full_dims}
"""(obs_dim, act_dim) of the policy, by the scheme's exchange pattern."""


def scheme_for(variant: Variant) -> Scheme:
    """The trainable scheme called ``variant`` (ValueError naming the trainable ones)."""
    spec = scheme_of(variant)
    if spec not in trainable() or spec.exchange not in DIMS:
        known = ", ".join(s.name for s in trainable() if s.exchange in DIMS)
        raise ValueError(f"unknown variant {variant!r}; known: {known}")
    return spec


@dataclass(frozen=True)
class Batch:
    """On-policy experience: the steps of whole episodes, each episode contiguous, in order."""

    obs: Array
    """(T, obs_dim) observations."""
    actions: Array
    """(T, act_dim) raw Gaussian actions (before clipping to power fractions)."""
    rewards: Array
    """(T,) rewards, bit/s/Hz."""
    dones: BoolArray
    """(T,) True on the last step of an episode (every episode ends in the batch)."""
    sum_rate_bps_hz: Array
    """(M,) network sum-rate of each channel realization, bit/s/Hz."""

    @property
    def steps(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def episodes(self) -> int:
        return int(self.dones.sum())


class GainSource(Protocol):
    """Anything that yields fresh channel realizations like :class:`Air`."""

    @property
    def episodes(self) -> int:
        """E, the number of realizations per draw."""
        ...

    def reset(self) -> Array:
        """New user drops and fading: gains (E, B, K, B)."""
        ...


@dataclass
class PowerEnv:
    """One paper-001 variant over a source of channel realizations."""

    radio: RadioConfig
    """The radio scenario."""
    variant: Variant
    """Execution scheme: a trainable scheme's name."""
    air: GainSource
    """Source of channel realizations (one ``reset`` per E episodes)."""

    def __post_init__(self) -> None:
        scheme_for(self.variant)

    @property
    def dims(self) -> tuple[int, int]:
        """(obs_dim, act_dim) of the policy this variant trains."""
        return variant_dims(self.variant, self.radio)

    def policy_config(self) -> PolicyConfig:
        return PolicyConfig(*self.dims)

    def draw_gains(self, episodes: int) -> Array:
        """``episodes`` fresh channel realizations (episodes, B, K, B)."""
        draws = math.ceil(episodes / self.air.episodes)
        gains = np.concatenate([self.air.reset() for _ in range(draws)], axis=0)
        return gains[:episodes]


def variant_dims(variant: Variant, radio: RadioConfig) -> tuple[int, int]:
    return DIMS[scheme_for(variant).exchange](radio)


def make_env(radio: RadioConfig, variant: Variant, seed: int, episodes: int) -> PowerEnv:
    """An environment drawing ``episodes`` realizations per :meth:`Air.reset`."""
    return PowerEnv(radio, variant, Air(radio, seed, episodes=episodes))


# --------------------------------------------------------------------------- playing


def _noise(rng: np.random.Generator, shape: tuple[int, ...], mode: ActionMode) -> Array | None:
    return rng.standard_normal(shape) if mode == "sample" else None


def play(
    policy: GaussianPolicy,
    variant: Variant,
    gains: Array,
    radio: RadioConfig,
    rng: np.random.Generator,
    mode: ActionMode = "sample",
    on: BoolArray | None = None,
) -> Batch:
    """One episode per realization in ``gains`` (M, B, K, B); returns the experience.
    ``on`` (M, B, K): the users switched on (paper 004's H_xi, :func:`random_selection`);
    the channel of every user off is zeroed before anyone observes it, and the users off
    get 0 W whatever the policy chose."""
    m, b_n, k_n = gains.shape[0], radio.n_cells, radio.users_per_cell
    exchange = scheme_for(variant).exchange
    watts: float | np.ndarray = radio.pmax_w
    if on is not None:
        gains = gains * on.transpose(0, 2, 1)[:, None]  # gains[m, b, k, c]: user (c, k)
        watts = on * radio.pmax_w
    if exchange == "central":
        obs = obs_central(gains, radio)
        raw = policy.act(obs, mode, _noise(rng, (m, b_n * k_n), mode))
        frac = power_fraction(raw, radio.action_map).reshape(m, b_n, k_n)
        rate = sum_rate_bps_hz(gains, frac * watts, radio.noise_w)
        return Batch(obs, raw, rate.copy(), np.ones(m, dtype=bool), rate)

    if exchange == "none":
        obs = np.stack([obs_full(gains[:, b], b, radio) for b in range(b_n)], axis=1)
        raw = policy.act(obs, mode, _noise(rng, (m, b_n, k_n), mode))  # (M, B, K)
        rate = sum_rate_bps_hz(gains, power_fraction(raw, radio.action_map) * watts,
                               radio.noise_w)
        return Batch(
            obs.reshape(m * b_n, -1),
            raw.reshape(m * b_n, k_n),
            np.repeat(rate, b_n),
            np.ones(m * b_n, dtype=bool),
            rate,
        )

    if exchange == "chain":
        _, obs_steps, raw_steps, prior = walk_chain(
            gains, radio, rng,
            lambda obs, acting: policy.act(obs, mode, _noise(rng, (m, k_n), mode)))
        rate = sum_rate_bps_hz(gains, prior * watts, radio.noise_w)
        rewards = np.zeros((m, b_n))
        rewards[:, -1] = rate
        dones = np.zeros((m, b_n), dtype=bool)
        dones[:, -1] = True
        return Batch(
            obs_steps.reshape(m * b_n, -1),
            raw_steps.reshape(m * b_n, k_n),
            rewards.reshape(-1),
            dones.reshape(-1),
            rate,
        )
    raise AssertionError(f"no rollout for exchange {exchange!r}")  # scheme_for checked it


def walk_chain(gains: Array, radio: RadioConfig, rng: np.random.Generator,
               decide: Callable[[Array, npt.NDArray[np.int64]], Array],
               ) -> tuple[npt.NDArray[np.int64], Array, Array, Array]:
    """The round-robin chain over M realizations ``gains`` (M, B, K, B): per realization the
    BSs act in a random order drawn from ``rng``; at step n the acting BSs (one per
    realization) observe their own slice and the fractions the BSs before them chose, and
    ``decide(observations (M, D), acting BSs (M,))`` gives their raw actions (M, K).
    Returns ``(orders, observations, raw actions)``, the last two (M, B, ...) by step, and
    the fractions (M, B, K) by BS."""
    m, b_n, k_n = gains.shape[0], radio.n_cells, radio.users_per_cell
    orders = rng.permuted(np.tile(np.arange(b_n), (m, 1)), axis=1)  # (M, B)
    rows = np.arange(m)
    prior = np.zeros((m, b_n, k_n))
    chosen = np.zeros((m, b_n))
    obs_steps = np.empty((m, b_n, round_robin_dims(radio)[0]))
    raw_steps = np.empty((m, b_n, k_n))
    for n in range(b_n):
        acting = orders[:, n]
        for b in range(b_n):
            idx = acting == b
            if idx.any():
                obs_steps[idx, n] = obs_round_robin(gains[idx, b], b, prior[idx], chosen[idx],
                                                    radio)
        raw = decide(obs_steps[:, n], acting)
        raw_steps[:, n] = raw
        prior[rows, acting] = power_fraction(raw, radio.action_map)
        chosen[rows, acting] = 1.0
    return orders, obs_steps, raw_steps, prior


def random_selection(rng: np.random.Generator, episodes: int,
                     radio: RadioConfig) -> BoolArray:
    """Paper 004's "diverse" training draws (its Table I): per episode a fresh activation
    probability per user, kappa ~ U(0, 1), and the user on with that probability;
    ``(episodes, B, K)``."""
    shape = (episodes, radio.n_cells, radio.users_per_cell)
    kappa = rng.uniform(0.0, 1.0, shape)
    out: BoolArray = rng.uniform(0.0, 1.0, shape) < kappa
    return out


def collect(
    policy: GaussianPolicy,
    env: PowerEnv,
    episodes: int,
    rng: np.random.Generator,
    mode: ActionMode = "sample",
    selection: np.random.Generator | None = None,
) -> Batch:
    """``episodes`` fresh episodes of ``env`` played by ``policy`` (sampled actions by default;
    ``selection``: a generator of :func:`random_selection`'s users on, None: every user)."""
    gains = env.draw_gains(episodes)
    on = None if selection is None else random_selection(selection, episodes, env.radio)
    return play(policy, env.variant, gains, env.radio, rng, mode, on)


def max_power_sum_rate(gains: Array, radio: RadioConfig) -> Array:
    """Sum-rate (bit/s/Hz) of every realization with every user at Pmax, shape (M,)."""
    powers = np.full(gains.shape[:-1], radio.pmax_w)  # (M, B, K)
    return sum_rate_bps_hz(gains, powers, radio.noise_w)
