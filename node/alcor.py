"""ALCOR's time-sharing core (paper 004, Section III and Algorithm 1), pure numpy.

Each slot a user-selection vector (USV) ``xi ~ Bernoulli(kappa)`` switches users on or off;
the URA then allocates among the active users only. The activation probabilities follow the
multipliers ``lambda >= 0``:

    kappa_i = (c + lambda_i) / max_l (c + lambda_l)        (c = 1 in the paper, (6))

so the user with the largest multiplier is always on, and a user whose demand is met
(``lambda_i = 0``) is still on with probability ``c / max_l (c + lambda_l) > 0``. The
multipliers solve "find lambda >= 0 with F(lambda) <= 0", ``F = E[u_min - U]`` (7), from
batch means ``F_hat`` of ``u_min - U`` over B slots (8):

Algorithm 1 (as printed; ``alpha_k``, ``gamma`` step sizes), iteration k:

1-2. batch 1 of B slots with ``xi ~ D(kappa^k)``, URA, ``F_hat_1``;
3.   ``h^{k+1} = lam_bar^k + gamma F_hat_1 + (1 - alpha_k)(h^k - lam_bar^{k-1} - gamma F_hat_1)``;
4.   ``lambda^{k+1} = max(0, h^{k+1})``;
5-6. batch 2 of B slots with the same ``kappa^k``, URA, ``F_hat_2``;
7.   ``lam_bar^{k+1} = lam_bar^k - alpha_k (h^{k+1} - lambda^{k+1} - gamma F_hat_2)``;
8.   ``kappa^{k+1} = kappa(lambda^{k+1})``.

The "simpler" update of Section III-D uses one batch: ``lambda^{k+1} = max(0, lambda^k +
alpha_k F_hat)`` (no convergence guarantee, the paper says). Both are pure functions of a
frozen state here: :func:`step` and :func:`simple_step`.

Distributed (Remark III.2): every user keeps its own scalars ``lambda_i, h_i, lam_bar_i``
and needs only its own ``F_hat_i``; step 8 needs ``max_l (c + lambda_l)``, which the users
learn by message passing. :func:`user_step` and :func:`user_kappa` are one user's half of
the iteration; :func:`distributed_step` runs all users with the max supplied by a function
(exact, or what a limited number of message rounds delivers, :func:`flooding_max`), and
equals :func:`step` when the max is exact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

Update = Literal["extragradient", "simple"]
Restart = Literal["warm", "cold"]
Allocator = Callable[[Array, Any, "np.random.Generator | None"], Array]
"""A URA as a black box: gains ``(N, K, K)`` (``G[n, j, i]``: transmitter j to receiver i),
the scenario, a generator -> powers ``(N, K)`` in watts
(:mod:`controller.baselines.ic`'s allocators)."""


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class AlcorConfig:
    """Algorithm 1's parameters (paper 004, Section IV: alpha_k = 0.9, gamma 1..10, B = 25)."""

    alpha: float = 0.9
    """alpha_k, the fixed step of steps 3 and 7 (and of the simpler update), in (0, 1)."""
    gamma: float = 1.0
    """gamma, the step on the batch means in steps 3 and 7, > 0 (the paper picks 1..10 per
    experiment); units: multiplier per (bit/s/Hz)."""
    batch: int = 25
    """B, slots per batch; an extragradient iteration spends 2B slots, a simple one B."""
    c: float = 1.0
    """c of kappa_i = (c + lambda_i) / max_l (c + lambda_l) (Lemma A.1; 1 in (6)): a larger c
    flattens kappa, i.e. a smaller Lipschitz constant L_kappa."""
    update: Update = "extragradient"
    """``extragradient``: Algorithm 1; ``simple``: the one-batch projected update."""
    restart: Restart = "warm"
    """When the demands change: ``warm`` keeps lambda, h, lam_bar (the iteration goes on with
    the new u_min); ``cold`` resets them to zero (the paper "restarts with a new input u_min"
    and leaves the initial point free)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.gamma <= 0 or self.c <= 0:
            raise ValueError("gamma and c must be > 0")
        if self.batch < 1:
            raise ValueError("batch must be >= 1")
        if self.update not in ("extragradient", "simple"):
            raise ValueError(f"update must be 'extragradient' or 'simple', not {self.update!r}")
        if self.restart not in ("warm", "cold"):
            raise ValueError(f"restart must be 'warm' or 'cold', not {self.restart!r}")

    @property
    def slots_per_iteration(self) -> int:
        """Slots (URA calls) one iteration uses: 2B (two batches) or B (simple)."""
        return 2 * self.batch if self.update == "extragradient" else self.batch


# --------------------------------------------------------------------------- kappa and the USV


def activation_probabilities(lam: Array, c: float = 1.0) -> Array:
    """``kappa_i = (c + lambda_i) / max_l (c + lambda_l)`` along the last axis (6)."""
    v = c + np.asarray(lam, dtype=np.float64)
    out: Array = v / v.max(axis=-1, keepdims=True)
    return out


def sample_usv(kappa: Array, n: int, rng: np.random.Generator) -> BoolArray:
    """``n`` user-selection vectors ``(n, K)``: ``xi_i ~ Bernoulli(kappa_i)`` independently
    (Definition III.1). One uniform per user and slot, so a user with kappa = 1 is always on
    and the stream consumed does not depend on kappa."""
    k = np.asarray(kappa, dtype=np.float64)
    out: BoolArray = rng.random((n, k.shape[-1])) < k
    return out


def mask_gains(gains: Array, active: BoolArray) -> Array:
    """``H_xi``: the gains with the rows and columns of inactive users zeroed (Section III-B)."""
    a = np.asarray(active, dtype=np.float64)
    out: Array = np.asarray(gains, dtype=np.float64) * a[..., :, None] * a[..., None, :]
    return out


def ura_on_active(allocator: Allocator, gains: Array, active: BoolArray, scenario: Any,
                  rng: np.random.Generator | None = None) -> Array:
    """(5): the URA on ``H_xi``; inactive users transmit 0 (whatever the allocator returned
    for them). Slots where everyone is on call the allocator on the gains unchanged, so an
    ALCOR that never switches anyone off gives the URA's powers bit for bit."""
    g = np.asarray(gains, dtype=np.float64)
    act = np.asarray(active, dtype=bool)
    p = np.asarray(allocator(mask_gains(g, act) if not act.all() else g, scenario, rng),
                   dtype=np.float64)
    out: Array = np.where(act, p, 0.0)
    return out


# --------------------------------------------------------------------------- Algorithm 1


@dataclass(frozen=True)
class AlcorState:
    """The iterates of Algorithm 1 after k iterations, each ``(K,)``."""

    lam: Array
    """lambda^k = max(0, h^k), the multipliers that set kappa."""
    lam_bar: Array
    """lam_bar^k, the base iterate."""
    lam_bar_prev: Array
    """lam_bar^{k-1}."""
    h: Array
    """h^k, the intermediate iterate."""
    kappa: Array
    """kappa^k, the activation probabilities the next batches are drawn with."""
    k: int = 0
    """Iterations done."""


def initial_state(n_users: int, c: float = 1.0, lam0: Array | None = None) -> AlcorState:
    """``lam_bar^{-1} = lam_bar^0 = h^0 = lambda^0 = lam0`` (zeros by default), kappa^0 =
    kappa(lambda^0) (all ones from zero)."""
    lam = np.zeros(n_users) if lam0 is None else np.maximum(0.0, np.asarray(lam0, float))
    return AlcorState(lam=lam.copy(), lam_bar=lam.copy(), lam_bar_prev=lam.copy(), h=lam.copy(),
                      kappa=activation_probabilities(lam, c))


def step(state: AlcorState, f_hat_1: Array, f_hat_2: Array, cfg: AlcorConfig) -> AlcorState:
    """Steps 3, 4, 7 and 8 of Algorithm 1 from the two batch means (8) of ``u_min - U``
    (bit/s/Hz, ``(K,)``), both measured with ``state.kappa``."""
    a, g = cfg.alpha, cfg.gamma
    f1 = np.asarray(f_hat_1, dtype=np.float64)
    f2 = np.asarray(f_hat_2, dtype=np.float64)
    h = state.lam_bar + g * f1 + (1.0 - a) * (state.h - state.lam_bar_prev - g * f1)
    lam = np.maximum(0.0, h)
    lam_bar = state.lam_bar - a * (h - lam - g * f2)
    return AlcorState(lam=lam, lam_bar=lam_bar, lam_bar_prev=state.lam_bar, h=h,
                      kappa=activation_probabilities(lam, cfg.c), k=state.k + 1)


def simple_step(state: AlcorState, f_hat: Array, cfg: AlcorConfig) -> AlcorState:
    """The simpler update of Section III-D: ``lambda^{k+1} = max(0, lambda^k + alpha F_hat)``
    from one batch mean; h and lam_bar follow lambda (kept for a uniform state)."""
    lam = np.maximum(0.0, state.lam + cfg.alpha * np.asarray(f_hat, dtype=np.float64))
    return AlcorState(lam=lam, lam_bar=lam.copy(), lam_bar_prev=state.lam_bar, h=lam.copy(),
                      kappa=activation_probabilities(lam, cfg.c), k=state.k + 1)


def restarted(state: AlcorState, cfg: AlcorConfig) -> AlcorState:
    """The state the iteration continues from after a demand change (``cfg.restart``)."""
    if cfg.restart == "warm":
        return state
    return replace(initial_state(len(state.lam), cfg.c), k=state.k)


# --------------------------------------------------------------------------- distributed


@dataclass(frozen=True)
class UserState:
    """One user's own iterates (scalars): what a link node keeps in distributed ALCOR."""

    lam: float = 0.0
    lam_bar: float = 0.0
    lam_bar_prev: float = 0.0
    h: float = 0.0
    kappa: float = 1.0
    k: int = 0


def user_step(u: UserState, f1: float, f2: float, cfg: AlcorConfig) -> UserState:
    """Steps 3, 4 and 7 for one user from its own batch means; kappa is left for
    :func:`user_kappa` (it needs the max over users)."""
    a, g = cfg.alpha, cfg.gamma
    h = u.lam_bar + g * f1 + (1.0 - a) * (u.h - u.lam_bar_prev - g * f1)
    lam = max(0.0, h)
    lam_bar = u.lam_bar - a * (h - lam - g * f2)
    return UserState(lam=lam, lam_bar=lam_bar, lam_bar_prev=u.lam_bar, h=h, kappa=u.kappa,
                     k=u.k + 1)


def user_simple_step(u: UserState, f: float, cfg: AlcorConfig) -> UserState:
    """The simpler update for one user."""
    lam = max(0.0, u.lam + cfg.alpha * f)
    return UserState(lam=lam, lam_bar=lam, lam_bar_prev=u.lam_bar, h=lam, kappa=u.kappa,
                     k=u.k + 1)


def user_kappa(u: UserState, max_term: float, cfg: AlcorConfig) -> UserState:
    """Step 8 for one user: ``kappa_i = (c + lambda_i) / max_term`` where ``max_term`` is
    what the user learned of ``max_l (c + lambda_l)``, clipped to [0, 1] (a max learned
    from too few messages may be below the user's own value)."""
    kappa = min(1.0, (cfg.c + u.lam) / max(max_term, cfg.c + u.lam))
    return replace(u, kappa=kappa)


MaxExchange = Callable[[Array], Array]
"""``(c + lambda_l for every user l) -> what each user learns of max_l (c + lambda_l)``."""


def exact_max(values: Array) -> Array:
    """Every user learns the true max (a complete exchange)."""
    v = np.asarray(values, dtype=np.float64)
    out: Array = np.full_like(v, v.max())
    return out


def flooding_max(graph: BoolArray, rounds: int) -> MaxExchange:
    """What ``rounds`` rounds of max-flooding over ``graph`` (``graph[j, i]``: j's message
    reaches i) deliver: each user keeps the max of its own value and its in-neighbours'
    current values, once per round. Exact after as many rounds as the graph's diameter."""
    adj = np.asarray(graph, dtype=bool) | np.eye(len(graph), dtype=bool)

    def exchange(values: Array) -> Array:
        v = np.asarray(values, dtype=np.float64).copy()
        for _ in range(rounds):
            v = np.where(adj, v[:, None], -np.inf).max(axis=0)
        return v

    return exchange


def distributed_step(users: list[UserState], f1: Array, f2: Array | None, cfg: AlcorConfig,
                     max_exchange: MaxExchange = exact_max) -> list[UserState]:
    """One iteration of every user: each updates its own scalars from its own batch means
    (``f2`` unused by the simple update), then learns the normaliser from ``max_exchange``
    and sets its kappa."""
    if cfg.update == "simple":
        moved = [user_simple_step(u, float(f1[i]), cfg) for i, u in enumerate(users)]
    else:
        if f2 is None:
            raise ValueError("the extragradient update needs the second batch's means")
        moved = [user_step(u, float(f1[i]), float(f2[i]), cfg) for i, u in enumerate(users)]
    learned = max_exchange(np.array([cfg.c + u.lam for u in moved]))
    return [user_kappa(u, float(learned[i]), cfg) for i, u in enumerate(moved)]


def users_from(state: AlcorState) -> list[UserState]:
    """The centralized state split into per-user states."""
    return [UserState(lam=float(state.lam[i]), lam_bar=float(state.lam_bar[i]),
                      lam_bar_prev=float(state.lam_bar_prev[i]), h=float(state.h[i]),
                      kappa=float(state.kappa[i]), k=state.k) for i in range(len(state.lam))]


def state_from(users: list[UserState]) -> AlcorState:
    """Per-user states gathered into one (for recording and comparison)."""
    def col(name: str) -> Array:
        return np.array([getattr(u, name) for u in users], dtype=np.float64)

    return AlcorState(lam=col("lam"), lam_bar=col("lam_bar"), lam_bar_prev=col("lam_bar_prev"),
                      h=col("h"), kappa=col("kappa"), k=users[0].k if users else 0)
