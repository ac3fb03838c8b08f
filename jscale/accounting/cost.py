"""Money and whole fleets: dollars, the FLOPs a budget buys, and :func:`budget`.

:func:`budget` is the one-call summary of ``n_devices`` for a wall-clock time:
compute, device-hours, energy and cost together, as a :class:`ComputeBudget`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from .. import _checks
from .._numerics import asfloat, weak
from .hardware import Hardware, Precision, _rate, get_hardware, get_precision
from .units import JOULES_PER_KWH, SECONDS_PER_HOUR


@_checks.elementwise(
    device_hours=_checks.POSITIVE, price_per_device_hour=_checks.POSITIVE
)
def cost_usd(device_hours: ArrayLike, price_per_device_hour: ArrayLike) -> jax.Array:
    """Dollars for ``device_hours`` at ``price_per_device_hour``.

    Args:
      device_hours: device-hours (> 0).
      price_per_device_hour: dollars per device-hour (> 0).

    Returns:
      Dollars with the broadcast shape; NaN for bad elements under jit.

    Raises:
      ValueError: for bad values or shapes.

    Examples:
      >>> from jscale import accounting
      >>> float(accounting.cost_usd(720_000, 2.0))
      1440000.0
    """
    return device_hours * price_per_device_hour


def cost_to_flops(
    cost_usd: ArrayLike,
    price_per_device_hour: ArrayLike,
    hardware: str | Hardware,
    precision: str | Precision = "bf16",
    mfu: ArrayLike = 0.4,
    *,
    throughput_multiplier: ArrayLike | None = None,
) -> jax.Array:
    """FLOPs that ``cost_usd`` buys: ``cost / price x 3600 x peak x mfu``.

    The inverse of :func:`cost_usd` followed by :func:`device_hours_to_flops`, so a
    plan can start from a budget in dollars.

    Args:
      cost_usd: dollars (> 0).
      price_per_device_hour: dollars per device-hour (> 0).
      hardware, precision, mfu, throughput_multiplier: as in
        :func:`device_flops_per_second`.

    Returns:
      FLOPs with the broadcast shape; NaN for bad elements under jit.

    Raises:
      ValueError: as :func:`device_flops_per_second` and :func:`cost_usd`.

    Examples:
      >>> from jscale import accounting
      >>> f"{float(accounting.cost_to_flops(1e6, 2.0, 'h100-sxm')):.4e}"
      '7.1208e+23'
    """
    scale, valid, (c, p, u, m) = _rate(
        hardware,
        precision,
        mfu,
        throughput_multiplier,
        cost_usd=cost_usd,
        price_per_device_hour=price_per_device_hour,
    )
    return _checks.masked(valid, c / p * (SECONDS_PER_HOUR * scale) * m * u)


# --------------------------------------------------------------------------------
# A fleet for a while
# --------------------------------------------------------------------------------


class ComputeBudget(NamedTuple):
    """What ``n_devices`` deliver in a given time, and what it costs.

    A pytree whose array fields are leaves and whose names (``hardware``,
    ``precision``) are static, so :func:`budget` works under ``jax.jit`` and
    ``jax.vmap``.

    Attributes:
      compute_flops: FLOPs delivered (peak x MFU).
      device_hours: devices x wall-clock hours.
      energy_joules: energy at board power x ``power_fraction`` x PUE; NaN for
        hardware without a published board power.
      energy_kwh: the same in kWh.
      cost_usd: dollars; NaN when no price was given.
      hardware: the hardware name.
      n_devices: devices, as given.
      mfu: model FLOPs utilization, as given.
      precision: the precision name.
      pue: power usage effectiveness, as given.
    """

    compute_flops: jax.Array
    device_hours: jax.Array
    energy_joules: jax.Array
    energy_kwh: jax.Array
    cost_usd: jax.Array
    hardware: str
    n_devices: jax.Array
    mfu: jax.Array
    precision: str
    pue: jax.Array


_BUDGET_ARRAYS = (
    "compute_flops",
    "device_hours",
    "energy_joules",
    "energy_kwh",
    "cost_usd",
    "n_devices",
    "mfu",
    "pue",
)


def _flatten_budget(b: ComputeBudget):
    return tuple(getattr(b, f) for f in _BUDGET_ARRAYS), (b.hardware, b.precision)


def _unflatten_budget(aux, children) -> ComputeBudget:
    fields = dict(zip(_BUDGET_ARRAYS, children, strict=True))
    return ComputeBudget(hardware=aux[0], precision=aux[1], **fields)


jax.tree_util.register_pytree_node(ComputeBudget, _flatten_budget, _unflatten_budget)


def budget(
    hardware: str | Hardware,
    n_devices: ArrayLike,
    *,
    hours: ArrayLike | None = None,
    days: ArrayLike | None = None,
    mfu: ArrayLike = 0.4,
    precision: str | Precision = "bf16",
    price_per_device_hour: ArrayLike | None = None,
    pue: ArrayLike = 1.0,
    power_fraction: ArrayLike = 1.0,
    throughput_multiplier: ArrayLike | None = None,
) -> ComputeBudget:
    """Compute, device-hours, energy and cost of ``n_devices`` for a wall-clock time.

    ``compute_flops = n_devices x hours x 3600 x peak x mfu`` with the dense
    datasheet peak (see :func:`device_flops_per_second`); energy as
    :func:`energy_joules`; cost as :func:`cost_usd`.

    Args:
      hardware: a name from :data:`HARDWARE` or a :class:`Hardware` (static).
      n_devices: devices (> 0).
      hours: wall-clock hours (> 0). Exactly one of ``hours`` and ``days``.
      days: wall-clock days (> 0).
      mfu: model FLOPs utilization in (0, 1].
      precision: a name from :data:`PRECISIONS` or a :class:`Precision` (static).
      price_per_device_hour: dollars per device-hour (> 0); ``None`` gives NaN cost.
      pue: power usage effectiveness (>= 1).
      power_fraction: average draw as a fraction of board power, in (0, 1].
      throughput_multiplier: optional multiple of the BF16 peak (> 0).

    Returns:
      A :class:`ComputeBudget` with the broadcast shape of the array inputs.

    Raises:
      ValueError: unless exactly one of ``hours`` and ``days`` is given; for unknown
        names, an unsupported precision, bad values or shapes.

    Examples:
      >>> from jscale import accounting
      >>> b = accounting.budget("h100-sxm", 1000, days=30, price_per_device_hour=2.0)
      >>> f"{float(b.compute_flops):.4e}", float(b.device_hours), float(b.cost_usd)
      ('1.0254e+24', 720000.0, 1440000.0)
      >>> round(float(b.energy_kwh))
      504000
    """
    if (hours is None) == (days is None):
        given = "both" if hours is not None else "neither"
        raise ValueError(
            f"budget needs exactly one of hours= or days= (wall-clock); got {given}"
        )
    hw = get_hardware(hardware)
    prec = get_precision(precision)
    duration = {"hours": hours} if hours is not None else {"days": days}
    hours_per_unit = 1.0 if hours is not None else 24.0
    price = 1.0 if price_per_device_hour is None else price_per_device_hour
    scale, valid, (dev, t, e, f, p, u, m) = _rate(
        hw,
        prec,
        mfu,
        throughput_multiplier,
        n_devices=n_devices,
        **duration,
        pue=pue,
        power_fraction=power_fraction,
        price_per_device_hour=price,
    )
    device_hours = dev * (hours_per_unit * t)
    flops = device_hours * (SECONDS_PER_HOUR * scale) * m * u
    power = hw.board_power_w
    if math.isfinite(power) and power > 0:
        joules = device_hours * (SECONDS_PER_HOUR * power) * f * e
    else:
        joules = jnp.full_like(flops, jnp.nan)
    if price_per_device_hour is None:
        dollars = jnp.full_like(flops, jnp.nan)
    else:
        dollars = device_hours * p
    flops, device_hours, joules, dollars = _checks.flag(
        valid, flops, device_hours, joules, dollars
    )

    def echo(x: ArrayLike) -> jax.Array:
        return jnp.broadcast_to(asfloat(weak(x)), jnp.shape(flops))

    return ComputeBudget(
        compute_flops=flops,
        device_hours=device_hours,
        energy_joules=joules,
        energy_kwh=joules / JOULES_PER_KWH,
        cost_usd=dollars,
        hardware=hw.name,
        n_devices=echo(n_devices),
        mfu=echo(mfu),
        precision=prec.name,
        pue=echo(pue),
    )
