"""Fitting: recovery, SciPy references, Epoch's replication, bootstrap, errors, CLI.

Most tests run in the suite's dtype (float32 or float64). float32 fits warn that x64 is
needed for published-quality numbers; they are checked against float64 references
with the tolerances stated in ``F32_RTOL``. The Epoch acceptance tests compute in
float64 in both runs (``jax.enable_x64``), as the CLI does.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _reference import minimize_multistart, perturbed
from conftest import X64

from jscale import cli, fitting, laws

EPOCH_CSV = (
    Path(__file__).resolve().parents[1]
    / ".."
    / "shared"
    / "data"
    / "epoch-chinchilla"
    / "svg_extracted_data.csv"
).resolve()

TRUE = laws.get("chinchilla-besiroglu2024").params
# Hoffmann 2022's unrounded Approach-3 values (a, b, e, alpha, beta), the start of
# Besiroglu et al.'s fits (epoch-research/analyzing-chinchilla, data_analysis.ipynb).
HOFFMANN_UNROUNDED = [6.0073404, 6.0179186, 0.5267228, 0.33917084, 0.2849083]
STARTS = np.array(
    [
        HOFFMANN_UNROUNDED,
        [5.0, 5.0, 0.0, 0.5, 0.5],
        [10.0, 10.0, 0.5, 0.5, 0.5],
        [0.0, 5.0, 1.0, 0.0, 0.5],
    ]
)
# float32 against float64: the objective is accurate to ~1e-7 relative, so on a
# 30-point problem the exponents move by up to ~1e-3 and the coefficients A, B (whose
# logs are strongly correlated with the exponents) by ~1e-2; E is better determined.
F32_RTOL = {"E": 2e-3, "A": 3e-2, "B": 3e-2, "alpha": 3e-3, "beta": 3e-3}


@contextlib.contextmanager
def quiet():
    """Silence the float32 precision warning (tested on its own below)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def synthetic(noise: float, seed: int = 0):
    n = np.repeat(np.logspace(7.5, 10.5, 6), 5)
    d = np.tile(np.logspace(9, 12, 5), 6)
    loss = np.asarray(laws.get("chinchilla-besiroglu2024").loss(n, d), np.float64)
    loss = loss * np.exp(np.random.default_rng(seed).normal(0.0, noise, n.size))
    return {"n_params": n, "n_tokens": d, "loss": loss}


# ------------------------------------------------------------ float64 NumPy reference


def np_objective(theta, n, d, loss, delta=1e-3, weights=None):
    a, b, e, alpha, beta = theta
    u = np.stack([a - alpha * np.log(n), b - beta * np.log(d), np.full(n.shape, e)])
    m = u.max(0)
    p = np.exp(u - m)
    s = p.sum(0)
    r = m + np.log(s) - np.log(loss)
    w = np.ones_like(r) if weights is None else weights
    h = np.where(np.abs(r) <= delta, 0.5 * r * r, delta * (np.abs(r) - 0.5 * delta))
    psi = np.clip(r, -delta, delta) * w
    p = p / s
    grad = np.array(
        [
            np.sum(psi * p[0]),
            np.sum(psi * p[1]),
            np.sum(psi * p[2]),
            -np.sum(psi * p[0] * np.log(n)),
            -np.sum(psi * p[1] * np.log(d)),
        ]
    )
    return np.sum(w * h), grad


# The SciPy references' box in the fit's coordinates (log A, log B, log E, alpha,
# beta): every start (Hoffmann's grid: a, b in [0, 25], e in [-1, 1], exponents in
# [0, 2]) and every optimum in this file lies well inside it, and exp() of it
# cannot overflow.
FIT_BOX = [(-20.0, 60.0), (-20.0, 60.0), (-10.0, 10.0), (-2.0, 10.0), (-2.0, 10.0)]


def scipy_fit(data, starts, weights=None, bounds=None):
    """SciPy L-BFGS-B with the analytic gradient, tight tolerances, guarded, in
    ``FIT_BOX`` (narrowed by ``bounds``), the best of ``starts`` kept
    (tests/_reference.py)."""
    args = (data["n_params"], data["n_tokens"], data["loss"], 1e-3, weights)
    box = [
        (
            lo if b is None or b[0] is None else max(lo, b[0]),
            hi if b is None or b[1] is None else min(hi, b[1]),
        )
        for (lo, hi), b in zip(FIT_BOX, bounds or [None] * 5, strict=True)
    ]
    return minimize_multistart(
        np_objective,
        starts,
        box,
        method="L-BFGS-B",
        jac=True,
        args=args,
        options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 10000},
    )


def params_of(theta):
    a, b, e, alpha, beta = theta
    return {
        "E": math.exp(e),
        "A": math.exp(a),
        "B": math.exp(b),
        "alpha": alpha,
        "beta": beta,
    }


# ------------------------------------------------------------------------- recovery


def test_recovers_known_law_without_noise():
    with quiet():
        r = fitting.fit(synthetic(0.0), starts=STARTS)
    got = fitting.named(r)
    assert int(r.status) == fitting.CONVERGED
    rtol = 1e-6 if X64 else None
    for name in ("E", "A", "B", "alpha", "beta"):
        want = float(getattr(TRUE, name))
        tol = rtol if X64 else F32_RTOL[name]
        assert got[name] == pytest.approx(want, rel=tol), name
    assert float(r.objective) < (1e-20 if X64 else 1e-9)


def test_noisy_fit_matches_scipy_and_is_at_least_as_low():
    data = synthetic(0.01)
    ref = scipy_fit(data, STARTS)
    with quiet():
        r = fitting.fit(data, starts=STARTS)
    # The objective of jscale's estimate, evaluated in float64 NumPy.
    f, _ = np_objective(np.asarray(r.theta, np.float64), *data.values())
    if X64:
        assert f <= ref.fun * (1 + 1e-12)
        want = params_of(ref.x)
        for name, value in fitting.named(r).items():
            assert value == pytest.approx(want[name], rel=1e-5), name
    else:
        assert f <= ref.fun * (1 + 1e-5)
        want = params_of(ref.x)
        for name, value in fitting.named(r).items():
            assert value == pytest.approx(want[name], rel=F32_RTOL[name]), name
    assert r.starts.objective.shape == (len(STARTS),)
    allowed = {fitting.CONVERGED, fitting.MAX_STEPS, fitting.STALLED}
    assert set(np.asarray(r.starts.status).tolist()) <= allowed
    assert float(r.decrement) <= r.settings["ftol"] * float(r.objective)


@pytest.mark.skipif(X64, reason="the precision warning is for float32")
def test_float32_warns_that_x64_is_needed():
    with pytest.warns(RuntimeWarning, match="x64"):
        fitting.fit(synthetic(0.0), starts=STARTS)


# ------------------------------------------------------------ tied, frozen, bounded


def test_tied_frozen_bounded_against_scipy():
    data = synthetic(0.01)
    with quiet():
        tied = fitting.fit(data, starts=STARTS, tie=[("alpha", "beta")])
        frozen = fitting.fit(data, starts=STARTS, freeze={"E": 1.8172})
        bounded = fitting.fit(data, starts=STARTS, bounds={"alpha": (None, 0.3)})
    assert float(tied.params.alpha) == float(tied.params.beta)
    assert float(frozen.params.E) == pytest.approx(1.8172, rel=1e-6)
    assert float(bounded.params.alpha) <= 0.3 * (1 + 1e-6)
    # SciPy references: tie and freeze as bounds/reparameterization, from the same
    # starts; bounds as L-BFGS-B bounds.
    box = [(None, None)] * 2 + [(None, None), (None, 0.3), (None, None)]
    ref = scipy_fit(
        data, np.clip(STARTS, -np.inf, [np.inf] * 3 + [0.3, np.inf]), None, box
    )
    fb, _ = np_objective(np.asarray(bounded.theta, np.float64), *data.values())
    assert fb <= ref.fun * (1 + (1e-10 if X64 else 1e-5))
    e0 = math.log(1.8172)
    fz = [np_objective(np.asarray(frozen.theta, np.float64), *data.values())[0]]
    ref_frozen = scipy_fit(
        data,
        np.where(np.arange(5) == 2, e0, STARTS),
        None,
        [(None, None), (None, None), (e0, e0), (None, None), (None, None)],
    )
    assert fz[0] <= ref_frozen.fun * (1 + (1e-10 if X64 else 1e-5))


# --------------------------------------------------------------------------- errors


def test_bad_data_names_rows_and_columns(tmp_path):
    data = synthetic(0.0)
    bad = dict(data, loss=data["loss"].copy())
    bad["loss"][[3, 7]] = [np.nan, -1.0]
    with pytest.raises(ValueError, match=r"column 'loss'.*row\(s\) 3, 7"):
        fitting.fit(bad, starts=STARTS[:1])
    with pytest.raises(ValueError, match=r"missing column\(s\) 'n_tokens'.*present"):
        fitting.fit({"n_params": data["n_params"], "loss": data["loss"]})
    few = {k: v[:3] for k, v in data.items()}
    with pytest.raises(ValueError, match="3 observations cannot determine 5 free"):
        fitting.fit(few, starts=STARTS[:1])
    with pytest.raises(ValueError, match="unknown parameter 'gamma'"):
        fitting.fit(data, starts=STARTS[:1], freeze={"gamma": 1.0})
    with pytest.raises(ValueError, match="unknown law family 'gpt'.*moe"):
        fitting.fit(data, "gpt")
    path = tmp_path / "bad.csv"
    path.write_text("n_params,n_tokens,loss\n1e9,2e10,2.5\n1e9,2e10,abc\n")
    with pytest.raises(ValueError, match="row 1 is not a number"):
        fitting.observations(path)
    # experts count whole experts (>= 1); rows are numbered in the source even
    # after a where-selection
    moe = {
        "n_active_params": [1e8, 2e8, 4e8, 8e8],
        "experts": [1.0, 8.0, 0.5, 8.0],
        "loss": [3.0, 2.9, 2.8, 2.7],
        "set": ["a", "b", "b", "b"],
    }
    with pytest.raises(
        ValueError, match=r"'experts' must be finite and >= 1.*row\(s\) 2"
    ):
        fitting.observations(moe, "moe", where={"set": "b"})
    with pytest.raises(ValueError, match="no rows match where set='c'"):
        fitting.observations(moe, "moe", where={"set": "c"})
    with pytest.raises(ValueError, match="where: no column 'router'"):
        fitting.observations(moe, "moe", where={"router": "Hash"})


# ------------------------------------------------------------------ inputs and CLI


class FrameLike:
    """A minimal DataFrame stand-in: ``columns`` and ``[name]`` (no pandas)."""

    def __init__(self, table):
        self._table = table
        self.columns = list(table)

    def __getitem__(self, name):
        return self._table[name]


def write_csv(path, data, names=("n_params", "n_tokens", "loss")):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(names)
        for row in zip(*data.values(), strict=True):
            w.writerow([repr(float(v)) for v in row])


def test_csv_column_mapping_and_compute_flops(tmp_path):
    data = synthetic(0.01)
    path = tmp_path / "runs.csv"
    flops = {
        "N": data["n_params"],
        "C": 6 * data["n_params"] * data["n_tokens"],
        "L": data["loss"],
    }
    write_csv(path, flops, names=("N", "C", "L"))
    cols = {"n_params": "N", "compute_flops": "C", "loss": "L"}
    obs = fitting.observations(path, columns=cols)
    np.testing.assert_allclose(obs.inputs["n_tokens"], data["n_tokens"], rtol=1e-6)
    frame = fitting.observations(FrameLike(flops), columns=cols)
    np.testing.assert_allclose(frame.loss, obs.loss)
    with quiet():
        a = fitting.fit(obs, starts=STARTS)
        b = fitting.fit(data, starts=STARTS)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-4 if X64 else 5e-2)


def test_cli_fit_json_contract(tmp_path, capsys):
    path = tmp_path / "runs.csv"
    write_csv(path, synthetic(0.01))
    starts = [a for s in STARTS for a in ("--start", ",".join(str(v) for v in s))]
    code = cli.main(["fit", str(path), *starts, "--bootstrap", "8", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    names = ["E", "A", "B", "alpha", "beta"]
    assert list(result["params"]) == names
    assert list(result["stderr"]) == names
    assert all(len(result["intervals"][k]) == 2 for k in names)
    assert result["status"] == "converged"
    assert result["bootstrap"]["status"] == {"converged": 8}
    assert result["settings"]["delta"] == 1e-3
    assert math.isfinite(result["objective"])
    # bad input: one line on stderr, exit code 2
    code = cli.main(["fit", str(path), "--column", "loss=L", "--json"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "missing column(s) 'L'" in err


# ----------------------------------------------------------------------- bootstrap


def test_bootstrap_matches_scipy_reference_on_same_resamples():
    data = synthetic(0.02, seed=3)
    with quiet():
        full = fitting.fit(data, starts=STARTS)
        boot = fitting.bootstrap(jax.random.key(7), data, num_draws=8, init=full)
    w = np.asarray(boot.weights, np.float64)
    assert w.shape == (8, 30) and np.all(w.sum(1) == 30)
    x0 = np.asarray(full.theta, np.float64)
    # SciPy per resample from jscale's start (the full fit) and two perturbations
    # of it by 1e-3 (the same basin: these refits are local by design; Hoffmann's
    # starts reach other minima on some resamples), the best kept.
    refs = [
        scipy_fit(data, [x0, *perturbed(x0, FIT_BOX, 1e-3, 2, seed=k)], weights=wi)
        for k, wi in enumerate(w)
    ]
    # Each refit's objective (float64, at jscale's theta) is no worse than SciPy's:
    # float64 to rounding (observed 4e-14); float32 thetas are resolved to ~1e-7
    # relative per residual, which moves the objective by up to ~1e-6 (observed).
    tol = 1e-10 if X64 else 1e-5
    theta = np.asarray(boot.fits.theta, np.float64)
    ours = [
        np_objective(t, *data.values(), 1e-3, wi)[0]
        for t, wi in zip(theta, w, strict=True)
    ]
    for k in range(len(w)):
        assert ours[k] <= refs[k].fun * (1 + tol), (k, ours[k], refs[k].fun)
    # The refits and their spread where SciPy reached the optimum on every one.
    if any(b.fun > f * (1 + tol) for b, f in zip(refs, ours, strict=True)):
        return
    ref_public = np.array([list(params_of(b.x).values()) for b in refs])
    got = np.stack(
        [np.asarray(getattr(boot.params, k)) for k in ("E", "A", "B", "alpha", "beta")],
        1,
    )
    se = fitting.named(boot, "stderr")
    if X64:
        np.testing.assert_allclose(got, ref_public, rtol=1e-4)
        for i, name in enumerate(("E", "A", "B", "alpha", "beta")):
            want = np.std(ref_public[:, i], ddof=1)
            assert se[name] == pytest.approx(want, rel=1e-4)
    else:
        # float32 resolves the well-determined E, but on ill-conditioned resamples
        # of 30 points A, B and the exponents can move by tens of percent: the
        # warning says to enable x64. Check E and the exponents' spread loosely.
        np.testing.assert_allclose(got[:, 0], ref_public[:, 0], rtol=2e-2)
        for i, name in ((3, "alpha"), (4, "beta")):
            want = np.std(ref_public[:, i], ddof=1)
            assert se[name] == pytest.approx(want, rel=0.5)
    assert np.all(np.asarray(boot.fits.status) == fitting.CONVERGED)
    assert boot.params.A.shape == (8,)


def test_one_compile_serves_many_bootstraps():
    from jscale.fitting.bootstrap import _solve_resamples

    data = synthetic(0.02, seed=3)
    with quiet():
        full = fitting.fit(data, starts=STARTS)
        first = fitting.bootstrap(jax.random.key(1), data, num_draws=8, init=full)
        before = _solve_resamples._cache_size()
        fitting.bootstrap(jax.random.key(2), data, num_draws=8, init=full)
        again = fitting.bootstrap(jax.random.key(1), data, num_draws=8, init=full)
    assert _solve_resamples._cache_size() == before
    np.testing.assert_array_equal(np.asarray(again.fits.theta), first.fits.theta)
    with pytest.raises(ValueError, match="num_draws must be a whole number >= 2"):
        fitting.bootstrap(jax.random.key(1), data, num_draws=1, init=full)
    with pytest.raises(TypeError, match="num_resamples"):  # the old name is gone
        fitting.bootstrap(jax.random.key(1), data, num_resamples=8, init=full)


def test_damped_newton_solver_of_the_fits():
    # jscale._solver.damped_newton, written for one problem and vmapped: on the
    # Rosenbrock function from three starts it reaches (1, 1); a start where the
    # objective is not finite is reported as such; a tight step cap as max_steps.
    from jscale import _status
    from jscale._solver import damped_newton

    def fn(z, args, exact):
        f = lambda v: (1.0 - v[0]) ** 2 + args * (v[1] - v[0] ** 2) ** 2  # noqa: E731
        value = f(z)
        return (
            jnp.where(z[0] > -5.0, value, jnp.nan),
            jax.grad(f)(z),
            jax.hessian(f)(z),
        )

    starts = jnp.array([[-1.2, 1.0], [2.0, 2.0], [0.0, 0.0], [-6.0, 0.0]])
    inf = jnp.full(2, jnp.inf)

    def solve(max_steps):
        return jax.vmap(
            lambda z: damped_newton(
                fn, z, 100.0, -inf, inf, ftol=1e-10, floor=1e-6, max_steps=max_steps
            )
        )(starts)

    st = solve(200)
    status = np.asarray(st.status)
    assert status.tolist()[:3] == [_status.CONVERGED] * 3
    assert status[3] == _status.NONFINITE
    np.testing.assert_allclose(st.z[:3], 1.0, atol=1e-4 if X64 else 2e-2)
    capped = solve(2)
    assert int(capped.status[0]) == _status.MAX_STEPS


def test_fit_under_jit_and_vmap():
    data = synthetic(0.01)
    n, d = data["n_params"], data["n_tokens"]

    def theta(loss):
        obs = {"n_params": n, "n_tokens": d, "loss": loss}
        return fitting.fit(obs, starts=STARTS).theta

    with quiet():
        eager = theta(data["loss"])
        jitted = jax.jit(theta)(jnp.asarray(data["loss"]))
        losses = jnp.stack(
            [jnp.asarray(data["loss"]), jnp.asarray(data["loss"]) * 1.01]
        )
        batched = jax.vmap(theta)(losses)
    np.testing.assert_allclose(jitted, eager, rtol=1e-10 if X64 else 1e-5)
    np.testing.assert_allclose(batched[0], eager, rtol=1e-8 if X64 else 1e-3)
    # Scaling every loss by 1.01 moves only E, A and B by that factor (a, b, e by
    # log 1.01); the exponents stay, to the fit's convergence tolerance (ftol 1e-10
    # of the objective leaves ~1e-5 relative in the flattest direction).
    np.testing.assert_allclose(batched[1][3:], eager[3:], rtol=1e-4 if X64 else 1e-2)


# --------------------------------------------------------------------- other laws


def test_kaplan_family_recovers_its_constants():
    p = laws.get("kaplan2020").params
    n = np.repeat(np.logspace(6, 9, 5), 4)
    d = np.tile(np.logspace(8, 11, 4), 5)
    loss = np.asarray(laws.get("kaplan2020").loss(n, d), np.float64)
    with quiet():
        starts = [
            [30.0, 30.0, 0.05, 0.1],
            [35.0, 30.0, 0.1, 0.1],
            [30.0, 25.0, 0.1, 0.05],
            [25.0, 30.0, 0.1, 0.1],
        ]
        r = fitting.fit(
            {"n_params": n, "n_tokens": d, "loss": loss}, "kaplan", starts=starts
        )
    got = fitting.named(r)
    tol = 1e-5 if X64 else 2e-2
    assert got["alpha_n"] == pytest.approx(p.alpha_n, rel=tol)
    assert got["alpha_d"] == pytest.approx(p.alpha_d, rel=tol)
    assert got["n_c"] == pytest.approx(p.n_c, rel=tol * 100)


# --------------------------------------------------------- Epoch's replication (f64)


def epoch_data():
    if not EPOCH_CSV.exists():
        pytest.skip(f"Epoch's extracted Chinchilla data not found at {EPOCH_CSV}")
    cols = {"n_params": "Model Size", "compute_flops": "Training FLOP"}
    with open(EPOCH_CSV, newline="") as f:
        rows = list(csv.DictReader(f))
    loss = np.array([float(r["loss"]) for r in rows])
    # Besiroglu et al.'s rule: drop the 5 highest losses (240 rows remain).
    keep = loss < np.sort(loss)[-5]
    table = {c: np.array([float(r[c]) for r in rows])[keep] for c in cols.values()}
    table["loss"] = loss[keep]
    return fitting.observations(table, columns=cols)


def test_epoch_maximum_likelihood_reproduces_published_estimates():
    with jax.enable_x64(True):
        obs = epoch_data()
        assert obs.loss.shape == (240,)
        start = fitting.MODELS["chinchilla"].to_params(np.array(HOFFMANN_UNROUNDED))
        r = fitting.fit(obs, objective="ml", starts=start)
        got = fitting.named(r)
    assert int(r.status) == fitting.CONVERGED
    # Besiroglu et al. 2024 (arXiv:2404.10102), abstract and Table 1 / Eq. 5:
    # A = 482.01, B = 2085.43, E = 1.82, alpha = 0.3478, beta = 0.3658.
    assert got["A"] == pytest.approx(482.01, abs=0.01)
    assert got["B"] == pytest.approx(2085.43, abs=0.01)
    assert got["E"] == pytest.approx(1.82, abs=0.005)
    assert got["alpha"] == pytest.approx(0.3478, abs=1e-4)
    assert got["beta"] == pytest.approx(0.3658, abs=1e-4)
    # Their notebook's unrounded estimate (a, b, e, alpha, beta), to its 8 digits.
    published = [6.17795598, 7.64273236, 0.59711196, 0.34781303, 0.36585412]
    np.testing.assert_allclose(np.asarray(r.theta[:5]), published, atol=2e-8)


def test_epoch_grid_at_least_as_low_as_scipy_and_bootstrap_stderr():
    with jax.enable_x64(True):
        obs = epoch_data()
        starts = fitting.hoffmann_grid()[::300]  # 15 of Hoffmann's 4500 starts
        r = fitting.fit(obs, starts=starts, keep=4)
        data = {
            "n_params": np.asarray(obs.inputs["n_params"]),
            "n_tokens": np.asarray(obs.inputs["n_tokens"]),
            "loss": np.asarray(obs.loss),
        }
        ref = scipy_fit(data, starts)
        assert float(r.objective) <= ref.fun * (1 + 1e-12)
        # The same resamples as Besiroglu et al.'s notebook (np.random.seed(42);
        # np.random.choice over the 240 rows), the first 500 of their 4000.
        np.random.seed(42)
        idx = [np.random.choice(240, size=240, replace=True) for _ in range(500)]
        counts = np.stack([np.bincount(i, minlength=240) for i in idx])
        start = fitting.MODELS["chinchilla"].to_params(np.array(HOFFMANN_UNROUNDED))
        boot = fitting.bootstrap(None, obs, weights=counts, init=start)
    assert np.all(np.asarray(boot.fits.status) == fitting.CONVERGED)
    se = fitting.named(boot, "stderr")
    # Published bootstrap standard errors (4000 resamples; arXiv:2404.10102,
    # Table 1): A 124.58, B 1293.23, E 0.03, alpha 0.02, beta 0.02. With all 4000 of
    # their resamples jscale gives A 124.49, B 1293.17, E 0.0257, alpha 0.0154,
    # beta 0.0206 (benchmarks/RESULTS.md); 500 of them stay within sampling error.
    assert se["A"] == pytest.approx(124.58, rel=0.2)
    assert se["B"] == pytest.approx(1293.23, rel=0.4)
    assert round(se["E"], 2) == 0.03
    assert round(se["alpha"], 2) == 0.02
    assert round(se["beta"], 2) == 0.02


# ----------------------------------------------------------- shipped example data


def test_examples_ship_with_licence_and_source():
    for name, (_file, columns) in fitting.EXAMPLES.items():
        path = Path(fitting.example_path(name))
        assert path.exists(), name
        folder = path.parent
        assert (folder / "LICENSE").stat().st_size > 500, name
        source = (folder / "SOURCE.md").read_text()
        assert "Licen" in source and "arXiv:" in source, name
        assert set(columns) <= set(fitting.DEFAULT_COLUMNS), name
    # Epoch's extraction has no licence: it must not be shipped.
    data_dir = Path(fitting.example_path("beyond_chinchilla")).parents[1]
    assert not list(data_dir.glob("**/svg_extracted_data.csv"))


def test_cli_fit_law_choices_are_the_models():
    assert sorted(cli.FIT_LAWS) == sorted(fitting.MODELS)


# ------------------------------------------------------------------ kaplan (noisy)


def kaplan_np_objective(theta, n, d, loss, delta=1e-3):
    """Kaplan 2020 L(N, D) (Eq. 1.5) in float64 NumPy: the Huber sum of log residuals
    with theta = (log N_c, log D_c, alpha_N, alpha_D)."""
    log_n_c, log_d_c, alpha_n, alpha_d = theta
    inner = np.logaddexp(
        (alpha_n / alpha_d) * (log_n_c - np.log(n)), log_d_c - np.log(d)
    )
    r = alpha_d * inner - np.log(loss)
    return np.sum(
        np.where(np.abs(r) <= delta, 0.5 * r * r, delta * (np.abs(r) - 0.5 * delta))
    )


def test_kaplan_noisy_fit_at_least_as_low_as_scipy():
    # Same shapes and starts as test_kaplan_family_recovers_its_constants (one
    # compilation); 1% log-normal noise.
    n = np.repeat(np.logspace(6, 9, 5), 4)
    d = np.tile(np.logspace(8, 11, 4), 5)
    loss = np.asarray(laws.get("kaplan2020").loss(n, d), np.float64)
    loss = loss * np.exp(np.random.default_rng(5).normal(0.0, 0.01, n.size))
    starts = [
        [30.0, 30.0, 0.05, 0.1],
        [35.0, 30.0, 0.1, 0.1],
        [30.0, 25.0, 0.1, 0.05],
        [25.0, 30.0, 0.1, 0.1],
    ]
    with quiet():
        r = fitting.fit(
            {"n_params": n, "n_tokens": d, "loss": loss}, "kaplan", starts=starts
        )
    # SciPy: Nelder-Mead, guarded, in a box in (log N_c, log D_c, alpha_N,
    # alpha_D) well around the starts and Kaplan's constants (log N_c = 31.8,
    # log D_c = 30.5, exponents ~0.1), from the same starts and jscale's answer.
    theta = np.asarray(r.theta, np.float64)
    ref = minimize_multistart(
        kaplan_np_objective,
        [*starts, theta],
        [(0.0, 80.0), (0.0, 80.0), (1e-3, 2.0), (1e-3, 2.0)],
        method="Nelder-Mead",
        args=(n, d, loss),
        options={"xatol": 1e-12, "fatol": 1e-18, "maxiter": 40000},
    )
    mine = kaplan_np_objective(theta, n, d, loss)
    # float64: at least as low as SciPy's best to roundoff; float32: the objective
    # (~1e-4 here) is resolved to ~1e-7 relative per term.
    tol = 1e-9 if X64 else 1e-4
    assert mine <= ref.fun * (1 + tol)
    if X64 and ref.fun <= mine * (1 + tol):  # the argmin, where SciPy reached it
        np.testing.assert_allclose(theta, ref.x, rtol=1e-4)


# ------------------------------------------------------------------ BNSL (synthetic)


def test_bnsl_recovers_a_known_broken_power_law():
    # Caballero 2022 Eq. 1 with one break; the fit starts from the family's
    # default grid (144 starts).
    true = laws.BNSLParams(
        a=0.5, b=20.0, c0=0.3, c=np.array([0.4]), d=np.array([1e5]), f=np.array([0.5])
    )
    x = np.logspace(1, 9, 40)
    y = np.asarray(laws.bnsl.loss(true, x), np.float64)
    with quiet():
        r = fitting.fit({"x": x, "loss": y}, "bnsl")
    got = fitting.named(r)
    want = {"a": 0.5, "b": 20.0, "c0": 0.3, "c_1": 0.4, "d_1": 1e5, "f_1": 0.5}
    assert int(r.status) == fitting.CONVERGED
    # float64: exact data, so the fit is limited by the convergence test (1e-13 of
    # the Huber floor); float32: the log of each prediction carries ~1e-7 error,
    # which the break location and sharpness (the least determined parameters)
    # amplify by up to ~1e3 on 40 points.
    tol = 1e-6 if X64 else 2e-3
    for name, value in want.items():
        assert got[name] == pytest.approx(value, rel=tol), name
    assert r.params.c.shape == (1,)


# ------------------------------------------------------------- MoE (Clark 2022)

LN10 = math.log(10.0)


def clark_np_mse(theta, n, e, loss):
    """Clark 2022 Eq. 1 with the saturating expert count (their example.ipynb), in
    float64 NumPy: the mean squared error of log10 L they minimize.
    theta = (a, b, c, d, log E_start, log E_max)."""
    a, b, c, d, log_start, log_max = theta
    if not log_start < log_max:
        return np.inf
    e_start, e_max = math.exp(log_start), math.exp(log_max)
    k = 1.0 / (1.0 / e_start - 1.0 / e_max)
    e_hat = 1.0 / (1.0 / (e - 1.0 + k) + 1.0 / e_max)
    pred = a * np.log10(n) + b * np.log10(e_hat) + c * np.log10(n) * np.log10(e_hat) + d
    return np.mean((pred - np.log10(loss)) ** 2)


def routing_data(obs):
    return (
        np.asarray(obs.inputs["n_active_params"], np.float64),
        np.asarray(obs.inputs["experts"], np.float64),
        np.asarray(obs.loss, np.float64),
    )


def test_moe_clark_refit_is_the_least_squares_optimum():
    # Clark et al.'s fit (their example.ipynb): S-BASE runs at routing frequency
    # 1/2, k = 1, seed 42, with the dense runs as E = 1, least squares on log10 L.
    # A Huber threshold of 1 exceeds every log residual (< 0.05 here), so jscale's
    # objective is 0.5 * sum(ln residual^2) = 0.5 ln(10)^2 * P * MSE(log10).
    with jax.enable_x64(True):
        obs = fitting.observations(
            fitting.example_path("routing_moe"), "moe", where={"router": "S-Base"}
        )
        r = fitting.fit(obs, "moe", delta=1.0)
    n, e, loss = routing_data(obs)
    assert loss.shape == (58,)
    assert int(r.status) == fitting.CONVERGED
    theta = np.asarray(r.theta, np.float64)
    mse = clark_np_mse(theta, n, e, loss)
    assert float(r.objective) == pytest.approx(0.5 * LN10**2 * 58 * mse, rel=1e-10)
    # SciPy (Nelder-Mead on the NumPy objective, guarded, in a box: a, b, c, d in
    # [-5, 5], log E_start and log E_max in [-3, 12]) from 8 random starts, drawn
    # as the notebook draws them (log2 E_start in [0, 3], log2 E_max in [5, 10]):
    # jscale's optimum is at least as low as the best, and is the same point
    # (E_start, E_max are weakly identified, so they are compared loosely).
    rng = np.random.default_rng(0)
    starts = [
        [
            rng.uniform(-0.2, 0.0),
            rng.uniform(-0.3, 0.0),
            rng.uniform(0.0, 0.03),
            rng.uniform(0.5, 1.5),
            math.log(2.0) * rng.uniform(0.0, 3.0),
            math.log(2.0) * rng.uniform(5.0, 10.0),
        ]
        for _ in range(8)
    ]
    best = minimize_multistart(
        clark_np_mse,
        starts,
        [(-5.0, 5.0)] * 4 + [(-3.0, 12.0)] * 2,
        method="Nelder-Mead",
        args=(n, e, loss),
        options={"xatol": 1e-10, "fatol": 1e-18, "maxiter": 20000},
    )
    assert mse <= best.fun * (1 + 1e-9)
    if best.fun <= mse * (1 + 1e-9):  # the argmin, where SciPy reached it
        np.testing.assert_allclose(theta[:4], best.x[:4], atol=1e-4)
        np.testing.assert_allclose(theta[4:], best.x[4:], atol=1e-2)
    # A fresh refit on these runs (this one, and a SciPy best-of-200 starts:
    # a -0.08302, b -0.11803, c 0.009924, d 1.11357, E_start 2.074, E_max 238.7)
    # has MSE 1.0417e-5 in log10 L; Clark's published constants give 1.36e-5.
    assert mse == pytest.approx(1.0417e-5, rel=1e-4)


def test_moe_clark_refit_agrees_with_published_constants():
    # references-moe.md Sec. 1 (Clark 2022, S-BASE / RL-R / HASH): "a refit on the
    # authors' data agrees to about 1e-3 in a, b, c". E_start and E_max are only
    # weakly identified, so they are frozen at the published values and a, b, c, d
    # refitted. One compilation serves the three routers: every router's fit uses
    # all rows with weight 1 on its own.
    presets = {
        "S-Base": laws.moe.CLARK2022_SBASE,
        "RL-R": laws.moe.CLARK2022_RLR,
        "Hash": laws.moe.CLARK2022_HASH,
    }
    with jax.enable_x64(True):
        obs = fitting.observations(fitting.example_path("routing_moe"), "moe")
        with open(fitting.example_path("routing_moe"), newline="") as f:
            sets = np.array([row["router"] for row in csv.DictReader(f)])
        for name, preset in presets.items():
            p = preset.params
            r = fitting.fit(
                obs,
                "moe",
                delta=1.0,
                freeze={"e_start": p.e_start, "e_max": p.e_max},
                weights=(sets == name).astype(float),
                starts=[[-0.08, -0.1, 0.01, 1.1, 0.0, 0.0]],
            )
            got = fitting.named(r)
            assert int(r.status) == fitting.CONVERGED
            # Published constants are rounded to 3 decimals (+-5e-4). Observed
            # differences: a, c <= 6e-4, b <= 3.7e-3 (S-BASE); bootstrap standard
            # errors of this refit are about 1.5e-3 (a), 1.2e-3 (c), 9.5e-3 (b).
            assert got["a"] == pytest.approx(p.a, abs=1e-3), name
            assert got["c"] == pytest.approx(p.c, abs=1e-3), name
            assert got["b"] == pytest.approx(p.b, abs=5e-3), name
            assert got["d"] == pytest.approx(p.d, abs=5e-3), name


def test_cli_fit_moe_with_where(capsys):
    path = fitting.example_path("routing_moe")
    code = cli.main(
        [
            "fit",
            path,
            "--law",
            "moe",
            "--where",
            "router=S-Base",
            "--delta",
            "1",
            "--json",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    assert list(result["params"]) == ["a", "b", "c", "d", "e_start", "e_max"]
    assert result["observations"] == 58 and result["where"] == {"router": "S-Base"}
    assert result["status"] == "converged"
    # the same fit as the library's (the CLI computes in float64)
    assert result["params"]["a"] == pytest.approx(-0.083025, abs=2e-5)
    assert result["params"]["b"] == pytest.approx(-0.11804, abs=2e-4)


# --------------------------------------------- data-constrained (Muennighoff 2023)

# Muennighoff et al.'s frozen base law (references.md Sec. 4; datablations
# utils/parametric_fit.ipynb) in the fit's coordinates, and their R_D*, R_N*.
MUENNIGHOFF_BASE = {
    "a": 6.255414,
    "b": 7.3049974,
    "e": 0.6254804,
    "alpha": 0.3526596,
    "beta": 0.3526596,
}
R_D_STAR, R_N_STAR = 15.387756, 5.309743
# The SciPy references' box in (log R_D*, log R_N*): these runs' minima lie in
# [1, 100] (see below), so [0.1, 1e4] holds them with a margin.
R_STAR_BOX = [(math.log(0.1), math.log(1e4))] * 2


def muennighoff_np_huber(r_d_star, r_n_star, n, d, u, loss, delta=1e-3):
    """Muennighoff 2023 Sec. 3 (effective data and parameters, U_N = min(N,
    N_opt(U_D))) with the frozen base law, in float64 NumPy: the Huber sum of log
    residuals the authors minimize."""
    A, B, E = (math.exp(MUENNIGHOFF_BASE[k]) for k in ("a", "b", "e"))
    alpha, beta = MUENNIGHOFF_BASE["alpha"], MUENNIGHOFF_BASE["beta"]
    u_d = np.minimum(u, d)
    # 1 - exp(-t) as -expm1(-t): exact for small t (a large R* would otherwise
    # lose the whole decay term to cancellation)
    d_eff = u_d - u_d * r_d_star * np.expm1(-np.maximum(d / u_d - 1, 0) / r_d_star)
    g = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
    u_n = np.minimum(n, g * (g * u_d) ** (beta / alpha))
    n_eff = u_n - u_n * r_n_star * np.expm1(-np.maximum(n / u_n - 1, 0) / r_n_star)
    r = np.log(E + A / n_eff**alpha + B / d_eff**beta) - np.log(loss)
    return np.sum(
        np.where(np.abs(r) <= delta, 0.5 * r * r, delta * (np.abs(r) - 0.5 * delta))
    )


def test_data_constrained_reproduces_muennighoff_on_their_runs():
    name = "datablations"
    with jax.enable_x64(True):
        obs = fitting.observations(
            fitting.example_path(name),
            "data-constrained",
            columns=fitting.EXAMPLES[name][1],
        )
        base = [MUENNIGHOFF_BASE[k] for k in ("a", "b", "e", "alpha", "beta")]
        grid = [
            base + [math.log(rd), math.log(rn)]
            for rd in (2.0, 5.0, 15.0, 50.0)
            for rn in (1.0, 5.0, 20.0)
        ]
        published = base + [math.log(R_D_STAR), math.log(R_N_STAR)]
        r = fitting.fit(
            obs,
            "data-constrained",
            freeze=MUENNIGHOFF_BASE,
            starts=[*grid, published],
        )
    n, d, u = (
        np.asarray(obs.inputs[k], np.float64)
        for k in ("n_params", "n_tokens", "unique_tokens")
    )
    loss = np.asarray(obs.loss, np.float64)
    assert loss.shape == (182,)
    # 1. The law and objective: at the published constants the Huber sum is the
    # notebook's 0.015825936570763588 (printed in float32, good to ~2e-9).
    f_pub = muennighoff_np_huber(R_D_STAR, R_N_STAR, n, d, u, loss)
    assert f_pub == pytest.approx(0.015825936570763588, abs=3e-9)
    # 2. Started at the published values, the fit converges to the nearby local
    # minimum R_D* = 15.3718, R_N* = 5.3151 (SciPy Nelder-Mead on the NumPy
    # objective agrees). The published values sit 1.0e-3 (in log) from it: the
    # authors ran L-BFGS in float32, where the objective (0.0158) is resolved to
    # ~2e-9; the objective's curvature in (log R_D*, log R_N*) there (eigenvalues
    # 1.2e-3 and 3.0e-2) lets a float32 fit stop up to 1.3e-3 (log) away. So the
    # tolerance is 2e-3 relative.
    local = fitting.MODELS["data-constrained"].to_params(r.starts.theta[-1])
    assert int(r.starts.status[-1]) == fitting.CONVERGED
    assert float(local.r_d_star) == pytest.approx(R_D_STAR, rel=2e-3)
    assert float(local.r_n_star) == pytest.approx(R_N_STAR, rel=2e-3)
    # SciPy: Nelder-Mead on the NumPy objective in log R*, guarded, in the box
    # log R* in [log 0.1, log 1e4] (these runs' minima lie in [1, 100]), from the
    # published values and from jscale's local minimum: both in this basin.
    local_log = np.log([float(local.r_d_star), float(local.r_n_star)])
    ref = minimize_multistart(
        lambda x: muennighoff_np_huber(*np.exp(x), n, d, u, loss),
        [np.log([R_D_STAR, R_N_STAR]), local_log],
        R_STAR_BOX,
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-16, "maxiter": 5000},
    )
    assert float(r.starts.objective[-1]) <= ref.fun * (1 + 1e-12)
    if ref.fun <= float(r.starts.objective[-1]) * (1 + 1e-12):  # SciPy reached it
        np.testing.assert_allclose(np.exp(local_log), np.exp(ref.x), rtol=1e-6)
    # 3. Their objective has lower minima elsewhere: from the grid the fit finds
    # R_D* = 95.37, R_N* = 1.706 (Huber sum 0.0158047 < 0.0158259), a local
    # minimum that SciPy confirms. 150 random Nelder-Mead starts on the NumPy
    # objective (log R* uniform in [log 0.5, log 5000]) end at one of a few local
    # minima, this one the lowest; (46.99, 2.330) gives 0.0158074. The valley is
    # flat: these runs barely separate the pairs. The published pair is the best
    # optimum reached from the authors' starts (R* on linspace(0, 20, 4)^2).
    assert int(r.status) == fitting.CONVERGED
    assert float(r.objective) < f_pub - 1.5e-5
    best_log = np.log([float(r.params.r_d_star), float(r.params.r_n_star)])
    ref2 = minimize_multistart(
        lambda x: muennighoff_np_huber(*np.exp(x), n, d, u, loss),
        [best_log + 0.05, best_log - 0.05],
        R_STAR_BOX,
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-16, "maxiter": 5000},
    )
    assert float(r.objective) <= ref2.fun * (1 + 1e-12)
    if ref2.fun <= float(r.objective) * (1 + 1e-12):  # SciPy reached it
        np.testing.assert_allclose(np.exp(best_log), np.exp(ref2.x), rtol=1e-5)
    assert float(r.params.r_d_star) == pytest.approx(95.365, rel=1e-4)
    assert float(r.params.r_n_star) == pytest.approx(1.7059, rel=1e-4)
