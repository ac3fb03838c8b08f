"""Memory in bytes: weights, training state (gradients, optimizer, master), KV cache.

Weights, gradients, optimizer state and fp32 master weights follow Rajbhandari et
al. 2020, "ZeRO: Memory Optimizations Toward Training Trillion Parameter Models"
(arXiv:1910.02054), Sec. 3.1. Every size is in bytes; the number format is a
``precision`` name from :data:`~jscale.accounting.PRECISIONS` (static).
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import NamedTuple

import jax
from jax.typing import ArrayLike

from .. import _checks
from .hardware import Precision, get_precision


class TrainingMemory(NamedTuple):
    """Bytes held per model replica during training (activations not included).

    Attributes:
      weights: the weights in the training precision.
      gradients: the gradients, in the training precision.
      optimizer_state: optimizer moments, in fp32.
      master_weights: the fp32 copy of the weights kept by mixed-precision training
        (zero when the training precision is already 32-bit or it is turned off).
      total: the sum.
    """

    weights: jax.Array
    gradients: jax.Array
    optimizer_state: jax.Array
    master_weights: jax.Array
    total: jax.Array


#: fp32 values of optimizer state per parameter: Adam keeps the first and second
#: moments (ZeRO, Sec. 3.1), SGD with momentum one buffer, plain SGD none.
OPTIMIZER_STATES: Mapping[str, int] = types.MappingProxyType(
    {"adam": 2, "adamw": 2, "momentum": 1, "sgd": 0}
)


def weights_memory_bytes(
    n_params: ArrayLike, precision: str | Precision = "bf16"
) -> jax.Array:
    """Bytes to hold the weights, ``N * bytes_per_value``.

    Args:
      n_params: parameters N (> 0).
      precision: a name from :data:`PRECISIONS` or a :class:`Precision` (static).

    Returns:
      Bytes, the shape of ``n_params``; NaN for bad elements under jit.

    Raises:
      ValueError: for bad N or an unknown precision.

    Examples:
      >>> from jscale import accounting
      >>> round(float(accounting.weights_memory_bytes(70e9, "int4")) / 1e9, 3)  # GB
      35.0
    """
    p = get_precision(precision)
    valid, (n,) = _checks.prepare(n_params=n_params)
    return _checks.masked(valid, n * p.bytes_per_value)


def training_memory_bytes(
    n_params: ArrayLike,
    precision: str | Precision = "bf16",
    optimizer: str = "adam",
    master_weights: bool = True,
) -> TrainingMemory:
    """Bytes of model state for training: weights, gradients, optimizer, master copy.

    Mixed-precision Adam holds 2 + 2 bytes per parameter for 16-bit weights and
    gradients and 4 + 4 + 4 for the fp32 master weights, momentum and variance:
    16 bytes per parameter (Rajbhandari et al. 2020, ZeRO, Sec. 3.1: "2Ψ + 2Ψ + KΨ =
    16Ψ bytes", K = 12). Activations, temporary buffers and fragmentation (ZeRO's
    "residual states") are not counted; nor is sharding (divide by the data-parallel
    degree for ZeRO stage 3).

    Args:
      n_params: parameters N (> 0).
      precision: training precision of weights and gradients (static).
      optimizer: one of :data:`OPTIMIZER_STATES` (static); moments are fp32.
      master_weights: keep an fp32 copy of the weights when training in fewer than
        32 bits (static).

    Returns:
      A :class:`TrainingMemory` of arrays in bytes, the shape of ``n_params``.

    Raises:
      ValueError: for bad N, an unknown precision or optimizer.

    Examples:
      >>> from jscale import accounting
      >>> m = accounting.training_memory_bytes(1.5e9)  # GPT-2 XL, ZeRO Sec. 3.1
      >>> float(m.total) / 1e9  # GB
      24.0
    """
    p = get_precision(precision)
    _checks.check_choice("optimizer", optimizer, OPTIMIZER_STATES)
    valid, (n,) = _checks.prepare(n_params=n_params)
    weights = n * p.bytes_per_value
    gradients = n * p.bytes_per_value
    state = n * (4.0 * OPTIMIZER_STATES[optimizer])
    master = n * (4.0 if (master_weights and p.bits < 32) else 0.0)
    total = weights + gradients + state + master
    return _checks.masked(
        valid, TrainingMemory(weights, gradients, state, master, total)
    )


def kv_cache_bytes(
    n_layers: ArrayLike,
    d_model: ArrayLike,
    context: ArrayLike,
    batch: ArrayLike = 1,
    precision: str | Precision = "bf16",
) -> jax.Array:
    """Bytes of the key/value cache: ``2 n_layers d_model context batch`` values.

    One key and one value vector of width ``d_model`` per layer and cached token
    (as in Ludziejewski et al. 2025, arXiv:2502.05172: "2 T n_blocks d_model"
    values). For grouped- or multi-query attention pass the K/V width
    ``n_kv_heads * d_head`` as ``d_model``.

    Args:
      n_layers: layers (> 0).
      d_model: K/V width per layer (> 0).
      context: cached tokens per sequence (> 0).
      batch: sequences (> 0).
      precision: precision of the cache (static).

    Returns:
      Bytes with the broadcast shape; NaN for bad elements under jit.

    Raises:
      ValueError: for bad values, shapes that do not broadcast, unknown precision.

    Examples:
      >>> from jscale import accounting
      >>> float(accounting.kv_cache_bytes(32, 4096, 4096)) / 2**30  # GiB
      2.0
    """
    p = get_precision(precision)
    valid, (layers, width, ctx, b) = _checks.prepare(
        n_layers=n_layers, d_model=d_model, context=context, batch=batch
    )
    return _checks.masked(valid, 2.0 * layers * width * ctx * b * p.bytes_per_value)
