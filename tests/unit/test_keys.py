"""The run's CURVE key directory (protocols.keys)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import zmq

from protocols.keys import KeysError, load_keys, write_keys


def test_keys_round_trip_private_files_and_names(tmp_path: Path) -> None:
    d = tmp_path / "k"
    write_keys(d, ["controller", "node-0"])
    assert d.stat().st_mode & 0o777 == 0o700
    ring = load_keys(d, "node-0")
    assert ring.name == "node-0" and set(ring.publics) == {"controller", "node-0"}
    assert zmq.curve_public(ring.secret) == ring.public  # an independent derivation
    assert (d / "node-0.secret").stat().st_mode & 0o777 == 0o600
    with pytest.raises(KeysError, match="already holds keys"):
        write_keys(d, ["x"])


def test_bad_key_directories_are_named(tmp_path: Path) -> None:
    d = tmp_path / "k"
    write_keys(d, ["a", "b"])
    with pytest.raises(KeysError, match="'c'"):
        load_keys(d, "c")
    with pytest.raises(KeysError, match="does not match"):
        (d / "a.secret").write_bytes((d / "b.secret").read_bytes())
        load_keys(d, "a")
    publics = json.loads((d / "public.json").read_text())
    (d / "public.json").write_text(json.dumps({**publics, "b": "short"}))
    with pytest.raises(KeysError, match="40 z85"):
        load_keys(d, "b")
    with pytest.raises(KeysError, match="keys of 'a'"):
        load_keys(tmp_path / "missing", "a")
