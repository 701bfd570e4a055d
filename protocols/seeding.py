"""Every random stream of a run derives from the run's seed and a stable name."""

from __future__ import annotations

import zlib

import numpy as np


def rng_for(seed: int, *names: str | int) -> np.random.Generator:
    """A generator for the stream called ``names`` of run ``seed``.

    The same (seed, names) give the same stream in every process; different names
    give independent streams (SeedSequence mixing).
    """
    key = [int(seed) & 0xFFFFFFFF]
    key += [n if isinstance(n, int) else zlib.crc32(n.encode()) for n in names]
    return np.random.default_rng(np.random.SeedSequence(key))
