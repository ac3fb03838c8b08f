"""Batched allocation: jscale against a SciPy loop and NumPy golden-section search.

Two scenarios, each at 1e3, 1e5 and 1e6 configurations, in float32 and float64:

- ``dense``: ``min L(N, D)`` s.t. ``6 N D = C`` for the Chinchilla form
  (Hoffmann 2022 constants), C log-uniform in [1e18, 1e26], through the generic
  engine (``allocation.dense_optimal``); the float64 reference is the closed form
  (Hoffmann 2022, Eq. 4).
- ``data-constrained``: Muennighoff 2023's law with C log-uniform in [1e19, 1e25]
  and U from 1/10 to 10x the budget's unconstrained optimal tokens (beyond ~30
  epochs the law is so flat that N* is defined only to ~1e-5 in float64: losses
  across a 1e-5 change of N differ by rounding)
  (``allocation.data_constrained_optimal``); the float64 reference is NumPy
  bisection on the sign of a central-difference slope (step 1e-6 in log N, error
  ~1e-7 at kinks and from rounding) inside the best cell of a 256-point grid.
  A search comparing loss values (golden section, SciPy's bounded Brent) cannot
  serve: on this flat law it resolves log N only to ~1e-6 in float64.

Rows per scenario, dtype and size:

- ``jscale``: the public function; compile time measured apart (``compile_s``, the
  first call minus a warm call), then the median of repeated calls.
- ``numpy golden``: what a researcher vectorizes by hand: a 64-point grid in
  log N, then golden-section on the loss for 36 iterations (bracket / 1.6^36, about
  1e-7 in log N), float64.
- ``scipy loop``: ``scipy.optimize.minimize_scalar(method="bounded")`` one
  configuration at a time on a subset (200 configurations, 50 in smoke mode); its
  rate is extrapolated to the full size (the column ``extrapolated`` says so).

``max_rel_err_n`` is the largest relative error of N* against the float64
reference. ``ok`` is False when jscale misses 1e-6 (float64) or 1e-4 (float32).
"""

from __future__ import annotations

import math
import time

import jax
import jax.numpy as jnp
import numpy as np
from _harness import max_rel_err, time_calls
from scipy.optimize import minimize_scalar

from jscale import allocation
from jscale.laws import chinchilla, data_constrained

FULL_SIZES = (10**3, 10**5, 10**6)
SMOKE_SIZES = (10**3,)
DTYPES = ("float32", "float64")
# The accuracy contract for N*.
RTOL = {"float32": 1e-4, "float64": 1e-6}
CH = chinchilla.HOFFMANN2022.params
DC = data_constrained.MUENNIGHOFF2023.params
_PHI = (math.sqrt(5.0) - 1.0) / 2.0


def _configs(scenario: str, size: int):
    rng = np.random.default_rng(0)
    if scenario == "dense":
        return 10 ** rng.uniform(18, 26, size), None
    E, A, B, a, b = (float(v) for v in DC[:5])
    c = 10 ** rng.uniform(19, 25, size)
    g = (a * A / (b * B)) ** (1 / (a + b))
    u = (c / 6) ** (a / (a + b)) / g * 10 ** rng.uniform(-1, 1, size)
    return c, u


def _np_dc_loss(x, log_c6, u):
    """Muennighoff 2023's law along 6ND = C in NumPy, ``x = log N`` (vectorized)."""
    E, A, B, a, b, rd, rn = (float(v) for v in DC)
    n, d = np.exp(x), np.exp(log_c6 - x)
    u_d = np.minimum(u, d)
    d_eff = u_d + u_d * rd * (1 - np.exp(-np.maximum(d / u_d - 1, 0) / rd))
    g = (a * A / (b * B)) ** (1 / (a + b))
    u_n = np.minimum(n, g * (u_d * g) ** (b / a))
    n_eff = u_n + u_n * rn * (1 - np.exp(-np.maximum(n / u_n - 1, 0) / rn))
    return E + A / n_eff**a + B / d_eff**b


def _np_chinchilla_loss(x, log_c6, _u):
    E, A, B, a, b = (float(v) for v in CH)
    return E + A * np.exp(-a * x) + B * np.exp(-b * (log_c6 - x))


def _np_golden(loss, c, u, num_grid: int, iters: int) -> np.ndarray:
    """Grid over log N in [0, log C/6], then golden-section in the best cell."""
    log_c6 = np.log(c / 6)
    t = np.linspace(0, 1, num_grid)
    grid = log_c6[:, None] * t[None, :]
    uu = None if u is None else u[:, None]
    i = np.argmin(loss(grid, log_c6[:, None], uu), axis=1)
    step = log_c6 / (num_grid - 1)
    lo = np.maximum(grid[np.arange(c.size), i] - step, 0.0)
    hi = np.minimum(grid[np.arange(c.size), i] + step, log_c6)
    x1 = hi - _PHI * (hi - lo)
    x2 = lo + _PHI * (hi - lo)
    f1, f2 = loss(x1, log_c6, u), loss(x2, log_c6, u)
    for _ in range(iters):
        left = f1 < f2
        hi = np.where(left, x2, hi)
        lo = np.where(left, lo, x1)
        x2n = np.where(left, x1, lo + _PHI * (hi - lo))
        x1n = np.where(left, hi - _PHI * (hi - lo), x2)
        fn = loss(np.where(left, x1n, x2n), log_c6, u)
        f1, f2 = np.where(left, fn, f2), np.where(left, f1, fn)
        x1, x2 = x1n, x2n
    return np.exp(0.5 * (lo + hi))


def _scipy_loop(loss, c, u) -> np.ndarray:
    out = np.empty(c.size)
    for i in range(c.size):
        log_c6 = math.log(c[i] / 6)
        ui = None if u is None else u[i]
        res = minimize_scalar(
            lambda x, lc=log_c6, ui=ui: float(loss(np.float64(x), lc, ui)),
            bounds=(0.0, log_c6),
            method="bounded",
            options={"xatol": 1e-10},
        )
        out[i] = math.exp(res.x)
    return out


def _reference(scenario, c, u) -> np.ndarray:
    if scenario == "dense":
        E, A, B, a, b = (float(v) for v in CH)
        g = (a * A / (b * B)) ** (1 / (a + b))
        return g * (c / 6) ** (b / (a + b))
    return _np_slope_bisection(_np_dc_loss, c, u, 256, 60)


def _np_slope_bisection(loss, c, u, num_grid: int, iters: int) -> np.ndarray:
    log_c6 = np.log(c / 6)
    t = np.linspace(0, 1, num_grid)
    grid = log_c6[:, None] * t[None, :]
    i = np.argmin(loss(grid, log_c6[:, None], u[:, None]), axis=1)
    step = log_c6 / (num_grid - 1)
    lo = np.maximum(grid[np.arange(c.size), i] - step, 0.0)
    hi = np.minimum(grid[np.arange(c.size), i] + step, log_c6)
    h = 1e-6
    for _ in range(iters):
        m = 0.5 * (lo + hi)
        rising = loss(m + h, log_c6, u) >= loss(m - h, log_c6, u)
        lo, hi = np.where(rising, lo, m), np.where(rising, m, hi)
    return np.exp(0.5 * (lo + hi))


def _jscale_fn(scenario):
    if scenario == "dense":
        return lambda c, u: allocation.dense_optimal(chinchilla.loss, CH, c).n_params
    return lambda c, u: allocation.data_constrained_optimal(DC, c, u).n_params


def _rows(scenario: str, dtype: str, size: int, smoke: bool) -> list[dict]:
    c64, u64 = _configs(scenario, size)
    ref = _reference(scenario, c64, u64)
    c = jnp.asarray(c64, dtype)
    u = None if u64 is None else jnp.asarray(u64, dtype)
    fn = _jscale_fn(scenario)
    start = time.perf_counter()
    jax.block_until_ready(fn(c, u))
    first = time.perf_counter() - start
    np_loss = _np_chinchilla_loss if scenario == "dense" else _np_dc_loss
    checks = {}

    def inspect(name, result):
        checks[name] = max_rel_err(result, ref)

    budget = 0.3 if smoke else 2.0
    timings = time_calls(
        {
            "jscale": lambda: fn(c, u),
            "numpy golden": lambda: _np_golden(np_loss, c64, u64, 64, 36),
        },
        budget_s=budget,
        min_repeats=1 if smoke else 3,
        max_repeats=3 if smoke else 5,
        inspect=inspect,
    )
    compile_s = max(first - timings["jscale"].median, 0.0)
    sub = 50 if smoke else 200
    start = time.perf_counter()
    n_scipy = _scipy_loop(np_loss, c64[:sub], None if u64 is None else u64[:sub])
    scipy_rate = sub / (time.perf_counter() - start)
    checks["scipy loop"] = max_rel_err(n_scipy, ref[:sub])
    rates = {name: size / t.median for name, t in timings.items()}
    rows = []
    for name in ("jscale", "numpy golden", "scipy loop"):
        rate = scipy_rate if name == "scipy loop" else rates[name]
        row = {
            "scenario": scenario,
            "dtype": dtype if name == "jscale" else "float64",
            "configs": size,
            "method": name,
            "seconds": size / rate,
            "configs_per_s": rate,
            "extrapolated": name == "scipy loop",
            "jscale_speedup": rates["jscale"] / rate,
            "compile_s": compile_s if name == "jscale" else None,
            "max_rel_err_n": checks[name],
        }
        if name == "jscale":
            row["ok"] = bool(checks[name] <= RTOL[dtype])
        rows.append(row)
    return rows


def run(smoke: bool) -> list[dict]:
    rows = []
    for dtype in DTYPES:
        # float64 needs x64 switched on; the context restores the setting after.
        with jax.enable_x64(dtype == "float64"):
            for scenario in ("dense", "data-constrained"):
                for size in SMOKE_SIZES if smoke else FULL_SIZES:
                    rows.extend(_rows(scenario, dtype, size, smoke))
    return rows
