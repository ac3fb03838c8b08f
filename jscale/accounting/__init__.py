"""FLOPs, memory, energy and money: what a training or serving run costs.

Layers, each a set of pure, elementwise functions of arrays (safe under
``jax.jit``, ``jax.vmap`` and ``jax.grad``), one module per concept:

* :mod:`~jscale.accounting.flops`: the ``C = 6ND`` rule (Kaplan et al. 2020,
  "Scaling Laws for Neural Language Models", arXiv:2001.08361, Sec. 2.1; Hoffmann
  et al. 2022, "Training Compute-Optimal Large Language Models", arXiv:2203.15556,
  Sec. 3.3), inference FLOPs, and FLOPs to and from device-hours.
* :mod:`~jscale.accounting.transformer`: the two detailed per-token counts from a
  :class:`TransformerShape`, Kaplan's Table 1 and Hoffmann's App. F.
* :mod:`~jscale.accounting.memory`: weights, gradients, optimizer state and fp32
  master weights (Rajbhandari et al. 2020, "ZeRO: Memory Optimizations Toward
  Training Trillion Parameter Models", arXiv:1910.02054, Sec. 3.1), and the KV
  cache, in bytes.
* :mod:`~jscale.accounting.hardware`: dense peak FLOP/s per number format from
  vendor datasheets (:data:`HARDWARE`) and the number formats (:data:`PRECISIONS`).
* :mod:`~jscale.accounting.energy` and :mod:`~jscale.accounting.cost`: joules, kWh
  and dollars, in both directions, and a one-call :func:`budget` for a fleet.
* :mod:`~jscale.accounting.units`: hours, kWh and PF-days.

Conventions. Sizes are floats (3e9 tokens overflow int32); the dtype of a result
follows its array inputs. Hardware and precision (a number format) are *static*:
give a name (or a :class:`Hardware` / :class:`Precision` object) and it is resolved
in Python before any tracing, so wrap calls as ``jax.jit(lambda h:
device_hours_to_flops(h, "h100-sxm"))``. Concrete bad values raise ``ValueError``
naming the argument, its valid range and the offending value; under ``jax.jit`` bad
elements come back NaN.

Every peak figure is the **dense** one. NVIDIA's datasheets print Tensor Core
throughput "with sparsity" (2:4 structured sparsity), twice the dense rate a
training run can reach; the presets hold half of those figures.
"""

from __future__ import annotations

from .cost import ComputeBudget, budget, cost_to_flops, cost_usd
from .energy import energy_joules, energy_to_flops, tokens_per_joule
from .flops import (
    backward_flops_per_token,
    device_flops_per_second,
    device_hours_to_flops,
    flops_to_device_hours,
    forward_flops_per_token,
    inference_flops_per_token,
    training_flops,
)
from .hardware import (
    HARDWARE,
    PRECISIONS,
    Hardware,
    Precision,
    get_hardware,
    get_precision,
)
from .memory import (
    OPTIMIZER_STATES,
    TrainingMemory,
    kv_cache_bytes,
    training_memory_bytes,
    weights_memory_bytes,
)
from .transformer import (
    TransformerShape,
    forward_flops_per_token_from_shape,
    params_from_shape,
    training_flops_from_shape,
)
from .units import (
    FLOPS_PER_PF_DAY,
    JOULES_PER_KWH,
    SECONDS_PER_HOUR,
    flops_to_pf_days,
    joules_to_kwh,
    kwh_to_joules,
    pf_days_to_flops,
)

# alias: old name, callers outside accounting still use it
weights_memory = weights_memory_bytes
# alias: old name, callers outside accounting still use it
training_memory = training_memory_bytes

__all__ = [
    "FLOPS_PER_PF_DAY",
    "HARDWARE",
    "JOULES_PER_KWH",
    "OPTIMIZER_STATES",
    "PRECISIONS",
    "SECONDS_PER_HOUR",
    "ComputeBudget",
    "Hardware",
    "Precision",
    "TrainingMemory",
    "TransformerShape",
    "backward_flops_per_token",
    "budget",
    "cost_to_flops",
    "cost_usd",
    "device_flops_per_second",
    "device_hours_to_flops",
    "energy_joules",
    "energy_to_flops",
    "flops_to_device_hours",
    "flops_to_pf_days",
    "forward_flops_per_token",
    "forward_flops_per_token_from_shape",
    "get_hardware",
    "get_precision",
    "inference_flops_per_token",
    "joules_to_kwh",
    "kv_cache_bytes",
    "kwh_to_joules",
    "params_from_shape",
    "pf_days_to_flops",
    "tokens_per_joule",
    "training_flops",
    "training_flops_from_shape",
    "training_memory",
    "training_memory_bytes",
    "weights_memory",
    "weights_memory_bytes",
]
