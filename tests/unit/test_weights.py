"""The weights artifact: round trip, the header, every load error with its message, legacy
(header-less) cellular and V2X files, tamper detection, atomic save."""

from __future__ import annotations

import dataclasses
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from protocols.weights import (
    FORMAT,
    HEADER,
    WeightsArtifact,
    WeightsError,
    WeightsNotFound,
    check,
    fingerprint,
    load,
    read_arrays,
    read_meta,
)


def arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"mean_net.0.weight": rng.standard_normal((4, 6)),
            "mean_net.0.bias": rng.standard_normal(4),
            "mean_net.2.weight": rng.standard_normal((2, 4)),
            "mean_net.2.bias": rng.standard_normal(2),
            "log_std": np.full(2, -1.0)}


def artifact(**over: object) -> WeightsArtifact:
    kw: dict[str, object] = dict(scheme="round-robin", kind="cellular",
                                 dims={"obs_dim": 6, "act_dim": 2}, algo="trpo", steps=96,
                                 extra={"seed": 3, "scenario": "3cell-k2", "pmax_dbm": 43.0})
    kw.update(over)
    return WeightsArtifact.create(arrays(), **kw)  # type: ignore[arg-type]


def raw_entries(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def rewrite(path: Path, entries: dict[str, np.ndarray]) -> None:
    """Write entries with numpy directly (a file rrmbed did not write)."""
    with path.open("wb") as f:
        np.savez(f, **entries)  # type: ignore[arg-type]


def header_bytes(obj: object) -> np.ndarray:
    return np.frombuffer(json.dumps(obj).encode(), dtype=np.uint8)


# --------------------------------------------------------------------------- round trip


def test_round_trip_keeps_arrays_bit_exact_and_the_full_header(tmp_path: Path) -> None:
    a = artifact()
    path = a.save(tmp_path / "w.npz")
    b = load(path)
    assert b.path == path and b == a
    assert b.arrays.keys() == a.arrays.keys()
    for k, v in a.arrays.items():
        assert b.arrays[k].dtype == v.dtype and np.array_equal(b.arrays[k], v)
    m = b.meta
    assert (m.format, m.scheme, m.kind, m.algo, m.steps) == (1, "round-robin", "cellular",
                                                              "trpo", 96)
    assert m.dims == {"obs_dim": 6, "act_dim": 2}
    assert m.extra == {"seed": 3, "scenario": "3cell-k2", "pmax_dbm": 43.0}
    assert m.fingerprint == fingerprint(a.arrays) and m.fingerprint.startswith("sha256:")
    # the header entry is UTF-8 JSON in a uint8 array; np.load reads the file as it is
    raw = raw_entries(path)
    assert raw[HEADER].dtype == np.uint8
    header = json.loads(raw[HEADER].tobytes().decode("utf-8"))
    assert header == {"format": FORMAT, "scheme": "round-robin", "kind": "cellular",
                      "dims": {"obs_dim": 6, "act_dim": 2}, "algo": "trpo", "steps": 96,
                      "fingerprint": m.fingerprint,
                      "extra": {"seed": 3, "scenario": "3cell-k2", "pmax_dbm": 43.0}}
    # readers get the arrays only (what read_weights gave), and a flat meta dict
    assert read_arrays(path).keys() == a.arrays.keys()
    assert read_meta(path) == {"scheme": "round-robin", "kind": "cellular", "algo": "trpo",
                               "steps": 96, "obs_dim": 6, "act_dim": 2, "seed": 3,
                               "scenario": "3cell-k2", "pmax_dbm": 43.0}


def test_same_arrays_and_header_give_the_same_bytes(tmp_path: Path) -> None:
    a = artifact()
    assert (a.save(tmp_path / "a.npz").read_bytes() == a.save(tmp_path / "b.npz").read_bytes())


def test_node_read_weights_delegates(tmp_path: Path) -> None:
    from node.policy_spec import read_weights

    path = artifact().save(tmp_path / "w.npz")
    got = read_weights(path)
    assert got.keys() == arrays().keys()
    for k, v in arrays().items():
        assert np.array_equal(got[k], v)


def test_fingerprint_covers_names_dtypes_shapes_and_bytes() -> None:
    base = {"x": np.arange(6, dtype=np.float64)}
    f0 = fingerprint(base)
    assert fingerprint({"y": base["x"]}) != f0
    assert fingerprint({"x": base["x"].astype(np.float32)}) != f0
    assert fingerprint({"x": base["x"].reshape(2, 3)}) != f0
    assert fingerprint({"x": base["x"] + 1e-12}) != f0
    assert fingerprint({"x": base["x"].copy()}) == f0
    two = {"a": np.zeros(2), "b": np.ones(3)}
    assert fingerprint(two) == fingerprint({"b": np.ones(3), "a": np.zeros(2)})  # sorted


# --------------------------------------------------------------------------- check


def test_check_names_the_file_and_each_mismatch(tmp_path: Path) -> None:
    path = artifact().save(tmp_path / "x" / "weights.npz")
    a = load(path)
    assert check(a, scheme="round-robin", kind="cellular", dims={"obs_dim": 6}) is a
    with pytest.raises(WeightsError) as e:
        check(a, scheme="full")
    assert str(e.value) == f"{path}: trained for scheme 'round-robin', not 'full'"
    with pytest.raises(WeightsError) as e:
        check(a, dims={"obs_dim": 12, "act_dim": 2}, where="scenario 3cell-k2")
    assert str(e.value) == f"{path}: obs_dim 6 in the file, 12 for scenario 3cell-k2"
    with pytest.raises(WeightsError, match=r"weights for a 'cellular' scenario, not 'v2x'"):
        check(a, kind="v2x")
    with pytest.raises(WeightsError, match=r"scheme 'round-robin', not 'full'; obs_dim 6"):
        check(a, scheme="full", dims={"obs_dim": 7})


# --------------------------------------------------------------------------- load errors


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.npz"
    with pytest.raises(WeightsError) as e:
        load(path)
    assert str(e.value) == f"{path}: no such weights file"
    assert isinstance(e.value, FileNotFoundError) and isinstance(e.value, WeightsNotFound)


def test_text_file_is_not_a_weights_file(tmp_path: Path) -> None:
    path = tmp_path / "weights.npz"
    path.write_text("obs_dim = 6\n")
    with pytest.raises(WeightsError) as e:
        load(path)
    assert str(e.value) == f"{path}: not an rrmbed weights file (.npz)"
    assert "pickle" not in str(e.value)


def test_npy_file_is_not_a_weights_file(tmp_path: Path) -> None:
    path = tmp_path / "w.npy"
    np.save(path, np.zeros(3))
    with pytest.raises(WeightsError, match=r"a single \.npy array, not an rrmbed weights file"):
        load(path)


def test_truncated_zip_is_corrupt(tmp_path: Path) -> None:
    path = artifact().save(tmp_path / "w.npz")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(WeightsError, match=r"w\.npz: corrupt \.npz"):
        load(path)


def test_pickled_entry_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "w.npz"
    with path.open("wb") as f:
        np.savez(f, x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(WeightsError, match=r"entry 'x' holds pickled \(object\) data"):
        load(path)


@pytest.mark.parametrize(("header", "message"), [
    (np.frombuffer(b"\xff\xfe{", dtype=np.uint8), "not UTF-8 JSON"),
    (header_bytes([1, 2]), "not a JSON object"),
    (header_bytes({"scheme": "full"}), "no integer 'format'"),
    (np.zeros(3, dtype=np.float64), "not a uint8 byte string"),
])
def test_corrupt_header(tmp_path: Path, header: np.ndarray, message: str) -> None:
    path = tmp_path / "w.npz"
    rewrite(path, {**arrays(), HEADER: header})
    with pytest.raises(WeightsError, match=rf"w\.npz: corrupt rrmbed header: {message}"):
        load(path)


def test_header_missing_a_field_is_corrupt(tmp_path: Path) -> None:
    path = artifact().save(tmp_path / "w.npz")
    entries = raw_entries(path)
    h = json.loads(entries[HEADER].tobytes())
    del h["steps"]
    rewrite(path, {**entries, HEADER: header_bytes(h)})
    with pytest.raises(WeightsError, match=r"corrupt rrmbed header: 'steps' missing"):
        load(path)


def test_unknown_format_version(tmp_path: Path) -> None:
    path = artifact().save(tmp_path / "w.npz")
    entries = raw_entries(path)
    h = json.loads(entries[HEADER].tobytes())
    h["format"] = 7
    rewrite(path, {**entries, HEADER: header_bytes(h)})
    with pytest.raises(WeightsError, match=r"weights format 7 is not supported"):
        load(path)


def test_tampered_array_fails_the_fingerprint(tmp_path: Path) -> None:
    path = artifact().save(tmp_path / "w.npz")
    entries = raw_entries(path)
    entries["log_std"] = entries["log_std"] + 0.5
    rewrite(path, entries)
    with pytest.raises(WeightsError) as e:
        load(path)
    assert str(e.value) == (f"{path}: the arrays do not match the header's fingerprint "
                            "(the file was altered or damaged)")
    # a dropped array too
    entries = raw_entries(artifact().save(path))
    del entries["log_std"]
    rewrite(path, entries)
    with pytest.raises(WeightsError, match="fingerprint"):
        load(path)


# --------------------------------------------------------------------------- writing


def test_atomic_save_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = artifact().save(tmp_path / "w.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.npz"]
    artifact(steps=192).save(path)  # replaces in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.npz"]
    assert load(path).meta.steps == 192


def test_failed_save_keeps_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = artifact().save(tmp_path / "w.npz")
    before = path.read_bytes()
    meta = dataclasses.replace(artifact().meta, extra={"x": float("nan")})  # not JSON
    bad = WeightsArtifact(meta, arrays())
    with pytest.raises(WeightsError, match="not plain JSON"):
        bad.save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.npz"]


def test_create_refuses_what_cannot_be_written() -> None:
    with pytest.raises(WeightsError, match="not a numeric array"):
        WeightsArtifact.create({"s": np.array("trpo")}, scheme="full", kind="cellular",
                               dims={}, algo="trpo", steps=0)
    with pytest.raises(WeightsError, match="'scheme' missing"):
        artifact(scheme="")
    with pytest.raises(WeightsError, match="bad array name"):
        WeightsArtifact.create({HEADER: np.zeros(1)}, scheme="full", kind="cellular",
                               dims={}, algo="trpo", steps=0)
    with pytest.raises(WeightsError, match="clash"):
        artifact(extra={"scheme": "x"})


# --------------------------------------------------------------------------- legacy files


def test_legacy_cellular_file_loads_with_its_meta(tmp_path: Path) -> None:
    """What controller/training/train.py wrote before the header: state arrays + meta.*."""
    from node.policy import PolicyConfig, save_weights, seeded_policy

    policy = seeded_policy(PolicyConfig(6, 2, hidden=(8,)), 1)
    path = tmp_path / "weights.npz"
    save_weights(path, policy, algo=np.array("a2c"), scheme=np.array("full"),
                 seed=np.array(3), iteration=np.array(2), obs_dim=np.array(6),
                 act_dim=np.array(2), hidden=np.array((8,)), scenario=np.array("3cell-k2"),
                 pmax_dbm=np.array(43.0))
    a = load(path)
    m = a.meta
    assert (m.format, m.scheme, m.kind, m.algo, m.steps) == (0, "full", "cellular", "a2c", None)
    assert m.dims == {"obs_dim": 6, "act_dim": 2}
    # the arrays are exactly what read_weights returned before (meta.* dropped)
    with np.load(path, allow_pickle=False) as f:
        old = {k: f[k] for k in f.files if not k.startswith("meta.")}
    assert read_arrays(path).keys() == old.keys()
    for k, v in old.items():
        assert np.array_equal(a.arrays[k], v)
    # read_meta is what evaluate's read_meta gave: the meta.* entries, unprefixed
    assert read_meta(path) == {"algo": "a2c", "scheme": "full", "seed": 3, "iteration": 2,
                               "obs_dim": 6, "act_dim": 2, "hidden": [8],
                               "scenario": "3cell-k2", "pmax_dbm": 43.0}
    with pytest.raises(WeightsError, match="trained for scheme 'full', not 'centralized'"):
        check(a, scheme="centralized")


def test_legacy_cellular_file_without_meta_infers_dims(tmp_path: Path) -> None:
    """What the controller role and older tools wrote: only the state arrays."""
    path = tmp_path / "w.npz"
    np.savez(path, **arrays())  # type: ignore[arg-type]
    m = load(path).meta
    assert (m.format, m.kind, m.scheme, m.algo) == (0, "cellular", None, None)
    assert m.dims == {"obs_dim": 6, "act_dim": 2}
    check(load(path), scheme="full", dims={"act_dim": 2})  # unknown scheme: not checked


@pytest.mark.parametrize("sharing", ["per-agent", "shared"])
def test_legacy_v2x_file_loads_with_its_env_fingerprint(tmp_path: Path, sharing: str) -> None:
    """What `rrmbed v2x train` wrote: Q networks and env_fingerprint, no meta."""
    from controller.learners.dqn import Dqn, DqnConfig

    dqn = Dqn(10, 12, 3, DqnConfig(hidden=(5,), sharing=sharing),  # type: ignore[arg-type]
              np.random.default_rng(0))
    variables = {**dqn.get_variables(), "env_fingerprint": np.array([100, 0.02])}
    path = tmp_path / "weights.npz"
    np.savez(path, **variables)  # type: ignore[arg-type]
    a = load(path)
    assert a.arrays.keys() == variables.keys()  # env_fingerprint kept: readers use it
    assert np.array_equal(a.arrays["env_fingerprint"], [100, 0.02])
    m = a.meta
    assert (m.format, m.kind, m.algo, m.scheme) == (0, "v2x", "dqn", "marl-dqn")
    want = {"obs_dim": 10, "n_actions": 12, "n_agents": 3} if sharing == "per-agent" \
        else {"n_actions": 12}
    assert m.dims == want
    with pytest.raises(WeightsError, match="n_actions 12 in the file, 16 for"):
        check(a, kind="v2x", dims={"n_actions": 16})


def test_legacy_empty_file_loads(tmp_path: Path) -> None:
    """The random V2X scheme's weights.npz had no arrays at all."""
    path = tmp_path / "w.npz"
    np.savez(path)
    a = load(path)
    assert a.arrays == {} and a.meta.format == 0 and a.meta.kind is None


def test_legacy_zip_that_is_not_npz_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "w.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("x.npy", b"not an array")
    with pytest.raises(WeightsError, match=r"w\.npz: entry 'x' is not a \.npy array"):
        load(path)
