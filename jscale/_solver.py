"""Private solver core of the allocation engine, written for one configuration.

Three pieces, each a pure function of arrays that :mod:`jscale.allocation` vmaps
and jits:

- :func:`root_scalar`: the root of an increasing scalar function on a bracket, by
  a sign scan over a few points followed by a safeguarded Newton iteration
  (Newton steps inside the bracket, bisection when a step leaves it or does not
  shrink fast enough). Minimizing a 1-D objective is root-finding on its
  derivative: unlike comparing function values, which in float32 resolves the
  argmin of a flat minimum only to about ``sqrt(eps)``, the sign of the
  derivative locates it to a few ulps.
- :func:`implicit`: attaches implicit-function-theorem derivatives to a solution
  ``z*(theta)`` of ``residual(z, theta) = 0``, so that ``jax.grad`` and
  ``jax.jacobian`` of an optimum never differentiate through the iterations.
- :func:`augmented_lagrangian`: a box-projected optax inner solver (L-BFGS by
  default, any optax ``GradientTransformation``) inside an augmented-Lagrangian
  outer loop for smooth equality and inequality constraints.

All loops are bounded (``lax.while_loop`` with a step cap), so one compilation
serves every batch of the same shape.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

# Status codes, shared with jscale.allocation.
CONVERGED, MAX_STEPS, INFEASIBLE, NONFINITE, AT_BOUND = 0, 1, 2, 3, 4


def eps(dtype) -> float:
    return float(jnp.finfo(dtype).eps)


# ----------------------------------------------------------------- implicit diff


@partial(jax.custom_jvp, nondiff_argnums=(0,))
def implicit(residual: Callable, z: jax.Array, theta: Any) -> jax.Array:
    """Return ``z``, differentiated as the solution of ``residual(z, theta) = 0``.

    ``z`` is a scalar or a vector (n,) computed elsewhere (its own derivatives are
    ignored); ``residual(z, theta)`` has the same shape. The tangent is
    ``dz = -(dr/dz)^-1 (dr/dtheta) dtheta`` (implicit function theorem). The rule
    calls this function again on the primal, so second derivatives are right too.
    ``residual`` must close over no traced values: pass them through ``theta``.
    """
    return z


@implicit.defjvp
def _implicit_jvp(residual, primals, tangents):
    z, theta = primals
    _, dtheta = tangents
    z = implicit(residual, z, theta)
    _, r_dot = jax.jvp(lambda th: residual(z, th), (theta,), (dtheta,))
    if jnp.ndim(z) == 0:
        _, r_z = jax.jvp(lambda v: residual(v, theta), (z,), (jnp.ones_like(z),))
        safe = jnp.where((r_z == 0) | ~jnp.isfinite(r_z), 1.0, r_z)
        dz = jnp.where(r_z == 0, 0.0, -r_dot / safe)
    else:
        jac = jax.jacfwd(lambda v: residual(v, theta))(z)
        dz = -jnp.linalg.solve(jac, r_dot)
    return z, dz


# ------------------------------------------------------------------ 1-D solver


class RootResult(NamedTuple):
    """The root of one increasing scalar function on a bracket.

    ``at_lower`` / ``at_upper``: the function is >= 0 already at the lower end /
    < 0 still at the upper end, and ``x`` is that end. ``converged`` is False when
    the Newton loop hit its step cap.
    """

    x: jax.Array
    fx: jax.Array
    iterations: jax.Array
    converged: jax.Array
    at_lower: jax.Array
    at_upper: jax.Array


def root_scalar(
    fn: Callable,
    theta: Any,
    lower: jax.Array,
    upper: jax.Array,
    points: jax.Array,
    *,
    max_steps: int,
    rtol: float | None = None,
    flat: jax.Array | float = 0.0,
) -> RootResult:
    """Root of ``fn(x, theta)``, increasing in ``x``, on ``[lower, upper]``.

    ``fn`` is evaluated at ``lower``, ``upper`` and ``points`` (clipped into the
    bracket): the first sign change from negative to non-negative gives the
    bracket for a safeguarded Newton iteration (``fn``'s derivative by forward
    mode). Put known kinks of ``fn`` into ``points`` as pairs ``k(1 -+ delta)``: a
    sign change across such a pair returns the kink itself, and Newton only ever
    works on a smooth piece. NaN values count as non-negative.

    The iteration stops when the Newton step or the bracket is below ``rtol``
    relative to ``max(1, |x|)`` (default: 1e-12 in float64, 8 eps in float32), or
    when ``|fn| * bracket width <= flat`` on a bracket already narrower than
    ``1e-3 |x|``: for a minimization (``fn`` the
    derivative) ``flat`` a few ulps of the objective means the objective is
    constant to rounding over the bracket, where the argmin is not defined more
    finely.
    """
    dtype = jnp.result_type(lower)
    if rtol is None:
        rtol = 1e-12 if dtype == jnp.float64 else 8.0 * eps(dtype)
    tol_rel = rtol
    pts = jnp.concatenate([lower[None], jnp.clip(points, lower, upper), upper[None]])
    pts = jnp.sort(pts)
    vals = jax.vmap(lambda p: fn(p, theta))(pts)
    nonneg = ~(vals < 0)
    at_lower = nonneg[0]
    at_upper = ~jnp.any(nonneg)
    j = jnp.clip(jnp.argmax(nonneg), 1, pts.shape[0] - 1)
    a, b = pts[j - 1], pts[j]
    fa, fb = vals[j - 1], vals[j]
    # Regula-falsi start inside the bracket, the midpoint when that is unusable.
    secant = a - fa * (b - a) / jnp.where(fb - fa > 0, fb - fa, 1.0)
    inside = jnp.isfinite(secant) & (secant > a) & (secant < b) & (fb > fa)
    x0 = jnp.where(inside, secant, 0.5 * (a + b))

    def tol(x):
        return tol_rel * jnp.maximum(1.0, jnp.abs(x))

    def fn_and_slope(x):
        return jax.jvp(lambda v: fn(v, theta), (x,), (jnp.ones_like(x),))

    def cond(state):
        x, a, b, dx_old, it, done = state
        return (~done) & (it < max_steps)

    def body(state):
        x, a, b, dx_old, it, _ = state
        f, df = fn_and_slope(x)
        neg = f < 0
        a = jnp.where(neg, x, a)
        b = jnp.where(neg, b, x)
        step = f / jnp.where(df > 0, df, 1.0)
        newton = x - step
        inside = (df > 0) & jnp.isfinite(newton) & (newton >= a) & (newton <= b)
        small = inside & (jnp.abs(step) <= tol(x))
        ok = inside & (jnp.abs(2.0 * step) <= jnp.abs(dx_old))
        x_new = jnp.where(ok | small, newton, 0.5 * (a + b))
        # Flat to rounding over a narrow bracket: stay (see the docstring).
        flat_here = (jnp.abs(f) * (b - a) <= flat) & (b - a <= 1e-3 * jnp.abs(x))
        stay = (f == 0) | flat_here
        x_new = jnp.where(stay, x, x_new)
        dx = x_new - x
        done = small | stay | (b - a <= tol(x_new))
        return x_new, a, b, dx, it + 1, done

    done0 = at_lower | at_upper | (b - a <= 4.0 * tol(b))
    state = (x0, a, b, 2.0 * (b - a), jnp.zeros((), jnp.int32), done0)
    x, a, b, _, iters, done = jax.lax.while_loop(cond, body, state)
    x = jnp.where(b - a <= 4.0 * tol(b), jnp.where(done0, 0.5 * (a + b), x), x)
    x = jnp.where(at_lower, lower, jnp.where(at_upper, upper, x))
    return RootResult(x, fn(x, theta), iters, done, at_lower, at_upper)


def kink_points(kinks: jax.Array, delta: float) -> jax.Array:
    """Each kink ``k`` as the pair ``k -+ delta * max(1, |k|)`` (see root_scalar)."""
    width = delta * jnp.maximum(1.0, jnp.abs(kinks))
    return jnp.concatenate([kinks - width, kinks + width])


# --------------------------------------------------- augmented Lagrangian (n-D)


class ALResult(NamedTuple):
    """One configuration's solution of the constrained problem."""

    y: jax.Array
    objective: jax.Array
    multipliers_eq: jax.Array
    multipliers_ineq: jax.Array
    iterations: jax.Array
    grad_norm: jax.Array
    violation: jax.Array
    converged: jax.Array


def default_optimizer() -> optax.GradientTransformationExtraArgs:
    """``optax.lbfgs()`` with its default zoom line search.

    The zoom search costs several evaluations per step and compiles slowly under
    vmap (about 10k configurations/s on two CPU cores), which is why the built-in
    1-D scenarios never use this path; for general constrained problems it is
    the robust choice (a plain backtracking search stalls on the ill-conditioned
    augmented Lagrangian).
    """
    return optax.lbfgs()


def augmented_lagrangian(
    objective: Callable,
    y0: jax.Array,
    args: Any,
    lower: jax.Array,
    upper: jax.Array,
    equality: Callable | None,
    inequality: Callable | None,
    *,
    optimizer: optax.GradientTransformation,
    max_steps: int,
    max_outer: int,
    tol: float,
    penalty: float,
    penalty_growth: float,
) -> ALResult:
    """Minimize ``objective(y, args)`` s.t. ``equality(y, args) == 0``,
    ``inequality(y, args) <= 0`` and ``lower <= y <= upper`` (one configuration).

    Augmented Lagrangian (Nocedal & Wright 2006, Alg. 17.4 with the
    inequality form of Eq. 17.65): the inner problem is minimized by ``optimizer``
    with a projection onto the box after each step, for at most ``max_steps``
    steps or until the projected gradient is below ``tol``; then the multipliers
    are updated and the penalty grows where the violation did not shrink by 4x.
    """
    opt = optax.with_extra_args_support(optimizer)
    dtype = y0.dtype

    def constraints(y):
        h = equality(y, args) if equality is not None else jnp.zeros((0,), dtype)
        g = inequality(y, args) if inequality is not None else jnp.zeros((0,), dtype)
        return jnp.atleast_1d(h).astype(dtype), jnp.atleast_1d(g).astype(dtype)

    h0, g0 = constraints(y0)
    lam0, nu0 = jnp.zeros_like(h0), jnp.zeros_like(g0)

    def lagrangian(y, lam, nu, mu):
        h, g = constraints(y)
        shifted = jnp.maximum(0.0, nu + mu * g)
        return (
            objective(y, args)
            + jnp.sum(lam * h)
            + 0.5 * mu * jnp.sum(h * h)
            + jnp.sum(shifted * shifted - nu * nu) / (2.0 * mu)
        )

    def project(y):
        return optax.projections.projection_box(y, lower, upper)

    def projected_grad_norm(y, grad):
        return jnp.max(jnp.abs(y - project(y - grad)))

    def violation_of(y):
        h, g = constraints(y)
        return jnp.maximum(
            jnp.max(jnp.abs(h), initial=0.0), jnp.max(jnp.maximum(g, 0.0), initial=0.0)
        )

    def inner(y, lam, nu, mu):
        fun = partial(lagrangian, lam=lam, nu=nu, mu=mu)
        value_and_grad = jax.value_and_grad(fun)

        def cond(s):
            _, _, it, gnorm = s
            return (it < max_steps) & (gnorm > tol)

        def body(s):
            y, state, it, _ = s
            value, grad = value_and_grad(y)
            updates, state = opt.update(
                grad, state, y, value=value, grad=grad, value_fn=fun
            )
            y_new = project(optax.apply_updates(y, updates))
            y_new = jnp.where(jnp.isfinite(y_new), y_new, y)
            gnorm = projected_grad_norm(y_new, jax.grad(fun)(y_new))
            return y_new, state, it + 1, gnorm

        s0 = (y, opt.init(y), jnp.zeros((), jnp.int32), jnp.asarray(jnp.inf, dtype))
        y, _, it, gnorm = jax.lax.while_loop(cond, body, s0)
        return y, it, gnorm

    def outer_cond(s):
        _, _, _, _, k, _, viol, gnorm = s
        return (k < max_outer) & ((viol > tol) | (gnorm > tol))

    def outer_body(s):
        y, lam, nu, mu, k, its, viol_old, _ = s
        y, it, gnorm = inner(y, lam, nu, mu)
        h, g = constraints(y)
        lam = lam + mu * h
        nu = jnp.maximum(0.0, nu + mu * g)
        viol = violation_of(y)
        mu = jnp.where(viol > 0.25 * viol_old, mu * penalty_growth, mu)
        return y, lam, nu, mu, k + 1, its + it, viol, gnorm

    s0 = (
        project(y0),
        lam0,
        nu0,
        jnp.asarray(penalty, dtype),
        jnp.zeros((), jnp.int32),
        jnp.zeros((), jnp.int32),
        jnp.asarray(jnp.inf, dtype),
        jnp.asarray(jnp.inf, dtype),
    )
    y, lam, nu, _, _, its, viol, _ = jax.lax.while_loop(outer_cond, outer_body, s0)
    # Report the gradient of the Lagrangian with the final multipliers (KKT).
    h, g = constraints(y)

    def plain_lagrangian(y):
        h, g = constraints(y)
        return objective(y, args) + jnp.sum(lam * h) + jnp.sum(nu * g)

    gnorm = projected_grad_norm(y, jax.grad(plain_lagrangian)(y))
    converged = (viol <= tol) & (gnorm <= tol)
    return ALResult(y, objective(y, args), lam, nu, its, gnorm, viol, converged)
