"""The compute-optimal model of any law of ``(N, D)`` under a training budget."""

from __future__ import annotations

from collections.abc import Callable

from jax.typing import ArrayLike

from ._common import POSITIVE, prepare
from .engine import budget_scenario, log_loss_of
from .results import AllocationResult


def dense_optimal(
    law: Callable,
    params,
    compute_flops: ArrayLike,
    *args: ArrayLike,
    num_grid: int = 16,
    max_steps: int = 48,
) -> AllocationResult:
    """Minimize ``L(N, D)`` subject to ``6 N D = C``, for any two-input law.

    ``D = C / (6 N)`` eliminates the budget; the loss along the isoFLOP line is
    minimized in ``log N`` by :func:`jscale._solver.minimize_scalar` (a scan of
    ``dL/dlog N`` over ``num_grid`` points and closed-form seeds where the law has
    them, the lowest local minimum, then safeguarded Newton). The Chinchilla form
    (Hoffmann 2022 Eq. 4) and Kaplan's joint law seed the scan with their closed
    forms, so those converge in a step or two; any other law is scanned. ``N`` is
    searched in ``[1, C/6]`` (at least one token); an optimum at either end is
    flagged ``AT_BOUND``. Differentiable in ``params`` and ``compute_flops``.

    Args:
      law: the loss, ``law(params, n_params, n_tokens, *args)`` (hashable: a
        module-level function such as :func:`jscale.laws.chinchilla.loss`).
      params: the law's constants (leaves broadcast against the budgets).
      compute_flops: budgets C in FLOPs (> 0).
      *args: further positive inputs of ``law`` (e.g. unique tokens).
      num_grid, max_steps: scan points and the Newton step cap.

    Returns:
      An :class:`AllocationResult` with iterations, gradient norm and violation.

    Examples:
      >>> from jscale.laws import kaplan
      >>> from jscale.allocation import kaplan_optimal
      >>> r = dense_optimal(kaplan.loss, kaplan.KAPLAN2020.params, 1e21)
      >>> r0 = kaplan_optimal(kaplan.KAPLAN2020.params, 1e21)
      >>> abs(float(r.n_params / r0.n_params) - 1) < 1e-4
      True
    """
    inputs = {"compute_flops": (compute_flops, POSITIVE)}
    inputs |= {f"args[{i}]": (a, POSITIVE) for i, a in enumerate(args)}
    log_loss, hint = log_loss_of(law)
    return budget_scenario(
        log_loss,
        hint,
        prepare(params, inputs),
        inference=False,
        num_grid=num_grid,
        max_steps=max_steps,
    )
