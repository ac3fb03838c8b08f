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

from ... import _checks

#: KV-cache tokens assumed by default (Ludziejewski 2025, Table 2: "16k tokens").
DEFAULT_CONTEXT = 16384.0


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
