"""Chinchilla-form law: presets, float64 references, transforms, bad input."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import rtol

from jscale import laws
from jscale.laws import chinchilla

CHINCHILLA_PRESETS = [
    "chinchilla-hoffmann2022",
    "chinchilla-hoffmann2022-unrounded",
    "chinchilla-besiroglu2024",
]


def reference(params, n, d):
    """Plain float64 NumPy evaluation of Hoffmann 2022, Eq. 2."""
    E, A, B, a, b = (np.float64(v) for v in params)
    n = np.asarray(n, np.float64)
    d = np.asarray(d, np.float64)
    return E + A / n**a + B / d**b


def test_published_constants():
    # Hoffmann 2022, Eq. 10: E = 1.69, A = 406.4, B = 410.7, alpha = 0.34, beta = 0.28.
    assert laws.get("chinchilla-hoffmann2022").params == (
        1.69,
        406.4,
        410.7,
        0.34,
        0.28,
    )
    # Unrounded TeX-source values (epoch-research/analyzing-chinchilla): they round to
    # the printed ones.
    p = laws.get("chinchilla-hoffmann2022-unrounded").params
    assert round(p.E, 2) == 1.69 and round(p.A, 1) == 406.4 and round(p.B, 1) == 410.7
    assert round(p.alpha, 2) == 0.34 and round(p.beta, 2) == 0.28
    # Besiroglu 2024 abstract / Eq. 5.
    q = laws.get("chinchilla-besiroglu2024").params
    assert q == (1.8172, 482.01, 2085.43, 0.3478, 0.3658)


@pytest.mark.parametrize("name", CHINCHILLA_PRESETS)
def test_matches_float64_reference(name, transform):
    preset = laws.get(name)
    rng = np.random.default_rng(0)
    n = 10 ** rng.uniform(6, 15, size=257)
    d = 10 ** rng.uniform(6, 16, size=257)
    got = transform(preset.loss)(n, d)
    np.testing.assert_allclose(got, reference(preset.params, n, d), rtol=rtol())


def test_chinchilla_model_loss_printed():
    # Chinchilla (70B params, 1.4T tokens) under the printed Eq. 10 constants: the
    # value worked by hand in float64 from Eq. 2.
    expected = 1.69 + 406.4 / 70e9**0.34 + 410.7 / 1.4e12**0.28
    got = laws.get("chinchilla-hoffmann2022").loss(70e9, 1.4e12)
    assert math.isclose(float(got), expected, rel_tol=rtol())


def test_broadcasting_and_vmap():
    preset = laws.get("chinchilla-besiroglu2024")
    n = jnp.logspace(7, 12, 5)[:, None]
    d = jnp.logspace(8, 13, 4)[None, :]
    grid = preset.loss(n, d)
    assert grid.shape == (5, 4)
    by_vmap = jax.vmap(lambda ni: jax.vmap(lambda dj: preset.loss(ni, dj))(d[0]))(
        n[:, 0]
    )
    np.testing.assert_allclose(grid, by_vmap, rtol=rtol())


def test_vmap_over_params():
    # A leading axis on the parameters is many laws at once (bootstrap / Monte Carlo).
    p = laws.get("chinchilla-hoffmann2022").params
    stacked = chinchilla.ChinchillaParams(*(jnp.full((3,), v) for v in p))
    stacked = stacked._replace(E=jnp.array([1.5, 1.69, 1.9]))
    out = jax.vmap(chinchilla.loss, in_axes=(0, None, None))(stacked, 1e9, 2e10)
    np.testing.assert_allclose(
        out, [reference((e, *p[1:]), 1e9, 2e10) for e in (1.5, 1.69, 1.9)], rtol=rtol()
    )


def test_grad_matches_closed_form_and_is_finite():
    preset = laws.get("chinchilla-hoffmann2022")
    E, A, B, a, b = preset.params
    g = jax.grad(preset.loss, argnums=(0, 1))
    for n in np.logspace(6, 15, 10):
        for d in np.logspace(6, 16, 11):
            dn, dd = g(float(n), float(d))
            assert np.isfinite(dn) and np.isfinite(dd)
            np.testing.assert_allclose(dn, -a * A * n ** (-a - 1), rtol=20 * rtol())
            np.testing.assert_allclose(dd, -b * B * d ** (-b - 1), rtol=20 * rtol())


def test_grad_wrt_params_matches_finite_differences():
    p = chinchilla.ChinchillaParams(1.8, 480.0, 2000.0, 0.35, 0.37)
    grads = jax.grad(chinchilla.loss)(p, 3e9, 6e10)

    def f(q):
        return reference(q, 3e9, 6e10)

    for i in range(5):
        h = 1e-6 * max(abs(p[i]), 1.0)
        up, dn = list(p), list(p)
        up[i] += h
        dn[i] -= h
        fd = (f(up) - f(dn)) / (2 * h)
        # Central differences in float64: truncation ~h^2 and rounding ~1e-16/h;
        # 1e-6 relative covers both; float32 gradients carry ~1e-6 relative error.
        np.testing.assert_allclose(grads[i], fd, rtol=max(1e-6, 50 * rtol()))


def test_dtype_follows_inputs():
    preset = laws.get("chinchilla-hoffmann2022")
    assert preset.loss(np.float32(1e9), np.float32(1e10)).dtype == jnp.float32
    with jax.enable_x64(True):
        assert preset.loss(np.float64(1e9), np.float64(1e10)).dtype == jnp.float64
    # Integers become the default float; 3e9 tokens would overflow int32.
    assert jnp.issubdtype(preset.loss(10**9, 3 * 10**9).dtype, jnp.floating)


@pytest.mark.parametrize(
    "n, d, match",
    [
        (0.0, 1e10, r"n_params must be finite values in \(0, inf\); got 0"),
        (-1e9, 1e10, "n_params"),
        (float("nan"), 1e10, "n_params"),
        (1e9, float("inf"), "n_tokens"),
        ([1e9, 2e9, -3.0], 1e10, r"index \(2,\)"),
    ],
)
def test_bad_input_raises(n, d, match):
    with pytest.raises(ValueError, match=match):
        laws.get("chinchilla-hoffmann2022").loss(n, d)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shape mismatch: n_params"):
        laws.get("chinchilla-hoffmann2022").loss(jnp.ones(3) * 1e9, jnp.ones(4) * 1e10)


def test_bad_input_under_jit_is_nan():
    f = jax.jit(laws.get("chinchilla-hoffmann2022").loss)
    out = f(jnp.array([1e9, 0.0, -1.0, jnp.inf, jnp.nan]), 1e10)
    assert np.isfinite(out[0]) and np.all(np.isnan(out[1:]))


def test_unknown_preset_lists_valid_names():
    with pytest.raises(ValueError, match="chinchilla-hoffmann2022"):
        laws.get("chinchilla-2099")


def test_param_gradients_finite_with_bad_elements_under_jit():
    # A NaN-flagged element must not poison gradients of the other elements (fits and
    # Monte Carlo sum over batches): the bad inputs are replaced before the log.
    p = chinchilla.ChinchillaParams(1.8, 480.0, 2000.0, 0.35, 0.37)
    n = jnp.array([1e9, 0.0, -1.0, 2e9])
    d = jnp.array([2e10, 1e10, 1e10, 4e10])

    def total(q, n, d):
        out = chinchilla.loss(q, n, d)
        return jnp.sum(jnp.where(jnp.isnan(out), 0.0, out))

    grads = jax.jit(jax.grad(total))(p, n, d)
    assert all(np.isfinite(g) for g in grads)


def test_besiroglu_covariance_in_any_order():
    # Default: the fields of ChinchillaParams (E, A, B in log); Hoffmann's own order
    # gives back the table as stored; a name that is not a coordinate is refused.
    table = np.asarray(chinchilla.BESIROGLU2024_COVARIANCE)
    coords = chinchilla.BESIROGLU2024_COORDS
    assert chinchilla.PARAMS_COORDS == tuple(
        ("log_" + f if f in ("E", "A", "B") else f)
        for f in chinchilla.ChinchillaParams._fields
    )
    got = chinchilla.besiroglu2024_covariance()
    assert got.dtype == np.float64
    for i, a in enumerate(chinchilla.PARAMS_COORDS):
        for j, b in enumerate(chinchilla.PARAMS_COORDS):
            assert got[i, j] == table[coords.index(a), coords.index(b)]
    np.testing.assert_array_equal(chinchilla.besiroglu2024_covariance(coords), table)
    with pytest.raises(ValueError, match="ordering of log_A"):
        chinchilla.besiroglu2024_covariance(("log_E", "log_A", "log_B", "alpha"))


def test_besiroglu_covariance_is_the_bootstrap_of_their_resamples():
    """The shipped covariance is recomputed from Epoch's data when it is present."""
    import csv
    from pathlib import Path

    from jscale import fitting

    path = (
        Path(__file__).resolve().parents[1]
        / ".."
        / "shared"
        / "data"
        / "epoch-chinchilla"
        / "svg_extracted_data.csv"
    ).resolve()
    cov = np.asarray(chinchilla.BESIROGLU2024_COVARIANCE)
    # Symmetric positive definite, so a multivariate normal can use it.
    np.testing.assert_array_equal(cov, cov.T)
    assert np.all(np.linalg.eigvalsh(cov) > 0)
    if not jax.config.jax_enable_x64:
        pytest.skip("the bootstrap refit needs float64")
    if not path.exists():
        pytest.skip(f"Epoch's extracted Chinchilla data not found at {path}")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    loss = np.array([float(r["loss"]) for r in rows])
    keep = loss < np.sort(loss)[-5]  # their rule: drop the 5 highest losses
    cols = {"n_params": "Model Size", "compute_flops": "Training FLOP"}
    table = {c: np.array([float(r[c]) for r in rows])[keep] for c in cols.values()}
    table["loss"] = loss[keep]
    obs = fitting.observations(table, columns=cols)
    rng = np.random.RandomState(42)  # their notebook's resamples, in order
    idx = [rng.choice(240, size=240, replace=True) for _ in range(4000)]
    counts = np.stack([np.bincount(i, minlength=240) for i in idx])
    start = fitting.MODELS["chinchilla"].to_params(
        np.array([6.0073404, 6.0179186, 0.5267228, 0.33917084, 0.2849083])
    )
    boot = fitting.bootstrap(None, obs, weights=counts, init=start)
    theta = np.asarray(boot.fits.theta)[:, :5]
    # The table is rounded to 7 significant digits.
    np.testing.assert_allclose(np.cov(theta.T), cov, rtol=1e-5, atol=1e-11)
