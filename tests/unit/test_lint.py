"""The house rules as tests: ruff clean everywhere, mypy --strict on the pure layers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def test_ruff_is_clean() -> None:
    r = subprocess.run([str(BIN / "ruff"), "check", "."], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_strict_on_protocols_and_channel_server() -> None:
    r = subprocess.run([str(BIN / "mypy"), "protocols", "channel_server"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def test_no_pickle_on_the_wire() -> None:
    hits = [p for d in ("protocols", "node", "channel_server", "controller")
            for p in (ROOT / d).rglob("*.py")
            if any(w in p.read_text() for w in ("send_pyobj", "recv_pyobj", "pickle.loads"))]
    assert hits == []
