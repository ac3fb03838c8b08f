"""Distributions of parameter pytrees, and :func:`sample`.

A distribution is a small NamedTuple that maps ``dim`` independent uniforms in
(0, 1) to a parameter pytree in two steps: ``marginal`` (coordinate by coordinate,
e.g. the normal quantile) and ``combine`` (e.g. a Cholesky factor, ``exp`` on log
coordinates); ``from_unit`` does both.

- :class:`MultivariateNormal`: correlated normals, each coordinate on a linear or
  a log scale, e.g. the uncertainty of a fit (:func:`law_uncertainty` gives the
  default for a preset).
- :class:`Uniform`, :class:`LogUniform`: priors per parameter.
- :class:`Bootstrap`: resampled fits, e.g. from :func:`jscale.fitting.bootstrap`.
- :class:`Joint`: independent parts, e.g. law parameters and a scenario input.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from .. import _status
from .._numerics import default_float
from .coordinates import (
    _concrete_coords,
    _dtype_of,
    _flat_coords,
    _leaf_names,
    _map_leaves,
    _path_name,
    _unflatten_coords,
)
from .random import _index_words, _key_words, _normal, _units


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


class _Box(NamedTuple):
    """Independent priors on a box ``[low, high]``: the fields and methods that
    :class:`Uniform` and :class:`LogUniform` share."""

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

    def marginal(self, u: jax.Array) -> jax.Array:
        return jnp.asarray(u)

    def from_unit(self, u: jax.Array):
        """The draws for uniforms ``u``, ``(dim,) + batch`` in (0, 1)."""
        return self.combine(self.marginal(u))

    def sample(self, key, index):
        """Same as :func:`sample`."""
        return sample(key, self, index)


class Uniform(_Box):
    """Independent uniform priors ``theta_j ~ U(low_j, high_j)``.

    Attributes:
      low, high: pytrees of the same structure (e.g. two ``ChinchillaParams``);
        draws have that structure.
    """

    __slots__ = ()

    def check(self) -> None:
        _check_box("low", "high", self.low, self.high)

    def combine(self, u: jax.Array):
        dtype = _dtype_of(self.low, self.high)
        return _map_leaves(
            lambda v, lo, hi: lo.astype(dtype) + (hi - lo).astype(dtype) * v,
            u,
            self.low,
            self.high,
        )


class LogUniform(_Box):
    """Independent log-uniform priors: ``log theta_j ~ U(log low_j, log high_j)``.

    Attributes:
      low, high: pytrees of the same structure with ``0 < low <= high``.
    """

    __slots__ = ()

    def check(self) -> None:
        _check_box("low", "high", self.low, self.high, positive=True)

    def combine(self, u: jax.Array):
        dtype = _dtype_of(self.low, self.high)

        def one(v, lo, hi):
            a = jnp.log(lo.astype(dtype))
            return jnp.exp(a + (jnp.log(hi.astype(dtype)) - a) * v)

        return _map_leaves(one, u, self.low, self.high)


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
        return sample(key, self, index)


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
        ok = np.asarray(result.fits.status) == _status.CONVERGED
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
        return sample(key, self, index)


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
        return sample(key, self, index)


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


def sample(key, dist, index: ArrayLike):
    """Draws number ``index`` of ``dist`` under ``key``.

    Draw ``i`` depends only on ``key`` and ``i`` (see
    :mod:`jscale.montecarlo.random`), so ``sample(key, dist, jnp.arange(a, b))``
    gives draws ``a .. b - 1`` of the stream that :func:`propagate` uses. The
    uniforms behind a draw are exact functions of ``(key, i)``; the transformed
    values (``erfinv``, ``exp``) are the same bits for index arrays that XLA
    vectorizes alike (such as :func:`propagate`'s chunks, multiples of
    :data:`BLOCK`) and otherwise agree to an ulp or two (XLA's CPU code rounds tiny
    arrays differently).

    Args:
      key: a ``jax.random.key`` (threefry, the default).
      dist: a distribution (:class:`MultivariateNormal`, ...).
      index: non-negative integer draw indices, any shape.

    Returns:
      The draws: the distribution's pytree with leaves of ``index``'s shape
      (plus the leaf's own shape).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> d = Uniform(0.0, 1.0)
      >>> a = sample(jax.random.key(0), d, jnp.arange(6))
      >>> b = sample(jax.random.key(0), d, jnp.arange(3, 6))
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
