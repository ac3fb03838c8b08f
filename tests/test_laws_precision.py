"""Precision-aware law (Kumar et al. 2024, arXiv:2411.04330).

References: a float64 NumPy port of the unified form as written in the paper
(Sec. 5; N_eff of Sec. 4; delta_PTQ of Sec. 3 with N_eff), its limits, and the
paper's qualitative claims under the App. K constants.
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
from jscale.laws import precision as pr

PRESET = laws.get("precision-kumar2024")
P = PRESET.params
LOSS = jax.jit(pr.loss)


def n_eff_ref(p, n, pw, pa, pkv):
    n, pw, pa, pkv = (np.asarray(v, np.float64) for v in (n, pw, pa, pkv))
    return (
        n
        * (1 - np.exp(-pw / p.gamma_w))
        * (1 - np.exp(-pa / p.gamma_a))
        * (1 - np.exp(-pkv / p.gamma_kv))
    )


def loss_ref(p, n, d, pw, pa, pkv, ppost):
    ne = n_eff_ref(p, n, pw, pa, pkv)
    d, ppost = np.asarray(d, np.float64), np.asarray(ppost, np.float64)
    ptq = p.C_T * d**p.gamma_D / ne**p.gamma_N * np.exp(-ppost / p.gamma_post)
    return p.A * ne**-p.alpha + p.B * d**-p.beta + p.E + ptq


def test_constants_and_registry():
    # App. K, as listed in the project's references (alpha = beta tied).
    assert tuple(P) == (
        4.299e3, 0.4965, 1.806e4, 0.4965, 2.7648, 2.6745, 2.2102, 0.9578,
        0.0598, 0.5068, 0.3439, 0.5907,
    )  # fmt: skip
    assert "2411.04330" in PRESET.citation
    assert "unlikely to transfer" in PRESET.notes
    assert set(PRESET.family.inputs) <= set(laws.INPUT_NAMES)


def test_matches_float64_reference(transform):
    rng = np.random.default_rng(0)
    n = 10 ** rng.uniform(7, 11, 101)
    d = 10 ** rng.uniform(9, 13, 101)
    pw, pa, pkv = (rng.uniform(2, 16, 101) for _ in range(3))
    ppost = rng.uniform(2, 16, 101)
    got = transform(PRESET.loss)(n, d, pw, pa, pkv, ppost)
    np.testing.assert_allclose(got, loss_ref(P, n, d, pw, pa, pkv, ppost), rtol=rtol())
    np.testing.assert_allclose(
        transform(pr.effective_params)(P, n, pw, pa, pkv),
        n_eff_ref(P, n, pw, pa, pkv),
        rtol=rtol(),
    )


def test_high_precision_without_ptq_is_chinchilla():
    # P -> infinity: N_eff = N and delta_PTQ = 0; the Chinchilla form remains.
    n, d = np.logspace(7, 11, 9), np.logspace(9, 13, 9)
    chin = chinchilla.ChinchillaParams(P.E, P.A, P.B, P.alpha, P.beta)
    np.testing.assert_allclose(
        LOSS(P, n, d, 200.0, 200.0, 200.0), chinchilla.loss(chin, n, d), rtol=rtol()
    )
    np.testing.assert_allclose(pr.effective_params(P, n, 200, 200, 200), n, rtol=rtol())
    assert float(pr.ptq_degradation(P, 1e9, 1e10, math.inf)) == 0.0


def test_effective_params_fall_with_fewer_bits():
    bits = jnp.arange(2.0, 17.0)
    for args in [(bits, 16.0, 16.0), (16.0, bits, 16.0), (16.0, 16.0, bits)]:
        ne = np.asarray(pr.effective_params(P, 1e9, *args))
        # Saturates: float32 cannot resolve the last steps near 16 bits.
        assert np.all(np.diff(ne) >= 0) and ne[0] < 0.9 * ne[-1] and np.all(ne < 1e9)
    # Each factor is 1 - exp(-P/gamma): at P = gamma it is 1 - 1/e.
    np.testing.assert_allclose(
        pr.effective_params(P, 1.0, P.gamma_w, 1e3, 1e3), 1 - math.exp(-1), rtol=rtol()
    )


def test_post_train_quantization_degradation():
    # Sec. 3: degradation grows with data, falls with size and with bits.
    d = jnp.logspace(9, 13, 9)
    assert np.all(np.diff(np.asarray(pr.ptq_degradation(P, 1e9, d, 4.0))) > 0)
    n = jnp.logspace(7, 11, 9)
    assert np.all(np.diff(np.asarray(pr.ptq_degradation(P, n, 1e11, 4.0))) < 0)
    b = jnp.arange(2.0, 9.0)
    assert np.all(np.diff(np.asarray(pr.ptq_degradation(P, 1e9, 1e11, b))) < 0)
    np.testing.assert_allclose(
        pr.ptq_degradation(P, 1e9, 1e11, 4.0),
        loss_ref(P, 1e9, 1e11, 16, 16, 16, 4.0)
        - loss_ref(P, 1e9, 1e11, 16, 16, 16, 1e9),
        rtol=100 * rtol(),
    )


def test_more_pretraining_data_can_hurt_after_quantization():
    # Abstract: "the degradation introduced by post-training quantization increases
    # as models are trained on more data, eventually making additional pretraining
    # data actively harmful."
    grad = jax.grad(lambda d: pr.loss(P, 1e8, d, 16.0, 16.0, 16.0, 3.0))
    assert grad(1e9) < 0
    assert grad(1e13) > 0
    assert jax.grad(lambda d: pr.loss(P, 1e8, d))(1e13) < 0  # without PTQ, never


def test_training_cost():
    np.testing.assert_allclose(pr.training_cost(1e9, 2e10), 6 * 1e9 * 2e10, rtol=rtol())
    np.testing.assert_allclose(
        pr.training_cost(1e9, 2e10, 4.0), 6 * 1e9 * 2e10 / 4, rtol=rtol()
    )


def test_gradients_finite_and_match_finite_differences():
    x = (3e8, 1e10, 6.0, 8.0, 4.0, 5.0)
    grads = jax.jit(jax.grad(PRESET.loss, argnums=tuple(range(6))))(*x)
    for i, g in enumerate(grads):
        h = 1e-6 * x[i]
        up, dn = list(x), list(x)
        up[i] += h
        dn[i] -= h
        want = (loss_ref(P, *up) - loss_ref(P, *dn)) / (2 * h)
        np.testing.assert_allclose(
            x[i] * g, x[i] * want, rtol=max(1e-6, 50 * rtol()), atol=1e-9
        )
    assert all(np.isfinite(v) for v in jax.grad(pr.loss)(P, *x))
    # No quantization: the post-training gradient is exactly zero, not NaN.
    g_inf = jax.grad(PRESET.loss, argnums=5)(1e9, 1e10, 16.0, 16.0, 16.0, jnp.inf)
    assert float(g_inf) == 0.0


def test_dtype_follows_inputs():
    f32 = np.float32
    assert PRESET.loss(f32(1e9), f32(1e10), f32(8)).dtype == jnp.float32
    with jax.enable_x64(True):
        assert PRESET.loss(np.float64(1e9), np.float64(1e10)).dtype == jnp.float64


CALLS = {
    "n_params": lambda x: pr.loss(P, x, 1e10),
    "n_tokens": lambda x: pr.loss(P, 1e9, x),
    "weight_bits": lambda x: pr.loss(P, 1e9, 1e10, x),
    "activation_bits": lambda x: pr.loss(P, 1e9, 1e10, 8.0, x),
    "kv_cache_bits": lambda x: pr.loss(P, 1e9, 1e10, 8.0, 8.0, x),
    "post_train_bits": lambda x: pr.loss(P, 1e9, 1e10, 8.0, 8.0, 8.0, x),
    "bits": lambda x: pr.training_cost(1e9, 1e10, x),
}


@pytest.mark.parametrize("name", sorted(CALLS))
@pytest.mark.parametrize("value", [0.0, -4.0, float("nan"), float("inf")])
def test_bad_input_raises_naming_the_argument(name, value):
    if name == "post_train_bits" and value == float("inf"):
        assert np.isfinite(CALLS[name](value))  # inf means "not quantized"
        return
    with pytest.raises(ValueError, match=f"{name} must be"):
        CALLS[name](value)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_bad_input_under_jit_is_nan(name):
    out = jax.jit(jax.vmap(CALLS[name]))(jnp.array([8.0, 0.0, -1.0, jnp.nan]))
    assert np.isfinite(out[0]) and np.all(np.isnan(out[1:]))


def test_shape_mismatch():
    with pytest.raises(ValueError, match="shape mismatch"):
        PRESET.loss(jnp.ones(3) * 1e9, jnp.ones(2) * 1e10)
