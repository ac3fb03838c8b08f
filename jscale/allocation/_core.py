"""The allocation engine, the closed forms and the dense, data-constrained and
inference-aware scenarios (re-exported by :mod:`jscale.allocation`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

from .. import _checks, _solver, _status
from .._numerics import asfloat
from ..laws import chinchilla, data_constrained, kaplan
from .results import AllocationResult

#: Per-element status codes of an allocation: the one table in jscale._status.
STATUS_MESSAGES = _status.MESSAGES
CONVERGED, MAX_STEPS, INFEASIBLE, NONFINITE, AT_BOUND = (
    _status.CONVERGED,
    _status.MAX_STEPS,
    _status.INFEASIBLE,
    _status.NONFINITE,
    _status.AT_BOUND,
)

_LOG6 = math.log(6.0)


def _finish(log_n, log_d, loss, compute_flops) -> AllocationResult:
    """Status and NaN flags for an allocation computed in log space; raise eagerly."""
    n, d = jnp.exp(log_n), jnp.exp(log_d)
    status = jnp.where((log_n < 0) | (log_d < 0), INFEASIBLE, CONVERGED)
    status = jnp.where(
        jnp.isfinite(n) & jnp.isfinite(d) & jnp.isfinite(loss), status, NONFINITE
    )
    status = jnp.where(_checks.positive(compute_flops), status, INFEASIBLE)
    status = status.astype(jnp.int32)
    bad = (status == INFEASIBLE) | (status == NONFINITE)
    n, d, loss = _checks.flag(~bad, n, d, loss)
    result = AllocationResult(n, d, loss, compute_flops, status)
    if _checks.is_concrete(status) and bool(jnp.any(status == INFEASIBLE)):
        idx = jnp.argwhere(status == INFEASIBLE)[0]
        where = f" at index {tuple(int(i) for i in idx)}" if status.ndim else ""
        c = float(jnp.asarray(compute_flops)[tuple(idx)])
        raise ValueError(
            f"compute_flops = {c:.6g}{where} is infeasible: the optimum would have "
            "fewer than one parameter or one token; use a larger budget"
        )
    return result


def chinchilla_optimal(
    params: chinchilla.ChinchillaParams, compute_flops: ArrayLike
) -> AllocationResult:
    """Closed-form optimum of the Chinchilla form under ``C = 6 N D``.

    Hoffmann et al. 2022, Eq. 4: ``N_opt = G (C/6)^a``, ``D_opt = G^-1 (C/6)^b`` with
    ``G = (alpha A / (beta B))^(1/(alpha+beta))``, ``a = beta/(alpha+beta)`` and
    ``b = alpha/(alpha+beta)``, evaluated in log space.

    Args:
      params: Chinchilla-form constants (leaves may be arrays, broadcasting with C).
      compute_flops: training budgets C in FLOPs (> 0), any shape.

    Returns:
      An :class:`AllocationResult`.

    Examples:
      >>> r = chinchilla_optimal(chinchilla.HOFFMANN2022.params, 1e24)
      >>> round(float(r.n_params) / 1e9, 1), round(float(r.n_tokens) / 1e12, 2)
      (41.3, 4.04)
    """
    c = _checks.check_positive("compute_flops", compute_flops)
    E, A, B, alpha, beta = params
    s = alpha + beta
    log_g = (jnp.log(alpha * A) - jnp.log(beta * B)) / s
    log_c6 = jnp.log(c) - _LOG6
    log_n = log_g + (beta / s) * log_c6
    log_d = -log_g + (alpha / s) * log_c6
    loss = E + jnp.exp(jnp.log(A) - alpha * log_n) + jnp.exp(jnp.log(B) - beta * log_d)
    return _finish(log_n, log_d, loss, c)


def kaplan_optimal(
    params: kaplan.KaplanParams, compute_flops: ArrayLike
) -> AllocationResult:
    """Optimum of Kaplan's joint law ``L(N, D)`` (Kaplan et al. 2020, Eq. 4.1) under
    ``C = 6 N D``.

    With ``p = alpha_N / alpha_D`` the law is ``[(N_c/N)^p + D_c/D]^alpha_D``; along
    ``D = C / (6 N)`` the bracket is minimized where
    ``N^(p+1) = p N_c^p C / (6 D_c)``, a closed form. N is non-embedding parameters,
    so C here is non-embedding compute in FLOPs.

    Note this is the optimum of the fitted ``L(N, D)`` surface at fixed ``6ND``, not
    Kaplan's compute-efficient frontier (App. B), which also accounts for early
    stopping and batch size; see :func:`kaplan_frontier` for the latter.

    Args:
      params: Kaplan joint-law constants.
      compute_flops: non-embedding training FLOPs C (> 0).

    Returns:
      An :class:`AllocationResult`.
    """
    c = _checks.check_positive("compute_flops", compute_flops)
    n_c, d_c, alpha_n, alpha_d = params.n_c, params.d_c, params.alpha_n, params.alpha_d
    p = alpha_n / alpha_d
    log_c6 = jnp.log(c) - _LOG6
    log_n = (jnp.log(p) + p * jnp.log(n_c) + log_c6 - jnp.log(d_c)) / (p + 1.0)
    log_d = log_c6 - log_n
    bracket = jnp.logaddexp(p * (jnp.log(n_c) - log_n), jnp.log(d_c) - log_d)
    return _finish(log_n, log_d, jnp.exp(alpha_d * bracket), c)


def tokens_per_param_rule(
    compute_flops: ArrayLike, tokens_per_param: ArrayLike = 20.0
) -> tuple[jax.Array, jax.Array]:
    """Rule of thumb: a fixed ratio of tokens to parameters, ``D = r N``.

    ``r = 20`` is the popular reading of Hoffmann et al. 2022 (Table 3: 70B parameters
    on 1.4T tokens); it is a rule of thumb, not the fitted optimum, and it is not
    Kaplan's (Kaplan's frontier favours far fewer tokens, see :func:`kaplan_frontier`).
    Under ``C = 6 N D``: ``N = sqrt(C / (6 r))``, ``D = r N``.

    Returns:
      ``(n_params, n_tokens)``.

    Examples:
      >>> n, d = tokens_per_param_rule(5.88e23)  # 6 * 70e9 * 1.4e12
      >>> round(float(n) / 1e9), round(float(d) / 1e12, 2)
      (70, 1.4)
    """
    c = _checks.check_positive("compute_flops", compute_flops)
    r = _checks.check_positive("tokens_per_param", tokens_per_param)
    log_n = 0.5 * (jnp.log(c) - _LOG6 - jnp.log(r))
    return jnp.exp(log_n), jnp.exp(log_n + jnp.log(r))


def kaplan_frontier(compute_flops: ArrayLike) -> tuple[jax.Array, jax.Array]:
    """Kaplan et al. 2020's compute-efficient frontier, a rule of thumb.

    ``N_opt = 1.3e9 C_min^0.73`` and ``D_opt = 2e10 C_min^0.27`` with ``C_min`` in
    PF-days (Kaplan 2020, App. A / Eq. 1.7 and Tables 5-6). N is non-embedding
    parameters. These come from training runs stopped early (not run to convergence at
    fixed ``6ND``), so ``6 N D`` does not equal the budget; the frontier predates and
    disagrees with Hoffmann 2022 (Table 2: exponents 0.73 / 0.27 against 0.50 / 0.50).

    Args:
      compute_flops: budgets in FLOPs (converted to PF-days with 8.64e19 FLOP/PF-day).

    Returns:
      ``(n_params, n_tokens)``.
    """
    c = _checks.check_positive("compute_flops", compute_flops)
    log_pf = jnp.log(c) - math.log(kaplan.PF_DAY_FLOPS)
    n = jnp.exp(math.log(1.3e9) + 0.73 * log_pf)
    d = jnp.exp(math.log(2e10) + 0.27 * log_pf)
    return n, d


# ============================================================================ engine


class Solution(NamedTuple):
    """Solutions of a batch of optimization problems (see :func:`minimize`).

    Attributes:
      y: the solution, shape ``batch`` (scalar problems) or ``batch + (n,)``.
      objective: the objective at ``y``.
      status: int32 codes (see :data:`STATUS_MESSAGES`).
      iterations: solver iterations (inner steps summed over outer rounds).
      grad_norm: largest component of the projected gradient of the objective
        (of the Lagrangian, for constrained problems) at ``y``.
      violation: largest constraint violation at ``y`` (0 when feasible).
    """

    y: jax.Array
    objective: jax.Array
    status: jax.Array
    iterations: jax.Array
    grad_norm: jax.Array
    violation: jax.Array


def _batch_shape(*arrays) -> tuple[int, ...]:
    return tuple(jnp.broadcast_shapes(*(jnp.shape(a) for a in arrays)))


def _flat(tree, shape):
    """Every leaf broadcast to ``shape`` and flattened to one batch axis."""
    size = math.prod(shape)
    return jax.tree_util.tree_map(
        lambda v: jnp.broadcast_to(asfloat(v), shape).reshape((size,)), tree
    )


def _flat_trailing(tree, shape):
    """Leaves of shape ``()`` or ``shape + tail`` to ``(size,) + tail``."""
    size = math.prod(shape)

    def one(v):
        v = asfloat(v)
        if v.ndim == 0:
            return jnp.broadcast_to(v, (size,))
        if tuple(v.shape[: len(shape)]) != tuple(shape):
            raise ValueError(
                f"shape mismatch: an args leaf of shape {v.shape} does not start with "
                f"the batch shape {shape}"
            )
        return v.reshape((size, *v.shape[len(shape) :]))

    return jax.tree_util.tree_map(one, tree)


def _status(converged, *finite) -> jax.Array:
    status = jnp.where(converged, CONVERGED, MAX_STEPS)
    ok = jnp.ones((), bool)
    for v in finite:
        ok = ok & jnp.all(jnp.isfinite(v))
    return jnp.where(ok, status, NONFINITE).astype(jnp.int32)


def _projected_slope(slope, at_lower, at_upper):
    """|slope|, zero where an active bound explains its sign (KKT for a box)."""
    explained = (at_lower & (slope >= 0)) | (at_upper & (slope <= 0))
    return jnp.where(explained, 0.0, jnp.abs(slope))


def _scalar_min_one(f, lo, hi, theta, points, num_grid, max_steps):
    """Minimize ``f(x, theta)`` on ``[lo, hi]`` for one configuration.

    Root of ``df/dx`` by :func:`jscale._solver.root_scalar`; the returned ``x`` is
    differentiable in ``theta``, ``lo`` and ``hi`` (implicit function theorem in
    the interior, the bound itself where it is active).
    """

    def slope(x, th):
        return jax.grad(f)(x, th)

    grid = jnp.linspace(lo, hi, num_grid + 2)[1:-1] if num_grid else lo[None][:0]
    pts = jnp.concatenate([grid, jnp.reshape(points, (-1,))])
    sg = jax.lax.stop_gradient
    # The objective is flat to rounding where |slope| * width is far below one
    # ulp of it (plateaus where the slope underflows, e.g. hundreds of epochs).
    e = _solver.eps(lo.dtype)
    flat = e**1.5 * jnp.abs(sg(f(0.5 * (lo + hi), theta)))
    r = _solver.root_scalar(
        slope, sg(theta), sg(lo), sg(hi), sg(pts), max_steps=max_steps, flat=flat
    )
    x = _solver.implicit(slope, r.x, theta)
    x = jnp.where(r.at_lower, lo, jnp.where(r.at_upper, hi, x))
    return x, r


@partial(jax.jit, static_argnames=("fn", "num_grid", "max_steps"))
def _minimize_scalar(fn, lower, upper, args, points, num_grid, max_steps):
    def one(lo, hi, a, pts):
        x, r = _scalar_min_one(fn, lo, hi, a, pts, num_grid, max_steps)
        value = fn(x, a)
        gnorm = _projected_slope(jax.grad(fn)(x, a), r.at_lower, r.at_upper)
        status = _status(r.converged, x, value)
        return Solution(x, value, status, r.iterations, gnorm, jnp.zeros_like(x))

    return jax.vmap(one)(lower, upper, args, points)


def minimize_scalar(
    fn: Callable,
    lower: ArrayLike,
    upper: ArrayLike,
    args: Any = (),
    *,
    points: ArrayLike | None = None,
    num_grid: int = 16,
    max_steps: int = 64,
) -> Solution:
    """Minimize a scalar function of one variable, batched over configurations.

    ``fn(x, args)`` is written for one configuration (``x`` a scalar, ``args`` a
    pytree of that configuration's values). The derivative ``dfn/dx`` is scanned
    for its first sign change over ``num_grid`` evenly spaced points plus
    ``points``, then a safeguarded Newton iteration finds its root. The objective
    must be unimodal between neighbouring scan points; put known kinks into
    ``points`` (as close pairs around each) so that Newton only works on smooth
    pieces. Work in log space (``x = log N``): the derivative's sign locates a
    flat minimum to a few ulps where comparing values cannot.

    The solution is differentiable with respect to ``args``, ``lower`` and
    ``upper`` by the implicit function theorem on ``dfn/dx = 0`` (or through the
    active bound), never through the iterations.

    Args:
      fn: ``fn(x, args) -> scalar``; hashable (a module-level function or a
        callable reused across calls), since it is a static argument of the
        compiled solver.
      lower, upper: finite bounds on ``x``; with ``args``'s leaves they broadcast
        to the batch shape.
      args: a pytree whose leaves are scalars or arrays of the batch shape.
      points: optional extra scan points, shape ``batch + (k,)``.
      num_grid: evenly spaced scan points inside the bounds.
      max_steps: cap on the Newton iterations.

    Returns:
      A :class:`Solution` with the batch shape.

    Examples:
      >>> import jax.numpy as jnp
      >>> def f(x, c):
      ...     return jnp.exp(x) - c * x  # minimum at x = log(c)
      >>> s = minimize_scalar(f, 0.0, 10.0, jnp.array([2.0, 30.0]))
      >>> [round(float(v), 5) for v in jnp.exp(s.y)]
      [2.0, 30.0]
    """
    leaves = jax.tree_util.tree_leaves(args)
    shape = _batch_shape(lower, upper, *leaves)
    lo, hi, flat_args = _flat((lower, upper, args), shape)
    size = math.prod(shape)
    if points is None:
        pts = jnp.zeros((size, 0), lo.dtype)
    else:
        pts = asfloat(points)
        pts = jnp.broadcast_to(pts, (*shape, pts.shape[-1])).reshape(size, -1)
    sol = _minimize_scalar(fn, lo, hi, flat_args, pts, num_grid, max_steps)
    return jax.tree_util.tree_map(lambda v: v.reshape(shape), sol)


_DEFAULT_OPTIMIZER = _solver.default_optimizer()


def _kkt_residual(objective, equality, inequality, n):
    """KKT conditions of the box-, equality- and inequality-constrained problem.

    ``z = (y, lam, nu)``; ``theta = (args, lower, upper, masks)`` where the float
    masks mark variables at their lower / upper bound and active inequalities.
    """

    def residual(z, theta):
        args, lower, upper, at_lo, at_hi, active = theta
        m_eq = z.shape[0] - n - active.shape[0]
        y, lam, nu = z[:n], z[n : n + m_eq], z[n + m_eq :]

        def lagrangian(y):
            value = objective(y, args)
            if equality is not None:
                value = value + jnp.sum(lam * jnp.atleast_1d(equality(y, args)))
            if inequality is not None:
                value = value + jnp.sum(nu * jnp.atleast_1d(inequality(y, args)))
            return value

        free = 1.0 - at_lo - at_hi
        r_y = free * jax.grad(lagrangian)(y) + at_lo * (y - lower) + at_hi * (y - upper)
        parts = [r_y]
        if equality is not None:
            parts.append(jnp.atleast_1d(equality(y, args)))
        if inequality is not None:
            g = jnp.atleast_1d(inequality(y, args))
            parts.append(active * g + (1.0 - active) * nu)
        return jnp.concatenate(parts)

    return residual


@partial(
    jax.jit,
    static_argnames=(
        "fn",
        "equality",
        "inequality",
        "optimizer",
        "max_steps",
        "max_outer",
    ),
)
def _minimize(
    fn,
    y0,
    args,
    lower,
    upper,
    equality,
    inequality,
    optimizer,
    max_steps,
    max_outer,
    tol,
    penalty,
    penalty_growth,
):
    n = y0.shape[-1]

    def one(y0, args, lower, upper):
        sg = jax.lax.stop_gradient
        r = _solver.augmented_lagrangian(
            fn,
            sg(y0),
            sg(args),
            sg(lower),
            sg(upper),
            equality,
            inequality,
            optimizer=optimizer,
            max_steps=max_steps,
            max_outer=max_outer,
            tol=tol,
            penalty=penalty,
            penalty_growth=penalty_growth,
        )
        scale = 1e-6 * jnp.maximum(1.0, jnp.abs(r.y))
        at_lo = (r.y <= lower + scale).astype(y0.dtype)
        at_hi = (r.y >= upper - scale).astype(y0.dtype) * (1.0 - at_lo)
        active = (r.multipliers_ineq > 0).astype(y0.dtype)
        z = jnp.concatenate([r.y, r.multipliers_eq, r.multipliers_ineq])
        residual = _kkt_residual(fn, equality, inequality, n)
        theta = (args, lower, upper, sg(at_lo), sg(at_hi), sg(active))
        y = _solver.implicit(residual, z, theta)[:n]
        value = fn(y, args)
        status = _status(r.converged, y, value)
        return Solution(y, value, status, r.iterations, r.grad_norm, r.violation)

    return jax.vmap(one)(y0, args, lower, upper)


def minimize(
    fn: Callable,
    y0: ArrayLike,
    args: Any = (),
    *,
    lower: ArrayLike | None = None,
    upper: ArrayLike | None = None,
    equality: Callable | None = None,
    inequality: Callable | None = None,
    optimizer: optax.GradientTransformation | None = None,
    max_steps: int = 200,
    max_outer: int = 20,
    tol: float | None = None,
    penalty: float = 10.0,
    penalty_growth: float = 10.0,
) -> Solution:
    """Minimize ``fn(y, args)`` under box, equality and inequality constraints.

    The general, multi-dimensional path of the allocation engine: write the
    problem for one configuration, with decision variables in log space (e.g.
    ``y = (log N, log D)``), and this solves a whole batch in one compiled call.

    - ``lower <= y <= upper`` is enforced by projection after every step
      (``optax.projections.projection_box``);
    - ``equality(y, args) == 0`` and ``inequality(y, args) <= 0`` (vectors) by an
      augmented-Lagrangian outer loop (Nocedal & Wright 2006, Sec. 17.3-17.4)
      around ``optimizer``, an optax ``GradientTransformation`` (default L-BFGS
      with a backtracking line search; optax's extra-args protocol is used when
      the optimizer supports it, e.g. ``optax.lbfgs``).

    Every loop is bounded, so one compilation serves every batch of the same
    shape. The solution is differentiable with respect to ``args``, ``lower``
    and ``upper`` by implicit differentiation of the KKT conditions at the
    solution. Equality budgets that can be eliminated (``D = C / (6 N)``) should
    be: the 1-D problems of :mod:`jscale.allocation`'s scenarios use
    :func:`minimize_scalar`, which is faster and more accurate.

    Args:
      fn: ``fn(y, args) -> scalar`` for one configuration, ``y`` of shape
        ``(n,)``; hashable (static).
      y0: starting points, shape ``batch + (n,)``; closed forms make good ones.
      args: pytree whose leaves are scalars or arrays of shape ``batch + ...``.
      lower, upper: box bounds, broadcastable to ``y0`` (default unbounded).
      equality, inequality: ``(y, args) -> (m,)`` constraint functions
        (hashable, static), or ``None``.
      optimizer: the inner solver; pass the same object across calls to reuse
        the compilation.
      max_steps: inner steps per outer round; max_outer: outer rounds.
      tol: tolerance on the projected gradient of the Lagrangian and on the
        constraint violation (default ``1e-8`` in float64, ``1e-4`` in float32).
      penalty, penalty_growth: initial penalty weight and its growth factor.

    Returns:
      A :class:`Solution` (``y`` of shape ``batch + (n,)``).

    Examples:
      >>> import jax.numpy as jnp
      >>> def f(y, a):
      ...     return jnp.sum((y - a) ** 2)
      >>> def on_line(y, a):  # y0 + y1 = 1
      ...     return jnp.sum(y, keepdims=True) - 1.0
      >>> s = minimize(f, jnp.zeros((1, 2)), jnp.array([[2.0, 0.0]]), equality=on_line)
      >>> [round(float(v), 3) for v in s.y[0]]
      [1.5, -0.5]
    """
    y0 = asfloat(y0)
    if y0.ndim < 1:
        raise ValueError(f"y0 must have shape batch + (n,); got {y0.shape}")
    shape = y0.shape[:-1]
    n = y0.shape[-1]
    size = math.prod(shape)
    lower = jnp.full(y0.shape, -jnp.inf, y0.dtype) if lower is None else lower
    upper = jnp.full(y0.shape, jnp.inf, y0.dtype) if upper is None else upper
    lo = jnp.broadcast_to(asfloat(lower), y0.shape).reshape(size, n)
    hi = jnp.broadcast_to(asfloat(upper), y0.shape).reshape(size, n)
    flat_args = _flat_trailing(args, shape)
    if tol is None:
        tol = 1e-8 if y0.dtype == jnp.float64 else 1e-4
    sol = _minimize(
        fn,
        y0.reshape(size, n),
        flat_args,
        lo.astype(y0.dtype),
        hi.astype(y0.dtype),
        equality,
        inequality,
        _DEFAULT_OPTIMIZER if optimizer is None else optimizer,
        max_steps,
        max_outer,
        tol,
        penalty,
        penalty_growth,
    )
    return Solution(
        sol.y.reshape(*shape, n),
        *(v.reshape(shape) for v in sol[1:]),
    )


# ====================================================================== scenarios

# Search ranges in log space: N in [1, 1e25] parameters, D in [1, 1e30] tokens.
_LOG_N_MAX = math.log(1e25)
_LOG_D_MAX = math.log(1e30)
# Half-width of the scan-point pairs placed around kinks and warm starts.
_KINK_DELTA = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-10}


def _chinchilla_log_loss(p, log_n, log_d):
    return (
        p.E
        + jnp.exp(jnp.log(p.A) - p.alpha * log_n)
        + jnp.exp(jnp.log(p.B) - p.beta * log_d)
    )


def _kaplan_log_loss(p, log_n, log_d):
    ratio = p.alpha_n / p.alpha_d
    bracket = jnp.logaddexp(ratio * (jnp.log(p.n_c) - log_n), jnp.log(p.d_c) - log_d)
    return jnp.exp(p.alpha_d * bracket)


def _dc_log_loss(p, log_n, log_d, log_u):
    # Muennighoff 2023, Sec. 3, with the law module's log-space helpers.
    log_d_eff = data_constrained.log_effective_data(p, log_d, log_u)
    log_u_d = jnp.minimum(log_u, log_d)
    log_n_eff = data_constrained.log_effective_params(p, log_n, log_u_d)
    return _chinchilla_log_loss(p, log_n_eff, log_d_eff)


class _GenericLogLoss(NamedTuple):
    """``loss_fn`` in log space: ``(params, log N, log D, *log extras)``."""

    loss_fn: Callable

    def __call__(self, p, log_n, log_d, *log_extra):
        extra = [jnp.exp(v) for v in log_extra]
        return self.loss_fn(p, jnp.exp(log_n), jnp.exp(log_d), *extra)


_LOG_LOSS = {
    chinchilla.loss: (_chinchilla_log_loss, "chinchilla"),
    kaplan.loss: (_kaplan_log_loss, "kaplan"),
    data_constrained.loss: (_dc_log_loss, "data-constrained"),
}


def _log_loss_of(loss_fn) -> tuple[Callable, str | None]:
    return _LOG_LOSS.get(loss_fn, (_GenericLogLoss(loss_fn), None))


def _chinchilla_log_n(p, log_c6):
    """Hoffmann 2022 Eq. 4 in log space: ``log N_opt`` for ``C/6 = exp(log_c6)``."""
    s = p.alpha + p.beta
    log_g = (jnp.log(p.alpha * p.A) - jnp.log(p.beta * p.B)) / s
    return log_g + (p.beta / s) * log_c6


def _kaplan_log_n(p, log_c6):
    ratio = p.alpha_n / p.alpha_d
    return (jnp.log(ratio) + ratio * jnp.log(p.n_c) + log_c6 - jnp.log(p.d_c)) / (
        ratio + 1.0
    )


def _scan_points(hint, p, log_c6, log_extra, delta):
    """Closed-form seeds and kinks along the isoFLOP line, as close pairs."""
    if hint == "chinchilla":
        kinks = _chinchilla_log_n(p, log_c6)[None]
    elif hint == "kaplan":
        kinks = _kaplan_log_n(p, log_c6)[None]
    elif hint in ("data-constrained", "data-constrained-cap"):
        log_u = log_extra[0]
        # Kinks of the law along D = C/(6N): D = U; N = N_opt(D) (which is
        # Hoffmann's closed form for this budget) while D < U; N = N_opt(U).
        kinks = jnp.stack(
            [
                log_c6 - log_u,
                _chinchilla_log_n(p, log_c6),
                data_constrained.log_unique_params(p, log_u),
            ]
        )
    else:
        return log_c6[None][:0]
    return _solver.kink_points(kinks, delta)


def _log_tokens(x, log_c, log_t2):
    """``log D`` on ``6 N D + 2 N T = C``: ``log(C/6 - N T/3) - log N``."""
    return log_c - _LOG6 - x + jnp.log1p(-jnp.exp(x + log_t2 - log_c))


@partial(
    jax.jit,
    static_argnames=("log_loss", "hint", "num_grid", "max_steps", "inference"),
)
def _budget_kernel(
    log_loss,
    hint,
    params,
    log_c,
    log_t2,
    log_extra,
    x_floor,
    num_grid,
    max_steps,
    inference,
):
    """min L(N, D) s.t. 6ND (+ 2NT) = C, N >= exp(x_floor): 1-D in x = log N."""
    dtype = log_c.dtype
    delta = _KINK_DELTA[np.dtype(dtype)]

    def one(p, log_c, log_t2, log_extra, x_floor):
        theta = (p, log_c, log_t2, log_extra)

        def log_d_of(x, th):
            _, lc, lt2, _ = th
            if inference:
                return _log_tokens(x, lc, lt2)
            return lc - _LOG6 - x

        def f(x, th):
            return log_loss(th[0], x, log_d_of(x, th), *th[3])

        hi = log_c - (jnp.logaddexp(_LOG6, log_t2) if inference else _LOG6)
        lo = jnp.maximum(0.0, x_floor)
        pts = _scan_points(hint, p, log_c - _LOG6, log_extra, delta)
        x, r = _scalar_min_one(f, lo, hi, theta, pts, num_grid, max_steps)
        log_d = log_d_of(x, theta)
        loss = f(x, theta)
        gnorm = _projected_slope(jax.grad(f)(x, theta), r.at_lower, r.at_upper)
        floor_active = r.at_lower & (x_floor > 0)
        status = _status(r.converged, x, log_d, loss)
        at_edge = (r.at_lower & ~floor_active) | r.at_upper
        status = jnp.where((status == CONVERGED) & at_edge, AT_BOUND, status)
        status = jnp.where(lo <= hi, status, INFEASIBLE).astype(jnp.int32)
        return x, log_d, loss, status, r.iterations, gnorm

    return jax.vmap(one)(params, log_c, log_t2, log_extra, x_floor)


def _raise_if_infeasible(status, describe: Callable[[tuple], str]) -> None:
    """Raise ``ValueError`` for concrete infeasible elements (see ``_finish``)."""
    if _checks.is_concrete(status) and bool(jnp.any(status == INFEASIBLE)):
        idx = tuple(int(i) for i in jnp.argwhere(status == INFEASIBLE)[0])
        where = f" at index {idx}" if status.ndim else ""
        raise ValueError(describe(idx) + where)


def _pick(x, idx) -> float:
    x = jnp.asarray(x)
    return float(x[idx] if x.ndim else x)


def _result(shape, log_n, log_d, loss, status, iterations, gnorm, violation, **extra):
    """Assemble an :class:`AllocationResult`; NaN where infeasible or non-finite."""
    bad = (status == INFEASIBLE) | (status == NONFINITE)
    n, d = jnp.exp(log_n), jnp.exp(log_d)
    c = jnp.exp(log_n + log_d + _LOG6)
    n, d, loss, c, violation = _checks.flag(~bad, n, d, loss, c, violation)
    extra = {k: _checks.flag(~bad, v)[0] for k, v in extra.items()}
    out = AllocationResult(n, d, loss, c, status, iterations, gnorm, violation, **extra)
    return jax.tree_util.tree_map(lambda v: v.reshape(shape), out)


def _valid_log(valid, x):
    """``log x`` with invalid elements replaced by 0 (their outputs are flagged)."""
    return jnp.where(valid, jnp.log(jnp.where(valid, x, 1.0)), 0.0)


def dense_optimal(
    loss_fn: Callable,
    params,
    compute_flops: ArrayLike,
    *args: ArrayLike,
    num_grid: int = 16,
    max_steps: int = 48,
) -> AllocationResult:
    """Minimize ``L(N, D)`` subject to ``6 N D = C``, for any two-input law.

    ``D = C / (6 N)`` eliminates the budget; the loss along the isoFLOP line is
    minimized in ``log N`` by :func:`minimize_scalar`'s method (a sign scan of
    ``dL/dlog N`` over ``num_grid`` points, closed-form seeds where the law has
    them, then safeguarded Newton). The Chinchilla form (Hoffmann 2022 Eq. 4) and
    Kaplan's joint law seed the scan with their closed forms, so those converge
    in a step or two; any other law is scanned. ``N`` is searched in
    ``[1, C/6]`` (at least one token); an optimum at either end is flagged
    ``AT_BOUND``. Differentiable in ``params`` and ``compute_flops``.

    Args:
      loss_fn: ``loss_fn(params, n_params, n_tokens, *args)``.
      params: the law's constants (leaves broadcast against the budgets).
      compute_flops: budgets C in FLOPs (> 0).
      *args: further positive inputs of ``loss_fn`` (e.g. unique tokens).
      num_grid, max_steps: scan points and the Newton step cap.

    Returns:
      An :class:`AllocationResult` with iterations, gradient norm and violation.

    Examples:
      >>> from jscale.laws import kaplan
      >>> r = dense_optimal(kaplan.loss, kaplan.KAPLAN2020.params, 1e21)
      >>> r0 = kaplan_optimal(kaplan.KAPLAN2020.params, 1e21)
      >>> abs(float(r.n_params / r0.n_params) - 1) < 1e-4
      True
    """
    c = _checks.check_positive("compute_flops", compute_flops)
    extras = [_checks.check_positive(f"args[{i}]", a) for i, a in enumerate(args)]
    log_loss, hint = _log_loss_of(loss_fn)
    return _budget_scenario(
        log_loss, hint, params, c, None, extras, None, num_grid, max_steps
    )


def _budget_scenario(
    log_loss,
    hint,
    params,
    c,
    t,
    extras,
    x_floor_fn,
    num_grid,
    max_steps,
    epochs_of=None,
    cost=None,
):
    inference = t is not None
    arrays = [c] + ([t] if inference else []) + list(extras)
    shape = _batch_shape(c, *arrays, *jax.tree_util.tree_leaves(params))
    flat = _flat((params, c, t if inference else 0.0, tuple(extras)), shape)
    p, c, t, extras = flat
    valid = _checks.positive(c) & jnp.all(
        jnp.stack([_checks.positive(e) for e in extras] or [c > 0]), axis=0
    )
    if inference:
        valid = valid & _checks.in_range(t, lower=0.0, lower_inclusive=True)
    log_c = _valid_log(valid, c)
    log_t2 = jnp.where(
        valid & (t > 0), jnp.log(2.0 * jnp.where(t > 0, t, 1.0)), -jnp.inf
    )
    log_extra = tuple(_valid_log(valid, e) for e in extras)
    x_floor = (
        jnp.full_like(log_c, -jnp.inf)
        if x_floor_fn is None
        else jnp.where(valid, x_floor_fn(log_c, log_extra), -jnp.inf)
    )
    x, log_d, loss, status, iters, gnorm = _budget_kernel(
        log_loss,
        hint,
        p,
        log_c,
        log_t2,
        log_extra,
        x_floor,
        num_grid,
        max_steps,
        inference,
    )
    status = jnp.where(valid, status, INFEASIBLE).astype(jnp.int32)
    spent = jnp.exp(x + log_d + _LOG6) + (2.0 * jnp.exp(x) * t if inference else 0.0)
    violation = jnp.abs(spent - c) / c
    extra = {}
    if epochs_of is not None:
        epochs, cap = epochs_of(log_d, log_extra)
        extra["epochs"] = epochs
        violation = jnp.maximum(violation, jnp.maximum(0.0, epochs / cap - 1.0))
    if inference:
        inf_flops = 2.0 * jnp.exp(x) * t
        extra["inference_flops"] = inf_flops
        extra["lifetime_flops"] = jnp.exp(x + log_d + _LOG6) + inf_flops
    return _result(shape, x, log_d, loss, status, iters, gnorm, violation, **extra)


def data_constrained_optimal(
    params: data_constrained.DataConstrainedParams,
    compute_flops: ArrayLike,
    unique_tokens: ArrayLike,
    max_epochs: ArrayLike | None = None,
    *,
    max_steps: int = 48,
) -> AllocationResult:
    """Compute-optimal N and D with ``U`` unique tokens (Muennighoff et al. 2023).

    Minimizes the data-constrained loss (effective data and parameters, Sec. 3;
    see :mod:`jscale.laws.data_constrained`) along ``6 N D = C``, optionally with
    at most ``max_epochs`` passes over the unique data (``D <= epochs U``, a
    lower bound on ``log N`` along the isoFLOP line). The law's three kinks along
    the line (``D = U``, ``N = N_opt(D)`` and ``N = N_opt(U)``) are scan points,
    so Newton works on smooth pieces only and an optimum sitting on a kink is
    returned exactly. Differentiable in ``params``, the budget, ``U`` and the
    epoch cap.

    Args:
      params: the law's constants.
      compute_flops: budgets C in FLOPs (> 0).
      unique_tokens: unique tokens U available (> 0).
      max_epochs: optional cap on ``D / U`` (> 0), broadcastable.
      max_steps: the Newton step cap.

    Returns:
      An :class:`AllocationResult` with ``epochs = D / U``.

    Raises:
      ValueError: for concrete invalid inputs (naming them) or an infeasible
        configuration (fewer than one token allowed in total).

    Examples:
      >>> from jscale.laws import data_constrained as dc
      >>> r = data_constrained_optimal(dc.MUENNIGHOFF2023.params, 1e22, 1e10)
      >>> round(float(r.epochs), 1)
      27.2
      >>> r = data_constrained_optimal(dc.MUENNIGHOFF2023.params, 1e22, 1e10, 4.0)
      >>> round(float(r.epochs), 4)
      4.0
    """
    c = _checks.check_positive("compute_flops", compute_flops)
    u = _checks.check_positive("unique_tokens", unique_tokens)
    extras = [u]
    if max_epochs is not None:
        extras.append(_checks.check_positive("max_epochs", max_epochs))

    def x_floor(log_c, log_extra):
        if max_epochs is None:
            return jnp.full_like(log_c, -jnp.inf)
        log_u, log_e = log_extra
        return log_c - _LOG6 - log_u - log_e

    def epochs_of(log_d, log_extra):
        cap = jnp.exp(log_extra[1]) if max_epochs is not None else jnp.inf
        return jnp.exp(log_d - log_extra[0]), cap

    log_loss = _dc_log_loss if max_epochs is None else _DCWithCap()
    out = _budget_scenario(
        log_loss,
        "data-constrained" if max_epochs is None else "data-constrained-cap",
        params,
        c,
        None,
        extras,
        x_floor,
        0,
        max_steps,
        epochs_of=epochs_of,
    )
    _raise_if_infeasible(
        out.status,
        lambda idx: (
            "infeasible: max_epochs * unique_tokens must allow at least one token; "
            f"got {_pick(extras[1], idx) * _pick(u, idx):.6g}"
        ),
    )
    return out


class _DCWithCap(NamedTuple):
    """The data-constrained log loss ignoring the extra ``log max_epochs`` input."""

    def __call__(self, p, log_n, log_d, log_u, log_e):
        return _dc_log_loss(p, log_n, log_d, log_u)

    def __hash__(self):
        return hash("_DCWithCap")

    def __eq__(self, other):
        return isinstance(other, _DCWithCap)


def inference_budget_optimal(
    loss_fn: Callable,
    params,
    lifetime_flops: ArrayLike,
    inference_tokens: ArrayLike,
    *args: ArrayLike,
    num_grid: int = 16,
    max_steps: int = 48,
) -> AllocationResult:
    """Minimize ``L(N, D)`` subject to ``6 N D + 2 N D_inf <= C`` (lifetime FLOPs).

    Sardana et al. 2024 ("Beyond Chinchilla-Optimal", arXiv:2401.00448), the dual
    of their Sec. 2 problem: a fixed lifetime budget pays for training and for
    ``D_inf`` inference tokens at ``2 N`` FLOPs each. The loss falls in both N and
    D, so the budget binds and eliminates ``D = C / (6 N) - D_inf / 3``; the loss
    along that curve is minimized in ``log N`` as in :func:`dense_optimal`
    (closed-form seeds of the training-only optimum for the Chinchilla form).
    With ``D_inf = 0`` this is :func:`dense_optimal`.

    Args:
      loss_fn: ``loss_fn(params, n_params, n_tokens, *args)``.
      params: the law's constants.
      lifetime_flops: budgets C (> 0) for training plus inference.
      inference_tokens: lifetime inference tokens ``D_inf`` (>= 0).
      *args: further positive inputs of ``loss_fn``.

    Returns:
      An :class:`AllocationResult` with ``inference_flops`` and ``lifetime_flops``.

    Raises:
      ValueError: for concrete invalid inputs or a budget below the smallest
        model (``C < 6 + 2 D_inf``: one parameter trained on one token).

    Examples:
      >>> from jscale.laws import chinchilla
      >>> p = chinchilla.HOFFMANN2022.params
      >>> r = inference_budget_optimal(chinchilla.loss, p, 1e24, 2e13)
      >>> float(r.n_params) < float(chinchilla_optimal(p, 1e24).n_params)
      True
    """
    c = _checks.check_positive("lifetime_flops", lifetime_flops)
    t = _checks.check_range("inference_tokens", inference_tokens, lower_inclusive=True)
    extras = [_checks.check_positive(f"args[{i}]", a) for i, a in enumerate(args)]
    log_loss, hint = _log_loss_of(loss_fn)
    out = _budget_scenario(
        log_loss, hint, params, c, t, extras, None, num_grid, max_steps
    )
    _raise_if_infeasible(
        out.status,
        lambda idx: (
            f"lifetime_flops = {_pick(c, idx):.6g} is infeasible: it must exceed "
            "6 + 2 * inference_tokens (one parameter trained on one token and "
            "serving the inference tokens)"
        ),
    )
    return out


@partial(jax.jit, static_argnames=("log_loss", "num_grid", "max_steps"))
def _target_kernel(log_loss, params, target, log_t3, log_extra, num_grid, max_steps):
    """min log(6 N D + 2 N T) s.t. L(N, D) = target: 1-D in x = log N.

    ``y = log D`` solves ``L = target`` for each ``x`` (an inner root, attached
    to ``x`` and the constants by the implicit function theorem, so the outer
    Newton iteration sees exact first and second derivatives).
    """

    def one(p, target, log_t3, log_extra):
        theta = (p, target, log_t3, log_extra)
        sg = jax.lax.stop_gradient

        def ranges(th):
            # Built from th (not closed over): these closures reach custom_jvp
            # rules, which must not capture traced values.
            zero = jnp.zeros_like(th[1])
            return zero, zero + _LOG_N_MAX, zero + _LOG_D_MAX

        def resid_y(y, xt):  # increasing in y: the loss falls with D
            x, (p, tg, _, lex) = xt
            return tg - log_loss(p, x, y, *lex)

        def y_of(x, th):
            zero, _, y_max = ranges(th)
            y_pts = jnp.linspace(zero, y_max, 10)[1:-1]
            r = _solver.root_scalar(
                resid_y, sg((x, th)), zero, y_max, y_pts, max_steps=max_steps
            )
            return _solver.implicit(resid_y, r.x, (x, th)), r

        def objective(x, th):
            y, _ = y_of(x, th)
            return x + y + _LOG6 + jnp.log1p(jnp.exp(th[2] - y))

        # Smallest N that reaches the target at all (with D = 1e30 tokens).
        zero, x_max, y_max = ranges(theta)

        def resid_x(x, th):
            p, tg, _, lex = th
            return tg - log_loss(p, x, ranges(th)[2], *lex)

        x_pts = jnp.linspace(zero, x_max, 10)[1:-1]
        rx = _solver.root_scalar(
            resid_x, sg(theta), zero, x_max, x_pts, max_steps=max_steps
        )
        feasible = ~rx.at_upper
        lo = jnp.minimum(rx.x + 1e-3, x_max - 1.0)
        x, r = _scalar_min_one(
            objective, lo, x_max, theta, zero[None][:0], num_grid, max_steps
        )
        y, ry = y_of(x, theta)
        loss = log_loss(p, x, y, *log_extra)
        slope = jax.grad(objective)(x, theta)
        gnorm = _projected_slope(slope, r.at_lower, r.at_upper)
        status = _status(r.converged & ry.converged, x, y, loss)
        at_edge = r.at_lower | r.at_upper | ry.at_upper | ry.at_lower
        status = jnp.where((status == CONVERGED) & at_edge, AT_BOUND, status)
        status = jnp.where(feasible, status, INFEASIBLE).astype(jnp.int32)
        return x, y, loss, status, r.iterations, gnorm

    return jax.vmap(one)(params, target, log_t3, log_extra)


def _target_scenario(loss_fn, params, target, t, extras, num_grid, max_steps):
    log_loss, _ = _log_loss_of(loss_fn)
    shape = _batch_shape(target, t, *extras, *jax.tree_util.tree_leaves(params))
    p, target, t, extras = _flat((params, target, t, tuple(extras)), shape)
    valid = _checks.in_range(target, lower=None) & _checks.in_range(
        t, lower=0.0, lower_inclusive=True
    )
    for e in extras:
        valid = valid & _checks.positive(e)
    log_t3 = jnp.where(
        valid & (t > 0), jnp.log(jnp.where(t > 0, t, 1.0) / 3.0), -jnp.inf
    )
    log_extra = tuple(_valid_log(valid, e) for e in extras)
    target_safe = jnp.where(valid, target, 1e9)
    x, y, loss, status, iters, gnorm = _target_kernel(
        log_loss, p, target_safe, log_t3, log_extra, num_grid, max_steps
    )
    status = jnp.where(valid, status, INFEASIBLE).astype(jnp.int32)
    violation = jnp.abs(loss - target) / jnp.abs(target)
    inf_flops = 2.0 * jnp.exp(x) * t
    lifetime = jnp.exp(x + y + _LOG6) + inf_flops
    extra = {"inference_flops": inf_flops, "lifetime_flops": lifetime}
    return _result(shape, x, y, loss, status, iters, gnorm, violation, **extra)


def inference_target_optimal(
    loss_fn: Callable,
    params,
    target_loss: ArrayLike,
    inference_tokens: ArrayLike,
    *args: ArrayLike,
    num_grid: int = 16,
    max_steps: int = 48,
) -> AllocationResult:
    """Minimize lifetime FLOPs ``6 N D + 2 N D_inf`` subject to ``L(N, D) = target``.

    Sardana et al. 2024, "Beyond Chinchilla-Optimal: Accounting for Inference in
    Language Model Scaling Laws" (arXiv:2401.00448), Sec. 2: the model that
    reaches a quality target at the least total compute over its lifetime, with
    ``D_inf`` inference tokens (input plus output, attention FLOPs ignored).
    With large inference demand the optimum is smaller and trained longer than
    Chinchilla's. Solved in ``log N``; for each N the tokens solve
    ``L(N, D) = target`` (an inner root in ``log D``). Any law decreasing in N
    and D works. Differentiable in ``params``, the target and ``D_inf``.

    Args:
      loss_fn: ``loss_fn(params, n_params, n_tokens, *args)``.
      params: the law's constants.
      target_loss: the loss to reach; must be above what the law can reach
        (for the Chinchilla form, above E).
      inference_tokens: lifetime inference tokens ``D_inf`` (>= 0; 0 gives the
        training-compute-optimal model for the target).
      *args: further positive inputs of ``loss_fn``.

    Returns:
      An :class:`AllocationResult` with ``inference_flops`` and
      ``lifetime_flops``; ``loss`` equals the target.

    Raises:
      ValueError: for concrete invalid inputs or a target the law cannot reach.

    Examples:
      >>> from jscale.laws import chinchilla
      >>> # Sardana et al.'s README: loss 1.947 with 2e12 inference tokens.
      >>> p = chinchilla.ChinchillaParams(1.69, 406.4, 410.7, 0.336, 0.283)
      >>> r = inference_target_optimal(chinchilla.loss, p, 1.947, 2e12)
      >>> f"{float(r.n_params):.3e} {float(r.n_tokens):.3e}"
      '2.418e+10 2.657e+12'
    """
    target = _checks.check_range("target_loss", target_loss, lower=None)
    t = _checks.check_range("inference_tokens", inference_tokens, lower_inclusive=True)
    extras = [_checks.check_positive(f"args[{i}]", a) for i, a in enumerate(args)]
    out = _target_scenario(loss_fn, params, target, t, extras, num_grid, max_steps)
    _raise_if_infeasible(out.status, partial(_unreachable, target, params))
    return out


def _unreachable(target, params, idx) -> str:
    floor = ""
    if hasattr(params, "E"):
        floor = (
            f" (it must be above the irreducible loss E = {_pick(params.E, idx):.6g})"
        )
    return (
        f"target_loss = {_pick(target, idx):.6g} is infeasible: the law cannot reach "
        f"it with at most 1e25 parameters and 1e30 tokens{floor}"
    )


#: Sardana et al. 2024's defaults (beyond-chinchilla repository, cost_optimal.py).
SARDANA_COST_DEFAULTS = {
    "train_hardware": "h100-sxm",
    "train_precision": "bf16",
    "train_mfu": 0.5,
    "train_price": 2.0,
    "inference_hardware": "h100-sxm",
    "inference_precision": "fp8",
    "prefill_mfu": 0.5,
    "decode_mfu": 0.01,
    "inference_price": 2.0,
}


def _usd_per_flop(hardware, precision, mfu, price):
    """Dollars per useful FLOP: price per device-hour / (3600 s x peak x MFU)."""
    from .. import accounting

    rate = accounting.device_flops_per_second(hardware, precision, mfu)
    return _checks.check_positive("price", price) / (3600.0 * rate)


def inference_cost_optimal(
    loss_fn: Callable,
    params,
    target_loss: ArrayLike,
    input_tokens: ArrayLike,
    output_tokens: ArrayLike,
    *args: ArrayLike,
    train_hardware: str = "h100-sxm",
    train_precision: str = "bf16",
    train_mfu: ArrayLike = 0.5,
    train_price: ArrayLike = 2.0,
    inference_hardware: str = "h100-sxm",
    inference_precision: str = "fp8",
    prefill_mfu: ArrayLike = 0.5,
    decode_mfu: ArrayLike = 0.01,
    inference_price: ArrayLike = 2.0,
    num_grid: int = 16,
    max_steps: int = 48,
) -> AllocationResult:
    """Minimize lifetime dollars subject to ``L(N, D) = target``.

    Sardana et al. 2024 (arXiv:2401.00448), Sec. 3 and their repository's
    ``cost_optimal.py``: training costs ``6 N D`` FLOPs at
    ``price / (3600 x peak x MFU)`` dollars each on the training hardware;
    inference costs ``2 N`` FLOPs per token on the inference hardware, with its
    own MFU for the input (prefill) and output (decode) tokens. Peaks come from
    :mod:`jscale.accounting`'s hardware presets at the given precision. The cost
    is ``k_train (6 N D + 2 N T_eff)`` with ``T_eff = (k_prefill T_in + k_decode
    T_out) / k_train``, so the optimum is that of
    :func:`inference_target_optimal` with ``T_eff`` inference tokens. The
    defaults are the paper's (:data:`SARDANA_COST_DEFAULTS`).

    Args:
      loss_fn, params, target_loss: as :func:`inference_target_optimal`.
      input_tokens, output_tokens: lifetime prefill and decode tokens (>= 0).
      *args: further positive inputs of ``loss_fn``.
      train_hardware, inference_hardware: :data:`jscale.accounting.HARDWARE`
        names; train_precision, inference_precision: precisions they run at.
      train_mfu, prefill_mfu, decode_mfu: utilizations in (0, 1].
      train_price, inference_price: dollars per device-hour.

    Returns:
      An :class:`AllocationResult` with ``cost_usd``, ``inference_flops`` and
      ``lifetime_flops``.

    Examples:
      >>> from jscale.laws import chinchilla
      >>> p = chinchilla.ChinchillaParams(1.69, 406.4, 410.7, 0.336, 0.283)
      >>> r = inference_cost_optimal(
      ...     chinchilla.loss, p, 1.947, 1e13, 2.5e12,
      ...     train_hardware="a100-80gb", train_price=1.40,
      ...     inference_hardware="a100-40gb", inference_precision="int8",
      ...     inference_price=0.60, prefill_mfu=0.4, decode_mfu=0.2)
      >>> f"{float(r.n_params):.3e} {float(r.n_tokens):.3e}"  # their README
      '2.053e+10 3.302e+12'
    """
    target = _checks.check_range("target_loss", target_loss, lower=None)
    t_in = _checks.check_range("input_tokens", input_tokens, lower_inclusive=True)
    t_out = _checks.check_range("output_tokens", output_tokens, lower_inclusive=True)
    extras = [_checks.check_positive(f"args[{i}]", a) for i, a in enumerate(args)]
    k_train = _usd_per_flop(train_hardware, train_precision, train_mfu, train_price)
    k_pre = _usd_per_flop(
        inference_hardware, inference_precision, prefill_mfu, inference_price
    )
    k_dec = _usd_per_flop(
        inference_hardware, inference_precision, decode_mfu, inference_price
    )
    t_eff = (k_pre * t_in + k_dec * t_out) / k_train
    out = _target_scenario(loss_fn, params, target, t_eff, extras, num_grid, max_steps)
    _raise_if_infeasible(out.status, partial(_unreachable, target, params))
    n = out.n_params
    train_usd = k_train * out.compute_flops
    usd = train_usd + 2.0 * n * (k_pre * t_in + k_dec * t_out)
    inf_flops = 2.0 * n * (t_in + t_out)
    return out._replace(
        cost_usd=usd,
        inference_flops=inf_flops,
        lifetime_flops=out.compute_flops + inf_flops,
    )
