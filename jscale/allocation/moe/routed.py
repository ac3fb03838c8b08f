"""Clark et al. 2022 ("Unified Scaling Laws for Routed Language Models",
arXiv:2202.01169): the routed model of the most useful size and expert count.

Their law has no token count: all their models saw the same 130B tokens (Krajewski
2024, Sec. 3). The training tokens are therefore fixed (``n_tokens``, default
130e9), the budget ``6 N D <= C`` caps the dense-equivalent size N (routing FLOPs
negligible, as in Clark's own accounting and Ludziejewski 2025, App. A.2), and the
decision variables are N and E under the memory cap. For a fixed N the log loss is
linear in ``log Ê`` with slope ``b + c log10 N``, so E sits at a bound (the memory
cap or ``max_experts`` below Clark's cutoff ``N_cut = 10^(-b/c)``, one expert above
it); what is left is one dimension, ``log N``, for the scalar minimizer.
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
    FRACTION,
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

#: Clark 2022's training tokens (all runs; Krajewski 2024, Sec. 3).
CLARK_TOKENS = 130e9
#: Fraction of Clark's dense-equivalent parameters N copied per extra expert. Routing
#: every other block (routing frequency 1/2) whose feed-forward layer holds 2/3 of
#: the block (8 of 12 d_model^2) gives 1/3 of the non-embedding parameters; with
#: the embeddings' share of N, the authors' data (google-deepmind/
#: scaling_laws_for_routing, total against dense parameter counts) give 0.308-0.313
#: for their 370M and 1.3B models (0.29-0.39 down to 15M).
CLARK_EXPERT_FRACTION = 0.31

#: Clark's N from the shape: ``12 n_blocks d_model^2`` with ``d_model = 64
#: n_blocks`` (embeddings neglected), so ``d_model = (64 N / 12)^(1/3)``.
_CLARK_LOG_NMIN = math.log(12.0 * shared.WIDTH**2)


class _ClarkTheta(NamedTuple):
    p: moe_laws.ClarkParams
    log_nb: jax.Array  # log(C / (6 D)): the budget's cap on N
    log_cap: jax.Array  # memory cap in values
    log_kv3: jax.Array  # log of the KV-cache coefficient of N^(2/3)
    log_phi: jax.Array  # log of the expert fraction
    x_lo: jax.Array  # log of the fewest experts
    x_hi: jax.Array  # log of the most experts


def _clark_log_experts(x, th):
    """``log E`` at ``N = e^x``: a bound, by the sign of ``b + c log10 N``.

    Up to Clark's cutoff more experts help (the log loss is linear in
    ``log10 Ê`` with that slope): as many as fit (``N (1 + phi (E - 1)) + KV <=
    M``) up to the most allowed; beyond it, the fewest allowed.
    """
    p = th.p
    room = jnp.exp(th.log_cap - x) - jnp.exp(th.log_kv3 - x / 3.0) - 1.0
    e_fit = 1.0 + room * jnp.exp(-th.log_phi)
    x_fit = jnp.log(jnp.where(e_fit > 0, e_fit, 1.0))
    # At the largest N that fits, x_fit = x_lo: keep x_fit's slope there (a
    # plain maximum would halve it), clipping only rounding below x_lo.
    x_fit = x_fit + jax.lax.stop_gradient(jnp.maximum(x_fit, th.x_lo) - x_fit)
    x_up = jnp.minimum(th.x_hi, x_fit)
    return jnp.where(p.b + p.c * x / shared.LN10 < 0, x_up, th.x_lo)


def _clark_log_loss(x, log_e, p):
    l_n = x / shared.LN10
    l_e = shared.log_expert_hat(log_e, p.e_start, p.e_max) / shared.LN10
    return shared.LN10 * (p.a * l_n + p.b * l_e + p.c * l_n * l_e + p.d)


def _clark_objective(x, th):
    return _clark_log_loss(x, _clark_log_experts(x, th), th.p)


def _clark_x_fit(x_e, th):
    """``log N`` at which ``N (1 + phi (E - 1)) + KV`` fills the memory."""
    log_size = jnp.log1p(jnp.exp(th.log_phi) * jnp.expm1(x_e))
    return shared.log_poly_root(
        jnp.stack([log_size, th.log_kv3]), (1.0, 2.0 / 3.0), th.log_cap
    )


@partial(jax.jit, static_argnames=("num_grid", "max_steps"))
def _clark_kernel(
    p, log_nb, log_cap, log_kv3, log_phi, x_lo, x_hi, num_grid, max_steps
):
    delta = KINK_DELTA[np.dtype(log_nb.dtype)]

    def one(p, log_nb, log_cap, log_kv3, log_phi, x_lo, x_hi):
        th = _ClarkTheta(p, log_nb, log_cap, log_kv3, log_phi, x_lo, x_hi)
        dtype = log_nb.dtype
        n_lo = jnp.asarray(_CLARK_LOG_NMIN, dtype)
        x_mem = _clark_x_fit(x_lo, th)
        budget_ok = log_nb >= n_lo
        memory_ok = x_mem >= n_lo - 1e-6
        n_hi = jnp.maximum(jnp.minimum(log_nb, x_mem), n_lo)
        # Kinks: where E reaches max_experts on the memory frontier, and Clark's
        # cutoff b + c log10 N = 0 (where experts stop helping).
        k_fit = _clark_x_fit(x_hi, th)
        safe_c = jnp.where(p.c != 0, p.c, 1.0)
        k_cut = jnp.where(p.c != 0, -shared.LN10 * p.b / safe_c, n_lo)
        kinks = jnp.stack([k_fit, k_cut])
        # The lowest local minimum (the loss may dip on both sides of a kink).
        r = _solver.minimize_scalar(
            _clark_objective,
            th,
            n_lo,
            n_hi,
            _solver.kink_points(kinks, delta),
            num_grid=num_grid,
            max_steps=max_steps,
        )
        x = r.x
        width = delta * jnp.maximum(1.0, jnp.abs(kinks))
        inside = (kinks > n_lo) & (kinks < n_hi)
        near = inside & (jnp.abs(x - kinks) <= 2.0 * width)
        x = jnp.where(near[0], kinks[0], jnp.where(near[1], kinks[1], x))
        at_kink = near[0] | near[1]
        log_e = _clark_log_experts(x, th)
        log_loss = _clark_log_loss(x, log_e, p)
        w = jnp.where(near[0], width[0], width[1])
        probes = jnp.stack([x, x - 4.0 * w, x + 4.0 * w])
        here, left, right = jax.vmap(jax.grad(_clark_objective), (0, None))(probes, th)
        gnorm = jnp.where(
            at_kink,
            jnp.maximum(jnp.maximum(left, 0.0), jnp.maximum(-right, 0.0)),
            _solver.projected_slope(here, r.at_lower, r.at_upper),
        )
        log_total = x + jnp.log1p(jnp.exp(log_phi) * jnp.expm1(log_e))
        log_mem = jnp.logaddexp(log_total, log_kv3 + 2.0 * x / 3.0)
        status = solver_status(r.converged | at_kink, x, log_loss)
        status = jnp.where((status == CONVERGED) & r.at_lower, AT_BOUND, status)
        reason = jnp.where(~budget_ok, 1, jnp.where(~memory_ok, 2, 0))
        status = jnp.where(reason > 0, INFEASIBLE, status).astype(jnp.int32)
        violation = jnp.maximum(
            jnp.maximum(0.0, jnp.expm1(x - log_nb)),
            jnp.maximum(0.0, jnp.expm1(log_mem - log_cap)),
        )
        return (
            x,
            jnp.exp(log_loss),
            log_e,
            log_total,
            log_mem,
            status,
            reason,
            r.iterations,
            jax.lax.stop_gradient(gnorm),
            jax.lax.stop_gradient(violation),
        )

    return jax.vmap(one)(p, log_nb, log_cap, log_kv3, log_phi, x_lo, x_hi)


@partial(jax.jit, static_argnames=("fixed", "bpv", "n"))
def _clark_args(p, valid, c, d, t, e, phi, mem, fixed, bpv, n):
    x_e = jnp.log(e)
    kv3 = (2.0 / shared.WIDTH) * (shared.WIDTH / 12.0) ** (2.0 / 3.0)
    args = (
        p,
        jnp.log(c) - shared.LOG6 - jnp.log(d),
        shared.log_cap(valid, mem, bpv, c.dtype),
        shared.log_term(valid, t, kv3),
        jnp.log(phi),
        x_e if fixed else jnp.zeros_like(x_e),
        x_e,
    )
    return shared.pad(args, n)


@partial(jax.jit, static_argnames=("shape", "n", "bpv"))
def _clark_result(out, valid, d, shape, n, bpv):
    x, loss, log_e, *tail = shared.cut(out, n)
    n_act = jnp.exp(x)
    scenario = dict(valid=valid, shape=shape, bpv=bpv, experts=jnp.exp(log_e))
    return shared.moe_result(n_act, d, loss, 6.0 * n_act * d, tail, **scenario)


def routed_moe_optimal(
    params: moe_laws.ClarkParams,
    compute_flops: ArrayLike,
    *,
    n_tokens: ArrayLike = CLARK_TOKENS,
    experts: ArrayLike | None = None,
    max_experts: ArrayLike | None = None,
    memory_bytes: ArrayLike | None = None,
    context: ArrayLike = DEFAULT_CONTEXT,
    precision: str | accounting.Precision = "bf16",
    expert_fraction: ArrayLike = CLARK_EXPERT_FRACTION,
    num_grid: int = 16,
    max_steps: int = 48,
) -> AllocationResult:
    """Optimal routed model under Clark et al. 2022's law, at fixed training tokens.

    Clark's law ``log10 L = a log10 N + b log10 Ê + c log10 N log10 Ê + d``
    (arXiv:2202.01169, Eq. 1, saturating Ê) was fitted on models that all saw
    130B tokens, so D is an input here, not a decision: the budget
    ``6 N D <= C`` caps the dense-equivalent parameters N (routing FLOPs
    neglected, as in their accounting), and N and E are chosen under the memory
    cap ``bytes x (N (1 + phi (E - 1)) + 2 T n_blocks d_model) <= memory_bytes``
    with ``phi = expert_fraction`` (each extra expert copies the routed
    feed-forward layers: routing every other block, feed-forward 2/3 of a block,
    about 0.31 of N in the authors' data, :data:`CLARK_EXPERT_FRACTION`) and
    ``d_model = (64 N / 12)^(1/3)``, ``n_blocks = d_model / 64`` for the cache (the
    shape rule of Krajewski 2024 and Ludziejewski 2025; Clark's own models are
    somewhat deeper). For a fixed N the log loss is linear in ``log10 Ê`` with
    slope ``b + c log10 N``, so E is as large as fits (at most ``max_experts``)
    below Clark's cutoff ``N_cut = 10^(-b/c)`` and ``experts`` (or 1) above it;
    ``log N`` is then minimized on ``[log(12 x 64^2), log(C / (6 D))]`` with the
    two kinks (E reaching ``max_experts``, ``N_cut``) as scan points.

    Args:
      params: the law's constants (:class:`~jscale.laws.moe.ClarkParams`).
      compute_flops: training budgets C in FLOPs (> 0).
      n_tokens: training tokens D (> 0; default 130e9, Clark's).
      experts: fix E (>= 1) instead of optimizing it.
      max_experts: upper bound on E (>= 1; default 512, their largest).
      memory_bytes: memory for weights and KV cache (> 0) or ``None``.
      context: KV-cache tokens T (>= 0; default 16384).
      precision: number format of weights and cache (static).
      expert_fraction: ``phi`` in (0, 1], the share of N copied per extra expert.
      num_grid, max_steps: scan points and Newton step cap.

    Returns:
      An :class:`AllocationResult` with ``n_params = N`` (the parameters a token
      uses), ``n_tokens = D``, ``experts``, ``n_total_params``,
      ``compute_flops = 6 N D`` (at most C) and ``memory_bytes``.

    Raises:
      ValueError: for concrete invalid inputs, both ``experts`` and
        ``max_experts``, a budget below ``6 D`` times the smallest model, or
        memory that cannot hold it.

    Examples:
      >>> from jscale.laws import moe
      >>> p = moe.CLARK2022_SBASE.params
      >>> r = routed_moe_optimal(p, 6 * 1.3e9 * 130e9, max_experts=64.0)
      >>> round(float(r.n_params) / 1e9, 3), round(float(r.experts), 6)
      (1.3, 64.0)
      >>> round(float(r.loss), 4)  # the law at N = 1.3B, E = 64
      2.0498
    """
    (e_name, e_spec), fixed = shared.expert_specs(
        experts, max_experts, shared.DEFAULT_MAX_EXPERTS[moe_laws.CLARK_FAMILY.name]
    )
    bpv = shared.bytes_per_value(precision)
    phi_rule = FRACTION._replace(safe=CLARK_EXPERT_FRACTION)
    shape, p, valid, (c, d, t, e, phi, mem) = prepare(
        params,
        {
            "compute_flops": (compute_flops, POSITIVE._replace(safe=1e21)),
            "n_tokens": (n_tokens, POSITIVE._replace(safe=1e10)),
            "context": (context, NONNEGATIVE._replace(safe=0.0)),
            e_name: e_spec,
            "expert_fraction": (expert_fraction, phi_rule),
            "memory_bytes": (memory_bytes, POSITIVE._replace(safe=1e30)),
        },
    )
    n = c.shape[0]
    args = _clark_args(p, valid, c, d, t, e, phi, mem, fixed=fixed, bpv=bpv, n=n)
    out = _clark_kernel(*args, num_grid=num_grid, max_steps=max_steps)
    res, reason = _clark_result(out, valid, d, shape=shape, n=n, bpv=bpv)
    n_min = 12.0 * 64**2

    def values(i, e_lo):
        return n_min * (1 + shared.at(phi, i) * (e_lo - 1)) + 128 * shared.at(t, i)

    need = shared.experts_need(bpv, t, e if fixed else None, values)

    shared.raise_failed(
        shape,
        res.status,
        reason,
        {
            1: lambda i: (
                f"compute_flops = {shared.at(c, i):.6g} is infeasible: it must "
                f"train the smallest model (d_model = 64, one block: "
                f"{n_min:.4g} parameters) on n_tokens = {shared.at(d, i):.4g} "
                f"tokens, at least {6 * n_min * shared.at(d, i):.4g} FLOPs"
            ),
            2: shared.memory_message(mem, need),
        },
    )
    return res
