"""Fine-grained mixture of experts: Krajewski et al. 2024.

Krajewski et al. 2024, "Scaling Laws for Fine-Grained Mixture of Experts"
(arXiv:2402.07871), Eq. 9: ``L(N, D, G) = c + (g / G^gamma + a) N^-alpha +
b D^-beta`` with N the total non-embedding parameters and G the granularity:
:func:`krajewski_loss`, preset ``"moe-krajewski2024"`` (Table 1, MoE row) and
``"moe-krajewski2024-dense"`` (Table 1, dense row, g = 0). Helpers for their
parameter count :func:`fine_grained_params` and FLOPs with routing
:func:`fine_grained_flops` (Eq. 10). The loss is in nats per token. Every name here
is also reachable as ``jscale.laws.moe.<name>``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from ._inputs import checked
from ._registry import Preset, family

#: Krajewski 2024, Eq. 10: FLOPs per parameter per token of the dense layers
#: (forward and backward), and of the router per expert.
KRAJEWSKI_C_F = 6.0
KRAJEWSKI_C_R = 14.0


class KrajewskiParams(NamedTuple):
    """Constants of ``L(N, D, G) = c + (g / G^gamma + a) N^-alpha + b D^-beta``.

    Attributes:
      a: parameter coefficient at infinite granularity.
      alpha: parameter exponent.
      b: data coefficient.
      beta: data exponent.
      g: granularity coefficient (0 for the dense fit).
      gamma: granularity exponent.
      c: irreducible loss.

    Leaves may be Python floats or arrays; a leading axis holds many laws at once.
    """

    a: ArrayLike
    alpha: ArrayLike
    b: ArrayLike
    beta: ArrayLike
    g: ArrayLike
    gamma: ArrayLike
    c: ArrayLike


@checked
def krajewski_loss(
    params: KrajewskiParams,
    n_params: ArrayLike,
    n_tokens: ArrayLike,
    granularity: ArrayLike,
) -> jax.Array:
    """Fine-grained MoE loss ``c + (g/G^gamma + a) N^-alpha + b D^-beta`` (Eq. 9).

    Krajewski 2024: N counts all non-embedding parameters (every expert), D is
    training tokens and G = d_ff / d_expert the granularity (a token goes to G
    experts of size d_ff/G, so active parameters do not change with G). Computed as
    ``c + (g exp(-gamma log G) + a) exp(-alpha log N) + exp(log b - beta log D)``.

    Args:
      params: the law's constants.
      n_params: total non-embedding parameters N (> 0), any shape.
      n_tokens: training tokens D (> 0), broadcastable.
      granularity: G (> 0), broadcastable.

    Returns:
      The loss in nats per token with the broadcast shape; NaN under ``jax.jit``
      where an input is invalid.

    Raises:
      ValueError: for concrete non-positive, NaN or infinite inputs, or shapes that
        do not broadcast.

    Examples:
      >>> from jscale.laws import moe
      >>> p = moe.KRAJEWSKI2024.params
      >>> round(float(moe.krajewski_loss(p, 1e9, 2e10, 8.0)), 4)
      3.1404
    """
    coef = params.g * jnp.exp(-params.gamma * jnp.log(granularity)) + params.a
    return (
        params.c
        + coef * jnp.exp(-params.alpha * jnp.log(n_params))
        + jnp.exp(jnp.log(params.b) - params.beta * jnp.log(n_tokens))
    )


@checked
def fine_grained_params(
    d_model: ArrayLike, n_blocks: ArrayLike, expansion_rate: ArrayLike
) -> jax.Array:
    """Krajewski's non-embedding parameter count ``N = d_model^2 (8E + 4) n_blocks``.

    ``4 d_model^2`` of attention and ``8 E d_model^2`` of expert feed-forward layers
    (d_ff = 4 d_model, expansion rate E = N_MoE / N_ff) per block (Krajewski 2024,
    Sec. 5; E = 1 is the dense Transformer's 12 d_model^2 per block).

    Args:
      d_model: residual width (> 0).
      n_blocks: Transformer blocks (> 0); Krajewski use d_model = 64 n_blocks.
      expansion_rate: E (> 0).

    Returns:
      Parameters with the broadcast shape; NaN under jit for invalid elements.

    Raises:
      ValueError: for a concrete width, block count or expansion rate that is not
        finite and > 0, or shapes that do not broadcast.

    Examples:
      >>> from jscale.laws import moe
      >>> f"{float(moe.fine_grained_params(1024, 16, 64)):.4g}"
      '8.657e+09'
    """
    return d_model * d_model * (8.0 * expansion_rate + 4.0) * n_blocks


@checked
def fine_grained_flops(
    d_model: ArrayLike,
    n_blocks: ArrayLike,
    n_tokens: ArrayLike,
    expansion_rate: ArrayLike,
    granularity: ArrayLike,
    c_f: ArrayLike = KRAJEWSKI_C_F,
    c_r: ArrayLike = KRAJEWSKI_C_R,
) -> jax.Array:
    """Training FLOPs with routing, ``(12 d_model^2 c_f + d_model E G c_r) D n_blocks``.

    Krajewski 2024, Eq. 10: the active dense work of a block (12 d_model^2
    parameters at ``c_f = 6`` FLOPs per parameter per token, forward and backward)
    plus the router, which scores ``E G`` experts per token at ``c_r = 14`` FLOPs
    per router parameter. Routing cost grows with granularity.

    Args:
      d_model: residual width (> 0).
      n_blocks: Transformer blocks (> 0).
      n_tokens: training tokens D (> 0).
      expansion_rate: E (> 0).
      granularity: G (> 0).
      c_f: FLOPs per dense parameter per token (default 6).
      c_r: FLOPs per router parameter per token (default 14).

    Returns:
      Training FLOPs with the broadcast shape; NaN under jit for invalid elements.

    Raises:
      ValueError: for a concrete d_model, n_blocks, D, E or G that is not finite
        and > 0, or shapes that do not broadcast.

    Examples:
      >>> from jscale.laws import moe
      >>> f"{float(moe.fine_grained_flops(1024, 16, 1e10, 64, 8)):.4g}"
      '1.325e+19'
    """
    w, e, g = d_model, expansion_rate, granularity
    return (12.0 * w * w * c_f + w * e * g * c_r) * n_tokens * n_blocks


KRAJEWSKI_FAMILY = family(
    "moe-krajewski2024",
    KrajewskiParams,
    krajewski_loss,
    "L = c + (g / G^gamma + a) / N^alpha + b / D^beta",
)

_KRAJEWSKI_CITATION = (
    "Krajewski et al. 2024, Scaling Laws for Fine-Grained Mixture of Experts, "
    "arXiv:2402.07871, Eq. 9 with the fitted constants of Table 1"
)
_KRAJEWSKI_UNITS = (
    "N: total non-embedding parameters, d_model^2 (8E + 4) n_blocks; D: training "
    "tokens; G: granularity d_ff / d_expert; loss: nats/token (C4)"
)

KRAJEWSKI2024 = Preset(
    name="moe-krajewski2024",
    family=KRAJEWSKI_FAMILY,
    params=KrajewskiParams(
        a=18.1, alpha=0.115, b=30.8, beta=0.147, g=2.1, gamma=0.58, c=0.47
    ),
    citation=_KRAJEWSKI_CITATION + " (MoE row)",
    units=_KRAJEWSKI_UNITS,
    notes=(
        "Fitted with expansion rate E = 64 throughout (Huber delta 0.1, BFGS); use "
        "for E = 64 models. Constants as listed in the project's references "
        "(Table 1); the paper's compute-optimal table was not re-derived here."
    ),
)

KRAJEWSKI2024_DENSE = Preset(
    name="moe-krajewski2024-dense",
    family=KRAJEWSKI_FAMILY,
    params=KrajewskiParams(
        a=16.3, alpha=0.126, b=26.7, beta=0.127, g=0.0, gamma=0.0, c=0.47
    ),
    citation=_KRAJEWSKI_CITATION + " (dense row; g = 0, granularity ignored)",
    units=_KRAJEWSKI_UNITS,
    notes="Dense Transformer fit of the same paper: N = 12 d_model^2 n_blocks.",
)


PRESETS = {p.name: p for p in (KRAJEWSKI2024, KRAJEWSKI2024_DENSE)}
