"""Data quality: compute-optimal allocation when a token is worth ``q`` raw tokens.

A pool of quality ``q`` makes each of its tokens worth ``q`` tokens of a reference
("raw") pool: the law sees ``q D`` effective tokens, and, for the data-constrained law
of Muennighoff et al. 2023 (arXiv:2305.16264, Sec. 3), ``q U`` effective unique
tokens, repeated ``D / U`` times with Muennighoff's discount ``R_D*``. This is the
effective-data view of quality: Chang et al. 2024 ("Scaling Parameter-Constrained
Language Models with Quality Data", arXiv:2410.03083) put quality into an *effective
training tokens* term; Subramanyam et al. 2025 (arXiv:2510.03313) write
``B / (D^beta Q^gamma)``, i.e. ``q = Q^(gamma/beta)`` here. Goyal et al. 2024
("Scaling Laws for Data Filtering", CVPR 2024, arXiv:2404.07177) show the trade-off
this creates: a small filtered pool wins at small budgets, then loses its value with
repetition, and a larger raw pool wins at large budgets. Their repetition model (a
half-life on the utility exponent) was fitted on image-text data; jscale uses
Muennighoff's language-model repetition discount instead. ``q`` is the user's
estimate (e.g. from a small ablation: the raw tokens that match a filtered run).

The quality factor folds into the law's constants exactly, which is how these
scenarios are solved (with the engine of :mod:`jscale.allocation`, seeded by the
closed forms):

- Chinchilla form: ``B / (q D)^beta = (B q^-beta) / D^beta``, the Chinchilla law with
  ``B' = B q^-beta``, whose optimum is Hoffmann et al. 2022's Eq. 4 closed form.
- Muennighoff's law: ``D'`` is homogeneous in ``(D, U)`` (``R_D`` depends on
  ``D / U`` only), so ``D'(q D, q U) = q D'(D, U)``; and ``N_opt(q U_D)`` under the
  law's constants equals ``N_opt(U_D)`` under ``B' = B q^-beta`` (both are
  ``G^(1+beta/alpha) (q U_D)^(beta/alpha)``). So again ``B' = B q^-beta``.
- Kaplan's joint law: ``D_c / (q D) = (D_c / q) / D``.

Any other law of ``(n_params, n_tokens)`` is evaluated at ``(N, q D)``.

:func:`pools_optimal` chooses among pools of different size and quality. With
Muennighoff's constants, 50B tokens worth twice raw ones beat 2T raw tokens up to
about 1.1e23 FLOPs, where the filtered pool would be repeated about 11 times.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from .. import _checks
from .._numerics import asfloat
from ..laws import Preset, chinchilla, data_constrained, kaplan
from ._common import (
    INFEASIBLE,
    NONFINITE,
    POSITIVE,
    batch_shape,
    pick,
    prepare,
    valid_log,
)
from .data_constrained import dc_scenario
from .engine import GenericLogLoss, budget_scenario, log_loss_of
from .results import AllocationResult


def _resolve(law) -> tuple[str, Callable, object]:
    """``(kind, law_fn, params)`` for a preset name, a Preset or a params tuple."""
    if isinstance(law, str):
        from .. import laws

        law = laws.get(law)
    if isinstance(law, Preset):
        family = law.family
        extra = 1 if family.name == data_constrained.FAMILY.name else 0
        if family.inputs[:2] != ("n_params", "n_tokens") or (
            len(family.inputs) > 2 + extra
        ):
            raise ValueError(
                f"law {law.name!r} takes {', '.join(family.inputs)}; the quality "
                "scenarios support laws of (n_params, n_tokens) and the "
                "data-constrained law"
            )
        params = law.params
        law_fn = family.loss
    else:
        params = law
        law_fn = {
            chinchilla.ChinchillaParams: chinchilla.loss,
            data_constrained.DataConstrainedParams: data_constrained.loss,
            kaplan.KaplanParams: kaplan.loss,
        }.get(type(law))
        if law_fn is None:
            raise ValueError(
                "law must be a preset name, a Preset, or ChinchillaParams, "
                f"DataConstrainedParams or KaplanParams; got {type(law).__name__}"
            )
    kind = {
        chinchilla.loss: "chinchilla",
        data_constrained.loss: "data-constrained",
        kaplan.loss: "kaplan",
    }.get(law_fn, "generic")
    return kind, law_fn, params


def _fold(kind, params, log_q):
    """The law's constants with the quality factor folded in (module docstring)."""
    if kind in ("chinchilla", "data-constrained"):
        return params._replace(B=params.B * jnp.exp(-params.beta * log_q))
    if kind == "kaplan":
        return params._replace(d_c=params.d_c * jnp.exp(-log_q))
    raise AssertionError(kind)


class _QualityLoss(NamedTuple):
    """``law_fn(params, N, q D)`` for a law without a known fold (hashable)."""

    law_fn: Callable

    def __call__(self, params, n_params, n_tokens, quality):
        return self.law_fn(params, n_params, quality * n_tokens)


def _quality(kind, law, params, c, q, u, e, max_steps) -> AllocationResult:
    """The quality scenario for checked inputs; infeasible elements flagged."""
    if kind == "data-constrained" and u is None:
        params = chinchilla.ChinchillaParams(*params[:5])
        kind, law = "chinchilla", chinchilla.loss
    valid = _checks.positive(q)
    log_q = valid_log(valid, q)
    if kind == "data-constrained":
        out = dc_scenario(_fold(kind, params, log_q), c, u, e, max_steps=max_steps)
    else:
        if kind == "generic":
            log_loss, hint = GenericLogLoss(_QualityLoss(law)), None
            inputs = {
                "compute_flops": (c, POSITIVE),
                "quality": (jnp.exp(log_q), POSITIVE),
            }
        else:
            log_loss, hint = log_loss_of(law)
            params = _fold(kind, params, log_q)
            inputs = {"compute_flops": (c, POSITIVE)}
        out = budget_scenario(
            log_loss,
            hint,
            prepare(params, inputs),
            inference=False,
            num_grid=16,
            max_steps=max_steps,
        )
    shape = out.status.shape
    q_safe = jnp.broadcast_to(jnp.exp(log_q), shape)
    d_eff = out.n_tokens
    if kind == "data-constrained":
        u_ok = _checks.positive(u)
        log_u = jnp.log(jnp.broadcast_to(jnp.where(u_ok, u, 1.0), shape))
        # D' of Muennighoff 2023 (Sec. 3) is homogeneous: D'(qD, qU) = q D'(D, U).
        log_d = data_constrained.log_effective_data(
            params, jnp.log(out.n_tokens), log_u
        )
        d_eff = jnp.exp(log_d)
    out = out._replace(effective_tokens=q_safe * d_eff)
    return _flag_invalid(out, jnp.broadcast_to(valid, shape))


# One compiled program per (law kind, options, shape, dtype): the engine's
# bookkeeping around its kernel would otherwise run op by op.
_quality_jit = jax.jit(_quality, static_argnums=(0, 1, 7))


def _normalized(params, arrays: dict):
    """Params and named arrays broadcast to their common shape and one dtype.

    Raises ``ValueError`` naming the arrays whose shapes do not broadcast. The
    compiled solver then depends on that shape and dtype only, not on which inputs
    were scalars or Python numbers.
    """
    present = {k: v for k, v in arrays.items() if v is not None}
    leaves = jax.tree_util.tree_leaves(params)
    shape = _checks.check_shapes(
        **present, params=jnp.zeros(batch_shape(*leaves), bool)
    )
    dtype = jnp.result_type(*present.values(), *leaves)

    def full(v):
        return jnp.broadcast_to(jnp.asarray(v, dtype), shape)

    out = {k: None if v is None else full(v) for k, v in arrays.items()}
    return jax.tree_util.tree_map(full, params), out


def _precheck(c, u, e, axis=None) -> None:
    """Raise now for concrete budgets or caps that allow no model at all."""
    if not all(_checks.is_concrete(v) for v in (c, u, e) if v is not None):
        return
    with jax.ensure_compile_time_eval():
        ok = c >= 6.0
        if e is not None:
            ok = ok & (e * u >= 1.0)
        if axis is not None:
            ok = jnp.any(ok, axis=axis)
        bad = jnp.argwhere(~ok)
    if bad.shape[0]:
        idx = tuple(int(i) for i in bad[0])
        where = f" at index {idx}" if idx else ""
        if axis is not None:
            raise ValueError(
                "no pool is feasible: every pool needs compute_flops >= 6 and "
                f"max_epochs * unique_tokens >= 1{where}"
            )
        raise ValueError(_infeasible_message(c, u, e, idx) + where)


def _flag_invalid(out: AllocationResult, valid) -> AllocationResult:
    """Mark elements with an invalid input INFEASIBLE and set their outputs to NaN."""
    status = jnp.where(valid, out.status, INFEASIBLE).astype(jnp.int32)

    def mask(name, v):
        if v is None or name in ("status", "iterations", "pool"):
            return v
        return jnp.where(valid, v, jnp.nan)

    fields = {k: mask(k, v) for k, v in out._asdict().items()}
    fields["status"] = status
    return AllocationResult(**fields)


def _check_optional(name, x):
    return None if x is None else _checks.check_positive(name, x)


def _check_epochs(unique_tokens, max_epochs):
    if max_epochs is not None and unique_tokens is None:
        raise ValueError(
            "max_epochs needs unique_tokens (the data it counts passes of)"
        )


def quality_optimal(
    law: str | Preset | tuple,
    compute_flops: ArrayLike,
    quality: ArrayLike,
    unique_tokens: ArrayLike | None = None,
    max_epochs: ArrayLike | None = None,
    *,
    max_steps: int = 48,
) -> AllocationResult:
    """Compute-optimal N and D when each training token is worth ``q`` raw tokens.

    Minimizes ``L(N, q D)`` (or Muennighoff's ``L(N, q D, q U)`` with ``unique_tokens``)
    subject to ``6 N D = C``, in ``log N`` with the budget eliminated
    (``D = C / (6 N)``), optionally with at most ``max_epochs`` passes over the unique
    data. The quality factor folds into the law's data coefficient (``B' = B q^-beta``,
    see the module docstring), so the Chinchilla form's optimum is Hoffmann et al.
    2022's Eq. 4 with ``B'``, and the data-constrained law keeps its three kinks as
    scan points. Differentiable in the law's constants, the budget, ``q``, ``U`` and
    the epoch cap (implicit differentiation at the solution).

    Args:
      law: a preset name or :class:`~jscale.laws.Preset` of a law of
        ``(n_params, n_tokens)`` or the data-constrained family, or the constants
        themselves (``ChinchillaParams``, ``DataConstrainedParams`` or
        ``KaplanParams``); leaves may be arrays broadcasting with the budgets.
      compute_flops: training budgets C in FLOPs (> 0), any shape.
      quality: tokens of the reference pool one token of this pool is worth
        (``q > 0``; 1 is the reference, 2 a pool twice as useful), broadcastable.
      unique_tokens: unique tokens U in the pool (> 0); needs the data-constrained
        law. Without it a data-constrained law reduces to its Chinchilla form.
      max_epochs: optional cap on ``D / U`` (> 0); needs ``unique_tokens``.
      max_steps: the Newton step cap.

    Returns:
      An :class:`~jscale.allocation.AllocationResult`: ``n_tokens`` are tokens of
      this pool, ``effective_tokens`` their worth in reference tokens after the
      repetition discount (``q D'``), ``epochs = D / U`` with ``unique_tokens``,
      iterations, gradient norm and violation.

    Raises:
      ValueError: for concrete invalid inputs (naming them), a law without
        ``(n_params, n_tokens)`` inputs, ``unique_tokens`` with a law that has no
        notion of unique data, or an infeasible budget (``C < 6``: one parameter on
        one token, or fewer than one token allowed by ``max_epochs * U``).

    Examples:
      >>> from jscale.laws import chinchilla
      >>> p = chinchilla.HOFFMANN2022.params
      >>> raw = quality_optimal(p, 1e24, 1.0)
      >>> filtered = quality_optimal(p, 1e24, 2.0)  # each token worth two raw
      >>> bool(filtered.loss < raw.loss), bool(filtered.n_tokens < raw.n_tokens)
      (True, True)
      >>> round(float(filtered.effective_tokens / filtered.n_tokens), 6)
      2.0
      >>> r = quality_optimal("muennighoff2023", 1e22, [1.0, 2.0], unique_tokens=1e10)
      >>> [round(float(e), 1) for e in r.epochs]  # q = 1: data_constrained_optimal
      [27.2, 18.3]
    """
    kind, law_fn, params = _resolve(law)
    c = _checks.check_positive("compute_flops", compute_flops)
    q = _checks.check_positive("quality", quality)
    u = _check_optional("unique_tokens", unique_tokens)
    e = _check_optional("max_epochs", max_epochs)
    _check_epochs(unique_tokens, max_epochs)
    if u is not None and kind != "data-constrained":
        raise ValueError(
            "unique_tokens needs the data-constrained law (Muennighoff et al. 2023, "
            "e.g. 'muennighoff2023'): this law has no notion of repeated data"
        )
    params, x = _normalized(
        params, {"compute_flops": c, "quality": q, "unique_tokens": u, "max_epochs": e}
    )
    c, q, u, e = x.values()
    _precheck(c, u, e)
    return _quality_jit(kind, law_fn, params, c, q, u, e, max_steps)


def _infeasible_message(c, u, e, idx) -> str:
    if e is not None and pick(e, idx) * pick(u, idx) < 1.0:
        return (
            "infeasible: max_epochs * unique_tokens must allow at least one token; "
            f"got {pick(e, idx) * pick(u, idx):.6g}"
        )
    return (
        f"compute_flops = {pick(c, idx):.6g} is infeasible: it must buy at "
        "least one parameter trained on one token (C >= 6)"
    )


def _with_pool_axis(x, full):
    """``x`` of a batch shape broadcast to ``batch + (k,)`` (the same per pool)."""
    x = asfloat(x)
    lead = (1,) * (len(full) - 1 - x.ndim)
    return jnp.broadcast_to(jnp.reshape(x, (*lead, *x.shape, 1)), full)


def pools_optimal(
    law: str | Preset | data_constrained.DataConstrainedParams,
    compute_flops: ArrayLike,
    quality: ArrayLike,
    unique_tokens: ArrayLike,
    max_epochs: ArrayLike | None = None,
    *,
    max_steps: int = 48,
) -> AllocationResult:
    """The best of several data pools of different size and quality, per budget.

    For each pool ``i`` (``U_i`` unique tokens worth ``q_i`` reference tokens each)
    the data-constrained optimum of :func:`quality_optimal` is solved, all pools in
    one batch, and the pool with the lowest loss is kept. A small filtered pool wins
    at small budgets; once it would be repeated for many epochs a larger, rawer pool
    wins (the quality-quantity trade-off of Goyal et al. 2024, arXiv:2404.07177, here
    with Muennighoff et al. 2023's repetition discount). Differentiable in the
    constants, the budget and the pools' sizes and qualities (through the chosen
    pool).

    Pools are alternatives, not mixed. A mixture (say the filtered pool for a few
    epochs, then raw tokens) needs a model of the effective data and, for the
    excess-parameter term, the effective unique data of several pools each
    repeated a different number of times. Muennighoff's law defines these for one
    pool; Goyal et al.'s mixture law is fitted on image-text utility. jscale does
    not invent one.

    Args:
      law: the data-constrained law: a preset name (``"muennighoff2023"``), its
        :class:`~jscale.laws.Preset` or ``DataConstrainedParams`` (leaves may be
        arrays of the budgets' shape).
      compute_flops: training budgets C in FLOPs (> 0), shape ``batch``.
      quality: worth of one token of each pool in reference tokens (> 0), shape
        ``(..., k)`` with the pools on the last axis, broadcasting with
        ``batch + (k,)``.
      unique_tokens: unique tokens per pool (> 0), the same layout.
      max_epochs: optional cap on passes over each pool (> 0), scalar or the same
        layout.
      max_steps: the Newton step cap.

    Returns:
      An :class:`~jscale.allocation.AllocationResult` of shape ``batch`` for the
      chosen pool, with ``pool`` (its index on the last axis), ``epochs``,
      ``effective_tokens`` and the engine's diagnostics; ``status`` is INFEASIBLE
      only where no pool is feasible.

    Raises:
      ValueError: for concrete invalid inputs, a law that is not data-constrained,
        or an element where no pool is feasible.

    Examples:
      >>> # 50B tokens worth 2x raw, against 2T raw tokens (Muennighoff 2023 law).
      >>> r = pools_optimal("muennighoff2023", [1e21, 1e24], [2.0, 1.0], [5e10, 2e12])
      >>> [int(i) for i in r.pool]
      [0, 1]
    """
    kind, law_fn, params = _resolve(law)
    if kind != "data-constrained":
        raise ValueError(
            "pools_optimal needs the data-constrained law (Muennighoff et al. 2023, "
            "e.g. 'muennighoff2023'): pools differ in size, which only it models"
        )
    c = _checks.check_positive("compute_flops", compute_flops)
    q = _checks.check_positive("quality", quality)
    u = _checks.check_positive("unique_tokens", unique_tokens)
    e = _check_optional("max_epochs", max_epochs)
    pools = {"quality": q, "unique_tokens": u}
    if e is not None:
        pools["max_epochs"] = e
    pool_shape = _checks.check_shapes(**pools)
    if not pool_shape:
        raise ValueError(
            "unique_tokens and quality need a trailing pool axis, e.g. "
            "unique_tokens=[5e10, 2e12], quality=[2.0, 1.0]"
        )
    leaves = jax.tree_util.tree_leaves(params)
    batch = _checks.check_shapes(
        compute_flops=c,
        pools=jnp.zeros(pool_shape[:-1], bool),
        params=jnp.zeros(batch_shape(*leaves), bool),
    )
    full = (*batch, pool_shape[-1])
    c_k = _with_pool_axis(c, full)
    params_k = jax.tree_util.tree_map(lambda v: _with_pool_axis(v, full), params)
    params_k, x = _normalized(
        params_k,
        {
            "compute_flops": c_k,
            "quality": jnp.broadcast_to(q, full),
            "unique_tokens": jnp.broadcast_to(u, full),
            "max_epochs": None if e is None else jnp.broadcast_to(e, full),
        },
    )
    c_k, q_k, u_k, e_k = x.values()
    _precheck(c_k, u_k, e_k, axis=-1)
    return _pools_jit(kind, law_fn, params_k, c_k, q_k, u_k, e_k, max_steps)


def _pools(kind, law_fn, params, c, q, u, e, max_steps) -> AllocationResult:
    """Every pool's optimum (pools on the last axis), then the best per element."""
    out = _quality(kind, law_fn, params, c, q, u, e, max_steps)
    ok = (out.status != INFEASIBLE) & (out.status != NONFINITE)
    best = jnp.argmin(jnp.where(ok, out.loss, jnp.inf), axis=-1)

    def pick(v):
        return jnp.take_along_axis(v, best[..., None], axis=-1)[..., 0]

    chosen = jax.tree_util.tree_map(pick, out)
    any_ok = jnp.any(ok, axis=-1)
    chosen = _flag_invalid(chosen, any_ok)
    return chosen._replace(pool=jnp.where(any_ok, best, -1).astype(jnp.int32))


_pools_jit = jax.jit(_pools, static_argnums=(0, 1, 7))
