"""Compute law L(C) = A C^-alpha: float64 reference, transforms, gradients, errors."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import rtol

from jscale import laws
from jscale.laws import compute

PARAMS = compute.ComputeLawParams(A=26.4, alpha=0.05)


def reference(params, c):
    """Plain float64 NumPy evaluation of A * C^-alpha."""
    A, alpha = (np.float64(v) for v in params)
    return A * np.asarray(c, np.float64) ** -alpha


def test_family_registered():
    fam = laws.FAMILIES["compute"]
    assert fam.params_type is compute.ComputeLawParams
    assert fam.inputs == ("compute_flops",)
    assert set(fam.inputs) <= set(laws.INPUT_NAMES)
    # Its published constants come from Kaplan 2020 (see test_laws_kaplan.py).
    assert laws.get("kaplan2020-compute").family is compute.FAMILY


@pytest.mark.parametrize(
    "params", [PARAMS, compute.ComputeLawParams(A=1e3, alpha=0.3)], ids=str
)
def test_matches_float64_reference(params, transform):
    rng = np.random.default_rng(1)
    c = 10 ** rng.uniform(15, 27, size=301)
    got = transform(compute.loss)(params, c)
    np.testing.assert_allclose(got, reference(params, c), rtol=rtol())


def test_exact_small_values():
    # A C^-alpha at C = 4, A = 2, alpha = 1/2 is 1; at C = 1 it is A.
    p = compute.ComputeLawParams(A=2.0, alpha=0.5)
    assert math.isclose(float(compute.loss(p, 4.0)), 1.0, rel_tol=rtol())
    assert math.isclose(float(compute.loss(p, 1.0)), 2.0, rel_tol=rtol())


def test_vmap_over_inputs_and_params():
    c = jnp.logspace(18, 26, 9)
    by_vmap = jax.vmap(compute.loss, in_axes=(None, 0))(PARAMS, c)
    np.testing.assert_allclose(by_vmap, compute.loss(PARAMS, c), rtol=rtol())
    stacked = compute.ComputeLawParams(
        A=jnp.array([10.0, 26.4, 50.0]), alpha=jnp.array([0.04, 0.05, 0.06])
    )
    out = jax.vmap(compute.loss, in_axes=(0, None))(stacked, 1e21)
    alphas = [0.04, 0.05, 0.06]
    expected = [
        reference(p, 1e21) for p in zip(stacked.A.tolist(), alphas, strict=True)
    ]
    np.testing.assert_allclose(out, expected, rtol=rtol())


def test_grad_matches_closed_form_and_is_finite():
    g = jax.grad(compute.loss, argnums=(0, 1))
    A, alpha = PARAMS
    for c in np.logspace(15, 27, 13):
        dp, dc = g(PARAMS, float(c))
        value = A * c**-alpha
        assert np.isfinite(dc) and all(np.isfinite(v) for v in dp)
        # d/dC = -alpha L / C, d/dA = L / A, d/dalpha = -log(C) L.
        np.testing.assert_allclose(dc, -alpha * value / c, rtol=20 * rtol())
        np.testing.assert_allclose(dp.A, value / A, rtol=20 * rtol())
        # log(C) ~ 60 amplifies float32 rounding of the product by ~60.
        np.testing.assert_allclose(dp.alpha, -math.log(c) * value, rtol=100 * rtol())


def test_dtype_follows_inputs():
    assert compute.loss(PARAMS, np.float32(1e21)).dtype == jnp.float32
    with jax.enable_x64(True):
        assert compute.loss(PARAMS, np.float64(1e21)).dtype == jnp.float64
    assert jnp.issubdtype(compute.loss(PARAMS, 10**21).dtype, jnp.floating)


@pytest.mark.parametrize(
    "c, match",
    [
        (0.0, r"compute_flops must be finite values in \(0, inf\); got 0"),
        (-1e21, "compute_flops"),
        (float("nan"), "compute_flops"),
        (float("inf"), "compute_flops"),
        ([1e21, 2e21, -3.0], r"compute_flops.*index \(2,\)"),
    ],
)
def test_bad_input_raises(c, match):
    with pytest.raises(ValueError, match=match):
        compute.loss(PARAMS, c)


@pytest.mark.parametrize("wrap", [jax.jit, jax.vmap], ids=["jit", "vmap"])
def test_bad_input_under_transform_is_nan(wrap):
    f = wrap(lambda c: compute.loss(PARAMS, c))
    out = f(jnp.array([1e21, 0.0, -1.0, jnp.inf, jnp.nan]))
    assert np.isfinite(out[0]) and np.all(np.isnan(out[1:]))


def test_bad_elements_leave_param_gradients_finite():
    # Masked elements must not poison gradients of a sum over the good ones.
    c = jnp.array([1e21, 0.0, -1.0, 1e23])

    def total(p, c):
        out = compute.loss(p, c)
        return jnp.sum(jnp.where(jnp.isnan(out), 0.0, out))

    grads = jax.jit(jax.grad(total))(PARAMS, c)
    assert all(np.isfinite(v) for v in grads)
