"""Small MLPs evaluated in numpy, float64: what a node runs when it only acts.

A node decides one slot at a time on one observation; torch's per-operator overhead is
then most of the cost (a 3 x 256 ELU policy: about 80 us in numpy against 240 us through
``nn.Module``, measured side by side). The layers are read once from the named arrays of
a torch ``state_dict`` or a weights file (``<prefix><l>.weight`` out x in, ``.bias``) and
kept as ``(W^T, b)`` for ``x @ W^T + b``. The results equal torch's to rounding (a few
ulp: the two libraries sum the products in different orders), so every runner that acts
through this module acts the same.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
Layers = list[tuple[Array, Array]]
Activation = Literal["elu", "relu"]


def _elu(x: Array) -> Array:
    """ELU in place on ``x`` (a layer's fresh output): x where x > 0, else exp(x) - 1."""
    neg = np.minimum(x, 0.0)
    np.expm1(neg, out=neg)
    np.copyto(x, neg, where=x <= 0.0)
    return x


def _relu(x: Array) -> Array:
    out: Array = np.maximum(x, 0.0)
    return out


ACTIVATIONS: dict[str, Callable[[Array], Array]] = {"elu": _elu, "relu": _relu}
"""Activations by name; each may work in place on the (fresh) layer output it is given."""


def layers_of(arrays: Mapping[str, npt.ArrayLike], prefix: str) -> Layers:
    """``(W^T, b)`` of every layer ``<prefix><l>.weight`` / ``.bias``, by increasing ``l``
    (the index in a ``nn.Sequential``, activations skipped). ValueError when there is
    none."""
    idx = sorted({int(k[len(prefix):].split(".")[0]) for k in arrays
                  if k.startswith(prefix) and k.endswith(".weight")})
    if not idx:
        raise ValueError(f"no layer '{prefix}<l>.weight' among the arrays")
    return [(np.ascontiguousarray(np.asarray(arrays[f"{prefix}{i}.weight"],
                                             dtype=np.float64).T),
             np.asarray(arrays[f"{prefix}{i}.bias"], dtype=np.float64)) for i in idx]


def forward(layers: Layers, x: npt.ArrayLike, activation: Activation) -> Array:
    """The MLP's output for ``x`` (..., in): ``activation`` after every layer but the
    last."""
    act = ACTIVATIONS[activation]
    out = np.asarray(x, dtype=np.float64)
    for i, (w, b) in enumerate(layers):
        out = out @ w + b
        if i < len(layers) - 1:
            out = act(out)
    return out
