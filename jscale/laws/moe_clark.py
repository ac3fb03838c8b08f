"""Routed language models: Clark et al. 2022 and the saturating expert count.

Clark et al. 2022, "Unified Scaling Laws for Routed Language Models"
(arXiv:2202.01169), Eq. 1 with the saturating expert count of their authors'
notebook (google-deepmind/scaling_laws_for_routing, ``example.ipynb``)::

    log10 L = a log10 N + b log10 Ê + c log10 N log10 Ê + d,
    1/Ê = 1/(E - 1 + (1/E_start - 1/E_max)^-1) + 1/E_max,

N the parameters one token uses (the dense-equivalent count), E the experts per
routed layer: :func:`clark_loss`, presets ``"moe-clark2022-sbase"``, ``-rlr``,
``-hash``. Ê runs from ``E_start`` at E = 1 to ``E_max`` as E grows
(:func:`saturating_experts`; Ludziejewski 2025 reuse it). The effective parameter
count :func:`clark_effective_params` is the size of the dense model (E = 1) with
the same loss. The loss is in nats per token. Every name here is also reachable as
``jscale.laws.moe.<name>``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from ._inputs import checked
from ._registry import Preset, family

_LN10 = math.log(10.0)


def _log_saturating(log_e_minus_1_plus_k, e_max) -> jax.Array:
    """``log Ê`` from ``log(E - 1 + k)``: ``-log(1/(E - 1 + k) + 1/E_max)``."""
    return -jnp.logaddexp(-log_e_minus_1_plus_k, -jnp.log(e_max))


def log_expert_hat(experts: jax.Array, e_start, e_max) -> jax.Array:
    """``log Ê`` for experts ``E >= 1`` (Clark 2022; Ludziejewski 2025, Eq. 4)."""
    # k = (1/E_start - 1/E_max)^-1 = E_start E_max / (E_max - E_start) > 0.
    k = e_start * e_max / (e_max - e_start)
    return _log_saturating(jnp.log((experts - 1.0) + k), e_max)


@checked
def saturating_experts(
    experts: ArrayLike, e_start: ArrayLike, e_max: ArrayLike
) -> jax.Array:
    """Clark's saturating expert count Ê (Clark 2022, Sec. 4; Ludziejewski 2025, Eq. 4).

    ``1/Ê = 1/(E - 1 + (1/E_start - 1/E_max)^-1) + 1/E_max``: Ê = E_start at E = 1,
    Ê grows like ``E - 1 + const`` for small E and saturates at E_max.

    Args:
      experts: experts per routed layer E (>= 1), any shape.
      e_start: Ê at E = 1 (> 0, below ``e_max``).
      e_max: the limit of Ê as E grows.

    Returns:
      Ê with the shape of ``experts``; NaN under ``jax.jit`` where E < 1.

    Raises:
      ValueError: for a concrete E below 1, NaN or infinite.

    Examples:
      >>> from jscale.laws import moe
      >>> round(float(moe.saturating_experts(1.0, 2.0, 300.0)), 6)
      2.0
      >>> round(float(moe.saturating_experts(1e9, 2.0, 300.0)), 2)
      300.0
    """
    return jnp.exp(log_expert_hat(experts, e_start, e_max))


class ClarkParams(NamedTuple):
    """Constants of Clark's routed law (log10 form) with the saturating Ê.

    Attributes:
      a: coefficient of ``log10 N`` (negative).
      b: coefficient of ``log10 Ê`` (negative: experts help).
      c: coefficient of ``log10 N log10 Ê`` (positive: help fades with N).
      d: intercept, ``log10`` of the loss at N = 1, Ê = 1.
      e_start: Ê at E = 1.
      e_max: the saturation limit of Ê.

    Leaves may be Python floats or arrays; a leading axis holds many laws at once.
    """

    a: ArrayLike
    b: ArrayLike
    c: ArrayLike
    d: ArrayLike
    e_start: ArrayLike
    e_max: ArrayLike


@checked
def clark_loss(
    params: ClarkParams, n_active_params: ArrayLike, experts: ArrayLike
) -> jax.Array:
    """Routed loss ``10^(a log10 N + b log10 Ê + c log10 N log10 Ê + d)`` (Eq. 1).

    Computed as ``exp(ln 10 * (...))`` with ``log10 Ê`` from the saturating
    transform, elementwise with broadcasting. With E = 1 (a dense model) the law
    is a power law in N, ``L = 10^d' N^(a + c log10 E_start)``.

    Args:
      params: the law's constants.
      n_active_params: parameters one token uses N (> 0; Clark's "dense" count,
        embeddings included as in their data), any shape.
      experts: experts per routed layer E (>= 1), broadcastable.

    Returns:
      The loss in nats per token with the broadcast shape; NaN under ``jax.jit``
      where an input is invalid.

    Raises:
      ValueError: for a concrete N <= 0, E < 1, NaN or infinite values, or shapes
        that do not broadcast.

    Examples:
      >>> from jscale.laws import moe
      >>> p = moe.CLARK2022_SBASE.params
      >>> round(float(moe.clark_loss(p, 1.3e9, 1.0)), 4)  # dense 1.3B
      2.2374
      >>> round(float(moe.clark_loss(p, 1.3e9, 64.0)), 4)  # 64 experts
      2.0498
    """
    log10_n, log10_e = _log10_n_e(params, n_active_params, experts)
    log10_l = (
        params.a * log10_n
        + params.b * log10_e
        + params.c * log10_n * log10_e
        + params.d
    )
    return jnp.exp(_LN10 * log10_l)


def _log10_n_e(params: ClarkParams, n: jax.Array, e: jax.Array):
    """``(log10 N, log10 Ê)``, no checks."""
    return jnp.log(n) / _LN10, log_expert_hat(e, params.e_start, params.e_max) / _LN10


@checked
def clark_effective_params(
    params: ClarkParams, n_active_params: ArrayLike, experts: ArrayLike
) -> jax.Array:
    """Effective parameter count ``EPC(N, E)``: the dense size with the same loss.

    With ``alpha(x) = a + c log10 x`` (the slope in ``log10 N`` at Ê = x),
    ``EPC = N^(alpha(Ê)/alpha(E_start)) (Ê/E_start)^(b/alpha(E_start))``, as in the
    authors' notebook (Clark 2022, Sec. 5). It satisfies
    ``clark_loss(EPC(N, E), 1) = clark_loss(N, E)`` and ``EPC(N, 1) = N``.

    Args:
      params: the law's constants.
      n_active_params: parameters one token uses N (> 0), any shape.
      experts: experts per routed layer E (>= 1), broadcastable.

    Returns:
      The effective parameter count with the broadcast shape; NaN under
      ``jax.jit`` where an input is invalid.

    Raises:
      ValueError: for a concrete N <= 0 or E < 1 (or NaN, infinite), or shapes
        that do not broadcast.

    Examples:
      >>> from jscale.laws import moe
      >>> p = moe.CLARK2022_SBASE.params
      >>> f"{float(moe.clark_effective_params(p, 1.3e9, 64.0)):.3g}"
      '3.91e+09'
    """
    log10_n, log10_e = _log10_n_e(params, n_active_params, experts)
    log10_start = jnp.log(params.e_start) / _LN10
    alpha_start = params.a + params.c * log10_start
    alpha_e = params.a + params.c * log10_e
    log10_epc = (alpha_e * log10_n + params.b * (log10_e - log10_start)) / alpha_start
    return jnp.exp(_LN10 * log10_epc)


def clark_cutoff_params(params: ClarkParams) -> jax.Array:
    """Size beyond which routing stops helping, ``N_cut = 10^(-b/c)`` (Clark, Sec. 4).

    There ``d log10 L / d log10 Ê = b + c log10 N`` vanishes.

    Examples:
      >>> from jscale.laws import moe
      >>> f"{float(moe.clark_cutoff_params(moe.CLARK2022_SBASE.params)):.3g}"
      '1e+12'
    """
    return jnp.exp(_LN10 * (-jnp.asarray(params.b) / jnp.asarray(params.c)))


CLARK_FAMILY = family(
    "moe-clark2022",
    ClarkParams,
    clark_loss,
    (
        "log10 L = a log10 N + b log10 Ê + c log10 N log10 Ê + d; "
        "1/Ê = 1/(E - 1 + (1/E_start - 1/E_max)^-1) + 1/E_max"
    ),
)

_CLARK_CITATION = (
    "Clark et al. 2022, Unified Scaling Laws for Routed Language Models, "
    "arXiv:2202.01169, Eq. 1 with the saturating transform of "
    "google-deepmind/scaling_laws_for_routing example.ipynb"
)
_CLARK_UNITS = (
    "N: parameters one token uses (dense-equivalent count); E: experts per routed "
    "layer (routing frequency 1/2, k = 1); loss: nats/token (validation set)"
)
_CLARK_NOTES = (
    "Constants (a, b, c, d, E_start, E_max) from a secondary source, not read in the "
    "paper. Checked against the authors' data (data/curves.csv.gz, final step, "
    "routing frequency 1/2, k = 1, seed 42, dense runs as E = 1): RMS log10 "
    "residual 0.0037 (S-BASE), 0.0077 (RL-R), 0.0052 (HASH) against about 0.003 "
    "for a fresh refit; rounding a to three decimals alone moves log10 L by up to "
    "0.005. E_start and E_max are only weakly identified by the data."
)


def _preset(router: str, params: ClarkParams) -> Preset:
    """The preset ``moe-clark2022-<router>`` (the citation names the router)."""
    return Preset(
        name=f"moe-clark2022-{router.lower().replace('-', '')}",
        family=CLARK_FAMILY,
        params=params,
        citation=f"{_CLARK_CITATION}; {router} router",
        units=_CLARK_UNITS,
        notes=_CLARK_NOTES,
    )


# One preset per router: ClarkParams(a, b, c, d, e_start, e_max).
CLARK2022_SBASE, CLARK2022_RLR, CLARK2022_HASH = (
    _preset(router, ClarkParams(*constants))
    for router, constants in (
        ("S-BASE", (-0.082, -0.108, 0.009, 1.104, 1.847, 314.5)),
        ("RL-R", (-0.083, -0.126, 0.012, 1.111, 1.880, 470.0)),
        ("HASH", (-0.087, -0.136, 0.012, 1.157, 4.175, 477.7)),
    )
)

PRESETS = {p.name: p for p in (CLARK2022_SBASE, CLARK2022_RLR, CLARK2022_HASH)}
