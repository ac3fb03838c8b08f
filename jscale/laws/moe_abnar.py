"""Optimal sparsity of mixtures of experts: Abnar et al. 2025.

Abnar et al. 2025, "Parameters vs FLOPs: Scaling Laws for Optimal Sparsity for
Mixture-of-Experts Language Models" (arXiv:2501.12370), Eq. 6, with sparsity
``S = (E - K)/E``: :func:`abnar_loss` and :data:`ABNAR2025_FAMILY`, a family without
a preset (constants not verified). Every name here is also reachable as
``jscale.laws.moe.<name>``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from ._inputs import checked
from ._registry import family


class AbnarParams(NamedTuple):
    """Constants of Abnar's sparsity law (Eq. 6).

    ``L = a/N^alpha + b/D^beta + c/(1 - S)^lam + d/((1 - S)^delta N^gamma) + e``
    with ``lam < 0`` in their fits (``lam`` stands for lambda).

    Leaves may be Python floats or arrays; a leading axis holds many laws at once.
    """

    a: ArrayLike
    alpha: ArrayLike
    b: ArrayLike
    beta: ArrayLike
    c: ArrayLike
    lam: ArrayLike
    d: ArrayLike
    delta: ArrayLike
    gamma: ArrayLike
    e: ArrayLike


@checked
def abnar_loss(
    params: AbnarParams, n_params: ArrayLike, n_tokens: ArrayLike, sparsity: ArrayLike
) -> jax.Array:
    """Sparsity-aware loss (Abnar et al. 2025, arXiv:2501.12370, Eq. 6).

    ``a/N^alpha + b/D^beta + c/(1 - S)^lam + d/((1 - S)^delta N^gamma) + e`` with N
    the *total* parameters and ``S = (E - K)/E`` the fraction of inactive experts;
    training compute is ``6 N_active D``. No preset: the fitted constants (their
    App. F) were not verified.

    Args:
      params: the law's constants.
      n_params: total parameters N (> 0), any shape.
      n_tokens: training tokens D (> 0), broadcastable.
      sparsity: S in [0, 1), broadcastable.

    Returns:
      The loss with the broadcast shape; NaN under ``jax.jit`` where an input is
      invalid.

    Raises:
      ValueError: for a concrete N or D not finite and > 0, a sparsity outside
        [0, 1), or shapes that do not broadcast.

    Examples:
      >>> from jscale.laws import moe
      >>> p = moe.AbnarParams(1.0, 0.3, 1.0, 0.3, 0.1, -0.5, 0.1, 0.5, 0.1, 1.7)
      >>> round(float(moe.abnar_loss(p, 1e9, 1e10, 0.0)), 4)
      1.8156
    """
    log_n, log_d = jnp.log(n_params), jnp.log(n_tokens)
    log_dense = jnp.log1p(-sparsity)
    return (
        jnp.exp(jnp.log(params.a) - params.alpha * log_n)
        + jnp.exp(jnp.log(params.b) - params.beta * log_d)
        + params.c * jnp.exp(-params.lam * log_dense)
        + params.d * jnp.exp(-params.delta * log_dense - params.gamma * log_n)
        + params.e
    )


ABNAR2025_FAMILY = family(
    "moe-abnar2025",
    AbnarParams,
    abnar_loss,
    ("L = a/N^alpha + b/D^beta + c/(1 - S)^lambda + d/((1 - S)^delta N^gamma) + e"),
)

#: No preset: Abnar's constants (App. F) were not verified.
PRESETS: dict = {}
