"""Mixture-of-experts laws (jscale.laws.moe).

References: float64 NumPy ports of each formula as written in the papers (Clark et
al. 2022 Eq. 1 with the saturating transform of google-deepmind/
scaling_laws_for_routing ``example.ipynb``; Krajewski et al. 2024 Eq. 9 and 10;
Ludziejewski et al. 2025 Eq. 6; Abnar et al. 2025 Eq. 6), closed-form reductions
(E = 1, G -> infinity) and identities (effective parameter count, routing cutoff).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import rtol

from jscale import laws
from jscale.laws import chinchilla, moe

CLARK = laws.get("moe-clark2022-sbase")
KRAJ = laws.get("moe-krajewski2024")
JOINT = laws.get("moe-ludziejewski2025")
ABNAR = moe.AbnarParams(
    a=30.0, alpha=0.2, b=40.0, beta=0.25, c=0.3, lam=-0.4, d=5.0, delta=0.3,
    gamma=0.1, e=1.6,
)  # fmt: skip


def log_uniform(lo, hi, seed, size=129):
    return 10 ** np.random.default_rng(seed).uniform(lo, hi, size=size)


def e_hat(e, e_start, e_max):
    e = np.asarray(e, np.float64)
    return 1.0 / (1.0 / (e - 1.0 + 1.0 / (1.0 / e_start - 1.0 / e_max)) + 1.0 / e_max)


def clark_ref(p, n, e):
    a, b, c, d, s, m = (np.float64(v) for v in p)
    ln, le = np.log10(np.asarray(n, np.float64)), np.log10(e_hat(e, s, m))
    return 10.0 ** (a * ln + b * le + c * ln * le + d)


def kraj_ref(p, n, d, g):
    a, alpha, b, beta, gg, gamma, c = (np.float64(v) for v in p)
    n, d, g = (np.asarray(v, np.float64) for v in (n, d, g))
    return c + (gg / g**gamma + a) / n**alpha + b / d**beta


def joint_ref(p, n, d, e):
    a, alpha, delta, gamma, b, beta, omega, zeta, s, m, c = (np.float64(v) for v in p)
    eh = e_hat(e, s, m)
    le = np.log(eh)
    n, d = np.asarray(n, np.float64), np.asarray(d, np.float64)
    return (
        a * eh**delta * n ** (alpha + gamma * le)
        + b * eh**omega * d ** (beta + zeta * le)
        + c
    )


def abnar_ref(p, n, d, s):
    a, alpha, b, beta, c, lam, dd, delta, gamma, e = (np.float64(v) for v in p)
    n, d, s = (np.asarray(v, np.float64) for v in (n, d, s))
    return (
        a / n**alpha
        + b / d**beta
        + c / (1 - s) ** lam
        + dd / ((1 - s) ** delta * n**gamma)
        + e
    )


# --- registry and constants ---------------------------------------------------------


def test_presets_registered_with_citations():
    for name, arxiv in [
        ("moe-clark2022-sbase", "2202.01169"),
        ("moe-clark2022-rlr", "2202.01169"),
        ("moe-clark2022-hash", "2202.01169"),
        ("moe-krajewski2024", "2402.07871"),
        ("moe-krajewski2024-dense", "2402.07871"),
        ("moe-ludziejewski2025", "2502.05172"),
    ]:
        preset = laws.get(name)
        assert arxiv in preset.citation
        assert set(preset.family.inputs) <= set(laws.INPUT_NAMES)
        assert preset.units and preset.describe()["name"] == name
    assert set(moe.ABNAR2025_FAMILY.inputs) <= set(laws.INPUT_NAMES)


def test_published_constants():
    # Krajewski 2024, Table 1 (MoE row); Ludziejewski 2025, Table 3.
    assert tuple(KRAJ.params) == (18.1, 0.115, 30.8, 0.147, 2.1, 0.58, 0.47)
    assert tuple(JOINT.params) == (
        35.91, -0.1889, -0.2285, 0.0098, 35.98, -0.1775, 0.5529, -0.0259,
        2.0732, 290.4521, 1.3637,
    )  # fmt: skip
    assert tuple(CLARK.params) == (-0.082, -0.108, 0.009, 1.104, 1.847, 314.5)


# --- float64 references ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["sbase", "rlr", "hash"])
def test_clark_matches_reference(transform, name):
    preset = laws.get(f"moe-clark2022-{name}")
    n = log_uniform(7, 12, 0)
    e = np.concatenate([[1.0, 2.0, 512.0], log_uniform(0, 4, 1, size=126)])
    got = transform(preset.loss)(n, e)
    np.testing.assert_allclose(got, clark_ref(preset.params, n, e), rtol=rtol())


def test_krajewski_matches_reference(transform):
    n, d, g = log_uniform(6, 12, 2), log_uniform(8, 13, 3), log_uniform(0, 2, 4)
    got = transform(KRAJ.loss)(n, d, g)
    np.testing.assert_allclose(got, kraj_ref(KRAJ.params, n, d, g), rtol=rtol())


def test_joint_matches_reference(transform):
    n, d = log_uniform(7, 11, 5), log_uniform(9, 13, 6)
    e = np.concatenate([[1.0, 32.0, 1e6], log_uniform(0, 2, 7, size=126)])
    got = transform(JOINT.loss)(n, d, e)
    np.testing.assert_allclose(got, joint_ref(JOINT.params, n, d, e), rtol=rtol())


def test_abnar_matches_reference(transform):
    n, d = log_uniform(7, 11, 8), log_uniform(9, 13, 9)
    s = np.random.default_rng(10).uniform(0, 0.99, size=n.size)
    s[0] = 0.0
    got = transform(moe.abnar_loss)(ABNAR, n, d, s)
    np.testing.assert_allclose(got, abnar_ref(ABNAR, n, d, s), rtol=rtol())


def test_paper_numeric_form_of_the_joint_law():
    # The joint law written with Table 3's numbers inserted (Ludziejewski 2025):
    # 35.91 Ê^-0.2285 N^(-0.1889 + 0.0098 ln Ê) + 35.98 Ê^0.5529
    # D^(-0.1775 - 0.0259 ln Ê) + 1.3637: losses fall with N and D.
    n, d, e = 3e8, 1e10, 8.0
    eh = e_hat(e, 2.0732, 290.4521)
    le = math.log(eh)
    by_hand = (
        35.91 * eh**-0.2285 * n ** (-0.1889 + 0.0098 * le)
        + 35.98 * eh**0.5529 * d ** (-0.1775 - 0.0259 * le)
        + 1.3637
    )
    np.testing.assert_allclose(JOINT.loss(n, d, e), by_hand, rtol=rtol())
    grad = jax.grad(JOINT.loss, argnums=(0, 1))(n, d, e)
    assert grad[0] < 0 and grad[1] < 0


# --- reductions and limits ------------------------------------------------------------


def test_saturating_experts_limits():
    s, m = 1.847, 314.5
    f = jax.jit(moe.saturating_experts)
    np.testing.assert_allclose(f(1.0, s, m), s, rtol=rtol())
    np.testing.assert_allclose(f(1e12, s, m), m, rtol=1e-6 if rtol() < 1e-6 else 1e-4)
    e = np.logspace(0, 6, 50)
    got = np.asarray(f(e, s, m))
    assert np.all(np.diff(got) > 0) and np.all(got < m)
    np.testing.assert_allclose(got, e_hat(e, s, m), rtol=rtol())
    # Unsaturated (E_max -> infinity): Ê = E - 1 + E_start.
    np.testing.assert_allclose(f(e, s, 1e30), e - 1 + s, rtol=rtol())


def test_clark_dense_is_a_power_law():
    # E = 1: log10 L = (a + c log10 E_start) log10 N + b log10 E_start + d.
    a, b, c, d, s, _ = CLARK.params
    n = log_uniform(7, 12, 11)
    slope, icpt = a + c * math.log10(s), b * math.log10(s) + d
    np.testing.assert_allclose(
        jax.jit(CLARK.loss)(n, 1.0), 10 ** (slope * np.log10(n) + icpt), rtol=rtol()
    )


def test_clark_effective_params_identities():
    n = log_uniform(7, 12, 12, size=64)
    e = log_uniform(0, 3, 13, size=64)
    p = CLARK.params
    epc = jax.jit(moe.clark_effective_params)(p, n, e)
    np.testing.assert_allclose(
        jax.jit(moe.clark_effective_params)(p, n, 1.0), n, rtol=50 * rtol()
    )
    # The dense model with EPC parameters has the routed model's loss.
    np.testing.assert_allclose(
        jax.jit(CLARK.loss)(epc, 1.0), clark_ref(p, n, e), rtol=50 * rtol()
    )
    # Below the cutoff, experts are worth more than one parameter count.
    small = n < 1e11
    assert np.all(np.asarray(epc)[small & (e > 2)] > n[small & (e > 2)])


def test_clark_routing_stops_helping_at_the_cutoff():
    p = CLARK.params
    n_cut = float(moe.clark_cutoff_params(p))
    np.testing.assert_allclose(n_cut, 10 ** (-p.b / p.c), rtol=rtol())
    dlde = jax.grad(lambda e, n: jnp.log(CLARK.loss(n, e)))
    assert dlde(8.0, 1e9) < 0  # experts help below N_cut
    assert dlde(8.0, 1e14) > 0  # and hurt above
    assert abs(float(dlde(8.0, n_cut))) < 1e-5


def test_joint_dense_is_chinchilla():
    # E = 1 gives Ê = E_start: a Chinchilla law with A = a E_s^delta,
    # alpha' = -(alpha + gamma ln E_s), B = b E_s^omega, beta' = -(beta + zeta ln E_s).
    p = JOINT.params
    ls = math.log(p.e_start)
    chin = chinchilla.ChinchillaParams(
        E=p.c,
        A=p.a * p.e_start**p.delta,
        B=p.b * p.e_start**p.omega,
        alpha=-(p.alpha + p.gamma * ls),
        beta=-(p.beta + p.zeta * ls),
    )
    n, d = log_uniform(7, 11, 14), log_uniform(9, 13, 15)
    np.testing.assert_allclose(
        jax.jit(JOINT.loss)(n, d, 1.0), chinchilla.loss(chin, n, d), rtol=rtol()
    )
    assert chin.alpha > 0 and chin.beta > 0


def test_krajewski_infinite_granularity_and_dense_preset():
    p = KRAJ.params
    n, d = log_uniform(7, 11, 16), log_uniform(9, 13, 17)
    chin = chinchilla.ChinchillaParams(E=p.c, A=p.a, B=p.b, alpha=p.alpha, beta=p.beta)
    np.testing.assert_allclose(
        jax.jit(KRAJ.loss)(n, d, 1e30), chinchilla.loss(chin, n, d), rtol=rtol()
    )
    # Finer experts help: loss falls with G.
    g = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    assert np.all(np.diff(np.asarray(KRAJ.loss(1e9, 1e10, g))) < 0)
    dense = laws.get("moe-krajewski2024-dense")
    q = dense.params
    chin = chinchilla.ChinchillaParams(E=q.c, A=q.a, B=q.b, alpha=q.alpha, beta=q.beta)
    np.testing.assert_allclose(
        dense.loss(n, d, 1.0), chinchilla.loss(chin, n, d), rtol=rtol()
    )


def test_abnar_dense_limit():
    # S = 0: a/N^alpha + b/D^beta + c + d/N^gamma + e.
    n, d = 1e9, 1e10
    a = ABNAR
    want = a.a / n**a.alpha + a.b / d**a.beta + a.c + a.d / n**a.gamma + a.e
    np.testing.assert_allclose(moe.abnar_loss(a, n, d, 0.0), want, rtol=rtol())


# --- parameter counts and FLOPs ------------------------------------------------------


def test_fine_grained_counts():
    # N = d_model^2 (8E + 4) n_blocks; E = 1 is the dense 12 d^2 per block.
    np.testing.assert_allclose(
        moe.fine_grained_params(512, 8, 1), 12 * 512**2 * 8, rtol=rtol()
    )
    np.testing.assert_allclose(
        moe.fine_grained_params(1024, 16, 64), 1024**2 * 516 * 16, rtol=rtol()
    )
    # Eq. 10 with c_f = 6, c_r = 14, d_model = 64 n_blocks.
    w, nb, d, e, g = 1024.0, 16.0, 1e10, 64.0, 8.0
    want = (12 * w**2 * 6 + w * e * g * 14) * d * nb
    np.testing.assert_allclose(
        moe.fine_grained_flops(w, nb, d, e, g), want, rtol=rtol()
    )
    # Routing cost grows with granularity.
    gs = jnp.array([1.0, 8.0, 64.0])
    assert np.all(np.diff(np.asarray(moe.fine_grained_flops(w, nb, d, e, gs))) > 0)


def test_joint_counts_and_kv_cache():
    w = 1024.0
    v = moe.JOINT_VOCAB
    nb = w / 64
    np.testing.assert_allclose(
        moe.joint_total_params(w, 8), 2 * w * v + (4 + 9 * 8) * nb * w**2, rtol=rtol()
    )
    np.testing.assert_allclose(
        moe.joint_active_params(w), 2 * w * v + 13 * nb * w**2, rtol=rtol()
    )
    # One expert: total equals active.
    np.testing.assert_allclose(
        moe.joint_total_params(w, 1), moe.joint_active_params(w), rtol=rtol()
    )
    np.testing.assert_allclose(
        moe.joint_active_params(w, n_blocks=4), 2 * w * v + 13 * 4 * w**2, rtol=rtol()
    )
    np.testing.assert_allclose(
        moe.joint_kv_cache_values(w, 4096), 2 * 4096 * nb * w, rtol=rtol()
    )


# --- transforms, gradients, dtypes ---------------------------------------------


def test_vmap_over_params_and_broadcasting():
    stacked = moe.JointMoEParams(*(jnp.full((3,), v) for v in JOINT.params))
    stacked = stacked._replace(c=jnp.array([1.0, 1.3637, 2.0]))
    out = jax.jit(jax.vmap(moe.joint_loss, in_axes=(0, None, None, None)))(
        stacked, 1e9, 1e10, 8.0
    )
    want = [
        joint_ref(JOINT.params._replace(c=c), 1e9, 1e10, 8.0) for c in (1, 1.3637, 2)
    ]
    np.testing.assert_allclose(out, want, rtol=rtol())
    grid = CLARK.loss(
        jnp.logspace(7, 10, 4)[:, None], jnp.array([1.0, 8.0, 64.0])[None]
    )
    assert grid.shape == (4, 3)


def fd(f, x, i, h=1e-6):
    up, dn = list(x), list(x)
    up[i], dn[i] = x[i] * math.exp(h), x[i] * math.exp(-h)
    return (f(*up) - f(*dn)) / (2 * h)


@pytest.mark.parametrize(
    "loss, ref, params, x",
    [
        (moe.clark_loss, clark_ref, CLARK.params, (3e8, 16.0)),
        (moe.krajewski_loss, kraj_ref, KRAJ.params, (3e8, 1e10, 8.0)),
        (moe.joint_loss, joint_ref, JOINT.params, (3e8, 1e10, 16.0)),
        (moe.abnar_loss, abnar_ref, ABNAR, (3e8, 1e10, 0.5)),
    ],
    ids=["clark", "krajewski", "joint", "abnar"],
)
def test_gradients_match_finite_differences(loss, ref, params, x):
    grads = jax.jit(jax.grad(loss, argnums=tuple(range(1, len(x) + 1))))(params, *x)
    for i, g in enumerate(grads):
        assert np.isfinite(g)
        want = fd(lambda *y: ref(params, *y), x, i)
        # x dL/dx is O(0.01-1); float32 gradients carry ~1e-6 relative error.
        np.testing.assert_allclose(
            x[i] * g, want, rtol=max(1e-6, 50 * rtol()), atol=1e-8
        )
    pgrads = jax.grad(loss)(params, *x)
    assert all(np.isfinite(v) for v in pgrads)


def test_grad_at_one_expert_is_finite():
    for f, args in [(CLARK.loss, (1e9,)), (JOINT.loss, (1e9, 1e10))]:
        g = jax.grad(lambda e, f=f, args=args: f(*args, e))(1.0)
        assert np.isfinite(g)


def test_dtype_follows_inputs():
    f32 = np.float32
    assert CLARK.loss(f32(1e9), f32(8)).dtype == jnp.float32
    assert JOINT.loss(f32(1e9), f32(1e10), f32(8)).dtype == jnp.float32
    with jax.enable_x64(True):
        assert CLARK.loss(np.float64(1e9), np.float64(8)).dtype == jnp.float64


# --- bad input ---------------------------------------------------------------

CALLS = {
    "clark/n": ("n_active_params", lambda x: CLARK.loss(x, 8.0), 1e9),
    "clark/experts": ("experts", lambda x: CLARK.loss(1e9, x), 8.0),
    "krajewski/n": ("n_params", lambda x: KRAJ.loss(x, 1e10, 8.0), 1e9),
    "krajewski/d": ("n_tokens", lambda x: KRAJ.loss(1e9, x, 8.0), 1e10),
    "krajewski/g": ("granularity", lambda x: KRAJ.loss(1e9, 1e10, x), 8.0),
    "joint/n": ("n_active_params", lambda x: JOINT.loss(x, 1e10, 8.0), 1e9),
    "joint/d": ("n_tokens", lambda x: JOINT.loss(1e9, x, 8.0), 1e10),
    "joint/experts": ("experts", lambda x: JOINT.loss(1e9, 1e10, x), 8.0),
    "abnar/sparsity": ("sparsity", lambda x: moe.abnar_loss(ABNAR, 1e9, 1e10, x), 0.5),
    "epc/experts": (
        "experts",
        lambda x: moe.clark_effective_params(CLARK.params, 1e9, x),
        8.0,
    ),
    "total/d_model": ("d_model", lambda x: moe.joint_total_params(x, 8.0), 1024.0),
    "flops/granularity": (
        "granularity",
        lambda x: moe.fine_grained_flops(1024, 16, 1e10, 64, x),
        8.0,
    ),
}


@pytest.mark.parametrize("call", sorted(CALLS))
@pytest.mark.parametrize("value", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_input_raises_naming_the_argument(call, value):
    name, f, _ = CALLS[call]
    if name == "sparsity" and value == 0.0:
        value = 1.0  # S = 0 is valid (dense), S = 1 is not
    with pytest.raises(ValueError, match=f"{name} must be"):
        f(value)


@pytest.mark.parametrize("call", sorted(CALLS))
def test_bad_input_under_jit_is_nan(call):
    _, f, good = CALLS[call]
    out = jax.jit(jax.vmap(f))(jnp.array([good, -1.0, jnp.inf, jnp.nan]))
    assert np.isfinite(out[0]) and np.all(np.isnan(out[1:]))


def test_fewer_than_one_expert_and_shape_mismatch():
    with pytest.raises(
        ValueError, match=r"experts must be finite values in \[1, inf\)"
    ):
        JOINT.loss(1e9, 1e10, 0.5)
    assert np.isnan(jax.jit(JOINT.loss)(1e9, 1e10, 0.5))
    with pytest.raises(ValueError, match="shape mismatch"):
        KRAJ.loss(jnp.ones(3) * 1e9, jnp.ones(2) * 1e10, 8.0)


def test_bad_elements_leave_param_gradients_finite():
    def total(p, e):
        out = moe.joint_loss(p, 1e9, 1e10, e)
        return jnp.sum(jnp.where(jnp.isnan(out), 0.0, out))

    grads = jax.jit(jax.grad(total))(JOINT.params, jnp.array([8.0, 0.0, -1.0, 1.0]))
    assert all(np.isfinite(v) for v in grads)
