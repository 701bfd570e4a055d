"""The D2D learners (MAAC / NAAC / IAC, DQN) trained by the controller (the base station)
from the histories the D2D pair nodes upload (paper 002, Section III-C: "D2D users upload
the historical information ... to the BS"; "users only need to download the weights of the
trained target actor").

Every slot each pair uploads ``(s_i, a_i, r_i)``; the transition of slot n is complete once
every pair's upload of slots n and n + 1 is in (``s'`` of slot n is the observation of
slot n + 1). Every ``broadcast_period`` slots the controller stores the complete
transitions, takes one update per slot of the period from the end of the random warm-up
on (as the local trainer, :mod:`controller.training.d2d_train`, takes one per slot), and
broadcasts each pair what it acts with (its target actor; DQN: its Q network and the
exploration rate). During the warm-up (``random_slots``) the pairs draw uniformly;
afterwards they explore (sample their actor's softmax; DQN: epsilon-greedy). The learner is
the one the scheme's registry entry names, seen through
:class:`controller.training.d2d_train.D2dLearner`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from channel_server.d2d import D2dScenario, drop_users
from controller.learners.maac import MaacConfig
from controller.training.d2d_train import d2d_artifact, make_learner
from node.d2d_observation import observation_dim
from node.schemes import SCHEMES
from protocols.seeding import rng_for
from protocols.weights import WeightsArtifact

KIND = "d2d-underlay"


def learner_config(train: dict[str, Any]) -> MaacConfig:
    """The learner settings of a network training run's ``train`` options (as
    :attr:`controller.training.d2d_train.D2dTrainConfig.maac`)."""
    opts = dict(train.get("learner") or {})
    cfg = MaacConfig(learning_starts=max(int(train.get("random_slots", 0)), 1))
    return dataclasses.replace(
        cfg, neighbours=int(opts.get("neighbours", cfg.neighbours)),
        batch_size=int(opts.get("batch_size", cfg.batch_size)),
        actor_hidden=tuple(int(x) for x in opts.get("actor_hidden", cfg.actor_hidden)),
        critic_hidden=tuple(int(x) for x in opts.get("critic_hidden", cfg.critic_hidden)),
        gamma=float(opts.get("gamma", cfg.gamma)),
        actor_update=str(opts.get("actor_update", cfg.actor_update)),  # type: ignore[arg-type]
        entropy=float(opts.get("entropy", cfg.entropy)))


class D2dNetworkTrainer:
    """The learner state of a network training run; the controller's versioned weights."""

    def __init__(self, scenario: D2dScenario, scheme: str, seed: int,
                 train: dict[str, Any], slots: int) -> None:
        spec = SCHEMES.get(KIND, scheme)
        if not spec.learners:
            raise ValueError(f"scheme {scheme!r} trains nothing")
        self.scenario = scenario
        self.scheme = scheme
        self.period = int(train["broadcast_period"])
        self.random_slots = int(train.get("random_slots", 0))
        r = scenario.radio
        self.n_agents = r.n_pairs
        self.obs_dim = observation_dim(scenario)
        # the BS knows where the pairs are: the run's drop (the air's own stream)
        drop = drop_users(scenario.drop, 1, r.n_cue, r.n_pairs, rng_for(seed, "d2d", "drop"))
        self.learner = make_learner(scenario, scheme, seed,
                                    (drop.tx_xy[0] + drop.rx_xy[0]) / 2.0,
                                    learner_config(train), slots)
        self.held: dict[int, dict[int, tuple[np.ndarray, int, float, float]]] = {}
        """Slot -> pair -> (observation, action, reward, arrival slot) uploaded, not yet
        stored."""
        self.history: list[dict[str, float]] = []
        self.version = 1
        self.stored = 0
        self.dropped = 0
        """Slots dropped incomplete (a pair vanished before uploading)."""

    def add_experience(self, slot: int, agent: int, obs: np.ndarray, action: int,
                       reward: float, arrival: float = 0.0) -> None:
        """One pair's upload of ``slot``; ``arrival``: the slot by which it reached the
        controller in emulated time (only asynchronous updates look at it)."""
        self.held.setdefault(slot, {})[agent] = (np.asarray(obs, np.float32), action, reward,
                                                 arrival)

    def complete(self, slots: range, agents: set[int]) -> bool:
        """Every upload of ``slots`` from ``agents`` is in."""
        return all(agents <= set(self.held.get(n, {})) for n in slots)

    def update(self, upto: int, arrived: bool = False) -> dict[str, float]:
        """Store the complete transitions of the slots before ``upto - 1`` (its own waits for
        the next slot's observations), then take the period's updates. ``arrived``
        (asynchronous training): only those whose uploads, its own and the next slot's,
        arrived by slot ``upto``; the others stay for a later update."""
        full = set(range(self.n_agents))
        rows = []
        for n in sorted(x for x in self.held if x < upto - 1):
            now, nxt = self.held[n], self.held.get(n + 1, {})
            if set(now) != full or set(nxt) != full:
                del self.held[n]
                self.dropped += 1
                continue
            if arrived and max(u[3] for u in (*now.values(), *nxt.values())) > upto:
                continue  # still on its way in emulated time
            del self.held[n]
            rows.append((np.stack([now[i][0] for i in range(self.n_agents)]),
                         np.array([now[i][1] for i in range(self.n_agents)]),
                         np.array([now[i][2] for i in range(self.n_agents)]),
                         np.stack([nxt[i][0] for i in range(self.n_agents)])))
        if rows:
            self.learner.observe(*(np.stack(col) for col in zip(*rows, strict=True)))
        self.stored += len(rows)
        total = float(np.mean([r[2].sum() for r in rows])) if rows else float("nan")
        stats: dict[str, float] = {}
        first = max(upto - self.period, self.random_slots - 1)
        for _ in range(max(upto - first, 0)):
            stats = self.learner.step() or stats
        self.version += 1
        row = {"version": float(self.version), "slot": float(upto),
               "transitions": float(self.stored), "updates": float(self.learner.updates),
               "dropped_slots": float(self.dropped), "total_reward": total,
               **{k: stats.get(k, float("nan")) for k in self.learner.stats}}
        self.history.append(row)
        return row

    def get_variables(self) -> dict[str, np.ndarray]:
        """What the pairs act with (version :attr:`version`)."""
        return self.learner.get_variables()

    def set_variables(self, variables: dict[str, np.ndarray]) -> None:
        """Start from trained weights."""
        self.learner.set_variables(variables)

    def artifact(self) -> WeightsArtifact:
        """What the pairs act with now as a weights file (``steps``: transitions stored)."""
        return d2d_artifact(self.scenario, self.scheme, self.learner, self.stored,
                            extra={"version": self.version, "updates": self.learner.updates,
                                   "broadcast_period": self.period,
                                   "random_slots": self.random_slots})
