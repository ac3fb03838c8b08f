"""Pieces the three MoE solvers share: shape constants, log-space roots, batch
padding, the expert bounds and the eager errors (private to :mod:`.moe`)."""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ... import _solver, accounting
from ...laws import moe as moe_laws
from .._common import AT_LEAST_ONE, assemble, raise_if_infeasible

LOG6 = math.log(6.0)
LN10 = math.log(10.0)
#: Newton steps of the log-space polynomial roots (quadratic convergence from an
#: upper bound at most log(3) away: 16 is several times what float64 needs).
_ROOT_STEPS = 16
#: Width of a block (d_model = 64 n_blocks) and the smallest model: one block.
WIDTH = 64.0
LOG_WIDTH = math.log(WIDTH)

#: Family defaults for the bound on experts per routed layer (Ludziejewski 2025 fit
#: E <= 32, their Table 2's ">= 32" column; Clark 2022 trained up to 512 experts;
#: Krajewski 2024: granularity up to 256 at their E = 64, i.e. 16384 experts, four
#: times the largest G of their Table 2).
DEFAULT_MAX_EXPERTS = {
    moe_laws.JOINT_FAMILY.name: 32.0,
    moe_laws.CLARK_FAMILY.name: 512.0,
    moe_laws.KRAJEWSKI_FAMILY.name: 64.0 * 256.0,
}


# ---------------------------------------------------------------- log-space roots


class _LogPoly(NamedTuple):
    """``log sum_k exp(log_c[k] + powers[k] u) - log_target``: increasing, convex."""

    powers: tuple[float, ...]

    def __call__(self, u, theta):
        log_c, log_t = theta
        p = jnp.asarray(self.powers, dtype=jnp.result_type(u))
        return jax.nn.logsumexp(log_c + p * u) - log_t


def log_poly_root(log_c: jax.Array, powers: tuple[float, ...], log_t) -> jax.Array:
    """Root ``u`` of ``sum_k c_k e^(p_k u) = t`` (all ``p_k > 0``), in log space.

    Newton from the upper bound ``min_k (log t - log c_k) / p_k``: the function is
    convex and increasing in ``u``, so the iterates decrease monotonically to the
    root. ``log_c`` entries may be ``-inf`` (absent terms). Differentiable in
    ``log_c`` and ``log_t`` (implicit function theorem).
    """
    fn = _LogPoly(tuple(float(p) for p in powers))
    sg = jax.lax.stop_gradient
    lc, lt = sg(log_c), sg(log_t)
    p = jnp.asarray(powers, dtype=jnp.result_type(lt))
    u0 = jnp.min((lt - lc) / p)

    def body(_, u):
        z = lc + p * u
        slope = jnp.sum(jax.nn.softmax(z) * p)
        return u - (jax.nn.logsumexp(z) - lt) / slope

    u = jax.lax.fori_loop(0, _ROOT_STEPS, body, u0)
    return _solver.implicit(fn, u, (log_c, log_t))


def log_expert_hat(x, e_start, e_max) -> jax.Array:
    """``log Ê`` from ``x = log E`` (Clark 2022; Ludziejewski 2025, Eq. 4).

    :func:`jscale.laws.moe.log_expert_hat` in the solvers' variable ``log E``
    (``E - 1 = expm1(x)``, exact for few experts).
    """
    k = e_start * e_max / (e_max - e_start)
    return -jnp.logaddexp(-jnp.log(jnp.expm1(x) + k), -jnp.log(e_max))


# ------------------------------------------------------------------ batch padding

#: Smallest padded batch: one compilation serves every batch of up to this many
#: configurations (the solvers take milliseconds per batch; compiling them takes
#: seconds).
_MIN_BUCKET = 256


def _bucket(n: int) -> int:
    """Padded batch size: the next power of two, at least :data:`_MIN_BUCKET`."""
    return max(_MIN_BUCKET, 1 << (n - 1).bit_length())


def pad(tree, n: int):
    """Leaves of length ``n`` padded (repeating the last element) to a bucket."""
    size = _bucket(n)
    return jax.tree_util.tree_map(
        lambda v: jnp.concatenate([v, jnp.broadcast_to(v[-1:], (size - n,))]), tree
    )


def cut(out, n):
    """The first ``n`` lanes of every leaf (the padding dropped)."""
    return jax.tree_util.tree_map(lambda v: v[:n], out)


# ------------------------------------------------------------ options and errors


def expert_specs(experts, max_experts, default_max, name="experts"):
    """The input fixing E (``experts``) or bounding it (``max_experts``).

    Returns ``((name, (value, rule)), fixed)``.
    """
    if experts is not None and max_experts is not None:
        raise ValueError(
            f"give {name} (to fix it) or max_{name} (to bound it), not both"
        )
    if experts is not None:
        return (name, (experts, AT_LEAST_ONE)), True
    top = default_max if max_experts is None else max_experts
    return (f"max_{name}", (top, AT_LEAST_ONE)), False


def at(x, i) -> float:
    """Flat element ``i`` of ``x``."""
    return float(np.asarray(x).reshape(-1)[i])


def raise_failed(shape, status, reason, messages) -> None:
    """Raise for the first concrete infeasible element with its reason's message.

    ``messages[code](i)`` describes flat element ``i`` for the kernel's
    ``reason`` code (1: the budget, 2: the memory); the index in the batch shape
    is appended.
    """

    def describe(idx):
        i = int(np.ravel_multi_index(idx, shape)) if shape else 0
        return messages[int(np.asarray(reason).reshape(-1)[i])](i)

    raise_if_infeasible(status, describe)


def budget_message(c, n_min):
    return lambda i: (
        f"compute_flops = {at(c, i):.6g} is infeasible: it must train the smallest "
        f"model (d_model = 64, one block: {n_min:.4g} active parameters) on one "
        f"token, at least {6 * n_min:.4g} FLOPs"
    )


def moe_result(n, d, loss, compute, tail, *, valid, shape, bpv, **scenario):
    """:func:`jscale.allocation._common.assemble` with the MoE fields, and the
    failure reasons for :func:`raise_failed`.

    ``tail`` is the kernels' common last outputs ``(log_total, log_mem, status,
    reason, iterations, grad_norm, violation)``: total parameters are
    ``exp(log_total)`` and memory ``bpv x exp(log_mem)`` bytes.
    """
    log_total, log_mem, status, reason, its, gn, viol = tail
    res = assemble(
        status,
        n,
        d,
        loss,
        compute,
        its,
        gn,
        viol,
        valid=valid,
        shape=shape,
        n_total_params=jnp.exp(log_total),
        memory_bytes=bpv * jnp.exp(log_mem),
        **scenario,
    )
    return res, reason


# ------------------------------------------------------------- the memory cap

#: ``log`` of the memory cap (in values) used where there is none: e^80 = 5.5e34
#: values never binds and stays finite in float32.
_LOG_NO_CAP = 80.0


def bytes_per_value(precision) -> float:
    """Bytes of one weight or cached value at a number format (static)."""
    return float(accounting.get_precision(precision).bytes_per_value)


def log_cap(valid, memory, bytes_per_value, dtype):
    """``log`` of the memory cap in values (:data:`_LOG_NO_CAP` without one)."""
    if memory is None:
        return jnp.full(valid.shape, _LOG_NO_CAP, dtype)
    safe = jnp.where(valid, memory, 1.0)
    return jnp.log(safe / bytes_per_value).astype(dtype)


def log_term(valid, x, scale):
    """``log(scale x)`` where ``x > 0``, ``-inf`` (an absent term) where ``x == 0``.

    Double ``where`` so the gradient stays finite (zero) for ``x == 0`` (no KV
    cache).
    """
    pos = valid & (x > 0)
    return jnp.where(pos, jnp.log(scale * jnp.where(pos, x, 1.0)), -jnp.inf)


def memory_message(memory, need):
    return lambda i: (
        f"memory_bytes = {at(memory, i):.6g} is infeasible: the smallest model "
        f"(d_model = 64, one block) {need(i)}"
    )


def experts_need(bpv, context, experts, values):
    """The ``need`` of :func:`memory_message` for a plan with a number of experts.

    ``experts`` is the fixed E (``None``: the fewest, one); ``values(i, e)`` counts
    the values of the smallest model with ``e`` experts and its KV cache at
    element ``i``.
    """

    def need(i):
        e_lo = 1.0 if experts is None else at(experts, i)
        return (
            f"with {e_lo:g} experts and a KV cache of {at(context, i):g} tokens "
            f"needs {bpv * values(i, e_lo):.4g} bytes"
        )

    return need
