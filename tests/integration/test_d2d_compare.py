"""`rrmbed d2d compare` end to end, tiny: every figure and CSV is written, a row for every
scheme x N x seed (and NAAC's lambdas), and the reported metrics are those of an
independent `rrmbed run --runner local` of the same scheme, seed and weights."""

from __future__ import annotations

import csv
import itertools
import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from controller.cli.common import cli
from controller.evaluation.d2d_compare import METRICS
from node.schemes import SCHEMES

NS, SEEDS, LAMBDAS = (10, 20), (0, 1), (1, 3)
SLOTS, EVAL = 30, 12
FIGURES = ("fig6_training", "fig7_cue_outage", "fig8_d2d_outage", "fig9_d2d_sum_rate",
           "fig10_outage_lambda", "fig11_sum_rate_lambda")
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("d2d-compare") / "cmp"
    res = CliRunner().invoke(cli, [
        "d2d", "compare", "--ns", ",".join(map(str, NS)),
        "--lambdas", ",".join(map(str, LAMBDAS)), "--seeds", ",".join(map(str, SEEDS)),
        "--slots", str(SLOTS), "--random-slots", "15", "--eval-slots", str(EVAL),
        "--window", "10", "--actor-hidden", "8", "--critic-hidden", "8,8,8",
        "--batch-size", "8", "--out", str(out)])
    assert res.exit_code == 0, res.output + repr(res.exception)
    return out


def rows(out: Path) -> list[dict[str, str]]:
    with (out / "results.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def row_of(out: Path, scheme: str, n: int, seed: int) -> dict[str, str]:
    found = [r for r in rows(out) if (r["scheme"], int(r["n_pairs"]), int(r["seed"])) ==
             (scheme, n, seed) and r["lambda"] in ("", "3")]
    assert len(found) == 1, found
    return found[0]


def test_every_figure_and_csv(compared: Path) -> None:
    for stem in FIGURES:
        png = (compared / f"{stem}.png").read_bytes()
        assert png.startswith(PNG) and len(png) > 10_000, (stem, len(png))
        with (compared / f"{stem}.csv").open(newline="") as f:
            table = list(csv.reader(f))
        assert len(table) > 2, stem
    assert json.loads((compared / "results.json").read_text())["jobs_done"] == len(
        rows(compared))


def test_a_row_for_every_scheme_n_seed_and_lambda(compared: Path) -> None:
    names = SCHEMES.names("d2d-underlay")
    assert {"maac", "naac", "q-learning", "sla"} <= set(names)
    got = [(r["scheme"], int(r["n_pairs"]), r["lambda"], int(r["seed"]))
           for r in rows(compared)]
    assert len(got) == len(set(got))
    assert {(s, n, seed) for s, n, _, seed in got} == {
        (s, n, seed) for s in names for n in NS for seed in SEEDS}
    naac10 = {(lam, seed) for s, n, lam, seed in got if s == "naac" and n == 10}
    assert naac10 == {(str(lam), seed) for lam in LAMBDAS for seed in SEEDS}
    for r in rows(compared):
        for k in ("cue_outage", "d2d_outage"):
            assert 0.0 <= float(r[k]) <= 1.0, r
        assert float(r["d2d_sum_rate_mbps"]) >= 0.0
        assert r["trained"] == str(SCHEMES.get("d2d-underlay", r["scheme"]).trainable)
        if r["scheme"] == "random":  # a new RB out of 10 every slot: 9 times in 10 another
            assert 0.8 < float(r["rb_switch_rate"]) < 1.0, r


def run(tmp: Path, scheme: str, n: int, seed: int, slots: int,
        weights: Path | None = None) -> Path:
    out = tmp / f"{scheme}-{n}-{seed}"
    args = ["run", f"scenarios/d2d-n{n}.toml", "--runner", "local", "--scheme", scheme,
            "--seed", str(seed), "--slots", str(slots), "--out", str(out)]
    res = CliRunner().invoke(cli, args + (["--weights", str(weights)] if weights else []))
    assert res.exit_code == 0, res.output + repr(res.exception)
    return out


def tail_of(metrics: Path) -> list[dict[str, str]]:
    """The evaluation slots of a run of SLOTS + EVAL slots: those after the training's."""
    with metrics.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == SLOTS + EVAL
    return rows[SLOTS:]


def assert_row_is_tail(row: dict[str, str], tail: list[dict[str, str]]) -> None:
    """The row's metrics are the means over ``tail`` (D2D outage over transmitting
    pair-slots), computed here from metrics.csv."""
    assert int(row["eval_from_slot"]) == SLOTS and int(row["eval_slots"]) == EVAL
    for col, key in (("total_reward", "total_reward"), ("d2d_sum_mbps", "d2d_sum_rate_mbps"),
                     ("cue_sum_mbps", "cue_sum_rate_mbps"), ("cue_outage", "cue_outage")):
        assert math.isclose(float(row[key]), sum(float(r[col]) for r in tail) / EVAL,
                            rel_tol=1e-12), key
    n = int(row["n_pairs"])
    on = [sum(int(r[f"rb_p{i}"]) >= 0 for i in range(n)) for r in tail]
    bad = sum(round(float(r["d2d_outage"]) * k) for r, k in zip(tail, on, strict=True))
    assert float(row["d2d_outage"]) == bad / sum(on)
    # RB changes between consecutive evaluation slots, pairs transmitting in both
    changed = kept = 0
    for a, b in itertools.pairwise(tail):
        for i in range(n):
            ra, rb = int(a[f"rb_p{i}"]), int(b[f"rb_p{i}"])
            if ra >= 0 and rb >= 0:
                changed, kept = changed + (ra != rb), kept + (ra == rb)
    assert float(row["rb_switch_rate"]) == changed / (changed + kept)


def test_every_scheme_is_measured_on_the_same_slots_after_the_training(compared: Path) -> None:
    assert {(int(r["eval_from_slot"]), int(r["eval_slots"])) for r in rows(compared)} == {
        (SLOTS, EVAL)}


def test_trained_row_is_the_tail_of_an_independent_run_of_its_weights(
        compared: Path, tmp_path: Path) -> None:
    """Its weights act in a run as long as training plus evaluation; the row measures the
    slots after the training's, whose fading the training never saw."""
    row = row_of(compared, "maac", 20, 1)
    weights = Path(row["run_dir"]).parent / "train" / "weights.npz"
    out = run(tmp_path, "maac", 20, 1, SLOTS + EVAL, weights)
    assert_row_is_tail(row, tail_of(out / "metrics.csv"))
    # and Fig. 9 draws the mean over the seeds of what those runs measured
    seeds = [float(row_of(compared, "maac", 20, x)["d2d_sum_rate_mbps"]) for x in SEEDS]
    with (compared / "fig9_d2d_sum_rate.csv").open(newline="") as f:
        fig = [r for r in csv.DictReader(f) if (r["scheme"], r["n_pairs"]) == ("maac", "20")]
    assert len(fig) == 1 and math.isclose(float(fig[0]["d2d_sum_rate_mbps_mean"]),
                                          sum(seeds) / len(seeds), rel_tol=1e-12)


def test_online_row_is_the_tail_of_an_independent_run(compared: Path, tmp_path: Path) -> None:
    row = row_of(compared, "q-learning", 10, 0)
    assert_row_is_tail(row, tail_of(run(tmp_path, "q-learning", 10, 0, SLOTS + EVAL)
                                    / "metrics.csv"))


def test_the_table_gives_each_scheme_as_a_multiple_of_random_on_the_same_seed(
        compared: Path) -> None:
    from controller.evaluation.d2d_compare import load_results, summary_table

    table = summary_table(*load_results(compared))
    col = {c.header: list(c.cells) for c in table.columns}
    by_csv = rows(compared)
    for i, (name, n, lam) in enumerate(zip(col["scheme"], col["N"], col["λ"], strict=True)):
        ratios = []
        for seed in SEEDS:
            mine = [r for r in by_csv if (r["scheme"], r["n_pairs"], r["lambda"], r["seed"])
                    == (name, n, lam, str(seed))]
            base = [r for r in by_csv if (r["scheme"], r["n_pairs"], r["seed"])
                    == ("random", n, str(seed))]
            ratios.append(float(mine[0]["d2d_sum_rate_mbps"])
                          / float(base[0]["d2d_sum_rate_mbps"]))
        mean, std = sum(ratios) / 2, abs(ratios[0] - ratios[1]) / math.sqrt(2)
        assert col["D2D x random"][i] == f"{mean:.3f} ± {std:.3f}", (name, n, lam)
        if name == "random":
            assert col["D2D x random"][i] == "1.000 ± 0.000"


def test_worker_processes_give_the_rows_of_one_process(compared: Path, tmp_path: Path) -> None:
    """`--jobs 2` runs its jobs in two spawned worker processes: every row equals the one
    the comparison above made in its own process (same settings; each job depends only on
    its scheme, N, lambda and seed)."""
    out = tmp_path / "side-by-side"
    res = CliRunner().invoke(cli, [
        "d2d", "compare", "--ns", "10", "--lambdas", "", "--seeds", ",".join(map(str, SEEDS)),
        "--schemes", "maac,naac,dqn,sla", "--slots", str(SLOTS), "--random-slots", "15",
        "--eval-slots", str(EVAL), "--window", "10", "--actor-hidden", "8",
        "--critic-hidden", "8,8,8", "--batch-size", "8", "--jobs", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output + repr(res.exception)
    got = rows(out)
    assert len(got) == 4 * len(SEEDS)
    for r in got:
        want = row_of(compared, r["scheme"], 10, int(r["seed"]))
        for key in ("lambda", "trained", *(k for k in want if k in METRICS)):
            assert r[key] == want[key], (r["scheme"], r["seed"], key)
        assert r["train_final_reward"] == want["train_final_reward"]
    json_rows = json.loads((out / "results.json").read_text())["rows"]
    assert [(r["scheme"], r["seed"]) for r in json_rows] == [  # job order, as one process
        (s, seed) for seed in SEEDS for s in ("maac", "naac", "dqn", "sla")]


def test_a_lambda_of_n_or_more_is_refused_before_anything_runs(tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    res = CliRunner().invoke(cli, ["d2d", "compare", "--ns", "3", "--lambdas", "1,3",
                                   "--sweep-n", "3", "--seeds", "0", "--out", str(out)])
    assert res.exit_code == 2
    assert "NAAC's lambda must be below N: lambda 3 at N = 3" in res.output
    assert not out.exists()


def test_a_bad_override_is_refused_before_anything_runs(tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    res = CliRunner().invoke(cli, ["d2d", "compare", "--quick", "--set", "radio.n_rb=0",
                                   "--out", str(out)])
    assert res.exit_code == 2, res.output
    assert "n_rb" in res.output
    assert not out.exists()


def test_a_failed_run_stops_no_other_and_is_named(tmp_path: Path) -> None:
    from controller.evaluation.d2d_compare import D2dCompareConfig, compare

    cfg = D2dCompareConfig(ns=(10,), lambdas=(), seeds=(0,), schemes=("best-estimate", "random"),
                           train_slots=10, random_slots=5, eval_slots=5, window=5)
    out = tmp_path / "cmp"
    (out / "runs").mkdir(parents=True)
    (out / "runs" / "best-estimate-n10-s0").write_text("a file where its run folder goes")
    notes: list[str] = []
    with pytest.raises(RuntimeError, match=r"1 of 2 runs failed: best-estimate-n10-s0 "):
        compare(cfg, out, console_note=notes.append)
    assert [r["scheme"] for r in rows(out)] == ["random"]  # the other one ran and was kept
    errors = (out / "errors.txt").read_text()
    assert errors.startswith("== best-estimate-n10-s0\n") and "Error" in errors
    assert any(n.startswith("best-estimate-n10-s0: FAILED") for n in notes)
    assert (out / "fig9_d2d_sum_rate.png").exists()
