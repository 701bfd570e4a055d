"""Weights at rest: one typed artifact, an .npz of named numeric arrays plus a header.

A weights file is a zip of ``.npy`` members (``np.load`` reads it): the named arrays (a
policy's or Q networks' weights, the names the learners' ``get_variables`` give) and one
entry ``__rrmbed__``, a uint8 array holding a UTF-8 JSON object::

    {"format": 1, "scheme": "full", "kind": "cellular", "algo": "trpo", "steps": 96,
     "dims": {"obs_dim": 6, "act_dim": 2},
     "fingerprint": "sha256:<64 hex digits>",
     "extra": {"seed": 3, "scenario": "3cell-k2", "pmax_dbm": 43.0, ...}}

``format`` is the header version (1); ``scheme`` the execution scheme the weights were
trained for; ``kind`` the scenario kind ('cellular', 'v2x'); ``dims`` named ints that must
agree with the scenario the weights run in (obs_dim, act_dim, n_actions, n_agents);
``algo`` the learner's registry name; ``steps`` the training steps behind them;
``fingerprint`` the sha256 over the arrays' names, dtypes, shapes and bytes in sorted
name order, checked on load; ``extra`` free JSON facts (seed, scenario, pmax_dbm, ...).

Nothing is ever unpickled (``allow_pickle=False`` both ways). Saving is atomic (a temporary
file in the same directory, then a rename). Files written before the header existed
(format 0) still load: cellular ones with their ``meta.*`` entries (which become
``meta.extra`` and never reach the arrays), V2X ones with their ``env_fingerprint``
array (kept: the readers use it); what they do not say is inferred from the arrays or
left None. :func:`read_arrays` and :func:`read_meta` are drop-ins for the readers that
took the raw arrays and the ``meta.*`` entries.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import zipfile
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[Any]

FORMAT = 1
"""The header version this module writes (and the only one it reads, besides legacy 0)."""
HEADER = "__rrmbed__"
"""The entry holding the JSON header."""
LEGACY_META = "meta."
"""Prefix of the metadata entries of format-0 cellular files."""
NUMERIC_KINDS = "biuf"
"""numpy dtype kinds an artifact may hold: bool, signed, unsigned, float."""

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_NPY_MAGIC = b"\x93NUMPY"
_HEADER_FIELDS = ("format", "scheme", "kind", "dims", "algo", "steps", "fingerprint", "extra")
_FIXED_DATE = (1980, 1, 1, 0, 0, 0)
"""Zip member timestamp: the same arrays and header give the same bytes."""


class WeightsError(ValueError):
    """A weights file that cannot be used; the message names the file and the problem."""


class WeightsNotFound(WeightsError, FileNotFoundError):
    """The weights file does not exist."""


@dataclass(frozen=True)
class WeightsMeta:
    """What a weights file says about its arrays (its header)."""

    scheme: str | None
    """Execution scheme the weights were trained for (None: unknown, legacy file)."""
    kind: str | None
    """Scenario kind: 'cellular' or 'v2x' (None: unknown)."""
    dims: dict[str, int]
    """Named sizes the scenario must agree with (obs_dim, act_dim, n_actions, n_agents)."""
    algo: str | None
    """Learner registry name ('trpo', 'a2c', 'dqn'; None: unknown)."""
    steps: int | None
    """Training steps (environment decisions) behind the weights (None: unknown)."""
    format: int = FORMAT
    """Header version: 1, or 0 for a file written before headers (inferred meta)."""
    fingerprint: str = ""
    """'sha256:<hex>' of the arrays (see :func:`fingerprint`)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Other JSON facts (seed, scenario, pmax_dbm, ...); format 0: its meta.* entries."""

    def header(self) -> dict[str, Any]:
        """The JSON object written as ``__rrmbed__``."""
        return {"format": self.format, "scheme": self.scheme, "kind": self.kind,
                "dims": dict(self.dims), "algo": self.algo, "steps": self.steps,
                "fingerprint": self.fingerprint, "extra": dict(self.extra)}

    def flat(self) -> dict[str, Any]:
        """One flat dict: scheme, kind, algo, steps, the dims and the extra facts (format 0:
        exactly the file's meta.* entries without the prefix, as readers had them)."""
        if self.format == 0:
            return dict(self.extra)
        return {"scheme": self.scheme, "kind": self.kind, "algo": self.algo,
                "steps": self.steps, **self.dims, **self.extra}


@dataclass(frozen=True, eq=False)
class WeightsArtifact:
    """Named arrays and their metadata; ``path`` is where they were loaded from. Two
    artifacts are equal when their metas and their arrays (names, dtypes, shapes, bytes)
    are; the path does not count."""

    meta: WeightsMeta
    arrays: dict[str, Array]
    path: Path | None = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WeightsArtifact):
            return NotImplemented
        return self.meta == other.meta and fingerprint(self.arrays) == fingerprint(other.arrays)

    @classmethod
    def create(cls, arrays: dict[str, Array], *, scheme: str, kind: str,
               dims: dict[str, int], algo: str, steps: int,
               extra: dict[str, Any] | None = None) -> WeightsArtifact:
        """A new artifact with a full header (its fingerprint computed here)."""
        arr = {str(k): np.asarray(v) for k, v in arrays.items()}
        meta = WeightsMeta(scheme=scheme, kind=kind, dims={k: int(v) for k, v in dims.items()},
                           algo=algo, steps=int(steps), format=FORMAT,
                           fingerprint=fingerprint(arr), extra=dict(extra or {}))
        art = cls(meta, arr)
        art.validate()
        return art

    @property
    def source(self) -> str:
        """How messages name the artifact: its path, or 'weights' when it has none."""
        return str(self.path) if self.path is not None else "weights"

    def validate(self) -> None:
        """Raise :class:`WeightsError` unless this can be written as a format-1 file."""
        _check_arrays(self.arrays, self.source)
        _check_header(self.meta.header(), self.source)
        clash = (set(self.meta.extra) & (set(self.meta.dims) | set(_HEADER_FIELDS))
                 | set(self.meta.dims) & set(_HEADER_FIELDS))
        if clash:
            raise WeightsError(f"{self.source}: extra/dims names clash with header fields: "
                               f"{sorted(clash)}")

    def save(self, path: str | Path) -> Path:
        """Write the artifact to ``path`` atomically (the fingerprint recomputed)."""
        path = Path(path)
        meta = WeightsMeta(self.meta.scheme, self.meta.kind, dict(self.meta.dims),
                           self.meta.algo, self.meta.steps, FORMAT, fingerprint(self.arrays),
                           dict(self.meta.extra))
        art = WeightsArtifact(meta, self.arrays, path)
        art.validate()
        try:
            text = json.dumps(meta.header(), sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise WeightsError(f"{path}: header is not plain JSON: {e}") from e
        entries = [*sorted(self.arrays.items()),
                   (HEADER, np.frombuffer(text.encode("utf-8"), dtype=np.uint8))]
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
                    for name, value in entries:
                        info = zipfile.ZipInfo(f"{name}.npy", date_time=_FIXED_DATE)
                        with zf.open(info, "w", force_zip64=True) as member:
                            np.lib.format.write_array(member, np.asarray(value),
                                                      allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return path

    @classmethod
    def load(cls, path: str | Path) -> WeightsArtifact:
        """Read and check a weights file (format 1, or a legacy format-0 file)."""
        return load(path)


# --------------------------------------------------------------------------- fingerprint


def fingerprint(arrays: dict[str, Array]) -> str:
    """'sha256:<hex>' over every array's name, dtype, shape and bytes, in sorted name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.asarray(arrays[name])
        h.update(json.dumps([name, a.dtype.str, list(a.shape)]).encode("utf-8"))
        h.update(b"\n")
        h.update(a.tobytes(order="C"))
    return "sha256:" + h.hexdigest()


# --------------------------------------------------------------------------- loading


def load(path: str | Path) -> WeightsArtifact:
    """The artifact in ``path``; :class:`WeightsError` names the file and what is wrong."""
    p = Path(path)
    if not p.exists():
        raise WeightsNotFound(f"{p}: no such weights file")
    if p.is_dir():
        raise WeightsError(f"{p}: is a directory, not a weights file")
    with p.open("rb") as f:
        magic = f.read(6)
    if magic.startswith(_NPY_MAGIC):
        raise WeightsError(f"{p}: a single .npy array, not an rrmbed weights file (.npz)")
    if magic[:4] not in _ZIP_MAGIC:
        raise WeightsError(f"{p}: not an rrmbed weights file (.npz)")
    raw = _read_npz(p)
    if HEADER not in raw:
        return _legacy(p, raw)
    meta = _parse_header(raw.pop(HEADER), p)
    _check_arrays(raw, str(p))
    if fingerprint(raw) != meta.fingerprint:
        raise WeightsError(f"{p}: the arrays do not match the header's fingerprint "
                           "(the file was altered or damaged)")
    return WeightsArtifact(meta, raw, p)


def read_arrays(path: str | Path) -> dict[str, Array]:
    """The named arrays of a weights file: what ``read_weights`` returned (legacy meta.*
    entries excluded, everything else kept), checked and without the header."""
    return dict(load(path).arrays)


def read_meta(path: str | Path) -> dict[str, Any]:
    """The file's metadata as one flat dict (:meth:`WeightsMeta.flat`); for a legacy file
    exactly its meta.* entries without the prefix."""
    return load(path).meta.flat()


def check(artifact: WeightsArtifact, *, scheme: str | None = None, kind: str | None = None,
          dims: dict[str, int] | None = None, where: str | None = None) -> WeightsArtifact:
    """Raise :class:`WeightsError` if the weights were trained for another scheme, another
    kind of scenario or other sizes; ``where`` names the expectation ("scenario
    3cell-k2"). What the file does not say (legacy files) is not checked."""
    m = artifact.meta
    problems = []
    if kind is not None and m.kind is not None and m.kind != kind:
        problems.append(f"weights for a {m.kind!r} scenario, not {kind!r}")
    if scheme is not None and m.scheme is not None and m.scheme != scheme:
        problems.append(f"trained for scheme {m.scheme!r}, not {scheme!r}")
    for name, want in (dims or {}).items():
        have = m.dims.get(name)
        if have is not None and have != int(want):
            problems.append(f"{name} {have} in the file, {int(want)} for {where or 'this run'}")
    if problems:
        raise WeightsError(f"{artifact.source}: " + "; ".join(problems))
    return artifact


# --------------------------------------------------------------------------- internals


def _read_npz(p: Path) -> dict[str, Array]:
    out: dict[str, Array] = {}
    try:
        with np.load(p, allow_pickle=False) as npz:
            for name in npz.files:
                try:
                    value = npz[name]
                except ValueError as e:
                    if "pickle" in str(e):
                        raise WeightsError(f"{p}: entry {name!r} holds pickled (object) data; "
                                           "rrmbed never unpickles") from e
                    raise WeightsError(f"{p}: entry {name!r} is not a valid array: {e}") from e
                if not isinstance(value, np.ndarray):  # numpy hands over raw bytes
                    raise WeightsError(f"{p}: entry {name!r} is not a .npy array")
                out[name] = value
    except WeightsError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as e:
        raise WeightsError(f"{p}: corrupt .npz ({e})") from e
    return out


def _check_arrays(arrays: dict[str, Array], src: str) -> None:
    for name, a in arrays.items():
        if not isinstance(name, str) or not name or name == HEADER:
            raise WeightsError(f"{src}: bad array name {name!r}")
        if np.asarray(a).dtype.kind not in NUMERIC_KINDS:
            raise WeightsError(f"{src}: array {name!r} is {np.asarray(a).dtype}, "
                               "not a numeric array")


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check_header(h: dict[str, Any], src: str) -> None:
    """Field types of a format-1 header (the format number is checked before)."""
    def bad(what: str) -> WeightsError:
        return WeightsError(f"{src}: corrupt rrmbed header: {what}")

    for key in ("scheme", "kind", "algo", "fingerprint"):
        if not isinstance(h.get(key), str) or not h[key]:
            raise bad(f"{key!r} missing or not a non-empty string")
    if not _is_int(h.get("steps")) or h["steps"] < 0:
        raise bad("'steps' missing or not a non-negative integer")
    dims = h.get("dims")
    if not isinstance(dims, dict) or not all(
            isinstance(k, str) and _is_int(v) and v >= 0 for k, v in dims.items()):
        raise bad("'dims' missing or not an object of non-negative integers")
    if not isinstance(h.get("extra", {}), dict):
        raise bad("'extra' is not an object")
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", h["fingerprint"]):
        raise bad("'fingerprint' is not 'sha256:<64 hex digits>'")


def _parse_header(entry: Array, p: Path) -> WeightsMeta:
    if entry.dtype != np.uint8 or entry.ndim != 1:
        raise WeightsError(f"{p}: corrupt rrmbed header: not a uint8 byte string")
    try:
        h = json.loads(entry.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WeightsError(f"{p}: corrupt rrmbed header: not UTF-8 JSON ({e})") from e
    if not isinstance(h, dict):
        raise WeightsError(f"{p}: corrupt rrmbed header: not a JSON object")
    fmt = h.get("format")
    if not _is_int(fmt):
        raise WeightsError(f"{p}: corrupt rrmbed header: no integer 'format'")
    if fmt != FORMAT:
        raise WeightsError(f"{p}: weights format {fmt} is not supported (this rrmbed reads "
                           f"format {FORMAT} and legacy files); a newer rrmbed wrote it?")
    _check_header(h, str(p))
    return WeightsMeta(scheme=h["scheme"], kind=h["kind"], dims=dict(h["dims"]),
                       algo=h["algo"], steps=h["steps"], format=FORMAT,
                       fingerprint=h["fingerprint"], extra=dict(h.get("extra", {})))


_Q_KEY = re.compile(r"^(?:agent(\d+)\.)?q\.(\d+)\.weight$")


def _legacy(p: Path, raw: dict[str, Array]) -> WeightsArtifact:
    """A file without header: cellular (meta.* entries, a Gaussian policy's arrays) or
    V2X (Q networks, an env_fingerprint); unknown facts stay None."""
    extra = {k[len(LEGACY_META):]: v.tolist() for k, v in raw.items()
             if k.startswith(LEGACY_META)}
    arrays = {k: v for k, v in raw.items() if not k.startswith(LEGACY_META)}
    scheme = str(extra["scheme"]) if "scheme" in extra else None
    algo = str(extra["algo"]) if "algo" in extra else None
    kind: str | None = None
    dims: dict[str, int] = {}
    q_layers = [(m.group(1), int(m.group(2)), k) for k in arrays if (m := _Q_KEY.match(k))]
    if extra or "log_std" in arrays or any(k.startswith("mean_net.") for k in arrays):
        kind = "cellular"
        for d in ("obs_dim", "act_dim"):
            if d in extra and _is_int(extra[d]):
                dims[d] = int(extra[d])
        first = arrays.get("mean_net.0.weight")
        if "obs_dim" not in dims and first is not None and first.ndim == 2:
            dims["obs_dim"] = int(first.shape[1])
        log_std = arrays.get("log_std")
        if "act_dim" not in dims and log_std is not None and log_std.ndim == 1:
            dims["act_dim"] = int(log_std.shape[0])
    elif "env_fingerprint" in arrays or q_layers:
        kind, algo = "v2x", algo or "dqn"
        if "env_fingerprint" in arrays:
            scheme = scheme or "marl-dqn"  # the only scheme whose files carry one
        agents = {a for a, _, _ in q_layers}
        layers = sorted({i for _, i, _ in q_layers})
        if q_layers:
            prefix = f"agent{min(agents, key=lambda a: int(a or 0))}." if None not in agents \
                else ""
            last = arrays.get(f"{prefix}q.{layers[-1]}.weight")
            if last is not None and last.ndim == 2:
                dims["n_actions"] = int(last.shape[0])
            if None not in agents:  # one network per agent: its input is the observation
                dims["n_agents"] = len(agents)
                first = arrays.get(f"{prefix}q.{layers[0]}.weight")
                if first is not None and first.ndim == 2:
                    dims["obs_dim"] = int(first.shape[1])
    meta = WeightsMeta(scheme=scheme, kind=kind, dims=dims, algo=algo, steps=None, format=0,
                       fingerprint=fingerprint(arrays), extra=extra)
    return WeightsArtifact(meta, arrays, p)
