"""The batched engine of the dense scenarios: a law of ``(N, D)`` under a budget or
a target, reduced to one dimension in ``x = log N`` and solved by
:func:`jscale._solver.minimize_scalar`, one configuration per lane.

- :func:`budget_scenario`: ``min L(N, D)`` s.t. ``6 N D (+ 2 N D_inf) = C``; the
  budget binds and eliminates ``D``; an optional floor on ``log N`` (the epoch cap
  of the data-constrained law) bounds the search.
- :func:`target_scenario`: ``min 6 N D + 2 N D_inf`` s.t. ``L(N, D) = target``;
  for each ``N`` the tokens are an inner root in ``log D``.

Laws enter in log space (:func:`log_loss_of`): the Chinchilla form, Kaplan's joint
law and the data-constrained law have their own log-space forms and closed-form
seeds (:func:`scan_points`); any other ``law(params, N, D, *args)`` is wrapped.
The kernels are compiled once per shape and law; the public functions in
:mod:`.dense`, :mod:`.data_constrained`, :mod:`.inference` and :mod:`.quality`
prepare their inputs and build their results around them.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import _solver
from ..laws import chinchilla, data_constrained, kaplan
from ._common import (
    AT_BOUND,
    CONVERGED,
    INFEASIBLE,
    KINK_DELTA,
    LOG6,
    LOG_D_MAX,
    LOG_N_MAX,
    Batch,
    assemble,
    solver_status,
)
from .closed_forms import chinchilla_log_n, kaplan_log_n
from .results import AllocationResult

# ------------------------------------------------------------------ laws in log space


def chinchilla_log_loss(p, log_n, log_d):
    """The Chinchilla form (Hoffmann et al. 2022, Eq. 2) in ``log N``, ``log D``."""
    return (
        p.E
        + jnp.exp(jnp.log(p.A) - p.alpha * log_n)
        + jnp.exp(jnp.log(p.B) - p.beta * log_d)
    )


def kaplan_log_loss(p, log_n, log_d):
    """Kaplan et al. 2020's joint law (Eq. 4.1) in log space."""
    ratio = p.alpha_n / p.alpha_d
    bracket = jnp.logaddexp(ratio * (jnp.log(p.n_c) - log_n), jnp.log(p.d_c) - log_d)
    return jnp.exp(p.alpha_d * bracket)


def dc_log_loss(p, log_n, log_d, log_u):
    """Muennighoff et al. 2023 (Sec. 3), with the law module's log-space kernels."""
    log_d_eff = data_constrained.log_effective_data(p, log_d, log_u)
    log_u_d = jnp.minimum(log_u, log_d)
    log_n_eff = data_constrained.log_effective_params(p, log_n, log_u_d)
    return chinchilla_log_loss(p, log_n_eff, log_d_eff)


class DCWithCap(NamedTuple):
    """The data-constrained log loss ignoring an extra ``log max_epochs`` input."""

    def __call__(self, p, log_n, log_d, log_u, log_e):
        return dc_log_loss(p, log_n, log_d, log_u)

    def __hash__(self):
        return hash("DCWithCap")

    def __eq__(self, other):
        return isinstance(other, DCWithCap)


class GenericLogLoss(NamedTuple):
    """``law(params, N, D, *extras)`` in log space: ``(p, log N, log D, *logs)``."""

    law: Callable

    def __call__(self, p, log_n, log_d, *log_extra):
        extra = [jnp.exp(v) for v in log_extra]
        return self.law(p, jnp.exp(log_n), jnp.exp(log_d), *extra)


_LOG_LOSS = {
    chinchilla.loss: (chinchilla_log_loss, "chinchilla"),
    kaplan.loss: (kaplan_log_loss, "kaplan"),
    data_constrained.loss: (dc_log_loss, "data-constrained"),
}


def log_loss_of(law: Callable) -> tuple[Callable, str | None]:
    """``(log_loss, hint)`` for a law function; ``hint`` names its closed forms."""
    return _LOG_LOSS.get(law, (GenericLogLoss(law), None))


def scan_points(hint, p, log_c6, log_extra, delta):
    """Closed-form seeds and kinks along the isoFLOP line, as close pairs."""
    if hint == "chinchilla":
        kinks = chinchilla_log_n(p, log_c6)[None]
    elif hint == "kaplan":
        kinks = kaplan_log_n(p, log_c6)[None]
    elif hint in ("data-constrained", "data-constrained-cap"):
        log_u = log_extra[0]
        # Kinks of the law along D = C/(6N): D = U; N = N_opt(D) (which is
        # Hoffmann's closed form for this budget) while D < U; N = N_opt(U).
        kinks = jnp.stack(
            [
                log_c6 - log_u,
                chinchilla_log_n(p, log_c6),
                data_constrained.log_unique_params(p, log_u),
            ]
        )
    else:
        return log_c6[None][:0]
    return _solver.kink_points(kinks, delta)


# ----------------------------------------------------------------- budget scenario


def _log_tokens(x, log_c, log_t2):
    """``log D`` on ``6 N D + 2 N T = C``: ``log(C/6 - N T/3) - log N``."""
    return log_c - LOG6 - x + jnp.log1p(-jnp.exp(x + log_t2 - log_c))


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
    delta = KINK_DELTA[np.dtype(dtype)]

    def one(p, log_c, log_t2, log_extra, x_floor):
        theta = (p, log_c, log_t2, log_extra)

        def log_d_of(x, th):
            _, lc, lt2, _ = th
            if inference:
                return _log_tokens(x, lc, lt2)
            return lc - LOG6 - x

        def f(x, th):
            return log_loss(th[0], x, log_d_of(x, th), *th[3])

        hi = log_c - (jnp.logaddexp(LOG6, log_t2) if inference else LOG6)
        lo = jnp.maximum(0.0, x_floor)
        pts = scan_points(hint, p, log_c - LOG6, log_extra, delta)
        m = _solver.minimize_scalar(
            f, theta, lo, hi, pts, num_grid=num_grid, max_steps=max_steps
        )
        x = m.x
        log_d = log_d_of(x, theta)
        floor_active = m.at_lower & (x_floor > 0)
        status = solver_status(m.converged, x, log_d, m.value)
        at_edge = (m.at_lower & ~floor_active) | m.at_upper
        status = jnp.where((status == CONVERGED) & at_edge, AT_BOUND, status)
        status = jnp.where(lo <= hi, status, INFEASIBLE).astype(jnp.int32)
        return x, log_d, m.value, status, m.iterations, m.grad_norm

    return jax.vmap(one)(params, log_c, log_t2, log_extra, x_floor)


def budget_scenario(
    log_loss: Callable,
    hint: str | None,
    batch: Batch,
    *,
    inference: bool,
    num_grid: int,
    max_steps: int,
    x_floor: Callable | None = None,
    epochs_of: Callable | None = None,
) -> AllocationResult:
    """Solve ``min L`` under the budget for a prepared batch.

    ``batch.arrays`` holds the budget C, then (with ``inference``) the inference
    tokens, then the law's extra inputs (``log_loss`` takes their logs).
    ``x_floor(log_c, log_extra)`` is an optional lower bound on ``log N``;
    ``epochs_of(log_d, log_extra)`` gives ``(epochs, cap)`` for the result's
    ``epochs`` and its violation.
    """
    c, *rest = batch.arrays
    t = rest.pop(0) if inference else 0.0
    valid = batch.valid
    log_c = jnp.log(c)
    log_t2 = jnp.where(
        valid & (t > 0), jnp.log(2.0 * jnp.where(t > 0, t, 1.0)), -jnp.inf
    )
    log_extra = tuple(jnp.log(e) for e in rest)
    floor = (
        jnp.full_like(log_c, -jnp.inf)
        if x_floor is None
        else jnp.where(valid, x_floor(log_c, log_extra), -jnp.inf)
    )
    x, log_d, loss, status, iters, gnorm = _budget_kernel(
        log_loss,
        hint,
        batch.params,
        log_c,
        log_t2,
        log_extra,
        floor,
        num_grid,
        max_steps,
        inference,
    )
    train = jnp.exp(x + log_d + LOG6)
    spent = train + (2.0 * jnp.exp(x) * t if inference else 0.0)
    violation = jnp.abs(spent - c) / c
    scenario = {}
    if epochs_of is not None:
        epochs, cap = epochs_of(log_d, log_extra)
        scenario["epochs"] = epochs
        violation = jnp.maximum(violation, jnp.maximum(0.0, epochs / cap - 1.0))
    if inference:
        inf_flops = 2.0 * jnp.exp(x) * t
        scenario["inference_flops"] = inf_flops
        scenario["lifetime_flops"] = train + inf_flops
    return _result(
        batch, status, x, log_d, loss, train, iters, gnorm, violation, scenario
    )


def _result(batch, status, x, log_d, *outputs) -> AllocationResult:
    """:func:`assemble` for a kernel in ``(log N, log D)``; ``outputs`` is ``loss,
    compute, iterations, grad_norm, violation`` and a dict of scenario fields."""
    *numbers, scenario = outputs
    n, d = jnp.exp(x), jnp.exp(log_d)
    return assemble(
        status, n, d, *numbers, valid=batch.valid, shape=batch.shape, **scenario
    )


# ----------------------------------------------------------------- target scenario


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
            return zero, zero + LOG_N_MAX, zero + LOG_D_MAX

        def resid_y(y, xt):  # increasing in y: the loss falls with D
            x, (p, tg, _, lex) = xt
            return tg - log_loss(p, x, y, *lex)

        def y_of(x, th):
            zero, _, y_max = ranges(th)
            y_pts = jnp.linspace(zero, y_max, 10)[1:-1]
            return _solver.implicit_root(
                resid_y, (x, th), zero, y_max, y_pts, max_steps=max_steps
            )

        def objective(x, th):
            y = y_of(x, th).x
            return x + y + LOG6 + jnp.log1p(jnp.exp(th[2] - y))

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
        m = _solver.minimize_scalar(
            objective, theta, lo, x_max, num_grid=num_grid, max_steps=max_steps
        )
        x = m.x
        ry = y_of(x, theta)
        y = ry.x
        loss = log_loss(p, x, y, *log_extra)
        status = solver_status(m.converged & ry.converged, x, y, loss)
        at_edge = m.at_lower | m.at_upper | ry.at_upper | ry.at_lower
        status = jnp.where((status == CONVERGED) & at_edge, AT_BOUND, status)
        status = jnp.where(feasible, status, INFEASIBLE).astype(jnp.int32)
        return x, y, loss, status, m.iterations, m.grad_norm

    return jax.vmap(one)(params, target, log_t3, log_extra)


def target_scenario(
    log_loss: Callable, batch: Batch, *, num_grid: int, max_steps: int
) -> AllocationResult:
    """Solve the target problem for a prepared batch.

    ``batch.arrays`` holds the target loss, the inference tokens ``T`` (whose
    ``2 N`` FLOPs each count in the lifetime cost), then the law's extra inputs.
    """
    target, t, *extras = batch.arrays
    valid = batch.valid
    log_t3 = jnp.where(
        valid & (t > 0), jnp.log(jnp.where(t > 0, t, 1.0) / 3.0), -jnp.inf
    )
    log_extra = tuple(jnp.log(e) for e in extras)
    x, y, loss, status, iters, gnorm = _target_kernel(
        log_loss, batch.params, target, log_t3, log_extra, num_grid, max_steps
    )
    violation = jnp.abs(loss - target) / jnp.abs(target)
    inf_flops = 2.0 * jnp.exp(x) * t
    train = jnp.exp(x + y + LOG6)
    scenario = dict(inference_flops=inf_flops, lifetime_flops=train + inf_flops)
    return _result(batch, status, x, y, loss, train, iters, gnorm, violation, scenario)
