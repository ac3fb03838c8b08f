"""Command-line interface: ``jscale plan | laws | loss | optimal | budget | ...``.

Every command takes ``--json`` and then prints exactly one JSON object. Bad input is
reported as one line on stderr naming the option, with exit code 2: the parser
checks that values parse (:mod:`~jscale.cli.checks`), the library checks their
ranges and raises ``ValueError`` naming its argument, and :func:`main` reports it
under the option's flag. The CLI is an application, so it computes in float64
(scoped with ``jax.enable_x64``; the library itself never changes the setting).

Layout: :mod:`~jscale.cli.parser` (the parser and its shared option groups),
:mod:`~jscale.cli.checks` (argument types and error lines),
:mod:`~jscale.cli.rows` (JSON values, allocation rows, text tables) and
:mod:`jscale.cli.commands` (one module per command group).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

import jax

from .checks import CLIError, library_error
from .commands.fit import FIT_LAWS
from .commands.isoflop import HOFFMANN_BUDGETS
from .commands.laws import INPUT_OPTIONS
from .commands.mc import MC_DEFAULT_LAW
from .parser import DEFAULT_COMPUTE, DEFAULT_LAW, build_parser

__all__ = [
    "DEFAULT_COMPUTE",
    "DEFAULT_LAW",
    "FIT_LAWS",
    "HOFFMANN_BUDGETS",
    "INPUT_OPTIONS",
    "MC_DEFAULT_LAW",
    "CLIError",
    "build_parser",
    "main",
]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 bad input)."""
    args = None
    try:
        args = build_parser().parse_args(argv)
        with jax.enable_x64(True):
            out = args.func(args)
    except CLIError as e:
        prog = e.prog or f"jscale {args.command}"
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:  # the library's check of an argument
        flags = getattr(args, "flags", ())
        command = getattr(args, "command", "")
        print(f"jscale {command}: error: {library_error(e, flags)}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(out, allow_nan=False))
    return 0
