"""ALCOR's pure core (paper 004): kappa, one Algorithm 1 step by hand, the violation (12),
no change to the URA when the demands are already met, distributed = centralized with the
exact max, recovery from a missed demand, seed determinism; and the baselines' pieces."""

from __future__ import annotations

import numpy as np
import pytest

from channel_server.demands import (
    DemandSchedule,
    RandomDemandConfig,
    paper_phases,
    random_schedule,
)
from channel_server.interference import sum_rates
from controller.alcor.channels import GaussianStream, SevenCellConfig, SevenCellStream
from controller.alcor.constrained import (
    ConstrainedConfig,
    least_power_point,
    normalized,
    rates_of,
    solve_instance,
    sum_rate_grad,
)
from controller.alcor.metrics import (
    RecoveryConfig,
    moving_average,
    recovery_slots,
    violation,
)
from controller.alcor.run import allocator_power_fn, run_alcor, run_fixed
from controller.baselines.ic import ic_wmmse
from node.alcor import (
    AlcorConfig,
    activation_probabilities,
    distributed_step,
    exact_max,
    flooding_max,
    initial_state,
    sample_usv,
    simple_step,
    state_from,
    step,
    ura_on_active,
    users_from,
)
from protocols.seeding import rng_for


def test_activation_probabilities_by_hand() -> None:
    lam = np.array([0.0, 1.0, 3.0])
    assert np.allclose(activation_probabilities(lam), [1 / 4, 2 / 4, 1.0])
    assert np.allclose(activation_probabilities(lam, c=2.0), [2 / 5, 3 / 5, 1.0])
    assert np.allclose(activation_probabilities(np.zeros(4)), 1.0)
    # batched along the last axis
    both = activation_probabilities(np.array([[0.0, 1.0], [2.0, 0.0]]))
    assert np.allclose(both, [[0.5, 1.0], [1.0, 1 / 3]])


def test_usv_is_bernoulli_of_kappa() -> None:
    kappa = np.array([1.0, 0.25, 0.0])
    xi = sample_usv(kappa, 20000, rng_for(0, "t"))
    assert xi[:, 0].all() and not xi[:, 2].any()
    assert abs(xi[:, 1].mean() - 0.25) < 0.01


def test_one_algorithm1_step_by_hand() -> None:
    cfg = AlcorConfig(alpha=0.9, gamma=2.0)
    s0 = initial_state(2)
    s0 = type(s0)(lam=np.array([0.5, 0.0]), lam_bar=np.array([0.4, 0.1]),
                  lam_bar_prev=np.array([0.2, 0.3]), h=np.array([0.5, -0.2]),
                  kappa=np.array([1.0, 1 / 1.5]), k=3)
    f1, f2 = np.array([0.3, -0.5]), np.array([0.1, -0.4])
    s1 = step(s0, f1, f2, cfg)
    # step 3: h = lam_bar + g f1 + (1 - a)(h - lam_bar_prev - g f1)
    h = [0.4 + 0.6 + 0.1 * (0.5 - 0.2 - 0.6), 0.1 - 1.0 + 0.1 * (-0.2 - 0.3 + 1.0)]
    assert np.allclose(s1.h, h)  # [0.97, -0.85]
    lam = [0.97, 0.0]
    assert np.allclose(s1.lam, lam)
    # step 7: lam_bar = lam_bar - a (h - lam - g f2)
    assert np.allclose(s1.lam_bar, [0.4 - 0.9 * (0.0 - 0.2), 0.1 - 0.9 * (-0.85 - 0.0 + 0.8)])
    assert np.allclose(s1.lam_bar_prev, [0.4, 0.1])
    assert np.allclose(s1.kappa, [1.0, 1.0 / 1.97])
    assert s1.k == 4
    # the simpler update
    s2 = simple_step(s0, f1, cfg)
    assert np.allclose(s2.lam, [0.5 + 0.27, 0.0])


def test_violation_formula() -> None:
    u = np.array([0.0, 1.0, 2.0])
    assert violation(u, np.array([0.0, 1.0, 2.5])) == 0.0
    assert violation(u, np.array([5.0, 0.5, 1.0])) == pytest.approx(50.0)
    assert violation(u, np.array([0.0, 0.9, 1.0])) == pytest.approx(50.0)
    assert violation(u, np.array([0.0, 0.0, 2.0])) == pytest.approx(100.0)
    assert violation(np.zeros(3), np.zeros(3)) == 0.0
    rows = violation(u, np.array([[0.0, 1.0, 2.0], [0.0, 0.8, 2.0]]))
    assert np.allclose(rows, [0.0, 20.0])


def test_moving_average_and_recovery_rule() -> None:
    x = np.arange(6, dtype=float)[:, None]
    assert np.allclose(moving_average(x, 3)[:, 0], [0, 0.5, 1, 2, 3, 4])
    # a user below its demand for 300 slots, then at 2x for the rest
    rates = np.concatenate([np.zeros((300, 1)), np.full((2000, 1), 2.0)])
    cfg = RecoveryConfig(window=100, threshold=15.0, hold=500)
    # 100-slot average: above 0.85 once 43 of its slots are the 2.0 ones (slot 342)
    assert recovery_slots(rates, np.array([1.0]), 0, 2300, cfg) == 342
    assert recovery_slots(rates[:400], np.array([1.0]), 0, 400, cfg) is None


def _gaussian(n: int, seed: int = 0) -> GaussianStream:
    return GaussianStream(n, 15.0, seed)


def test_ura_on_active_zeroes_inactive_users() -> None:
    st = _gaussian(5)
    g = st.take(0, 4)
    act = np.array([[1, 1, 1, 1, 1], [1, 0, 1, 0, 1], [0, 0, 0, 0, 1], [0] * 5], dtype=bool)
    p = ura_on_active(ic_wmmse, g, act, st.scenario)
    assert np.all(p[~act] == 0.0)
    assert np.array_equal(p[0], ic_wmmse(g[:1], st.scenario)[0])
    r = sum_rates(g, p, st.scenario.radio.noise_w)
    assert np.all(r[~act] == 0.0) and np.all(r[2, 4] > 0)


class _Static:
    """One channel realization every slot: the batch means are exact."""

    def __init__(self, base: GaussianStream) -> None:
        self.scenario, self.g = base.scenario, base.take(0, 1)

    def take(self, start: int, n: int) -> np.ndarray:
        return np.repeat(self.g, n, axis=0)


def _met_demands(alone_rates: np.ndarray, batch: int) -> np.ndarray:
    """Demands every batch of the URA alone meets twice over (WMMSE switches users off for
    whole batches, so "tiny" has to be measured)."""
    k = alone_rates.shape[1]
    u: np.ndarray = 0.5 * alone_rates.reshape(-1, batch, k).mean(axis=1).min(axis=0)
    return u


@pytest.mark.parametrize("update", ["extragradient", "simple"])
def test_met_demands_leave_the_ura_unchanged(update: str) -> None:
    """Lambda stays 0, kappa 1, everyone on, the URA's rates bit for bit: for Algorithm 1
    when its batch means are exact (a static channel), for the simple update on fading.
    (Algorithm 1 on noisy batch means does lift lambda now and then even when every demand
    is met: step 7 adds -alpha min(h, 0) >= 0 to lam_bar, so a batch 1 mean more negative
    than batch 2's pushes lam_bar above 0; see the study's Table II rows.)"""
    base = _gaussian(5)
    st = _Static(base) if update == "extragradient" else base
    alone = run_fixed(st, allocator_power_fn(ic_wmmse, st.scenario), 1000)
    u = _met_demands(alone.rates, 25)
    assert np.sum(u > 0) >= 2  # (a user WMMSE keeps off asks for 0)
    sched = DemandSchedule.of([(0, u.tolist())])
    cfg = AlcorConfig(gamma=3.0, update=update)  # type: ignore[arg-type]
    trace = run_alcor(st, sched, ic_wmmse, 1000, cfg, rng_for(1, "usv"))
    assert np.all(trace.lam == 0.0) and np.all(trace.kappa == 1.0)
    assert trace.active.all()
    assert np.array_equal(trace.rates, alone.rates)


@pytest.mark.parametrize("update", ["extragradient", "simple"])
def test_distributed_equals_centralized_with_exact_max(update: str) -> None:
    st = _gaussian(5)
    sched = DemandSchedule.of([(0, [0.0, 1.0, 1.5, 2.0, 0.0]), (500, [0, 0, 0, 1.0, 3.0])])
    cfg = AlcorConfig(gamma=3.0, update=update)  # type: ignore[arg-type]
    a = run_alcor(st, sched, ic_wmmse, 1000, cfg, rng_for(2, "usv"))
    b = run_alcor(st, sched, ic_wmmse, 1000, cfg, rng_for(2, "usv"), distributed=True)
    assert np.allclose(a.lam, b.lam, rtol=0, atol=1e-12)
    assert np.allclose(a.kappa, b.kappa, rtol=0, atol=1e-12)
    assert np.array_equal(a.active, b.active)
    assert np.allclose(a.rates, b.rates, rtol=0, atol=1e-12)


def test_distributed_step_and_flooding() -> None:
    cfg = AlcorConfig(gamma=2.0)
    s = initial_state(4)
    f1, f2 = np.array([0.5, -0.1, 0.2, 0.9]), np.array([0.4, 0.0, 0.3, 1.0])
    users = distributed_step(users_from(s), f1, f2, cfg, exact_max)
    assert np.allclose(state_from(users).kappa, step(s, f1, f2, cfg).kappa)
    # a chain 0 -> 1 -> 2 -> 3: one round of flooding reaches one hop only
    chain = np.zeros((4, 4), dtype=bool)
    chain[0, 1] = chain[1, 2] = chain[2, 3] = True
    v = np.array([5.0, 1.0, 2.0, 3.0])
    assert np.allclose(flooding_max(chain, 1)(v), [5, 5, 2, 3])
    assert np.allclose(flooding_max(chain, 3)(v), 5.0)
    partial = distributed_step(users_from(s), f1, f2, cfg, flooding_max(chain, 0))
    assert all(u.kappa == 1.0 for u in partial)  # each user only knows itself


def test_missed_demand_recovers_within_bounded_slots() -> None:
    st = _gaussian(5, seed=3)
    u = [0.0, 0.0, 0.0, 1.0, 3.0]  # Table IV's u3: WMMSE alone gives user 5 ~1.2
    sched = DemandSchedule.of([(0, u)])
    slots = 6000
    alone = run_fixed(st, allocator_power_fn(ic_wmmse, st.scenario), slots)
    assert violation(np.array(u), alone.rates.mean(axis=0)) > 40.0
    trace = run_alcor(st, sched, ic_wmmse, slots, AlcorConfig(gamma=3.0), rng_for(3, "usv"))
    rec = recovery_slots(trace.rates, np.array(u), 0, slots,
                         RecoveryConfig(window=1000, threshold=10.0, hold=1000))
    assert rec is not None and rec <= 3000
    assert violation(np.array(u), trace.rates[3000:].mean(axis=0)) < 5.0
    assert trace.lam[-1, 4] > trace.lam[-1, 3] > trace.lam[-1, 0]


def test_seed_determinism() -> None:
    sched = DemandSchedule.of([(0, [0.5] * 5), (200, [0, 1.0, 1.5, 2.0, 0])])
    runs = [run_alcor(_gaussian(5, 4), sched, ic_wmmse, 400, AlcorConfig(),
                      rng_for(seed, "usv")) for seed in (4, 4, 5)]
    assert np.array_equal(runs[0].rates, runs[1].rates)
    assert np.array_equal(runs[0].lam, runs[1].lam)
    assert not np.array_equal(runs[0].active, runs[2].active)
    # a stream gives the same slots however they are asked for
    st = _gaussian(4, 9)
    assert np.array_equal(st.take(30, 40), np.concatenate([_gaussian(4, 9).take(30, 25),
                                                           _gaussian(4, 9).take(55, 15)]))


def test_demand_schedules() -> None:
    s = DemandSchedule.equal_phases([[1.0, 0.0], [0.0, 2.0]], 100)
    assert np.array_equal(s.at(99), [1.0, 0.0]) and np.array_equal(s.at(100), [0.0, 2.0])
    assert s.bounds(150) == [(0, 100), (100, 150)]
    with pytest.raises(ValueError):
        DemandSchedule.of([(5, [1.0])])
    r = random_schedule(RandomDemandConfig(period_slots=50, low=0.1, high=0.2, share=0.5), 6,
                        200, rng_for(0, "d"))
    assert r.starts() == [0, 50, 100, 150]
    for _, u in r.phases:
        nz = [x for x in u if x > 0]
        assert len(nz) == 3 and all(0.1 <= x <= 0.2 for x in nz)
    p = paper_phases(20)
    assert p is not None and p.demands[1][4] == 0.4 and p.demands[1][18] == 0.8
    assert p.demands[0][11] == 0.1 and p.demands[0][12] == 0.0
    assert paper_phases(7) is None


def test_seven_cell_gains() -> None:
    cfg = SevenCellConfig(n_users=14)
    st = SevenCellStream(cfg, 0)
    g = st.take(0, 100)
    assert g.shape == (100, 14, 14) and np.all(g > 0)
    # the pathloss (mean gain) is fixed within a 50-slot drop and redrawn at the next
    m0, m1 = st.mean_gains(0), st.mean_gains(1)
    assert not np.allclose(m0, m1, rtol=1e-3, atol=0.0)
    direct = np.diag(m0)
    pl = -10 * np.log10(direct)
    lo = 120.9 + 37.6 * np.log10(0.05)
    hi = 120.9 + 37.6 * np.log10(0.5)
    assert np.all(pl >= lo - 1e-9) and np.all(pl <= hi + 1e-9)
    assert st.scenario.radio.noise_w == pytest.approx(10 ** (-14.4) / 1.0, rel=1e-9)
    assert st.scenario.radio.pmax_w == pytest.approx(10 ** 0.8, rel=1e-9)


def test_constrained_optimum_meets_demands() -> None:
    st = _gaussian(4, 1)
    s = st.scenario
    g = st.take(0, 30)
    gn = normalized(g[0], s.radio.noise_w, 1.0)
    x = rng_for(0, "x").uniform(0, 1, 4)
    eps = 1e-6
    num = [(rates_of(gn, x + eps * e).sum() - rates_of(gn, x - eps * e).sum()) / (2 * eps)
           for e in np.eye(4)]
    assert np.allclose(sum_rate_grad(gn, x), num, rtol=1e-5)
    u = np.array([0.3, 0.0, 0.3, 0.0])
    hits = 0
    for i in range(30):
        res = solve_instance(g[i], u, s.radio.noise_w, 1.0, ConstrainedConfig(), rng_for(0, i))
        x_star = least_power_point(normalized(g[i], s.radio.noise_w, 1.0), u)
        assert res.feasible == (x_star is not None)
        if res.feasible:
            hits += 1
            assert res.rates is not None and np.all(res.rates >= u - 1e-6)
            assert x_star is not None
            assert np.allclose(rates_of(normalized(g[i], s.radio.noise_w, 1.0), x_star)[[0, 2]],
                               0.3)
    assert hits > 0
    # a demand nobody can meet
    assert not solve_instance(g[0], np.full(4, 20.0), s.radio.noise_w, 1.0,
                              ConstrainedConfig(), rng_for(0, "z")).feasible
