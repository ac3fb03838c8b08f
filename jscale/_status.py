"""The one table of status codes shared by every solver, the CLI and JSON.

Every result that can fail per element (an allocation, a fit and each of its starts
or resamples, an isoFLOP minimum, a Monte Carlo draw) carries an int32 ``status``
array whose codes come from this table: 0 means the element is valid. JSON output
reports the short ``name`` (a stable identifier) as ``status`` and the number as
``status_code``; the ``message`` says what happened and what to do.

>>> from jscale import _status
>>> _status.name(_status.MAX_STEPS), _status.code("nonfinite")
('max_steps', 3)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Status(NamedTuple):
    """One row of the table: the code, its short name and its message."""

    code: int
    name: str
    message: str


TABLE: tuple[Status, ...] = (
    Status(0, "converged", "converged"),
    Status(
        1,
        "max_steps",
        "the solver stopped at max_steps before converging; increase max_steps",
    ),
    Status(
        2,
        "infeasible",
        "no valid solution: the budget cannot buy one parameter trained on one "
        "token, the target is not above what the law can reach, there is no "
        "unique data, or an input is out of range",
    ),
    Status(
        3,
        "nonfinite",
        "a non-finite value was met while solving; check the inputs and, for a "
        "fit, the data and the start",
    ),
    Status(
        4,
        "at_bound",
        "the optimum lies at the edge of the searched range; widen the range",
    ),
    Status(
        5,
        "pruned",
        "screened out after the first steps (a better start was kept)",
    ),
    Status(
        6,
        "stalled",
        "no further decrease is representable in this dtype before the tolerance "
        "was met (in float32, enable x64)",
    ),
)

CONVERGED, MAX_STEPS, INFEASIBLE, NONFINITE, AT_BOUND, PRUNED, STALLED = (
    s.code for s in TABLE
)

#: Code -> message, and code -> short name.
MESSAGES: dict[int, str] = {s.code: s.message for s in TABLE}
NAMES: dict[int, str] = {s.code: s.name for s in TABLE}
_CODES: dict[str, int] = {s.name: s.code for s in TABLE}


def name(code) -> str:
    """The short, stable name of a status code (e.g. ``'max_steps'``)."""
    c = int(np.asarray(code))
    try:
        return NAMES[c]
    except KeyError:
        raise ValueError(f"unknown status code {c}; valid: {sorted(NAMES)}") from None


def code(name_: str) -> int:
    """The code of a short status name."""
    try:
        return _CODES[name_]
    except KeyError:
        raise ValueError(
            f"unknown status name {name_!r}; valid: {', '.join(_CODES)}"
        ) from None


def message(code_) -> str:
    """The message of a status code."""
    return MESSAGES[int(np.asarray(code_))]


def counts(status) -> dict[str, int]:
    """How many elements of a status array have each code, by name (zeros left out)."""
    s = np.asarray(status).ravel().astype(np.int64)
    n = np.bincount(s, minlength=len(TABLE))
    return {NAMES[c]: int(k) for c, k in enumerate(n) if k}


def as_json(code_) -> dict:
    """``{"status": name, "status_code": code}`` for one element."""
    c = int(np.asarray(code_))
    return {"status": name(c), "status_code": c}


def table_text() -> str:
    """The table as text, one line per code (for ``--help`` and the docs)."""
    return "\n".join(f"{s.code}  {s.name:<10} {s.message}" for s in TABLE)
