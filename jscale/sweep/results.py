"""A sweep's outputs on its labelled grid, and their files (CSV, ``.npz``,
Parquet)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

import numpy as np

from .grid import Grid


def _format(x) -> str:
    value = x.item()
    if isinstance(value, float):
        return repr(value)
    return str(value)


class SweepResult:
    """A sweep's outputs on its labelled grid.

    Attributes:
      dims, shape, coords, coord_dims: as in :class:`Grid`.
      data: output name -> NumPy array of shape ``shape + trailing`` (the
        function's outputs, named after their fields or keys; ``"value"`` for a
        single array).
      info: how the sweep ran (chunk size, padded chunk shape, number of chunks,
        devices), for the record.

    ``result["loss"]`` is ``result.data["loss"]``. Save with :meth:`to_csv`,
    :meth:`to_npz` (load back with :meth:`load_npz`) or :meth:`to_parquet`.
    """

    def __init__(self, grid: Grid, data: Mapping[str, np.ndarray], info=None):
        self.grid = grid
        self.dims = grid.dims
        self.shape = grid.shape
        self.coords = grid.coords
        self.coord_dims = grid.coord_dims
        self.data = dict(data)
        self.info = dict(info or {})

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.data[name]
        except KeyError:
            raise KeyError(
                f"no output {name!r}; outputs: {', '.join(self.data)}"
            ) from None

    def __repr__(self) -> str:
        return f"SweepResult({self.grid!r}; outputs: {', '.join(self.data)})"

    def columns(self) -> dict[str, np.ndarray]:
        """One flat column per coordinate and per output element, one row per
        point (row-major); trailing output axes become ``name[i]`` columns."""
        cols = dict(self.grid.points())
        for name, array in self.data.items():
            flat = array.reshape((self.grid.size,) + array.shape[len(self.shape) :])
            if flat.ndim == 1:
                cols[name] = flat
            else:
                for idx in np.ndindex(*flat.shape[1:]):
                    label = ",".join(str(i) for i in idx)
                    cols[f"{name}[{label}]"] = flat[(slice(None),) + idx]
        return cols

    def records(self) -> list[dict]:
        """The points as a list of dicts of Python scalars (NaN kept as ``nan``)."""
        cols = self.columns()
        return [
            {k: v[i].item() for k, v in cols.items()} for i in range(self.grid.size)
        ]

    def to_csv(self, path: str | os.PathLike) -> None:
        """Write one row per point: coordinates, then outputs (floats written
        with ``repr``, so they read back exactly)."""
        import csv

        cols = self.columns()
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(list(cols))
            for i in range(self.grid.size):
                writer.writerow([_format(v[i]) for v in cols.values()])

    def to_npz(self, path: str | os.PathLike) -> None:
        """Save coordinates, outputs and layout to ``.npz`` (no pickles)."""
        meta = {
            "format": "jscale.sweep",
            "version": 1,
            "dims": list(self.dims),
            "shape": list(self.shape),
            "coord_dims": self.coord_dims,
            "outputs": list(self.data),
            "info": self.info,
        }
        arrays = {"meta": np.array(json.dumps(meta))}
        for k, (name, values) in enumerate(self.coords.items()):
            arrays[f"coord_{k}"] = values
            meta.setdefault("coord_keys", {})[name] = f"coord_{k}"
        for k, name in enumerate(self.data):
            arrays[f"data_{k}"] = self.data[name]
        arrays["meta"] = np.array(json.dumps(meta))
        with open(path, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load_npz(cls, path: str | os.PathLike) -> SweepResult:
        """Read a file written by :meth:`to_npz`."""
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            if meta.get("format") != "jscale.sweep":
                raise ValueError(f"{path} is not a jscale sweep result")
            grid = Grid()
            for dim in meta["dims"]:
                names = [c for c, d in meta["coord_dims"].items() if d == dim]
                grid._add_dim(dim, {c: npz[meta["coord_keys"][c]] for c in names})
            data = {name: npz[f"data_{k}"] for k, name in enumerate(meta["outputs"])}
        return cls(grid, data, meta.get("info"))

    def to_parquet(self, path: str | os.PathLike) -> None:
        """Write the :meth:`columns` table to Parquet (needs ``pyarrow``, which
        jscale does not depend on)."""
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise ModuleNotFoundError(
                "to_parquet needs pyarrow, which is not installed (jscale does not "
                "depend on it); use to_csv or to_npz, or pip install pyarrow"
            ) from None
        pq.write_table(pa.table(self.columns()), path)

    def save(self, path: str | os.PathLike) -> None:
        """Write by suffix: ``.csv``, ``.npz`` or ``.parquet``."""
        suffix = os.path.splitext(os.fspath(path))[1].lower()
        writers = {
            ".csv": self.to_csv,
            ".npz": self.to_npz,
            ".parquet": self.to_parquet,
        }
        if suffix not in writers:
            raise ValueError(
                f"cannot tell the format of {os.fspath(path)!r}: use a .csv, .npz or "
                f".parquet suffix; got {suffix or 'none'!r}"
            )
        writers[suffix](path)
