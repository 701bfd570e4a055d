"""Local (one-process) training of the D2D underlay learners (paper 002, Algorithm 1),
CleanRL style: one loop.

Every slot all pairs act at once on their own observations: uniformly at random during the
first ``random_slots`` slots (the paper's 2000, to fill the replay), then as the learner
explores (MAAC / NAAC / IAC: a sample of their online actor's softmax; DQN: epsilon-greedy
on their Q network); the air plays the slot; the slot ``(s, a, r, s')`` of every pair goes
to the replay, and from the end of the warm-up on each slot is followed by one update of
the learner (``train_every`` slots apart). The drop is fixed for the run (the paper's
Fig. 5), from the run's seed as in ``rrmbed run``: evaluate trained weights with the seed
they were trained with to act on their own drop, and measure them after the training's
slots (its first ``slots`` slots replay the fading they trained on; ``rrmbed d2d compare``
measures slots ``slots ..``).

The driver and the network trainer (:mod:`controller.learners.d2d_experience`) see a learner
only through :class:`D2dLearner`; :func:`make_learner` builds the one the scheme's registry
entry names, by the kind of policy the learner registry says it trains: ``d2d-actors``
(:class:`MaacPairs`) or ``q`` (:class:`DqnPairs`).

The DQN baseline (scheme ``dqn``): the registry's multi-agent Double DQN with one network
per pair (``sharing='per-agent'``), each trained on its own replay of its own observations,
actions and rewards: independent learners, as the paper's distributed baselines. Its
settings for D2D:

* gamma: the learners' (the paper's 0.95 by default);
* hidden widths: the command's ``--actor-hidden`` (the paper's actor, 512 and 128:
  the network a pair runs), batch ``--batch-size`` (*choice*: 128, as MAAC);
* Adam 1e-3 (*choice*: the paper's critic rate; a Q network is a critic), MSE TD loss
  (*choice*: the Q values are tens of reward units, a Huber loss at delta 1 would crawl),
  gradient norm clipped at 10;
* replay: the whole training per pair, at most the paper's 10^6 slots;
* target network: a hard copy every 100 updates (*choice*);
* epsilon: linear from 1 to 0.02 over the first half of the updates after the warm-up,
  then 0.02 (*choice*: the paper gives none); the pairs explore with the rate of the
  learner's update count, sent to them with the weights (``agent<i>.epsilon``).

Writes ``weights.npz`` (a typed weights file of kind 'd2d-underlay', the learner's name as
its algo, the arrays the pairs act with, for ``rrmbed run --weights``) and
``training.csv`` (one row per ``log_every`` slots: mean total reward, D2D sum rate, CUE and
D2D outage, the learner's updates and its last update's statistics).
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
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from channel_server.d2d import D2dScenario
from channel_server.d2d_air import D2dAir, PairSlices
from controller.learners import registry
from controller.learners.dqn import Dqn, DqnConfig, Transitions
from controller.learners.maac import Maac, MaacConfig, MaacDims
from controller.learners.threads import torch_threads
from node.d2d_observation import decode_action, observation_dim, observe
from node.schemes import SCHEMES
from protocols.seeding import rng_for
from protocols.weights import WeightsArtifact

KIND = "d2d-underlay"
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class D2dTrainConfig:
    """Settings of a local D2D training run."""

    maac: MaacConfig = field(default_factory=MaacConfig)
    """The command's learner settings (MAAC / NAAC / IAC: all of them, ``critic`` set from
    the scheme; DQN: ``actor_hidden`` as its hidden widths, ``batch_size``,
    ``learning_starts``)."""
    random_slots: int = 2000
    """Slots of uniform random allocation before the pairs act (and the updates start)."""
    train_every: int = 1
    """Slots between updates (Algorithm 1: every slot)."""
    log_every: int = 100
    """Slots per training.csv row."""


class D2dLearner(Protocol):
    """What the D2D training drivers need of a learner; arrays are ``(E, N, ...)``: E slots
    of the N pairs."""

    stats: tuple[str, ...]
    """The statistics of :meth:`step` that training.csv records."""

    @property
    def updates(self) -> int:
        """Updates taken so far."""

    def act(self, obs: npt.ArrayLike, rng: np.random.Generator,
            explore: bool = True) -> IntArray:
        """Actions ``(E, N)`` for observations ``(E, N, D)``: exploring, or the greedy ones
        the pairs execute."""

    def observe(self, obs: npt.ArrayLike, actions: npt.ArrayLike, rewards: npt.ArrayLike,
                next_obs: npt.ArrayLike) -> None:
        """Store slots of experience."""

    def step(self) -> dict[str, float]:
        """One update; {} while it does not train yet."""

    def get_variables(self) -> dict[str, np.ndarray]:
        """What the pairs act with (``agent<i>.``-prefixed arrays, see
        :mod:`node.pair_agent`)."""

    def set_variables(self, variables: dict[str, np.ndarray]) -> None:
        """Start from trained weights (as :meth:`get_variables` gives them)."""

    def facts(self) -> dict[str, Any]:
        """JSON facts for the weights file's header."""


class MaacPairs:
    """MAAC / NAAC / IAC (:class:`controller.learners.maac.Maac`) as a :class:`D2dLearner`:
    the pairs act with its target actors."""

    stats: tuple[str, ...] = ("critic_loss", "actor_loss", "q_mean", "entropy")

    def __init__(self, maac: Maac) -> None:
        self.maac = maac

    @property
    def updates(self) -> int:
        return self.maac.updates

    def act(self, obs: npt.ArrayLike, rng: np.random.Generator,
            explore: bool = True) -> IntArray:
        return self.maac.act(obs, rng, explore)

    def observe(self, obs: npt.ArrayLike, actions: npt.ArrayLike, rewards: npt.ArrayLike,
                next_obs: npt.ArrayLike) -> None:
        self.maac.observe(obs, actions, rewards, next_obs)

    def step(self) -> dict[str, float]:
        return self.maac.step()

    def get_variables(self) -> dict[str, np.ndarray]:
        return self.maac.get_variables()

    def set_variables(self, variables: dict[str, np.ndarray]) -> None:
        self.maac.set_actor_variables(variables)

    def facts(self) -> dict[str, Any]:
        cfg = self.maac.cfg
        return {"critic": cfg.critic, "neighbours": cfg.neighbours,
                "critic_members": self.maac.members.tolist(), "gamma": cfg.gamma,
                "actor_update": cfg.actor_update, "entropy": cfg.entropy}


class DqnPairs:
    """The per-agent Double DQN (:class:`controller.learners.dqn.Dqn`) as a
    :class:`D2dLearner`: pair i acts with its own online Q network, epsilon-greedy at the
    rate of the learner's update count while training."""

    stats: tuple[str, ...] = ("loss", "q_mean", "epsilon")

    def __init__(self, dqn: Dqn) -> None:
        self.dqn = dqn
        self.n = int(dqn.n_agents)

    @property
    def updates(self) -> int:
        return int(self.dqn.updates)

    @property
    def epsilon(self) -> float:
        """The exploration rate now."""
        return float(self.dqn.epsilon(self.dqn.updates))

    def act(self, obs: npt.ArrayLike, rng: np.random.Generator,
            explore: bool = True) -> IntArray:
        out: IntArray = self.dqn.select_action(np.asarray(obs, dtype=np.float64),
                                               self.epsilon if explore else 0.0, rng)
        return out

    def observe(self, obs: npt.ArrayLike, actions: npt.ArrayLike, rewards: npt.ArrayLike,
                next_obs: npt.ArrayLike) -> None:
        o = np.asarray(obs, dtype=np.float64)
        self.dqn.observe(Transitions(o, np.asarray(actions, dtype=np.int64),
                                     np.asarray(rewards, dtype=np.float64),
                                     np.asarray(next_obs, dtype=np.float64),
                                     np.zeros(o.shape[0])))  # a continuing task: no end

    def step(self) -> dict[str, float]:
        s = self.dqn.step()
        return {k: float(s[k]) for k in self.stats} if s.get("trained") else {}

    def get_variables(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = self.dqn.get_variables()
        for i in range(self.n):
            out[f"agent{i}.epsilon"] = np.array([self.epsilon])
        return out

    def set_variables(self, variables: dict[str, np.ndarray]) -> None:
        self.dqn.set_variables({k: v for k, v in variables.items()
                                if not k.endswith(".epsilon")})

    def facts(self) -> dict[str, Any]:
        cfg = self.dqn.cfg
        return {"sharing": cfg.sharing, "hidden": list(cfg.hidden), "gamma": cfg.gamma,
                "target_period": cfg.target_period, "epsilon_steps": cfg.epsilon_steps,
                "epsilon": self.epsilon}


def pair_positions(air: D2dAir) -> np.ndarray:
    """Each pair's position for NAAC's neighbours: the midpoint of its transmitter and
    receiver (*choice*; the paper says "distance" between pairs), first drop."""
    d = air.world.drop
    out: np.ndarray = (d.tx_xy[0] + d.rx_xy[0]) / 2.0
    return out


def _actors(name: str, scenario: D2dScenario, critic: str, positions: np.ndarray,
            rng: np.random.Generator, settings: MaacConfig, slots: int) -> D2dLearner:
    r = scenario.radio
    dims = MaacDims(obs_dim=observation_dim(scenario), n_actions=r.n_actions,
                    n_agents=r.n_pairs, positions=positions)
    cfg = dataclasses.replace(settings, critic=critic)  # type: ignore[arg-type]
    learner = registry.make(name, dims, rng, cfg, trains="d2d-actors")
    assert isinstance(learner, Maac)
    return MaacPairs(learner)


def dqn_config(settings: MaacConfig, slots: int) -> DqnConfig:
    """The D2D DQN's settings (module docstring) for a training of ``slots`` slots whose
    updates start after ``settings.learning_starts`` of them."""
    after = max(slots - settings.learning_starts, 1)
    return DqnConfig(hidden=settings.actor_hidden, learning_rate=1e-3, gamma=settings.gamma,
                     batch_size=settings.batch_size,
                     replay_capacity=min(max(slots, 1), 1_000_000),
                     learning_starts=settings.learning_starts, target_period=100,
                     loss="mse", max_grad_norm=10.0, epsilon_start=1.0, epsilon_end=0.02,
                     epsilon_steps=max(after // 2, 1), epsilon_schedule="linear",
                     sharing="per-agent", fingerprint=False)


def _q_networks(name: str, scenario: D2dScenario, critic: str, positions: np.ndarray,
                rng: np.random.Generator, settings: MaacConfig, slots: int) -> D2dLearner:
    r = scenario.radio
    dims = registry.QDims(obs_dim=observation_dim(scenario), n_actions=r.n_actions,
                          n_agents=r.n_pairs)
    learner = registry.make(name, dims, rng, dqn_config(settings, slots), trains="q")
    assert isinstance(learner, Dqn)
    return DqnPairs(learner)


BUILDERS: dict[str, Callable[..., D2dLearner]] = {"d2d-actors": _actors, "q": _q_networks}
"""How a D2D learner is built, by the kind of policy its registry entry trains."""


def make_learner(scenario: D2dScenario, scheme: str, seed: int, positions: np.ndarray,
                 settings: MaacConfig, slots: int) -> D2dLearner:
    """The learner the scheme's registry entry names, for the scenario's pairs at
    ``positions`` and a training of ``slots`` slots; ``settings``: the command's learner
    settings (:attr:`D2dTrainConfig.maac`)."""
    spec = SCHEMES.get(KIND, scheme)
    if not spec.learners:
        raise ValueError(f"scheme {scheme!r} trains nothing")
    name = spec.learners[0]
    trains = registry.learner(name).trains
    if trains not in BUILDERS:
        raise ValueError(f"scheme {scheme!r}: learner {name!r} trains {trains} policies, "
                         "which no D2D pair acts with")
    return BUILDERS[trains](name, scenario, str(spec.options.get("critic", "all")), positions,
                            rng_for(seed, "d2d-train", "learner"), settings, slots)


def observations(scenario: D2dScenario, sl: PairSlices) -> np.ndarray:
    return observe(scenario, sl.d2d_gain_db, sl.bs_gain_db, sl.interference_dbm, sl.last_rb,
                   sl.last_level)


def train_d2d(scenario: D2dScenario, scheme: str, slots: int, seed: int,
              cfg: D2dTrainConfig | None = None,
              on_slot: Callable[[int], None] | None = None,
              ) -> tuple[D2dLearner, list[dict[str, float]]]:
    """Train ``scheme`` for ``slots`` slots; returns the learner and the training curve."""
    cfg = cfg if cfg is not None else D2dTrainConfig()
    with torch_threads(1):
        return _train(scenario, scheme, slots, seed, cfg, on_slot)


def _train(scenario: D2dScenario, scheme: str, slots: int, seed: int, cfg: D2dTrainConfig,
           on_slot: Callable[[int], None] | None) -> tuple[D2dLearner, list[dict[str, float]]]:
    air = D2dAir(scenario, 1, seed)
    settings = dataclasses.replace(cfg.maac, learning_starts=min(cfg.maac.learning_starts,
                                                                 max(cfg.random_slots, 1)))
    learner = make_learner(scenario, scheme, seed, pair_positions(air), settings, slots)
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
                          **{k: stats.get(k, float("nan")) for k in learner.stats},
                          "wall_s": time.perf_counter() - t0})
            acc = {}
        if on_slot is not None:
            on_slot(t)
    return learner, curve


def d2d_artifact(scenario: D2dScenario, scheme: str, learner: D2dLearner, steps: int,
                 extra: dict[str, Any] | None = None) -> WeightsArtifact:
    """What the pairs act with as a weights file's artifact (kind 'd2d-underlay', the
    learner's registry name as its algo)."""
    spec = SCHEMES.get(KIND, scheme)
    return WeightsArtifact.create(
        learner.get_variables(), scheme=scheme, kind=KIND,
        dims={"obs_dim": observation_dim(scenario), "n_actions": scenario.radio.n_actions,
              "n_agents": scenario.radio.n_pairs},
        algo=spec.learners[0], steps=steps,
        extra={"scenario": scenario.name, **learner.facts(), **(extra or {})})


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
