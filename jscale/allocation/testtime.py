"""Test-time compute: the model size and samples per query for repeated sampling.

The model of coverage and cost (:mod:`.coverage`): ``k`` samples from a model of
``N`` parameters solve a query with probability ``c(k; N) = exp(a(N) k^b)``
(Brown et al. 2024 with jscale's link :class:`CoverageScalingParams`), and cost
:func:`sampling_flops` per query (sampling, with optional attention, and optional
training amortized over the queries).

Both problems are one-dimensional in ``x = log N`` after eliminating ``k``, and
convex there (log-sum-exp of affine and convex pieces), so the derivative-guided 1-D
solver of :mod:`jscale.allocation` finds the global optimum, with the closed forms of
the attention-free case as seeds and the kinks (``k = 1``, ``k = max_samples``) as
scan points:

- :func:`sampling_target_optimal`: least FLOPs per query with coverage at least a
  target: ``k(N) = max(1, (log c* / a(N))^(1/b))``;
- :func:`sampling_budget_optimal`: highest coverage within a FLOP budget per query:
  ``k(N) = min(k_max, (F - F_train) / F_sample)``.

Without attention the target problem's cost is ``c_t N + k(N) 2 T N`` with
``k(N)`` a power of N: where bigger models save samples faster than they cost
(``s > |b|``) and training is amortized, the optimum is interior with
``k* = 3 D_pretrain / (Q T (s/|b| - 1))`` (training then costs ``s/|b| - 1`` times
the sampling), Snell's factor ``3 D_pretrain / D_inference`` again; otherwise it is
an end of the range or the size where one sample suffices.

Sizes ``N`` range over ``[n_min, n_max]`` (the models on offer); ``k`` is continuous
(at least 1) and is also reported as an integer (rounded up for a target, down for a
budget) with its coverage and cost.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from .. import _checks, _solver
from .._numerics import asfloat
from ._common import (
    AT_LEAST_ONE,
    CONVERGED,
    FRACTION,
    INFEASIBLE,
    KINK_DELTA,
    NONFINITE,
    POSITIVE,
    pick,
    prepare,
    raise_if_infeasible,
    solver_status,
)
from .coverage import (
    _LOG2,
    _LOG6,
    CoverageScalingParams,
    _check_params,
    _log_attention,
    _pair,
    _params_valid,
    model_coverage,
    sampling_flops,
)

__all__ = [
    "CoverageScalingParams",
    "SamplingResult",
    "model_coverage",
    "sampling_budget_optimal",
    "sampling_flops",
    "sampling_target_optimal",
]


class SamplingResult(NamedTuple):
    """The model size and samples per query of a repeated-sampling plan.

    Attributes:
      n_params: parameters N of the chosen model.
      samples: samples per query ``k`` (continuous, >= 1).
      coverage: ``c(k; N)``, the probability that one of the samples solves a query.
      inference_flops: sampling FLOPs per query, ``k T (2 N + attention)``.
      train_flops: training FLOPs amortized per query (0 without pretraining
        tokens).
      flops_per_query: ``inference_flops + train_flops``.
      samples_int: ``k`` as an integer: rounded up for a coverage target (the target
        still holds), down for a budget (the budget still holds).
      coverage_int, flops_per_query_int: coverage and cost with ``samples_int``.
      status: int32 codes (see :data:`jscale.allocation.STATUS_MESSAGES`).
      iterations: Newton iterations of the 1-D solver.
      grad_norm: the derivative of the objective with respect to ``log N`` at the
        solution, zero where a bound on N explains its sign (KKT); at a kink
        (``k = 1`` or ``k = max_samples``) the distance of 0 from the one-sided
        derivatives' interval.
      violation: relative violation of the coverage target or the budget.
    """

    n_params: jax.Array
    samples: jax.Array
    coverage: jax.Array
    inference_flops: jax.Array
    train_flops: jax.Array
    flops_per_query: jax.Array
    samples_int: jax.Array
    coverage_int: jax.Array
    flops_per_query_int: jax.Array
    status: jax.Array
    iterations: jax.Array
    grad_norm: jax.Array
    violation: jax.Array


class _Theta(NamedTuple):
    """One configuration's inputs in log space (``-inf`` switches a term off)."""

    log_abs_a: jax.Array  # log(-a_ref)
    b: jax.Array
    log_n_ref: jax.Array
    s: jax.Array
    goal: jax.Array  # log(-log c*) for a target, log F for a budget
    log_t: jax.Array
    log_tr: jax.Array  # log(6 D_pretrain / Q), or -inf
    log_att: jax.Array  # see _log_attention, or -inf
    log_kmax: jax.Array  # 0 where there is no cap
    capped: jax.Array  # 1.0 where k <= k_max applies, else 0.0


def _log_f(x, th: _Theta):
    return th.log_t + jnp.logaddexp(_LOG2 + x, th.log_att + (2.0 / 3.0) * x)


def _log_a(x, th: _Theta):
    """``log |a(N)|`` at ``x = log N``."""
    return th.log_abs_a - th.s * (x - th.log_n_ref)


def _log_k_required(x, th: _Theta):
    """``log k`` with ``c(k; N) = c*``: ``(log|log c*| - log|a(N)|) / b``."""
    return (th.goal - _log_a(x, th)) / th.b


def _target_objective(x, th: _Theta):
    """``log`` FLOPs per query reaching the target, ``k = max(1, k_required)``."""
    log_k = jnp.maximum(_log_k_required(x, th), 0.0)
    return jnp.logaddexp(th.log_tr + x, log_k + _log_f(x, th))


def _log_k_affordable(x, th: _Theta):
    """``log k`` with ``F_train + k F_sample = F``."""
    spare = th.goal + jnp.log1p(-jnp.exp(jnp.minimum(th.log_tr + x - th.goal, 0.0)))
    return spare - _log_f(x, th)


def _budget_objective(x, th: _Theta):
    """``log(-log c)`` within the budget, ``k = min(k_max, k_affordable)``."""
    b_log_k = th.b * _log_k_affordable(x, th)
    b_log_k = jnp.where(
        th.capped > 0, jnp.maximum(b_log_k, th.b * th.log_kmax), b_log_k
    )
    return _log_a(x, th) + b_log_k


def _over_budget(x, theta):
    """``log(F_train + k F_sample) - log F`` (increasing); ``theta = (th, log k)``."""
    th, log_k = theta
    return jnp.logaddexp(th.log_tr + x, log_k + _log_f(x, th)) - th.goal


def _safe_points(points, lo):
    return jnp.where(jnp.isfinite(points), points, lo)


def _divide(num, s, default):
    """``num / s`` where ``s > 0``, else ``default`` (gradient-safe)."""
    pos = s > 0
    return jnp.where(pos, num / jnp.where(pos, s, 1.0), default)


def _solve_one(th: _Theta, lo, hi, budget, num_grid, max_steps):
    """One configuration's optimum in ``x = log N`` on ``[lo, hi]``."""
    delta = KINK_DELTA[np.dtype(lo.dtype)]
    if budget:
        objective = _budget_objective
        # Largest N that affords one sample (k >= 1), the upper end, and the kink
        # where the sample cap starts to bind: roots of the budget at k = 1 and
        # k = max_samples, in one loop.
        pts = jnp.linspace(lo, hi, 10)[1:-1]
        log_k = jnp.stack([jnp.zeros_like(lo), th.log_kmax])
        roots = jax.vmap(
            lambda lk: _solver.implicit_root(
                _over_budget, (th, lk), lo, hi, pts, max_steps=max_steps
            )
        )(log_k)
        theta_one = (th, jnp.zeros_like(lo))
        upper = roots.x[0]
        # A budget of exactly one sample is feasible: allow its rounding in logs.
        slack = 4.0 * _solver.eps(lo.dtype) * jnp.maximum(1.0, jnp.abs(th.goal))
        feasible = _over_budget(lo, theta_one) <= slack
        lower = lo
        upper = jnp.where(feasible, upper, lo)
        # (only where the cap binds inside the range)
        cap_inside = (th.capped > 0) & ~roots.at_lower[1] & ~roots.at_upper[1]
        kinks = jnp.where(cap_inside, roots.x[1], lower)[None]
        # The kink's location as a function of the inputs (implicit in the budget).
        kink_x = roots.x[1]
        kink_ok = cap_inside
        # Attention-free closed form: e^x = F (s + b) / (s F_train / N).
        ok = (th.s + th.b > 0) & jnp.isfinite(th.log_tr)
        seed = th.goal + jnp.log(_divide(th.s + th.b, th.s, 1.0)) - th.log_tr
        seed = jnp.where(ok, seed, lower)
    else:
        objective = _target_objective
        # Smallest N that reaches the target with at most max_samples.
        z = th.log_abs_a - th.goal + th.b * th.log_kmax
        x_cap = th.log_n_ref + _divide(z, th.s, 0.0)
        x_cap = jnp.where(th.s > 0, x_cap, jnp.where(z <= 0, -jnp.inf, jnp.inf))
        x_cap = jnp.where(th.capped > 0, x_cap, -jnp.inf)
        feasible = x_cap <= hi
        lower = jnp.where(feasible, jnp.maximum(lo, x_cap), lo)
        upper = hi
        # Kink where one sample suffices: |a(N)| = |log c*|.
        x_one = th.log_n_ref + _divide(th.log_abs_a - th.goal, th.s, 0.0)
        kinks = jnp.where(th.s > 0, x_one, lower)[None]
        kink_x = x_one
        kink_ok = th.s > 0
        # Attention-free closed form (stationary log-sum-exp of two affines).
        ratio = _divide(th.s, -th.b, 0.0)  # s / |b|
        const = (th.goal - th.log_abs_a - th.s * th.log_n_ref) / th.b
        const = const + th.log_t + _LOG2
        ok = (ratio > 1.0) & jnp.isfinite(th.log_tr)
        gap = jnp.log(jnp.where(ok, ratio - 1.0, 1.0))
        seed = (th.log_tr - const - gap) / jnp.where(ok, -ratio, 1.0)
        seed = jnp.where(ok, seed, lower)
    pts = jnp.concatenate([kinks, seed[None]])
    pts = _solver.kink_points(_safe_points(pts, lower), delta)
    r = _solver.minimize_scalar(
        objective, th, lower, upper, pts, num_grid=num_grid, max_steps=max_steps
    )
    x, value, gnorm = r.x, r.value, r.grad_norm
    grad = jax.grad(objective)
    # At a kink (k = 1 or k = max_samples) the derivative jumps: report the
    # distance of 0 from the one-sided slopes' interval (subgradient KKT).
    kinks = _safe_points(kinks, lower)
    width = delta * jnp.maximum(1.0, jnp.abs(x))
    near = jnp.any(jnp.abs(kinks - x) <= 2.0 * width)
    left, right = grad(x - width, th), grad(x + width, th)
    sub = jnp.maximum(left, 0.0) + jnp.maximum(-right, 0.0)
    sub = jnp.where(jnp.isfinite(sub), sub, gnorm)
    gnorm = jnp.where(near, jnp.minimum(gnorm, sub), gnorm)
    # An optimum on a kink moves with the kink: take its location, whose
    # derivatives are known, rather than the implicit rule on the slope (which
    # jumps there). The value is the same to the solver's tolerance.
    on_kink = kink_ok & near & ~r.at_lower & ~r.at_upper & (sub == 0.0)
    x = jnp.where(on_kink, kink_x, x)
    status = solver_status(r.converged, x, value)
    status = jnp.where(feasible, status, INFEASIBLE).astype(jnp.int32)
    # On the sample cap's kink of a budget problem, k is the cap: there k from the
    # budget, (F - F_train) / F_sample, is ill-conditioned when training takes
    # most of the budget (a 1-ulp move in log N changes it by F_train / F_sample
    # ulps).
    at_cap = near & kink_ok if budget else jnp.zeros((), bool)
    return x, status, r.iterations, gnorm, at_cap


_OPTIONAL_RULES = {
    "max_samples": AT_LEAST_ONE._replace(finite=False),
    "pretrain_tokens": POSITIVE,
    "queries": POSITIVE,
    "context": POSITIVE,
    "aspect_ratio": POSITIVE,
}


def _goal_rule(budget):
    return POSITIVE if budget else FRACTION._replace(upper_inclusive=False, safe=0.5)


def _sampling(
    params,
    goal,
    generated_tokens,
    n_min,
    n_max,
    budget,
    num_grid,
    max_steps,
    **optional,
) -> SamplingResult:
    """Check the inputs (eagerly, where concrete) and solve."""
    _check_params(params)
    _pair(
        "pretrain_tokens", optional["pretrain_tokens"], "queries", optional["queries"]
    )
    _pair("context", optional["context"], "aspect_ratio", optional["aspect_ratio"])
    goal_name = "flops_per_query" if budget else "target_coverage"
    inputs = {
        goal_name: (goal, _goal_rule(budget)),
        "generated_tokens": (generated_tokens, POSITIVE),
        "n_min": (n_min, POSITIVE),
        "n_max": (n_max, POSITIVE),
    }
    # Which optional terms apply is data, not structure: one compilation serves
    # every combination of options.
    inputs |= {
        k: (1.0 if v is None else v, _OPTIONAL_RULES[k]) for k, v in optional.items()
    }
    present = {k: jnp.asarray(v is not None) for k, v in optional.items()}
    _check_sizes(n_min, n_max)
    batch = prepare(params, inputs)
    g, t, lo_n, hi_n, *opt = batch.arrays
    opt = dict(zip(optional, opt, strict=True))
    out = _sampling_impl(
        batch.params,
        batch.valid,
        g,
        t,
        lo_n,
        hi_n,
        opt,
        present,
        budget,
        num_grid,
        max_steps,
    )
    return jax.tree_util.tree_map(lambda v: v.reshape(batch.shape), out)


def _check_sizes(n_min, n_max) -> None:
    """Raise now where concrete ``n_max < n_min``."""
    lo_n, hi_n = asfloat(n_min), asfloat(n_max)
    if _checks.is_concrete(lo_n) and _checks.is_concrete(hi_n):
        with jax.ensure_compile_time_eval():
            lo_b, hi_b = jnp.broadcast_arrays(lo_n, hi_n)
            bad = jnp.argwhere(hi_b < lo_b)
        if bad.shape[0]:
            idx = tuple(int(i) for i in bad[0])
            where = f" at index {idx}" if idx else ""
            raise ValueError(
                f"n_max must be >= n_min; got n_max = {float(hi_b[idx]):.6g} < "
                f"n_min = {float(lo_b[idx]):.6g}{where}"
            )


@partial(jax.jit, static_argnames=("budget", "num_grid", "max_steps"))
def _sampling_impl(
    params, valid, g, t, lo_n, hi_n, opt, present, budget, num_grid, max_steps
):
    """The numeric path in one compiled function (inputs flat, one dtype)."""
    p = params
    valid = valid & _params_valid(p) & (hi_n >= lo_n)

    def log_of(v):
        return jnp.log(jnp.where(valid, v, 1.0))

    if budget:
        goal_log = log_of(g)
    else:
        goal_log = jnp.log(-jnp.log(jnp.where(valid, g, 0.5)))
    kmax = opt["max_samples"]
    capped = present["max_samples"] & jnp.isfinite(kmax) & valid
    log_kmax = jnp.log(jnp.where(capped, kmax, 1.0))
    log_tr = _LOG6 + log_of(opt["pretrain_tokens"]) - log_of(opt["queries"])
    log_tr = jnp.where(present["pretrain_tokens"], log_tr, -jnp.inf)
    log_att = _log_attention(log_of(opt["context"]), log_of(opt["aspect_ratio"]))
    log_att = jnp.where(present["context"], log_att, -jnp.inf)
    theta = _Theta(
        log_abs_a=jnp.log(-jnp.where(valid, p.a_ref, -1.0)),
        b=jnp.where(valid, p.b, -1.0),
        log_n_ref=log_of(p.n_ref),
        s=jnp.where(valid, p.size_exponent, 0.0),
        goal=goal_log,
        log_t=log_of(t),
        log_tr=log_tr,
        log_att=log_att,
        log_kmax=log_kmax,
        capped=capped.astype(g.dtype),
    )
    lo, hi = log_of(lo_n), log_of(hi_n)
    x, status, iters, gnorm, at_cap = jax.vmap(
        partial(_solve_one, budget=budget, num_grid=num_grid, max_steps=max_steps)
    )(theta, lo, hi)
    status = jnp.where(valid, status, INFEASIBLE)
    if budget:
        log_k = _log_k_affordable(x, theta)
        log_k = jnp.where(capped, jnp.minimum(log_k, log_kmax), log_k)
        log_k = jnp.where(at_cap, log_kmax, log_k)
    else:
        log_k = jnp.maximum(_log_k_required(x, theta), 0.0)
    k = jnp.exp(log_k)
    log_f = _log_f(x, theta)
    log_a = _log_a(x, theta)
    coverage = jnp.exp(-jnp.exp(log_a + theta.b * log_k))
    inference = jnp.exp(log_k + log_f)
    train = jnp.exp(theta.log_tr + x)
    total = inference + train
    # k to an integer: up for a target, down for a budget; a k within the solver's
    # accuracy of an integer (1e-9 relative in float64, 1e-5 in float32) is that
    # integer.
    near = 1e-9 if g.dtype == jnp.float64 else 1e-5
    if budget:
        k_int = jnp.maximum(jnp.floor(k * (1.0 + near)), 1.0)
    else:
        k_int = jnp.maximum(jnp.ceil(k * (1.0 - near)), 1.0)
    k_int = jax.lax.stop_gradient(k_int)
    coverage_int = jnp.exp(-jnp.exp(log_a + theta.b * jnp.log(k_int)))
    total_int = k_int * jnp.exp(log_f) + train
    if budget:
        violation = jnp.maximum(0.0, total / g - 1.0)
    else:
        violation = jnp.maximum(0.0, (g - coverage) / g)
    over = jnp.where(capped, k * jnp.exp(-log_kmax) - 1.0, 0.0)
    violation = jnp.maximum(violation, over)
    status = jnp.where((status == CONVERGED) & ~jnp.isfinite(total), NONFINITE, status)
    status = status.astype(jnp.int32)
    bad = (status == INFEASIBLE) | (status == NONFINITE)
    values = [jnp.exp(x), k, coverage, inference, train, total, k_int]
    values += [coverage_int, total_int]
    values = _checks.flag(~bad, *values)
    violation = _checks.flag(~bad, violation)[0]
    return SamplingResult(*values, status, iters, gnorm, violation)


def sampling_target_optimal(
    params: CoverageScalingParams,
    target_coverage: ArrayLike,
    generated_tokens: ArrayLike,
    n_min: ArrayLike,
    n_max: ArrayLike,
    *,
    max_samples: ArrayLike | None = None,
    pretrain_tokens: ArrayLike | None = None,
    queries: ArrayLike | None = None,
    context: ArrayLike | None = None,
    aspect_ratio: ArrayLike | None = None,
    num_grid: int = 8,
    max_steps: int = 48,
) -> SamplingResult:
    """The cheapest model size and samples per query that reach a coverage target.

    Minimizes FLOPs per query (:mod:`.coverage`) subject to ``c(k; N) >= c*`` and
    ``n_min <= N <= n_max`` (and ``k <= max_samples``). For each N the least
    ``k = max(1, (log c* / a(N))^(1/b))`` (Brown et al. 2024's coverage law inverted,
    :func:`jscale.laws.inference.samples_for_coverage`) eliminates the constraint;
    the cost is then convex in ``log N`` and minimized by the 1-D engine. Without
    training and attention terms the cost is ``k(N) 2 N T``, a power of N, so the
    optimum is an end of the range or the size where one sample suffices; training
    amortized over the queries makes larger models dearer and gives an interior
    optimum where bigger models save samples fast enough (``s > |b|``). With
    ``n_min == n_max`` this is ``samples_for_coverage`` at that size.
    Differentiable in the constants, target, tokens, bounds and costs.

    Args:
      params: the coverage link (:class:`CoverageScalingParams`).
      target_coverage: the coverage c* to reach, in (0, 1).
      generated_tokens: tokens generated per sample T (> 0).
      n_min, n_max: the range of model sizes on offer (``0 < n_min <= n_max``).
      max_samples: optional cap on k (>= 1).
      pretrain_tokens, queries: training tokens and the number of queries the
        training cost is amortized over (both or neither).
      context, aspect_ratio: for attention FLOPs: mean attended context and
        ``d_model / n_layers`` (both or neither).
      num_grid, max_steps: scan points and the Newton step cap.

    Returns:
      A :class:`SamplingResult`; ``samples_int`` is ``ceil(k)``.

    Raises:
      ValueError: for concrete invalid inputs (naming them), or a target that the
        largest model cannot reach within ``max_samples``.

    Examples:
      >>> p = CoverageScalingParams(a_ref=-2.0, b=-0.5, n_ref=1e9, size_exponent=1.0)
      >>> r = sampling_target_optimal(p, 0.9, 1000.0, 1e9, 1e11,
      ...                             pretrain_tokens=1e12, queries=1e9)
      >>> # Interior optimum: k = 3 D_pre / (Q T (s/|b| - 1)) = 3 samples.
      >>> f"{float(r.n_params):.3e} {float(r.samples):.2f}"
      '1.096e+10 3.00'
      >>> int(r.samples_int), round(float(r.coverage_int), 4)
      (3, 0.9)
    """
    out = _sampling(
        params,
        target_coverage,
        generated_tokens,
        n_min,
        n_max,
        False,
        num_grid,
        max_steps,
        max_samples=max_samples,
        pretrain_tokens=pretrain_tokens,
        queries=queries,
        context=context,
        aspect_ratio=aspect_ratio,
    )
    raise_if_infeasible(
        out.status,
        lambda idx: (
            f"target_coverage = {pick(target_coverage, idx):.6g} is "
            "infeasible: the largest model (n_max) cannot reach it within "
            "max_samples samples"
        ),
    )
    return out


def sampling_budget_optimal(
    params: CoverageScalingParams,
    flops_per_query: ArrayLike,
    generated_tokens: ArrayLike,
    n_min: ArrayLike,
    n_max: ArrayLike,
    *,
    max_samples: ArrayLike | None = None,
    pretrain_tokens: ArrayLike | None = None,
    queries: ArrayLike | None = None,
    context: ArrayLike | None = None,
    aspect_ratio: ArrayLike | None = None,
    num_grid: int = 8,
    max_steps: int = 48,
) -> SamplingResult:
    """The model size and samples per query with the highest coverage for a budget.

    Maximizes ``c(k; N)`` subject to FLOPs per query ``<= F`` (:mod:`.coverage`),
    ``n_min <= N <= n_max`` and ``1 <= k <= max_samples``. The budget binds (coverage
    rises with k), so ``k = min(k_max, (F - F_train) / F_sample)`` eliminates it and
    ``log(-log c)`` is convex in ``log N`` on the sizes that afford one sample.
    Differentiable in the constants, budget, tokens, bounds and costs.

    Args:
      params: the coverage link (:class:`CoverageScalingParams`).
      flops_per_query: the budget F per query (> 0), training share included when
        ``pretrain_tokens`` is given.
      generated_tokens, n_min, n_max, max_samples, pretrain_tokens, queries,
        context, aspect_ratio, num_grid, max_steps: as
        :func:`sampling_target_optimal`.

    Returns:
      A :class:`SamplingResult`; ``samples_int`` is ``floor(k)``.

    Raises:
      ValueError: for concrete invalid inputs (naming them), or a budget below one
        sample of the smallest model (plus its training share).

    Examples:
      >>> p = CoverageScalingParams(a_ref=-2.0, b=-0.5, n_ref=1e9, size_exponent=1.0)
      >>> r = sampling_budget_optimal(p, 1e15, 1000.0, 1e9, 1e11,
      ...                             pretrain_tokens=1e12, queries=1e9)
      >>> # Interior optimum: N = F (s + b) / (s 6 D_pre / Q) = 8.33e10.
      >>> f"{float(r.n_params):.3e} {float(r.samples):.1f} {float(r.coverage):.4f}"
      '8.333e+10 3.0 0.9862'
    """
    out = _sampling(
        params,
        flops_per_query,
        generated_tokens,
        n_min,
        n_max,
        True,
        num_grid,
        max_steps,
        max_samples=max_samples,
        pretrain_tokens=pretrain_tokens,
        queries=queries,
        context=context,
        aspect_ratio=aspect_ratio,
    )
    raise_if_infeasible(
        out.status,
        lambda idx: (
            f"flops_per_query = {pick(flops_per_query, idx):.6g} is "
            "infeasible: it must pay for one sample of the smallest model (n_min) "
            "and its training share"
        ),
    )
    return out
