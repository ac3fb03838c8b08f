"""Report rows: JSON-ready values, the row of an allocation, and text tables.

An allocation becomes a row through :func:`jscale.allocation.to_row` (the one
conversion); :func:`allocation_row` only puts the law's name in front. The rest
formats what the commands print: sizes with SI suffixes, dollars, intervals and
aligned columns.

>>> from jscale.cli import rows
>>> rows.fmt(4.13e10, "params"), rows.fmt(2.0654), rows.money(129024.4)
('41.3B', '2.065', '$129,024')
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .. import allocation


def json_float(x) -> float | None:
    """A JSON-ready float (NaN and infinities become ``None``)."""
    value = float(np.asarray(x))
    return value if math.isfinite(value) else None


def allocation_row(law: str, result, index: tuple[int, ...] = ()) -> dict:
    """``{"law": law}`` followed by :func:`jscale.allocation.to_row` of ``result``."""
    return {"law": law, **allocation.to_row(result, index)}


def fmt(x: float | None, unit: str = "") -> str:
    """A number for a table: 4 significant digits, sizes with k/M/B/T suffixes."""
    if x is None:
        return "n/a"
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale and unit in ("params", "tokens"):
            return f"{x / scale:.3g}{suffix}"
    return f"{x:.4g}"


def money(x: float | None) -> str:
    """Dollars without cents, ``n/a`` when unknown."""
    return "n/a" if x is None else f"${x:,.0f}"


def span(row: dict, key: str, unit: str = "") -> str:
    """``row[key]`` with its ``key_interval`` in brackets when the row has one."""
    value = row.get(key)
    if value is None:
        return "n/a"
    text = fmt(value, unit) if unit else f"{value:.4g}"
    interval = row.get(f"{key}_interval")
    if interval:
        lo, hi = (fmt(v, unit) if unit else f"{v:.4g}" for v in interval)
        text += f" [{lo}, {hi}]"
    return text


def print_table(rows: Sequence[tuple[str, str]]) -> None:
    """Two columns, ``label  value``, the labels padded to one width."""
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


def print_columns(
    table: Sequence[Sequence[object]], *, align: str = "<", strip: bool = False
) -> None:
    """Rows of cells in columns two spaces apart, each as wide as its widest cell.

    Args:
      table: the rows (the first is usually the header).
      align: ``"<"`` (left) or ``">"`` (right).
      strip: drop trailing spaces from each line.
    """
    widths = [max(len(str(row[i])) for row in table) for i in range(len(table[0]))]
    for row in table:
        line = "  ".join(
            f"{str(v):{align}{w}}" for v, w in zip(row, widths, strict=True)
        )
        print(line.rstrip() if strip else line)
