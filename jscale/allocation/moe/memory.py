"""The memory an MoE plan needs: its weights and the KV cache, at a number format.

Memory is ``memory_bytes`` (or ``memory_gb x 1e9 x devices`` in the front doors;
decimal GB as in the vendors' datasheets and :mod:`jscale.accounting`): the weights
and the KV cache for ``context`` tokens, both at ``precision`` (Ludziejewski 2025,
Table 2: bfloat16 for both, 16k cached tokens). Optimizer state and activations are
not counted (the plan must fit for serving; see
:func:`jscale.accounting.training_memory` for training state). The solvers work
with the cap in values, ``log(memory_bytes / bytes_per_value)``.
"""

from __future__ import annotations

import jax.numpy as jnp

from ... import _checks, accounting
from ._shared import _at

#: ``log`` of the memory cap (in values) used where there is none: e^80 = 5.5e34
#: values never binds and stays finite in float32.
_LOG_NO_CAP = 80.0
#: KV-cache tokens assumed by default (Ludziejewski 2025, Table 2: "16k tokens").
DEFAULT_CONTEXT = 16384.0


def _bytes_per_value(precision) -> float:
    """Bytes of one weight or cached value at a number format (static)."""
    return float(accounting.get_precision(precision).bytes_per_value)


def _log_cap(valid, memory, bytes_per_value, dtype):
    """``log`` of the memory cap in values (:data:`_LOG_NO_CAP` without one)."""
    if memory is None:
        return jnp.full(valid.shape, _LOG_NO_CAP, dtype)
    safe = jnp.where(valid, memory, 1.0)
    return jnp.log(safe / bytes_per_value).astype(dtype)


def _log_term(valid, x, scale):
    """``log(scale x)`` where ``x > 0``, ``-inf`` (an absent term) where ``x == 0``.

    Double ``where`` so the gradient stays finite (zero) for ``x == 0`` (no KV
    cache).
    """
    pos = valid & (x > 0)
    return jnp.where(pos, jnp.log(scale * jnp.where(pos, x, 1.0)), -jnp.inf)


def memory_cap(memory_bytes=None, memory_gb=None, devices=1.0):
    """The cap in bytes: ``memory_bytes x devices`` or ``memory_gb x 1e9 x devices``.

    ``None`` when neither is given (no memory constraint). ``memory_gb`` is the
    front doors' unit (``--memory-gb``); the library speaks bytes.
    """
    if memory_bytes is not None and memory_gb is not None:
        raise ValueError("give memory_bytes or memory_gb, not both")
    if memory_bytes is None and memory_gb is None:
        return None
    if memory_gb is not None:
        memory = _checks.check_positive("memory_gb", memory_gb) * 1e9
    else:
        memory = _checks.check_positive("memory_bytes", memory_bytes)
    return memory * _checks.check_positive("devices", devices)


def _memory_message(memory, need):
    return lambda i: (
        f"memory_bytes = {_at(memory, i):.6g} is infeasible: the smallest model "
        f"(d_model = 64, one block) {need(i)}"
    )
