"""Chinchilla loss surface: jscale under jit against NumPy and this machine's floor.

Evaluates ``L = E + A / N^alpha + B / D^beta`` (Hoffmann 2022 constants) on N
log-uniform in [1e6, 1e15] and D log-uniform in [1e6, 1e16], in float32 and float64.

Rows per dtype and size:

- ``numpy``: the expression a researcher writes, ``E + A / n**alpha + B / d**beta``,
  on NumPy arrays (single-threaded). It is also the reference every other loss row
  must match.
- ``jscale jit``: ``jax.jit`` of the public ``preset.loss``; a fresh output array
  per call, as any caller gets.
- ``jscale eager``: the same function called without ``jax.jit`` (op by op, with
  the concrete input validation); every size but the largest.
- ``jscale jit, donated out``: the public loss jitted with a reused, donated output
  buffer; what an ``out=``-style evaluation helper would reach.
- ``kernel``: the smallest jitted kernel, exactly 2 log + 2 exp per point with
  the constants baked in and no validity mask, fresh output.
- ``floor: 2 log + 2 exp``: that kernel writing into a donated output buffer.
- ``floor: stream``: ``n + d`` into a donated output buffer, the same bytes as the
  loss (read N and D, write L) at streaming bandwidth.

The floor is the slower of the two floor rows; ``time / floor`` is each row's
median over it. Compile time is measured separately (ahead-of-time lowering and
compilation) and excluded from the medians. After timing, each loss row is called
once more and compared with NumPy (``max rel err``; ``ok`` within ``RTOL``).
"""

from __future__ import annotations

import gc
import math

import jax
import jax.numpy as jnp
import numpy as np
from _harness import compile_timed, max_rel_err, time_calls

from jscale import laws

PRESET = laws.get("chinchilla-hoffmann2022")
FULL_SIZES = (10**6, 10**7, 10**8)
SMOKE_SIZES = (1_000, 10_000)
DTYPES = ("float32", "float64")

# Agreement with NumPy in the same dtype. float32: jscale works in log space, where
# an error of one ulp in log N (~35 for N = 1e15) becomes ~alpha * 35 * 6e-8 = 7e-7
# relative in the power term, and NumPy's own pow is off by a few ulp; 2e-5 is the
# test suite's float32 tolerance. float64: the same chain at eps = 1.1e-16 stays
# far below 1e-12, the suite's float64 tolerance.
RTOL = {"float32": 2e-5, "float64": 1e-12}


def _log_uniform(seed: int, size: int, dtype: str, lo: float, hi: float) -> jax.Array:
    """``size`` values with log10 uniform in ``[lo, hi]``."""
    key = jax.random.key(seed)
    ln10 = math.log(10.0)
    u = jax.random.uniform(key, (size,), dtype, lo * ln10, hi * ln10)
    return jnp.exp(u)


def _donating(fn):
    """``jit`` of ``fn(n, d)`` that writes into a donated buffer ``out``.

    ``keep_unused=True`` stops jit from pruning ``out``, which the body never
    reads, so its memory can be reused for the result.
    """
    return jax.jit(lambda out, n, d: fn(n, d), donate_argnums=0, keep_unused=True)


def _reusing(compiled, n, d):
    """A zero-argument call of ``compiled(out, n, d)`` feeding each result back."""
    # Wait for the zeros: an asynchronous fill of fresh memory would overlap the
    # timing of whatever runs next.
    state = {"out": jnp.zeros_like(n).block_until_ready()}

    def call():
        state["out"] = compiled(state["out"], n, d)
        return state["out"]

    return call


def _case(size: int, dtype: str, *, smoke: bool, eager: bool) -> list[dict]:
    n = _log_uniform(0, size, dtype, 6.0, 15.0)
    d = _log_uniform(1, size, dtype, 6.0, 16.0)
    jax.block_until_ready((n, d))
    n_np, d_np = np.asarray(n), np.asarray(d)  # views of the same memory on CPU

    E, A, B, alpha, beta = PRESET.params
    log_a, log_b = math.log(A), math.log(B)

    def numpy_loss():
        return E + A / n_np**alpha + B / d_np**beta

    def kernel(n, d):
        return (
            E + jnp.exp(log_a - alpha * jnp.log(n)) + jnp.exp(log_b - beta * jnp.log(d))
        )

    jscale_jit, jscale_compile = compile_timed(jax.jit(PRESET.loss), n, d)
    jscale_out, jscale_out_compile = compile_timed(_donating(PRESET.loss), n, n, d)
    kernel_jit, kernel_compile = compile_timed(jax.jit(kernel), n, d)
    floor_exp, floor_exp_compile = compile_timed(_donating(kernel), n, n, d)
    stream, stream_compile = compile_timed(_donating(jnp.add), n, n, d)

    names = {
        "numpy": "numpy (reference)",
        "jit": "jscale jit",
        "eager": "jscale eager (no jit)",
        "out": "jscale jit, donated out",
        "kernel": "kernel: 2 log + 2 exp",
        "floor_exp": "floor: 2 log + 2 exp, donated out",
        "floor_stream": "floor: stream n + d, donated out",
    }
    # Timing order: the two fresh-output kernels side by side and first, the eager
    # path (a fresh array per operation) and NumPy (several temporaries) last, so
    # their allocations do not change what the jitted rows measure. Rows are listed
    # in the order of ``names``.
    calls = {
        "jit": lambda: jscale_jit(n, d),
        "kernel": lambda: kernel_jit(n, d),
        "out": _reusing(jscale_out, n, d),
        "floor_exp": _reusing(floor_exp, n, d),
        "floor_stream": _reusing(stream, n, d),
        "eager": lambda: PRESET.loss(n, d),
        "numpy": numpy_loss,
    }
    if not eager:
        del calls["eager"]
    compile_s = {
        "jit": jscale_compile,
        "out": jscale_out_compile,
        "kernel": kernel_compile,
        "floor_exp": floor_exp_compile,
        "floor_stream": stream_compile,
    }

    if smoke:
        budget = {"budget_s": 0.0, "min_repeats": 2, "max_repeats": 2}
    else:
        budget = {"budget_s": 1.0, "min_repeats": 5, "max_repeats": 21}
    reference = {}  # NumPy's warm-up result, kept for the checks below

    def keep_reference(key, out):
        if key == "numpy":
            reference["loss"] = out

    # Settle: the first calls after the inputs and buffers were made are slower
    # (fresh memory: page faults), so each jitted row runs twice untimed before its
    # own warm-up; the timings are the steady state of repeated calls.
    for key in ("jit", "kernel", "out", "floor_exp", "floor_stream"):
        for _ in range(1 if smoke else 2):
            jax.block_until_ready(calls[key]())
    timings = time_calls(calls, inspect=keep_reference, **budget)

    # Agreement, after timing: every loss row against NumPy in the same dtype.
    errors = {"numpy": 0.0}
    for key, call in calls.items():
        if key in ("numpy", "floor_stream"):
            continue
        out = call()
        if out.dtype != np.dtype(dtype):
            raise TypeError(f"{names[key]} returned {out.dtype}, expected {dtype}")
        errors[key] = max_rel_err(out, reference["loss"])
        del out
    if reference["loss"].dtype != np.dtype(dtype):
        raise TypeError(f"NumPy returned {reference['loss'].dtype}, expected {dtype}")
    reference.clear()

    floor = max(timings["floor_exp"].median, timings["floor_stream"].median)
    bytes_moved = 3 * size * np.dtype(dtype).itemsize  # read N and D, write L
    rows = []
    for key in names:
        if key not in timings:
            continue
        timing = timings[key]
        err = errors.get(key)
        rows.append(
            {
                "dtype": dtype,
                "points": size,
                "impl": names[key],
                "median s": timing.median,
                "min s": timing.min,
                "points/s": size / timing.median,
                "GB/s": bytes_moved / timing.median / 1e9,
                "speedup vs numpy": timings["numpy"].median / timing.median,
                "time / floor": timing.median / floor,
                "compile s": compile_s.get(key),
                "max rel err": err,
                "ok": None if err is None else bool(err <= RTOL[dtype]),
            }
        )
    return rows


def run(smoke: bool) -> list[dict]:
    rows = []
    for dtype in DTYPES:
        # float64 needs x64 switched on; the context restores the setting after.
        with jax.enable_x64(dtype == "float64"):
            sizes = SMOKE_SIZES if smoke else FULL_SIZES
            for size in sizes:
                eager = size < max(sizes)  # op by op is too slow at the largest
                rows.extend(_case(size, dtype, smoke=smoke, eager=eager))
                gc.collect()
    return rows
