"""Test-time compute helpers (jscale.laws.inference).

References: exact binomial coefficients (``scipy.special.comb(exact=True)``) for
pass@k (Chen et al. 2021), the closed form of the coverage law and its inverse
(Brown et al. 2024), jscale.accounting for FLOPs, and the FLOP identity behind Snell
et al. 2024's exchange rate.
"""

from __future__ import annotations

import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import X64, rtol
from scipy.special import comb

from jscale import accounting, laws
from jscale.laws import inference as inf

COV = inf.CoverageParams(a=-2.5, b=-0.4)


def pass_ref(n, c, k):
    """Exact pass@k via rational arithmetic on exact binomials."""
    if n - c < k:
        return 1.0
    return float(1 - Fraction(comb(n - c, k, exact=True), comb(n, k, exact=True)))


def test_no_presets_registered():
    assert inf.PRESETS == {}
    assert not any(name.startswith("inference") for name in laws.names())


def test_coverage_closed_form_and_inverse(transform):
    k = np.logspace(0, 4, 41)
    got = transform(inf.coverage)(COV, k)
    np.testing.assert_allclose(got, np.exp(COV.a * k**COV.b), rtol=rtol())
    assert np.all(np.diff(np.asarray(got)) > 0)
    np.testing.assert_allclose(inf.coverage(COV, 1.0), math.exp(COV.a), rtol=rtol())
    back = transform(inf.samples_for_coverage)(COV, got)
    np.testing.assert_allclose(back, k, rtol=max(1e-10, 200 * rtol()))


def test_coverage_rejects_wrong_signs():
    with pytest.raises(ValueError, match="a must be"):
        inf.coverage(inf.CoverageParams(a=1.0, b=-0.4), 10.0)
    with pytest.raises(ValueError, match="b must be"):
        inf.coverage(inf.CoverageParams(a=-1.0, b=0.4), 10.0)
    with pytest.raises(ValueError, match="target must be"):
        inf.samples_for_coverage(COV, 1.0)
    assert np.isnan(jax.jit(inf.samples_for_coverage)(COV, 1.5))


CASES = [
    (1, 0, 1), (1, 1, 1), (10, 3, 1), (10, 3, 5), (10, 3, 8), (10, 10, 4),
    (200, 0, 50), (200, 1, 1), (200, 10, 1), (200, 10, 10), (200, 10, 100),
    (200, 199, 1), (200, 190, 11), (1000, 3, 50), (1000, 500, 100), (100, 50, 10),
]  # fmt: skip


def test_pass_at_k_matches_exact_binomials(transform):
    n, c, k = (np.array(v, float) for v in zip(*CASES, strict=True))
    got = transform(inf.pass_at_k)(n, c, k)
    want = [pass_ref(*case) for case in CASES]
    # float64: lgamma differences are good to ~4 eps lgamma(n+1) ~ 5e-12 absolute
    # at n = 1000; float32 (log-beta differences) to ~2e-5
    # for n <= 1000 (the log ratio is a difference of values up to ~k log n).
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-11 if X64 else 5e-5)


def test_pass_at_k_special_values():
    pass_at_k = jax.jit(inf.pass_at_k)
    n = 200.0
    np.testing.assert_allclose(
        pass_at_k(n, jnp.arange(0.0, 201.0), 1.0),
        np.arange(0, 201) / n,
        atol=1e-12 if X64 else 2e-6,
    )
    edge = pass_at_k(n, jnp.array([0.0, n, 195.0]), 10.0)
    assert edge.tolist() == [0.0, 1.0, 1.0]  # 195 correct: fewer than k wrong ones
    k = jnp.array([1.0, 2.0, 5.0, 20.0, 100.0])
    assert np.all(np.diff(np.asarray(pass_at_k(n, 10.0, k))) > 0)


def test_pass_at_k_averages_over_problems_under_vmap():
    n = jnp.full((5,), 100.0)
    c = jnp.array([0.0, 1.0, 10.0, 50.0, 100.0])
    per = jax.jit(jax.vmap(inf.pass_at_k, in_axes=(0, 0, None)))(n, c, 10.0)
    want = np.mean([pass_ref(100, int(ci), 10) for ci in c])
    np.testing.assert_allclose(jnp.mean(per), want, atol=1e-11 if X64 else 5e-5)


def test_pass_at_k_bad_counts():
    with pytest.raises(ValueError, match="n_correct must be <= n_samples"):
        inf.pass_at_k(10.0, 11.0, 1.0)
    with pytest.raises(ValueError, match="k must be <= n_samples"):
        inf.pass_at_k(10.0, 1.0, 11.0)
    with pytest.raises(ValueError, match="n_correct must be"):
        inf.pass_at_k(10.0, -1.0, 1.0)
    with pytest.raises(ValueError, match="k must be"):
        inf.pass_at_k(10.0, 1.0, 0.0)
    f = jax.jit(inf.pass_at_k)
    out = f(
        jnp.array([10.0, 10.0, 10.0, 0.0, jnp.nan]),
        jnp.array([3.0, 11.0, 3.0, 0.0, 1.0]),
        jnp.array([2.0, 1.0, 11.0, 1.0, 1.0]),
    )
    assert np.isfinite(out[0]) and np.all(np.isnan(out[1:]))
    g = jax.grad(lambda c: jnp.sum(f(jnp.full(3, 10.0), c, 2.0)))(
        jnp.array([3.0, 11.0, 9.5])
    )
    assert np.all(np.isfinite(g))


def test_inference_flops_per_query():
    got = inf.inference_flops_per_query(7e9, 500.0, 32, 4096, 2048)
    per = accounting.inference_flops_per_token(7e9, 32, 4096, 2048)
    np.testing.assert_allclose(got, 500 * per, rtol=rtol())
    np.testing.assert_allclose(
        inf.inference_flops_per_query(7e9, 500.0),
        500 * 2 * 7e9,
        rtol=rtol(),
    )
    with pytest.raises(ValueError, match="generated_tokens must be"):
        inf.inference_flops_per_query(7e9, 0.0)
    with pytest.raises(ValueError, match="needs all of"):
        inf.inference_flops_per_query(7e9, 10.0, n_layers=32)
    out = jax.jit(jax.vmap(lambda t: inf.inference_flops_per_query(7e9, t)))(
        jnp.array([10.0, -1.0])
    )
    assert np.isfinite(out[0]) and np.isnan(out[1])


def test_snell_exchange_rate_is_a_flop_identity():
    # Lifetime FLOPs 6 N D_pre + 2 N D_inf. An M-times larger model costs as much
    # as the small model with its inference compute multiplied by the rate X.
    rng = np.random.default_rng(3)
    m = 10 ** rng.uniform(0, 2, 50)
    d_pre = 10 ** rng.uniform(10, 13, 50)
    d_inf = 10 ** rng.uniform(8, 13, 50)
    x = np.asarray(jax.jit(inf.matched_inference_multiplier)(m, d_pre, d_inf))
    n = 1e9
    big = 6 * m * n * d_pre + 2 * m * n * d_inf
    small = 6 * n * d_pre + 2 * n * d_inf * x
    np.testing.assert_allclose(small, big, rtol=10 * rtol())
    assert float(inf.matched_inference_multiplier(1.0, 1e12, 1e9)) == 1.0
    # Snell Sec. 7 regime: D_inf << D_pre makes the rate large.
    assert float(inf.matched_inference_multiplier(2.0, 1e12, 1e9)) > 1000
    with pytest.raises(ValueError, match="param_multiplier must be"):
        inf.matched_inference_multiplier(0.5, 1e12, 1e9)


@pytest.mark.parametrize("value", [0.0, -1.0, float("nan"), float("inf")])
def test_coverage_bad_samples(value):
    with pytest.raises(ValueError, match="samples must be"):
        inf.coverage(COV, value)


def test_coverage_under_jit_and_grad():
    out = jax.jit(inf.coverage)(COV, jnp.array([4.0, 0.0, -1.0, jnp.nan]))
    assert np.isfinite(out[0]) and np.all(np.isnan(out[1:]))
    g = jax.grad(lambda k: inf.coverage(COV, k))(10.0)
    want = math.exp(COV.a * 10**COV.b) * COV.a * COV.b * 10 ** (COV.b - 1)
    np.testing.assert_allclose(g, want, rtol=max(1e-12, 10 * rtol()))
    assert inf.coverage(COV, np.float32(4)).dtype == jnp.float32
