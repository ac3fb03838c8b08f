"""MoE allocation (jscale.allocation.moe) against SciPy in float64, the papers'
tables, properties (hypothesis), KKT conditions, gradients and bad input.

References: Ludziejewski et al. 2025 (arXiv:2502.05172) Tables 1-3 and App. A;
Krajewski et al. 2024 (arXiv:2402.07871) Tables 1-2 and Eq. 9-10; Clark et al. 2022
(arXiv:2202.01169) Eq. 1. The SciPy references below are written from the papers'
formulas in NumPy float64 and share no code with the solvers under test. In the
float32 run the same comparisons check float32 results against float64 references.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _reference import (
    minimize_bounded,
    minimize_multistart,
    perturbed,
    root_bracketed,
)
from conftest import X64
from hypothesis import given, settings
from hypothesis import strategies as st

import jscale
from jscale import allocation, laws
from jscale.allocation import moe as amoe
from jscale.laws import moe

DTYPE = jnp.result_type(float)
N_CONFIGS = 200
JOINT = moe.LUDZIEJEWSKI2025.params
KRAJ = moe.KRAJEWSKI2024.params
CLARK = moe.CLARK2022_SBASE.params
V = moe.JOINT_VOCAB
LN10 = math.log(10.0)

# Against the SciPy references. Losses: the references minimize to ~1e-11 in the
# variables (bounded Brent), so float64 losses agree to rounding. float32 losses
# carry ~1e-7 relative rounding per operation (~30 chained), and where the KV cache
# fills nearly all the memory, E on the memory frontier is a difference of nearly
# equal numbers: the float32 rounding of the memory itself moves E by up to ~3e-4
# and the loss by up to ~1e-5 (observed 7e-6).
LOSS_RTOL = 1e-10 if X64 else 1e-5
# log N_act: float64 agrees to the references' own resolution (observed < 1e-6);
# float32 to 1e-4 relative, the contract for float32 against float64 (observed
# < 7e-6: the 1-D solvers locate the stationary point from the sign of the slope,
# to a few ulps of log N).
LOGN_ATOL = 2e-5 if X64 else 1e-4
# log E and log G sit in flatter directions of the loss (the loss changes by
# ~1e-4 relative for a 1% change of E at the optimum), and E on the memory frontier
# is ill-conditioned as above, so float32 resolves them to ~3e-4 (observed); float64
# to the references' resolution.
LOGE_ATOL = 2e-5 if X64 else 1e-3


# Quantities recomputed from logs: log C ~ 50 has a float32 ulp of 3.8e-6, which
# exp() carries over as a relative error; float64 leaves ~1e-14.
EXP_RTOL = 1e-12 if X64 else 1e-5
# The memory constraint holds to that rounding (relative excess of the plan).
VIOLATION_TOL = 1e-12 if X64 else 3e-5
# Distance (in log space) under which a constraint counts as active in the KKT
# checks: float32 solutions sit within ~1e-5 of their bounds.
ACTIVE_TOL = 1e-8 if X64 else 1e-4


def _arr(x):
    return jnp.asarray(x, DTYPE)


# ============================================================ float64 references


def _log_ehat(e, e_start, e_max):
    """log Ê (Clark 2022; Ludziejewski 2025, Eq. 4)."""
    k = e_start * e_max / (e_max - e_start)
    return -np.logaddexp(-np.log(e - 1 + k), -np.log(e_max))


def joint_loss64(p, n, d, e):
    """Ludziejewski 2025, Eq. 6 with Table 3's layout of constants."""
    a, al, de, ga, b, be, om, ze, es, em, c = (float(v) for v in p)
    le = _log_ehat(e, es, em)
    return (
        a * np.exp(de * le) * n ** (al + ga * le)
        + b * np.exp(om * le) * d ** (be + ze * le)
        + c
    )


def joint_nact64(u):
    """App. A.1, Eq. 10 with n_blocks = d_model / 64 (App. A.3)."""
    d = np.exp(u)
    return 2 * d * V + 13 * d**3 / 64


def joint_mem64(u, e, t):
    """Eq. 9 plus the KV cache of Sec. 4.3, in values."""
    d = np.exp(u)
    return 2 * d * V + (4 + 9 * e) * d**3 / 64 + 2 * t * d**2 / 64


def joint_ref(p, f, cap, t, e_lo, e_hi, n_grid=12):
    """min over (u = log d_model, x = log E) by nested, guarded bounded Brent
    (tests/_reference.py).

    Inner: u on [log 64, min(memory bound, C/6 bound)] (the loss along the
    isoFLOP line is convex in log N for a fixed E, so a 9-point scan picks the
    cell); outer: x on [log E_lo, log E_hi], every one of ``n_grid`` grid points a
    start. The bounds are roots of monotone sizes in log d_model on [-5, 60].
    ``cap`` in values.
    """
    u_min = math.log(64.0)
    u_f = root_bracketed(lambda u: math.log(joint_nact64(u)) - math.log(f / 6), -5, 60)

    def inner(x):
        hi = u_f
        if cap is not None:
            hi = min(
                hi,
                root_bracketed(
                    lambda u: math.log(joint_mem64(u, math.exp(x), t)) - math.log(cap),
                    -5,
                    60,
                ),
            )
        if hi < u_min:
            return np.inf, np.nan

        def g(u):
            n = joint_nact64(u)
            return joint_loss64(p, n, f / (6 * n), math.exp(x))

        r = minimize_bounded(g, u_min, hi, grid=9, xatol=1e-11)
        return r.fun, r.x

    x_lo, x_hi = math.log(e_lo), math.log(e_hi)
    if x_hi - x_lo < 1e-12:
        v, u = inner(x_lo)
        return v, joint_nact64(u), e_lo
    x = minimize_bounded(lambda x: inner(x)[0], x_lo, x_hi, grid=n_grid, xatol=1e-11).x
    v, u = inner(x)
    return v, joint_nact64(u), math.exp(x)


def kraj_parts64(p, u, y, f, er, cf=6.0, cr=14.0):
    """Krajewski 2024: Eq. 9 with N = d^2 (8E+4) n_blocks, D from Eq. 10."""
    a, al, b, be, g, ga, c = (float(v) for v in p)
    d, gran = math.exp(u), math.exp(y)
    n = d / 64
    total = d * d * (8 * er + 4) * n
    tokens = f / ((12 * d * d * cf + d * er * gran * cr) * n)
    loss = c + (g / gran**ga + a) / total**al + b / tokens**be
    return loss, 12 * d * d * n, tokens


def kraj_ref(p, f, cap, t, er, g_lo, g_hi, start=None):
    """SLSQP on (log d_model, log G) in the box the memory cap and one token
    impose (tests/_reference.py: guarded, best of several starts). Starts: two
    fixed points of the box, the best point of a 5 x 5 grid over it and, when
    given, ``start`` (jscale's answer) with two perturbations of it; the problem
    is jointly convex, so every start should reach the same optimum. ``cap`` in
    values."""
    u_min = math.log(64.0)
    u_hi = root_bracketed(
        lambda u: (
            math.log(12 * math.exp(2 * u) * 6 + math.exp(u) * er * g_lo * 14)
            + u
            - math.log(64 * f)
        ),
        -5,
        60,
    )
    if cap is not None:
        u_cap = root_bracketed(
            lambda u: (
                math.log(
                    (8 * er + 4) * math.exp(3 * u) / 64 + 2 * t * math.exp(2 * u) / 64
                )
                - math.log(cap)
            ),
            -5,
            60,
        )
        u_hi = min(u_hi, u_cap)
    bounds = [(u_min, u_hi), (math.log(g_lo), math.log(g_hi))]

    def obj(z):
        return kraj_parts64(p, z[0], z[1], f, er)[0]

    lower, upper = np.array(bounds).T
    starts = [lower + np.array(fr) * (upper - lower) for fr in ((0.3, 0.2), (0.7, 0.8))]
    grid = [
        lower + np.array([i, j]) / 4 * (upper - lower)
        for i in range(5)
        for j in range(5)
    ]
    starts.append(min(grid, key=obj))
    if start is not None:
        starts += [np.asarray(start, float), *perturbed(start, bounds, 0.1, 2, seed=1)]
    best = minimize_multistart(
        obj, starts, bounds, options={"ftol": 1e-16, "maxiter": 500}
    )
    loss, nact, _ = kraj_parts64(p, best.x[0], best.x[1], f, er)
    return loss, nact, math.exp(best.x[1])


def clark_log_loss64(p, n, e):
    a, b, c, d, es, em = (float(v) for v in p)
    ln, le = math.log10(n), _log_ehat(e, es, em) / LN10
    return LN10 * (a * ln + b * le + c * ln * le + d)


def clark_ref(p, f, dtok, cap, t, phi, e_lo, e_hi, n_grid=16):
    """min over (x = log N, y = log E) by nested, guarded bounded Brent
    (tests/_reference.py).

    Inner: y on [log E_lo, log E_hi] cut by the memory (for each N, a bound on
    E), a 9-point scan and Brent; outer: x on [log(12 x 64^2), budget and memory
    bound], every one of ``n_grid`` grid points a start. The memory bound is the
    root of a monotone size in log N on [-10, 80]. ``cap`` in values.
    """
    x_min = math.log(12 * 64.0**2)

    def kv(x):
        return 2 * t / 64 * (64 / 12) ** (2 / 3) * math.exp(2 * x / 3)

    x_hi = math.log(f / (6 * dtok))
    if cap is not None:
        size = 1 + phi * (e_lo - 1)
        x_hi = min(
            x_hi, root_bracketed(lambda x: math.exp(x) * size + kv(x) - cap, -10, 80)
        )

    def inner(x):
        y_lo, y_hi = math.log(e_lo), math.log(e_hi)
        if cap is not None:
            e_fit = 1 + ((cap - kv(x)) / math.exp(x) - 1) / phi
            y_hi = min(y_hi, math.log(max(e_fit, e_lo)))

        def g(y):
            return clark_log_loss64(p, math.exp(x), math.exp(y))

        if y_hi - y_lo < 1e-12:
            return g(y_lo), y_lo
        r = minimize_bounded(g, y_lo, y_hi, grid=9, xatol=1e-11)
        return r.fun, r.x

    x = minimize_bounded(lambda x: inner(x)[0], x_min, x_hi, grid=n_grid, xatol=1e-11).x
    v, y = inner(x)
    return math.exp(v), math.exp(x), math.exp(y)


def _compare(i, r, ref_loss, ref_n, ref_e, e_field="experts"):
    loss = float(r.loss[i])
    # Never worse than the best SciPy result (beyond rounding) ...
    assert loss <= ref_loss * (1 + LOSS_RTOL), (i, loss, ref_loss)
    # ... and the same point where SciPy reached the optimum too (a lower loss of
    # ours than SciPy's means SciPy stopped short, not that jscale is wrong).
    if ref_loss <= loss * (1 + LOSS_RTOL):
        assert abs(math.log(float(r.n_params[i]) / ref_n)) < LOGN_ATOL, i
        assert abs(math.log(float(getattr(r, e_field)[i]) / ref_e)) < LOGE_ATOL, i


# ============================================================== against SciPy


def test_joint_matches_scipy():
    """200 configurations: budgets 1e18..1e26 FLOPs, 70% with a memory cap of
    1 GB..10 TB (bf16), KV cache 0 or 1e2..1e6 tokens, max_experts 1..316, the
    law's a and alpha perturbed (x10^+-0.2, +-10%)."""
    rng = np.random.default_rng(21)
    f = 10 ** rng.uniform(18, 26, N_CONFIGS)
    capped = rng.uniform(size=N_CONFIGS) < 0.7
    mem = np.where(capped, 10 ** rng.uniform(9, 13, N_CONFIGS), 1e30)
    t = np.where(
        rng.uniform(size=N_CONFIGS) < 0.8, 10 ** rng.uniform(2, 6, N_CONFIGS), 0
    )
    e_hi = 10 ** rng.uniform(0, 2.5, N_CONFIGS)
    p = np.tile(np.asarray(JOINT, float), (N_CONFIGS, 1))
    p[:, 0] *= 10 ** rng.uniform(-0.2, 0.2, N_CONFIGS)
    p[:, 1] *= rng.uniform(0.9, 1.1, N_CONFIGS)
    params = moe.JointMoEParams(*(_arr(p[:, k]) for k in range(11)))
    r = allocation.joint_moe_optimal(
        params,
        _arr(f),
        max_experts=_arr(e_hi),
        memory_bytes=_arr(mem),
        context=_arr(t),
    )
    assert np.all(np.asarray(r.status) == allocation.CONVERGED)
    assert np.all(np.asarray(r.violation) < VIOLATION_TOL)
    for i in range(N_CONFIGS):
        cap = mem[i] / 2 if capped[i] else None
        ref = joint_ref(p[i], f[i], cap, t[i], 1.0, e_hi[i])
        _compare(i, r, *ref)


def test_fine_grained_matches_scipy():
    """200 configurations: budgets 1e18..1e27, 60% with memory 10 GB..100 TB,
    KV cache 0 or 1e2..1e6 tokens, max granularity 1..316, expansion rate
    3..160, the law's a and alpha perturbed."""
    rng = np.random.default_rng(22)
    f = 10 ** rng.uniform(18, 27, N_CONFIGS)
    capped = rng.uniform(size=N_CONFIGS) < 0.6
    mem = np.where(capped, 10 ** rng.uniform(10, 14, N_CONFIGS), 1e30)
    t = np.where(
        rng.uniform(size=N_CONFIGS) < 0.8, 10 ** rng.uniform(2, 6, N_CONFIGS), 0
    )
    g_hi = 10 ** rng.uniform(0, 2.5, N_CONFIGS)
    er = 10 ** rng.uniform(0.5, 2.2, N_CONFIGS)
    p = np.tile(np.asarray(KRAJ, float), (N_CONFIGS, 1))
    p[:, 0] *= 10 ** rng.uniform(-0.2, 0.2, N_CONFIGS)
    p[:, 1] *= rng.uniform(0.9, 1.1, N_CONFIGS)
    params = moe.KrajewskiParams(*(_arr(p[:, k]) for k in range(7)))
    r = allocation.fine_grained_moe_optimal(
        params,
        _arr(f),
        max_granularity=_arr(g_hi),
        expansion_rate=_arr(er),
        memory_bytes=_arr(mem),
        context=_arr(t),
    )
    assert np.all(np.asarray(r.status) == allocation.CONVERGED)
    # Eq. 10: the budget is spent exactly.
    np.testing.assert_allclose(r.compute_flops, f, rtol=EXP_RTOL)
    for i in range(N_CONFIGS):
        cap = mem[i] / 2 if capped[i] else None
        nact = float(r.n_params[i])  # 12 d^3 / 64: start SciPy at jscale's answer
        start = (math.log(nact * 64 / 12) / 3, math.log(float(r.granularity[i])))
        ref = kraj_ref(p[i], f[i], cap, t[i], er[i], 1.0, g_hi[i], start=start)
        _compare(i, r, *ref, e_field="granularity")
    np.testing.assert_allclose(r.experts, er * np.asarray(r.granularity), rtol=EXP_RTOL)


def test_routed_matches_scipy():
    """200 configurations over the three Clark presets: budgets 1e18..1e26,
    training tokens 1e9..1e12, 70% with memory 0.3 GB..10 TB, KV cache 0 or
    1e2..1e6 tokens, max_experts 1..1000, expert fraction 0.1..1."""
    rng = np.random.default_rng(23)
    presets = [moe.CLARK2022_SBASE, moe.CLARK2022_RLR, moe.CLARK2022_HASH]
    p = np.array(
        [np.asarray(presets[k].params, float) for k in rng.integers(0, 3, N_CONFIGS)]
    )
    f = 10 ** rng.uniform(18, 26, N_CONFIGS)
    dtok = 10 ** rng.uniform(9, 12, N_CONFIGS)
    capped = rng.uniform(size=N_CONFIGS) < 0.7
    mem = np.where(capped, 10 ** rng.uniform(8.5, 13, N_CONFIGS), 1e30)
    t = np.where(
        rng.uniform(size=N_CONFIGS) < 0.8, 10 ** rng.uniform(2, 6, N_CONFIGS), 0
    )
    e_hi = 10 ** rng.uniform(0, 3, N_CONFIGS)
    phi = rng.uniform(0.1, 1.0, N_CONFIGS)
    params = moe.ClarkParams(*(_arr(p[:, k]) for k in range(6)))
    r = allocation.routed_moe_optimal(
        params,
        _arr(f),
        n_tokens=_arr(dtok),
        max_experts=_arr(e_hi),
        memory_bytes=_arr(mem),
        context=_arr(t),
        expert_fraction=_arr(phi),
    )
    status = np.asarray(r.status)
    assert np.all(status == allocation.CONVERGED)
    assert np.all(np.asarray(r.compute_flops) <= f * (1 + EXP_RTOL))
    for i in range(N_CONFIGS):
        cap = mem[i] / 2 if capped[i] else None
        ref = clark_ref(p[i], f[i], dtok[i], cap, t[i], phi[i], 1.0, e_hi[i])
        _compare(i, r, *ref)


def test_routed_without_memory_is_the_law_at_the_budget():
    # Below Clark's cutoff (N < 10^(-b/c) = 1e12 for S-BASE) experts always help
    # and the law has no token count: N = C / (6 D), E = max_experts, and the loss
    # is the law itself (Clark 2022, Eq. 1).
    c = _arr([6 * 1.3e9 * 130e9, 1e22])
    r = allocation.routed_moe_optimal(CLARK, c, max_experts=_arr([64.0, 512.0]))
    n = np.asarray(c) / (6 * 130e9)
    np.testing.assert_allclose(r.n_params, n, rtol=EXP_RTOL)
    np.testing.assert_allclose(r.experts, [64.0, 512.0], rtol=EXP_RTOL)
    np.testing.assert_allclose(
        r.loss, moe.clark_loss(CLARK, n, _arr([64.0, 512.0])), rtol=EXP_RTOL
    )
    # Clark 2022's own example (the laws module's doctest): 1.3B with 64 experts.
    assert round(float(r.loss[0]), 4) == 2.0498
    # Total parameters: each extra expert copies the share phi of N.
    phi = amoe.CLARK_EXPERT_FRACTION
    np.testing.assert_allclose(
        r.n_total_params, n * (1 + phi * (np.array([64, 512]) - 1)), rtol=EXP_RTOL
    )


def test_routed_expert_fraction_matches_clark_data():
    # The authors' total and dense parameter counts (google-deepmind/
    # scaling_laws_for_routing data/curves.csv.gz, shipped in jscale/data/
    # routing_moe): total = N (1 + phi (E - 1)), phi within 1% of
    # CLARK_EXPERT_FRACTION for their two largest sizes (370M, 1.3B), within 25%
    # down to 15M (where the embeddings' share of N differs most).
    path = (
        Path(jscale.__file__).parent / "data" / "routing_moe" / "clark2022_routed.csv"
    )
    if not path.exists():
        pytest.skip("Clark 2022 data not shipped")
    with path.open() as fh:
        rows = [r for r in csv.DictReader(fh) if float(r["experts"]) > 1]
    assert len(rows) > 100
    n = np.array([float(r["n_active_params"]) for r in rows])
    e = np.array([float(r["experts"]) for r in rows])
    total = np.array([float(r["total_params"]) for r in rows])
    phi = (total / n - 1) / (e - 1)
    big = n > 3e8
    assert big.sum() > 30
    np.testing.assert_allclose(phi[big], amoe.CLARK_EXPERT_FRACTION, rtol=0.01)
    np.testing.assert_allclose(phi, amoe.CLARK_EXPERT_FRACTION, rtol=0.25)


# =============================================================== papers' tables

# Ludziejewski 2025, Table 1: compute-optimal N_act and D for E = 1..32.
_T1_EXPERTS = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0])
_T1 = {
    1e20: (
        [1.7e9, 1.5e9, 1.2e9, 990e6, 810e6, 669e6],
        [9.7e9, 11.4e9, 13.9e9, 17e9, 20.7e9, 24.9e9],
    ),
    1e21: (
        [5.7e9, 5e9, 4.4e9, 3.8e9, 3.3e9, 2.85e9],
        [29.3e9, 33e9, 38e9, 44.3e9, 51.2e9, 58.4e9],
    ),
    1e22: (
        [18.8e9, 17.4e9, 15.8e9, 14.4e9, 13.2e9, 12.2e9],
        [88.6e9, 96e9, 105.4e9, 115.8e9, 126.5e9, 136.9e9],
    ),
}


def test_joint_reproduces_ludziejewski_table_1():
    budgets = np.array(list(_T1))[:, None] * np.ones(6)
    r = allocation.joint_moe_optimal(
        JOINT, _arr(budgets), experts=_arr(np.tile(_T1_EXPERTS, (3, 1)))
    )
    n = np.array([v[0] for v in _T1.values()])
    d = np.array([v[1] for v in _T1.values()])
    # The paper computed Table 1 from its per-E Chinchilla fits (Table 4), whose
    # constants differ from Table 3's joint law reduced to a fixed E by up to 0.3%
    # in m and n and 1e-4 in the exponents; with Table 1's two-to-three digits
    # that moves N_act by up to 2.1% and D by up to 1.1% (row by row below).
    np.testing.assert_allclose(r.n_params, n, rtol=0.025)
    np.testing.assert_allclose(r.n_tokens, d, rtol=0.015)
    np.testing.assert_allclose(r.compute_flops, budgets, rtol=EXP_RTOL)
    # Finding 1: more experts, fewer active parameters and more tokens.
    assert np.all(np.diff(np.asarray(r.n_params), axis=1) < 0)
    assert np.all(np.diff(np.asarray(r.n_tokens), axis=1) > 0)


def test_joint_reproduces_ludziejewski_table_2():
    """Table 2: the optimal E (among 1..32) for budgets 1e21..1e24 FLOPs and
    24 GB (RTX 4090), 80 GB (H100), 640 GB (8 x H100), with 16k tokens of KV cache
    and bf16 weights and cache."""
    budgets = np.array([1e21, 1e22, 1e23, 1e24])
    memory = np.array([24e9, 80e9, 640e9])
    table = np.array(
        [[16, 32, 32], [4, 16, 32], [1, 8, 32], [1, 1, 16]]
    )  # ">= 32" as 32
    r = allocation.joint_moe_optimal(
        JOINT,
        _arr(budgets)[:, None, None],
        experts=_arr(_T1_EXPERTS)[None, None, :],
        memory_bytes=_arr(memory)[None, :, None],
        context=16384.0,
    )
    assert np.all(np.asarray(r.status) == allocation.CONVERGED)
    assert np.all(
        np.asarray(r.memory_bytes) <= memory[None, :, None] * (1 + VIOLATION_TOL)
    )
    loss = np.asarray(r.loss, float)
    best = _T1_EXPERTS[np.argmin(loss, axis=-1)]
    match = best == table
    # Nine of the twelve cells reproduce exactly. The other three are near ties:
    # (1e21, 24 GB) 32 here vs 16 printed, (1e23, 80 GB) 4 vs 8, (1e24, 640 GB)
    # 8 vs 16, where the printed E's loss is 0.004-0.007 nats above the optimum
    # found here, i.e. within the law's own error (RMSE 0.0039 held-out, 0.0062
    # on training runs; Sec. 5.2). The paper does not print the loss values nor
    # which coefficients (Table 3 or the per-E Table 4) or rounding of memory it
    # used, and no variant of the accounting tried (GB or GiB, 16000 or 16384
    # tokens, Table 4's coefficients) reproduces all twelve.
    assert int(match.sum()) == 9
    assert sorted(zip(*np.nonzero(~match), strict=True)) == [(0, 0), (2, 1), (3, 2)]
    idx = np.searchsorted(_T1_EXPERTS, table)
    printed = np.take_along_axis(loss, idx[..., None], axis=-1)[..., 0]
    assert np.all(printed - loss.min(axis=-1) < 0.0075)
    # With E free in [1, 32] the loss is at most the best of the discrete ones.
    free = allocation.joint_moe_optimal(
        JOINT,
        _arr(budgets)[:, None],
        max_experts=32.0,
        memory_bytes=_arr(memory)[None, :],
    )
    assert np.all(np.asarray(free.loss) <= loss.min(axis=-1) * (1 + PROP_RTOL))


# Krajewski 2024, Table 2: (N_act, D, G, FLOPs, loss); their "64 x N_act".
_KRAJ_T2 = [
    (100e6, 4.37e9, 8, 2.95e18, 3.133),
    (1e9, 28.94e9, 16, 1.93e20, 2.491),
    (3e9, 72.90e9, 16, 1.41e21, 2.245),
    (7e9, 137.60e9, 32, 6.46e21, 2.076),
    (70e9, 941.07e9, 32, 4.16e23, 1.694),
    (300e9, 2.96e12, 64, 5.69e24, 1.503),
    (1e12, 7.94e12, 64, 4.97e25, 1.367),
]


def test_fine_grained_reproduces_krajewski_table_2():
    n, d, g, f, loss = (np.array(v, float) for v in zip(*_KRAJ_T2, strict=True))
    # (a) At the printed G and budget, N_act and D within 3%: the rows are printed
    # for round model sizes ("64 x 100M"), the budget to three digits.
    r = allocation.fine_grained_moe_optimal(KRAJ, _arr(f), granularity=_arr(g))
    np.testing.assert_allclose(r.n_params, n, rtol=0.03)
    np.testing.assert_allclose(r.n_tokens, d, rtol=0.03)
    # Their losses are 0.011-0.024 nats above Eq. 9 with Table 1's constants,
    # decreasing with scale: Table 1 rounds alpha and beta to 3 decimals, and half
    # a unit there (5e-4) moves N^-alpha and D^-beta by ~1.1% each (log N ~ 22-30),
    # ~0.015 nats apiece at these sizes.
    assert np.all(np.asarray(r.loss) < loss)
    assert np.all(loss - np.asarray(r.loss) < 0.03)
    # (b) Over powers of two (the paper's grid), the printed G is the best one.
    powers = 2.0 ** np.arange(0, 9)
    grid = allocation.fine_grained_moe_optimal(
        KRAJ, _arr(f)[:, None], granularity=_arr(powers)[None, :]
    )
    np.testing.assert_array_equal(powers[np.argmin(np.asarray(grid.loss), axis=1)], g)
    # (c) With G free, the optimum rounds to the printed G in log2 G, and N_act
    # is within 4% of the printed size.
    free = allocation.fine_grained_moe_optimal(KRAJ, _arr(f))
    np.testing.assert_array_equal(
        np.round(np.log2(np.asarray(free.granularity))), np.log2(g)
    )
    np.testing.assert_allclose(free.n_params, n, rtol=0.04)
    np.testing.assert_allclose(
        free.experts, 64 * np.asarray(free.granularity), rtol=EXP_RTOL
    )


# ================================================================= properties

_log_c = st.floats(19.0, 25.0)
_log_mem = st.floats(9.5, 12.5)

_FAMILIES = {
    "joint": lambda c, **kw: allocation.joint_moe_optimal(JOINT, c, **kw),
    "fine-grained": lambda c, max_experts=None, experts=None, **kw: (
        allocation.fine_grained_moe_optimal(
            KRAJ, c, max_granularity=max_experts, granularity=experts, **kw
        )
    ),
    "routed": lambda c, **kw: allocation.routed_moe_optimal(CLARK, c, **kw),
}
# Rounding of the float32 solution (~1e-7 relative per operation) may order two
# equal optima either way; float64 leaves 1e-12.
PROP_RTOL = 1e-12 if X64 else 2e-6


def _losses(r):
    assert np.all(np.asarray(r.status) == allocation.CONVERGED)
    return np.asarray(r.loss, float)


@pytest.mark.parametrize("family", sorted(_FAMILIES))
@settings(max_examples=6, deadline=None)
@given(log_c=_log_c, growth=st.floats(0.01, 3.0), log_m=_log_mem)
def test_more_budget_never_hurts(family, log_c, growth, log_m):
    c = _arr([10**log_c, 10 ** (log_c + growth)])
    r = _FAMILIES[family](c, memory_bytes=10**log_m)
    lo, hi = _losses(r)
    assert hi <= lo * (1 + PROP_RTOL)


@pytest.mark.parametrize("family", sorted(_FAMILIES))
@settings(max_examples=6, deadline=None)
@given(
    log_c=_log_c,
    log_m=_log_mem,
    more=st.floats(0.01, 2.0),
    log_e=st.floats(0.0, 2.0),
    frac=st.floats(0.0, 1.0),
)
def test_relaxing_a_constraint_never_raises_the_loss(
    family, log_c, log_m, more, log_e, frac
):
    solve = _FAMILIES[family]
    c = 10**log_c
    e_max = 10**log_e
    # One batch: memory m and m x 10^more; no memory at all.
    r = solve(
        _arr([c, c]),
        memory_bytes=_arr([10**log_m, 10 ** (log_m + more)]),
        max_experts=e_max,
    )
    tight, loose = _losses(r)
    assert loose <= tight * (1 + PROP_RTOL)
    free = _losses(solve(c, max_experts=e_max))
    assert free <= loose * (1 + PROP_RTOL)
    # More experts allowed never hurts; fixing E inside the range never helps.
    wider = _losses(solve(c, memory_bytes=10**log_m, max_experts=e_max * 4))
    assert wider <= tight * (1 + PROP_RTOL)
    e = 10 ** (frac * log_e)
    fixed = _losses(solve(c, memory_bytes=10**log_m, experts=e))
    assert fixed >= tight * (1 - PROP_RTOL)


# ======================================================================== KKT


def _kkt(grad, active, tol):
    """grad f + sum mu_i grad g_i = 0 with mu >= 0 over active ``g_i <= 0``."""
    if active:
        a = np.stack(active, axis=1)
        mu, *_ = np.linalg.lstsq(a, -grad, rcond=None)
        resid = grad + a @ mu
        assert np.all(mu >= -tol), mu
    else:
        resid = grad
    assert np.max(np.abs(resid)) <= tol, (grad, resid)


def _fd_grad(f, z, h=1e-6):
    z = np.asarray(z, float)
    out = []
    for k in range(z.size):
        e = np.zeros_like(z)
        e[k] = h
        out.append((f(z + e) - f(z - e)) / (2 * h))
    return np.array(out)


# At the float32 solution log N and log E are off by ~1e-5 and ~1e-4, which moves
# the gradient of the loss (curvature ~0.01-0.1 in log space) by ~1e-6-1e-5.
KKT_TOL = 1e-7 if X64 else 3e-5


@pytest.mark.parametrize(
    ("c", "memory", "e_max"),
    [(1e22, None, 32.0), (1e22, 80e9, 32.0), (1e23, 80e9, 32.0), (1e21, 80e9, 8.0)],
)
def test_joint_kkt(c, memory, e_max):
    r = allocation.joint_moe_optimal(JOINT, c, memory_bytes=memory, max_experts=e_max)
    assert int(r.status) == allocation.CONVERGED
    n, e = float(r.n_params), float(r.experts)
    u = root_bracketed(lambda v: math.log(joint_nact64(v)) - math.log(n), 0, 40)
    z = np.array([u, math.log(e)])

    def loss(z):
        nn = joint_nact64(z[0])
        return joint_loss64(JOINT, nn, c / (6 * nn), math.exp(z[1]))

    active = []
    if memory is not None:

        def g(z):
            return math.log(2 * joint_mem64(z[0], math.exp(z[1]), 16384.0)) - math.log(
                memory
            )

        if abs(g(z)) < ACTIVE_TOL:
            active.append(_fd_grad(g, z))
    if z[1] >= math.log(e_max) - ACTIVE_TOL:
        active.append(np.array([0.0, 1.0]))
    if z[1] <= ACTIVE_TOL:
        active.append(np.array([0.0, -1.0]))
    _kkt(_fd_grad(loss, z), active, KKT_TOL)
    assert float(r.grad_norm) < KKT_TOL * 10


@pytest.mark.parametrize(("c", "memory"), [(1e22, None), (1e22, 80e9), (1e24, 200e9)])
def test_fine_grained_kkt(c, memory):
    r = allocation.fine_grained_moe_optimal(KRAJ, c, memory_bytes=memory)
    assert int(r.status) == allocation.CONVERGED
    u = math.log((float(r.n_params) * 64 / 12) ** (1 / 3))
    z = np.array([u, math.log(float(r.granularity))])
    active = []
    if memory is not None:

        def g(z):
            d = math.exp(z[0])
            return math.log(2 * (516 * d**3 / 64 + 2 * 16384 * d**2 / 64)) - math.log(
                memory
            )

        if abs(g(z)) < ACTIVE_TOL:
            active.append(_fd_grad(g, z))
    if z[1] >= math.log(256.0) - ACTIVE_TOL:
        active.append(np.array([0.0, 1.0]))
    grad = _fd_grad(lambda z: kraj_parts64(KRAJ, z[0], z[1], c, 64.0)[0], z)
    _kkt(grad, active, KKT_TOL)


@pytest.mark.parametrize(
    ("c", "memory", "e_max"),
    [(1e22, None, 64.0), (1e22, 80e9, 512.0), (1e20, 24e9, 512.0), (1e24, 80e9, 64.0)],
)
def test_routed_kkt(c, memory, e_max):
    r = allocation.routed_moe_optimal(CLARK, c, memory_bytes=memory, max_experts=e_max)
    assert int(r.status) == allocation.CONVERGED
    z = np.array([math.log(float(r.n_params)), math.log(float(r.experts))])
    phi, t = amoe.CLARK_EXPERT_FRACTION, 16384.0

    def loss(z):
        return clark_log_loss64(CLARK, math.exp(z[0]), math.exp(z[1]))

    def mem(z):
        kv = 2 * t / 64 * (64 / 12) ** (2 / 3) * math.exp(2 * z[0] / 3)
        total = math.exp(z[0]) * (1 + phi * (math.exp(z[1]) - 1)) + kv
        return math.log(2 * total) - math.log(memory)

    active = []
    if z[0] >= math.log(c / (6 * 130e9)) - ACTIVE_TOL:
        active.append(np.array([1.0, 0.0]))
    if memory is not None and abs(mem(z)) < ACTIVE_TOL:
        active.append(_fd_grad(mem, z))
    if z[1] >= math.log(e_max) - ACTIVE_TOL:
        active.append(np.array([0.0, 1.0]))
    if z[1] <= ACTIVE_TOL:
        active.append(np.array([0.0, -1.0]))
    _kkt(_fd_grad(loss, z), active, KKT_TOL)


# =================================================================== gradients


@pytest.mark.skipif(not X64, reason="finite differences need float64")
@pytest.mark.parametrize(
    ("family", "args"),
    [
        ("joint", (1e22, 1e15)),  # no binding cap: Eq. 7 at max_experts
        ("joint", (1e22, 80e9)),  # on the memory frontier
        ("joint", (1e23, 24e9)),  # one expert, at the cap
        ("fine-grained", (1e22, 1e15)),
        ("fine-grained", (1e22, 80e9)),
        ("routed", (1e22, 80e9)),
        ("routed", (1e22, 8e9)),
    ],
)
def test_gradients_match_finite_differences(family, args):
    """d(log N_act, log E, loss) / d(budget, memory, one law constant)."""
    if family == "joint":

        def fn(c, m, k):
            r = allocation.joint_moe_optimal(JOINT._replace(a=k), c, memory_bytes=m)
            return jnp.log(r.n_params) + 0.3 * jnp.log(r.experts) + r.loss

        k0 = 35.91
    elif family == "fine-grained":

        def fn(c, m, k):
            r = allocation.fine_grained_moe_optimal(
                KRAJ._replace(a=k), c, memory_bytes=m
            )
            return jnp.log(r.n_params) + 0.3 * jnp.log(r.granularity) + r.loss

        k0 = 18.1
    else:

        def fn(c, m, k):
            r = allocation.routed_moe_optimal(
                CLARK._replace(d=k), c, memory_bytes=m, max_experts=64.0
            )
            return jnp.log(r.n_params) + 0.3 * jnp.log(r.experts) + r.loss

        k0 = 1.104
    x = [jnp.asarray(v, DTYPE) for v in (*args, k0)]
    grads = jax.grad(fn, argnums=(0, 1, 2))(*x)
    h = 1e-6
    for i, g in enumerate(grads):
        up, down = list(x), list(x)
        up[i], down[i] = x[i] * (1 + h), x[i] * (1 - h)
        fd = (fn(*up) - fn(*down)) / (2 * h * x[i])
        # Central differences at h = 1e-6: truncation ~h^2, rounding ~eps/h.
        np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-9 / float(x[i]))


# ============================================================== interfaces


def test_front_door_dispatch_and_fields():
    r = allocation.moe_optimal("moe-ludziejewski2025", 1e22, memory_gb=40, devices=2)
    ref = allocation.joint_moe_optimal(JOINT, 1e22, memory_bytes=80e9)
    for a, b in zip(r, ref, strict=True):
        if a is not None:
            np.testing.assert_array_equal(a, b)
    for field in (
        "n_params",
        "n_total_params",
        "experts",
        "n_tokens",
        "loss",
        "memory_bytes",
    ):
        assert getattr(r, field) is not None
    assert r.granularity is None
    assert float(r.n_total_params) > float(r.n_params)
    # Krajewski: experts = 64 G fine-grained experts; fixing 1024 fixes G = 16.
    k = allocation.moe_optimal("moe-krajewski2024", 1.93e20, experts=1024)
    assert float(k.granularity) == pytest.approx(16.0)
    assert float(k.experts) == pytest.approx(1024.0)
    free = allocation.moe_optimal("moe-krajewski2024", 1.93e20, max_experts=64 * 8)
    assert float(free.granularity) == pytest.approx(8.0)  # the bound binds (G* ~ 17)
    # Clark: a family of three presets; the tokens are an input.
    c = allocation.moe_optimal(laws.get("moe-clark2022-hash"), 1e21, n_tokens=1e10)
    assert float(c.n_tokens) == pytest.approx(1e10)
    assert float(c.n_params) == pytest.approx(1e21 / 6e10, rel=EXP_RTOL)
    # fp8 weights and cache hold twice the values: never a worse plan.
    bf16 = allocation.moe_optimal("moe-ludziejewski2025", 1e23, memory_gb=24)
    fp8 = allocation.moe_optimal(
        "moe-ludziejewski2025", 1e23, memory_gb=24, precision="fp8"
    )
    assert float(fp8.loss) < float(bf16.loss)
    assert float(fp8.memory_bytes) <= 24e9 * (1 + VIOLATION_TOL)


def test_one_compilation_serves_every_batch_size():
    kernel = amoe.joint._joint_kernel
    allocation.joint_moe_optimal(JOINT, _arr([1e21]), memory_bytes=80e9)
    size = kernel._cache_size()
    for n in (3, 17, 200):
        c = _arr(10 ** np.linspace(19, 24, n))
        allocation.joint_moe_optimal(JOINT, c, memory_bytes=_arr(np.full(n, 80e9)))
    assert kernel._cache_size() == size


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: allocation.joint_moe_optimal(JOINT, 0.0), "compute_flops must be"),
        (
            lambda: allocation.joint_moe_optimal(JOINT, 1e22, memory_bytes=-1.0),
            "memory_bytes must",
        ),
        (
            lambda: allocation.joint_moe_optimal(JOINT, 1e22, experts=0.5),
            "experts must be",
        ),
        (
            lambda: allocation.joint_moe_optimal(JOINT, 1e22, max_experts=np.nan),
            "max_experts must",
        ),
        (
            lambda: allocation.joint_moe_optimal(JOINT, 1e22, context=-1.0),
            "context must",
        ),
        (
            lambda: allocation.joint_moe_optimal(
                JOINT, 1e22, experts=2.0, max_experts=8.0
            ),
            "not both",
        ),
        (
            lambda: allocation.joint_moe_optimal(
                JOINT, [1e22, 1e22], experts=[1.0, 2.0, 4.0]
            ),
            "shape mismatch",
        ),
        (
            lambda: allocation.joint_moe_optimal(JOINT, 1e22, precision="fp7"),
            "unknown precision",
        ),
        (
            lambda: allocation.joint_moe_optimal(JOINT, _arr([1e22, 1e7])),
            r"compute_flops = 1e\+07 is infeasible.* at index \(1,\)",
        ),
        (
            lambda: allocation.joint_moe_optimal(JOINT, 1e22, memory_bytes=1e6),
            r"memory_bytes = 1e\+06 is infeasible: the smallest model",
        ),
        (
            lambda: allocation.fine_grained_moe_optimal(KRAJ, 1e22, granularity=0.0),
            "granularity must be",
        ),
        (
            lambda: allocation.fine_grained_moe_optimal(KRAJ, 1e5),
            r"compute_flops = 100000 is infeasible",
        ),
        (
            lambda: allocation.fine_grained_moe_optimal(KRAJ, 1e22, memory_bytes=1e5),
            "memory_bytes = 100000 is infeasible",
        ),
        (
            lambda: allocation.routed_moe_optimal(CLARK, 1e15),
            r"must train the smallest model .* on n_tokens = 1\.3e\+11",
        ),
        (
            lambda: allocation.routed_moe_optimal(CLARK, 1e22, expert_fraction=1.5),
            "expert_fraction must be",
        ),
        (
            lambda: allocation.moe_optimal("chinchilla-hoffmann2022", 1e22),
            "no MoE allocation",
        ),
        (
            lambda: allocation.moe_optimal("moe-ludziejewski2025", 1e22, granularity=4),
            "granularity applies only",
        ),
        (
            lambda: allocation.moe_optimal("moe-krajewski2024", 1e22, n_tokens=1e9),
            "n_tokens applies only",
        ),
        (
            lambda: allocation.moe_optimal("moe-ludziejewski2025", 1e22, memory_gb=-8),
            "memory_gb must",
        ),
        (
            lambda: allocation.moe_optimal("moe-krajewski2024", 1e22, experts=16),
            r"experts must .*\[64",
        ),
        (lambda: allocation.moe_optimal("moe-nope", 1e22), "unknown law"),
    ],
)
def test_bad_input_raises_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_jit_flags_invalid_elements():
    """Traced inputs: bad elements come back INFEASIBLE with NaN outputs, the
    others as computed eagerly. (Each jitted call recompiles its solver; the
    fine-grained solver shares this flagging code, exercised eagerly above.)"""
    c = _arr([1e22, 1e22, -1.0, 1e22, 1e5])
    m = _arr([80e9, 1e6, 80e9, np.nan, 80e9])
    expected = [0, 2, 2, 2, 2]

    def joint(c, m):
        return allocation.joint_moe_optimal(JOINT, c, memory_bytes=m)

    def routed(c, m):
        return allocation.routed_moe_optimal(CLARK, c * 1e3, memory_bytes=m)

    for fn in (joint, routed):
        r = jax.jit(fn)(c, m)
        assert list(np.asarray(r.status)) == expected, fn.__name__
        for field in ("n_params", "n_tokens", "loss", "experts", "memory_bytes"):
            v = np.asarray(getattr(r, field))
            assert np.isfinite(v[0]) and np.all(np.isnan(v[1:])), (fn.__name__, field)
        eager = fn(c[:1], m[:1])
        np.testing.assert_allclose(
            r.loss[0], eager.loss[0], rtol=1e-12 if X64 else 1e-6
        )
