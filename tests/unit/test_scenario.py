"""Scenario files: paper 001's Table I values, and errors naming the field and the file."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from channel_server.config import ScenarioError, load_scenario

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "scenarios" / "3cell-k2.toml"


def test_3cell_k2_table_one() -> None:
    s = load_scenario(BASE)
    r = s.radio
    assert s.name == "3cell-k2"
    assert s.source == str(BASE)
    assert (r.layout, r.n_cells, r.users_per_cell) == ("3cell", 3, 2)
    assert r.pathloss_exponent == 3.76
    assert r.bandwidth_hz == 20e6
    assert r.pmax_dbm == 43.0
    assert r.pmax_w == pytest.approx(19.952623, rel=1e-6)  # 10^(13/10) W
    assert r.noise_psd_dbm_hz == -150.0
    assert r.noise_figure_db == 9.0
    assert r.d0_m == 0.3920
    assert r.cell_radius_m == 1000.0
    assert r.min_distance_m == 10.0
    assert r.carrier_hz == 2e9
    assert (r.fading, r.doppler_hz, r.slot_s) == ("gauss-markov", 10.0, 0.02)
    assert r.rho == pytest.approx(0.6425, abs=1e-4)
    assert r.mobility == "static"
    assert not r.sum_power_constraint
    assert 'fading = "iid"' in s.description
    b = s.backhaul.default
    assert (b.model, b.latency_s, b.loss_probability) == ("constant", 0.001, 0.0)
    assert s.backhaul.links == {}
    t = s.timing
    assert (t.clock, t.deadline_s, t.compute_model, t.compute_s, t.peer_timeout_s) == (
        "fast", 0.010, "fixed", 0.0005, 5.0
    )


def test_7cell_k8_table_one() -> None:
    s = load_scenario(ROOT / "scenarios" / "7cell-k8.toml")
    r = s.radio
    assert s.name == "7cell-k8"
    assert (r.layout, r.n_cells, r.users_per_cell) == ("7cell-wrap", 7, 8)
    assert r.pathloss_exponent == 4.0
    assert (r.bandwidth_hz, r.pmax_dbm, r.noise_psd_dbm_hz, r.noise_figure_db) == (
        20e6, 43.0, -150.0, 9.0
    )
    assert (r.d0_m, r.cell_radius_m, r.min_distance_m) == (0.3920, 1000.0, 10.0)
    assert r.noise_dbm == pytest.approx(-150.0 + 10 * math.log10(2e7) + 9.0)
    assert r.n_links == 56
    assert 'fading = "iid"' in s.description
    assert s.timing.deadline_s == 0.010


def write_variant(tmp_path: Path, old: str, new: str) -> Path:
    text = BASE.read_text()
    assert old in text
    p = tmp_path / "variant.toml"
    p.write_text(text.replace(old, new, 1))
    return p


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("pmax_dbm = 43.0\n", "", "pmax_dbm"),  # missing
        ("users_per_cell = 2\n", "users_per_cell = 2\nantennas_per_bs = 4\n",
         "antennas_per_bs"),  # unknown
        ("n_cells = 3\n", 'n_cells = "three"\n', "n_cells"),  # wrong type
        ("deadline_s = 0.010\n", "deadline_s = true\n", "deadline_s"),  # bool is not a number
        ('fading = "gauss-markov"\n', 'fading = "rician"\n', "fading"),  # not an allowed value
        ('name = "3cell-k2"\n', "", "name"),  # missing at top level
    ],
)
def test_bad_field_names_field_and_file(tmp_path: Path, old: str, new: str, field: str) -> None:
    p = write_variant(tmp_path, old, new)
    with pytest.raises(ScenarioError) as info:
        load_scenario(p)
    msg = str(info.value)
    assert field in msg
    assert str(p) in msg


def test_the_unmodified_copy_loads(tmp_path: Path) -> None:
    """Guards the parametrized test above: the copy itself is valid."""
    p = write_variant(tmp_path, 'name = "3cell-k2"', 'name = "copy"')
    assert load_scenario(p).name == "copy"


@pytest.mark.parametrize("base", ["3cell-k2", "7cell-k8"])
def test_thermal_variant_is_its_base_at_thermal_noise(base: str) -> None:
    """scenarios/<base>-thermal.toml differs from <base>.toml only in its noise PSD
    (-174 dBm/Hz instead of Table I's -150), its name, its description and, for 7cell-k8, its
    action map (clip, which won at thermal noise, against the base's log-power)."""
    import dataclasses

    from tests.helpers import SCENARIOS

    plain = load_scenario(SCENARIOS / f"{base}.toml")
    thermal = load_scenario(SCENARIOS / f"{base}-thermal.toml")
    assert plain.radio.noise_psd_dbm_hz == -150.0
    assert thermal.radio.noise_psd_dbm_hz == -174.0
    assert thermal.name == f"{base}-thermal"
    same = dataclasses.replace(thermal, name=plain.name, description=plain.description,
                               source=plain.source,
                               radio=dataclasses.replace(thermal.radio, noise_psd_dbm_hz=-150.0,
                                                         action_map=plain.radio.action_map))
    assert same == plain
    assert thermal.radio.action_map == ("clip" if base == "7cell-k8" else "log")
