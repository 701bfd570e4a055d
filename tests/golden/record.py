"""Record the golden hashes: run every run of tests.golden.runs into a temporary folder
and write {run name: {file: sha256}} as JSON (sorted keys, trailing newline).

    .venv/bin/python -m tests.golden.record [--out-json tests/golden/hashes.json]
                                            [--keep DIR] [--only NAME ...]

Run it from the repository root. Only re-record on purpose (see tests/golden/README.md):
the point of the file is to hold the hashes of the code before the redesign.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from tests.golden.runs import BY_NAME, HASHES, RUNS, execute, hash_run


def record(base: Path, names: list[str] | None = None) -> dict[str, dict[str, str]]:
    runs = [BY_NAME[n] for n in names] if names else list(RUNS)
    hashes: dict[str, dict[str, str]] = {}
    t_all = time.perf_counter()
    for i, run in enumerate(runs, 1):
        t0 = time.perf_counter()
        out = execute(run, base)
        hashes[run.name] = hash_run(out, run.files)
        print(f"[{i:2d}/{len(runs)}] {run.name}: {len(run.files)} files, "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
    print(f"{len(runs)} runs in {time.perf_counter() - t_all:.1f} s", flush=True)
    return hashes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.golden.record", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out-json", type=Path, default=HASHES,
                   help=f"where to write the hashes (default {HASHES})")
    p.add_argument("--keep", type=Path, help="run into this folder and keep it "
                   "(default: a temporary folder, removed afterwards)")
    p.add_argument("--only", nargs="+", metavar="NAME", choices=sorted(BY_NAME),
                   help="only these runs: their hashes replace theirs in --out-json, the "
                        "others stay")
    args = p.parse_args(argv)
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        hashes = record(args.keep, args.only)
    else:
        with tempfile.TemporaryDirectory(prefix="rrmbed-golden-") as tmp:
            hashes = record(Path(tmp), args.only)
    if args.only and args.out_json.exists():
        hashes = {**json.loads(args.out_json.read_text()), **hashes}
    args.out_json.write_text(json.dumps(hashes, indent=2, sort_keys=True) + "\n")
    print(f"wrote {args.out_json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
