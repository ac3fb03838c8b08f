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

from . import __version__, _status, accounting, allocation, isoflop, laws

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
        **_status.as_json(r.status),
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
                quality=args.quality,
                experts=args.experts,
                max_experts=args.max_experts,
                memory_gb=args.memory_gb,
                devices=args.devices if args.memory_gb is not None else 1.0,
                precision=args.precision,
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
    if r.n_total_params is not None:  # MoE: n_params holds the active parameters
        out["n_active_params"] = out["n_params"]
        out["n_total_params"] = _f(r.n_total_params)
        out["experts"] = _f(r.experts)
        if r.granularity is not None:
            out["granularity"] = _f(r.granularity)
        out["memory_bytes"] = _f(r.memory_bytes)
        if args.memory_gb is not None:
            out["memory_gb"] = args.memory_gb
            out["devices"] = args.devices
    if r.bits is not None:
        out["bits"] = _f(r.bits)
    if args.quality is not None:
        out["quality"] = args.quality
        if r.effective_tokens is not None:
            out["effective_tokens"] = _f(r.effective_tokens)
    if args.precision is not None:
        out["precision"] = args.precision
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
        if "n_total_params" in out:
            rows[1] = ("active parameters", _fmt(out["n_active_params"], "params"))
            rows.insert(2, ("total parameters", _fmt(out["n_total_params"], "params")))
            rows.insert(3, ("experts", f"{out['experts']:.3g}"))
            if "granularity" in out:
                rows.insert(4, ("granularity", f"{out['granularity']:.3g}"))
            rows.insert(-1, ("memory", f"{out['memory_bytes'] / 1e9:.4g} GB"))
        if "bits" in out:
            rows.insert(-1, ("training precision", f"{out['bits']:.3g} bits"))
        if "effective_tokens" in out:
            rows.insert(
                -1, ("effective tokens", _fmt(out["effective_tokens"], "tokens"))
            )
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


def _isoflop_data(args) -> dict:
    """``jscale isoflop --data FILE``: Approach 2 on measured isoFLOP runs."""
    from . import fitting  # the CSV reader and its checks

    if args.compute:
        raise CLIError(
            "jscale isoflop: error: give --data (measured runs) or --compute "
            "(budgets under a law), not both"
        )
    columns = _pairs(args.column, "--column", "isoflop")
    where = _pairs(args.where, "--where", "isoflop")
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
        "a": _f(r.a),
        "b": _f(r.b),
        "k_n": _f(np.exp(r.log_k_n)),
        "k_d": _f(np.exp(r.log_k_d)),
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
                "n_params_opt": _f(r.n_opt[i]),
                "n_tokens_opt": _f(r.d_opt[i]),
                "loss_opt": _f(r.loss_opt[i]),
            }
        )
    if args.bootstrap:
        bs = isoflop.approach2_bootstrap(
            jax.random.key(args.seed),
            runs.compute_flops,
            runs.n_params,
            runs.loss,
            runs.mask,
            num_resamples=max(args.bootstrap, 2),
            confidence=args.confidence,
        )
        out["stderr"] = {"a": _f(bs.stderr_a), "b": _f(bs.stderr_b)}
        out["intervals"] = {
            "a": [_f(bs.low_a), _f(bs.high_a)],
            "b": [_f(bs.low_b), _f(bs.high_b)],
        }
        out["bootstrap"] = {
            "resamples": int(bs.a.shape[0]),
            "valid": int(np.sum(bs.valid)),
            "confidence": args.confidence,
            "seed": args.seed,
            "method": "runs resampled with replacement within each budget",
        }
    if not args.json:
        print(
            f"Approach 2 on {out['fitted_runs']} of {out['runs']} runs in {args.data}"
            + (f" (window {args.window:g} decades)" if args.window else "")
        )
        print(f"{'compute':>10}  {'runs':>4}  {'N_opt':>8}  {'D_opt':>8}  {'loss':>7}")
        for b in out["budgets"]:
            n_opt = _fmt(b["n_params_opt"], "params") if b["valid"] else "-"
            d_opt = _fmt(b["n_tokens_opt"], "tokens") if b["valid"] else "-"
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
    return out


def cmd_isoflop(args) -> dict:
    if args.data is not None:
        return _isoflop_data(args)
    if args.bootstrap or args.window is not None or args.where or args.column:
        raise CLIError(
            "jscale isoflop: error: --bootstrap, --window, --where and --column "
            "need --data"
        )
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


def _pairs(items, option: str, command: str = "fit") -> dict[str, str]:
    """``NAME=VALUE`` options as a dict; a malformed one is a one-line error."""
    out = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise CLIError(
                f"jscale {command}: error: {option} expects NAME=VALUE, got {item!r}"
            )
        out[name.strip()] = value.strip()
    return out


#: ``jscale fit --law`` choices: the families of ``jscale.fitting.MODELS``.
FIT_LAWS = {
    "chinchilla": "E + A/N^alpha + B/D^beta (Hoffmann 2022)",
    "kaplan": "Kaplan 2020 L(N, D)",
    "data-constrained": "Muennighoff 2023 (needs unique_tokens)",
    "bnsl": "Caballero 2022, one break (input x)",
    "moe": "Clark 2022 routed law (inputs n_active_params, experts)",
}


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
    where = _pairs(args.where, "--where")
    obs = fitting.observations(args.file, args.law, columns=columns, where=where)
    result = fitting.fit(obs, args.law, starts=starts, **options)
    out = {
        "law": args.law,
        "file": str(args.file),
        "where": where,
        "observations": int(obs.loss.shape[0]),
        "params": {k: _f(v) for k, v in fitting.named(result).items()},
        "objective": _f(result.objective),
        **_status.as_json(result.status),
        "decrement": _f(result.decrement),
        "starts": _status.counts(result.starts.status),
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
        low, high = fitting.named(boot, "low"), fitting.named(boot, "high")
        out["stderr"] = {k: _f(v) for k, v in fitting.named(boot, "stderr").items()}
        out["intervals"] = {k: [_f(low[k]), _f(high[k])] for k in low}
        out["bootstrap"] = {
            "resamples": args.bootstrap,
            "confidence": args.confidence,
            "seed": args.seed,
            "status": _status.counts(boot.fits.status),
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


_SWEEP_PLANS: dict = {}


def _sweep_plan(mfu: float, price: float | None):
    """The function ``jscale sweep`` evaluates; one object per setting, so that
    repeated sweeps in one process reuse its compiled programs."""
    import jax.numpy as jnp

    if (mfu, price) in _SWEEP_PLANS:
        return _SWEEP_PLANS[mfu, price]

    def plan(law, compute_flops, unique_tokens=None, hardware=None, precision=None):
        r = allocation.optimal(law, compute_flops, unique_tokens=unique_tokens)
        out = {
            "n_params": r.n_params,
            "n_tokens": r.n_tokens,
            "tokens_per_param": r.tokens_per_param,
            "loss": r.loss,
            "status": r.status,
        }
        if unique_tokens is not None:
            out["epochs"] = r.n_tokens / unique_tokens
        if hardware is not None:
            try:
                hours = accounting.flops_to_device_hours(
                    compute_flops, hardware, precision, mfu
                )
            except ValueError:  # a precision the datasheet does not list
                hours = jnp.full_like(compute_flops, jnp.nan)
            out["device_hours"] = hours
            if price is not None:
                out["cost_usd"] = hours * price
        return out

    _SWEEP_PLANS[mfu, price] = plan
    return plan


def cmd_sweep(args) -> dict:
    """Compute-optimal plans over a labelled grid (law x budget x ...), chunked."""
    from . import sweep

    if args.compute is not None and (
        args.compute_min is not None or args.compute_max is not None
    ):
        raise CLIError(
            "jscale sweep: error: give --compute (a list of budgets) or "
            "--compute-min/--compute-max, not both"
        )
    if args.compute is not None:
        budgets = list(args.compute)
    else:
        lo = 1e18 if args.compute_min is None else args.compute_min
        hi = 1e26 if args.compute_max is None else args.compute_max
        if hi < lo or (hi == lo and args.num_budgets > 1):
            raise CLIError(
                f"jscale sweep: error: --compute-max ({hi:g}) must exceed "
                f"--compute-min ({lo:g})"
            )
        budgets = np.logspace(math.log10(lo), math.log10(hi), args.num_budgets)
    if args.price is not None and not args.hardware:
        raise CLIError("jscale sweep: error: --price needs --hardware")
    suffix = str(args.out or ".csv").lower().rsplit(".", 1)[-1]
    if suffix not in ("csv", "npz", "parquet"):
        raise CLIError(
            f"jscale sweep: error: --out: use a .csv, .npz or .parquet suffix; got "
            f"{args.out!r}"
        )
    if args.precision and not args.hardware:
        raise CLIError("jscale sweep: error: --precision needs --hardware")
    axes = {"law": list(dict.fromkeys(args.law)), "compute_flops": budgets}
    if args.unique_tokens:
        axes["unique_tokens"] = args.unique_tokens
    if args.hardware:
        axes["hardware"] = list(dict.fromkeys(args.hardware))
        axes["precision"] = list(dict.fromkeys(args.precision or ["bf16"]))
    grid = sweep.Grid(axes)
    mfu, price = args.mfu, args.price
    plan = _sweep_plan(mfu, price)
    result = sweep.sweep(
        plan,
        grid,
        chunk_size=args.chunk_size,
        checkpoint=args.checkpoint,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        config={"command": "jscale sweep", "mfu": mfu, "price": price},
        description="jscale sweep",
    )
    if args.out:
        try:
            result.save(args.out)
        except (OSError, ModuleNotFoundError) as e:
            raise CLIError(f"jscale sweep: error: --out: {e}") from None
    order = list(grid.coords) + [
        k
        for k in ("n_params", "n_tokens", "tokens_per_param", "loss", "epochs")
        + ("device_hours", "cost_usd", "status")
        if k in result.data
    ]
    if "status" in order:
        order.append("status_code")
    points = []
    for row in result.records():
        row.update(_status.as_json(row["status"]))
        points.append(
            {
                k: (
                    None
                    if isinstance(row[k], float) and not math.isfinite(row[k])
                    else row[k]
                )
                for k in order
            }
        )
    out = {
        "dims": list(result.dims),
        "shape": list(result.shape),
        "count": len(points),
        "chunk_size": result.info["chunk_size"],
        "num_chunks": result.info["num_chunks"],
        "devices": result.info["devices"],
        "points": points,
    }
    if args.out:
        out["out"] = str(args.out)
    if args.checkpoint:
        out["checkpoint"] = str(args.checkpoint)
    if not args.json:
        shape = " x ".join(
            f"{d} {n}" for d, n in zip(grid.dims, grid.shape, strict=True)
        )
        print(
            f"{len(points)} points ({shape}); {out['num_chunks']} chunk(s) of "
            f"{out['chunk_size']} on {out['devices']} device(s)"
        )
        keys = [k for k in points[0] if k != "status_code"]
        units = {"n_params": "params", "n_tokens": "tokens"}
        cells = [
            [
                v if isinstance(v, str) else _fmt(v, units.get(k, ""))
                for k, v in p.items()
                if k != "status_code"
            ]
            for p in points
        ]
        widths = [max(len(k), *(len(c[j]) for c in cells)) for j, k in enumerate(keys)]
        for line in [keys, *cells]:
            text = "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True))
            print(text.rstrip())
        if args.out:
            print(f"wrote {args.out}")
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


#: ``jscale mc`` defaults: the preset with a published parameter uncertainty.
MC_DEFAULT_LAW = "chinchilla-besiroglu2024"
_MC_OUTPUTS = (
    ("n_params", "parameters", "params"),
    ("n_tokens", "tokens", "tokens"),
    ("tokens_per_param", "tokens/param", ""),
    ("loss", "loss", ""),
)


def _whole_count(text: str) -> int:
    """A whole number >= 1, also written like 1e8."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value.is_integer() and value >= 1):
        raise argparse.ArgumentTypeError(
            f"expected a whole number >= 1 (e.g. 1000000 or 1e6), got {text!r}"
        )
    return int(value)


def cmd_mc(args) -> dict:
    """Parameter uncertainty propagated to the compute-optimal plan (Monte Carlo)."""
    from . import montecarlo

    if args.resume and not args.checkpoint:
        raise CLIError("jscale mc: error: --resume needs --checkpoint DIR")
    if args.chunk_size % montecarlo.BLOCK:
        raise CLIError(
            f"jscale mc: error: argument --chunk-size: must be a multiple of "
            f"{montecarlo.BLOCK}, got {args.chunk_size}"
        )
    preset = laws.get(args.law)
    try:
        dist = montecarlo.law_uncertainty(preset, log_sd=args.log_sd)
    except ValueError as e:
        raise CLIError(f"jscale mc: error: --law: {e}") from None
    scenario = {
        "unique_tokens": args.unique_tokens,
        "inference_tokens": args.inference_tokens,
    }
    try:  # the plan at the central estimate; also validates the scenario
        center = allocation.optimal(preset, args.compute, **scenario)
    except ValueError as e:
        raise CLIError(f"jscale mc: error: {e}") from None
    thresholds = {}
    for item in args.exceed or ():
        name, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not name or not value:
            raise CLIError(
                f"jscale mc: error: --exceed expects OUTPUT=VALUE, got {item!r}"
            )
        if name not in {k for k, _, _ in _MC_OUTPUTS}:
            raise CLIError(
                f"jscale mc: error: --exceed: unknown output {name!r}; valid: "
                f"{', '.join(k for k, _, _ in _MC_OUTPUTS)}"
            )
        try:
            thresholds.setdefault(name, []).append(float(value))
        except ValueError:
            raise CLIError(
                f"jscale mc: error: --exceed: expected a number, got {value!r}"
            ) from None

    compute = args.compute

    def plan(params):
        r = allocation.optimal(preset._replace(params=params), compute, **scenario)
        return {
            "n_params": r.n_params,
            "n_tokens": r.n_tokens,
            "tokens_per_param": r.tokens_per_param,
            "loss": r.loss,
        }

    setup = {
        "command": "jscale mc",
        "law": preset.name,
        "compute_flops": compute,
        **scenario,
        "log_sd": args.log_sd,
    }
    result = montecarlo.propagate(
        plan,
        dist,
        jax.random.key(args.seed),
        args.draws,
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
    if args.log_sd is None:
        described = {
            "kind": "multivariate normal in (log E, log A, log B, alpha, beta), "
            "centred on the preset",
            "covariance": [
                [float(f"{v:.7g}") for v in row]
                for row in np.asarray(dist.scale_tril @ dist.scale_tril.T)
            ],
            "source": "Besiroglu et al. 2024 (arXiv:2404.10102): their 4000 "
            "bootstrap resamples refitted (jscale.laws.chinchilla."
            "BESIROGLU2024_COVARIANCE)",
        }
    else:
        described = {
            "kind": "independent log-normals centred (median) on the preset",
            "log_sd": args.log_sd,
        }
    out = {
        "law": preset.name,
        "compute_flops": compute,
        **{k: v for k, v in scenario.items() if v is not None},
        "draws": args.draws,
        "seed": args.seed,
        "chunk_size": result.chunk_size,
        "distribution": described,
        "point_estimate": {
            "n_params": _f(center.n_params),
            "n_tokens": _f(center.n_tokens),
            "tokens_per_param": _f(center.tokens_per_param),
            "loss": _f(center.loss),
        },
        "outputs": {
            name: montecarlo.summary_dict(result.summaries[name])
            for name, _, _ in _MC_OUTPUTS
        },
        "flagged_draws": result.summaries["n_params"].nonfinite,
    }
    if args.sobol:
        sd = np.sqrt(np.diag(np.asarray(dist.scale_tril @ dist.scale_tril.T)))
        marginals = montecarlo.MultivariateNormal.from_sd(dist.center, sd, dist.log)
        sob = montecarlo.sobol(
            plan, marginals, jax.random.key(args.seed + 1), args.sobol
        )
        out["sobol"] = {
            "note": "Jansen estimators (Saltelli et al. 2010); inputs taken as "
            "independent with the marginal spreads above (Sobol indices need "
            "independent inputs, so the fit's correlations are dropped)",
            "num_samples": sob.num_samples,
            "inputs": list(sob.names),
            "first_order": {
                o: dict(zip(sob.names, map(_f, sob.first_order[j]), strict=True))
                for j, o in enumerate(sob.outputs)
            },
            "total": {
                o: dict(zip(sob.names, map(_f, sob.total[j]), strict=True))
                for j, o in enumerate(sob.outputs)
            },
        }
    if args.out:
        try:
            with open(args.out, "w") as f:
                f.write(json.dumps(out, allow_nan=False) + "\n")
        except OSError as e:
            raise CLIError(f"jscale mc: error: --out: {e}") from None
    if not args.json:
        qs = list(result.summaries["n_params"].quantiles)
        print(
            f"Monte Carlo over the parameter uncertainty of {preset.name}: "
            f"{args.draws:,} draws, compute-optimal plan at {compute:.3g} FLOPs"
        )
        head = [f"p{100 * q:g}" for q in qs] + ["mean", "std"]
        table = [("", *head)]
        for name, label, unit in _MC_OUTPUTS:
            s = result.summaries[name]
            cells = [s.quantiles[q] for q in qs] + [s.mean, s.std]
            table.append((label, *(_fmt(c, unit) for c in cells)))
        widths = [max(len(str(r[i])) for r in table) for i in range(len(head) + 1)]
        for row in table:
            print("  ".join(f"{str(v):>{w}}" for v, w in zip(row, widths, strict=True)))
        pe = out["point_estimate"]
        print(
            f"at the central estimate: {_fmt(pe['n_params'], 'params')} parameters, "
            f"{_fmt(pe['n_tokens'], 'tokens')} tokens, loss {pe['loss']:.4f}"
        )
        for name, probs in out["outputs"].items():
            for t, prob in probs["exceedance"].items():
                print(f"P({name} > {t}) = {prob:.4g}")
        if out["flagged_draws"]:
            print(f"flagged draws (no valid plan): {out['flagged_draws']}")
        if "sobol" in out:
            print("Sobol indices (first order / total; inputs taken independent):")
            for o in out["sobol"]["first_order"]:
                pairs = ", ".join(
                    f"{n} {out['sobol']['first_order'][o][n]:.2f}/"
                    f"{out['sobol']['total'][o][n]:.2f}"
                    for n in out["sobol"]["inputs"]
                )
                print(f"  {o}: {pairs}")
        if args.out:
            print(f"wrote {args.out}")
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

    def hardware_options(p, price_help: str):
        """MFU, precision, price and PUE of the hardware, and the unique data."""
        p.add_argument(
            "--mfu",
            type=_number(0.0, upper=1.0),
            default=0.4,
            help="model FLOP utilization",
        )
        p.add_argument("--precision", type=_precision, default="bf16")
        p.add_argument("--price", type=positive, help=price_help)
        p.add_argument("--pue", type=_number(1.0, inclusive=True), default=1.0)
        p.add_argument(
            "--unique-tokens", type=positive, help="unique tokens U available"
        )

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
    hardware_options(p, "$ per GPU-hour")
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
    p.add_argument(
        "--quality",
        type=positive,
        help="each training token is worth this many reference tokens (filtered "
        "data > 1)",
    )
    p.add_argument(
        "--experts", type=_number(1.0, inclusive=True), help="fix MoE experts E"
    )
    p.add_argument(
        "--max-experts", type=_number(1.0, inclusive=True), help="bound MoE experts"
    )
    p.add_argument(
        "--memory-gb",
        type=positive,
        help="MoE: accelerator memory per device (GB) for weights plus KV cache",
    )
    p.add_argument(
        "--devices", type=positive, default=1.0, help="MoE: devices holding the model"
    )
    p.add_argument(
        "--precision",
        help="precision law: training precision (a name such as fp8, a number of "
        "bits, 'auto' for continuous bits, or 'menu' for the best of bf16/fp8/int4); "
        "MoE laws: number format of weights and KV cache (default bf16)",
    )
    p.set_defaults(func=cmd_optimal)

    p = sub.add_parser("budget", help="GPUs and time to FLOPs, energy, cost and plan")
    common(p)
    p.add_argument("--gpu", type=_hardware, default="h100-sxm", help="hardware preset")
    p.add_argument("--count", type=_count, default=1, help="number of devices")
    p.add_argument("--days", type=positive, help="wall-clock days")
    p.add_argument("--hours", type=positive, help="wall-clock hours")
    hardware_options(p, "$ per device-hour")
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
        type=_count,
        metavar="K",
        help="with --data: K resamples of the runs within budgets (intervals on a, b)",
    )
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--confidence", type=_number(0.0, upper=1.0), default=0.95)
    p.set_defaults(func=cmd_isoflop)

    p = sub.add_parser("fit", help="fit a law family to runs in a CSV (Approach 3)")
    p.add_argument(
        "file",
        help="CSV with columns n_params, n_tokens (or compute_flops), loss "
        "(and unique_tokens / x / n_active_params, experts where the family needs "
        "them)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--law",
        type=_choice("law family", FIT_LAWS),
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
    p.add_argument("--bootstrap", type=_count, metavar="K", help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--confidence", type=_number(0.0, upper=1.0), default=0.95)
    p.add_argument("--objective", choices=("huber", "ml"), default="huber")
    p.add_argument(
        "--delta",
        type=positive,
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

    p = sub.add_parser(
        "sweep",
        help="compute-optimal plans over a grid of laws x budgets (x unique tokens "
        "x hardware x precision), chunked and resumable",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--law",
        type=_law,
        nargs="+",
        default=[DEFAULT_LAW],
        help=f"one or more law presets (default {DEFAULT_LAW})",
    )
    p.add_argument("--compute", type=positive, nargs="+", help="budgets in FLOPs")
    p.add_argument(
        "--compute-min", type=positive, help="smallest budget (default 1e18)"
    )
    p.add_argument("--compute-max", type=positive, help="largest budget (default 1e26)")
    p.add_argument(
        "--num-budgets",
        type=_count,
        default=9,
        help="log-spaced budgets from --compute-min to --compute-max (default 9)",
    )
    p.add_argument(
        "--unique-tokens",
        type=positive,
        nargs="+",
        help="unique tokens U (an axis; data-constrained laws)",
    )
    p.add_argument(
        "--hardware",
        type=_hardware,
        nargs="+",
        help="hardware presets (an axis): adds device_hours",
    )
    p.add_argument(
        "--precision",
        type=_precision,
        nargs="+",
        help="training precisions (an axis, default bf16; NaN hours where the "
        "datasheet lists no peak)",
    )
    p.add_argument(
        "--mfu", type=_number(0.0, upper=1.0), default=0.4, help="MFU (default 0.4)"
    )
    p.add_argument("--price", type=positive, help="$ per device-hour: adds cost_usd")
    p.add_argument(
        "--chunk-size", type=_count, default=4096, help="points per chunk (4096)"
    )
    p.add_argument("--out", help="write the results: FILE.csv, FILE.npz (.parquet)")
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
    p.set_defaults(func=cmd_sweep)
    p = sub.add_parser(
        "mc",
        help="Monte Carlo: a law's parameter uncertainty propagated to the "
        "compute-optimal plan (quantiles, moments, Sobol indices)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--law",
        type=_law,
        default=MC_DEFAULT_LAW,
        help=f"law preset (default {MC_DEFAULT_LAW}, whose bootstrap covariance is "
        "the default distribution; other presets need --log-sd)",
    )
    p.add_argument(
        "--compute",
        type=positive,
        default=DEFAULT_COMPUTE,
        help=f"training FLOPs C (default {DEFAULT_COMPUTE:g})",
    )
    p.add_argument(
        "--draws", type=_whole_count, default=1_000_000, help="draws (default 1e6)"
    )
    p.add_argument(
        "--chunk-size",
        type=_whole_count,
        default=1 << 18,
        help="draws per chunk, a multiple of 1024 (default 262144); results do "
        "not depend on it",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--quantiles",
        type=_number(0.0, inclusive=True, upper=1.0),
        nargs="+",
        default=[0.05, 0.5, 0.95],
        help="probabilities to report (default 0.05 0.5 0.95)",
    )
    p.add_argument(
        "--exceed",
        action="append",
        metavar="OUTPUT=VALUE",
        help="report P(OUTPUT > VALUE), e.g. loss=1.95 (repeatable)",
    )
    p.add_argument(
        "--log-sd",
        type=positive,
        help="independent log-normal spread of every parameter (sd of its log) "
        "instead of the preset's published uncertainty",
    )
    p.add_argument("--unique-tokens", type=positive, help="unique tokens U available")
    p.add_argument(
        "--inference-tokens",
        type=_number(0.0, inclusive=True),
        help="lifetime inference tokens: --compute becomes the lifetime budget",
    )
    p.add_argument("--bins", type=_count, default=8192, help="histogram bins (8192)")
    p.add_argument(
        "--sobol",
        type=_whole_count,
        metavar="N",
        help="also Sobol indices of each output from N (d + 2) evaluations",
    )
    p.add_argument("--out", metavar="FILE", help="also write the JSON result here")
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
    p.set_defaults(func=cmd_mc)
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
