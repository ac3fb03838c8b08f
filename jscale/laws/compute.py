"""The compute law ``L(C) = A * C^-alpha``, with ``C`` in FLOPs.

The simplest scaling law: loss as a pure power law in training compute, with no
irreducible term. Kaplan et al. 2020 (arXiv:2001.08361, Eq. 1.3) write it as
``L(C_min) = (C_c / C_min)^alpha_C`` with ``C_min`` in PF-days; the preset
``"kaplan2020-compute"`` in :mod:`jscale.laws.kaplan` is that law re-expressed in
FLOPs, ``A = (C_c * 8.64e19)^alpha_C``. This module has no presets of its own.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from .._numerics import power_term
from ._inputs import checked
from ._registry import family


class ComputeLawParams(NamedTuple):
    """Constants of ``L(C) = A * C^-alpha`` (``C`` in FLOPs).

    Attributes:
      A: loss at one FLOP (> 0); the scale of the law.
      alpha: compute exponent (> 0 for a loss that falls with compute).

    Leaves may be Python floats or arrays; a leading axis holds many laws at once.
    """

    A: ArrayLike
    alpha: ArrayLike


@checked
def loss(params: ComputeLawParams, compute_flops: ArrayLike) -> jax.Array:
    """Loss ``A * C^-alpha`` for training compute ``C`` in FLOPs.

    Computed in log space as ``exp(log A - alpha log C)``, elementwise. The dtype
    follows the input.

    Args:
      params: the law's constants.
      compute_flops: training compute C in FLOPs (> 0), any shape.

    Returns:
      The loss, with the shape of ``compute_flops``. Under ``jax.jit``, elements with
      a non-positive or non-finite C are NaN.

    Raises:
      ValueError: for concrete non-positive, NaN or infinite C.

    Examples:
      >>> from jscale.laws import compute
      >>> p = compute.ComputeLawParams(A=2.0, alpha=0.5)
      >>> float(compute.loss(p, 4.0))
      1.0
    """
    return power_term(jnp.log(params.A), params.alpha, jnp.log(compute_flops))


FAMILY = family("compute", ComputeLawParams, loss, "L = A * C^-alpha (C in FLOPs)")

#: This family's presets live with the papers they come from (``kaplan2020-compute``
#: in :mod:`jscale.laws.kaplan`).
PRESETS: dict = {}
