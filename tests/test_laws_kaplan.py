"""Kaplan 2020 laws: published constants, float64 references, transforms, bad input.

Kaplan et al. 2020, "Scaling Laws for Neural Language Models", arXiv:2001.08361.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import rtol

from jscale import laws
from jscale.laws import compute, kaplan

RNG_SIZE = 257


def ref_joint(params, n, d):
    """Eq. 4.1, literally: [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D in float64."""
    n_c, d_c, a_n, a_d = (np.float64(v) for v in params)
    n = np.asarray(n, np.float64)
    d = np.asarray(d, np.float64)
    return ((n_c / n) ** (a_n / a_d) + d_c / d) ** a_d


def ref_power(params, x):
    x_c, alpha = (np.float64(v) for v in params)
    return (x_c / np.asarray(x, np.float64)) ** alpha


def ref_steps(params, n, s):
    n_c, s_c, a_n, a_s = (np.float64(v) for v in params)
    n = np.asarray(n, np.float64)
    s = np.asarray(s, np.float64)
    return (n_c / n) ** a_n + (s_c / s) ** a_s


def log_uniform(lo, hi, seed, size=RNG_SIZE):
    return 10 ** np.random.default_rng(seed).uniform(lo, hi, size=size)


# --- published constants --------------------------------------------------------


def test_published_constants():
    # Table 2 (fit of Eq. 4.1): alpha_N = 0.076, alpha_D = 0.103, N_c = 6.4e13,
    # D_c = 1.8e13. The preset name "kaplan2020" is a public contract.
    assert laws.get("kaplan2020").params == (6.4e13, 1.8e13, 0.076, 0.103)
    # Eq. 1.1 and 1.2.
    assert laws.get("kaplan2020-n").params == (8.8e13, 0.076)
    assert laws.get("kaplan2020-d").params == (5.4e13, 0.095)
    # Eq. 1.3: alpha_C = 0.050, C_c = 3.1e8 PF-days.
    assert kaplan.COMPUTE_PF_DAYS == (3.1e8, 0.050)
    # Table 3: alpha_N = 0.077, alpha_S = 0.76, N_c = 6.5e13, S_c = 2.1e3.
    assert laws.get("kaplan2020-steps").params == (6.5e13, 2.1e3, 0.077, 0.76)
    # 1 PF-day = 1e15 FLOP/s for one day.
    assert kaplan.PF_DAY_FLOPS == 1e15 * 24 * 3600


def test_families_and_units():
    expected = {
        "kaplan2020": ("kaplan", ("n_params", "n_tokens")),
        "kaplan2020-n": ("kaplan-n", ("n_params",)),
        "kaplan2020-d": ("kaplan-d", ("n_tokens",)),
        "kaplan2020-compute": ("compute", ("compute_flops",)),
        "kaplan2020-steps": ("kaplan-steps", ("n_params", "steps")),
    }
    for name, (family, inputs) in expected.items():
        preset = laws.get(name)
        assert preset.family.name == family
        assert preset.family.inputs == inputs
        assert set(inputs) <= set(laws.INPUT_NAMES)
        assert "2001.08361" in preset.citation
    for name in ("kaplan2020", "kaplan2020-n", "kaplan2020-steps"):
        assert "non-embedding" in laws.get(name).units
    assert "FLOPs" in laws.get("kaplan2020-compute").units


# --- float64 references -----------------------------------------------------------


def test_joint_matches_float64_reference(transform):
    preset = laws.get("kaplan2020")
    n = log_uniform(6, 15, 0)
    d = log_uniform(6, 16, 1)
    got = transform(preset.loss)(n, d)
    np.testing.assert_allclose(got, ref_joint(preset.params, n, d), rtol=rtol())


@pytest.mark.parametrize(
    "name, lo, hi", [("kaplan2020-n", 6, 15), ("kaplan2020-d", 6, 16)]
)
def test_single_variable_laws_match_reference(name, lo, hi, transform):
    preset = laws.get(name)
    x = log_uniform(lo, hi, 2)
    got = transform(preset.loss)(x)
    np.testing.assert_allclose(got, ref_power(preset.params, x), rtol=rtol())


def test_compute_law_in_pf_days_matches_reference(transform):
    c = log_uniform(-8, 8, 3)
    got = transform(kaplan.loss_compute)(kaplan.COMPUTE_PF_DAYS, c)
    np.testing.assert_allclose(got, ref_power((3.1e8, 0.050), c), rtol=rtol())


def test_compute_preset_in_flops_is_the_pf_day_law(transform):
    # Eq. 1.3 with C in FLOPs: (C_c / (C / 8.64e19))^alpha_C = A C^-alpha_C with
    # A = (C_c * 8.64e19)^alpha_C.
    preset = laws.get("kaplan2020-compute")
    assert preset.params.alpha == 0.050
    assert math.isclose(preset.params.A, (3.1e8 * 8.64e19) ** 0.050, rel_tol=1e-15)
    flops = log_uniform(15, 27, 4)
    got = transform(preset.loss)(flops)
    np.testing.assert_allclose(
        got, ref_power((3.1e8, 0.050), flops / 8.64e19), rtol=rtol()
    )
    pf_days = log_uniform(-4, 7, 5)
    np.testing.assert_allclose(
        preset.loss(kaplan.pf_days_to_flops(pf_days)),
        kaplan.loss_compute(kaplan.COMPUTE_PF_DAYS, pf_days),
        rtol=rtol(),
    )


def test_steps_law_matches_reference(transform):
    preset = laws.get("kaplan2020-steps")
    n = log_uniform(6, 15, 6)
    s = log_uniform(2, 7, 7)
    got = transform(preset.loss)(n, s)
    np.testing.assert_allclose(got, ref_steps(preset.params, n, s), rtol=rtol())


def test_unit_conversions():
    c = log_uniform(-5, 10, 8)
    np.testing.assert_allclose(kaplan.pf_days_to_flops(c), c * 8.64e19, rtol=rtol())
    np.testing.assert_allclose(
        kaplan.flops_to_pf_days(kaplan.pf_days_to_flops(c)), c, rtol=2 * rtol()
    )
    assert float(kaplan.pf_days_to_flops(0.0)) == 0.0


# --- properties stated in the paper ----------------------------------------------


def test_critical_batch_size_published_numbers():
    # Eq. 1.4 with B_* = 2e8 tokens, alpha_B = 0.21: B_crit(1 nat) = B_*.
    assert math.isclose(float(kaplan.critical_batch_size(1.0)), 2e8, rel_tol=rtol())
    # Worked by hand: 2e8 / 3^(1/0.21) = 1.0691e6 tokens at L = 3 nats.
    assert math.isclose(
        float(kaplan.critical_batch_size(3.0)), 2e8 / 3.0 ** (1 / 0.21), rel_tol=rtol()
    )
    # Sec. 5.1: B_crit "doubles for every 13% decrease in loss".
    losses = np.linspace(2.0, 5.0, 7)
    ratio = kaplan.critical_batch_size(0.87 * losses) / kaplan.critical_batch_size(
        losses
    )
    np.testing.assert_allclose(ratio, 0.87 ** (-1 / 0.21), rtol=20 * rtol())
    assert np.all((ratio > 1.9) & (ratio < 2.1))
    # Other constants pass through.
    got = kaplan.critical_batch_size(2.5, b_star=1e8, alpha_b=0.5)
    assert math.isclose(float(got), 1e8 / 2.5**2, rel_tol=rtol())


def test_joint_law_limits_are_the_single_variable_forms():
    # Eq. 4.1 was built so that L(N, D -> inf) = (N_c/N)^alpha_N and
    # L(N -> inf, D) = (D_c/D)^alpha_D, here with Table 2's own constants.
    n_c, d_c, a_n, a_d = laws.get("kaplan2020").params
    n = np.logspace(6, 12, 7)
    np.testing.assert_allclose(
        kaplan.loss(kaplan.KAPLAN2020.params, n, 1e35),
        ref_power((n_c, a_n), n),
        rtol=2 * rtol(),
    )
    d = np.logspace(6, 12, 7)
    np.testing.assert_allclose(
        kaplan.loss(kaplan.KAPLAN2020.params, 1e35, d),
        ref_power((d_c, a_d), d),
        rtol=2 * rtol(),
    )


def test_overfitting_penalty_depends_on_n_to_the_074_over_d():
    # Sec. 4.2: the penalty L(N, D) / L(N, inf) - 1 depends on N and D only through
    # N^(alpha_N/alpha_D) / D, with alpha_N/alpha_D = 0.076/0.103 ~ 0.74 (Eq. 4.4).
    p = kaplan.KAPLAN2020.params
    n = np.logspace(6, 12, 7)
    d = 5e3 * n ** (0.076 / 0.103)
    penalty = kaplan.loss(p, n, d) / kaplan.loss(p, n, 1e35) - 1
    np.testing.assert_allclose(penalty, penalty[0], rtol=200 * rtol())


def test_steps_law_limit():
    # S_min -> inf leaves (N_c/N)^alpha_N with Table 3's constants.
    n_c, _, a_n, _ = laws.get("kaplan2020-steps").params
    n = np.logspace(6, 12, 7)
    np.testing.assert_allclose(
        kaplan.loss_steps(kaplan.KAPLAN2020_STEPS.params, n, 1e30),
        ref_power((n_c, a_n), n),
        rtol=2 * rtol(),
    )


# --- transforms ------------------------------------------------------------------


def test_broadcasting_and_vmap():
    preset = laws.get("kaplan2020")
    n = jnp.logspace(7, 12, 5)[:, None]
    d = jnp.logspace(8, 13, 4)[None, :]
    grid = preset.loss(n, d)
    assert grid.shape == (5, 4)
    by_vmap = jax.jit(
        jax.vmap(lambda ni: jax.vmap(lambda dj: preset.loss(ni, dj))(d[0]))
    )(n[:, 0])
    np.testing.assert_allclose(grid, by_vmap, rtol=rtol())
    steps = jax.vmap(laws.get("kaplan2020-steps").loss, in_axes=(0, None))(n[:, 0], 1e5)
    np.testing.assert_allclose(
        steps, laws.get("kaplan2020-steps").loss(n[:, 0], 1e5), rtol=rtol()
    )


def test_vmap_over_params():
    p = kaplan.KAPLAN2020.params
    alpha_d = jnp.array([0.095, 0.103, 0.11])
    stacked = kaplan.KaplanParams(*(jnp.full((3,), v) for v in p[:3]), alpha_d=alpha_d)
    out = jax.vmap(kaplan.loss, in_axes=(0, None, None))(stacked, 1e9, 2e10)
    expected = [ref_joint((*p[:3], a), 1e9, 2e10) for a in alpha_d.tolist()]
    np.testing.assert_allclose(out, expected, rtol=rtol())


# --- gradients -------------------------------------------------------------------


def test_joint_grad_matches_closed_form_and_is_finite():
    # L = exp(alpha_D lse(u, v)), u = (alpha_N/alpha_D) log(N_c/N), v = log(D_c/D):
    # dL/dN = -alpha_N w_u L / N and dL/dD = -alpha_D w_v L / D, with softmax
    # weights w_u + w_v = 1.
    p = kaplan.KAPLAN2020.params
    n_c, d_c, a_n, a_d = p
    g = jax.jit(jax.grad(kaplan.loss, argnums=(1, 2)))
    n, d = np.meshgrid(np.logspace(6, 15, 10), np.logspace(6, 16, 11))
    n, d = n.ravel(), d.ravel()
    dn, dd = jax.vmap(g, in_axes=(None, 0, 0))(p, n, d)
    assert np.all(np.isfinite(dn)) and np.all(np.isfinite(dd))
    u = (a_n / a_d) * np.log(n_c / n)
    v = np.log(d_c / d)
    w_u = 1 / (1 + np.exp(v - u))
    w_v = 1 / (1 + np.exp(u - v))  # not 1 - w_u, which cancels when w_u ~ 1
    value = ref_joint(p, n, d)
    np.testing.assert_allclose(dn, -a_n * w_u * value / n, rtol=20 * rtol())
    np.testing.assert_allclose(dd, -a_d * w_v * value / d, rtol=20 * rtol())


def test_steps_and_batch_grads_match_closed_form():
    n_c, s_c, a_n, a_s = kaplan.KAPLAN2020_STEPS.params
    g = jax.grad(kaplan.loss_steps, argnums=(1, 2))
    for n in np.logspace(6, 15, 4):
        for s in np.logspace(2, 7, 4):
            dn, ds = g(kaplan.KAPLAN2020_STEPS.params, float(n), float(s))
            np.testing.assert_allclose(
                dn, -a_n * (n_c / n) ** a_n / n, rtol=20 * rtol()
            )
            np.testing.assert_allclose(
                ds, -a_s * (s_c / s) ** a_s / s, rtol=20 * rtol()
            )
    db = jax.grad(kaplan.critical_batch_size)
    for loss in (1.5, 2.5, 4.0):
        np.testing.assert_allclose(
            db(loss), -2e8 / 0.21 * loss ** (-1 / 0.21 - 1), rtol=20 * rtol()
        )


def test_joint_grad_wrt_params_matches_finite_differences():
    p = kaplan.KaplanParams(6.4e13, 1.8e13, 0.076, 0.103)
    grads = jax.grad(kaplan.loss)(p, 3e9, 6e10)
    for i in range(4):
        h = 1e-6 * abs(p[i])
        up, dn = list(p), list(p)
        up[i] += h
        dn[i] -= h
        fd = (ref_joint(up, 3e9, 6e10) - ref_joint(dn, 3e9, 6e10)) / (2 * h)
        # Central differences in float64: truncation ~h^2, rounding ~1e-16/h, so 1e-6
        # relative covers both; float32 gradients carry ~1e-6 relative error, and
        # log(N_c/N) ~ 10 amplifies the exponents' by 10.
        np.testing.assert_allclose(grads[i], fd, rtol=max(1e-6, 100 * rtol()))


# --- dtypes and bad input --------------------------------------------------------


def test_dtype_follows_inputs():
    f32 = np.float32
    assert kaplan.loss(kaplan.KAPLAN2020.params, f32(1e9), f32(1e10)).dtype == f32
    assert kaplan.loss_n(kaplan.KAPLAN2020_N.params, f32(1e9)).dtype == f32
    assert kaplan.critical_batch_size(f32(3.0)).dtype == f32
    assert laws.get("kaplan2020-compute").loss(f32(1e21)).dtype == f32
    assert kaplan.pf_days_to_flops(f32(1.0)).dtype == f32
    with jax.enable_x64(True):
        f64 = np.float64
        assert kaplan.loss(kaplan.KAPLAN2020.params, f64(1e9), f64(1e10)).dtype == f64
        assert kaplan.loss_steps(
            kaplan.KAPLAN2020_STEPS.params, 1e9, f64(1e4)
        ).dtype == (f64)
        assert kaplan.critical_batch_size(f64(3.0)).dtype == f64
        assert kaplan.flops_to_pf_days(f64(1e21)).dtype == f64
    assert jnp.issubdtype(
        kaplan.loss(kaplan.KAPLAN2020.params, 10**9, 3 * 10**9).dtype, jnp.floating
    )


BAD_VALUES = [
    (0.0, r"finite values in \(0, inf\); got 0"),
    (-1e9, "got -1e"),
    (float("nan"), "got nan"),
    (float("inf"), "got inf"),
]

CALLS = {
    "loss/n_params": (
        "n_params",
        lambda x: kaplan.loss(kaplan.KAPLAN2020.params, x, 1e10),
    ),
    "loss/n_tokens": (
        "n_tokens",
        lambda x: kaplan.loss(kaplan.KAPLAN2020.params, 1e9, x),
    ),
    "loss_n": ("n_params", lambda x: kaplan.loss_n(kaplan.KAPLAN2020_N.params, x)),
    "loss_d": ("n_tokens", lambda x: kaplan.loss_d(kaplan.KAPLAN2020_D.params, x)),
    "loss_compute": (
        "compute_pf_days",
        lambda x: kaplan.loss_compute(kaplan.COMPUTE_PF_DAYS, x),
    ),
    "compute_preset": ("compute_flops", laws.get("kaplan2020-compute").loss),
    "loss_steps/n_params": (
        "n_params",
        lambda x: kaplan.loss_steps(kaplan.KAPLAN2020_STEPS.params, x, 1e4),
    ),
    "loss_steps/steps": (
        "steps",
        lambda x: kaplan.loss_steps(kaplan.KAPLAN2020_STEPS.params, 1e9, x),
    ),
    "critical_batch_size": ("loss", kaplan.critical_batch_size),
}


@pytest.mark.parametrize("call", sorted(CALLS))
@pytest.mark.parametrize("value, match", BAD_VALUES, ids=["zero", "neg", "nan", "inf"])
def test_bad_input_raises_naming_the_argument(call, value, match):
    name, f = CALLS[call]
    with pytest.raises(ValueError, match=f"{name} must be .*{match}"):
        f(value)


@pytest.mark.parametrize("call", sorted(CALLS))
def test_bad_element_index_is_reported(call):
    name, f = CALLS[call]
    with pytest.raises(ValueError, match=rf"{name} .*index \(2,\)"):
        f([1e9, 2e9, -3.0])


@pytest.mark.parametrize("call", sorted(CALLS))
@pytest.mark.parametrize("wrap", [jax.jit, jax.vmap], ids=["jit", "vmap"])
def test_bad_input_under_transform_is_nan(call, wrap):
    _, f = CALLS[call]
    out = wrap(f)(jnp.array([3.0, 0.0, -1.0, jnp.inf, jnp.nan]))
    assert np.isfinite(out[0]) and np.all(np.isnan(out[1:]))


@pytest.mark.parametrize(
    "f, match",
    [
        (kaplan.pf_days_to_flops, "compute_pf_days"),
        (kaplan.flops_to_pf_days, "compute_flops"),
    ],
)
def test_conversions_reject_negative_and_non_finite(f, match):
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(
            ValueError, match=rf"{match} must be finite values in \[0, inf\)"
        ):
            f(bad)
    out = jax.jit(f)(jnp.array([1.0, -1.0, jnp.nan]))
    assert np.isfinite(out[0]) and np.all(np.isnan(out[1:]))


@pytest.mark.parametrize(
    "f, names",
    [
        (lambda a, b: kaplan.loss(kaplan.KAPLAN2020.params, a, b), "n_params"),
        (
            lambda a, b: kaplan.loss_steps(kaplan.KAPLAN2020_STEPS.params, a, b),
            "n_params",
        ),
    ],
)
def test_shape_mismatch_raises(f, names):
    with pytest.raises(ValueError, match=f"shape mismatch: {names}"):
        f(jnp.ones(3) * 1e9, jnp.ones(4) * 1e10)


def test_bad_elements_leave_param_gradients_finite():
    def total(p, n, d):
        out = kaplan.loss(p, n, d)
        return jnp.sum(jnp.where(jnp.isnan(out), 0.0, out))

    n = jnp.array([1e9, 0.0, -1.0, 1e11])
    grads = jax.jit(jax.grad(total))(kaplan.KAPLAN2020.params, n, 1e10)
    assert all(np.isfinite(v) for v in grads)


def test_compute_family_is_the_same_object():
    assert laws.FAMILIES["compute"] is compute.FAMILY
