"""Mixture-of-experts (MoE) scaling laws: routed, fine-grained and joint active/total.

Four functional forms, each elementwise and safe under ``jax.jit``, ``jax.vmap`` and
``jax.grad``:

- **Clark et al. 2022**, "Unified Scaling Laws for Routed Language Models"
  (arXiv:2202.01169), Eq. 1 with the saturating expert count of their authors'
  notebook (google-deepmind/scaling_laws_for_routing, ``example.ipynb``)::

      log10 L = a log10 N + b log10 Ê + c log10 N log10 Ê + d,
      1/Ê = 1/(E - 1 + (1/E_start - 1/E_max)^-1) + 1/E_max,

  N the parameters one token uses (the dense-equivalent count), E the experts per
  routed layer: :func:`clark_loss`, presets ``"moe-clark2022-sbase"``, ``-rlr``,
  ``-hash``. Ê runs from ``E_start`` at E = 1 to ``E_max`` as E grows. The effective
  parameter count :func:`clark_effective_params` is the size of the dense model
  (E = 1) with the same loss.
- **Krajewski et al. 2024**, "Scaling Laws for Fine-Grained Mixture of Experts"
  (arXiv:2402.07871), Eq. 9: ``L(N, D, G) = c + (g / G^gamma + a) N^-alpha +
  b D^-beta`` with N the total non-embedding parameters and G the granularity:
  :func:`krajewski_loss`, preset ``"moe-krajewski2024"`` (Table 1, MoE row) and
  ``"moe-krajewski2024-dense"`` (Table 1, dense row, g = 0). Helpers for their
  parameter count :func:`fine_grained_params` and FLOPs with routing
  :func:`fine_grained_flops` (Eq. 10).
- **Ludziejewski et al. 2025**, "Joint MoE Scaling Laws: Mixture of Experts Can Be
  Memory Efficient" (arXiv:2502.05172), Eq. 6, natural logarithms::

      L(N_act, D, Ê) = a Ê^delta N_act^(alpha + gamma ln Ê)
                       + b Ê^omega D^(beta + zeta ln Ê) + c,

  with Clark's Ê. The exponents enter *as written*: ``alpha`` and ``beta`` are
  negative (``N_act^alpha`` falls with N_act): :func:`joint_loss`, preset
  ``"moe-ludziejewski2025"`` (Table 3). Helpers for their parameter counts
  (:func:`joint_active_params`, :func:`joint_total_params`) and KV cache
  (:func:`joint_kv_cache_values`).
- **Abnar et al. 2025**, "Parameters vs FLOPs: Scaling Laws for Optimal Sparsity for
  Mixture-of-Experts Language Models" (arXiv:2501.12370), Eq. 6, with sparsity
  ``S = (E - K)/E``: :func:`abnar_loss` and :data:`ABNAR2025_FAMILY`, a family
  without a preset (constants not verified).

All losses are in nats per token.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from .. import _checks
from .._numerics import broadcast
from ._registry import Family, Preset

_LN10 = math.log(10.0)

#: Krajewski 2024, Eq. 10: FLOPs per parameter per token of the dense layers
#: (forward and backward), and of the router per expert.
KRAJEWSKI_C_F = 6.0
KRAJEWSKI_C_R = 14.0

#: Ludziejewski 2025: GPT-2 tokenizer vocabulary, and d_model / n_blocks.
JOINT_VOCAB = 50257.0
JOINT_WIDTH_PER_BLOCK = 64.0

_POSITIVE = {"lower": 0.0}
_AT_LEAST_ONE = {"lower": 1.0, "lower_inclusive": True}
_SPARSITY = {"lower": 0.0, "upper": 1.0, "lower_inclusive": True}


def _prepare(*specs) -> tuple[jax.Array, list[jax.Array]]:
    """Check, broadcast and sanitize ``(name, value, rule)`` inputs.

    Concrete bad values raise ``ValueError`` naming the argument. Returns the
    elementwise validity mask and the inputs broadcast to one shape, with invalid
    elements replaced by a value valid under every rule here (so logs and their
    gradients stay finite where the output is masked to NaN).
    """
    arrays = [_checks.check_range(name, value, **rule) for name, value, rule in specs]
    _checks.check_shapes(**{s[0]: a for s, a in zip(specs, arrays, strict=True)})
    arrays = broadcast(*arrays)
    valid = jnp.ones(jnp.shape(arrays[0]), dtype=bool)
    for (_, _, rule), a in zip(specs, arrays, strict=True):
        valid = valid & _checks.in_range(a, **rule)
    # 0.5 is valid for a sparsity, 1 for everything else.
    safe = [
        jnp.where(valid, a, 0.5 if rule is _SPARSITY else 1.0)
        for (_, _, rule), a in zip(specs, arrays, strict=True)
    ]
    return valid, safe


def _log_saturating(log_e_minus_1_plus_k, e_max) -> jax.Array:
    """``log Ê`` from ``log(E - 1 + k)``: ``-log(1/(E - 1 + k) + 1/E_max)``."""
    return -jnp.logaddexp(-log_e_minus_1_plus_k, -jnp.log(e_max))


def log_expert_hat(experts: jax.Array, e_start, e_max) -> jax.Array:
    """``log Ê`` for experts ``E >= 1`` (Clark 2022; Ludziejewski 2025, Eq. 4)."""
    # k = (1/E_start - 1/E_max)^-1 = E_start E_max / (E_max - E_start) > 0.
    k = e_start * e_max / (e_max - e_start)
    return _log_saturating(jnp.log((experts - 1.0) + k), e_max)


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
    valid, (e,) = _prepare(("experts", experts, _AT_LEAST_ONE))
    value = jnp.exp(log_expert_hat(e, e_start, e_max))
    return jnp.where(valid, value, jnp.nan)


# ---------------------------------------------------------------------------------
# Clark et al. 2022: routed language models
# ---------------------------------------------------------------------------------


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
    valid, (n, e) = _prepare(
        ("n_active_params", n_active_params, _POSITIVE),
        ("experts", experts, _AT_LEAST_ONE),
    )
    log10_n = jnp.log(n) / _LN10
    log10_e = log_expert_hat(e, params.e_start, params.e_max) / _LN10
    log10_l = (
        params.a * log10_n
        + params.b * log10_e
        + params.c * log10_n * log10_e
        + params.d
    )
    return jnp.where(valid, jnp.exp(_LN10 * log10_l), jnp.nan)


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
      ValueError: for concrete invalid inputs or shapes that do not broadcast.

    Examples:
      >>> from jscale.laws import moe
      >>> p = moe.CLARK2022_SBASE.params
      >>> f"{float(moe.clark_effective_params(p, 1.3e9, 64.0)):.3g}"
      '3.91e+09'
    """
    valid, (n, e) = _prepare(
        ("n_active_params", n_active_params, _POSITIVE),
        ("experts", experts, _AT_LEAST_ONE),
    )
    log10_n = jnp.log(n) / _LN10
    log10_e = log_expert_hat(e, params.e_start, params.e_max) / _LN10
    log10_start = jnp.log(params.e_start) / _LN10
    alpha_start = params.a + params.c * log10_start
    alpha_e = params.a + params.c * log10_e
    log10_epc = (alpha_e * log10_n + params.b * (log10_e - log10_start)) / alpha_start
    return jnp.where(valid, jnp.exp(_LN10 * log10_epc), jnp.nan)


def clark_cutoff_params(params: ClarkParams) -> jax.Array:
    """Size beyond which routing stops helping, ``N_cut = 10^(-b/c)`` (Clark, Sec. 4).

    There ``d log10 L / d log10 Ê = b + c log10 N`` vanishes.

    Examples:
      >>> from jscale.laws import moe
      >>> f"{float(moe.clark_cutoff_params(moe.CLARK2022_SBASE.params)):.3g}"
      '1e+12'
    """
    return jnp.exp(_LN10 * (-jnp.asarray(params.b) / jnp.asarray(params.c)))


CLARK_FAMILY = Family(
    name="moe-clark2022",
    params_type=ClarkParams,
    loss=clark_loss,
    inputs=("n_active_params", "experts"),
    formula=(
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

CLARK2022_SBASE = Preset(
    name="moe-clark2022-sbase",
    family=CLARK_FAMILY,
    params=ClarkParams(
        a=-0.082, b=-0.108, c=0.009, d=1.104, e_start=1.847, e_max=314.5
    ),
    citation=_CLARK_CITATION + "; S-BASE router",
    units=_CLARK_UNITS,
    notes=_CLARK_NOTES,
)

CLARK2022_RLR = Preset(
    name="moe-clark2022-rlr",
    family=CLARK_FAMILY,
    params=ClarkParams(
        a=-0.083, b=-0.126, c=0.012, d=1.111, e_start=1.880, e_max=470.0
    ),
    citation=_CLARK_CITATION + "; RL-R router",
    units=_CLARK_UNITS,
    notes=_CLARK_NOTES,
)

CLARK2022_HASH = Preset(
    name="moe-clark2022-hash",
    family=CLARK_FAMILY,
    params=ClarkParams(
        a=-0.087, b=-0.136, c=0.012, d=1.157, e_start=4.175, e_max=477.7
    ),
    citation=_CLARK_CITATION + "; HASH router",
    units=_CLARK_UNITS,
    notes=_CLARK_NOTES,
)


# ---------------------------------------------------------------------------------
# Krajewski et al. 2024: fine-grained MoE
# ---------------------------------------------------------------------------------


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
    valid, (n, d, g) = _prepare(
        ("n_params", n_params, _POSITIVE),
        ("n_tokens", n_tokens, _POSITIVE),
        ("granularity", granularity, _POSITIVE),
    )
    coef = params.g * jnp.exp(-params.gamma * jnp.log(g)) + params.a
    value = (
        params.c
        + coef * jnp.exp(-params.alpha * jnp.log(n))
        + jnp.exp(jnp.log(params.b) - params.beta * jnp.log(d))
    )
    return jnp.where(valid, value, jnp.nan)


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
      ValueError: for concrete invalid inputs or shapes that do not broadcast.

    Examples:
      >>> from jscale.laws import moe
      >>> f"{float(moe.fine_grained_params(1024, 16, 64)):.4g}"
      '8.657e+09'
    """
    valid, (w, blocks, e) = _prepare(
        ("d_model", d_model, _POSITIVE),
        ("n_blocks", n_blocks, _POSITIVE),
        ("expansion_rate", expansion_rate, _POSITIVE),
    )
    return jnp.where(valid, w * w * (8.0 * e + 4.0) * blocks, jnp.nan)


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
      ValueError: for concrete invalid inputs or shapes that do not broadcast.

    Examples:
      >>> from jscale.laws import moe
      >>> f"{float(moe.fine_grained_flops(1024, 16, 1e10, 64, 8)):.4g}"
      '1.325e+19'
    """
    valid, (w, blocks, d, e, g) = _prepare(
        ("d_model", d_model, _POSITIVE),
        ("n_blocks", n_blocks, _POSITIVE),
        ("n_tokens", n_tokens, _POSITIVE),
        ("expansion_rate", expansion_rate, _POSITIVE),
        ("granularity", granularity, _POSITIVE),
    )
    value = (12.0 * w * w * c_f + w * e * g * c_r) * d * blocks
    return jnp.where(valid, value, jnp.nan)


KRAJEWSKI_FAMILY = Family(
    name="moe-krajewski2024",
    params_type=KrajewskiParams,
    loss=krajewski_loss,
    inputs=("n_params", "n_tokens", "granularity"),
    formula="L = c + (g / G^gamma + a) / N^alpha + b / D^beta",
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


# ---------------------------------------------------------------------------------
# Ludziejewski et al. 2025: joint MoE scaling law
# ---------------------------------------------------------------------------------


class JointMoEParams(NamedTuple):
    """Constants of Ludziejewski's joint law (Eq. 6, natural logarithms).

    ``L = a Ê^delta N_act^(alpha + gamma ln Ê) + b Ê^omega D^(beta + zeta ln Ê) + c``,
    with Clark's Ê. The exponents enter as written: ``alpha`` and ``beta`` are
    negative.

    Leaves may be Python floats or arrays; a leading axis holds many laws at once.
    """

    a: ArrayLike
    alpha: ArrayLike
    delta: ArrayLike
    gamma: ArrayLike
    b: ArrayLike
    beta: ArrayLike
    omega: ArrayLike
    zeta: ArrayLike
    e_start: ArrayLike
    e_max: ArrayLike
    c: ArrayLike


def joint_loss(
    params: JointMoEParams,
    n_active_params: ArrayLike,
    n_tokens: ArrayLike,
    experts: ArrayLike,
) -> jax.Array:
    """Joint MoE loss (Ludziejewski 2025, Eq. 6).

    ``a Ê^delta N_act^(alpha + gamma ln Ê) + b Ê^omega D^(beta + zeta ln Ê) + c``,
    each term evaluated as one ``exp`` of a sum of logs. For a fixed E it is a
    Chinchilla-form law in (N_act, D); E = 1 (dense) gives Ê = E_start.

    Args:
      params: the law's constants.
      n_active_params: active parameters N_act (> 0; embeddings included), any
        shape.
      n_tokens: training tokens D (> 0), broadcastable.
      experts: experts E (>= 1; top-1 routing), broadcastable.

    Returns:
      The loss in nats per token with the broadcast shape; NaN under ``jax.jit``
      where an input is invalid.

    Raises:
      ValueError: for concrete invalid inputs or shapes that do not broadcast.

    Examples:
      >>> from jscale.laws import moe
      >>> p = moe.LUDZIEJEWSKI2025.params
      >>> round(float(moe.joint_loss(p, 1e9, 2e10, 1.0)), 4)  # dense
      2.5776
      >>> round(float(moe.joint_loss(p, 1e9, 2e10, 8.0)), 4)  # 8 experts
      2.5088
    """
    valid, (n, d, e) = _prepare(
        ("n_active_params", n_active_params, _POSITIVE),
        ("n_tokens", n_tokens, _POSITIVE),
        ("experts", experts, _AT_LEAST_ONE),
    )
    log_e = log_expert_hat(e, params.e_start, params.e_max)
    log_n_term = (
        jnp.log(params.a)
        + params.delta * log_e
        + (params.alpha + params.gamma * log_e) * jnp.log(n)
    )
    log_d_term = (
        jnp.log(params.b)
        + params.omega * log_e
        + (params.beta + params.zeta * log_e) * jnp.log(d)
    )
    value = jnp.exp(log_n_term) + jnp.exp(log_d_term) + params.c
    return jnp.where(valid, value, jnp.nan)


def _blocks(d_model: jax.Array, n_blocks) -> jax.Array:
    return d_model / JOINT_WIDTH_PER_BLOCK if n_blocks is None else n_blocks


def joint_total_params(
    d_model: ArrayLike,
    experts: ArrayLike,
    n_blocks: ArrayLike | None = None,
    vocab: ArrayLike = JOINT_VOCAB,
) -> jax.Array:
    """Total parameters ``2 d_model V + (4 + 9E) n_blocks d_model^2`` (Ludziejewski).

    Input and output embeddings (``2 d_model V``), attention (``4 d_model^2``) and
    E SwiGLU experts of hidden size ``3 d_model`` (``9 d_model^2`` each) per block.

    Args:
      d_model: residual width (> 0).
      experts: experts E (>= 1).
      n_blocks: blocks (> 0); ``None`` for their ``d_model / 64``.
      vocab: vocabulary size V (default 50257, the GPT-2 tokenizer).

    Returns:
      Parameters with the broadcast shape; NaN under jit for invalid elements.

    Raises:
      ValueError: for concrete invalid inputs or shapes that do not broadcast.

    Examples:
      >>> from jscale.laws import moe
      >>> f"{float(moe.joint_total_params(1024, 8)):.4g}"
      '1.378e+09'
    """
    specs = [("d_model", d_model, _POSITIVE), ("experts", experts, _AT_LEAST_ONE)]
    if n_blocks is not None:
        specs.append(("n_blocks", n_blocks, _POSITIVE))
    valid, (w, e, *rest) = _prepare(*specs)
    blocks = _blocks(w, rest[0] if rest else None)
    value = 2.0 * w * vocab + (4.0 + 9.0 * e) * blocks * w * w
    return jnp.where(valid, value, jnp.nan)


def joint_active_params(
    d_model: ArrayLike,
    n_blocks: ArrayLike | None = None,
    vocab: ArrayLike = JOINT_VOCAB,
) -> jax.Array:
    """Active parameters ``2 d_model V + 13 n_blocks d_model^2`` (Ludziejewski).

    With top-1 routing a token uses attention and one expert per block, whatever E.

    Args:
      d_model: residual width (> 0).
      n_blocks: blocks (> 0); ``None`` for their ``d_model / 64``.
      vocab: vocabulary size V (default 50257).

    Returns:
      Parameters with the broadcast shape; NaN under jit for invalid elements.

    Raises:
      ValueError: for concrete invalid inputs or shapes that do not broadcast.

    Examples:
      >>> from jscale.laws import moe
      >>> f"{float(moe.joint_active_params(1024)):.4g}"
      '3.21e+08'
    """
    specs = [("d_model", d_model, _POSITIVE)]
    if n_blocks is not None:
        specs.append(("n_blocks", n_blocks, _POSITIVE))
    valid, (w, *rest) = _prepare(*specs)
    blocks = _blocks(w, rest[0] if rest else None)
    value = 2.0 * w * vocab + 13.0 * blocks * w * w
    return jnp.where(valid, value, jnp.nan)


def joint_kv_cache_values(
    d_model: ArrayLike, context: ArrayLike, n_blocks: ArrayLike | None = None
) -> jax.Array:
    """KV-cache size in values, ``2 T n_blocks d_model`` for context T (Ludziejewski).

    One key and one value vector of width d_model per block and cached token; in
    bf16 each value takes 2 bytes (for bytes with other formats see
    :func:`jscale.accounting.kv_cache_bytes`).

    Args:
      d_model: residual width (> 0).
      context: cached tokens T (> 0).
      n_blocks: blocks (> 0); ``None`` for their ``d_model / 64``.

    Returns:
      Values with the broadcast shape; NaN under jit for invalid elements.

    Raises:
      ValueError: for concrete invalid inputs or shapes that do not broadcast.

    Examples:
      >>> from jscale.laws import moe
      >>> f"{float(moe.joint_kv_cache_values(1024, 4096)):.4g}"
      '1.342e+08'
    """
    specs = [("d_model", d_model, _POSITIVE), ("context", context, _POSITIVE)]
    if n_blocks is not None:
        specs.append(("n_blocks", n_blocks, _POSITIVE))
    valid, (w, t, *rest) = _prepare(*specs)
    blocks = _blocks(w, rest[0] if rest else None)
    return jnp.where(valid, 2.0 * t * blocks * w, jnp.nan)


JOINT_FAMILY = Family(
    name="moe-ludziejewski2025",
    params_type=JointMoEParams,
    loss=joint_loss,
    inputs=("n_active_params", "n_tokens", "experts"),
    formula=(
        "L = a Ê^delta N_act^(alpha + gamma ln Ê) + b Ê^omega D^(beta + zeta ln Ê) "
        "+ c; Ê as in Clark 2022"
    ),
)

LUDZIEJEWSKI2025 = Preset(
    name="moe-ludziejewski2025",
    family=JOINT_FAMILY,
    params=JointMoEParams(
        a=35.91,
        alpha=-0.1889,
        delta=-0.2285,
        gamma=0.0098,
        b=35.98,
        beta=-0.1775,
        omega=0.5529,
        zeta=-0.0259,
        e_start=2.0732,
        e_max=290.4521,
        c=1.3637,
    ),
    citation=(
        "Ludziejewski et al. 2025, Joint MoE Scaling Laws: Mixture of Experts Can Be "
        "Memory Efficient, arXiv:2502.05172, Eq. 6 with the constants of Table 3"
    ),
    units=(
        "N_act: active parameters incl. embeddings, 2 d_model V + 13 n_blocks "
        "d_model^2; D: training tokens; E: experts (top-1); loss: nats/token"
    ),
    notes=(
        "Exponents as printed (alpha, beta < 0, no minus sign in the formula). The "
        "signs agree with the paper's numeric form of the law, "
        "35.91 Ê^-0.2285 N_act^(-0.1889 + 0.0098 ln Ê) + 35.98 Ê^0.5529 "
        "D^(-0.1775 - 0.0259 ln Ê) + 1.3637. Fitted on runs up to 2.7B active and "
        "5B total parameters, E <= 32."
    ),
)


# ---------------------------------------------------------------------------------
# Abnar et al. 2025: optimal sparsity
# ---------------------------------------------------------------------------------


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
      ValueError: for concrete invalid inputs or shapes that do not broadcast.

    Examples:
      >>> from jscale.laws import moe
      >>> p = moe.AbnarParams(1.0, 0.3, 1.0, 0.3, 0.1, -0.5, 0.1, 0.5, 0.1, 1.7)
      >>> round(float(moe.abnar_loss(p, 1e9, 1e10, 0.0)), 4)
      1.8156
    """
    valid, (n, d, s) = _prepare(
        ("n_params", n_params, _POSITIVE),
        ("n_tokens", n_tokens, _POSITIVE),
        ("sparsity", sparsity, _SPARSITY),
    )
    log_n, log_d, log_dense = jnp.log(n), jnp.log(d), jnp.log1p(-s)
    value = (
        jnp.exp(jnp.log(params.a) - params.alpha * log_n)
        + jnp.exp(jnp.log(params.b) - params.beta * log_d)
        + params.c * jnp.exp(-params.lam * log_dense)
        + params.d * jnp.exp(-params.delta * log_dense - params.gamma * log_n)
        + params.e
    )
    return jnp.where(valid, value, jnp.nan)


ABNAR2025_FAMILY = Family(
    name="moe-abnar2025",
    params_type=AbnarParams,
    loss=abnar_loss,
    inputs=("n_params", "n_tokens", "sparsity"),
    formula=(
        "L = a/N^alpha + b/D^beta + c/(1 - S)^lambda + d/((1 - S)^delta N^gamma) + e"
    ),
)

PRESETS = {
    p.name: p
    for p in (
        CLARK2022_SBASE,
        CLARK2022_RLR,
        CLARK2022_HASH,
        KRAJEWSKI2024,
        KRAJEWSKI2024_DENSE,
        LUDZIEJEWSKI2025,
    )
}
