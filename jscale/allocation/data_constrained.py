"""Compute-optimal allocation with limited unique data (Muennighoff et al. 2023)."""

from __future__ import annotations

import jax.numpy as jnp
from jax.typing import ArrayLike

from ..laws import data_constrained
from ._common import LOG6, POSITIVE, pick, prepare, raise_if_infeasible
from .engine import DCWithCap, budget_scenario, dc_log_loss
from .results import AllocationResult


def dc_scenario(
    params, compute_flops, unique_tokens, max_epochs, *, max_steps: int
) -> AllocationResult:
    """:func:`data_constrained_optimal` without its eager infeasibility error."""
    capped = max_epochs is not None
    inputs = {
        "compute_flops": (compute_flops, POSITIVE),
        "unique_tokens": (unique_tokens, POSITIVE),
    }
    if capped:
        inputs["max_epochs"] = (max_epochs, POSITIVE)

    def x_floor(log_c, log_extra):
        # At most max_epochs passes: D <= e U, so N >= C / (6 e U).
        log_u, log_e = log_extra
        return log_c - LOG6 - log_u - log_e

    def epochs_of(log_d, log_extra):
        cap = jnp.exp(log_extra[1]) if capped else jnp.inf
        return jnp.exp(log_d - log_extra[0]), cap

    return budget_scenario(
        DCWithCap() if capped else dc_log_loss,
        "data-constrained-cap" if capped else "data-constrained",
        prepare(params, inputs),
        inference=False,
        num_grid=0,
        max_steps=max_steps,
        x_floor=x_floor if capped else None,
        epochs_of=epochs_of,
    )


def data_constrained_optimal(
    params: data_constrained.DataConstrainedParams,
    compute_flops: ArrayLike,
    unique_tokens: ArrayLike,
    max_epochs: ArrayLike | None = None,
    *,
    max_steps: int = 48,
) -> AllocationResult:
    """Compute-optimal N and D with ``U`` unique tokens (Muennighoff et al. 2023).

    Minimizes the data-constrained loss (effective data and parameters, Sec. 3;
    see :mod:`jscale.laws.data_constrained`) along ``6 N D = C``, optionally with
    at most ``max_epochs`` passes over the unique data (``D <= epochs U``, a
    lower bound on ``log N`` along the isoFLOP line). The law's three kinks along
    the line (``D = U``, ``N = N_opt(D)`` and ``N = N_opt(U)``) are scan points,
    so Newton works on smooth pieces only and an optimum sitting on a kink is
    returned exactly; of several local minima the lowest is kept.
    Differentiable in ``params``, the budget, ``U`` and the epoch cap.

    Args:
      params: the law's constants.
      compute_flops: budgets C in FLOPs (> 0).
      unique_tokens: unique tokens U available (> 0).
      max_epochs: optional cap on ``D / U`` (> 0), broadcastable.
      max_steps: the Newton step cap.

    Returns:
      An :class:`AllocationResult` with ``epochs = D / U``.

    Raises:
      ValueError: for concrete invalid inputs (naming them) or an infeasible
        configuration (fewer than one token allowed in total).

    Examples:
      >>> from jscale.laws import data_constrained as dc
      >>> r = data_constrained_optimal(dc.MUENNIGHOFF2023.params, 1e22, 1e10)
      >>> round(float(r.epochs), 1)
      27.2
      >>> r = data_constrained_optimal(dc.MUENNIGHOFF2023.params, 1e22, 1e10, 4.0)
      >>> round(float(r.epochs), 4)
      4.0
    """
    out = dc_scenario(
        params, compute_flops, unique_tokens, max_epochs, max_steps=max_steps
    )
    raise_if_infeasible(
        out.status,
        lambda idx: (
            "infeasible: max_epochs * unique_tokens must allow at least one token; "
            f"got {pick(max_epochs, idx) * pick(unique_tokens, idx):.6g}"
        ),
    )
    return out
