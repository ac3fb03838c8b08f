"""Host-side summaries of streaming statistics: moments, quantiles with bounds,
exceedance probabilities and the histogram, and their JSON form.

Quantiles are read off the histogram's CDF (linear within a bin, then NumPy's
``"linear"`` rule between order statistics); each comes with bounds (the edges of
the bins that hold the order statistics), so the error is at most one bin width: a
relative error of at most ``expm1((log hi - log lo) / bins)`` on a log-space
histogram. Given every value (small runs), quantiles are exact
(``numpy.quantile``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import jax
import numpy as np
from jax.typing import ArrayLike

from .statistics import StreamStats, _wide_int


class Summary(NamedTuple):
    """Statistics of one output, on the host (Python floats and ints).

    Attributes:
      count: finite values (draws that gave a result).
      nonfinite: draws whose result was NaN or infinite (flagged by the function,
        e.g. an infeasible allocation); excluded from everything below.
      mean, std: mean and sample standard deviation (``ddof=1``).
      mean_stderr: Monte Carlo standard error of the mean, ``std / sqrt(count)``.
      min, max: extremes.
      quantiles: ``{q: value}``.
      quantile_bounds: ``{q: (low, high)}``: the sample quantile lies in this
        range (the bins holding its order statistics; equal to the value when
        ``exact``).
      exact: quantiles computed from every value (small runs) rather than the
        histogram.
      exceedance: ``{threshold: P(x > threshold)}``.
      edges: the ``bins + 1`` histogram edges in the output's units.
      counts: ``bins`` counts; ``underflow`` / ``overflow`` below / above.
      log: whether the bins are uniform in ``log x``.
    """

    count: int
    nonfinite: int
    mean: float
    std: float
    mean_stderr: float
    min: float
    max: float
    quantiles: dict
    quantile_bounds: dict
    exact: bool
    exceedance: dict
    edges: np.ndarray
    counts: np.ndarray
    underflow: int
    overflow: int
    log: bool


def _hist_rank(counts, cum, r, edges_t, t_min, t_max):
    """Estimate (in t) of the order statistic of rank ``r`` and its bin's edges."""
    b = int(np.searchsorted(cum, r, side="right"))
    before = int(cum[b] - counts[b])
    if b == 0:
        e0, e1 = t_min, edges_t[0]
    elif b == len(counts) - 1:
        e0, e1 = edges_t[-1], t_max
    else:
        e0, e1 = edges_t[b - 1], edges_t[b]
    e0, e1 = max(e0, t_min), min(e1, t_max)
    if not np.isfinite(e0):
        return e1, e0, e1
    est = e0 + (r - before + 0.5) / counts[b] * (e1 - e0)
    return est, e0, e1


def _quantile_from_hist(q, hist, log, lo, hi, vmin, vmax):
    counts = hist.astype(np.float64)
    n = int(hist.sum())
    bins = len(hist) - 2
    edges_t = lo + (hi - lo) * np.arange(bins + 1) / bins

    def to_x(t):
        return float(np.exp(t)) if log else float(t)

    if log:
        t_min = math.log(vmin) if vmin > 0 else -math.inf
        t_max = math.log(vmax) if vmax > 0 else -math.inf
    else:
        t_min, t_max = vmin, vmax
    cum = np.cumsum(hist)
    h = (n - 1) * q
    r0 = math.floor(h)
    r1 = min(r0 + 1, n - 1)
    t0, a0, _ = _hist_rank(counts, cum, r0, edges_t, t_min, t_max)
    t1, _, b1 = _hist_rank(counts, cum, r1, edges_t, t_min, t_max)
    x0, x1 = to_x(t0), to_x(t1)
    low = vmin if log and not np.isfinite(a0) else to_x(a0)
    est = min(max(x0 + (h - r0) * (x1 - x0), vmin), vmax)
    low, high = max(min(low, est), vmin), min(max(to_x(b1), est), vmax)
    return est, (low, high)


def summarize(
    state: StreamStats,
    quantiles: Sequence[float] = (0.05, 0.5, 0.95),
    *,
    values: ArrayLike | None = None,
    thresholds: ArrayLike | None = None,
) -> list[Summary]:
    """Host-side summaries (one per output) of :class:`StreamStats`.

    Args:
      state: the statistics.
      quantiles: probabilities in [0, 1].
      values: optionally every value, ``(k, n)`` (NaN for none): then quantiles
        are exact (``numpy.quantile``, its default ``"linear"`` rule).
      thresholds: ``(k, K)`` labels for the exceedance keys (default: the
        state's thresholds, which are rounded to its dtype).

    Returns:
      A list of :class:`Summary`, one per output.
    """
    qs = [float(q) for q in quantiles]
    for q in qs:
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantiles must be in [0, 1]; got {q}")
    s = jax.tree_util.tree_map(np.asarray, state)
    k, bins = s.mean.shape[0], s.hist.shape[1] - 2
    vals = None if values is None else np.asarray(values, np.float64)
    out = []
    for j in range(k):
        n = int(_wide_int(s.count[j]))
        hist = _wide_int(s.hist[j]).astype(np.int64)
        log = bool(s.log[j])
        lo, hi = float(s.lo[j]), float(s.hi[j])
        edges_t = lo + (hi - lo) * np.arange(bins + 1) / bins
        edges = np.exp(edges_t) if log else edges_t
        vmin, vmax = float(s.min[j]), float(s.max[j])
        qv, qb = {}, {}
        exact = vals is not None
        if n == 0:
            for q in qs:
                qv[q], qb[q] = math.nan, (math.nan, math.nan)
        elif exact:
            finite = vals[j][np.isfinite(vals[j])]
            for q, v in zip(qs, np.quantile(finite, qs), strict=True):
                qv[q], qb[q] = float(v), (float(v), float(v))
        else:
            for q in qs:
                qv[q], qb[q] = _quantile_from_hist(q, hist, log, lo, hi, vmin, vmax)
        exceed = {}
        labels = s.thresholds[j] if thresholds is None else np.asarray(thresholds)[j]
        for t, c in zip(labels, _wide_int(s.exceed[j]), strict=True):
            if not np.isnan(t):
                exceed[float(t)] = int(c) / n if n else math.nan
        var = float(s.m2[j]) / (n - 1) if n > 1 else math.nan
        std = math.sqrt(var) if var >= 0 else math.nan
        out.append(
            Summary(
                count=n,
                nonfinite=int(_wide_int(s.nonfinite[j])),
                mean=float(s.mean[j]) if n else math.nan,
                std=std,
                mean_stderr=std / math.sqrt(n) if n > 1 else math.nan,
                min=vmin if n else math.nan,
                max=vmax if n else math.nan,
                quantiles=qv,
                quantile_bounds=qb,
                exact=exact,
                exceedance=exceed,
                edges=edges,
                counts=hist[1:-1],
                underflow=int(hist[0]),
                overflow=int(hist[-1]),
                log=log,
            )
        )
    return out


def _json_float(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def summary_dict(summary: Summary, *, histogram: bool = False) -> dict:
    """A :class:`Summary` as a JSON-ready dict (NaN and inf become ``None``)."""
    out = {
        "count": summary.count,
        "nonfinite": summary.nonfinite,
        "mean": _json_float(summary.mean),
        "std": _json_float(summary.std),
        "mean_stderr": _json_float(summary.mean_stderr),
        "min": _json_float(summary.min),
        "max": _json_float(summary.max),
        "quantiles": {f"{q:g}": _json_float(v) for q, v in summary.quantiles.items()},
        "quantile_bounds": {
            f"{q:g}": [_json_float(a), _json_float(b)]
            for q, (a, b) in summary.quantile_bounds.items()
        },
        "exact_quantiles": summary.exact,
        "exceedance": {f"{t:g}": _json_float(p) for t, p in summary.exceedance.items()},
    }
    if histogram:
        out["histogram"] = {
            "log": summary.log,
            "edges": [_json_float(e) for e in summary.edges],
            "counts": [int(c) for c in summary.counts],
            "underflow": summary.underflow,
            "overflow": summary.overflow,
        }
    return out
