"""RLlib on the testbed's PettingZoo environments: a multi-agent PPO configuration.

:func:`rllib_config` gives a ``ray.rllib.algorithms.ppo.PPOConfig`` that trains on a
scenario's ``api="parallel"`` environment (:func:`controller.envs.make_env`), wrapped in
RLlib's own ``ParallelPettingZooEnv`` and registered with ``ray.tune.registry.register_env``
under :data:`ENV_NAME`; the scenario, the episode length and the seed travel in the env
config, so one registration serves every configuration. Build the algorithm and train it
where Ray runs: a local instance (``ray.init()``) or an existing cluster
(``ray.init(address=...)``)::

    algo = rllib_config("scenarios/3cell-k2.toml", seed=0).build_algo()
    result = algo.train()

It uses RLlib's default (new) API stack, RLModules and EnvRunners, framework torch:

* **agents and policies**: every agent of the environment (cellular: ``bs_0..bs_{B-1}``) is
  an RLlib agent. ``shared_policy=True`` maps all of them to one policy,
  :data:`SHARED_POLICY` (parameter sharing: paper 001's decentralized BSs run copies of one
  policy); ``shared_policy=False`` gives each agent a policy of its own, named as the agent.
* **actions**: RLlib's PPO samples a Gaussian in a normalized space and its module-to-env
  connector maps ``a`` to the Box as ``clip(low + (a + 1) (high - low) / 2, low, high)``
  (cellular: power fractions ``clip((a + 1) / 2, 0, 1)``), what the environment then plays.
* **rewards and returns**: the environment's own (cellular: every BS gets the slot's
  sum-rate in bit/s/Hz). RLlib's ``episode_return_mean`` sums over agents, so on the
  cellular environment it is B times the episode's summed sum-rate; the per-agent figure,
  ``agent_episode_returns_mean[bs_0]``, is the summed sum-rate itself.
* **discount**: ``gamma`` defaults to 0: powers never change the channel, so each slot is its
  own problem (as for :class:`controller.envs.central.CentralPowerEnv`).
* **seeding**: ``seed`` seeds RLlib (torch, numpy, the env runners); env runner ``i`` (0 is
  the local one, sampling when ``num_env_runners=0``) builds its environment from
  ``seed + i``, and RLlib resets it with that seed first, so it plays the air of
  ``rrmbed run --seed (seed + i)``, drop after drop, one drop per episode.
* **resources**: ``num_env_runners=0`` samples in the driver process and the learner is
  local too: the algorithm needs no Ray actor and runs on a 2-core machine. With
  ``num_env_runners=n`` RLlib samples in n env-runner actors (1 CPU each), which on a
  cluster must be able to import this project (installed on every node, or Ray's
  ``runtime_env``).
* **repeatability**: RLlib orders the agents of a step by Python's string hashing, so the
  same seed gives the same run only under the same ``PYTHONHASHSEED``.

Importing this module imports Ray and RLlib (the package :mod:`controller.envs` does not).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.env.env_context import EnvContext
from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv
from ray.tune.registry import register_env

from channel_server.kinds import Resolved, resolve
from controller.envs import make_env

__all__ = ["ENV_NAME", "SHARED_POLICY", "make_rllib_env", "rllib_config"]

ENV_NAME = "rrmbed-parallel"
"""The name :func:`rllib_config` registers :func:`make_rllib_env` under."""
SHARED_POLICY = "shared"
"""The policy (RLModule) id every agent maps to with ``shared_policy=True``."""


def make_rllib_env(env_config: EnvContext | Mapping[str, Any]) -> ParallelPettingZooEnv:
    """The registered env creator: RLlib's ``ParallelPettingZooEnv`` around
    ``make_env(scenario, api="parallel", seed=seed + worker_index, max_cycles=...,
    **options)``, all read from ``env_config`` (keys ``scenario``, ``seed``, ``max_cycles``,
    ``options``)."""
    worker = int(getattr(env_config, "worker_index", 0))
    env = make_env(env_config["scenario"], api="parallel", seed=int(env_config["seed"]) + worker,
                   max_cycles=int(env_config["max_cycles"]), **dict(env_config["options"]))
    return ParallelPettingZooEnv(env)  # type: ignore[no-untyped-call]


def shared_policy_mapping(agent_id: Any, episode: Any = None, **kwargs: Any) -> str:
    """Parameter sharing: every agent acts with :data:`SHARED_POLICY`."""
    return SHARED_POLICY


def own_policy_mapping(agent_id: Any, episode: Any = None, **kwargs: Any) -> str:
    """Independent learners: each agent acts with the policy named as itself."""
    return str(agent_id)


def rllib_config(scenario: str | Path | Resolved, *, seed: int = 0, max_cycles: int = 10,
                 shared_policy: bool = True, train_batch_size: int = 200,
                 minibatch_size: int = 100, num_epochs: int = 4, lr: float = 3e-4,
                 gamma: float = 0.0, hidden: Sequence[int] = (64, 64),
                 num_env_runners: int = 0,
                 env_options: Mapping[str, Any] | None = None) -> PPOConfig:
    """Multi-agent PPO on the parallel environment of ``scenario`` (a scenario file or a
    :class:`~channel_server.kinds.Resolved` with overrides); registers :data:`ENV_NAME`.

    ``seed``: RLlib's seed and the environments' (see the module doc); ``max_cycles``: slots
    per episode; ``shared_policy``: one policy for every agent (True) or one each;
    ``train_batch_size``: env steps (slots) sampled per training iteration;
    ``minibatch_size``: agent steps per SGD minibatch; ``num_epochs``: passes over each
    iteration's batch; ``lr``: Adam's learning rate; ``gamma``: the discount; ``hidden``:
    the widths of the tanh layers the policy and value heads share (RLlib's default
    ``vf_share_layers``);
    ``num_env_runners``: remote env-runner actors (0: sample in the driver);
    ``env_options``: more options for :func:`~controller.envs.make_env` (the kind's own).
    """
    resolved = resolve(scenario) if isinstance(scenario, str | Path) else scenario
    options = dict(env_options or {})
    register_env(ENV_NAME, make_rllib_env)
    if shared_policy:
        policies = [SHARED_POLICY]
        mapping = shared_policy_mapping
    else:
        probe = make_env(resolved, api="parallel", seed=seed, max_cycles=max_cycles, **options)
        policies = list(probe.possible_agents)
        mapping = own_policy_mapping
    return (
        PPOConfig()  # type: ignore[no-untyped-call]
        .environment(ENV_NAME, env_config={"scenario": resolved, "seed": int(seed),
                                           "max_cycles": int(max_cycles), "options": options})
        .framework("torch")
        .env_runners(num_env_runners=num_env_runners, num_envs_per_env_runner=1)
        .learners(num_learners=0)
        .multi_agent(policies=set(policies), policy_mapping_fn=mapping)
        .rl_module(
            model_config=DefaultModelConfig(fcnet_hiddens=list(hidden),
                                            fcnet_activation="tanh"),
            rl_module_spec=MultiRLModuleSpec(
                rl_module_specs={pid: RLModuleSpec() for pid in policies}),
        )
        .training(train_batch_size_per_learner=train_batch_size,
                  minibatch_size=minibatch_size, num_epochs=num_epochs, lr=lr, gamma=gamma)
        .debugging(seed=int(seed), log_level="ERROR")
    )
