"""Energy: joules drawn by a run, and the FLOPs or tokens a joule buys.

Board power is the datasheet's maximum (TDP), scaled by the average fraction drawn
and the facility's power usage effectiveness (PUE); see :func:`energy_joules`.
"""

from __future__ import annotations

import jax
from jax.typing import ArrayLike

from .. import _checks
from .hardware import _RATE_RULES, Hardware, Precision, _board_power, _rate
from .units import SECONDS_PER_HOUR


def energy_joules(
    device_hours: ArrayLike,
    hardware: str | Hardware,
    pue: ArrayLike = 1.0,
    power_fraction: ArrayLike = 1.0,
) -> jax.Array:
    """Energy drawn: ``hours x 3600 x board power x power_fraction x PUE``.

    Board power is the datasheet's maximum (TDP), so with ``power_fraction=1`` this
    is an upper estimate for the accelerators alone; real training draws less (TPU
    v4 measures a mean of 170 W against a 192 W maximum). Host CPUs, networking and
    cooling are outside board power; ``pue`` (power usage effectiveness, >= 1)
    scales to the facility.

    Args:
      device_hours: device-hours (> 0).
      hardware: a name or :class:`Hardware` with a board power (static).
      pue: facility power usage effectiveness (>= 1).
      power_fraction: average draw as a fraction of board power, in (0, 1].

    Returns:
      Joules with the broadcast shape; NaN for bad elements under jit.

    Raises:
      ValueError: for an unknown name, hardware without a published power, bad
        values or shapes.

    Examples:
      >>> from jscale import accounting
      >>> j = accounting.energy_joules(1000 * 30 * 24, "h100-sxm", pue=1.2)
      >>> round(float(accounting.joules_to_kwh(j)))
      604800
    """
    power = _board_power(hardware)
    valid, (h, e, f) = _checks.prepare(
        _RATE_RULES, device_hours=device_hours, pue=pue, power_fraction=power_fraction
    )
    return _checks.masked(valid, h * (SECONDS_PER_HOUR * power) * f * e)


def tokens_per_joule(
    n_params: ArrayLike,
    hardware: str | Hardware,
    precision: str | Precision = "bf16",
    mfu: ArrayLike = 0.4,
    pue: ArrayLike = 1.0,
    *,
    power_fraction: ArrayLike = 1.0,
    throughput_multiplier: ArrayLike | None = None,
) -> jax.Array:
    """Training tokens per joule: ``peak x mfu / (6 N x power x fraction x PUE)``.

    Training FLOPs per token are ``6N`` (:func:`training_flops`); for generation
    (``2N`` per token, attention ignored) multiply by 3.

    Args:
      n_params: parameters N (> 0).
      hardware, precision, mfu, throughput_multiplier: as in
        :func:`device_flops_per_second`.
      pue, power_fraction: as in :func:`energy_joules`.

    Returns:
      Tokens per joule with the broadcast shape; NaN for bad elements under jit.

    Raises:
      ValueError: as :func:`device_flops_per_second` and :func:`energy_joules`.

    Examples:
      >>> from jscale import accounting
      >>> round(float(accounting.tokens_per_joule(7e9, "h100-sxm")), 2)
      13.46
    """
    power = _board_power(hardware)
    scale, valid, (n, e, f, u, m) = _rate(
        hardware,
        precision,
        mfu,
        throughput_multiplier,
        n_params=n_params,
        pue=pue,
        power_fraction=power_fraction,
    )
    return _checks.masked(valid, (scale / (6.0 * power)) * (m * u) / (n * f * e))


def energy_to_flops(
    energy_joules: ArrayLike,
    hardware: str | Hardware,
    precision: str | Precision = "bf16",
    mfu: ArrayLike = 0.4,
    pue: ArrayLike = 1.0,
    *,
    power_fraction: ArrayLike = 1.0,
    throughput_multiplier: ArrayLike | None = None,
) -> jax.Array:
    """FLOPs that ``energy_joules`` buys: ``E x peak x mfu / (power x fraction x PUE)``.

    The inverse of :func:`energy_joules` followed by :func:`device_hours_to_flops`,
    so a plan can start from an energy budget (use :func:`kwh_to_joules` first for
    kWh).

    Args:
      energy_joules: joules (> 0).
      hardware, precision, mfu, throughput_multiplier: as in
        :func:`device_flops_per_second`.
      pue, power_fraction: as in :func:`energy_joules`.

    Returns:
      FLOPs with the broadcast shape; NaN for bad elements under jit.

    Raises:
      ValueError: as :func:`device_flops_per_second` and :func:`energy_joules`.

    Examples:
      >>> from jscale import accounting
      >>> j = accounting.kwh_to_joules(1e6)  # one gigawatt-hour
      >>> f"{float(accounting.energy_to_flops(j, 'h100-sxm', pue=1.2)):.3e}"
      '1.695e+24'
    """
    power = _board_power(hardware)
    scale, valid, (j, e, f, u, m) = _rate(
        hardware,
        precision,
        mfu,
        throughput_multiplier,
        energy_joules=energy_joules,
        pue=pue,
        power_fraction=power_fraction,
    )
    return _checks.masked(valid, j / (f * e) * (scale / power) * (m * u))
