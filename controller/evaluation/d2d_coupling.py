"""`rrmbed d2d coupling`: how much a D2D pair's reward depends on the other pairs' actions.

MAAC's critic sees every pair's state and action, NAAC's the lambda nearest, IAC's only its
own (paper 002). What a critic gains from the other pairs' actions is bounded by how much
of a pair's reward they decide. For each slot of ``drops`` independent drops (Table II's
cell, the scenario's fading) this module evaluates every pair's reward (5)-(7) for every
own action against ``draws`` draws of the other pairs' actions, uniformly random (the
training's warm-up policy: *choice*), and splits the reward's variance given the slot's
channel (law of total variance over the own action a_i and the others' a_-i):

* ``own_variance`` = E_slot Var_{a_i}[ E_{a_-i} r_i ] (the own actions uniformly
  weighted): what the pair's own action decides, which a critic that sees only the pair
  (IAC) can learn;
* ``others_variance`` = E_{slot, a_i} Var_{a_-i}[ r_i ]: what the other pairs' actions
  decide, the most a critic that also sees them (MAAC) can add.

Both are unbiased estimates from the draws (:func:`split`).

``others_share`` = others / (own + others). Alongside, ``d2d_interference_share``: the
mean share of the other pairs' power in what a receiver measures on its RB (interference
plus noise) when every pair's action is random.

Pair i's reward for action a = (RB k, level l) against the others' actions: its SINR (2)
on k has the BS's signal for CUE k, the other pairs on k and the noise below its own
signal; CUE k's SINR (1) has the other pairs on k and pair i's own power on it; the reward
is log2(1 + SINR_i) if CUE k meets its threshold, else r_neg. Exactly
:func:`channel_server.d2d.sinr_and_rates` and :func:`~channel_server.d2d.d2d_reward`
evaluated once per (pair, own action, draw), vectorized (the test compares the two).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import numpy.typing as npt
from rich.table import Table

from channel_server.d2d import D2dScenario, D2dWorld, Gains, db_to_linear
from controller.evaluation.files import CsvStream, write_json
from node.d2d_observation import decode_action
from protocols.seeding import rng_for

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class CouplingConfig:
    """How the coupling is sampled."""

    drops: int = 100
    """Independent cells (drops of users), each with its own fading."""
    slots: int = 20
    """Slots per drop (1 ms apart: the fading is correlated over them)."""
    draws: int = 16
    """Draws of the other pairs' actions per slot."""
    seed: int = 0
    """Seed of the drops, the fading and the draws."""

    def __post_init__(self) -> None:
        for name in ("drops", "slots"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.draws < 2:
            raise ValueError(f"draws must be >= 2 (a variance over the others' actions), "
                             f"got {self.draws}")


@dataclass(frozen=True)
class Coupling:
    """The variance split of one scenario (reward units squared, shares in [0, 1])."""

    n_pairs: int
    own_variance: float
    others_variance: float
    others_share: float
    d2d_interference_share: float


def on_rbs(s: D2dScenario, g: Gains, actions: IntArray) -> tuple[IntArray, Array, Array]:
    """For flat ``actions`` (E, D, N): each pair's RB (E, D, N), its power on every RB
    (E, D, N, K, watts) and what reaches each receiver on every RB from the other pairs
    (E, D, N, K, watts)."""
    rb, level = decode_action(actions, s.radio.n_rb)
    power = s.radio.d2d_power_levels_w[level]
    p_rb: Array = power[..., None] * (rb[..., None] == np.arange(s.radio.n_rb))
    from_d2d: Array = np.einsum("edjk,ejik,ji->edik", p_rb, g.tr,
                                1.0 - np.eye(s.radio.n_pairs))  # tx j -> rx i on RB k
    return rb, p_rb, from_d2d


def rewards_against(s: D2dScenario, g: Gains, others: IntArray) -> Array:
    """``r[e, d, i, a]``: pair i's reward when it takes flat action a and every other pair
    j takes ``others[e, d, j]`` (pair i's own entry there is ignored); ``g`` one slot's
    gains of E cells, ``others`` (E, D, N)."""
    r_, q = s.radio, s.qos
    k_n, n_n = r_.n_rb, r_.n_pairs
    noise, p_b = r_.noise_w, r_.bs_power_w
    _, p_rb, from_d2d = on_rbs(s, g, others)
    interference = p_b * g.br[:, None] + from_d2d + noise  # (E, D, N, K)
    # at CUE k, from every pair on k but i
    at_cue = np.einsum("edjk,ejk->edk", p_rb, g.tc)[:, :, None, :] \
        - p_rb * g.tc[:, None]  # (E, D, N, K)
    levels = r_.d2d_power_levels_w  # (L,)
    own = g.own[:, None, :, None, :]  # (E, 1, N, 1, K)
    signal = levels[:, None] * own  # (E, 1, N, L, K)
    d2d_sinr = signal / interference[:, :, :, None, :]
    cue_sinr = p_b * g.bc[:, None, None, None, :] / (
        at_cue[:, :, :, None, :] + levels[:, None] * g.tc[:, None, :, None, :] + noise)
    reward = np.where(cue_sinr >= db_to_linear(q.cue_sinr_min_db), np.log2(1.0 + d2d_sinr),
                      q.negative_reward)  # (E, D, N, L, K)
    e, d = others.shape[:2]
    out: Array = reward.reshape(e, d, n_n, r_.n_levels * k_n)  # flat a = k + K * l
    return out


def interference_share(s: D2dScenario, g: Gains, actions: IntArray) -> Array:
    """Share of the other pairs' power in what each receiver measures on its RB (the BS's
    signal, the other pairs, noise) when every pair takes ``actions`` (E, D, N)."""
    r_ = s.radio
    rb, _, from_d2d = on_rbs(s, g, actions)
    total = r_.bs_power_w * g.br[:, None] + from_d2d + r_.noise_w
    pick = rb[..., None]
    share: Array = (np.take_along_axis(from_d2d, pick, -1)
                    / np.take_along_axis(total, pick, -1))[..., 0]
    return share


def split(r: Array) -> tuple[float, float]:
    """``(own, others)`` variance of rewards ``r[e, d, i, a]`` (E cells, D draws of the
    others' actions, N pairs, A own actions), unbiased: the others' part is the mean over
    (e, i, a) of the sample variance over d (ddof 1); the own part the mean over (e, i) of
    the variance over the A actions (the whole set, ddof 0) of the means over d, less what
    the draws' noise adds to it, (A - 1) / A times the others' part over D."""
    d, a = r.shape[1], r.shape[-1]
    others = r.var(axis=1, ddof=1)  # (E, N, A)
    noise = (a - 1) / a * others.mean(axis=-1) / d  # (E, N)
    own = r.mean(axis=1).var(axis=-1) - noise
    return float(own.mean()), float(others.mean())


def coupling(s: D2dScenario, cfg: CouplingConfig) -> Coupling:
    """The variance split of scenario ``s`` over ``cfg.drops`` drops x ``cfg.slots`` slots."""
    world = D2dWorld(s, cfg.drops, cfg.seed)
    rng = rng_for(cfg.seed, "d2d", "coupling")
    shape = (cfg.drops, cfg.draws, s.radio.n_pairs)
    own, others, shares = [], [], []
    for _ in range(cfg.slots):
        g = world.gains()
        v_own, v_others = split(rewards_against(
            s, g, rng.integers(0, s.radio.n_actions, size=shape)))
        own.append(v_own)
        others.append(v_others)
        shares.append(float(interference_share(
            s, g, rng.integers(0, s.radio.n_actions, size=shape)).mean()))
        world.advance()
    v_own, v_others = float(np.mean(own)), float(np.mean(others))
    total = v_own + v_others
    return Coupling(n_pairs=s.radio.n_pairs, own_variance=v_own, others_variance=v_others,
                    others_share=v_others / total if total > 0 else 0.0,
                    d2d_interference_share=float(np.mean(shares)))


COLUMNS = tuple(f.name for f in fields(Coupling))


def study(scenarios: Sequence[D2dScenario], cfg: CouplingConfig, out: Path,
          on_row: Callable[[Coupling], None] | None = None) -> list[Coupling]:
    """:func:`coupling` of each scenario; ``out`` gets ``coupling.csv`` (a row as each
    scenario is done) and ``coupling.json``."""
    out.mkdir(parents=True, exist_ok=True)
    rows = CsvStream(out / "coupling.csv", list(COLUMNS))
    found: list[Coupling] = []
    try:
        for s in scenarios:
            c = coupling(s, cfg)
            found.append(c)
            rows.row([getattr(c, k) for k in COLUMNS])
            write_json(out / "coupling.json", {"config": asdict(cfg),
                                               "rows": [asdict(x) for x in found]})
            if on_row is not None:
                on_row(c)
    finally:
        rows.close()
    return found


def table(found: Sequence[Coupling], cfg: CouplingConfig) -> Table:
    """The summary table of :func:`study`."""
    t = Table(title="D2D coupling: reward variance given the slot's channel, from the pair's "
                    f"own action and from the others' ({cfg.draws} random draws, "
                    f"{cfg.drops} drops x {cfg.slots} slots)")
    for h in ("N", "own", "others", "others' share", "D2D share of interference"):
        t.add_column(h, justify="right")
    for c in found:
        t.add_row(str(c.n_pairs), f"{c.own_variance:.3f}", f"{c.others_variance:.3f}",
                  f"{c.others_share:.3f}", f"{c.d2d_interference_share:.4f}")
    return t
