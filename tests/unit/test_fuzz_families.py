"""The live fuzzer's frames (controller.bench.fuzz) are what they claim to be, checked
with the codec itself, and the reason counts that receive them stay bounded."""

from __future__ import annotations

from collections import Counter

import pytest

from controller.bench.fuzz import FAMILIES, frames
from protocols.codec import decode
from protocols.errors import MAX_REASONS, ProtocolError, count_reason, reason_of
from protocols.names import NODES

NAMES = ["controller", "channel-server", "node-0", "node-1", "node-2"]
ME = "node-2"
REFUSED_BY_CODEC = {"garbage", "truncated", "nested", "huge_shape", "wrong_type",
                    "unknown_kind", "wrong_schema"}


def test_families_are_drawn_from_the_seed() -> None:
    a, b, c = frames(3, 400, ME, NAMES), frames(3, 400, ME, NAMES), frames(4, 400, ME, NAMES)
    assert a == b and a != c
    assert set(Counter(f for f, _ in a)) == set(FAMILIES)  # every family drawn


@pytest.mark.parametrize("seed", range(3))
def test_every_frame_is_one_a_receiver_must_drop(seed: int) -> None:
    for family, parts in frames(seed, 1000, ME, NAMES):
        if family == "multipart":
            assert len(parts) >= 2  # the transport drops any message of several parts
            continue
        (frame,) = parts
        if family in REFUSED_BY_CODEC:
            with pytest.raises(ProtocolError):
                decode(frame)
            continue
        msg = decode(frame)  # well-formed: the sender check or the role must refuse it
        if family == "forged_sender":
            assert msg.sender != ME and msg.sender in NAMES
        else:
            assert family == "forbidden_kind"
            assert msg.sender == ME and NODES not in msg.SENDERS


def test_reasons_blank_what_varies_and_stay_bounded() -> None:
    assert reason_of("frame of 12 bytes > 9.5") == reason_of("frame of 7 bytes > 1") == (
        "frame of N bytes > N")
    assert reason_of("unknown message kind 'abc'") == "unknown message kind '…'"
    counts: dict[str, int] = {}
    for i in range(MAX_REASONS + 5):
        count_reason(counts, "x" * (i + 1))
    assert len(counts) == MAX_REASONS + 1 and counts["other reasons"] == 5
