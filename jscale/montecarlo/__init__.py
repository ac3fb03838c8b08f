"""Monte Carlo over scaling-law parameters: distributions, propagation, streaming
statistics and Sobol sensitivity indices.

A Monte Carlo draw is a law with sampled constants (a ``*Params`` NamedTuple, or
any pytree of parameters and scenario inputs). :func:`propagate` pushes draws
through a function written for one draw, e.g.
``lambda p: allocation.chinchilla_optimal(p, 1e24)``, any other jscale function or
your own, and streams the outputs into statistics that never hold all draws:
moments, min/max, a fixed-bin histogram (in log space for positive outputs),
quantiles read off it, and exceedance probabilities. :func:`sobol` estimates
first-order and total Sobol indices. Every function that takes a PRNG key takes it
first.

Where to look:

- :mod:`~jscale.montecarlo.random`: counter-based Threefry draws; draw ``i``
  depends only on the key and on ``i``, so every result is bit-identical for any
  chunk size.
- :mod:`~jscale.montecarlo.distributions`: :class:`MultivariateNormal`
  (correlated normals, each coordinate on a linear or a log scale),
  :class:`Uniform`, :class:`LogUniform`, :class:`Bootstrap` (resampled fits, e.g.
  from :func:`jscale.fitting.bootstrap`) and :class:`Joint` (independent parts),
  and :func:`sample`.
- :mod:`~jscale.montecarlo.uncertainty`: :func:`law_uncertainty`, the default
  distribution of a preset (Besiroglu et al. 2024's refit of Chinchilla, with
  their bootstrap covariance,
  :data:`jscale.laws.chinchilla.BESIROGLU2024_COVARIANCE`).
- :mod:`~jscale.montecarlo.statistics`: :class:`StreamStats` with
  :func:`stats_init`, :func:`stats_update`, :func:`stats_merge` (exact counts,
  moments reduced over fixed blocks of :data:`BLOCK` draws, histograms,
  exceedances).
- :mod:`~jscale.montecarlo.summary`: :func:`summarize` (quantiles with bounds of
  one bin width; exact ones for small runs, ``num_draws <= EXACT_LIMIT``) and
  :func:`summary_dict`.
- :mod:`~jscale.montecarlo.propagate`: :func:`propagate`, in compiled chunks with
  checkpoints and resume (:func:`jscale.sweep.run_chunks`).
- :mod:`~jscale.montecarlo.sobol`: :func:`sobol` (Saltelli sampling, Jansen's
  estimators).

Examples:
  >>> import jax
  >>> from jscale import allocation, montecarlo
  >>> dist = montecarlo.law_uncertainty("chinchilla-besiroglu2024")
  >>> plan = lambda p: allocation.chinchilla_optimal(p, 1e24)
  >>> r = montecarlo.propagate(jax.random.key(0), plan, dist, 20_000)
  >>> s = r.summaries["n_params"]
  >>> point = float(allocation.chinchilla_optimal(dist.center, 1e24).n_params)
  >>> s.count, round(point / 1e9), 0.9 < s.quantiles[0.5] / point < 1.1
  (20000, 96, True)
  >>> s.quantiles[0.05] < s.mean < s.quantiles[0.95]
  True
"""

from .distributions import (
    Bootstrap,
    Joint,
    LogUniform,
    MultivariateNormal,
    Uniform,
    sample,
)
from .propagate import EXACT_LIMIT, PropagateResult, propagate
from .sobol import SobolResult, sobol
from .statistics import BLOCK, StreamStats, stats_init, stats_merge, stats_update
from .summary import Summary, summarize, summary_dict
from .uncertainty import law_uncertainty

__all__ = [
    "BLOCK",
    "EXACT_LIMIT",
    "Bootstrap",
    "Joint",
    "LogUniform",
    "MultivariateNormal",
    "PropagateResult",
    "SobolResult",
    "StreamStats",
    "Summary",
    "Uniform",
    "law_uncertainty",
    "propagate",
    "sample",
    "sobol",
    "stats_init",
    "stats_merge",
    "stats_update",
    "summarize",
    "summary_dict",
]
