"""The local runner: one process, the same physics, agents and latency models as the
network runner, vectorized over E episodes.

With E = 1 and the same seed it reproduces the network runner slot by slot: same
channel, same round-robin order, same link-latency draws, same powers and rates.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from channel_server.air import Air
from channel_server.config import Scenario
from channel_server.rates import sum_rate_bps_hz
from controller.baselines.central import CentralDecider
from controller.evaluation.results import RunRecorder
from node.agent import EXCHANGE, BsAgent, chain_priors, policy_with_weights
from node.policy_spec import ActionMode
from protocols.latency import LinkModel
from protocols.meter import Meter
from protocols.seeding import rng_for

CONTROLLER = "controller"


def node_name(b: int) -> str:
    return f"node-{b}"


def slot_order(rng: np.random.Generator, n_cells: int) -> list[int]:
    """The round-robin order of one slot (drawn every slot, for every scheme)."""
    return [int(x) for x in rng.permutation(n_cells)]


def link_model(scenario: Scenario, seed: int, src: str, dst: str) -> LinkModel:
    """The latency model of link src->dst; its draws depend only on (seed, src, dst)."""
    return LinkModel(scenario.backhaul.link(src, dst), rng_for(seed, "link", src, dst))


@dataclass
class LocalResult:
    recorder: RunRecorder
    gains: list[np.ndarray]
    wall_s: float


def run_local(
    scenario: Scenario,
    scheme: str,
    slots: int,
    seed: int,
    weights: dict[str, np.ndarray] | None = None,
    action_mode: ActionMode = "mean",
    keep_gains: bool = False,
    on_slot: Callable[[int], None] | None = None,
) -> LocalResult:
    """Run ``slots`` slots of ``scheme`` in this process (one episode)."""
    radio = scenario.radio
    b_n, k_n = radio.n_cells, radio.users_per_cell
    air = Air(radio, seed, episodes=1)
    order_rng = rng_for(seed, "order")
    exchange = EXCHANGE[scheme]
    policy = None if weights is None else policy_with_weights(scheme, scenario, weights)
    agents = [BsAgent(b, scenario, scheme, seed, 1,
                      policy if exchange != "central" else None, action_mode)
              for b in range(b_n)]
    central = CentralDecider(scheme, scenario, seed, policy) if exchange == "central" else None
    links: dict[tuple[str, str], LinkModel] = {}

    def hop(src: str, dst: str) -> np.ndarray:
        if (src, dst) not in links:
            links[(src, dst)] = link_model(scenario, seed, src, dst)
        return np.array([links[(src, dst)].sample()])

    rec = RunRecorder(scenario, scheme, "local", seed, slots)
    kept: list[np.ndarray] = []
    t0 = time.perf_counter()
    for n in range(slots):
        gains = air.reset() if n == 0 else air.step()
        if keep_gains:
            kept.append(gains[0].copy())
        order = slot_order(order_rng, b_n)
        decisions = {}
        t_slot = time.perf_counter()
        if exchange == "none":
            for b in range(b_n):
                decisions[b] = agents[b].decide(gains[:, b], np.zeros(1))
        elif exchange == "chain":
            chain_in = np.zeros(1)
            for i, b in enumerate(order):
                if i > 0:
                    chain_in = decisions[order[i - 1]].latency_s + hop(
                        node_name(order[i - 1]), node_name(b))
                prior, chosen = chain_priors(
                    {x: decisions[x].powers_w for x in order[:i]}, 1, b_n, k_n)
                decisions[b] = agents[b].decide(gains[:, b], chain_in, prior, chosen)
        else:
            assert central is not None
            up = np.stack([hop(node_name(b), CONTROLLER) for b in range(b_n)], axis=-1)
            powers, compute_s = central.decide(gains)
            ready = up.max(axis=-1) + compute_s
            for b in range(b_n):
                down = ready + hop(CONTROLLER, node_name(b))
                decisions[b] = agents[b].commit(powers[:, b], down, compute_s)
        wall = time.perf_counter() - t_slot
        p = np.stack([decisions[b].powers_w[0] for b in range(b_n)])
        rate = float(sum_rate_bps_hz(gains[0], p, radio.noise_w))
        rec.add(rate, p, np.array([decisions[b].latency_s[0] for b in range(b_n)]),
                np.array([decisions[b].missed[0] for b in range(b_n)]), None, wall,
                float(np.mean([decisions[b].compute_s for b in range(b_n)])))
        if on_slot is not None:
            on_slot(n)
    return LocalResult(rec, kept, time.perf_counter() - t0)


def write_local(res: LocalResult, out: Path) -> dict[str, Any]:
    """The run directory of a local run (no wire, so no overhead rows)."""
    summary = res.recorder.write(out, Meter(), {"local": os.getpid()}, res.wall_s)
    if res.gains:
        np.save(out / "gains.npy", np.stack(res.gains))
    return summary
