"""isoFLOP slices, their minima, and Hoffmann's Approach 2.

Along an isoFLOP slice the training compute ``C = 6 N D`` is fixed, so the tokens are
``D = C / (6 N)`` and the loss is a function of ``N`` alone (Hoffmann et al. 2022,
arXiv:2203.15556, Sec. 3.2). Approach 2 fits a parabola to the loss against ``log N``
on each slice, takes its vertex as ``N_opt(C)``, then fits power laws
``N_opt = k_N C^a`` and ``D_opt = k_D C^b`` across budgets.

Loss functions here are any ``loss_fn(params, n_params, n_tokens, *args)`` that is
elementwise in its array arguments, such as a family's ``loss`` from
:mod:`jscale.laws`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from . import _checks
from ._numerics import broadcast

LossFn = Callable[..., jax.Array]

_LOG6 = math.log(6.0)


class IsoFLOPSlice(NamedTuple):
    """Points on isoFLOP slices: ``n_tokens = compute_flops / (6 n_params)``."""

    n_params: jax.Array
    n_tokens: jax.Array
    loss: jax.Array


class IsoFLOPMinimum(NamedTuple):
    """The loss-minimizing point of each isoFLOP slice.

    Attributes:
      n_params, n_tokens, loss: the minimizer and its loss, one per budget.
      at_bound: True where the minimum sits at the edge of the searched range of
        tokens per parameter (the true optimum may lie outside it).
    """

    n_params: jax.Array
    n_tokens: jax.Array
    loss: jax.Array
    at_bound: jax.Array


class Approach2Result(NamedTuple):
    """Hoffmann 2022 Approach 2 (Sec. 3.2).

    Attributes:
      n_opt, d_opt, loss_opt: per budget, the parabola's vertex ``N_opt``, the tokens
        ``C / (6 N_opt)`` and the parabola's value there.
      curvature: per budget, the parabola's second coefficient in ``log N`` (> 0 for
        a proper minimum; non-positive slices yield NaN vertices).
      a, b: exponents of ``N_opt = k_N C^a`` and ``D_opt = k_D C^b`` (``a + b = 1``).
      log_k_n, log_k_d: natural logs of the coefficients ``k_N`` and ``k_D``.
    """

    n_opt: jax.Array
    d_opt: jax.Array
    loss_opt: jax.Array
    curvature: jax.Array
    a: jax.Array
    b: jax.Array
    log_k_n: jax.Array
    log_k_d: jax.Array


def isoflop_slice(
    loss_fn: LossFn,
    params,
    compute_flops: ArrayLike,
    n_params: ArrayLike,
    *args: ArrayLike,
) -> IsoFLOPSlice:
    """Loss along isoFLOP slices, ``L(N, C / (6 N))``, with broadcasting.

    Args:
      loss_fn: ``loss_fn(params, n_params, n_tokens, *args)``.
      params: the law's constants.
      compute_flops: budgets C in FLOPs (> 0).
      n_params: model sizes N (> 0), broadcastable against ``compute_flops``: e.g.
        budgets of shape ``(K, 1)`` and sizes ``(M,)`` give ``(K, M)`` slices.
      *args: further inputs of ``loss_fn`` (e.g. unique tokens), broadcast alike.

    Returns:
      An :class:`IsoFLOPSlice` with the broadcast shape.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jscale.laws import chinchilla
      >>> p = chinchilla.HOFFMANN2022.params
      >>> n = jnp.logspace(8, 10, 3)
      >>> s = isoflop_slice(chinchilla.loss, p, jnp.array([[1e21]]), n)
      >>> s.loss.shape
      (1, 3)
    """
    c = _checks.check_positive("compute_flops", compute_flops)
    n = _checks.check_positive("n_params", n_params)
    _checks.check_shapes(compute_flops=c, n_params=n)
    c, n = broadcast(c, n)
    d = jnp.exp(jnp.log(c) - _LOG6 - jnp.log(n))
    return IsoFLOPSlice(n, d, loss_fn(params, n, d, *args))


@partial(
    jax.jit,
    static_argnames=("loss_fn", "num_grid", "num_iters"),
)
def _isoflop_minimum(
    loss_fn, params, compute_flops, args, log_r_lo, log_r_hi, num_grid, num_iters
):
    def one(log_c6, *extra):
        def f(log_n):
            n = jnp.exp(log_n)
            d = jnp.exp(log_c6 - log_n)
            return loss_fn(params, n, d, *extra)

        # tokens per parameter r = D / N = (C/6) / N^2, so log N = (log(C/6) - log r)/2
        lo = 0.5 * (log_c6 - log_r_hi)
        hi = 0.5 * (log_c6 - log_r_lo)
        grid = jnp.linspace(lo, hi, num_grid)
        values = jax.vmap(f)(grid)
        values = jnp.where(jnp.isnan(values), jnp.inf, values)
        i = jnp.argmin(values)
        step = (hi - lo) / (num_grid - 1)
        a = jnp.maximum(grid[i] - step, lo)
        b = jnp.minimum(grid[i] + step, hi)

        slope = jax.grad(f)

        def body(_, state):
            # Bisection on the sign of dL/dlog N: unlike comparing loss values, which
            # in float32 cannot resolve log N better than ~1e-2 on a flat minimum,
            # the slope's sign locates the optimum to a few ulps.
            a, b = state
            m = 0.5 * (a + b)
            rising = slope(m) >= 0
            return jnp.where(rising, a, m), jnp.where(rising, m, b)

        a, b = jax.lax.fori_loop(0, num_iters, body, (a, b))
        log_n = 0.5 * (a + b)
        at_bound = (i == 0) | (i == num_grid - 1)
        return jnp.exp(log_n), jnp.exp(log_c6 - log_n), f(log_n), at_bound

    log_c6 = jnp.log(compute_flops) - _LOG6
    return jax.vmap(one)(log_c6, *args)


def isoflop_minimum(
    loss_fn: LossFn,
    params,
    compute_flops: ArrayLike,
    *args: ArrayLike,
    min_tokens_per_param: float = 1e-3,
    max_tokens_per_param: float = 1e5,
    num_grid: int = 128,
    num_iters: int = 48,
) -> IsoFLOPMinimum:
    """Minimize the loss along each isoFLOP slice (a bounded 1-D search in log N).

    A grid over ``log N`` brackets the minimum and bisection on the sign of
    ``dL/dlog N`` refines it; the loop is bounded, so one compilation serves any batch
    of budgets. It copes with kinks (e.g. the data-constrained law), but assumes the
    slice is unimodal within one grid step of the best grid point. The bracket after
    ``num_iters`` steps is ``2 * span / num_grid / 2**num_iters`` wide in log N
    (about 1e-15 with the defaults, so the dtype's precision is the limit).

    Args:
      loss_fn: ``loss_fn(params, n_params, n_tokens, *args)``, elementwise; must be
        hashable (a module-level function such as ``chinchilla.loss``), since it is
        a static argument of the compiled search.
      params: the law's constants (traced: one compile serves any values).
      compute_flops: budgets C in FLOPs (> 0), any shape.
      *args: further inputs of ``loss_fn``, broadcast against ``compute_flops``.
      min_tokens_per_param, max_tokens_per_param: the searched range of D / N.
      num_grid, num_iters: grid points and bisection steps.

    Returns:
      An :class:`IsoFLOPMinimum` with the shape of the broadcast budgets.

    Examples:
      >>> from jscale.laws import chinchilla
      >>> m = isoflop_minimum(chinchilla.loss, chinchilla.HOFFMANN2022.params, 1e24)
      >>> round(float(m.n_params) / 1e9, 1)
      41.3
    """
    c = _checks.check_positive("compute_flops", compute_flops)
    extras = [_checks.check_positive(f"args[{i}]", a) for i, a in enumerate(args)]
    _checks.check_range("min_tokens_per_param", min_tokens_per_param)
    _checks.check_range("max_tokens_per_param", max_tokens_per_param)
    if not min_tokens_per_param < max_tokens_per_param:
        raise ValueError(
            "min_tokens_per_param must be < max_tokens_per_param; got "
            f"{min_tokens_per_param} and {max_tokens_per_param}"
        )
    if num_grid < 3 or num_iters < 0:
        raise ValueError(
            f"num_grid must be >= 3 and num_iters >= 0; got {num_grid}, {num_iters}"
        )
    shape = _checks.check_shapes(
        compute_flops=c, **{f"args[{i}]": a for i, a in enumerate(extras)}
    )
    c, *extras = (jnp.broadcast_to(x, shape).ravel() for x in (c, *extras))
    out = _isoflop_minimum(
        loss_fn,
        params,
        c,
        tuple(extras),
        math.log(min_tokens_per_param),
        math.log(max_tokens_per_param),
        num_grid=num_grid,
        num_iters=num_iters,
    )
    return IsoFLOPMinimum(*(x.reshape(shape) for x in out))


def _parabola(x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Least-squares ``y = c0 + c1 u + c2 u^2`` with ``u`` centred and scaled ``x``.

    Returns the vertex in ``x``, the value there and the curvature ``d2y/dx2 / 2``.
    """
    mid = 0.5 * (jnp.max(x) + jnp.min(x))
    half = 0.5 * (jnp.max(x) - jnp.min(x))
    u = (x - mid) / half
    design = jnp.stack([jnp.ones_like(u), u, u * u], axis=-1)
    coef, *_ = jnp.linalg.lstsq(design, y)
    c0, c1, c2 = coef[0], coef[1], coef[2]
    u_star = -c1 / (2.0 * c2)
    ok = c2 > 0
    x_star = jnp.where(ok, mid + half * u_star, jnp.nan)
    y_star = jnp.where(ok, c0 + c1 * u_star + c2 * u_star * u_star, jnp.nan)
    return x_star, y_star, c2 / (half * half)


def _power_law(log_c: jax.Array, log_y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Least-squares slope and intercept of ``log_y = intercept + slope * log_c``."""
    mc = jnp.mean(log_c)
    my = jnp.mean(log_y)
    slope = jnp.sum((log_c - mc) * (log_y - my)) / jnp.sum((log_c - mc) ** 2)
    return slope, my - slope * mc


def approach2(
    compute_flops: ArrayLike, n_params: ArrayLike, loss: ArrayLike
) -> Approach2Result:
    """Hoffmann 2022 Approach 2: parabolas on isoFLOP slices, then power laws.

    Each budget's losses are fitted by a parabola in ``log N`` (least squares); its
    vertex is ``N_opt(C)``. Then ``log N_opt`` and ``log D_opt`` are regressed on
    ``log C``. The exponent is unbiased when every slice's points sit symmetrically
    around its optimum in log space; a fixed, off-centre grid biases it
    (Hoffmann 2022, Sec. 3.2; Besiroglu et al. 2024).

    Args:
      compute_flops: the K budgets, shape ``(K,)`` (K >= 2, distinct).
      n_params: sizes on each slice, shape ``(K, M)`` (M >= 3).
      loss: observed or predicted losses, shape ``(K, M)``.

    Returns:
      An :class:`Approach2Result`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jscale.laws import chinchilla
      >>> p = chinchilla.HOFFMANN2022.params
      >>> c = jnp.logspace(19, 22, 4)
      >>> opt = isoflop_minimum(chinchilla.loss, p, c)
      >>> n = opt.n_params[:, None] * jnp.logspace(-0.5, 0.5, 9)[None, :]
      >>> r = approach2(c, n, isoflop_slice(chinchilla.loss, p, c[:, None], n).loss)
      >>> round(float(r.a), 3)  # beta / (alpha + beta) = 0.28 / 0.62
      0.452
    """
    c = _checks.check_positive("compute_flops", compute_flops)
    n = _checks.check_positive("n_params", n_params)
    y = _checks.check_range("loss", loss, lower=None)
    if c.ndim != 1 or c.shape[0] < 2:
        raise ValueError(
            f"compute_flops must have shape (K,) with K >= 2 budgets; got {c.shape}"
        )
    if n.ndim != 2 or n.shape[0] != c.shape[0] or n.shape[1] < 3:
        raise ValueError(
            "n_params must have shape (K, M) with K budgets and M >= 3 sizes; got "
            f"{n.shape} for K = {c.shape[0]}"
        )
    if y.shape != n.shape:
        raise ValueError(f"shape mismatch: loss {y.shape} and n_params {n.shape}")
    return _approach2(c, n, y)


@jax.jit
def _approach2(c, n, y):
    log_n_opt, loss_opt, curvature = jax.vmap(_parabola)(jnp.log(n), y)
    log_c = jnp.log(c)
    log_d_opt = log_c - _LOG6 - log_n_opt
    a, log_k_n = _power_law(log_c, log_n_opt)
    b, log_k_d = _power_law(log_c, log_d_opt)
    return Approach2Result(
        jnp.exp(log_n_opt),
        jnp.exp(log_d_opt),
        loss_opt,
        curvature,
        a,
        b,
        log_k_n,
        log_k_d,
    )
