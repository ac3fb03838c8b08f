"""Test-time compute: the model size and samples per query for repeated sampling.

Brown et al. 2024, "Large Language Monkeys: Scaling Inference Compute with Repeated
Sampling" (arXiv:2407.21787): the fraction of queries solved by at least one of ``k``
samples follows ``c(k) = exp(a k^b)`` with ``a < 0``, ``b < 0``, fitted per model and
task (:func:`jscale.laws.inference.coverage`). Larger models have a better single
sample (``a`` closer to 0), but each sample costs more. The paper prints no law for
how ``a`` moves with model size, so jscale takes a documented, user-supplied link
(:class:`CoverageScalingParams`)::

    a(N) = a_ref (N / n_ref)^(-s),    c(k; N) = exp(a(N) k^b),

i.e. ``log(-log c(1))`` falls linearly in ``log N`` with slope ``s`` (``s = 0``:
size does not help). Fit ``a_ref`` and ``b`` to one model's coverage curve and ``s``
to two or more models' ``a``; no constants are shipped.

Cost per query, in FLOPs (all terms optional but the first):

- sampling: ``k T (2 N + 2 n_layers d_model ctx)`` for ``T`` generated tokens per
  sample (Kaplan et al. 2020, Table 1, as in
  :func:`jscale.laws.inference.inference_flops_per_query`); the attention term needs
  a shape, here ``N = 12 n_layers d_model^2`` (Kaplan 2020, Sec. 2.1) with a fixed
  aspect ratio ``d_model / n_layers``, so ``n_layers = (N / (12 r^2))^(1/3)``;
- training amortized over the queries served, ``6 N D_pretrain / Q`` (Hoffmann et al.
  2022's ``C = 6 N D``). With it, a model ``M`` times larger costs as much as ``M + 3
  (D_pretrain / D_inference) (M - 1)`` times the samples of the small one, the
  exchange rate of Snell et al. 2024 (arXiv:2408.03314, Sec. 7;
  :func:`jscale.laws.inference.matched_inference_multiplier`). Prompt prefill is
  not counted. :func:`sampling_flops` evaluates this cost for any plan.

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

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from .. import _checks, _solver
from . import _core
from ._core import CONVERGED, INFEASIBLE, NONFINITE

_LOG2 = math.log(2.0)
_LOG6 = math.log(6.0)
_LOG12 = math.log(12.0)


class CoverageScalingParams(NamedTuple):
    """Coverage of ``k`` samples from a model of ``N`` parameters.

    ``c(k; N) = exp(a(N) k^b)`` with ``a(N) = a_ref (N / n_ref)^(-size_exponent)``:
    Brown et al. 2024's exponentiated power law in ``k`` (arXiv:2407.21787), with a
    power-law link in ``N`` chosen by jscale (the paper fits ``a`` and ``b`` per
    model and prints no link).

    Attributes:
      a_ref: ``log c(1)`` of the reference model, the log coverage of one sample
        (< 0).
      b: exponent in ``k`` (< 0).
      n_ref: parameters of the reference model (> 0).
      size_exponent: ``s >= 0``; ``|a|`` falls as ``N^-s``.

    Leaves may be Python floats or arrays (a leading axis holds many links).
    """

    a_ref: ArrayLike
    b: ArrayLike
    n_ref: ArrayLike
    size_exponent: ArrayLike


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


def _check_params(params: CoverageScalingParams) -> None:
    _checks.check_range("a_ref", params.a_ref, lower=None, upper=0.0)
    _checks.check_range("b", params.b, lower=None, upper=0.0)
    _checks.check_positive("n_ref", params.n_ref)
    _checks.check_range("size_exponent", params.size_exponent, lower_inclusive=True)


def _params_valid(params: CoverageScalingParams) -> jax.Array:
    return (
        _checks.in_range(params.a_ref, lower=None, upper=0.0)
        & _checks.in_range(params.b, lower=None, upper=0.0)
        & _checks.positive(params.n_ref)
        & _checks.in_range(params.size_exponent, lower_inclusive=True)
    )


def model_coverage(
    params: CoverageScalingParams, n_params: ArrayLike, samples: ArrayLike
) -> jax.Array:
    """Coverage of ``k`` samples from a model of ``N`` parameters, ``c(k; N)``.

    ``exp(a(N) k^b)`` with ``a(N) = a_ref (N / n_ref)^(-s)`` (Brown et al. 2024's
    form in ``k``; see :class:`CoverageScalingParams`), computed in log space.

    Args:
      params: the coverage link.
      n_params: parameters N (> 0).
      samples: samples per query k (> 0), broadcastable against N.

    Returns:
      Coverage in (0, 1) with the broadcast shape; NaN under ``jax.jit`` where an
      input is invalid.

    Raises:
      ValueError: for concrete invalid constants or inputs.

    Examples:
      >>> p = CoverageScalingParams(a_ref=-2.0, b=-0.5, n_ref=1e9, size_exponent=0.5)
      >>> round(float(model_coverage(p, 1e9, 1.0)), 4)  # exp(a_ref)
      0.1353
      >>> round(float(model_coverage(p, 4e9, 1.0)), 4)  # exp(a_ref / 2)
      0.3679
    """
    _check_params(params)
    valid, (n, k) = _checks.positive_inputs(n_params=n_params, samples=samples)
    valid = valid & _params_valid(params)
    log_abs_a = jnp.log(
        -jnp.where(valid, params.a_ref, -1.0)
    ) - params.size_exponent * (jnp.log(n) - jnp.log(params.n_ref))
    value = jnp.exp(-jnp.exp(log_abs_a + params.b * jnp.log(k)))
    return jnp.where(valid, value, jnp.nan)


def _pair(name_a, a, name_b, b):
    if (a is None) != (b is None):
        raise ValueError(
            f"give both {name_a} and {name_b} or neither; got "
            f"{name_a}={'set' if a is not None else 'None'}, "
            f"{name_b}={'set' if b is not None else 'None'}"
        )


def sampling_flops(
    n_params: ArrayLike,
    samples: ArrayLike,
    generated_tokens: ArrayLike,
    *,
    pretrain_tokens: ArrayLike | None = None,
    queries: ArrayLike | None = None,
    context: ArrayLike | None = None,
    aspect_ratio: ArrayLike | None = None,
) -> jax.Array:
    """FLOPs per query of a repeated-sampling plan (the module docstring's model).

    ``k T (2 N + 2 n_layers d_model ctx) + 6 N D_pretrain / Q`` with
    ``n_layers = (N / (12 r^2))^(1/3)`` and ``d_model = r n_layers`` when the
    attention term is asked for (``context`` and ``aspect_ratio``), and the training
    term when ``pretrain_tokens`` and ``queries`` are given.

    Args:
      n_params: parameters N (> 0).
      samples: samples per query k (> 0).
      generated_tokens: tokens generated per sample T (> 0).
      pretrain_tokens, queries: training tokens and the queries they are amortized
        over (> 0; both or neither).
      context, aspect_ratio: mean attended context per generated token and
        ``d_model / n_layers`` (> 0; both or neither).

    Returns:
      FLOPs per query with the broadcast shape; NaN under ``jax.jit`` where an input
      is invalid.

    Raises:
      ValueError: for concrete invalid inputs (naming them), shapes that do not
        broadcast, or only one of a pair of options.

    Examples:
      >>> f"{float(sampling_flops(7e9, 4.0, 1000.0)):.3g}"  # 4 x 1000 x 2N
      '5.6e+13'
      >>> f = sampling_flops(7e9, 1.0, 1000.0, pretrain_tokens=2e12, queries=1e9)
      >>> f"{float(f):.4g}"  # 2N x 1000 + 6N x 2e12 / 1e9
      '9.8e+13'
    """
    _pair("pretrain_tokens", pretrain_tokens, "queries", queries)
    _pair("context", context, "aspect_ratio", aspect_ratio)
    inputs = {
        "n_params": n_params,
        "samples": samples,
        "generated_tokens": generated_tokens,
    }
    if pretrain_tokens is not None:
        inputs |= {"pretrain_tokens": pretrain_tokens, "queries": queries}
    if context is not None:
        inputs |= {"context": context, "aspect_ratio": aspect_ratio}
    valid, values = _checks.positive_inputs(**inputs)
    logs = dict(zip(inputs, (jnp.log(v) for v in values), strict=True))
    log_tr = (
        logs["pretrain_tokens"] - logs["queries"] + _LOG6
        if pretrain_tokens is not None
        else None
    )
    log_att = _log_attention(logs.get("context"), logs.get("aspect_ratio"))
    x = logs["n_params"]
    log_f = _log_sample_flops(x, logs["generated_tokens"], log_att)
    total = logs["samples"] + log_f
    if log_tr is not None:
        total = jnp.logaddexp(total, log_tr + x)
    return jnp.where(valid, jnp.exp(total), jnp.nan)


def _log_attention(log_ctx, log_ratio):
    """``log`` of the attention FLOPs per token over ``N^(2/3)`` (see the module)."""
    if log_ctx is None:
        return None
    # 2 n_layers d_model ctx = 2 r ctx n_layers^2, n_layers = (N / (12 r^2))^(1/3).
    return _LOG2 + log_ratio + log_ctx - (2.0 / 3.0) * (_LOG12 + 2.0 * log_ratio)


def _log_sample_flops(x, log_t, log_att):
    """``log`` FLOPs of one sample of ``T`` tokens from a model of ``exp(x)``."""
    weights = _LOG2 + x
    if log_att is None:
        return log_t + weights
    return log_t + jnp.logaddexp(weights, log_att + (2.0 / 3.0) * x)


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
    delta = _core._KINK_DELTA[np.dtype(lo.dtype)]
    sg = jax.lax.stop_gradient
    if budget:
        objective = _budget_objective
        # Largest N that affords one sample (k >= 1), the upper end, and the kink
        # where the sample cap starts to bind: roots of the budget at k = 1 and
        # k = max_samples, in one loop.
        pts = jnp.linspace(lo, hi, 10)[1:-1]
        log_k = jnp.stack([jnp.zeros_like(lo), th.log_kmax])
        roots = jax.vmap(
            lambda lk: _solver.root_scalar(
                _over_budget, sg((th, lk)), sg(lo), sg(hi), sg(pts), max_steps=max_steps
            )
        )(log_k)
        theta_one = (th, jnp.zeros_like(lo))
        x_hi = _solver.implicit(_over_budget, roots.x[0], theta_one)
        upper = jnp.where(roots.at_upper[0], hi, x_hi)
        # A budget of exactly one sample is feasible: allow its rounding in logs.
        slack = 4.0 * _solver.eps(lo.dtype) * jnp.maximum(1.0, jnp.abs(th.goal))
        feasible = _over_budget(lo, theta_one) <= slack
        lower = lo
        upper = jnp.where(feasible, upper, lo)
        # (only where the cap binds inside the range)
        cap_inside = (th.capped > 0) & ~roots.at_lower[1] & ~roots.at_upper[1]
        kinks = jnp.where(cap_inside, roots.x[1], lower)[None]
        # The kink's location as a function of the inputs (implicit in the budget).
        kink_x = _solver.implicit(_over_budget, roots.x[1], (th, th.log_kmax))
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
    x, r = _core._scalar_min_one(objective, lower, upper, th, pts, num_grid, max_steps)
    value = objective(x, th)
    grad = jax.grad(objective)
    gnorm = _core._projected_slope(grad(x, th), r.at_lower, r.at_upper)
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
    status = _core._status(r.converged, x, value)
    status = jnp.where(feasible, status, INFEASIBLE).astype(jnp.int32)
    # On the sample cap's kink of a budget problem, k is the cap: there k from the
    # budget, (F - F_train) / F_sample, is ill-conditioned when training takes
    # most of the budget (a 1-ulp move in log N changes it by F_train / F_sample
    # ulps).
    at_cap = near & kink_ok if budget else jnp.zeros((), bool)
    return x, status, r.iterations, gnorm, at_cap


_OPTIONAL_RULES = {
    "max_samples": {"lower": 1.0, "lower_inclusive": True, "finite": False},
    "pretrain_tokens": {"lower": 0.0},
    "queries": {"lower": 0.0},
    "context": {"lower": 0.0},
    "aspect_ratio": {"lower": 0.0},
}


def _goal_rule(budget):
    return {"lower": 0.0} if budget else {"lower": 0.0, "upper": 1.0}


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
    goal_name = "flops_per_query" if budget else "target_coverage"
    g = _checks.check_range(goal_name, goal, **_goal_rule(budget))
    t = _checks.check_positive("generated_tokens", generated_tokens)
    lo_n = _checks.check_positive("n_min", n_min)
    hi_n = _checks.check_positive("n_max", n_max)
    _pair(
        "pretrain_tokens", optional["pretrain_tokens"], "queries", optional["queries"]
    )
    _pair("context", optional["context"], "aspect_ratio", optional["aspect_ratio"])
    opt = {
        k: _checks.check_range(k, 1.0 if v is None else v, **_OPTIONAL_RULES[k])
        for k, v in optional.items()
    }
    # Which optional terms apply is data, not structure: one compilation serves
    # every combination of options.
    present = {k: jnp.asarray(v is not None) for k, v in optional.items()}
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
    shape = _checks.check_shapes(
        **{goal_name: g, "generated_tokens": t, "n_min": lo_n, "n_max": hi_n},
        **opt,
        params=jnp.zeros(_core._batch_shape(*jax.tree_util.tree_leaves(params)), bool),
    )
    # Every input at the batch shape and one dtype (strongly typed): the compiled
    # function then depends on that shape and dtype only, not on which inputs
    # were scalars or Python numbers.
    leaves = jax.tree_util.tree_leaves(params)
    dtype = jnp.result_type(g, t, lo_n, hi_n, *opt.values(), *leaves)
    size = math.prod(shape)

    def flat(v):
        return jnp.broadcast_to(jnp.asarray(v, dtype), shape).reshape(size)

    params = jax.tree_util.tree_map(flat, params)
    g, t, lo_n, hi_n = (flat(v) for v in (g, t, lo_n, hi_n))
    opt = {k: flat(v) for k, v in opt.items()}
    out = _sampling_impl(
        params, g, t, lo_n, hi_n, opt, present, budget, num_grid, max_steps
    )
    return jax.tree_util.tree_map(lambda v: v.reshape(shape), out)


@partial(jax.jit, static_argnames=("budget", "num_grid", "max_steps"))
def _sampling_impl(params, g, t, lo_n, hi_n, opt, present, budget, num_grid, max_steps):
    """The whole numeric path in one compiled function (inputs flat, one dtype)."""
    p = params
    valid = (
        _checks.in_range(g, **_goal_rule(budget))
        & _params_valid(p)
        & _checks.positive(t)
        & _checks.positive(lo_n)
        & _checks.positive(hi_n)
        & (hi_n >= lo_n)
    )
    for k, v in opt.items():
        valid = valid & (_checks.in_range(v, **_OPTIONAL_RULES[k]) | ~present[k])

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

    Minimizes FLOPs per query (module docstring) subject to ``c(k; N) >= c*`` and
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
    _core._raise_if_infeasible(
        out.status,
        lambda idx: (
            f"target_coverage = {_core._pick(target_coverage, idx):.6g} is "
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

    Maximizes ``c(k; N)`` subject to FLOPs per query ``<= F`` (module docstring),
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
    _core._raise_if_infeasible(
        out.status,
        lambda idx: (
            f"flops_per_query = {_core._pick(flops_per_query, idx):.6g} is "
            "infeasible: it must pay for one sample of the smallest model (n_min) "
            "and its training share"
        ),
    )
    return out
