"""The commands, one module per group; each ``register(sub)`` adds a subcommand.

A new command goes into a module here: a ``cmd_<name>(args) -> dict`` that prints
its text unless ``args.json`` and returns its JSON object, and a
``register_<name>(sub)`` that adds its parser; list the latter in :data:`COMMANDS`.
"""

from __future__ import annotations

from . import fit, isoflop, laws, mc, optimal, plan, sweep

#: The subcommands in the order ``jscale --help`` lists them.
COMMANDS = (
    laws.register_laws,
    plan.register,
    laws.register_loss,
    optimal.register_optimal,
    optimal.register_budget,
    isoflop.register,
    fit.register,
    sweep.register,
    mc.register,
)
