"""``jscale laws`` (the presets and their citations) and ``jscale loss`` (evaluate one
of them)."""

from __future__ import annotations

import inspect

from ... import laws
from .. import parser as options
from ..checks import CLIError
from ..rows import fmt, json_float, print_table

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
                f"--compute applies to law {preset.name!r} only with exactly one of "
                f"{option[size]} or --tokens (D = C / (6 N))"
            )
    optional = _optional_inputs(preset)
    missing = [option[k] for k in need if given[k] is None and k not in optional]
    if missing:
        raise CLIError(
            f"law {preset.name!r} needs {', '.join(missing)} "
            f"(inputs: {', '.join(option[k] for k in need)})"
        )
    extra = [option[k] for k, v in given.items() if v is not None and k not in need]
    if extra and not (args.compute_flops is not None and extra == ["--compute"]):
        raise CLIError(f"law {preset.name!r} does not take {', '.join(extra)}")
    return {k: given[k] for k in need if given[k] is not None}


def cmd_loss(args) -> dict:
    preset = laws.get(args.law)
    inputs = _inputs(args, preset)
    value = preset.loss(**inputs)
    out = {
        "law": preset.name,
        "family": preset.family.name,
        **inputs,
        "loss": json_float(value),
    }
    if "n_params" in inputs and "n_tokens" in inputs:
        out["compute_flops"] = 6.0 * inputs["n_params"] * inputs["n_tokens"]
    if not args.json:
        print(f"{preset.name}: {preset.family.formula}")
        print_table(
            [
                (k, fmt(v) if isinstance(v, float) else str(v))
                for k, v in out.items()
                if k not in ("law", "family")
            ]
        )
    return out


def register_laws(sub):
    p = options.subcommand(sub, "laws", "list the law presets with their citations")
    p.add_argument("--family", help="only presets of this family")
    p.set_defaults(func=cmd_laws)
    return p


def register_loss(sub):
    p = options.subcommand(sub, "loss", "evaluate a law")
    options.add_law(p)
    for name, (flag, text) in INPUT_OPTIONS.items():
        # The law checks the ranges of its inputs (and names the input); the CLI
        # checks --compute, from which it derives N or D.
        kind = options.POSITIVE if name == "compute_flops" else options.NUMBER
        p.add_argument(flag, dest=name, type=kind, help=text)
    p.set_defaults(func=cmd_loss)
    return p
