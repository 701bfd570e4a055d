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

from dataclasses import dataclass, field

import numpy as np

from channel_server.v2x import V2xScenario
from controller.learners.dqn import Dqn, Transitions
from controller.training.v2x_marl import MarlConfig, epsilon_at, marl_artifact, marl_config
from node.v2x_observation import observation_dim
from protocols.seeding import rng_for
from protocols.weights import WeightsArtifact

__all__ = ["MarlConfig", "SlotExperience", "V2xNetworkTrainer", "marl_config"]


@dataclass
class SlotExperience:
    obs: dict[int, np.ndarray] = field(default_factory=dict)
    action: dict[int, int] = field(default_factory=dict)
    done: bool = False
    reward: float | None = None


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
        self.pending: dict[int, SlotExperience] = {}
        self.history: list[dict[str, float]] = []
        self.version = 1
        self.stored = 0
        self.dropped = 0
        """Slots whose transitions could never complete (a vehicle vanished)."""

    def fingerprint(self, slot: int) -> tuple[int, float]:
        """(training iteration e, epsilon) the actors use from ``slot`` on."""
        ep = min(slot // self.scenario.n_steps, self.episodes - 1)
        fp_iters = self.scenario.observation.fingerprint_iterations
        return ep * fp_iters // self.episodes, epsilon_at(ep, self.episodes, self.cfg)

    def add_experience(self, slot: int, agent: int, obs: np.ndarray, action: int,
                       done: bool) -> None:
        e = self.pending.setdefault(slot, SlotExperience())
        e.obs[agent], e.action[agent], e.done = np.asarray(obs, np.float64), int(action), done

    def add_reward(self, slot: int, reward: float) -> None:
        self.pending.setdefault(slot, SlotExperience()).reward = float(reward)

    def complete(self, slots: range, agents: set[int]) -> bool:
        """Every upload and reward of ``slots`` from ``agents`` is in."""
        return all(n in self.pending and agents <= set(self.pending[n].obs)
                   and self.pending[n].reward is not None for n in slots)

    def update(self, upto: int) -> dict[str, float]:
        """Store the complete transitions of slots before ``upto``, then train."""
        full = set(range(self.n_agents))
        rows = []
        for n in sorted(x for x in self.pending if x < upto):
            e, nxt = self.pending[n], self.pending.get(n + 1)
            if e.reward is None or set(e.obs) != full:
                continue
            if not e.done and (nxt is None or set(nxt.obs) != full):
                continue
            next_obs = (np.zeros_like(np.stack([e.obs[k] for k in range(self.n_agents)]))
                        if e.done else np.stack([nxt.obs[k] for k in range(self.n_agents)]))
            rows.append((n, e, next_obs))
        if rows:
            self.dqn.observe(Transitions(
                obs=np.stack([np.stack([e.obs[k] for k in range(self.n_agents)])
                              for _, e, _ in rows]),
                actions=np.array([[e.action[k] for k in range(self.n_agents)]
                                  for _, e, _ in rows]),
                rewards=np.array([e.reward for _, e, _ in rows]) * self.cfg.reward_scale,
                next_obs=np.stack([x for _, _, x in rows]),
                terminated=np.array([float(e.done) for _, e, _ in rows])))
        for n, _, _ in rows:
            del self.pending[n]
        # what is still missing before the last slot (a vanished vehicle) never completes
        for n in [x for x in self.pending if x < upto - 1]:
            del self.pending[n]
            self.dropped += 1
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
