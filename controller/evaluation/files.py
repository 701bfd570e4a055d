"""Result files written so that a reader never sees half of one."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any


def finite(x: Any) -> Any:
    """``x`` with every NaN or infinite float replaced by None (JSON has neither), numpy
    scalars and arrays as plain numbers and lists."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [finite(v) for v in x]
    if hasattr(x, "tolist"):  # numpy scalars and arrays
        return finite(x.tolist())
    return x


def write_json(path: Path, data: Any, sort_keys: bool = False) -> None:
    """Write ``data`` as JSON atomically: a temporary file in the same folder, flushed to
    disk, then renamed over ``path``. Non-finite floats are written as null."""
    text = json.dumps(finite(data), indent=2, sort_keys=sort_keys, allow_nan=False) + "\n"
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with tmp.open("w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
