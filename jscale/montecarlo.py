"""Monte Carlo over scaling-law parameters: distributions, propagation, streaming
statistics and Sobol sensitivity indices.

A Monte Carlo draw is a law with sampled constants (a ``*Params`` NamedTuple, or
any pytree of parameters and scenario inputs). :func:`propagate` pushes draws
through a function written for one draw, e.g.
``lambda p: allocation.chinchilla_optimal(p, 1e24)``, any other jscale function or
your own, and streams the outputs into statistics that never hold all draws:
moments, min/max, a fixed-bin histogram (in log space for positive outputs),
quantiles read off it, and exceedance probabilities. :func:`sobol` estimates
first-order and total Sobol indices.

Distributions (small NamedTuples; each maps ``dim`` independent uniforms to a
parameter pytree with ``from_unit``):

- :class:`MultivariateNormal`: correlated normals, each coordinate on a linear or
  a log scale, e.g. the uncertainty of a fit; :func:`law_uncertainty` gives the
  default for a preset (Besiroglu et al. 2024's refit of Chinchilla, with their
  bootstrap covariance, :data:`jscale.laws.chinchilla.BESIROGLU2024_COVARIANCE`).
- :class:`Uniform`, :class:`LogUniform` (priors per parameter),
  :class:`Bootstrap` (resampled fits, e.g. from :func:`jscale.fitting.bootstrap`)
  and :class:`Joint` (independent parts, e.g. law parameters and a scenario
  input).

Random numbers and chunk-size independence. Draw ``i`` depends only on the key
and on ``i``: coordinate ``c`` of draw ``i`` is one counter-mode Threefry-2x32 call
(Salmon et al. 2011, the generator behind ``jax.random``) under the user's key,
on the counter ``(dim * (i >> 32) + c, i & 0xffffffff)``; float32 takes 23 bits of
the two output words XORed (as ``jax.random`` does), float64 52 bits of both.
So no draw depends on the chunk it falls in, and every statistic below is
bit-identical for any chunk size (tested). This is ``jax.random.fold_in(key, i)``
followed by sampling with the folded key, with the fold and the sampling merged
into one hash per coordinate. Measured on the 2-core CPU of jscale's benchmarks
(float32, the five normals of a Chinchilla draw, CPU time per draw): ``vmap`` of
``fold_in`` and ``jax.random.normal``, 145 ns; the literal fold-in followed by
counter-mode words under the folded key, 47 ns; the merged counter, 33 ns.
Threefry is written out here in ``jax.numpy`` (20 rounds, unrolled),
bit-identical to ``jax.random``'s primitive (tested), so that XLA fuses it with
the rest of a draw: hashing is about six times cheaper on CPU than through the
primitive. Normals are ``sqrt(2) erfinv(2u - 1)``, as in ``jax.random.normal``.
Keys must use the default ``threefry2x32`` implementation.

Streaming statistics (:class:`StreamStats`, a pytree of arrays with
:func:`stats_init`, :func:`stats_update`, :func:`stats_merge`, and
:func:`summarize` on the host). Counts (finite values, flagged values, histogram
bins, threshold exceedances) are exact integers held in two 32-bit words each, so
they never overflow nor round, in float32 as in float64. The mean and the sum of
squared deviations are reduced over fixed blocks of :data:`BLOCK` draws by a
pairwise tree (elementwise adds, so the same bits at any batch shape) and the
blocks are folded in index order with Chan et al.'s (1979) update: the result is
independent of the chunk size. Quantiles are read off the histogram's CDF
(linear within a bin, then NumPy's ``"linear"`` rule between order statistics);
each comes with bounds (the edges of the bins that hold the order statistics),
so the error is at most one bin width: a relative error of at most
``expm1((log hi - log lo) / bins)`` on a log-space histogram. Small runs
(``num_draws <= EXACT_LIMIT``, or ``exact=True``) also keep every value and report
exact quantiles (``numpy.quantile``).

Examples:
  >>> import jax
  >>> from jscale import allocation, montecarlo
  >>> dist = montecarlo.law_uncertainty("chinchilla-besiroglu2024")
  >>> plan = lambda p: allocation.chinchilla_optimal(p, 1e24)
  >>> r = montecarlo.propagate(plan, dist, jax.random.key(0), 20_000)
  >>> s = r.summaries["n_params"]
  >>> point = float(allocation.chinchilla_optimal(dist.center, 1e24).n_params)
  >>> s.count, round(point / 1e9), 0.9 < s.quantiles[0.5] / point < 1.1
  (20000, 96, True)
  >>> s.quantiles[0.05] < s.mean < s.quantiles[0.95]
  True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from . import laws
from ._numerics import default_float
from .laws import chinchilla

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

#: Draws per reduction block: chunk sizes are multiples of it, and moments are
#: reduced within a block by a fixed pairwise tree, then folded block by block.
BLOCK = 1024

#: Runs of at most this many draws keep every value and report exact quantiles.
EXACT_LIMIT = 1 << 16

# ------------------------------------------------------------------ random numbers

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_SQRT2 = math.sqrt(2.0)


def _rotl(x: jax.Array, r: int) -> jax.Array:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def _threefry2x32(k0, k1, x0, x1) -> tuple[jax.Array, jax.Array]:
    """Threefry-2x32, 20 rounds (Salmon et al. 2011, "Parallel random numbers: as
    easy as 1, 2, 3"), written out so that XLA fuses it with its consumers.

    Bit-identical to ``jax.extend.random.threefry_2x32``; all inputs uint32 and
    broadcasting.
    """
    k2 = k0 ^ k1 ^ np.uint32(0x1BD11BDA)
    ks = (k0, k1, k2)
    x0 = x0 + k0
    x1 = x1 + k1
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x0 = x0 + x1
            x1 = _rotl(x1, r) ^ x0
        x0 = x0 + ks[(i + 1) % 3]
        x1 = x1 + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x0, x1


def _key_words(key) -> tuple[jax.Array, jax.Array]:
    """The two uint32 words of a single threefry key (typed or raw)."""
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        raise ValueError(
            "key must be a jax.random key (jax.random.key(seed)), not an int; "
            f"got {key!r}"
        )
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        impl = str(jax.random.key_impl(key))
        if "threefry" not in impl:
            raise ValueError(
                f"key must use the threefry2x32 implementation (the default); got "
                f"{impl!r}"
            )
        if jnp.shape(key) != ():
            raise ValueError(f"key must be a single key; got shape {jnp.shape(key)}")
        data = jax.random.key_data(key)
    else:
        data = jnp.asarray(key)
        if data.dtype != jnp.uint32 or data.shape != (2,):
            raise ValueError(
                "key must be a jax.random key (jax.random.key(seed)) or a raw "
                f"uint32[2] PRNGKey; got dtype {data.dtype}, shape {data.shape}"
            )
    return data[0], data[1]


def _units(k0, k1, hi, lo, dim: int, dtype) -> jax.Array:
    """``(dim,) + hi.shape`` uniforms in (0, 1) for the draws with index words
    ``(hi, lo)``.

    Coordinate ``c`` of draw ``i`` hashes the counter ``(dim * hi + c, lo)``.
    float32: 23 bits of ``y0 ^ y1`` (as ``jax.random`` folds a word pair),
    ``(k + 1/2) 2^-23``; float64: 52 bits of the pair, ``(k + 1/2) 2^-52``. Both
    are exact, symmetric about 1/2 and never 0 or 1.
    """
    dtype = jnp.dtype(dtype)
    coord = jnp.arange(dim, dtype=jnp.uint32).reshape((dim,) + (1,) * hi.ndim)
    y0, y1 = _threefry2x32(k0, k1, hi[None] * np.uint32(dim) + coord, lo[None])
    if dtype == jnp.float64:
        k = (y0 >> np.uint32(12)).astype(jnp.int32).astype(dtype) * 4294967296.0
        return (k + y1.astype(dtype) + 0.5) * 2.0**-52
    k = ((y0 ^ y1) >> np.uint32(9)).astype(jnp.int32).astype(dtype)
    return (k + 0.5) * np.float32(2.0**-23)


def _index_words(index: jax.Array) -> tuple[jax.Array, jax.Array]:
    if jnp.dtype(index.dtype).itemsize == 8:
        lo = (index & 0xFFFFFFFF).astype(jnp.uint32)
        hi = (index >> 32).astype(jnp.uint32)
    else:
        lo = index.astype(jnp.uint32)
        hi = jnp.zeros_like(lo)
    return hi, lo


def _range_words(start: int, size: int) -> tuple[jax.Array, jax.Array]:
    """Index words of draws ``start .. start + size - 1`` (carry across 2^32)."""
    s_hi, s_lo = jnp.uint32(start >> 32), jnp.uint32(start & 0xFFFFFFFF)
    return _offset_words(s_hi, s_lo, size)


def _offset_words(s_hi, s_lo, size: int) -> tuple[jax.Array, jax.Array]:
    lo = s_lo + jnp.arange(size, dtype=jnp.uint32)
    hi = s_hi + (lo < s_lo).astype(jnp.uint32)
    return hi, lo


def _normal(u: jax.Array) -> jax.Array:
    """Standard normal from a uniform in (0, 1): ``sqrt(2) erfinv(2u - 1)``."""
    return _SQRT2 * jax.lax.erf_inv(2.0 * u - 1.0)


# ------------------------------------------------------------------- distributions


def _path_name(path) -> str:
    parts = []
    for key in path:
        for attr in ("name", "key", "idx"):
            if hasattr(key, attr):
                parts.append(str(getattr(key, attr)))
                break
        else:
            parts.append(str(key))
    return ".".join(parts)


def _leaf_names(tree) -> list[str]:
    """One name per scalar coordinate of ``tree`` (array leaves get ``[j]``)."""
    names = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        base = _path_name(path) or "value"
        size = int(np.size(leaf))
        if np.ndim(leaf) == 0:
            names.append(base)
        else:
            names.extend(f"{base}[{j}]" for j in range(size))
    return names


def _dtype_of(*trees) -> jnp.dtype:
    leaves = [x for t in trees for x in jax.tree_util.tree_leaves(t)]
    dtype = jnp.result_type(*leaves) if leaves else default_float()
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = default_float()
    return jnp.dtype(jax.dtypes.canonicalize_dtype(dtype))


def _take(u: jax.Array, pos: int, shape: tuple[int, ...]) -> jax.Array:
    """Coordinates ``pos ..`` as an array of ``batch + shape``."""
    if shape == ():
        return u[pos]
    size = int(np.prod(shape))
    return jnp.stack(u[pos : pos + size], -1).reshape(u[0].shape + shape)


def _expand(x: jax.Array, batch_ndim: int) -> jax.Array:
    """A per-leaf constant of shape ``s`` as ``(1,) * batch_ndim + s``."""
    return jnp.reshape(x, (1,) * batch_ndim + x.shape) if x.ndim else x


def _map_leaves(fn, u, *trees):
    """Apply ``fn(u_leaf, *leaves)`` leaf by leaf, handing each its coordinates."""
    first, treedef = jax.tree_util.tree_flatten(trees[0])
    others = [jax.tree_util.tree_leaves(t) for t in trees[1:]]
    out, pos = [], 0
    batch_ndim = u[0].ndim
    for k, leaf in enumerate(first):
        shape = tuple(np.shape(leaf))
        uu = _take(u, pos, shape)
        pos += int(np.prod(shape))
        consts = [_expand(jnp.asarray(leaf), batch_ndim)]
        consts += [_expand(jnp.asarray(o[k]), batch_ndim) for o in others]
        out.append(fn(uu, *consts))
    return jax.tree_util.tree_unflatten(treedef, out)


def _check_box(name_lo, name_hi, low, high, *, positive=False) -> None:
    lo_leaves, lo_def = jax.tree_util.tree_flatten(low)
    hi_leaves, hi_def = jax.tree_util.tree_flatten(high)
    if lo_def != hi_def:
        raise ValueError(
            f"{name_lo} and {name_hi} must have the same structure; got {lo_def} "
            f"and {hi_def}"
        )
    names = _leaf_names(low)
    j = 0
    for a, b in zip(lo_leaves, hi_leaves, strict=True):
        if isinstance(a, jax.core.Tracer) or isinstance(b, jax.core.Tracer):
            j += int(np.size(a))
            continue
        a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
        if a64.shape != b64.shape:
            raise ValueError(
                f"{name_lo} and {name_hi} leaves must have equal shapes; got "
                f"{a64.shape} and {b64.shape}"
            )
        for x, y in zip(a64.reshape(-1), b64.reshape(-1), strict=True):
            if not (np.isfinite(x) and np.isfinite(y)) or x > y:
                raise ValueError(
                    f"{name_lo} <= {name_hi} (finite) is required for every "
                    f"parameter; got {names[j]}: [{x:.6g}, {y:.6g}]"
                )
            if positive and x <= 0:
                raise ValueError(
                    f"{name_lo} must be > 0 for a log-uniform prior; got "
                    f"{names[j]}: {x:.6g}"
                )
            j += 1


class Uniform(NamedTuple):
    """Independent uniform priors ``theta_j ~ U(low_j, high_j)``.

    Attributes:
      low, high: pytrees of the same structure (e.g. two ``ChinchillaParams``);
        draws have that structure.
    """

    low: Any
    high: Any

    @property
    def dim(self) -> int:
        return sum(int(np.size(x)) for x in jax.tree_util.tree_leaves(self.low))

    @property
    def names(self) -> list[str]:
        return _leaf_names(self.low)

    @property
    def independent(self) -> bool:
        return True

    def check(self) -> None:
        _check_box("low", "high", self.low, self.high)

    def marginal(self, u: jax.Array) -> jax.Array:
        return jnp.asarray(u)

    def combine(self, u: jax.Array):
        dtype = _dtype_of(self.low, self.high)
        return _map_leaves(
            lambda v, lo, hi: lo.astype(dtype) + (hi - lo).astype(dtype) * v,
            u,
            self.low,
            self.high,
        )

    def from_unit(self, u: jax.Array):
        """The draws for uniforms ``u``, ``(dim,) + batch`` in (0, 1)."""
        return self.combine(self.marginal(u))

    def sample(self, key, index):
        """Same as :func:`sample`."""
        return sample(self, key, index)


class LogUniform(NamedTuple):
    """Independent log-uniform priors: ``log theta_j ~ U(log low_j, log high_j)``.

    Attributes:
      low, high: pytrees of the same structure with ``0 < low <= high``.
    """

    low: Any
    high: Any

    @property
    def dim(self) -> int:
        return sum(int(np.size(x)) for x in jax.tree_util.tree_leaves(self.low))

    @property
    def names(self) -> list[str]:
        return _leaf_names(self.low)

    @property
    def independent(self) -> bool:
        return True

    def check(self) -> None:
        _check_box("low", "high", self.low, self.high, positive=True)

    def marginal(self, u: jax.Array) -> jax.Array:
        return jnp.asarray(u)

    def combine(self, u: jax.Array):
        dtype = _dtype_of(self.low, self.high)

        def one(v, lo, hi):
            a = jnp.log(lo.astype(dtype))
            return jnp.exp(a + (jnp.log(hi.astype(dtype)) - a) * v)

        return _map_leaves(one, u, self.low, self.high)

    def from_unit(self, u: jax.Array):
        """The draws for uniforms ``u``, ``(dim,) + batch`` in (0, 1)."""
        return self.combine(self.marginal(u))

    def sample(self, key, index):
        """Same as :func:`sample`."""
        return sample(self, key, index)


def _cholesky(covariance: ArrayLike, d: int, what: str) -> np.ndarray:
    cov = np.asarray(covariance, np.float64)
    if cov.shape != (d, d):
        raise ValueError(
            f"{what} must have shape ({d}, {d}) (one row per parameter); got "
            f"{cov.shape}"
        )
    if not np.all(np.isfinite(cov)) or not np.allclose(cov, cov.T, rtol=1e-12):
        raise ValueError(f"{what} must be finite and symmetric")
    try:
        return np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        low = float(np.linalg.eigvalsh(cov).min())
        raise ValueError(
            f"{what} must be positive definite; its smallest eigenvalue is {low:.3g}"
        ) from None


def _check_tril(scale_tril, d: int) -> None:
    if isinstance(scale_tril, jax.core.Tracer):
        return
    L = np.asarray(scale_tril, np.float64)
    if L.shape != (d, d):
        raise ValueError(
            f"scale_tril must have shape ({d}, {d}) (one row per parameter); got "
            f"{L.shape}"
        )
    if not np.all(np.isfinite(L)) or np.any(np.triu(L, 1) != 0):
        raise ValueError("scale_tril must be finite and lower triangular")


def _mvn(mean_leaves, scale_tril, z, dtype) -> list[jax.Array]:
    """``mean + L z`` coordinate by coordinate (elementwise, so XLA fuses it)."""
    d = len(z)
    L = jnp.asarray(scale_tril, dtype)
    mean = [m.astype(dtype) for m in mean_leaves]
    if d <= 16:
        out = []
        for p in range(d):
            x = mean[p] + L[p, 0] * z[0]
            for j in range(1, p + 1):
                x = x + L[p, j] * z[j]
            out.append(x)
        return out
    x = jnp.stack(z, -1) @ L.T
    return [mean[p] + x[..., p] for p in range(d)]


def _flat_coords(tree, dtype) -> list[jax.Array]:
    """Every scalar coordinate of ``tree`` as a 0-d array, in leaf order."""
    out = []
    for leaf in jax.tree_util.tree_leaves(tree):
        a = jnp.asarray(leaf, dtype).reshape(-1)
        out.extend(a[j] for j in range(a.shape[0]))
    return out


def _unflatten_coords(tree, coords: list[jax.Array]):
    """Coordinates back into ``tree``'s structure (array leaves stacked last)."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    out, pos = [], 0
    for leaf in leaves:
        shape = tuple(np.shape(leaf))
        out.append(_take(coords, pos, shape))
        pos += int(np.prod(shape))
    return jax.tree_util.tree_unflatten(treedef, out)


def _diagonal(scale_tril) -> bool:
    L = np.asarray(scale_tril, np.float64)
    return bool(np.all(L == np.diag(np.diag(L))))


class MultivariateNormal(NamedTuple):
    """A multivariate normal over the scalar coordinates of a parameter pytree,
    each coordinate on a linear or a log scale.

    ``y ~ N(m, L L^T)``, ``theta_j = exp(y_j)`` with ``m_j = log center_j`` on a log
    coordinate (a log-normal with median ``center_j``), ``theta_j = y_j`` with
    ``m_j = center_j`` otherwise. The usual uncertainty of a fit: a covariance in
    the coordinates it was fitted in (e.g. Hoffmann's ``log A, log B, log E,
    alpha, beta``).

    Attributes:
      center: a pytree (e.g. ``ChinchillaParams``): the mean of linear
        coordinates, the median of log ones. Coordinates are its scalar entries
        in leaf order (:attr:`names`).
      scale_tril: ``(d, d)`` lower-triangular Cholesky factor of the covariance
        of ``y``.
      log: ``True`` / ``False`` for every coordinate, or a pytree of bools like
        ``center``.
    """

    center: Any
    scale_tril: ArrayLike
    log: Any = False

    @classmethod
    def from_covariance(cls, center, covariance: ArrayLike, log: Any = False):
        """From the covariance of ``y`` (Cholesky factor computed in float64)."""
        d = len(_leaf_names(center))
        return cls(center, _cholesky(covariance, d, "covariance"), log)

    @classmethod
    def from_sd(cls, center, sd, log: Any = False) -> MultivariateNormal:
        """Independent coordinates: ``sd`` a scalar or a pytree like ``center``
        (standard deviations of ``y``; on a log coordinate 0.1 is about 10%)."""
        d = len(_leaf_names(center))
        if np.ndim(sd) == 0 and not isinstance(sd, tuple):
            sd = np.full(d, float(sd))
        elif isinstance(sd, (np.ndarray, jax.Array)):
            sd = np.asarray(sd, np.float64).reshape(-1)
        else:
            sd = np.concatenate(
                [
                    np.asarray(x, np.float64).reshape(-1)
                    for x in jax.tree_util.tree_leaves(sd)
                ]
            )
        if sd.shape != (d,) or not np.all(np.isfinite(sd)) or np.any(sd < 0):
            raise ValueError(
                f"sd must be finite and >= 0, one per parameter ({d}); got {sd}"
            )
        return cls(center, np.diag(sd), log)

    @property
    def dim(self) -> int:
        return len(_leaf_names(self.center))

    @property
    def names(self) -> list[str]:
        return _leaf_names(self.center)

    @property
    def independent(self) -> bool:
        return _diagonal(self.scale_tril)

    def log_flags(self) -> list[bool]:
        """Whether each coordinate is log-normal."""
        if isinstance(self.log, (bool, np.bool_)):
            return [bool(self.log)] * self.dim
        leaves = jax.tree_util.tree_leaves(self.center)
        flags = jax.tree_util.tree_leaves(self.log)
        structure = jax.tree_util.tree_structure
        if structure(self.log) != structure(self.center):
            raise ValueError(
                "log must be a bool or a pytree of bools like center; got "
                f"{structure(self.log)} for center {structure(self.center)}"
            )
        out = []
        for leaf, flag in zip(leaves, flags, strict=True):
            out.extend([bool(flag)] * int(np.size(leaf)))
        return out

    def check(self) -> None:
        _check_tril(self.scale_tril, self.dim)
        coords = _concrete_coords(self.center)
        for name, v, flag in zip(self.names, coords, self.log_flags(), strict=True):
            if v is None:
                continue
            if not np.isfinite(v) or (flag and v <= 0):
                kind = "finite and > 0 on a log coordinate" if flag else "finite"
                raise ValueError(f"center must be {kind}; got {name}: {v:.6g}")

    def marginal(self, u: jax.Array) -> jax.Array:
        return _normal(jnp.asarray(u))

    def combine(self, z: jax.Array):
        dtype = _dtype_of(self.center)
        flags = self.log_flags()
        coords = _flat_coords(self.center, dtype)
        mean = [jnp.log(c) if f else c for c, f in zip(coords, flags, strict=True)]
        y = _mvn(mean, self.scale_tril, z, dtype)
        x = [jnp.exp(v) if f else v for v, f in zip(y, flags, strict=True)]
        return _unflatten_coords(self.center, x)

    def from_unit(self, u: jax.Array):
        """The draws for uniforms ``u``, ``(dim,) + batch`` in (0, 1)."""
        return self.combine(self.marginal(u))

    def sample(self, key, index):
        """Same as :func:`sample`."""
        return sample(self, key, index)


def _concrete_coords(tree) -> list[float | None]:
    out = []
    for leaf in jax.tree_util.tree_leaves(tree):
        if isinstance(leaf, jax.core.Tracer):
            out.extend([None] * int(np.size(leaf)))
        else:
            out.extend(np.asarray(leaf, np.float64).reshape(-1).tolist())
    return out


class Bootstrap(NamedTuple):
    """Draws from a set of fitted laws (the empirical distribution of a bootstrap).

    Draw ``i`` picks one of the ``K`` fits uniformly. Build it from
    :func:`jscale.fitting.bootstrap` with :meth:`from_result` (converged
    resamples only) or from any pytree whose leaves have a leading axis ``K``.

    Attributes:
      params: the fits, every leaf with a leading axis of ``K``.
    """

    params: Any

    @classmethod
    def from_result(cls, result) -> Bootstrap:
        """The converged resamples of a :class:`jscale.fitting.BootstrapResult`."""
        ok = np.asarray(result.fits.status) == 0
        if not ok.any():
            raise ValueError("no converged resample in the bootstrap result")
        return cls(jax.tree_util.tree_map(lambda x: jnp.asarray(x)[ok], result.params))

    @property
    def size(self) -> int:
        return int(np.shape(jax.tree_util.tree_leaves(self.params)[0])[0])

    @property
    def dim(self) -> int:
        return 1

    @property
    def names(self) -> list[str]:
        return ["resample"]

    @property
    def independent(self) -> bool:
        return True

    def check(self) -> None:
        leaves = jax.tree_util.tree_leaves(self.params)
        if not leaves or any(np.ndim(x) < 1 for x in leaves):
            raise ValueError(
                "Bootstrap params must be a pytree whose leaves have a leading "
                "resample axis"
            )
        sizes = {int(np.shape(x)[0]) for x in leaves}
        if len(sizes) != 1 or sizes == {0}:
            raise ValueError(
                f"Bootstrap params leaves must share one leading size K >= 1; got "
                f"{sorted(sizes)}"
            )

    def marginal(self, u: jax.Array) -> jax.Array:
        return jnp.asarray(u)

    def combine(self, u: jax.Array):
        size = self.size
        idx = jnp.minimum((u[0] * size).astype(jnp.int32), size - 1)
        return jax.tree_util.tree_map(lambda x: jnp.asarray(x)[idx], self.params)

    def from_unit(self, u: jax.Array):
        """The draws for uniforms ``u``, ``(dim,) + batch`` in (0, 1)."""
        return self.combine(self.marginal(u))

    def sample(self, key, index):
        """Same as :func:`sample`."""
        return sample(self, key, index)


def _is_distribution(x) -> bool:
    return (
        hasattr(x, "marginal")
        and hasattr(x, "combine")
        and hasattr(x, "dim")
        and not isinstance(x, type)
    )


class Joint(NamedTuple):
    """Independent distributions drawn together, e.g. law parameters and a
    scenario input: ``Joint({"law": MultivariateNormal(...), "compute":
    LogUniform(1e22, 1e25)})`` draws ``{"law": ChinchillaParams, "compute": C}``.

    Attributes:
      parts: a dict, tuple or NamedTuple whose leaves are distributions; draws
        have the same container structure.
    """

    parts: Any

    def _flat(self):
        return jax.tree_util.tree_flatten(self.parts, is_leaf=_is_distribution)

    @property
    def dim(self) -> int:
        return sum(p.dim for p in self._flat()[0])

    @property
    def names(self) -> list[str]:
        out = []
        flat = jax.tree_util.tree_flatten_with_path(
            self.parts, is_leaf=_is_distribution
        )[0]
        for path, part in flat:
            prefix = _path_name(path)
            if prefix and part.names == ["value"]:  # a bare scalar part
                out.append(prefix)
            else:
                out.extend(f"{prefix}.{n}" if prefix else n for n in part.names)
        return out

    @property
    def independent(self) -> bool:
        return all(p.independent for p in self._flat()[0])

    def check(self) -> None:
        parts = self._flat()[0]
        if not parts or not all(_is_distribution(p) for p in parts):
            raise ValueError("Joint parts must be a container of distributions")
        for p in parts:
            _check_distribution(p)

    def marginal(self, u: jax.Array) -> jax.Array:
        u = jnp.asarray(u)
        out, pos = [], 0
        for p in self._flat()[0]:
            out.append(jnp.asarray(p.marginal(u[pos : pos + p.dim]), u.dtype))
            pos += p.dim
        return jnp.concatenate(out, axis=0)

    def combine(self, z: jax.Array):
        parts, treedef = self._flat()
        out, pos = [], 0
        for p in parts:
            out.append(p.combine(z[pos : pos + p.dim]))
            pos += p.dim
        return jax.tree_util.tree_unflatten(treedef, out)

    def from_unit(self, u: jax.Array):
        """The draws for uniforms ``u``, ``(dim,) + batch`` in (0, 1)."""
        return self.combine(self.marginal(u))

    def sample(self, key, index):
        """Same as :func:`sample`."""
        return sample(self, key, index)


def _check_distribution(dist) -> None:
    if not _is_distribution(dist):
        raise ValueError(
            "dist must be a jscale.montecarlo distribution (MultivariateNormal, "
            "Uniform, LogUniform, Bootstrap or Joint); got "
            f"{type(dist).__name__}"
        )
    if dist.dim < 1:
        raise ValueError("dist has no parameters to draw")
    if hasattr(dist, "check"):
        dist.check()


def _dist_dtype(dist) -> jnp.dtype:
    if isinstance(dist, Joint):
        return jnp.dtype(jnp.result_type(*[_dist_dtype(p) for p in dist._flat()[0]]))
    if isinstance(dist, Bootstrap):
        return default_float()
    return _dtype_of(dist[0])


def sample(dist, key, index: ArrayLike):
    """Draws number ``index`` of ``dist`` under ``key``.

    Draw ``i`` depends only on ``key`` and ``i`` (see the module docstring), so
    ``sample(dist, key, jnp.arange(a, b))`` gives draws ``a .. b - 1`` of the
    stream that :func:`propagate` uses. The uniforms behind a draw are exact
    functions of ``(key, i)``; the transformed values (``erfinv``, ``exp``) are the
    same bits for index arrays that XLA vectorizes alike (such as
    :func:`propagate`'s chunks, multiples of :data:`BLOCK`) and otherwise agree to
    an ulp or two (XLA's CPU code rounds tiny arrays differently).

    Args:
      dist: a distribution (:class:`MultivariateNormal`, ...).
      key: a ``jax.random.key`` (threefry, the default).
      index: non-negative integer draw indices, any shape.

    Returns:
      The draws: the distribution's pytree with leaves of ``index``'s shape
      (plus the leaf's own shape).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> d = Uniform(0.0, 1.0)
      >>> a = sample(d, jax.random.key(0), jnp.arange(6))
      >>> b = sample(d, jax.random.key(0), jnp.arange(3, 6))
      >>> bool((a[3:] == b).all())
      True
    """
    _check_distribution(dist)
    index = jnp.asarray(index)
    if not jnp.issubdtype(index.dtype, jnp.integer):
        raise ValueError(f"index must hold integers; got dtype {index.dtype}")
    if not isinstance(index, jax.core.Tracer) and index.size:
        with jax.ensure_compile_time_eval():
            low = int(jnp.min(index))
        if low < 0:
            raise ValueError(f"index must be >= 0; got {low}")
    k0, k1 = _key_words(key)
    hi, lo = _index_words(index)
    draw = _cached(("sample", _dist_key(dist)), lambda: jax.jit(partial(_draw, dist)))
    return draw(k0, k1, hi, lo)


def _draw(dist, k0, k1, hi, lo):
    return dist.from_unit(_units(k0, k1, hi, lo, dist.dim, _dist_dtype(dist)))


_CACHE: dict = {}


def _dist_key(dist):
    """A hashable fingerprint of a distribution's type, structure and values, or
    None when it has none (traced values)."""
    try:
        leaves, treedef = jax.tree_util.tree_flatten(dist)
        key = (
            type(dist),
            str(treedef),
            tuple(
                (np.asarray(x).dtype.str, np.shape(x), np.asarray(x).tobytes())
                for x in leaves
            ),
        )
        hash(key)
        return key
    except Exception:
        return None


def _cached(key, build):
    """``build()``, cached under ``key`` (16 entries; no caching when a part of
    the key is None or unhashable). Compiled functions are cached the way
    ``jax.jit`` caches: by function object and values, read at the first trace."""
    try:
        if any(part is None for part in key):
            return build()
        hash(key)
    except TypeError:
        return build()
    if key not in _CACHE:
        if len(_CACHE) >= 16:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = build()
    return _CACHE[key]


# ------------------------------------------------------------ preset uncertainty


def law_uncertainty(law: str | laws.Preset, *, log_sd: ArrayLike | None = None):
    """The parameter distribution of a law preset, a :class:`MultivariateNormal`
    centred on the preset's constants.

    ``chinchilla-besiroglu2024``: Besiroglu et al. 2024's bootstrap uncertainty,
    a multivariate normal in Hoffmann's coordinates ``(log E, log A, log B,
    alpha, beta)`` with :data:`jscale.laws.chinchilla.BESIROGLU2024_COVARIANCE`
    (their 4000 bootstrap resamples refitted; it reproduces their standard
    errors, arXiv:2404.10102 Table 1). The correlations matter (log A with alpha
    at 0.999): draw jointly. The normal in log B is lighter-tailed than the
    bootstrap: its standard deviation of B is about 1000, the bootstrap's 1293.

    Other presets publish no joint uncertainty: give ``log_sd``, the standard
    deviation of the log of every parameter (a scalar, or a pytree like the
    preset's parameters), for independent log-normals (it also overrides the
    Besiroglu covariance).

    Args:
      law: a preset name or :class:`jscale.laws.Preset`.
      log_sd: standard deviations of the log-parameters (independent), or None.

    Returns:
      A :class:`MultivariateNormal` over the preset's ``*Params``.

    Examples:
      >>> d = law_uncertainty("chinchilla-besiroglu2024")
      >>> d.names, d.log_flags()
      (['E', 'A', 'B', 'alpha', 'beta'], [True, True, True, False, False])
      >>> law_uncertainty("kaplan2020", log_sd=0.05).independent
      True
    """
    preset = laws.get(law) if isinstance(law, str) else law
    if log_sd is not None:
        return MultivariateNormal.from_sd(preset.params, log_sd, log=True)
    if preset.name != chinchilla.BESIROGLU2024.name:
        raise ValueError(
            f"no published parameter uncertainty for law {preset.name!r}; presets "
            f"with one: {chinchilla.BESIROGLU2024.name}. Give log_sd (--log-sd), "
            "the standard deviation of each log-parameter, for independent "
            "log-normals"
        )
    coords = ("log_E", "log_A", "log_B", "alpha", "beta")  # ChinchillaParams order
    order = [chinchilla.BESIROGLU2024_COORDS.index(c) for c in coords]
    cov = np.asarray(chinchilla.BESIROGLU2024_COVARIANCE, np.float64)
    log = chinchilla.ChinchillaParams(True, True, True, False, False)
    return MultivariateNormal.from_covariance(
        preset.params, cov[np.ix_(order, order)], log=log
    )


# -------------------------------------------------------------- streaming statistics


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
    if isinstance(bins, bool) or int(bins) != bins or bins < 1:
        raise ValueError(f"bins must be a whole number >= 1; got {bins!r}")
    bins = int(bins)
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
    pad = (-x.shape[1]) % BLOCK
    if pad or x.shape[1] == 0:
        pad = pad or BLOCK
        x = jnp.concatenate([x, jnp.zeros((k, pad), dtype)], axis=1)
        m = jnp.concatenate([m, jnp.zeros((k, pad), bool)], axis=1)
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


# ------------------------------------------------------------------- propagation


class PropagateResult(NamedTuple):
    """What :func:`propagate` returns.

    Attributes:
      summaries: ``{output name: Summary}``; names follow the function's output
        pytree (``"n_params"`` for a NamedTuple field, ``"a.b"`` nested,
        ``"value"`` for a bare array, ``"name[j]"`` for the entries of a vector).
      state: the final :class:`StreamStats` (outputs in ``names`` order).
      names: the output names.
      values: every value ``(k, num_draws)`` when quantiles are exact, else None.
      num_draws: draws propagated.
      chunk_size: draws per chunk.
    """

    summaries: dict
    state: StreamStats
    names: tuple
    values: np.ndarray | None
    num_draws: int
    chunk_size: int


def _whole(name: str, value, *, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ValueError(f"{name} must be a whole number >= {low}; got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be a whole number >= {low}; got {value}")
    return int(value)


def _columns(out, dtype) -> tuple[list[str], list[jax.Array]]:
    """Flatten a batched output pytree into named ``(n,)`` columns."""
    names, cols = [], []
    for path, leaf in jax.tree_util.tree_flatten_with_path(out)[0]:
        leaf = jnp.asarray(leaf)
        base = _path_name(path) or "value"
        flat = leaf.reshape(leaf.shape[0], -1).astype(dtype)
        if leaf.ndim == 1:
            names.append(base)
            cols.append(flat[:, 0])
        else:
            for j in range(flat.shape[1]):
                names.append(f"{base}[{j}]")
                cols.append(flat[:, j])
    return names, cols


class _Stages:
    """A chunk of ``size`` draws through ``fn``, in separately compiled stages.

    XLA fuses an elementwise producer into each of its consumers and recomputes
    it there: one program from key to outputs would hash and invert the normal
    CDF several times per coordinate (measured: 2-3x slower). Stages compiled
    apart hand over materialized arrays: the marginals (one Threefry call and
    one transform per coordinate), then the parameters and outputs. The key is
    an argument, so runs with other keys reuse the compiled stages
    (:func:`_stages` caches them).
    """

    def __init__(self, fn, dist, size: int, dtype):
        self.names: list[str] | None = None
        udtype = _dist_dtype(dist)

        def marginals(k0, k1, s_hi, s_lo):
            hi, lo = _offset_words(s_hi, s_lo, size)
            return dist.marginal(_units(k0, k1, hi, lo, dist.dim, udtype))

        def outputs(z):
            params = dist.combine(z)
            names, cols = _columns(jax.vmap(fn)(params), dtype)
            if self.names is None:
                self.names = names
            elif names != self.names:
                raise ValueError(f"fn's outputs changed from {self.names} to {names}")
            return jnp.stack(cols)

        self.marginals = jax.jit(marginals)
        self.outputs = jax.jit(outputs)
        self.size = size

    def __call__(self, k0, k1, start: int) -> jax.Array:
        """Outputs ``(k, size)`` of draws ``start .. start + size - 1``."""
        s_hi, s_lo = np.uint32(start >> 32), np.uint32(start & 0xFFFFFFFF)
        return self.outputs(self.marginals(k0, k1, s_hi, s_lo))


def _stages(fn, dist, size: int, dtype) -> _Stages:
    """Compiled stages, cached per function, distribution and shape."""
    key = ("stages", fn, _dist_key(dist), size, str(jnp.dtype(dtype)))
    return _cached(key, lambda: _Stages(fn, dist, size, dtype))


def _resolve_ranges(names, pilot_cols, ranges, bins):
    """Histogram ranges: given, or the pilot's range widened by its span on
    each side (log axis when every pilot value is > 0)."""
    ranges = dict(ranges or {})
    unknown = sorted(set(ranges) - set(names))
    if unknown:
        raise ValueError(
            f"ranges names unknown outputs {unknown}; outputs: {', '.join(names)}"
        )
    lo, hi, log = [], [], []
    for name, col in zip(names, pilot_cols, strict=True):
        if name in ranges:
            a, b = (float(v) for v in ranges[name])
            lo.append(a)
            hi.append(b)
            log.append(a > 0)
            continue
        v = np.asarray(col, np.float64)
        v = v[np.isfinite(v)]
        if v.size == 0:
            lo.append(-1.0)
            hi.append(1.0)
            log.append(False)
            continue
        positive = bool(np.all(v > 0))
        t = np.log(v) if positive else v
        a, b = float(t.min()), float(t.max())
        span = b - a
        if span <= 1e-6 * max(abs(a), abs(b), 1.0):
            span = max(abs(a), 1.0) * 1e-3
        a, b = a - span, b + span
        lo.append(math.exp(a) if positive else a)
        hi.append(math.exp(b) if positive else b)
        log.append(positive)
    return np.array(lo), np.array(hi), np.array(log)


def _resolve_thresholds(names, thresholds) -> np.ndarray:
    if thresholds is None:
        return np.zeros((len(names), 0))
    if isinstance(thresholds, Mapping):
        unknown = sorted(set(thresholds) - set(names))
        if unknown:
            raise ValueError(
                f"thresholds names unknown outputs {unknown}; outputs: "
                f"{', '.join(names)}"
            )
        per = [list(map(float, np.atleast_1d(thresholds.get(n, [])))) for n in names]
    else:
        per = [list(map(float, np.atleast_1d(thresholds)))] * len(names)
    width = max((len(p) for p in per), default=0)
    out = np.full((len(names), width), np.nan)
    for j, p in enumerate(per):
        if any(not math.isfinite(t) for t in p):
            raise ValueError(f"thresholds must be finite; got {p} for {names[j]}")
        out[j, : len(p)] = p
    return out


def _describe(dist) -> dict:
    return {
        "type": type(dist).__name__,
        "leaves": [
            np.asarray(x, np.float64).tolist() for x in jax.tree_util.tree_leaves(dist)
        ],
    }


def _in_run(size: int, s_hi, s_lo, n_hi, n_lo) -> jax.Array:
    """Which of the ``size`` draws from ``(s_hi, s_lo)`` are below ``(n_hi, n_lo)``."""
    d_hi, d_lo = _offset_words(s_hi, s_lo, size)
    return (d_hi < n_hi) | ((d_hi == n_hi) & (d_lo < n_lo))


_PARTS = (_update_moments, _update_extremes, _update_hist)


@partial(jax.jit, static_argnums=0)
def _chunk_part(part, state, x, s_hi, s_lo, n_hi, n_lo):
    """One part of the statistics update for a chunk (the last one masked).

    The three parts are compiled apart (and cached across runs of one shape):
    compiled together, XLA fuses them into a slower whole (measured 16 against
    10 ns per value on CPU).
    """
    valid = _in_run(x.shape[1], s_hi, s_lo, n_hi, n_lo)
    return part(state, x, jnp.broadcast_to(valid[None, :], x.shape))


def propagate(
    fn: Callable,
    dist,
    key,
    num_draws: int,
    *,
    chunk_size: int = 1 << 20,
    quantiles: Sequence[float] = (0.05, 0.5, 0.95),
    thresholds: Mapping[str, Sequence[float]] | Sequence[float] | None = None,
    bins: int = 8192,
    ranges: Mapping[str, tuple[float, float]] | None = None,
    pilot: int = 4096,
    exact: bool | None = None,
    checkpoint: str | None = None,
    config: Mapping | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    description: str = "Monte Carlo",
) -> PropagateResult:
    """Propagate ``num_draws`` draws of ``dist`` through ``fn``, streaming statistics.

    ``fn(params)`` is written for one draw and returns a pytree of scalars (or small
    vectors), e.g. ``lambda p: allocation.chinchilla_optimal(p, 1e24)``, a loss at
    fixed (N, D), an engine-solved or inference-aware allocation, or any function
    of your own; it is vmapped over a chunk of draws and compiled once (chunks
    have a fixed shape; the last is masked). Results that the function flags as
    NaN (e.g. infeasible plans) are counted in ``nonfinite`` and left out of the
    statistics. Integer outputs (a ``status``) are summarized as floats.

    Draw ``i`` depends only on ``key`` and ``i``, and statistics are folded in draw
    order with exact counts and fixed reduction blocks, so the results are
    bit-identical for any ``chunk_size`` and across interruption and resume.
    Memory is O(chunk_size + bins) whatever ``num_draws`` (plus every value when
    quantiles are exact).

    Histogram ranges come from ``ranges`` or from a pilot: the first ``pilot``
    draws (the same for any chunk size), whose range is widened by its own span
    on each side; the axis is logarithmic when every pilot value is positive.
    Values outside fall in under/overflow bins (still counted, and quantiles
    there are bounded by the extremes).

    Args:
      fn: ``fn(params) -> pytree`` for one draw.
      dist: a distribution (:class:`MultivariateNormal`, ...).
      key: a ``jax.random.key`` (threefry).
      num_draws: draws (>= 1).
      chunk_size: draws per chunk, a multiple of :data:`BLOCK` (capped at
        ``num_draws`` rounded up to a block).
      quantiles: probabilities to report (any in [0, 1]).
      thresholds: exceedance thresholds: ``{output name: [t, ...]}`` or one list
        for every output; reported as ``P(x > t)``.
      bins: histogram bins per output.
      ranges: ``{output name: (lo, hi)}`` histogram ranges (log axis if lo > 0).
      pilot: draws that set the default histogram ranges.
      exact: keep every value and report exact quantiles (default: when
        ``num_draws <= EXACT_LIMIT``).
      checkpoint: directory for a checkpoint after every chunk
        (:func:`jscale.sweep.run_chunks`).
      config: JSON-ready dict identifying ``fn`` (and anything else that the
        distribution and settings do not capture) in the checkpoint, so that a
        resume with another function is refused.
      resume: continue the run saved in ``checkpoint``.
      overwrite: discard an existing checkpoint in ``checkpoint``.
      progress: show a progress bar on stderr (or pass a text stream).
      description: label of the progress bar.

    Returns:
      A :class:`PropagateResult`.

    Raises:
      ValueError: for bad arguments (named), an unsuitable key, or a checkpoint
        of another configuration.

    Examples:
      >>> import jax
      >>> from jscale import allocation, montecarlo
      >>> prior = montecarlo.LogUniform(1e22, 1e25)      # a budget, log-uniform
      >>> law = montecarlo.laws.get("chinchilla-besiroglu2024").params
      >>> r = montecarlo.propagate(
      ...     lambda c: allocation.chinchilla_optimal(law, c).loss,
      ...     prior, jax.random.key(1), 4096, thresholds=[2.0])
      >>> s = r.summaries["value"]
      >>> s.exact, round(s.quantiles[0.5], 1), 0.3 < s.exceedance[2.0] < 0.7
      (True, 2.0, True)
    """
    from .sweep import run_chunks

    _check_distribution(dist)
    if not callable(fn):
        raise ValueError(f"fn must be callable; got {type(fn).__name__}")
    num_draws = _whole("num_draws", num_draws)
    chunk_size = _whole("chunk_size", chunk_size)
    if chunk_size % BLOCK:
        raise ValueError(
            f"chunk_size must be a multiple of {BLOCK} (the reduction block); got "
            f"{chunk_size}"
        )
    bins = _whole("bins", bins)
    pilot = _whole("pilot", pilot)
    for q in quantiles:
        if not 0.0 <= float(q) <= 1.0:
            raise ValueError(f"quantiles must be in [0, 1]; got {q}")
    k0, k1 = _key_words(key)
    dtype = default_float()
    size = min(chunk_size, -(-num_draws // BLOCK) * BLOCK)
    num_chunks = -(-num_draws // size)
    if exact is None:
        exact = num_draws <= EXACT_LIMIT

    stages = _stages(fn, dist, size, dtype)
    # Pilot: the first draws set the histogram ranges (the same for any chunk
    # size); the chunks computed for it are reused by the run.
    n_pilot = min(pilot, num_draws)
    cache = {j * size: stages(k0, k1, j * size) for j in range(-(-n_pilot // size))}
    pilot_values = np.concatenate([np.asarray(x) for x in cache.values()], 1)
    names = stages.names
    if len(set(names)) != len(names):
        raise ValueError(f"fn's outputs must have distinct names; got {names}")
    lo, hi, log = _resolve_ranges(names, pilot_values[:, :n_pilot], ranges, bins)
    thr = _resolve_thresholds(names, thresholds)
    init = stats_init(lo, hi, bins=bins, log=log, thresholds=thr, dtype=dtype)
    k = len(names)
    capacity = num_chunks * size if exact else 0
    carry0 = (init, jnp.full((k, capacity), jnp.nan, dtype))
    n_hi, n_lo = np.uint32(num_draws >> 32), np.uint32(num_draws & 0xFFFFFFFF)

    def keep(kept, x, s_hi, s_lo, offset):
        valid = _in_run(size, s_hi, s_lo, n_hi, n_lo)
        return jax.lax.dynamic_update_slice(
            kept, jnp.where(valid[None, :], x, jnp.nan), (jnp.int32(0), offset)
        )

    keep = jax.jit(keep)

    def step(carry, i):
        state, kept = carry
        # At most two chunks in flight: dispatch runs ahead of the computation
        # otherwise, and each queued chunk holds its buffers (memory would grow
        # with the number of draws).
        jax.block_until_ready(state)
        start = i * size
        x = cache.pop(start) if start in cache else stages(k0, k1, start)
        s_hi, s_lo = np.uint32(start >> 32), np.uint32(start & 0xFFFFFFFF)
        state = _assemble(
            state,
            *(_chunk_part(p, state, x, s_hi, s_lo, n_hi, n_lo) for p in _PARTS),
        )
        if capacity:
            kept = keep(kept, x, s_hi, s_lo, np.int32(start))
        return (state, kept), None

    run_config = {
        "kind": "jscale.montecarlo.propagate",
        "version": 1,
        "num_draws": num_draws,
        "chunk_size": size,
        "key": [int(k0), int(k1)],
        "dtype": str(jnp.dtype(dtype)),
        "distribution": _describe(dist),
        "outputs": list(names),
        "bins": bins,
        "ranges": [
            [float(a), float(b), bool(c)] for a, b, c in zip(lo, hi, log, strict=True)
        ],
        "thresholds": [[None if np.isnan(t) else float(t) for t in row] for row in thr],
        "exact": bool(exact),
        "pilot": n_pilot,
        "user": dict(config or {}),
    }
    (state, kept), _ = run_chunks(
        step,
        carry0,
        num_chunks,
        checkpoint=checkpoint,
        config=run_config,
        resume=resume,
        overwrite=overwrite,
        progress=progress,
        description=description,
        chunk_items=size,
    )
    values = np.asarray(kept)[:, :num_draws] if capacity else None
    summaries = summarize(state, quantiles, values=values, thresholds=thr)
    return PropagateResult(
        summaries=dict(zip(names, summaries, strict=True)),
        state=state,
        names=tuple(names),
        values=values,
        num_draws=num_draws,
        chunk_size=size,
    )


# ---------------------------------------------------------------- Sobol indices


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
      num_samples: N, the rows of each of the sample matrices A and B.
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
    num_samples: int
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
    fn: Callable,
    dist,
    key,
    num_samples: int,
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
      fn: ``fn(params) -> scalar or pytree of scalars`` for one draw.
      dist: an independent distribution.
      key: a ``jax.random.key``.
      num_samples: N (>= 2). The estimators' standard errors fall as
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
      >>> box = Uniform((-jnp.pi,) * 3, (jnp.pi,) * 3)
      >>> r = sobol(ishigami, box, jax.random.key(0), 20_000)
      >>> exact_s = [0.314, 0.442, 0.0]      # Sobol' & Levitan 1999, a=7, b=0.1
      >>> exact_t = [0.558, 0.442, 0.244]
      >>> bool(abs(r.first_order[0] - exact_s).max() < 0.05)
      True
      >>> bool(abs(r.total[0] - exact_t).max() < 0.05)
      True
    """
    _check_distribution(dist)
    if not callable(fn):
        raise ValueError(f"fn must be callable; got {type(fn).__name__}")
    if not dist.independent:
        raise ValueError(
            "sobol needs independent inputs (Sobol indices are defined for them); "
            "this distribution correlates its parameters. Use independent "
            "marginals (e.g. MultivariateNormal.from_sd) or a Joint of "
            "independent parts"
        )
    n = _whole("num_samples", num_samples, low=2)
    size = min(_whole("chunk_size", chunk_size), n)
    num_bootstrap = _whole("num_bootstrap", num_bootstrap, low=0)
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must be in (0, 1); got {confidence}")
    dtype = default_float()
    d = dist.dim
    keys = [_key_words(jax.random.fold_in(_typed(key), j)) for j in (0, 1)]
    stages = _stages(fn, dist, size, dtype)
    rows = None
    for start in range(0, n, size):
        s_hi, s_lo = np.uint32(start >> 32), np.uint32(start & 0xFFFFFFFF)
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
        num_samples=n,
        num_evaluations=n * (d + 2),
        dropped=dropped,
        confidence=float(confidence),
    )


def _typed(key):
    """A typed key from a typed or raw threefry key (for ``fold_in``)."""
    k0, k1 = _key_words(key)
    return jax.random.wrap_key_data(jnp.stack([k0, k1]), impl="threefry2x32")
