"""Fitting models: how each law family of :mod:`jscale.laws` is fitted.

A :class:`Model` gives a family's fitted coordinates (logs of positive
coefficients, exponents as they are), its prediction of ``log L`` for one
observation, its default grid of starts and, for the Chinchilla form, its
derivatives in closed form. :data:`MODELS` lists them by name (also the CLI's
``jscale fit --law`` choices): ``chinchilla`` (Hoffmann 2022, Eq. 11 in
log-sum-exp form), ``kaplan`` (Kaplan 2020, Eq. 4.1), ``data-constrained``
(Muennighoff 2023), ``bnsl`` (Caballero 2022, one break) and ``moe`` (Clark 2022's
routed law in N and the expert count E).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from .. import _checks
from ..laws import bnsl, chinchilla, data_constrained, kaplan, moe


class Model(NamedTuple):
    """How to fit one law family.

    Attributes:
      family: the family's name in :data:`jscale.laws.FAMILIES`.
      coords: names of the fitted coordinates, e.g. ``("a", "b", "e", "alpha",
        "beta")`` (Hoffmann's parameterization).
      params: for each reported parameter, ``(name, coord, transform)`` with
        ``transform`` ``"log"`` (the parameter is ``exp(coord)``) or ``"id"``.
        Freezing, tying and bounds are given in these names and units.
      inputs: the family's inputs (names from :data:`jscale.laws.INPUT_NAMES`).
      log_predict: ``log_predict(theta, log_inputs) -> log L`` for one observation,
        ``theta`` of shape ``(len(coords),)`` and ``log_inputs`` a tuple of scalars.
      to_params: ``to_params(theta) -> *Params`` (leading axes allowed).
      grid: ``grid(log_inputs) -> (S, len(coords))`` default starts, given the logs
        of the observed inputs (each of shape ``(P,)``).
      derivatives: optional ``derivatives(theta, log_inputs, hessian) -> (value,
        jac, hess)`` in closed form (``jac`` a list of k arrays, ``hess`` a dict
        ``{(i, j): array}`` for ``i <= j``, or for a log-sum-exp of terms linear in
        the coordinates ``_LSEHessian(extras)``, or None); by default autodiff of
        ``log_predict`` (per observation, vmapped) provides them.
    """

    family: str
    coords: tuple[str, ...]
    params: tuple[tuple[str, str, str], ...]
    inputs: tuple[str, ...]
    log_predict: Callable
    to_params: Callable
    grid: Callable
    derivatives: Callable | None = None


def _product(*axes) -> np.ndarray:
    return np.array(list(itertools.product(*axes)), dtype=np.float64)


def hoffmann_grid() -> np.ndarray:
    """Hoffmann 2022's 4500 starts (App. D.2) as ``(a, b, e, alpha, beta)`` rows.

    alpha, beta in {0, 0.5, ..., 2}, e in {-1, -0.5, ..., 1}, a, b in
    {0, 5, ..., 25}, in the order of Besiroglu et al.'s loop (alpha outermost).

    Examples:
      >>> hoffmann_grid().shape
      (4500, 5)
    """
    half = np.arange(0.0, 2.5, 0.5)
    rows = _product(
        half,
        half,
        np.arange(-1.0, 1.5, 0.5),
        np.arange(0.0, 30.0, 5.0),
        np.arange(0.0, 30.0, 5.0),
    )
    alpha, beta, e, a, b = rows.T
    return np.stack([a, b, e, alpha, beta], axis=1)


def _lse3(u1, u2, u3):
    """``log(exp(u1) + exp(u2) + exp(u3))``, elementwise, without overflow."""
    m = jnp.maximum(jnp.maximum(u1, u2), u3)
    return m + jnp.log(jnp.exp(u1 - m) + jnp.exp(u2 - m) + jnp.exp(u3 - m))


def _chinchilla_log_predict(theta, log_inputs):
    a, b, e, alpha, beta = theta
    log_n, log_d = log_inputs
    # Hoffmann 2022, Eq. 11: log L = LSE(a - alpha log N, b - beta log D, e).
    return _lse3(a - alpha * log_n, b - beta * log_d, e)


class _LSEHessian(NamedTuple):
    """The Hessian of a log-sum-exp prediction whose terms are linear in the
    coordinates: ``-grad grad^T + extras`` (``extras`` a dict of the few non-zero
    entries ``(i, j), i <= j`` of ``sum_j p_j v_j v_j^T``). Given in this form,
    the objective's Hessian costs one product per entry instead of three."""

    extras: dict


def _chinchilla_derivatives(theta, log_inputs, hessian):
    """Closed-form value, gradient and Hessian of the LSE form in (a, b, e, alpha,
    beta): with weights ``p = softmax(u)`` of the three terms ``u``,
    ``grad = sum_j p_j grad u_j`` and ``hess = sum_j p_j v_j v_j^T - grad grad^T``
    (each ``u_j`` is linear in the coordinates).

    The softmax takes two exponentials, not three: relative to the largest term,
    the other two are ``exp(-|hi - e|)`` and ``exp(lo - top)``, where ``hi``, ``lo``
    are the larger and smaller of the two power-law terms and ``top`` the largest
    of all three.
    """
    a, b, e, alpha, beta = theta
    log_n, log_d = log_inputs
    u1 = a - alpha * log_n
    u2 = b - beta * log_d
    first = u1 >= u2
    hi = jnp.maximum(u1, u2)
    lo = jnp.minimum(u1, u2)
    hi_top = hi >= e
    top = jnp.maximum(hi, e)
    x = jnp.exp(-jnp.abs(hi - e))
    y = jnp.exp(lo - top)
    total = 1.0 + x + y
    value = top + jnp.log(total)
    inv = 1.0 / total
    p_hi = jnp.where(hi_top, 1.0, x) * inv
    p3 = jnp.where(hi_top, x, 1.0) * inv
    p_lo = y * inv
    p1 = jnp.where(first, p_hi, p_lo)
    p2 = jnp.where(first, p_lo, p_hi)
    jac = [p1, p2, p3, -p1 * log_n, -p2 * log_d]
    if not hessian:
        return value, jac, None
    extras = {
        (0, 0): p1,
        (0, 3): -p1 * log_n,
        (3, 3): p1 * log_n * log_n,
        (1, 1): p2,
        (1, 4): -p2 * log_d,
        (4, 4): p2 * log_d * log_d,
        (2, 2): p3,
    }
    return value, jac, _LSEHessian(extras)


def _chinchilla_params(theta):
    theta = jnp.asarray(theta)
    a, b, e, alpha, beta = (theta[..., i] for i in range(5))
    return chinchilla.ChinchillaParams(
        E=jnp.exp(e), A=jnp.exp(a), B=jnp.exp(b), alpha=alpha, beta=beta
    )


def _kaplan_log_predict(theta, log_inputs):
    log_n_c, log_d_c, alpha_n, alpha_d = theta
    log_n, log_d = log_inputs
    # log L = alpha_D * log[(N_c/N)^(alpha_N/alpha_D) + D_c/D] (Kaplan 2020, Eq. 4.1)
    inner = jnp.logaddexp((alpha_n / alpha_d) * (log_n_c - log_n), log_d_c - log_d)
    return alpha_d * inner


def _kaplan_params(theta):
    theta = jnp.asarray(theta)
    return kaplan.KaplanParams(
        n_c=jnp.exp(theta[..., 0]),
        d_c=jnp.exp(theta[..., 1]),
        alpha_n=theta[..., 2],
        alpha_d=theta[..., 3],
    )


def _kaplan_grid(log_inputs):
    return _product(
        [25.0, 30.0, 35.0], [20.0, 25.0, 30.0, 35.0], [0.05, 0.1, 0.3], [0.05, 0.1, 0.3]
    )


def _dc_params(theta):
    if not isinstance(theta, tuple):
        theta = jnp.asarray(theta)
        theta = tuple(theta[..., i] for i in range(7))
    a, b, e, alpha, beta, log_rd, log_rn = theta
    return data_constrained.DataConstrainedParams(
        E=jnp.exp(e),
        A=jnp.exp(a),
        B=jnp.exp(b),
        alpha=alpha,
        beta=beta,
        r_d_star=jnp.exp(log_rd),
        r_n_star=jnp.exp(log_rn),
    )


def _dc_log_predict(theta, log_inputs):
    log_n, log_d, log_u = log_inputs
    value = data_constrained.loss(
        _dc_params(theta), jnp.exp(log_n), jnp.exp(log_d), jnp.exp(log_u)
    )
    return jnp.log(value)


def _dc_grid(log_inputs):
    return _product(
        [5.0, 10.0],
        [5.0, 10.0],
        [0.0, 0.5],
        [0.25, 0.5],
        [0.25, 0.5],
        [math.log(5.0), math.log(15.0)],
        [math.log(5.0)],
    )


def _bnsl_params(theta):
    theta = jnp.asarray(theta)
    log_a, log_b, c0, c1, log_d1, log_f1 = (theta[..., i] for i in range(6))
    return bnsl.BNSLParams(
        a=jnp.exp(log_a),
        b=jnp.exp(log_b),
        c0=c0,
        c=c1[..., None],
        d=jnp.exp(log_d1)[..., None],
        f=jnp.exp(log_f1)[..., None],
    )


def _bnsl_log_predict(theta, log_inputs):
    (log_x,) = log_inputs
    log_a, log_b, c0, c1, log_d1, log_f1 = theta
    f1 = jnp.exp(log_f1)
    # Caballero 2022, Eq. 1 with one break, in log space:
    # log y = LSE(log a, log b - c0 log x - c1 f1 softplus((log x - log d1) / f1)).
    z = (log_x - log_d1) / f1
    log_break = c1 * f1 * jnp.logaddexp(0.0, z)
    return jnp.logaddexp(log_a, log_b - c0 * log_x - log_break)


def _bnsl_grid(log_inputs):
    (log_x,) = log_inputs
    q = np.quantile(np.asarray(log_x, np.float64), [0.25, 0.5, 0.75])
    return _product(
        [-1.0, 0.0, 1.0], [0.0, 3.0], [0.1, 0.5], [-0.3, 0.3], q, [math.log(0.3), 0.0]
    )


_LN10 = math.log(10.0)


def _clark_params(theta):
    theta = jnp.asarray(theta)
    a, b, c, d, log_start, log_max = (theta[..., i] for i in range(6))
    return moe.ClarkParams(
        a=a, b=b, c=c, d=d, e_start=jnp.exp(log_start), e_max=jnp.exp(log_max)
    )


def _clark_log_predict(theta, log_inputs):
    a, b, c, d, log_start, log_max = theta
    log_n, log_e = log_inputs
    # Clark 2022, Eq. 1 in natural logs: ln L = a ln N + b ln Ê + c ln N ln Ê / ln 10
    # + d ln 10, with the saturating Ê of their notebook (moe.saturating_experts).
    log_hat = moe.log_expert_hat(jnp.exp(log_e), jnp.exp(log_start), jnp.exp(log_max))
    return a * log_n + b * log_hat + (c / _LN10) * log_n * log_hat + d * _LN10


def _clark_grid(log_inputs):
    # a, b, c, d enter log L linearly; the grid mostly explores E_start and E_max
    # (Clark's notebook draws random starts for log2 E_start and log2 E_max).
    return _product(
        [-0.1, -0.05],
        [-0.2, -0.1],
        [0.0, 0.01],
        [1.0, 1.2],
        [math.log(1.5), math.log(4.0)],
        [math.log(100.0), math.log(500.0)],
    )


def _params(spec: str) -> tuple[tuple[str, str, str], ...]:
    """``Model.params`` from ``"E=exp(e) A=exp(a) alpha"``: ``name=exp(coord)`` for
    a parameter fitted through its log, ``name`` for one fitted as it is."""
    out = []
    for item in spec.split():
        name, _, rest = item.partition("=exp(")
        out.append((name, rest[:-1], "log") if rest else (name, name, "id"))
    return tuple(out)


#: Fitting models by family name (also the CLI's ``--law`` choices).
MODELS: dict[str, Model] = {
    "chinchilla": Model(
        family="chinchilla",
        coords=("a", "b", "e", "alpha", "beta"),
        params=_params("E=exp(e) A=exp(a) B=exp(b) alpha beta"),
        inputs=("n_params", "n_tokens"),
        log_predict=_chinchilla_log_predict,
        to_params=_chinchilla_params,
        grid=lambda log_inputs: hoffmann_grid(),
        derivatives=_chinchilla_derivatives,
    ),
    "kaplan": Model(
        family="kaplan",
        coords=("log_n_c", "log_d_c", "alpha_n", "alpha_d"),
        params=_params("n_c=exp(log_n_c) d_c=exp(log_d_c) alpha_n alpha_d"),
        inputs=("n_params", "n_tokens"),
        log_predict=_kaplan_log_predict,
        to_params=_kaplan_params,
        grid=_kaplan_grid,
    ),
    "data-constrained": Model(
        family="data-constrained",
        coords=("a", "b", "e", "alpha", "beta", "log_r_d_star", "log_r_n_star"),
        params=_params(
            "E=exp(e) A=exp(a) B=exp(b) alpha beta r_d_star=exp(log_r_d_star) "
            "r_n_star=exp(log_r_n_star)"
        ),
        inputs=("n_params", "n_tokens", "unique_tokens"),
        log_predict=_dc_log_predict,
        to_params=_dc_params,
        grid=_dc_grid,
    ),
    "bnsl": Model(
        family="bnsl",
        coords=("log_a", "log_b", "c0", "c_1", "log_d_1", "log_f_1"),
        params=_params(
            "a=exp(log_a) b=exp(log_b) c0 c_1 d_1=exp(log_d_1) f_1=exp(log_f_1)"
        ),
        inputs=("x",),
        log_predict=_bnsl_log_predict,
        to_params=_bnsl_params,
        grid=_bnsl_grid,
    ),
    "moe": Model(
        family="moe-clark2022",
        coords=("a", "b", "c", "d", "log_e_start", "log_e_max"),
        params=_params("a b c d e_start=exp(log_e_start) e_max=exp(log_e_max)"),
        inputs=("n_active_params", "experts"),
        log_predict=_clark_log_predict,
        to_params=_clark_params,
        grid=_clark_grid,
    ),
}


def _model_name(model: Model) -> str:
    """The :data:`MODELS` key of a model (its family name if it has none)."""
    return next((k for k, m in MODELS.items() if m is model), model.family)


def get_model(law: str | Model) -> Model:
    """The fitting :class:`Model` for a family name (or the model itself).

    Examples:
      >>> get_model("kaplan").params[0]
      ('n_c', 'log_n_c', 'log')
    """
    if isinstance(law, Model):
        return law
    _checks.check_choice("law family", law, MODELS)
    return MODELS[law]
