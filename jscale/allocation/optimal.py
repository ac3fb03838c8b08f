"""``optimal``: one front door to every allocation scenario, by law and options."""

from __future__ import annotations

from jax.typing import ArrayLike

from .. import accounting
from ..laws import Preset, chinchilla, data_constrained, kaplan
from ..laws import precision as precision_law
from .closed_forms import chinchilla_optimal, kaplan_optimal
from .data_constrained import data_constrained_optimal
from .dense import dense_optimal
from .inference import inference_budget_optimal, inference_target_optimal
from .moe import moe_optimal
from .precision import precision_optimal
from .quality import quality_optimal
from .results import AllocationResult

#: The discrete training-precision menu of Kumar et al. 2024's study (Sec. 4.3).
PRECISION_MENU = ("bf16", "fp8", "int4")


def _training_bits(precision) -> dict:
    """``precision_optimal`` keywords for a training-precision option: ``None`` or
    ``"auto"`` (a decision), ``"menu"`` or a tuple of names (a choice among them),
    a number format's name or a number of bits (fixed)."""
    if precision is None or precision == "auto":
        return {}
    if precision == "menu":
        return {"menu": PRECISION_MENU}
    if isinstance(precision, (tuple, list)):
        return {"menu": tuple(precision)}
    if isinstance(precision, str):
        try:
            return {"bits": float(precision)}
        except ValueError:
            return {"bits": float(accounting.get_precision(precision).bits)}
    return {"bits": precision}


def _refuse(name: str, value, why: str) -> None:
    if value is not None:
        raise ValueError(f"{name} {why}")


def optimal(
    law: str | Preset,
    compute_flops: ArrayLike | None = None,
    *,
    unique_tokens: ArrayLike | None = None,
    max_epochs: ArrayLike | None = None,
    inference_tokens: ArrayLike | None = None,
    target_loss: ArrayLike | None = None,
    quality: ArrayLike | None = None,
    experts: ArrayLike | None = None,
    max_experts: ArrayLike | None = None,
    memory_gb: ArrayLike | None = None,
    devices: ArrayLike = 1.0,
    precision: str | float | tuple | None = None,
    memory_bytes: ArrayLike | None = None,
    training_bits: str | float | tuple | None = None,
) -> AllocationResult:
    """The optimal allocation for a named law, in the scenario the options select.

    - ``compute_flops`` alone: minimize the loss under ``C = 6 N D``. Chinchilla-form
      laws use the closed form (:func:`chinchilla_optimal`), Kaplan's joint law its
      own (:func:`kaplan_optimal`), any other two-input law :func:`dense_optimal`.
    - ``unique_tokens`` (data-constrained laws, Muennighoff et al. 2023): at most
      ``U`` unique tokens, optionally at most ``max_epochs`` passes
      (:func:`data_constrained_optimal`); without it the law reduces to its
      Chinchilla form.
    - ``inference_tokens`` with ``compute_flops``: ``compute_flops`` is the lifetime
      budget for training plus ``2 N`` FLOPs per inference token
      (:func:`inference_budget_optimal`).
    - ``target_loss`` (with optional ``inference_tokens``, default 0): the least
      lifetime FLOPs reaching the target (:func:`inference_target_optimal`);
      ``compute_flops`` must then be omitted.
    - ``quality``: each token is worth ``q`` reference tokens
      (:func:`~jscale.allocation.quality_optimal`), with or without
      ``unique_tokens``.
    - MoE laws (``moe-*`` presets): active parameters, experts (and granularity)
      and tokens (:func:`~jscale.allocation.moe_optimal`); ``experts`` fixes E,
      ``max_experts`` bounds it, ``memory_gb`` (or ``memory_bytes``) x ``devices``
      caps the memory of the weights plus the KV cache at the number format
      ``precision`` (default ``"bf16"``).
    - The precision law (``precision-kumar2024``): the training precision is a
      decision (:func:`~jscale.allocation.precision_optimal`):
      ``training_bits=None`` or ``"auto"`` chooses continuous bits, ``"menu"``
      the best of BF16 / FP8 / INT4 (or give a tuple of names), a name
      (``"fp8"``) or a number of bits fixes it. ``precision=`` takes the same
      values for this law (its name before ``training_bits``).

    Args:
      law: a preset name from :mod:`jscale.laws` or a :class:`~jscale.laws.Preset`.
      compute_flops: budgets C in FLOPs (> 0).
      unique_tokens: unique tokens U available (> 0), data-constrained laws only.
      max_epochs: cap on ``D / U`` (> 0); needs ``unique_tokens``.
      inference_tokens: lifetime inference tokens (>= 0).
      target_loss: the loss to reach.
      quality: value of a training token in reference tokens (> 0).
      experts, max_experts, memory_gb, devices: MoE options.
      precision: the number format of weights and KV cache (MoE memory); for the
        precision law, the training precision (as ``training_bits``).
      memory_bytes: the MoE memory per device in bytes, instead of ``memory_gb``.
      training_bits: the training precision (precision law).

    Returns:
      An :class:`AllocationResult`.

    Examples:
      >>> r = optimal("chinchilla-besiroglu2024", 1e24)
      >>> round(float(r.tokens_per_param))
      18
      >>> r = optimal("precision-kumar2024", 1e23, precision="menu")
      >>> float(r.bits)
      4.0
    """
    from .. import laws

    preset = laws.get(law) if isinstance(law, str) else law
    family = preset.family.name
    inputs = preset.family.inputs
    is_moe = family.startswith("moe-")
    is_precision = family == precision_law.FAMILY.name
    if training_bits is not None:
        if not is_precision:
            raise ValueError(
                "training_bits applies to the precision law (precision-kumar2024); "
                f"{preset.name!r} is of family {family!r}"
            )
        _refuse("precision", precision, "and training_bits: give one of them")
        precision = training_bits
    moe_only = (
        ("experts", experts),
        ("max_experts", max_experts),
        ("memory_gb", memory_gb),
        ("memory_bytes", memory_bytes),
    )
    if not (is_moe or is_precision):
        for name, value in moe_only:
            _refuse(
                name,
                value,
                f"applies only to MoE laws; {preset.name!r} is of family {family!r}",
            )
        _refuse(
            "precision",
            precision,
            "applies to the precision law "
            "(precision-kumar2024) and to MoE laws (memory); "
            f"{preset.name!r} is of family {family!r}",
        )
    if is_moe or is_precision:
        scenario = "MoE" if is_moe else "precision"
        for name, value in (
            ("unique_tokens", unique_tokens),
            ("max_epochs", max_epochs),
            ("inference_tokens", inference_tokens),
            ("target_loss", target_loss),
            ("quality", quality),
        ):
            _refuse(
                name, value, f"is not supported with the {scenario} law {preset.name!r}"
            )
        if compute_flops is None:
            raise ValueError("give compute_flops (a budget)")
        if is_moe:
            return moe_optimal(
                preset,
                compute_flops,
                experts=experts,
                max_experts=max_experts,
                memory_bytes=memory_bytes,
                memory_gb=memory_gb,
                devices=devices,
                precision="bf16" if precision is None else precision,
            )
        for name, value in moe_only:
            _refuse(name, value, "applies only to MoE laws")
        return precision_optimal(
            preset.params, compute_flops, **_training_bits(precision)
        )
    if inputs[:2] != ("n_params", "n_tokens"):
        raise ValueError(
            f"no compute-optimal allocation for law {preset.name!r} (family "
            f"{family!r}): it does not take both n_params and n_tokens"
        )
    is_dc = family == data_constrained.FAMILY.name
    if unique_tokens is not None and not is_dc:
        raise ValueError(
            f"unique_tokens applies only to data-constrained laws; {preset.name!r} is "
            f"of family {family!r}"
        )
    if max_epochs is not None and unique_tokens is None:
        raise ValueError(
            "max_epochs needs unique_tokens (the data it counts passes of)"
        )
    if len(inputs) > 2 + is_dc:
        raise ValueError(
            f"law {preset.name!r} takes {', '.join(inputs)}; optimal() supports laws "
            "of (n_params, n_tokens) and the data-constrained law"
        )
    if quality is not None:
        _refuse("target_loss", target_loss, "is not supported with quality")
        _refuse("inference_tokens", inference_tokens, "is not supported with quality")
        if compute_flops is None:
            raise ValueError("give compute_flops (a budget)")
        return quality_optimal(
            preset, compute_flops, quality, unique_tokens, max_epochs
        )
    params = preset.params
    law_fn = preset.family.loss
    extra = ()
    if is_dc:
        if unique_tokens is None:
            params = chinchilla.ChinchillaParams(
                params.E, params.A, params.B, params.alpha, params.beta
            )
            law_fn = chinchilla.loss
        else:
            extra = (unique_tokens,)
    if target_loss is not None:
        if compute_flops is not None:
            raise ValueError(
                "give either compute_flops (a budget) or target_loss (a quality "
                "target), not both"
            )
        if max_epochs is not None:
            raise ValueError("max_epochs is not supported with target_loss")
        t = 0.0 if inference_tokens is None else inference_tokens
        return inference_target_optimal(law_fn, params, target_loss, t, *extra)
    if compute_flops is None:
        raise ValueError("give compute_flops (a budget) or target_loss")
    if inference_tokens is not None:
        if max_epochs is not None:
            raise ValueError("max_epochs is not supported with inference_tokens")
        return inference_budget_optimal(
            law_fn, params, compute_flops, inference_tokens, *extra
        )
    if extra:
        return data_constrained_optimal(params, compute_flops, *extra, max_epochs)
    if law_fn is chinchilla.loss:
        return chinchilla_optimal(params, compute_flops)
    if law_fn is kaplan.loss:
        return kaplan_optimal(params, compute_flops)
    return dense_optimal(law_fn, params, compute_flops)
