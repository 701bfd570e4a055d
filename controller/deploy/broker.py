"""Find or start the MQTT broker for telemetry; loopback only. Who may use it.

``ensure_broker(preferred, auth=...)`` returns ``(url, handle)``:

1. ``preferred`` given and accepting TCP connections: use it (nothing started);
2. else a ``mosquitto`` binary installed: start it from a temporary config with
   ``listener PORT 127.0.0.1`` (port 1883 when free, else a random free port);
   with ``auth`` it lets in only the users of ``auth``'s password file, each limited
   by its ACL (``allow_anonymous false``); without, anyone on loopback;
3. else, without ``auth`` only, ``amqtt`` importable: start it in a child process
   (``python -m controller.deploy.broker --amqtt-port PORT``), bound to 127.0.0.1,
   anonymous (it is not given the per-process ACL, so a run with keys does not use it);
4. else ``(None, handle)``: telemetry is disabled, the run goes on.

``handle.stop()`` stops what was started (nothing for an external broker). A
broker started here never listens on a non-loopback address, and dies with the
process that started it (PR_SET_PDEATHSIG, Linux): a SIGKILLed launcher leaves
no broker holding the port. Its config and log live in a temporary folder
(:func:`controller.deploy.tempdirs.make_tempdir`) that ``stop()`` removes, and
that the next launcher removes when the process that started the broker was killed.

The broker side of a run's credentials (:func:`write_broker_auth`, next to the
CURVE keys of :mod:`protocols.keys`, by ``rrmbed keys`` and the launcher):

- ``mosquitto.passwd`` (0600): one user per process, its name, with the password
  derived from its secret key (:func:`protocols.keys.mqtt_password`), and the user
  ``watch``; mosquitto 2 PBKDF2-SHA512 hashes (:func:`hash_password`);
- ``mosquitto.acl``: each process may write only ``rrmbed/+/<role>/<id>/#`` of its
  own ``(role, id)`` (:func:`protocols.telemetry.process_levels`) and read nothing;
  ``watch`` may read ``rrmbed/#`` and write nothing;
- ``watch.password`` (0600): the ``watch`` user's random password, for
  ``rrmbed watch --keys DIR``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import ctypes
import functools
import hashlib
import importlib.util
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from controller.deploy.tempdirs import make_tempdir
from protocols.keys import KeysError, load_keys
from protocols.telemetry import (
    DEFAULT_PORT,
    TOPIC_ROOT,
    MqttLogin,
    broker_url,
    parse_broker_url,
    process_levels,
)

LOG = logging.getLogger("rrmbed.broker")

LOOPBACK = "127.0.0.1"
MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/bin/mosquitto", "/usr/local/sbin/mosquitto")
BrokerKind = Literal["external", "mosquitto", "amqtt", "none"]

PASSWORD_FILE = "mosquitto.passwd"
"""The broker's password file in a key directory."""
ACL_FILE = "mosquitto.acl"
"""The broker's access control list in a key directory."""
WATCH_USER = "watch"
"""The read-only user of ``rrmbed watch``."""
WATCH_PASSWORD_FILE = "watch.password"
"""The ``watch`` user's password in a key directory (mode 0600)."""
PBKDF2_ITERATIONS = 101
"""Iterations of a ``$7$`` hash: what ``mosquitto_passwd`` (2.0) writes."""


# --------------------------------------------------------------------------- credentials


def hash_password(password: str, salt: bytes | None = None,
                  iterations: int = PBKDF2_ITERATIONS) -> str:
    """A mosquitto 2 password-file hash of ``password``, as ``mosquitto_passwd`` writes it:
    ``$7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512>`` (12-byte salt, random
    unless given; 64-byte key)."""
    salt = secrets.token_bytes(12) if salt is None else salt
    key = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, 64)
    return (f"$7${iterations}${base64.b64encode(salt).decode('ascii')}"
            f"${base64.b64encode(key).decode('ascii')}")


def acl_text(processes: Sequence[str]) -> str:
    """The mosquitto ACL: each process writes only its own telemetry topics, ``watch``
    reads every run's (module docstring). Nothing is granted to anyone else."""
    lines = ["# rrmbed telemetry: each process writes only its own topics; watch only reads"]
    for name in processes:
        role, ident = process_levels(name)
        lines += ["", f"user {name}", f"topic write {TOPIC_ROOT}/+/{role}/{ident}/#"]
    lines += ["", f"user {WATCH_USER}", f"topic read {TOPIC_ROOT}/#"]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class BrokerAuth:
    """The files a broker needs to let in only a run's processes and its watchers."""

    password_file: Path
    """mosquitto password file: one ``user:$7$...`` line per user."""
    acl_file: Path
    """mosquitto ACL file."""

    @classmethod
    def of(cls, directory: Path) -> BrokerAuth:
        """The broker files of key directory ``directory`` (KeysError if missing)."""
        auth = cls(directory / PASSWORD_FILE, directory / ACL_FILE)
        for path in (auth.password_file, auth.acl_file, directory / WATCH_PASSWORD_FILE):
            if not path.is_file():
                raise KeysError(f"{directory} has no {path.name} (written by `rrmbed keys` "
                                "since the telemetry broker has logins): make a new key "
                                "directory")
        return auth


def _write_private(path: Path, text: str, mode: int = 0o600) -> None:
    """A new file holding ``text``, created with ``mode`` (refuses an existing one)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise KeysError(f"{path} exists already; use a new key directory") from None
    with os.fdopen(fd, "w") as f:
        f.write(text)


def write_broker_auth(directory: Path, processes: Sequence[str]) -> BrokerAuth:
    """The broker files (module docstring) for ``processes``, whose keys ``directory``
    holds already (:func:`protocols.keys.write_keys`); a fresh ``watch`` password."""
    if WATCH_USER in processes:
        raise KeysError(f"a process may not be named {WATCH_USER!r}")
    users: dict[str, str] = {name: load_keys(directory, name).mqtt_password
                             for name in processes}
    watch_password = secrets.token_urlsafe(32)
    users[WATCH_USER] = watch_password
    _write_private(directory / WATCH_PASSWORD_FILE, watch_password + "\n")
    _write_private(directory / PASSWORD_FILE, password_file_text(users))
    _write_private(directory / ACL_FILE, acl_text(processes), 0o644)
    return BrokerAuth.of(directory)


def password_file_text(users: Mapping[str, str]) -> str:
    """mosquitto password file lines ``user:hash`` for ``users`` (name -> password)."""
    for name in users:
        if not name or any(c in name for c in ":\n\0"):
            raise ValueError(f"MQTT user name {name!r} is not usable in a password file")
    return "".join(f"{name}:{hash_password(pw)}\n" for name, pw in users.items())


def watch_login(directory: Path) -> MqttLogin:
    """The ``watch`` user's login from key directory ``directory`` (KeysError if none)."""
    path = directory / WATCH_PASSWORD_FILE
    try:
        password = path.read_text().strip()
    except OSError as e:
        raise KeysError(f"no watch password: {path}: {e.strerror or e}") from None
    if not password:
        raise KeysError(f"{path} is empty")
    return MqttLogin(WATCH_USER, password)


# --------------------------------------------------------------------------- brokers


def die_with_parent(parent: int) -> None:  # pragma: no cover - runs in the child
    """In a child between fork and exec: SIGTERM when the thread that forked it dies
    (PR_SET_PDEATHSIG, Linux; nothing elsewhere); SIGTERM now if ``parent`` (its pid) is
    gone already, a death the kernel would not report."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)


@dataclass
class BrokerHandle:
    """What ``ensure_broker`` found or started; ``stop()`` undoes the starting."""

    url: str | None
    """Broker URL, ``mqtt://host:port``; None when no broker could be had."""
    kind: BrokerKind
    """``external`` (found running), ``mosquitto`` / ``amqtt`` (started here), ``none``."""
    process: subprocess.Popen[bytes] | None = None
    """The broker process started here, if any."""
    log_path: Path | None = None
    """Its stdout/stderr log, inside a temporary directory removed by ``stop()``."""
    _tmp: Path | None = field(default=None, repr=False)
    """That directory (:func:`controller.deploy.tempdirs.make_tempdir`: a later launcher
    removes it if this process is killed before ``stop()``)."""

    def stop(self, timeout_s: float = 5.0) -> None:
        """Terminate a broker started here (SIGTERM, SIGKILL after ``timeout_s``); idempotent."""
        proc, self.process = self.process, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout_s)
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def reachable(url: str, timeout_s: float = 0.5) -> bool:
    """Whether the broker URL's host:port accepts a TCP connection within ``timeout_s``."""
    try:
        host, port = parse_broker_url(url)
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False


def find_mosquitto() -> str | None:
    """Path of the mosquitto binary (PATH, then the Debian locations), or None."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((p for p in MOSQUITTO_PATHS if os.access(p, os.X_OK)), None)


def amqtt_available() -> bool:
    """Whether the embedded broker package ``amqtt`` can be imported."""
    return importlib.util.find_spec("amqtt") is not None


def ensure_broker(
    preferred: str | None,
    *,
    auth: BrokerAuth | None = None,
    port: int | None = None,
    use_mosquitto: bool = True,
    use_amqtt: bool = True,
    start_timeout_s: float = 10.0,
) -> tuple[str | None, BrokerHandle]:
    """A usable broker URL and the handle that stops what was started (module docstring).

    ``auth``: the broker started here lets in only its users (None: anyone, on loopback);
    an external ``preferred`` broker is used as it is configured. ``port``: the one port
    to start it on (default: 1883 when free, else random free ones).
    """
    if preferred is not None:
        if reachable(preferred):
            return preferred, BrokerHandle(url=preferred, kind="external")
        LOG.warning("MQTT broker %s is not reachable; starting a local one", preferred)
    starters: list[tuple[BrokerKind, list[str]]] = []
    mosquitto = find_mosquitto() if use_mosquitto else None
    if mosquitto is not None:
        starters.append(("mosquitto", [mosquitto, "-c", "{conf}"]))
    if use_amqtt and auth is not None and mosquitto is None and amqtt_available():
        LOG.warning("not starting the embedded amqtt broker: it would let anyone in, and "
                    "this run's telemetry has logins (install mosquitto, or pass --broker)")
    elif use_amqtt and amqtt_available():
        starters.append(("amqtt", [sys.executable, "-m", "controller.deploy.broker",
                                  "--amqtt-port"]))
    for kind, argv in starters:
        for candidate in _candidate_ports() if port is None else [port]:
            started = _start(kind, argv, candidate, start_timeout_s, auth)
            if started is not None:
                LOG.info("started %s MQTT broker at %s", kind, started.url)
                return started.url, started
    LOG.warning("no MQTT broker available (no mosquitto%s): telemetry disabled",
                "" if auth is not None else ", no amqtt")
    return None, BrokerHandle(url=None, kind="none")


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def _candidate_ports() -> list[int]:
    """1883 when free (so ``rrmbed watch`` finds it by default), then random free ports."""
    ports = [DEFAULT_PORT] if _port_free(DEFAULT_PORT) else []
    return ports + [_free_loopback_port() for _ in range(2)]


def mosquitto_conf(port: int, auth: BrokerAuth | None) -> str:
    """The config of a mosquitto started here: loopback ``port``, no persistence, log to
    stderr; with ``auth`` its users only (no anonymous access), without it anyone."""
    if auth is None:
        access = "allow_anonymous true\n"
    else:
        access = ("allow_anonymous false\n"
                  f"password_file {auth.password_file.resolve()}\n"
                  f"acl_file {auth.acl_file.resolve()}\n")
        if os.geteuid() == 0:  # stay the launcher's user, who alone can read the files
            access += "user root\n"
    return (f"listener {port} {LOOPBACK}\n{access}"
            "persistence false\n"
            "log_dest stderr\n"
            "log_type error\nlog_type warning\nlog_type notice\n")


def _start(kind: BrokerKind, argv: list[str], port: int, timeout_s: float,
           auth: BrokerAuth | None) -> BrokerHandle | None:
    workdir = make_tempdir(kind)
    log_path = workdir / "broker.log"
    if kind == "mosquitto":
        conf = workdir / "mosquitto.conf"
        conf.write_text(mosquitto_conf(port, auth))
        cmd = [a.replace("{conf}", str(conf)) for a in argv]
    else:
        cmd = [*argv, str(port)]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            preexec_fn=functools.partial(die_with_parent, os.getpid()),
        )
    handle = BrokerHandle(
        url=broker_url(LOOPBACK, port), kind=kind, process=proc, log_path=log_path, _tmp=workdir
    )
    deadline = time.monotonic() + timeout_s
    while not reachable(handle.url or "", timeout_s=0.2):
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = log_path.read_text(errors="replace")[-1000:]
            LOG.warning("%s on port %d did not start: %s", kind, port, tail)
            handle.stop()
            return None
        time.sleep(0.02)
    return handle


# --------------------------------------------------------------------------- embedded broker


async def _serve_amqtt(port: int) -> None:
    from amqtt.broker import Broker  # optional dependency, child process only

    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"{LOOPBACK}:{port}"}},
        "plugins": {
            "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
        },
    }
    broker = Broker(config)
    await broker.start()
    try:
        await asyncio.Event().wait()  # until SIGTERM / SIGINT
    finally:
        await broker.shutdown()


def _amqtt_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="embedded amqtt broker on 127.0.0.1")
    parser.add_argument("--amqtt-port", type=int, required=True)
    args = parser.parse_args(argv)
    import signal

    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_amqtt(args.amqtt_port))
    return 0


if __name__ == "__main__":
    sys.exit(_amqtt_main())
