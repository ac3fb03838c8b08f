"""Sobol sensitivity indices: Saltelli sampling and Jansen's estimators."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import numpy as np

from .._checks import check_whole
from .._numerics import default_float
from .propagate import _arguments, _stages
from .random import _key_words, _start_words, _typed


class SobolResult(NamedTuple):
    """First-order and total Sobol indices (Jansen estimators).

    Attributes:
      names: the inputs (the distribution's coordinates, e.g. ``"E"``, ``"A"``).
      outputs: the outputs of ``fn`` (as in :class:`PropagateResult`).
      first_order: ``(k, d)`` first-order indices ``S_i = V[E(Y|X_i)] / V(Y)``.
      total: ``(k, d)`` total indices ``S_Ti = E[V(Y|X_~i)] / V(Y)``.
      first_order_ci, total_ci: ``(k, d, 2)`` bootstrap percentile intervals at
        ``confidence`` (``None`` without ``num_bootstrap``).
      first_order_se, total_se: ``(k, d)`` bootstrap standard errors (or None).
      variance: ``(k,)`` the output variance ``V(Y)``.
      num_draws: N, the rows of each of the sample matrices A and B.
      num_evaluations: ``N (d + 2)`` evaluations of ``fn``.
      dropped: ``(k,)`` rows left out because an evaluation was not finite.
      confidence: the intervals' coverage.
    """

    names: tuple
    outputs: tuple
    first_order: np.ndarray
    total: np.ndarray
    first_order_ci: np.ndarray | None
    total_ci: np.ndarray | None
    first_order_se: np.ndarray | None
    total_se: np.ndarray | None
    variance: np.ndarray
    num_draws: int
    num_evaluations: int
    dropped: np.ndarray
    confidence: float


def _jansen(fa, fb, fab):
    """Jansen 1999 estimators (Saltelli et al. 2010, Table 2) from row values.

    ``fa``, ``fb``: ``(n,)``; ``fab``: ``(d, n)`` (A with column i from B).
    """
    both = np.concatenate([fa, fb])
    var = np.mean(both * both) - np.mean(both) ** 2
    first = (var - 0.5 * np.mean((fb[None, :] - fab) ** 2, axis=1)) / var
    total = 0.5 * np.mean((fa[None, :] - fab) ** 2, axis=1) / var
    return first, total, var


def sobol(
    key,
    fn: Callable,
    dist,
    num_draws: int,
    *,
    chunk_size: int = 1 << 14,
    num_bootstrap: int = 0,
    confidence: float = 0.95,
) -> SobolResult:
    """Sobol first-order and total indices of ``fn``'s outputs over ``dist``'s inputs.

    Saltelli sampling (Saltelli et al. 2010, "Variance based sensitivity analysis
    of model output. Design and estimator for the total sensitivity index",
    Comput. Phys. Commun. 181, 259): two independent sample matrices A and B of N
    rows (random streams ``fold_in(key, 0)`` and ``fold_in(key, 1)``, drawn as in
    :func:`propagate`), and for each input i the matrix ``A_B^(i)``, A with column i
    from B: ``N (d + 2)`` evaluations. Jansen's (1999) estimators, as listed in
    Saltelli et al. 2010, Table 2:

    - ``V[E(Y|X_i)] = V(Y) - 1/(2N) sum_j (f(B)_j - f(A_B^(i))_j)^2``
    - ``E[V(Y|X_~i)] = 1/(2N) sum_j (f(A)_j - f(A_B^(i))_j)^2``

    with ``V(Y)`` the variance over the rows of A and B, each divided by ``V(Y)``.
    The inputs must be independent (Sobol indices are defined for independent
    inputs): :class:`Uniform`, :class:`LogUniform`, a
    :class:`MultivariateNormal` with a diagonal covariance, or a
    :class:`Joint` of them. With ``num_bootstrap``, the N rows are resampled
    with replacement (Efron's bootstrap; seed from ``fold_in(key, 2)``) for
    percentile intervals and standard errors. Memory: ``N (d + 2)`` values per
    output (held for the bootstrap); the evaluations run in compiled chunks.

    Args:
      key: a ``jax.random.key``.
      fn: ``fn(params) -> scalar or pytree of scalars`` for one draw.
      dist: an independent distribution.
      num_draws: N (>= 2). The estimators' standard errors fall as
        ``1/sqrt(N)``.
      chunk_size: rows evaluated per compiled call.
      num_bootstrap: bootstrap resamples for intervals (0: none).
      confidence: coverage of the intervals.

    Returns:
      A :class:`SobolResult`.

    Examples:
      The Ishigami function (Ishigami & Homma 1990), whose third input acts only
      through its interaction with the first:

      >>> import jax, jax.numpy as jnp
      >>> def ishigami(x):
      ...     return (jnp.sin(x[0]) + 7.0 * jnp.sin(x[1]) ** 2
      ...             + 0.1 * x[2] ** 4 * jnp.sin(x[0]))
      >>> from jscale.montecarlo import Uniform
      >>> box = Uniform((-jnp.pi,) * 3, (jnp.pi,) * 3)
      >>> r = sobol(jax.random.key(0), ishigami, box, 20_000)
      >>> exact_s = [0.314, 0.442, 0.0]      # Sobol' & Levitan 1999, a=7, b=0.1
      >>> exact_t = [0.558, 0.442, 0.244]
      >>> bool(abs(r.first_order[0] - exact_s).max() < 0.05)
      True
      >>> bool(abs(r.total[0] - exact_t).max() < 0.05)
      True
    """
    key, fn, dist = _arguments(key, fn, dist)
    if not dist.independent:
        raise ValueError(
            "sobol needs independent inputs (Sobol indices are defined for them); "
            "this distribution correlates its parameters. Use independent "
            "marginals (e.g. MultivariateNormal.from_sd) or a Joint of "
            "independent parts"
        )
    n = check_whole("num_draws", num_draws, minimum=2)
    size = min(check_whole("chunk_size", chunk_size), n)
    num_bootstrap = check_whole("num_bootstrap", num_bootstrap, minimum=0)
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must be in (0, 1); got {confidence}")
    dtype = default_float()
    d = dist.dim
    keys = [_key_words(jax.random.fold_in(_typed(key), j)) for j in (0, 1)]
    stages = _stages(fn, dist, size, dtype)
    rows = None
    for start in range(0, n, size):
        s_hi, s_lo = _start_words(start)
        za, zb = (stages.marginals(a, b, s_hi, s_lo) for a, b in keys)
        mixes = [za, zb] + [za.at[i].set(zb[i]) for i in range(d)]
        block = np.stack([np.asarray(stages.outputs(z), np.float64) for z in mixes], 1)
        if rows is None:
            rows = np.empty(block.shape[:2] + (n,))
        take = min(size, n - start)
        rows[:, :, start : start + take] = block[:, :, :take]
    names = stages.names
    k = rows.shape[0]
    first = np.empty((k, d))
    total = np.empty((k, d))
    var = np.empty(k)
    dropped = np.empty(k, dtype=np.int64)
    kept = []
    for j in range(k):
        ok = np.all(np.isfinite(rows[j]), axis=0)
        dropped[j] = int(n - ok.sum())
        if ok.sum() < 2:
            raise ValueError(
                f"sobol: output {names[j]!r} is finite in fewer than 2 of {n} rows"
            )
        r = rows[j][:, ok]
        r = r - np.mean(r[:2])  # centre: the estimators are shift-invariant
        kept.append(r)
        first[j], total[j], var[j] = _jansen(r[0], r[1], r[2:])
    ci_first = ci_total = se_first = se_total = None
    if num_bootstrap:
        seed = np.asarray(jax.random.key_data(jax.random.fold_in(_typed(key), 2)))
        rng = np.random.default_rng([int(w) for w in seed.reshape(-1)])
        tail = 100.0 * (1.0 - float(confidence)) / 2.0
        ci_first, ci_total = np.empty((k, d, 2)), np.empty((k, d, 2))
        se_first, se_total = np.empty((k, d)), np.empty((k, d))
        for j, r in enumerate(kept):
            m = r.shape[1]
            bf, bt = np.empty((num_bootstrap, d)), np.empty((num_bootstrap, d))
            for b in range(num_bootstrap):
                idx = rng.integers(0, m, m)
                rb = r[:, idx]
                bf[b], bt[b], _ = _jansen(rb[0], rb[1], rb[2:])
            ci_first[j] = np.percentile(bf, [tail, 100.0 - tail], axis=0).T
            ci_total[j] = np.percentile(bt, [tail, 100.0 - tail], axis=0).T
            se_first[j] = np.std(bf, axis=0, ddof=1)
            se_total[j] = np.std(bt, axis=0, ddof=1)
    return SobolResult(
        names=tuple(dist.names),
        outputs=tuple(names),
        first_order=first,
        total=total,
        first_order_ci=ci_first,
        total_ci=ci_total,
        first_order_se=se_first,
        total_se=se_total,
        variance=var,
        num_draws=n,
        num_evaluations=n * (d + 2),
        dropped=dropped,
        confidence=float(confidence),
    )
