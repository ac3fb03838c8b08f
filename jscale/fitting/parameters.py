"""Parameter structure: fitted coordinates, frozen, tied and bounded parameters.

A fit works on *free coordinates* ``z`` (``m`` of them): ``theta = P z + offset``
gives the model's coordinates (:attr:`Model.coords`), where a frozen parameter is a
constant of ``offset``, a group of tied parameters shares one column of ``P``, and
bounds act on ``z``. Freezing, tying and bounds are given in the reported names and
units (``E``, not ``e = log E``), or in coordinates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .families import Model


class _Structure(NamedTuple):
    """Free coordinates z (m,) -> theta (k,): ``theta = z @ P.T + offset``."""

    P: np.ndarray  # (k, m)
    offset: np.ndarray  # (k,)
    lower: np.ndarray  # (m,)
    upper: np.ndarray  # (m,)
    free: tuple[str, ...]  # a name per free coordinate


def _to_coord(model: Model, name: str, value: float) -> tuple[str, float]:
    for pname, coord, transform in model.params:
        if name in (pname, coord):
            if name == coord and pname != coord:
                return coord, float(value)  # given in coordinate units
            if transform == "log":
                return coord, math.log(value) if value > 0 else -math.inf
            return coord, float(value)
    valid = sorted({p for p, _, _ in model.params} | set(model.coords))
    raise ValueError(
        f"unknown parameter {name!r} for law {model.family!r}; "
        f"valid: {', '.join(valid)}"
    )


def _structure(
    model: Model,
    freeze: Mapping[str, float] | None,
    tie: Sequence[Sequence[str]],
    bounds: Mapping[str, tuple[float | None, float | None]] | None,
    extra: tuple[str, ...] = (),
) -> _Structure:
    coords = list(model.coords) + list(extra)
    k = len(coords)
    frozen: dict[str, float] = {}
    for name, value in (freeze or {}).items():
        coord, v = _to_coord(model, name, value)
        if not math.isfinite(v):
            raise ValueError(f"freeze: {name} = {value} is not a valid value")
        frozen[coord] = v
    # union-find over ties
    parent = {c: c for c in coords}

    def root(c):
        while parent[c] != c:
            c = parent[c]
        return c

    for group in tie:
        cs = []
        for name in group:
            coord, _ = _to_coord(model, name, 1.0)
            cs.append(coord)
        transforms = {t for p, c, t in model.params if c in cs}
        if len(transforms) > 1:
            raise ValueError(f"tie: {list(group)} mix log and linear parameters")
        for c in cs[1:]:
            parent[root(c)] = root(cs[0])
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(coords):
        groups.setdefault(root(c), []).append(i)
    free_groups = []
    offset = np.zeros(k)
    for members in groups.values():
        names = [coords[i] for i in members]
        fixed = [frozen[n] for n in names if n in frozen]
        if fixed:
            for i in members:
                offset[i] = fixed[0]
        else:
            free_groups.append(members)
    m = len(free_groups)
    P = np.zeros((k, m))
    lower = np.full(m, -np.inf)
    upper = np.full(m, np.inf)
    for j, members in enumerate(free_groups):
        P[members, j] = 1.0
    for name, (lo, hi) in (bounds or {}).items():
        coord, _ = _to_coord(model, name, 1.0)
        i = coords.index(coord)
        j = int(np.flatnonzero(P[i])[0]) if P[i].any() else None
        if j is None:
            continue
        if lo is not None:
            lower[j] = max(lower[j], _to_coord(model, name, lo)[1])
        if hi is not None:
            upper[j] = min(upper[j], _to_coord(model, name, hi)[1])
        if not lower[j] < upper[j]:
            raise ValueError(f"bounds: empty range for {name}: ({lo}, {hi})")
    free = tuple("=".join(coords[i] for i in members) for members in free_groups)
    return _Structure(P, offset, lower, upper, free)


def _free(structure: _Structure, theta: np.ndarray) -> np.ndarray:
    """Free coordinates ``(S, m)`` of coordinate rows ``theta`` ``(S, k)``: the
    first member of each tie group."""
    P = structure.P
    return np.stack(
        [theta[:, int(np.flatnonzero(P[:, j])[0])] for j in range(P.shape[1])], 1
    )


def _theta(structure: _Structure, z: jax.Array) -> jax.Array:
    """Coordinates ``theta = P z + offset`` of free coordinates ``z`` ``(S, m)``."""
    dtype = z.dtype
    return (
        z @ jnp.asarray(structure.P.T, dtype)
        + jnp.asarray(structure.offset, dtype)[None, :]
    )


def _resolve_starts(starts, model: Model, log_x, structure: _Structure, ml: bool):
    """Free coordinates ``(S, m)`` of the starts: a grid ``(S, k)`` in
    ``Model.coords``, a ``*Params``, or ``None`` for the family's grid (the scale
    of ``"ml"`` is left NaN, see :func:`_initial_log_scale`)."""
    if starts is None:
        grid = np.asarray(model.grid(tuple(np.asarray(x) for x in log_x)), np.float64)
    elif isinstance(starts, tuple) and hasattr(starts, "_fields"):  # a *Params
        values = {n: np.asarray(getattr(starts, n), np.float64) for n in starts._fields}
        grid = np.stack(
            [
                np.log(values[n]) if t == "log" else values[n]
                for coord in model.coords
                for n, c, t in model.params
                if c == coord
            ],
            axis=-1,
        ).reshape(-1, len(model.coords))
    else:
        grid = np.asarray(starts, np.float64)
        if grid.ndim == 1:
            grid = grid[None, :]
        if grid.shape[-1] != len(model.coords):
            raise ValueError(
                f"starts must have {len(model.coords)} columns "
                f"({', '.join(model.coords)}); got shape {grid.shape}"
            )
    if ml:
        grid = np.concatenate([grid, np.full((grid.shape[0], 1), np.nan)], axis=1)
    return _free(structure, grid)


def _initial_log_scale(z, structure, model, log_x, log_y, delta, ml):
    """For ``"ml"``: start log sigma at the value optimal for the start's residuals."""
    if not ml:
        return z
    k = len(model.coords)
    cols = np.flatnonzero(structure.P[k])
    if cols.size == 0:  # the scale is frozen
        return z
    col = int(cols[-1])
    zz = np.where(np.isnan(z), 0.0, z)
    theta = zz @ structure.P.T + structure.offset
    pred = model.log_predict(
        tuple(jnp.asarray(theta[:, i][:, None]) for i in range(k)),
        tuple(x[None, :] for x in log_x),
    )
    r = np.asarray(pred) - np.asarray(log_y)[None, :]
    # In the linear regime the optimal sigma is delta * mean|r| (d NLL / d sigma = 0).
    sigma = np.maximum(delta * np.mean(np.abs(r), axis=1), 1e-12)
    z = z.copy()
    z[:, col] = np.where(np.isnan(z[:, col]), np.log(sigma), z[:, col])
    return z


def _public(model: Model, theta: jax.Array) -> dict[str, jax.Array]:
    """Reported parameters (own units) from coordinates, leading axes kept."""
    index = {c: i for i, c in enumerate(model.coords)}
    out = {}
    for name, coord, transform in model.params:
        v = theta[..., index[coord]]
        out[name] = jnp.exp(v) if transform == "log" else v
    return out


def _params_of(model: Model, values: Mapping[str, jax.Array]):
    """A family ``*Params`` from reported values (same names or coords)."""
    theta = []
    for coord in model.coords:
        for name, c, transform in model.params:
            if c == coord:
                v = jnp.asarray(values[name])
                theta.append(jnp.log(v) if transform == "log" else v)
    return model.to_params(jnp.stack(theta, axis=-1))


def named(result: Any, which: str = "params") -> dict[str, float]:
    """Reported parameters as ``{name: float}`` (e.g. ``E, A, B, alpha, beta``).

    ``result`` is a :class:`~jscale.fitting.FitResult` or a
    :class:`~jscale.fitting.BootstrapResult`; ``which`` selects ``"params"`` (a
    fit's estimates) or, for a bootstrap, ``"stderr"``, ``"low"`` or ``"high"``.
    """
    params = getattr(result, which)
    out = {}
    for name in result.names:
        if hasattr(params, name):
            out[name] = float(np.asarray(getattr(params, name)))
        else:  # bnsl break parameters live in arrays c, d, f
            base, i = name.rsplit("_", 1)
            out[name] = float(np.asarray(getattr(params, base))[..., int(i) - 1])
    return out
