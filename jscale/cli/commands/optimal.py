"""``jscale optimal`` (the compute-optimal model of a budget or a target loss) and
``jscale budget`` (devices for a time -> FLOPs, energy, cost and the plan)."""

from __future__ import annotations

import argparse

from ... import accounting, allocation, laws
from .. import parser as options
from ..checks import CLIError
from ..rows import allocation_row, fmt, json_float, print_table

#: ``optimal``'s lifetime-cost options: dest (the keyword of
#: :func:`jscale.allocation.inference_cost_optimal`) -> the flag.
COST_OPTIONS = {
    "train_hardware": "--train-gpu",
    "train_precision": "--train-precision",
    "train_mfu": "--train-mfu",
    "train_price": "--train-price",
    "inference_hardware": "--inference-gpu",
    "inference_precision": "--inference-precision",
    "prefill_mfu": "--prefill-mfu",
    "decode_mfu": "--decode-mfu",
    "inference_price": "--inference-price",
}


def data_row(preset: laws.Preset, result, unique_tokens: float | None) -> dict:
    """The row of an allocation, with the unique data and the epochs ``D / U``."""
    out = allocation_row(preset.name, result)
    if unique_tokens is not None:
        out["unique_tokens"] = unique_tokens
        out["epochs"] = json_float(result.n_tokens / unique_tokens)
    return out


def rules_of_thumb(compute: float) -> dict:
    """The 20-tokens-per-parameter rule and Kaplan 2020's frontier at ``compute``."""
    n20, d20 = allocation.tokens_per_param_rule(compute, 20.0)
    nk, dk = allocation.kaplan_frontier(compute)
    return {
        "tokens_per_param_20": {
            "n_params": json_float(n20),
            "n_tokens": json_float(d20),
            "note": "rule of thumb D = 20 N read off Hoffmann 2022 Table 3; not a fit",
        },
        "kaplan2020_frontier": {
            "n_params": json_float(nk),
            "n_tokens": json_float(dk),
            "note": "Kaplan 2020 N = 1.3e9 C^0.73, D = 2e10 C^0.27 (C in PF-days); "
            "N non-embedding; superseded by Hoffmann 2022",
        },
    }


def _allocate(args, preset: laws.Preset):
    """The allocation ``optimal`` asks for; the library validates the inputs."""
    cost_given = [k for k in COST_OPTIONS if getattr(args, k) is not None]
    costed = args.input_tokens is not None or args.output_tokens is not None
    if (cost_given or costed) and args.target_loss is None:
        flag = COST_OPTIONS[cost_given[0]] if cost_given else "--input-tokens"
        raise CLIError(f"{flag} needs --target-loss (the lifetime-cost scenario)")
    if costed and args.inference_tokens is not None:
        raise CLIError(
            "give --inference-tokens (FLOPs) or --input-tokens/--output-tokens "
            "(dollars), not both"
        )
    if args.max_epochs is not None and args.unique_tokens is None:
        raise CLIError("--max-epochs needs --unique-tokens")
    if costed:
        if preset.family.inputs != ("n_params", "n_tokens"):
            raise CLIError(
                f"the cost scenario needs a law of (N, D); {preset.name!r} is of "
                f"family {preset.family.name!r}"
            )
        kwargs = dict(allocation.SARDANA_COST_DEFAULTS)
        kwargs.update({k: getattr(args, k) for k in cost_given})
        return allocation.inference_cost_optimal(
            preset.family.loss,
            preset.params,
            args.target_loss,
            args.input_tokens or 0.0,
            args.output_tokens or 0.0,
            **kwargs,
        )
    # Through the module attribute, so that tests can stand in for optimal().
    return allocation.optimal(
        preset,
        args.compute,
        unique_tokens=args.unique_tokens,
        max_epochs=args.max_epochs,
        inference_tokens=args.inference_tokens,
        target_loss=args.target_loss,
        quality=args.quality,
        experts=args.experts,
        max_experts=args.max_experts,
        memory_gb=args.memory_gb,
        devices=args.devices if args.memory_gb is not None else 1.0,
        precision=args.precision,
    )


def _scenario_row(args, preset: laws.Preset) -> dict:
    """``optimal``'s JSON: the allocation's row and the scenario that set it."""
    r = _allocate(args, preset)
    dc = preset.family.name == laws.data_constrained.FAMILY.name
    out = data_row(preset, r, args.unique_tokens if dc else None)
    if dc and args.max_epochs is not None:
        out["max_epochs"] = args.max_epochs
    for key in ("target_loss", "inference_tokens"):
        if getattr(args, key) is not None:
            out[key] = getattr(args, key)
    if args.input_tokens is not None or args.output_tokens is not None:
        out["input_tokens"] = args.input_tokens or 0.0
        out["output_tokens"] = args.output_tokens or 0.0
    if r.n_total_params is not None and args.memory_gb is not None:
        out["memory_gb"] = args.memory_gb
        out["devices"] = args.devices
    for key in ("quality", "precision"):
        if getattr(args, key) is not None:
            out[key] = getattr(args, key)
    return out


def cmd_optimal(args) -> dict:
    if args.compute is not None and args.target_loss is not None:
        raise CLIError(
            "give --compute (a budget) or --target-loss (a quality target), not both"
        )
    default = args.compute is None and args.target_loss is None
    if default:
        args.compute = options.DEFAULT_COMPUTE
    preset = laws.get(args.law)
    out = _scenario_row(args, preset)
    out["citation"] = preset.citation
    out["rules_of_thumb"] = rules_of_thumb(out["compute_flops"])
    if not args.json:
        _print_optimal(out, preset, default)
    return out


def _print_optimal(out: dict, preset: laws.Preset, default: bool) -> None:
    budget = " (default budget)" if default else ""
    print(f"Compute-optimal allocation under {preset.name}{budget}")
    rows = [
        ("compute", f"{out['compute_flops']:.3g} FLOPs"),
        ("parameters", fmt(out["n_params"], "params")),
        ("tokens", fmt(out["n_tokens"], "tokens")),
        ("tokens/param", f"{out['tokens_per_param']:.3g}"),
        ("loss", f"{out['loss']:.4f} nats/token"),
        ("status", out["status"]),
    ]
    if "epochs" in out:
        rows.insert(4, ("epochs", f"{out['epochs']:.3g}"))
    if "n_total_params" in out:
        rows[1] = ("active parameters", fmt(out["n_active_params"], "params"))
        rows.insert(2, ("total parameters", fmt(out["n_total_params"], "params")))
        rows.insert(3, ("experts", f"{out['experts']:.3g}"))
        if "granularity" in out:
            rows.insert(4, ("granularity", f"{out['granularity']:.3g}"))
        rows.insert(-1, ("memory", f"{out['memory_bytes'] / 1e9:.4g} GB"))
    if "bits" in out:
        rows.insert(-1, ("training precision", f"{out['bits']:.3g} bits"))
    if "effective_tokens" in out:
        rows.insert(-1, ("effective tokens", fmt(out["effective_tokens"], "tokens")))
    for key, label in (
        ("lifetime_flops", "lifetime FLOPs"),
        ("inference_flops", "inference FLOPs"),
        ("cost_usd", "lifetime cost ($)"),
    ):
        if out.get(key) is not None:
            rows.insert(-1, (label, f"{out[key]:.4g}"))
    print_table(rows)
    print(f"source: {preset.citation}")
    r20 = out["rules_of_thumb"]["tokens_per_param_20"]
    rk = out["rules_of_thumb"]["kaplan2020_frontier"]
    print(
        "rules of thumb (not fits): 20 tokens/param -> "
        f"{fmt(r20['n_params'], 'params')} params; Kaplan 2020 frontier -> "
        f"{fmt(rk['n_params'], 'params')} params"
    )


def cmd_budget(args) -> dict:
    if (args.days is None) == (args.hours is None):
        raise CLIError("give exactly one of --days or --hours")
    b = accounting.budget(
        args.hardware,
        args.count,
        hours=args.hours,
        days=args.days,
        mfu=args.mfu,
        precision=args.precision,
        price_per_device_hour=args.price,
        pue=args.pue,
    )
    hours = args.hours if args.hours is not None else 24.0 * args.days
    out = {
        "hardware": args.hardware,
        "count": args.count,
        "hours": hours,
        "mfu": args.mfu,
        "precision": args.precision,
        "pue": args.pue,
        "gpu_hours": json_float(b.device_hours),
        "energy_joules": json_float(b.energy_joules),
        "energy_kwh": json_float(b.energy_kwh),
        "cost_usd": json_float(b.cost_usd),
    }
    preset = laws.get(args.law)
    r = allocation.optimal(
        preset, float(b.compute_flops), unique_tokens=args.unique_tokens
    )
    out.update(data_row(preset, r, args.unique_tokens))
    if not args.json:
        print(
            f"{args.count} x {args.hardware} for {hours:g} h at MFU {args.mfu:g} "
            f"({args.precision}), PUE {args.pue:g}"
        )
        cost = out["cost_usd"]
        print_table(
            [
                ("compute", f"{out['compute_flops']:.3g} FLOPs"),
                ("GPU-hours", f"{out['gpu_hours']:.4g}"),
                ("energy", f"{out['energy_kwh']:.4g} kWh"),
                ("cost", "n/a (give --price)" if cost is None else f"${cost:,.0f}"),
                (f"plan ({preset.name})", ""),
                ("  parameters", fmt(out["n_params"], "params")),
                ("  tokens", fmt(out["n_tokens"], "tokens")),
                ("  tokens/param", f"{out['tokens_per_param']:.3g}"),
                ("  loss", f"{out['loss']:.4f} nats/token"),
            ]
        )
    return out


def register_optimal(sub) -> argparse.ArgumentParser:
    p = options.subcommand(
        sub,
        "optimal",
        "compute-optimal N and D for a FLOP budget",
        status=True,
    )
    options.add_law(p)
    number = options.NUMBER  # the library checks the ranges and names the input
    p.add_argument(
        "--compute",
        type=number,
        default=None,
        help=f"training FLOPs C (default {options.DEFAULT_COMPUTE:g})",
    )
    p.add_argument("--unique-tokens", type=number, help="unique tokens U available")
    p.add_argument(
        "--max-epochs", type=number, help="at most this many passes over U (D <= eU)"
    )
    p.add_argument(
        "--inference-tokens",
        type=number,
        help="lifetime inference tokens: --compute becomes the lifetime budget "
        "6ND + 2N*T, or with --target-loss, minimize it",
    )
    p.add_argument(
        "--target-loss",
        type=number,
        help="reach this loss at the least lifetime FLOPs (or cost); no --compute",
    )
    p.add_argument("--input-tokens", type=number, help="lifetime prefill tokens (cost)")
    p.add_argument("--output-tokens", type=number, help="lifetime decode tokens (cost)")
    hw, prec = options.HARDWARE, options.PRECISION
    p.add_argument(
        "--train-gpu",
        "--train-hardware",
        dest="train_hardware",
        type=hw,
        help=f"training hardware (h100-sxm): {options.HARDWARE_NAMES}",
    )
    p.add_argument("--train-precision", type=prec, help="training dtype (bf16)")
    # The cost model checks MFU and prices under inner names (mfu, price): the
    # ranges are checked here, so that the error names the flag.
    fraction, positive = options.FRACTION, options.POSITIVE
    p.add_argument("--train-mfu", type=fraction, help="training MFU (0.5)")
    p.add_argument("--train-price", type=positive, help="$ per training GPU-hour (2)")
    p.add_argument(
        "--inference-gpu",
        "--inference-hardware",
        dest="inference_hardware",
        type=hw,
        help=f"inference hardware (h100-sxm): {options.HARDWARE_NAMES}",
    )
    p.add_argument("--inference-precision", type=prec, help="inference dtype (fp8)")
    p.add_argument("--prefill-mfu", type=fraction, help="prefill MFU (0.5)")
    p.add_argument("--decode-mfu", type=fraction, help="decode MFU (0.01)")
    p.add_argument(
        "--inference-price", type=positive, help="$ per inference GPU-hour (2)"
    )
    p.add_argument(
        "--quality",
        type=number,
        help="each training token is worth this many reference tokens (filtered "
        "data > 1)",
    )
    p.add_argument("--experts", type=number, help="fix MoE experts E")
    p.add_argument("--max-experts", type=number, help="bound MoE experts")
    p.add_argument(
        "--memory-gb",
        type=number,
        help="MoE: accelerator memory per device (GB) for weights plus KV cache",
    )
    p.add_argument(
        "--devices",
        type=options.POSITIVE,  # read only with --memory-gb: checked here
        default=1.0,
        help="MoE: devices holding the model",
    )
    p.add_argument(
        "--precision",
        help="precision law: training precision (a name such as fp8, a number of "
        "bits, 'auto' for continuous bits, or 'menu' for the best of bf16/fp8/int4); "
        "MoE laws: number format of weights and KV cache (default bf16)",
    )
    p.set_defaults(func=cmd_optimal)
    return p


def register_budget(sub) -> argparse.ArgumentParser:
    p = options.subcommand(
        sub,
        "budget",
        "GPUs and time to FLOPs, energy, cost and plan",
        status=True,
    )
    options.add_law(p)
    options.add_hardware(p)
    p.add_argument("--count", type=options.COUNT, default=1, help="number of devices")
    p.add_argument("--days", type=options.NUMBER, help="wall-clock days")
    p.add_argument("--hours", type=options.NUMBER, help="wall-clock hours")
    options.add_accounting(p, "$ per device-hour")
    p.set_defaults(func=cmd_budget)
    return p
