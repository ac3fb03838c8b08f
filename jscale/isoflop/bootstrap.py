"""Bootstrap intervals on Approach 2's exponents, resampling runs within budgets.

:func:`within_budget_weights` draws multinomial counts that resample each budget's
runs (with replacement, as many as it has); :func:`approach2_bootstrap` refits
:func:`jscale.isoflop.approach2` with the counts as weights, all resamples in one
vmapped call (in chunks of fixed shape: one compilation serves any number).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from .. import _checks
from .approach2 import _approach2_core, _approach2_inputs

#: Bootstrap resamples are drawn and fitted in chunks of this many (the last one
#: padded), so one compilation serves any number of resamples.
_BOOTSTRAP_CHUNK = 256


class Approach2Bootstrap(NamedTuple):
    """Bootstrap of Approach 2 over runs resampled within each budget.

    Attributes:
      a, b, log_k_n, log_k_d: per resample, shape ``(B,)``.
      n_opt: per resample and budget, the vertices, ``(B, K)``.
      valid: per resample, whether at least two budgets had valid parabolas
        (invalid resamples are NaN and left out of the statistics).
      stderr_a, stderr_b: standard deviations (``ddof=1``) over valid resamples.
      low_a, high_a, low_b, high_b: percentile interval bounds at ``confidence``.
      confidence: the interval's coverage.
      weights: the resampled counts times the input weights, ``(B, K, M)``.
    """

    a: jax.Array
    b: jax.Array
    log_k_n: jax.Array
    log_k_d: jax.Array
    n_opt: jax.Array
    valid: jax.Array
    stderr_a: float
    stderr_b: float
    low_a: float
    high_a: float
    low_b: float
    high_b: float
    confidence: float
    weights: jax.Array


def within_budget_weights(
    key: jax.Array, weights: ArrayLike, num_draws: int
) -> jax.Array:
    """Multinomial bootstrap counts that resample runs within each budget.

    For each resample and budget, the ``m_k`` runs with positive weight are drawn
    ``m_k`` times uniformly with replacement (resample ``i`` uses
    ``jax.random.fold_in(key, i)``); runs with weight 0 are never drawn.

    Args:
      key: a ``jax.random`` key.
      weights: ``(K, M)`` non-negative weights (e.g. :attr:`IsoFLOPRuns.mask`).
      num_draws: B, the number of resamples.

    Returns:
      Counts of shape ``(B, K, M)``; each budget's counts sum to its ``m_k``.

    Examples:
      >>> import jax, numpy as np
      >>> mask = np.array([[1, 1, 1, 0], [1, 1, 1, 1]])
      >>> w = within_budget_weights(jax.random.key(0), mask, 3)
      >>> w.shape, w.sum(axis=2).tolist()[0], float(w[:, 0, 3].max())
      ((3, 2, 4), [3.0, 4.0], 0.0)
    """
    num_draws = _checks.check_whole("num_draws", num_draws)
    eligible = jnp.asarray(weights) > 0
    if eligible.ndim != 2:
        raise ValueError(f"weights must have shape (K, M); got {eligible.shape}")
    pieces = [
        _counts_chunk(key, eligible, jnp.asarray(start, jnp.int32))
        for start in range(0, num_draws, _BOOTSTRAP_CHUNK)
    ]
    return jnp.concatenate(pieces)[:num_draws]


@jax.jit
def _counts_chunk(key, eligible, start):
    """Resamples ``start .. start + _BOOTSTRAP_CHUNK - 1`` (one compilation)."""
    K, M = eligible.shape
    m = jnp.sum(eligible, axis=1)  # (K,)
    # column positions of the eligible runs first, in order
    pos = jnp.argsort(~eligible, axis=1, stable=True)
    draws = jnp.arange(M)[None, :] < m[:, None]  # (K, M): the m_k draws

    def uniforms(i):
        # flat draws compile much faster than (K, M) ones; a sequential map over
        # the resamples likewise (vs vmap), at no measurable cost
        return jax.random.uniform(jax.random.fold_in(key, i), (K * M,))

    u = jax.lax.map(uniforms, start + jnp.arange(_BOOTSTRAP_CHUNK))
    u = u.reshape(_BOOTSTRAP_CHUNK, K, M)
    j = jnp.minimum(jnp.floor(u * m[None, :, None]).astype(jnp.int32), M - 1)
    col = jnp.take_along_axis(jnp.broadcast_to(pos, u.shape), j, axis=2)
    # counts[b, k, c] = number of draws t < m_k that picked column c
    picked = col[..., None] == jnp.arange(M)[None, None, None, :]
    hits = picked & draws[None, :, :, None]
    return jnp.sum(hits, axis=2).astype(jnp.result_type(float))


@jax.jit
def _approach2_chunk(c, n, y, w):
    return jax.vmap(_approach2_core, in_axes=(None, None, None, 0))(c, n, y, w)


def _approach2_batch(c, n, y, w):
    B = w.shape[0]
    chunk = _BOOTSTRAP_CHUNK
    pieces = []
    for start in range(0, B, chunk):
        part = w[start : start + chunk]
        if part.shape[0] < chunk:  # pad with copies of the first resample
            fill = jnp.broadcast_to(w[:1], (chunk - part.shape[0], *w.shape[1:]))
            part = jnp.concatenate([part, fill])
        pieces.append(_approach2_chunk(c, n, y, part))
    return jax.tree.map(lambda *xs: jnp.concatenate(xs)[:B], *pieces)


def approach2_bootstrap(
    key: jax.Array,
    compute_flops: ArrayLike,
    n_params: ArrayLike,
    loss: ArrayLike,
    weights: ArrayLike | None = None,
    *,
    num_draws: int = 1000,
    confidence: float = 0.95,
) -> Approach2Bootstrap:
    """Bootstrap intervals on Approach 2's exponents, resampling within budgets.

    Each resample draws, within every budget, as many runs as it has (with
    replacement, among the runs with positive weight) and refits
    :func:`~jscale.isoflop.approach2` with the counts as weights; all resamples run
    as one vmapped, jitted call. Resamples left with fewer than two budgets whose
    parabola has a minimum (a budget needs 3 distinct sizes) are flagged invalid
    and excluded from the statistics.

    Args:
      key: a ``jax.random`` key (resample ``i`` uses ``fold_in(key, i)``).
      compute_flops, n_params, loss, weights: as for
        :func:`~jscale.isoflop.approach2`.
      num_draws: B, the number of resamples (>= 2).
      confidence: coverage of the percentile intervals (0 < confidence < 1).

    Returns:
      An :class:`Approach2Bootstrap`.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jscale.isoflop import isoflop_minimum, isoflop_slice
      >>> from jscale.laws import chinchilla
      >>> p = chinchilla.HOFFMANN2022.params
      >>> c = jnp.logspace(19, 22, 4)
      >>> n = isoflop_minimum(chinchilla.loss, p, c).n_params[:, None] * jnp.logspace(
      ...     -0.5, 0.5, 7)[None, :]
      >>> y = isoflop_slice(chinchilla.loss, p, c[:, None], n).loss
      >>> bs = approach2_bootstrap(jax.random.key(0), c, n, y, num_draws=100)
      >>> bool(bs.low_a <= 0.28 / 0.62 <= bs.high_a)
      True
    """
    c, n, y, w = _approach2_inputs(compute_flops, n_params, loss, weights)
    num_draws = _checks.check_whole("num_draws", num_draws, minimum=2)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1); got {confidence}")
    counts = within_budget_weights(key, w, num_draws).astype(w.dtype)
    ws = counts * w[None]
    r = _approach2_batch(c, n, y, ws)
    valid = np.isfinite(np.asarray(r.a)) & np.isfinite(np.asarray(r.b))
    tail = 100.0 * (1.0 - confidence) / 2.0
    stats = {}
    for name in ("a", "b"):
        v = np.asarray(getattr(r, name), np.float64)[valid]
        if v.size >= 2:
            lo, hi = np.percentile(v, [tail, 100.0 - tail])
            stats[name] = (float(np.std(v, ddof=1)), float(lo), float(hi))
        else:
            stats[name] = (math.nan,) * 3
    return Approach2Bootstrap(
        a=r.a,
        b=r.b,
        log_k_n=r.log_k_n,
        log_k_d=r.log_k_d,
        n_opt=r.n_opt,
        valid=jnp.asarray(valid),
        stderr_a=stats["a"][0],
        stderr_b=stats["b"][0],
        low_a=stats["a"][1],
        high_a=stats["a"][2],
        low_b=stats["b"][1],
        high_b=stats["b"][2],
        confidence=float(confidence),
        weights=ws,
    )
