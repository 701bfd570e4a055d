"""CURVE keys of a run: one key pair per process.

A key directory holds ``public.json`` (process name -> z85 public key, every process of the
run) and one ``<name>.secret`` per process (its z85 secret key, mode 0600). A process reads
the public file and its own secret: it serves its inbox as a CURVE server that lets in only
the run's keys (ZAP, :mod:`protocols.transport`), and connects to each peer with the peer's
public key, so it talks only to the processes it was given.

Each process also logs in to the run's MQTT telemetry broker with its name as user name and
a password derived from its secret key (:func:`mqtt_password`), so the key directory is all a
process needs; the broker's side (password file, ACL) is written next to the keys by
:mod:`controller.deploy.broker`.

``rrmbed keys DIR --scenario FILE`` writes a directory for compose or multi-host
deployments; the launcher makes a fresh one per run.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path

import zmq

PUBLIC_FILE = "public.json"
MQTT_LABEL = b"rrmbed mqtt password v1"
"""What :func:`mqtt_password` authenticates with the secret key (domain separation)."""


def mqtt_password(secret: bytes) -> str:
    """The MQTT password of the process whose z85 secret key is ``secret``.

    HMAC-SHA256 keyed with the secret over :data:`MQTT_LABEL`, URL-safe base64 without
    padding (43 characters, 256 bits). One-way: MQTT without TLS shows the password to
    whoever sniffs the broker's network, and that reveals nothing of the CURVE secret.
    """
    digest = hmac.new(secret, MQTT_LABEL, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class KeysError(ValueError):
    """A key directory is missing, unreadable or inconsistent."""


@dataclass(frozen=True)
class KeyRing:
    """One process's view of the run's keys."""

    name: str
    public: bytes
    """Own z85 public key."""
    secret: bytes
    """Own z85 secret key."""
    publics: dict[str, bytes]
    """Every process of the run: name -> z85 public key."""

    @property
    def mqtt_password(self) -> str:
        """This process's telemetry broker password (user name: ``name``)."""
        return mqtt_password(self.secret)


def write_keys(directory: Path, names: list[str]) -> None:
    """A fresh key pair for each of ``names`` into ``directory`` (created 0700; secrets
    0600). Refuses a directory that already holds keys."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    if (directory / PUBLIC_FILE).exists():
        raise KeysError(f"{directory} already holds keys ({PUBLIC_FILE}); use a new directory")
    publics: dict[str, str] = {}
    for name in names:
        public, secret = zmq.curve_keypair()
        path = directory / f"{name}.secret"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secret)
        publics[name] = public.decode("ascii")
    (directory / PUBLIC_FILE).write_text(json.dumps(publics, indent=2, sort_keys=True) + "\n")


def load_keys(directory: Path, name: str) -> KeyRing:
    """Process ``name``'s keys from ``directory`` (KeysError naming what is wrong)."""
    try:
        publics = json.loads((directory / PUBLIC_FILE).read_text())
        secret = (directory / f"{name}.secret").read_bytes().strip()
    except (OSError, ValueError) as e:
        raise KeysError(f"keys of {name!r} in {directory}: {e}") from None
    if not isinstance(publics, dict) or name not in publics:
        raise KeysError(f"{directory / PUBLIC_FILE} has no public key for {name!r}")
    try:
        keys = {str(n): str(k).encode("ascii") for n, k in publics.items()}
        derived = zmq.curve_public(secret)
    except (ValueError, zmq.ZMQError, UnicodeError) as e:
        raise KeysError(f"keys of {name!r} in {directory}: not z85 CURVE keys ({e})") from None
    if any(len(k) != 40 for k in keys.values()):
        raise KeysError(f"{directory / PUBLIC_FILE}: a public key is not 40 z85 characters")
    if derived != keys[name]:
        raise KeysError(f"{name}.secret in {directory} does not match its public key")
    return KeyRing(name, keys[name], secret, keys)
