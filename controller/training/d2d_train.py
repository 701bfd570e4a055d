"""Local (one-process) training of MAAC / NAAC for D2D underlay spectrum sharing (paper
002, Algorithm 1), CleanRL style: one loop.

Every slot all pairs act at once on their own observations: uniformly at random during the
first ``random_slots`` slots (the paper's 2000, to fill the replay), then by sampling their
online actor's softmax; the air plays the slot; the slot ``(s, a, r, s')`` of every pair
goes to the replay, and from the end of the warm-up on each slot is followed by one update
of every critic and actor (``train_every`` slots apart). The drop is fixed for the run (the
paper's Fig. 5), from the run's seed as in ``rrmbed run``: evaluate a trained actor with
the seed it was trained with to act on its own drop.

Writes ``weights.npz`` (the target actors, a typed weights file of kind 'd2d-underlay' for
``rrmbed run --weights``) and ``training.csv`` (one row per ``log_every`` slots: mean total
reward, D2D sum rate, CUE and D2D outage, the last update's losses).
Randomness: ``rng_for(seed, "d2d-train", ...)`` and the air's own streams; torch on one
thread.
"""

from __future__ import annotations

import csv
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from channel_server.d2d import D2dScenario
from channel_server.d2d_air import D2dAir, PairSlices
from controller.learners import registry
from controller.learners.maac import Maac, MaacConfig, MaacDims
from controller.learners.threads import torch_threads
from node.d2d_observation import decode_action, observation_dim, observe
from node.schemes import SCHEMES
from protocols.seeding import rng_for
from protocols.weights import WeightsArtifact

KIND = "d2d-underlay"


@dataclass(frozen=True)
class D2dTrainConfig:
    """Settings of a local MAAC / NAAC training run."""

    maac: MaacConfig = field(default_factory=MaacConfig)
    """Learner hyper-parameters (``critic`` is set from the scheme)."""
    random_slots: int = 2000
    """Slots of uniform random allocation before the actors act (and the updates start)."""
    train_every: int = 1
    """Slots between updates (Algorithm 1: every slot)."""
    log_every: int = 100
    """Slots per training.csv row."""


def pair_positions(air: D2dAir) -> np.ndarray:
    """Each pair's position for NAAC's neighbours: the midpoint of its transmitter and
    receiver (*choice*; the paper says "distance" between pairs), first drop."""
    d = air.world.drop
    out: np.ndarray = (d.tx_xy[0] + d.rx_xy[0]) / 2.0
    return out


def learner_for(scenario: D2dScenario, scheme: str, seed: int, air: D2dAir,
                maac: MaacConfig) -> Maac:
    """The scheme's registered learner (MAAC or NAAC) for the scenario's pairs."""
    spec = SCHEMES.get(KIND, scheme)
    if not spec.learners:
        raise ValueError(f"scheme {scheme!r} trains nothing")
    cfg = dataclasses.replace(maac, critic=spec.options["critic"])
    dims = MaacDims(obs_dim=observation_dim(scenario), n_actions=scenario.radio.n_actions,
                    n_agents=scenario.radio.n_pairs, positions=pair_positions(air))
    learner = registry.make(spec.learners[0], dims, rng_for(seed, "d2d-train", "learner"), cfg,
                            trains="d2d-actors")
    assert isinstance(learner, Maac)
    return learner


def observations(scenario: D2dScenario, sl: PairSlices) -> np.ndarray:
    return observe(scenario, sl.d2d_gain_db, sl.bs_gain_db, sl.interference_dbm, sl.last_rb,
                   sl.last_level)


def train_d2d(scenario: D2dScenario, scheme: str, slots: int, seed: int,
              cfg: D2dTrainConfig | None = None,
              on_slot: Callable[[int], None] | None = None,
              ) -> tuple[Maac, list[dict[str, float]]]:
    """Train ``scheme`` for ``slots`` slots; returns the learner and the training curve."""
    cfg = cfg if cfg is not None else D2dTrainConfig()
    with torch_threads(1):
        return _train(scenario, scheme, slots, seed, cfg, on_slot)


def _train(scenario: D2dScenario, scheme: str, slots: int, seed: int, cfg: D2dTrainConfig,
           on_slot: Callable[[int], None] | None) -> tuple[Maac, list[dict[str, float]]]:
    air = D2dAir(scenario, 1, seed)
    maac = dataclasses.replace(cfg.maac, learning_starts=min(cfg.maac.learning_starts,
                                                             max(cfg.random_slots, 1)))
    learner = learner_for(scenario, scheme, seed, air, maac)
    act_rng = rng_for(seed, "d2d-train", "act")
    r = scenario.radio
    obs = observations(scenario, air.slices())
    curve: list[dict[str, float]] = []
    acc: dict[str, list[float]] = {}
    stats: dict[str, float] = {}
    t0 = time.perf_counter()
    for t in range(slots):
        if t < cfg.random_slots:
            action = act_rng.integers(0, r.n_actions, (1, r.n_pairs))
        else:
            action = learner.act(obs, act_rng, explore=True)
        rb, level = decode_action(action, r.n_rb)
        out = air.step(rb, level)
        nxt = observations(scenario, air.slices())
        learner.observe(obs, action, out.reward, nxt)
        obs = nxt
        if t >= cfg.random_slots - 1 and t % cfg.train_every == 0:
            stats = learner.step() or stats
        for k, v in (("total_reward", float(out.reward.sum())),
                     ("d2d_sum_mbps", float(out.rates.d2d_rate_bps.sum() / 1e6)),
                     ("cue_outage", float(out.cue_outage.mean())),
                     ("d2d_outage", float(out.d2d_outage.mean()))):
            acc.setdefault(k, []).append(v)
        if (t + 1) % cfg.log_every == 0 or t + 1 == slots:
            curve.append({"slot": float(t + 1), **{k: float(np.mean(v)) for k, v in acc.items()},
                          "updates": float(learner.updates),
                          **{k: stats.get(k, float("nan"))
                             for k in ("critic_loss", "actor_loss", "q_mean")},
                          "wall_s": time.perf_counter() - t0})
            acc = {}
        if on_slot is not None:
            on_slot(t)
    return learner, curve


def d2d_artifact(scenario: D2dScenario, scheme: str, learner: Maac, steps: int,
                 extra: dict[str, Any] | None = None) -> WeightsArtifact:
    """The target actors as a weights file's artifact (kind 'd2d-underlay')."""
    spec = SCHEMES.get(KIND, scheme)
    return WeightsArtifact.create(
        learner.get_variables(), scheme=scheme, kind=KIND,
        dims={"obs_dim": observation_dim(scenario), "n_actions": scenario.radio.n_actions,
              "n_agents": scenario.radio.n_pairs},
        algo=spec.learners[0], steps=steps,
        extra={"scenario": scenario.name, "critic": learner.cfg.critic,
               "neighbours": learner.cfg.neighbours,
               "critic_members": learner.members.tolist(), **(extra or {})})


def train_and_write(scenario: D2dScenario, scheme: str, slots: int, seed: int,
                    cfg: D2dTrainConfig, out: Path,
                    on_slot: Callable[[int], None] | None = None) -> list[dict[str, float]]:
    """Train locally; write ``out/weights.npz`` and ``out/training.csv``; the curve."""
    learner, curve = train_d2d(scenario, scheme, slots, seed, cfg, on_slot)
    out.mkdir(parents=True, exist_ok=True)
    d2d_artifact(scenario, scheme, learner, slots,
                 extra={"seed": seed, "random_slots": cfg.random_slots,
                        "updates": learner.updates}).save(out / "weights.npz")
    with (out / "training.csv").open("w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(curve[0]))
        wr.writeheader()
        wr.writerows(curve)
    return curve
