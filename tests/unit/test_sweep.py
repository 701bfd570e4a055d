"""Seed lists and the serial sweep (the Ray backend: tests/integration/test_sweep_ray.py)."""

from __future__ import annotations

import click
import pytest

from controller.cli.common import seed_list
from controller.training.sweep import SweepConfig, sweep


def test_seed_lists_take_commas_and_ranges() -> None:
    assert seed_list("0-3,7") == (0, 1, 2, 3, 7)
    assert seed_list("5") == (5,)
    assert seed_list(" 2 , 0 ") == (2, 0)
    for bad in ("", "a", "3-1", "0-2,1", "1-x"):
        with pytest.raises(click.BadParameter):
            seed_list(bad)


def test_serial_sweep_runs_in_order_and_reports_each_seed() -> None:
    seen: list[tuple[int, int]] = []
    assert sweep(lambda s: s * s, [3, 1, 2], on_done=lambda s, r: seen.append((s, r))) == [
        9, 1, 4]
    assert seen == [(3, 9), (1, 1), (2, 4)]


def test_sweep_config_refuses_what_it_cannot_do() -> None:
    with pytest.raises(ValueError, match="unknown backend"):
        SweepConfig(backend="dask")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="retries"):
        SweepConfig(retries=-1)
