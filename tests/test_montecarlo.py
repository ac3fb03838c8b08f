"""Monte Carlo: random streams, distributions, streaming statistics, propagation,
Sobol indices and ``jscale mc``.

References: NumPy/SciPy in float64 on the same draws (moments, histograms,
``np.quantile``, KS tests), ``jax.random``'s Threefry primitive, closed forms
(Hoffmann 2022 Eq. 4; the Chinchilla loss; the Ishigami function's analytic Sobol
indices, Ishigami & Homma 1990 / Sobol' & Levitan 1999), and the standard errors
published by Besiroglu et al. 2024 (arXiv:2404.10102, Table 1).
"""

from __future__ import annotations

import json
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from jscale import allocation, cli, montecarlo
from jscale.laws import chinchilla
from jscale.montecarlo import BLOCK

# Tests of internals import them from their modules inside the package.
from jscale.montecarlo.propagate import _Stages
from jscale.montecarlo.random import _range_words, _threefry2x32
from jscale.montecarlo.statistics import _wide_add, _wide_int

X64 = bool(jax.config.jax_enable_x64)
DTYPE = np.float64 if X64 else np.float32
KEY = jax.random.key(20240415)
BESIROGLU = chinchilla.BESIROGLU2024.params


def plan_1e24(p):
    r = allocation.chinchilla_optimal(p, 1e24)
    return {"n_params": r.n_params, "n_tokens": r.n_tokens, "loss": r.loss}


def in_memory(key, fn, dist, n):
    """The reference: every draw at once, then NumPy."""
    params = montecarlo.sample(key, dist, jnp.arange(n))
    out = jax.jit(jax.vmap(fn))(params)
    return {k: np.asarray(v, np.float64) for k, v in out.items()}


def states_equal(a, b) -> bool:
    """Bitwise equality of two pytrees of arrays (NaN equal to NaN)."""
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(la) == len(lb) and all(
        np.asarray(x).dtype == np.asarray(y).dtype
        and np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True)
        for x, y in zip(la, lb, strict=True)
    )


# ---------------------------------------------------------------- random numbers


def test_threefry_matches_jax_primitive_bit_for_bit():
    from jax.extend.random import threefry_2x32

    rng = np.random.default_rng(0)
    words = rng.integers(0, 2**32, size=(4, 1000), dtype=np.uint64).astype(np.uint32)
    k = jnp.asarray(words[:2, 0])
    want = threefry_2x32(k, jnp.asarray(np.concatenate([words[2], words[3]])))
    y0, y1 = _threefry2x32(k[0], k[1], words[2], words[3])
    np.testing.assert_array_equal(np.concatenate([y0, y1]), np.asarray(want))


def test_draw_i_depends_only_on_key_and_i():
    # The uniforms are exact functions of (key, i): any subset, any order.
    box = montecarlo.Uniform(0.0, 1.0)
    u = np.asarray(montecarlo.sample(KEY, box, jnp.arange(3000)))
    idx = np.array([2999, 7, 1500, 0, 64])
    np.testing.assert_array_equal(
        np.asarray(montecarlo.sample(KEY, box, jnp.asarray(idx))), u[idx]
    )
    raw = montecarlo.sample(jax.random.key_data(KEY), box, jnp.arange(3000))
    np.testing.assert_array_equal(np.asarray(raw), u)  # a raw uint32[2] key
    other = np.asarray(montecarlo.sample(jax.random.key(1), box, jnp.arange(3000)))
    assert np.mean(other == u) < 0.01
    # Transformed draws: bit-identical for blocks of the same vector layout (the
    # shapes propagate uses); elsewhere within an ulp or two (XLA's CPU code for
    # tiny arrays rounds exp/erfinv differently).
    dist = montecarlo.law_uncertainty("chinchilla-besiroglu2024")
    whole = montecarlo.sample(KEY, dist, jnp.arange(3072))
    part = montecarlo.sample(KEY, dist, jnp.arange(1024, 2048))
    few = montecarlo.sample(KEY, dist, jnp.asarray(idx))
    eps = np.finfo(DTYPE).eps
    for a, b, c in zip(whole, part, few, strict=True):
        np.testing.assert_array_equal(np.asarray(a)[1024:2048], np.asarray(b))
        np.testing.assert_allclose(np.asarray(c), np.asarray(a)[idx], rtol=4 * eps)


@pytest.mark.skipif(not X64, reason="64-bit draw indices need x64")
def test_indices_beyond_two_to_the_32():
    d = montecarlo.Uniform(0.0, 1.0)
    big = jnp.array([2**32 + 5, 5, 2**33 + 5], dtype=jnp.int64)
    u = np.asarray(montecarlo.sample(KEY, d, big))
    assert len(set(u.tolist())) == 3  # no wrap-around to index 5
    # Chunked words carry into the high word exactly as the index does.
    hi, lo = _range_words(2**32 - 2, 4)
    np.testing.assert_array_equal(np.asarray(hi), [0, 0, 1, 1])
    np.testing.assert_array_equal(np.asarray(lo), [2**32 - 2, 2**32 - 1, 0, 1])


def test_uniforms_and_normals_pass_ks_tests():
    n = 20_000
    u = np.asarray(montecarlo.sample(KEY, montecarlo.Uniform(0.0, 1.0), jnp.arange(n)))
    assert u.dtype == DTYPE and u.min() > 0 and u.max() < 1
    # KS at n = 2e4: a wrong transform (e.g. a shifted or squeezed range) gives
    # p ~ 0; p > 1e-3 fails a correct sampler once in a thousand keys.
    assert scipy.stats.kstest(u, "uniform").pvalue > 1e-3
    z = montecarlo.MultivariateNormal.from_sd((0.0, 0.0), 1.0)
    draws = montecarlo.sample(KEY, z, jnp.arange(n))
    for x in draws:
        assert scipy.stats.kstest(np.asarray(x, np.float64), "norm").pvalue > 1e-3
    # Coordinates are independent streams.
    r = np.corrcoef(np.asarray(draws[0]), np.asarray(draws[1]))[0, 1]
    assert abs(r) < 4 / math.sqrt(n)  # 4 standard errors of a zero correlation


def test_keys_that_are_not_threefry_are_refused():
    d = montecarlo.Uniform(0.0, 1.0)
    with pytest.raises(ValueError, match="threefry"):
        montecarlo.sample(jax.random.key(0, impl="rbg"), d, jnp.arange(3))
    with pytest.raises(ValueError, match="jax.random key"):
        montecarlo.sample(0, d, jnp.arange(3))
    with pytest.raises(ValueError, match=">= 0"):
        montecarlo.sample(KEY, d, jnp.array([-1, 2]))


# ------------------------------------------------------------------ distributions


def test_besiroglu_distribution_reproduces_the_published_uncertainty():
    dist = montecarlo.law_uncertainty("chinchilla-besiroglu2024")
    n = 200_000
    p = montecarlo.sample(KEY, dist, jnp.arange(n))
    y = np.stack(
        [
            np.log(np.asarray(p.E, np.float64)),
            np.log(np.asarray(p.A, np.float64)),
            np.log(np.asarray(p.B, np.float64)),
            np.asarray(p.alpha, np.float64),
            np.asarray(p.beta, np.float64),
        ]
    )
    order = [
        chinchilla.BESIROGLU2024_COORDS.index(c)
        for c in ("log_E", "log_A", "log_B", "alpha", "beta")
    ]
    cov = np.asarray(chinchilla.BESIROGLU2024_COVARIANCE)[np.ix_(order, order)]
    got = np.cov(y)
    # Sampling error of a covariance entry: sqrt((s_ii s_jj + s_ij^2) / n); allow 5.
    se = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
    assert np.all(np.abs(got - cov) < 5 * se + 1e-12)
    # Centred on the published estimate (medians of log coordinates, means of
    # the exponents), to 5 standard errors of the sample mean.
    centre = [
        math.log(BESIROGLU.E),
        math.log(BESIROGLU.A),
        math.log(BESIROGLU.B),
        BESIROGLU.alpha,
        BESIROGLU.beta,
    ]
    assert np.all(np.abs(y.mean(1) - centre) < 5 * np.sqrt(np.diag(cov) / n))
    # Besiroglu et al. 2024, Table 1 bootstrap standard errors: E 0.03, alpha 0.02,
    # beta 0.02 (as printed, 2 decimals) and A 124.58. The normal in log A is a
    # slightly wider tail (exact log-normal sd: 131), so 10%.
    sd = {k: float(np.std(np.asarray(getattr(p, k), np.float64))) for k in p._fields}
    assert round(sd["E"], 2) == 0.03
    assert round(sd["alpha"], 2) == 0.02
    assert round(sd["beta"], 2) == 0.02
    assert sd["A"] == pytest.approx(124.58, rel=0.1)
    # B: the bootstrap's tail is heavier than a log-normal's (published 1293.23);
    # the draws match the log-normal's own sd, B sqrt(e^s2 - 1) e^(s2/2).
    s2 = cov[2, 2]
    lognormal_sd = BESIROGLU.B * math.sqrt(math.expm1(s2)) * math.exp(s2 / 2)
    assert sd["B"] == pytest.approx(lognormal_sd, rel=0.02)  # ~6 SE of an sd
    assert 0.7 < sd["B"] / 1293.23 < 0.85


def test_uniform_loguniform_and_joint():
    n = 20_000
    prior = montecarlo.Joint(
        {
            "law": montecarlo.Uniform(
                chinchilla.ChinchillaParams(1.5, 300.0, 1000.0, 0.3, 0.3),
                chinchilla.ChinchillaParams(2.0, 600.0, 3000.0, 0.4, 0.4),
            ),
            "compute": montecarlo.LogUniform(1e20, 1e26),
        }
    )
    assert prior.dim == 6 and prior.independent
    assert prior.names == [
        "compute",
        "law.E",
        "law.A",
        "law.B",
        "law.alpha",
        "law.beta",
    ]
    d = montecarlo.sample(KEY, prior, jnp.arange(n))
    assert isinstance(d["law"], chinchilla.ChinchillaParams)
    c = np.log10(np.asarray(d["compute"], np.float64))
    assert scipy.stats.kstest((c - 20) / 6, "uniform").pvalue > 1e-3
    e = np.asarray(d["law"].E, np.float64)
    assert scipy.stats.kstest((e - 1.5) / 0.5, "uniform").pvalue > 1e-3
    # Parts use distinct coordinates: independent.
    assert abs(np.corrcoef(c, e)[0, 1]) < 4 / math.sqrt(n)


def test_bootstrap_distribution_picks_fits_uniformly():
    fits = chinchilla.ChinchillaParams(
        E=jnp.arange(5.0),
        A=jnp.ones(5),
        B=jnp.ones(5),
        alpha=jnp.ones(5),
        beta=jnp.ones(5),
    )
    dist = montecarlo.Bootstrap(fits)
    e = np.asarray(montecarlo.sample(KEY, dist, jnp.arange(10_000)).E)
    counts = np.bincount(e.astype(int), minlength=5)
    assert counts.sum() == 10_000
    assert scipy.stats.chisquare(counts).pvalue > 1e-3

    class Result:  # the fields of fitting.BootstrapResult that from_result reads
        pass

    result = Result()
    result.params = fits
    result.fits = Result()
    result.fits.status = np.array([0, 1, 0, 0, 3])
    kept = montecarlo.Bootstrap.from_result(result)
    assert kept.size == 3
    np.testing.assert_array_equal(np.asarray(kept.params.E), [0.0, 2.0, 3.0])


def test_distribution_errors_name_the_argument():
    with pytest.raises(ValueError, match="low <= high"):
        montecarlo.sample(KEY, montecarlo.Uniform(2.0, 1.0), jnp.arange(2))
    with pytest.raises(ValueError, match="low must be > 0"):
        montecarlo.sample(KEY, montecarlo.LogUniform(0.0, 1.0), jnp.arange(2))
    with pytest.raises(ValueError, match="positive definite"):
        montecarlo.MultivariateNormal.from_covariance((0.0, 0.0), [[1, 2], [2, 1]])
    with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
        montecarlo.MultivariateNormal.from_covariance((0.0, 0.0), np.eye(3))
    with pytest.raises(ValueError, match="center must be finite and > 0"):
        montecarlo.sample(
            KEY,
            montecarlo.MultivariateNormal.from_sd((-1.0,), 0.1, log=True),
            jnp.arange(2),
        )
    with pytest.raises(ValueError, match="no published parameter uncertainty"):
        montecarlo.law_uncertainty("chinchilla-hoffmann2022")


# ------------------------------------------------------------- streaming statistics


def reference_bins(t, lo, hi, bins):
    """The histogram's rule, bin = floor((t - lo) * bins / (hi - lo)), in the
    statistics' dtype; under/overflow at -1 / bins."""
    t = t.astype(DTYPE)
    scale = DTYPE(bins) / (DTYPE(hi) - DTYPE(lo))
    b = np.floor((t - DTYPE(lo)) * scale)
    return np.clip(b, -1, bins).astype(int) + 1


def test_streaming_statistics_agree_with_numpy():
    rng = np.random.default_rng(1)
    n = 50_000
    x = rng.normal(3.0, 1.5, size=(2, n)).astype(DTYPE)
    x[0, ::97] = np.nan  # flagged results
    x[1, ::89] = np.inf
    mask = rng.random((2, n)) > 0.1  # left out entirely
    lo, hi, bins = np.array([-1.0, 0.5]), np.array([7.0, 6.0]), 200
    thresholds = np.array([[2.0, 4.5], [3.0, np.nan]])
    s = montecarlo.stats_init(lo, hi, bins=bins, log=False, thresholds=thresholds)
    s = jax.jit(montecarlo.stats_update)(s, x, mask)
    out = montecarlo.summarize(s, quantiles=(0.1, 0.5, 0.9))
    for j in range(2):
        v = x[j][mask[j]]
        finite = v[np.isfinite(v)]
        got = out[j]
        assert got.count == finite.size
        assert got.nonfinite == v.size - finite.size
        ref = finite.astype(np.float64)
        # Moments: float64 to roundoff; float32 sums of 5e4 values in a pairwise
        # tree and a Chan fold carry ~1e-7 * log2(n) relative error: 1e-5.
        tol = 1e-12 if X64 else 1e-5
        assert got.mean == pytest.approx(ref.mean(), rel=tol)
        assert got.std == pytest.approx(ref.std(ddof=1), rel=tol)
        assert got.min == ref.min() and got.max == ref.max()
        # Histogram: exact counts under the documented rule.
        slots = np.bincount(
            reference_bins(finite, lo[j], hi[j], bins), minlength=bins + 2
        )
        np.testing.assert_array_equal(got.counts, slots[1:-1])
        assert (got.underflow, got.overflow) == (slots[0], slots[-1])
        # Exceedance: exact counts.
        for t in thresholds[j][np.isfinite(thresholds[j])]:
            assert got.exceedance[t] == np.sum(finite > DTYPE(t)) / finite.size
        # Quantiles: within one bin of np.quantile, which lies in the bounds.
        width = (hi[j] - lo[j]) / bins
        for q, est in got.quantiles.items():
            want = np.quantile(ref, q)
            a, b = got.quantile_bounds[q]
            assert a - 1e-6 * width <= want <= b + 1e-6 * width
            assert abs(est - want) <= width
            assert b - a <= 2 * width


def test_log_histogram_and_fine_bin_quantiles():
    rng = np.random.default_rng(2)
    x = np.exp(rng.normal(np.log(1e11), 0.4, size=(1, 30_000))).astype(DTYPE)
    lo, hi, bins = 1e10, 1e12, 1 << 14
    s = montecarlo.stats_init(lo, hi, bins=bins)
    s = montecarlo.stats_update(s, x)
    (got,) = montecarlo.summarize(s, quantiles=(0.05, 0.5, 0.95))
    assert got.log
    t = np.log(x[0].astype(DTYPE))
    ref = np.bincount(
        reference_bins(t, np.log(lo), np.log(hi), bins), minlength=bins + 2
    )
    # Bin edges in log space; a value whose log (XLA's vs NumPy's, each within an
    # ulp) lands on an edge may move to the neighbouring bin: allow those only.
    width = (np.log(hi) - np.log(lo)) / bins
    pos = (t - np.log(lo)) / width
    ambiguous = int(np.sum(np.abs(pos - np.round(pos)) < 1e-3))
    assert np.abs(got.counts - ref[1:-1]).sum() <= 2 * ambiguous
    assert got.counts.sum() == x.size
    # Fine bins: quantiles agree with np.quantile to one bin, a relative
    # error of expm1(width) = 2.8e-4.
    for q, est in got.quantiles.items():
        want = np.quantile(x[0].astype(np.float64), q)
        assert abs(est / want - 1) <= math.expm1(width)


def test_update_in_batches_merge_and_errors():
    rng = np.random.default_rng(3)
    x = rng.gamma(2.0, size=(3, 8 * BLOCK)).astype(DTYPE)
    s0 = montecarlo.stats_init([0.01] * 3, [30.0] * 3, bins=64, thresholds=[1.0])
    whole = montecarlo.stats_update(s0, x)
    # Batches that are multiples of BLOCK: bit-identical to one update.
    first = montecarlo.stats_update(s0, x[:, : 3 * BLOCK])
    parts = montecarlo.stats_update(first, x[:, 3 * BLOCK :])
    assert states_equal(whole, parts)
    # Merge of two independent halves: exact counts, moments to roundoff.
    m = montecarlo.stats_merge(first, montecarlo.stats_update(s0, x[:, 3 * BLOCK :]))
    for field in ("count", "nonfinite", "hist", "exceed", "min", "max"):
        np.testing.assert_array_equal(getattr(m, field), getattr(whole, field))
    tol = 1e-12 if X64 else 1e-6
    np.testing.assert_allclose(m.mean, whole.mean, rtol=tol)
    np.testing.assert_allclose(m.m2, whole.m2, rtol=10 * tol)
    with pytest.raises(ValueError, match="different"):
        montecarlo.stats_merge(
            whole, montecarlo.stats_init([1.0] * 3, [2.0] * 3, bins=64)
        )
    with pytest.raises(ValueError, match="hi > lo"):
        montecarlo.stats_init(2.0, 1.0)
    with pytest.raises(ValueError, match="lo > 0"):
        montecarlo.stats_init(-1.0, 1.0, log=True)
    with pytest.raises(ValueError, match="bins"):
        montecarlo.stats_init(1.0, 2.0, bins=0)
    with pytest.raises(ValueError, match=r"shape \(3, n\)"):
        montecarlo.stats_update(s0, x[:2])


def test_counts_never_wrap():
    # 32-bit words carry into the high word: 2^32 - 1 + 2 = 2^32 + 1.
    a = jnp.array([[0, 2**32 - 1]], jnp.uint32)
    b = jnp.array([[0, 2]], jnp.uint32)
    assert int(_wide_int(_wide_add(a, b))[0]) == 2**32 + 1


# --------------------------------------------------------------------- propagate


# Runs of plan_1e24 share these settings, so they share compiled programs.
RUN = {"chunk_size": BLOCK, "thresholds": {"loss": [1.95, 1.97]}}


@pytest.fixture(scope="module")
def besiroglu_run():
    dist = montecarlo.law_uncertainty("chinchilla-besiroglu2024")
    n = 6000
    return dist, n, montecarlo.propagate(KEY, plan_1e24, dist, n, **RUN)


def test_propagate_matches_the_in_memory_computation(besiroglu_run):
    dist, n, r = besiroglu_run
    assert r.values is not None  # a small run keeps every value: exact quantiles
    ref = in_memory(KEY, plan_1e24, dist, n)
    # An independent check of the closed form at the drawn parameters (Hoffmann
    # 2022 Eq. 4 in NumPy float64).
    p = montecarlo.sample(KEY, dist, jnp.arange(n))
    E, A, B, al, be = (np.asarray(x, np.float64) for x in p)
    g = (al * A / (be * B)) ** (1 / (al + be))
    n_opt = g * (1e24 / 6) ** (be / (al + be))
    np.testing.assert_allclose(ref["n_params"], n_opt, rtol=1e-10 if X64 else 2e-4)
    for name, s in r.summaries.items():
        v = ref[name]
        assert s.count == n and s.nonfinite == 0 and s.exact
        tol = 1e-9 if X64 else 1e-5  # float32 outputs carry ~1e-6 relative error
        assert s.mean == pytest.approx(v.mean(), rel=tol)
        assert s.std == pytest.approx(v.std(ddof=1), rel=10 * tol)
        for q, est in s.quantiles.items():
            assert est == pytest.approx(np.quantile(v, q), rel=tol)
    loss = ref["loss"]
    for t in (1.95, 1.97):
        want = np.mean(loss > t)
        assert r.summaries["loss"].exceedance[t] == pytest.approx(want, abs=2 / n)
    # The spread is real: N* varies by a factor of about 2 between p5 and p95.
    s = r.summaries["n_params"]
    assert 1.5 < s.quantiles[0.95] / s.quantiles[0.05] < 3


def test_results_are_bit_identical_for_any_chunk_size():
    dist = montecarlo.law_uncertainty("chinchilla-besiroglu2024")
    n = 9 * BLOCK + 123
    runs = [
        montecarlo.propagate(
            KEY, plan_1e24, dist, n, exact=False, **{**RUN, "chunk_size": c * BLOCK}
        )
        for c in (1, 3)
    ]
    assert (runs[0].chunk_size, runs[1].chunk_size) == (BLOCK, 3 * BLOCK)
    assert states_equal(runs[0].state, runs[1].state)
    for k in runs[0].names:
        a, b = (montecarlo.summary_dict(r.summaries[k], histogram=True) for r in runs)
        assert a == b
    # The histogram path: quantiles within their bounds of np.quantile.
    ref = in_memory(KEY, plan_1e24, dist, n)
    for name, s in runs[0].summaries.items():
        assert not s.exact and s.count == n
        for q, est in s.quantiles.items():
            want = np.quantile(ref[name], q)
            a, b = s.quantile_bounds[q]
            slack = 1e-6 * abs(want)  # float32 outputs vs float64 edges
            assert a - slack <= want <= b + slack
            assert a - slack <= est <= b + slack


def test_propagate_through_engine_inference_and_loss_at_fixed_size():
    dist = montecarlo.law_uncertainty("chinchilla-besiroglu2024")
    n = 3000

    def fn(p):
        engine = allocation.dense_optimal(chinchilla.loss, p, 1e22)
        closed = allocation.chinchilla_optimal(p, 1e22)
        served = allocation.inference_budget_optimal(chinchilla.loss, p, 1e22, 1e11)
        return {
            "engine_vs_closed": engine.n_params / closed.n_params,
            "served_n": served.n_params,
            "loss_70b": chinchilla.loss(p, 70e9, 1.4e12),
        }

    r = montecarlo.propagate(KEY, fn, dist, n, chunk_size=BLOCK)
    # The engine reaches the closed form on every draw: float64 to 1e-9, float32
    # to the engine's stopping tolerance (a few 1e-6 in log N).
    ratio = r.summaries["engine_vs_closed"]
    tol = 1e-9 if X64 else 2e-5
    assert ratio.count == n
    assert abs(ratio.min - 1) < tol and abs(ratio.max - 1) < tol
    # Serving tokens shrink the model (Sardana et al. 2024): every draw's N* at
    # 1e22 lifetime FLOPs with 1e11 inference tokens is below the training-only N*.
    ref = in_memory(KEY, fn, dist, n)
    np.testing.assert_allclose(
        r.summaries["served_n"].quantiles[0.5],
        np.median(ref["served_n"]),
        rtol=1e-9 if X64 else 1e-5,
    )
    p = montecarlo.sample(KEY, dist, jnp.arange(n))
    E, A, B, al, be = (np.asarray(x, np.float64) for x in p)
    closed_n = (al * A / (be * B)) ** (1 / (al + be)) * (1e22 / 6) ** (be / (al + be))
    assert np.all(ref["served_n"] < closed_n)
    # Loss of Chinchilla (70B, 1.4T) under the drawn laws, in NumPy float64.
    loss = E + A / 70e9**al + B / 1.4e12**be
    s = r.summaries["loss_70b"]
    assert s.mean == pytest.approx(loss.mean(), rel=1e-9 if X64 else 1e-5)
    assert s.quantiles[0.95] == pytest.approx(
        np.quantile(loss, 0.95), rel=1e-9 if X64 else 1e-5
    )


def test_flagged_draws_are_counted_not_averaged():
    prior = montecarlo.Uniform(0.0, 1.0)

    def fn(u):  # NaN where the "plan" is infeasible, as jscale functions flag it
        return jnp.where(u > 0.75, jnp.nan, u)

    n = 5000
    r = montecarlo.propagate(KEY, fn, prior, n, chunk_size=BLOCK)
    u = np.asarray(montecarlo.sample(KEY, prior, jnp.arange(n)), np.float64)
    s = r.summaries["value"]
    assert s.nonfinite == int(np.sum(u > 0.75)) and s.count == int(np.sum(u <= 0.75))
    assert s.mean == pytest.approx(u[u <= 0.75].mean(), rel=1e-9 if X64 else 1e-5)
    assert s.max <= 0.75


def test_fn_is_traced_once_per_run():
    traces = []

    def fn(p):
        traces.append(1)
        return allocation.chinchilla_optimal(p, 1e23).loss

    dist = montecarlo.law_uncertainty("chinchilla-besiroglu2024")
    montecarlo.propagate(KEY, fn, dist, 5 * BLOCK, chunk_size=BLOCK, exact=False)
    assert len(traces) == 1


def test_checkpoint_resume_is_bit_identical(tmp_path, monkeypatch):
    dist = montecarlo.law_uncertainty("chinchilla-besiroglu2024")
    n, chunk = 6 * BLOCK, BLOCK
    # A one-chunk pilot, so that the run itself holds chunks 1-5.
    kwargs = dict(RUN, exact=False, pilot=BLOCK, config={"fn": "plan_1e24"})
    full = montecarlo.propagate(KEY, plan_1e24, dist, n, **kwargs)

    original = _Stages.__call__
    computed = []

    def interrupted(self, k0, k1, start):
        if start >= 3 * chunk:
            raise KeyboardInterrupt  # killed during the fourth chunk
        return original(self, k0, k1, start)

    def counted(self, k0, k1, start):
        computed.append(start // chunk)
        return original(self, k0, k1, start)

    monkeypatch.setattr(_Stages, "__call__", interrupted)
    with pytest.raises(KeyboardInterrupt):
        montecarlo.propagate(
            KEY, plan_1e24, dist, n, checkpoint=str(tmp_path), **kwargs
        )
    monkeypatch.setattr(_Stages, "__call__", counted)
    resumed = montecarlo.propagate(
        KEY, plan_1e24, dist, n, checkpoint=str(tmp_path), resume=True, **kwargs
    )
    assert computed == [0, 3, 4, 5]  # the pilot chunk, then the chunks left
    assert states_equal(full.state, resumed.state)
    # Another configuration is refused, naming what changed.
    with pytest.raises(ValueError, match="num_draws"):
        montecarlo.propagate(
            KEY,
            plan_1e24,
            dist,
            n + BLOCK,
            checkpoint=str(tmp_path),
            resume=True,
            **kwargs,
        )


def test_propagate_errors_name_the_argument():
    d = montecarlo.Uniform(0.0, 1.0)
    with pytest.raises(ValueError, match="chunk_size must be a multiple of 1024"):
        montecarlo.propagate(KEY, lambda u: u, d, 10, chunk_size=1000)
    with pytest.raises(ValueError, match="num_draws"):
        montecarlo.propagate(KEY, lambda u: u, d, 0)
    with pytest.raises(ValueError, match="quantiles"):
        montecarlo.propagate(KEY, lambda u: u, d, 10, quantiles=(1.5,))
    with pytest.raises(ValueError, match="thresholds names unknown outputs"):
        montecarlo.propagate(KEY, lambda u: u, d, 10, thresholds={"loss": [1.0]})
    with pytest.raises(ValueError, match="dist must be"):
        montecarlo.propagate(KEY, lambda u: u, (0.0, 1.0), 10)


def test_key_comes_first():
    # propagate and sobol take the key first, as every random function in jscale;
    # the old order (fn, dist, key) is refused with a message, not misread.
    d = montecarlo.Uniform(0.0, 1.0)
    with pytest.raises(ValueError, match="dist must be"):
        montecarlo.propagate(lambda u: u, d, KEY, BLOCK)
    box = montecarlo.Uniform((0.0,) * 2, (1.0,) * 2)
    a = montecarlo.sobol(KEY, lambda x: x[0] * x[1], box, 64)
    assert a.num_draws == 64
    with pytest.raises(ValueError, match="dist must be"):
        montecarlo.sobol(lambda x: x[0] * x[1], box, KEY, 64)
    with pytest.raises(ValueError, match="num_draws must be a whole number >= 2"):
        montecarlo.sobol(KEY, lambda x: x[0], box, 2.5)


def test_explicit_ranges_and_linear_axis():
    d = montecarlo.Uniform(-1.0, 1.0)
    r = montecarlo.propagate(
        KEY,
        lambda u: u,
        d,
        4 * BLOCK,
        exact=False,
        ranges={"value": (-1.0, 1.0)},
        bins=400,
    )
    s = r.summaries["value"]
    assert not s.log and s.edges[0] == -1.0 and s.edges[-1] == 1.0
    assert s.underflow == 0 and s.overflow == 0 and s.counts.sum() == 4 * BLOCK


# ------------------------------------------------------------------------ Sobol


def ishigami_indices(a=7.0, b=0.1):
    """Analytic indices (Ishigami & Homma 1990; Sobol' & Levitan 1999)."""
    v1 = 0.5 * (1 + b * math.pi**4 / 5) ** 2
    v2 = a**2 / 8
    v13 = 8 * b**2 * math.pi**8 / 225
    v = v1 + v2 + v13
    return np.array([v1, v2, 0.0]) / v, np.array([v1 + v13, v2, v13]) / v


def test_sobol_on_ishigami():
    def ishigami(x):
        return (
            jnp.sin(x[0]) + 7.0 * jnp.sin(x[1]) ** 2 + 0.1 * x[2] ** 4 * jnp.sin(x[0])
        )

    s1, st = ishigami_indices()
    np.testing.assert_allclose(s1, [0.3139, 0.4424, 0.0], atol=1e-4)  # the brief
    np.testing.assert_allclose(st, [0.5576, 0.4424, 0.2437], atol=1e-4)
    box = montecarlo.Uniform((-math.pi,) * 3, (math.pi,) * 3)
    r = montecarlo.sobol(KEY, ishigami, box, 1 << 14, num_bootstrap=100)
    assert r.names == ("0", "1", "2") and r.outputs == ("value",)
    assert r.num_evaluations == (1 << 14) * 5
    # Standard errors at N = 2^14 (bootstrap; about 0.005-0.013 here): 0.05 is
    # about 4 of the largest.
    assert np.all(r.first_order_se[0] < 0.02) and np.all(r.total_se[0] < 0.02)
    np.testing.assert_allclose(r.first_order[0], s1, atol=0.05)
    np.testing.assert_allclose(r.total[0], st, atol=0.05)
    assert np.all(r.first_order_ci[0, :, 0] <= r.first_order_ci[0, :, 1])


def test_sobol_additive_model_and_correlated_inputs_refused():
    # Y = X1 + 2 X2 + 3 X3, X ~ U(0, 1): S_i = S_Ti = c_i^2 / sum c^2 (no interactions).
    c = np.array([1.0, 2.0, 3.0])
    box = montecarlo.Uniform((0.0,) * 3, (1.0,) * 3)
    r = montecarlo.sobol(KEY, lambda x: x[0] + 2 * x[1] + 3 * x[2], box, 1 << 13)
    want = c**2 / np.sum(c**2)
    np.testing.assert_allclose(r.first_order[0], want, atol=0.04)
    np.testing.assert_allclose(r.total[0], want, atol=0.04)
    correlated = montecarlo.law_uncertainty("chinchilla-besiroglu2024")
    with pytest.raises(ValueError, match="independent"):
        montecarlo.sobol(KEY, plan_1e24, correlated, 100)


# --------------------------------------------------------------------------- CLI


def run_cli(capsys, *argv):
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_mc_json(capsys, tmp_path):
    out_file = tmp_path / "mc.json"
    code, out, err = run_cli(
        capsys,
        "mc",
        "--json",
        "--draws",
        "7e4",
        "--no-progress",
        "--out",
        str(out_file),
        "--exceed",
        "loss=1.96",
    )
    assert code == 0, err
    got = json.loads(out)
    assert json.loads(out_file.read_text()) == got
    assert got["law"] == "chinchilla-besiroglu2024" and got["draws"] == 70000
    with jax.enable_x64(True):
        optimal = allocation.optimal("chinchilla-besiroglu2024", 1e24)
    assert got["point_estimate"]["n_params"] == pytest.approx(
        float(optimal.n_params), rel=1e-12
    )
    for name in ("n_params", "n_tokens", "tokens_per_param", "loss"):
        s = got["outputs"][name]
        q = s["quantiles"]
        assert s["count"] == 70000 and s["nonfinite"] == 0
        assert q["0.05"] < q["0.5"] < q["0.95"]
        assert s["exact_quantiles"] is False  # above EXACT_LIMIT: the histogram
    # The median plan is the plan at the central estimate (N* is monotone in
    # each draw's log G): within the Monte Carlo error, a few percent.
    median_n = got["outputs"]["n_params"]["quantiles"]["0.5"]
    assert median_n == pytest.approx(float(optimal.n_params), rel=0.03)
    assert 0.3 < got["outputs"]["loss"]["exceedance"]["1.96"] < 0.7


def test_cli_mc_text_resume_and_other_laws(capsys, tmp_path):
    ckpt = tmp_path / "ckpt"
    args = (
        "mc",
        "--draws",
        "5000",
        "--chunk-size",
        "2048",
        "--checkpoint",
        str(ckpt),
        "--no-progress",
        "--json",
    )
    code, first, err = run_cli(capsys, *args)
    assert code == 0, err
    code, again, err = run_cli(capsys, *args, "--resume")
    assert code == 0, err
    assert json.loads(again)["outputs"] == json.loads(first)["outputs"]
    code, text, err = run_cli(
        capsys,
        "mc",
        "--law",
        "kaplan2020",
        "--log-sd",
        "0.05",
        "--draws",
        "3000",
        "--no-progress",
    )
    assert code == 0, err
    assert "p50" in text and "parameters" in text


@pytest.mark.parametrize(
    "argv, message",
    [
        (("--law", "chinchilla-hoffmann2022"), "--log-sd"),
        (("--chunk-size", "1000"), "multiple of 1024"),
        (("--resume",), "--resume needs --checkpoint"),
        (("--exceed", "cost=1"), "unknown output 'cost'"),
        (("--draws", "0"), "whole number >= 1"),
        (("--quantiles", "1.5"), r"\[0, 1\]"),
    ],
)
def test_cli_mc_errors(capsys, argv, message):
    code, out, err = run_cli(capsys, "mc", *argv)
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert re.search(message, err)
