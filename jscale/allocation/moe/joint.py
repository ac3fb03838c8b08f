"""Ludziejewski et al. 2025 ("Joint MoE Scaling Laws: Mixture of Experts Can Be
Memory Efficient", arXiv:2502.05172, Sec. 4): active parameters, experts and tokens
under a training budget and a memory cap.

Decision variables: active parameters ``N_act``, experts ``E`` (top-1) and tokens
``D``, with ``6 N_act D = C`` (App. A.2: routing FLOPs negligible for their
``E <= 32``) and, optionally, weights plus KV cache within the memory (Sec. 4.3)::

    N_total + 2 T n_blocks d_model <= M / bytes_per_value,

``N_total = 2 d_model V + (4 + 9E) n_blocks d_model^2`` and
``N_act = 2 d_model V + 13 n_blocks d_model^2`` (App. A.1, Eq. 9-10) with
``n_blocks = d_model / 64`` (App. A.3). For a fixed E the law is of Chinchilla form,
so the compute-optimal ``N_act`` is closed form (their Eq. 7). The memory constraint
is linear in E, so the models that fill the memory form a frontier explicit in
``d_model``. The optimum therefore lies on a one-dimensional path of per-E optima:
Eq. 7 in ``log E`` from the fewest experts up to the E at which that model fills the
memory (a kink, found as a root in log space), then along the frontier in
``log d_model`` towards the most experts that fit. The scalar minimizer
(:func:`jscale._solver.minimize_scalar`, lowest local minimum) walks that path, with
the kink as a scan point.
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from ... import _solver, accounting
from ...laws import moe as moe_laws
from .._common import (
    AT_BOUND,
    CONVERGED,
    INFEASIBLE,
    KINK_DELTA,
    NONNEGATIVE,
    POSITIVE,
    prepare,
    solver_status,
)
from ..results import AllocationResult
from . import _shared as shared
from .memory import DEFAULT_CONTEXT

_JOINT_LOG_2V = math.log(2.0 * moe_laws.JOINT_VOCAB)
_JOINT_LOG_13 = math.log(13.0 / shared.WIDTH)
_JOINT_U_MIN = shared.LOG_WIDTH


class _JointTheta(NamedTuple):
    p: moe_laws.JointMoEParams
    log_f: jax.Array  # log C
    log_cap: jax.Array  # log of the memory cap in values (_LOG_NO_CAP: none)
    log_kv: jax.Array  # log(2 T / 64), the e^(2u) coefficient (-inf: no cache)


def _joint_log_nact(u):
    """``log N_act`` at ``u = log d_model`` (Ludziejewski 2025, Eq. 10)."""
    return jnp.logaddexp(_JOINT_LOG_2V + u, _JOINT_LOG_13 + 3.0 * u)


def _joint_log_expert_coef(x):
    """``log((4 + 9E) / 64)`` for ``E = e^x``: the ``d_model^3`` coefficient."""
    return jnp.logaddexp(math.log(4.0), math.log(9.0) + x) - shared.LOG_WIDTH


def _joint_u_fit(x, th):
    """``log d_model`` at which weights and KV cache fill the memory, ``E = e^x``.

    Memory in values: ``2 d V + (4 + 9E) d^3 / 64 + 2 T d^2 / 64`` (Eq. 9 plus the
    cache of Sec. 4.3 with ``n_blocks = d / 64``).
    """
    log_c = jnp.stack(
        [jnp.zeros_like(x) + _JOINT_LOG_2V, _joint_log_expert_coef(x), th.log_kv]
    )
    return shared.log_poly_root(log_c, (1.0, 3.0, 2.0), th.log_cap)


def _joint_log_mem(u, x, th):
    return jax.nn.logsumexp(
        jnp.stack(
            [
                _JOINT_LOG_2V + u,
                _joint_log_expert_coef(x) + 3.0 * u,
                th.log_kv + 2.0 * u,
            ]
        )
    )


def _joint_exponents(p, x):
    """For ``E = e^x``: ``log m, mu, log n, nu`` of ``m N^mu + n D^nu + c`` (Eq. 5)."""
    le = shared.log_expert_hat(x, p.e_start, p.e_max)
    log_m = jnp.log(p.a) + p.delta * le
    log_n = jnp.log(p.b) + p.omega * le
    return log_m, p.alpha + p.gamma * le, log_n, p.beta + p.zeta * le


def _joint_loss(p, log_n, log_d, x):
    log_m, mu, log_nn, nu = _joint_exponents(p, x)
    return jnp.exp(log_m + mu * log_n) + jnp.exp(log_nn + nu * log_d) + p.c


def _joint_log_nopt(x, th):
    """Compute-optimal ``log N_act`` for ``E = e^x`` (Ludziejewski 2025, Eq. 7)."""
    log_m, mu, log_n, nu = _joint_exponents(th.p, x)
    a, b = -mu, -nu
    s = a + b
    log_g = (jnp.log(a) + log_m - jnp.log(b) - log_n) / s
    return log_g + (b / s) * (th.log_f - shared.LOG6)


def _joint_free_log_n(x, th):
    """Regime A (memory not binding): Eq. 7, kept within one block and one token."""
    lo = _joint_log_nact(jnp.asarray(_JOINT_U_MIN, x.dtype))
    return jnp.clip(_joint_log_nopt(x, th), lo, th.log_f - shared.LOG6)


def _joint_free(x, th):
    log_n = _joint_free_log_n(x, th)
    return _joint_loss(th.p, log_n, th.log_f - shared.LOG6 - log_n, x)


def _joint_capped_x(u, th):
    """Regime B (memory binding): ``log E`` that fills the memory at ``log d = u``.

    ``E = ((M - 2 d V - 2 T d^2 / 64) 64 / d^3 - 4) / 9``: the memory constraint
    is linear in E, so the capped frontier is explicit in ``d_model``.
    """
    left = jnp.exp(th.log_cap) - jnp.exp(
        jnp.logaddexp(_JOINT_LOG_2V + u, th.log_kv + 2.0 * u)
    )
    e = (left * jnp.exp(shared.LOG_WIDTH - 3.0 * u) - 4.0) / 9.0
    return jnp.log(jnp.where(e > 0, e, 1.0))


def _joint_capped(u, th):
    log_n = _joint_log_nact(u)
    return _joint_loss(
        th.p, log_n, th.log_f - shared.LOG6 - log_n, _joint_capped_x(u, th)
    )


def _joint_binding(u, th):
    """Increasing in ``u``: >= 0 where the frontier's model is at most Eq. 7's."""
    return _joint_log_nact(u) - _joint_log_nopt(_joint_capped_x(u, th), th)


class _JointPath(NamedTuple):
    """The path of per-E optima: Eq. 7 up to the kink, then the capped frontier.

    ``t`` in ``[0, 1]``: ``x = log E`` from ``x_lo`` to the kink ``x_k`` with the
    free optimum (regime A); ``t`` in ``[1, 2]``: ``u = log d_model`` from the
    kink ``u_k`` down to ``u_a`` (the most experts that fit) on the memory
    frontier (regime B). Continuous at ``t = 1``.
    """

    th: _JointTheta
    x_lo: jax.Array
    x_k: jax.Array
    u_k: jax.Array
    u_a: jax.Array
    free_ok: jax.Array  # regime A is not empty


def _joint_on_frontier(t, pa):
    return (t > 1.0) | ((t >= 1.0) & ~pa.free_ok)


def _joint_path_x(t, pa):
    return pa.x_lo + jnp.minimum(t, 1.0) * (pa.x_k - pa.x_lo)


def _joint_path_u(t, pa):
    return pa.u_k + jnp.maximum(t - 1.0, 0.0) * (pa.u_a - pa.u_k)


def _joint_path_loss(t, pa):
    free = _joint_free(_joint_path_x(t, pa), pa.th)
    capped = _joint_capped(_joint_path_u(t, pa), pa.th)
    return jnp.where(_joint_on_frontier(t, pa), capped, free)


@partial(jax.jit, static_argnames=("num_grid", "max_steps"))
def _joint_kernel(p, log_f, log_cap, log_kv, x_lo, x_hi, num_grid, max_steps):
    delta = KINK_DELTA[np.dtype(log_f.dtype)]

    def one(p, log_f, log_cap, log_kv, x_lo, x_hi):
        th = _JointTheta(p, log_f, log_cap, log_kv)
        dtype = log_f.dtype
        u_min = jnp.asarray(_JOINT_U_MIN, dtype)
        log_f6 = log_f - shared.LOG6
        log_nmin = _joint_log_nact(u_min)
        budget_ok = log_f6 >= log_nmin
        # The capped frontier runs from the most experts (smallest d_model) to the
        # fewest; the smallest model must fit with the fewest, and the frontier's
        # models must not exceed C / 6 (one token).
        u_f = shared.log_poly_root(
            jnp.stack([_JOINT_LOG_2V + 0.0 * log_f, _JOINT_LOG_13 + 0.0 * log_f]),
            (1.0, 3.0),
            log_f6,
        )
        u_fit_lo = _joint_u_fit(x_lo, th)
        memory_ok = u_fit_lo >= u_min - 1e-6
        u_a = jnp.maximum(_joint_u_fit(x_hi, th), u_min)
        u_b = jnp.minimum(u_fit_lo, u_f)
        frontier = u_b >= u_a
        u_a = jnp.minimum(u_a, u_b)
        # Where the memory cap starts to bind (regime A holds for E below it).
        pts = jnp.linspace(u_a, u_b, 6)[1:-1]
        rk = _solver.implicit_root(
            _joint_binding, th, u_a, u_b, pts, max_steps=max_steps
        )
        u_k = rk.x
        x_k = jnp.where(rk.at_lower, x_hi, _joint_capped_x(u_k, th))
        x_k = jnp.where(frontier, jnp.clip(x_k, x_lo, x_hi), x_hi)
        # Regime A is empty where the cap binds even with the fewest experts;
        # regime B where it never binds.
        t_lo = jnp.where(frontier & rk.at_upper, 1.0, 0.0).astype(dtype)
        t_hi = jnp.where(frontier & ~rk.at_lower, 2.0, 1.0).astype(dtype)
        path = _JointPath(th, x_lo, x_k, u_k, u_a, t_lo < 1.0)
        one_ = jnp.ones((1,), dtype)
        # The lowest minimum along the path (the loss may dip on both sides of
        # the kink).
        r = _solver.minimize_scalar(
            _joint_path_loss,
            path,
            t_lo,
            t_hi,
            _solver.kink_points(one_, delta),
            num_grid=num_grid,
            max_steps=max_steps,
        )
        t = r.x
        width = delta
        at_kink = (t_lo < 1.0) & (t_hi > 1.0) & (jnp.abs(t - 1.0) <= 2.0 * width)
        t = jnp.where(at_kink, jnp.ones_like(t), t)
        on_b = _joint_on_frontier(t, path)
        x = jnp.where(on_b, _joint_capped_x(_joint_path_u(t, path), th), 0.0)
        x = jnp.where(on_b, x, _joint_path_x(t, path))
        # On the frontier E comes back from the memory equation: keep float32
        # rounding (~1e-5) from stepping outside the bounds.
        x = jnp.clip(x, x_lo, x_hi)
        log_n = jnp.where(
            on_b,
            _joint_log_nact(_joint_path_u(t, path)),
            _joint_free_log_n(_joint_path_x(t, path), th),
        )
        u = shared.log_poly_root(
            jnp.stack([_JOINT_LOG_2V + 0.0 * log_n, _JOINT_LOG_13 + 0.0 * log_n]),
            (1.0, 3.0),
            log_n,
        )
        log_d = log_f6 - log_n
        loss = _joint_path_loss(t, path)
        log_total = jnp.logaddexp(
            _JOINT_LOG_2V + u, _joint_log_expert_coef(x) + 3.0 * u
        )
        log_mem = _joint_log_mem(u, x, th)
        # The slope at t and, for a kink, on either side of it (one-sided KKT).
        probes = jnp.stack([t, 1.0 - 4.0 * width + 0 * t, 1.0 + 4.0 * width + 0 * t])
        here, left, right = jax.vmap(jax.grad(_joint_path_loss), (0, None))(
            probes, path
        )
        gnorm = jnp.where(
            at_kink,
            jnp.maximum(jnp.maximum(left, 0.0), jnp.maximum(-right, 0.0)),
            _solver.projected_slope(here, r.at_lower, r.at_upper),
        )
        status = solver_status(r.converged | at_kink, x, log_n, log_d, loss)
        tiny = 1e-6
        log_nopt = _joint_log_nopt(x, th)
        at_min = (log_n <= log_nmin + tiny) & (on_b | (log_nopt < log_nmin))
        artificial = at_min | (log_n >= log_f6 - tiny)
        status = jnp.where((status == CONVERGED) & artificial, AT_BOUND, status)
        reason = jnp.where(~budget_ok, 1, jnp.where(~memory_ok, 2, 0))
        status = jnp.where(reason > 0, INFEASIBLE, status).astype(jnp.int32)
        violation = jnp.maximum(
            jnp.maximum(0.0, jnp.expm1(log_mem - log_cap)),
            jnp.maximum(0.0, jnp.maximum(x - x_hi, x_lo - x)),
        )
        iterations = r.iterations + rk.iterations
        return (
            log_n,
            log_d,
            loss,
            x,
            log_total,
            log_mem,
            status,
            reason,
            iterations,
            jax.lax.stop_gradient(gnorm),
            jax.lax.stop_gradient(violation),
        )

    return jax.vmap(one)(p, log_f, log_cap, log_kv, x_lo, x_hi)


@partial(jax.jit, static_argnames=("fixed", "bpv", "n"))
def _joint_args(p, valid, c, t, e, mem, fixed, bpv, n):
    x_e = jnp.log(e)
    args = (
        p,
        jnp.log(c),
        shared.log_cap(valid, mem, bpv, c.dtype),
        shared.log_term(valid, t, 2.0 / shared.WIDTH),
        x_e if fixed else jnp.zeros_like(x_e),
        x_e,
    )
    return shared.pad(args, n)


@partial(jax.jit, static_argnames=("shape", "n", "bpv"))
def _joint_result(out, valid, shape, n, bpv):
    log_n, log_d, loss, x, *tail = shared.cut(out, n)
    compute = jnp.exp(log_n + log_d + shared.LOG6)
    n_act, d = jnp.exp(log_n), jnp.exp(log_d)
    scenario = dict(valid=valid, shape=shape, bpv=bpv, experts=jnp.exp(x))
    return shared.moe_result(n_act, d, loss, compute, tail, **scenario)


def joint_moe_optimal(
    params: moe_laws.JointMoEParams,
    compute_flops: ArrayLike,
    *,
    experts: ArrayLike | None = None,
    max_experts: ArrayLike | None = None,
    memory_bytes: ArrayLike | None = None,
    context: ArrayLike = DEFAULT_CONTEXT,
    precision: str | accounting.Precision = "bf16",
    num_grid: int = 16,
    max_steps: int = 48,
) -> AllocationResult:
    """Compute- and memory-optimal MoE under Ludziejewski et al. 2025's joint law.

    Minimizes ``L(N_act, D, E)`` (arXiv:2502.05172, Eq. 6) over active parameters,
    tokens and experts subject to ``6 N_act D = C`` and, with ``memory_bytes``,
    ``bytes x (N_total + 2 T n_blocks d_model) <= memory_bytes`` (Sec. 4.2-4.3;
    parameter counts of App. A.1 with ``n_blocks = d_model / 64``). For each E the
    optimum is their closed form (Eq. 7) where that model fits, else the largest
    model that fits (the memory constraint is linear in E, so that frontier is
    explicit in ``d_model``). The solver walks this path of per-E optima, from the
    fewest experts to the point where the memory cap starts to bind (a kink; the
    optimum often sits on it: the largest E whose compute-optimal model still
    fits), then along the frontier towards ``max_experts``. Without a memory cap
    more experts always help (their Finding 2): E goes to ``max_experts``.

    Args:
      params: the law's constants (leaves broadcast against the inputs).
      compute_flops: training budgets C in FLOPs (> 0), any shape.
      experts: fix E (>= 1) instead of optimizing it.
      max_experts: upper bound on E (>= 1; default 32, the largest E of the fit).
      memory_bytes: memory for the weights and the KV cache (> 0); ``None`` for
        no memory constraint.
      context: KV-cache tokens T (>= 0; default 16384, as in their Table 2).
      precision: number format of weights and cache (:mod:`jscale.accounting`
        name or :class:`~jscale.accounting.Precision`; static).
      num_grid, max_steps: scan points and Newton step cap of the 1-D solver.

    Returns:
      An :class:`AllocationResult`: ``n_params`` the active parameters (with
      embeddings), ``n_tokens``, ``loss``, ``compute_flops = 6 N_act D``,
      ``experts``, ``n_total_params``, ``memory_bytes`` (weights plus KV cache),
      ``iterations``, ``grad_norm`` (projected slope of the loss along the path)
      and ``violation`` (relative excess over the memory cap or the E bounds).

    Raises:
      ValueError: for concrete invalid inputs (naming them), for both ``experts``
        and ``max_experts``, and for an infeasible configuration: a budget below
        six times the smallest model (``d_model = 64``, one block), or memory that
        cannot hold that model with the fewest allowed experts and its KV cache.

    Examples:
      >>> from jscale.laws import moe
      >>> p = moe.LUDZIEJEWSKI2025.params
      >>> r = joint_moe_optimal(p, 1e21, experts=8.0)  # their Table 1: 3.8B, 44.3B
      >>> f"{float(r.n_params):.3g} {float(r.n_tokens):.3g}"
      '3.79e+09 4.4e+10'
      >>> r = joint_moe_optimal(p, 1e22, memory_bytes=80e9)  # one H100, bf16
      >>> round(float(r.experts), 1), bool(r.memory_bytes <= 80e9 * (1 + 1e-5))
      (15.6, True)
    """
    (e_name, e_spec), fixed = shared.expert_specs(
        experts, max_experts, shared.DEFAULT_MAX_EXPERTS[moe_laws.JOINT_FAMILY.name]
    )
    bpv = shared.bytes_per_value(precision)
    shape, p, valid, (c, t, e, mem) = prepare(
        params,
        {
            "compute_flops": (compute_flops, POSITIVE._replace(safe=1e21)),
            "context": (context, NONNEGATIVE._replace(safe=0.0)),
            e_name: e_spec,
            "memory_bytes": (memory_bytes, POSITIVE._replace(safe=1e30)),
        },
    )
    n = c.shape[0]
    args = _joint_args(p, valid, c, t, e, mem, fixed=fixed, bpv=bpv, n=n)
    out = _joint_kernel(*args, num_grid=num_grid, max_steps=max_steps)
    res, reason = _joint_result(out, valid, shape=shape, n=n, bpv=bpv)
    n_min = 2 * shared.WIDTH * moe_laws.JOINT_VOCAB + 13 * shared.WIDTH**2
    v = moe_laws.JOINT_VOCAB

    def values(i, e_lo):
        return 2 * 64 * v + (4 + 9 * e_lo) * 64**2 + 128 * shared.at(t, i)

    need = shared.experts_need(bpv, t, e if fixed else None, values)

    shared.raise_failed(
        shape,
        res.status,
        reason,
        {1: shared.budget_message(c, n_min), 2: shared.memory_message(mem, need)},
    )
    return res
