"""ALCOR's Algorithm 1 fed one slot at a time, as a run plays it (paper 004).

Iteration k spans ``slots_per_iteration`` consecutive slots from slot 0 (two batches of B
for Algorithm 1, one for the simpler update). :meth:`OnlineAlcor.add` takes each slot's
demands and rates; after the iteration's last slot it steps the multipliers with the batch
means of ``u_min - U`` (:func:`node.alcor.step` / :func:`node.alcor.simple_step`) and the new
activation probabilities hold from the next slot on. The same object serves the controller
(every link: the centralized variant) and a link node (its own user: the distributed one,
whose normaliser ``max_l (c + lambda_l)`` comes from message passing, :meth:`normalise`).

The user-selection vector: link i draws one uniform per slot from its own stream
``rng_for(seed, "alcor", "usv", i)`` and is on when it is below kappa_i, so the controller
(drawing for every link) and a link (drawing for itself) switch the same links on in the
same slots whenever their kappa agree.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import numpy.typing as npt

from channel_server.demands import AlcorSettings
from node.alcor import AlcorConfig, AlcorState, initial_state, simple_step, step
from protocols.seeding import rng_for

Array = npt.NDArray[np.float64]


def alcor_config(c: AlcorSettings) -> AlcorConfig:
    return AlcorConfig(alpha=c.alpha, gamma=c.gamma, batch=c.batch, c=c.c, update=c.update)


class OnlineAlcor:
    """Algorithm 1 over ``users`` (indices of the links it keeps multipliers for)."""

    def __init__(self, cfg: AlcorSettings, users: list[int], seed: int) -> None:
        self.cfg = alcor_config(cfg)
        self.users = list(users)
        self.state: AlcorState = initial_state(len(users), self.cfg.c)
        self.streams = [rng_for(seed, "alcor", "usv", i) for i in users]
        self.sums = np.zeros((2, len(users)))
        self.history: list[tuple[int, list[float]]] = []
        """(first slot it holds from, lambda) after every iteration."""

    @property
    def per_iteration(self) -> int:
        return self.cfg.slots_per_iteration

    def draw(self) -> npt.NDArray[np.bool_]:
        """This slot's user selection of the users (one uniform each, every slot)."""
        u = np.array([s.random() for s in self.streams])
        out: npt.NDArray[np.bool_] = u < self.state.kappa
        return out

    def add(self, slot: int, u_min: Array, rates: Array) -> bool:
        """One slot's demands and rates of the users; True when it ended an iteration (the
        multipliers stepped)."""
        pos = slot % self.per_iteration
        self.sums[pos // self.cfg.batch] += np.asarray(u_min, float) - np.asarray(rates, float)
        if pos + 1 < self.per_iteration:
            return False
        f1, f2 = self.sums / self.cfg.batch
        self.state = (step(self.state, f1, f2, self.cfg) if self.cfg.update == "extragradient"
                      else simple_step(self.state, f1, self.cfg))
        self.sums[:] = 0.0
        self.history.append((slot + 1, self.state.lam.tolist()))
        return True

    def normalise(self, max_term: float) -> None:
        """Distributed: kappa from what message passing delivered of max_l (c + lambda_l)
        (clipped to 1 when that is below the user's own value)."""
        own = self.cfg.c + self.state.lam
        self.state = replace(self.state, kappa=np.minimum(1.0, own / np.maximum(max_term, own)))
