"""Compute-optimal allocation: closed forms, rules of thumb, and the optimum of any law.

Under a training budget ``C = 6 N D`` (Hoffmann et al. 2022, Sec. 3.3), choose the
parameters N and tokens D that minimize the loss. For the Chinchilla form the optimum
has a closed form (Hoffmann 2022, Eq. 4); so does Kaplan's joint law along the
isoFLOP line; other laws are minimized numerically along their isoFLOP slices.

Results carry a per-element ``status`` (0 means ok; see :data:`STATUS_MESSAGES`).
Concrete inputs that make a problem infeasible raise ``ValueError``; under ``jax.jit``
such elements come back with ``status == INFEASIBLE`` and NaN outputs.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from . import _checks
from .isoflop import isoflop_minimum
from .laws import chinchilla, data_constrained, kaplan
from .laws._registry import Preset

#: Per-element status codes of an allocation.
CONVERGED, MAX_STEPS, INFEASIBLE, NONFINITE, AT_BOUND = 0, 1, 2, 3, 4

STATUS_MESSAGES = {
    CONVERGED: "converged",
    MAX_STEPS: "stopped at max_steps before converging; increase max_steps",
    INFEASIBLE: "infeasible: the budget cannot buy one parameter trained on one token, "
    "or an input is out of range",
    NONFINITE: "non-finite value met while solving",
    AT_BOUND: "optimum at the edge of the searched tokens-per-parameter range; "
    "widen it",
}

_LOG6 = math.log(6.0)


class AllocationResult(NamedTuple):
    """A compute-optimal allocation, elementwise over budgets.

    Attributes:
      n_params: parameters N.
      n_tokens: training tokens D.
      loss: the law's predicted loss at (N, D).
      compute_flops: the training budget C = 6 N D.
      status: int32 codes, 0 when the element is valid (see :data:`STATUS_MESSAGES`).
    """

    n_params: jax.Array
    n_tokens: jax.Array
    loss: jax.Array
    compute_flops: jax.Array
    status: jax.Array

    @property
    def tokens_per_param(self) -> jax.Array:
        """D / N."""
        return self.n_tokens / self.n_params


def _finish(log_n, log_d, loss, compute_flops, extra_status=None) -> AllocationResult:
    """Status and NaN flags for an allocation computed in log space; raise eagerly."""
    n, d = jnp.exp(log_n), jnp.exp(log_d)
    status = jnp.where((log_n < 0) | (log_d < 0), INFEASIBLE, CONVERGED)
    status = jnp.where(
        jnp.isfinite(n) & jnp.isfinite(d) & jnp.isfinite(loss), status, NONFINITE
    )
    status = jnp.where(_checks.positive(compute_flops), status, INFEASIBLE)
    if extra_status is not None:
        status = jnp.where(status == CONVERGED, extra_status, status)
    status = status.astype(jnp.int32)
    bad = (status == INFEASIBLE) | (status == NONFINITE)
    n, d, loss = _checks.flag(~bad, n, d, loss)
    result = AllocationResult(n, d, loss, compute_flops, status)
    if _checks.is_concrete(status) and bool(jnp.any(status == INFEASIBLE)):
        idx = jnp.argwhere(status == INFEASIBLE)[0]
        where = f" at index {tuple(int(i) for i in idx)}" if status.ndim else ""
        c = float(jnp.asarray(compute_flops)[tuple(idx)])
        raise ValueError(
            f"compute_flops = {c:.6g}{where} is infeasible: the optimum would have "
            "fewer than one parameter or one token; use a larger budget"
        )
    return result


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
    log_c6 = jnp.log(c) - _LOG6
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
    log_c6 = jnp.log(c) - _LOG6
    log_n = (jnp.log(p) + p * jnp.log(n_c) + log_c6 - jnp.log(d_c)) / (p + 1.0)
    log_d = log_c6 - log_n
    bracket = jnp.logaddexp(p * (jnp.log(n_c) - log_n), jnp.log(d_c) - log_d)
    return _finish(log_n, log_d, jnp.exp(alpha_d * bracket), c)


def isoflop_optimal(
    loss_fn, params, compute_flops: ArrayLike, *args: ArrayLike, **search
) -> AllocationResult:
    """Numerical optimum of any law along ``C = 6 N D``.

    A bounded, derivative-guided 1-D search in ``log N`` on each isoFLOP slice (see
    :func:`jscale.isoflop.isoflop_minimum`, whose keyword options ``search`` are
    passed on). Elements whose optimum sits at the edge of the searched range come
    back with status ``AT_BOUND``.

    Args:
      loss_fn: ``loss_fn(params, n_params, n_tokens, *args)``, a module-level function.
      params: the law's constants.
      compute_flops: budgets C in FLOPs (> 0).
      *args: further inputs of ``loss_fn`` (e.g. unique tokens).

    Returns:
      An :class:`AllocationResult`.
    """
    c = _checks.check_positive("compute_flops", compute_flops)
    m = isoflop_minimum(loss_fn, params, c, *args, **search)
    shape = m.n_params.shape
    c = jnp.broadcast_to(c, shape)
    extra = jnp.where(m.at_bound, AT_BOUND, CONVERGED)
    return _finish(jnp.log(m.n_params), jnp.log(m.n_tokens), m.loss, c, extra)


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
    log_n = 0.5 * (jnp.log(c) - _LOG6 - jnp.log(r))
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


def optimal(
    law: str | Preset,
    compute_flops: ArrayLike,
    *,
    unique_tokens: ArrayLike | None = None,
) -> AllocationResult:
    """Compute-optimal N and D for a named law under ``C = 6 N D``.

    Chinchilla-form laws use the closed form (:func:`chinchilla_optimal`), Kaplan's
    joint law its own (:func:`kaplan_optimal`), and the data-constrained law
    (Muennighoff et al. 2023) the isoFLOP search with ``unique_tokens`` unique tokens
    available (default: unlimited, which reduces it to its Chinchilla form).

    Args:
      law: a preset name from :mod:`jscale.laws` or a :class:`~jscale.laws.Preset`
        whose family takes ``(n_params, n_tokens)`` or, for the data-constrained
        family, ``(n_params, n_tokens, unique_tokens)``.
      compute_flops: budgets C in FLOPs (> 0).
      unique_tokens: unique tokens U available (> 0), data-constrained laws only.

    Returns:
      An :class:`AllocationResult`.

    Examples:
      >>> r = optimal("chinchilla-besiroglu2024", 1e24)
      >>> round(float(r.tokens_per_param))
      18
    """
    from . import laws

    preset = laws.get(law) if isinstance(law, str) else law
    family = preset.family.name
    if unique_tokens is not None and family != data_constrained.FAMILY.name:
        raise ValueError(
            f"unique_tokens applies only to data-constrained laws; {preset.name!r} is "
            f"of family {family!r}"
        )
    if family == chinchilla.FAMILY.name:
        return chinchilla_optimal(preset.params, compute_flops)
    if family == kaplan.FAMILY.name:
        return kaplan_optimal(preset.params, compute_flops)
    if family == data_constrained.FAMILY.name:
        if unique_tokens is None:
            params = preset.params
            as_chinchilla = chinchilla.ChinchillaParams(
                params.E, params.A, params.B, params.alpha, params.beta
            )
            return chinchilla_optimal(as_chinchilla, compute_flops)
        u = _checks.check_positive("unique_tokens", unique_tokens)
        return isoflop_optimal(
            data_constrained.loss,
            preset.params,
            compute_flops,
            u,
            max_tokens_per_param=1e6,
        )
    raise ValueError(
        f"no compute-optimal allocation for law {preset.name!r} (family {family!r}): "
        "it does not take both n_params and n_tokens"
    )
