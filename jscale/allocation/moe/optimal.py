"""The front door of the MoE scenarios: :func:`moe_optimal` dispatches on the law's
family to :func:`.joint_moe_optimal`, :func:`.fine_grained_moe_optimal` or
:func:`.routed_moe_optimal`."""

from __future__ import annotations

from jax.typing import ArrayLike

from ... import _checks, accounting
from ...laws import Preset
from ...laws import moe as moe_laws
from ..results import AllocationResult
from .fine_grained import fine_grained_moe_optimal
from .joint import joint_moe_optimal
from .memory import DEFAULT_CONTEXT, memory_cap
from .routed import CLARK_TOKENS, routed_moe_optimal

_FAMILIES = {
    moe_laws.JOINT_FAMILY.name: "joint",
    moe_laws.KRAJEWSKI_FAMILY.name: "fine-grained",
    moe_laws.CLARK_FAMILY.name: "routed",
}


def moe_optimal(
    law: str | Preset,
    compute_flops: ArrayLike,
    *,
    experts: ArrayLike | None = None,
    max_experts: ArrayLike | None = None,
    granularity: ArrayLike | None = None,
    memory_bytes: ArrayLike | None = None,
    devices: ArrayLike = 1.0,
    precision: str | accounting.Precision = "bf16",
    context: ArrayLike = DEFAULT_CONTEXT,
    n_tokens: ArrayLike | None = None,
    memory_gb: ArrayLike | None = None,
) -> AllocationResult:
    """The optimal mixture of experts for a named MoE law: one front door.

    Dispatches on the law's family:

    - ``moe-ludziejewski2025`` (joint law): :func:`joint_moe_optimal`, deciding
      active parameters, experts and tokens.
    - ``moe-krajewski2024`` (fine-grained): :func:`fine_grained_moe_optimal`,
      deciding parameters, granularity and tokens at expansion rate 64;
      ``experts`` fixes the number of fine-grained experts ``64 G`` (so G),
      ``max_experts`` bounds it, ``granularity`` fixes G directly.
    - ``moe-clark2022-*`` (routed): :func:`routed_moe_optimal`, deciding N and E
      at ``n_tokens`` training tokens (default 130e9).

    Args:
      law: a preset name from :mod:`jscale.laws` or a
        :class:`~jscale.laws.Preset` of one of those families.
      compute_flops: training budgets C in FLOPs (> 0).
      experts: fix the experts per routed layer (>= 1).
      max_experts: bound them (default per family, :data:`DEFAULT_MAX_EXPERTS`).
      granularity: fix G (fine-grained law only).
      memory_bytes: accelerator memory per device in bytes; ``None`` (and no
        ``memory_gb``) for no memory constraint.
      devices: devices holding the model (> 0): the cap is ``memory_bytes x
        devices`` bytes.
      precision: number format of the weights and the KV cache.
      context: KV-cache tokens (>= 0; default 16384).
      n_tokens: training tokens (routed law only; default 130e9).
      memory_gb: the memory per device in GB (1e9 bytes, as vendors and
        :mod:`jscale.accounting` count) instead of ``memory_bytes``: the unit of
        the front doors (``optimal()``, ``--memory-gb``).

    Returns:
      An :class:`AllocationResult` with ``n_params`` (active parameters),
      ``n_total_params``, ``experts`` (and ``granularity`` for the fine-grained
      law), ``n_tokens``, ``loss``, ``compute_flops`` and ``memory_bytes``.

    Raises:
      ValueError: for a law without an MoE allocation, options the law does not
        take, invalid inputs or infeasible configurations.

    Examples:
      >>> r = moe_optimal("moe-ludziejewski2025", 1e23, memory_bytes=80e9)  # one H100
      >>> round(float(r.experts), 2), f"{float(r.n_total_params):.2g}"
      (3.16, '3.2e+10')
    """
    from ... import laws

    preset = laws.get(law) if isinstance(law, str) else law
    family = _FAMILIES.get(preset.family.name)
    if family is None:
        raise ValueError(
            f"no MoE allocation for law {preset.name!r} (family "
            f"{preset.family.name!r}); MoE families: {', '.join(sorted(_FAMILIES))}"
        )
    memory = memory_cap(memory_bytes, memory_gb, devices)
    common = {"memory_bytes": memory, "context": context, "precision": precision}
    if family != "routed" and n_tokens is not None:
        raise ValueError(
            f"n_tokens applies only to the routed (Clark 2022) laws, whose loss has "
            f"no token count; {preset.name!r} chooses the tokens itself"
        )
    if family != "fine-grained" and granularity is not None:
        raise ValueError(
            f"granularity applies only to the fine-grained law moe-krajewski2024; "
            f"{preset.name!r} has no granularity"
        )
    if family == "joint":
        return joint_moe_optimal(
            preset.params,
            compute_flops,
            experts=experts,
            max_experts=max_experts,
            **common,
        )
    if family == "routed":
        tokens = CLARK_TOKENS if n_tokens is None else n_tokens
        return routed_moe_optimal(
            preset.params,
            compute_flops,
            n_tokens=tokens,
            experts=experts,
            max_experts=max_experts,
            **common,
        )
    rate = 64.0
    if experts is not None and granularity is not None:
        raise ValueError("give experts (E G fine-grained experts) or granularity")
    # At least one full-size expert group: E G >= E (G >= 1).
    at_least_rate = {"lower": rate, "lower_inclusive": True}
    if experts is not None:
        granularity = _checks.check_range("experts", experts, **at_least_rate) / rate
    max_g = None
    if max_experts is not None:
        max_g = _checks.check_range("max_experts", max_experts, **at_least_rate) / rate
    return fine_grained_moe_optimal(
        preset.params,
        compute_flops,
        granularity=granularity,
        max_granularity=max_g,
        expansion_rate=rate,
        **common,
    )
