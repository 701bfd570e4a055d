"""Issue 12 point 7, at test scale: ``rrmbed bench fuzz`` against a running CURVE network
(the 10^5-frame figures are in the README's benchmark list). Every frame sent is counted
by the process it reached, no process dies, none grows by 50 MB."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import S3, rrmbed

FRAMES = 2000


def test_live_fuzz_counts_every_frame_and_no_process_falls(tmp_path: Path) -> None:
    out = tmp_path / "fuzz.json"
    done = rrmbed("bench", "fuzz", str(S3), "--frames", str(FRAMES), "--slots", "600",
                  "--seed", "3", "--json", str(out), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "every frame counted" in done.stdout
    figures = json.loads(out.read_text())
    assert set(figures) == {"controller", "channel-server", "node-0", "node-1", "node-2"}
    sent = 0
    for name, f in figures.items():
        n = sum(f["sent"].values())
        counted = sum(sum(r.values()) for r in f["counted"].values())
        assert n > 0 and counted == n, (name, f)
        assert f["alive"] and f["oversized"] == 3, (name, f)
        assert f["rss_after_mb"] - f["rss_before_mb"] < 50, (name, f)
        sent += n + f["timed_out"]
    assert sent == FRAMES
    # the transport dropped what did not decode; the roles rejected what did
    assert all(f["counted"]["dropped"] for f in figures.values())
    assert all(f["counted"]["rejected"] for f in figures.values())
