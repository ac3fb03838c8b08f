"""Command-line interface: ``jscale laws | loss | optimal | budget | isoflop``.

Every command takes ``--json`` and then prints exactly one JSON object. Bad input is
reported as one line on stderr naming the option and the valid range, with exit
code 2. The CLI is an application, so it computes in float64 (scoped with
``jax.enable_x64``; the library itself never changes the setting).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence

import jax
import numpy as np

from . import __version__, accounting, allocation, isoflop, laws

DEFAULT_LAW = "chinchilla-hoffmann2022"
DEFAULT_COMPUTE = 1e24
#: Hoffmann 2022 Sec. 3.2 (Approach 2): the nine isoFLOP budgets, 6e18 ... 3e21 FLOPs.
HOFFMANN_BUDGETS = (6e18, 1e19, 3e19, 6e19, 1e20, 3e20, 6e20, 1e21, 3e21)


class CLIError(Exception):
    """A user error to report on one line with exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage block
        raise CLIError(f"{self.prog}: error: {message}")


def _number(lower: float | None = 0.0, *, inclusive: bool = False, upper=None):
    """An argparse type: a finite float in a range, with a message naming the range."""
    lo = "-inf" if lower is None else f"{lower:g}"
    hi = "inf" if upper is None else f"{upper:g}"
    rng = f"{'[' if inclusive else '('}{lo}, {hi}{']' if upper is not None else ')'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a number in {rng}, got {text!r}"
            ) from None
        ok = math.isfinite(value)
        if ok and lower is not None:
            ok = value >= lower if inclusive else value > lower
        if ok and upper is not None:
            ok = value <= upper
        if not ok:
            raise argparse.ArgumentTypeError(
                f"must be a finite number in {rng}, got {text}"
            )
        return value

    parse.__name__ = "number"
    return parse


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number >= 1, got {text!r}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text}")
    return value


def _choice(kind: str, valid) -> callable:
    """An argparse type accepting one of ``valid``; the message lists them."""

    def parse(text: str) -> str:
        if text not in valid:
            raise argparse.ArgumentTypeError(
                f"unknown {kind} {text!r}; valid: {', '.join(sorted(valid))}"
            )
        return text

    parse.__name__ = kind
    return parse


_law = _choice("law", laws.PRESETS)
_hardware = _choice("hardware", accounting.HARDWARE)
_precision = _choice("precision", accounting.PRECISIONS)


def _f(x) -> float:
    """A JSON-ready float (NaN/inf become None)."""
    value = float(np.asarray(x))
    return value if math.isfinite(value) else None


def _plan(preset: laws.Preset, compute: float, unique_tokens: float | None) -> dict:
    """The compute-optimal plan for one budget, as a flat dict."""
    try:
        r = allocation.optimal(preset, compute, unique_tokens=unique_tokens)
    except ValueError as e:
        raise CLIError(f"--compute: {e}") from None
    status = int(r.status)
    out = {
        "law": preset.name,
        "compute_flops": _f(r.compute_flops),
        "n_params": _f(r.n_params),
        "n_tokens": _f(r.n_tokens),
        "tokens_per_param": _f(r.tokens_per_param),
        "loss": _f(r.loss),
        "status": allocation.STATUS_MESSAGES[status].split(":")[0],
    }
    if unique_tokens is not None:
        out["unique_tokens"] = unique_tokens
        out["epochs"] = _f(r.n_tokens / unique_tokens)
    return out


def _rules_of_thumb(compute: float) -> dict:
    n20, d20 = allocation.tokens_per_param_rule(compute, 20.0)
    nk, dk = allocation.kaplan_frontier(compute)
    return {
        "tokens_per_param_20": {
            "n_params": _f(n20),
            "n_tokens": _f(d20),
            "note": "rule of thumb D = 20 N read off Hoffmann 2022 Table 3; not a fit",
        },
        "kaplan2020_frontier": {
            "n_params": _f(nk),
            "n_tokens": _f(dk),
            "note": "Kaplan 2020 N = 1.3e9 C^0.73, D = 2e10 C^0.27 (C in PF-days); "
            "N non-embedding; superseded by Hoffmann 2022",
        },
    }


def _fmt(x: float | None, unit: str = "") -> str:
    if x is None:
        return "n/a"
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale and unit in ("params", "tokens"):
            return f"{x / scale:.3g}{suffix}"
    return f"{x:.4g}"


def _print_table(rows: Sequence[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


# ----------------------------------------------------------------------------- commands


def cmd_laws(args) -> dict:
    described = [laws.get(name).describe() for name in laws.names()]
    if args.family:
        described = [d for d in described if d["family"] == args.family]
    if not args.json:
        for d in described:
            params = ", ".join(
                f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}"
                for k, v in d["params"].items()
            )
            print(f"{d['name']}  [{d['family']}]  {d['formula']}")
            print(f"    {params}")
            print(f"    source: {d['citation']}")
            print(f"    units: {d['units']}")
    return {"laws": described}


def _inputs(args, preset: laws.Preset) -> dict[str, float]:
    """Resolve the family's inputs from the options, using C = 6 N D where needed."""
    given = {
        "n_params": args.params,
        "n_tokens": args.tokens,
        "unique_tokens": args.unique_tokens,
        "compute_flops": args.compute,
        "steps": args.steps,
        "x": args.x,
    }
    need = preset.family.inputs
    c, n, d = given["compute_flops"], given["n_params"], given["n_tokens"]
    if c is not None and "compute_flops" not in need:
        if "n_tokens" in need and d is None and n is not None:
            given["n_tokens"] = c / (6.0 * n)
        elif "n_params" in need and n is None and d is not None:
            given["n_params"] = c / (6.0 * d)
        else:
            raise CLIError(
                f"jscale loss: error: --compute applies to law {preset.name!r} only "
                "with exactly one of --params or --tokens (D = C / (6 N))"
            )
    option = {
        "n_params": "--params",
        "n_tokens": "--tokens",
        "unique_tokens": "--unique-tokens",
        "compute_flops": "--compute",
        "steps": "--steps",
        "x": "--x",
    }
    missing = [option[k] for k in need if given[k] is None]
    if missing:
        raise CLIError(
            f"jscale loss: error: law {preset.name!r} needs {', '.join(missing)} "
            f"(inputs: {', '.join(option[k] for k in need)})"
        )
    extra = [option[k] for k, v in given.items() if v is not None and k not in need]
    if extra and not (args.compute is not None and extra == ["--compute"]):
        raise CLIError(
            f"jscale loss: error: law {preset.name!r} does not take {', '.join(extra)}"
        )
    return {k: given[k] for k in need}


def cmd_loss(args) -> dict:
    preset = laws.get(args.law)
    inputs = _inputs(args, preset)
    value = preset.loss(*inputs.values())
    out = {
        "law": preset.name,
        "family": preset.family.name,
        **inputs,
        "loss": _f(value),
    }
    if "n_params" in inputs and "n_tokens" in inputs:
        out["compute_flops"] = 6.0 * inputs["n_params"] * inputs["n_tokens"]
    if not args.json:
        print(f"{preset.name}: {preset.family.formula}")
        _print_table(
            [
                (k, _fmt(v) if isinstance(v, float) else str(v))
                for k, v in out.items()
                if k not in ("law", "family")
            ]
        )
    return out


def cmd_optimal(args) -> dict:
    preset = laws.get(args.law)
    out = _plan(preset, args.compute, args.unique_tokens)
    out["citation"] = preset.citation
    out["rules_of_thumb"] = _rules_of_thumb(args.compute)
    if not args.json:
        default = " (default budget)" if args.compute_was_default else ""
        print(f"Compute-optimal allocation under {preset.name}{default}")
        rows = [
            ("compute", f"{out['compute_flops']:.3g} FLOPs"),
            ("parameters", _fmt(out["n_params"], "params")),
            ("tokens", _fmt(out["n_tokens"], "tokens")),
            ("tokens/param", f"{out['tokens_per_param']:.3g}"),
            ("loss", f"{out['loss']:.4f} nats/token"),
            ("status", out["status"]),
        ]
        if "epochs" in out:
            rows.insert(4, ("epochs", f"{out['epochs']:.3g}"))
        _print_table(rows)
        print(f"source: {preset.citation}")
        r20 = out["rules_of_thumb"]["tokens_per_param_20"]
        rk = out["rules_of_thumb"]["kaplan2020_frontier"]
        print(
            "rules of thumb (not fits): 20 tokens/param -> "
            f"{_fmt(r20['n_params'], 'params')} params; Kaplan 2020 frontier -> "
            f"{_fmt(rk['n_params'], 'params')} params"
        )
    return out


def cmd_budget(args) -> dict:
    if (args.days is None) == (args.hours is None):
        raise CLIError("jscale budget: error: give exactly one of --days or --hours")
    b = accounting.budget(
        args.gpu,
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
        "hardware": args.gpu,
        "count": args.count,
        "hours": hours,
        "mfu": args.mfu,
        "precision": args.precision,
        "pue": args.pue,
        "gpu_hours": _f(b.device_hours),
        "energy_joules": _f(b.energy_joules),
        "energy_kwh": _f(b.energy_kwh),
        "cost_usd": _f(b.cost_usd),
    }
    preset = laws.get(args.law)
    out.update(_plan(preset, float(b.compute_flops), args.unique_tokens))
    if not args.json:
        print(
            f"{args.count} x {args.gpu} for {hours:g} h at MFU {args.mfu:g} "
            f"({args.precision}), PUE {args.pue:g}"
        )
        rows = [
            ("compute", f"{out['compute_flops']:.3g} FLOPs"),
            ("GPU-hours", f"{out['gpu_hours']:.4g}"),
            ("energy", f"{out['energy_kwh']:.4g} kWh"),
            (
                "cost",
                "n/a (give --price)"
                if out["cost_usd"] is None
                else f"${out['cost_usd']:,.0f}",
            ),
            (f"plan ({preset.name})", ""),
            ("  parameters", _fmt(out["n_params"], "params")),
            ("  tokens", _fmt(out["n_tokens"], "tokens")),
            ("  tokens/param", f"{out['tokens_per_param']:.3g}"),
            ("  loss", f"{out['loss']:.4f} nats/token"),
        ]
        _print_table(rows)
    return out


def cmd_isoflop(args) -> dict:
    preset = laws.get(args.law)
    if preset.family.inputs[:2] != ("n_params", "n_tokens"):
        raise CLIError(
            f"jscale isoflop: error: --law {preset.name!r} does not take (N, D)"
        )
    budgets = np.asarray(args.compute if args.compute else HOFFMANN_BUDGETS, float)
    extra = ()
    if "unique_tokens" in preset.family.inputs:
        if args.unique_tokens is None:
            raise CLIError(
                f"jscale isoflop: error: law {preset.name!r} needs --unique-tokens"
            )
        extra = (args.unique_tokens,)
    elif args.unique_tokens is not None:
        raise CLIError(
            f"jscale isoflop: error: law {preset.name!r} does not take --unique-tokens"
        )
    loss_fn = preset.family.loss
    minimum = isoflop.isoflop_minimum(loss_fn, preset.params, budgets, *extra)
    offsets = np.linspace(-args.span / 2, args.span / 2, args.points)
    n = np.asarray(minimum.n_params)[:, None] * 10.0 ** offsets[None, :]
    s = isoflop.isoflop_slice(loss_fn, preset.params, budgets[:, None], n, *extra)
    out = {"law": preset.name, "budgets": []}
    for i, c in enumerate(budgets):
        out["budgets"].append(
            {
                "compute_flops": float(c),
                "n_params_opt": _f(minimum.n_params[i]),
                "n_tokens_opt": _f(minimum.n_tokens[i]),
                "loss_opt": _f(minimum.loss[i]),
                "slice": {
                    "n_params": [_f(v) for v in s.n_params[i]],
                    "n_tokens": [_f(v) for v in s.n_tokens[i]],
                    "loss": [_f(v) for v in s.loss[i]],
                },
            }
        )
    if len(budgets) >= 2 and len(set(budgets.tolist())) == len(budgets):
        a2 = isoflop.approach2(budgets, s.n_params, s.loss)
        out["approach2"] = {
            "a": _f(a2.a),
            "b": _f(a2.b),
            "k_n": _f(np.exp(a2.log_k_n)),
            "k_d": _f(np.exp(a2.log_k_d)),
            "note": "parabola in log N per budget, then power laws across budgets "
            "(Hoffmann 2022 Sec. 3.2)",
        }
    if not args.json:
        print(f"isoFLOP minima under {preset.name}")
        print(f"{'compute':>10}  {'N_opt':>8}  {'D_opt':>8}  {'loss':>7}")
        for b in out["budgets"]:
            print(
                f"{b['compute_flops']:>10.3g}  {_fmt(b['n_params_opt'], 'params'):>8}  "
                f"{_fmt(b['n_tokens_opt'], 'tokens'):>8}  {b['loss_opt']:>7.4f}"
            )
        if "approach2" in out:
            print(
                f"Approach 2: N_opt ~ C^{out['approach2']['a']:.4f}, "
                f"D_opt ~ C^{out['approach2']['b']:.4f}"
            )
    return out


# ------------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="jscale",
        description="Scaling laws for language models: losses, budgets and "
        "compute-optimal allocation.",
    )
    parser.add_argument("--version", action="version", version=f"jscale {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    positive = _number(0.0)

    def common(p, law=True):
        p.add_argument("--json", action="store_true", help="print one JSON object")
        if law:
            p.add_argument(
                "--law",
                type=_law,
                default=DEFAULT_LAW,
                help=f"law preset (default {DEFAULT_LAW}; see `jscale laws`)",
            )

    p = sub.add_parser("laws", help="list the law presets with their citations")
    common(p, law=False)
    p.add_argument("--family", help="only presets of this family")
    p.set_defaults(func=cmd_laws)

    p = sub.add_parser("loss", help="evaluate a law")
    common(p)
    p.add_argument("--params", type=positive, help="parameters N")
    p.add_argument("--tokens", type=positive, help="training tokens D")
    p.add_argument("--unique-tokens", type=positive, help="unique tokens U")
    p.add_argument("--compute", type=positive, help="training FLOPs C (D = C / 6N)")
    p.add_argument("--steps", type=positive, help="optimizer steps S")
    p.add_argument("--x", type=positive, help="the input of a one-input law (BNSL)")
    p.set_defaults(func=cmd_loss)

    p = sub.add_parser("optimal", help="compute-optimal N and D for a FLOP budget")
    common(p)
    p.add_argument(
        "--compute",
        type=positive,
        default=None,
        help=f"training FLOPs C (default {DEFAULT_COMPUTE:g})",
    )
    p.add_argument("--unique-tokens", type=positive, help="unique tokens U available")
    p.set_defaults(func=cmd_optimal)

    p = sub.add_parser("budget", help="GPUs and time to FLOPs, energy, cost and plan")
    common(p)
    p.add_argument("--gpu", type=_hardware, default="h100-sxm", help="hardware preset")
    p.add_argument("--count", type=_count, default=1, help="number of devices")
    p.add_argument("--days", type=positive, help="wall-clock days")
    p.add_argument("--hours", type=positive, help="wall-clock hours")
    p.add_argument(
        "--mfu",
        type=_number(0.0, upper=1.0),
        default=0.4,
        help="model FLOP utilization",
    )
    p.add_argument("--precision", type=_precision, default="bf16")
    p.add_argument("--price", type=positive, help="$ per device-hour")
    p.add_argument("--pue", type=_number(1.0, inclusive=True), default=1.0)
    p.add_argument("--unique-tokens", type=positive, help="unique tokens U available")
    p.set_defaults(func=cmd_budget)

    p = sub.add_parser("isoflop", help="isoFLOP slices, minima and Approach 2")
    common(p)
    p.add_argument(
        "--compute",
        type=positive,
        nargs="+",
        help="budgets in FLOPs (default: Hoffmann 2022's nine, 6e18 ... 3e21)",
    )
    p.add_argument("--points", type=_count, default=15, help="points per slice")
    p.add_argument(
        "--span", type=positive, default=1.0, help="decades of N per slice (centred)"
    )
    p.add_argument("--unique-tokens", type=positive, help="unique tokens U available")
    p.set_defaults(func=cmd_isoflop)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 bad input)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "optimal":
            args.compute_was_default = args.compute is None
            if args.compute is None:
                args.compute = DEFAULT_COMPUTE
        if args.command == "isoflop" and args.points < 3:
            raise CLIError("jscale isoflop: error: argument --points: must be >= 3")
        with jax.enable_x64(True):
            out = args.func(args)
    except CLIError as e:
        print(str(e), file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"jscale {getattr(args, 'command', '')}: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(out, allow_nan=False))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
