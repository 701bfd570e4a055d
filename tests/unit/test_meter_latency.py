"""Overhead meter (ZMTP framing, merge, csv) and latency/loss models, clocks, chain accounting."""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from channel_server.config import LinkLatencyConfig
from protocols.codec import encode
from protocols.latency import (
    ComputeClock,
    FastClock,
    LinkModel,
    LinkParams,
    RealtimeClock,
    after_compute,
    after_link,
    is_miss,
    make_clock,
)
from protocols.messages import Error, Heartbeat, Weights
from protocols.meter import FRAMING_LONG, FRAMING_SHORT, Meter, wire_size

N = 10_000

# --------------------------------------------------------------------------- meter


def error_frame_of_length(target: int) -> bytes:
    """An encoded Error message whose frame is exactly ``target`` bytes."""
    for n in range(target):
        frame = encode(Error("x" * n, sender="node-0", seq=1, slot=0))
        if len(frame) == target:
            return frame
    raise AssertionError(f"no frame of {target} bytes")


def test_framing_constants_follow_zmtp3() -> None:
    # RFC 23 (ZMTP/3): flags octet + 1-octet size up to 255, flags + 8-octet size above.
    assert (FRAMING_SHORT, FRAMING_LONG) == (1 + 1, 1 + 8)
    assert [wire_size(n) for n in (0, 1, 255, 256, 10_000)] == [2, 3, 257, 265, 10_009]


def test_meter_counts_encoded_frames_plus_framing() -> None:
    short = encode(Heartbeat(sender="node-0", seq=1, slot=3))
    edge, over = error_frame_of_length(255), error_frame_of_length(256)
    big = encode(Weights(1, ["w"], [np.zeros(1000)], sender="controller", slot=3))
    assert len(short) < 255 and len(big) > 8000
    meter = Meter()
    for kind, frame in (("heartbeat", short), ("error", edge), ("error", over), ("weights", big)):
        meter.record(kind, "control", "node-0", "controller", 3, wire_size(len(frame)))
    totals = meter.totals()
    assert totals[("heartbeat", "control", "node-0", "controller")] == (1, len(short) + 2)
    assert totals[("error", "control", "node-0", "controller")] == (2, 255 + 2 + 256 + 9)
    assert totals[("weights", "control", "node-0", "controller")] == (1, len(big) + 9)


def make_meter(offset: int) -> Meter:
    meter = Meter()
    meter.record("power_forward", "backhaul", "node-0", "node-1", 0, 100 + offset)
    meter.record("power_forward", "backhaul", "node-0", "node-1", 1, 110 + offset)
    meter.record("csi_slice", "air", "channel-server", "node-0", 1, 300)
    meter.record("hello", "control", "node-0", "controller", -1, 50)
    return meter


def test_merge_of_two_reports_sums() -> None:
    a, b = make_meter(0), make_meter(5)
    total = Meter()
    total.merge(a.rows())
    total.merge(b.rows())
    t = total.totals()
    assert t[("power_forward", "backhaul", "node-0", "node-1")] == (4, 100 + 110 + 105 + 115)
    assert t[("csi_slice", "air", "channel-server", "node-0")] == (2, 600)
    assert t[("hello", "control", "node-0", "controller")] == (2, 100)
    assert total.totals("setup") == {("hello", "control", "node-0", "controller"): (2, 100)}
    slots = total.per_slot()
    assert slots[0] == {"backhaul": (2, 205)}
    assert slots[1] == {"backhaul": (2, 225), "air": (2, 600)}
    assert slots[-1] == {"control": (2, 100)}
    assert total.plane_totals() == {"backhaul": (4, 430), "air": (2, 600), "control": (2, 100)}


@pytest.mark.parametrize(
    "row",
    [
        ["link", "run", "k", "backhaul", "a", "b", 1],
        ["link", "later", "k", "backhaul", "a", "b", 1, 2],
        ["link", "run", "k", "backhaul", "a", "b", -1, 2],
        ["slot", "0", "air", 1, 2],
        ["slot", 0, "air", 1.0, 2],
        ["other"],
    ],
)
def test_merge_refuses_malformed_rows(row: list[object]) -> None:
    with pytest.raises(ValueError, match="malformed meter row"):
        Meter().merge([row])


def test_overhead_csv(tmp_path: Path) -> None:
    path = tmp_path / "overhead.csv"
    make_meter(0).to_csv(path, slots=2)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [
        "kind", "plane", "sender", "receiver", "messages", "bytes", "setup_bytes", "bytes_per_slot",
        "header_bytes", "payload_bytes", "framing_bytes", "header_bytes_per_slot",
        "payload_bytes_per_slot",
    ]  # fmt: skip
    by_kind = {r["kind"]: r for r in rows}
    assert by_kind["power_forward"]["messages"] == "2"
    assert by_kind["power_forward"]["bytes"] == "210"
    assert float(by_kind["power_forward"]["bytes_per_slot"]) == 105.0
    assert by_kind["hello"]["setup_bytes"] == "50"
    assert float(by_kind["hello"]["bytes_per_slot"]) == 0.0
    assert float(by_kind["csi_slice"]["bytes_per_slot"]) == 150.0
    with pytest.raises(ValueError, match="slots must be positive"):
        make_meter(0).to_csv(path, slots=0)


# --------------------------------------------------------------------------- link models


def samples(params: LinkParams, seed: int = 1, n: int = N) -> np.ndarray:
    model = LinkModel(params, np.random.default_rng(seed))
    return np.array([model.sample() for _ in range(n)])


def test_constant_is_exact() -> None:
    x = samples(LinkParams("constant", latency_s=0.0042), n=1000)
    assert np.all(x == 0.0042)


def test_uniform_bounds_mean_and_distribution() -> None:
    lo, width = 0.002, 0.003
    x = samples(LinkParams("uniform", latency_s=lo, jitter_s=width))
    assert x.min() >= lo and x.max() <= lo + width
    se = width / math.sqrt(12 * N)
    assert abs(x.mean() - (lo + width / 2)) < 4 * se
    assert stats.kstest(x, stats.uniform(loc=lo, scale=width).cdf).pvalue > 1e-3


def test_lognormal_median_and_distribution() -> None:
    median, sigma = 0.005, 0.4
    x = samples(LinkParams("lognormal", latency_s=median, sigma=sigma))
    assert np.all(x > 0)
    # sample median of N draws: standard error ~ 1.2533 * sigma / sqrt(N) in log space
    assert abs(math.log(np.median(x)) - math.log(median)) < 4 * 1.2533 * sigma / math.sqrt(N)
    assert abs(np.log(x).std() - sigma) < 0.02
    assert stats.kstest(x, stats.lognorm(s=sigma, scale=median).cdf).pvalue > 1e-3


@pytest.mark.parametrize("model", ["constant", "uniform", "lognormal"])
def test_loss_rate(model: str) -> None:
    p = 0.3
    x = samples(LinkParams(model, latency_s=0.001, jitter_s=0.001, sigma=0.2, loss_probability=p))
    lost = np.isinf(x)
    assert abs(lost.mean() - p) < 4 * math.sqrt(p * (1 - p) / N)
    assert np.all(np.isfinite(x[~lost])) and np.all(x[~lost] > 0)
    assert np.all(np.isinf(samples(LinkParams(model, loss_probability=1.0), n=100)))


@pytest.mark.parametrize("model", ["constant", "uniform", "lognormal"])
def test_same_seed_same_sequence(model: str) -> None:
    params = LinkParams(model, latency_s=0.001, jitter_s=0.002, sigma=0.5, loss_probability=0.1)
    a, b = samples(params, seed=5, n=500), samples(params, seed=5, n=500)
    np.testing.assert_array_equal(a, b)
    if model != "constant":
        assert not np.array_equal(a, samples(params, seed=6, n=500))


def test_duck_typed_config() -> None:
    cfg = LinkLatencyConfig(model="uniform", latency_s=0.01, jitter_s=0.005, loss_probability=0.0)
    model = LinkModel(cfg, np.random.default_rng(0))
    assert model.params == LinkParams("uniform", 0.01, 0.005, 0.0, 0.0)
    assert 0.01 <= model.sample() <= 0.015


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"model": "gamma"}, "unknown latency model"),
        ({"latency_s": -1.0}, "latency_s must be finite and >= 0"),
        ({"jitter_s": math.inf}, "jitter_s must be finite"),
        ({"sigma": math.nan}, "sigma must be finite"),
        ({"loss_probability": 1.5}, "loss_probability must be in"),
    ],
)
def test_link_params_validation(kwargs: dict[str, object], text: str) -> None:
    with pytest.raises(ValueError, match=text):
        LinkParams(**kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- clocks, chain


def test_compute_clock() -> None:
    fixed = ComputeClock("fixed", 0.0005)
    t = fixed.start()
    time.sleep(0.01)
    assert fixed.elapsed(t) == 0.0005
    measured = ComputeClock("measured")
    t0 = time.perf_counter()
    t = measured.start()
    time.sleep(0.02)
    dt = measured.elapsed(t)
    assert 0.02 <= dt <= time.perf_counter() - t0
    with pytest.raises(ValueError):
        ComputeClock("wall")  # type: ignore[arg-type]


def test_chain_accounting() -> None:
    chain = after_compute(after_link(0.002, 0.003), 0.0005)
    assert chain == pytest.approx(0.0055, abs=1e-15)
    assert not is_miss(0.010, 0.010)
    assert is_miss(0.0100001, 0.010)
    assert is_miss(after_link(0.001, math.inf), 0.010)
    assert is_miss(math.nan, 0.010)


def test_clock_modes() -> None:
    now = 1_000_000_000_000
    fast, real = make_clock("fast"), make_clock("realtime")
    assert isinstance(fast, FastClock) and isinstance(real, RealtimeClock)
    assert fast.hold_s(now - 10_000_000, 0.030, now) == 0.0
    assert real.hold_s(now - 10_000_000, 0.030, now) == pytest.approx(0.020, abs=1e-12)
    assert real.hold_s(now - 50_000_000, 0.030, now) == 0.0
    # stamped in the future (a skewed clock or a forged header): held for the latency only
    assert real.hold_s(now + 10**18, 0.030, now) == 0.030
    with pytest.raises(ValueError, match="clock mode"):
        make_clock("slow")
