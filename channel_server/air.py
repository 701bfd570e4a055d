"""The air: user drops, pathloss, fading and mobility of the multi-cell downlink.

One stateful, pure model used by both the channel-server process and the local
runner. All randomness comes from generators ``rng_for(seed, "air", <stream>, i)``
created at the ``i``-th :meth:`Air.reset`, so the same seed and the same sequence
of ``reset``/``step`` calls give bit-identical gains in every process, and
episode ``i`` does not depend on how many slots earlier episodes ran.

``gains[e, b, k, c] = beta_{b->k,c} |g_{b->k,c}|^2`` (float64, shape ``(E, B, K, B)``),
with ``beta = (1 + d/d0)^-alpha`` (paper 001) and independent fading per
(BS, user) pair.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from channel_server.config import RadioConfig
from channel_server.fading import Fading, make_fading
from channel_server.geometry import bs_user_distances, cell_centers, drop_users
from channel_server.mobility import Mobility, make_mobility
from channel_server.pathloss import distance_gain
from protocols.seeding import rng_for

Array = npt.NDArray[np.float64]


class Air:
    """Channel state of ``episodes`` independent copies of one radio scenario."""

    def __init__(self, radio: RadioConfig, seed: int, episodes: int = 1) -> None:
        if episodes < 1:
            raise ValueError("episodes must be >= 1")
        self.radio = radio
        self.seed = int(seed)
        self.episodes = int(episodes)
        self.bs_xy: Array = cell_centers(radio.layout, radio.cell_radius_m)
        if self.bs_xy.shape[0] != radio.n_cells:
            raise ValueError(f"layout {radio.layout!r} has {self.bs_xy.shape[0]} cells, "
                             f"radio.n_cells is {radio.n_cells}")
        self.resets = 0
        """Number of completed resets; the next one draws from stream index ``resets``."""
        self.slot = -1
        """Slot index within the current episode (0 after reset; -1 before the first)."""
        self._fading: Fading | None = None
        self._mobility: Mobility | None = None
        self._beta: Array | None = None
        self._gains: Array | None = None

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(E, B, K, B)``."""
        r = self.radio
        return (self.episodes, r.n_cells, r.users_per_cell, r.n_cells)

    def reset(self) -> Array:
        """Drop new users, start new fading; return the slot-0 gains ``(E, B, K, B)``."""
        r = self.radio
        i = self.resets
        users = drop_users(
            rng_for(self.seed, "air", "drop", i),
            self.bs_xy,
            r.cell_radius_m,
            r.min_distance_m,
            r.users_per_cell,
            self.episodes,
        )
        mobility_rng = rng_for(self.seed, "air", "mobility", i)
        self._mobility = make_mobility(r, self.bs_xy, users, mobility_rng)
        self._fading = make_fading(r, self.shape, rng_for(self.seed, "air", "fading", i))
        self._beta = self._pathloss()
        self.resets += 1
        self.slot = 0
        self._gains = self._combine()
        return self._gains

    def step(self) -> Array:
        """Advance fading and mobility one slot; return the new gains."""
        if self._fading is None or self._mobility is None:
            raise RuntimeError("Air.step() before Air.reset()")
        self._fading.step()
        if self._mobility.moving:
            self._mobility.step()
            self._beta = self._pathloss()
        self.slot += 1
        self._gains = self._combine()
        return self._gains

    def _pathloss(self) -> Array:
        assert self._mobility is not None
        r = self.radio
        d = bs_user_distances(self.bs_xy, self._mobility.positions, r.layout, r.cell_radius_m)
        return distance_gain(d, r.d0_m, r.pathloss_exponent)

    def _combine(self) -> Array:
        assert self._fading is not None and self._beta is not None
        g = self._fading.state
        out: Array = self._beta * (g.real**2 + g.imag**2)
        return out

    @property
    def gains(self) -> Array:
        """Current channel power gains ``(E, B, K, B)``, linear, pathloss included."""
        if self._gains is None:
            raise RuntimeError("Air.gains before Air.reset()")
        return self._gains

    @property
    def pathloss(self) -> Array:
        """Current large-scale gains ``beta`` ``(E, B, K, B)``."""
        if self._beta is None:
            raise RuntimeError("Air.pathloss before Air.reset()")
        return self._beta

    @property
    def user_xy(self) -> Array:
        """Current user positions ``(E, B, K, 2)``, metres."""
        if self._mobility is None:
            raise RuntimeError("Air.user_xy before Air.reset()")
        return self._mobility.positions
