"""Broken neural scaling laws (Caballero et al. 2022, arXiv:2210.14891, Eq. 1)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import rtol
from scipy.special import expit

from jscale import laws
from jscale.laws import bnsl

PRESET = laws.get("caballero2022-figure1")
P = PRESET.params
LOSS = jax.jit(bnsl.loss)


def excess(params, x):
    """Eq. 1 without the limit: b x^-c0 prod (1 + (x/d_i)^(1/f_i))^(-c_i f_i).

    Plain NumPy in float64, or in complex128 when a constant carries a complex step.
    """
    dtype = np.result_type(np.float64, *(np.asarray(v) for v in params))
    x = np.asarray(x, np.float64)
    y = np.asarray(params.b, dtype) * x ** -np.asarray(params.c0, dtype)
    for c, d, f in zip(*(np.asarray(v, dtype) for v in params[3:]), strict=True):
        y = y * (1 + (x / d) ** (1 / f)) ** (-c * f)
    return y


def reference(params, x):
    """Eq. 1 literally, in float64."""
    return np.float64(params.a) + excess(params, x)


def random_params(n_breaks, seed):
    rng = np.random.default_rng(seed)
    d = np.sort(10 ** rng.uniform(1, 25, n_breaks))
    return bnsl.BNSLParams(
        a=float(rng.uniform(0, 2)),
        b=float(10 ** rng.uniform(-1, 3)),
        c0=float(rng.uniform(0, 0.5)),
        c=tuple(rng.uniform(-0.8, 1.0, n_breaks)),
        d=tuple(d),
        # f >= 0.1 keeps the literal (x/d)^(1/f) of the reference below 1e260.
        f=tuple(10 ** rng.uniform(-1.0, 0.3, n_breaks)),
    )


def log_uniform(lo, hi, seed, size=257):
    return 10 ** np.random.default_rng(seed).uniform(lo, hi, size=size)


def test_figure1_constants():
    # make_figure_1__decomposition_of_bnsl_into_power_law_segments.py (Figure 1):
    # a = 1e-3, b = 4.66e3, c0 = 0.05, c = (0.49, -0.811, 2.1),
    # d = (3e6, 1e14, 2e20), f = (1.1, 1.425, 0.05) (f3 = 0.3 is overridden by 0.05).
    assert P.a == 1e-3 and P.b == 4.66e3 and P.c0 == 0.05
    assert P.c == (0.49, -0.811, 2.1)
    assert P.d == (3e6, 1e14, 2e20)
    assert P.f == (1.1, 1.425, 0.05)
    assert PRESET.family.name == "bnsl" and PRESET.family.inputs == ("x",)
    assert set(PRESET.family.inputs) <= set(laws.INPUT_NAMES)
    assert "2210.14891" in PRESET.citation and "Figure 1" in PRESET.citation
    assert PRESET.describe()["params"]["c"] == [0.49, -0.811, 2.1]


def test_figure1_matches_float64_reference_from_1_to_1e27(transform):
    # The script plots x from 1e-1 to 1e26; 1e0..1e27 covers it. The third break has
    # f = 0.05, so Eq. 1 raises x/d3 to the 20th power (1e134 at x = 1e27): only the
    # log-space form stays finite in float32.
    x = log_uniform(0, 27, 0, size=513)
    got = transform(PRESET.loss)(x)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, reference(P, x), rtol=rtol())


@pytest.mark.parametrize("n_breaks", [0, 1, 2, 4])
def test_random_params_match_float64_reference(n_breaks, transform):
    params = random_params(n_breaks, seed=10 + n_breaks)
    x = log_uniform(0, 27, n_breaks)
    got = transform(bnsl.loss)(params, x)
    np.testing.assert_allclose(got, reference(params, x), rtol=rtol())


def test_zero_breaks_is_a_power_law():
    # Eq. 1 with n = 0: y = a + b x^-c0.
    p = bnsl.BNSLParams(a=0.5, b=20.0, c0=0.3, c=(), d=(), f=())
    x = log_uniform(0, 27, 1)
    np.testing.assert_allclose(LOSS(p, x), 0.5 + 20.0 * x**-0.3, rtol=rtol())
    assert math.isclose(
        float(bnsl.loss(p._replace(a=1.0, b=10.0, c0=0.5), 100.0)), 2.0, rel_tol=rtol()
    )


def test_figure1_decomposition_into_power_law_segments():
    # Figure 1 and its script: away from the breaks y - a follows the segments
    # b x^-c0, b d1^-c0 (x/d1)^-(c0+c1), ... up to smooth-transition corrections
    # (largest at x = 3e16, 300x past the broad second break, f2 = 1.425: 2%).
    b, c0 = P.b, P.c0
    (c1, c2, c3), (d1, d2, d3) = P.c, P.d
    seg = [
        lambda x: b * x**-c0,
        lambda x: b * d1**-c0 * (x / d1) ** -(c0 + c1),
        lambda x: b * d1**-c0 * (d2 / d1) ** -(c0 + c1) * (x / d2) ** -(c0 + c1 + c2),
        lambda x: (
            b
            * d1**-c0
            * (d2 / d1) ** -(c0 + c1)
            * (d3 / d2) ** -(c0 + c1 + c2)
            * (x / d3) ** -(c0 + c1 + c2 + c3)
        ),
    ]
    for x, k, tol in [
        (1e2, 0, 1e-4),
        (1e10, 1, 2e-3),
        (3e16, 2, 3e-2),
        (1e25, 3, 1e-6),
    ]:
        got = float(LOSS(P, x)) - P.a
        # At 1e25, y - a = 1e-12 next to a = 1e-3: float32 keeps ~1e-10 absolute.
        atol = 1e-9 if x > 1e24 else 0.0
        assert got == pytest.approx(seg[k](x), rel=tol + 10 * rtol(), abs=atol)


def test_local_slope_between_sharp_breaks():
    # d log(y - a) / d log x = -(c0 + sum_i c_i sigmoid((log x - log d_i) / f_i)):
    # between sharp breaks it is -(c0 + c_1 + ... + c_k), the segment's exponent.
    p = bnsl.BNSLParams(
        a=0.0, b=100.0, c0=0.2, c=(0.5, -0.3), d=(1e5, 1e15), f=(0.05,) * 2
    )

    def log_excess(log_x):  # a = 0: y - a = y, with no cancellation in float32
        return jnp.log(bnsl.loss(p, jnp.exp(log_x)))

    slope = jax.jit(jax.grad(log_excess))
    for x, expected in [(1e0, -0.2), (1e10, -0.7), (1e22, -0.4)]:
        assert float(slope(math.log(x))) == pytest.approx(expected, abs=1e-4)


def test_grad_matches_closed_form_and_is_finite():
    # dy/dx = -(y - a) / x * (c0 + sum_i c_i sigmoid((log x - log d_i) / f_i)).
    x = np.logspace(0, 27, 109)
    g = jax.jit(jax.vmap(jax.grad(bnsl.loss, argnums=1), in_axes=(None, 0)))
    for params in (P, random_params(3, seed=3)):
        got = np.asarray(g(params, x))
        assert np.all(np.isfinite(got))
        c, d, f = (np.asarray(v, np.float64)[:, None] for v in params[3:])
        z = (np.log(x) - np.log(d)) / f
        slope = params.c0 + np.sum(c * expit(z), axis=0)
        expected = -excess(params, x) / x * slope
        # |log x| ~ 60 and 1/f = 20 amplify float32 rounding of the exponent by ~100;
        # float32 gradients below ~1e-35 (x = 1e27) underflow, so are only finite.
        shown = np.abs(expected) > 1e3 * np.finfo(got.dtype).tiny
        np.testing.assert_allclose(
            x[shown] * got[shown], x[shown] * expected[shown], rtol=100 * rtol()
        )


def test_grad_wrt_params_matches_complex_step():
    # Complex-step derivatives of the NumPy reference, Im f(p + ih) / h, are exact to
    # float64 rounding (no difference of nearby numbers), unlike central differences
    # for the small gradients in the break constants.
    params = bnsl.BNSLParams(
        a=0.3, b=50.0, c0=0.25, c=(0.6, -0.2), d=(1e4, 1e9), f=(0.5, 1.2)
    )
    x = 3e6
    grads = jax.grad(bnsl.loss)(params, x)
    flat = [params.a, params.b, params.c0, *params.c, *params.d, *params.f]
    got = [grads.a, grads.b, grads.c0, *grads.c, *grads.d, *grads.f]

    def unflatten(v):
        return bnsl.BNSLParams(v[0], v[1], v[2], v[3:5], v[5:7], v[7:9])

    for i, value in enumerate(flat):
        h = 1e-20 * abs(value)
        stepped = [complex(v) for v in flat]
        stepped[i] += 1j * h
        p = unflatten(stepped)
        expected = (complex(p.a) + excess(p, x)).imag / h
        assert np.isfinite(got[i])
        # float32 gradients: ~1e-6 relative error times log-space amplification
        # (|log(x/d)| / f ~ 10); float64: a few hundred ulps.
        np.testing.assert_allclose(got[i], expected, rtol=50 * rtol())


def test_vmap_over_inputs_and_stacked_params():
    x = jnp.logspace(0, 27, 10)
    by_vmap = jax.jit(jax.vmap(bnsl.loss, in_axes=(None, 0)))(P, x)
    np.testing.assert_allclose(by_vmap, LOSS(P, x), rtol=rtol())
    # Many laws at once: every leaf with a leading axis of 3 (Monte Carlo draws).
    draws = [random_params(2, seed=s) for s in range(3)]
    stacked = bnsl.BNSLParams(*(jnp.asarray(v) for v in zip(*draws, strict=True)))
    assert stacked.c.shape == (3, 2)
    out = jax.jit(jax.vmap(bnsl.loss, in_axes=(0, None)))(stacked, 1e8)
    np.testing.assert_allclose(out, [reference(p, 1e8) for p in draws], rtol=rtol())
    # The same leading axis also broadcasts against x without vmap.
    np.testing.assert_allclose(LOSS(stacked, jnp.full((3,), 1e8)), out, rtol=rtol())


def test_dtype_follows_inputs():
    assert bnsl.loss(P, np.float32(1e8)).dtype == jnp.float32
    assert bnsl.loss(P, np.ones(3, np.float32)).dtype == jnp.float32
    with jax.enable_x64(True):
        assert bnsl.loss(P, np.float64(1e8)).dtype == jnp.float64
        # Tuple and NumPy break constants take x's dtype, like Python floats.
        assert bnsl.loss(P, np.float32(1e8)).dtype == jnp.float32
        q = P._replace(c=np.asarray(P.c), d=np.asarray(P.d), f=np.asarray(P.f))
        assert bnsl.loss(q, np.float32(1e8)).dtype == jnp.float32
    assert jnp.issubdtype(bnsl.loss(P, 10**30).dtype, jnp.floating)


@pytest.mark.parametrize(
    "x, match",
    [
        (0.0, r"x must be finite values in \(0, inf\); got 0"),
        (-1.0, "x must be .*got -1"),
        (float("nan"), "x must be .*got nan"),
        (float("inf"), "x must be .*got inf"),
        ([1.0, 2.0, -3.0], r"x must be .*index \(2,\)"),
    ],
)
def test_bad_input_raises(x, match):
    with pytest.raises(ValueError, match=match):
        PRESET.loss(x)


def test_mismatched_breaks_raise():
    with pytest.raises(ValueError, match=r"c, d and f must .*same last axis"):
        bnsl.loss(P._replace(f=(1.0, 1.0)), 1e8)
    with pytest.raises(ValueError, match=r"c, d and f must"):
        bnsl.loss(P._replace(c=0.5), 1e8)


@pytest.mark.parametrize("wrap", [jax.jit, jax.vmap], ids=["jit", "vmap"])
def test_bad_input_under_transform_is_nan(wrap):
    out = wrap(PRESET.loss)(jnp.array([1e8, 0.0, -1.0, jnp.inf, jnp.nan]))
    assert np.isfinite(out[0]) and np.all(np.isnan(out[1:]))


def test_bad_elements_leave_param_gradients_finite():
    def total(p, x):
        out = bnsl.loss(p, x)
        return jnp.sum(jnp.where(jnp.isnan(out), 0.0, out))

    params = bnsl.BNSLParams(*(jnp.asarray(v) for v in P))
    grads = jax.jit(jax.grad(total))(params, jnp.array([1e8, 0.0, -1.0, 1e20]))
    assert all(np.all(np.isfinite(v)) for v in jax.tree.leaves(grads))
