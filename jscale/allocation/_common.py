"""What every allocation scenario shares: status codes, the one input pass
(:func:`prepare`), the one result builder (:func:`assemble`) and the eager error.

Private to :mod:`jscale.allocation`; the scenario modules import from here, never
from each other's privates.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks, _status
from .._numerics import asfloat
from .results import AllocationResult

#: Per-element status codes of an allocation: the one table in jscale._status.
STATUS_MESSAGES = _status.MESSAGES
CONVERGED = _status.CONVERGED
MAX_STEPS = _status.MAX_STEPS
INFEASIBLE = _status.INFEASIBLE
NONFINITE = _status.NONFINITE
AT_BOUND = _status.AT_BOUND

#: ``log 6``: training FLOPs ``6 N D`` (Hoffmann et al. 2022, Sec. 3.3).
LOG6 = math.log(6.0)
#: Search ranges in log space: N in [1, 1e25] parameters, D in [1, 1e30] tokens.
LOG_N_MAX = math.log(1e25)
LOG_D_MAX = math.log(1e30)
#: Half-width of the scan-point pairs placed around kinks and warm starts.
KINK_DELTA = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-10}

#: Input rules (see :class:`jscale._checks.Range`); ``safe`` replaces an invalid
#: element so that logs stay finite where its outputs are flagged NaN.
POSITIVE = _checks.Range()
NONNEGATIVE = _checks.Range(lower_inclusive=True)
AT_LEAST_ONE = _checks.Range(lower=1.0, lower_inclusive=True)
FRACTION = _checks.Range(upper=1.0, upper_inclusive=True)
ANY_FINITE = _checks.Range(lower=None)


def batch_shape(*arrays) -> tuple[int, ...]:
    """The broadcast shape of ``arrays`` (anything with a shape, or numbers)."""
    return tuple(jnp.broadcast_shapes(*(jnp.shape(a) for a in arrays)))


def flat(tree, shape):
    """Every leaf as a float array broadcast to ``shape`` and flattened to 1-D."""
    size = math.prod(shape)
    return jax.tree_util.tree_map(
        lambda v: jnp.broadcast_to(asfloat(v), shape).reshape((size,)), tree
    )


def valid_log(valid, x):
    """``log x`` with invalid elements replaced by 0 (their outputs are flagged)."""
    return jnp.where(valid, jnp.log(jnp.where(valid, x, 1.0)), 0.0)


# ------------------------------------------------------------------- the input pass


def check(name: str, value, rule: _checks.Range) -> jax.Array:
    """:func:`jscale._checks.check_range`, with a NumPy fast path for good values.

    Concrete inputs are tested in NumPy (no JAX operation, so nothing to compile
    for a new shape); a failure, and every traced input, goes through
    ``check_range`` itself, which raises the standard message or passes tracers.
    """
    if value is None:
        return None
    if _checks.is_concrete(value):
        v = np.asarray(value)
        if np.issubdtype(v.dtype, np.number):
            if bool(np.all(_checks.in_range(v, **_bounds(rule)))):
                return asfloat(value)
    return _checks.check_range(name, value, **_bounds(rule))


def _bounds(rule: _checks.Range) -> dict:
    return {k: v for k, v in rule._asdict().items() if k != "safe"}


class Batch(NamedTuple):
    """Inputs ready for a kernel: one configuration per element of a flat axis.

    Attributes:
      shape: the batch shape the result takes (inputs and the law's constants
        broadcast together).
      params: the law's constants, every leaf of shape ``(size,)``.
      valid: ``(size,)`` mask of the configurations whose inputs are all valid.
      arrays: the inputs in the order given, shape ``(size,)`` and one dtype,
        invalid elements replaced by their rule's ``safe`` value; ``None`` for an
        absent optional input.
    """

    shape: tuple[int, ...]
    params: Any
    valid: jax.Array
    arrays: tuple


def prepare(params, inputs: Mapping[str, tuple[Any, _checks.Range]]) -> Batch:
    """Check, broadcast, flatten and sanitize a scenario's inputs: the one pass.

    ``inputs`` maps each public argument name to ``(value, rule)``; ``value`` may
    be ``None`` (an absent option). Concrete bad values raise ``ValueError``
    naming the argument (:func:`check`); shapes must broadcast with each other and
    with the law's constants (``ValueError`` naming them). Under ``jax.jit`` bad
    elements are masked instead (``valid``) and their outputs flagged by
    :func:`assemble`. Every array takes the dtype the inputs promote to (Python
    numbers are weak), so the result's dtype follows the inputs.
    """
    names = [k for k, (v, _) in inputs.items() if v is not None]
    arrays = {k: check(k, *inputs[k]) for k in names}
    _checks.check_shapes(**arrays)
    shape = batch_shape(*arrays.values(), *jax.tree_util.tree_leaves(params))
    rules = tuple(inputs[k][1] for k in names)
    p, valid, safe = _flatten(params, tuple(arrays.values()), shape, rules)
    by_name = dict(zip(names, safe, strict=True))
    return Batch(shape, p, valid, tuple(by_name.get(k) for k in inputs))


@partial(jax.jit, static_argnames=("shape", "rules"))
def _flatten(params, arrays, shape, rules):
    """Broadcast to ``shape``, flatten, mask and sanitize (one compiled step)."""
    p, arrays = flat((params, arrays), shape)
    dtype = jnp.result_type(*arrays, *jax.tree_util.tree_leaves(p))
    valid = jnp.ones((math.prod(shape),), bool)
    for rule, a in zip(rules, arrays, strict=True):
        valid = valid & _checks.in_range(a, **_bounds(rule))
    safe = tuple(
        jnp.where(valid, a, jnp.asarray(rule.safe, dtype)).astype(dtype)
        for rule, a in zip(rules, arrays, strict=True)
    )
    p = jax.tree_util.tree_map(lambda v: v.astype(dtype), p)
    return p, valid, safe


# ------------------------------------------------------------------ the result


def solver_status(converged, *finite) -> jax.Array:
    """``CONVERGED`` or ``MAX_STEPS``; ``NONFINITE`` where a value is not finite."""
    status = jnp.where(converged, CONVERGED, MAX_STEPS)
    ok = jnp.ones((), bool)
    for v in finite:
        ok = ok & jnp.all(jnp.isfinite(v))
    return jnp.where(ok, status, NONFINITE).astype(jnp.int32)


def assemble(
    status,
    n_params,
    n_tokens,
    loss,
    compute_flops,
    iterations=None,
    grad_norm=None,
    violation=None,
    *,
    valid=None,
    shape=None,
    **scenario,
) -> AllocationResult:
    """The one builder of an :class:`AllocationResult` from a kernel's outputs.

    ``status`` becomes ``INFEASIBLE`` where ``valid`` is False; wherever it is
    ``INFEASIBLE`` or ``NONFINITE`` every number (the scenario fields ``scenario``
    too, but not ``iterations`` and ``grad_norm``) is NaN. With ``shape``, flat
    kernel outputs are reshaped to the batch shape.
    """
    if valid is not None:
        status = jnp.where(valid, status, INFEASIBLE)
    status = status.astype(jnp.int32)
    bad = (status == INFEASIBLE) | (status == NONFINITE)
    n_params, n_tokens, loss, compute_flops = _checks.flag(
        ~bad, n_params, n_tokens, loss, compute_flops
    )
    if violation is not None:
        violation = _checks.flag(~bad, violation)[0]
    scenario = {k: _checks.flag(~bad, v)[0] for k, v in scenario.items()}
    out = AllocationResult(
        n_params,
        n_tokens,
        loss,
        compute_flops,
        status,
        iterations,
        grad_norm,
        violation,
        **scenario,
    )
    if shape is None:
        return out
    return jax.tree_util.tree_map(lambda v: v.reshape(shape), out)


# --------------------------------------------------------------- the eager error


def pick(x, idx) -> float:
    """Element ``idx`` (a batch index, ``()`` for a scalar) of ``x`` as a float."""
    x = np.asarray(x)
    return float(x[idx] if x.ndim else x)


def raise_if_infeasible(
    status, describe: Callable[[tuple], str], shape: tuple | None = None
) -> None:
    """Raise ``ValueError`` for the first concrete ``INFEASIBLE`` element.

    ``describe(idx)`` says why element ``idx`` (a batch index) is infeasible; the
    index is appended where the batch is not a scalar. Traced statuses pass.
    """
    if not _checks.is_concrete(status):
        return
    status = np.asarray(status)
    if shape is not None:
        status = status.reshape(shape)
    bad = np.argwhere(status == INFEASIBLE)
    if bad.shape[0] == 0:
        return
    idx = tuple(int(i) for i in bad[0])
    where = f" at index {idx}" if status.ndim else ""
    raise ValueError(describe(idx) + where)
