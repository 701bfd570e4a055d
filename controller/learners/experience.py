"""Training over the network runner, pure: an experience collector
(:mod:`controller.learners.collect`) plus a learner. The controller feeds it what arrives
(node experience, central decisions, slot outcomes) and it assembles exactly the
on-policy batch that :func:`controller.training.rollout.play` builds locally (slot-major;
round-robin steps in chain order with the common reward on the last step; full:
one single-step episode per BS), then runs the learner.

Rewards are the slot's common sum-rate (bit/s/Hz), joined by slot from the
channel server's outcome: nodes never learn the other BSs' rates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from controller.learners import registry
from controller.learners.collect import ExperienceCollector
from controller.learners.state import gaussian_learner_state, load_gaussian_learner
from controller.training.rollout import Batch
from node.policy import GaussianPolicy
from protocols.weights import WeightsArtifact


@dataclass(frozen=True)
class TrainOptions:
    """What a network training run does, carried in the run options."""

    algo: str = "trpo"
    """A registered Gaussian-policy learner (controller.learners.registry): 'trpo', 'a2c'."""
    episodes_per_iter: int = 64
    """Slots (episodes) per learner update, M."""
    save_batches: bool = False
    """Write every batch and every weights version into the run directory (tests)."""
    scheme: str = ""
    """Execution scheme of the trained policy, for the weights files' header ('' unknown)."""
    checkpoint_every: int = 10
    """A checkpoint (controller.learners.journal) every this many updates, and after the
    last one."""
    learner_options: tuple[tuple[str, Any], ...] = ()
    """Fields of the learner's config set otherwise than its defaults (as the local
    runner's :attr:`controller.training.train.TrainConfig.learner_options`)."""

    def __post_init__(self) -> None:
        if self.save_batches and not self.scheme:
            raise ValueError("save_batches writes weights files: it needs the scheme")
        if self.episodes_per_iter < 1 or self.checkpoint_every < 1:
            raise ValueError("episodes_per_iter and checkpoint_every must be >= 1")

    @classmethod
    def of(cls, d: dict[str, Any]) -> TrainOptions:
        keys = ("algo", "episodes_per_iter", "save_batches", "scheme", "checkpoint_every")
        options = tuple(sorted(dict(d.get("learner_options") or {}).items()))
        return cls(**{k: d[k] for k in keys if k in d}, learner_options=options)


def make_learner(algo: str, policy: GaussianPolicy, seed: int,
                 options: tuple[tuple[str, Any], ...] = ()) -> Any:
    """The learner of a run (a registry lookup) with its config's ``options``; its
    randomness is the stream ("learner", algo) of the run's seed. Unknown names:
    UnknownLearner lists the known; a bad option: ValueError names it."""
    return registry.make(algo, policy, seed, registry.configure(algo, dict(options)),
                         trains="gaussian")


@dataclass
class NetworkTrainer:
    """Collects one iteration's experience and updates the policy; the controller's
    versioned weights (a :class:`protocols.core.VariableSource`)."""

    learner: Any
    steps_per_slot: int
    """Transitions per slot: B for round-robin and full, 1 for centralized."""
    options: TrainOptions
    experience: ExperienceCollector = field(default_factory=ExperienceCollector)
    version: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    """What the weights files' headers say besides the training (how the policy sees the
    radio: :func:`node.policy_spec.policy_view`)."""
    trained_steps: int = 0
    """Transitions (decisions) the learner has stepped on."""

    def get_variables(self) -> dict[str, np.ndarray]:
        """The current policy weights (version :attr:`version`)."""
        variables: dict[str, np.ndarray] = self.learner.get_variables()
        return variables

    def artifact(self, scheme: str | None = None) -> WeightsArtifact:
        """The current weights as a weights file's artifact (kind 'cellular')."""
        scheme = scheme or self.options.scheme
        if not scheme:
            raise ValueError("the scheme of the trained policy is unknown (TrainOptions.scheme)")
        pc = self.learner.policy.cfg
        return WeightsArtifact.create(
            self.get_variables(), scheme=scheme, kind="cellular",
            dims={"obs_dim": pc.obs_dim, "act_dim": pc.act_dim}, algo=self.options.algo,
            steps=self.trained_steps,
            extra={"version": self.version, "hidden": list(pc.hidden),
                   "episodes_per_iter": self.options.episodes_per_iter, **self.facts})

    def state(self) -> dict[str, np.ndarray]:
        """The learner (policy, value net, optimizer, generator) and the counters, as named
        arrays for a checkpoint (what is collected for the next update is not included:
        checkpoints are taken between iterations)."""
        out = gaussian_learner_state(self.learner)
        out["trainer.counters"] = np.array([self.version, self.trained_steps], dtype=np.int64)
        return out

    def load_state(self, arrays: dict[str, np.ndarray], history: list[dict[str, float]]) -> None:
        """Continue from a checkpoint's :meth:`state` and training rows."""
        load_gaussian_learner(self.learner, arrays)
        self.version, self.trained_steps = (int(x) for x in arrays["trainer.counters"])
        self.history = [dict(h) for h in history]

    def add_experience(self, slot: int, step: int, obs: np.ndarray, raw: np.ndarray,
                       done: np.ndarray, node: int = 0) -> None:
        """Node ``node``'s upload: rows of (observation, raw action, done) from chain step
        ``step`` on. A batch orders a slot's steps by (chain step, node)."""
        for i in range(obs.shape[0]):
            self.experience.add(slot, (step + i, node), np.asarray(obs[i]),
                                np.asarray(raw[i]), bool(done[i]))

    def add_outcome(self, slot: int, sum_rate: float) -> None:
        self.experience.add_reward(slot, sum_rate)

    def complete(self, slots: range) -> bool:
        return self.experience.complete(slots, self.steps_per_slot)

    def batch(self, slots: range) -> Batch:
        obs, raw, rewards, dones, rates = [], [], [], [], []
        for s in slots:
            e = self.experience.take(s)
            assert e.reward is not None
            # round-robin: chain order; full: every BS is its own single-step episode
            for _, up in sorted(e.uploads.items()):
                obs.append(up.obs)
                raw.append(up.action)
                rewards.append(e.reward if up.done else 0.0)
                dones.append(up.done)
            rates.append(e.reward)
        return Batch(np.stack(obs), np.stack(raw), np.array(rewards),
                     np.array(dones, dtype=bool), np.array(rates))

    def update(self, slots: range, out: Path | None = None) -> dict[str, np.ndarray]:
        """Train on the slots' batch; return the new weights (version grows by one)."""
        batch = self.batch(slots)
        if out is not None and self.options.save_batches:
            np.savez(out / f"batch-{self.version}.npz", obs=batch.obs, actions=batch.actions,
                     rewards=batch.rewards, dones=batch.dones, sum_rate=batch.sum_rate_bps_hz)
        stats = dict(self.learner.step(batch))
        stats["sum_rate_bps_hz"] = float(batch.sum_rate_bps_hz.mean())
        self.version += 1
        self.trained_steps += batch.steps
        stats["version"] = float(self.version)
        self.history.append(stats)
        weights = self.get_variables()
        if out is not None and self.options.save_batches:
            self.artifact().save(out / f"weights-v{self.version}.npz")
        return weights
