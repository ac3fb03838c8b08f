"""The argument parser: the subcommands and the option groups they share.

Each command group lives in :mod:`jscale.cli.commands` and registers its own
subcommands (``register(sub)``); this module holds what several of them share:
``--json``, ``--law``, the hardware preset (``--gpu`` / ``--hardware``), the
options that turn FLOPs into GPU-hours, energy and dollars, and the status table
printed at the end of ``--help`` for the commands that report a status.

>>> from jscale.cli import build_parser
>>> argv = ["budget", "--hardware", "a100-80gb", "--days", "1"]
>>> args = build_parser().parse_args(argv)
>>> args.hardware, args.count
('a100-80gb', 1)
"""

from __future__ import annotations

import argparse
import textwrap

from .. import __version__, _status, accounting, laws
from .checks import CLIError, choice, count, number

DEFAULT_LAW = "chinchilla-hoffmann2022"
DEFAULT_COMPUTE = 1e24

LAW = choice("law", laws.PRESETS)
HARDWARE = choice("hardware", accounting.HARDWARE)
PRECISION = choice("precision", accounting.PRECISIONS)
#: Parses a number; the library checks its range (and names the argument).
NUMBER = number()
POSITIVE = number(0.0)
FRACTION = number(0.0, upper=1.0)
COUNT = count()

HARDWARE_NAMES = ", ".join(accounting.HARDWARE)
PRECISION_NAMES = ", ".join(accounting.PRECISIONS)

#: ``--help`` epilog of the commands whose results carry a status.
STATUS_EPILOG = "status (JSON: 'status' is the name, 'status_code' the code):\n" + (
    "\n".join(
        textwrap.fill(line, 79, initial_indent="  ", subsequent_indent=" " * 17)
        for line in _status.table_text().splitlines()
    )
)


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage block)."""

    def error(self, message: str):
        raise CLIError(message, prog=self.prog)


def subcommand(
    sub, name: str, help: str, *, status: bool = False
) -> argparse.ArgumentParser:
    """A subcommand's parser with ``--json``; with ``status``, its ``--help`` ends
    with the status table (for the commands whose results carry a status)."""
    kw = {}
    if status:
        kw = dict(
            epilog=STATUS_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
        )
    p = sub.add_parser(name, help=help, **kw)
    add_json(p)
    return p


def add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object")


def add_law(p: argparse.ArgumentParser, default: str = DEFAULT_LAW, **kw) -> None:
    """``--law``: a preset name (see ``jscale laws``)."""
    kw.setdefault("help", f"law preset (default {default}; see `jscale laws`)")
    p.add_argument("--law", type=LAW, default=default, **kw)


def add_hardware(p: argparse.ArgumentParser) -> None:
    """``--gpu`` / ``--hardware``: the hardware preset (one dest, ``hardware``)."""
    p.add_argument(
        "--gpu",
        "--hardware",
        dest="hardware",
        type=HARDWARE,
        default="h100-sxm",
        help=f"hardware preset (default h100-sxm): {HARDWARE_NAMES}",
    )


def add_accounting(p: argparse.ArgumentParser, price_help: str) -> None:
    """MFU, number format, price and PUE of the hardware, and the unique data."""
    p.add_argument("--mfu", type=NUMBER, default=0.4, help="model FLOP utilization")
    p.add_argument(
        "--precision",
        type=PRECISION,
        default="bf16",
        help="number format of the training FLOPs, which sets the hardware's "
        f"peak (default bf16): {PRECISION_NAMES}",
    )
    p.add_argument("--price", type=NUMBER, help=price_help)
    p.add_argument(
        "--pue",
        type=NUMBER,
        default=1.0,
        help="power usage effectiveness of the data centre, >= 1: energy drawn "
        "per unit of energy the devices use (default 1)",
    )
    p.add_argument("--unique-tokens", type=NUMBER, help="unique tokens U available")


def add_confidence(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--confidence",
        type=FRACTION,
        default=0.95,
        help="probability mass of the bootstrap intervals (default 0.95)",
    )


def add_run_options(p: argparse.ArgumentParser) -> None:
    """Checkpoint, resume, overwrite and progress of a chunked run."""
    p.add_argument("--checkpoint", metavar="DIR", help="checkpoint after each chunk")
    p.add_argument(
        "--resume", action="store_true", help="continue the run in --checkpoint"
    )
    p.add_argument(
        "--overwrite", action="store_true", help="discard the run in --checkpoint"
    )
    p.add_argument(
        "--no-progress", action="store_true", help="no progress bar on stderr"
    )


def option_strings(p: argparse.ArgumentParser) -> frozenset[str]:
    """Every flag of a (sub)parser, aliases included."""
    return frozenset(s for action in p._actions for s in action.option_strings)


def build_parser() -> argparse.ArgumentParser:
    """The ``jscale`` parser with every subcommand."""
    from .commands import COMMANDS

    parser = Parser(
        prog="jscale",
        description="Scaling laws for language models: losses, budgets and "
        "compute-optimal allocation.",
    )
    parser.add_argument("--version", action="version", version=f"jscale {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for register in COMMANDS:
        p = register(sub)
        # The flags let a library error be reported under the option's name.
        p.set_defaults(flags=option_strings(p))
    return parser
