"""ALCOR (paper 004) over the cellular kind's central deciders, on real processes: WMMSE and
a trained (here: seeded) centralized policy of paper 001 as the black-box allocator.

Checked against an independent replay, slot by slot: the cellular air's channel rebuilt
from the seed, each user's selection drawn from its own stream with Algorithm 1's
activation probabilities (stepped here with :func:`node.alcor.step` on the rates the replay
computes itself), the allocator run on ``H_xi`` with the users off at 0 W. Both runners
give the same metrics.csv, byte for byte."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from channel_server.air import Air
from channel_server.demands import demands_at
from channel_server.kinds import resolve
from channel_server.rates import rates_bps_hz
from controller.baselines.batch import wmmse_powers
from node.alcor import AlcorConfig, initial_state, step
from protocols.seeding import rng_for
from tests.helpers import SCENARIOS, read_csv, rrmbed, run_dir, seeded_weights

SC = SCENARIOS / "alcor-7cell-k3.toml"
B, K = 7, 3
N = B * K
SETS = {"demands.phase_starts": [0, 60, 120], "alcor.batch": 10}
ARGS = tuple(x for k, v in SETS.items() for x in ("--set", f"{k}={v}"))


def user_columns(row: dict[str, str], name: str) -> np.ndarray:
    return np.array([float(row[f"{name}_bs{b}_u{k}"]) for b in range(B) for k in range(K)])


def powers(row: dict[str, str]) -> np.ndarray:
    return np.array([float(row[f"p_bs{b}_u{k}_w"]) for b in range(B) for k in range(K)])


def replay(rows: list[dict[str, str]], seed: int, allocate: Any) -> np.ndarray:
    """Play the run again from the seed alone and check every slot's selection, powers and
    rates; return the final multipliers."""
    s = resolve(SC, SETS).scenario
    radio = s.radio
    air = Air(radio, seed, episodes=1)
    cfg = AlcorConfig(alpha=s.alcor.alpha, gamma=s.alcor.gamma, batch=s.alcor.batch)
    state = initial_state(N)
    streams = [rng_for(seed, "alcor", "usv", i) for i in range(N)]
    sums = np.zeros((2, N))
    off = 0
    for n, row in enumerate(rows):
        gains = (air.reset() if n == 0 else air.step())[0]
        on = np.array([st.random() for st in streams]) < state.kappa
        mask = on.reshape(B, K)
        p = allocate(gains * mask.T[None]) * mask  # gains[b, k, c]: user (c, k)
        assert [int(row[f"on_bs{b}_u{k}"]) for b in range(B) for k in range(K)] == \
            on.astype(int).tolist(), n
        assert powers(row) == pytest.approx(p.ravel(), rel=1e-9, abs=1e-12), n
        rates = rates_bps_hz(gains, p, radio.noise_w).ravel()
        assert user_columns(row, "rate") == pytest.approx(rates, rel=1e-9, abs=1e-12), n
        u = demands_at(s.demands, N, seed, n)
        assert user_columns(row, "u_min").tolist() == u.tolist()
        sums[(n % 20) // 10] += u - rates
        if n % 20 == 19:
            state = step(state, sums[0] / 10, sums[1] / 10, cfg)
            sums[:] = 0.0
        off += int((~on).sum())
    assert off > 0  # the demands switch users off
    return state.lam


def test_alcor_over_wmmse_equals_an_independent_replay(tmp_path: Path) -> None:
    out = run_dir(tmp_path, SC, "alcor-wmmse", "local", 160, 2, *ARGS)
    rows = read_csv(out / "metrics.csv")
    s = resolve(SC, SETS).scenario
    lam = replay(rows, 2, lambda g: wmmse_powers(g[None], s.radio, s.baselines)[0][0])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["alcor_lambda"][-1][1] == pytest.approx(lam.tolist(), rel=1e-9, abs=1e-12)
    assert [p["first_slot"] for p in summary["demand_phases"]] == [0, 60, 120]
    assert all(float(r["violation_pct"]) >= 0 for r in rows)


def test_alcor_over_a_trained_policy_on_both_runners(tmp_path: Path) -> None:
    """alcor-centralized: the policy's mean on H_xi, the users off at 0 W; the network
    runner (real BS processes uploading their CSI) equals the in-memory pump."""
    from node.agent import policy_with_weights
    from node.observation import obs_central
    from node.policy_spec import power_fraction
    from protocols.weights import read_arrays

    weights = seeded_weights(tmp_path / "w.npz", "centralized", SC, 7)
    outs = {r: run_dir(tmp_path / r, SC, "alcor-centralized", r, 80, 4, *ARGS, "--weights",
                       str(weights), *(("--no-telemetry",) if r == "network" else ()))
            for r in ("network", "local")}
    rows = read_csv(outs["network"] / "metrics.csv")
    assert rows == read_csv(outs["local"] / "metrics.csv")
    s = resolve(SC, SETS).scenario
    policy = policy_with_weights("centralized", s, read_arrays(weights))

    def allocate(g: np.ndarray) -> np.ndarray:
        raw = policy.act(obs_central(g[None], s.radio), "mean", None)
        return np.asarray(power_fraction(raw)).reshape(B, K) * s.radio.pmax_w

    replay(rows, 4, allocate)


def test_demands_already_met_leave_the_allocator_alone(tmp_path: Path) -> None:
    """The simple update with small demands (0.01 bit/s/Hz) on the users WMMSE serves at more
    than 1 bit/s/Hz: lambda stays 0, every user is on, the powers are plain WMMSE's."""
    plain = read_csv(run_dir(tmp_path / "free", SC, "wmmse", "local", 60, 5) / "metrics.csv")
    rates = np.mean([user_columns(r, "rate") for r in plain], axis=0)
    u = np.where(rates > 1.0, 0.01, 0.0)
    assert u.any()
    tiny = ("--set", f"demands.u_min_bps_hz=[{u.tolist()}]", "--set",
            "demands.phase_starts=[0]", "--set", 'alcor.update="simple"')
    alcor = read_csv(run_dir(tmp_path, SC, "alcor-wmmse", "local", 60, 5, *tiny)
                     / "metrics.csv")
    plain = read_csv(run_dir(tmp_path, SC, "wmmse", "local", 60, 5, *tiny) / "metrics.csv")
    assert np.array_equal([powers(r) for r in alcor], [powers(r) for r in plain])
    assert all(int(r[f"on_bs{b}_u{k}"]) == 1 for r in alcor for b in range(B) for k in range(K))


def test_alcor_needs_weights_and_stays_out_of_paper_001s_tables(tmp_path: Path) -> None:
    from channel_server.config import load_scenario
    from node.schemes.cellular import sum_rate_schemes

    res = rrmbed("run", str(SC), "--scheme", "alcor-centralized", "--runner", "local",
                 "--slots", "5", "--out", str(tmp_path / "x"))
    assert res.returncode != 0 and "--weights" in res.stderr + res.stdout
    names = [s.name for s in sum_rate_schemes(load_scenario(SC).radio)]
    assert "wmmse" in names and not any(n.startswith("alcor") for n in names)
