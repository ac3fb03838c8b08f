"""Precision-aware allocation (Kumar et al. 2024, "Scaling Laws for Precision",
arXiv:2411.04330): SciPy float64 references on random configurations, the paper's
statements on compute-optimal precision, hypothesis properties, gradients against
finite differences, dtypes, compilation and bad input.

The references re-implement the unified law in NumPy float64 with hand-derived
derivatives (no jscale code): SLSQP from several starts (or a grid scan and
bounded Brent), guarded and bounded in (log N, P) by tests/_reference.py, locates
each optimum, then a root of the hand-derived gradient (``scipy.optimize.root`` /
``brentq``) pins the argmin down to rounding, which a function-value search cannot
do on a flat minimum.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _reference import (
    minimize_bounded,
    minimize_multistart,
    root_bracketed,
    root_polish,
)
from conftest import X64, rtol
from hypothesis import given, settings
from hypothesis import strategies as st

from jscale import allocation
from jscale.allocation import precision as ap
from jscale.laws import chinchilla
from jscale.laws import precision as law

DTYPE = jnp.result_type(float)
N_CONFIGS = 200
KUMAR = law.KUMAR2024.params
LOG_K = math.log(6.0 / 16.0)
# Kumar 2024 App. K, Table 2: the offsets n_w, n_i (activations), n_kv that the
# fit adds inside the exponentials of N_eff ("a fit of the form e^(x/gamma_x) in
# the main text is really computed with offset e^(x/gamma_x + n)"); the law
# module (and so the preset) leaves them out.
APP_K_OFFSETS = (0.3037, 1.4072, 2.4185)

# Tolerances against the polished float64 references.
# float64: both optima are roots of the loss's derivative located to rounding
# (measured over the 200-configuration tests: 1.5e-14 in log N and in P), so
# 1e-10 leaves four orders of headroom while a wrong derivative or a wrong budget
# moves them by > 1e-3.
# float32: the derivative carries ~1e-7 relative rounding on terms whose
# curvature in log N or P is ~0.05-1, so the argmin moves by ~1e-5 (measured:
# 9e-6 in log N, 9e-7 in P, 4e-6 relative in P at fixed N); 1e-4 leaves
# headroom. Losses: conftest.rtol() (1e-12 in float64; in float32 2e-5, for
# log N and log D up to ~60 whose sums carry a few 1e-6 absolute rounding, times
# exponents up to 0.6; measured 2e-6).
LOGN_ATOL = 1e-10 if X64 else 1e-4
BITS_ATOL = 1e-10 if X64 else 1e-4
LOSS_RTOL = rtol()


# ------------------------------------------------------------------ references


class Ref:
    """One configuration in float64 along ``C = (6/16) N D P`` (x = log N).

    ``fixed[i]`` holds part i (weights, activations, KV cache) at that precision;
    ``None`` trains it in P bits. ``offsets`` are App. K's n_x (0 for the preset).
    """

    def __init__(self, q, log_c, post=math.inf, fixed=(None,) * 3, offsets=(0.0,) * 3):
        self.q = {k: float(v) for k, v in q.items()}
        self.log_c, self.post = float(log_c), float(post)
        self.fixed, self.offsets = fixed, offsets

    def _parts(self, P):
        g = [self.q[k] for k in ("gamma_w", "gamma_a", "gamma_kv")]
        b = [P if f is None else float(f) for f in self.fixed]
        return g, b

    def log_ne(self, x, P):
        g, b = self._parts(P)
        return x + sum(
            math.log1p(-math.exp(o - bi / gi))
            for o, bi, gi in zip(self.offsets, b, g, strict=True)
        )

    def dlog_ne_dp(self, P):
        g, b = self._parts(P)
        return sum(
            1.0 / (gi * math.expm1(bi / gi - o))
            for o, bi, gi, f in zip(self.offsets, b, g, self.fixed, strict=True)
            if f is None
        )

    def y(self, x, P):
        return self.log_c - LOG_K - x - math.log(P)

    def _terms(self, x, P):
        q, ne, y = self.q, self.log_ne(x, P), self.y(x, P)
        t_a = q["A"] * math.exp(-q["alpha"] * ne)
        t_b = q["B"] * math.exp(-q["beta"] * y)
        t_q = 0.0
        if math.isfinite(self.post):
            t_q = q["C_T"] * math.exp(
                q["gamma_D"] * y - q["gamma_N"] * ne - self.post / q["gamma_post"]
            )
        return t_a, t_b, t_q

    def loss(self, x, P):
        return self.q["E"] + sum(self._terms(x, P))

    def grad(self, x, P):
        """(dL/dlog N, dL/dP) along the budget, derived by hand."""
        q = self.q
        t_a, t_b, t_q = self._terms(x, P)
        s = self.dlog_ne_dp(P)
        d_x = -q["alpha"] * t_a + q["beta"] * t_b - (q["gamma_D"] + q["gamma_N"]) * t_q
        d_p = (
            -q["alpha"] * t_a * s
            + q["beta"] * t_b / P
            - t_q * (q["gamma_D"] / P + q["gamma_N"] * s)
        )
        return np.array([d_x, d_p])

    def hessian(self, z):
        """Central differences of the hand-derived gradient (only steers Newton)."""
        h = 1e-6 * np.maximum(1.0, np.abs(z))
        cols = []
        for k in range(2):
            e = np.zeros(2)
            e[k] = h[k]
            cols.append((self.grad(*(z + e)) - self.grad(*(z - e))) / (2 * h[k]))
        return np.stack(cols, axis=1)

    # -- optima ------------------------------------------------------------
    def x_max(self, P):
        return self.log_c - LOG_K - math.log(P)

    @staticmethod
    def _polish(f, df, lo, hi, b):
        """The root of ``df`` (the derivative of ``f``, increasing through the
        minimum) near the bounded minimum ``b``; ``b.x`` when the minimum sits on
        an end of [lo, hi] (no sign change) or the root is no better."""
        a, c = max(lo, b.x - 0.5), min(hi, b.x + 0.5)
        if df(a) >= 0 or df(c) <= 0:
            return b.x
        x = root_bracketed(df, a, c)
        return x if f(x) <= b.fun * (1 + 1e-14) else b.x

    def fixed_bits(self, P):
        """argmin over log N at fixed P: grid and bounded Brent, then brentq on
        dL/dlog N."""
        hi = self.x_max(P)

        def f(x):
            return self.loss(x, P)

        b = minimize_bounded(f, 0.0, hi, xatol=1e-10)
        return self._polish(f, lambda x: self.grad(x, P)[0], 0.0, hi, b)

    def free_bits(self, lo=1.0, hi=32.0, start=None):
        """argmin over (log N, P) in [0, log N at P = lo] x [lo, hi] with D >= 1:
        SLSQP (guarded, best feasible of several starts: two fixed ones, the
        closed form at Eq. 28's bits, and ``start``, jscale's answer, if given),
        then a root of the hand-derived gradient."""
        hi = min(hi, math.exp(self.log_c - LOG_K))
        bounds = [(0.0, self.x_max(lo)), (lo, hi)]
        starts = [[0.5 * self.x_max(p0) - 2.0, p0] for p0 in (8.0, 4.0)]
        g = [self.q[k] for k in ("gamma_w", "gamma_a", "gamma_kv")]
        p_eq = min(max(eq28_bits(g), lo), hi)
        starts.append([closed_form_log_n(self.q, self.log_c, p_eq), p_eq])
        if start is not None:
            starts.append(start)
        best = minimize_multistart(
            lambda z: self.loss(*z),
            starts,
            bounds,
            [{"type": "ineq", "fun": lambda z: self.y(*z)}],
            jac=lambda z: self.grad(*z),
            options={"ftol": 1e-15, "maxiter": 1000},
        )
        z = root_polish(lambda z: self.grad(*z), best.x, bounds, jac=self.hessian)
        interior = lo < z[1] < hi and self.y(*z) >= 0
        if not (interior and self.loss(*z) <= best.fun * (1 + 1e-13)):
            z = best.x
        return z[0], z[1]

    def fixed_n(self, x, lo=1.0, hi=32.0):
        """argmin over P at fixed log N: grid and bounded Brent, then brentq on
        dL/dP (an end of [lo, hi] where the slope points out of it)."""
        hi = min(hi, math.exp(self.log_c - LOG_K - x))
        b = minimize_bounded(lambda P: self.loss(x, P), lo, hi, xatol=1e-10)
        a, c = max(lo, b.x - 0.5), min(hi, b.x + 0.5)
        fa, fc = self.grad(x, a)[1], self.grad(x, c)[1]
        if fa >= 0:
            return a
        if fc <= 0:
            return c
        return root_bracketed(lambda P: self.grad(x, P)[1], a, c)


def closed_form_log_n(q, log_c, P):
    """Kumar 2024 App. E.2.1 Eq. 16 (Hoffmann 2022 Eq. 4 with A -> A r(P)^-alpha
    and C/6 -> C / (6/16 P)), tied parts, no offsets, no PTQ."""
    r = sum(
        math.log1p(-math.exp(-P / q[k])) for k in ("gamma_w", "gamma_a", "gamma_kv")
    )
    a, b = q["alpha"], q["beta"]
    budget = log_c - LOG_K - math.log(P)
    return (math.log(a * q["A"]) - a * r - math.log(b * q["B"]) + b * budget) / (a + b)


def eq28_bits(gammas, offsets=(0.0,) * 3, lo=1e-3, hi=100.0):
    """Root in float64 of ``P sum_x 1 / (gamma_x (exp(P/gamma_x - n_x) - 1)) = 1``,
    the first-order condition of Kumar 2024 Eq. 5 in P (App. E.2.3 Eq. 26-27)."""

    pairs = list(zip(gammas, offsets, strict=True))

    def h(P):
        return P * sum(1.0 / (g * math.expm1(P / g - o)) for g, o in pairs) - 1.0

    lo = max(lo, max(g * o for g, o in pairs) + 1e-6)
    return root_bracketed(h, lo, hi, increasing=False)


def draw(seed, m=N_CONFIGS, ptq=0.5):
    """Random laws around App. K (alpha and beta untied), budgets 1e18..1e26 and
    post-training precisions (a fraction ``ptq`` quantized to 2..6 bits)."""
    rng = np.random.default_rng(seed)
    q = {
        "A": KUMAR.A * 10 ** rng.uniform(-0.5, 0.5, m),
        "alpha": rng.uniform(0.25, 0.6, m),
        "B": KUMAR.B * 10 ** rng.uniform(-0.5, 0.5, m),
        "beta": rng.uniform(0.25, 0.6, m),
        "E": rng.uniform(1.5, 3.5, m),
        "gamma_w": KUMAR.gamma_w * 10 ** rng.uniform(-0.3, 0.3, m),
        "gamma_a": KUMAR.gamma_a * 10 ** rng.uniform(-0.3, 0.3, m),
        "gamma_kv": KUMAR.gamma_kv * 10 ** rng.uniform(-0.3, 0.3, m),
        "C_T": KUMAR.C_T * 10 ** rng.uniform(-1, 1, m),
        "gamma_D": rng.uniform(0.3, 0.7, m),
        "gamma_N": rng.uniform(0.2, 0.5, m),
        "gamma_post": rng.uniform(0.4, 0.8, m),
    }
    c = 10 ** rng.uniform(18, 26, m)
    post = np.where(rng.uniform(size=m) < ptq, rng.uniform(2, 6, m), np.inf)
    return q, c, post, rng


def as_params(q):
    return law.PrecisionParams(**{k: jnp.asarray(v, DTYPE) for k, v in q.items()})


def one(q, i):
    return {k: v[i] for k, v in q.items()}


def arr(v):
    return jnp.asarray(v, DTYPE)


def assert_converged(r):
    status = np.asarray(r.status)
    assert np.all(status == allocation.CONVERGED), np.unique(status)


def assert_free_bits_optimal(r, i, ref):
    """jscale's plan i against the best SciPy optimum of ``ref``, SciPy started
    at jscale's answer among others. Its loss is no worse than SciPy's; the
    argmin (well-conditioned: the loss is strictly convex in (log N, P) near the
    optimum) is compared where SciPy reached the optimum, judged by the float64
    loss at jscale's own plan, which a wrong plan cannot lower."""
    ours = (math.log(float(r.n_params[i])), float(r.bits[i]))
    x, P = ref.free_bits(start=ours)
    assert float(r.loss[i]) <= ref.loss(x, P) * (1 + LOSS_RTOL), i
    if ref.loss(x, P) <= ref.loss(*ours) * (1 + LOSS_RTOL):
        assert abs(ours[0] - x) < LOGN_ATOL, i
        assert abs(ours[1] - P) < BITS_ATOL, i


# ------------------------------------------------------------ against SciPy


def test_free_bits_matches_slsqp():
    q, c, post, _ = draw(1)
    r = ap.precision_optimal(as_params(q), arr(c), post_train_bits=arr(post))
    assert_converged(r)
    for i in range(N_CONFIGS):
        assert_free_bits_optimal(r, i, Ref(one(q, i), math.log(c[i]), post[i]))
    # The budget is spent: (6/16) N D P = C (Kumar 2024 Sec. 4.3).
    np.testing.assert_allclose(r.compute_flops, c, rtol=1e-12 if X64 else 1e-5)
    np.testing.assert_allclose(
        r.compute_flops, 6 / 16 * r.n_params * r.n_tokens * r.bits, rtol=1e-5
    )


def test_free_bits_with_a_fixed_part_matches_slsqp():
    # The KV cache held at its own precision (3..16 bits), weights and
    # activations trained in P bits; the cost still scales with P.
    q, c, post, rng = draw(2)
    kv = rng.uniform(3, 16, N_CONFIGS)
    r = ap.precision_optimal(
        as_params(q), arr(c), kv_cache_bits=arr(kv), post_train_bits=arr(post)
    )
    assert_converged(r)
    for i in range(N_CONFIGS):
        ref = Ref(one(q, i), math.log(c[i]), post[i], fixed=(None, None, kv[i]))
        assert_free_bits_optimal(r, i, ref)


def test_fixed_bits_matches_closed_form_and_scipy():
    q, c, post, rng = draw(3)
    bits = rng.uniform(2, 16, N_CONFIGS)
    r = ap.precision_optimal(
        as_params(q), arr(c), bits=arr(bits), post_train_bits=arr(post)
    )
    assert_converged(r)
    np.testing.assert_allclose(r.bits, bits, rtol=1e-6)
    for i in range(N_CONFIGS):
        qi = one(q, i)
        ref = Ref(qi, math.log(c[i]), post[i])
        x = ref.fixed_bits(bits[i])
        if not np.isfinite(post[i]):  # no PTQ: the closed form is exact
            assert abs(x - closed_form_log_n(qi, math.log(c[i]), bits[i])) < 1e-9
        ours = math.log(float(r.n_params[i]))
        assert float(r.loss[i]) <= ref.loss(x, bits[i]) * (1 + LOSS_RTOL), i
        # The argmin where the reference reached the optimum (as above).
        if ref.loss(x, bits[i]) <= ref.loss(ours, bits[i]) * (1 + LOSS_RTOL):
            assert abs(ours - x) < LOGN_ATOL, i


def test_bf16_is_chinchilla_with_a_scaled_coefficient():
    # At 16 bits the cost model is 6ND (Sec. 4.3) and N_eff = r(16) N: the
    # optimum is Hoffmann 2022 Eq. 4 with A -> A r(16)^-alpha.
    c = jnp.logspace(18, 26, 9, dtype=DTYPE)
    r = ap.precision_optimal(KUMAR, c, bits=16.0)
    r16 = float(law.effective_params(KUMAR, 1.0, 16.0, 16.0, 16.0))
    chin = allocation.chinchilla_optimal(
        chinchilla.ChinchillaParams(
            KUMAR.E, KUMAR.A * r16**-KUMAR.alpha, KUMAR.B, KUMAR.alpha, KUMAR.beta
        ),
        c,
    )
    np.testing.assert_allclose(r.n_params, chin.n_params, rtol=1e-9 if X64 else 1e-4)
    np.testing.assert_allclose(r.n_tokens, chin.n_tokens, rtol=1e-9 if X64 else 1e-4)
    np.testing.assert_allclose(r.loss, chin.loss, rtol=LOSS_RTOL)


MENU = ("bf16", "fp8", 6, "int4")
MENU_BITS = (16.0, 8.0, 6.0, 4.0)


def test_menu_matches_the_best_scipy_entry():
    q, c, post, _ = draw(4)
    r = ap.precision_optimal(as_params(q), arr(c), menu=MENU, post_train_bits=arr(post))
    assert_converged(r)
    for i in range(N_CONFIGS):
        ref = Ref(one(q, i), math.log(c[i]), post[i])
        xs = [ref.fixed_bits(b) for b in MENU_BITS]
        losses = [ref.loss(x, b) for x, b in zip(xs, MENU_BITS, strict=True)]
        j = int(np.argmin(losses))
        gap = sorted(losses)[1] - losses[j]
        assert float(r.loss[i]) <= losses[j] * (1 + LOSS_RTOL), i
        if gap > 1e-5 * losses[j]:  # a clear winner (float32 cannot split ties)
            assert float(r.bits[i]) == MENU_BITS[j], i
            assert abs(math.log(float(r.n_params[i])) - xs[j]) < LOGN_ATOL, i


def fixed_n_configs(seed):
    """N in 1e7..1e11; budgets for D/N from 0.1 to 1e5 at 8 bits."""
    q, _, post, rng = draw(seed)
    n = 10 ** rng.uniform(7, 11, N_CONFIGS)
    c = 6 / 16 * 8 * n * n * 10 ** rng.uniform(-1, 5, N_CONFIGS)
    return q, c, post, n


def test_fixed_model_size_matches_scipy():
    q, c, post, n = fixed_n_configs(5)
    r = ap.precision_optimal(
        as_params(q), arr(c), n_params=arr(n), post_train_bits=arr(post), max_bits=64.0
    )
    status = np.asarray(r.status)
    assert np.all((status == allocation.CONVERGED) | (status == allocation.AT_BOUND))
    for i in range(N_CONFIGS):
        ref = Ref(one(q, i), math.log(c[i]), post[i])
        P = ref.fixed_n(math.log(n[i]), hi=64.0)
        at_edge = P in (1.0, 64.0)
        assert (status[i] == allocation.AT_BOUND) == at_edge, i
        assert float(r.loss[i]) <= ref.loss(math.log(n[i]), P) * (1 + LOSS_RTOL), i
        assert abs(float(r.bits[i]) - P) < BITS_ATOL * max(1.0, P), i
    np.testing.assert_allclose(r.n_params, n, rtol=1e-6)


def test_menu_at_fixed_model_size_is_the_best_entry():
    q, c, post, n = fixed_n_configs(6)
    r = ap.precision_optimal(
        as_params(q), arr(c), n_params=arr(n), menu=MENU, post_train_bits=arr(post)
    )
    for i in range(N_CONFIGS):
        ref = Ref(one(q, i), math.log(c[i]), post[i])
        ok = [ref.y(math.log(n[i]), b) >= 0 for b in MENU_BITS]
        losses = [
            ref.loss(math.log(n[i]), b) if f else math.inf
            for b, f in zip(MENU_BITS, ok, strict=True)
        ]
        assert float(r.loss[i]) == pytest.approx(min(losses), rel=LOSS_RTOL), i
        assert float(r.bits[i]) == MENU_BITS[int(np.argmin(losses))], i


# ----------------------------------------------------- the paper's statements


def test_optimal_precision_is_independent_of_compute():
    # Kumar 2024 Sec. 4.3.2 and Finding 3: "When N, D, P are optimized jointly,
    # compute-optimal pretraining precision is independent of compute" (Eq. 7,
    # App. E.2.3 Eq. 28). From Eq. 5's first-order conditions (Eq. 26-27) the
    # optimum solves P sum_x 1/(gamma_x (exp(P/gamma_x) - 1)) = 1 (one gamma-bar
    # in the paper, which writes it with u(P); the transcription of Eq. 7 we read
    # carries an extra alpha and Eq. 28 an extra u(P) on the right, typos that
    # the SLSQP test above rules out). The App. K constants without their offsets
    # give 3.47 bits.
    c = jnp.logspace(18, 27, 10, dtype=DTYPE)
    r = ap.precision_optimal(KUMAR, c)
    assert_converged(r)
    want = eq28_bits((KUMAR.gamma_w, KUMAR.gamma_a, KUMAR.gamma_kv))
    assert round(want, 2) == 3.47
    np.testing.assert_allclose(r.bits, want, atol=BITS_ATOL)
    # With one sensitivity gamma-bar for all three parts (the paper's Eq. 5):
    # P* = gamma-bar * x*, 3 x* = exp(x*) - 1, whatever the budget.
    g_bar = (KUMAR.gamma_w + KUMAR.gamma_a + KUMAR.gamma_kv) / 3
    tied = KUMAR._replace(gamma_w=g_bar, gamma_a=g_bar, gamma_kv=g_bar)
    x_star = root_bracketed(
        lambda x: 3 * x - math.expm1(x), 0.5, 5.0, increasing=False, xtol=1e-15
    )
    r = ap.precision_optimal(tied, c)
    np.testing.assert_allclose(r.bits, g_bar * x_star, atol=BITS_ATOL)
    # The tokens and parameters still scale with compute (Eq. 6).
    assert np.all(np.diff(np.log(np.asarray(r.n_params))) > 0)
    assert np.all(np.diff(np.log(np.asarray(r.n_tokens))) > 0)


def kumar_with_offsets(p, n, d, w, a, kv, post):
    """Kumar 2024's fit with App. K's offsets inside N_eff (no PTQ term):
    ``N_eff = N prod_x (1 - exp(n_x - P_x / gamma_x))``."""
    gammas = (p.gamma_w, p.gamma_a, p.gamma_kv)
    log_ne = jnp.log(n)
    for bits, g, o in zip((w, a, kv), gammas, APP_K_OFFSETS, strict=True):
        log_ne = log_ne + jnp.log(-jnp.expm1(o - bits / g))
    return p.A * jnp.exp(-p.alpha * log_ne) + p.B * jnp.exp(-p.beta * jnp.log(d)) + p.E


def test_seven_to_eight_bits_with_the_app_k_offsets():
    # Kumar 2024 Sec. 4.3.2: "We find this P* to be around 7-8 bits when fitting
    # our scaling law on runs with quantization done to integer type", and
    # training below 4 bits "would force model sizes to become disproportionately
    # (more than 4x) larger to maintain loss scaling (see Figure 3, left)". Both
    # hold for App. K's constants with their offsets (and neither without them:
    # 3.47 bits above, and N_eff/N = 0.64 at 4 bits).
    want = eq28_bits((KUMAR.gamma_w, KUMAR.gamma_a, KUMAR.gamma_kv), APP_K_OFFSETS)
    assert 7.0 <= want <= 8.0
    c = jnp.asarray([1e20, 1e23, 1e26], DTYPE)
    r = ap.precision_optimal(KUMAR, c, law=kumar_with_offsets, min_bits=4.0)
    assert_converged(r)
    np.testing.assert_allclose(r.bits, want, atol=BITS_ATOL)
    r4 = math.prod(
        1 - math.exp(o - 4.0 / g)
        for o, g in zip(
            APP_K_OFFSETS, (KUMAR.gamma_w, KUMAR.gamma_a, KUMAR.gamma_kv), strict=True
        )
    )
    assert 1 / r4 > 4.0  # more than 4x the parameters for the same N_eff


def test_low_precision_calls_for_more_parameters():
    # Kumar 2024 Sec. 4.3.1 (Eq. 6; App. E.2.1 Eq. 16-17): at fixed compute,
    # N*(P) / N_Ch = [r(P)/r(16)]^(-alpha/(alpha+beta)) (P/16)^(-beta/(alpha+beta))
    # with r = N_eff/N: "as precision of training decreases at fixed compute, we
    # should increase parameters and decrease data" (the data falls while P is
    # below the compute-optimal P*; the printed Eq. 16-17 write the tokens as
    # C/N, i.e. D P: in tokens D* ~ [r(P)/r(16)]^(alpha/s) (P/16)^(-alpha/s)).
    bits = jnp.arange(2.0, 17.0, dtype=DTYPE)
    c = 1e23
    r = ap.precision_optimal(KUMAR, c, bits=bits)
    assert_converged(r)
    ref = ap.precision_optimal(KUMAR, c, bits=16.0)
    a, b = KUMAR.alpha, KUMAR.beta
    s = a + b
    ratio = law.effective_params(KUMAR, 1.0, bits, bits, bits) / law.effective_params(
        KUMAR, 1.0, 16.0, 16.0, 16.0
    )
    np.testing.assert_allclose(
        r.n_params / ref.n_params,
        ratio ** (-a / s) * (bits / 16) ** (-b / s),
        rtol=1e-10 if X64 else 1e-4,
    )
    np.testing.assert_allclose(
        r.n_tokens / ref.n_tokens,
        ratio ** (a / s) * (bits / 16) ** (-a / s),
        rtol=1e-10 if X64 else 1e-4,
    )
    n, d = np.asarray(r.n_params), np.asarray(r.n_tokens)
    assert np.all(np.diff(n) < 0)  # fewer bits: more parameters
    below = np.asarray(bits) < eq28_bits((KUMAR.gamma_w, KUMAR.gamma_a, KUMAR.gamma_kv))
    assert np.all(np.diff(d)[below[1:]] > 0)  # and, below P*, fewer tokens


def test_fixed_model_size_precision_grows_with_compute():
    # Kumar 2024 Sec. 4.3.3 and Finding 3: "when N is fixed in advance ...
    # P*(C) ∝ log C"; App. E.2.2 Eq. 23: P* ~ beta gamma ln C at large C (with one
    # gamma; with three, the largest governs the slowest-decaying term); Fig. 6
    # (right): compute-optimal precision grows with the data. Llama-3-8B's size.
    c = jnp.logspace(24, 34, 11, dtype=DTYPE)
    r = ap.precision_optimal(KUMAR, c, n_params=8e9, max_bits=128.0)
    assert_converged(r)
    bits, d = np.asarray(r.bits, float), np.asarray(r.n_tokens, float)
    assert np.all(np.diff(bits) > 0) and np.all(np.diff(d) > 0)
    slope = np.diff(bits) / np.diff(np.log(np.asarray(c, float)))
    target = KUMAR.beta * max(KUMAR.gamma_w, KUMAR.gamma_a, KUMAR.gamma_kv)
    assert abs(slope[-1] / target - 1) < 0.05  # 1.35 against 1.33
    assert np.all(np.abs(np.diff(slope)) < 0.05)  # about linear in log C


def test_larger_models_in_lower_precision_can_be_compute_optimal():
    # Kumar 2024 abstract and Fig. 1 (right): "training larger models in lower
    # precision may be compute optimal"; Finding 3: "16-bit has many unnecessary
    # bits". Footnote 3: 2 N0 parameters in 8 bits cost what N0 in 16 bits do
    # and reach a lower loss on the same data.
    c = jnp.logspace(19, 26, 8, dtype=DTYPE)
    free = ap.precision_optimal(KUMAR, c)
    bf16 = ap.precision_optimal(KUMAR, c, bits=16.0)
    assert np.all(np.asarray(free.bits) < 16)
    assert np.all(np.asarray(free.n_params) > np.asarray(bf16.n_params))
    assert np.all(np.asarray(free.loss) < np.asarray(bf16.loss))
    n0, d = 1e9, 2e10
    assert float(law.training_cost(2 * n0, d, 8.0)) == pytest.approx(
        float(law.training_cost(n0, d, 16.0))
    )
    assert float(law.loss(KUMAR, 2 * n0, d, 8.0, 8.0, 8.0)) < float(
        law.loss(KUMAR, n0, d, 16.0, 16.0, 16.0)
    )


def test_post_training_quantization_shortens_training_not_precision():
    # Kumar 2024 Finding 1: overtrained models degrade more when post-train
    # quantized, so a plan that will be quantized trains a larger model on fewer
    # tokens per parameter. In the unified law delta_PTQ sees N only through
    # N_eff (Sec. 5, Eq. 9-11), so the loss depends on N and P through N_eff
    # alone and the optimal training precision (the maximum of N_eff / (N P))
    # does not move.
    post = jnp.asarray([jnp.inf, 8.0, 6.0, 4.0, 3.0], DTYPE)
    r = ap.precision_optimal(KUMAR, 1e23, post_train_bits=post)
    assert_converged(r)
    tpp = np.asarray(r.tokens_per_param)
    assert np.all(np.diff(tpp) < 0)
    np.testing.assert_allclose(r.bits, r.bits[0], atol=BITS_ATOL)


# -------------------------------------------------------------- properties

_log_c = st.floats(18.0, 26.0)
_scale = st.floats(0.5, 2.0)


def scaled(k):
    """App. K's law with every precision sensitivity gamma_x scaled by ``k``."""
    return KUMAR._replace(
        gamma_w=KUMAR.gamma_w * k,
        gamma_a=KUMAR.gamma_a * k,
        gamma_kv=KUMAR.gamma_kv * k,
    )


@settings(max_examples=8, deadline=None)
@given(log_c=_log_c, growth=st.floats(0.01, 2.0), post=st.floats(2.0, 12.0), k=_scale)
def test_more_budget_never_hurts(log_c, growth, post, k):
    c = jnp.asarray([10**log_c, 10 ** (log_c + growth)], DTYPE)
    for kw in ({}, {"bits": 8.0}, {"menu": MENU}):
        for p_post in (math.inf, post):
            r = ap.precision_optimal(scaled(k), c, post_train_bits=p_post, **kw)
            assert float(r.loss[1]) <= float(r.loss[0]) * (1 + LOSS_RTOL)


@settings(max_examples=8, deadline=None)
@given(log_c=_log_c, lo=st.floats(1.0, 6.0), width=st.floats(0.5, 20.0), k=_scale)
def test_relaxing_a_constraint_never_raises_the_loss(log_c, lo, width, k):
    c = 10**log_c
    p = scaled(k)
    tol = 1 + LOSS_RTOL  # equal up to rounding
    free = ap.precision_optimal(p, c)
    menu = ap.precision_optimal(p, c, menu=MENU)
    each = ap.precision_optimal(p, c, bits=jnp.asarray(MENU_BITS, DTYPE))
    assert float(free.loss) <= float(menu.loss) * tol
    assert float(menu.loss) <= float(jnp.min(each.loss)) * tol
    # A wider precision range never hurts.
    narrow = ap.precision_optimal(p, c, min_bits=lo, max_bits=lo + width)
    wide = ap.precision_optimal(p, c, min_bits=lo / 2, max_bits=2 * (lo + width))
    assert float(wide.loss) <= float(narrow.loss) * tol
    # Freeing the model size never hurts.
    fixed_n = ap.precision_optimal(p, c, n_params=float(narrow.n_params) * 3)
    assert float(free.loss) <= float(fixed_n.loss) * tol


@settings(max_examples=8, deadline=None)
@given(log_c=_log_c, post=st.floats(2.0, 8.0), kv=st.floats(3.0, 16.0))
def test_kkt_conditions_hold(log_c, post, kv):
    # Stationarity in log N and P along the budget (hand-derived gradient, float64)
    # and the budget spent, for the free, fixed-part and fixed-N problems.
    c = 10**log_c
    slope_tol = 1e-10 if X64 else 1e-5
    cases = [
        ({"post_train_bits": post}, (None,) * 3, post),
        ({"kv_cache_bits": kv}, (None, None, kv), math.inf),
    ]
    q = {k: float(v) for k, v in KUMAR._asdict().items()}
    for kw, fixed, p_post in cases:
        r = ap.precision_optimal(KUMAR, c, **kw)
        assert_converged(r)
        assert float(r.grad_norm) < slope_tol
        assert float(r.violation) < (1e-12 if X64 else 1e-5)
        ref = Ref(q, math.log(c), p_post, fixed=fixed)
        g = ref.grad(math.log(float(r.n_params)), float(r.bits))
        assert np.all(np.abs(g) < (1e-9 if X64 else 1e-5)), g
    n = 1e9
    r = ap.precision_optimal(KUMAR, max(c, 1e20), n_params=n, max_bits=128.0)
    ref = Ref(q, math.log(max(c, 1e20)))
    g = ref.grad(math.log(n), float(r.bits))
    assert abs(g[1]) < (1e-9 if X64 else 1e-5) and float(r.grad_norm) < slope_tol


# ---------------------------------------------------------------- the engine


def test_gradients_match_finite_differences():
    # Implicit differentiation of the optimum (free P, fixed P, fixed N) with
    # respect to the law's constants and the budget, against central differences
    # of the solver itself in float64 (step 1e-5 relative: truncation ~1e-10,
    # rounding ~1e-11 / 1e-5; 1e-6 relative agreement leaves headroom).
    with jax.enable_x64(True):
        p64 = law.PrecisionParams(*(jnp.float64(v) for v in KUMAR))
        c64 = jnp.float64(3e22)
        # Free P (its log N is the fixed-P solve at P*) and fixed N.
        cases = {
            "free": {"post_train_bits": jnp.float64(4.0)},
            "fixed_n": {"n_params": jnp.float64(1e9), "max_bits": 64.0},
        }
        for name, kw in cases.items():

            def outputs(p, c, kw=kw):
                r = ap.precision_optimal(p, c, **kw)
                return jnp.stack(
                    [jnp.log(r.n_params), jnp.log(r.n_tokens), r.bits, r.loss]
                )

            jac_p, jac_c = jax.jacrev(outputs, argnums=(0, 1))(p64, c64)
            for field in ("A", "alpha", "gamma_w", "C_T"):
                v = float(getattr(p64, field))
                h = 1e-5 * v
                up = outputs(p64._replace(**{field: v + h}), c64)
                dn = outputs(p64._replace(**{field: v - h}), c64)
                fd = (up - dn) / (2 * h)
                np.testing.assert_allclose(
                    getattr(jac_p, field),
                    fd,
                    rtol=1e-6,
                    atol=1e-9,
                    err_msg=name + field,
                )
            h = 1e-5 * float(c64)
            fd = (outputs(p64, c64 + h) - outputs(p64, c64 - h)) / (2 * h)
            np.testing.assert_allclose(
                jac_c * float(c64), fd * float(c64), rtol=1e-6, atol=1e-9, err_msg=name
            )


def test_float32_agrees_with_float64():
    # Same problems in both precisions. float32 resolves log N and P to ~1e-5
    # (see LOGN_ATOL), i.e. N and D to ~1e-5 relative, the loss to ~1e-7; 1e-4
    # and 2e-6 leave headroom.
    c = np.logspace(18, 26, 5)
    # The two solvers: free P (log N at fixed P inside) and fixed N.
    kws = ({"post_train_bits": 4.0}, {"n_params": 1e9, "max_bits": 64.0})
    for kw in kws:
        r32 = ap.precision_optimal(KUMAR, jnp.asarray(c, jnp.float32), **kw)
        with jax.enable_x64(True):
            r64 = ap.precision_optimal(KUMAR, jnp.asarray(c, jnp.float64), **kw)
            assert r64.n_params.dtype == jnp.float64
        assert r32.n_params.dtype == jnp.float32 and r32.bits.dtype == jnp.float32
        for f in ("n_params", "n_tokens", "compute_flops"):
            np.testing.assert_allclose(
                getattr(r32, f), getattr(r64, f), rtol=1e-4, err_msg=f
            )
        np.testing.assert_allclose(r32.bits, r64.bits, rtol=1e-4)
        np.testing.assert_allclose(r32.loss, r64.loss, rtol=2e-6)


def test_one_compile_for_any_batch_size():
    assert allocation.precision_optimal is ap.precision_optimal  # re-exported
    ap.precision_optimal(KUMAR, 1e22)
    size = ap._kernel._cache_size()
    for shape in [(3, 7), (300,)]:
        r = ap.precision_optimal(KUMAR, jnp.full(shape, 1e22, DTYPE))
        assert r.bits.shape == shape
    # Python floats, scalars and arrays of every size share the compiled kernel.
    assert ap._kernel._cache_size() == size


# One compiled program for both jit tests (same shapes): a free P whose range
# may be invalid per element.
JIT_FREE = jax.jit(lambda p, c, hi: ap.precision_optimal(p, c, max_bits=hi))
DRAWS = KUMAR._replace(gamma_w=jnp.asarray([2.0, 2.6745, 3.5], DTYPE)[:, None])


def test_batched_params_and_jit_parity():
    # A leading axis on the law's constants (e.g. Monte Carlo draws) broadcasts
    # against the budgets; jit gives the eager numbers.
    c = jnp.asarray([1e20, 1e21, 1e22, 1e23, 1e24], DTYPE)
    hi = jnp.full(5, 32.0, DTYPE)
    r = ap.precision_optimal(DRAWS, c)
    assert r.bits.shape == (3, 5)
    np.testing.assert_allclose(r.bits, r.bits[:, :1] + 0 * r.bits, atol=BITS_ATOL)
    assert np.all(np.diff(np.asarray(r.bits[:, 0])) > 0)  # less sensitive weights
    jitted = JIT_FREE(DRAWS, c, hi)
    for f in ("n_params", "n_tokens", "loss", "bits"):
        np.testing.assert_allclose(getattr(jitted, f), getattr(r, f), rtol=1e-6)
    np.testing.assert_array_equal(jitted.status, r.status)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"compute_flops": 0.0}, "compute_flops must be"),
        ({"compute_flops": -1e20}, "compute_flops must be"),
        ({"compute_flops": float("nan")}, "compute_flops must be"),
        ({"bits": 0.0}, "bits must be"),
        ({"bits": float("inf")}, "bits must be"),
        ({"n_params": -1.0}, "n_params must be"),
        ({"weight_bits": 0.0}, "weight_bits must be"),
        ({"activation_bits": float("nan")}, "activation_bits must be"),
        ({"kv_cache_bits": -3.0}, "kv_cache_bits must be"),
        ({"post_train_bits": 0.0}, "post_train_bits must be"),
        ({"post_train_bits": float("nan")}, "post_train_bits must be"),
        ({"min_bits": 0.0}, "min_bits must be"),
        ({"max_bits": 2.0, "min_bits": 4.0}, "max_bits must be > min_bits"),
        ({"menu": ("bf16", "fp7")}, "unknown precision 'fp7'"),
        ({"menu": ()}, "non-empty"),
        ({"menu": "bf16"}, "non-empty"),
        ({"menu": (8, -4)}, "menu bits must be"),
        ({"bits": 8.0, "menu": ("fp8",)}, "not both"),
        ({"bits": 8.0, "n_params": 1e9}, "nothing to choose"),
        ({"compute_flops": 0.1}, "compute_flops = 0.1 is infeasible"),
        ({"compute_flops": 5.0, "bits": 16.0}, "at least \\(6/16\\) \\* bits = 6"),
        ({"compute_flops": 1e20, "n_params": 1e21}, "one token for the fixed model"),
        ({"compute_flops": jnp.ones(3) * 1e20, "bits": jnp.ones(2)}, "shape mismatch"),
    ],
)
def test_bad_input_raises_naming_the_argument(kwargs, match):
    kwargs = {"compute_flops": 1e20, **kwargs}
    c = kwargs.pop("compute_flops")
    with pytest.raises(ValueError, match=match):
        ap.precision_optimal(KUMAR, c, **kwargs)


def test_bad_input_under_jit_is_flagged_per_element():
    # Under jit nothing can raise: a bad budget, an empty precision range or a
    # budget below one parameter on one token come back INFEASIBLE with NaNs.
    c = jnp.asarray([1e22, -1.0, jnp.nan, 0.1, 1e22], DTYPE)
    hi = jnp.asarray([8.0, 8.0, 8.0, 8.0, 0.5], DTYPE)
    r = JIT_FREE(DRAWS, c, hi)
    status = np.asarray(r.status)
    assert np.all(status[:, 0] == allocation.CONVERGED)
    assert np.all(status[:, 1:] == allocation.INFEASIBLE)
    for f in ("n_params", "n_tokens", "loss", "compute_flops", "bits", "violation"):
        v = np.asarray(getattr(r, f))
        assert np.all(np.isfinite(v[:, 0])) and np.all(np.isnan(v[:, 1:])), f
