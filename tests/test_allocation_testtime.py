"""Test-time compute allocation (repeated sampling) against closed forms, SciPy
(float64), the papers' printed numbers, properties (hypothesis) and gradients."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _reference import (
    ReferenceFailure,
    minimize_bounded,
    minimize_multistart,
    root_bracketed,
)
from conftest import X64, rtol
from hypothesis import given, settings
from hypothesis import strategies as st

from jscale import allocation
from jscale.allocation import testtime
from jscale.laws import inference

DTYPE = jnp.result_type(float)
N_CONFIGS = 200
Params = testtime.CoverageScalingParams
EXAMPLE = Params(a_ref=-2.0, b=-0.5, n_ref=1e9, size_exponent=1.0)

# Closed forms against the engine: the Newton stop is 1e-12 relative in log N in
# float64; in float32 log N ~ 25 carries ~3e-6 absolute error (8 ulps of the stop),
# i.e. ~3e-6 relative in N, and the kinks are resolved to the same.
N_RTOL = 1e-9 if X64 else 5e-5
# Objectives (log FLOPs, log(-log c)) of our plan evaluated in float64: flat at an
# interior optimum; at an end or a kink they move by the slope (up to ~10) times
# the error in log N (above), ~3e-5 in float32.
OBJ_RTOL = 1e-10 if X64 else 3e-5
# k = (log c* / a(N))^(1/b): with |1/b| up to 20 and x off by 3e-6, k moves by up to
# ~1e-4 relative in float32; in the budget problem k = (F - F_train) / F_sample also
# loses the digits that F - F_train cancels (train shares up to 0.99 here, 100x).
K_RTOL = 1e-8 if X64 else 2e-3


# ------------------------------------------------------------ float64 reference


def _log_sample_flops(n, t, ctx, ratio):
    """log FLOPs of one sample: T (2N + 2 n_layers d_model ctx), Kaplan 2020 Table 1
    with N = 12 n_layers d_model^2 and d_model = ratio * n_layers."""
    per_token = 2.0 * n
    if ctx is not None:
        n_layers = (n / (12.0 * ratio**2)) ** (1.0 / 3.0)
        per_token += 2.0 * n_layers * (ratio * n_layers) * ctx
    return math.log(t * per_token)


def _ref(cfg):
    """Float64 helpers for one configuration (independent of jscale)."""
    a, n_ref, s = cfg["a_ref"], cfg["n_ref"], cfg["s"]
    tr = 6.0 * cfg["pretrain"] / cfg["queries"] if cfg["pretrain"] else 0.0

    def log_abs_a(x):
        return math.log(-a) - s * (x - math.log(n_ref))

    def log_cost(x, y):  # y = log k
        n = math.exp(x)
        sample = _log_sample_flops(n, cfg["t"], cfg["ctx"], cfg["ratio"])
        return float(np.logaddexp(y + sample, math.log(tr * n) if tr else -np.inf))

    return log_abs_a, log_cost


def _draw(rng, budget):
    """One random configuration across the valid range. The coverage link is drawn
    through the samples ``k_ref`` (1 to 1e4) the reference model needs for a
    coverage ``c_ref``: ``a_ref = log c_ref / k_ref^b``; sizes span up to 1e3 around
    it, so the optimal plans need at most ~1e7 samples (float32 holds their FLOPs)."""
    b = -rng.uniform(0.15, 1.0)
    c_ref = rng.uniform(0.05, 0.99)
    n_ref = 10 ** rng.uniform(8, 11)
    n_min = n_ref * 10 ** rng.uniform(-2, 1)
    cfg = {
        "a_ref": math.log(c_ref) / (10 ** rng.uniform(0, 4)) ** b,
        "b": b,
        "n_ref": n_ref,
        "s": rng.uniform(0.0, 1.2) if rng.uniform() < 0.9 else 0.0,
        "t": 10 ** rng.uniform(1.5, 4),
        "n_min": n_min,
        "n_max": n_min * (10 ** rng.uniform(0, 3) if rng.uniform() < 0.9 else 1),
        "pretrain": 10 ** rng.uniform(10, 13) if rng.uniform() < 0.7 else None,
        "queries": 10 ** rng.uniform(6, 11),
        "ctx": 10 ** rng.uniform(2, 5) if rng.uniform() < 0.5 else None,
        "ratio": rng.uniform(32, 256),
        "kmax": 10 ** rng.uniform(0.5, 4) if rng.uniform() < 0.4 else np.inf,
    }
    if budget:
        _, log_cost = _ref(cfg)
        one = log_cost(math.log(n_min), 0.0)
        cfg["goal"] = math.exp(one + rng.uniform(-0.3, 8))
    else:
        cfg["goal"] = rng.uniform(0.05, 0.99)
    return cfg


def _configs(seed, budget, feasible_only=True):
    """N_CONFIGS configurations (only feasible ones unless asked)."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < N_CONFIGS:
        cfg = _draw(rng, budget)
        if _feasible(cfg, budget) or not feasible_only:
            out.append(cfg)
    return out


def _solve(cfgs, budget):
    """Solve the configurations eagerly, one call per group of optional cost
    terms, each padded to N_CONFIGS (one compilation serves them all); return the
    list of per-configuration results."""
    out = [None] * len(cfgs)
    keys = sorted({(c["pretrain"] is not None, c["ctx"] is not None) for c in cfgs})
    for key in keys:
        idx = [
            i
            for i, c in enumerate(cfgs)
            if (c["pretrain"] is not None, c["ctx"] is not None) == key
        ]
        group = [cfgs[i] for i in idx]
        group += [group[0]] * (N_CONFIGS - len(group))

        def col(k, group=group):
            return jnp.asarray([1.0 if c[k] is None else c[k] for c in group], DTYPE)

        kw = {}
        if key[0]:
            kw |= {"pretrain_tokens": col("pretrain"), "queries": col("queries")}
        if key[1]:
            kw |= {"context": col("ctx"), "aspect_ratio": col("ratio")}
        fn = allocation.sampling_target_optimal
        if budget:
            fn = allocation.sampling_budget_optimal
        params = Params(col("a_ref"), col("b"), col("n_ref"), col("s"))
        r = fn(
            params,
            col("goal"),
            col("t"),
            col("n_min"),
            col("n_max"),
            max_samples=col("kmax"),
            **kw,
        )
        for j, i in enumerate(idx):
            out[i] = jax.tree_util.tree_map(lambda v, j=j: v[j], r)
    return out


def _reachable(cfg):
    """Target: can the largest model reach c* within kmax samples?"""
    log_abs_a, _ = _ref(cfg)
    ell = math.log(-math.log(cfg["goal"]))
    return log_abs_a(math.log(cfg["n_max"])) + cfg["b"] * math.log(cfg["kmax"]) <= ell


def _affordable(cfg):
    """Budget: does it pay for one sample of the smallest model?"""
    _, log_cost = _ref(cfg)
    return log_cost(math.log(cfg["n_min"]), 0.0) <= math.log(cfg["goal"])


def _feasible(cfg, budget):
    return _affordable(cfg) if budget else _reachable(cfg)


# ------------------------------------------------------------------- basics


def test_model_coverage_is_brown_law_with_the_size_link():
    n = jnp.asarray([1e8, 1e9, 3e10], DTYPE)
    k = jnp.asarray([1.0, 7.0, 250.0], DTYPE)
    c = testtime.model_coverage(EXAMPLE, n, k)
    a = -2.0 * (np.asarray(n, float) / 1e9) ** -1.0
    # Compared as -log c: c itself carries |log c| times the rounding of log c.
    np.testing.assert_allclose(
        -np.log(np.asarray(c, float)), -a * np.asarray(k, float) ** -0.5, rtol=1e-6
    )
    # At the reference size it is Brown et al. 2024's c(k) = exp(a k^b).
    ref = inference.coverage(inference.CoverageParams(-2.0, -0.5), k)
    np.testing.assert_allclose(testtime.model_coverage(EXAMPLE, 1e9, k), ref, rtol=1e-6)


def test_sampling_flops_matches_the_accounting_functions():
    n, k, t, ctx, ratio = 7e9, 3.0, 500.0, 4096.0, 128.0
    n_layers = (n / (12 * ratio**2)) ** (1 / 3)
    d_model = ratio * n_layers
    assert 12 * n_layers * d_model**2 == pytest.approx(n, rel=1e-12)
    per_query = inference.inference_flops_per_query(n, t, n_layers, d_model, ctx)
    got = allocation.sampling_flops(n, k, t, context=ctx, aspect_ratio=ratio)
    # FLOPs are formed in log space: exp of a log of ~32 carries ~32 ulps
    # (conftest.rtol).
    np.testing.assert_allclose(got, k * per_query, rtol=rtol())
    got = allocation.sampling_flops(n, k, t, pretrain_tokens=2e12, queries=1e8)
    np.testing.assert_allclose(got, k * 2 * n * t + 6 * n * 2e12 / 1e8, rtol=rtol())


def test_snell_exchange_rate():
    # Snell et al. 2024, Sec. 7: with training 6 N D_pretrain and inference 2 N
    # D_inference, a model M times larger costs as much as the small model with its
    # inference multiplied by M + 3 (D_pretrain / D_inference)(M - 1).
    n, t, d_pre, q = 1e9, 1000.0, 1e12, 1e8
    for m in (2.0, 14.0):
        mult = inference.matched_inference_multiplier(m, d_pre, q * t)
        big = allocation.sampling_flops(m * n, 1.0, t, pretrain_tokens=d_pre, queries=q)
        small = allocation.sampling_flops(n, mult, t, pretrain_tokens=d_pre, queries=q)
        np.testing.assert_allclose(big, small, rtol=rtol())


def test_brown_swe_bench_example():
    # Brown et al. 2024 (arXiv:2407.21787), abstract: DeepSeek-Coder-V2-Instruct on
    # SWE-bench Lite solves 15.9% with one sample and 56% with 250 (the
    # single-attempt state of the art was 43%). The two points fix a = log 0.159
    # and b; with one model on offer (n_min = n_max) the plans must be those 250
    # and 1 samples, and their FLOPs must buy 56% and 15.9%.
    a = math.log(0.159)
    b = math.log(math.log(0.56) / a) / math.log(250.0)
    p = Params(a, b, 2.36e11, 0.5)
    n, t = 2.36e11, 1000.0
    k43 = (math.log(0.43) / a) ** (1 / b)  # samples to match 43%: about 31
    target = jnp.asarray([0.56, 0.159, 0.43], DTYPE)
    r = allocation.sampling_target_optimal(p, target, t, n, n)
    # 1e-5: k = (log c / a)^(1/b) with |1/b| ~ 5 amplifies float32 rounding.
    np.testing.assert_allclose(r.samples, [250.0, 1.0, k43], rtol=1e-5)
    assert [int(k) for k in r.samples_int] == [250, 1, math.ceil(k43)]
    np.testing.assert_allclose(
        r.flops_per_query, np.asarray([250.0, 1.0, k43]) * 2 * n * t, rtol=1e-5
    )
    budget = jnp.asarray([250.0, 1.0, k43], DTYPE) * 2 * n * t
    r = allocation.sampling_budget_optimal(p, budget, t, n, n)
    np.testing.assert_allclose(r.coverage, [0.56, 0.159, 0.43], rtol=1e-5)
    np.testing.assert_allclose(r.samples, [250.0, 1.0, k43], rtol=1e-5)


def test_fixed_size_is_samples_for_coverage():
    rng = np.random.default_rng(3)
    a = -(10 ** rng.uniform(-1, 0.7, N_CONFIGS))
    b = -rng.uniform(0.1, 1.0, N_CONFIGS)
    c = rng.uniform(0.3, 0.99, N_CONFIGS)
    n = 10 ** rng.uniform(8, 11, N_CONFIGS)
    p = Params(jnp.asarray(a, DTYPE), jnp.asarray(b, DTYPE), 1e9, 0.7)
    args = [jnp.asarray(v, DTYPE) for v in (c, np.full(N_CONFIGS, 300.0), n, n)]
    r = allocation.sampling_target_optimal(p, *args)
    a_n = a * (n / 1e9) ** -0.7
    k = inference.samples_for_coverage(inference.CoverageParams(a_n, b), c)
    np.testing.assert_allclose(r.samples, np.maximum(np.asarray(k, float), 1.0), K_RTOL)
    # N = exp(log N): float32 rounding of log N ~ 25 (conftest.rtol).
    np.testing.assert_allclose(r.n_params, n, rtol=rtol())
    assert np.all(np.asarray(r.status) == allocation.CONVERGED)


# ---------------------------------------------------------------- closed forms


def _closed_target(cfg):
    """Attention-free target optimum: the cost is convex in x = log N, so the
    optimum is the best of the ends, the kink where one sample suffices and the
    stationary point of train + k(N) 2 N T (all closed forms)."""
    log_abs_a, log_cost = _ref(cfg)
    ell = math.log(-math.log(cfg["goal"]))
    b, s = cfg["b"], cfg["s"]
    lo, hi = math.log(cfg["n_min"]), math.log(cfg["n_max"])
    if s > 0 and np.isfinite(cfg["kmax"]):
        lo = max(
            lo,
            math.log(cfg["n_ref"])
            + (math.log(-cfg["a_ref"]) - ell + b * math.log(cfg["kmax"])) / s,
        )

    def y(x):
        return max(0.0, (ell - log_abs_a(x)) / b)

    cands = [lo, hi]
    if s > 0:
        cands.append(math.log(cfg["n_ref"]) + (math.log(-cfg["a_ref"]) - ell) / s)
    if cfg["pretrain"] and s / -b > 1:
        # c_t N = (s/|b| - 1) k 2 N T at the optimum: k = c_t / (2 T (s/|b| - 1)).
        k = 6 * cfg["pretrain"] / cfg["queries"] / (2 * cfg["t"] * (s / -b - 1))
        cands.append(
            math.log(cfg["n_ref"])
            + (math.log(-cfg["a_ref"]) - ell + b * math.log(k)) / s
        )
    cands = [min(max(x, lo), hi) for x in cands]
    best = min(cands, key=lambda x: log_cost(x, y(x)))
    return best, y(best), log_cost(best, y(best))


def _closed_budget(cfg):
    """Attention-free budget optimum: log(-log c) is convex in x; the optimum is the
    best of the ends, the kink where k = kmax and the stationary point
    e^x = F (s + b) / (s c_t)."""
    log_abs_a, _ = _ref(cfg)
    b, s, f = cfg["b"], cfg["s"], cfg["goal"]
    ct = 6 * cfg["pretrain"] / cfg["queries"] if cfg["pretrain"] else 0.0
    t2 = 2 * cfg["t"]
    lo = math.log(cfg["n_min"])
    hi = min(math.log(cfg["n_max"]), math.log(f / (ct + t2)))

    def y(x):
        k = (f - ct * math.exp(x)) / (t2 * math.exp(x))
        return min(math.log(k), math.log(cfg["kmax"]))

    def obj(x):
        return log_abs_a(x) + b * y(x)

    cands = [lo, hi]
    if np.isfinite(cfg["kmax"]):
        cands.append(math.log(f / (ct + t2 * cfg["kmax"])))
    if ct > 0 and s + b > 0:
        cands.append(math.log(f * (s + b) / (s * ct)))
    cands = [min(max(x, lo), hi) for x in cands]
    best = min(cands, key=obj)
    return best, y(best), obj(best)


@pytest.mark.parametrize("budget", [False, True])
def test_attention_free_optimum_matches_closed_form(budget):
    cfgs = [dict(c, ctx=None) for c in _configs(21 + budget, budget)]
    for i, r in enumerate(_solve(cfgs, budget)):
        assert int(r.status) == allocation.CONVERGED, i
        x, y, obj = (_closed_budget if budget else _closed_target)(cfgs[i])
        np.testing.assert_allclose(r.n_params, math.exp(x), rtol=N_RTOL)
        np.testing.assert_allclose(r.samples, math.exp(y), rtol=K_RTOL)
        # The objective of our plan, in float64 (c itself, near 1 in float32,
        # would carry eps / |log c| relative error in log(-log c)).
        log_abs_a, log_cost = _ref(cfgs[i])
        x, y = math.log(float(r.n_params)), math.log(float(r.samples))
        got = log_abs_a(x) + cfgs[i]["b"] * y if budget else log_cost(x, y)
        np.testing.assert_allclose(got, obj, rtol=OBJ_RTOL, atol=OBJ_RTOL)


@pytest.mark.parametrize("budget", [False, True])
def test_infeasible_and_invalid_are_flagged_under_jit(budget):
    # Under jit nothing raises: a target the largest model cannot reach within
    # max_samples, a budget below one sample of the smallest model plus its
    # training share, or an invalid input comes back INFEASIBLE with NaN outputs;
    # the feasible elements equal the eager results.
    cfgs = _configs(41 + budget, budget, feasible_only=False)
    cfgs = [dict(c, ctx=None, pretrain=1e12) for c in cfgs]
    for c, bad in zip(
        cfgs[-3:], (1.0 if not budget else -1.0, np.nan, 0.0), strict=True
    ):
        c["goal"] = bad
    feasible = np.asarray([_feasible(c, budget) for c in cfgs[:-3]] + [False] * 3)
    assert N_CONFIGS // 4 < feasible.sum() < N_CONFIGS - 3

    def col(k):
        return jnp.asarray([c[k] for c in cfgs], DTYPE)

    fn = allocation.sampling_target_optimal
    if budget:
        fn = allocation.sampling_budget_optimal
    r = jax.jit(fn)(
        Params(col("a_ref"), col("b"), col("n_ref"), col("s")),
        col("goal"),
        col("t"),
        col("n_min"),
        col("n_max"),
        max_samples=col("kmax"),
        pretrain_tokens=col("pretrain"),
        queries=col("queries"),
    )
    status = np.asarray(r.status)
    np.testing.assert_array_equal(status == allocation.INFEASIBLE, ~feasible)
    assert np.all(status[feasible] == allocation.CONVERGED)
    for field in r:
        values = np.asarray(field, float)
        if (
            field is not r.status
            and field is not r.iterations
            and field is not r.grad_norm
        ):
            assert np.all(np.isnan(values[~feasible]))
            assert np.all(np.isfinite(values[feasible]))
    eager = _solve([c for c, ok in zip(cfgs, feasible, strict=True) if ok], budget)
    jitted = np.asarray(r.n_params)[feasible]
    # Same computation, compiled in a different context: rounding may differ.
    np.testing.assert_allclose(jitted, [e.n_params for e in eager], rtol=N_RTOL)


def _scipy_ref(cfg, budget, start):
    """Float64 optimum of the original two-variable problem in (log N, log k) over
    the box [log n_min, log n_max] x [0, log max_samples (or 40)]: the best of
    SLSQP (guarded, feasible within 1e-12 in log space; tests/_reference.py) from
    the middle of the box, from ``start`` (jscale's answer) and from the optimum of
    the 1-D reduction, and of that 1-D optimum itself (feasible by construction)."""
    log_abs_a, log_cost = _ref(cfg)
    lo, hi = math.log(cfg["n_min"]), math.log(cfg["n_max"])
    y_hi = math.log(cfg["kmax"]) if np.isfinite(cfg["kmax"]) else 40.0
    b = cfg["b"]
    x0 = 0.5 * (lo + hi)
    if budget:
        goal = math.log(cfg["goal"])

        def fun(z):
            return log_abs_a(z[0]) + b * z[1]

        cons = {"type": "ineq", "fun": lambda z: goal - log_cost(z[0], z[1])}
        z0 = [lo, 0.0]
    else:
        ell = math.log(-math.log(cfg["goal"]))

        def fun(z):
            return log_cost(z[0], z[1])

        cons = {"type": "ineq", "fun": lambda z: ell - log_abs_a(z[0]) - b * z[1]}
        z0 = [x0, min(y_hi, max(0.0, (ell - log_abs_a(x0)) / b))]
    one = _brent(cfg, budget)
    try:
        # The objectives move by up to ~10 per unit of violation: 1e-12 keeps a
        # violation's gain two orders below the comparison's 1e-9.
        two = minimize_multistart(
            fun,
            [z0, start, one.x],
            [(lo, hi), (0.0, y_hi)],
            [cons],
            options={"ftol": 1e-10, "maxiter": 1000},
            feas_tol=1e-12,
        ).fun
    except ReferenceFailure:  # no SLSQP start ended feasible: the 1-D optimum
        two = math.inf
    return min(two, one.fun)


def _brent(cfg, budget):
    """The problem with k eliminated (from the active constraint, capped at
    max_samples) by a guarded grid scan and bounded Brent on log N in float64:
    returns the optimum's value ``fun`` and point ``x = (log N, log k)``."""
    log_abs_a, log_cost = _ref(cfg)
    b = cfg["b"]
    lo, hi = math.log(cfg["n_min"]), math.log(cfg["n_max"])
    y_cap = math.log(cfg["kmax"]) if np.isfinite(cfg["kmax"]) else np.inf
    if budget:
        goal = math.log(cfg["goal"])
        if log_cost(hi, 0.0) > goal:
            hi = root_bracketed(lambda x: log_cost(x, 0.0) - goal, lo, hi)
        tr = 6 * cfg["pretrain"] / cfg["queries"] if cfg["pretrain"] else 0.0

        def y_of(x):
            n = math.exp(x)
            sample = _log_sample_flops(n, cfg["t"], cfg["ctx"], cfg["ratio"])
            return min(y_cap, math.log(max(cfg["goal"] - tr * n, 1e-300)) - sample)

        def fun(x):
            return log_abs_a(x) + b * y_of(x)
    else:
        ell = math.log(-math.log(cfg["goal"]))
        if np.isfinite(y_cap) and cfg["s"] > 0:
            lo = max(
                lo,
                math.log(cfg["n_ref"])
                + (log_abs_a(math.log(cfg["n_ref"])) - ell + b * y_cap) / cfg["s"],
            )

        def y_of(x):
            return max(0.0, (ell - log_abs_a(x)) / b)

        def fun(x):
            return log_cost(x, y_of(x))

    res = minimize_bounded(fun, lo, hi, grid=64)
    return res._replace(x=np.array([res.x, y_of(res.x)]))


@pytest.mark.parametrize("budget", [False, True])
def test_matches_scipy_with_attention_and_training(budget):
    cfgs = _configs(31 + budget, budget)
    for i, r in enumerate(_solve(cfgs, budget)):
        cfg = cfgs[i]
        assert int(r.status) == allocation.CONVERGED, i
        log_abs_a, log_cost = _ref(cfg)
        x = math.log(float(r.n_params))
        y = math.log(float(r.samples))
        ref = _scipy_ref(cfg, budget, (x, y))
        # The plan stays in its box and satisfies the constraint (to rounding) ...
        y_cap = math.log(cfg["kmax"]) if np.isfinite(cfg["kmax"]) else np.inf
        assert math.log(cfg["n_min"]) - N_RTOL <= x, i
        assert x <= math.log(cfg["n_max"]) + N_RTOL, i
        assert -K_RTOL <= y <= y_cap + K_RTOL, i
        if budget:
            assert log_cost(x, y) <= math.log(cfg["goal"]) + OBJ_RTOL
            ours = log_abs_a(x) + cfg["b"] * y
        else:
            ell = math.log(-math.log(cfg["goal"]))
            assert log_abs_a(x) + cfg["b"] * y <= ell + OBJ_RTOL
            ours = log_cost(x, y)
        # ... and is as good as the best SciPy result (the problems are convex in
        # (log N, log k), so SciPy's is the optimum to its ftol of 1e-10). A
        # feasible plan cannot be better than the optimum by more than the
        # constraint's rounding times its multiplier (up to ~10), so a plan
        # below the reference means SciPy stopped short: not checked.
        scale = max(1.0, abs(ref))
        assert ours <= ref + (1e-9 if X64 else 1e-4) * scale, (i, ours, ref)


# ------------------------------------------------------------------- integers


def test_integer_samples_keep_the_constraint():
    p = EXAMPLE._replace(size_exponent=jnp.asarray([0.2, 0.8, 1.2], DTYPE))
    r = allocation.sampling_target_optimal(p, 0.8, 500.0, 1e8, 1e11)
    near = 1e-9 if X64 else 1e-5  # the documented rounding tolerance
    np.testing.assert_array_equal(
        r.samples_int, np.ceil(np.asarray(r.samples) * (1 - near))
    )
    # A k within `near` of an integer is that integer, so the target holds to
    # that (the coverage moves by |b log c| <= 1 times the relative change in k).
    assert np.all(np.asarray(r.coverage_int) >= 0.8 * (1 - near - rtol()))
    assert np.all(
        np.asarray(r.flops_per_query_int)
        >= np.asarray(r.flops_per_query) * (1 - near - rtol())
    )
    r = allocation.sampling_budget_optimal(
        p, 1e15, 500.0, 1e8, 1e11, pretrain_tokens=1e12, queries=1e9
    )
    np.testing.assert_array_equal(
        r.samples_int, np.floor(np.asarray(r.samples) * (1 + near))
    )
    assert np.all(np.asarray(r.flops_per_query_int) <= 1e15 * (1 + near + rtol()))
    assert np.all(
        np.asarray(r.coverage_int) <= np.asarray(r.coverage) * (1 + near + rtol())
    )


def test_compiles_once_per_shape():
    rng = np.random.default_rng(5)
    impl = testtime._sampling_impl
    kw = dict(pretrain_tokens=1e12, queries=1e9)

    def draw():
        return jnp.asarray(rng.uniform(0.2, 0.95, 3), DTYPE)

    allocation.sampling_target_optimal(EXAMPLE, draw(), 500.0, 1e8, 1e11, **kw)
    size = impl._cache_size()
    for _ in range(2):
        allocation.sampling_target_optimal(EXAMPLE, draw(), 500.0, 1e8, 1e11, **kw)
    # Options are data, not structure: no recompilation without them either.
    allocation.sampling_target_optimal(EXAMPLE, draw(), 500.0, 1e8, 1e11)
    assert impl._cache_size() == size


# ------------------------------------------------------------------ properties

_log_budget = st.floats(13.0, 18.0)
_s = st.floats(0.0, 1.5)
_KW = dict(pretrain_tokens=1e12, queries=1e9, context=2048.0, aspect_ratio=128.0)
# Monotonicity holds exactly; the two solutions carry independent rounding.
MONO = 1e-9 if X64 else 1e-5


@settings(max_examples=10, deadline=None)
@given(log_f=_log_budget, grow=st.floats(0.01, 2.0), s=_s, target=st.floats(0.1, 0.95))
def test_more_budget_never_lowers_coverage(log_f, grow, s, target):
    p = EXAMPLE._replace(size_exponent=s)
    f = jnp.asarray([10**log_f, 10 ** (log_f + grow), 10 ** (log_f + 2 * grow)], DTYPE)
    f = f + 2.2e14  # one sample of the smallest model and its training share
    r = allocation.sampling_budget_optimal(p, f, 1000.0, 1e8, 1e11, **_KW)
    cov = -np.log(np.asarray(r.coverage, float))  # compared as -log c (smaller)
    assert cov[1] <= cov[0] * (1 + MONO) and cov[2] <= cov[1] * (1 + MONO)
    # A lower target never costs more.
    c = jnp.asarray([target, target * 0.9, target * 0.5], DTYPE)
    r = allocation.sampling_target_optimal(p, c, 1000.0, 1e8, 1e11, **_KW)
    cost = np.asarray(r.flops_per_query, float)
    assert cost[1] <= cost[0] * (1 + MONO) and cost[2] <= cost[1] * (1 + MONO)


@settings(max_examples=10, deadline=None)
@given(s=_s, wider=st.floats(0.0, 2.0), kmax=st.floats(1.0, 100.0), log_f=_log_budget)
def test_relaxing_a_constraint_never_hurts(s, wider, kmax, log_f):
    p = EXAMPLE._replace(size_exponent=s)
    n_min = jnp.asarray([1e9, 1e9 / 10**wider, 1e9], DTYPE)
    n_max = jnp.asarray([1e10, 1e10 * 10**wider, 1e10], DTYPE)
    caps = jnp.asarray([kmax, kmax, kmax * 10], DTYPE)
    f = 10**log_f + 2.2e15  # the smallest model affords one sample
    r = allocation.sampling_budget_optimal(
        p, f, 1000.0, n_min, n_max, max_samples=caps, **_KW
    )
    cov = -np.log(np.asarray(r.coverage, float))
    assert cov[1] <= cov[0] * (1 + MONO) and cov[2] <= cov[0] * (1 + MONO)
    caps = jnp.asarray([1e6, 1e6, 1e7], DTYPE)
    r = allocation.sampling_target_optimal(
        p, 0.5, 1000.0, n_min, n_max, max_samples=caps, **_KW
    )
    cost = np.asarray(r.flops_per_query, float)
    assert cost[1] <= cost[0] * (1 + MONO) and cost[2] <= cost[0] * (1 + MONO)


@settings(max_examples=10, deadline=None)
@given(s=_s, b=st.floats(-1.0, -0.1), target=st.floats(0.1, 0.99), log_f=_log_budget)
def test_kkt_conditions_hold(s, b, target, log_f):
    # One-sided differences of the float64 reference objective at the solution: no
    # feasible neighbour is better (left slope <= 0 <= right slope inside the range,
    # the right sign at an active bound); the constraint is active; and the
    # engine's own projected-gradient norm is small.
    p = Params(-2.0, b, 1e9, s)
    cfg = {
        "a_ref": -2.0,
        "b": b,
        "n_ref": 1e9,
        "s": s,
        "t": 1000.0,
        "pretrain": 1e12,
        "queries": 1e9,
        "ctx": 2048.0,
        "ratio": 128.0,
    }
    log_abs_a, log_cost = _ref(cfg)
    # float32 solutions are within ~3e-6 of the optimum in log N: step past that.
    h = 1e-5 if X64 else 2e-3
    tol = 1e-10 if X64 else 1e-5
    lo, hi = math.log(1e8), math.log(1e11)

    # Three targets and three budgets per example (one compiled shape).
    targets = [target, 0.5 * target, min(0.99, 1.1 * target)]
    r = allocation.sampling_target_optimal(
        p, jnp.asarray(targets, DTYPE), 1000.0, 1e8, 1e11, **_KW
    )
    for j, c in enumerate(targets):
        ell = math.log(-math.log(c))

        def cost(x, ell=ell):
            return log_cost(x, max(0.0, (ell - log_abs_a(x)) / b))

        x = math.log(float(r.n_params[j]))
        assert cost(x) <= cost(min(x + h, hi)) + tol * abs(cost(x))
        assert cost(x) <= cost(max(x - h, lo)) + tol * abs(cost(x))
        y = math.log(float(r.samples[j]))
        assert log_abs_a(x) + b * y <= ell + tol  # coverage >= target
        assert y == 0.0 or log_abs_a(x) + b * y >= ell - tol  # active unless k = 1
        assert float(r.grad_norm[j]) < (1e-8 if X64 else 1e-3)

    one = math.exp(log_cost(lo, 0.0))  # one sample of the smallest model
    budgets = [one + 10**log_f, one + 10 ** (log_f - 1), 2 * one + 10**log_f]
    r = allocation.sampling_budget_optimal(
        p, jnp.asarray(budgets, DTYPE), 1000.0, 1e8, 1e11, **_KW
    )
    for j, f in enumerate(budgets):

        def objective(x, f=f):
            room = f - 6 * 1e12 / 1e9 * math.exp(x)
            sample = _log_sample_flops(math.exp(x), 1000.0, 2048.0, 128.0)
            return log_abs_a(x) + b * (math.log(room) - sample)

        x_top = hi
        if log_cost(hi, 0.0) > math.log(f):
            x_top = root_bracketed(
                lambda z, f=f: log_cost(z, 0.0) - math.log(f), lo, hi
            )
        x = math.log(float(r.n_params[j]))
        scale = tol * max(1.0, abs(objective(x)))
        assert objective(x) <= objective(min(x + h, x_top)) + scale
        assert objective(x) <= objective(max(x - h, lo)) + scale
        # The budget is spent.
        np.testing.assert_allclose(r.flops_per_query[j], f, rtol=rtol())
        assert float(r.grad_norm[j]) < (1e-8 if X64 else 1e-3)


# ------------------------------------------------------------------- gradients


def test_gradient_matches_closed_form():
    # Interior attention-free optimum: k* = 3 D_pre / (Q T (s/|b| - 1)) (train =
    # (s/|b| - 1) x sampling at the optimum), and N from c(k*; N) = c*:
    # d log N / d log D_pre = b / s, d log k / d log D_pre = 1, in both precisions.
    p = Params(-2.0, -0.5, 1e9, 1.0)

    def plan(log_d):
        r = allocation.sampling_target_optimal(
            p, 0.9, 1000.0, 1e8, 1e12, pretrain_tokens=jnp.exp(log_d), queries=1e9
        )
        return jnp.stack([jnp.log(r.n_params), jnp.log(r.samples)])

    log_d = jnp.asarray(math.log(1e12), DTYPE)
    np.testing.assert_allclose(jnp.exp(plan(log_d)[1]), 3.0, rtol=K_RTOL)
    jac = jax.jit(jax.jacfwd(plan))(log_d)
    # Implicit derivatives at a float32 solution: ~1e-3 (the curvature is formed
    # from rounded slopes).
    np.testing.assert_allclose(jac, [-0.5, 1.0], rtol=1e-7 if X64 else 2e-3)


@pytest.mark.skipif(not X64, reason="finite differences need float64")
def test_gradients_match_finite_differences():
    kw = dict(context=2048.0, aspect_ratio=128.0, max_samples=1e4)

    def target(a_ref, s, c, t, d_pre):
        p = Params(a_ref, -0.4, 1e9, s)
        r = allocation.sampling_target_optimal(
            p, c, t, 1e8, 1e12, pretrain_tokens=d_pre, queries=1e9, **kw
        )
        return jnp.log(r.flops_per_query) + jnp.log(r.n_params)

    def budget(a_ref, s, f, t, d_pre):
        p = Params(a_ref, -0.4, 1e9, s)
        r = allocation.sampling_budget_optimal(
            p, f, t, 1e8, 1e12, pretrain_tokens=d_pre, queries=1e9, **kw
        )
        return jnp.log(-jnp.log(r.coverage)) + jnp.log(r.n_params)

    def target_one(a_ref, s, c, t, d_pre):
        # Training is cheap per query: the optimum sits where one sample suffices.
        p = Params(a_ref, -0.4, 1e9, s)
        r = allocation.sampling_target_optimal(
            p, c, t, 1e8, 1e12, pretrain_tokens=d_pre, queries=1e10, **kw
        )
        return jnp.log(r.flops_per_query) + jnp.log(r.n_params)

    def budget_cap(a_ref, s, f, t, d_pre):
        # The optimum sits where the sample cap starts to bind (k = 10).
        p = Params(a_ref, -0.5, 1e9, s)
        r = allocation.sampling_budget_optimal(
            p,
            f,
            t,
            1e9,
            1e11,
            pretrain_tokens=d_pre,
            queries=1e7,
            context=2000.0,
            aspect_ratio=128.0,
            max_samples=10.0,
        )
        return jnp.log(-jnp.log(r.coverage)) + jnp.log(r.n_params)

    cases = [
        (target, (-2.0, 1.0, 0.9, 1000.0, 1e12)),  # interior optimum
        (budget, (-2.0, 1.0, 1e16, 1000.0, 1e12)),  # interior optimum
        (target_one, (-2.0, 1.0, 0.9, 1000.0, 1e12)),  # on the k = 1 kink
        (budget_cap, (-2.0, 0.8, 1e16, 1000.0, 1e12)),  # on the k = k_max kink
    ]
    h = 1e-6
    for fn, args in cases:
        # The gradient compiled once; the perturbed values through the batched
        # API in chunks of a shape the other tests compile anyway.
        args = jnp.asarray(args, DTYPE)
        n = args.shape[0]
        grads = jax.jit(jax.grad(lambda a, fn=fn: fn(*a)))(args)
        steps = jnp.concatenate([jnp.eye(n), -jnp.eye(n)]) * h
        perturbed = np.asarray(args[None] * (1.0 + steps))
        size = 3
        pad = (-len(perturbed)) % size
        perturbed = np.concatenate([perturbed, perturbed[:pad]])
        values = np.concatenate(
            [
                np.asarray(fn(*jnp.asarray(perturbed[k : k + size].T, DTYPE)))
                for k in range(0, len(perturbed), size)
            ]
        )
        fd = (values[:n] - values[n : 2 * n]) / (2 * h * args)
        # Central differences of values ~ 30 carry ~eps * 30 / (2 h) absolute
        # error in the derivative with respect to log(arg).
        grads, fd = np.asarray(grads), np.asarray(fd)
        tol = 1e-5 * np.abs(fd) + 1e-8 / np.abs(np.asarray(args))
        assert np.all(np.abs(grads - fd) <= tol), (grads, fd)


# ----------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(target_coverage=1.0), "target_coverage must be .* \\(0, 1\\)"),
        (dict(n_min=1e10, n_max=1e9), "n_max must be >= n_min"),
        (dict(queries=1.0), "both pretrain_tokens and queries"),
        (dict(context=1.0), "both context and aspect_ratio"),
        (dict(max_samples=0.5), "max_samples must be .*\\[1, inf\\)"),
        (dict(generated_tokens=0.0), "generated_tokens"),
        (dict(params=EXAMPLE._replace(size_exponent=-1.0)), "size_exponent"),
        (dict(params=EXAMPLE._replace(a_ref=0.5)), "a_ref"),
        (dict(target_coverage=0.999, max_samples=10.0), "cannot reach it"),
    ],
)
def test_bad_input_raises_naming_the_argument(kwargs, match):
    args = dict(
        params=EXAMPLE,
        target_coverage=0.5,
        generated_tokens=100.0,
        n_min=1e9,
        n_max=1e10,
    )
    args |= kwargs
    with pytest.raises(ValueError, match=match):
        allocation.sampling_target_optimal(**args)


def test_budget_below_the_smallest_model_raises():
    with pytest.raises(ValueError, match="one sample of the smallest model"):
        allocation.sampling_budget_optimal(EXAMPLE, 1e12, 1000.0, 1e9, 1e10)
    with pytest.raises(ValueError, match="flops_per_query"):
        allocation.sampling_budget_optimal(EXAMPLE, -1.0, 1000.0, 1e9, 1e10)
