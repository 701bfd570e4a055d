"""The imitation warm start (controller.training.imitation) against independent checks: its
data set, used as a policy in the real rollout, plays exactly the teacher; fitting brings
the policy towards the teacher; a seed gives the same weights; bad settings are refused;
`rrmbed train --imitate` writes what it did; the default (``auto``) is each trainable
scheme's own teacher."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from channel_server.air import Air
from channel_server.config import load_scenario
from channel_server.rates import sum_rate_bps_hz
from controller.cli.common import cli
from controller.training.imitation import (
    ImitationConfig,
    dataset,
    imitate,
    resolve_teacher,
    teacher_fractions,
)
from controller.training.rollout import play, scheme_for
from controller.training.train import TrainConfig, policy_config_for
from node.policy import seeded_policy
from node.schemes.cellular import trainable
from protocols.seeding import rng_for

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class LookUp:
    """A policy that answers each observation with the data set's target for it (and fails
    on an observation the data set does not hold)."""

    def __init__(self, obs: np.ndarray, targets: np.ndarray) -> None:
        self.table = {row.tobytes(): t for row, t in zip(obs, targets, strict=True)}

    def act(self, obs: np.ndarray, mode: str = "mean", noise: object = None) -> np.ndarray:
        rows = obs.reshape(-1, obs.shape[-1])
        out = np.stack([self.table[np.ascontiguousarray(r).tobytes()] for r in rows])
        return out.reshape(*obs.shape[:-1], -1)


@pytest.mark.parametrize(("scenario", "scheme"), [("3cell-k2", "centralized"),
                                                   ("3cell-k2", "full"),
                                                   ("3cell-k2", "round-robin"),
                                                   ("7cell-k8", "round-robin")])
@pytest.mark.parametrize("teacher", ["fp", "wmmse"])
def test_the_data_set_played_as_a_policy_is_the_teacher(scenario: str, scheme: str,
                                                        teacher: str) -> None:
    """Every observation the rollout builds is in the data set, and answering it with the
    data set's target gives the teacher's powers: the observations are the deciders' own,
    and in the chain each BS sees the powers the teacher gave the BSs before it. The
    targets are fractions, played here through the identity (clip) action map: what other
    maps make of them is :func:`raw_action`'s (tested with the maps)."""
    sc = load_scenario(SCENARIOS / f"{scenario}.toml")
    sc = dataclasses.replace(sc, radio=dataclasses.replace(sc.radio, action_map="clip"))
    radio = sc.radio
    gains = Air(radio, seed=4, episodes=40).reset().copy()
    frac = teacher_fractions(sc, teacher, gains, np.random.default_rng(0))
    assert frac.shape == gains.shape[:3] and frac.min() >= 0.0 and frac.max() <= 1.0 + 1e-12
    obs, targets = dataset(scheme_for(scheme).exchange, sc, gains, frac, rng_for(7, "order"))
    batch = play(LookUp(obs, targets), scheme, gains, radio,  # type: ignore[arg-type]
                 rng_for(7, "order"), mode="mean")
    want = sum_rate_bps_hz(gains, np.clip(frac, 0.0, 1.0) * radio.pmax_w, radio.noise_w)
    np.testing.assert_allclose(batch.sum_rate_bps_hz, want, rtol=1e-12)
    assert obs.shape[0] == batch.obs.shape[0]  # one row per decision


def test_imitation_brings_the_policy_to_the_teacher_and_is_seeded() -> None:
    sc = load_scenario(SCENARIOS / "3cell-k2.toml")
    cfg = ImitationConfig("fp", drops=1500, epochs=4)
    val = Air(sc.radio, seed=99, episodes=500).reset().copy()
    teacher = sum_rate_bps_hz(val, teacher_fractions(sc, "fp", val, None) * sc.radio.pmax_w,
                              sc.radio.noise_w).mean()

    def trained(seed: int) -> tuple[dict[str, object], float, dict[str, np.ndarray]]:
        pol = seeded_policy(policy_config_for("round-robin", sc), 0)
        log_std = pol.log_std.detach().clone()
        out = imitate(pol, "chain", sc, cfg, 5, rng_for(seed, "imitation"))
        assert torch.equal(pol.log_std.detach(), log_std)  # only the mean is fitted
        rate = play(pol, "round-robin", val, sc.radio, rng_for(0, "v"), mode="mean")
        return out, float(rate.sum_rate_bps_hz.mean()), {
            k: v.detach().numpy().copy() for k, v in pol.state_dict().items()}

    untrained = play(seeded_policy(policy_config_for("round-robin", sc), 0), "round-robin",
                     val, sc.radio, rng_for(0, "v"), mode="mean").sum_rate_bps_hz.mean()
    out, rate, weights = trained(1)
    mse = out["mse_per_epoch"]
    assert isinstance(mse, list) and len(mse) == 4 and mse[-1] < 0.7 * mse[0]
    assert out["samples"] == 1500 * sc.radio.n_cells
    # the gap to the teacher shrinks to less than half of the untrained policy's
    assert teacher - rate < 0.5 * (teacher - untrained), (untrained, rate, teacher)
    again, _, weights2 = trained(1)
    assert again["mse_per_epoch"] == mse
    for k in weights:
        np.testing.assert_array_equal(weights[k], weights2[k])
    _, _, other = trained(2)
    assert any(not np.array_equal(weights[k], other[k]) for k in weights)


def test_bad_settings_are_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="'nope' is not a classical.*fp.*wmmse"):
        ImitationConfig("nope")
    with pytest.raises(ValueError, match="must be >= 1"):
        ImitationConfig("fp", drops=0)
    with pytest.raises(ValueError, match="user selection"):
        TrainConfig("trpo", "centralized", 10, user_selection=True,
                    imitation=ImitationConfig("fp"))


def test_train_imitate_writes_the_warm_start(tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = CliRunner().invoke(cli, [
        "train", str(SCENARIOS / "3cell-k2.toml"), "--scheme", "round-robin", "--imitate",
        "fp", "--imitation-drops", "300", "--imitation-epochs", "2", "--steps", "120",
        "--episodes", "40", "--seeds", "0", "--validation-episodes", "50", "--out", str(out)])
    assert res.exit_code == 0, res.output + repr(res.exception)
    warm = json.loads((out / "seed-0" / "imitation.json").read_text())
    assert (warm["teacher"], warm["drops"], warm["epochs"]) == ("fp", 300, 2)
    assert len(warm["mse_per_epoch"]) == 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seeds"][0]["imitation"] == warm
    assert 'teacher = "fp"' in (out / "config.toml").read_text()
    # refused before anything is written: an unknown teacher; --weights with a teacher, or
    # with the local runner (which starts from the seed's weights or the warm start)
    bad = CliRunner().invoke(cli, ["train", str(SCENARIOS / "3cell-k2.toml"), "--imitate",
                                   "nope", "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "'nope' is not a classical" in bad.output
    assert not (tmp_path / "bad").exists()
    weights = str(out / "seed-0" / "weights.npz")
    both = CliRunner().invoke(cli, ["train", str(SCENARIOS / "3cell-k2.toml"), "--scheme",
                                    "round-robin", "--imitate", "fp", "--runner", "network",
                                    "--weights", weights, "--out", str(tmp_path / "n")])
    assert both.exit_code == 2 and "not both" in both.output
    local = CliRunner().invoke(cli, ["train", str(SCENARIOS / "3cell-k2.toml"), "--weights",
                                     weights, "--out", str(tmp_path / "l")])
    assert local.exit_code == 2 and "--weights is the network runner's" in local.output
    assert not (tmp_path / "n").exists() and not (tmp_path / "l").exists()


def test_the_default_warm_start_is_each_schemes_winning_teacher() -> None:
    """``auto``: wmmse for the central policy, fp for the BS policies (what won in the
    README's table); none where imitation does not apply; ``none`` is the paper's recipe."""
    expected = {"centralized": "wmmse", "round-robin": "fp", "full": "fp"}
    schemes = {s.name: s for s in trainable()}
    assert set(schemes) == set(expected)
    for name, teacher in expected.items():
        s = schemes[name]
        assert resolve_teacher("auto", s) == teacher
        ImitationConfig(teacher)  # a classical scheme with a batch allocator
        assert resolve_teacher("auto", s, user_selection=True) is None
        assert resolve_teacher("auto", s, weights=True) is None
        assert resolve_teacher("none", s) is None
        assert resolve_teacher("wmmse", s) == "wmmse"
        with pytest.raises(ValueError, match="not both"):
            resolve_teacher("fp", s, weights=True)


def test_imitate_none_is_the_papers_recipe(tmp_path: Path) -> None:
    """``--imitate none`` trains from the seeded weights: no warm start written, and the
    first update's batch was played by the seeded policy (its curve starts where the
    default's does not)."""
    runs = {}
    for choice in ("none", "auto"):
        out = tmp_path / choice
        res = CliRunner().invoke(cli, [
            "train", str(SCENARIOS / "3cell-k2.toml"), "--imitate", choice,
            "--imitation-drops", "300", "--imitation-epochs", "2", "--steps", "40",
            "--episodes", "40", "--seeds", "0", "--validation-episodes", "50",
            "--out", str(out)])
        assert res.exit_code == 0, res.output + repr(res.exception)
        runs[choice] = json.loads((out / "summary.json").read_text())["seeds"][0]
    assert "imitation" not in runs["none"] and not (tmp_path / "none" / "seed-0" /
                                                    "imitation.json").exists()
    assert runs["auto"]["imitation"]["teacher"] == "wmmse"
    assert runs["none"]["final_sum_rate_mbps"] != runs["auto"]["final_sum_rate_mbps"]


def test_a_resumed_run_keeps_its_warm_start_and_ends_as_an_uninterrupted_one(
        tmp_path: Path) -> None:
    from controller.training.train import train

    warm = ImitationConfig("wmmse", drops=200, epochs=2)
    common = dict(seeds=[3], episodes_per_iter=12, progress=False, checkpoint_every=1,
                  validation_episodes=20, plots=False, imitation=warm)
    path = SCENARIOS / "3cell-k2.toml"
    a = train(path, "trpo", "centralized", steps=36, out=tmp_path / "a", **common)  # type: ignore[arg-type]
    train(path, "trpo", "centralized", steps=24, out=tmp_path / "b", **common)  # type: ignore[arg-type]
    b = train(path, "trpo", "centralized", steps=36, out=tmp_path / "b", resume=True,
              **common)  # type: ignore[arg-type]
    assert b["seeds"][0]["resumed_from_iteration"] == 2
    first = json.loads((tmp_path / "b" / "seed-3" / "imitation.json").read_text())
    assert b["seeds"][0]["imitation"] == first  # not imitated again
    assert {k: v for k, v in first.items() if k != "wall_s"} == {
        k: v for k, v in a["seeds"][0]["imitation"].items() if k != "wall_s"}
    wa = np.load(tmp_path / "a" / "seed-3" / "weights.npz")
    wb = np.load(tmp_path / "b" / "seed-3" / "weights.npz")
    for k in wa.files:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)
