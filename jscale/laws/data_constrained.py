"""Data-constrained scaling: repeated tokens and excess parameters lose value.

Muennighoff et al. 2023, "Scaling Data-Constrained Language Models"
(arXiv:2305.16264), Sec. 3, with the fitted constants of the authors' repository
(huggingface/datablations, README "Parametric Fit" and ``utils/parametric_fit.ipynb``,
commit 1370131). The Chinchilla form is evaluated at an *effective* data and
parameter count:

``L(N, D, U) = E + A / N'^alpha + B / D'^beta``, with

- ``U_D = min(U, D)``, the unique tokens actually seen (all of them once ``D >= U``),
- ``R_D = max(D / U_D - 1, 0)``, the repetitions (epochs minus one),
- ``D' = U_D + U_D R_D* (1 - exp(-R_D / R_D*))``,
- ``U_N = min(N, N_opt(U_D))``, where ``N_opt(U_D) = G (G U_D)^(beta/alpha)`` and
  ``G = (alpha A / (beta B))^(1/(alpha+beta))`` is the compute-optimal parameter
  count for ``U_D`` tokens under the law's own constants (Hoffmann 2022, Eq. 4),
- ``R_N = max(N / U_N - 1, 0)``, the "excess" parameters in units of ``U_N``,
- ``N' = U_N + U_N R_N* (1 - exp(-R_N / R_N*))``.

The k-th repetition of the data is worth ``exp(-k / R_D*)`` of a fresh pass
(``dD'/dD = exp(-R_D / R_D*)``), so ``R_D*`` is the e-folding number of repetitions
and ``D'`` saturates at ``U_D (1 + R_D*)``; likewise for parameters with ``R_N*``.

Semantics checked in the repository: ``U`` is the number of unique tokens
available; the README's ``optimal_allocation`` and the notebook's plots pass
``U = min(U, D)`` to the law, so a run shorter than one epoch sees ``U_D = D``
unique tokens. Then ``R_D = 0`` and ``D' = D``; the law equals the Chinchilla form
with the same constants only while also ``N <= N_opt(D)``: a model larger than
compute-optimal for its unique data has decaying excess parameters even in a single
epoch (this follows from ``U_N = min(N, N_opt(U_D))`` in the authors' README and
notebook).

``N`` counts all parameters, ``D`` training tokens, ``U`` unique tokens; the loss is
in nats per token on the authors' C4 validation set.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from .._numerics import power_term
from ._inputs import checked
from ._registry import Preset, family


class DataConstrainedParams(NamedTuple):
    """Constants of the data-constrained law (Muennighoff 2023, Sec. 3).

    Attributes:
      E: irreducible loss.
      A: parameter coefficient.
      B: data coefficient.
      alpha: parameter exponent.
      beta: data exponent.
      r_d_star: ``R_D*``, the e-folding number of data repetitions.
      r_n_star: ``R_N*``, the e-folding number of excess-parameter multiples.

    Leaves may be Python floats or arrays; a leading axis holds many laws at once.
    """

    E: ArrayLike
    A: ArrayLike
    B: ArrayLike
    alpha: ArrayLike
    beta: ArrayLike
    r_d_star: ArrayLike
    r_n_star: ArrayLike


def _log_decayed(log_x: jax.Array, log_unique: jax.Array, r_star) -> jax.Array:
    """``log X'`` with ``X' = U + U R* (1 - exp(-R/R*))`` and ``R = max(X/U - 1, 0)``.

    Here ``U`` is capped at ``X`` (``log U_X = min(log X, log U)``), so that
    ``R = expm1(log X - log U_X) >= 0`` and ``log X' = log U_X + g(R)`` with
    ``g(R) = log1p(R* (1 - exp(-R/R*)))``. ``expm1`` and ``log1p`` keep a fraction
    of an epoch accurate.

    At the kink ``X = U``, ``jnp.minimum`` sends a share ``s`` of the gradient to
    ``log X`` and ``1 - s`` to ``log U``; the path through ``R`` adds back
    ``(1 - s) g'(0)`` to ``log X`` and ``-(1 - s) g'(0)`` to ``log U``. Since
    ``g'(0) = 1`` the gradient is the true one, (1, 0), whatever ``s``. Past the
    kink the gradient with respect to ``log X`` flows only through ``R`` (it is
    small, and is not formed as a difference of two numbers near 1).
    """
    log_capped = jnp.minimum(log_x, log_unique)
    repeats = jnp.expm1(log_x - log_capped)
    return log_capped + jnp.log1p(r_star * _one_minus_exp_neg(repeats / r_star))


def _one_minus_exp_neg(t: jax.Array) -> jax.Array:
    """``1 - exp(-t)`` for ``t >= 0``, accurate in value and gradient.

    ``-expm1(-t)`` is accurate for small ``t``, but JAX differentiates ``expm1`` as
    ``expm1(x) + 1``, which for large ``t`` recovers ``exp(-t)`` from a difference
    of two numbers near 1 (1% error at t = 12 in float32). ``1 - exp(-t)`` has the
    exact derivative ``exp(-t)`` and no cancellation once ``t`` is not small. Both
    branches are finite everywhere, so a single ``where`` is safe.
    """
    return jnp.where(t < 0.5, -jnp.expm1(-t), 1.0 - jnp.exp(-t))


def _log_g(params: DataConstrainedParams):
    """``log G`` with ``G = (alpha A / (beta B))^(1/(alpha+beta))`` (Hoffmann Eq. 4)."""
    return (
        jnp.log(params.alpha)
        + jnp.log(params.A)
        - jnp.log(params.beta)
        - jnp.log(params.B)
    ) / (params.alpha + params.beta)


def log_unique_params(params: DataConstrainedParams, log_unique: jax.Array):
    """``log N_opt(U_D)``, ``N_opt(U_D) = G (G U_D)^(beta/alpha)``."""
    log_g = _log_g(params)
    return log_g + (params.beta / params.alpha) * (log_g + log_unique)


def log_repeated(log_x, log_unique, r_star):
    """``log X'`` for ``X`` repeated over ``U`` unique items with e-folding ``R*``.

    ``X' = U + U R* (1 - exp(-(X/U - 1)/R*))`` for ``X > U`` (``X`` otherwise):
    Muennighoff et al. 2023's discount of repeated data (Sec. 3), for any law
    (``R* = R_D*``) and in log space, with no checks. See
    :func:`log_effective_data` for this law's own constants.
    """
    return _log_decayed(log_x, log_unique, r_star)


def log_effective_data(params, log_d, log_u):
    """``log D'`` from ``log D`` and ``log U`` (Muennighoff 2023, Sec. 3), no checks.

    The log-space kernel behind :func:`effective_data`, for solvers that work in
    log space; ``U`` is capped at ``D`` itself (``U_D = min(U, D)``).
    """
    return _log_decayed(log_d, log_u, params.r_d_star)


def log_effective_params(params, log_n, log_u_d):
    """``log N'`` from ``log N`` and ``log U_D`` (Muennighoff 2023, Sec. 3), no checks.

    The log-space kernel behind :func:`effective_params`.
    """
    return _log_decayed(log_n, log_unique_params(params, log_u_d), params.r_n_star)


@checked
def effective_data(
    params: DataConstrainedParams, n_tokens: ArrayLike, unique_tokens: ArrayLike
) -> jax.Array:
    """Effective data ``D' = U_D + U_D R_D* (1 - exp(-R_D / R_D*))`` (Sec. 3).

    Args:
      params: the law's constants (only ``r_d_star`` is used).
      n_tokens: training tokens D (> 0), any shape.
      unique_tokens: unique tokens available U (> 0), broadcastable against
        ``n_tokens``; ``U >= D`` means no repetition.

    Returns:
      ``D'`` in tokens, ``<= D``, with the broadcast shape; NaN under ``jax.jit``
      where an input is invalid.

    Raises:
      ValueError: for a concrete D or U that is not finite and > 0, or shapes that
        do not broadcast.

    Examples:
      >>> from jscale.laws import data_constrained as dc
      >>> p = dc.MUENNIGHOFF2023.params
      >>> round(float(dc.effective_data(p, 4e9, 1e9) / 1e9), 3)  # 4 epochs of 1B
      3.726
    """
    log_d, log_u = jnp.log(n_tokens), jnp.log(unique_tokens)
    return jnp.exp(log_effective_data(params, log_d, log_u))


@checked
def effective_params(
    params: DataConstrainedParams, n_params: ArrayLike, unique_tokens: ArrayLike
) -> jax.Array:
    """Effective parameters ``N' = U_N + U_N R_N* (1 - exp(-R_N / R_N*))`` (Sec. 3).

    ``U_N = min(N, N_opt(U_D))`` with ``N_opt(U_D) = G (G U_D)^(beta/alpha)``, the
    compute-optimal size for the unique tokens seen, and ``R_N = N / U_N - 1``.

    Args:
      params: the law's constants.
      n_params: parameters N (> 0), any shape.
      unique_tokens: unique tokens *seen in training*, ``U_D = min(U, D)`` (> 0),
        broadcastable against ``n_params``.

    Returns:
      ``N'``, ``<= N``, with the broadcast shape; NaN under ``jax.jit`` where an
      input is invalid.

    Raises:
      ValueError: for a concrete N or U_D that is not finite and > 0, or shapes
        that do not broadcast.

    Examples:
      >>> from jscale.laws import data_constrained as dc
      >>> p = dc.MUENNIGHOFF2023.params
      >>> round(float(dc.effective_params(p, 1e8, 25e9) / 1e8), 6)  # N < N_opt(U_D)
      1.0
      >>> round(float(dc.effective_params(p, 8.67e9, 25e9) / 1e9), 2)
      5.77
    """
    log_n, log_u = jnp.log(n_params), jnp.log(unique_tokens)
    return jnp.exp(log_effective_params(params, log_n, log_u))


@checked
def loss(
    params: DataConstrainedParams,
    n_params: ArrayLike,
    n_tokens: ArrayLike,
    unique_tokens: ArrayLike,
) -> jax.Array:
    """Data-constrained loss ``E + A / N'^alpha + B / D'^beta`` (Muennighoff 2023).

    Computed in log space: ``log D'`` and ``log N'`` come from ``log D``, ``log N``
    and ``log U`` through ``log1p``/``expm1`` (see the module docstring for the
    definitions), then ``E + exp(log A - alpha log N') + exp(log B - beta log D')``,
    elementwise with broadcasting. The ``min``/``max`` of the formula are smooth
    where they switch (``D'`` at ``D = U``, ``N'`` at ``N = N_opt(U_D)``); the one
    true kink is ``U_D = min(U, D)`` inside ``N_opt`` for ``N > N_opt``, where the
    gradient stays finite. The dtype follows the inputs.

    Args:
      params: the law's constants.
      n_params: parameters N (> 0), any shape.
      n_tokens: training tokens D (> 0), broadcastable.
      unique_tokens: unique tokens available U (> 0), broadcastable; ``U >= D``
        means a single pass over fresh data.

    Returns:
      The loss in nats per token, with the broadcast shape. Under ``jax.jit``,
      elements with a non-positive or non-finite input are NaN.

    Raises:
      ValueError: for concrete non-positive, NaN or infinite inputs, or shapes that
        do not broadcast.

    Examples:
      >>> from jscale.laws import data_constrained as dc
      >>> p = dc.MUENNIGHOFF2023.params
      >>> # The two models of the paper's Figure 1 (right), 25B unique tokens:
      >>> round(float(dc.loss(p, 6.34e9, 242e9, 25e9)), 4)
      2.2256
      >>> round(float(dc.loss(p, 8.67e9, 178e9, 25e9)), 4)
      2.227
    """
    log_n, log_d, log_u = (jnp.log(v) for v in (n_params, n_tokens, unique_tokens))
    log_d_eff = log_effective_data(params, log_d, log_u)
    log_u_d = jnp.minimum(log_u, log_d)
    log_n_eff = log_effective_params(params, log_n, log_u_d)
    return (
        params.E
        + power_term(jnp.log(params.A), params.alpha, log_n_eff)
        + power_term(jnp.log(params.B), params.beta, log_d_eff)
    )


FAMILY = family(
    "data-constrained",
    DataConstrainedParams,
    loss,
    (
        "L = E + A / N'^alpha + B / D'^beta; D' = U_D (1 + R_D* (1 - exp(-R_D/R_D*))), "
        "N' = U_N (1 + R_N* (1 - exp(-R_N/R_N*)))"
    ),
)

# Fitted constants [a, b, e, alpha, beta, R_D*, R_N*] with A, B, E = exp(a, b, e):
# a, b, e and alpha = beta from the authors' fit to Chinchilla's C4 isoFLOP points,
# then R_D*, R_N* fitted on their 182 runs with the first five frozen.
_A_LOG, _B_LOG, _E_LOG = 6.255414, 7.3049974, 0.6254804

MUENNIGHOFF2023 = Preset(
    name="muennighoff2023",
    family=FAMILY,
    params=DataConstrainedParams(
        E=math.exp(_E_LOG),
        A=math.exp(_A_LOG),
        B=math.exp(_B_LOG),
        alpha=0.3526596,
        beta=0.3526596,
        r_d_star=15.387756,
        r_n_star=5.309743,
    ),
    citation=(
        "Muennighoff et al. 2023, Scaling Data-Constrained Language Models, "
        "arXiv:2305.16264, Sec. 3; constants [a, b, e, alpha, beta, R_D*, R_N*] = "
        "[6.255414, 7.3049974, 0.6254804, 0.3526596, 0.3526596, 15.387756, 5.309743] "
        "from huggingface/datablations (README 'Parametric Fit', "
        "utils/parametric_fit.ipynb)"
    ),
    units=(
        "N: parameters; D: training tokens; U: unique tokens available; "
        "loss: nats/token (C4 validation, GPT-2 tokenizer)"
    ),
    notes=(
        "A = exp(6.255414), B = exp(7.3049974), E = exp(0.6254804); alpha = beta tied. "
        "The authors note absolute losses are less useful than trends and comparisons."
    ),
)

PRESETS = {p.name: p for p in (MUENNIGHOFF2023,)}
