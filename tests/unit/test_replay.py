"""Replay ring buffer: uniform sampling (chi-square), FIFO overwrite order, per-agent routing."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chisquare

from controller.learners.replay import FieldSpec, PerAgentReplay, ReplayBuffer

FIELDS = {"x": FieldSpec((), np.int64), "v": FieldSpec((2,), np.float32)}


def rows(values: list[int]) -> dict[str, np.ndarray]:
    x = np.asarray(values, dtype=np.int64)
    return {"x": x, "v": np.stack([x, -x], axis=-1).astype(np.float32)}


@pytest.mark.parametrize(("capacity", "filled"), [(50, 50), (50, 20), (16, 40)])
def test_sampling_is_uniform_over_the_rows_held(capacity: int, filled: int) -> None:
    buf = ReplayBuffer(capacity, FIELDS)
    buf.add(rows(list(range(filled))))
    held = list(range(max(filled - capacity, 0), filled))
    rng = np.random.default_rng(1234)
    draws = np.concatenate([buf.sample(1000, rng)["x"] for _ in range(200)])
    assert set(np.unique(draws)) == set(held)  # nothing outside the rows held
    counts = np.array([(draws == h).sum() for h in held])
    expected = np.full(len(held), draws.size / len(held))
    assert chisquare(counts, expected).pvalue > 0.001
    # the other fields travel with their row
    batch = buf.sample(500, rng)
    np.testing.assert_array_equal(batch["v"][:, 0], batch["x"])
    np.testing.assert_array_equal(batch["v"][:, 1], -batch["x"].astype(np.int64))


def test_ring_overwrites_the_oldest_rows_first() -> None:
    buf = ReplayBuffer(5, FIELDS)
    buf.add(rows([0, 1, 2]))
    assert len(buf) == 3 and buf.cursor == 3
    buf.add(rows([3, 4, 5, 6]))
    # written at slots 3, 4, 0, 1 (by hand): storage [5, 6, 2, 3, 4]
    assert buf.data["x"].tolist() == [5, 6, 2, 3, 4]
    assert buf.ordered()["x"].tolist() == [2, 3, 4, 5, 6]
    assert len(buf) == 5 and buf.cursor == 2
    buf.add(rows([7]))
    assert buf.ordered()["x"].tolist() == [3, 4, 5, 6, 7]
    buf.add(rows(list(range(10, 18))))  # more rows than capacity: the newest 5 survive
    assert buf.ordered()["x"].tolist() == [13, 14, 15, 16, 17]
    assert buf.added == 3 + 4 + 1 + 8


def test_sampling_depends_only_on_the_generator() -> None:
    a, b = ReplayBuffer(30, FIELDS), ReplayBuffer(30, FIELDS)
    for buf in (a, b):
        buf.add(rows(list(range(25))))
    sa = a.sample(64, np.random.default_rng(7))["x"]
    sb = b.sample(64, np.random.default_rng(7))["x"]
    sc = b.sample(64, np.random.default_rng(8))["x"]
    np.testing.assert_array_equal(sa, sb)
    assert not np.array_equal(sa, sc)


def test_bad_batches_are_refused() -> None:
    buf = ReplayBuffer(4, FIELDS)
    with pytest.raises(ValueError):
        buf.sample(1, np.random.default_rng(0))
    with pytest.raises(ValueError):
        buf.add({"x": np.zeros(2, dtype=np.int64)})
    with pytest.raises(ValueError):
        buf.add({"x": np.zeros(2, dtype=np.int64), "v": np.zeros((3, 2))})


def test_per_agent_buffers_route_rows_by_agent() -> None:
    fields = {"agent": FieldSpec((), np.int64), "x": FieldSpec((), np.int64)}
    rep = PerAgentReplay(3, 4, fields)
    agent = np.array([0, 1, 2, 0, 0, 1, 0, 0, 0])
    rep.add({"agent": agent, "x": np.arange(agent.size)})
    # agent 0 got rows 0, 3, 4, 6, 7, 8 into 4 slots: the newest four survive
    assert rep.buffers[0].ordered()["x"].tolist() == [4, 6, 7, 8]
    assert rep.buffers[1].ordered()["x"].tolist() == [1, 5]
    assert rep.buffers[2].ordered()["x"].tolist() == [2]
    assert len(rep) == 1
    rng = np.random.default_rng(3)
    for i in range(3):
        assert np.all(rep.sample(i, 100, rng)["agent"] == i)
    with pytest.raises(ValueError):
        rep.add({"agent": np.array([3]), "x": np.array([0])})
