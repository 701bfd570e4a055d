"""The history checker finds each violation it is meant to, on hand-written histories (a
checker that finds nothing proves nothing), and none on a consistent one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller.evaluation.history import check
from protocols.history import COLUMNS, HistoryLog

Row = tuple[str, str, str, int, int, int, int]
"""(dir, kind, peer, seq, slot, bytes, version)."""


def write(run: Path, name: str, pid: int, rows: list[Row], complete: bool = True) -> None:
    folder = run / "history"
    folder.mkdir(parents=True, exist_ok=True)
    lines = [",".join(COLUMNS)]
    lines += [f"{1000 + i},{d},{k},{p},{q},{s},{b},{v}" for i, (d, k, p, q, s, b, v)
              in enumerate(rows)]
    if complete:
        lines.append(f"{9999},s,end,,0,-1,0,0")
    (folder / f"{name}.{pid}.csv").write_text("\n".join(lines) + "\n")


def consistent(run: Path) -> None:
    """controller deploys v1 for slot 2; node-0 decides slots 0..3 (v0, v0, v1, v1) and
    sends two experiences; the air and the node exchange slices and transmissions."""
    write(run, "controller", 1, [
        ("r", "experience", "node-0", 4, 0, 50, 0),
        ("r", "experience", "node-0", 6, 1, 50, 0),
        ("s", "weights", "node-0", 1, 2, 300, 1),
        ("r", "weights_ack", "node-0", 7, 2, 20, 1)])
    write(run, "node-0", 2, [
        ("r", "csi_slice", "channel-server", 1, 0, 100, 0),
        ("s", "transmit", "channel-server", 3, 0, 80, 0),
        ("s", "experience", "controller", 4, 0, 50, 0),
        ("r", "csi_slice", "channel-server", 2, 1, 100, 0),
        ("s", "transmit", "channel-server", 5, 1, 80, 0),
        ("s", "experience", "controller", 6, 1, 50, 0),
        ("r", "weights", "controller", 1, 2, 300, 0),
        ("s", "weights_ack", "controller", 7, 2, 20, 1),
        ("r", "csi_slice", "channel-server", 3, 2, 100, 1),
        ("s", "transmit", "channel-server", 8, 2, 80, 1)])
    write(run, "channel-server", 3, [
        ("s", "csi_slice", "node-0", 1, 0, 100, 0),
        ("r", "transmit", "node-0", 3, 0, 80, 0),
        ("s", "csi_slice", "node-0", 2, 1, 100, 0),
        ("r", "transmit", "node-0", 5, 1, 80, 0),
        ("s", "csi_slice", "node-0", 3, 2, 100, 0),
        ("r", "transmit", "node-0", 8, 2, 80, 0)])
    (run / "updates.jsonl").write_text(json.dumps(
        {"version": 1, "slots": [0, 1], "attempt": 0, "experience": {"node-0": [0, 1]},
         "message_seq": {"node-0": [4, 6]}}) + "\n")


def test_a_consistent_history_passes(tmp_path: Path) -> None:
    consistent(tmp_path)
    assert check(tmp_path) == []


def test_no_history_is_a_finding(tmp_path: Path) -> None:
    assert "no history" in check(tmp_path)[0]


def edit(run: Path, name: str, old: str, new: str) -> None:
    (path,) = (run / "history").glob(f"{name}.*.csv")
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(("name", "old", "new", "words"), [
    # the node's version goes back to 0 after it held 1
    ("node-0", "3,2,100,1", "3,2,100,0", ("version went from 1 down to 0",)),
    # a decision in slot 2 with v0 although v1 was sent for slot 2
    ("node-0", "8,2,80,1\n", "8,2,80,1\n1099,s,transmit,channel-server,9,3,80,0\n",
     ("decided slot 3 with weights v0", "v1 had been sent")),
    # a slice the air sent never reached the node (the one before it did)
    ("node-0", "1003,r,csi_slice,channel-server,2,1,100,0\n", "",
     ("channel-server -> node-0: 1 sent messages never received", "seq [2]")),
    # bytes changed on the way
    ("channel-server", "3,0,80,0", "3,0,81,0", ("node-0 -> channel-server", "differing")),
])
def test_each_violation_is_found(tmp_path: Path, name: str, old: str, new: str,
                                 words: tuple[str, ...]) -> None:
    consistent(tmp_path)
    edit(tmp_path, name, old, new)
    problems = check(tmp_path)
    assert len(problems) >= 1, problems
    assert any(all(w in p for w in words) for p in problems), problems


def test_experience_used_twice_or_never_received_is_found(tmp_path: Path) -> None:
    consistent(tmp_path)
    with (tmp_path / "updates.jsonl").open("a") as f:
        f.write(json.dumps({"version": 2, "slots": [1, 2], "attempt": 0,
                            "experience": {"node-0": [1, 2]},
                            "message_seq": {"node-0": [6, 11]}}) + "\n")
    problems = check(tmp_path)
    assert any("slot 1 used by updates v1 and v2" in p for p in problems), problems
    assert any("message seq 11, which the controller never received" in p for p in problems)


def test_the_meter_must_agree(tmp_path: Path) -> None:
    consistent(tmp_path)
    (tmp_path / "overhead.csv").write_text(
        "kind,plane,sender,receiver,messages,bytes,setup_bytes,bytes_per_slot\n"
        "transmit,air,node-0,channel-server,3,240,0,80\n")
    problems = check(tmp_path)
    assert problems and all("metered" in p for p in problems)
    assert not any("transmit node-0 -> channel-server" in p for p in problems)  # 240 agrees


def test_a_killed_process_is_not_held_to_the_end(tmp_path: Path) -> None:
    consistent(tmp_path)
    # node-0 killed: its file has no end row and lost its last rows; the air's slices to it
    # and its transmissions are no longer compared
    write(tmp_path, "node-0", 2, [("r", "csi_slice", "channel-server", 1, 0, 100, 0)],
          complete=False)
    assert check(tmp_path) == []


def test_history_log_writes_what_the_checker_reads(tmp_path: Path) -> None:
    log = HistoryLog(tmp_path / "history", "node-0", lambda: 3)
    log.row("s", "transmit", "channel-server", 1, 0, 80)
    log.row("r", "csi_slice", "bad,name\n", 2, 0, 100)  # a forged sender cannot break rows
    log.close()
    (path,) = (tmp_path / "history").glob("node-0.*.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(COLUMNS) and len(lines) == 4
    assert lines[1].split(",")[1:] == ["s", "transmit", "channel-server", "1", "0", "80", "3"]
    assert lines[2].split(",")[3] == "bad_name_" and lines[3].split(",")[2] == "end"
