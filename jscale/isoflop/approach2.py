"""Hoffmann's Approach 2: a parabola per isoFLOP slice, then power laws in C.

Approach 2 (Hoffmann et al. 2022, arXiv:2203.15556, Sec. 3.2) fits a parabola to
the loss against ``log N`` on each isoFLOP slice, takes its vertex as
``N_opt(C)``, then fits power laws ``N_opt = k_N C^a`` and ``D_opt = k_D C^b``
across budgets.

Real isoFLOP data have unequal runs per budget: :func:`group_runs` groups runs by
budget into padded ``(K, M)`` arrays with a mask (optionally keeping only a window
of sizes around each budget's best run), and :func:`approach2` fits weighted
parabolas (one vmapped fit per budget; weight 0 drops a point).

Precision: Approach 2 is a few small least-squares problems in centred, scaled
coordinates; in float32 the vertices agree with float64 to about 1e-5 relative in
log N and the exponents to about 2e-3 relative (checked against NumPy in float64
in the tests), well inside the bootstrap intervals of real data.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from .. import _checks

_LOG6 = math.log(6.0)


class Approach2Result(NamedTuple):
    """Hoffmann 2022 Approach 2 (Sec. 3.2).

    Attributes:
      n_opt, d_opt, loss_opt: per budget, the parabola's vertex ``N_opt``, the tokens
        ``C / (6 N_opt)`` and the parabola's value there.
      curvature: per budget, the parabola's second coefficient in ``log N`` (> 0 for
        a proper minimum; non-positive slices yield NaN vertices).
      a, b: exponents of ``N_opt = k_N C^a`` and ``D_opt = k_D C^b`` (``a + b = 1``),
        fitted over the valid budgets (NaN with fewer than two).
      log_k_n, log_k_d: natural logs of the coefficients ``k_N`` and ``k_D``.
      valid: per budget, whether its parabola has a minimum (at least 3 distinct
        sizes with positive weight and positive curvature); only valid budgets
        enter the power laws, the others have NaN vertices.
      extrapolated: per budget, True where the vertex lies outside the range of
        the fitted sizes (the slice does not bracket its minimum; treat that
        budget's optimum with caution).
      num_budgets: how many budgets entered the power laws.
    """

    n_opt: jax.Array
    d_opt: jax.Array
    loss_opt: jax.Array
    curvature: jax.Array
    a: jax.Array
    b: jax.Array
    log_k_n: jax.Array
    log_k_d: jax.Array
    valid: jax.Array
    extrapolated: jax.Array
    num_budgets: jax.Array


class IsoFLOPRuns(NamedTuple):
    """Runs grouped by budget, padded to a rectangle (:func:`group_runs`).

    Attributes:
      compute_flops: the K distinct budgets, ascending, shape ``(K,)``.
      n_params, loss: the runs of each budget, shape ``(K, M)`` with M the largest
        number of runs of one budget, ascending in N; padding holds 1.0.
      mask: True for a run that is fitted (a real run, inside the window).
      rows: each run's index in the input arrays, -1 for padding, ``(K, M)``.
    """

    compute_flops: np.ndarray
    n_params: np.ndarray
    loss: np.ndarray
    mask: np.ndarray
    rows: np.ndarray


def _parabola(x: jax.Array, y: jax.Array, w: jax.Array):
    """Weighted least-squares ``y = c0 + c1 u + c2 u^2`` on one slice.

    ``u`` is ``x`` centred and scaled to [-1, 1] over the points with positive
    weight (which keeps the 3 x 3 normal equations well conditioned). Returns the
    vertex in ``x``, the value there, the curvature ``d2y/dx2 / 2``, whether the fit
    has a minimum, and whether the vertex lies outside the fitted points' range.
    """
    used = w > 0
    lo = jnp.min(jnp.where(used, x, jnp.inf))
    hi = jnp.max(jnp.where(used, x, -jnp.inf))
    # distinct sizes among the used points (repeated runs of one size count once)
    earlier = jnp.tril(jnp.ones((x.shape[0], x.shape[0]), bool), k=-1)
    repeat = jnp.any(earlier & used[None, :] & (x[None, :] == x[:, None]), axis=1)
    distinct = jnp.sum(used & ~repeat)
    enough = (distinct >= 3) & (hi > lo)
    mid = jnp.where(enough, 0.5 * (hi + lo), 0.0)
    half = jnp.where(enough, 0.5 * (hi - lo), 1.0)
    u = jnp.where(used, (x - mid) / half, 0.0)
    design = jnp.stack([jnp.ones_like(u), u, u * u], axis=-1)  # (M, 3)
    wd = design * w[:, None]
    normal = design.T @ wd
    rhs = wd.T @ jnp.where(used, y, 0.0)
    normal = jnp.where(enough, normal, jnp.eye(3, dtype=normal.dtype))
    c0, c1, c2 = _solve3(normal, rhs)
    ok = enough & (c2 > 0)
    c2_safe = jnp.where(ok, c2, 1.0)
    u_star = -c1 / (2.0 * c2_safe)
    x_star = jnp.where(ok, mid + half * u_star, jnp.nan)
    y_star = jnp.where(ok, c0 + c1 * u_star + c2 * u_star * u_star, jnp.nan)
    curvature = jnp.where(enough, c2 / (half * half), jnp.nan)
    return x_star, y_star, curvature, ok, ok & (jnp.abs(u_star) > 1.0)


def _solve3(A: jax.Array, b: jax.Array) -> list[jax.Array]:
    """``A x = b`` for one symmetric 3 x 3 matrix, by cofactors (Cramer's rule).

    The normal equations of a parabola in ``u`` on [-1, 1] are well conditioned,
    and a closed form compiles to a few fused operations (no LU custom call).
    """
    a, b_, c = A[0, 0], A[0, 1], A[0, 2]
    d, e, f = A[1, 1], A[1, 2], A[2, 2]
    # cofactors of the symmetric matrix [[a, b, c], [b, d, e], [c, e, f]]
    k00 = d * f - e * e
    k01 = c * e - b_ * f
    k02 = b_ * e - c * d
    k11 = a * f - c * c
    k12 = b_ * c - a * e
    k22 = a * d - b_ * b_
    det = a * k00 + b_ * k01 + c * k02
    return [
        (k00 * b[0] + k01 * b[1] + k02 * b[2]) / det,
        (k01 * b[0] + k11 * b[1] + k12 * b[2]) / det,
        (k02 * b[0] + k12 * b[1] + k22 * b[2]) / det,
    ]


def _power_law(log_c: jax.Array, log_y: jax.Array, w: jax.Array):
    """Weighted least-squares slope and intercept of ``log_y = i + s log_c``.

    Budgets with ``w == 0`` (NaN ``log_y`` allowed there) are left out; NaN with
    fewer than two distinct budgets.
    """
    total = jnp.sum(w)
    mc = jnp.sum(w * log_c) / total
    y = jnp.where(w > 0, log_y, 0.0)
    my = jnp.sum(w * y) / total
    sxx = jnp.sum(w * (log_c - mc) ** 2)
    ok = (jnp.sum(w > 0) >= 2) & (sxx > 0)
    slope = jnp.sum(w * (log_c - mc) * (y - my)) / jnp.where(ok, sxx, 1.0)
    slope = jnp.where(ok, slope, jnp.nan)
    return slope, jnp.where(ok, my - slope * mc, jnp.nan)


def approach2(
    compute_flops: ArrayLike,
    n_params: ArrayLike,
    loss: ArrayLike,
    weights: ArrayLike | None = None,
) -> Approach2Result:
    """Hoffmann 2022 Approach 2: parabolas on isoFLOP slices, then power laws.

    Each budget's losses are fitted by a parabola in ``log N`` (weighted least
    squares, one vmapped fit per budget); its vertex is ``N_opt(C)``. Then
    ``log N_opt`` and ``log D_opt = log(C / (6 N_opt))`` are regressed on ``log C``
    over the budgets whose parabola has a minimum. The exponent is unbiased when
    every slice's points sit symmetrically around its optimum in log space; a
    fixed, off-centre grid biases it (Hoffmann 2022, Sec. 3.2; Besiroglu et al.
    2024).

    Args:
      compute_flops: the K budgets, shape ``(K,)`` (K >= 2, distinct).
      n_params: sizes on each slice, shape ``(K, M)`` (M >= 3).
      loss: observed or predicted losses, shape ``(K, M)``.
      weights: optional non-negative weight per point, ``(K, M)``: 0 leaves a point
        out (padding of unequal slices, sizes outside a window; see
        :func:`group_runs`), integer counts resample it.

    Returns:
      An :class:`Approach2Result`.

    Raises:
      ValueError: for bad shapes, non-positive budgets or sizes, non-finite
        losses or negative weights.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jscale.isoflop import isoflop_minimum, isoflop_slice
      >>> from jscale.laws import chinchilla
      >>> p = chinchilla.HOFFMANN2022.params
      >>> c = jnp.logspace(19, 22, 4)
      >>> opt = isoflop_minimum(chinchilla.loss, p, c)
      >>> n = opt.n_params[:, None] * jnp.logspace(-0.5, 0.5, 9)[None, :]
      >>> r = approach2(c, n, isoflop_slice(chinchilla.loss, p, c[:, None], n).loss)
      >>> round(float(r.a), 3)  # beta / (alpha + beta) = 0.28 / 0.62
      0.452
    """
    c, n, y, w = _approach2_inputs(compute_flops, n_params, loss, weights)
    return _approach2(c, n, y, w)


def _approach2_inputs(compute_flops, n_params, loss, weights):
    c = _checks.check_positive("compute_flops", compute_flops)
    n = _checks.check_positive("n_params", n_params)
    y = _checks.check_range("loss", loss, lower=None)
    if c.ndim != 1 or c.shape[0] < 2:
        raise ValueError(
            f"compute_flops must have shape (K,) with K >= 2 budgets; got {c.shape}"
        )
    if n.ndim != 2 or n.shape[0] != c.shape[0] or n.shape[1] < 3:
        raise ValueError(
            "n_params must have shape (K, M) with K budgets and M >= 3 sizes; got "
            f"{n.shape} for K = {c.shape[0]}"
        )
    if y.shape != n.shape:
        raise ValueError(f"shape mismatch: loss {y.shape} and n_params {n.shape}")
    if weights is None:
        w = jnp.ones(n.shape, n.dtype)
    else:
        w = _checks.check_range("weights", weights, lower=0.0, lower_inclusive=True)
        if w.shape != n.shape:
            raise ValueError(
                f"shape mismatch: weights {w.shape} and n_params {n.shape}"
            )
    dtype = jnp.result_type(c, n, y, w)
    return (x.astype(dtype) for x in (c, n, y, w))


def _approach2_core(c, n, y, w):
    log_n_opt, loss_opt, curvature, ok, outside = jax.vmap(_parabola)(jnp.log(n), y, w)
    log_c = jnp.log(c)
    log_d_opt = log_c - _LOG6 - log_n_opt
    budget_w = ok.astype(log_c.dtype)
    a, log_k_n = _power_law(log_c, log_n_opt, budget_w)
    b, log_k_d = _power_law(log_c, log_d_opt, budget_w)
    return Approach2Result(
        jnp.exp(log_n_opt),
        jnp.exp(log_d_opt),
        loss_opt,
        curvature,
        a,
        b,
        log_k_n,
        log_k_d,
        ok,
        outside,
        jnp.sum(ok),
    )


_approach2 = jax.jit(_approach2_core)


def group_runs(
    compute_flops: ArrayLike,
    n_params: ArrayLike,
    loss: ArrayLike,
    *,
    window: float | None = None,
    rtol: float = 1e-6,
) -> IsoFLOPRuns:
    """Group runs by budget into padded ``(K, M)`` arrays with a mask.

    Runs whose budgets agree to ``rtol`` (relative) share a slice. Grouping is
    data-dependent, so it runs on the host (NumPy), before the jitted fits.

    Args:
      compute_flops, n_params, loss: one value per run, shape ``(P,)`` (budgets and
        sizes > 0, losses finite).
      window: if given, only runs within ``window`` decades of N of the budget's
        lowest-loss run are fitted (``mask`` False for the others). A parabola
        describes a slice only near its minimum: on a sweep spanning several
        decades it is pulled by the far points (Porian et al. 2024's Kaplan-style
        sweeps span 3-4 decades per budget; 0.5 keeps about 5-8 runs there).
      rtol: relative tolerance for equal budgets.

    Returns:
      An :class:`IsoFLOPRuns`.

    Raises:
      ValueError: for unequal lengths, bad values (naming the first bad index) or
        fewer than 2 budgets.

    Examples:
      >>> runs = group_runs([1e19, 1e19, 1e19, 1e20, 1e20, 1e20, 1e20],
      ...                   [1e8, 2e8, 4e8, 3e8, 6e8, 1.2e9, 2.4e9],
      ...                   [3.1, 3.0, 3.05, 2.8, 2.7, 2.72, 2.8])
      >>> runs.n_params.shape, runs.mask.sum(axis=1).tolist()
      ((2, 4), [3, 4])
    """
    # Grouping is host-side, in float64 whatever the default dtype (budgets such
    # as 1.25e16 * 2^k must not be rounded to float32 here).
    c, n, y = (np.asarray(x, np.float64) for x in (compute_flops, n_params, loss))
    _checks.check_positive("compute_flops", c)
    _checks.check_positive("n_params", n)
    _checks.check_range("loss", y, lower=None)
    if not (c.ndim == n.ndim == y.ndim == 1 and c.shape == n.shape == y.shape):
        raise ValueError(
            "compute_flops, n_params and loss must be 1-D of equal length; got "
            f"{c.shape}, {n.shape}, {y.shape}"
        )
    if window is not None and not (window > 0 and math.isfinite(window)):
        raise ValueError(f"window must be a finite number of decades > 0; got {window}")
    order = np.argsort(c, kind="stable")
    log_c = np.log(c[order])
    new = np.concatenate([[True], np.diff(log_c) > rtol])
    label = np.empty_like(order)
    label[order] = np.cumsum(new) - 1
    K = int(label.max()) + 1
    if K < 2:
        raise ValueError(f"need runs at 2 or more budgets; got 1 ({c[0]:g} FLOPs)")
    groups = [np.flatnonzero(label == k) for k in range(K)]
    groups = [g[np.argsort(n[g], kind="stable")] for g in groups]
    M = max(len(g) for g in groups)
    shape = (K, M)
    out_n, out_y = np.ones(shape), np.ones(shape)
    mask = np.zeros(shape, bool)
    rows = np.full(shape, -1, np.int64)
    budgets = np.empty(K)
    for k, g in enumerate(groups):
        budgets[k] = np.exp(np.mean(np.log(c[g])))
        out_n[k, : len(g)] = n[g]
        out_y[k, : len(g)] = y[g]
        rows[k, : len(g)] = g
        keep = np.ones(len(g), bool)
        if window is not None:
            best = np.log10(n[g][np.argmin(y[g])])
            keep = np.abs(np.log10(n[g]) - best) <= window * (1 + 1e-12)
        mask[k, : len(g)] = keep
    return IsoFLOPRuns(budgets, out_n, out_y, mask, rows)
