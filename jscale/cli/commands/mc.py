"""``jscale mc``: a law's parameter uncertainty propagated to the compute-optimal plan
(Monte Carlo: quantiles, moments, exceedance probabilities, Sobol indices)."""

from __future__ import annotations

import argparse
import json

import jax
import numpy as np

from ... import allocation, laws
from ...laws import chinchilla
from .. import parser as options
from ..checks import CLIError
from ..rows import fmt, json_float, print_columns

#: ``jscale mc`` defaults: the preset with a published parameter uncertainty.
MC_DEFAULT_LAW = "chinchilla-besiroglu2024"
#: The plan's outputs: name (a field of the allocation's row), label, unit.
OUTPUTS = (
    ("n_params", "parameters", "params"),
    ("n_tokens", "tokens", "tokens"),
    ("tokens_per_param", "tokens/param", ""),
    ("loss", "loss", ""),
)
OUTPUT_NAMES = tuple(name for name, _, _ in OUTPUTS)


def _thresholds(items) -> dict[str, list[float]]:
    """``--exceed OUTPUT=VALUE`` options by output."""
    thresholds: dict[str, list[float]] = {}
    for item in items or ():
        name, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not name or not value:
            raise CLIError(f"--exceed expects OUTPUT=VALUE, got {item!r}")
        if name not in OUTPUT_NAMES:
            raise CLIError(
                f"--exceed: unknown output {name!r}; valid: {', '.join(OUTPUT_NAMES)}"
            )
        try:
            thresholds.setdefault(name, []).append(float(value))
        except ValueError:
            raise CLIError(f"--exceed: expected a number, got {value!r}") from None
    return thresholds


def _described(args, dist) -> dict:
    """The distribution of the parameters, for the record."""
    if args.log_sd is not None:
        return {
            "kind": "independent log-normals centred (median) on the preset",
            "log_sd": args.log_sd,
        }
    coords = ", ".join(c.replace("_", " ") for c in chinchilla.PARAMS_COORDS)
    return {
        "kind": f"multivariate normal in ({coords}), centred on the preset",
        "covariance": [
            [float(f"{v:.7g}") for v in row]
            for row in chinchilla.besiroglu2024_covariance(chinchilla.PARAMS_COORDS)
        ],
        "source": "Besiroglu et al. 2024 (arXiv:2404.10102): their 4000 "
        "bootstrap resamples refitted (jscale.laws.chinchilla."
        "BESIROGLU2024_COVARIANCE)",
    }


def _sobol(args, plan, dist) -> dict:
    """First-order and total Sobol indices, the inputs taken independent."""
    from ... import montecarlo

    sd = np.sqrt(np.diag(np.asarray(dist.scale_tril @ dist.scale_tril.T)))
    marginals = montecarlo.MultivariateNormal.from_sd(dist.center, sd, dist.log)
    sob = montecarlo.sobol(jax.random.key(args.seed + 1), plan, marginals, args.sobol)
    return {
        "note": "Jansen estimators (Saltelli et al. 2010); inputs taken as "
        "independent with the marginal spreads above (Sobol indices need "
        "independent inputs, so the fit's correlations are dropped)",
        "num_samples": sob.num_draws,
        "inputs": list(sob.names),
        "first_order": {
            o: dict(zip(sob.names, map(json_float, sob.first_order[j]), strict=True))
            for j, o in enumerate(sob.outputs)
        },
        "total": {
            o: dict(zip(sob.names, map(json_float, sob.total[j]), strict=True))
            for j, o in enumerate(sob.outputs)
        },
    }


def cmd_mc(args) -> dict:
    """Parameter uncertainty propagated to the compute-optimal plan (Monte Carlo)."""
    from ... import montecarlo

    if args.resume and not args.checkpoint:
        raise CLIError("--resume needs --checkpoint DIR")
    preset = laws.get(args.law)
    try:
        dist = montecarlo.law_uncertainty(preset, log_sd=args.log_sd)
    except ValueError as e:
        raise CLIError(f"--law: {e}") from None
    scenario = {
        "unique_tokens": args.unique_tokens,
        "inference_tokens": args.inference_tokens,
    }
    compute = args.compute
    # The plan at the central estimate; it also validates the scenario.
    center = allocation.to_row(allocation.optimal(preset, compute, **scenario))
    thresholds = _thresholds(args.exceed)

    def plan(params):
        r = allocation.optimal(preset._replace(params=params), compute, **scenario)
        return {name: getattr(r, name) for name in OUTPUT_NAMES}

    setup = {
        "command": "jscale mc",
        "law": preset.name,
        "compute_flops": compute,
        **scenario,
        "log_sd": args.log_sd,
    }
    result = montecarlo.propagate(
        jax.random.key(args.seed),
        plan,
        dist,
        args.num_draws,
        chunk_size=args.chunk_size,
        quantiles=args.quantiles,
        thresholds=thresholds or None,
        bins=args.bins,
        checkpoint=args.checkpoint,
        config=setup,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        description="jscale mc",
    )
    out = {
        "law": preset.name,
        "compute_flops": compute,
        **{k: v for k, v in scenario.items() if v is not None},
        "draws": args.num_draws,
        "seed": args.seed,
        "chunk_size": result.chunk_size,
        "distribution": _described(args, dist),
        "point_estimate": {name: center[name] for name in OUTPUT_NAMES},
        "outputs": {
            name: montecarlo.summary_dict(result.summaries[name])
            for name in OUTPUT_NAMES
        },
        "flagged_draws": result.summaries["n_params"].nonfinite,
    }
    if args.sobol:
        out["sobol"] = _sobol(args, plan, dist)
    if args.out:
        try:
            with open(args.out, "w") as f:
                f.write(json.dumps(out, allow_nan=False) + "\n")
        except OSError as e:
            raise CLIError(f"--out: {e}") from None
    if not args.json:
        _print_mc(args, out, result.summaries)
    return out


def _print_mc(args, out: dict, summaries) -> None:
    qs = list(summaries["n_params"].quantiles)
    print(
        f"Monte Carlo over the parameter uncertainty of {out['law']}: "
        f"{args.num_draws:,} draws, compute-optimal plan at {args.compute:.3g} FLOPs"
    )
    table = [("", *(f"p{100 * q:g}" for q in qs), "mean", "std")]
    for name, label, unit in OUTPUTS:
        s = summaries[name]
        cells = [s.quantiles[q] for q in qs] + [s.mean, s.std]
        table.append((label, *(fmt(c, unit) for c in cells)))
    print_columns(table, align=">")
    pe = out["point_estimate"]
    print(
        f"at the central estimate: {fmt(pe['n_params'], 'params')} parameters, "
        f"{fmt(pe['n_tokens'], 'tokens')} tokens, loss {pe['loss']:.4f}"
    )
    for name, probs in out["outputs"].items():
        for t, prob in probs["exceedance"].items():
            print(f"P({name} > {t}) = {prob:.4g}")
    if out["flagged_draws"]:
        print(f"flagged draws (no valid plan): {out['flagged_draws']}")
    if "sobol" in out:
        sobol = out["sobol"]
        print("Sobol indices (first order / total; inputs taken independent):")
        for o in sobol["first_order"]:
            pairs = ", ".join(
                f"{n} {sobol['first_order'][o][n]:.2f}/{sobol['total'][o][n]:.2f}"
                for n in sobol["inputs"]
            )
            print(f"  {o}: {pairs}")
    if args.out:
        print(f"wrote {args.out}")


def register(sub) -> argparse.ArgumentParser:
    p = options.subcommand(
        sub,
        "mc",
        "Monte Carlo: a law's parameter uncertainty propagated to the "
        "compute-optimal plan (quantiles, moments, Sobol indices)",
    )
    options.add_law(
        p,
        MC_DEFAULT_LAW,
        help=f"law preset (default {MC_DEFAULT_LAW}, whose bootstrap covariance is "
        "the default distribution; other presets need --log-sd)",
    )
    number = options.NUMBER  # allocation.optimal checks these (and names them)
    p.add_argument(
        "--compute",
        type=number,
        default=options.DEFAULT_COMPUTE,
        help=f"training FLOPs C (default {options.DEFAULT_COMPUTE:g})",
    )
    p.add_argument(
        "--draws",
        dest="num_draws",
        metavar="DRAWS",
        type=options.COUNT,
        default=1_000_000,
        help="draws (default 1e6)",
    )
    p.add_argument(
        "--chunk-size",
        type=options.COUNT,
        default=1 << 18,
        help="draws per chunk, a multiple of 1024 (default 262144); results do "
        "not depend on it",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--quantiles",
        type=number,
        nargs="+",
        default=[0.05, 0.5, 0.95],
        help="probabilities to report, in [0, 1] (default 0.05 0.5 0.95)",
    )
    p.add_argument(
        "--exceed",
        action="append",
        metavar="OUTPUT=VALUE",
        help="report P(OUTPUT > VALUE), e.g. loss=1.95 (repeatable)",
    )
    p.add_argument(
        "--log-sd",
        type=options.POSITIVE,
        help="independent log-normal spread of every parameter (sd of its log) "
        "instead of the preset's published uncertainty",
    )
    p.add_argument("--unique-tokens", type=number, help="unique tokens U available")
    p.add_argument(
        "--inference-tokens",
        type=number,
        help="lifetime inference tokens: --compute becomes the lifetime budget",
    )
    p.add_argument(
        "--bins", type=options.COUNT, default=8192, help="histogram bins (8192)"
    )
    p.add_argument(
        "--sobol",
        type=options.COUNT,
        metavar="N",
        help="also Sobol indices of each output from N (d + 2) evaluations",
    )
    p.add_argument("--out", metavar="FILE", help="also write the JSON result here")
    options.add_run_options(p)
    p.set_defaults(func=cmd_mc)
    return p
