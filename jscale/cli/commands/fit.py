"""``jscale fit``: fit a law family to runs in a CSV (Approach 3), with a bootstrap."""

from __future__ import annotations

import argparse

import jax

from ... import _status
from .. import parser as options
from ..checks import CLIError, choice, pairs, parse_number
from ..rows import json_float, print_table

#: ``jscale fit --law`` choices: the families of ``jscale.fitting.MODELS``.
FIT_LAWS = {
    "chinchilla": "E + A/N^alpha + B/D^beta (Hoffmann 2022)",
    "kaplan": "Kaplan 2020 L(N, D)",
    "data-constrained": "Muennighoff 2023 (needs unique_tokens)",
    "bnsl": "Caballero 2022, one break (input x)",
    "moe": "Clark 2022 routed law (inputs n_active_params, experts)",
}


def _fit_options(args) -> dict:
    """The objective and the constraints on the parameters, from the options."""
    freeze = {
        k: parse_number(v, "--freeze")
        for k, v in pairs(args.freeze, "--freeze").items()
    }
    bounds = {}
    for name, text in pairs(args.bound, "--bound").items():
        lo, sep, hi = text.partition(":")
        if not sep:
            raise CLIError(f"--bound expects NAME=LOW:HIGH, got {text!r}")
        bounds[name] = (
            parse_number(lo, "--bound") if lo else None,
            parse_number(hi, "--bound") if hi else None,
        )
    tie = [tuple(t.split("=")) for t in args.tie or ()]
    if any(len(t) < 2 or not all(t) for t in tie):
        raise CLIError("--tie expects NAME=NAME[=NAME...]")
    return dict(
        objective=args.objective,
        delta=args.delta,
        freeze=freeze,
        tie=tie,
        bounds=bounds,
    )


def cmd_fit(args) -> dict:
    from ... import fitting  # imported here: the other commands do not need it

    columns = pairs(args.column, "--column")
    fit_options = _fit_options(args)
    starts = None
    if args.start:
        starts = [
            [parse_number(v, "--start") for v in s.split(",")] for s in args.start
        ]
    where = pairs(args.where, "--where")
    obs = fitting.observations(args.file, args.law, columns=columns, where=where)
    result = fitting.fit(obs, args.law, starts=starts, **fit_options)
    out = {
        "law": args.law,
        "file": str(args.file),
        "where": where,
        "observations": int(obs.loss.shape[0]),
        "params": {k: json_float(v) for k, v in fitting.named(result).items()},
        "objective": json_float(result.objective),
        **_status.as_json(result.status),
        "decrement": json_float(result.decrement),
        "starts": _status.counts(result.starts.status),
        "settings": result.settings,
    }
    if args.objective == "ml":
        out["scale"] = json_float(result.scale)
    if args.bootstrap:
        boot = fitting.bootstrap(
            jax.random.key(args.seed),
            obs,
            args.law,
            num_draws=args.bootstrap,
            init=result,
            confidence=args.confidence,
            **fit_options,
        )
        low, high = fitting.named(boot, "low"), fitting.named(boot, "high")
        stderr = fitting.named(boot, "stderr")
        out["stderr"] = {k: json_float(v) for k, v in stderr.items()}
        out["intervals"] = {k: [json_float(low[k]), json_float(high[k])] for k in low}
        out["bootstrap"] = {
            "resamples": args.bootstrap,
            "confidence": args.confidence,
            "seed": args.seed,
            "status": _status.counts(boot.fits.status),
        }
    if not args.json:
        _print_fit(args, out)
    return out


def _print_fit(args, out: dict) -> None:
    print(
        f"{args.law} fit to {out['observations']} runs in {args.file} "
        f"({args.objective}, delta={args.delta:g})"
    )
    rows = []
    for name, value in out["params"].items():
        text = f"{value:.6g}"
        if "stderr" in out:
            lo, hi = out["intervals"][name]
            text += (
                f"  (se {out['stderr'][name]:.3g}; "
                f"{100 * args.confidence:g}% interval {lo:.4g} .. {hi:.4g})"
            )
        rows.append((name, text))
    rows.append(("objective", f"{out['objective']:.10g}"))
    rows.append(("status", f"{out['status']} (decrement {out['decrement']:.2g})"))
    rows.append(("starts", ", ".join(f"{k} {v}" for k, v in out["starts"].items())))
    if "bootstrap" in out:
        b = out["bootstrap"]["status"]
        rows.append(("bootstrap", ", ".join(f"{k} {v}" for k, v in b.items())))
    print_table(rows)


def register(sub) -> argparse.ArgumentParser:
    p = options.subcommand(
        sub,
        "fit",
        "fit a law family to runs in a CSV (Approach 3)",
        status=True,
    )
    p.add_argument(
        "file",
        help="CSV with columns n_params, n_tokens (or compute_flops), loss "
        "(and unique_tokens / x / n_active_params, experts where the family needs "
        "them)",
    )
    p.add_argument(
        "--law",
        type=choice("law family", FIT_LAWS),
        default="chinchilla",
        help="family to fit (default chinchilla): "
        + "; ".join(f"{k}: {v}" for k, v in FIT_LAWS.items()),
    )
    p.add_argument(
        "--where",
        action="append",
        metavar="COLUMN=VALUE",
        help="fit only the rows whose COLUMN equals VALUE (repeatable)",
    )
    p.add_argument(
        "--bootstrap", type=options.COUNT, metavar="K", help="bootstrap resamples"
    )
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    options.add_confidence(p)
    p.add_argument("--objective", choices=("huber", "ml"), default="huber")
    p.add_argument(
        "--delta",
        type=options.POSITIVE,
        default=1e-3,
        help="Huber threshold on log residuals (default 1e-3; 1 gives least "
        "squares, as Clark 2022 fitted)",
    )
    p.add_argument(
        "--column",
        action="append",
        metavar="INPUT=COLUMN",
        help="read an input from another column, e.g. n_params=N",
    )
    p.add_argument("--freeze", action="append", metavar="NAME=VALUE")
    p.add_argument(
        "--tie", action="append", metavar="NAME=NAME", help="e.g. alpha=beta"
    )
    p.add_argument("--bound", action="append", metavar="NAME=LOW:HIGH")
    p.add_argument(
        "--start",
        action="append",
        metavar="C1,C2,...",
        help="a start in fitted coordinates (default: the family's grid)",
    )
    p.set_defaults(func=cmd_fit)
    return p
