"""Training driver, checkpoints, evaluation and figure helpers, against independent
computations: hand-built observations and plain-loop sum-rates, a direct call of the
baselines on the same realizations, an uninterrupted run as the reference of a resumed one,
and hand arithmetic for the EWMA and the rescaling rule."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from channel_server.air import Air
from channel_server.config import RadioConfig, load_scenario
from controller.baselines.wmmse import wmmse
from controller.bench.trpo import time_to_reach, trailing_mean
from controller.evaluation.evaluate import evaluate_local, fit_bs_budget, policy_fractions
from controller.evaluation.files import PLOTS_ENV
from controller.evaluation.plots import ewma
from controller.learners.threads import native_bfloat16
from controller.training.rollout import play
from controller.training.train import (
    VALIDATION_SEED,
    SeedTrainer,
    TrainConfig,
    latest_checkpoint,
    load_checkpoint,
    rng_state,
    set_rng_state,
    train,
)
from node.observation import central_dims, full_dims, obs_central, obs_full, round_robin_dims
from node.policy import GaussianPolicy, PolicyConfig, save_weights, seeded_policy
from node.policy_spec import power_fraction, read_weights
from protocols.seeding import rng_for

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "3cell-k2.toml"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def radio_3cell() -> RadioConfig:
    return load_scenario(SCENARIO).radio


def loop_sum_rate(gains: np.ndarray, powers: np.ndarray, noise_w: float) -> float:
    """sum_(c,k) log2(1 + p_ck g_ckc / (sum_(b,k') != (c,k) p_bk' g_bkc + noise)), plain loops."""
    n_bs, n_users = powers.shape
    total = 0.0
    for c in range(n_bs):
        for k in range(n_users):
            interference = 0.0
            for b in range(n_bs):
                for kk in range(n_users):
                    if (b, kk) != (c, k):
                        interference += powers[b, kk] * gains[b, k, c]
            total += math.log2(1.0 + powers[c, k] * gains[c, k, c] / (interference + noise_w))
    return total


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


# --------------------------------------------------------------------------- helpers


def test_ewma_matches_hand_computation() -> None:
    # s1 = 1; s2 = 0.96*1 + 0.04*2 = 1.04; s3 = 0.96*1.04 + 0.04*4 = 1.1584
    np.testing.assert_allclose(ewma([1.0, 2.0, 4.0], 0.96), [1.0, 1.04, 1.1584], rtol=1e-15)
    # w = 0.5: s = 4, 0.5*4 + 0.5*0 = 2, 0.5*2 + 0.5*8 = 5
    np.testing.assert_allclose(ewma([4.0, 0.0, 8.0], 0.5), [4.0, 2.0, 5.0])


def test_bs_budget_rule_by_hand() -> None:
    a = np.array([[[0.8, 0.6], [0.2, 0.3], [1.0, 0.0]]])
    want = np.array([[[0.8 / 1.4, 0.6 / 1.4], [0.2, 0.3], [1.0, 0.0]]])
    np.testing.assert_allclose(fit_bs_budget(a), want, rtol=1e-15)


def test_trailing_mean_and_time_to_reach_by_hand() -> None:
    x = np.array([1.0, 3.0, 5.0, 7.0])
    np.testing.assert_allclose(trailing_mean(x, 2), [1.0, 2.0, 4.0, 6.0])
    wall = np.array([10.0, 20.0, 30.0, 40.0])
    assert time_to_reach(wall, x, 4.0, 2) == 30.0
    assert time_to_reach(wall, x, 6.5, 2) is None


def test_rng_state_round_trip() -> None:
    rng = rng_for(5, "x")
    rng.standard_normal(7)
    rng.integers(10)  # leaves a cached 32-bit half
    saved = rng_state(rng)
    want = (rng.standard_normal(3), rng.integers(2**20, size=3))
    other = rng_for(99, "y")
    set_rng_state(other, saved)
    got = (other.standard_normal(3), other.integers(2**20, size=3))
    np.testing.assert_array_equal(want[0], got[0])
    np.testing.assert_array_equal(want[1], got[1])


# --------------------------------------------------------------------------- training


@pytest.mark.parametrize("plots", ["1", "0"])
def test_tiny_training_writes_the_run_directory(tmp_path: Path, plots: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Every file of the run directory; the PNGs only where RRMBED_PLOTS is not 0."""
    monkeypatch.setenv(PLOTS_ENV, plots)
    radio = radio_3cell()
    m, b_n = 16, radio.n_cells
    out = tmp_path / "run"
    summary = train(SCENARIO, "trpo", "full", steps=2 * m * b_n, seeds=[3, 4], out=out,
                    episodes_per_iter=m, progress=False, checkpoint_every=1,
                    validation_episodes=40)
    for name in ("config.toml", "summary.json", "metrics.csv", "best-weights.npz"):
        assert (out / name).is_file(), name
    pngs = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert pngs == (["plots/training.png", "seed-3/plots/training.png",
                     "seed-4/plots/training.png"] if plots == "1" else [])
    for s in (3, 4):
        d = out / f"seed-{s}"
        for name in ("config.toml", "summary.json", "metrics.csv", "weights.npz",
                     "checkpoints/ckpt-000001.npz", "checkpoints/ckpt-000002.npz"):
            assert (d / name).is_file(), f"seed-{s}/{name}"
        rows = read_rows(d / "metrics.csv")
        assert [int(r["iteration"]) for r in rows] == [1, 2]
        assert [int(r["steps"]) for r in rows] == [m * b_n, 2 * m * b_n]  # B steps/episode
        assert [int(r["episodes"]) for r in rows] == [m, 2 * m]
        x = [float(r["sum_rate_mbps"]) for r in rows]
        assert float(rows[1]["ewma_mbps"]) == pytest.approx(0.96 * x[0] + 0.04 * x[1])
        assert float(rows[0]["sum_rate_mbps"]) == pytest.approx(
            float(rows[0]["sum_rate_bps_hz"]) * radio.bandwidth_hz / 1e6)
        # every checkpoint array loads without pickle
        ck = load_checkpoint(d / "checkpoints" / "ckpt-000002.npz")
        assert ck["counters"][0] == 2 and str(ck["meta.scheme"]) == "full"

    # final weights load into the full-scheme policy; the summary's validation sum-rate
    # is reproduced from hand-built observations and a plain-loop sum-rate
    by_seed = {r["seed"]: r for r in summary["seeds"]}
    val_gains = Air(radio, VALIDATION_SEED, episodes=40).reset()
    for s in (3, 4):
        policy = GaussianPolicy(PolicyConfig(*full_dims(radio)))
        policy.load_state_dict({k: torch.as_tensor(v) for k, v in
                                read_weights(out / f"seed-{s}" / "weights.npz").items()})
        rates = []
        for e in range(40):
            fr = np.zeros((b_n, radio.users_per_cell))
            for b in range(b_n):
                own = np.roll(val_gains[e, b], -b, axis=-1)  # own cell first
                obs = np.clip((10 * np.log10(own * radio.pmax_w / radio.noise_w) - 20) / 20,
                              -3, 3).reshape(-1)
                with torch.no_grad():
                    fr[b] = power_fraction(policy.mean_net(torch.as_tensor(obs)).numpy(),
                                           radio.action_map)
            rates.append(loop_sum_rate(val_gains[e], fr * radio.pmax_w, radio.noise_w))
        assert by_seed[s]["validation_sum_rate_bps_hz"] == pytest.approx(np.mean(rates),
                                                                         rel=1e-9)
    best = max(summary["seeds"], key=lambda r: r["validation_sum_rate_bps_hz"])["seed"]
    assert summary["best_seed"] == best
    assert (out / "best-weights.npz").read_bytes() == (
        out / f"seed-{best}" / "weights.npz").read_bytes()
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["best_seed"] == best and on_disk["iterations_per_seed"] == 2


@pytest.mark.parametrize(("algo", "scheme", "options"), [
    ("trpo", "centralized", {}), ("a2c", "round-robin", {}),
    ("trpo", "round-robin", {"normalize_returns": True})])
def test_resumed_checkpoint_gives_the_same_next_update(
    tmp_path: Path, algo: str, scheme: str, options: dict[str, object]
) -> None:
    radio = radio_3cell()
    m = 12
    per_iter = m * (1 if scheme == "centralized" else radio.n_cells)
    common = dict(seeds=[7], episodes_per_iter=m, progress=False, checkpoint_every=1,
                  validation_episodes=20, plots=False, learner_options=options)
    # reference: three uninterrupted iterations
    train(SCENARIO, algo, scheme, steps=3 * per_iter, out=tmp_path / "a", **common)  # type: ignore[arg-type]
    # two iterations, stop, then resume from the checkpoint for the third
    train(SCENARIO, algo, scheme, steps=2 * per_iter, out=tmp_path / "b", **common)  # type: ignore[arg-type]
    assert latest_checkpoint(tmp_path / "b" / "seed-7") is not None
    res = train(SCENARIO, algo, scheme, steps=3 * per_iter, out=tmp_path / "b", resume=True,
                **common)  # type: ignore[arg-type]
    assert res["seeds"][0]["resumed_from_iteration"] == 2
    wa = read_weights(tmp_path / "a" / "seed-7" / "weights.npz")
    wb = read_weights(tmp_path / "b" / "seed-7" / "weights.npz")
    assert wa.keys() == wb.keys()
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)
    ra = read_rows(tmp_path / "a" / "seed-7" / "metrics.csv")
    rb = read_rows(tmp_path / "b" / "seed-7" / "metrics.csv")
    assert len(ra) == len(rb) == 3
    for col in ("sum_rate_bps_hz", "kl", "value_loss", "std", "steps"):
        assert [r[col] for r in ra] == [r[col] for r in rb], col
    # the third update really moved the policy (the comparison is not vacuous)
    ck2 = load_checkpoint(tmp_path / "b" / "seed-7" / "checkpoints" / "ckpt-000002.npz")
    moved = max(float(np.abs(ck2[f"policy.{k}"] - wa[k]).max()) for k in wa)
    assert moved > 0.0
    assert ("value.shift" in ck2) == bool(options)  # V's return statistics are checkpointed


# --------------------------------------------------------------------------- evaluation


def _saved_policy(tmp_path: Path, scheme: str, dims: tuple[int, int], seed: int) -> Path:
    policy = seeded_policy(PolicyConfig(*dims), seed)
    path = tmp_path / f"{scheme}.npz"
    save_weights(path, policy, scheme=np.array(scheme), pmax_dbm=np.array(43.0),
                 action_map=np.array(load_scenario(SCENARIO).radio.action_map))
    return path


def test_evaluate_orders_optimum_first_and_matches_direct_computations(tmp_path: Path) -> None:
    radio = radio_3cell()
    n, seed = 50, 11
    srcs = [_saved_policy(tmp_path, "centralized", central_dims(radio), 1),
            _saved_policy(tmp_path, "round-robin", round_robin_dims(radio), 2),
            _saved_policy(tmp_path, "full", full_dims(radio), 3)]
    res = evaluate_local(srcs, SCENARIO, n=n, seed=seed, out=tmp_path / "ev",
                         sweep_dbm=(30.0, 43.0, 50.0))
    methods = res["per_user"]["methods"]
    assert set(methods) == {"optimum", "centralized", "round-robin", "full", "wmmse", "fp",
                            "random", "max-power"}
    opt = methods["optimum"]["mean_sum_rate_bps_hz"]
    eps = 1e-3  # the branch and bound certifies the optimum within this relative gap
    for name, m in methods.items():
        assert opt >= m["mean_sum_rate_bps_hz"] - eps * opt, name
        assert m["gap_pct"] == pytest.approx(100 * (opt - m["mean_sum_rate_bps_hz"]) / opt)
    assert opt >= methods["wmmse"]["mean_sum_rate_bps_hz"] - eps * opt

    # the same realizations, computed directly
    gains = Air(radio, seed, episodes=n).reset()
    p_w, _ = wmmse(gains, radio.noise_w, radio.pmax_w)
    wm = np.mean([loop_sum_rate(gains[e], p_w[e], radio.noise_w) for e in range(n)])
    assert methods["wmmse"]["mean_sum_rate_bps_hz"] == pytest.approx(wm, rel=1e-12)
    mp = np.mean([loop_sum_rate(gains[e], np.full((3, 2), radio.pmax_w), radio.noise_w)
                  for e in range(n)])
    assert methods["max-power"]["mean_sum_rate_bps_hz"] == pytest.approx(mp, rel=1e-12)
    central = seeded_policy(PolicyConfig(*central_dims(radio)), 1)
    with torch.no_grad():
        frac = power_fraction(central.mean_net(torch.as_tensor(obs_central(gains, radio)))
                              .numpy(), radio.action_map).reshape(n, 3, 2)
    cen = np.mean([loop_sum_rate(gains[e], frac[e] * radio.pmax_w, radio.noise_w)
                   for e in range(n)])
    assert methods["centralized"]["mean_sum_rate_bps_hz"] == pytest.approx(cen, rel=1e-12)

    # Fig. 14: the 43-dBm fractions scaled by the new Pmax (observations as in training)
    low = res["pmax_sweep"]["points"][0]
    assert low["pmax_dbm"] == 30.0
    pmax30 = 10 ** ((30.0 - 30) / 10)
    scaled = np.mean([loop_sum_rate(gains[e], frac[e] * pmax30, radio.noise_w)
                      for e in range(n)])
    assert low["methods"]["centralized"]["mean_sum_rate_bps_hz"] == pytest.approx(scaled,
                                                                                  rel=1e-12)
    for pt in res["pmax_sweep"]["points"]:
        o = pt["methods"]["optimum"]["mean_sum_rate_bps_hz"]
        assert all(o >= m["mean_sum_rate_bps_hz"] - eps * o for m in pt["methods"].values())

    # Fig. 15: every method keeps each BS within the budget; the policy follows the rule
    sp = res["sum_power"]
    assert sp["max_bs_power_over_budget"] <= 1.0 + 1e-9
    ruled = frac / np.maximum(frac.sum(axis=-1, keepdims=True), 1.0)
    want = np.mean([loop_sum_rate(gains[e], ruled[e] * radio.pmax_w, radio.noise_w)
                    for e in range(n)])
    assert sp["methods"]["centralized"]["mean_sum_rate_bps_hz"] == pytest.approx(want,
                                                                                  rel=1e-12)
    # files
    rows = read_rows(tmp_path / "ev" / "evaluation.csv")
    assert len(rows) == 8 + 3 * 8 + 7  # per-user, 3 sweep points, sum-power (no optimum)
    for png in ("sum_rate_bars.png", "pmax_sweep.png", "sum_power_bars.png"):
        assert (tmp_path / "ev" / "plots" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_round_robin_evaluation_equals_the_rollout_with_the_same_orders() -> None:
    radio = radio_3cell()
    gains = Air(radio, 4, episodes=30).reset()
    policy = seeded_policy(PolicyConfig(*round_robin_dims(radio)), 9)
    frac = policy_fractions(policy, "round-robin", gains, radio, rng_for(1, "order"))
    batch = play(policy, "round-robin", gains, radio, rng_for(1, "order"), mode="mean")
    mine = [loop_sum_rate(gains[e], frac[e] * radio.pmax_w, radio.noise_w) for e in range(30)]
    np.testing.assert_allclose(mine, batch.sum_rate_bps_hz, rtol=1e-12)
    # and the full scheme: each BS acts on its own rolled CSI alone
    pf = seeded_policy(PolicyConfig(*full_dims(radio)), 2)
    ff = policy_fractions(pf, "full", gains, radio, rng_for(1, "order"))
    with torch.no_grad():
        want = power_fraction(pf.mean_net(torch.as_tensor(obs_full(gains[:, 1], 1, radio)))
                              .numpy(), radio.action_map)
    np.testing.assert_allclose(ff[:, 1], want, rtol=1e-15)


def test_train_resume_continues_a_local_run_from_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`rrmbed train --resume OUT --steps N` takes the run's own settings (its config.toml:
    scenario with its --set overrides, scheme, M, seeds, warm start, learner options) and
    ends as the uninterrupted run of N steps."""
    from click.testing import CliRunner

    from controller.cli.common import cli

    monkeypatch.setenv(PLOTS_ENV, "0")
    common = ["--scheme", "centralized", "--episodes", "12", "--seeds", "5",
              "--checkpoint-every", "1", "--validation-episodes", "20",
              "--imitate", "wmmse", "--imitation-drops", "200", "--imitation-epochs", "2",
              "--learner-option", "value_hidden=[16]", "--learner-option", "max_kl=0.02"]
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    clip = ["--set", "radio.action_map=clip"]  # the file says log
    for out, steps, sets in ((a, "36", clip), (b, "24", clip), (c, "36", [])):
        res = CliRunner().invoke(cli, ["train", str(SCENARIO), "--steps", steps,
                                       "--out", str(out), *common, *sets])
        assert res.exit_code == 0, res.output
    assert "[train.learner_options]\nmax_kl = 0.02\nvalue_hidden = [16]" in (
        b / "config.toml").read_text()
    assert 'action_map = "clip"' in (b / "config.toml").read_text()
    assert 'action_map = "log"' in (c / "config.toml").read_text()
    wc = read_weights(c / "seed-5" / "weights.npz")  # the override changed the training
    assert not np.array_equal(wc["mean_net.0.weight"],
                              read_weights(a / "seed-5" / "weights.npz")["mean_net.0.weight"])
    res = CliRunner().invoke(cli, ["train", "--resume", str(b), "--steps", "36"])
    assert res.exit_code == 0, res.output  # a value net of 16 units: the option came back
    summary = json.loads((b / "summary.json").read_text())
    assert summary["steps_per_seed"] == 36 and summary["iterations_per_seed"] == 3
    assert summary["seeds"][0]["resumed_from_iteration"] == 2
    # value_dtype = auto, resolved by this CPU
    assert summary["seeds"][0]["value_dtype"] == ("bfloat16" if native_bfloat16() else "float32")
    wa = read_weights(a / "seed-5" / "weights.npz")
    wb = read_weights(b / "seed-5" / "weights.npz")
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)
    assert len(read_rows(b / "seed-5" / "metrics.csv")) == 3
    # without --steps, the run's own budget: nothing left to do, the weights stay
    res = CliRunner().invoke(cli, ["train", "--resume", str(b)])
    assert res.exit_code == 0, res.output
    assert json.loads((b / "summary.json").read_text())["steps_per_seed"] == 36
    wb2 = read_weights(b / "seed-5" / "weights.npz")
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb2[k], err_msg=k)
    # what is not a run's OUT folder is refused with a message that names it
    seed_dir = CliRunner().invoke(cli, ["train", "--resume", str(b / "seed-5")])
    assert seed_dir.exit_code == 2 and "not a seed's" in seed_dir.output
    (tmp_path / "empty").mkdir()
    empty = CliRunner().invoke(cli, ["train", "--resume", str(tmp_path / "empty")])
    assert empty.exit_code == 2 and "config.toml" in empty.output
    both = CliRunner().invoke(cli, ["train", str(SCENARIO), "--resume", str(b)])
    assert both.exit_code == 2 and "give no SCENARIO" in both.output
    sets = CliRunner().invoke(cli, ["train", "--resume", str(b), *clip])
    assert sets.exit_code == 2 and "or --set" in sets.output


def test_weights_run_only_where_the_radio_is_seen_as_in_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The weights header records the action map (and feature scaling) of the training;
    `rrmbed run` and `rrmbed evaluate` refuse them on a scenario that maps otherwise,
    naming the field, and run them with the --set that restores it."""
    from click.testing import CliRunner

    from controller.cli.common import cli
    from controller.evaluation.evaluate import load_policy
    from protocols.weights import read_meta

    monkeypatch.setenv(PLOTS_ENV, "0")
    res = CliRunner().invoke(cli, ["train", str(SCENARIO), "--scheme", "centralized",
                                   "--steps", "24", "--episodes", "12", "--imitate", "none",
                                   "--validation-episodes", "10", "--out", str(tmp_path / "t"),
                                   "--set", "radio.action_map=clip"])
    assert res.exit_code == 0, res.output
    w = tmp_path / "t" / "seed-0" / "weights.npz"
    assert read_meta(w)["action_map"] == "clip" and read_meta(w)["feature_scale_db"] == 20.0
    run = ["run", str(SCENARIO), "--scheme", "centralized", "--runner", "local", "--slots",
           "3", "--weights", str(w)]
    refused = CliRunner().invoke(cli, [*run, "--out", str(tmp_path / "r1")])
    assert refused.exit_code == 2
    assert "radio.action_map = 'clip' in training, 'log' here" in refused.output
    ok = CliRunner().invoke(cli, [*run, "--out", str(tmp_path / "r2"),
                                  "--set", "radio.action_map=clip"])
    assert ok.exit_code == 0, ok.output
    with pytest.raises(ValueError, match="radio.action_map = 'clip' in training"):
        load_policy(w, load_scenario(SCENARIO))


def test_learner_options_reach_the_learner_and_change_the_training() -> None:
    """``TrainConfig.learner_options`` set the learner's config fields; a larger trust region
    moves the policy further in the same update; a bad option is refused before any run."""
    from controller.learners.trpo import Trpo

    scenario = load_scenario(SCENARIO)
    base = TrainConfig("trpo", "centralized", 20, episodes_per_iter=10)
    wide = TrainConfig("trpo", "centralized", 20, episodes_per_iter=10,
                       learner_options=(("max_kl", 0.05), ("value_hidden", [16, 8])))
    trainers = [SeedTrainer(scenario, c, 3) for c in (base, wide)]
    learners = [t.learner for t in trainers]
    assert isinstance(learners[1], Trpo)
    assert learners[1].cfg.max_kl == 0.05 and learners[1].cfg.value_hidden == (16, 8)
    assert [m.out_features for m in learners[1].value if isinstance(m, torch.nn.Linear)] == [
        16, 8, 1]
    assert learners[0].cfg == type(learners[1].cfg)()  # no options: the defaults
    kl = [t.step()["kl"] for t in trainers]
    assert 0.005 < kl[0] <= 0.01 < kl[1] <= 0.05, kl
    with pytest.raises(ValueError, match="has no option 'max_kll'.*known: backtrack_coef"):
        TrainConfig("trpo", "centralized", 20, learner_options=(("max_kll", 0.05),))
    with pytest.raises(ValueError, match="trpo option max_kl: expected a number"):
        TrainConfig("trpo", "centralized", 20, learner_options=(("max_kl", "wide"),))
    with pytest.raises(ValueError, match="TrpoConfig: max_kl must be > 0"):
        TrainConfig("trpo", "centralized", 20, learner_options=(("max_kl", 0),))
    with pytest.raises(ValueError, match=r"M, are the run's \(--episodes\)"):
        TrainConfig("trpo", "centralized", 20, learner_options=(("episodes_per_iteration", 5),))


def test_observation_features_follow_the_scenarios_center_and_scale() -> None:
    """A gain enters the policy as (full-power SNR dB - feature_center_db) /
    feature_scale_db, clipped to [-3, 3], own cell first; a scale <= 0 is refused."""
    import dataclasses

    from channel_server.config import ScenarioError, scenario_from_dict, scenario_to_dict

    radio = radio_3cell()
    snr_db = np.array([[35.0, -10.0, 5.0], [80.0, 20.0, -60.0]])  # (K, B) of one BS
    gains = 10.0 ** (snr_db / 10.0) * radio.noise_w / radio.pmax_w
    for center, scale in ((20.0, 20.0), (-10.0, 5.0)):
        moved = dataclasses.replace(radio, feature_center_db=center, feature_scale_db=scale)
        want = np.clip((snr_db - center) / scale, -3.0, 3.0)[:, [1, 2, 0]].reshape(-1)
        np.testing.assert_allclose(obs_full(gains, 1, moved), want, rtol=1e-12, atol=1e-12)
    assert radio.feature_center_db == 20.0 and radio.feature_scale_db == 20.0
    table = scenario_to_dict(load_scenario(SCENARIO))
    table["radio"]["feature_scale_db"] = 0.0
    with pytest.raises(ScenarioError, match="radio.feature_scale_db must be > 0"):
        scenario_from_dict(table, "bad.toml")
