"""Private temporary folders that a killed process does not leave behind for good.

The network launcher and the brokers it starts keep a run's state in folders under
:func:`tempfile.gettempdir`: the run's CURVE secrets and broker logins (``rrmbed-keys-*``),
the broker's config and log (``rrmbed-mosquitto-*``, ``rrmbed-amqtt-*``) and the ipc
sockets (``rrmbed-ipc-*``). Their owner removes them when it ends; a SIGKILLed one cannot.

So :func:`make_tempdir` writes an owner marker into each folder it makes: the pid of the
process that made it and that process's start time (field 22 of ``/proc/<pid>/stat``, clock
ticks since boot), so a later process that happens to get the same pid is not taken for the
owner. :func:`remove_orphans`, called when a launcher starts, removes every ``rrmbed-*``
folder of the temporary directory whose owner is gone: no such process, a zombie, or one
with another start time. A folder is removed only when its marker says so: a folder
without a well-formed marker, a symbolic link, or one that belongs to another user is never
touched. Without ``/proc`` (not Linux) no marker is written, and nothing is ever removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from pathlib import Path

PREFIX = "rrmbed-"
"""What the names of the folders made here (and the only ones ever removed) start with."""
MARKER = ".rrmbed-owner"
"""The owner marker inside such a folder: ``"<pid> <start time>\\n"``."""

Owner = tuple[int, int]
"""A process: its pid and its start time (clock ticks since boot)."""


def process_start(pid: int) -> int | None:
    """The start time of process ``pid`` (``/proc/<pid>/stat`` field 22); None when there
    is no such process, it is a zombie (it ran its course), or there is no ``/proc``."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # field 3 (state) on; comm may hold spaces
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def alive(owner: Owner) -> bool:
    """Whether ``owner`` still runs: its pid exists with the same start time."""
    pid, start = owner
    return process_start(pid) == start


def make_tempdir(kind: str) -> Path:
    """A new private folder ``rrmbed-<kind>-XXXXXXXX`` (mode 0700) in the temporary
    directory, marked as this process's (module docstring)."""
    path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{kind}-"))
    pid = os.getpid()
    start = process_start(pid)
    if start is not None:
        tmp = path / f"{MARKER}.tmp"
        tmp.write_text(f"{pid} {start}\n")
        os.replace(tmp, path / MARKER)  # a reader sees a whole marker or none
    return path


def owner_of(folder: Path) -> Owner | None:
    """The owner that ``folder``'s marker names; None unless ``folder`` is a directory of
    this user (not a link) holding a well-formed marker."""
    try:
        st = os.lstat(folder)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
            return None
        fd = os.open(folder / MARKER, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as f:
            text = f.read(64).decode("ascii")
        pid, start = (int(word) for word in text.split())
    except (OSError, ValueError):
        return None
    if pid <= 0 or start < 0 or text != f"{pid} {start}\n":
        return None
    return pid, start


def remove_orphans(directory: Path | None = None) -> list[Path]:
    """Remove every ``rrmbed-*`` folder of ``directory`` (default: the temporary directory)
    whose marker names a process that no longer runs; the folders removed."""
    root = Path(tempfile.gettempdir()) if directory is None else directory
    removed = []
    with contextlib.suppress(OSError):
        for folder in sorted(root.glob(PREFIX + "*")):
            owner = owner_of(folder)
            if owner is None or alive(owner):
                continue
            shutil.rmtree(folder, ignore_errors=True)  # another launcher may race us to it
            if not os.path.lexists(folder):
                removed.append(folder)
    return removed
