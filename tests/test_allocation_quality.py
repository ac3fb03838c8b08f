"""Data-quality allocation against the closed form, SciPy (float64), the papers'
worked examples, properties (hypothesis) and gradients."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _reference import minimize_bounded, root_bracketed
from conftest import X64
from hypothesis import given, settings
from hypothesis import strategies as st
from test_allocation import dc_loss64

from jscale import allocation
from jscale.laws import Family, Preset, chinchilla, data_constrained, kaplan

DTYPE = jnp.result_type(float)
N_CONFIGS = 200
DC = data_constrained.MUENNIGHOFF2023.params
# The contract against the closed form: 1e-6 (float64), 1e-4 (float32).
CLOSED_RTOL = 1e-6 if X64 else 1e-4
# SciPy's bounded Brent compares loss values, so on a flat minimum it resolves log N
# only to ~sqrt(eps) / curvature (~1e-6 here); the losses must agree to rounding and
# ours must never be worse. float32 losses carry ~1e-7 relative rounding.
LOSS_RTOL = 1e-12 if X64 else 1e-6
LOGN_ATOL = 1e-5 if X64 else 5e-4
# Effective tokens are formed in log space from log D ~ 25: ~25 ulps.
EFF_RTOL = 1e-12 if X64 else 5e-6


def _bounded(f, lo, hi):
    """Bounded Brent after a coarse scan (the data-constrained loss has kinks),
    guarded, over a log-space interval (tests/_reference.py)."""
    res = minimize_bounded(f, lo, hi, grid=129)
    return res.x, res.fun


def _dc_ref(c, u, q, e=np.inf):
    """Float64 optimum of Muennighoff's law at (N, q D, q U) along 6 N D = C."""
    lc6 = math.log(c / 6)
    lo = max(0.0, lc6 - math.log(u * e)) if np.isfinite(e) else 0.0

    def f(x):
        return dc_loss64(DC, math.exp(x), q * math.exp(lc6 - x), q * u)

    return _bounded(f, lo, lc6)


def _effective_data64(d, u):
    """Muennighoff 2023, Sec. 3: D' = U_D + U_D R_D* (1 - exp(-R_D / R_D*))."""
    rd = float(DC.r_d_star)
    u_d = min(u, d)
    r = max(d / u_d - 1.0, 0.0)
    return u_d + u_d * rd * (1.0 - math.exp(-r / rd))


# -------------------------------------------------------------- Chinchilla form


def test_dense_quality_matches_the_closed_form():
    # B / (q D)^beta = (B q^-beta) / D^beta: Hoffmann 2022 Eq. 4 with B' = B q^-beta,
    # written out here in float64.
    rng = np.random.default_rng(101)
    E = rng.uniform(1.0, 2.5, N_CONFIGS)
    A, B = (10 ** rng.uniform(1.5, 4, N_CONFIGS) for _ in range(2))
    a, b = (rng.uniform(0.2, 0.6, N_CONFIGS) for _ in range(2))
    q = 10 ** rng.uniform(-1, 1, N_CONFIGS)
    c = 10 ** rng.uniform(18, 27, N_CONFIGS)
    p = chinchilla.ChinchillaParams(*(jnp.asarray(v, DTYPE) for v in (E, A, B, a, b)))
    r = allocation.quality_optimal(p, jnp.asarray(c, DTYPE), jnp.asarray(q, DTYPE))
    g = (a * A / (b * B * q**-b)) ** (1 / (a + b))
    n = g * (c / 6) ** (b / (a + b))
    d = c / (6 * n)
    loss = E + A / n**a + B / (q * d) ** b
    assert np.all(np.asarray(r.status) == allocation.CONVERGED)
    np.testing.assert_allclose(r.n_params, n, rtol=CLOSED_RTOL)
    np.testing.assert_allclose(r.n_tokens, d, rtol=CLOSED_RTOL)
    np.testing.assert_allclose(r.loss, loss, rtol=CLOSED_RTOL)
    np.testing.assert_allclose(r.effective_tokens, q * np.asarray(r.n_tokens), 1e-6)
    assert np.all(np.asarray(r.grad_norm) < (1e-9 if X64 else 1e-4))
    assert np.all(np.asarray(r.violation) < (1e-9 if X64 else 1e-5))


def test_kaplan_quality_matches_scipy():
    # Kaplan 2020 Eq. 4.1 at (N, q D): D_c / (q D) = (D_c / q) / D.
    rng = np.random.default_rng(102)
    base = kaplan.KAPLAN2020.params
    alpha_n = rng.uniform(0.05, 0.1, N_CONFIGS)
    q = 10 ** rng.uniform(-1, 1, N_CONFIGS)
    c = 10 ** rng.uniform(17, 26, N_CONFIGS)
    p = base._replace(alpha_n=jnp.asarray(alpha_n, DTYPE))
    r = allocation.quality_optimal(p, jnp.asarray(c, DTYPE), jnp.asarray(q, DTYPE))
    assert np.all(np.asarray(r.status) == allocation.CONVERGED)
    n_c, d_c, a_d = float(base.n_c), float(base.d_c), float(base.alpha_d)
    for i in range(N_CONFIGS):
        lc6 = math.log(c[i] / 6)

        def f(x, i=i, lc6=lc6):
            ratio = alpha_n[i] / a_d
            return (
                (n_c / math.exp(x)) ** ratio + d_c / (q[i] * math.exp(lc6 - x))
            ) ** a_d

        x, fun = _bounded(f, 0.0, lc6)
        assert float(r.loss[i]) <= fun * (1 + LOSS_RTOL), i
        assert abs(float(jnp.log(r.n_params[i])) - x) < LOGN_ATOL, i


def _wrapped_chinchilla(params, n_params, n_tokens):
    return chinchilla.loss(params, n_params, n_tokens)


def test_any_two_input_law_is_evaluated_at_q_times_d():
    # A law jscale knows no fold for is solved at (N, q D) by the generic engine;
    # wrapping the Chinchilla form that way must give the folded result.
    family = Family(
        "wrapped",
        chinchilla.ChinchillaParams,
        _wrapped_chinchilla,
        ("n_params", "n_tokens"),
        "",
    )
    preset = Preset("wrapped", family, chinchilla.HOFFMANN2022.params, "", "")
    c = jnp.asarray([1e20, 1e22, 1e24], DTYPE)
    q = jnp.asarray([0.5, 2.0, 4.0], DTYPE)
    r = allocation.quality_optimal(preset, c, q)
    ref = allocation.quality_optimal(chinchilla.HOFFMANN2022.params, c, q)
    assert np.all(np.asarray(r.status) == allocation.CONVERGED)
    np.testing.assert_allclose(r.n_params, ref.n_params, rtol=CLOSED_RTOL)
    np.testing.assert_allclose(
        r.effective_tokens, ref.effective_tokens, rtol=CLOSED_RTOL
    )


# ------------------------------------------------------------- data-constrained


def _dc_configs(seed):
    """Budgets 1e19..1e25; U from 1/100 to 10x the unconstrained optimal tokens;
    q from 0.2 to 5; half the configurations with an epoch cap in [1, 30]."""
    rng = np.random.default_rng(seed)
    E, A, B, a, b = (float(v) for v in DC[:5])
    c = 10 ** rng.uniform(19, 25, N_CONFIGS)
    g = (a * A / (b * B)) ** (1 / (a + b))
    u = (c / 6) ** (a / (a + b)) / g * 10 ** rng.uniform(-2, 1, N_CONFIGS)
    q = 10 ** rng.uniform(-0.7, 0.7, N_CONFIGS)
    capped = rng.uniform(size=N_CONFIGS) < 0.5
    e = np.where(capped, 10 ** rng.uniform(0, 1.5, N_CONFIGS), 1e30)
    return c, u, q, e


def test_data_constrained_quality_matches_scipy():
    c, u, q, e = _dc_configs(103)
    r = allocation.quality_optimal(
        "muennighoff2023",
        jnp.asarray(c, DTYPE),
        jnp.asarray(q, DTYPE),
        jnp.asarray(u, DTYPE),
        jnp.asarray(e, DTYPE),
    )
    assert np.all(np.asarray(r.status) == allocation.CONVERGED)
    for i in range(N_CONFIGS):
        x, fun = _dc_ref(c[i], u[i], q[i], e[i])
        assert float(r.loss[i]) <= fun * (1 + LOSS_RTOL), i
        np.testing.assert_allclose(r.loss[i], fun, rtol=1e-7 if X64 else 1e-6)
        assert abs(float(jnp.log(r.n_params[i])) - x) < LOGN_ATOL, i
        d = float(r.n_tokens[i])
        assert d / u[i] <= e[i] * (1 + 1e-5)
        # Effective tokens: q D'(D, U), Muennighoff's discount on this pool.
        np.testing.assert_allclose(
            r.effective_tokens[i], q[i] * _effective_data64(d, u[i]), rtol=EFF_RTOL
        )
    np.testing.assert_allclose(r.epochs, r.n_tokens / jnp.asarray(u, DTYPE), EFF_RTOL)


def test_muennighoff_figure_1_with_quality():
    # q = 1 is Muennighoff's scenario itself. Muennighoff et al. 2023, Fig. 1
    # (right): with 25B unique tokens at 9.3e21 FLOPs the law prefers 6.34B
    # parameters on 242B tokens; our optimum does at least as well, and so does
    # every quality against SciPy (one batch of six, no epoch cap).
    c = 6 * 6.34e9 * 242e9
    q = np.asarray([1.0, 0.25, 0.5, 2.0, 4.0, 8.0])
    r = allocation.quality_optimal(
        "muennighoff2023", c, jnp.asarray(q, DTYPE), 25e9, 1e30
    )
    paper = data_constrained.loss(DC, 6.34e9, 242e9, 25e9)
    assert float(r.loss[0]) <= float(paper) * (1 + 1e-6)
    for i in range(6):
        x, fun = _dc_ref(c, 25e9, q[i])
        np.testing.assert_allclose(r.loss[i], fun, rtol=1e-7 if X64 else 1e-6)
        assert abs(float(jnp.log(r.n_params[i])) - x) < LOGN_ATOL, i
    # Better data is repeated less and reaches a lower loss.
    order = np.argsort(q)
    assert np.all(np.diff(np.asarray(r.loss)[order]) < 0)
    assert np.all(np.diff(np.asarray(r.epochs)[order]) < 0)


# ------------------------------------------------------------------------ pools


def test_pools_pick_the_best_pool():
    rng = np.random.default_rng(104)
    c, u0, _, _ = _dc_configs(105)
    u = u0[:, None] * 10 ** rng.uniform(-1.5, 1.5, (N_CONFIGS, 3))
    q = 10 ** rng.uniform(-0.5, 0.7, (N_CONFIGS, 3))
    r = allocation.pools_optimal(
        DC,
        jnp.asarray(c, DTYPE),
        unique_tokens=jnp.asarray(u, DTYPE),
        quality=jnp.asarray(q, DTYPE),
        max_epochs=4.0,
    )
    assert r.n_params.shape == (N_CONFIGS,)
    assert np.all(np.asarray(r.status) == allocation.CONVERGED)
    for i in range(N_CONFIGS):
        refs = sorted((_dc_ref(c[i], u[i, k], q[i, k], 4.0)[1], k) for k in range(3))
        (best, k_best), (second, _) = refs[0], refs[1]
        np.testing.assert_allclose(r.loss[i], best, rtol=1e-7 if X64 else 1e-6)
        if second - best > 1e-5 * best:  # ties within rounding may go either way
            assert int(r.pool[i]) == k_best, i
        k = int(r.pool[i])
        np.testing.assert_allclose(r.epochs[i], r.n_tokens[i] / u[i, k], rtol=1e-5)
        assert float(r.epochs[i]) <= 4.0 * (1 + 1e-5)


def test_filtered_pool_crossover_budget():
    # The quality-quantity trade-off (Goyal et al. 2024, arXiv:2404.07177) under
    # Muennighoff's repetition discount: 50B tokens worth 2x raw against 2T raw
    # tokens. The filtered pool wins at small budgets and loses once it would be
    # repeated too often; SciPy (float64) puts the crossover near 1.09e23 FLOPs,
    # where the filtered pool would be repeated about 11 times.
    u = np.asarray([5e10, 2e12])
    q = np.asarray([2.0, 1.0])

    def gap(log_c):
        return _dc_ref(10**log_c, u[0], q[0])[1] - _dc_ref(10**log_c, u[1], q[1])[1]

    c_star = 10 ** root_bracketed(gap, 21.0, 25.0, xtol=1e-10)
    assert 1.0e23 < c_star < 1.2e23
    c = jnp.asarray([c_star / 1.05, c_star * 1.05, c_star * 100], DTYPE)
    r = allocation.pools_optimal(
        DC,
        c,
        unique_tokens=jnp.asarray(u, DTYPE),
        quality=jnp.asarray(q, DTYPE),
        max_epochs=1e30,
    )
    assert [int(k) for k in r.pool] == [0, 1, 1]
    hq = allocation.quality_optimal(DC, c_star, 2.0, 5e10)
    raw = allocation.quality_optimal(DC, c_star, 1.0, 2e12)
    np.testing.assert_allclose(hq.loss, raw.loss, rtol=1e-9 if X64 else 1e-6)
    assert 10 < float(hq.epochs) < 13 and float(raw.epochs) < 1


# ------------------------------------------------------------------- properties

_budget = st.floats(19.0, 25.0)
_unique = st.floats(-2.0, 1.0)
_quality = st.floats(-0.7, 0.7)
# Monotonicity holds exactly; the two solutions carry independent rounding.
MONO = 1e-9 if X64 else 1e-6


@settings(max_examples=8, deadline=None)
@given(log_c=_budget, growth=st.floats(0.01, 1.0), rel_u=_unique, log_q=_quality)
def test_more_budget_never_hurts(log_c, growth, rel_u, log_q):
    c = 10 ** (log_c + growth * np.arange(6))
    u = 1e10 * 10**rel_u
    r = allocation.quality_optimal(DC, jnp.asarray(c, DTYPE), 10**log_q, u, 4.0)
    loss = np.asarray(r.loss)
    assert np.all(loss[1:] <= loss[:-1] * (1 + MONO))
    # Pools: (3, 2), the same flattened size (one compilation).
    r = allocation.pools_optimal(
        DC,
        jnp.asarray(c[::2], DTYPE),
        unique_tokens=jnp.asarray([u, 30 * u], DTYPE),
        quality=jnp.asarray([10**log_q, 1.0], DTYPE),
        max_epochs=4.0,
    )
    loss = np.asarray(r.loss)
    assert np.all(loss[1:] <= loss[:-1] * (1 + MONO))


@settings(max_examples=8, deadline=None)
@given(
    log_c=_budget,
    rel_u=_unique,
    log_q=_quality,
    epochs=st.floats(1.0, 20.0),
    more=st.floats(1.0, 5.0),
)
def test_relaxing_a_constraint_never_raises_the_loss(log_c, rel_u, log_q, epochs, more):
    u = 1e10 * 10**rel_u
    q = 10**log_q
    # Better data, more unique data, a looser epoch cap, no cap: none hurts.
    r = allocation.quality_optimal(
        DC,
        10**log_c,
        jnp.asarray([q, q * more, q, q, q, q * more], DTYPE),
        jnp.asarray([u, u, u * more, u, u, u * more], DTYPE),
        jnp.asarray([epochs, epochs, epochs, epochs * more, 1e30, 1e30], DTYPE),
    )
    loss = np.asarray(r.loss)
    assert np.all(loss[1:5] <= loss[0] * (1 + MONO))
    assert loss[5] <= loss[4] * (1 + MONO)
    # Another pool to choose from never hurts: row 0 offers the same pool twice.
    r = allocation.pools_optimal(
        DC,
        10**log_c,
        unique_tokens=jnp.asarray([[u, u], [u, u * more], [u, 30 * u]], DTYPE),
        quality=jnp.asarray([[q, q], [q, 1.0], [q, 0.5]], DTYPE),
        max_epochs=epochs,
    )
    loss = np.asarray(r.loss)
    assert np.all(loss[1:] <= loss[0] * (1 + MONO))


@settings(max_examples=8, deadline=None)
@given(log_c=_budget, rel_u=_unique, log_q=_quality, epochs=st.floats(1.0, 20.0))
def test_kkt_conditions_hold(log_c, rel_u, log_q, epochs):
    # One-sided differences of the float64 reference along the isoFLOP line: no
    # feasible neighbour is better (the epoch cap is a lower bound on log N), the
    # budget is spent, the cap holds, and the engine's projected slope is small.
    c = 10 ** (log_c + 0.5 * np.arange(6))
    u, q = 1e10 * 10**rel_u, 10**log_q
    r = allocation.quality_optimal(DC, jnp.asarray(c, DTYPE), q, u, epochs)
    h = 1e-6 if X64 else 2e-3  # past the float32 solution's ~1e-5 error in log N
    for j in range(6):
        lc6 = math.log(c[j] / 6)
        lo = max(0.0, lc6 - math.log(u * epochs))

        def f(x, lc6=lc6):
            return dc_loss64(DC, math.exp(x), q * math.exp(lc6 - x), q * u)

        x = math.log(float(r.n_params[j]))
        tol = (1e-12 if X64 else 1e-6) * f(x)
        assert f(x) <= f(min(x + h, lc6)) + tol
        assert f(x) <= f(max(x - h, lo)) + tol
        assert float(r.grad_norm[j]) < (1e-9 if X64 else 1e-4)
        assert float(r.violation[j]) < (1e-9 if X64 else 1e-5)
        assert float(r.epochs[j]) <= epochs * (1 + (1e-9 if X64 else 1e-5))


# ------------------------------------------------------------------- gradients


def test_gradient_matches_the_closed_form():
    # N_opt = G' (C/6)^(beta/(alpha+beta)) with G' proportional to q^(beta/(alpha +
    # beta)) (Hoffmann Eq. 4 with B' = B q^-beta): d log N / d log q = beta / (alpha
    # + beta), d log N / d log C = beta / (alpha + beta) too; in both precisions.
    p = chinchilla.ChinchillaParams(
        *(jnp.asarray(v, DTYPE) for v in chinchilla.HOFFMANN2022.params)
    )

    def log_n(log_c, log_q):
        r = allocation.quality_optimal(p, jnp.exp(log_c), jnp.exp(log_q))
        return jnp.log(r.n_params)

    args = (jnp.asarray(math.log(1e23), DTYPE), jnp.asarray(math.log(2.0), DTYPE))
    grads = jax.jit(jax.grad(log_n, argnums=(0, 1)))(*args)
    want = 0.28 / (0.34 + 0.28)
    # Implicit derivatives from a float32 solution: the curvature is formed from
    # rounded slopes (~1e-3).
    np.testing.assert_allclose(grads, [want, want], rtol=1e-7 if X64 else 2e-3)


@pytest.mark.skipif(not X64, reason="finite differences need float64")
def test_gradients_match_finite_differences():
    def fn(c, q, u, e):
        r = allocation.quality_optimal(DC, c, q, u, e)
        return jnp.log(r.n_params) + r.loss

    def pools(c, q, u):
        r = allocation.pools_optimal(
            DC,
            c,
            unique_tokens=jnp.stack([u, 40.0 * u], axis=-1),
            quality=jnp.stack([q, jnp.ones_like(q)], axis=-1),
        )
        return jnp.log(r.n_params) + r.loss

    cases = [
        (fn, (1e22, 2.0, 1e10, 100.0)),  # interior optimum
        (fn, (1e22, 2.0, 1e10, 4.0)),  # epoch cap active
        (pools, (1e21, 2.0, 5e10)),  # the filtered pool chosen
    ]
    h = 1e-5
    for f, args in cases:
        # The gradient compiled once; the perturbed values through the batched
        # API in chunks of a shape the other tests compile anyway.
        args = jnp.asarray(args, DTYPE)
        n = args.shape[0]
        grads = jax.jit(jax.grad(lambda a, f=f: f(*a)))(args)
        steps = jnp.concatenate([jnp.eye(n), -jnp.eye(n)]) * h
        perturbed = np.asarray(args[None] * (1.0 + steps))
        size = 6 if f is fn else 3
        pad = (-len(perturbed)) % size
        perturbed = np.concatenate([perturbed, perturbed[:pad]])
        values = np.concatenate(
            [
                np.asarray(f(*jnp.asarray(perturbed[k : k + size].T, DTYPE)))
                for k in range(0, len(perturbed), size)
            ]
        )
        fd = (values[:n] - values[n : 2 * n]) / (2 * h * args)
        # Central differences of values ~ 30 carry ~eps * 30 / (2 h) absolute
        # error in the derivative with respect to log(arg).
        grads, fd = np.asarray(grads), np.asarray(fd)
        tol = 1e-5 * np.abs(fd) + 1e-9 / np.abs(np.asarray(args))
        assert np.all(np.abs(grads - fd) <= tol), (grads, fd)


# --------------------------------------------------------- errors and transforms


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: allocation.quality_optimal(DC, 1e22, 0.0, 1e10), "quality must be"),
        (lambda: allocation.quality_optimal(DC, -1.0, 1.0), "compute_flops must be"),
        (
            lambda: allocation.quality_optimal(DC, 1e22, 1.0, 1e10, 0.5 / 1e10),
            "max_epochs \\* unique_tokens must allow at least one token",
        ),
        (
            lambda: allocation.quality_optimal(
                "chinchilla-hoffmann2022", 1e22, 1.0, 1e10
            ),
            "unique_tokens needs the data-constrained law",
        ),
        (
            lambda: allocation.quality_optimal(DC, 1e22, 1.0, max_epochs=4.0),
            "max_epochs needs unique_tokens",
        ),
        (lambda: allocation.quality_optimal("nope", 1e22, 1.0), "unknown law 'nope'"),
        (
            lambda: allocation.quality_optimal("kaplan2020-n", 1e22, 1.0),
            "takes n_params",
        ),
        (lambda: allocation.quality_optimal(DC, 3.0, 1.0), "C >= 6"),
        (
            lambda: allocation.pools_optimal(DC, 1e22, 1.0, 1e10),
            "trailing pool axis",
        ),
        (
            lambda: allocation.pools_optimal(
                "chinchilla-hoffmann2022", 1e22, [1e10], [1.0]
            ),
            "needs the data-constrained law",
        ),
        (
            lambda: allocation.pools_optimal(DC, 1e22, [1.0, 1.0, 1.0], [1e10, 1e11]),
            "shape mismatch",
        ),
        (
            lambda: allocation.pools_optimal(DC, 3.0, [1.0, 2.0], [1e10, 1e11]),
            "no pool is feasible",
        ),
    ],
)
def test_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_jit_flags_invalid_elements_and_matches_eager():
    f = jax.jit(allocation.quality_optimal)
    c = jnp.asarray([1e22, 1e22, 1e22, 3.0], DTYPE)
    q = jnp.asarray([2.0, 0.0, jnp.nan, 2.0], DTYPE)
    r = f(DC, c, q, 1e10, 4.0)
    assert list(np.asarray(r.status)) == [0, 2, 2, 2]
    for field in (r.n_params, r.n_tokens, r.loss, r.effective_tokens, r.epochs):
        assert np.isfinite(field[0]) and np.all(np.isnan(np.asarray(field[1:])))
    eager = allocation.quality_optimal(DC, 1e22, 2.0, 1e10, 4.0)
    np.testing.assert_allclose(r.n_params[0], eager.n_params, rtol=1e-6)
    g = jax.jit(allocation.pools_optimal)
    r = g(
        DC,
        jnp.asarray([1e21, 3.0], DTYPE),
        jnp.asarray([2.0, 1.0], DTYPE),
        jnp.asarray([5e10, 2e12], DTYPE),
    )
    assert list(np.asarray(r.status)) == [0, 2] and list(np.asarray(r.pool)) == [0, -1]
    assert np.isnan(r.loss[1])


def test_compiles_once_per_shape():
    kernel = allocation.engine._budget_kernel
    rng = np.random.default_rng(7)

    def draw():
        c = jnp.asarray(10 ** rng.uniform(19, 24, 6), DTYPE)
        q = jnp.asarray(10 ** rng.uniform(-0.5, 0.5, 6), DTYPE)
        return c, q

    allocation.quality_optimal(DC, *draw(), 1e10, 4.0)
    size = kernel._cache_size()
    for _ in range(2):
        allocation.quality_optimal(DC, *draw(), 1e10, 4.0)
    assert kernel._cache_size() == size
