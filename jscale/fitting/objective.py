"""The objective of a fit: Huber loss on log residuals, or its maximum likelihood.

Hoffmann 2022 (Eq. 3) minimizes ``sum_i w_i H_delta(log L_hat_i - log L_i)`` over
the observations, with ``log L_hat`` from the family's model (for the Chinchilla
form a log-sum-exp, Eq. 11). ``objective="ml"`` is Besiroglu et al. 2024's
maximum-likelihood variant: the log residuals follow the Huber-shaped density
``exp(-H_delta(r / sigma)) / (sigma Z_delta)`` with a free scale ``sigma``, fitted
as one more coordinate, ``log_scale``.

:func:`_evaluate` gives the objective, its gradient and a curvature matrix for one
lane (one start or resample: a point and a row of observation weights), in the
free coordinates of the parameter structure; the fitting loops vmap it over lanes.
The curvature is the exact Hessian or, where ``newton`` is 0, the
iteratively-reweighted least-squares majorizer of the Huber loss (Gauss-Newton
with weights ``psi(r) / r``).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from .families import _LSEHessian


def huber(r: ArrayLike, delta: float = 1e-3) -> jax.Array:
    """Huber's loss ``r^2/2`` for ``|r| <= delta``, else ``delta (|r| - delta/2)``.

    Hoffmann 2022, Eq. 3 (applied to log residuals).

    Examples:
      >>> float(huber(0.5, 1.0)), float(huber(3.0, 1.0))
      (0.125, 2.5)
    """
    r = jnp.asarray(r)
    a = jnp.abs(r)
    return jnp.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def huber_log_normalizer(delta: float = 1e-3) -> float:
    """``log Z`` of the Huber density ``exp(-H_delta(t)) / Z`` (unit scale).

    ``Z = sqrt(2 pi) (1 - 2 Phi(-delta)) + 2 exp(-delta^2 / 2) / delta``: the
    Gaussian core on ``|t| <= delta`` plus two exponential tails (Besiroglu 2024).
    """
    phi = 0.5 * math.erfc(delta / math.sqrt(2.0))
    z = math.sqrt(2 * math.pi) * (1 - 2 * phi) + 2 * math.exp(-0.5 * delta**2) / delta
    return math.log(z)


def _autodiff_derivatives(model, theta, xi, hessian):
    """Value, gradient and (upper) Hessian of ``model.log_predict`` by autodiff.

    ``theta`` is a tuple of scalars (one lane) and ``xi`` a tuple of ``(B,)``
    arrays. The prediction is written for one observation (a scalar function of
    the coordinate vector), differentiated with ``jax.grad`` and ``jax.hessian``
    and vmapped over observations (and by the caller over lanes): the prediction
    is traced a few times, not once per Hessian entry, which keeps compilation
    short.
    """
    k = len(theta)
    tv = jnp.stack(theta)  # (k,)

    def scalar(t, *x):
        return model.log_predict(tuple(t[i] for i in range(k)), x)

    def per_point(t, *x):
        value, grad = jax.value_and_grad(scalar)(t, *x)
        hess = jax.hessian(scalar)(t, *x) if hessian else None
        return value, grad, hess

    per_point = jax.vmap(per_point, in_axes=(None,) + (0,) * len(xi))
    value, grad, hess = per_point(tv, *xi)
    jac = [grad[..., i] for i in range(k)]
    if not hessian:
        return value, jac, None
    return value, jac, {(i, j): hess[..., i, j] for i in range(k) for j in range(i, k)}


def _point_terms(model, ml, delta, theta, xi, yi, w, newton):
    """One block of observations' weighted terms of (f, g, H) for one lane.

    ``theta`` is a tuple of scalars and ``xi``, ``yi``, ``w`` hold a block of
    observations as ``(B,)`` arrays. Derivatives of the prediction come from
    ``model.derivatives`` or autodiff. ``newton`` is 0-d, 1.0 for the exact
    Hessian and 0.0 for the IRLS majorizer, or ``False`` (IRLS only; no second
    derivatives are formed). Returns ``[f, g_0.., H_00, H_01, ..]`` (upper
    triangle of H, row by row), each a scalar.
    """
    k = len(model.coords)
    th = tuple(theta[:k])
    want_hessian = newton is not False
    if model.derivatives is not None:
        value, jac, hess = model.derivatives(th, xi, want_hessian)
    else:
        value, jac, hess = _autodiff_derivatives(model, th, xi, want_hessian)
    if not want_hessian:
        newton = 0.0
    r = value - yi
    if ml:
        s = theta[k]
        inv = jnp.exp(-s)
        t = r * inv
    else:
        inv = None
        t = r
    a = jnp.abs(t)
    inside = a <= delta
    dpsi = inside.astype(r.dtype)
    psi = jnp.clip(t, -delta, delta)
    irls = jnp.where(inside, 1.0, delta / jnp.where(inside, 1.0, a))
    curv = newton * dpsi + (1.0 - newton) * irls
    rho = jnp.where(inside, 0.5 * t * t, delta * (a - 0.5 * delta))
    if ml:
        rho = rho + s
        rho_r = psi * inv
        rho_rr = curv * inv * inv
        rho_s = 1.0 - psi * t
        rho_rs = -(newton * (dpsi * t + psi) + (1.0 - newton) * 2.0 * psi) * inv
        rho_ss = curv * t * t + psi * t
        grads = [rho_r * j for j in jac] + [rho_s]
    else:
        rho_r = psi
        rho_rr = curv
        grads = [rho_r * j for j in jac]

    def total(x):
        return jnp.sum(w * x, axis=-1)

    out = [total(rho)] + [total(g) for g in grads]
    K = k + (1 if ml else 0)
    lse = want_hessian and isinstance(hess, _LSEHessian)
    if lse:  # rho'' J J^T + rho' (-J J^T + extras)
        outer = rho_rr - newton * rho_r
        second = newton * rho_r
    for i in range(K):
        for j in range(i, K):
            if i < k and j < k and lse:
                h = outer * jac[i] * jac[j]
                if (i, j) in hess.extras:
                    h = h + second * hess.extras[i, j]
            elif i < k and j < k:
                h = rho_rr * jac[i] * jac[j]
                if want_hessian:
                    h = h + newton * rho_r * hess[i, j]
            elif i < k:
                h = rho_rs * jac[i]
            else:
                h = rho_ss
            out.append(total(h))
    return out


#: Lanes times observations evaluated per step of the loop over observations:
#: blocks keep small batches from paying one loop step per observation, and
#: large ones from materializing (lanes x observations) temporaries.
_BLOCK_ELEMENTS = 4096
#: Up to this many lanes times observations, all observations are evaluated at
#: once, without the loop: small fits (most families' grids) then compile about
#: twice as fast, and their temporaries stay small.
_UNBLOCKED_ELEMENTS = 1 << 16


class _Problem(NamedTuple):
    """What every lane of a fit shares (all arrays in the fit's dtype).

    Attributes:
      spec: ``(model, ml, delta)``, static.
      P, offset: the parameter structure, ``theta = P z + offset``.
      lower, upper: bounds on the free coordinates, ``(m,)``.
      log_x: the logs of the inputs, a tuple of ``(num,)`` arrays.
      log_y: the logs of the observed losses, ``(num,)``.
    """

    spec: tuple
    P: jax.Array
    offset: jax.Array
    lower: jax.Array
    upper: jax.Array
    log_x: tuple
    log_y: jax.Array


def _evaluate(problem, z, weights, newton, *, lanes):
    """Objective, gradient and curvature at ``z`` ``(m,)`` for one lane.

    ``weights``: the lane's observation weights ``(num,)``; ``newton`` as for
    :func:`_point_terms`; ``lanes``: how many lanes the caller vmaps over (static),
    which sets the block size of the loop over observations.
    """
    model, ml, delta = problem.spec
    P, log_x, log_y = problem.P, problem.log_x, problem.log_y
    theta_vec = z @ P.T + problem.offset  # (K,)
    K = P.shape[0]
    num = log_y.shape[0]
    theta = tuple(theta_vec[i] for i in range(K))
    if lanes * num <= _UNBLOCKED_ELEMENTS:
        acc = _point_terms(model, ml, delta, theta, log_x, log_y, weights, newton)
        return _assemble(acc, P, K, ml, delta, weights)
    block = max(1, min(num, _BLOCK_ELEMENTS // max(lanes, 1)))
    nblocks = -(-num // block)
    pad = nblocks * block - num
    # Padded observations have weight 0 and harmless finite values.
    log_x = [jnp.pad(x, (0, pad)).reshape(nblocks, block) for x in log_x]
    log_y = jnp.pad(log_y, (0, pad)).reshape(nblocks, block)
    w = jnp.pad(weights, (0, pad)).reshape(nblocks, block)

    def body(acc, xs):
        xi, yi, wi = xs
        terms = _point_terms(model, ml, delta, theta, tuple(xi), yi, wi, newton)
        return [a + b for a, b in zip(acc, terms, strict=True)], None

    n_out = 1 + K + K * (K + 1) // 2
    init = [jnp.zeros((), z.dtype) for _ in range(n_out)]
    acc, _ = jax.lax.scan(body, init, (log_x, log_y, w))
    return _assemble(acc, P, K, ml, delta, weights)


def _assemble(acc, P, K, ml, delta, weights):
    """``(f, g, H)`` in the free coordinates from the summed terms."""
    f = acc[0]
    g = jnp.stack(acc[1 : 1 + K], axis=-1)
    upper = acc[1 + K :]
    rows = [[None] * K for _ in range(K)]
    q = 0
    for i in range(K):
        for j in range(i, K):
            rows[i][j] = rows[j][i] = upper[q]
            q += 1
    H = jnp.stack([jnp.stack(row, axis=-1) for row in rows], axis=-2)
    g = g @ P
    H = jnp.einsum("ki,kl,lj->ij", P, H, P)
    if ml:
        f = f + jnp.sum(weights) * huber_log_normalizer(delta)
    return f, g, H
