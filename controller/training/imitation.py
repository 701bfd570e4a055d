"""A warm start by imitation: before TRPO, fit the policy's mean to a classical scheme.

Issue 13 lists "a warm start by imitating WMMSE" among what may make the 7-cell
round-robin policy learn. The teacher is any cellular scheme with a batch allocator (FP,
WMMSE, ...). On ``drops`` fresh channel realizations the teacher's powers are computed with
the full channel, and the policy's mean network is fitted by least squares to the raw
actions that give the teacher's power fractions ``p / Pmax``
(:func:`node.policy_spec.raw_action`: the fractions themselves for the ``clip`` action
map), from the observations the scheme's deciding entity sees:

* ``central`` (the centralized scheme): the whole channel -> every user's fraction;
* ``none`` (fully decentralized): each BS's own CSI slice -> its K fractions;
* ``chain`` (round-robin): the BSs act in a random order per realization and each sees its
  own slice plus the fractions the BSs before it chose, which are the teacher's (teacher
  forcing: what the chain would forward if every BS acted as the teacher).

The policy's log-std is left as it was: TRPO explores around the imitated mean. Adam on
minibatches; realizations, orders and minibatches from the generators given, so a seed
gives the same weights every time. Pure: no files, no global random state.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from channel_server.air import Air
from channel_server.config import Scenario
from controller.training.rollout import walk_chain
from node.observation import obs_central, obs_full
from node.policy import GaussianPolicy
from node.policy_spec import raw_action
from node.schemes import SCHEMES, Scheme
from node.schemes.cellular import KIND, classical

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ImitationConfig:
    """The warm start of a training run."""

    teacher: str = "fp"
    """The classical cellular scheme imitated (one with a batch allocator: fp, wmmse, ...)."""
    drops: int = 20_000
    """Channel realizations the teacher solves (the data set), realizations."""
    epochs: int = 10
    """Passes over the data set."""
    learning_rate: float = 1e-3
    """Adam step size, per minibatch."""
    minibatch: int = 256
    """Samples (decisions) per Adam step."""

    def __post_init__(self) -> None:
        if self.drops < 1 or self.epochs < 1 or self.minibatch < 1:
            raise ValueError("imitation drops, epochs and minibatch must be >= 1")
        names = [s.name for s in classical()]
        if self.teacher not in names:
            raise ValueError(f"teacher {self.teacher!r} is not a classical cellular scheme "
                             f"with a batch allocator; known: {', '.join(sorted(names))}")


AUTO = "auto"
"""``--imitate`` default: the scheme's own warm-start teacher (its ``warm_start`` option)."""
NONE = "none"
"""``--imitate none``: no warm start, the paper's recipe (seeded initial weights)."""


def resolve_teacher(choice: str, scheme: Scheme, *, user_selection: bool = False,
                    weights: bool = False) -> str | None:
    """The teacher a training run imitates, from ``--imitate`` ``choice``: ``auto`` is the
    scheme's ``warm_start`` option (the teacher that won where it was measured), unless
    the run plays random subsets of users (``user_selection``, which imitation does not
    cover) or starts from given ``weights``; ``none`` is no warm start; any other value
    names the teacher. ValueError for a named teacher with given weights."""
    if choice == NONE:
        return None
    if choice == AUTO:
        return None if user_selection or weights else scheme.options.get("warm_start")
    if weights:
        raise ValueError(f"a run starts from --weights or from a warm start imitating "
                         f"{choice!r}, not both")
    return choice


def teacher_fractions(scenario: Scenario, teacher: str, gains: Array,
                      rng: np.random.Generator | None) -> Array:
    """The teacher's powers on ``gains`` (M, B, K, B) as fractions of Pmax, (M, B, K)
    (``rng``: a stochastic teacher's draws)."""
    powers, _ = SCHEMES.get(KIND, teacher).allocate(gains, scenario.radio, scenario.baselines,
                                                    rng)
    out: Array = np.asarray(powers, dtype=np.float64) / scenario.radio.pmax_w
    return out


def dataset(exchange: str, scenario: Scenario, gains: Array, fractions: Array,
            rng: np.random.Generator) -> tuple[Array, Array]:
    """(observations, target fractions) of the deciding entity of a scheme whose exchange
    is ``exchange``, one row per decision."""
    radio = scenario.radio
    m, b_n, k_n = fractions.shape
    if exchange == "central":
        return obs_central(gains, radio), fractions.reshape(m, b_n * k_n)
    if exchange == "none":
        obs = np.stack([obs_full(gains[:, b], b, radio) for b in range(b_n)], axis=1)
        return obs.reshape(m * b_n, -1), fractions.reshape(m * b_n, k_n)
    if exchange != "chain":
        raise ValueError(f"no imitation data for exchange {exchange!r}")
    orders, obs, raw, _ = walk_chain(gains, radio, rng,
                                     lambda _, acting: fractions[np.arange(m), acting])
    # one row per decision, by step, then by acting BS, then by realization
    by_bs = np.argsort(orders.T, axis=1, kind="stable")[..., None]  # (B steps, M, 1)
    rows = [np.take_along_axis(x.transpose(1, 0, 2), by_bs, axis=1).reshape(m * b_n, -1)
            for x in (obs, raw)]
    return rows[0], rows[1]


def fit_mean(policy: GaussianPolicy, obs: Array, targets: Array, cfg: ImitationConfig,
             rng: np.random.Generator) -> list[float]:
    """Adam on the squared error of the policy's mean; the mean squared error of each
    epoch (over its minibatches, weighted by their size)."""
    x, y = torch.as_tensor(obs), torch.as_tensor(targets)
    params = list(policy.mean_net.parameters())
    opt = torch.optim.Adam(params, lr=cfg.learning_rate)
    n = x.shape[0]
    curve = []
    for _ in range(cfg.epochs):
        order = torch.as_tensor(rng.permutation(n))
        total = 0.0
        for start in range(0, n, cfg.minibatch):
            idx = order[start:start + cfg.minibatch]
            loss = ((policy.mean_net(x[idx]) - y[idx]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * idx.shape[0]
        curve.append(total / n)
    return curve


def imitate(policy: GaussianPolicy, exchange: str, scenario: Scenario, cfg: ImitationConfig,
            air_seed: int, rng: np.random.Generator) -> dict[str, Any]:
    """Fit ``policy``'s mean to the teacher on ``cfg.drops`` realizations of
    ``Air(radio, air_seed)``; returns what it did (teacher, sizes, the MSE per epoch, the
    teacher's mean sum rate on the data set in bit/s/Hz, seconds)."""
    from channel_server.rates import sum_rate_bps_hz

    t0 = time.perf_counter()
    radio = scenario.radio
    gains = Air(radio, air_seed, episodes=cfg.drops).reset().copy()
    fractions = teacher_fractions(scenario, cfg.teacher, gains, rng)
    obs, targets = dataset(exchange, scenario, gains, fractions, rng)
    mse = fit_mean(policy, obs, raw_action(targets, radio.action_map), cfg, rng)
    teacher_rate = float(sum_rate_bps_hz(gains, fractions * radio.pmax_w, radio.noise_w).mean())
    return {"teacher": cfg.teacher, "drops": cfg.drops, "samples": int(obs.shape[0]),
            "epochs": cfg.epochs, "mse_per_epoch": mse,
            "teacher_sum_rate_bps_hz": teacher_rate, "wall_s": time.perf_counter() - t0}
