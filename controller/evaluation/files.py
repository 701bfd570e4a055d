"""Result files written so that a reader never sees half of one."""

from __future__ import annotations

import csv
import fcntl
import io
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

from protocols.durable import write_atomic

PLOTS_ENV = "RRMBED_PLOTS"
"""``RRMBED_PLOTS=0`` leaves out the PNGs every run draws of itself (``plots/slots.png``,
``episodes.png``, ``training.png``): for sweeps of many runs, and the test suite, where
drawing (matplotlib's import and first figure: about a second of CPU) costs more than a
short run. Every other file is written as always; the study commands' figures are not
affected."""


def plots_wanted() -> bool:
    """Whether a run draws its own plots (:data:`PLOTS_ENV`, default yes)."""
    return os.environ.get(PLOTS_ENV, "1") != "0"


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
    write_atomic(path, json.dumps(finite(data), indent=2, sort_keys=sort_keys,
                                  allow_nan=False) + "\n")


RUN_MARKERS = ("config.toml", "scenario.toml", "summary.json", "status.json", "metrics.csv")
"""Files that make a folder an rrmbed run directory (which --overwrite may clear)."""
PROBE_BYTES = 1 << 20
"""What the write probe writes (and removes) before a run: 1 MiB."""


class OutError(RuntimeError):
    """The run directory cannot be used; the text says why."""


def claim_out(out: Path, overwrite: bool) -> Any:
    """Make ``out`` ready for a new run before any work starts; returns an open lock file to
    keep for the run (a second run on the same folder is refused while it is held).

    A non-empty ``out`` is refused unless ``overwrite`` (and then only a run directory is
    cleared, never another folder); then a 1 MiB probe is written, flushed and removed, so a
    folder that is not writable or a full disk is found now, not after the computation."""
    if out.exists() and not out.is_dir():
        raise OutError(f"--out {out} is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        lock = (out / ".lock").open("a")
    except OSError as e:
        raise OutError(f"cannot write to --out {out}: {e.strerror or e}") from None
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.close()
        raise OutError(f"another run is writing to --out {out}") from None
    held = [p for p in out.iterdir() if p.name != ".lock"]
    if held and not overwrite:
        lock.close()
        raise OutError(f"--out {out} already holds files; choose a new folder or pass "
                       "--overwrite to replace that run")
    if held and not any((out / m).exists() for m in RUN_MARKERS):
        lock.close()
        raise OutError(f"--out {out} is not an rrmbed run directory; --overwrite only "
                       "replaces runs")
    for p in held:
        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    probe = out / ".write-probe"
    try:
        with probe.open("wb") as f:
            f.write(b"\0" * PROBE_BYTES)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        lock.close()
        raise OutError(f"cannot write to --out {out}: {e.strerror or e}") from None
    finally:
        probe.unlink(missing_ok=True)
    return lock


class CsvStream:
    """A CSV file written one whole row at a time, as results happen: each row is one
    ``write`` straight to the file (no buffer to lose), and a row that fails half-way (a
    full disk) is cut off again, so the file always ends with a complete row."""

    def __init__(self, path: Path, header: list[str]) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self._size = 0
        self._buf = io.StringIO()
        self._csv = csv.writer(self._buf)
        self.row(header)

    def row(self, values: list[Any]) -> None:
        self._buf.seek(0)
        self._buf.truncate()
        self._csv.writerow(values)
        data = self._buf.getvalue().encode()
        try:
            done = 0
            while done < len(data):
                done += os.write(self._fd, data[done:])
        except OSError:
            os.ftruncate(self._fd, self._size)
            raise
        self._size += len(data)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def write_run_files(out: Path, config: dict[str, Any], streams: list[CsvStream],
                    tables: dict[str, tuple[list[str], Any]], overhead: Any, slots: int,
                    summary: Any) -> dict[str, Any]:
    """What every kind's recorder writes at the end of a run: ``config.toml`` (``config``,
    the run options and the scenario), its CSV files (``streams`` written as slots came, else
    ``tables``: name -> (header, rows)), ``overhead.csv`` (the meter, per slot of ``slots``)
    and ``summary.json`` (``summary()``, computed after the files, returned)."""
    from channel_server.config import to_toml

    out.mkdir(parents=True, exist_ok=True)
    (out / "config.toml").write_text(to_toml(config))
    if streams:
        for st in streams:
            st.close()
    else:
        for name, (header, rows) in tables.items():
            with (out / name).open("w", newline="") as f:
                wr = csv.writer(f)
                wr.writerow(header)
                wr.writerows(rows)
    overhead.to_csv(out / "overhead.csv", max(slots, 1))
    result: dict[str, Any] = summary()
    write_json(out / "summary.json", result, sort_keys=True)
    return result
