"""TRPO learner maths against independent computations (explicit Hessians, numpy
solves, hand-written KL and GAE), plus a short seeded training smoke test."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.func import functional_call

from channel_server.air import Air
from channel_server.config import RadioConfig, Scenario, load_scenario
from channel_server.rates import sum_rate_bps_hz
from controller.baselines.central import CentralDecider
from controller.learners.threads import native_bfloat16
from controller.learners.trpo import (
    NormalizedValue,
    Trpo,
    TrpoConfig,
    conjugate_gradient,
    fisher_vector_product,
    flat_params,
    gae,
    line_search,
    make_fisher_vector_product,
    mean_kl,
    natural_step,
    set_flat_params,
    value_network,
)
from controller.training.rollout import Batch, collect, make_env, max_power_sum_rate, play
from node.agent import BsAgent, chain_priors
from node.observation import central_dims, full_dims, obs_full, round_robin_dims
from node.policy import GaussianPolicy, PolicyConfig, seeded_policy
from node.policy_spec import check_policy_view, policy_view, power_fraction, raw_action
from protocols.seeding import rng_for

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "3cell-k2.toml"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def radio_3cell() -> RadioConfig:
    return load_scenario(SCENARIO).radio


# --------------------------------------------------------------------------- helpers


def tiny_policy(seed: int = 3) -> GaussianPolicy:
    pol = seeded_policy(PolicyConfig(obs_dim=3, act_dim=2, hidden=(5,)), seed)
    with torch.no_grad():  # a non-trivial std per dimension
        pol.log_std.copy_(torch.tensor([-0.7, -1.3], dtype=torch.float64))
    return pol


def explicit_kl_hessian(policy: GaussianPolicy, obs: torch.Tensor) -> np.ndarray:
    """Full Hessian of mean KL(pi_old || pi_theta) w.r.t. the flat parameters, via
    torch.autograd.functional.hessian and torch.distributions (not the code under test)."""
    names = [n for n, _ in policy.named_parameters()]
    shapes = [p.shape for _, p in policy.named_parameters()]
    theta0 = flat_params(policy)
    with torch.no_grad():
        old = policy.distribution(obs)
        old = torch.distributions.Normal(old.mean.clone(), old.stddev.clone())

    def kl_of(flat: torch.Tensor) -> torch.Tensor:
        params, i = {}, 0
        for n, s in zip(names, shapes, strict=True):
            params[n] = flat[i : i + s.numel()].reshape(s)
            i += s.numel()
        mean, log_std = functional_call(policy, params, (obs,))
        new = torch.distributions.Normal(mean, log_std.exp())
        return torch.distributions.kl_divergence(old, new).sum(-1).mean()

    h = torch.autograd.functional.hessian(kl_of, theta0)  # type: ignore[no-untyped-call]
    out: np.ndarray = h.numpy()
    return out


def numpy_kl(m0: np.ndarray, s0: np.ndarray, m1: np.ndarray, s1: np.ndarray) -> float:
    """Mean over rows of KL(N(m0, s0^2) || N(m1, s1^2)), summed over dimensions."""
    kl = np.log(s1 / s0) + (s0**2 + (m0 - m1) ** 2) / (2.0 * s1**2) - 0.5
    return float(kl.sum(-1).mean())


def outputs(policy: GaussianPolicy, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        mean, log_std = policy(torch.as_tensor(obs))
    return mean.detach().numpy(), log_std.exp().detach().numpy()


# --------------------------------------------------------------------------- Fisher / CG


def test_fisher_vector_product_equals_explicit_kl_hessian_times_v() -> None:
    rng = np.random.default_rng(0)
    pol = tiny_policy()
    obs = torch.as_tensor(rng.standard_normal((40, 3)))
    f = explicit_kl_hessian(pol, obs)
    n = f.shape[0]
    assert n == sum(p.numel() for p in pol.parameters())
    for damping in (0.0, 0.3):
        v = rng.standard_normal(n)
        got = fisher_vector_product(pol, obs, torch.as_tensor(v), damping).numpy()
        want = (f + damping * np.eye(n)) @ v
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    # analytic blocks of a Gaussian's KL Hessian: 2 I for log-std, diag(1/sigma^2) for
    # the mean head's output bias (whose Jacobian is the identity)
    offsets, i = {}, 0
    for name, p in pol.named_parameters():
        offsets[name] = slice(i, i + p.numel())
        i += p.numel()
    ls, bias = offsets["log_std"], offsets["mean_net.2.bias"]
    np.testing.assert_allclose(f[ls, ls], 2.0 * np.eye(2), atol=1e-12)
    inv_var = np.exp(-2.0 * np.array([-0.7, -1.3]))
    np.testing.assert_allclose(f[bias, bias], np.diag(inv_var), rtol=1e-12)


def test_conjugate_gradient_matches_numpy_solve_on_fisher() -> None:
    rng = np.random.default_rng(1)
    pol = tiny_policy()
    obs = torch.as_tensor(rng.standard_normal((40, 3)))
    f = explicit_kl_hessian(pol, obs)
    damping = 0.1
    a = f + damping * np.eye(f.shape[0])
    np.testing.assert_allclose(a, a.T, atol=1e-12)
    assert np.linalg.eigvalsh(a).min() > 0.0  # SPD
    g = rng.standard_normal(f.shape[0])
    fvp = make_fisher_vector_product(pol, obs, damping)
    x = conjugate_gradient(fvp, torch.as_tensor(g), iters=300, tol=1e-26).numpy()
    np.testing.assert_allclose(x, np.linalg.solve(a, g), rtol=1e-6, atol=1e-8)
    # few iterations do not solve it: the test can tell converged from not
    x2 = conjugate_gradient(fvp, torch.as_tensor(g), iters=2, tol=1e-26).numpy()
    assert np.linalg.norm(a @ x2 - g) > 1e-3 * np.linalg.norm(g)


def test_natural_step_has_quadratic_kl_equal_to_delta() -> None:
    rng = np.random.default_rng(2)
    pol = tiny_policy()
    obs = torch.as_tensor(rng.standard_normal((40, 3)))
    cfg = TrpoConfig(max_kl=0.01, cg_iters=300, cg_tol=1e-26, cg_damping=0.1)
    a = explicit_kl_hessian(pol, obs) + cfg.cg_damping * np.eye(flat_params(pol).numel())
    g = rng.standard_normal(a.shape[0])
    step, _ = natural_step(torch.as_tensor(g), make_fisher_vector_product(pol, obs, 0.1), cfg)
    s = step.numpy()
    # 0.5 step^T F step = delta, and the direction is F^-1 g (eq. 20)
    assert 0.5 * s @ a @ s == pytest.approx(0.01, rel=1e-6)
    direction = np.linalg.solve(a, g)
    cos = s @ direction / (np.linalg.norm(s) * np.linalg.norm(direction))
    assert cos == pytest.approx(1.0, abs=1e-9)


# --------------------------------------------------------------------------- line search


Closure = Callable[[], torch.Tensor]


def _surrogate_problem(
    seed: int,
) -> tuple[GaussianPolicy, torch.Tensor, Closure, Closure, torch.Tensor, np.ndarray]:
    """A tiny policy, its surrogate and KL closures, the TRPO step and the old means."""
    rng = np.random.default_rng(seed)
    pol = tiny_policy()
    obs = torch.as_tensor(rng.standard_normal((200, 3)))
    with torch.no_grad():
        old = pol.distribution(obs)
        old_mean, old_std = old.mean.clone(), old.stddev.clone()
        act = old_mean + old_std * torch.as_tensor(rng.standard_normal((200, 2)))
    adv = torch.as_tensor(rng.standard_normal(200))
    old_logp = torch.distributions.Normal(old_mean, old_std).log_prob(act).sum(-1)  # type: ignore[no-untyped-call]

    def surrogate() -> torch.Tensor:
        logp = pol.distribution(obs).log_prob(act).sum(-1)  # type: ignore[no-untyped-call]
        return (torch.exp(logp - old_logp) * adv).mean()

    def kl() -> torch.Tensor:
        return mean_kl(pol, obs, old_mean, old_std.log())

    surr = surrogate()
    g = torch.cat([x.reshape(-1) for x in torch.autograd.grad(surr, list(pol.parameters()))])
    step, _ = natural_step(g, make_fisher_vector_product(pol, obs, 0.1), TrpoConfig())
    return pol, obs, surrogate, kl, step, old_mean.numpy()


def _value(fn: Closure) -> float:
    with torch.no_grad():
        return float(fn())


def _evaluate(surrogate: Closure, kl: Closure) -> Callable[[], tuple[float, float]]:
    return lambda: (_value(surrogate), _value(kl))


def test_line_search_rejects_a_step_that_lowers_the_surrogate_and_restores_params() -> None:
    pol, _, surrogate, kl, step, _ = _surrogate_problem(4)
    before = flat_params(pol)
    base = _value(surrogate)
    evaluate = _evaluate(surrogate, kl)
    accepted, frac, surr, k = line_search(pol, -step, evaluate, base, 0.01, 0.9, 30)
    assert not accepted and frac == 0.0 and np.isnan(surr) and np.isnan(k)
    assert torch.equal(flat_params(pol), before)
    assert _value(surrogate) == base
    # the same step in the ascent direction is accepted (the test can fail both ways), and
    # what it reports is the surrogate and KL where it left the parameters
    accepted, frac, surr, k = line_search(pol, step, evaluate, base, 0.01, 0.9, 30)
    assert accepted and frac > 0.0
    assert _value(surrogate) == surr > base and _value(kl) == k <= 0.01
    assert not torch.equal(flat_params(pol), before)


def test_line_search_takes_the_first_fraction_inside_the_trust_region() -> None:
    pol, obs, surrogate, kl, step, m0 = _surrogate_problem(5)
    before = flat_params(pol)
    s0 = np.broadcast_to(pol.log_std.exp().detach().numpy().copy(), m0.shape)
    base = _value(surrogate)
    big = 3.0 * step  # quadratic KL about 9 delta at fraction 1
    accepted, frac, _, _ = line_search(pol, big, _evaluate(surrogate, kl), base, 0.01, 0.9, 60)
    assert accepted and frac < 0.5
    m1, s1 = outputs(pol, obs.numpy())
    assert numpy_kl(m0, s0, m1, s1) <= 0.01
    assert _value(surrogate) > base
    # the previous, larger fraction violated the trust region or did not improve
    set_flat_params(pol, before + (frac / 0.9) * big)
    m2, s2 = outputs(pol, obs.numpy())
    assert numpy_kl(m0, s0, m2, s2) > 0.01 or _value(surrogate) <= base


# --------------------------------------------------------------------------- advantages


def test_gae_matches_hand_computation() -> None:
    # two episodes: 3 steps then 1 step
    r = np.array([1.0, 0.0, 2.0, 5.0])
    v = np.array([0.5, 0.2, 1.0, 4.0])
    d = np.array([False, False, True, True])
    g = 0.9
    adv1, ret1 = gae(r, v, d, g, 1.0)
    returns = np.array([1.0 + g * 0.0 + g * g * 2.0, 0.0 + g * 2.0, 2.0, 5.0])
    np.testing.assert_allclose(ret1, returns, rtol=1e-12)
    np.testing.assert_allclose(adv1, returns - v, rtol=1e-12)
    adv0, _ = gae(r, v, d, g, 0.0)
    td = np.array([1.0 + g * 0.2 - 0.5, 0.0 + g * 1.0 - 0.2, 2.0 - 1.0, 5.0 - 4.0])
    np.testing.assert_allclose(adv0, td, rtol=1e-12)
    with pytest.raises(ValueError):
        gae(r, v, np.array([False, False, True, False]), g, 1.0)


# --------------------------------------------------------------------------- the learner


@pytest.mark.parametrize(("dtype", "rel"), [("float64", 1e-9), ("float32", 1e-5)])
def test_accepted_update_stays_inside_the_trust_region(dtype: str, rel: float) -> None:
    """The reported KL is the float64 one, to the precision of the policy step's dtype."""
    radio = radio_3cell()
    env = make_env(radio, "centralized", seed=11, episodes=200)
    pol = seeded_policy(env.policy_config(), 0)
    cfg = TrpoConfig(value_hidden=(32,), value_epochs=1, direction_dtype=dtype)  # type: ignore[arg-type]
    learner = Trpo(pol, cfg, rng_for(0, "trpo"))
    batch = collect(pol, env, 200, rng_for(0, "noise"))
    old = copy.deepcopy(pol)
    stats = learner.step(batch)
    assert stats["accepted"] == 1.0
    m0, s0 = outputs(old, batch.obs)
    m1, s1 = outputs(pol, batch.obs)
    kl = numpy_kl(m0, s0, m1, s1)
    assert 1e-4 < kl <= cfg.max_kl
    assert kl == pytest.approx(stats["kl"], rel=rel)
    variables = learner.get_variables()
    assert set(variables) == set(pol.state_dict())
    np.testing.assert_array_equal(variables["log_std"], pol.log_std.detach().numpy())


def test_a_retarget_leaves_v_unchanged_and_sets_the_statistics() -> None:
    """The first statistics replace the unfitted (0, 1); later ones keep V's outputs."""
    v = NormalizedValue(value_network(4, (8, 8), 0, torch.float32))
    obs = torch.as_tensor(rng_for(0, "obs").standard_normal((50, 4)), dtype=torch.float32)
    net_before = v.net(obs).detach().clone()
    v.retarget(10.0, 2.0)
    torch.testing.assert_close(v(obs), net_before * 2.0 + 10.0)
    before = v(obs).detach().clone()
    for mean, std in ((30.0, 4.0), (-2.0, 0.5)):
        v.retarget(mean, std)
        torch.testing.assert_close(v(obs), before, rtol=1e-5, atol=1e-4)
        assert (float(v.shift), float(v.scale)) == (mean, std)
    assert {"shift", "scale", "retargeted"} <= set(v.state_dict())  # in checkpoints


def test_normalized_returns_make_the_value_fit_blind_to_the_rewards_scale() -> None:
    """Single-step episodes (the returns are the rewards): rewards x 100 give the same
    standardized fit, V x 100 and the same loss; V's statistics are the returns'; without
    the option the loss is in the rewards' units squared."""
    rng = rng_for(1, "batch")
    n = 64
    obs, act = rng.standard_normal((n, 3)), rng.standard_normal((n, 2))
    rewards = 5.0 + rng.standard_normal(n)
    values, losses = [], []
    for scale in (1.0, 100.0):
        learner = Trpo(tiny_policy(), TrpoConfig(value_hidden=(16,), normalize_returns=True),
                       rng_for(0, "trpo"))
        batch = Batch(obs, act, scale * rewards, np.ones(n, dtype=bool), scale * rewards)
        losses.append(learner.step(batch)["value_loss"])
        value = learner.value
        assert isinstance(value, NormalizedValue)
        assert float(value.shift) == pytest.approx(scale * rewards.mean(), rel=1e-6)
        assert float(value.scale) == pytest.approx(scale * rewards.std(), rel=1e-6)
        with torch.no_grad():
            values.append(value(torch.as_tensor(obs, dtype=torch.float32)).squeeze(-1).numpy())
    np.testing.assert_allclose(values[1], 100.0 * values[0], rtol=1e-4)
    assert losses[0] == pytest.approx(losses[1], rel=1e-4) and losses[0] < 10.0  # order one
    plain = Trpo(tiny_policy(), TrpoConfig(value_hidden=(16,)), rng_for(0, "trpo"))
    big = Batch(obs, act, 100.0 * rewards, np.ones(n, dtype=bool), 100.0 * rewards)
    assert plain.step(big)["value_loss"] > 1e3


def test_a_bfloat16_value_fit_fits_as_well_as_a_float32_one() -> None:
    """Mixed precision: V's weights stay float32, the fit is another one (the products
    really are bfloat16), and it fits a smooth target about as well as float32 does."""
    rng = rng_for(2, "fit")
    obs = torch.as_tensor(rng.standard_normal((512, 3)), dtype=torch.float32)
    target = torch.sin(obs[:, 0]) + 0.5 * obs[:, 1] * obs[:, 2] + 3.0
    fitted, losses = {}, {}
    for dtype in ("float32", "bfloat16"):
        cfg = TrpoConfig(value_hidden=(64, 64), value_epochs=60, value_minibatch=128,
                         value_dtype=dtype)  # type: ignore[arg-type]
        learner = Trpo(tiny_policy(), cfg, rng_for(0, "trpo"))
        assert learner.value_dtype == dtype
        losses[dtype] = learner.fit_value(obs, target)
        assert all(p.dtype == torch.float32 for p in learner.value.parameters())
        with torch.no_grad():
            fitted[dtype] = learner.value(obs).squeeze(-1)
    start = float(((target - target.mean()) ** 2).mean())
    assert losses["float32"] < 0.1 * start
    assert losses["bfloat16"] < 1.5 * losses["float32"] + 0.01 * start
    assert not torch.equal(fitted["float32"], fitted["bfloat16"]), losses


def test_native_bfloat16_reads_the_cpu_flags(tmp_path: Path) -> None:
    """bfloat16 only where cpuinfo lists a native bfloat16 product (and torch's oneDNN
    supports it); an unreadable cpuinfo means float32."""
    with_bf16, without = tmp_path / "bf16", tmp_path / "avx2"
    with_bf16.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n")
    without.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n")
    assert native_bfloat16(with_bf16) == bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    assert native_bfloat16(without) is False
    assert native_bfloat16(tmp_path / "missing") is False


@pytest.mark.parametrize(("k", "dtype", "tol"), [(1, "float64", 1e-7), (4, "float64", 1e-7),
                                                 (1, "float32", 1e-5), (4, "float32", 1e-5)])
def test_the_step_solves_with_the_fisher_of_every_kth_state(k: int, dtype: str,
                                                            tol: float) -> None:
    """The update moves the parameters along (F_k + damping I)^-1 g, F_k the explicit KL
    Hessian of states 0, k, 2k, ... only; g the surrogate gradient over the whole batch
    (float64, numpy); the learner computes the direction in ``dtype``."""
    radio = radio_3cell()
    env = make_env(radio, "centralized", seed=5, episodes=60)
    pol = seeded_policy(PolicyConfig(*central_dims(radio), hidden=(6,)), 2)
    cfg = TrpoConfig(value_hidden=(8,), value_epochs=1, cg_iters=400, cg_tol=1e-30,
                     fisher_subsample=k, backtrack_coef=0.5, direction_dtype=dtype)
    learner = Trpo(pol, cfg, rng_for(0, "trpo"))
    batch = collect(pol, env, 60, rng_for(0, "noise"))
    obs = torch.as_tensor(batch.obs)
    adv, _ = learner.advantages(batch)  # the critic before its fit, as step() uses it
    adv_t = torch.as_tensor((adv - adv.mean()) / (adv.std(ddof=1) + 1e-8))
    with torch.no_grad():
        d = pol.distribution(obs)
        old = torch.distributions.Normal(d.mean.clone(), d.stddev.clone())
        old_logp = old.log_prob(torch.as_tensor(batch.actions)).sum(-1)  # type: ignore[no-untyped-call]
    logp = pol.distribution(obs).log_prob(torch.as_tensor(batch.actions)).sum(-1)  # type: ignore[no-untyped-call]
    surr = (torch.exp(logp - old_logp) * adv_t).mean()
    g = torch.cat([x.reshape(-1) for x in torch.autograd.grad(surr, list(pol.parameters()))])
    a = explicit_kl_hessian(pol, obs[::k]) + cfg.cg_damping * np.eye(g.numel())
    direction = np.linalg.solve(a, g.numpy())
    before = flat_params(pol).numpy()
    stats = learner.step(batch)
    assert stats["accepted"] == 1.0
    moved = flat_params(pol).numpy() - before
    cos = moved @ direction / (np.linalg.norm(moved) * np.linalg.norm(direction))
    assert cos == pytest.approx(1.0, abs=tol)
    # the length: sqrt(2 delta / s^T A s) s, times the accepted fraction
    full = np.sqrt(2 * cfg.max_kl / (direction @ a @ direction)) * direction
    assert np.linalg.norm(moved) == pytest.approx(stats["step_fraction"] * np.linalg.norm(full),
                                                  rel=10 * tol)
    if k > 1:  # the whole batch's Fisher gives another direction: the test can tell
        a_all = explicit_kl_hessian(pol, obs) + cfg.cg_damping * np.eye(g.numel())
        other = np.linalg.solve(a_all, g.numpy())
        assert other @ direction / (np.linalg.norm(other) * np.linalg.norm(direction)) < 1 - 1e-4


@pytest.mark.parametrize(("name", "value", "says"), [
    ("fisher_subsample", 0, "fisher_subsample must be >= 1"),
    ("direction_dtype", "float16", "direction_dtype must be 'float32' or 'float64'"),
    ("value_dtype", "float16", "value_dtype must be 'auto', 'float32' or 'bfloat16'"),
    ("max_kl", 0.0, "max_kl must be > 0"),
    ("backtrack_coef", 1.0, "backtrack_coef must be in"),
    ("gae_lambda", 1.5, "gamma and gae_lambda must be in"),
    ("value_epochs", 0, "value_lr must be > 0, value_epochs"),
    ("value_hidden", (256, 0), "value_hidden widths"),
])
def test_a_trpo_config_out_of_range_is_refused_naming_the_field(
        name: str, value: object, says: str) -> None:
    with pytest.raises(ValueError, match=f"TrpoConfig: {says}"):
        TrpoConfig(**{name: value})  # type: ignore[arg-type]


def test_a_float32_direction_keeps_the_policy_float64_and_inside_the_trust_region() -> None:
    """The float32 search direction is the float64 one to float32 precision; the policy
    stays float64 and the accepted step's KL, computed in numpy, is <= delta."""
    radio = radio_3cell()
    env = make_env(radio, "centralized", seed=11, episodes=200)
    batch = collect(seeded_policy(env.policy_config(), 0), env, 200, rng_for(0, "noise"))
    moved = {}
    for dtype in ("float64", "float32"):
        pol = seeded_policy(env.policy_config(), 0)
        old = copy.deepcopy(pol)
        cfg = TrpoConfig(value_hidden=(32,), value_epochs=1, direction_dtype=dtype)
        stats = Trpo(pol, cfg, rng_for(0, "trpo")).step(batch)
        assert stats["accepted"] == 1.0
        assert all(p.dtype == torch.float64 for p in pol.parameters())
        m0, s0 = outputs(old, batch.obs)
        m1, s1 = outputs(pol, batch.obs)
        assert numpy_kl(m0, s0, m1, s1) <= cfg.max_kl
        assert numpy_kl(m0, s0, m1, s1) == pytest.approx(
            stats["kl"], rel=1e-9 if dtype == "float64" else 1e-5)
        moved[dtype] = flat_params(pol).numpy() - flat_params(old).numpy()
    a, b = moved["float64"], moved["float32"]
    assert np.linalg.norm(a - b) < 1e-4 * np.linalg.norm(a)  # measured: 7.5e-6


def test_centralized_trpo_improves_sum_rate_in_ten_iterations() -> None:
    radio = radio_3cell()
    env = make_env(radio, "centralized", seed=21, episodes=256)
    pol = seeded_policy(env.policy_config(), 1)
    eval_gains = Air(radio, seed=999, episodes=1000).reset()

    def score(p: GaussianPolicy) -> float:
        batch = play(p, "centralized", eval_gains, radio, rng_for(0, "eval"), mode="mean")
        return float(batch.sum_rate_bps_hz.mean())

    untrained = score(pol)
    learner = Trpo(pol, TrpoConfig(value_epochs=2), rng_for(1, "trpo"))
    noise = rng_for(1, "noise")
    accepted = 0.0
    for _ in range(10):
        accepted += learner.step(collect(pol, env, 256, noise))["accepted"]
    trained = score(pol)
    assert accepted >= 8
    assert trained > untrained


# --------------------------------------------------------------------------- rollout
# The batches TRPO learns from must be what the nodes would do: replay them with the
# network runner's decision logic (node.agent.BsAgent, controller.baselines.central), slot by slot.


MAPS = {"clip": lambda r: np.clip(r, 0.0, 1.0),
        "sigmoid": lambda r: 1.0 / (1.0 + np.exp(-r)),
        "log": lambda r: 10.0 ** (3.0 * (np.minimum(r, 1.0) - 1.0))}
"""The action maps of ``radio.action_map``, written out again."""


def _scenario_and_gains(episodes: int, action_map: str = "clip") -> tuple[Scenario, np.ndarray]:
    scenario = load_scenario(SCENARIO)
    scenario = dataclasses.replace(
        scenario, radio=dataclasses.replace(scenario.radio, action_map=action_map))
    return scenario, Air(scenario.radio, seed=7, episodes=episodes).reset()


def test_power_fraction_maps_and_their_inverses() -> None:
    raw = np.array([-1000.0, -2.0, -0.3, 0.0, 0.25, 0.5, 1.0, 1.7, 1000.0])
    reach = {"clip": [0.0, 0.2, 0.5, 1.0], "sigmoid": [1e-3, 0.2, 0.5, 0.999],
             "log": [1e-9, 1e-3, 0.2, 0.5, 1.0]}
    for how, f in MAPS.items():
        with np.errstate(over="ignore"):
            np.testing.assert_allclose(power_fraction(raw, how), f(raw), rtol=1e-12, atol=0)
        inside = np.array(reach[how])
        np.testing.assert_allclose(power_fraction(raw_action(inside, how), how), inside,
                                   rtol=1e-9)
    assert power_fraction(np.array(0.0), "log") == pytest.approx(1e-3)  # raw 0: -30 dB
    assert raw_action(np.array(0.0), "log") == pytest.approx(-2.0)  # 0 W: -90 dB
    assert raw_action(np.array(1.0), "sigmoid") == pytest.approx(np.log(999.0))
    for bad in (power_fraction, raw_action):
        with pytest.raises(ValueError, match="unknown action map 'tanh'; known: clip"):
            bad(raw, "tanh")


def test_weights_must_see_the_radio_as_they_were_trained() -> None:
    """A weights header's action map and feature scaling must be the scenario's; a file
    that does not say them was trained with the defaults (clip, 20 / 20 dB)."""
    log = load_scenario(SCENARIO).radio  # 3cell-k2: log-power actions
    clip = dataclasses.replace(log, action_map="clip")
    assert policy_view(log) == {"action_map": "log", "feature_center_db": 20.0,
                                "feature_scale_db": 20.0}
    check_policy_view(policy_view(log), log)
    check_policy_view({}, clip)  # a file from before the fields existed
    with pytest.raises(ValueError, match="radio.action_map = 'clip' in training, 'log' here"):
        check_policy_view({}, log)
    with pytest.raises(ValueError, match=r"radio.action_map = 'log' in training, 'clip' here; "
                                         r"radio.feature_scale_db = 10.0 in training, 20.0"):
        check_policy_view({**policy_view(log), "feature_scale_db": 10.0}, clip)


@pytest.mark.parametrize("action_map", ["clip", "sigmoid", "log"])
def test_round_robin_batch_matches_the_node_chain(action_map: str) -> None:
    scenario, gains = _scenario_and_gains(12, action_map)
    radio = scenario.radio
    b_n, k_n = radio.n_cells, radio.users_per_cell
    pol = seeded_policy(PolicyConfig(*round_robin_dims(radio)), 4)
    last = pol.mean_net[-1]
    assert isinstance(last, torch.nn.Linear)
    with torch.no_grad():  # spread the outputs so clipping and ordering matter
        last.weight.mul_(100.0)
    batch = play(pol, "round-robin", gains, radio, rng_for(3, "order"), mode="mean")
    assert batch.steps == 12 * b_n and batch.episodes == 12
    rewards = batch.rewards.reshape(12, b_n)
    np.testing.assert_array_equal(rewards[:, :-1], 0.0)
    np.testing.assert_array_equal(rewards[:, -1], batch.sum_rate_bps_hz)
    agents = [BsAgent(b, scenario, "round-robin", 0, 1, pol, "mean") for b in range(b_n)]
    orders = set()
    for e in range(12):
        decided: dict[int, np.ndarray] = {}
        order = []
        for n in range(b_n):
            row = batch.obs[e * b_n + n]
            # which BS acted: the one whose own CSI view is this observation's head
            (b,) = [
                x for x in range(b_n)
                if np.array_equal(obs_full(gains[e, x], x, radio), row[: k_n * b_n])
            ]
            order.append(b)
            prior, chosen = chain_priors(decided, 1, b_n, k_n)
            frac = agents[b].fractions(gains[e : e + 1, b], prior, chosen)
            decided[b] = frac * radio.pmax_w
        assert sorted(order) == list(range(b_n))
        orders.add(tuple(order))
        powers = np.stack([decided[b][0] for b in range(b_n)])
        want = sum_rate_bps_hz(gains[e], powers, radio.noise_w)
        assert batch.sum_rate_bps_hz[e] == pytest.approx(want, rel=1e-12)
    assert len(orders) > 1  # the order really is drawn per episode


@pytest.mark.parametrize("action_map", ["clip", "sigmoid", "log"])
def test_full_and_centralized_batches_match_the_node_and_controller(action_map: str) -> None:
    scenario, gains = _scenario_and_gains(16, action_map)
    radio = scenario.radio
    b_n = radio.n_cells
    pol_full = seeded_policy(PolicyConfig(*full_dims(radio)), 5)
    batch = play(pol_full, "full", gains, radio, rng_for(3, "x"), mode="mean")
    np.testing.assert_array_equal(batch.rewards, np.repeat(batch.sum_rate_bps_hz, b_n))
    powers = np.stack(
        [BsAgent(b, scenario, "full", 0, 16, pol_full, "mean").fractions(gains[:, b])
         for b in range(b_n)], axis=1) * radio.pmax_w
    np.testing.assert_allclose(
        batch.sum_rate_bps_hz, sum_rate_bps_hz(gains, powers, radio.noise_w), rtol=1e-12
    )
    pol_c = seeded_policy(PolicyConfig(*central_dims(radio)), 6)
    batch = play(pol_c, "centralized", gains, radio, rng_for(3, "x"), mode="mean")
    p_c = CentralDecider("centralized", scenario, 0, pol_c).powers(gains)
    np.testing.assert_allclose(
        batch.sum_rate_bps_hz, sum_rate_bps_hz(gains, p_c, radio.noise_w), rtol=1e-12
    )
    # sampled actions: the stored raw actions reproduce the reward
    batch = play(pol_c, "centralized", gains, radio, rng_for(3, "y"), mode="sample")
    p_s = MAPS[action_map](batch.actions).reshape(16, b_n, -1) * radio.pmax_w
    np.testing.assert_allclose(
        batch.rewards, sum_rate_bps_hz(gains, p_s, radio.noise_w), rtol=1e-12
    )


def test_max_power_sum_rate_matches_a_plain_loop() -> None:
    scenario, gains = _scenario_and_gains(3)
    radio = scenario.radio
    b_n, k_n, p = radio.n_cells, radio.users_per_cell, radio.pmax_w
    got = max_power_sum_rate(gains, radio)
    for e in range(3):
        total = 0.0
        for c in range(b_n):
            for k in range(k_n):
                signal = p * gains[e, c, k, c]
                interference = sum(
                    p * gains[e, b, k, c]
                    for b in range(b_n)
                    for j in range(k_n)
                    if (b, j) != (c, k)
                )
                total += np.log2(1.0 + signal / (interference + radio.noise_w))
        assert got[e] == pytest.approx(total, rel=1e-12)
