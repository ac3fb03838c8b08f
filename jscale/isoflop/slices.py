"""isoFLOP slices and their minima.

Along an isoFLOP slice the training compute ``C = 6 N D`` is fixed, so the tokens are
``D = C / (6 N)`` and the loss is a function of ``N`` alone (Hoffmann et al. 2022,
arXiv:2203.15556, Sec. 3.2). :func:`isoflop_slice` evaluates a law along slices;
:func:`isoflop_minimum` finds each slice's loss-minimizing ``N``.

The law is a preset name, a :class:`jscale.laws.Preset`, or any
``law(params, n_params, n_tokens, *args)`` that is elementwise in its array
arguments, such as a family's ``loss`` from :mod:`jscale.laws`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from .. import _checks, _status, laws
from .._numerics import broadcast
from .._solver import bisect

#: A law as a function: ``law(params, n_params, n_tokens, *args) -> loss``.
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
      status: :mod:`jscale._status` code: ``CONVERGED``, ``AT_BOUND`` (as
        ``at_bound``) or ``NONFINITE`` (the loss is not finite at the minimum).
    """

    n_params: jax.Array
    n_tokens: jax.Array
    loss: jax.Array
    at_bound: jax.Array
    status: jax.Array


def _law(law: str | laws.Preset | LossFn, params: Any) -> tuple[LossFn, Any]:
    """The loss function and constants of a law given as a preset or a function."""
    if isinstance(law, str):
        law = laws.get(law)
    if isinstance(law, laws.Preset):
        return law.family.loss, law.params if params is None else params
    if not callable(law):
        raise ValueError(
            "law must be a preset name, a laws.Preset or a function "
            f"law(params, n_params, n_tokens, ...); got {type(law).__name__}"
        )
    return law, params


def isoflop_slice(
    law: str | laws.Preset | LossFn,
    params: Any,
    compute_flops: ArrayLike,
    n_params: ArrayLike,
    *args: ArrayLike,
) -> IsoFLOPSlice:
    """Loss along isoFLOP slices, ``L(N, C / (6 N))``, with broadcasting.

    Args:
      law: a preset name, a :class:`jscale.laws.Preset`, or a function
        ``law(params, n_params, n_tokens, *args)``.
      params: the law's constants (``None`` for a preset's own).
      compute_flops: budgets C in FLOPs (> 0).
      n_params: model sizes N (> 0), broadcastable against ``compute_flops``: e.g.
        budgets of shape ``(K, 1)`` and sizes ``(M,)`` give ``(K, M)`` slices.
      *args: further inputs of the law (e.g. unique tokens), broadcast alike.

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
    loss_fn, params = _law(law, params)
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
        # Bisection on the sign of dL/dlog N: unlike comparing loss values, which in
        # float32 cannot resolve log N better than ~1e-2 on a flat minimum, the
        # slope's sign locates the optimum to a few ulps.
        slope = jax.grad(f)
        log_n = bisect(lambda x, _: slope(x), None, a, b, num_steps=num_iters)
        at_bound = (i == 0) | (i == num_grid - 1)
        loss = f(log_n)
        status = jnp.where(at_bound, _status.AT_BOUND, _status.CONVERGED)
        status = jnp.where(jnp.isfinite(loss), status, _status.NONFINITE)
        return jnp.exp(log_n), jnp.exp(log_c6 - log_n), loss, at_bound, status

    log_c6 = jnp.log(compute_flops) - _LOG6
    return jax.vmap(one)(log_c6, *args)


def isoflop_minimum(
    law: str | laws.Preset | LossFn,
    params: Any,
    compute_flops: ArrayLike,
    *args: ArrayLike,
    min_tokens_per_param: float = 1e-3,
    max_tokens_per_param: float = 1e5,
    num_grid: int = 128,
    num_iters: int = 48,
) -> IsoFLOPMinimum:
    """Minimize the loss along each isoFLOP slice (a bounded 1-D search in log N).

    A grid over ``log N`` brackets the minimum and bisection on the sign of
    ``dL/dlog N`` (:func:`jscale._solver.bisect`) refines it; the loop is bounded,
    so one compilation serves any batch of budgets. It copes with kinks (e.g. the
    data-constrained law), but assumes the slice is unimodal within one grid step
    of the best grid point. The bracket after ``num_iters`` steps is
    ``2 * span / num_grid / 2**num_iters`` wide in log N (about 1e-15 with the
    defaults, so the dtype's precision is the limit).

    Args:
      law: a preset name, a :class:`jscale.laws.Preset`, or a function
        ``law(params, n_params, n_tokens, *args)``, elementwise; a function must be
        hashable (a module-level function such as ``chinchilla.loss``), since it is
        a static argument of the compiled search.
      params: the law's constants (traced: one compile serves any values; ``None``
        for a preset's own).
      compute_flops: budgets C in FLOPs (> 0), any shape.
      *args: further inputs of the law, broadcast against ``compute_flops``.
      min_tokens_per_param, max_tokens_per_param: the searched range of D / N.
      num_grid, num_iters: grid points (>= 3) and bisection steps (>= 0).

    Returns:
      An :class:`IsoFLOPMinimum` with the shape of the broadcast budgets.

    Examples:
      >>> from jscale.laws import chinchilla
      >>> m = isoflop_minimum(chinchilla.loss, chinchilla.HOFFMANN2022.params, 1e24)
      >>> round(float(m.n_params) / 1e9, 1)
      41.3
      >>> by_name = isoflop_minimum("chinchilla-hoffmann2022", None, 1e24)
      >>> float(by_name.n_params) == float(m.n_params)
      True
    """
    loss_fn, params = _law(law, params)
    c = _checks.check_positive("compute_flops", compute_flops)
    extras = [_checks.check_positive(f"args[{i}]", a) for i, a in enumerate(args)]
    _checks.check_range("min_tokens_per_param", min_tokens_per_param)
    _checks.check_range("max_tokens_per_param", max_tokens_per_param)
    if not min_tokens_per_param < max_tokens_per_param:
        raise ValueError(
            "min_tokens_per_param must be < max_tokens_per_param; got "
            f"{min_tokens_per_param} and {max_tokens_per_param}"
        )
    num_grid = _checks.check_whole("num_grid", num_grid, minimum=3)
    num_iters = _checks.check_whole("num_iters", num_iters, minimum=0)
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
