"""Owner-marked temporary folders (controller/deploy/tempdirs.py), with real processes: a
folder whose owner runs is kept, one whose owner is gone (exited, a zombie, or its pid now
names a process with another start time) is removed, and nothing without a valid marker is
ever touched."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.deploy.tempdirs import (
    MARKER,
    make_tempdir,
    owner_of,
    process_start,
    remove_orphans,
)
from tests.helpers import ROOT

MAKE = ("import sys\n"
        "from controller.deploy.tempdirs import make_tempdir\n"
        "print(make_tempdir('t'), flush=True)\n"
        "sys.stdin.read()\n")
"""A child that makes a marked folder, prints it and runs until its stdin closes."""


class Owner:
    """A child process that made a marked folder in ``tmp``."""

    def __init__(self, tmp: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", MAKE], cwd=ROOT,
                                     env={**os.environ, "TMPDIR": str(tmp)},
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.folder = Path(self.proc.stdout.readline().strip())
        assert self.folder.parent == tmp and self.folder.name.startswith("rrmbed-t-")

    def end(self, reap: bool = True) -> None:
        """Let it exit; ``reap``: wait for it (else it stays a zombie for a while)."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        if reap:
            self.proc.wait(timeout=10)


@pytest.fixture
def owners(tmp_path: Path) -> Iterator[list[Owner]]:
    made: list[Owner] = []
    yield made
    for o in made:
        if o.proc.poll() is None:
            o.proc.kill()
        o.proc.wait()


def owner(tmp: Path, owners: list[Owner]) -> Owner:
    o = Owner(tmp)
    owners.append(o)
    return o


def test_the_marker_names_the_process_and_its_start(tmp_path: Path,
                                                    owners: list[Owner]) -> None:
    o = owner(tmp_path, owners)
    start = process_start(o.proc.pid)
    assert start is not None and start != process_start(os.getpid())
    assert owner_of(o.folder) == (o.proc.pid, start)
    assert (o.folder / MARKER).read_text() == f"{o.proc.pid} {start}\n"
    assert o.folder.stat().st_mode & 0o777 == 0o700
    o.end()
    assert process_start(o.proc.pid) is None  # gone


def test_only_the_folders_of_gone_owners_are_removed(tmp_path: Path,
                                                     owners: list[Owner]) -> None:
    running, exited = owner(tmp_path, owners), owner(tmp_path, owners)
    exited.end()
    assert remove_orphans(tmp_path) == [exited.folder]
    assert running.folder.is_dir() and not exited.folder.exists()
    assert remove_orphans(tmp_path) == []  # a running owner keeps its folder
    running.end()
    assert remove_orphans(tmp_path) == [running.folder]
    assert list(tmp_path.iterdir()) == []


def test_a_zombie_owner_is_gone(tmp_path: Path, owners: list[Owner]) -> None:
    o = owner(tmp_path, owners)
    o.end(reap=False)
    stat = Path(f"/proc/{o.proc.pid}/stat")
    deadline = time.monotonic() + 10
    while stat.read_text().rsplit(")", 1)[1].split()[0] != "Z":  # exited, not yet reaped
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert remove_orphans(tmp_path) == [o.folder]


def test_a_reused_pid_with_another_start_time_is_not_the_owner(tmp_path: Path) -> None:
    """The marker names this (running) process's pid; with its own start time the folder
    is kept, with another one (a process that had the pid before) it is removed."""
    start = process_start(os.getpid())
    assert start is not None
    for name, marked in (("rrmbed-same", start), ("rrmbed-before", start - 1)):
        (tmp_path / name).mkdir(mode=0o700)
        (tmp_path / name / MARKER).write_text(f"{os.getpid()} {marked}\n")
    assert remove_orphans(tmp_path) == [tmp_path / "rrmbed-before"]
    assert (tmp_path / "rrmbed-same").is_dir()


def test_nothing_without_a_valid_marker_is_touched(tmp_path: Path,
                                                   owners: list[Owner]) -> None:
    """Beside a folder of a gone owner (removed: the control), these stay: a folder
    without a marker, with a malformed or not exactly written one, one named otherwise, a
    link to a folder of a gone owner, and a plain file."""
    gone = owner(tmp_path, owners)
    gone.end()
    dead_marker = (gone.folder / MARKER).read_text()
    kept = {
        "rrmbed-unmarked": None,
        "rrmbed-empty": "",
        "rrmbed-junk": "a dead launcher\n",
        "rrmbed-three": dead_marker.strip() + " 7\n",
        "rrmbed-negative": "-" + dead_marker,
        "rrmbed-padded": "0" + dead_marker,
        "other-dead": dead_marker,
    }
    for name, text in kept.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "secret").write_text("keep me")
        if text is not None:
            (tmp_path / name / MARKER).write_text(text)
    target = tmp_path / "target"
    target.mkdir()
    (target / MARKER).write_text(dead_marker)
    (tmp_path / "rrmbed-link").symlink_to(target)
    (tmp_path / "rrmbed-file").write_text(dead_marker)
    assert remove_orphans(tmp_path) == [gone.folder]
    for name in kept:
        assert (tmp_path / name / "secret").read_text() == "keep me", name
    assert (tmp_path / "rrmbed-link").is_symlink() and (target / MARKER).is_file()
    assert (tmp_path / "rrmbed-file").is_file()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a folder to another user")
def test_another_users_folder_is_never_removed(tmp_path: Path, owners: list[Owner]) -> None:
    gone, control = owner(tmp_path, owners), owner(tmp_path, owners)
    gone.end()
    control.end()
    os.chown(gone.folder, 12345, 12345)
    assert remove_orphans(tmp_path) == [control.folder]
    assert owner_of(gone.folder) is None and (gone.folder / MARKER).is_file()
    shutil.rmtree(gone.folder)


def test_make_tempdir_marks_this_process(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    folder = make_tempdir("keys")
    assert folder.parent == tmp_path and folder.name.startswith("rrmbed-keys-")
    assert owner_of(folder) == (os.getpid(), process_start(os.getpid()))
    assert remove_orphans(tmp_path) == [] and folder.is_dir()
