"""The history checker: properties of a network run, read back from the message histories
every process logged (:mod:`protocols.history`, ``rrmbed run --history``).

It checks, and names each violation it finds:

1. **Weights versions only increase**: within each process incarnation, the version column
   never goes down; a restarted node's first decision uses at least the version its
   previous incarnation last held.
2. **Staleness is bounded**: every decision a node sent (``transmit``, ``v2x_transmit``) at
   slot n used a version at most ``staleness`` behind the newest one the controller had
   sent that node for a slot up to n.
3. **Every used experience is used exactly once**: with ``updates.jsonl`` in the run
   directory (one line per training update, appended as it happens: the (node, slot) of
   each experience in it, and the header seq of the message that brought it), no
   (node, slot) is in two updates, and each message is one the controller received (a
   killed controller's history is cut at its last heartbeat: a seq beyond the last it
   logged from that node is not checked).
4. **Nothing is lost or changed on the way, and the meter is right**: on every connection
   between two processes that closed cleanly, each message sent before the last one the
   receiver got was received, with the same kind and bytes (ZeroMQ keeps a connection's
   order; later ones were in flight when the receiver closed), and the bytes each sender
   logged per (kind, receiver) are what overhead.csv says. Beats, which are not numbered,
   count for the meter only. The set-up handshake (``hello``,
   ``start``) is left out: a process logs from its Start on; so is the meter's own
   ``report``.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from protocols.history import END

DECISIONS = frozenset({"transmit", "v2x_transmit"})
"""Kinds by which a node acts in a slot."""
SETUP = frozenset({"hello", "start"})
BEAT = "beat"


@dataclass
class Incarnation:
    """One process's history file."""

    name: str
    pid: int
    rows: list[tuple[int, str, str, str, int, int, int, int]] = field(default_factory=list)
    """(t_ns, dir, kind, peer, seq, slot, bytes, version), in the order written."""
    complete: bool = False
    """It ends with the ``end`` row: the process closed cleanly."""


def load(folder: Path) -> list[Incarnation]:
    """Every history file of ``folder``, by first row time."""
    found = []
    for path in sorted(folder.glob("*.csv")):
        name, pid = path.stem.rsplit(".", 1)
        inc = Incarnation(name, int(pid))
        with path.open(newline="") as f:
            for r in csv.DictReader(f):
                if r["kind"] == END:
                    inc.complete = True
                    continue
                if r["version"] is None:  # a last line cut short by a kill
                    break
                inc.rows.append((int(r["t_ns"]), r["dir"], r["kind"], r["peer"], int(r["seq"]),
                                 int(r["slot"]), int(r["bytes"]), int(r["version"])))
        found.append(inc)
    return sorted(found, key=lambda i: i.rows[0][0] if i.rows else 0)


def check(run_dir: Path, staleness: int = 0) -> list[str]:
    """What the run's histories violate (empty: nothing)."""
    incs = load(run_dir / "history")
    if not incs:
        return [f"no history in {run_dir / 'history'} (run it with --history)"]
    return [*_versions(incs), *_staleness(incs, staleness), *_experience(run_dir, incs),
            *_bytes(run_dir, incs)]


def _versions(incs: list[Incarnation]) -> list[str]:
    problems: list[str] = []
    last_held: dict[str, int] = {}
    for inc in incs:
        versions = [r[7] for r in inc.rows]
        drops = [(a, b) for a, b in zip(versions, versions[1:], strict=False) if b < a]
        if drops:
            problems.append(f"{inc.name} (pid {inc.pid}): weights version went from "
                            f"{drops[0][0]} down to {drops[0][1]}")
        first = next((r[7] for r in inc.rows if r[1] == "s" and r[2] in DECISIONS), None)
        before = last_held.get(inc.name)
        if first is not None and before is not None and first < before:
            problems.append(f"{inc.name} (pid {inc.pid}) decided with weights v{first} after "
                            f"an earlier incarnation held v{before}")
        if versions:
            last_held[inc.name] = max(last_held.get(inc.name, 0), versions[-1])
    return problems


def _staleness(incs: list[Incarnation], bound: int) -> list[str]:
    sent: dict[str, list[tuple[int, int]]] = defaultdict(list)  # node -> (slot, version)
    for inc in incs:
        if inc.name == "controller":
            sent_weights = [(r[3], r[5], r[7]) for r in inc.rows
                            if r[1] == "s" and r[2] == "weights"]
            for node, slot, version in sent_weights:
                sent[node].append((slot, version))
    problems = []
    for inc in incs:
        deployed = sorted(sent.get(inc.name, []))
        worst = None
        for r in inc.rows:
            if r[1] != "s" or r[2] not in DECISIONS:
                continue
            newest = max((v for s, v in deployed if s <= r[5]), default=0)
            if newest - r[7] > bound and worst is None:
                worst = (r[5], r[7], newest)
        if worst is not None:
            problems.append(f"{inc.name}: decided slot {worst[0]} with weights v{worst[1]}, "
                            f"v{worst[2]} had been sent (staleness bound {bound})")
    return problems


def _experience(run_dir: Path, incs: list[Incarnation]) -> list[str]:
    """Each update line names its experience by (node, slot) (``experience``: the identity
    that survives resends and restarts) and by the header seq of the message that brought
    it (``message_seq``, in the same order; unique within one controller ``attempt``)."""
    path = run_dir / "updates.jsonl"
    if not path.exists():
        return []
    controllers = [inc for inc in incs if inc.name == "controller"]  # one per attempt
    received = [{(r[3], r[4]) for r in inc.rows if r[1] == "r" and r[2] == "experience"}
                for inc in controllers]
    # a killed controller's log is a prefix of what it received: a seq beyond the last one
    # it logged from a node is unknown, not missing
    logged: list[dict[str, int] | None] = []
    for inc, got in zip(controllers, received, strict=True):
        last: dict[str, int] = {}
        for node, seq in got:
            last[node] = max(seq, last.get(node, -1))
        logged.append(None if inc.complete else last)
    used: dict[tuple[str, int], int] = {}
    problems = []
    for line in path.read_text().splitlines():
        update = json.loads(line)
        version, attempt = update["version"], int(update.get("attempt", 0))
        for node, slots in update["experience"].items():
            for slot in slots:
                if (node, slot) in used:
                    problems.append(f"experience {node} slot {slot} used by updates "
                                    f"v{used[(node, slot)]} and v{version}")
                used[(node, slot)] = version
            seqs = update.get("message_seq", {}).get(node, [])
            if attempt < len(received):
                upto = logged[attempt]
                for seq in seqs:
                    if upto is not None and seq > upto.get(node, -1):
                        continue
                    if (node, seq) not in received[attempt]:
                        problems.append(f"update v{version} used experience {node} message "
                                        f"seq {seq}, which the controller never received")
    return problems


def _bytes(run_dir: Path, incs: list[Incarnation]) -> list[str]:
    """Per connection (sender -> receiver, both closed cleanly): ZeroMQ keeps each
    connection's order, so every message sent before the last one received must have been
    received, bytes for bytes; messages after it were in flight when the receiver closed."""
    clean = {inc.name for inc in incs} - {inc.name for inc in incs if not inc.complete}
    sent: dict[tuple[str, str], dict[int, tuple[str, int]]] = defaultdict(dict)
    got: dict[tuple[str, str], dict[int, tuple[str, int]]] = defaultdict(dict)
    metered: dict[tuple[str, str, str], int] = defaultdict(int)
    for inc in incs:
        if inc.name not in clean:
            continue
        for _, d, kind, peer, seq, _, nbytes, _ in inc.rows:
            if kind in SETUP:
                continue
            if d == "s":
                metered[(kind, inc.name, peer)] += nbytes
            if kind == BEAT:  # not numbered (seq 0): metered, but not in a connection's order
                continue
            if d == "s":
                sent[(inc.name, peer)][seq] = (kind, nbytes)
            else:
                got[(peer, inc.name)][seq] = (kind, nbytes)
    problems = []
    for src, dst in sorted(set(sent) | set(got)):
        if src not in clean or dst not in clean:
            continue
        received = got.get((src, dst), {})
        last = max(received, default=-1)
        due = {q: v for q, v in sent.get((src, dst), {}).items() if q <= last}
        if due != received:
            missing = sorted(set(due) - set(received))
            extra = sorted(set(received) - set(due))
            differ = sorted(q for q in set(due) & set(received) if due[q] != received[q])
            problems.append(f"{src} -> {dst}: {len(missing)} sent messages never received "
                            f"(seq {missing[:5]}), {len(extra)} received but not logged sent "
                            f"(seq {extra[:5]}), {len(differ)} differing in kind or bytes")
    meter_path = run_dir / "overhead.csv"
    if meter_path.exists():  # a report carries its sender's meter: it cannot count itself
        with meter_path.open(newline="") as f:
            overhead = {(r["kind"], r["sender"], r["receiver"]): int(r["bytes"])
                        for r in csv.DictReader(f)}
        for (kind, src, dst), n in sorted(metered.items()):
            if kind != "report" and overhead.get((kind, src, dst), 0) != n:
                problems.append(f"{kind} {src} -> {dst}: {n} bytes logged sent, "
                                f"{overhead.get((kind, src, dst), 0)} metered")
    return problems
