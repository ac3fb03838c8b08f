"""Closed-form optima and rules of thumb under a training budget ``C = 6 N D``.

- :func:`chinchilla_optimal`: Hoffmann et al. 2022's Eq. 4 for the Chinchilla form.
- :func:`kaplan_optimal`: the optimum of Kaplan et al. 2020's joint law ``L(N, D)``.
- :func:`tokens_per_param_rule`: ``D = r N`` (the popular ``r = 20``).
- :func:`kaplan_frontier`: Kaplan 2020's compute-efficient frontier (early stopping).

The log-space closed forms :func:`chinchilla_log_n` and :func:`kaplan_log_n` also
seed the numerical engine (:mod:`.engine`), whose answers they check.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from .. import _checks
from ..laws import chinchilla, kaplan
from ._common import CONVERGED, INFEASIBLE, LOG6, NONFINITE, assemble, pick
from .results import AllocationResult


def chinchilla_log_n(p, log_c6):
    """Hoffmann 2022 Eq. 4 in log space: ``log N_opt`` for ``C/6 = exp(log_c6)``."""
    s = p.alpha + p.beta
    log_g = (jnp.log(p.alpha * p.A) - jnp.log(p.beta * p.B)) / s
    return log_g + (p.beta / s) * log_c6


def kaplan_log_n(p, log_c6):
    """``log N_opt`` of Kaplan's joint law along ``6 N D = exp(log_c6) * 6``."""
    ratio = p.alpha_n / p.alpha_d
    return (jnp.log(ratio) + ratio * jnp.log(p.n_c) + log_c6 - jnp.log(p.d_c)) / (
        ratio + 1.0
    )


def _finish(log_n, log_d, loss, compute_flops) -> AllocationResult:
    """Status and NaN flags for a closed-form allocation; raise eagerly.

    An optimum with fewer than one parameter or one token, or an invalid budget,
    is ``INFEASIBLE``; the result reports the budget it was given.
    """
    n, d = jnp.exp(log_n), jnp.exp(log_d)
    status = jnp.where((log_n < 0) | (log_d < 0), INFEASIBLE, CONVERGED)
    status = jnp.where(
        jnp.isfinite(n) & jnp.isfinite(d) & jnp.isfinite(loss), status, NONFINITE
    )
    status = jnp.where(_checks.positive(compute_flops), status, INFEASIBLE)
    out = assemble(status, n, d, loss, compute_flops)
    out = out._replace(compute_flops=compute_flops)
    if _checks.is_concrete(out.status) and bool(jnp.any(out.status == INFEASIBLE)):
        idx = tuple(int(i) for i in jnp.argwhere(out.status == INFEASIBLE)[0])
        where = f" at index {idx}" if out.status.ndim else ""
        raise ValueError(
            f"compute_flops = {pick(compute_flops, idx):.6g}{where} is infeasible: "
            "the optimum would have fewer than one parameter or one token; use a "
            "larger budget"
        )
    return out


def chinchilla_optimal(
    params: chinchilla.ChinchillaParams, compute_flops: ArrayLike
) -> AllocationResult:
    """Closed-form optimum of the Chinchilla form under ``C = 6 N D``.

    Hoffmann et al. 2022, Eq. 4: ``N_opt = G (C/6)^a``, ``D_opt = G^-1 (C/6)^b`` with
    ``G = (alpha A / (beta B))^(1/(alpha+beta))``, ``a = beta/(alpha+beta)`` and
    ``b = alpha/(alpha+beta)``, evaluated in log space.

    Args:
      params: Chinchilla-form constants (leaves may be arrays, broadcasting with C).
      compute_flops: training budgets C in FLOPs (> 0), any shape.

    Returns:
      An :class:`AllocationResult`.

    Examples:
      >>> r = chinchilla_optimal(chinchilla.HOFFMANN2022.params, 1e24)
      >>> round(float(r.n_params) / 1e9, 1), round(float(r.n_tokens) / 1e12, 2)
      (41.3, 4.04)
    """
    c = _checks.check_positive("compute_flops", compute_flops)
    E, A, B, alpha, beta = params
    s = alpha + beta
    log_g = (jnp.log(alpha * A) - jnp.log(beta * B)) / s
    log_c6 = jnp.log(c) - LOG6
    log_n = log_g + (beta / s) * log_c6
    log_d = -log_g + (alpha / s) * log_c6
    loss = E + jnp.exp(jnp.log(A) - alpha * log_n) + jnp.exp(jnp.log(B) - beta * log_d)
    return _finish(log_n, log_d, loss, c)


def kaplan_optimal(
    params: kaplan.KaplanParams, compute_flops: ArrayLike
) -> AllocationResult:
    """Optimum of Kaplan's joint law ``L(N, D)`` (Kaplan et al. 2020, Eq. 4.1) under
    ``C = 6 N D``.

    With ``p = alpha_N / alpha_D`` the law is ``[(N_c/N)^p + D_c/D]^alpha_D``; along
    ``D = C / (6 N)`` the bracket is minimized where
    ``N^(p+1) = p N_c^p C / (6 D_c)``, a closed form. N is non-embedding parameters,
    so C here is non-embedding compute in FLOPs.

    Note this is the optimum of the fitted ``L(N, D)`` surface at fixed ``6ND``, not
    Kaplan's compute-efficient frontier (App. B), which also accounts for early
    stopping and batch size; see :func:`kaplan_frontier` for the latter.

    Args:
      params: Kaplan joint-law constants.
      compute_flops: non-embedding training FLOPs C (> 0).

    Returns:
      An :class:`AllocationResult`.
    """
    c = _checks.check_positive("compute_flops", compute_flops)
    n_c, d_c, alpha_n, alpha_d = params.n_c, params.d_c, params.alpha_n, params.alpha_d
    p = alpha_n / alpha_d
    log_c6 = jnp.log(c) - LOG6
    log_n = (jnp.log(p) + p * jnp.log(n_c) + log_c6 - jnp.log(d_c)) / (p + 1.0)
    log_d = log_c6 - log_n
    bracket = jnp.logaddexp(p * (jnp.log(n_c) - log_n), jnp.log(d_c) - log_d)
    return _finish(log_n, log_d, jnp.exp(alpha_d * bracket), c)


def tokens_per_param_rule(
    compute_flops: ArrayLike, tokens_per_param: ArrayLike = 20.0
) -> tuple[jax.Array, jax.Array]:
    """Rule of thumb: a fixed ratio of tokens to parameters, ``D = r N``.

    ``r = 20`` is the popular reading of Hoffmann et al. 2022 (Table 3: 70B parameters
    on 1.4T tokens); it is a rule of thumb, not the fitted optimum, and it is not
    Kaplan's (Kaplan's frontier favours far fewer tokens, see :func:`kaplan_frontier`).
    Under ``C = 6 N D``: ``N = sqrt(C / (6 r))``, ``D = r N``.

    Returns:
      ``(n_params, n_tokens)``.

    Examples:
      >>> n, d = tokens_per_param_rule(5.88e23)  # 6 * 70e9 * 1.4e12
      >>> round(float(n) / 1e9), round(float(d) / 1e12, 2)
      (70, 1.4)
    """
    c = _checks.check_positive("compute_flops", compute_flops)
    r = _checks.check_positive("tokens_per_param", tokens_per_param)
    log_n = 0.5 * (jnp.log(c) - LOG6 - jnp.log(r))
    return jnp.exp(log_n), jnp.exp(log_n + jnp.log(r))


def kaplan_frontier(compute_flops: ArrayLike) -> tuple[jax.Array, jax.Array]:
    """Kaplan et al. 2020's compute-efficient frontier, a rule of thumb.

    ``N_opt = 1.3e9 C_min^0.73`` and ``D_opt = 2e10 C_min^0.27`` with ``C_min`` in
    PF-days (Kaplan 2020, App. A / Eq. 1.7 and Tables 5-6). N is non-embedding
    parameters. These come from training runs stopped early (not run to convergence at
    fixed ``6ND``), so ``6 N D`` does not equal the budget; the frontier predates and
    disagrees with Hoffmann 2022 (Table 2: exponents 0.73 / 0.27 against 0.50 / 0.50).

    Args:
      compute_flops: budgets in FLOPs (converted to PF-days with 8.64e19 FLOP/PF-day).

    Returns:
      ``(n_params, n_tokens)``.
    """
    c = _checks.check_positive("compute_flops", compute_flops)
    log_pf = jnp.log(c) - math.log(kaplan.PF_DAY_FLOPS)
    n = jnp.exp(math.log(1.3e9) + 0.73 * log_pf)
    d = jnp.exp(math.log(2e10) + 0.27 * log_pf)
    return n, d
