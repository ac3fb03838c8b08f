"""Data-constrained law (Muennighoff et al. 2023, arXiv:2305.16264).

References: the authors' own evaluation code, huggingface/datablations README
"Parametric Fit" (``scaling_law(N, D, U)`` and ``optimal_allocation``), ported to
plain float64 NumPy below, and the numbers printed there.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import rtol

from jscale import laws
from jscale.laws import chinchilla
from jscale.laws import data_constrained as dc

PRESET = laws.get("muennighoff2023")
P = PRESET.params
# Compiled once for the numeric tests; eager calls (with their input checks) are
# covered by the transform-parametrized and bad-input tests.
LOSS = jax.jit(PRESET.loss)
GRAD = jax.jit(jax.grad(PRESET.loss, argnums=(0, 1, 2)))
EFF_DATA = jax.jit(dc.effective_data)


def reference(params, n, d, u):
    """float64 NumPy port of the datablations README ``scaling_law``.

    The README asserts U <= D and its ``optimal_allocation`` passes ``min(U, D)``;
    here U may exceed D and is clipped the same way.
    """
    E, A, B, alpha, beta, rd_star, rn_star = (np.float64(v) for v in params)
    n, d, u = (np.asarray(v, np.float64) for v in (n, d, u))
    u = np.minimum(u, d)
    g = ((alpha * A) / (beta * B)) ** (1 / (alpha + beta))
    d_to_n = (u * g) ** (beta / alpha) * g
    rd = np.maximum(d / u - 1, 0)
    un = np.minimum(n, d_to_n)
    rn = np.maximum(n / un - 1, 0)
    n_eff = un + un * rn_star * (1 - np.exp(-rn / rn_star))
    d_eff = u + u * rd_star * (1 - np.exp(-rd / rd_star))
    return E + A / n_eff**alpha + B / d_eff**beta


def n_opt(params, u):
    """Compute-optimal parameters for U tokens, G (G U)^(beta/alpha) (float64)."""
    E, A, B, alpha, beta, *_ = (np.float64(v) for v in params)
    g = ((alpha * A) / (beta * B)) ** (1 / (alpha + beta))
    return g * (g * np.asarray(u, np.float64)) ** (beta / alpha)


def log_uniform(lo, hi, seed, size=257):
    return 10 ** np.random.default_rng(seed).uniform(lo, hi, size=size)


# --- constants and published numbers -------------------------------------------


def test_published_constants():
    # datablations README / parametric_fit.ipynb: [a, b, e, alpha, beta, R_D*, R_N*].
    a, b, e = 6.255414, 7.3049974, 0.6254804
    assert math.isclose(P.A, math.exp(a), rel_tol=1e-15)
    assert math.isclose(P.B, math.exp(b), rel_tol=1e-15)
    assert math.isclose(P.E, math.exp(e), rel_tol=1e-15)
    assert (P.alpha, P.beta, P.r_d_star, P.r_n_star) == (
        0.3526596,
        0.3526596,
        15.387756,
        5.309743,
    )
    fam = PRESET.family
    assert fam.name == "data-constrained"
    assert fam.inputs == ("n_params", "n_tokens", "unique_tokens")
    assert set(fam.inputs) <= set(laws.INPUT_NAMES)
    assert "2305.16264" in PRESET.citation


def test_readme_figure1_models():
    # README "Parametric Fit", the two models of Figure 1 (right), 25B unique tokens:
    # scaling_law(6.34e9, 242e9, 25e9) = 2.2256440889984477 ("this one is better")
    # scaling_law(8.67e9, 178e9, 25e9) = 2.2269634075087867
    got = PRESET.loss(jnp.array([6.34e9, 8.67e9]), jnp.array([242e9, 178e9]), 25e9)
    np.testing.assert_allclose(
        got, [2.2256440889984477, 2.2269634075087867], rtol=rtol()
    )
    assert got[0] < got[1]


def test_readme_optimal_allocation_grid():
    # README: optimal_allocation(8.67e9, 178e9, 25e9) over the same 1000-point grid
    # -> "227B tokens, 9.1 epochs, 6.8B parameters".
    i = np.linspace(1.0001, 3, 500)
    d = np.concatenate([178e9 * i, 178e9 / i])
    n = np.concatenate([8.67e9 / i, 8.67e9 * i])
    u = np.minimum(25e9, d)
    k = int(np.argmin(jax.jit(PRESET.loss)(n, d, u)))
    # The minimum is flat: float32 may pick a neighbouring grid point (0.4% apart).
    assert round(d[k] / 1e9) == pytest.approx(227, abs=2)
    assert round(d[k] / 25e9, 1) == pytest.approx(9.1, abs=0.1)
    assert round(n[k] / 1e9, 1) == pytest.approx(6.8, abs=0.1)


def test_matches_float64_reference(transform):
    n = log_uniform(6, 15, 0)
    d = log_uniform(6, 16, 1)
    u = log_uniform(6, 16, 2)  # both U < D (repetition) and U >= D
    got = transform(PRESET.loss)(n, d, u)
    np.testing.assert_allclose(got, reference(P, n, d, u), rtol=rtol())


def test_matches_reference_at_and_near_the_kinks(transform):
    # D = U exactly, and N = N_opt(U_D) exactly, with small offsets either side.
    u = log_uniform(7, 12, 3, size=64)
    scale = np.array([1 - 1e-3, 1.0, 1 + 1e-3, 1.5])[:, None]
    d = (u * scale).ravel()
    u4 = np.broadcast_to(u, scale.shape[:1] + u.shape).ravel()
    n = n_opt(P, np.minimum(u4, d)) * np.repeat(scale[::-1, 0], u.size)
    got = transform(PRESET.loss)(n, d, u4)
    np.testing.assert_allclose(got, reference(P, n, d, u4), rtol=rtol())


# --- reductions and the paper's claims ------------------------------------------


def test_reduces_to_chinchilla_without_repetition_or_excess_parameters():
    # With U >= D (no repeated token) and N <= N_opt(D) (no excess parameter),
    # D' = D and N' = N: the Chinchilla form with the same constants.
    d = log_uniform(6, 16, 4)
    u = d * log_uniform(0, 3, 5)
    n = n_opt(P, d) * log_uniform(-6, 0, 6)
    n = np.maximum(n, 1.0)
    chin = chinchilla.ChinchillaParams(P.E, P.A, P.B, P.alpha, P.beta)
    np.testing.assert_allclose(
        LOSS(n, d, u), jax.jit(chinchilla.loss)(chin, n, d), rtol=rtol()
    )
    np.testing.assert_allclose(EFF_DATA(P, d, u), d, rtol=rtol())
    np.testing.assert_allclose(jax.jit(dc.effective_params)(P, n, d), n, rtol=rtol())


def test_single_epoch_with_excess_parameters_is_not_chinchilla():
    # U_N = min(N, N_opt(U_D)) applies even without repetition: a model 10x larger
    # than compute-optimal for its (fresh) data counts as fewer effective parameters.
    d = np.logspace(8, 14, 7)
    n = 10 * n_opt(P, d)
    chin = chinchilla.ChinchillaParams(P.E, P.A, P.B, P.alpha, P.beta)
    assert np.all(LOSS(n, d, d) > jax.jit(chinchilla.loss)(chin, n, d))
    np.testing.assert_allclose(LOSS(n, d, d), reference(P, n, d, d), rtol=rtol())


def test_four_epochs_are_almost_as_good_as_fresh_data():
    # Abstract: "training with up to 4 epochs of repeated data yields negligible
    # changes to loss compared to having unique data". Under the fitted law 4 epochs
    # are worth 93% of fresh tokens (2 epochs 98%), and for a model compute-optimal
    # for its unique data (1e8 to 1e13 tokens) the loss is within 0.7% of the
    # fresh-data loss, a fraction of the penalty at 40 epochs.
    u = np.logspace(8, 13, 6)
    value = EFF_DATA(P, 4 * u, u) / (4 * u)
    assert np.all(value > 0.93)
    assert np.all(EFF_DATA(P, 2 * u, u) / (2 * u) > 0.98)
    n = n_opt(P, u)
    repeated = LOSS(n, 4 * u, u)
    fresh = LOSS(n, 4 * u, 4 * u)
    assert np.all(repeated >= fresh)
    penalty4 = repeated / fresh - 1
    assert np.all(penalty4 < 7e-3)
    penalty40 = LOSS(n, 40 * u, u) / LOSS(n, 40 * u, 40 * u) - 1
    assert np.all(penalty40 > 5 * penalty4)


def test_r_d_star_is_the_e_folding_number_of_repetitions():
    # Sec. 3: D' = U_D + U_D R_D* (1 - exp(-R_D/R_D*)), so the marginal value of a
    # repeated token is dD'/dD = exp(-R_D/R_D*): 1/e after R_D* repetitions, 1/2 (a
    # half-life) after R_D* ln 2 ~ 10.7, and D' saturates at U (1 + R_D*) ~ 16.4 U.
    r_star = P.r_d_star
    grad = jax.jit(jax.grad(lambda d: dc.effective_data(P, d, 1e9)))
    for repeats, expected in [
        (0.0, 1.0),
        (r_star * math.log(2), 0.5),
        (r_star, math.exp(-1)),
        (3 * r_star, math.exp(-3)),
    ]:
        np.testing.assert_allclose(
            grad((1 + repeats) * 1e9), expected, rtol=20 * rtol()
        )
    saturated = EFF_DATA(P, 1e9 * (1 + 60 * r_star), 1e9)
    np.testing.assert_allclose(saturated, 1e9 * (1 + r_star), rtol=rtol())


def test_value_of_more_compute_decays_to_zero():
    # Abstract: "with more repetition, the value of adding compute eventually decays
    # to zero". dL/dD at many epochs vanishes relative to the first epoch.
    grad = jax.jit(jax.grad(PRESET.loss, argnums=1))
    first = grad(1e8, 1e9, 1e9)
    assert first < 0
    assert abs(grad(1e8, 200e9, 1e9)) < 1e-5 * abs(first)
    assert abs(grad(1e8, 1000e9, 1e9)) <= 1e-12 * abs(first)


def test_excess_parameters_decay_and_saturate():
    # N' = U_N + U_N R_N* (1 - exp(-R_N/R_N*)) <= N, saturating at U_N (1 + R_N*).
    u = 1e9
    cap = n_opt(P, u)
    n = cap * np.logspace(0, 4, 9)
    eff = jax.jit(dc.effective_params)(P, n, u)
    assert np.all(eff <= n * (1 + 2 * rtol()))
    assert np.all(np.diff(eff) >= 0)
    np.testing.assert_allclose(eff[-1], cap * (1 + P.r_n_star), rtol=rtol())


# --- transforms and gradients ---------------------------------------------------


def test_broadcasting_and_vmap():
    n = jnp.logspace(7, 11, 5)[:, None, None]
    d = jnp.logspace(9, 12, 4)[None, :, None]
    u = jnp.logspace(8, 12, 3)[None, None, :]
    grid = LOSS(n, d, u)
    assert grid.shape == (5, 4, 3)
    flat = [x.ravel() for x in jnp.broadcast_arrays(n, d, u)]
    by_vmap = jax.jit(jax.vmap(PRESET.loss))(*flat)
    np.testing.assert_allclose(grid.ravel(), by_vmap, rtol=rtol())


def test_vmap_over_params():
    stacked = dc.DataConstrainedParams(*(jnp.full((3,), v) for v in P))
    r_d = jnp.array([5.0, 15.387756, 30.0])
    stacked = stacked._replace(r_d_star=r_d)
    out = jax.jit(jax.vmap(dc.loss, in_axes=(0, None, None, None)))(
        stacked, 1e9, 1e11, 5e9
    )
    expected = [reference(P._replace(r_d_star=r), 1e9, 1e11, 5e9) for r in r_d.tolist()]
    np.testing.assert_allclose(out, expected, rtol=rtol())


def fd_grad(f, x, i, h_rel=1e-6):
    """Central difference in log space of argument i: x_i dL/dx_i (float64)."""
    up, dn = list(x), list(x)
    up[i] = x[i] * math.exp(h_rel)
    dn[i] = x[i] * math.exp(-h_rel)
    return (f(*up) - f(*dn)) / (2 * h_rel)


def test_grad_finite_everywhere_and_matches_finite_differences():
    rng = np.random.default_rng(7)
    n = 10 ** rng.uniform(6, 15, 60)
    d = 10 ** rng.uniform(6, 16, 60)
    u = 10 ** rng.uniform(6, 16, 60)
    g = jax.jit(jax.vmap(jax.grad(PRESET.loss, argnums=(0, 1, 2))))
    grads = g(n, d, u)
    for i in range(3):
        assert np.all(np.isfinite(grads[i]))
        fd = [
            fd_grad(lambda *x: reference(P, *x), (n[k], d[k], u[k]), i)
            for k in range(n.size)
        ]
        x = (n, d, u)[i]
        # x dL/dx is O(0.1-1); central differences in float64 with h = 1e-6 are good
        # to ~1e-9 absolute. float32 gradients carry ~1e-6 relative error times the
        # log-space chain (log x up to 37).
        np.testing.assert_allclose(
            x * np.asarray(grads[i]), fd, rtol=max(1e-6, 50 * rtol()), atol=1e-8
        )


def test_grad_at_the_kinks_is_finite_and_continuous():
    # D = U exactly and N = N_opt(U_D) exactly are kinks of max/min in the formula,
    # but D'(D, U) and N'(N, U_D) are smooth there: the gradient at the kink equals
    # the gradient just either side.
    g = GRAD
    u = 1e10
    cap = float(n_opt(P, u))
    for n in (1e8, cap):
        at = np.array(g(n, u, u))
        assert np.all(np.isfinite(at))
        below = np.array(g(n, u * (1 - 1e-6), u))
        above = np.array(g(n, u * (1 + 1e-6), u))
        # Only D and U: N's gradient changes at D = U when N > N_opt (a true kink of
        # U_D = min(U, D)); here N <= N_opt.
        for side in (below, above):
            np.testing.assert_allclose(at[1:] * u, side[1:] * u, atol=1e-5)
    # N = N_opt(U_D) with fresh data: the N-gradient is continuous.
    at = g(cap, u, 2 * u)[0]
    for side in (cap * (1 - 1e-6), cap * (1 + 1e-6)):
        np.testing.assert_allclose(at * cap, g(side, u, 2 * u)[0] * cap, atol=1e-5)
    # And exactly at the kink the U-gradient of fresh data is zero (D' = D), up to
    # rounding (U dL/dU against D dL/dD ~ 0.1).
    assert abs(float(g(1e8, u, u)[2]) * u) < 1e-7


def test_grad_wrt_params_matches_finite_differences():
    x = (3e9, 2e11, 2e10)  # 10 epochs, N above N_opt(U_D): every constant matters
    grads = jax.grad(dc.loss)(P, *x)
    for i in range(7):
        h = 1e-6 * abs(P[i])
        up, dn = list(P), list(P)
        up[i] += h
        dn[i] -= h
        fd = (reference(up, *x) - reference(dn, *x)) / (2 * h)
        assert np.isfinite(grads[i])
        # As for Chinchilla: 1e-6 covers float64 central differences; float32
        # gradients through log N_opt (log U ~ 24) need ~100x float32 tolerance.
        np.testing.assert_allclose(
            grads[i], fd, rtol=max(1e-6, 100 * rtol()), atol=1e-12
        )


# --- dtypes and bad input ---------------------------------------------------------


def test_dtype_follows_inputs():
    f32 = np.float32
    assert PRESET.loss(f32(1e9), f32(1e11), f32(1e10)).dtype == jnp.float32
    assert dc.effective_data(P, f32(1e11), f32(1e10)).dtype == jnp.float32
    assert dc.effective_params(P, f32(1e9), f32(1e10)).dtype == jnp.float32
    with jax.enable_x64(True):
        f64 = np.float64
        assert PRESET.loss(f64(1e9), f64(1e11), f64(1e10)).dtype == jnp.float64
        assert dc.effective_params(P, f64(1e9), f64(1e10)).dtype == jnp.float64
    assert jnp.issubdtype(PRESET.loss(10**9, 3 * 10**10, 10**10).dtype, jnp.floating)


CALLS = {
    "loss/n_params": ("n_params", lambda x: dc.loss(P, x, 1e11, 1e10)),
    "loss/n_tokens": ("n_tokens", lambda x: dc.loss(P, 1e9, x, 1e10)),
    "loss/unique_tokens": ("unique_tokens", lambda x: dc.loss(P, 1e9, 1e11, x)),
    "effective_data/n_tokens": ("n_tokens", lambda x: dc.effective_data(P, x, 1e10)),
    "effective_data/unique_tokens": (
        "unique_tokens",
        lambda x: dc.effective_data(P, 1e11, x),
    ),
    "effective_params/n_params": (
        "n_params",
        lambda x: dc.effective_params(P, x, 1e10),
    ),
    "effective_params/unique_tokens": (
        "unique_tokens",
        lambda x: dc.effective_params(P, 1e9, x),
    ),
}

BAD_VALUES = [
    (0.0, r"finite values in \(0, inf\); got 0"),
    (-1e9, "got -1e"),
    (float("nan"), "got nan"),
    (float("inf"), "got inf"),
]


@pytest.mark.parametrize("call", sorted(CALLS))
@pytest.mark.parametrize("value, match", BAD_VALUES, ids=["zero", "neg", "nan", "inf"])
def test_bad_input_raises_naming_the_argument(call, value, match):
    name, f = CALLS[call]
    with pytest.raises(ValueError, match=f"{name} must be .*{match}"):
        f(value)


@pytest.mark.parametrize("call", sorted(CALLS))
def test_bad_input_under_jit_is_nan(call):
    _, f = CALLS[call]
    out = jax.jit(f)(jnp.array([5e9, 0.0, -1.0, jnp.inf, jnp.nan]))
    assert np.isfinite(out[0]) and np.all(np.isnan(out[1:]))


@pytest.mark.parametrize(
    "call",
    ["loss/unique_tokens", "effective_data/n_tokens", "effective_params/n_params"],
)
def test_bad_input_under_vmap_is_nan(call):
    _, f = CALLS[call]
    out = jax.vmap(f)(jnp.array([5e9, 0.0, -1.0, jnp.inf, jnp.nan]))
    assert np.isfinite(out[0]) and np.all(np.isnan(out[1:]))


def test_bad_element_index_and_shape_mismatch():
    with pytest.raises(ValueError, match=r"unique_tokens .*index \(2,\)"):
        PRESET.loss(1e9, 1e11, [1e9, 2e9, -3.0])
    with pytest.raises(ValueError, match="shape mismatch: n_params"):
        PRESET.loss(jnp.ones(3) * 1e9, jnp.ones(4) * 1e11, 1e10)
    with pytest.raises(ValueError, match="shape mismatch: n_tokens"):
        dc.effective_data(P, jnp.ones(3) * 1e11, jnp.ones(2) * 1e10)


def test_bad_elements_leave_param_gradients_finite():
    def total(p, n):
        out = dc.loss(p, n, 1e11, 1e10)
        return jnp.sum(jnp.where(jnp.isnan(out), 0.0, out))

    n = jnp.array([1e9, 0.0, -1.0, 1e11])
    grads = jax.jit(jax.grad(total))(P, n)
    assert all(np.isfinite(v) for v in grads)
