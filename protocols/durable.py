"""Atomic file writes: a reader, or a crash, sees the old file or the new one, never half."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder, flushed to
    disk, then renamed over ``path``; the temporary file is removed if anything fails."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with tmp.open("w", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


META = "meta"
"""The entry of an archive written by :func:`write_archive` that holds its JSON meta."""


def write_archive(path: Path, arrays: dict[str, Any], meta: dict[str, Any]) -> None:
    """Write named arrays and a JSON ``meta`` as one ``.npz`` (no pickle), atomically: a
    temporary file in the same folder, flushed to disk, renamed over ``path``."""
    import numpy as np

    if META in arrays:
        raise ValueError(f"{META!r} is the archive's own entry")
    text = json.dumps(meta, sort_keys=True)
    entries = {**arrays, META: np.frombuffer(text.encode(), dtype=np.uint8)}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **entries)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_archive(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The arrays and the meta of an archive written by :func:`write_archive`."""
    import numpy as np

    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    if META not in arrays:
        raise ValueError(f"{path}: not an rrmbed archive (no {META!r} entry)")
    meta = json.loads(arrays.pop(META).tobytes().decode())
    return arrays, meta
