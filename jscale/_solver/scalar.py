"""Scalar root-finding and minimization on a bracket: the 1-D core of every allocation.

Three layers, each built on the one before:

- :func:`root_scalar`: the root of an increasing scalar function on a bracket, by a
  sign scan over a few points followed by a safeguarded Newton iteration (Newton
  steps inside the bracket, bisection when a step leaves it or does not shrink fast
  enough). No derivatives with respect to its inputs.
- :func:`implicit_root`: the same root, differentiable in the function's
  parameters and in the bracket (implicit function theorem in the interior, the
  bound itself where one is active).
- :func:`minimize_scalar`: THE scalar minimizer of jscale. Minimizing a 1-D
  objective is root-finding on its derivative: unlike comparing function values,
  which in float32 resolves the argmin of a flat minimum only to about
  ``sqrt(eps)``, the sign of the derivative locates it to a few ulps. Its
  ``policy`` says which local minimum is returned when there are several: the
  ``"lowest"`` (default) or the ``"first"`` from the lower end.

All loops are bounded (``lax.while_loop`` with a step cap), so one compilation
serves every batch of the same shape. Every function is written for one problem;
callers ``jax.vmap`` it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .implicit import implicit


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
    pts, vals = _scan(fn, theta, lower, upper, points)
    nonneg = ~(vals < 0)
    at_lower = nonneg[0]
    at_upper = ~jnp.any(nonneg)
    j = jnp.clip(jnp.argmax(nonneg), 1, pts.shape[0] - 1)
    bracket = (pts[j - 1], pts[j], vals[j - 1], vals[j])
    return _newton(
        fn, theta, lower, upper, bracket, at_lower, at_upper, max_steps, rtol, flat
    )


def _scan(fn, theta, lower, upper, points):
    """``fn`` at ``lower``, ``upper`` and ``points`` (clipped into them), sorted."""
    pts = jnp.concatenate([lower[None], jnp.clip(points, lower, upper), upper[None]])
    pts = jnp.sort(pts)
    return pts, jax.vmap(lambda p: fn(p, theta))(pts)


def _newton(
    fn, theta, lower, upper, bracket, at_lower, at_upper, max_steps, rtol, flat
):
    """Safeguarded Newton on ``bracket = (a, b, fn(a), fn(b))``, ``fn(a) < 0 <= fn(b)``.

    ``at_lower`` / ``at_upper``: the root is that end of ``[lower, upper]`` (no
    iteration). See :func:`root_scalar` for the stopping rules.
    """
    a, b, fa, fb = bracket
    dtype = jnp.result_type(lower)
    if rtol is None:
        rtol = 1e-12 if dtype == jnp.float64 else 8.0 * eps(dtype)
    tol_rel = rtol
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
        # Flat to rounding over a narrow bracket: stay (see root_scalar).
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


def bisect(
    fn: Callable, theta: Any, lower: jax.Array, upper: jax.Array, *, num_steps: int
) -> jax.Array:
    """Bisection on the sign of ``fn(x, theta)``, increasing in ``x``: the midpoint of
    ``[lower, upper]`` after ``num_steps`` halvings (a fixed count, ``fori_loop``).

    Each step keeps the half whose ends straddle the sign change (``fn >= 0`` at the
    midpoint: the root lies below it; NaN counts as negative). Unlike
    :func:`root_scalar` it needs no derivative of ``fn`` and no tolerance: the bracket
    is ``(upper - lower) / 2**num_steps`` wide, so ~50 steps reach the dtype's
    precision, kinks or not. Minimizing a 1-D objective is bisection on the sign of
    its derivative (which locates a flat minimum to a few ulps, where comparing
    values in float32 resolves it only to about ``sqrt(eps)``).

    Examples:
      >>> import jax.numpy as jnp
      >>> x = bisect(lambda x, t: x * x - t, 2.0, jnp.array(0.0), jnp.array(2.0),
      ...            num_steps=40)
      >>> round(float(x), 6)
      1.414214
    """

    def body(_, state):
        a, b = state
        m = 0.5 * (a + b)
        rising = fn(m, theta) >= 0
        return jnp.where(rising, a, m), jnp.where(rising, m, b)

    a, b = jax.lax.fori_loop(0, num_steps, body, (lower, upper))
    return 0.5 * (a + b)


# ------------------------------------------------------------ differentiable roots


def implicit_root(
    fn: Callable, theta: Any, lower, upper, points, **options
) -> RootResult:
    """:func:`root_scalar`, with ``x`` differentiable in ``theta`` and the bracket.

    Takes :func:`root_scalar`'s arguments (``options``: ``max_steps``, ``rtol``,
    ``flat``) and returns its :class:`RootResult`.

    The root is found on stopped gradients; then ``x`` takes the derivatives of the
    root of ``fn(x, theta) = 0`` (:func:`jscale._solver.implicit`) in the interior,
    and of the bound itself where the root is pinned at ``lower`` or ``upper``
    (``at_lower`` / ``at_upper``). ``fn`` must close over no traced values: pass
    them through ``theta``. The minimum of a convex function whose slope is known
    is the ``implicit_root`` of that slope.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> def f(x, c):
      ...     return x**3 - c  # the root is c ** (1/3)
      >>> root = lambda c: implicit_root(
      ...     f, c, jnp.array(0.0), jnp.array(10.0), jnp.zeros(0), max_steps=40).x
      >>> round(float(root(8.0)), 6), round(float(jax.grad(root)(8.0)), 6)
      (2.0, 0.083333)
    """
    sg = jax.lax.stop_gradient
    r = root_scalar(fn, sg(theta), sg(lower), sg(upper), sg(points), **options)
    x = implicit(fn, r.x, theta)
    x = jnp.where(r.at_lower, lower, jnp.where(r.at_upper, upper, x))
    return r._replace(x=x)


# ------------------------------------------------------------------ the minimizer


class ScalarMin(NamedTuple):
    """The minimum of one scalar function on a bracket (see :func:`minimize_scalar`).

    Attributes:
      x: the argmin, differentiable in ``theta``, ``lower`` and ``upper``.
      value: the objective at ``x``.
      slope: its derivative at ``x``.
      grad_norm: ``|slope|``, zero where an active bound explains its sign (the
        KKT condition of a box): the measure of optimality.
      iterations: Newton iterations.
      converged: False where the Newton loop hit ``max_steps``.
      at_lower, at_upper: the minimum is that end of the bracket.
    """

    x: jax.Array
    value: jax.Array
    slope: jax.Array
    grad_norm: jax.Array
    iterations: jax.Array
    converged: jax.Array
    at_lower: jax.Array
    at_upper: jax.Array


def projected_slope(slope, at_lower, at_upper) -> jax.Array:
    """``|slope|``, zero where an active bound explains its sign (KKT for a box)."""
    explained = (at_lower & (slope >= 0)) | (at_upper & (slope <= 0))
    return jnp.where(explained, 0.0, jnp.abs(slope))


def minimize_scalar(
    fn: Callable,
    theta: Any,
    lower: jax.Array,
    upper: jax.Array,
    points: jax.Array | None = None,
    *,
    max_steps: int,
    num_grid: int = 0,
    policy: str = "lowest",
    value_and_slope: Callable | None = None,
) -> ScalarMin:
    """Minimize ``fn(x, theta)`` over ``x`` in ``[lower, upper]`` (one configuration).

    The derivative is scanned at ``lower``, ``upper``, ``num_grid`` evenly spaced
    interior points and ``points`` (put known kinks there, as close pairs
    :func:`kink_points`, so that Newton only works on smooth pieces). Every place
    where it changes sign from negative to non-negative brackets a local minimum;
    so does ``lower`` where it is non-negative already and ``upper`` where it is
    still negative. ``policy`` picks one:

    - ``"lowest"`` (default): the candidate with the lowest objective at its
      bracket's scanned ends (NaN counts as ``+inf``; ties go to the first). This
      is the global minimum whenever the scan separates the local minima, which is
      what minimizing means; it costs nothing over ``"first"`` (the value comes
      with the derivative).
    - ``"first"``: the first from ``lower`` (the plain sign scan of
      :func:`root_scalar` on the derivative). It is the global minimum only for a
      unimodal objective; kept for callers that want the smallest such ``x``.

    With a single candidate the two policies are the same computation, bit for
    bit. The chosen bracket is refined by :func:`root_scalar`'s safeguarded Newton
    iteration on the derivative, which stays put once the objective is flat to
    rounding over the bracket (``|slope| x width`` below ``eps**1.5`` times the
    objective at the midpoint of ``[lower, upper]``: plateaus where the slope
    underflows). ``x`` is differentiable in ``theta``, ``lower`` and ``upper``
    (implicit function theorem on ``dfn/dx = 0`` in the interior, the bound where
    one is active), never through the iterations.

    Args:
      fn: ``fn(x, theta) -> scalar``; must close over no traced values.
      theta: a pytree of this configuration's parameters.
      lower, upper: the bracket (scalars, ``lower <= upper``).
      points: extra scan points, shape ``(k,)`` (clipped into the bracket).
      max_steps: cap on the Newton iterations.
      num_grid: evenly spaced interior scan points.
      policy: ``"lowest"`` or ``"first"`` (static).
      value_and_slope: optional ``(x, theta) -> (fn(x, theta), dfn/dx)`` that
        shares work between the two (e.g. an envelope-theorem slope of a profile
        whose inner solve serves both); default ``jax.value_and_grad(fn)``.

    Returns:
      A :class:`ScalarMin`.

    Examples:
      >>> import jax.numpy as jnp
      >>> def f(x, c):  # local minima near x = -1.38 (higher) and x = 1.44 (lowest)
      ...     return (x * x - c) ** 2 - 0.5 * x
      >>> lo, hi = jnp.array(-3.0), jnp.array(3.0)
      >>> low = minimize_scalar(f, 2.0, lo, hi, num_grid=8, max_steps=40)
      >>> first = minimize_scalar(f, 2.0, lo, hi, num_grid=8, max_steps=40,
      ...                         policy="first")
      >>> round(float(low.x), 4), round(float(first.x), 4)
      (1.4445, -1.3819)
    """
    if policy not in ("lowest", "first"):
        raise ValueError(f"policy must be 'lowest' or 'first'; got {policy!r}")
    if value_and_slope is None:
        value_and_slope = jax.value_and_grad(fn)

        def slope(x, th):
            return jax.grad(fn)(x, th)
    else:

        def slope(x, th):
            return value_and_slope(x, th)[1]

    sg = jax.lax.stop_gradient
    grid = (
        jnp.linspace(lower, upper, num_grid + 2)[1:-1] if num_grid else lower[None][:0]
    )
    if points is not None:
        grid = jnp.concatenate([grid, jnp.reshape(points, (-1,))])
    # The objective is flat to rounding where |slope| * width is far below one ulp
    # of it (plateaus where the slope underflows, e.g. hundreds of epochs).
    flat = eps(jnp.result_type(lower)) ** 1.5 * jnp.abs(
        sg(fn(0.5 * (lower + upper), theta))
    )
    th, lo, hi = sg(theta), sg(lower), sg(upper)
    if policy == "first":
        r = root_scalar(slope, th, lo, hi, sg(grid), max_steps=max_steps, flat=flat)
    else:
        pts = jnp.sort(
            jnp.concatenate([lo[None], jnp.clip(sg(grid), lo, hi), hi[None]])
        )
        values, slopes = jax.vmap(lambda p: value_and_slope(p, th))(pts)
        r = _newton(
            slope, th, lo, hi, *_lowest_bracket(pts, values, slopes), max_steps, None,
            flat,
        )  # fmt: skip
    x = implicit(slope, r.x, theta)
    x = jnp.where(r.at_lower, lower, jnp.where(r.at_upper, upper, x))
    value = fn(x, theta)
    slope_x = slope(x, theta)
    return ScalarMin(
        x,
        value,
        slope_x,
        projected_slope(slope_x, r.at_lower, r.at_upper),
        r.iterations,
        r.converged,
        r.at_lower,
        r.at_upper,
    )


def _lowest_bracket(pts, values, slopes):
    """The bracket of the lowest local minimum among the scanned candidates.

    Returns ``(bracket, at_lower, at_upper)`` for :func:`_newton`. Candidates: the
    lower end where the slope is non-negative there, each interval whose slope goes
    from negative to non-negative (NaN counts as non-negative, as in
    :func:`root_scalar`), and the upper end where the slope is still negative.
    """
    nonneg = ~(slopes < 0)
    n = pts.shape[0]
    rises = ~nonneg[:-1] & nonneg[1:]  # interval (k, k + 1)
    score = jnp.where(jnp.isnan(values), jnp.inf, values)
    interval = jnp.minimum(score[:-1], score[1:])
    keys = jnp.concatenate(
        [
            jnp.where(nonneg[0], score[0], jnp.inf)[None],
            jnp.where(rises, interval, jnp.inf),
            jnp.where(nonneg[-1], jnp.inf, score[-1])[None],
        ]
    )
    candidate = jnp.concatenate([nonneg[:1], rises, ~nonneg[-1:]])
    best = jnp.argmin(keys)
    # No candidate with a finite value: the first candidate, as "first" would.
    best = jnp.where(jnp.isfinite(keys[best]), best, jnp.argmax(candidate))
    at_lower = best == 0
    at_upper = best == n
    k = jnp.clip(best, 1, n - 1)  # the interval (k - 1, k)
    bracket = (pts[k - 1], pts[k], slopes[k - 1], slopes[k])
    return bracket, at_lower, at_upper
