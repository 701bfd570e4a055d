"""Paper 003's K-user interference channel as a PettingZoo ``ParallelEnv``: every link an
agent, setting its transmit power each slot.

It plays the air of the kind (:class:`channel_server.interference.IcChannel`: slot 0 is the
channel as built, slot n its n-th ``step``, as :class:`channel_server.roles.interference.
IcAirPart` makes them) with the features of the message-passing GNN (:func:`node.mpgnn.phi`,
a gain as the SNR it gives at full power, in decades):

* **agents** ``link_0`` ... ``link_{K-1}`` (the testbed's ``link-i``).
* **action** (Box ``[0, 1]``, float32, shape ``(1,)``): the power fraction; the power is
  ``clip(a, 0, 1) * radio.pmax_w`` watts.
* **observation** of link i (float32, ``2 K``), what its node holds: its power fraction in
  the last slot (1 before the first: the air's fallback is Pmax), ``phi(G[i, i])``, then for
  the other links j in the order ``i+1, ..., K-1, 0, ..., i-1`` (own link first, as the
  cellular views roll): ``phi(G[j, i])`` (what its receiver measures, every transmitter) and
  ``phi(G[i, j])`` (how strongly it reaches j's receiver: j's GNN messages carry it, so 0
  where j is no in-neighbour of i in the interference graph; the Gaussian form's graph is
  complete).
* **reward**: the slot's sum-rate ``sum(sum_rates(G, p, sigma^2))`` in bit/s/Hz, the same
  for every link: what the GNN and MLP learners maximize (their loss is minus it).
  ``info``: the link's ``rate_bps_hz`` and the ``sum_rate_bps_hz``.
* **episodes**: ``max_cycles`` slots (default 100), then every link is truncated.
  ``reset(seed=s)`` drops the links of ``rrmbed run --seed s`` (fixed for a run); an
  unseeded ``reset()`` starts the next episode on the same drop, the fading and the last
  powers carrying on.
* **state**: ``phi(G)`` of every pair of links (``G[j, i]`` at ``j * K + i``), then the last
  power fractions: the centralized MLP's input plus the powers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from channel_server.interference import IcChannel, IcScenario, sum_rates
from controller.envs.base import (
    DEFAULT_MAX_CYCLES,
    NETWORK_OPTIONS,
    Obs,
    Slot,
    SlotEnv,
    agent_names,
    as_api,
    check_options,
    network_env,
    parts_box,
)
from node.mpgnn import phi

OPTIONS = ("api", "max_cycles", *NETWORK_OPTIONS)
NETWORK_ENV = "controller.envs.interference_network:IcNetworkEnv"
"""The game over real processes (a reference: that module builds on this one)."""


def make_env(scenario: IcScenario, seed: int = 0, **options: Any) -> Any:
    """The kind's factory (``api="aec"``: PettingZoo's ``parallel_to_aec`` of it);
    ``runner="network"`` plays either over real processes
    (:mod:`controller.envs.interference_network`)."""
    check_options("interference", options, OPTIONS)
    max_cycles = int(options.get("max_cycles", DEFAULT_MAX_CYCLES))
    network = network_env(NETWORK_ENV, "interference", scenario, seed, max_cycles, options)
    if network is not None:
        return network
    env = IcParallelEnv(scenario, seed, max_cycles)
    return as_api(env, options.get("api", "parallel"))


def others(k: int) -> np.ndarray:
    """``(K, K-1)``: row i lists the other links in the order ``i+1, ..., i-1``."""
    return (np.arange(k)[:, None] + np.arange(1, k)[None, :]) % k


def link_observations(gains: np.ndarray, graph: np.ndarray, last_fraction: np.ndarray,
                      pmax_w: float, noise_w: float) -> np.ndarray:
    """Every link's observation ``(K, 2 K)`` from the slot's gains ``(K, K)``
    (``G[j, i]``: tx j to rx i), the interference graph ``(K, K)`` and the last fractions."""
    f: np.ndarray = phi(gains, pmax_w, noise_w)
    k = f.shape[0]
    j = others(k)
    i = np.arange(k)[:, None]
    heard = f[j, i]
    reaches = np.where(graph[j, i], f[i, j], 0.0)
    out: np.ndarray = np.concatenate([last_fraction[:, None], np.diagonal(f)[:, None], heard,
                                      reaches], axis=1)
    return out


def fractions(actions: list[Any]) -> np.ndarray:
    """Every link's action -> its power fraction ``(K,)`` (the node's rule: clipped)."""
    out: np.ndarray = np.clip(np.array([np.asarray(a, dtype=np.float64).reshape(())
                                        for a in actions]), 0.0, 1.0)
    return out


def rate_slot(rates: np.ndarray) -> Slot:
    """The slot of the links' rates ``(K,)``: the sum-rate as every link's reward."""
    total = float(rates.sum())
    return Slot([total] * len(rates),
                [{"rate_bps_hz": float(r), "sum_rate_bps_hz": total} for r in rates])


class IcParallelEnv(SlotEnv):
    """The links set their powers at once, every slot."""

    metadata = {"name": "rrmbed_interference_v0", "render_modes": [],
                "is_parallelizable": True}

    def __init__(self, scenario: IcScenario, seed: int = 0,
                 max_cycles: int = DEFAULT_MAX_CYCLES) -> None:
        self.scenario = scenario
        self.radio = scenario.radio
        k = scenario.k
        names = agent_names("link", k)
        obs = parts_box((1, 0.0, 1.0), (2 * k - 1, 0.0, np.inf))
        act = parts_box((1, 0.0, 1.0))
        super().__init__(names, {a: obs for a in names}, {a: act for a in names}, seed,
                         max_cycles, parts_box((k * k, 0.0, np.inf), (k, 0.0, 1.0)))
        self.channel: IcChannel | None = None
        self.gains = np.zeros((k, k))
        """The current slot's gains ``(K, K)``."""
        self.last_fraction = np.ones(k)
        """Every link's power fraction in the last slot (1 before the first)."""

    def _start(self, seed: int) -> None:
        self.channel = IcChannel(self.scenario, seed)
        self.gains = self.channel.gains[0]
        self.last_fraction = np.ones(self.scenario.k)

    def _next_episode(self) -> None:
        """The same drop goes on."""

    def _observe(self) -> Obs:
        assert self.channel is not None
        return link_observations(self.gains, self.channel.layout.graph[0], self.last_fraction,
                                 self.radio.pmax_w, self.radio.noise_w).astype(np.float32)

    def _play(self, actions: list[Any]) -> Slot:
        assert self.channel is not None
        frac = fractions(actions)
        rates = sum_rates(self.gains, frac * self.radio.pmax_w, self.radio.noise_w)
        self.last_fraction = frac
        self.channel.step()
        self.gains = self.channel.gains[0]
        return rate_slot(rates)

    def state(self) -> Obs:
        f = phi(self.gains, self.radio.pmax_w, self.radio.noise_w)
        return np.concatenate([f.reshape(-1), self.last_fraction]).astype(np.float32)
