"""``jscale isoflop``: isoFLOP slices and minima under a law, and Approach 2 on a law's
slices or on measured runs (``--data``)."""

from __future__ import annotations

import argparse

import jax
import numpy as np

from ... import _status, isoflop, laws
from .. import parser as options
from ..checks import CLIError, pairs
from ..rows import fmt, json_float

#: Hoffmann 2022 Sec. 3.2 (Approach 2): the nine isoFLOP budgets, 6e18 ... 3e21 FLOPs.
HOFFMANN_BUDGETS = (6e18, 1e19, 3e19, 6e19, 1e20, 3e20, 6e20, 1e21, 3e21)


def _approach2_json(r) -> dict:
    """The exponents and coefficients of an Approach 2 fit."""
    return {
        "a": json_float(r.a),
        "b": json_float(r.b),
        "k_n": json_float(np.exp(r.log_k_n)),
        "k_d": json_float(np.exp(r.log_k_d)),
    }


def _isoflop_data(args) -> dict:
    """``jscale isoflop --data FILE``: Approach 2 on measured isoFLOP runs."""
    from ... import fitting  # the CSV reader and its checks

    if args.compute:
        raise CLIError(
            "give --data (measured runs) or --compute (budgets under a law), not both"
        )
    columns = pairs(args.column, "--column")
    where = pairs(args.where, "--where")
    values, _ = fitting.read_columns(
        args.data,
        ("compute_flops", "n_params", "loss"),
        columns=columns,
        where=where,
        substitutes={"compute_flops": ("n_params", "n_tokens")},
        purpose="Approach 2",
        hint=" (n_tokens may stand in for compute_flops: C = 6 N D)",
    )
    if "compute_flops" not in values:
        values["compute_flops"] = 6.0 * values["n_params"] * values.pop("n_tokens")
    runs = isoflop.group_runs(
        values["compute_flops"], values["n_params"], values["loss"], window=args.window
    )
    r = isoflop.approach2(runs.compute_flops, runs.n_params, runs.loss, runs.mask)
    out = {
        "file": str(args.data),
        "where": where,
        "window": args.window,
        "runs": int(runs.mask.size - np.sum(runs.rows < 0)),
        "fitted_runs": int(np.sum(runs.mask)),
        "budgets": [],
        **_approach2_json(r),
        "num_budgets": int(r.num_budgets),
        "note": "parabola in log N per budget (weighted least squares), then "
        "N_opt = k_n C^a and D_opt = k_d C^b across budgets (Hoffmann 2022 Sec. 3.2)",
    }
    for i, c in enumerate(runs.compute_flops):
        out["budgets"].append(
            {
                "compute_flops": float(c),
                "runs": int(np.sum(runs.rows[i] >= 0)),
                "fitted_runs": int(np.sum(runs.mask[i])),
                "valid": bool(r.valid[i]),
                "extrapolated": bool(r.extrapolated[i]),
                "n_params_opt": json_float(r.n_opt[i]),
                "n_tokens_opt": json_float(r.d_opt[i]),
                "loss_opt": json_float(r.loss_opt[i]),
            }
        )
    if args.bootstrap:
        bs = isoflop.approach2_bootstrap(
            jax.random.key(args.seed),
            runs.compute_flops,
            runs.n_params,
            runs.loss,
            runs.mask,
            num_draws=max(args.bootstrap, 2),
            confidence=args.confidence,
        )
        out["stderr"] = {"a": json_float(bs.stderr_a), "b": json_float(bs.stderr_b)}
        out["intervals"] = {
            "a": [json_float(bs.low_a), json_float(bs.high_a)],
            "b": [json_float(bs.low_b), json_float(bs.high_b)],
        }
        out["bootstrap"] = {
            "resamples": int(bs.a.shape[0]),
            "valid": int(np.sum(bs.valid)),
            "confidence": args.confidence,
            "seed": args.seed,
            "method": "runs resampled with replacement within each budget",
        }
    if not args.json:
        _print_data(args, out)
    return out


def _print_data(args, out: dict) -> None:
    print(
        f"Approach 2 on {out['fitted_runs']} of {out['runs']} runs in {args.data}"
        + (f" (window {args.window:g} decades)" if args.window else "")
    )
    print(f"{'compute':>10}  {'runs':>4}  {'N_opt':>8}  {'D_opt':>8}  {'loss':>7}")
    for b in out["budgets"]:
        n_opt = fmt(b["n_params_opt"], "params") if b["valid"] else "-"
        d_opt = fmt(b["n_tokens_opt"], "tokens") if b["valid"] else "-"
        loss = f"{b['loss_opt']:.4f}" if b["valid"] else "-"
        flag = "  (vertex outside the fitted sizes)" if b["extrapolated"] else ""
        print(
            f"{b['compute_flops']:>10.3g}  {b['fitted_runs']:>4}  {n_opt:>8}  "
            f"{d_opt:>8}  {loss:>7}{flag}"
        )
    for name in ("a", "b"):
        text = f"{out[name]:.4f}" if out[name] is not None else "nan"
        if "stderr" in out and out["stderr"][name] is not None:
            lo, hi = out["intervals"][name]
            text += (
                f"  (se {out['stderr'][name]:.3g}; "
                f"{100 * args.confidence:g}% interval {lo:.4f} .. {hi:.4f})"
            )
        what = "N_opt" if name == "a" else "D_opt"
        print(f"{what} ~ C^{name}: {name} = {text}")


def cmd_isoflop(args) -> dict:
    if args.data is not None:
        return _isoflop_data(args)
    if args.bootstrap or args.window is not None or args.where or args.column:
        raise CLIError("--bootstrap, --window, --where and --column need --data")
    preset = laws.get(args.law)
    if preset.family.inputs[:2] != ("n_params", "n_tokens"):
        raise CLIError(f"--law {preset.name!r} does not take (N, D)")
    budgets = np.asarray(args.compute if args.compute else HOFFMANN_BUDGETS, float)
    extra = ()
    if "unique_tokens" in preset.family.inputs:
        if args.unique_tokens is None:
            raise CLIError(f"law {preset.name!r} needs --unique-tokens")
        extra = (args.unique_tokens,)
    elif args.unique_tokens is not None:
        raise CLIError(f"law {preset.name!r} does not take --unique-tokens")
    law = preset.family.loss
    minimum = isoflop.isoflop_minimum(law, preset.params, budgets, *extra)
    offsets = np.linspace(-args.span / 2, args.span / 2, args.points)
    n = np.asarray(minimum.n_params)[:, None] * 10.0 ** offsets[None, :]
    s = isoflop.isoflop_slice(law, preset.params, budgets[:, None], n, *extra)
    out = {"law": preset.name, "budgets": []}
    for i, c in enumerate(budgets):
        out["budgets"].append(
            {
                "compute_flops": float(c),
                "n_params_opt": json_float(minimum.n_params[i]),
                "n_tokens_opt": json_float(minimum.n_tokens[i]),
                "loss_opt": json_float(minimum.loss[i]),
                **_status.as_json(minimum.status[i]),
                "slice": {
                    "n_params": [json_float(v) for v in s.n_params[i]],
                    "n_tokens": [json_float(v) for v in s.n_tokens[i]],
                    "loss": [json_float(v) for v in s.loss[i]],
                },
            }
        )
    if len(budgets) >= 2 and len(set(budgets.tolist())) == len(budgets):
        out["approach2"] = {
            **_approach2_json(isoflop.approach2(budgets, s.n_params, s.loss)),
            "note": "parabola in log N per budget, then power laws across budgets "
            "(Hoffmann 2022 Sec. 3.2)",
        }
    if not args.json:
        print(f"isoFLOP minima under {preset.name}")
        print(f"{'compute':>10}  {'N_opt':>8}  {'D_opt':>8}  {'loss':>7}")
        for b in out["budgets"]:
            print(
                f"{b['compute_flops']:>10.3g}  {fmt(b['n_params_opt'], 'params'):>8}  "
                f"{fmt(b['n_tokens_opt'], 'tokens'):>8}  {b['loss_opt']:>7.4f}"
            )
        if "approach2" in out:
            print(
                f"Approach 2: N_opt ~ C^{out['approach2']['a']:.4f}, "
                f"D_opt ~ C^{out['approach2']['b']:.4f}"
            )
    return out


def register(sub) -> argparse.ArgumentParser:
    p = options.subcommand(sub, "isoflop", "isoFLOP slices, minima and Approach 2")
    options.add_law(p)
    positive = options.POSITIVE
    p.add_argument(
        "--compute",
        type=positive,
        nargs="+",
        help="budgets in FLOPs (default: Hoffmann 2022's nine, 6e18 ... 3e21)",
    )
    p.add_argument(
        "--points", type=options.count(3), default=15, help="points per slice (>= 3)"
    )
    p.add_argument(
        "--span", type=positive, default=1.0, help="decades of N per slice (centred)"
    )
    p.add_argument("--unique-tokens", type=positive, help="unique tokens U available")
    p.add_argument(
        "--data",
        metavar="FILE",
        help="Approach 2 on measured runs instead of a law: a CSV with columns "
        "compute_flops (or n_tokens), n_params, loss",
    )
    p.add_argument(
        "--column",
        action="append",
        metavar="INPUT=COLUMN",
        help="with --data: read an input from another column, e.g. compute_flops=C",
    )
    p.add_argument(
        "--where",
        action="append",
        metavar="COLUMN=VALUE",
        help="with --data: only the rows whose COLUMN equals VALUE (repeatable)",
    )
    p.add_argument(
        "--window",
        type=positive,
        help="with --data: fit each budget's parabola only to runs within this many "
        "decades of N of its lowest-loss run (default: all runs)",
    )
    p.add_argument(
        "--bootstrap",
        type=options.COUNT,
        metavar="K",
        help="with --data: K resamples of the runs within budgets (intervals on a, b)",
    )
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    options.add_confidence(p)
    p.set_defaults(func=cmd_isoflop)
    return p
