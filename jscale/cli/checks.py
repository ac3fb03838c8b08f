"""Argument checks of the command line: what must parse before the library runs.

The CLI parses; the library validates. An argparse type here checks only that a
value parses as what the option takes (a finite number, a whole number, one of the
valid names); ranges are checked once, at the library's public boundary, which
raises ``ValueError`` naming its argument. :func:`library_error` turns that error
into the one line the CLI prints, led by the flag that carries the argument.
A range stays here only where no library call sees the value as a concrete number
(a sweep's grid is evaluated under ``jax.jit``) or where the bound is the CLI's own.

>>> from jscale.cli import checks
>>> checks.count()("1e6"), checks.number(0.0)("2.5")
(1000000, 2.5)
>>> checks.library_error(ValueError("compute_flops must be > 0"), {"--compute"})
'--compute: compute_flops must be > 0'
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable, Collection, Iterable, Mapping

from .. import _checks


class CLIError(Exception):
    """A user error, printed as one line ``PROG: error: MESSAGE`` with exit code 2.

    ``prog`` is set by the argument parser (``jscale optimal``); a command leaves
    it ``None`` and :func:`jscale.cli.main` names the command.
    """

    def __init__(self, message: str, prog: str | None = None):
        super().__init__(message)
        self.prog = prog


def _argparse_type(name: str, check: Callable[[str], object]) -> Callable:
    """An argparse type from a check that raises ``ValueError`` naming ``value``."""

    def parse(text: str):
        try:
            return check(text)
        except ValueError as e:
            message = str(e).removeprefix("value ")
            raise argparse.ArgumentTypeError(message) from None

    parse.__name__ = name
    return parse


def number(
    lower: float | None = None, *, inclusive: bool = False, upper: float | None = None
) -> Callable[[str], float]:
    """An argparse type: a finite float, optionally in a range the CLI owns.

    Without bounds it only parses (the library checks the range of what it
    takes). The message names the range: ``(0, inf)``, ``[1, inf)``, ``(0, 1]``.
    """
    lo = "-inf" if lower is None else f"{lower:g}"
    hi = "inf" if upper is None else f"{upper:g}"
    bounded = lower is not None or upper is not None
    rng = f"{'[' if inclusive else '('}{lo}, {hi}{']' if upper is not None else ')'}"
    what = f"a finite number in {rng}" if bounded else "a finite number"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        ok = math.isfinite(value)
        if ok and lower is not None:
            ok = value >= lower if inclusive else value > lower
        if ok and upper is not None:
            ok = value <= upper
        if not ok:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


def count(minimum: int = 1) -> Callable[[str], int]:
    """An argparse type: a whole number >= ``minimum``, also written like ``1e6``."""
    return _argparse_type(
        "count", lambda text: _checks.check_whole("value", text, minimum=minimum)
    )


def choice(kind: str, valid: Iterable[str] | Mapping) -> Callable[[str], str]:
    """An argparse type accepting one of ``valid``; the message lists them."""
    valid = list(valid)
    return _argparse_type(kind, lambda text: _checks.check_choice(kind, text, valid))


def pairs(items: Iterable[str] | None, option: str) -> dict[str, str]:
    """``NAME=VALUE`` options as a dict; a malformed one is a one-line error."""
    out = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise CLIError(f"{option} expects NAME=VALUE, got {item!r}")
        out[name.strip()] = value.strip()
    return out


def parse_number(text: str, option: str) -> float:
    """A finite number inside an option's value (``--freeze alpha=0.3``)."""
    try:
        value = float(text)
    except ValueError:
        raise CLIError(f"{option}: expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise CLIError(f"{option}: must be finite, got {text}")
    return value


#: Library argument names whose flag is not ``--`` + the name with dashes.
LIBRARY_FLAGS = {
    "compute_flops": "--compute",
    "n_params": "--params",
    "n_tokens": "--tokens",
    "n_active_params": "--active-params",
    "n_devices": "--count",
    "price_per_device_hour": "--price",
    "cost_usd": "--usd",
    "energy_joules": "--energy-kwh",
    "num_draws": "--draws",
}

_LEADING_NAME = re.compile(r"(?:unknown )?([A-Za-z_]\w*)")


def flag_of(name: str, flags: Collection[str]) -> str | None:
    """The flag among ``flags`` that carries the library argument ``name``."""
    for flag in (LIBRARY_FLAGS.get(name), "--" + name.replace("_", "-")):
        if flag in flags:
            return flag
    return None


def library_error(error: ValueError, flags: Collection[str]) -> str:
    """The message of a library ``ValueError``, led by the flag of its argument.

    The library names the argument first (``compute_flops must be ...``,
    ``unknown precision 'fp7'; valid: ...``); when one of ``flags`` (the
    command's options) carries it, the line starts with that flag.
    """
    text = str(error)
    match = _LEADING_NAME.match(text)
    flag = match and flag_of(match.group(1), flags)
    return f"{flag}: {text}" if flag else text
