"""Streaming statistics that never hold all values: moments, extremes, fixed-bin
histograms and exceedance counts.

:class:`StreamStats` is a pytree of arrays with :func:`stats_init`,
:func:`stats_update` and :func:`stats_merge` (summaries on the host:
:mod:`jscale.montecarlo.summary`). Counts (finite values, flagged values,
histogram bins, threshold exceedances) are exact integers held in two 32-bit words
each, so they never overflow nor round, in float32 as in float64. The mean and the
sum of squared deviations are reduced over fixed blocks of :data:`BLOCK` values by
a pairwise tree (elementwise adds, so the same bits at any batch shape) and the
blocks are folded in index order with Chan et al.'s (1979) update: the result is
independent of the chunk size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from .._checks import check_whole
from .._numerics import default_float, pad_to, padded_size

#: Draws per reduction block: chunk sizes are multiples of it, and moments are
#: reduced within a block by a fixed pairwise tree, then folded block by block.
BLOCK = 1024


class StreamStats(NamedTuple):
    """Streaming statistics of ``k`` outputs: a pytree of arrays (mergeable).

    Counts are exact 64-bit integers held as ``[high, low]`` uint32 words (last
    axis of 2). ``t`` below is ``log x`` where :attr:`log` is set, else ``x``.

    Attributes:
      count: ``(k, 2)`` finite values seen.
      nonfinite: ``(k, 2)`` values that were NaN or infinite (flagged results).
      mean: ``(k,)`` their mean.
      m2: ``(k,)`` the sum of squared deviations from the mean.
      min, max: ``(k,)`` extremes (``+inf`` / ``-inf`` before any value).
      log: ``(k,)`` bool: the histogram axis is ``log x``.
      lo, hi: ``(k,)`` histogram range in ``t``; bin ``j`` holds
        ``floor((t - lo) * bins / (hi - lo)) == j``.
      hist: ``(k, bins + 2, 2)`` counts: underflow (``t < lo``, and ``x <= 0`` on a
        log axis), ``bins`` bins, overflow (``t >= hi``).
      thresholds: ``(k, K)`` exceedance thresholds in ``x`` (NaN: unused slot).
      exceed: ``(k, K, 2)`` counts of finite values ``> threshold``.
    """

    count: jax.Array
    nonfinite: jax.Array
    mean: jax.Array
    m2: jax.Array
    min: jax.Array
    max: jax.Array
    log: jax.Array
    lo: jax.Array
    hi: jax.Array
    hist: jax.Array
    thresholds: jax.Array
    exceed: jax.Array


def _wide(c: jax.Array) -> jax.Array:
    """Non-negative int32 counts as ``[high, low]`` uint32 words."""
    c = c.astype(jnp.uint32)
    return jnp.stack([jnp.zeros_like(c), c], -1)


def _wide_add(a: jax.Array, b: jax.Array) -> jax.Array:
    lo = a[..., 1] + b[..., 1]
    carry = (lo < a[..., 1]).astype(jnp.uint32)
    return jnp.stack([a[..., 0] + b[..., 0] + carry, lo], -1)


def _wide_float(a: jax.Array, dtype) -> jax.Array:
    return a[..., 0].astype(dtype) * 4294967296.0 + a[..., 1].astype(dtype)


def _wide_int(a) -> np.ndarray:
    a = np.asarray(a).astype(np.uint64)
    return (a[..., 0] << np.uint64(32)) + a[..., 1]


def stats_init(
    lo: ArrayLike,
    hi: ArrayLike,
    *,
    bins: int = 8192,
    log: bool | Sequence[bool] | None = None,
    thresholds: ArrayLike | None = None,
    dtype=None,
) -> StreamStats:
    """Empty statistics for ``k`` outputs with histograms over ``[lo, hi)``.

    Args:
      lo, hi: histogram ranges in the outputs' units, scalars or ``(k,)``.
      bins: bins per histogram (>= 1).
      log: bin ``log x`` (default: where ``lo > 0``).
      thresholds: exceedance thresholds ``(K,)`` for every output or ``(k, K)``
        (NaN pads unused slots).
      dtype: float dtype of the moments (default: float64 under x64, else float32).

    Returns:
      A :class:`StreamStats`.

    Raises:
      ValueError: for ``hi <= lo``, a log axis with ``lo <= 0``, or ``bins < 1``.
    """
    dtype = jnp.dtype(default_float() if dtype is None else dtype)
    lo64 = np.atleast_1d(np.asarray(lo, np.float64))
    hi64 = np.atleast_1d(np.asarray(hi, np.float64))
    lo64, hi64 = np.broadcast_arrays(lo64, hi64)
    if lo64.ndim != 1:
        raise ValueError(f"lo and hi must be scalars or (k,); got shape {lo64.shape}")
    k = lo64.shape[0]
    bins = check_whole("bins", bins)
    flags = (
        lo64 > 0 if log is None else np.broadcast_to(np.asarray(log, bool), (k,)).copy()
    )
    for j in range(k):
        ok = np.isfinite(lo64[j]) and np.isfinite(hi64[j]) and hi64[j] > lo64[j]
        if not ok:
            raise ValueError(
                f"histogram range must be finite with hi > lo; got output {j}: "
                f"[{lo64[j]:.6g}, {hi64[j]:.6g})"
            )
        if flags[j] and lo64[j] <= 0:
            raise ValueError(
                f"a log-space histogram needs lo > 0; got output {j}: lo = "
                f"{lo64[j]:.6g}"
            )
    t_lo = np.where(flags, np.log(np.where(flags, lo64, 1.0)), lo64)
    t_hi = np.where(flags, np.log(np.where(flags, hi64, 1.0)), hi64)
    if thresholds is None:
        thr = np.zeros((k, 0))
    else:
        thr = np.asarray(thresholds, np.float64)
        thr = np.broadcast_to(
            thr if thr.ndim == 2 else thr[None, :], (k, thr.shape[-1])
        )
    zeros = jnp.zeros((k, 2), jnp.uint32)
    return StreamStats(
        count=zeros,
        nonfinite=zeros,
        mean=jnp.zeros(k, dtype),
        m2=jnp.zeros(k, dtype),
        min=jnp.full(k, jnp.inf, dtype),
        max=jnp.full(k, -jnp.inf, dtype),
        log=jnp.asarray(flags),
        lo=jnp.asarray(t_lo, dtype),
        hi=jnp.asarray(t_hi, dtype),
        hist=jnp.zeros((k, bins + 2, 2), jnp.uint32),
        thresholds=jnp.asarray(thr, dtype),
        exceed=jnp.zeros((k, thr.shape[1], 2), jnp.uint32),
    )


def _tree_sum(x: jax.Array) -> jax.Array:
    """Sum over the last axis (a power of two) by a fixed pairwise tree."""
    while x.shape[-1] > 1:
        h = x.shape[-1] // 2
        x = x[..., :h] + x[..., h:]
    return x[..., 0]


def _bin_index(state: StreamStats, x: jax.Array, valid: jax.Array) -> jax.Array:
    """Histogram slot of each value: 0 underflow, 1..bins, bins + 1 overflow."""
    bins = state.hist.shape[1] - 2
    log = state.log[:, None]
    positive = x > 0
    t = jnp.where(log, jnp.log(jnp.where(positive & valid, x, 1.0)), x)
    scale = bins / (state.hi - state.lo)
    pos = (t - state.lo[:, None]) * scale[:, None]
    pos = jnp.where(log & ~positive, -1.0, pos)
    b = jnp.clip(jnp.floor(jnp.where(valid, pos, 0.0)), -1.0, float(bins))
    return b.astype(jnp.int32) + 1


def _update_moments(state: StreamStats, x: jax.Array, mask: jax.Array):
    """Count, mean and M2: a fixed pairwise tree within each block of BLOCK
    values, then the blocks folded in index order (Chan et al. 1979)."""
    dtype = state.mean.dtype
    k, n = x.shape
    valid = mask & jnp.isfinite(x)
    nb = n // BLOCK
    xv = jnp.where(valid, x, 0.0).reshape(k, nb, BLOCK)
    vb = valid.reshape(k, nb, BLOCK)
    cb = jnp.sum(vb, axis=-1, dtype=jnp.int32)
    mb = _tree_sum(xv) / jnp.maximum(cb, 1).astype(dtype)
    dev = jnp.where(vb, xv - mb[..., None], 0.0)
    qb = _tree_sum(dev * dev)

    def fold(carry, block):
        count, mean, m2 = carry
        c, mu, q = block
        na = _wide_float(count, dtype)
        nbk = c.astype(dtype)
        has = c > 0
        total = jnp.where(has, na + nbk, 1.0)
        delta = mu - mean
        new_mean = mean + delta * (nbk / total)
        new_m2 = m2 + q + delta * (delta * (na * nbk / total))
        return (
            _wide_add(count, _wide(c)),
            jnp.where(has, new_mean, mean),
            jnp.where(has, new_m2, m2),
        ), None

    (count, mean, m2), _ = jax.lax.scan(
        fold, (state.count, state.mean, state.m2), (cb.T, mb.T, qb.T)
    )
    return count, mean, m2


def _update_extremes(state: StreamStats, x: jax.Array, mask: jax.Array):
    """Flagged values, min, max and exceedance counts."""
    dtype = state.mean.dtype
    finite = jnp.isfinite(x)
    valid = mask & finite
    nonfinite = jnp.sum(mask & ~finite, axis=-1, dtype=jnp.int32)
    lo = jnp.min(jnp.where(valid, x, jnp.inf), axis=-1)
    hi = jnp.max(jnp.where(valid, x, -jnp.inf), axis=-1)
    above = (x[:, None, :] > state.thresholds[:, :, None]) & valid[:, None, :]
    exceed = jnp.sum(above, axis=-1, dtype=jnp.int32)
    return (
        _wide_add(state.nonfinite, _wide(nonfinite)),
        jnp.minimum(state.min, lo.astype(dtype)),
        jnp.maximum(state.max, hi.astype(dtype)),
        _wide_add(state.exceed, _wide(exceed)),
    )


def _update_hist(state: StreamStats, x: jax.Array, mask: jax.Array) -> jax.Array:
    """Histogram counts: one scatter-add over all outputs."""
    k = x.shape[0]
    bins = state.hist.shape[1] - 2
    valid = mask & jnp.isfinite(x)
    slot = _bin_index(state, x, valid)
    flat = slot + (bins + 2) * jnp.arange(k, dtype=jnp.int32)[:, None]
    flat = jnp.where(valid, flat, k * (bins + 2))
    hist = (
        jnp.zeros(k * (bins + 2), jnp.int32)
        .at[flat.reshape(-1)]
        .add(1, mode="drop")
        .reshape(k, bins + 2)
    )
    return _wide_add(state.hist, _wide(hist))


def _assemble(state: StreamStats, moments, extremes, hist) -> StreamStats:
    count, mean, m2 = moments
    nonfinite, lo, hi, exceed = extremes
    return state._replace(
        count=count,
        nonfinite=nonfinite,
        mean=mean,
        m2=m2,
        min=lo,
        max=hi,
        hist=hist,
        exceed=exceed,
    )


def _update(state: StreamStats, x: jax.Array, mask: jax.Array) -> StreamStats:
    """The update for ``x`` of shape ``(k, n)``, ``n`` a multiple of BLOCK."""
    return _assemble(
        state,
        _update_moments(state, x, mask),
        _update_extremes(state, x, mask),
        _update_hist(state, x, mask),
    )


@jax.jit
def stats_update(
    state: StreamStats, values: ArrayLike, mask: ArrayLike | None = None
) -> StreamStats:
    """Fold a batch of values into the statistics (pure; jit-compatible).

    Values are taken in order: the result of folding a stream in batches does not
    depend on the batch sizes when every batch but the last is a multiple of
    :data:`BLOCK` values. Compiled (``jax.jit``) once per shape.

    Args:
      state: the statistics so far.
      values: ``(k, n)`` values (or ``(n,)`` when ``k == 1``).
      mask: bool, broadcastable to ``values``: False leaves a value out entirely
        (padding). NaN or infinite values are counted in ``nonfinite``, not in the
        statistics.

    Returns:
      The updated :class:`StreamStats`.

    Examples:
      >>> import jax.numpy as jnp
      >>> s = stats_init(0.1, 10.0, bins=4, thresholds=[1.0])
      >>> s = stats_update(s, jnp.array([0.5, 1.0, 2.0, jnp.nan]))
      >>> from jscale.montecarlo import summarize
      >>> summary = summarize(s)[0]
      >>> summary.count, summary.nonfinite, round(summary.mean, 4)
      (3, 1, 1.1667)
      >>> summary.exceedance[1.0]
      0.3333333333333333
    """
    dtype = state.mean.dtype
    k = state.mean.shape[0]
    x = jnp.asarray(values, dtype)
    if x.ndim == 1 and k == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[0] != k:
        raise ValueError(
            f"values must have shape ({k}, n) (or (n,) for one output); got "
            f"{jnp.shape(values)}"
        )
    m = jnp.ones(x.shape, bool) if mask is None else jnp.asarray(mask, bool)
    if m.ndim == 1 and k == 1:
        m = m[None, :]
    m = jnp.broadcast_to(m, x.shape)
    n = padded_size(x.shape[1], BLOCK)  # whole blocks; padding is masked out
    x = pad_to(x, n, axis=1, value=0.0)
    m = pad_to(m, n, axis=1, value=False)
    return _update(state, x, m)


def _same_layout(a: StreamStats, b: StreamStats) -> None:
    if a.hist.shape != b.hist.shape or a.thresholds.shape != b.thresholds.shape:
        raise ValueError(
            "stats_merge: the statistics have different shapes (outputs, bins or "
            f"thresholds): {a.hist.shape} / {b.hist.shape}, "
            f"{a.thresholds.shape} / {b.thresholds.shape}"
        )
    fields = (a.log, a.lo, a.hi, a.thresholds, b.log, b.lo, b.hi, b.thresholds)
    if any(isinstance(f, jax.core.Tracer) for f in fields):
        return
    for name in ("log", "lo", "hi", "thresholds"):
        x, y = np.asarray(getattr(a, name)), np.asarray(getattr(b, name))
        if not np.array_equal(x, y, equal_nan=x.dtype.kind == "f"):
            raise ValueError(
                f"stats_merge: the statistics have different histogram ranges or "
                f"thresholds ({name} differs)"
            )


def stats_merge(a: StreamStats, b: StreamStats) -> StreamStats:
    """Combine the statistics of two independent streams (e.g. two devices).

    Counts add exactly; moments combine with Chan et al.'s (1979) parallel update.
    Both must have the same histogram ranges and thresholds.

    Examples:
      >>> import jax.numpy as jnp
      >>> s = stats_init(1.0, 4.0, bins=3)
      >>> ab = stats_merge(stats_update(s, jnp.array([1.0, 2.0])),
      ...                  stats_update(s, jnp.array([3.0])))
      >>> float(ab.mean[0]), float(ab.m2[0])
      (2.0, 2.0)
    """
    _same_layout(a, b)
    return _merge(a, b)


@jax.jit
def _merge(a: StreamStats, b: StreamStats) -> StreamStats:
    dtype = a.mean.dtype
    na, nb = _wide_float(a.count, dtype), _wide_float(b.count, dtype)
    total = na + nb
    safe = jnp.where(total > 0, total, 1.0)
    delta = b.mean - a.mean
    mean = jnp.where(nb > 0, a.mean + delta * (nb / safe), a.mean)
    mean = jnp.where(na > 0, mean, b.mean)
    m2 = a.m2 + b.m2 + delta * (delta * (na * nb / safe))
    return StreamStats(
        count=_wide_add(a.count, b.count),
        nonfinite=_wide_add(a.nonfinite, b.nonfinite),
        mean=mean,
        m2=jnp.where((na > 0) & (nb > 0), m2, a.m2 + b.m2),
        min=jnp.minimum(a.min, b.min),
        max=jnp.maximum(a.max, b.max),
        log=a.log,
        lo=a.lo,
        hi=a.hi,
        hist=_wide_add(a.hist, b.hist),
        thresholds=a.thresholds,
        exceed=_wide_add(a.exceed, b.exceed),
    )
