"""Overhead meter: bytes written to the wire per kind, plane, sender, receiver and slot.

Wire bytes are the message frame plus its ZeroMQ ZMTP/3 framing: a flags byte and a 1-byte
length for frames of at most 255 bytes (``FRAMING_SHORT = 2``), a flags byte and an 8-byte
length otherwise (``FRAMING_LONG = 9``). Connection handshakes (ZMTP greeting and READY
command, once per connection) and TCP/IP headers are not counted. The sender meters; the
receiver does not, so nothing is counted twice.

Each link also splits its bytes into the frame's *header* (the msgpack array's framing
and the header items kind, schema, sender, seq, slot, sent_ns, chain_latency_s:
:func:`protocols.codec.header_length`), its *payload* (the rest of the frame) and the
ZMTP *framing*: header + payload + framing = bytes, for every row. The split is kept per
link, not per slot.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from protocols.durable import write_atomic

FRAMING_SHORT: Final = 2
"""ZMTP/3 framing bytes of a frame of at most 255 bytes (flags + 1-byte length)."""
FRAMING_LONG: Final = 9
"""ZMTP/3 framing bytes of a longer frame (flags + 8-byte length)."""

CSV_COLUMNS: Final = (
    "kind",
    "plane",
    "sender",
    "receiver",
    "messages",
    "bytes",
    "setup_bytes",
    "bytes_per_slot",
    "header_bytes",
    "payload_bytes",
    "framing_bytes",
    "header_bytes_per_slot",
    "payload_bytes_per_slot",
)

LinkKey = tuple[str, str, str, str]
"""(kind, plane, sender, receiver)."""

Phase = str
"""'setup' for traffic before slot 0 (handshake, first weights), 'run' for the slots."""


def wire_size(frame_len: int) -> int:
    """Bytes a ZeroMQ frame of ``frame_len`` bytes occupies on the wire (framing included)."""
    return frame_len + (FRAMING_SHORT if frame_len <= 255 else FRAMING_LONG)


CURVE_MESSAGE_BYTES = 33
"""What CurveZMQ (RFC 26) adds to each message: it travels as a MESSAGE command, the name
(1 + 7 bytes), an 8-byte short nonce and a box of a flags byte and the frame, sealed with a
16-byte MAC: 8 + 8 + 16 + 1."""


def curve_extra(frame_len: int) -> int:
    """Bytes CURVE adds on the wire to a frame of ``frame_len`` bytes (the command may also
    need the long framing where the frame alone did not)."""
    return wire_size(frame_len + CURVE_MESSAGE_BYTES) - wire_size(frame_len)


class Meter:
    """Aggregates sent frames; ``rows()``/``merge()`` carry totals between processes.

    ``rows()`` returns two kinds of plain rows:
    ``["link", phase, kind, plane, sender, receiver, messages, bytes, header_bytes,
    payload_bytes]`` and ``["slot", slot, plane, messages, bytes]``.
    """

    def __init__(self) -> None:
        self._links: dict[tuple[Phase, str, str, str, str], list[int]] = {}
        """(phase, kind, plane, sender, receiver) -> [messages, bytes, header, payload]."""
        self._slots: dict[tuple[int, str], list[int]] = {}

    def record(
        self, kind: str, plane: str, sender: str, receiver: str, slot: int, wire_bytes: int,
        header_bytes: int = 0, payload_bytes: int = 0,
    ) -> None:
        """Count one frame of ``wire_bytes`` bytes (framing included, see :func:`wire_size`)
        of which ``header_bytes`` are its header and ``payload_bytes`` its payload (0, 0:
        not split)."""
        # _add_link and _add_slot inlined: this runs for every message sent.
        key = ("setup" if slot < 0 else "run", kind, plane, sender, receiver)
        entry = self._links.get(key)
        if entry is None:
            self._links[key] = [1, wire_bytes, header_bytes, payload_bytes]
        else:
            entry[0] += 1
            entry[1] += wire_bytes
            entry[2] += header_bytes
            entry[3] += payload_bytes
        slot_key = (slot, plane)
        entry = self._slots.get(slot_key)
        if entry is None:
            self._slots[slot_key] = [1, wire_bytes]
        else:
            entry[0] += 1
            entry[1] += wire_bytes

    def _add_link(self, key: tuple[Phase, str, str, str, str], counts: list[int]) -> None:
        entry = self._links.get(key)
        if entry is None:
            self._links[key] = list(counts)
        else:
            for i, n in enumerate(counts):
                entry[i] += n

    def _add_slot(self, slot: int, plane: str, messages: int, nbytes: int) -> None:
        entry = self._slots.get((slot, plane))
        if entry is None:
            self._slots[(slot, plane)] = [messages, nbytes]
        else:
            entry[0] += messages
            entry[1] += nbytes

    def totals(self, phase: Phase | None = None) -> dict[LinkKey, tuple[int, int]]:
        """(kind, plane, sender, receiver) -> (messages, bytes), of one phase or of all."""
        out: dict[LinkKey, tuple[int, int]] = {}
        for (ph, *key), (m, b, _, _) in self._links.items():
            if phase is None or ph == phase:
                k = (key[0], key[1], key[2], key[3])
                om, ob = out.get(k, (0, 0))
                out[k] = (om + m, ob + b)
        return out

    def parts(self, phase: Phase | None = None) -> dict[LinkKey, tuple[int, int, int]]:
        """(kind, plane, sender, receiver) -> (header, payload, framing) bytes, of one
        phase or of all; the three add up to the bytes of :meth:`totals`."""
        out: dict[LinkKey, tuple[int, int, int]] = {}
        for (ph, *key), (_, b, h, p) in self._links.items():
            if phase is None or ph == phase:
                k = (key[0], key[1], key[2], key[3])
                oh, op, of = out.get(k, (0, 0, 0))
                out[k] = (oh + h, op + p, of + b - h - p)
        return out

    def plane_totals(self) -> dict[str, tuple[int, int]]:
        """plane -> (messages, bytes) over all links."""
        out: dict[str, tuple[int, int]] = {}
        for (_, _, plane, _, _), (m, b, _, _) in self._links.items():
            pm, pb = out.get(plane, (0, 0))
            out[plane] = (pm + m, pb + b)
        return out

    def per_slot(self) -> dict[int, dict[str, tuple[int, int]]]:
        """slot -> plane -> (messages, bytes)."""
        out: dict[int, dict[str, tuple[int, int]]] = {}
        for (slot, plane), (m, b) in sorted(self._slots.items()):
            out.setdefault(slot, {})[plane] = (m, b)
        return out

    def links(self) -> list[list[Any]]:
        """The ``link`` rows of :meth:`rows`: totals per (phase, kind, plane, sender,
        receiver), a few per process whatever the run's length."""
        return [["link", *k, *v] for k, v in sorted(self._links.items())]

    def rows(self) -> list[list[Any]]:
        """The meter's content as plain lists (for a Report message)."""
        out: list[list[Any]] = self.links()
        out += [["slot", s, p, v[0], v[1]] for (s, p), v in sorted(self._slots.items())]
        return out

    def merge(self, rows: Iterable[list[Any]]) -> None:
        """Add another meter's ``rows()`` to this one; raises ValueError on a malformed row.
        (A link row of 8 items, from before the header/payload split, adds 0 to both.)"""
        for row in rows:
            if (
                len(row) in (8, 10)
                and row[0] == "link"
                and row[1] in ("setup", "run")
                and all(type(x) is str for x in row[2:6])
                and all(type(x) is int and x >= 0 for x in row[6:])
                and (len(row) == 8 or row[8] + row[9] <= row[7])
            ):
                self._add_link((row[1], row[2], row[3], row[4], row[5]),
                               [*row[6:], 0, 0][:4])
            elif (
                len(row) == 5
                and row[0] == "slot"
                and type(row[1]) is int
                and type(row[2]) is str
                and all(type(x) is int and x >= 0 for x in row[3:5])
            ):
                self._add_slot(row[1], row[2], row[3], row[4])
            else:
                raise ValueError(f"malformed meter row {row!r}")

    def to_csv(self, path: str | Path, slots: int) -> None:
        """Write overhead.csv atomically (a temporary file renamed over it: a reader, or a
        crash, never sees half of it): one row per (kind, plane, sender, receiver); set-up
        traffic (before slot 0) is counted in ``bytes`` and ``setup_bytes`` but not in
        ``bytes_per_slot = (bytes - setup_bytes) / slots``. The last five columns split
        ``bytes`` into ``header_bytes + payload_bytes + framing_bytes`` and give the run
        phase's header and payload bytes per slot (see the module docstring)."""
        if slots <= 0:
            raise ValueError(f"slots must be positive, got {slots}")
        run, setup = self.totals("run"), self.totals("setup")
        run_parts, setup_parts = self.parts("run"), self.parts("setup")
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(CSV_COLUMNS)
        for key in sorted(set(run) | set(setup)):
            m, b = run.get(key, (0, 0))
            sm, sb = setup.get(key, (0, 0))
            h, p, f = run_parts.get(key, (0, 0, 0))
            sh, sp, sf = setup_parts.get(key, (0, 0, 0))
            writer.writerow([*key, m + sm, b + sb, sb, repr(b / slots), h + sh, p + sp, f + sf,
                             repr(h / slots), repr(p / slots)])
        write_atomic(Path(path), buf.getvalue())
