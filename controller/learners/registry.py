"""The learner registry: every learner declared once, with its name, a one-line help, the
kind of policy it trains and a factory.

    spec = learner("trpo")                      # UnknownLearner lists the known names
    trpo = spec.make(policy, seed)              # a core.Learner; config=None: defaults
    dqn = make("dqn", QDims(obs_dim, n_actions, n_agents), rng, DqnConfig(...))

``make(policy_or_dims, seed, config=None)``: ``policy_or_dims`` is what the learner trains
(a :class:`node.policy.GaussianPolicy` for 'gaussian' learners, a :class:`QDims` for 'q'
learners); ``seed`` is a run seed (the learner's randomness is then the named stream
``rng_for(seed, "learner", name)``) or a numpy generator used as is (for drivers that
checkpoint the stream). The CLI, the training drivers and the controller look names up
here; nothing else compares learner names. Importing this needs no torch: factories
import their module when called.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from protocols.core import Learner
from protocols.seeding import rng_for

PolicyKind = str
"""What a learner trains, by name: 'gaussian' (a Gaussian power policy, paper 001's
schemes), 'q' (discrete Q networks), 'd2d-actors' (per-pair actors with centralized
critics, paper 002); a plug-in's learner may name a new kind (an open set: the training
drivers pick learners by the kind they can drive)."""
Seed = int | np.random.Generator
Factory = Callable[[Any, np.random.Generator, Any], Learner]
"""``(policy_or_dims, rng, config or None) -> learner``."""


@dataclass(frozen=True)
class QDims:
    """What a Q learner trains: one observation per agent, discrete actions."""

    obs_dim: int
    """Observation length of one agent."""
    n_actions: int
    """Discrete actions of one agent."""
    n_agents: int
    """Agents acting at once (one Q network each, or one shared)."""


class UnknownLearner(ValueError):
    """A learner name that is not registered (the message lists the known ones)."""


@dataclass(frozen=True)
class LearnerSpec:
    """One registered learner."""

    name: str
    """The name the CLI and run options use (``--algo``)."""
    help: str
    """One line for ``--help``."""
    trains: PolicyKind
    """The kind of policy it trains."""
    factory: Factory
    """Builds the learner from what it trains, a generator and a config (None: defaults)."""
    defaults: Callable[[], Any] | None = None
    """Its default config (a frozen dataclass), imported when called; None: the learner
    takes no options (:func:`configure`)."""

    def make(self, policy_or_dims: Any, seed: Seed, config: Any = None) -> Learner:
        """A new learner; an int ``seed`` means the stream ("learner", name) of that run."""
        rng = seed if isinstance(seed, np.random.Generator) else rng_for(
            int(seed), "learner", self.name)
        return self.factory(policy_or_dims, rng, config)


LEARNERS: dict[str, LearnerSpec] = {}
"""Every registered learner by name, in registration order."""


def register(spec: LearnerSpec) -> LearnerSpec:
    """Add a learner; its name must be new."""
    if spec.name in LEARNERS:
        raise ValueError(f"learner {spec.name!r} is already registered")
    LEARNERS[spec.name] = spec
    return spec


def names(trains: PolicyKind | None = None) -> tuple[str, ...]:
    """Registered names, all or those that train one kind of policy."""
    return tuple(n for n, s in LEARNERS.items() if trains is None or s.trains == trains)


def learner(name: str, trains: PolicyKind | None = None) -> LearnerSpec:
    """The spec of ``name``; :class:`UnknownLearner` names the known ones (of that kind)."""
    known = names(trains)
    if name not in known:
        what = f"{trains}-policy learner" if trains else "learner"
        raise UnknownLearner(f"unknown {what} {name!r}; known: {', '.join(known)}")
    return LEARNERS[name]


def make(name: str, policy_or_dims: Any, seed: Seed, config: Any = None,
         trains: PolicyKind | None = None) -> Learner:
    """``learner(name, trains).make(policy_or_dims, seed, config)``."""
    return learner(name, trains).make(policy_or_dims, seed, config)


def configure(name: str, options: Mapping[str, Any]) -> Any:
    """The config of learner ``name``: its defaults with ``options`` (field name -> value,
    as TOML gives them: ``{"max_kl": 0.02, "value_hidden": [64, 64]}``) in their place;
    None without options (the factory's defaults). ValueError names an unknown field
    (listing the known ones), a value of the wrong type, or one the config refuses."""
    spec = learner(name)
    if not options:
        return None
    if spec.defaults is None:
        raise ValueError(f"learner {name!r} takes no options")
    from channel_server.config import check_field

    base = spec.defaults()
    known = sorted(f.name for f in dataclasses.fields(base))
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f"learner {name!r} has no option {unknown[0]!r} (known: "
                         f"{', '.join(known)})")
    hints = typing.get_type_hints(type(base))
    return dataclasses.replace(base, **{k: check_field(v, hints[k], f"{name} option {k}")
                                        for k, v in options.items()})


def help_text(trains: PolicyKind | None = None) -> str:
    """``name: help`` of every learner (of one kind), for a CLI option's help."""
    return "; ".join(f"{n}: {LEARNERS[n].help}" for n in names(trains))


# --------------------------------------------------------------------------- the learners


def _trpo_defaults() -> Any:
    from controller.learners.trpo import TrpoConfig

    return TrpoConfig()


def _trpo(policy: Any, rng: np.random.Generator, config: Any) -> Learner:
    from controller.learners.trpo import Trpo

    return Trpo(policy, config if config is not None else _trpo_defaults(), rng)


def _a2c_defaults() -> Any:
    from controller.learners.a2c import A2cConfig

    return A2cConfig()


def _a2c(policy: Any, rng: np.random.Generator, config: Any) -> Learner:
    from controller.learners.a2c import A2c

    return A2c(policy, config if config is not None else _a2c_defaults(), rng)


def _dqn(dims: QDims, rng: np.random.Generator, config: Any) -> Learner:
    from controller.learners.dqn import Dqn, DqnConfig

    return Dqn(dims.obs_dim, dims.n_actions, dims.n_agents,
               config if config is not None else DqnConfig(), rng)


register(LearnerSpec("trpo", "trust-region policy optimization (paper 001)", "gaussian", _trpo,
                     _trpo_defaults))
register(LearnerSpec("a2c", "advantage actor-critic, fixed step size (paper 001's baseline)",
                     "gaussian", _a2c, _a2c_defaults))
register(LearnerSpec("dqn", "multi-agent Double DQN with a target network and fingerprints "
                     "(V2X spectrum sharing, paper 000)", "q", _dqn))


def _maac(dims: Any, rng: np.random.Generator, config: Any) -> Learner:
    from controller.learners.maac import Maac, MaacConfig

    return Maac(dims, config if config is not None else MaacConfig(critic="all"), rng)


def _naac(dims: Any, rng: np.random.Generator, config: Any) -> Learner:
    from controller.learners.maac import Maac, MaacConfig

    return Maac(dims, config if config is not None else MaacConfig(critic="neighbours"), rng)


register(LearnerSpec("maac", "multi-agent actor-critic, a critic over every D2D pair "
                     "(paper 002)", "d2d-actors", _maac))
register(LearnerSpec("naac", "neighbour-agent actor-critic, a critic over the lambda nearest "
                     "D2D pairs (paper 002)", "d2d-actors", _naac))


def _mpgnn(dims: Any, rng: np.random.Generator, config: Any) -> Learner:
    from controller.learners.gnn import make_mpgnn

    return make_mpgnn(dims, rng, config)


def _ic_mlp(dims: Any, rng: np.random.Generator, config: Any) -> Learner:
    from controller.learners.gnn import make_mlp

    return make_mlp(dims, rng, config)


register(LearnerSpec("mpgnn", "message-passing GNN for K-user interference-channel power "
                     "control, trained offline on channel samples (paper 003)", "ic-mpgnn",
                     _mpgnn))
register(LearnerSpec("ic-mlp", "centralized MLP over all K^2 gains for K-user power control "
                     "(paper 003's baseline)", "ic-mlp", _ic_mlp))
