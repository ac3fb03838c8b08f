"""``jscale sweep``: compute-optimal plans over a labelled grid (law x budget x ...).

The grid is evaluated under ``jax.jit`` in chunks (:func:`jscale.sweep.sweep`),
where the library can flag a bad value but not raise: the numeric options keep
their range checks here.
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from ... import accounting, allocation
from .. import parser as options
from ..checks import CLIError
from ..rows import fmt, print_columns

#: The allocation's outputs a sweep keeps (its columns in CSV, npz and Parquet).
OUTPUTS = ("n_params", "n_tokens", "tokens_per_param", "loss", "status")

_SWEEP_PLANS: dict = {}


def _sweep_plan(mfu: float, price: float | None):
    """The function ``jscale sweep`` evaluates; one object per setting, so that
    repeated sweeps in one process reuse its compiled programs."""
    import jax.numpy as jnp

    if (mfu, price) in _SWEEP_PLANS:
        return _SWEEP_PLANS[mfu, price]

    def plan(law, compute_flops, unique_tokens=None, hardware=None, precision=None):
        r = allocation.optimal(law, compute_flops, unique_tokens=unique_tokens)
        out = {name: getattr(r, name) for name in OUTPUTS}
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


def _budgets(args) -> list[float] | np.ndarray:
    if args.compute is not None and (
        args.compute_min is not None or args.compute_max is not None
    ):
        raise CLIError(
            "give --compute (a list of budgets) or --compute-min/--compute-max, "
            "not both"
        )
    if args.compute is not None:
        return list(args.compute)
    lo = 1e18 if args.compute_min is None else args.compute_min
    hi = 1e26 if args.compute_max is None else args.compute_max
    if hi < lo or (hi == lo and args.num_budgets > 1):
        raise CLIError(f"--compute-max ({hi:g}) must exceed --compute-min ({lo:g})")
    return np.logspace(math.log10(lo), math.log10(hi), args.num_budgets)


def _points(result) -> list[dict]:
    """One row per point: its coordinates, the allocation's row
    (:func:`jscale.allocation.to_row`), the accounting, and the status."""
    data, coords = result.data, result.grid.points()
    allocations = allocation.AllocationResult(
        n_params=data["n_params"].ravel(),
        n_tokens=data["n_tokens"].ravel(),
        loss=data["loss"].ravel(),
        compute_flops=coords["compute_flops"],
        status=data["status"].ravel(),
    )
    extra = [k for k in ("epochs", "device_hours", "cost_usd") if k in data]
    points = []
    for i in range(result.grid.size):
        row = allocation.to_row(allocations, (i,))
        point = {k: coords[k][i].item() for k in result.coords}
        point.update((k, row[k]) for k in OUTPUTS[:-1])
        for k in extra:
            value = data[k].ravel()[i].item()
            point[k] = value if math.isfinite(value) else None
        point["status"], point["status_code"] = row["status"], row["status_code"]
        points.append(point)
    return points


def cmd_sweep(args) -> dict:
    """Compute-optimal plans over a labelled grid (law x budget x ...), chunked."""
    from ... import sweep

    budgets = _budgets(args)
    if args.price is not None and not args.hardware:
        raise CLIError("--price needs --hardware")
    suffix = str(args.out or ".csv").lower().rsplit(".", 1)[-1]
    if suffix not in ("csv", "npz", "parquet"):
        raise CLIError(f"--out: use a .csv, .npz or .parquet suffix; got {args.out!r}")
    if args.precision and not args.hardware:
        raise CLIError("--precision needs --hardware")
    axes = {"law": list(dict.fromkeys(args.law)), "compute_flops": budgets}
    if args.unique_tokens:
        axes["unique_tokens"] = args.unique_tokens
    if args.hardware:
        axes["hardware"] = list(dict.fromkeys(args.hardware))
        axes["precision"] = list(dict.fromkeys(args.precision or ["bf16"]))
    grid = sweep.Grid(axes)
    mfu, price = args.mfu, args.price
    result = sweep.sweep(
        _sweep_plan(mfu, price),
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
            raise CLIError(f"--out: {e}") from None
    points = _points(result)
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
                p[k] if isinstance(p[k], str) else fmt(p[k], units.get(k, ""))
                for k in keys
            ]
            for p in points
        ]
        print_columns([keys, *cells], strip=True)
        if args.out:
            print(f"wrote {args.out}")
    return out


def register(sub) -> argparse.ArgumentParser:
    p = options.subcommand(
        sub,
        "sweep",
        "compute-optimal plans over a grid of laws x budgets (x unique tokens "
        "x hardware x precision), chunked and resumable",
        status=True,
    )
    p.add_argument(
        "--law",
        type=options.LAW,
        nargs="+",
        default=[options.DEFAULT_LAW],
        help=f"one or more law presets (default {options.DEFAULT_LAW})",
    )
    positive = options.POSITIVE
    p.add_argument("--compute", type=positive, nargs="+", help="budgets in FLOPs")
    p.add_argument(
        "--compute-min", type=positive, help="smallest budget (default 1e18)"
    )
    p.add_argument("--compute-max", type=positive, help="largest budget (default 1e26)")
    p.add_argument(
        "--num-budgets",
        type=options.COUNT,
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
        "--gpu",
        dest="hardware",
        type=options.HARDWARE,
        nargs="+",
        help=f"hardware presets (an axis): adds device_hours; {options.HARDWARE_NAMES}",
    )
    p.add_argument(
        "--precision",
        type=options.PRECISION,
        nargs="+",
        help="training precisions (an axis, default bf16; NaN hours where the "
        f"datasheet lists no peak): {options.PRECISION_NAMES}",
    )
    p.add_argument(
        "--mfu", type=options.FRACTION, default=0.4, help="MFU (default 0.4)"
    )
    p.add_argument("--price", type=positive, help="$ per device-hour: adds cost_usd")
    p.add_argument(
        "--chunk-size", type=options.COUNT, default=4096, help="points per chunk (4096)"
    )
    p.add_argument("--out", help="write the results: FILE.csv, FILE.npz (.parquet)")
    options.add_run_options(p)
    p.set_defaults(func=cmd_sweep)
    return p
