"""Approach-3 fitting: Hoffmann's 4500-start grid and 4000 bootstrap fits vs SciPy.

Data: Epoch's 240 points extracted from Hoffmann 2022's Figure 4 (read from
``../shared/data``; tokens D = C / (6 N), the 5 highest losses dropped) when present,
otherwise 240 synthetic points from the Besiroglu 2024 law with 1% log-normal noise.
Objective: the Huber sum (delta = 1e-3) of log residuals through log-sum-exp
(Hoffmann 2022, Eq. 3 and 11).

Rows:

- ``jscale grid``: :func:`jscale.fitting.fit` from all 4500 starts (screen 12 IRLS
  steps, polish the best 64 to convergence), per dtype.
- ``jscale bootstrap``: :func:`jscale.fitting.bootstrap`, 4000 multinomial resamples
  warm-started at the full-data fit, per dtype. ``cpu s`` is the process's CPU time
  for the same call (less sensitive to other jobs on a shared machine than wall
  time; jscale's fitting loops run on one thread). ``steps/fit`` is the mean number
  of trial steps per resample (each needs one evaluation of objective, gradient
  and curvature), and ``x floor`` the time over ``steps/fit`` batched
  objective-and-gradient evaluations.
- ``floor``: one batched objective and gradient for the 4000 resamples at the warm
  start (closed form, one fused loop over the observations), the least a step can
  cost; its row gives the time per fit.
- ``approach2 bootstrap``: :func:`jscale.isoflop.approach2_bootstrap` on Porian et
  al. 2024's isoFLOP runs (shipped, RefinedWeb "Optimizer tuning (no decay)", runs
  within 0.5 decades of each budget's best), 4000 resamples within budgets, against
  a NumPy loop of ``np.polyfit`` on the same counts (a subset, extrapolated).
- ``scipy L-BFGS-B numerical grad``: the way Besiroglu et al. ran their grid
  (``minimize(method="L-BFGS-B")`` without ``jac``), on a subset of the starts
  (fits/s extrapolate; the best objective is over that subset).
- ``scipy L-BFGS-B analytic grad (default tol)``, ``(converged)`` (``ftol=1e-15,
  gtol=1e-12``) and ``scipy BFGS analytic grad``: the strongest fair SciPy baselines,
  float64 NumPy objective and gradient, on subsets of the starts; for the bootstrap,
  converged L-BFGS-B warm-started like jscale on a subset of the same resamples.

``objective`` is the best (grid) or the median (bootstrap) objective; ``vs scipy``
is jscale's objective minus SciPy's converged one on the same starts or resamples
(negative or zero means jscale is at least as low); ``speedup`` is fits/s over the
SciPy row's. ``status`` counts converged / pruned / other fits.
"""

from __future__ import annotations

import csv
import time
import warnings
from pathlib import Path

import jax
import numpy as np
from scipy.optimize import minimize

from jscale import fitting, laws

EPOCH = (
    Path(__file__).resolve().parents[1]
    / ".."
    / "shared"
    / "data"
    / "epoch-chinchilla"
    / "svg_extracted_data.csv"
)


def _data() -> tuple[dict, str]:
    if EPOCH.exists():
        with open(EPOCH, newline="") as f:
            rows = list(csv.DictReader(f))
        loss = np.array([float(r["loss"]) for r in rows])
        keep = loss < np.sort(loss)[-5]
        n = np.array([float(r["Model Size"]) for r in rows])[keep]
        c = np.array([float(r["Training FLOP"]) for r in rows])[keep]
        return {"n_params": n, "n_tokens": c / (6 * n), "loss": loss[keep]}, "epoch"
    rng = np.random.default_rng(0)
    n = 10 ** rng.uniform(7.5, 10.5, 240)
    d = 10 ** rng.uniform(9, 12, 240)
    loss = np.asarray(laws.get("chinchilla-besiroglu2024").loss(n, d), np.float64)
    loss = loss * np.exp(rng.normal(0, 0.01, 240))
    return {"n_params": n, "n_tokens": d, "loss": loss}, "synthetic"


def _objective(theta, log_n, log_d, log_l, w, delta=1e-3):
    """Huber sum and gradient in float64 NumPy (the reference implementation)."""
    a, b, e, alpha, beta = theta
    u = np.stack([a - alpha * log_n, b - beta * log_d, np.full(log_n.shape, e)])
    m = u.max(0)
    p = np.exp(u - m)
    s = p.sum(0)
    r = m + np.log(s) - log_l
    ar = np.abs(r)
    h = np.where(ar <= delta, 0.5 * r * r, delta * (ar - 0.5 * delta))
    psi = np.clip(r, -delta, delta) * w
    p /= s
    g = np.array(
        [
            psi @ p[0],
            psi @ p[1],
            psi @ p[2],
            -(psi * p[0]) @ log_n,
            -(psi * p[1]) @ log_d,
        ]
    )
    return float(w @ h), g


def _scipy(starts, args, method, jac, tight):
    options = {"maxiter": 20000}
    if tight:
        options.update(gtol=1e-12)
        if method == "L-BFGS-B":
            options.update(ftol=1e-15)
    fun = _objective if jac else (lambda x, *a: _objective(x, *a)[0])
    t0 = time.perf_counter()
    results = [
        minimize(fun, x0, args=args, jac=jac or None, method=method, options=options)
        for x0 in starts
    ]
    elapsed = time.perf_counter() - t0
    return results, elapsed


def _status(status) -> str:
    counts = np.bincount(np.asarray(status), minlength=5)
    return f"{counts[0]} / {counts[3]} / {counts[1] + counts[2] + counts[4]}"


def _timed(fn, repeats, cpu=False):
    """Min wall time of ``repeats`` calls after a warm-up (and min CPU time)."""
    fn()  # compile and warm up
    times, cpus = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return (out, min(times), min(cpus)) if cpu else (out, min(times))


def _floor_fn(log_n, log_d, log_l, delta=1e-3):
    """Batched Huber objective and gradient, closed form: the floor of a step."""
    import jax.numpy as jnp

    def objective_and_gradient(theta, weights):
        a, b, e, alpha, beta = (theta[:, i] for i in range(5))

        def body(acc, xs):
            ln, ld, ll, w = xs
            u1, u2 = a - alpha * ln, b - beta * ld
            m = jnp.maximum(jnp.maximum(u1, u2), e)
            e1, e2, e3 = jnp.exp(u1 - m), jnp.exp(u2 - m), jnp.exp(e - m)
            total = e1 + e2 + e3
            r = m + jnp.log(total) - ll
            ar = jnp.abs(r)
            h = jnp.where(ar <= delta, 0.5 * r * r, delta * (ar - 0.5 * delta))
            psi = jnp.clip(r, -delta, delta) * w / total
            terms = (
                w * h,
                psi * e1,
                psi * e2,
                psi * e3,
                -psi * e1 * ln,
                -psi * e2 * ld,
            )
            return [x + t for x, t in zip(acc, terms, strict=True)], None

        init = [jnp.zeros(theta.shape[0], theta.dtype)] * 6
        acc, _ = jax.lax.scan(body, init, (log_n, log_d, log_l, weights.T))
        return acc[0], jnp.stack(acc[1:], axis=1)

    return jax.jit(objective_and_gradient)


def _approach2_rows(smoke: bool, repeats: int) -> list[dict]:
    """Approach 2 with bootstrap on Porian et al.'s isoFLOP runs vs NumPy."""
    from jscale import isoflop

    values, _ = fitting.read_columns(
        fitting.example_path("porian_isoflops"),
        ("compute_flops", "n_params", "loss"),
        columns={"compute_flops": "flops", "n_params": "params"},
        where={"dataset": "rw", "config_label": "Optimizer tuning (no decay)"},
    )
    num = 64 if smoke else 4000
    sub = 16 if smoke else 200
    rows = []
    with jax.enable_x64(True):
        runs = isoflop.group_runs(
            values["compute_flops"], values["n_params"], values["loss"], window=0.5
        )
        args = (runs.compute_flops, runs.n_params, runs.loss, runs.mask)
        boot, seconds = _timed(
            lambda: isoflop.approach2_bootstrap(
                jax.random.key(0), *args, num_draws=num
            ),
            repeats,
        )
    counts = np.asarray(boot.weights)
    log_n, log_c = np.log(runs.n_params), np.log(runs.compute_flops)
    t0 = time.perf_counter()
    ref = []
    for i in range(sub):
        vertex = []
        for k in range(len(log_c)):
            used = counts[i, k] > 0
            if len(np.unique(log_n[k][used])) < 3:
                vertex.append(np.nan)
                continue
            k2, k1, _ = np.polyfit(
                log_n[k][used], runs.loss[k][used], 2, w=np.sqrt(counts[i, k][used])
            )
            vertex.append(-k1 / (2 * k2) if k2 > 0 else np.nan)
        vertex = np.array(vertex)
        ok = np.isfinite(vertex)
        ref.append(np.polyfit(log_c[ok], vertex[ok], 1)[0])
    np_rate = sub / (time.perf_counter() - t0)
    err = float(np.max(np.abs(np.asarray(boot.a)[:sub] - np.array(ref))))
    rows.append(
        {
            "task": "approach2 bootstrap",
            "method": "jscale approach2_bootstrap (Porian rw, 12 budgets)",
            "dtype": "float64",
            "fits": num,
            "seconds": seconds,
            "fits/s": num / seconds,
            "vs scipy": err,
            "speedup": (num / seconds) / np_rate,
            "status": f"{int(np.sum(boot.valid))} valid; a = "
            f"{float(np.median(np.asarray(boot.a))):.4f} (median)",
            "se a": boot.stderr_a,
            "ok": bool(err <= 1e-9),
        }
    )
    rows.append(
        {
            "task": "approach2 bootstrap",
            "method": "NumPy polyfit loop, same counts",
            "dtype": "float64",
            "fits": sub,
            "seconds": sub / np_rate,
            "fits/s": np_rate,
            "speedup": 1.0,
            "status": "",
        }
    )
    return rows


def run(smoke: bool) -> list[dict]:
    data, source = _data()
    grid = fitting.hoffmann_grid()
    num_starts = 60 if smoke else 4500
    num_boot = 64 if smoke else 4000
    starts = grid[:: len(grid) // num_starts][:num_starts]
    # SciPy subsets (evenly spread over the grid / the resamples)
    sub = {"numerical": 4 if smoke else 30, "analytic": 8 if smoke else 150}
    boot_sub = 4 if smoke else 100
    repeats = 1 if smoke else 3
    log_n, log_d, log_l = (np.log(data[k]) for k in ("n_params", "n_tokens", "loss"))
    ones = np.ones_like(log_n)
    rows = []

    # --- SciPy grid baselines (float64)
    sc = {}
    configs = [
        ("scipy L-BFGS-B numerical grad", "L-BFGS-B", False, False, "numerical"),
        (
            "scipy L-BFGS-B analytic grad (default tol)",
            "L-BFGS-B",
            True,
            False,
            "analytic",
        ),
        (
            "scipy L-BFGS-B analytic grad (converged)",
            "L-BFGS-B",
            True,
            True,
            "analytic",
        ),
        ("scipy BFGS analytic grad", "BFGS", True, True, "analytic"),
    ]
    for name, method, jac, tight, which in configs:
        idx = np.linspace(0, num_starts - 1, sub[which]).astype(int)
        res, elapsed = _scipy(
            starts[idx], (log_n, log_d, log_l, ones), method, jac, tight
        )
        funs = np.array([r.fun if np.isfinite(r.fun) else np.inf for r in res])
        sc[name] = (idx, funs, len(idx) / elapsed)
    ref_name = "scipy L-BFGS-B analytic grad (converged)"

    # --- jscale grid, per dtype
    for dtype in ("float64", "float32"):
        with jax.enable_x64(dtype == "float64"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            fit, seconds = _timed(lambda: fitting.fit(data, starts=starts), repeats)
        f_starts = np.asarray(fit.starts.objective, np.float64)
        best = float(
            _objective(np.asarray(fit.theta, np.float64), log_n, log_d, log_l, ones)[0]
        )
        idx, funs, ref_rate = sc[ref_name]
        # jscale's best against SciPy's best from the same starts (the subset)
        gap = best - float(np.min(funs))
        ok = gap <= (1e-12 if dtype == "float64" else 1e-6) * abs(float(np.min(funs)))
        rows.append(
            {
                "task": "grid",
                "method": "jscale grid",
                "dtype": dtype,
                "fits": num_starts,
                "seconds": seconds,
                "fits/s": num_starts / seconds,
                "objective": best,
                "vs scipy": gap,
                "speedup": (num_starts / seconds) / ref_rate,
                "status": _status(fit.starts.status),
                "ok": bool(ok),
            }
        )
        del f_starts
    ours = rows[0]["fits/s"]
    for name, (idx, funs, rate) in sc.items():
        rows.append(
            {
                "task": "grid",
                "method": name,
                "dtype": "float64",
                "fits": len(idx),
                "seconds": len(idx) / rate,
                "fits/s": rate,
                "objective": float(np.min(funs)),
                "vs scipy": float(np.min(funs)) - float(np.min(sc[ref_name][1])),
                "speedup": rate / ours,
                "status": "",
            }
        )

    # --- bootstrap
    with jax.enable_x64(True):
        full = fitting.fit(data, starts=starts)
        weights = np.asarray(
            fitting.resample_weights(jax.random.key(0), len(log_n), num_boot)
        )
    theta0 = np.asarray(full.theta, np.float64)
    bidx = np.linspace(0, num_boot - 1, boot_sub).astype(int)
    t0 = time.perf_counter()
    ref = [
        minimize(
            _objective,
            theta0,
            args=(log_n, log_d, log_l, weights[i]),
            jac=True,
            method="L-BFGS-B",
            options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 20000},
        )
        for i in bidx
    ]
    ref_rate = boot_sub / (time.perf_counter() - t0)
    ref_f = np.array([r.fun for r in ref])
    # the floor: one batched objective + gradient at the warm start (float64)
    with jax.enable_x64(True):
        floor_fn = _floor_fn(*(jax.numpy.asarray(x) for x in (log_n, log_d, log_l)))
        theta_b = jax.numpy.broadcast_to(jax.numpy.asarray(theta0), (num_boot, 5))
        w_b = jax.numpy.asarray(weights)
        _, floor_s = _timed(lambda: floor_fn(theta_b, w_b), 5 if not smoke else 1)
    for dtype in ("float64", "float32"):
        with jax.enable_x64(dtype == "float64"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            init = fitting.fit(data, starts=starts) if dtype == "float32" else full
            boot, seconds, cpu = _timed(
                lambda init=init: fitting.bootstrap(
                    None, data, weights=weights, init=init
                ),
                repeats,
                cpu=True,
            )
        th = np.asarray(boot.fits.theta, np.float64)
        mine = np.array(
            [_objective(th[i], log_n, log_d, log_l, weights[i])[0] for i in bidx]
        )
        worst = float(np.max((mine - ref_f) / np.abs(ref_f)))
        tol = 1e-12 if dtype == "float64" else 1e-5
        se = fitting.named(boot, "stderr")
        steps = float(np.mean(np.asarray(boot.fits.steps)))
        rows.append(
            {
                "task": "bootstrap",
                "method": "jscale bootstrap",
                "dtype": dtype,
                "fits": num_boot,
                "seconds": seconds,
                "cpu s": cpu,
                "steps/fit": steps,
                "x floor": seconds / (steps * floor_s) if dtype == "float64" else None,
                "fits/s": num_boot / seconds,
                "objective": float(np.median(np.asarray(boot.fits.objective))),
                "vs scipy": worst,
                "speedup": (num_boot / seconds) / ref_rate,
                "status": _status(boot.fits.status),
                "se alpha": se["alpha"],
                "se A": se["A"],
                "ok": bool(worst <= tol),
            }
        )
    rows.append(
        {
            "task": "bootstrap",
            "method": "floor: one batched objective + gradient (closed form)",
            "dtype": "float64",
            "fits": num_boot,
            "seconds": floor_s,
            "fits/s": num_boot / floor_s,
            "status": f"{1e6 * floor_s / num_boot:.2f} us per fit",
        }
    )
    rows.append(
        {
            "task": "bootstrap",
            "method": "scipy L-BFGS-B analytic grad (converged), warm",
            "dtype": "float64",
            "fits": boot_sub,
            "seconds": boot_sub / ref_rate,
            "fits/s": ref_rate,
            "objective": float(np.median(ref_f)),
            "speedup": 1.0,
            "status": "",
        }
    )
    for row in rows:
        row["data"] = source
    rows += _approach2_rows(smoke, repeats)
    for row in rows[-2:]:
        row["data"] = "porian"
    return rows
