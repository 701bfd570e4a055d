"""Trust Region Policy Optimization, as paper 001 (Section III-B, Algorithm 1) uses it.

Reads top to bottom:

1. advantages: GAE(gamma, lambda) with a state-value baseline V(s) (3 x 256 ELU, float32),
   fitted to the lambda-returns by Adam (its products in bfloat16 where the CPU has them:
   ``value_dtype``);
2. the surrogate ``L(theta') = mean(pi_theta'(a|s) / pi_theta(a|s) * A)`` and its
   gradient ``g`` (eq. 18);
3. the Fisher matrix F only through products ``F v``: the Hessian of the mean
   ``KL(pi_old || pi)`` at the current parameters (eq. 15, 19; at theta' = theta both KL
   directions have the same Hessian, the Fisher matrix), in its exact Gauss-Newton form
   ``J^T diag(1/sigma^2) J`` through the mean network's Jacobian, estimated on every k-th
   state of the batch (``fisher_subsample``);
4. ``s = F^-1 g`` by conjugate gradient, step ``sqrt(2 delta / s^T F s) s`` (eq. 20),
   with ``s^T F s = s^T g``, which conjugate gradient started from zero satisfies exactly
   (its residual is orthogonal to the Krylov space that holds ``s``);
5. backtracking ``theta + zeta^j step``, j = 0, 1, ..., accepting the first fraction
   whose surrogate improves on the old one and whose KL is <= delta (eq. 21-23); if none
   does, the old parameters stay.

Steps 2-5 run on a float32 copy of the float64 policy (``direction_dtype``), twice as fast
on a CPU; the accepted step moves the float64 policy.

Choices where the paper is vague (a reviewer-acceptable reading, stated once):
the paper's critic takes (s, a) and "fits the advantage values"; an action-dependent
baseline biases the policy gradient, so the critic here is the standard V(s) of the
TRPO/GAE papers it cites. Advantages are normalized per batch (TRPO's step length
is invariant to their scale; the mean shift is a constant baseline). Condition (22),
``L(theta') >= 0``, is read as "the surrogate improves on L(theta)" (equal to it
up to the normalized advantages' zero mean), with a strict inequality.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from controller.learners.mlp_jacobian import MlpJacobian
from controller.learners.threads import native_bfloat16
from controller.training.rollout import Batch
from node.policy import GaussianPolicy, mlp, state_arrays

Array = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Fvp = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class TrpoConfig:
    """Hyper-parameters of TRPO (paper 001, Table II where it gives them)."""

    max_kl: float = 0.01
    """delta, the trust region: bound on the mean KL(pi_old || pi_new), nats."""
    backtrack_coef: float = 0.90
    """zeta, the line search multiplies the step by zeta^j, j = 0, 1, ... (dimensionless)."""
    max_backtracks: int = 30
    """Number of step fractions tried (1 .. zeta^29 ~ 0.047) before the step is dropped."""
    gamma: float = 0.99
    """Discount factor per step (dimensionless)."""
    gae_lambda: float = 0.97
    """GAE lambda (dimensionless); irrelevant for single-step episodes."""
    cg_iters: int = 10
    """Conjugate-gradient iterations for s = F^-1 g."""
    cg_tol: float = 1e-10
    """CG stops early when the squared residual r^T r falls below this."""
    cg_damping: float = 0.1
    """Tikhonov damping: CG solves (F + damping I) s = g (units of F, nats per param^2)."""
    fisher_subsample: int = 5
    """F is estimated on every k-th state of the batch (k = this; 1: all of them), as
    OpenAI Baselines' TRPO does with k = 5: the CG products are ~k times cheaper, while
    the gradient, the surrogate and the line search's KL bound use the whole batch."""
    value_hidden: tuple[int, ...] = (256, 256, 256)
    """Hidden widths of the value network V(s) (ELU between layers)."""
    value_lr: float = 1e-3
    """Adam learning rate of the value network (per step)."""
    value_epochs: int = 5
    """Passes over the batch when fitting V(s) to the returns, per iteration."""
    value_minibatch: int = 256
    """Steps per Adam minibatch when fitting V(s)."""
    value_dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    """Precision of the value fit's matrix products: ``bfloat16`` runs V's forward and
    backward passes under bfloat16 autocast while its weights, Adam's moments and the loss
    stay float32 (mixed precision; about twice as fast a fit where the CPU multiplies
    bfloat16 natively, e.g. AVX-512 BF16: 4x the float32 rate of a 256 x 256 product on
    this project's machines). ``auto``: bfloat16 where the CPU has native bfloat16 products
    (:func:`controller.learners.threads.native_bfloat16`), else float32 (emulated bfloat16
    is slower). The advantages are always computed with V in float32."""
    normalize_advantages: bool = True
    """Standardize advantages to zero mean and unit variance over the batch."""
    episodes_per_iteration: int = 1000
    """M, episodes collected per policy update (paper: 1000); used by the runner."""
    direction_dtype: Literal["float32", "float64"] = "float32"
    """Precision of the policy step: pi_old, the surrogate's gradient g, the conjugate
    gradient's Fisher-vector products and the line search's surrogate and KL run on a copy
    of the policy in this dtype (``float32``: about twice as fast as ``float64`` on a CPU;
    the KL bound then holds to float32 rounding, a relative 1e-6). The policy itself stays
    float64."""
    normalize_returns: bool = False
    """Fit V(s) to the batch's standardized returns, V = net(s) * std + mean, rescaling the
    network's last layer when the statistics move so that V itself is unchanged (PopArt's
    output-preserving update, van Hasselt et al. 2016, with each batch's mean and std): the
    fit runs at the same pace whatever the rewards' scale (tens of bit/s/Hz at thermal
    noise). ``value_loss`` is then in standardized units."""
    overlap_value_fit: bool = True
    """Fit V(s) on a second thread while the policy steps: the two touch disjoint networks
    and V's fit is the only user of the learner's generator, so the results are the same
    bit for bit (torch releases the GIL in its kernels: on two cores the update takes about
    the longer of the two instead of their sum)."""

    def __post_init__(self) -> None:
        checks = [
            (self.max_kl > 0, "max_kl must be > 0"),
            (0 < self.backtrack_coef < 1, "backtrack_coef must be in (0, 1)"),
            (self.max_backtracks >= 1, "max_backtracks must be >= 1"),
            (0 <= self.gamma <= 1 and 0 <= self.gae_lambda <= 1,
             "gamma and gae_lambda must be in [0, 1]"),
            (self.cg_iters >= 1 and self.cg_tol >= 0 and self.cg_damping >= 0,
             "cg_iters must be >= 1, cg_tol and cg_damping >= 0"),
            (self.fisher_subsample >= 1,
             f"fisher_subsample must be >= 1, got {self.fisher_subsample}"),
            (self.value_lr > 0 and self.value_epochs >= 1 and self.value_minibatch >= 1,
             "value_lr must be > 0, value_epochs and value_minibatch >= 1"),
            (all(w >= 1 for w in self.value_hidden), "value_hidden widths must be >= 1"),
            (self.episodes_per_iteration >= 1, "episodes_per_iteration must be >= 1"),
            (self.direction_dtype in ("float32", "float64"),
             f"direction_dtype must be 'float32' or 'float64', got {self.direction_dtype!r}"),
            (self.value_dtype in ("auto", "float32", "bfloat16"),
             f"value_dtype must be 'auto', 'float32' or 'bfloat16', got {self.value_dtype!r}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"TrpoConfig: {msg}")


# --------------------------------------------------------------------------- advantages


def resolve_value_dtype(value_dtype: str) -> str:
    """``TrpoConfig.value_dtype`` on this CPU: ``auto`` becomes ``bfloat16`` where the CPU
    multiplies bfloat16 natively, else ``float32``; the others stay."""
    if value_dtype != "auto":
        return value_dtype
    return "bfloat16" if native_bfloat16() else "float32"


def gae(
    rewards: Array, values: Array, dones: BoolArray, gamma: float, lam: float
) -> tuple[Array, Array]:
    """Generalized advantage estimates and lambda-returns over contiguous whole episodes.

    ``dones[t]`` marks the last step of an episode (no bootstrap after it). Returns
    ``(advantages, returns)`` with ``returns = advantages + values``.
    """
    if rewards.shape[0] == 0 or not dones[-1]:
        raise ValueError("the batch must end with a finished episode")
    adv = np.zeros_like(rewards)
    last = 0.0
    for t in range(rewards.shape[0] - 1, -1, -1):
        if dones[t]:
            next_value, last = 0.0, 0.0
        else:
            next_value = float(values[t + 1])
        delta = rewards[t] + gamma * next_value - values[t]
        last = float(delta) + gamma * lam * last
        adv[t] = last
    return adv, adv + values


def value_network(obs_dim: int, hidden: tuple[int, ...], seed: int,
                  dtype: torch.dtype = torch.float64) -> nn.Sequential:
    """V(s): an ELU MLP with a scalar output, seeded without global state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = mlp([obs_dim, *hidden, 1], out_gain=1.0)
    return net.to(dtype)


class NormalizedValue(nn.Module):
    """``V(s) = net(s) * scale + shift``: a value network that fits standardized returns
    (:attr:`TrpoConfig.normalize_returns`); ``shift``, ``scale`` and ``retargeted`` are
    buffers, so they travel with the network's state_dict (checkpoints)."""

    shift: torch.Tensor
    scale: torch.Tensor
    retargeted: torch.Tensor

    def __init__(self, net: nn.Sequential) -> None:
        super().__init__()
        self.net = net
        dtype = next(net.parameters()).dtype
        self.register_buffer("shift", torch.zeros((), dtype=dtype))
        self.register_buffer("scale", torch.ones((), dtype=dtype))
        self.register_buffer("retargeted", torch.zeros((), dtype=torch.bool))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(obs) * self.scale + self.shift
        return out

    @torch.no_grad()
    def retarget(self, mean: float, std: float) -> None:
        """New statistics; from the second call on, the last layer is rescaled so that
        ``forward`` is unchanged: ``W' = W scale / std``, ``b' = (b scale + shift - mean) /
        std`` (the first statistics replace the arbitrary (0, 1) of an unfitted V: keeping
        its outputs would only start the standardized fit off target)."""
        if self.retargeted:
            last = self.net[-1]
            assert isinstance(last, nn.Linear)
            last.weight.mul_(self.scale / std)
            last.bias.mul_(self.scale).add_(self.shift - mean).div_(std)
        self.shift.fill_(mean)
        self.scale.fill_(std)
        self.retargeted.fill_(True)


# --------------------------------------------------------------------------- flat params


def flat_params(module: nn.Module) -> torch.Tensor:
    return nn.utils.parameters_to_vector(module.parameters()).detach().clone()


def set_flat_params(module: nn.Module, flat: torch.Tensor) -> None:
    nn.utils.vector_to_parameters(flat, module.parameters())


def flat_grad(y: torch.Tensor, module: nn.Module) -> torch.Tensor:
    grads = torch.autograd.grad(y, list(module.parameters()))
    return torch.cat([g.reshape(-1) for g in grads])


# --------------------------------------------------------------------------- KL and Fisher


def gaussian_kl(
    mean0: torch.Tensor, log_std0: torch.Tensor, mean1: torch.Tensor, log_std1: torch.Tensor
) -> torch.Tensor:
    """KL(N0 || N1) of diagonal Gaussians, summed over the last dimension."""
    var0, var1 = torch.exp(2.0 * log_std0), torch.exp(2.0 * log_std1)
    kl = log_std1 - log_std0 + (var0 + (mean0 - mean1) ** 2) / (2.0 * var1) - 0.5
    return kl.sum(-1)


def gaussian_log_prob(
    mean: torch.Tensor, log_std: torch.Tensor, act: torch.Tensor
) -> torch.Tensor:
    """Log-density of the raw actions under a diagonal Gaussian, summed over dimensions."""
    z = (act - mean) / torch.exp(log_std)
    return (-0.5 * z**2 - log_std - 0.5 * math.log(2.0 * math.pi)).sum(-1)


def surrogate(mean: torch.Tensor, log_std: torch.Tensor, act: torch.Tensor,
              old_logp: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
    """The surrogate ``mean(pi(a|s) / pi_old(a|s) * A)`` (eq. 12) of a policy's outputs."""
    return (torch.exp(gaussian_log_prob(mean, log_std, act) - old_logp) * adv).mean()


def mean_kl(
    policy: GaussianPolicy, obs: torch.Tensor, old_mean: torch.Tensor, old_log_std: torch.Tensor
) -> torch.Tensor:
    """Mean over states of KL(pi_old || pi_current); pi_old given by its outputs."""
    mean, log_std = policy(obs)
    return gaussian_kl(old_mean, old_log_std, mean, log_std).mean()


def make_fisher_vector_product(policy: GaussianPolicy, obs: torch.Tensor, damping: float) -> Fvp:
    """``v -> (F + damping I) v`` with F the Hessian of the mean KL at the current params.

    At theta' = theta the mean difference vanishes, so that Hessian is exactly the
    Gauss-Newton form: ``J^T diag(1/sigma^2) J / N`` on the mean network's parameters (J the
    Jacobian of its outputs over the N states), ``2 I`` on the log-stds, nothing between
    them. The products go through the network's cached activations
    (:class:`controller.learners.mlp_jacobian.MlpJacobian`), not double backpropagation.
    """
    params = list(policy.parameters())
    net_params = list(policy.mean_net.parameters())
    if params[0] is not policy.log_std or len(params) != len(net_params) + 1:
        raise TypeError("the Fisher product needs the policy's log_std, then mean_net's "
                        "parameters")
    jac = MlpJacobian(policy.mean_net, obs)
    precision = torch.exp(-2.0 * policy.log_std.detach()) / obs.shape[0]
    sizes = [p.numel() for p in params]

    def fvp(v: torch.Tensor) -> torch.Tensor:
        v_log_std, *vs = torch.split(v, sizes)
        net_v = [x.view_as(p) for x, p in zip(vs, net_params, strict=True)]
        parts = jac.vjp(jac.jvp(net_v) * precision)
        return torch.cat([2.0 * v_log_std, *(x.reshape(-1) for x in parts)]) + damping * v

    return fvp


def fisher_vector_product(
    policy: GaussianPolicy, obs: torch.Tensor, v: torch.Tensor, damping: float
) -> torch.Tensor:
    """``(F + damping I) v`` for one vector (see :func:`make_fisher_vector_product`)."""
    return make_fisher_vector_product(policy, obs, damping)(v)


def conjugate_gradient(fvp: Fvp, b: torch.Tensor, iters: int, tol: float) -> torch.Tensor:
    """Approximately solve ``A x = b`` for symmetric positive definite ``A`` given as ``fvp``."""
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = r @ r
    for _ in range(iters):
        if rr < tol:
            break
        ap = fvp(p)
        alpha = rr / (p @ ap)
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


# --------------------------------------------------------------------------- line search


def line_search(
    policy: nn.Module,
    flat_step: torch.Tensor,
    evaluate: Callable[[], tuple[float, float]],
    base: float,
    max_kl: float,
    zeta: float,
    max_backtracks: int,
) -> tuple[bool, float, float, float]:
    """Try ``theta + zeta^j step``, j = 0, 1, ...; keep the first whose surrogate beats
    ``base`` (the surrogate at theta) with KL <= ``max_kl``; ``evaluate()`` gives the
    (surrogate, KL) of the policy's current parameters. Returns ``(accepted, fraction,
    surrogate, KL)`` of the step kept; on rejection the old parameters are restored, the
    fraction is 0 and the surrogate and KL are NaN (not evaluated there).
    """
    old = flat_params(policy)
    with torch.no_grad():
        for j in range(max_backtracks):
            frac = zeta**j
            set_flat_params(policy, old + frac * flat_step)
            surr, kl = evaluate()
            if math.isfinite(surr) and surr > base and kl <= max_kl:
                return True, frac, surr, kl
        set_flat_params(policy, old)
    return False, 0.0, math.nan, math.nan


def natural_step(g: torch.Tensor, fvp: Fvp, cfg: TrpoConfig) -> tuple[torch.Tensor, float]:
    """``sqrt(2 delta / s^T F s) s`` with ``s = F^-1 g`` (eq. 20), and ``s^T F s``."""
    s = conjugate_gradient(fvp, g, cfg.cg_iters, cfg.cg_tol)
    shs = float(s @ g)  # = s^T (F + damping I) s for conjugate gradient from s = 0
    if not math.isfinite(shs) or shs <= 0.0:
        return torch.zeros_like(g), shs
    return math.sqrt(2.0 * cfg.max_kl / shs) * s, shs


# --------------------------------------------------------------------------- the learner


class Trpo:
    """TRPO learner (a :class:`protocols.core.Learner`): ``step(batch) -> stats``,
    ``get_variables() -> named arrays``, ``version`` = steps taken."""

    def __init__(self, policy: GaussianPolicy, cfg: TrpoConfig, rng: np.random.Generator) -> None:
        self.policy = policy
        self.cfg = cfg
        self.rng = rng
        seed = int(rng.integers(2**31 - 1))
        # V only ranks the batch's states (the advantages are normalized): float32 fits it
        # in half the time of float64 with the same policy (3cell-k2, 40k steps, 3 seeds)
        self.value: nn.Module = value_network(policy.cfg.obs_dim, cfg.value_hidden, seed,
                                              torch.float32)
        if cfg.normalize_returns:
            self.value = NormalizedValue(self.value)
        self.value_opt = torch.optim.Adam(self.value.parameters(), lr=cfg.value_lr, fused=True)
        self.value_dtype = resolve_value_dtype(cfg.value_dtype)
        """The precision of V's fit products: ``cfg.value_dtype`` with ``auto`` resolved."""
        self.iterations = 0
        self._copy: GaussianPolicy | None = None

    @property
    def version(self) -> int:
        """Learning steps taken (the variables' version)."""
        return self.iterations

    def get_variables(self) -> dict[str, Array]:
        """The policy's weights as named numpy arrays (what nodes load)."""
        return state_arrays(self.policy)

    def advantages(self, batch: Batch) -> tuple[Array, Array]:
        """(advantages, returns) of a batch under the current value network."""
        with torch.no_grad():
            values = self.value(torch.as_tensor(batch.obs, dtype=torch.float32)).squeeze(-1)
        return gae(batch.rewards, values.double().numpy(), batch.dones, self.cfg.gamma,
                   self.cfg.gae_lambda)

    def fit_value(self, obs: torch.Tensor, returns: torch.Tensor) -> float:
        """Adam on the squared error to the returns (standardized ones, after retargeting
        V, with ``normalize_returns``); returns the last epoch's mean loss."""
        cfg = self.cfg
        n = obs.shape[0]
        model: nn.Module = self.value
        if isinstance(self.value, NormalizedValue):
            mean, std = float(returns.mean()), float(returns.std(correction=0))
            std = std if std > 1e-8 else 1.0  # one return, or all equal: shift only
            self.value.retarget(mean, std)
            model, returns = self.value.net, (returns - mean) / std
        loss_sum = 0.0
        bfloat16 = self.value_dtype == "bfloat16"
        for _ in range(cfg.value_epochs):
            order = torch.as_tensor(self.rng.permutation(n))
            loss_sum = 0.0
            for start in range(0, n, cfg.value_minibatch):
                idx = order[start : start + cfg.value_minibatch]
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):
                    v = model(obs[idx]).squeeze(-1)
                loss = ((v.float() - returns[idx]) ** 2).mean()
                self.value_opt.zero_grad()
                loss.backward()
                self.value_opt.step()
                loss_sum += loss.item() * idx.shape[0]
        return loss_sum / n

    def step(self, batch: Batch) -> dict[str, float]:
        """One TRPO iteration on a batch of whole episodes; returns its statistics."""
        cfg = self.cfg
        obs = torch.as_tensor(batch.obs)
        act = torch.as_tensor(batch.actions)

        # 1. advantages with the old critic, then fit the critic (Algorithm 1, lines 6-7)
        adv_np, ret_np = self.advantages(batch)
        adv = torch.as_tensor(adv_np)
        if cfg.normalize_advantages:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        fit = (obs.float(), torch.as_tensor(ret_np, dtype=torch.float32))
        with ThreadPoolExecutor(1) as pool:
            fitting = pool.submit(self.fit_value, *fit) if cfg.overlap_value_fit else None
            stats = self._policy_step(batch, obs, act, adv)
            stats["value_loss"] = (self.fit_value(*fit) if fitting is None
                                   else fitting.result())
        return stats

    def _policy_step(self, batch: Batch, obs: torch.Tensor, act: torch.Tensor,
                     adv: torch.Tensor) -> dict[str, float]:
        """Steps 2-5 of the iteration: the policy's natural-gradient step and line search,
        computed on :meth:`_working_copy` (the policy in ``direction_dtype``)."""
        cfg, policy = self.cfg, self.policy
        net = self._working_copy()
        dtype = net.log_std.dtype
        obs, act, adv = obs.to(dtype), act.to(dtype), adv.to(dtype)
        # 2. pi_old and the surrogate's gradient from one forward pass (eq. 12, 18)
        mean, log_std = net(obs)
        old_mean, old_log_std = mean.detach(), log_std.detach().clone()
        old_logp = gaussian_log_prob(old_mean, old_log_std, act)
        g = flat_grad(surrogate(mean, log_std, act, old_logp, adv), net)
        # 3-4. natural gradient step (eq. 15, 19, 20)
        fvp = make_fisher_vector_product(net, obs[:: cfg.fisher_subsample], cfg.cg_damping)
        step, shs = natural_step(g, fvp, cfg)

        def evaluate() -> tuple[float, float]:
            """(surrogate, mean KL) of the policy's current parameters, one forward pass."""
            mean, log_std = self._working_copy()(obs)
            return (float(surrogate(mean, log_std, act, old_logp, adv)),
                    float(gaussian_kl(old_mean, old_log_std, mean, log_std).mean()))

        # 5. backtracking line search (eq. 21-23). At the old parameters the ratio is 1
        # exactly (the same forward pass as old_logp), so the surrogate there is mean(adv).
        base = float(adv.mean())
        accepted, frac, surr, final_kl = False, 0.0, math.nan, math.nan
        if shs > 0.0 and math.isfinite(shs):
            accepted, frac, surr, final_kl = line_search(
                policy, step.to(policy.log_std.dtype), evaluate, base, cfg.max_kl,
                cfg.backtrack_coef, cfg.max_backtracks)
        if not accepted:  # the old parameters: evaluated there
            with torch.no_grad():
                surr, final_kl = evaluate()
        gain = surr - base
        self.iterations += 1
        return {
            "iteration": float(self.iterations),
            "episodes": float(batch.episodes),
            "sum_rate_bps_hz": float(batch.sum_rate_bps_hz.mean()),
            "episode_return": float(batch.rewards.sum() / batch.episodes),
            "grad_norm": float(g.norm()),
            "expected_improvement": float(g @ step) * frac,
            "surrogate_gain": gain,
            "kl": final_kl,
            "accepted": float(accepted),
            "step_fraction": frac,
            "std": policy.log_std.exp().mean().item(),
        }

    def _working_copy(self) -> GaussianPolicy:
        """The policy in ``direction_dtype``: the policy itself when that is its dtype, else
        a copy kept between iterations, loaded with the policy's current parameters."""
        dtype = getattr(torch, self.cfg.direction_dtype)
        if dtype == self.policy.log_std.dtype:
            return self.policy
        if self._copy is None:
            self._copy = copy.deepcopy(self.policy).to(dtype)
        set_flat_params(self._copy, flat_params(self.policy).to(dtype))
        return self._copy
