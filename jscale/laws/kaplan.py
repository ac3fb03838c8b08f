"""Kaplan et al. 2020, "Scaling Laws for Neural Language Models" (arXiv:2001.08361).

Units differ from Chinchilla's, and every name here says so:

- ``N`` counts *non-embedding* parameters (Kaplan, Sec. 1.2 and Table 1);
- ``D`` is training tokens;
- compute ``C_min`` is *non-embedding* training compute in **PF-days**
  (1 PF-day = 1e15 FLOP/s * 86400 s = 8.64e19 FLOP, :data:`PF_DAY_FLOPS`);
- ``S_min`` is optimizer steps at large batch (Sec. 5.1);
- the loss is cross-entropy in nats per token.

Laws and their constants:

- ``L(N) = (N_c/N)^alpha_N``, alpha_N = 0.076, N_c = 8.8e13 (Eq. 1.1):
  :func:`loss_n`, preset ``"kaplan2020-n"``.
- ``L(D) = (D_c/D)^alpha_D``, alpha_D = 0.095, D_c = 5.4e13 (Eq. 1.2):
  :func:`loss_d`, preset ``"kaplan2020-d"``.
- ``L(C_min) = (C_c/C_min)^alpha_C``, alpha_C = 0.050, C_c = 3.1e8 PF-days (Eq. 1.3):
  :func:`loss_compute` in PF-days, and preset ``"kaplan2020-compute"`` of the
  :mod:`~jscale.laws.compute` family in FLOPs.
- ``L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D`` (Eq. 1.5 / 4.1) with its own
  fit (Table 2): alpha_N = 0.076, alpha_D = 0.103, N_c = 6.4e13, D_c = 1.8e13:
  :func:`loss`, preset ``"kaplan2020"``.
- ``L(N, S_min) = (N_c/N)^alpha_N + (S_c/S_min)^alpha_S`` (Eq. 1.6, Table 3):
  alpha_N = 0.077, alpha_S = 0.76, N_c = 6.5e13, S_c = 2.1e3: :func:`loss_steps`,
  preset ``"kaplan2020-steps"``.
- Critical batch size ``B_crit(L) = B_* / L^(1/alpha_B)``, B_* = 2e8 tokens,
  alpha_B = 0.21 (Eq. 1.4): :func:`critical_batch_size`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from .._numerics import power_term
from ..accounting import FLOPS_PER_PF_DAY
from ..accounting import flops_to_pf_days as flops_to_pf_days
from ..accounting import pf_days_to_flops as pf_days_to_flops
from . import compute
from ._inputs import checked
from ._registry import Preset, family

#: FLOPs in one PF-day: 1e15 FLOP/s for 86400 s (Kaplan 2020, Sec. 1.2 notation);
#: the conversions :func:`pf_days_to_flops` and :func:`flops_to_pf_days` live in
#: :mod:`jscale.accounting` with the other units.
PF_DAY_FLOPS = FLOPS_PER_PF_DAY


class KaplanParams(NamedTuple):
    """Constants of ``L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D``.

    Attributes:
      n_c: parameter scale N_c, in non-embedding parameters.
      d_c: data scale D_c, in tokens.
      alpha_n: parameter exponent alpha_N.
      alpha_d: data exponent alpha_D.

    Leaves may be Python floats or arrays; a leading axis holds many laws at once.
    """

    n_c: ArrayLike
    d_c: ArrayLike
    alpha_n: ArrayLike
    alpha_d: ArrayLike


class PowerLawParams(NamedTuple):
    """Constants of a one-variable law ``L(X) = (X_c / X)^alpha``.

    Attributes:
      x_c: scale X_c, in the units of the input (parameters, tokens or PF-days).
      alpha: exponent.
    """

    x_c: ArrayLike
    alpha: ArrayLike


class KaplanStepsParams(NamedTuple):
    """Constants of ``L(N, S_min) = (N_c/N)^alpha_N + (S_c/S_min)^alpha_S``.

    Attributes:
      n_c: parameter scale N_c, in non-embedding parameters.
      s_c: step scale S_c, in optimizer steps.
      alpha_n: parameter exponent alpha_N.
      alpha_s: step exponent alpha_S.
    """

    n_c: ArrayLike
    s_c: ArrayLike
    alpha_n: ArrayLike
    alpha_s: ArrayLike


def _power_law(params: PowerLawParams, x: jax.Array) -> jax.Array:
    """``(X_c / X)^alpha`` as ``exp(alpha (log X_c - log X))``, no checks."""
    return jnp.exp(params.alpha * (jnp.log(params.x_c) - jnp.log(x)))


@checked
def loss(params: KaplanParams, n_params: ArrayLike, n_tokens: ArrayLike) -> jax.Array:
    """Kaplan's joint law ``[(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D`` (Eq. 4.1).

    In log space: ``exp(alpha_D * logaddexp((alpha_N/alpha_D) log(N_c/N),
    log(D_c/D)))``, elementwise with broadcasting, so neither bracketed term is ever
    formed (``(N_c/N)^(alpha_N/alpha_D)`` reaches 1e12 at small N). The dtype follows
    the inputs.

    Args:
      params: the law's constants.
      n_params: non-embedding parameters N (> 0), any shape.
      n_tokens: training tokens D (> 0), broadcastable against ``n_params``.

    Returns:
      The loss in nats per token, with the broadcast shape. Under ``jax.jit``,
      elements with a non-positive or non-finite N or D are NaN.

    Raises:
      ValueError: for a concrete N or D that is not finite and > 0, or shapes that
        do not broadcast.

    Examples:
      >>> from jscale.laws import kaplan
      >>> p = kaplan.KAPLAN2020.params
      >>> round(float(kaplan.loss(p, 1.5e9, 1e10)), 3)  # GPT-2-sized, 10B tokens
      2.373
    """
    log_n_term = (params.alpha_n / params.alpha_d) * (
        jnp.log(params.n_c) - jnp.log(n_params)
    )
    log_d_term = jnp.log(params.d_c) - jnp.log(n_tokens)
    return jnp.exp(params.alpha_d * jnp.logaddexp(log_n_term, log_d_term))


@checked
def loss_n(params: PowerLawParams, n_params: ArrayLike) -> jax.Array:
    """Loss of converged models limited by size, ``(N_c/N)^alpha_N`` (Eq. 1.1).

    Args:
      params: ``PowerLawParams(x_c=N_c, alpha=alpha_N)``.
      n_params: non-embedding parameters N (> 0), any shape.

    Returns:
      The loss in nats per token; NaN under ``jax.jit`` where N is invalid.

    Raises:
      ValueError: for concrete non-positive, NaN or infinite N.

    Examples:
      >>> from jscale.laws import kaplan
      >>> round(float(kaplan.loss_n(kaplan.KAPLAN2020_N.params, 1e9)), 3)
      2.376
    """
    return _power_law(params, n_params)


@checked
def loss_d(params: PowerLawParams, n_tokens: ArrayLike) -> jax.Array:
    """Loss of large models limited by data (early stopping), ``(D_c/D)^alpha_D``.

    Kaplan 2020, Eq. 1.2. As :func:`loss_n`, with ``params = PowerLawParams(x_c=D_c,
    alpha=alpha_D)`` and training tokens D (> 0) in place of N.

    Examples:
      >>> from jscale.laws import kaplan
      >>> p = kaplan.KAPLAN2020_D.params  # D_c = 5.4e13, alpha_D = 0.095
      >>> round(float(kaplan.loss_d(p, 1e10)), 3)
      2.262
    """
    return _power_law(params, n_tokens)


@checked
def loss_compute(params: PowerLawParams, compute_pf_days: ArrayLike) -> jax.Array:
    """Loss on the compute-efficient frontier, ``(C_c/C_min)^alpha_C`` (Eq. 1.3).

    As :func:`loss_n`, with ``params = PowerLawParams(x_c=C_c, alpha=alpha_C)``
    (C_c in PF-days; Kaplan's are :data:`COMPUTE_PF_DAYS`) and the non-embedding
    training compute C_min in PF-days (> 0) in place of N. For compute in FLOPs use
    the preset ``"kaplan2020-compute"`` (the :mod:`~jscale.laws.compute` family).

    Examples:
      >>> from jscale.laws import kaplan
      >>> round(float(kaplan.loss_compute(kaplan.COMPUTE_PF_DAYS, 1.0)), 3)
      2.658
    """
    return _power_law(params, compute_pf_days)


@checked
def loss_steps(
    params: KaplanStepsParams, n_params: ArrayLike, steps: ArrayLike
) -> jax.Array:
    """Loss after ``S_min`` steps, ``(N_c/N)^alpha_N + (S_c/S_min)^alpha_S`` (Eq. 1.6).

    ``S_min`` is the number of steps needed at a batch much larger than the
    critical batch size; a run with batch ``B`` and ``S`` steps has
    ``S_min = S / (1 + B_crit(L) / B)`` (Kaplan 2020, Sec. 5.1).

    Args:
      params: the law's constants (Table 3).
      n_params: non-embedding parameters N (> 0), any shape.
      steps: optimizer steps S_min (> 0), broadcastable against ``n_params``.

    Returns:
      The loss in nats per token, with the broadcast shape; NaN under ``jax.jit``
      where an input is invalid.

    Raises:
      ValueError: for concrete non-positive, NaN or infinite N or S_min, or shapes
        that do not broadcast.

    Examples:
      >>> from jscale.laws import kaplan
      >>> round(float(kaplan.loss_steps(kaplan.KAPLAN2020_STEPS.params, 1e9, 1e5)), 3)
      2.401
    """
    return power_term(
        params.alpha_n * jnp.log(params.n_c), params.alpha_n, jnp.log(n_params)
    ) + power_term(params.alpha_s * jnp.log(params.s_c), params.alpha_s, jnp.log(steps))


@checked
def critical_batch_size(
    loss: ArrayLike, b_star: ArrayLike = 2e8, alpha_b: ArrayLike = 0.21
) -> jax.Array:
    """Critical batch size ``B_crit(L) = B_* / L^(1/alpha_B)``, in tokens (Eq. 1.4).

    Kaplan 2020, Sec. 5.1: the batch size beyond which larger batches buy little
    reduction in steps; it depends on the loss only, doubling for about every 13%
    decrease in loss. Defaults are Kaplan's fit, B_* = 2e8 tokens and alpha_B = 0.21.

    Args:
      loss: the loss L in nats per token (> 0), any shape.
      b_star: the scale B_*, in tokens.
      alpha_b: the exponent alpha_B.

    Returns:
      B_crit in tokens, with the shape of ``loss``; NaN under ``jax.jit`` where the
      loss is invalid.

    Raises:
      ValueError: for a concrete non-positive, NaN or infinite loss.

    Examples:
      >>> from jscale.laws import kaplan
      >>> f"{float(kaplan.critical_batch_size(3.0)):.3g}"
      '1.07e+06'
    """
    return jnp.exp(jnp.log(b_star) - jnp.log(loss) / alpha_b)


FAMILY = family(
    "kaplan", KaplanParams, loss, "L = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D"
)

FAMILY_N = family("kaplan-n", PowerLawParams, loss_n, "L = (N_c/N)^alpha_N")

FAMILY_D = family("kaplan-d", PowerLawParams, loss_d, "L = (D_c/D)^alpha_D")

FAMILY_STEPS = family(
    "kaplan-steps",
    KaplanStepsParams,
    loss_steps,
    "L = (N_c/N)^alpha_N + (S_c/S_min)^alpha_S",
)

_CITATION = (
    "Kaplan et al. 2020, Scaling Laws for Neural Language Models, arXiv:2001.08361"
)
_NOTE = (
    "Kaplan's N excludes embedding parameters; convert before comparing with "
    "Chinchilla-form laws, whose N includes them."
)

KAPLAN2020 = Preset(
    name="kaplan2020",
    family=FAMILY,
    params=KaplanParams(n_c=6.4e13, d_c=1.8e13, alpha_n=0.076, alpha_d=0.103),
    citation=f"{_CITATION}, Eq. 1.5 / 4.1 with the fit of Table 2",
    units="N: non-embedding parameters; D: training tokens; loss: nats/token",
    notes=_NOTE,
)

KAPLAN2020_N = Preset(
    name="kaplan2020-n",
    family=FAMILY_N,
    params=PowerLawParams(x_c=8.8e13, alpha=0.076),
    citation=f"{_CITATION}, Eq. 1.1",
    units="N: non-embedding parameters; loss: nats/token",
    notes="Models trained to convergence on enough data. " + _NOTE,
)

KAPLAN2020_D = Preset(
    name="kaplan2020-d",
    family=FAMILY_D,
    params=PowerLawParams(x_c=5.4e13, alpha=0.095),
    citation=f"{_CITATION}, Eq. 1.2",
    units="D: training tokens; loss: nats/token",
    notes="Large models trained with early stopping.",
)

#: ``L(C_min) = (C_c/C_min)^alpha_C`` with C_c in PF-days (Kaplan 2020, Eq. 1.3).
COMPUTE_PF_DAYS = PowerLawParams(x_c=3.1e8, alpha=0.050)

KAPLAN2020_COMPUTE = Preset(
    name="kaplan2020-compute",
    family=compute.FAMILY,
    params=compute.ComputeLawParams(
        A=(COMPUTE_PF_DAYS.x_c * PF_DAY_FLOPS) ** COMPUTE_PF_DAYS.alpha,
        alpha=COMPUTE_PF_DAYS.alpha,
    ),
    citation=(
        f"{_CITATION}, Eq. 1.3: alpha_C = 0.050, C_c = 3.1e8 PF-days, converted to "
        "FLOPs as A = (C_c * 8.64e19)^alpha_C"
    ),
    units="C: non-embedding training compute in FLOPs; loss: nats/token",
    notes=(
        "Loss on Kaplan's compute-efficient frontier (C_min). Non-embedding compute "
        "is about 6 N D with Kaplan's N; 1 PF-day = 8.64e19 FLOP."
    ),
)

KAPLAN2020_STEPS = Preset(
    name="kaplan2020-steps",
    family=FAMILY_STEPS,
    params=KaplanStepsParams(n_c=6.5e13, s_c=2.1e3, alpha_n=0.077, alpha_s=0.76),
    citation=f"{_CITATION}, Eq. 1.6 with the fit of Table 3",
    units=(
        "N: non-embedding parameters; S_min: optimizer steps at B >> B_crit; "
        "loss: nats/token"
    ),
    notes=_NOTE,
)

PRESETS = {
    p.name: p
    for p in (
        KAPLAN2020,
        KAPLAN2020_N,
        KAPLAN2020_D,
        KAPLAN2020_COMPUTE,
        KAPLAN2020_STEPS,
    )
}
