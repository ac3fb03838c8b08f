"""Krajewski et al. 2024 ("Scaling Laws for Fine-Grained Mixture of Experts",
arXiv:2402.07871, Sec. 6): parameters, granularity and tokens under a budget.

Decision variables: total non-embedding parameters ``N = d_model^2 (8E + 4)
n_blocks`` (equivalently ``d_model``, with ``d_model = 64 n_blocks``), granularity
``G`` and tokens ``D``, with their Eq. 10 budget including the router,
``C = (12 d_model^2 c_f + d_model E G c_r) D n_blocks``, at the expansion rate
``E = 64`` of their fit. The budget eliminates D; the memory cap bounds
``d_model``; the loss is jointly convex in ``(log d_model, log G)``, so both are
roots of slopes (:func:`jscale._solver.implicit_root`): ``log d_model`` inside
``log G``, and ``log G`` on the envelope.
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from ... import _solver, accounting
from ...laws import moe as moe_laws
from .._common import (
    AT_BOUND,
    AT_LEAST_ONE,
    CONVERGED,
    INFEASIBLE,
    NONNEGATIVE,
    POSITIVE,
    prepare,
    solver_status,
)
from ..results import AllocationResult
from . import _shared as shared
from .memory import DEFAULT_CONTEXT


class _KrajTheta(NamedTuple):
    p: moe_laws.KrajewskiParams
    log_f: jax.Array  # log C
    log_er: jax.Array  # log of the expansion rate E
    log_cf: jax.Array  # log c_f
    log_cr: jax.Array  # log c_r


def _kraj_log_total(u, th):
    """``log N``, ``N = d^2 (8E + 4) n_blocks = (8E + 4) d^3 / 64`` (Sec. 6.1)."""
    return jnp.log(8.0 * jnp.exp(th.log_er) + 4.0) - shared.LOG_WIDTH + 3.0 * u


def _kraj_log_cost(u, y, th):
    """``log`` FLOPs per token, ``(12 d^2 c_f + d E G c_r) n_blocks`` (Eq. 10)."""
    return (
        jnp.logaddexp(
            math.log(12.0) + th.log_cf + 3.0 * u,
            th.log_cr + th.log_er + y + 2.0 * u,
        )
        - shared.LOG_WIDTH
    )


def _kraj_loss(u, y, th):
    """Eq. 9 at ``d_model = e^u``, ``G = e^y`` and ``D = C / cost``."""
    p = th.p
    log_n = _kraj_log_total(u, th)
    log_d = th.log_f - _kraj_log_cost(u, y, th)
    coef = p.g * jnp.exp(-p.gamma * y) + p.a
    return (
        p.c
        + jnp.exp(jnp.log(coef) - p.alpha * log_n)
        + jnp.exp(jnp.log(p.b) - p.beta * log_d)
    )


_kraj_slope_u = jax.grad(_kraj_loss, argnums=0)
_kraj_slope_y = jax.grad(_kraj_loss, argnums=1)


class _KrajOuter(NamedTuple):
    th: _KrajTheta
    u_lo: jax.Array
    u_hi: jax.Array


def _kraj_inner_slope(u, theta):
    y, outer = theta
    return _kraj_slope_u(u, y, outer.th)


def _kraj_inner(y, outer, max_steps):
    """``log d_model`` minimizing the loss at ``G = e^y``: the root of its slope,
    the loss being convex in ``u``."""
    pts = jnp.linspace(outer.u_lo, outer.u_hi, 4)[1:-1]
    return _solver.implicit_root(
        _kraj_inner_slope, (y, outer), outer.u_lo, outer.u_hi, pts, max_steps=max_steps
    )


class _KrajOuterSlope(NamedTuple):
    """``d/dy min_u L(u, y) = dL/dy`` at the inner optimum (envelope theorem; the
    inner bounds do not depend on ``y``)."""

    max_steps: int

    def __call__(self, y, outer):
        u = _kraj_inner(y, outer, self.max_steps).x
        return _kraj_slope_y(u, y, outer.th)


@partial(jax.jit, static_argnames=("max_steps",))
def _kraj_kernel(
    p, log_f, log_cap, log_kv, log_er, log_cf, log_cr, y_lo, y_hi, max_steps
):
    def one(p, log_f, log_cap, log_kv, log_er, log_cf, log_cr, y_lo, y_hi):
        th = _KrajTheta(p, log_f, log_er, log_cf, log_cr)
        dtype = log_f.dtype
        u_min = jnp.asarray(shared.LOG_WIDTH, dtype)
        log_coef_n = jnp.log(8.0 * jnp.exp(log_er) + 4.0) - shared.LOG_WIDTH
        # Memory in values: N + 2 T n_blocks d_model = (8E+4) d^3/64 + 2 T d^2/64.
        u_cap = shared.log_poly_root(
            jnp.stack([log_coef_n, log_kv]), (3.0, 2.0), log_cap
        )
        # One token at the least granularity: cost(u, G_lo) = C.
        u_f = shared.log_poly_root(
            jnp.stack(
                [
                    math.log(12.0) + log_cf - shared.LOG_WIDTH,
                    log_cr + log_er + y_lo - shared.LOG_WIDTH,
                ]
            ),
            (3.0, 2.0),
            log_f,
        )
        memory_ok = u_cap >= u_min - 1e-6
        budget_ok = u_f >= u_min - 1e-6
        u_hi = jnp.maximum(jnp.minimum(u_cap, u_f), u_min)
        # Most granularity the budget allows with the smallest model.
        left = jnp.exp(log_f) - 12.0 * jnp.exp(log_cf) * shared.WIDTH**2
        g_f = left / (shared.WIDTH * jnp.exp(log_cr + log_er))
        y_f = jnp.log(jnp.where(g_f > 0, g_f, 1.0))
        y_top = jnp.maximum(jnp.minimum(y_hi, y_f), y_lo)
        outer = _KrajOuter(th, u_min, u_hi)
        slope = _KrajOuterSlope(max_steps)
        pts = jnp.linspace(y_lo, y_top, 6)[1:-1]
        # The envelope is convex in y too: its minimum is the root of its slope.
        r = _solver.implicit_root(slope, outer, y_lo, y_top, pts, max_steps=max_steps)
        ri = _kraj_inner(r.x, outer, max_steps)
        y, u = r.x, ri.x
        log_n = _kraj_log_total(u, th)
        log_cost = _kraj_log_cost(u, y, th)
        log_d = log_f - log_cost
        loss = _kraj_loss(u, y, th)
        log_mem = jnp.logaddexp(log_n, log_kv + 2.0 * u)
        g_outer = _solver.projected_slope(slope(y, outer), r.at_lower, r.at_upper)
        g_inner = _solver.projected_slope(
            _kraj_slope_u(u, y, th), ri.at_lower, ri.at_upper
        )
        gnorm = jnp.maximum(g_outer, g_inner)
        status = solver_status(r.converged & ri.converged, y, u, loss, log_d)
        at_cap = ri.at_upper & (u_cap <= u_f)
        artificial = (
            ri.at_lower
            | (ri.at_upper & ~at_cap)
            | (r.at_upper & (y_f < y_hi))
            | (log_d < 0.0)
        )
        status = jnp.where((status == CONVERGED) & artificial, AT_BOUND, status)
        reason = jnp.where(~budget_ok, 1, jnp.where(~memory_ok, 2, 0))
        status = jnp.where(reason > 0, INFEASIBLE, status).astype(jnp.int32)
        violation = jnp.maximum(0.0, jnp.expm1(log_mem - log_cap))
        return (
            math.log(12.0) - shared.LOG_WIDTH + 3.0 * u,
            log_d,
            loss,
            y,
            log_n,
            log_mem,
            log_cost + log_d,
            status,
            reason,
            r.iterations + ri.iterations,
            jax.lax.stop_gradient(gnorm),
            jax.lax.stop_gradient(violation),
        )

    return jax.vmap(one)(p, log_f, log_cap, log_kv, log_er, log_cf, log_cr, y_lo, y_hi)


@partial(jax.jit, static_argnames=("fixed", "bpv", "n"))
def _kraj_args(p, valid, c, t, g, er, cf, cr, mem, fixed, bpv, n):
    y_g = jnp.log(g)
    args = (
        p,
        jnp.log(c),
        shared.log_cap(valid, mem, bpv, c.dtype),
        shared.log_term(valid, t, 2.0 / shared.WIDTH),
        jnp.log(er),
        jnp.log(cf),
        jnp.log(cr),
        y_g if fixed else jnp.zeros_like(y_g),
        y_g,
    )
    return shared.pad(args, n)


@partial(jax.jit, static_argnames=("shape", "n", "bpv"))
def _kraj_result(out, valid, er, shape, n, bpv):
    log_n, log_d, loss, y, log_total, log_mem, log_c, *tail = shared.cut(out, n)
    gran = jnp.exp(y)
    n_act, d, compute = jnp.exp(log_n), jnp.exp(log_d), jnp.exp(log_c)
    scenario = dict(
        valid=valid, shape=shape, bpv=bpv, granularity=gran, experts=er * gran
    )
    tail = (log_total, log_mem, *tail)
    return shared.moe_result(n_act, d, loss, compute, tail, **scenario)


def fine_grained_moe_optimal(
    params: moe_laws.KrajewskiParams,
    compute_flops: ArrayLike,
    *,
    granularity: ArrayLike | None = None,
    max_granularity: ArrayLike | None = None,
    expansion_rate: ArrayLike = 64.0,
    memory_bytes: ArrayLike | None = None,
    context: ArrayLike = DEFAULT_CONTEXT,
    precision: str | accounting.Precision = "bf16",
    c_f: ArrayLike = moe_laws.KRAJEWSKI_C_F,
    c_r: ArrayLike = moe_laws.KRAJEWSKI_C_R,
    max_steps: int = 48,
) -> AllocationResult:
    """Compute-optimal fine-grained MoE (Krajewski et al. 2024, Sec. 6).

    Minimizes ``L(N, D, G) = c + (g / G^gamma + a) N^-alpha + b D^-beta``
    (arXiv:2402.07871, Eq. 9) over the total non-embedding parameters
    ``N = d_model^2 (8E + 4) n_blocks``, tokens and granularity subject to their
    Eq. 10 budget with routing, ``C = (12 d_model^2 c_f + d_model E G c_r) D
    n_blocks``, with ``d_model = 64 n_blocks`` (Sec. 6.1) and the expansion rate
    E fixed (64 in their fit). Eliminating D leaves a function of
    ``(log d_model, log G)`` that is jointly convex (sums of exponentials of convex
    functions), minimized by nested 1-D solves: ``log d_model`` for each
    ``log G``, then ``log G`` on the envelope (whose slope is ``dL/dlog G`` at the
    inner optimum). With ``memory_bytes`` the weights and the KV cache must fit,
    ``bytes x ((8E + 4) d^3 / 64 + 2 T d^2 / 64) <= memory_bytes``: an upper bound
    on ``d_model`` (the router is not counted, as in their N).

    Their Table 2 lists configurations with G restricted to powers of two; the
    continuous optimum here rounds (in ``log2 G``) to the same G.

    Args:
      params: the law's constants.
      compute_flops: training budgets C in FLOPs (> 0).
      granularity: fix G (>= 1) instead of optimizing it.
      max_granularity: upper bound on G (>= 1; default 256).
      expansion_rate: E (>= 1; default 64, the value of their fit).
      memory_bytes: memory for weights and KV cache (> 0) or ``None``.
      context: KV-cache tokens T (>= 0; default 16384).
      precision: number format of weights and cache (static).
      c_f, c_r: FLOPs per parameter per token of the dense layers and the router
        (Eq. 10; defaults 6 and 14).
      max_steps: Newton step cap of each 1-D solve.

    Returns:
      An :class:`AllocationResult`: ``n_params`` the active non-embedding
      parameters ``12 d_model^2 n_blocks`` (their "E x N_act" notation gives
      ``N_act``), ``n_total_params`` the total N, ``n_tokens``, ``granularity``,
      ``experts = E G`` (fine-grained experts per layer, their Eq. 3),
      ``compute_flops`` (Eq. 10), ``memory_bytes``, ``loss``.

    Raises:
      ValueError: for concrete invalid inputs, both ``granularity`` and
        ``max_granularity``, a budget that cannot train the smallest model
        (``d_model = 64``) on one token, or memory that cannot hold it.

    Examples:
      >>> from jscale.laws import moe
      >>> p = moe.KRAJEWSKI2024.params
      >>> r = fine_grained_moe_optimal(p, 1.93e20)  # their Table 2: 64 x 1B, G=16
      >>> f"{float(r.n_params):.3g} {float(r.granularity):.1f}"
      '1.02e+09 16.9'
    """
    (g_name, g_spec), fixed = shared.expert_specs(
        granularity,
        max_granularity,
        shared.DEFAULT_MAX_EXPERTS[moe_laws.KRAJEWSKI_FAMILY.name] / 64.0,
        "granularity",
    )
    bpv = shared.bytes_per_value(precision)
    shape, p, valid, (c, t, g, er, cf, cr, mem) = prepare(
        params,
        {
            "compute_flops": (compute_flops, POSITIVE._replace(safe=1e21)),
            "context": (context, NONNEGATIVE._replace(safe=0.0)),
            g_name: g_spec,
            "expansion_rate": (expansion_rate, AT_LEAST_ONE._replace(safe=64.0)),
            "c_f": (c_f, POSITIVE._replace(safe=6.0)),
            "c_r": (c_r, POSITIVE._replace(safe=14.0)),
            "memory_bytes": (memory_bytes, POSITIVE._replace(safe=1e30)),
        },
    )
    n = c.shape[0]
    args = _kraj_args(p, valid, c, t, g, er, cf, cr, mem, fixed=fixed, bpv=bpv, n=n)
    out = _kraj_kernel(*args, max_steps=max_steps)
    res, reason = _kraj_result(out, valid, er, shape=shape, n=n, bpv=bpv)

    def need(i):
        t_i = shared.at(t, i)
        values = (8 * shared.at(er, i) + 4) * 64**2 + 128 * t_i
        return f"and a KV cache of {t_i:g} tokens need {bpv * values:.4g} bytes"

    shared.raise_failed(
        shape,
        res.status,
        reason,
        {
            1: shared.budget_message(c, 12.0 * 64**2),
            2: shared.memory_message(mem, need),
        },
    )
    return res
