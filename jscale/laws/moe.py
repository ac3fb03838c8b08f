"""Mixture-of-experts (MoE) scaling laws: routed, fine-grained and joint active/total.

Four functional forms, each elementwise and safe under ``jax.jit``, ``jax.vmap`` and
``jax.grad``, one module per family (the formulas and constants are there):

- :mod:`~jscale.laws.moe_clark`: Clark et al. 2022, "Unified Scaling Laws for
  Routed Language Models" (arXiv:2202.01169): loss in the parameters one token
  uses and the experts per routed layer through the saturating expert count Ê
  (:func:`clark_loss`, :func:`saturating_experts`, :func:`log_expert_hat`,
  :func:`clark_effective_params`); presets ``"moe-clark2022-sbase"``, ``-rlr``,
  ``-hash``.
- :mod:`~jscale.laws.moe_krajewski`: Krajewski et al. 2024, "Scaling Laws for
  Fine-Grained Mixture of Experts" (arXiv:2402.07871): total parameters, tokens and
  granularity (:func:`krajewski_loss`, :func:`fine_grained_params`,
  :func:`fine_grained_flops`); presets ``"moe-krajewski2024"`` and
  ``"moe-krajewski2024-dense"``.
- :mod:`~jscale.laws.moe_ludziejewski`: Ludziejewski et al. 2025, "Joint MoE Scaling
  Laws: Mixture of Experts Can Be Memory Efficient" (arXiv:2502.05172): active
  parameters, tokens and experts with Clark's Ê (:func:`joint_loss`,
  :func:`joint_active_params`, :func:`joint_total_params`,
  :func:`joint_kv_cache_values`); preset ``"moe-ludziejewski2025"``.
- :mod:`~jscale.laws.moe_abnar`: Abnar et al. 2025, "Parameters vs FLOPs: Scaling
  Laws for Optimal Sparsity for Mixture-of-Experts Language Models"
  (arXiv:2501.12370): :func:`abnar_loss`, a family without a preset.

All losses are in nats per token. This module re-exports the four, so every name
stays reachable as ``jscale.laws.moe.<name>``.
"""

from __future__ import annotations

from .moe_abnar import ABNAR2025_FAMILY, AbnarParams, abnar_loss
from .moe_clark import (
    CLARK2022_HASH,
    CLARK2022_RLR,
    CLARK2022_SBASE,
    CLARK_FAMILY,
    ClarkParams,
    clark_cutoff_params,
    clark_effective_params,
    clark_loss,
    log_expert_hat,
    saturating_experts,
)
from .moe_clark import PRESETS as _CLARK_PRESETS
from .moe_krajewski import (
    KRAJEWSKI2024,
    KRAJEWSKI2024_DENSE,
    KRAJEWSKI_C_F,
    KRAJEWSKI_C_R,
    KRAJEWSKI_FAMILY,
    KrajewskiParams,
    fine_grained_flops,
    fine_grained_params,
    krajewski_loss,
)
from .moe_krajewski import PRESETS as _KRAJEWSKI_PRESETS
from .moe_ludziejewski import (
    JOINT_FAMILY,
    JOINT_VOCAB,
    JOINT_WIDTH_PER_BLOCK,
    LUDZIEJEWSKI2025,
    JointMoEParams,
    joint_active_params,
    joint_kv_cache_values,
    joint_loss,
    joint_total_params,
)
from .moe_ludziejewski import PRESETS as _LUDZIEJEWSKI_PRESETS

#: Every MoE preset, by name.
PRESETS = {**_CLARK_PRESETS, **_KRAJEWSKI_PRESETS, **_LUDZIEJEWSKI_PRESETS}

__all__ = [
    "ABNAR2025_FAMILY",
    "CLARK2022_HASH",
    "CLARK2022_RLR",
    "CLARK2022_SBASE",
    "CLARK_FAMILY",
    "JOINT_FAMILY",
    "JOINT_VOCAB",
    "JOINT_WIDTH_PER_BLOCK",
    "KRAJEWSKI2024",
    "KRAJEWSKI2024_DENSE",
    "KRAJEWSKI_C_F",
    "KRAJEWSKI_C_R",
    "KRAJEWSKI_FAMILY",
    "LUDZIEJEWSKI2025",
    "PRESETS",
    "AbnarParams",
    "ClarkParams",
    "JointMoEParams",
    "KrajewskiParams",
    "abnar_loss",
    "clark_cutoff_params",
    "clark_effective_params",
    "clark_loss",
    "fine_grained_flops",
    "fine_grained_params",
    "joint_active_params",
    "joint_kv_cache_values",
    "joint_loss",
    "joint_total_params",
    "krajewski_loss",
    "log_expert_hat",
    "saturating_experts",
]
