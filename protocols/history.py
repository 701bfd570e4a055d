"""Message histories: what each process sent and received, for checking a run afterwards.

With the run option ``history`` (a folder), every process of a network run appends one CSV
row per message to ``<folder>/<name>.<pid>.csv`` (one file per process incarnation: a node
restarted mid-run writes a second file)::

    t_ns       wall clock when the frame was sent or arrived (ns since the epoch)
    dir        s (sent) or r (received, before link emulation)
    kind       message kind
    peer       the receiver of a sent message, the sender of a received one
    seq        the message's header seq (per sender, growing by one per message)
    slot       the message's header slot (-1: not a slot's)
    bytes      wire bytes, as the sender meters them
    version    weights version the process held at that moment (0: its initial ones)

and a last row ``end`` when the process closes cleanly: a file without it belongs to a
process that was killed, whose last rows may be missing. Rows are buffered (64 kB) and
flushed with every heartbeat and at the end: logging costs a formatted line per message,
not a system call, and a killed process loses at most its last beat interval.

:func:`protocols.history_check.check` reads a folder of them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

COLUMNS = ("t_ns", "dir", "kind", "peer", "seq", "slot", "bytes", "version")
_UNSAFE = str.maketrans({",": "_", "\n": "_", "\r": "_", '"': "_"})
END = "end"
"""The kind of the last row of a process that closed cleanly."""


class HistoryLog:
    """One process incarnation's history file; ``version()`` gives the weights version the
    process holds."""

    def __init__(self, folder: Path, name: str, version: Callable[[], int]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{name}.{os.getpid()}.csv"
        self.version = version
        self._f = self.path.open("w", buffering=1 << 16)
        self._f.write(",".join(COLUMNS) + "\n")

    def row(self, direction: str, kind: str, peer: str, seq: int, slot: int,
            nbytes: int) -> None:
        if not peer.isidentifier():  # a forged sender name must not break the CSV
            peer = peer[:64].translate(_UNSAFE)
        self._f.write(f"{time.time_ns()},{direction},{kind},{peer},{seq},{slot},{nbytes},"
                      f"{self.version()}\n")

    def flush(self) -> None:
        self._f.flush()

    def close(self) -> None:
        if not self._f.closed:
            self._f.write(f"{time.time_ns()},s,{END},,0,-1,0,{self.version()}\n")
            self._f.close()
