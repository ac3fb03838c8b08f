"""Scalar root-finding on a bracket: the 1-D core of every allocation.

:func:`root_scalar` finds the root of an increasing scalar function on a bracket,
by a sign scan over a few points followed by a safeguarded Newton iteration (Newton
steps inside the bracket, bisection when a step leaves it or does not shrink fast
enough). Minimizing a 1-D objective is root-finding on its derivative: unlike
comparing function values, which in float32 resolves the argmin of a flat minimum
only to about ``sqrt(eps)``, the sign of the derivative locates it to a few ulps.

All loops are bounded (``lax.while_loop`` with a step cap), so one compilation
serves every batch of the same shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


def eps(dtype) -> float:
    return float(jnp.finfo(dtype).eps)


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
