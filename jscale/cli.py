"""Command-line interface: ``jscale plan | laws | loss | optimal | budget | ...``.

Every command takes ``--json`` and then prints exactly one JSON object. Bad input is
reported as one line on stderr naming the option and the valid range, with exit
code 2. The CLI is an application, so it computes in float64 (scoped with
``jax.enable_x64``; the library itself never changes the setting).
"""

from __future__ import annotations

import argparse
import inspect
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


def _result(preset: laws.Preset, r: allocation.AllocationResult) -> dict:
    """The keys every plan reports (a public JSON contract)."""
    return {
        "law": preset.name,
        "compute_flops": _f(r.compute_flops),
        "n_params": _f(r.n_params),
        "n_tokens": _f(r.n_tokens),
        "tokens_per_param": _f(r.tokens_per_param),
        "loss": _f(r.loss),
        "status": allocation.STATUS_MESSAGES[int(r.status)].split(":")[0],
    }


def _plan(preset: laws.Preset, compute: float, unique_tokens: float | None) -> dict:
    """The compute-optimal plan for one budget, as a flat dict."""
    try:
        r = allocation.optimal(preset, compute, unique_tokens=unique_tokens)
    except ValueError as e:
        raise CLIError(f"--compute: {e}") from None
    out = _result(preset, r)
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


#: The ``jscale loss`` option for each law input (:data:`jscale.laws.INPUT_NAMES`).
INPUT_OPTIONS = {
    "n_params": ("--params", "parameters N"),
    "n_tokens": ("--tokens", "training tokens D"),
    "unique_tokens": ("--unique-tokens", "unique tokens U"),
    "compute_flops": ("--compute", "training FLOPs C (D = C / 6N)"),
    "steps": ("--steps", "optimizer steps S"),
    "x": ("--x", "the input of a one-input law (BNSL)"),
    "n_active_params": ("--active-params", "active parameters per token (MoE)"),
    "experts": ("--experts", "experts per routed layer E (MoE)"),
    "granularity": ("--granularity", "expert granularity G (fine-grained MoE)"),
    "sparsity": ("--sparsity", "MoE sparsity S = (E - K) / E"),
    "weight_bits": ("--weight-bits", "training precision of weights, bits"),
    "activation_bits": ("--activation-bits", "training precision of activations"),
    "kv_cache_bits": ("--kv-cache-bits", "training precision of the KV cache"),
    "post_train_bits": ("--post-train-bits", "post-training quantization, bits"),
}


def _optional_inputs(preset: laws.Preset) -> set[str]:
    """Inputs of the family's loss that have a default value."""
    signature = inspect.signature(preset.family.loss)
    return {
        name
        for name, param in signature.parameters.items()
        if param.default is not inspect.Parameter.empty
    }


def _inputs(args, preset: laws.Preset) -> dict[str, float]:
    """Resolve the family's inputs from the options, using C = 6 N D where needed."""
    given = {name: getattr(args, name) for name in INPUT_OPTIONS}
    need = preset.family.inputs
    option = {name: flag for name, (flag, _) in INPUT_OPTIONS.items()}
    size = "n_active_params" if "n_active_params" in need else "n_params"
    c, n, d = given["compute_flops"], given[size], given["n_tokens"]
    if c is not None and "compute_flops" not in need:
        if "n_tokens" in need and d is None and n is not None:
            given["n_tokens"] = c / (6.0 * n)
        elif size in need and n is None and d is not None:
            given[size] = c / (6.0 * d)
        else:
            raise CLIError(
                f"jscale loss: error: --compute applies to law {preset.name!r} only "
                f"with exactly one of {option[size]} or --tokens (D = C / (6 N))"
            )
    optional = _optional_inputs(preset)
    missing = [option[k] for k in need if given[k] is None and k not in optional]
    if missing:
        raise CLIError(
            f"jscale loss: error: law {preset.name!r} needs {', '.join(missing)} "
            f"(inputs: {', '.join(option[k] for k in need)})"
        )
    extra = [option[k] for k, v in given.items() if v is not None and k not in need]
    if extra and not (args.compute_flops is not None and extra == ["--compute"]):
        raise CLIError(
            f"jscale loss: error: law {preset.name!r} does not take {', '.join(extra)}"
        )
    return {k: given[k] for k in need if given[k] is not None}


def cmd_loss(args) -> dict:
    preset = laws.get(args.law)
    inputs = _inputs(args, preset)
    value = preset.loss(**inputs)
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


_COST_OPTIONS = {
    "train_gpu": "train_hardware",
    "train_precision": "train_precision",
    "train_mfu": "train_mfu",
    "train_price": "train_price",
    "inference_gpu": "inference_hardware",
    "inference_precision": "inference_precision",
    "prefill_mfu": "prefill_mfu",
    "decode_mfu": "decode_mfu",
    "inference_price": "inference_price",
}


def _scenario_plan(args, preset: laws.Preset) -> dict:
    """``optimal`` with --max-epochs, --inference-tokens, --target-loss or costs."""
    cost_given = [k for k in _COST_OPTIONS if getattr(args, k) is not None]
    costed = args.input_tokens is not None or args.output_tokens is not None
    if (cost_given or costed) and args.target_loss is None:
        flag = "--" + (cost_given[0] if cost_given else "input_tokens")
        raise CLIError(
            f"jscale optimal: error: {flag.replace('_', '-')} needs --target-loss "
            "(the lifetime-cost scenario)"
        )
    if costed and args.inference_tokens is not None:
        raise CLIError(
            "jscale optimal: error: give --inference-tokens (FLOPs) or "
            "--input-tokens/--output-tokens (dollars), not both"
        )
    family = preset.family.name
    dc = family == laws.data_constrained.FAMILY.name
    if args.max_epochs is not None and args.unique_tokens is None:
        raise CLIError("jscale optimal: error: --max-epochs needs --unique-tokens")
    option = "--target-loss" if args.target_loss is not None else "--compute"
    try:
        if costed:
            if preset.family.inputs != ("n_params", "n_tokens"):
                raise CLIError(
                    f"jscale optimal: error: the cost scenario needs a law of (N, D); "
                    f"{preset.name!r} is of family {family!r}"
                )
            kwargs = dict(allocation.SARDANA_COST_DEFAULTS)
            for key, name in _COST_OPTIONS.items():
                if getattr(args, key) is not None:
                    kwargs[name] = getattr(args, key)
            r = allocation.inference_cost_optimal(
                preset.family.loss,
                preset.params,
                args.target_loss,
                args.input_tokens or 0.0,
                args.output_tokens or 0.0,
                **kwargs,
            )
        else:
            r = allocation.optimal(
                preset,
                args.compute,
                unique_tokens=args.unique_tokens,
                max_epochs=args.max_epochs,
                inference_tokens=args.inference_tokens,
                target_loss=args.target_loss,
            )
    except ValueError as e:
        raise CLIError(f"jscale optimal: error: {option}: {e}") from None
    out = _result(preset, r)
    if dc and args.unique_tokens is not None:
        out["unique_tokens"] = args.unique_tokens
        out["epochs"] = _f(r.n_tokens / args.unique_tokens)
        if args.max_epochs is not None:
            out["max_epochs"] = args.max_epochs
    if args.target_loss is not None:
        out["target_loss"] = args.target_loss
    if args.inference_tokens is not None:
        out["inference_tokens"] = args.inference_tokens
    if costed:
        out["input_tokens"] = args.input_tokens or 0.0
        out["output_tokens"] = args.output_tokens or 0.0
        out["cost_usd"] = _f(r.cost_usd)
    if r.inference_flops is not None:
        out["inference_flops"] = _f(r.inference_flops)
        out["lifetime_flops"] = _f(r.lifetime_flops)
    return out


def cmd_optimal(args) -> dict:
    preset = laws.get(args.law)
    out = _scenario_plan(args, preset)
    out["citation"] = preset.citation
    out["rules_of_thumb"] = _rules_of_thumb(out["compute_flops"])
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
        for key, label in (
            ("lifetime_flops", "lifetime FLOPs"),
            ("inference_flops", "inference FLOPs"),
            ("cost_usd", "lifetime cost ($)"),
        ):
            if out.get(key) is not None:
                rows.insert(-1, (label, f"{out[key]:.4g}"))
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


def _pairs(items, option: str) -> dict[str, str]:
    """``NAME=VALUE`` options as a dict; a malformed one is a one-line error."""
    out = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise CLIError(
                f"jscale fit: error: {option} expects NAME=VALUE, got {item!r}"
            )
        out[name.strip()] = value.strip()
    return out


def _fit_number(text: str, option: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise CLIError(
            f"jscale fit: error: {option}: expected a number, got {text!r}"
        ) from None
    if not math.isfinite(value):
        raise CLIError(f"jscale fit: error: {option}: must be finite, got {text}")
    return value


def cmd_fit(args) -> dict:
    from . import fitting  # imported here: the other commands do not need it

    columns = _pairs(args.column, "--column")
    freeze = {
        k: _fit_number(v, "--freeze")
        for k, v in _pairs(args.freeze, "--freeze").items()
    }
    bounds = {}
    for name, text in _pairs(args.bound, "--bound").items():
        lo, sep, hi = text.partition(":")
        if not sep:
            raise CLIError(
                f"jscale fit: error: --bound expects NAME=LOW:HIGH, got {text!r}"
            )
        bounds[name] = (
            _fit_number(lo, "--bound") if lo else None,
            _fit_number(hi, "--bound") if hi else None,
        )
    tie = [tuple(t.split("=")) for t in args.tie or ()]
    if any(len(t) < 2 or not all(t) for t in tie):
        raise CLIError("jscale fit: error: --tie expects NAME=NAME[=NAME...]")
    starts = None
    if args.start:
        starts = [[_fit_number(v, "--start") for v in s.split(",")] for s in args.start]
    options = dict(
        objective=args.objective,
        delta=args.delta,
        freeze=freeze,
        tie=tie,
        bounds=bounds,
    )
    obs = fitting.observations(args.file, args.law, columns=columns)
    result = fitting.fit(obs, args.law, starts=starts, **options)
    counts = np.bincount(np.asarray(result.starts.status), minlength=5)
    status_names = {c: m.split(":")[0] for c, m in fitting.STATUS_MESSAGES.items()}
    out = {
        "law": args.law,
        "file": str(args.file),
        "observations": int(obs.loss.shape[0]),
        "params": {k: _f(v) for k, v in fitting.named(result).items()},
        "objective": _f(result.objective),
        "status": status_names[int(result.status)],
        "decrement": _f(result.decrement),
        "starts": {status_names[c]: int(n) for c, n in enumerate(counts) if n},
        "settings": result.settings,
    }
    if args.objective == "ml":
        out["scale"] = _f(result.scale)
    if args.bootstrap:
        boot = fitting.bootstrap(
            jax.random.key(args.seed),
            obs,
            args.law,
            num_resamples=args.bootstrap,
            init=result,
            confidence=args.confidence,
            **options,
        )
        bcounts = np.bincount(np.asarray(boot.fits.status), minlength=5)
        low, high = fitting.named(boot, "low"), fitting.named(boot, "high")
        out["stderr"] = {k: _f(v) for k, v in fitting.named(boot, "stderr").items()}
        out["intervals"] = {k: [_f(low[k]), _f(high[k])] for k in low}
        out["bootstrap"] = {
            "resamples": args.bootstrap,
            "confidence": args.confidence,
            "seed": args.seed,
            "status": {status_names[c]: int(n) for c, n in enumerate(bcounts) if n},
        }
    if not args.json:
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
        _print_table(rows)
    return out


# ------------------------------------------------------------------------------- parser


def _money(x: float | None) -> str:
    return "n/a" if x is None else f"${x:,.0f}"


def _span(row: dict, key: str, unit: str = "") -> str:
    value = row.get(key)
    if value is None:
        return "n/a"
    text = _fmt(value, unit) if unit else f"{value:.4g}"
    interval = row.get(f"{key}_interval")
    if interval:
        lo, hi = (_fmt(v, unit) if unit else f"{v:.4g}" for v in interval)
        text += f" [{lo}, {hi}]"
    return text


def _plan_figures(args, out: dict) -> list[str]:
    """Write the plan's figures into ``args.plot``; returns the paths."""
    import os

    from . import planner, plots

    flops = out["budget"]["compute_flops"]
    draws = planner.besiroglu_draws(jax.random.key(args.seed), 256)
    figures = {
        "isoflop_curves": plots.isoflop_curves(),
        "loss_contours": plots.loss_contours(),
        "optimum_vs_compute": plots.optimum_vs_compute(draws=draws),
    }
    bes = next(r for r in out["plans"] if r["law"] == "chinchilla-besiroglu2024")
    loss = laws.get("chinchilla-besiroglu2024").family.loss(
        planner.besiroglu_draws(jax.random.key(args.seed), args.draws),
        bes["n_params"],
        bes["n_tokens"],
    )
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
    paths = []
    for name, fig in figures.items():
        paths.append(plots.save(fig, os.path.join(args.plot, f"{name}.{args.format}")))
    return paths


def cmd_plan(args) -> dict:
    from . import planner

    if args.usd is not None and args.price is None:
        raise CLIError("jscale plan: error: --usd needs --price ($ per GPU-hour)")
    if (args.count is not None) and (args.days is None) == (args.hours is None):
        raise CLIError(
            "jscale plan: error: --count needs exactly one of --days, --hours"
        )
    out = planner.plan(
        compute_flops=args.compute,
        hardware=args.gpu,
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
        draws=args.draws,
        seed=args.seed,
    )
    if args.plot:
        out["figures"] = _plan_figures(args, out)
    if not args.json:
        b = out["budget"]
        if out["example"]:
            print(out["example"])
        print(
            f"budget: {b['compute_flops']:.3g} FLOPs = {b['gpu_hours']:.4g} GPU-hours "
            f"on {b['hardware']} at MFU {b['mfu']:g} ({b['precision']}), "
            f"{b['energy_kwh']:.4g} kWh, cost {_money(b['cost_usd'])}"
        )
        rows = out["plans"]
        level = f"{out['interval']:.0%}"
        table = [
            ("", *(r["law"] for r in rows)),
            ("parameters", *(_span(r, "n_params", "params") for r in rows)),
            ("tokens", *(_span(r, "n_tokens", "tokens") for r in rows)),
            ("tokens/param", *(f"{r['tokens_per_param']:.3g}" for r in rows)),
            ("epochs", *(_fmt(r["epochs"]) for r in rows)),
            (f"loss [{level}]", *(_span(r, "loss") for r in rows)),
            ("training FLOPs", *(f"{r['compute_flops']:.3g}" for r in rows)),
            ("GPU-hours", *(f"{r['gpu_hours']:.4g}" for r in rows)),
            ("energy kWh", *(_fmt(r["energy_kwh"]) for r in rows)),
            ("cost", *(_money(r["cost_usd"]) for r in rows)),
            ("status", *(r["status"] for r in rows)),
        ]
        widths = [
            max(len(str(line[i])) for line in table) for i in range(len(rows) + 1)
        ]
        for line in table:
            print(
                "  ".join(f"{str(v):<{w}}" for v, w in zip(line, widths, strict=True))
            )
        print(
            f"[...] {level} intervals from Besiroglu 2024's bootstrap covariance "
            f"({args.draws} draws); n/a where a law publishes no uncertainty"
        )
        for path in out.get("figures", []):
            print(f"wrote {path}")
    return out


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

    p = sub.add_parser(
        "plan",
        help="plan a budget (GPUs, FLOPs, $ or kWh) under several laws, with intervals",
    )
    common(p, law=False)
    p.add_argument("--compute", type=positive, help="budget in FLOPs")
    p.add_argument("--gpu", type=_hardware, default="h100-sxm", help="hardware preset")
    p.add_argument("--count", type=_count, help="number of GPUs")
    p.add_argument("--days", type=positive, help="wall-clock days (with --count)")
    p.add_argument("--hours", type=positive, help="wall-clock hours (with --count)")
    p.add_argument("--usd", type=positive, help="budget in dollars (with --price)")
    p.add_argument("--energy-kwh", type=positive, help="budget in kWh of energy")
    p.add_argument(
        "--mfu",
        type=_number(0.0, upper=1.0),
        default=0.4,
        help="model FLOP utilization",
    )
    p.add_argument("--precision", type=_precision, default="bf16")
    p.add_argument("--price", type=positive, help="$ per GPU-hour")
    p.add_argument("--pue", type=_number(1.0, inclusive=True), default=1.0)
    p.add_argument("--unique-tokens", type=positive, help="unique tokens U available")
    p.add_argument(
        "--inference-tokens", type=positive, help="lifetime inference tokens"
    )
    p.add_argument(
        "--interval",
        type=_number(0.0, upper=0.999),
        default=0.9,
        help="probability mass of the intervals (default 0.9)",
    )
    p.add_argument("--draws", type=_count, default=4000, help="parameter draws")
    p.add_argument("--seed", type=int, default=0, help="random seed of the draws")
    p.add_argument("--plot", metavar="DIR", help="write the plan's figures into DIR")
    p.add_argument(
        "--format", choices=("png", "svg", "pdf"), default="png", help="figure format"
    )
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("loss", help="evaluate a law")
    common(p)
    for name, (flag, text) in INPUT_OPTIONS.items():
        # Ranges beyond positivity (sparsity < 1, ...) are checked by the law itself.
        kind = _number(None) if name in ("sparsity", "post_train_bits") else positive
        p.add_argument(flag, dest=name, type=kind, help=text)
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
    p.add_argument(
        "--max-epochs", type=positive, help="at most this many passes over U (D <= eU)"
    )
    nonnegative = _number(0.0, inclusive=True)
    p.add_argument(
        "--inference-tokens",
        type=nonnegative,
        help="lifetime inference tokens: --compute becomes the lifetime budget "
        "6ND + 2N*T, or with --target-loss, minimize it",
    )
    p.add_argument(
        "--target-loss",
        type=positive,
        help="reach this loss at the least lifetime FLOPs (or cost); no --compute",
    )
    p.add_argument(
        "--input-tokens", type=nonnegative, help="lifetime prefill tokens (cost)"
    )
    p.add_argument(
        "--output-tokens", type=nonnegative, help="lifetime decode tokens (cost)"
    )
    fraction = _number(0.0, upper=1.0)
    p.add_argument("--train-gpu", type=_hardware, help="training hardware (h100-sxm)")
    p.add_argument("--train-precision", type=_precision, help="training dtype (bf16)")
    p.add_argument("--train-mfu", type=fraction, help="training MFU (0.5)")
    p.add_argument("--train-price", type=positive, help="$ per training GPU-hour (2)")
    p.add_argument(
        "--inference-gpu", type=_hardware, help="inference hardware (h100-sxm)"
    )
    p.add_argument(
        "--inference-precision", type=_precision, help="inference dtype (fp8)"
    )
    p.add_argument("--prefill-mfu", type=fraction, help="prefill MFU (0.5)")
    p.add_argument("--decode-mfu", type=fraction, help="decode MFU (0.01)")
    p.add_argument(
        "--inference-price", type=positive, help="$ per inference GPU-hour (2)"
    )
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

    p = sub.add_parser("fit", help="fit a law family to runs in a CSV (Approach 3)")
    p.add_argument(
        "file",
        help="CSV with columns n_params, n_tokens (or compute_flops), loss "
        "(and unique_tokens / x where the family needs them)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--law",
        type=_choice(
            "law family", ("chinchilla", "kaplan", "data-constrained", "bnsl")
        ),
        default="chinchilla",
        help="family to fit (default chinchilla)",
    )
    p.add_argument("--bootstrap", type=_count, metavar="K", help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--confidence", type=_number(0.0, upper=1.0), default=0.95)
    p.add_argument("--objective", choices=("huber", "ml"), default="huber")
    p.add_argument("--delta", type=positive, default=1e-3, help="Huber threshold")
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 bad input)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "optimal":
            args.compute_was_default = args.compute is None and args.target_loss is None
            if args.compute is None and args.target_loss is None:
                args.compute = DEFAULT_COMPUTE
            elif args.compute is not None and args.target_loss is not None:
                raise CLIError(
                    "jscale optimal: error: give --compute (a budget) or "
                    "--target-loss (a quality target), not both"
                )
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
