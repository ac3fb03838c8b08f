"""Labelled grids of points: named axes (dimensions) and their coordinates."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from .checkpoint import _sha256


def _coord_values(name: str, values) -> np.ndarray:
    """A coordinate as a 1-D NumPy array: strings (categorical) or finite numbers."""
    array = np.asarray(values)
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim != 1 or array.shape[0] == 0:
        raise ValueError(
            f"coordinate {name!r} must be a non-empty 1-D sequence; got shape "
            f"{np.shape(values)}"
        )
    if array.dtype.kind in "US":
        return array.astype(str)
    if array.dtype.kind == "b":
        return array
    if array.dtype.kind not in "iuf":
        raise ValueError(
            f"coordinate {name!r} must hold numbers or strings; got dtype {array.dtype}"
        )
    if array.dtype.kind == "f":
        bad = ~np.isfinite(array)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(
                f"coordinate {name!r} must be finite; got {array[i]} at index {i}"
            )
    return array


def _is_static(values: np.ndarray) -> bool:
    return values.dtype.kind == "U"


class Grid:
    """A labelled grid of points: named axes (dimensions) and their coordinates.

    ``Grid({"compute_flops": budgets, "hardware": ["h100-sxm", "a100-80gb"]})`` is
    the Cartesian product of its axes, in the order given (row-major: the last
    axis varies fastest). Each axis is a dimension and a coordinate of the same
    name. :meth:`scenarios` makes one dimension from columns of equal length (a
    batch of scenarios: the coordinates vary together), and ``a * b`` crosses two
    grids.

    Coordinates hold numbers or strings. In :func:`sweep`, numeric coordinates
    reach the function as arrays (one compiled program for all their values);
    strings are categorical and reach it as Python ``str`` (static: one program per
    combination of labels), so they can name presets such as hardware or
    precision.

    Attributes:
      dims: dimension names, in order.
      shape: the size of each dimension.
      coords: coordinate name -> its values along its dimension (NumPy).
      coord_dims: coordinate name -> the dimension it lies along.

    Examples:
      >>> g = Grid({"compute_flops": [1e21, 1e22, 1e23], "hardware": ["h100-sxm", "a100-80gb"]})
      >>> g.dims, g.shape, g.size
      (('compute_flops', 'hardware'), (3, 2), 6)
      >>> [str(h) for h in g.points()["hardware"][:3]]
      ['h100-sxm', 'a100-80gb', 'h100-sxm']
      >>> s = Grid.scenarios({"unique_tokens": [1e10, 1e11], "max_epochs": [4, 16]})
      >>> (Grid(compute_flops=[1e22, 1e23]) * s).shape
      (2, 2)
    """  # noqa: E501

    def __init__(self, axes: Mapping[str, Any] | None = None, /, **more: Any):
        overlap = set(axes or {}) & set(more)
        if overlap:
            raise ValueError(f"axis names given twice: {sorted(overlap)}")
        axes = dict(axes or {}, **more)
        self.coords: dict[str, np.ndarray] = {}
        self.coord_dims: dict[str, str] = {}
        self.dims: tuple[str, ...] = ()
        self.shape: tuple[int, ...] = ()
        for name, values in axes.items():
            self._add_dim(name, {name: values})

    def _add_dim(self, dim: str, columns: Mapping[str, Any]) -> None:
        if not isinstance(dim, str) or not dim:
            raise ValueError(f"dimension names must be non-empty strings; got {dim!r}")
        if dim in self.dims:
            raise ValueError(f"dimension {dim!r} appears twice")
        if not columns:
            raise ValueError(f"dimension {dim!r} needs at least one coordinate")
        arrays = {}
        for name, values in columns.items():
            if not isinstance(name, str) or not name:
                raise ValueError(
                    f"coordinate names must be non-empty strings; got {name!r}"
                )
            if name in self.coords or name in arrays:
                raise ValueError(f"coordinate {name!r} appears twice")
            arrays[name] = _coord_values(name, values)
        sizes = {k: v.shape[0] for k, v in arrays.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(
                f"the columns of dimension {dim!r} must have equal lengths; got {sizes}"
            )
        self.dims += (dim,)
        self.shape += (next(iter(sizes.values())),)
        for name, array in arrays.items():
            self.coords[name] = array
            self.coord_dims[name] = dim

    @classmethod
    def scenarios(cls, columns: Mapping[str, Any], *, dim: str = "scenario") -> Grid:
        """One dimension ``dim`` whose coordinates are ``columns`` of equal length.

        Examples:
          >>> g = Grid.scenarios({"compute_flops": [1e22, 1e24], "hardware": ["h100-sxm", "tpu-v5p"]})
          >>> g.dims, g.shape, g.coord_dims["hardware"]
          (('scenario',), (2,), 'scenario')
        """  # noqa: E501
        grid = cls()
        grid._add_dim(dim, columns)
        return grid

    def __mul__(self, other: Grid) -> Grid:
        if not isinstance(other, Grid):
            return NotImplemented
        out = Grid()
        for g in (self, other):
            for dim in g.dims:
                names = [c for c, d in g.coord_dims.items() if d == dim]
                out._add_dim(dim, {c: g.coords[c] for c in names})
        return out

    @property
    def size(self) -> int:
        """The number of points."""
        return math.prod(self.shape)

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        dims = ", ".join(f"{d}={n}" for d, n in zip(self.dims, self.shape, strict=True))
        return f"Grid({dims}; coords: {', '.join(self.coords)})"

    def points(self, start: int = 0, stop: int | None = None) -> dict[str, np.ndarray]:
        """Per-point coordinate values of points ``start .. stop - 1`` (row-major)."""
        stop = self.size if stop is None else stop
        index = np.unravel_index(np.arange(start, stop), self.shape)
        where = dict(zip(self.dims, index, strict=True))
        return {c: v[where[self.coord_dims[c]]] for c, v in self.coords.items()}

    def describe(self) -> dict:
        """A JSON-ready description (dims, shape, each coordinate's dim, dtype and
        sha256 of its values): what a checkpoint records about the grid."""
        coords = {}
        for c, v in self.coords.items():
            data = v.astype("U") if _is_static(v) else np.ascontiguousarray(v)
            coords[c] = {
                "dim": self.coord_dims[c],
                "dtype": str(v.dtype.kind),
                "sha256": _sha256(data.tobytes()),
            }
        return {"dims": list(self.dims), "shape": list(self.shape), "coords": coords}

    def _groups(self) -> list[tuple[dict[str, str], list[np.ndarray]]]:
        """Sub-grids of points sharing their categorical labels.

        A point's labels are a tuple of labels per dimension, so the points with
        one tuple are the Cartesian product of, for each dimension, the indices
        with that dimension's part of it. Returns ``(labels, index arrays)``.
        """
        per_dim = []
        for dim, n in zip(self.dims, self.shape, strict=True):
            static = [
                c
                for c, d in self.coord_dims.items()
                if d == dim and _is_static(self.coords[c])
            ]
            if not static:
                per_dim.append([({}, np.arange(n))])
                continue
            keys = list(zip(*(self.coords[c].tolist() for c in static), strict=True))
            parts = []
            for key in dict.fromkeys(keys):
                index = np.array([i for i, k in enumerate(keys) if k == key])
                parts.append((dict(zip(static, key, strict=True)), index))
            per_dim.append(parts)
        groups = []
        for combo in itertools.product(*per_dim):
            labels = {}
            for part, _ in combo:
                labels.update(part)
            groups.append((labels, [index for _, index in combo]))
        return groups
