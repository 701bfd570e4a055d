"""Multi-agent DQN trained by the controller from experience the vehicle nodes upload.

The learner side of a network training run (the actors are the vehicle nodes): every
slot each vehicle uploads the observation it acted on and its action; the channel server
reports the slot's global reward. A transition of agent k at slot n is complete when
every agent's slot-n upload, the reward, and (unless the episode ended) every agent's
slot-(n+1) observation are in. Every ``broadcast_period`` slots the controller stores the
complete transitions, takes ``broadcast_period / train_every`` Double-DQN updates, and
broadcasts the weights with the next fingerprint. Epsilon and the fingerprint follow the
local trainer's schedule (:func:`controller.training.v2x_marl.epsilon_at`), per episode.
"""

from __future__ import annotations

import numpy as np

from channel_server.v2x import V2xScenario
from controller.learners.collect import ExperienceCollector
from controller.learners.dqn import Dqn, Transitions
from controller.learners.state import dqn_state, load_dqn
from controller.training.v2x_marl import MarlConfig, epsilon_at, marl_artifact, marl_config
from node.v2x_observation import observation_dim
from protocols.seeding import rng_for
from protocols.weights import WeightsArtifact

__all__ = ["MarlConfig", "V2xNetworkTrainer", "marl_config"]


class V2xNetworkTrainer:
    """Learner state of a network training run of ``scheme`` (scheme scenario given); the
    controller's versioned weights (a :class:`protocols.core.VariableSource`)."""

    def __init__(self, scenario: V2xScenario, scheme: str, seed: int, slots: int,
                 broadcast_period: int, config: MarlConfig | None = None) -> None:
        self.scenario = scenario
        self.scheme = scheme
        self.cfg = config if config is not None else MarlConfig()
        self.period = int(broadcast_period)
        r = scenario.radio
        self.n_agents = r.n_v2v
        self.dqn = Dqn(observation_dim(scenario), r.n_rb * len(r.v2v_power_levels_dbm),
                       self.n_agents, self.cfg.dqn, rng_for(seed, "v2x-marl", "learner"))
        self.episodes = max(slots // scenario.n_steps, 1)
        self.experience = ExperienceCollector()
        self.history: list[dict[str, float]] = []
        self.version = 1
        self.stored = 0
        self.taken: list[int] = []
        """The slots whose transitions the last update stored."""

    def fingerprint(self, slot: int) -> tuple[int, float]:
        """(training iteration e, epsilon) the actors use from ``slot`` on."""
        ep = min(slot // self.scenario.n_steps, self.episodes - 1)
        fp_iters = self.scenario.observation.fingerprint_iterations
        return ep * fp_iters // self.episodes, epsilon_at(ep, self.episodes, self.cfg)

    @property
    def dropped(self) -> int:
        """Slots whose transitions could never complete (a vehicle vanished)."""
        return self.experience.dropped

    def add_experience(self, slot: int, agent: int, obs: np.ndarray, action: int,
                       done: bool) -> None:
        self.experience.add(slot, agent, np.asarray(obs, np.float64), int(action), done)

    def add_reward(self, slot: int, reward: float) -> None:
        self.experience.add_reward(slot, reward)

    def complete(self, slots: range, agents: set[int]) -> bool:
        """Every upload and reward of ``slots`` from ``agents`` is in."""
        return self.experience.complete(slots, agents)

    def update(self, upto: int) -> dict[str, float]:
        """Store the complete transitions of slots before ``upto``, then train."""
        agents = range(self.n_agents)
        full = set(agents)
        collected = self.experience
        rows = []
        for n in sorted(x for x in collected.slots if x < upto):
            e, nxt = collected.slots[n], collected.get(n + 1)
            done = any(u.done for u in e.uploads.values())
            if e.reward is None or set(e.uploads) != full:
                continue
            if not done and (nxt is None or set(nxt.uploads) != full):
                continue
            obs = np.stack([e.uploads[k].obs for k in agents])
            next_obs = (np.zeros_like(obs) if done or nxt is None
                        else np.stack([nxt.uploads[k].obs for k in agents]))
            rows.append((n, e, obs, next_obs, done))
        if rows:
            self.dqn.observe(Transitions(
                obs=np.stack([obs for _, _, obs, _, _ in rows]),
                actions=np.array([[e.uploads[k].action for k in agents]
                                  for _, e, _, _, _ in rows]),
                rewards=np.array([e.reward for _, e, _, _, _ in rows]) * self.cfg.reward_scale,
                next_obs=np.stack([x for _, _, _, x, _ in rows]),
                terminated=np.array([float(done) for *_, done in rows])))
        self.taken = [n for n, *_ in rows]
        for n in self.taken:
            collected.take(n)
        # what is still missing before the last slot (a vanished vehicle) never completes
        collected.drop_before(upto - 1)
        self.stored += len(rows)
        stats: dict[str, float] = {}
        for _ in range(max(self.period // self.cfg.train_every, 1)):
            stats = self.dqn.step()
        self.version += 1
        eps = self.fingerprint(upto)[1]
        stats.pop("epsilon", None)  # the learner's own schedule is unused here
        row = {**stats, "version": float(self.version), "slot": float(upto), "epsilon": eps,
               "transitions": float(self.stored), "dropped_slots": float(self.dropped)}
        self.history.append(row)
        return row

    # ------------------------------------------------------------------ checkpoints

    def state(self) -> dict[str, np.ndarray]:
        """The learner (networks, targets, optimizers, replay, generator), the counters and
        the experience held for the next update (a period's last slot waits for the next
        slot's observations), as named arrays for a checkpoint."""
        out = dqn_state(self.dqn)
        out["trainer.counters"] = np.array([self.version, self.stored, self.experience.dropped],
                                           dtype=np.int64)
        slots = sorted(self.experience.slots)
        out["held.slots"] = np.array(slots, dtype=np.int64)
        out["held.reward"] = np.array(
            [np.nan if self.experience.slots[n].reward is None else self.experience.slots[n].reward
             for n in slots], dtype=np.float64)
        who = [(n, k) for n in slots for k in sorted(self.experience.slots[n].uploads)]
        ups = [self.experience.slots[n].uploads[k] for n, k in who]
        dim = self.dqn.obs_dim
        out["held.who"] = np.array(who, dtype=np.int64).reshape(-1, 2)
        out["held.obs"] = (np.stack([u.obs for u in ups]) if ups
                           else np.zeros((0, dim), dtype=np.float64))
        out["held.action"] = np.array([u.action for u in ups], dtype=np.int64)
        out["held.done"] = np.array([u.done for u in ups], dtype=bool)
        return out

    def load_state(self, arrays: dict[str, np.ndarray], history: list[dict[str, float]]) -> None:
        """Continue from a checkpoint's :meth:`state` and training rows."""
        load_dqn(self.dqn, arrays)
        self.version, self.stored, dropped = (int(x) for x in arrays["trainer.counters"])
        self.history = [dict(h) for h in history]
        self.experience = ExperienceCollector()
        self.experience.dropped = dropped
        for n, r in zip(arrays["held.slots"], arrays["held.reward"], strict=True):
            if not np.isnan(r):
                self.experience.add_reward(int(n), float(r))
        for (n, k), obs, action, done in zip(arrays["held.who"], arrays["held.obs"],
                                             arrays["held.action"], arrays["held.done"],
                                             strict=True):
            self.add_experience(int(n), int(k), obs, int(action), bool(done))

    def variables(self) -> dict[str, np.ndarray]:
        """Weights for the actors (and, with fingerprints, the final one for evaluation)."""
        v = self.dqn.get_variables()
        if self.scenario.observation.fingerprint:
            v["env_fingerprint"] = np.array([self.scenario.observation.fingerprint_iterations,
                                             self.cfg.epsilon_end], dtype=np.float64)
        return v

    def get_variables(self) -> dict[str, np.ndarray]:
        """:meth:`variables` (version :attr:`version`)."""
        return self.variables()

    def artifact(self) -> WeightsArtifact:
        """The current weights as a weights file's artifact (kind 'v2x'); ``steps``: the
        slots whose transitions were stored."""
        return marl_artifact(self.scenario, self.scheme, self.variables(), self.stored,
                             self.cfg, extra={"version": self.version,
                                              "learner_updates": self.dqn.updates})
