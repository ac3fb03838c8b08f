"""Observations to fit: CSV input, column mappings, row selection, example data.

Observations come from a CSV, any mapping of columns (a dict, a pandas DataFrame)
or arrays (:func:`observations`, :func:`read_columns`), with columns renamed by
``columns`` and rows selected by ``where``; every value is checked (the message
names the column and the rows). Example data with their licences ship in
``jscale/data`` (:data:`EXAMPLES`, :func:`example_path`).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from .. import _checks
from .._numerics import default_float
from .families import Model, _model_name, get_model


class Observations(NamedTuple):
    """Training runs to fit: the family's inputs and the final losses.

    Attributes:
      inputs: the family's inputs by name (e.g. ``n_params``, ``n_tokens``), each a
        float array of shape ``(P,)``.
      loss: the observed losses, shape ``(P,)`` (> 0).
      rows: the row number of each observation in its source (for messages).
    """

    inputs: dict
    loss: jax.Array
    rows: np.ndarray


#: Column names read by default (a mapping ``{name: column}`` overrides them).
DEFAULT_COLUMNS = {
    "n_params": "n_params",
    "n_tokens": "n_tokens",
    "unique_tokens": "unique_tokens",
    "compute_flops": "compute_flops",
    "x": "x",
    "n_active_params": "n_active_params",
    "experts": "experts",
    "loss": "loss",
}


def _read_csv(path: str | os.PathLike) -> dict[str, list[str]]:
    with open(path, newline="") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise ValueError(f"{os.fspath(path)}: empty file, no header") from None
        header = [h.strip() for h in header]
        columns: dict[str, list[str]] = {h: [] for h in header}
        for lineno, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise ValueError(
                    f"{os.fspath(path)}: line {lineno} has {len(row)} fields, the "
                    f"header has {len(header)}"
                )
            for h, v in zip(header, row, strict=True):
                columns[h].append(v.strip())
    return columns


def _column_names(source) -> list[str]:
    if hasattr(source, "columns"):  # pandas-like DataFrame
        return [str(c) for c in source.columns]
    return [str(c) for c in source.keys()]


def _as_float_column(values, name: str) -> np.ndarray:
    if isinstance(values, jax.core.Tracer):
        return values
    if hasattr(values, "to_numpy"):  # pandas Series
        values = values.to_numpy()
    if isinstance(values, list) and values and isinstance(values[0], str):
        out = np.empty(len(values))
        for i, v in enumerate(values):
            try:
                out[i] = float(v) if v != "" else np.nan
            except ValueError:
                raise ValueError(
                    f"column {name!r}: row {i} is not a number: {v!r}"
                ) from None
        return out
    arr = np.asarray(values)
    if arr.dtype == object:
        arr = arr.astype(np.float64)
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"column {name!r} is not numeric (dtype {arr.dtype})")
    return arr


#: Inputs with a lower limit beyond positivity: an expert count is at least 1.
INPUT_MIN = {"experts": 1.0}


def _table(source: Any, arrays: Mapping[str, Any]) -> tuple[Any, str]:
    """The column table of a source, and how to name it in messages."""
    if source is None:
        return dict(arrays), "arrays"
    if arrays:
        raise ValueError("give either a source or arrays, not both")
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.exists(path):
            raise ValueError(f"no such file: {path}")
        return _read_csv(source), path
    if hasattr(source, "keys") or hasattr(source, "columns"):
        return source, "data"
    raise ValueError(
        "source must be a CSV path, a mapping of columns (dict, DataFrame) "
        f"or Observations; got {type(source).__name__}"
    )


def _select_rows(table, present, where, label) -> np.ndarray | None:
    """Indices of the rows whose columns equal the ``where`` values (or None)."""
    if not where:
        return None
    keep = None
    for column, value in where.items():
        if column not in present:
            raise ValueError(
                f"{label}: where: no column {column!r}; columns present: "
                f"{', '.join(map(repr, present))}"
            )
        values = table[column]
        if hasattr(values, "to_numpy"):
            values = values.to_numpy()
        if isinstance(values, jax.core.Tracer):
            raise ValueError("where: rows cannot be selected on traced values")
        arr = np.asarray(values)
        if np.issubdtype(arr.dtype, np.number):
            try:
                match = arr == float(value)
            except ValueError:
                match = np.zeros(arr.shape, bool)
        else:
            match = np.array([str(v).strip() == str(value).strip() for v in arr])
        keep = match if keep is None else keep & match
    rows = np.flatnonzero(keep)
    if rows.size == 0:
        desc = ", ".join(f"{k}={v!r}" for k, v in where.items())
        raise ValueError(f"{label}: no rows match where {desc}")
    return rows


def read_columns(
    source: Any,
    names: Sequence[str],
    *,
    columns: Mapping[str, str] | None = None,
    where: Mapping[str, Any] | None = None,
    substitutes: Mapping[str, Sequence[str]] | None = None,
    purpose: str = "",
    hint: str = "",
    **arrays: ArrayLike,
) -> tuple[dict[str, Any], np.ndarray]:
    """Read named inputs from a CSV, a column mapping or arrays, and check them.

    The reader behind :func:`observations` (and ``jscale isoflop --data``).

    Args:
      source: a CSV path, a mapping of column name to values (dict, DataFrame), or
        ``None`` with ``arrays``.
      names: the inputs to read, e.g. ``("n_params", "n_tokens", "loss")``.
      columns: ``{input: column}`` overriding :data:`DEFAULT_COLUMNS`.
      where: ``{column: value}``: keep only the rows whose column equals the value
        (text equality for text columns, numeric for numeric ones), e.g.
        ``{"router_type": "Hash"}``.
      substitutes: ``{input: other inputs}`` read instead when the input's column
        is absent and all the others are present (the caller derives the input).
      purpose: what the inputs are for, in messages (e.g. ``"law 'kaplan'"``).
      hint: appended to the missing-column message.
      **arrays: the inputs as arrays, by input name (with ``source=None``).

    Returns:
      ``(values, rows)``: each input read (a substitute's inputs in its place) as
      a float64 NumPy array (or as given, if traced) of shape ``(P,)``, and the
      source row of each value (counted from 0, header excluded).

    Raises:
      ValueError: naming the missing columns (and those present), or the column
        and rows of non-numeric, non-positive, NaN or infinite values (experts
        below 1), or unequal lengths.

    Examples:
      >>> values, rows = read_columns(
      ...     {"n_params": [1e8, 2e8, 4e8], "loss": [3.0, 2.9, 2.8], "set": [1, 2, 1]},
      ...     ("n_params", "loss"), where={"set": 1})
      >>> values["n_params"].tolist(), rows.tolist()
      ([100000000.0, 400000000.0], [0, 2])
    """
    names_map = dict(DEFAULT_COLUMNS)
    if columns:
        unknown = sorted(set(columns) - set(names_map))
        if unknown:
            raise ValueError(
                f"unknown input(s) in columns: {', '.join(unknown)}; valid: "
                f"{', '.join(sorted(names_map))}"
            )
        names_map.update(columns)
    table, label = _table(source, arrays)
    if source is None:
        names_map = {k: k for k in names_map} | {
            k: v for k, v in names_map.items() if v in table
        }
    present = _column_names(table)
    need = list(names)
    for name, others in (substitutes or {}).items():
        if (
            name in need
            and names_map[name] not in present
            and all(names_map[o] in present for o in others)
        ):
            i = need.index(name)
            need[i : i + 1] = [o for o in others if o not in need]
    missing = [names_map[k] for k in need if names_map[k] not in present]
    if missing:
        what = f" for {purpose}" if purpose else ""
        raise ValueError(
            f"{label}: missing column(s) {', '.join(map(repr, missing))}{what}"
            f"{hint}; columns present: {', '.join(map(repr, present)) or 'none'}"
        )
    selected = _select_rows(table, present, where, label)
    values = {k: _as_float_column(table[names_map[k]], names_map[k]) for k in need}
    lengths = {names_map[k]: np.shape(v) for k, v in values.items()}
    if len(set(lengths.values())) != 1 or any(len(s) != 1 for s in lengths.values()):
        desc = ", ".join(f"{k} {s}" for k, s in lengths.items())
        raise ValueError(f"{label}: columns must be 1-D of equal length; got {desc}")
    num = int(next(iter(lengths.values()))[0])
    rows = np.arange(num) if selected is None else selected
    if selected is not None:
        values = {k: v[selected] for k, v in values.items()}
    if all(_checks.is_concrete(v) for v in values.values()):
        for k, v in values.items():
            v = np.asarray(v, np.float64)
            low = INPUT_MIN.get(k)
            ok = np.isfinite(v) & ((v >= low) if low is not None else (v > 0))
            bad = np.flatnonzero(~ok)
            if bad.size:
                shown = ", ".join(str(int(rows[i])) for i in bad[:10])
                more = f" and {bad.size - 10} more" if bad.size > 10 else ""
                need_text = f">= {low:g}" if low is not None else "> 0"
                raise ValueError(
                    f"{label}: column {names_map[k]!r} must be finite and "
                    f"{need_text}; bad value(s) "
                    f"{', '.join(f'{v[i]:g}' for i in bad[:3])} in row(s) "
                    f"{shown}{more} (rows counted from 0, header excluded)"
                )
            values[k] = v
    return values, rows


def observations(
    source: Any = None,
    law: str | Model = "chinchilla",
    *,
    columns: Mapping[str, str] | None = None,
    where: Mapping[str, Any] | None = None,
    **arrays: ArrayLike,
) -> Observations:
    """Collect and check the observations a family needs.

    Args:
      source: a CSV path, any mapping of column name to values (a dict, a pandas
        DataFrame: anything with ``keys()`` or ``columns`` and ``[name]``), an
        :class:`Observations` (returned as is), or ``None`` with ``arrays``.
      law: the family name (:data:`MODELS`) whose inputs are needed.
      columns: ``{input: column}`` overriding :data:`DEFAULT_COLUMNS`, e.g.
        ``{"n_params": "Model Size", "compute_flops": "Training FLOP"}``.
      where: ``{column: value}``: keep only the matching rows (see
        :func:`read_columns`), e.g. ``{"router_type": "Hash"}``.
      **arrays: the inputs and ``loss`` as arrays, by input name.

    ``compute_flops`` stands in for ``n_tokens`` when the latter is absent:
    ``D = C / (6 N)`` (Hoffmann 2022, Sec. 3.3).

    Returns:
      :class:`Observations` in the default float dtype (float64 under x64);
      ``rows`` holds each observation's row in the source.

    Raises:
      ValueError: naming the missing columns (and those present), or the rows with
        non-positive, NaN or infinite values, or too few rows.

    Examples:
      >>> obs = observations({"n_params": [1e8, 1e9], "n_tokens": [2e9, 2e10],
      ...                     "loss": [3.1, 2.6]})
      >>> obs.inputs["n_params"].shape
      (2,)
    """
    if isinstance(source, Observations):
        return source
    model = get_model(law)
    names_map = dict(DEFAULT_COLUMNS) | dict(columns or {})
    hint = ""
    if "n_tokens" in model.inputs:
        hint = (
            f" ({names_map['compute_flops']!r} may stand in for "
            f"{names_map['n_tokens']!r})"
        )
    values, rows = read_columns(
        source,
        tuple(model.inputs) + ("loss",),
        columns=columns,
        where=where,
        substitutes={"n_tokens": ("compute_flops", "n_params")},
        purpose=f"law {_model_name(model)!r}",
        hint=hint,
        **arrays,
    )
    if "compute_flops" in values and "n_tokens" in model.inputs:
        # D = C / (6 N), in float64 when the values are at hand (C ~ 1e22 would
        # lose digits through logs in float32).
        c = values.pop("compute_flops")
        values["n_tokens"] = c / (6.0 * values["n_params"])
    dtype = default_float()
    out = {k: jnp.asarray(v, dtype) for k, v in values.items()}
    inputs = {k: out[k] for k in model.inputs}
    return Observations(inputs, out["loss"], rows)


#: Example data shipped with jscale (permissively licensed; see each SOURCE.md):
#: name -> (file, column mapping for :func:`observations` / :func:`read_columns`).
EXAMPLES = {
    # Sardana et al. 2024, 47 runs (Apache-2.0): law "chinchilla".
    "beyond_chinchilla": (
        "beyond_chinchilla/trainingresults.csv",
        {"n_params": "Parameters", "n_tokens": "Tokens", "loss": "Smoothed Loss"},
    ),
    # Muennighoff et al. 2023, 182 C4 runs with repeated data (Apache-2.0): law
    # "data-constrained".
    "datablations": (
        "datablations/datablations_c4_182runs.csv",
        {"n_params": "params", "n_tokens": "tokens", "loss": "val_loss"},
    ),
    # Porian et al. 2024, isoFLOP points (MIT): Approach 2 (jscale.isoflop); select
    # a configuration with where={"dataset": ..., "config_label": ...}.
    "porian_isoflops": (
        "porian_isoflops/porian_isoflop_points.csv",
        {"compute_flops": "flops", "n_params": "params", "n_tokens": "tokens"},
    ),
    # Clark et al. 2022, final losses of routed models (CC-BY 4.0): law "moe";
    # select a router with where={"router": "S-Base"} (or "RL-R", "Hash").
    "routing_moe": ("routing_moe/clark2022_routed.csv", {}),
}


def example_path(name: str) -> str:
    """Path of a shipped example CSV (:data:`EXAMPLES`); its columns mapping is
    ``EXAMPLES[name][1]``.

    Examples:
      >>> obs = observations(example_path("beyond_chinchilla"),
      ...                    columns=EXAMPLES["beyond_chinchilla"][1])
      >>> int(obs.loss.shape[0])
      47
    """
    _checks.check_choice("example", name, EXAMPLES)
    package = os.path.dirname(os.path.dirname(__file__))  # jscale/
    return os.path.join(package, "data", EXAMPLES[name][0])


def _log_data(obs: Observations, model: Model):
    """The logs of a family's inputs (a tuple of ``(P,)`` arrays) and of the losses."""
    log_x = tuple(jnp.log(obs.inputs[k]) for k in model.inputs)
    log_y = jnp.log(obs.loss)
    return log_x, log_y
