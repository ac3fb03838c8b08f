"""FLOPs: training (``C = 6ND``), inference, and what a device delivers in an hour.

The ``C = 6ND`` rule (Kaplan et al. 2020, "Scaling Laws for Neural Language
Models", arXiv:2001.08361, Sec. 2.1; Hoffmann et al. 2022, "Training
Compute-Optimal Large Language Models", arXiv:2203.15556, Sec. 3.3), the inference
count ``2N`` plus attention, and the conversions between FLOPs and device-hours at
a datasheet peak and a model FLOPs utilization (MFU). Counts from the shape of a
transformer are in :mod:`jscale.accounting.transformer`.
"""

from __future__ import annotations

import jax
from jax.typing import ArrayLike

from .. import _checks
from .hardware import Hardware, Precision, _rate
from .units import SECONDS_PER_HOUR

#: The elementwise inputs of the 6ND functions: finite and > 0.
_inputs = _checks.elementwise(n_params=_checks.POSITIVE, n_tokens=_checks.POSITIVE)

# --------------------------------------------------------------------------------
# FLOPs from parameters and tokens
# --------------------------------------------------------------------------------


@_inputs
def forward_flops_per_token(n_params: ArrayLike) -> jax.Array:
    """Forward-pass FLOPs per token, ``2 N``.

    Each weight takes part in one multiply-accumulate (2 FLOPs) per token (Kaplan
    2020, Sec. 2.1 and Table 1). Attention over the context is left out; see
    :func:`forward_flops_per_token_from_shape` for it.

    Args:
      n_params: parameters N (> 0), any shape.

    Returns:
      FLOPs per token, the shape and dtype of ``n_params``; NaN for bad elements
      under jit.

    Raises:
      ValueError: for concrete non-positive, NaN or infinite N.

    Examples:
      >>> from jscale import accounting
      >>> float(accounting.forward_flops_per_token(1e9))
      2000000000.0
    """
    return 2.0 * n_params


@_inputs
def backward_flops_per_token(n_params: ArrayLike) -> jax.Array:
    """Backward-pass FLOPs per token, ``4 N``: twice the forward pass.

    The backward pass computes gradients with respect to both the activations and
    the weights, two multiply-accumulates per weight (Kaplan 2020, Sec. 2.1).
    Arguments, result and errors as in :func:`forward_flops_per_token`.

    Examples:
      >>> from jscale import accounting
      >>> n = 1e9
      >>> bool(accounting.backward_flops_per_token(n) == 2 * 2 * n)
      True
    """
    return 4.0 * n_params


@_inputs
def training_flops(n_params: ArrayLike, n_tokens: ArrayLike) -> jax.Array:
    """Training compute ``C = 6 N D``: forward ``2N`` plus backward ``4N`` per token.

    Kaplan 2020, Sec. 2.1 (``C ≈ 6NBS``), and Hoffmann 2022, Sec. 3.3 (``C ≈ 6ND``).

    Args:
      n_params: parameters N (> 0).
      n_tokens: training tokens D (> 0), broadcastable against ``n_params``.

    Returns:
      FLOPs with the broadcast shape; NaN for bad elements under jit. Products stay
      well inside float32's range (3.4e38).

    Raises:
      ValueError: for concrete non-positive, NaN or infinite inputs, or shapes that
        do not broadcast.

    Examples:
      >>> from jscale import accounting
      >>> f"{float(accounting.training_flops(70e9, 1.4e12)):.3e}"  # Chinchilla
      '5.880e+23'
    """
    return 6.0 * n_params * n_tokens


def inference_flops_per_token(
    n_params: ArrayLike,
    n_layers: ArrayLike | None = None,
    d_model: ArrayLike | None = None,
    context: ArrayLike | None = None,
) -> jax.Array:
    """Inference FLOPs per generated token, ``2 N + 2 n_layers context d_model``.

    The forward pass of Kaplan 2020 (Eq. 2.2, Table 1 with ``d_attn = d_model``):
    ``2N`` for the weights plus attention over ``context`` cached tokens. Without the
    shape (all three of ``n_layers``, ``d_model``, ``context`` left out) only ``2N``
    is counted, as in Sardana & Frankle 2023 (arXiv:2401.00448).

    Args:
      n_params: parameters N (> 0).
      n_layers: layers (> 0), or ``None``.
      d_model: residual width (> 0), or ``None``.
      context: tokens attended to (> 0), or ``None``.

    Returns:
      FLOPs per token with the broadcast shape; NaN for bad elements under jit.

    Raises:
      ValueError: for bad values, shapes that do not broadcast, or only some of
        ``n_layers``, ``d_model`` and ``context`` given.

    Examples:
      >>> from jscale import accounting
      >>> f"{float(accounting.inference_flops_per_token(7e9)):.1e}"
      '1.4e+10'
      >>> f"{float(accounting.inference_flops_per_token(7e9, 32, 4096, 8192)):.4e}"
      '1.6147e+10'
    """
    given = [x is not None for x in (n_layers, d_model, context)]
    if any(given) and not all(given):
        raise ValueError(
            "inference_flops_per_token needs all of n_layers, d_model and context "
            "or none of them; got "
            + ", ".join(
                f"{k}={'set' if g else 'None'}"
                for k, g in zip(("n_layers", "d_model", "context"), given, strict=True)
            )
        )
    valid, (n, layers, width, ctx) = _checks.prepare(
        n_params=n_params, n_layers=n_layers, d_model=d_model, context=context
    )
    if layers is None:
        return _checks.masked(valid, 2.0 * n)
    return _checks.masked(valid, 2.0 * n + 2.0 * layers * ctx * width)


# --------------------------------------------------------------------------------
# Device time
# --------------------------------------------------------------------------------


def device_flops_per_second(
    hardware: str | Hardware,
    precision: str | Precision = "bf16",
    mfu: ArrayLike = 0.4,
    *,
    throughput_multiplier: ArrayLike | None = None,
) -> jax.Array:
    """Achieved FLOP/s of one device: dense peak x model FLOPs utilization.

    The peak is the datasheet's dense figure for ``precision``. A precision the
    datasheet does not list for the device (FP8 on A100, INT4 on H100, FP8 on TPUs)
    is treated as unsupported and raises, rather than silently assuming a speed-up.
    To model it anyway, or to override any figure, pass ``throughput_multiplier``:
    the peak is then ``bf16 peak x throughput_multiplier`` (e.g. the nominal
    ``PRECISIONS["fp8"].throughput_multiplier == 2``).

    Args:
      hardware: a name from :data:`HARDWARE` or a :class:`Hardware` (static).
      precision: a name from :data:`PRECISIONS` or a :class:`Precision` (static).
      mfu: model FLOPs utilization, the achieved fraction of the peak, in (0, 1].
      throughput_multiplier: optional multiple of the BF16 peak (> 0), overriding
        the datasheet figure.

    Returns:
      FLOP/s, the broadcast shape of ``mfu`` and ``throughput_multiplier``.

    Raises:
      ValueError: for unknown names, an unsupported precision, or bad values.

    Examples:
      >>> from jscale import accounting
      >>> f"{float(accounting.device_flops_per_second('h100-sxm', 'bf16', 0.4)):.4e}"
      '3.9560e+14'
    """
    scale, valid, (u, m) = _rate(hardware, precision, mfu, throughput_multiplier)
    return _checks.masked(valid, scale * m * u)


def device_hours_to_flops(
    device_hours: ArrayLike,
    hardware: str | Hardware,
    precision: str | Precision = "bf16",
    mfu: ArrayLike = 0.4,
    *,
    throughput_multiplier: ArrayLike | None = None,
) -> jax.Array:
    """FLOPs delivered by ``device_hours``: ``hours x 3600 x peak x mfu``.

    Args:
      device_hours: device-hours (> 0), e.g. devices x wall-clock hours.
      hardware, precision, mfu, throughput_multiplier: as in
        :func:`device_flops_per_second`.

    Returns:
      FLOPs with the broadcast shape; NaN for bad elements under jit.

    Raises:
      ValueError: for unknown names, an unsupported precision, bad values or shapes.

    Examples:
      >>> from jscale import accounting
      >>> hours = 1000 * 30 * 24  # 1000 H100s for 30 days
      >>> f"{float(accounting.device_hours_to_flops(hours, 'h100-sxm')):.4e}"
      '1.0254e+24'
    """
    scale, valid, (h, u, m) = _rate(
        hardware, precision, mfu, throughput_multiplier, device_hours=device_hours
    )
    return _checks.masked(valid, h * (SECONDS_PER_HOUR * scale) * m * u)


def flops_to_device_hours(
    compute_flops: ArrayLike,
    hardware: str | Hardware,
    precision: str | Precision = "bf16",
    mfu: ArrayLike = 0.4,
    *,
    throughput_multiplier: ArrayLike | None = None,
) -> jax.Array:
    """Device-hours to deliver ``compute_flops``: ``C / (3600 x peak x mfu)``.

    The inverse of :func:`device_hours_to_flops`.

    Args:
      compute_flops: FLOPs (> 0).
      hardware, precision, mfu, throughput_multiplier: as in
        :func:`device_flops_per_second`.

    Returns:
      Device-hours with the broadcast shape; NaN for bad elements under jit.

    Raises:
      ValueError: for unknown names, an unsupported precision, bad values or shapes.

    Examples:
      >>> from jscale import accounting
      >>> c = accounting.training_flops(70e9, 1.4e12)  # Chinchilla
      >>> f"{float(accounting.flops_to_device_hours(c, 'a100-80gb', mfu=0.5)):.4g}"
      '1.047e+06'
    """
    scale, valid, (c, u, m) = _rate(
        hardware, precision, mfu, throughput_multiplier, compute_flops=compute_flops
    )
    return _checks.masked(valid, c / (SECONDS_PER_HOUR * scale) / (m * u))
