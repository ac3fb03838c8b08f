"""The general batched solvers of the allocation engine, for problems a user writes.

- :func:`minimize_scalar`: one decision variable in a box, any number of
  configurations at once (:func:`jscale._solver.minimize_scalar` vmapped).
- :func:`minimize`: several decision variables under box, equality and inequality
  constraints (an augmented Lagrangian around an optax solver,
  :func:`jscale._solver.augmented_lagrangian`, vmapped).

Both return a :class:`Solution` with a per-element status and are differentiable
in their arguments by implicit differentiation, never through the iterations. The
built-in scenarios eliminate their budget and call the scalar solver directly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.typing import ArrayLike

from .. import _solver
from .._numerics import asfloat
from ._common import batch_shape, flat, solver_status


class Solution(NamedTuple):
    """Solutions of a batch of optimization problems (see :func:`minimize`).

    Attributes:
      y: the solution, shape ``batch`` (scalar problems) or ``batch + (n,)``.
      objective: the objective at ``y``.
      status: int32 codes (see :data:`jscale.allocation.STATUS_MESSAGES`).
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


@partial(jax.jit, static_argnames=("fn", "num_grid", "max_steps", "policy"))
def _minimize_scalar(fn, lower, upper, args, points, num_grid, max_steps, policy):
    def one(lo, hi, a, pts):
        m = _solver.minimize_scalar(
            fn, a, lo, hi, pts, num_grid=num_grid, max_steps=max_steps, policy=policy
        )
        status = solver_status(m.converged, m.x, m.value)
        return Solution(
            m.x, m.value, status, m.iterations, m.grad_norm, jnp.zeros_like(m.x)
        )

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
    policy: str = "lowest",
) -> Solution:
    """Minimize a scalar function of one variable, batched over configurations.

    ``fn(x, args)`` is written for one configuration (``x`` a scalar, ``args`` a
    pytree of that configuration's values); :func:`jscale._solver.minimize_scalar`
    solves each. The derivative ``dfn/dx`` is scanned over ``num_grid`` evenly
    spaced points plus ``points``; each sign change from negative to non-negative
    brackets a local minimum, and a safeguarded Newton iteration finds the root in
    the bracket that ``policy`` picks: the ``"lowest"`` local minimum (default) or
    the ``"first"`` from ``lower``. The objective must be unimodal between
    neighbouring scan points; put known kinks into ``points`` (as close pairs
    around each) so that Newton only works on smooth pieces. Work in log space
    (``x = log N``): the derivative's sign locates a flat minimum to a few ulps
    where comparing values cannot.

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
      policy: which local minimum: ``"lowest"`` or ``"first"`` (static).

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
    shape = batch_shape(lower, upper, *leaves)
    lo, hi, flat_args = flat((lower, upper, args), shape)
    size = math.prod(shape)
    if points is None:
        pts = jnp.zeros((size, 0), lo.dtype)
    else:
        pts = asfloat(points)
        pts = jnp.broadcast_to(pts, (*shape, pts.shape[-1])).reshape(size, -1)
    sol = _minimize_scalar(fn, lo, hi, flat_args, pts, num_grid, max_steps, policy)
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
        status = solver_status(r.converged, y, value)
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
