"""The durable record of a network training run, written as updates happen, so that a
controller killed at any moment leaves a run directory that ``--resume`` continues
(issue 12):

```
RUN_DIR/
  training.csv      one row per update, appended as it happens (rewritten whole, atomically,
                    by the rare update whose row brings a new column)
  updates.jsonl     one JSON line per update, appended as it happens: what it used
                    (:meth:`TrainingJournal.updated`)
  weights.npz       the weights after the latest update (a typed weights file, atomic)
  checkpoints/ckpt-v<version>.npz   every ``checkpoint_every`` updates and after the last:
                    the learner, the run's records so far and which experience was used
                    (the newest CHECKPOINTS_KEPT are kept)
```

A checkpoint is one ``.npz`` of named arrays (no pickle) plus a ``meta`` entry, UTF-8 JSON:
``format``, ``kind``, the run's settings (checked on resume), ``version`` (the weights
version after the update), ``slot`` (the next slot to play), ``attempt``, ``history`` (the
training.csv rows so far) and ``ledger`` (per node: the highest experience seq used and the
seqs held for a later update; :class:`controller.learners.collect.ExperienceLedger`). It is
written to a temporary file, flushed to disk and renamed, so a reader sees a whole one or
none. On resume the files above are cut back to the checkpoint: what the killed controller
wrote after it is done again by the resumed one.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from protocols.durable import read_archive, write_archive, write_atomic
from protocols.weights import WeightsArtifact

log = logging.getLogger("rrmbed.controller")

FORMAT = 1
"""Checkpoint layout version (meta ``format``)."""
CHECKPOINTS_KEPT = 3
"""Newest checkpoints kept (older ones are deleted once a newer one is on disk)."""


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]

    @property
    def version(self) -> int:
        return int(self.meta["version"])

    @property
    def slot(self) -> int:
        """The next slot to play: every slot before it is in the checkpoint."""
        return int(self.meta["slot"])

    def check(self, **want: Any) -> None:
        """The run's settings ``want`` are those the checkpoint was written with."""
        for key, value in want.items():
            got = self.meta.get(key)
            if got != value:
                raise ValueError(f"checkpoint {self.path}: {key} = {got!r}, but the run has "
                                 f"{value!r}")


def checkpoint_dir(out: Path) -> Path:
    return out / "checkpoints"


def save_checkpoint(out: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any],
                    keep: int = CHECKPOINTS_KEPT) -> Path:
    """Write ``checkpoints/ckpt-v<version>.npz`` atomically; delete all but the newest
    ``keep``."""
    folder = checkpoint_dir(out)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, **meta}
    path = folder / f"ckpt-v{int(meta['version']):06d}.npz"
    write_archive(path, arrays, meta)
    for old in sorted(folder.glob("ckpt-v*.npz"))[:-keep]:
        old.unlink()
    return path


def latest_checkpoint(out: Path) -> Path | None:
    found = sorted(checkpoint_dir(out).glob("ckpt-v*.npz"))
    return found[-1] if found else None


def load_checkpoint(path: Path) -> Checkpoint:
    arrays, meta = read_archive(path)
    if meta.get("format") != FORMAT:
        raise ValueError(f"checkpoint {path}: format {meta.get('format')!r}, expected {FORMAT}")
    return Checkpoint(path, arrays, meta)


# --------------------------------------------------------------------------- small files


def _append(path: Path, text: str) -> None:
    """Append ``text`` with one write (a line is whole or, after a crash mid-write, cut
    back to the previous one on the next start)."""
    data = text.encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        done = 0
        while done < len(data):
            done += os.write(fd, data[done:])
    finally:
        os.close(fd)


def csv_text(rows: list[dict[str, Any]], columns: list[str], header: bool) -> str:
    """Rows as controller.runners.output writes training.csv (csv.DictWriter's defaults)."""
    buf = io.StringIO()
    wr = csv.DictWriter(buf, fieldnames=columns)
    if header:
        wr.writeheader()
    wr.writerows(rows)
    return buf.getvalue()


def open_journal(out: Path, train: dict[str, Any] | None
                 ) -> tuple[TrainingJournal, Checkpoint | None]:
    """The journal of a network training run in ``out`` (``train``: the run's train options,
    whose ``resume`` is the attempt number) and the checkpoint to continue from, if any."""
    attempt = int((train or {}).get("resume", 0))
    journal = TrainingJournal(out, attempt)
    return journal, journal.start(resume=attempt > 0)


class TrainingJournal:
    """training.csv, updates.jsonl, weights.npz and the checkpoints of one run directory.

    ``attempt``: 0 for a run's first controller, k for the one of its k-th resume (written
    into every updates.jsonl line: header seqs restart with every new process)."""

    def __init__(self, out: Path, attempt: int = 0) -> None:
        self.out = out
        self.attempt = int(attempt)
        self.rows: list[dict[str, Any]] = []
        self.columns: list[str] = []

    @property
    def training_csv(self) -> Path:
        return self.out / "training.csv"

    @property
    def updates_jsonl(self) -> Path:
        return self.out / "updates.jsonl"

    def start(self, resume: bool) -> Checkpoint | None:
        """The checkpoint to continue from (``resume``: the latest, if any), with the files
        cut back to it; a fresh run (or a resume without a checkpoint) starts them empty and
        deletes old checkpoints and weights, so nothing stale is ever resumed."""
        self.out.mkdir(parents=True, exist_ok=True)
        path = latest_checkpoint(self.out) if resume else None
        ck = load_checkpoint(path) if path is not None else None
        if resume and ck is None:
            log.warning("%s: no checkpoint to resume from; training starts over", self.out)
        if ck is None:
            for old in checkpoint_dir(self.out).glob("ckpt-v*.npz"):
                old.unlink()
            (self.out / "weights.npz").unlink(missing_ok=True)
            self.training_csv.unlink(missing_ok=True)
            write_atomic(self.updates_jsonl, "")
            return None
        self.rows = [dict(r) for r in ck.meta["history"]]
        self.columns = sorted({k for r in self.rows for k in r})
        if self.rows:
            write_atomic(self.training_csv, csv_text(self.rows, self.columns, header=True))
        else:
            self.training_csv.unlink(missing_ok=True)
        kept = []
        if self.updates_jsonl.exists():
            for line in self.updates_jsonl.read_text().splitlines():
                try:
                    if int(json.loads(line)["version"]) <= ck.version:
                        kept.append(line + "\n")
                except (ValueError, KeyError, TypeError):
                    break  # a line cut short by the crash: nothing after it is whole
        write_atomic(self.updates_jsonl, "".join(kept))
        return ck

    def updated(self, row: dict[str, float], version: int, slots: range,
                used: dict[str, list[tuple[int, int]]],
                weights: WeightsArtifact | None) -> None:
        """One update: its training.csv row, its updates.jsonl line (``used``: per node,
        the (seq, header seq) of every experience it trained on) and the weights after it."""
        self.rows.append(dict(row))
        if set(row) <= set(self.columns):
            _append(self.training_csv, csv_text([row], self.columns, header=False))
        else:
            self.columns = sorted({*self.columns, *row})
            write_atomic(self.training_csv, csv_text(self.rows, self.columns, header=True))
        line = {"version": int(version), "slots": [slots.start, slots.stop - 1],
                "attempt": self.attempt,
                "experience": {n: [s for s, _ in u] for n, u in used.items()},
                "message_seq": {n: [h for _, h in u] for n, u in used.items()}}
        _append(self.updates_jsonl, json.dumps(line) + "\n")
        if weights is not None:
            self.updated_weights(weights)

    def updated_weights(self, weights: WeightsArtifact) -> None:
        """weights.npz: the weights of the latest update (or of the checkpoint resumed)."""
        weights.save(self.out / "weights.npz")

    def checkpoint(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
        """Write a checkpoint of ``meta['version']``; ``meta`` gets the history and attempt."""
        return save_checkpoint(self.out, arrays,
                               {**meta, "attempt": self.attempt, "history": self.rows})
