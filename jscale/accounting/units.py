"""Units and their conversions: hours, kilowatt-hours, PF-days.

Constants (:data:`SECONDS_PER_HOUR`, :data:`JOULES_PER_KWH`, Kaplan's
:data:`FLOPS_PER_PF_DAY`) and elementwise conversions between them, safe under
``jax.jit``, ``jax.vmap`` and ``jax.grad``.
"""

from __future__ import annotations

import jax
from jax.typing import ArrayLike

from .. import _checks

#: Seconds in an hour.
SECONDS_PER_HOUR = 3600.0
#: Joules in a kilowatt-hour.
JOULES_PER_KWH = 3.6e6
#: FLOPs in a petaFLOP/s-day, Kaplan's compute unit (Kaplan 2020, Sec. 1.3): 1e15
#: FLOP/s for 86400 s.
FLOPS_PER_PF_DAY = 8.64e19

#: Energies are > 0; compute may be 0.
_inputs = _checks.elementwise(
    joules=_checks.POSITIVE,
    kwh=_checks.POSITIVE,
    compute_pf_days=_checks.NONNEGATIVE,
    compute_flops=_checks.NONNEGATIVE,
)


@_inputs
def joules_to_kwh(joules: ArrayLike) -> jax.Array:
    """Kilowatt-hours in ``joules`` (1 kWh = 3.6e6 J).

    Examples:
      >>> from jscale import accounting
      >>> float(accounting.joules_to_kwh(7.2e6))
      2.0
    """
    return joules / JOULES_PER_KWH


@_inputs
def kwh_to_joules(kwh: ArrayLike) -> jax.Array:
    """Joules in ``kwh`` kilowatt-hours (1 kWh = 3.6e6 J).

    Examples:
      >>> from jscale import accounting
      >>> float(accounting.kwh_to_joules(2.0))  # the inverse of joules_to_kwh
      7200000.0
      >>> float(accounting.kwh_to_joules(accounting.joules_to_kwh(7.2e6)))
      7200000.0
    """
    return kwh * JOULES_PER_KWH


@_inputs
def pf_days_to_flops(compute_pf_days: ArrayLike) -> jax.Array:
    """Compute in PF-days to FLOPs (times :data:`FLOPS_PER_PF_DAY` = 8.64e19).

    Raises:
      ValueError: for concrete negative, NaN or infinite values.

    Examples:
      >>> from jscale import accounting
      >>> f"{float(accounting.pf_days_to_flops(2.0)):.4g}"
      '1.728e+20'
    """
    return compute_pf_days * FLOPS_PER_PF_DAY


@_inputs
def flops_to_pf_days(compute_flops: ArrayLike) -> jax.Array:
    """Compute in FLOPs to PF-days (divided by :data:`FLOPS_PER_PF_DAY` = 8.64e19).

    The inverse of :func:`pf_days_to_flops`, with the same checks.

    Examples:
      >>> from jscale import accounting
      >>> f"{float(accounting.flops_to_pf_days(8.64e21)):.4g}"
      '100'
    """
    return compute_flops / FLOPS_PER_PF_DAY
