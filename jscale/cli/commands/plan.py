"""``jscale plan``: one budget under several laws, with intervals.

:func:`jscale.planner.plan` does the work and validates the budget; the
parameter draws behind the intervals are drawn once here and passed both to the
planner and to the figures of ``--plot``.
"""

from __future__ import annotations

import argparse
import os

import jax
import numpy as np

from ... import laws, planner
from .. import parser as options
from ..rows import fmt, money, print_columns, span


def plan_figures(args, out: dict, draws) -> list[str]:
    """Write the plan's figures into ``args.plot``; returns the paths.

    ``draws`` are the parameter draws of Besiroglu's law that gave the plan's
    intervals: the band of N* and D* and the histogram of the loss use them.
    """
    from ... import plots

    flops = out["budget"]["compute_flops"]
    figures = {
        "isoflop_curves": plots.isoflop_curves(),
        "loss_contours": plots.loss_contours(),
        "optimum_vs_compute": plots.optimum_vs_compute(
            draws=draws, interval=out["interval"]
        ),
    }
    bes = next(r for r in out["plans"] if r["law"] == "chinchilla-besiroglu2024")
    loss = laws.get(bes["law"]).family.loss(draws, bes["n_params"], bes["n_tokens"])
    lo, hi = bes["loss_interval"]
    figures["loss_histogram"] = plots.histogram(
        np.asarray(loss),
        xlabel="loss of the Besiroglu 2024 plan (nats/token)",
        log=False,
        quantiles={"low": lo, "estimate": bes["loss"], "high": hi},
    )
    if args.unique_tokens is not None:
        figures["epochs"] = plots.epochs_curve(
            compute_flops=flops, unique_tokens=[args.unique_tokens]
        )
    if args.inference_tokens is not None:
        figures["inference_shift"] = plots.inference_shift(
            "chinchilla-besiroglu2024", flops
        )
    return [
        plots.save(fig, os.path.join(args.plot, f"{name}.{args.format}"))
        for name, fig in figures.items()
    ]


def cmd_plan(args) -> dict:
    draws = planner.besiroglu_draws(jax.random.key(args.seed), args.num_draws)
    out = planner.plan(
        compute_flops=args.compute,
        hardware=args.hardware,
        count=args.count,
        hours=args.hours,
        days=args.days,
        usd=args.usd,
        energy_kwh=args.energy_kwh,
        mfu=args.mfu,
        precision=args.precision,
        price_per_device_hour=args.price,
        pue=args.pue,
        unique_tokens=args.unique_tokens,
        inference_tokens=args.inference_tokens,
        interval=args.interval,
        draws=draws,
    )
    if args.plot:
        out["figures"] = plan_figures(args, out, draws)
    if not args.json:
        _print_plan(args, out)
    return out


def _print_plan(args, out: dict) -> None:
    b = out["budget"]
    if out["example"]:
        print(out["example"])
    print(
        f"budget: {b['compute_flops']:.3g} FLOPs = {b['gpu_hours']:.4g} GPU-hours "
        f"on {b['hardware']} at MFU {b['mfu']:g} ({b['precision']}), "
        f"{b['energy_kwh']:.4g} kWh, cost {money(b['cost_usd'])}"
    )
    rows = out["plans"]
    level = f"{out['interval']:.0%}"
    print_columns(
        [
            ("", *(r["law"] for r in rows)),
            ("parameters", *(span(r, "n_params", "params") for r in rows)),
            ("tokens", *(span(r, "n_tokens", "tokens") for r in rows)),
            ("tokens/param", *(f"{r['tokens_per_param']:.3g}" for r in rows)),
            ("epochs", *(fmt(r["epochs"]) for r in rows)),
            (f"loss (nats/token) [{level}]", *(span(r, "loss") for r in rows)),
            ("training FLOPs", *(f"{r['compute_flops']:.3g}" for r in rows)),
            ("GPU-hours", *(f"{r['gpu_hours']:.4g}" for r in rows)),
            ("energy kWh", *(fmt(r["energy_kwh"]) for r in rows)),
            ("cost", *(money(r["cost_usd"]) for r in rows)),
            ("status", *(r["status"] for r in rows)),
        ]
    )
    print(
        f"[...] {level} intervals from Besiroglu 2024's bootstrap covariance "
        f"({args.num_draws} draws); n/a where a law publishes no uncertainty"
    )
    for path in out.get("figures", []):
        print(f"wrote {path}")


def register(sub) -> argparse.ArgumentParser:
    p = options.subcommand(
        sub,
        "plan",
        "plan a budget (GPUs, FLOPs, $ or kWh) under several laws, with intervals",
        status=True,
    )
    number = options.NUMBER  # the planner checks the budget and names the input
    p.add_argument("--compute", type=number, help="budget in FLOPs")
    options.add_hardware(p)
    p.add_argument("--count", type=options.COUNT, help="number of GPUs")
    p.add_argument("--days", type=number, help="wall-clock days (with --count)")
    p.add_argument("--hours", type=number, help="wall-clock hours (with --count)")
    p.add_argument("--usd", type=number, help="budget in dollars (with --price)")
    p.add_argument("--energy-kwh", type=number, help="budget in kWh of energy")
    options.add_accounting(p, "$ per GPU-hour")
    p.add_argument("--inference-tokens", type=number, help="lifetime inference tokens")
    p.add_argument(
        "--interval",
        # The table prints the level as a whole percentage: at most 99.9%.
        type=options.number(0.0, upper=0.999),
        default=0.9,
        help="probability mass of the intervals (default 0.9)",
    )
    p.add_argument(
        "--draws",
        dest="num_draws",
        metavar="DRAWS",
        type=options.count(2),
        default=4000,
        help="parameter draws behind the intervals (default 4000)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed of the draws")
    p.add_argument("--plot", metavar="DIR", help="write the plan's figures into DIR")
    p.add_argument(
        "--format", choices=("png", "svg", "pdf"), default="png", help="figure format"
    )
    p.set_defaults(func=cmd_plan)
    return p
