"""The result of an allocation, and its one conversion to a row (table, JSON, CSV)."""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import numpy as np

from .. import _status


class AllocationResult(NamedTuple):
    """A compute-optimal allocation, elementwise over budgets.

    Three groups of fields (:data:`CORE_FIELDS`, :data:`DIAGNOSTIC_FIELDS`,
    :data:`SCENARIO_FIELDS`): the core every scenario fills (``n_params``,
    ``n_tokens``, ``loss``, ``compute_flops``, ``status``); the solver's
    diagnostics (``None`` for closed forms); and the scenario parts, ``None``
    except where the scenario gives them a meaning. A ``None`` field is no leaf of
    the pytree, so it exists nowhere downstream: not under ``jax.jit`` or
    ``vmap``, not in :func:`to_row`, not in the columns that
    :func:`jscale.sweep.sweep` and :mod:`jscale.montecarlo` name after the
    fields. (The parts stay flat fields, not a nested ``details`` tuple, because
    those column names, ``epochs`` rather than ``details.epochs``, are read by
    other programs.)

    Attributes:
      n_params: parameters N.
      n_tokens: training tokens D.
      loss: the law's predicted loss at (N, D).
      compute_flops: the training compute ``6 N D``.
      status: int32 codes, 0 when the element is valid (see :data:`STATUS_MESSAGES`).
      iterations: solver iterations (``None`` for closed forms).
      grad_norm: the (projected) derivative of the objective with respect to the
        decision variable in log space at the solution (``None`` for closed forms).
      violation: the largest relative violation of a constraint (0 when every
        constraint holds; ``None`` for closed forms).
      epochs: ``D / U`` passes over the unique data (data-constrained scenarios).
      inference_flops: ``2 N D_inf`` (inference-aware scenarios).
      lifetime_flops: ``6 N D + 2 N D_inf`` (inference-aware scenarios).
      cost_usd: lifetime cost in dollars (the cost scenario).
      n_total_params: total parameters of a mixture of experts (``n_params`` is
        then the active parameters a token uses).
      experts: experts per routed layer (MoE scenarios).
      granularity: expert granularity G (fine-grained MoE, Krajewski 2024).
      memory_bytes: accelerator memory the plan needs (weights plus KV cache).
      bits: training precision in bits (the precision scenario).
      effective_tokens: tokens after quality and repetition discounts.
      pool: index of the chosen data pool (the data-quality scenario).
      samples: samples drawn per query (the test-time scenario).
      coverage: the probability that at least one sample solves a query.
      energy_joules: lifetime energy (the planner's energy objective).
      binding: int32 mask of the constraints active at the optimum (composed
        plans; :func:`jscale.allocation.binding_names` reads it).
      shadow_prices: dict, resource name -> the derivative of the optimal
        objective per unit of that resource (composed plans): the loss in budget
        mode, the log of the cost with a target.
    """

    n_params: jax.Array
    n_tokens: jax.Array
    loss: jax.Array
    compute_flops: jax.Array
    status: jax.Array
    iterations: jax.Array | None = None
    grad_norm: jax.Array | None = None
    violation: jax.Array | None = None
    epochs: jax.Array | None = None
    inference_flops: jax.Array | None = None
    lifetime_flops: jax.Array | None = None
    cost_usd: jax.Array | None = None
    n_total_params: jax.Array | None = None
    experts: jax.Array | None = None
    granularity: jax.Array | None = None
    memory_bytes: jax.Array | None = None
    bits: jax.Array | None = None
    effective_tokens: jax.Array | None = None
    pool: jax.Array | None = None
    samples: jax.Array | None = None
    coverage: jax.Array | None = None
    energy_joules: jax.Array | None = None
    binding: jax.Array | None = None
    shadow_prices: dict | None = None

    @property
    def tokens_per_param(self) -> jax.Array:
        """D / N."""
        return self.n_tokens / self.n_params


#: The constraints of a composed plan, in the order of the bits of ``binding``.
BINDING = (
    "compute",
    "training_cap",
    "max_epochs",
    "memory",
    "n_max",
    "n_min",
    "decision_max",
    "decision_min",
    "target_loss",
)

#: The fields every allocation fills.
CORE_FIELDS = ("n_params", "n_tokens", "loss", "compute_flops", "status")
#: The solver's diagnostics (``None`` for closed forms; not in rows).
DIAGNOSTIC_FIELDS = ("iterations", "grad_norm", "violation")
#: Scenario parts, set only where the scenario gives them a meaning; a row
#: reports those that are set, in this order.
SCENARIO_FIELDS = (
    "epochs",
    "inference_flops",
    "lifetime_flops",
    "cost_usd",
    "n_total_params",
    "experts",
    "granularity",
    "memory_bytes",
    "bits",
    "effective_tokens",
    "pool",
    "samples",
    "coverage",
    "energy_joules",
)


def binding_names(mask) -> list[str]:
    """The names of the constraints set in one element of a ``binding`` mask."""
    m = int(np.asarray(mask))
    return [name for i, name in enumerate(BINDING) if m >> i & 1]


def _number(x) -> float | None:
    """A JSON-ready float: NaN and infinities become ``None``."""
    value = float(np.asarray(x))
    return value if math.isfinite(value) else None


def to_row(result: AllocationResult, index: tuple[int, ...] = ()) -> dict:
    """One element of ``result`` as a flat dict of plain Python values.

    The one conversion from an allocation to a row of a table, a JSON object or a
    CSV line: ``n_params``, ``n_tokens``, ``tokens_per_param``, ``loss``,
    ``compute_flops``, then every scenario field the result carries (``epochs``,
    ``lifetime_flops``, ``n_total_params``, ...), then ``status`` (the short name
    of :mod:`jscale._status`) and ``status_code``. For a mixture of experts
    ``n_params`` holds the active parameters and is repeated as
    ``n_active_params``. Non-finite numbers become ``None``. Solver diagnostics
    (``iterations``, ``grad_norm``, ``violation``) are left out.

    Args:
      result: an allocation, of any batch shape.
      index: the element to convert (``()`` for a scalar result).

    >>> from jscale import allocation, laws
    >>> r = allocation.optimal(laws.get("chinchilla-hoffmann2022"), 1e24)
    >>> row = allocation.to_row(r)
    >>> round(row["n_params"] / 1e9, 1), row["status"], row["status_code"]
    (41.3, 'converged', 0)
    """

    def at(x):
        return _number(np.asarray(x)[index])

    row = {
        "n_params": at(result.n_params),
        "n_tokens": at(result.n_tokens),
        "tokens_per_param": at(result.tokens_per_param),
        "loss": at(result.loss),
        "compute_flops": at(result.compute_flops),
    }
    if result.n_total_params is not None:
        row["n_active_params"] = row["n_params"]
    for name in SCENARIO_FIELDS:
        value = getattr(result, name)
        if value is not None:
            row[name] = at(value)
    if result.binding is not None:
        row["binding"] = binding_names(np.asarray(result.binding)[index])
    if result.shadow_prices is not None:
        row["shadow_prices"] = {k: at(v) for k, v in result.shadow_prices.items()}
    row.update(_status.as_json(np.asarray(result.status)[index]))
    return row
