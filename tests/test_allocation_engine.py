"""The allocation engine: solvers, compilation and implicit gradients."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import X64

from jscale import allocation
from jscale.laws import chinchilla, data_constrained

DTYPE = jnp.result_type(float)
# Closed forms and Newton solutions agree to ~1e-12 in float64 (the Newton stop is
# 1e-12 relative in log N); in float32 log N ~ 25 carries ~2e-6 absolute error.
SOLVE_RTOL = 1e-9 if X64 else 1e-4
# Implicit gradients against the closed form's gradient: exact formulas on both
# sides, evaluated at solutions that agree to SOLVE_RTOL.
GRAD_RTOL = 1e-7 if X64 else 2e-3
SARDANA = chinchilla.ChinchillaParams(1.69, 406.4, 410.7, 0.336, 0.283)


def _exp_minus_linear(x, c):
    return jnp.exp(x) - c * x


def test_minimize_scalar_batches_and_solves():
    c = jnp.asarray([[2.0, 30.0, 1e5]], DTYPE)
    s = allocation.minimize_scalar(_exp_minus_linear, 0.0, 20.0, c)
    assert s.y.shape == (1, 3)
    np.testing.assert_allclose(s.y, np.log(np.asarray(c)), rtol=SOLVE_RTOL)
    assert np.all(np.asarray(s.status) == allocation.CONVERGED)
    # The slope exp(x) - c carries rounding of order eps * c.
    assert np.all(np.asarray(s.grad_norm / c) < (1e-12 if X64 else 1e-5))


def test_minimize_scalar_active_bound():
    # Minimum at log(1e5) = 11.5 lies above the upper bound 5: the bound is active,
    # the projected gradient is zero and the gradient flows to the bound.
    s = allocation.minimize_scalar(_exp_minus_linear, 0.0, 5.0, 1e5)
    assert float(s.y) == 5.0
    assert float(s.grad_norm) == 0.0
    g = jax.grad(
        lambda hi: allocation.minimize_scalar(_exp_minus_linear, 0.0, hi, 1e5).y
    )(jnp.asarray(5.0, DTYPE))
    assert float(g) == 1.0


class _Counting:
    """An objective that counts how often it is traced."""

    def __init__(self):
        self.traces = 0

    def __call__(self, x, c):
        self.traces += 1
        return jnp.exp(x) - c * x


def test_one_compile_serves_every_value():
    fn = _Counting()
    rng = np.random.default_rng(0)
    allocation.minimize_scalar(fn, 0.0, 20.0, jnp.asarray(rng.uniform(1, 9, 64), DTYPE))
    first = fn.traces
    for _ in range(3):
        c = jnp.asarray(rng.uniform(1, 9, 64), DTYPE)
        allocation.minimize_scalar(fn, 0.0, 20.0, c)
    assert fn.traces == first


def test_scenario_compiles_once_per_shape():
    p = data_constrained.MUENNIGHOFF2023.params
    kernel = allocation.engine._budget_kernel
    rng = np.random.default_rng(1)

    def draw():
        c = jnp.asarray(10 ** rng.uniform(19, 24, 32), DTYPE)
        u = jnp.asarray(10 ** rng.uniform(9, 12, 32), DTYPE)
        return c, u

    allocation.data_constrained_optimal(p, *draw())
    size = kernel._cache_size()
    for _ in range(3):
        allocation.data_constrained_optimal(p, *draw())
    assert kernel._cache_size() == size


def _lifetime_log_flops(y, a):
    return y[0] + y[1] + math.log(6.0) + jnp.log1p(a[1] / 3.0 * jnp.exp(-y[1]))


def _reach_target(y, a):
    return (allocation.engine.chinchilla_log_loss(SARDANA, y[0], y[1]) - a[0])[None]


def test_augmented_lagrangian_matches_the_1d_solution():
    # Sardana et al.'s problem posed generically in (log N, log D) with the target
    # loss as an equality constraint, against the dedicated 1-D solver.
    args = jnp.asarray([[1.947, 2e12], [2.0, 1e13], [1.9, 0.0]], DTYPE)
    y0 = jnp.tile(jnp.asarray([23.0, 28.0], DTYPE), (3, 1))
    s = allocation.minimize(_lifetime_log_flops, y0, args, equality=_reach_target)
    r = allocation.inference_target_optimal(
        chinchilla.loss, SARDANA, args[:, 0], args[:, 1]
    )
    assert np.all(np.asarray(s.status) == allocation.CONVERGED)
    tol = 1e-6 if X64 else 5e-3
    np.testing.assert_allclose(jnp.exp(s.y[:, 0]), r.n_params, rtol=tol)
    np.testing.assert_allclose(jnp.exp(s.y[:, 1]), r.n_tokens, rtol=tol)
    assert np.all(np.asarray(s.violation) < (1e-7 if X64 else 1e-3))
    # Implicit gradients (KKT system) agree with the 1-D solver's.
    g = jax.grad(
        lambda a: allocation.minimize(
            _lifetime_log_flops, y0[:1], a, equality=_reach_target
        ).y[0, 0]
    )(args[:1])
    g_ref = jax.grad(
        lambda a: jnp.log(
            allocation.inference_target_optimal(
                chinchilla.loss, SARDANA, a[0, 0], a[0, 1]
            ).n_params
        )
    )(args[:1])
    np.testing.assert_allclose(g[0, 0], g_ref[0, 0], rtol=1e-6 if X64 else 1e-2)


def test_augmented_lagrangian_box_cap():
    # A cap on N (a memory limit) by projection: the solution sits on the cap and
    # still reaches the target.
    args = jnp.asarray([[1.947, 2e12]], DTYPE)
    cap = math.log(1e10)
    s = allocation.minimize(
        _lifetime_log_flops,
        jnp.asarray([[20.0, 28.0]], DTYPE),
        args,
        equality=_reach_target,
        upper=jnp.asarray([cap, 80.0], DTYPE),
    )
    assert float(s.y[0, 0]) == pytest.approx(cap, abs=1e-6)
    loss = allocation.engine.chinchilla_log_loss(SARDANA, s.y[0, 0], s.y[0, 1])
    assert float(loss) == pytest.approx(1.947, rel=1e-6 if X64 else 1e-4)


def test_implicit_gradient_matches_closed_form():
    p = chinchilla.ChinchillaParams(
        *(jnp.asarray(v, DTYPE) for v in chinchilla.HOFFMANN2022.params)
    )
    c = jnp.asarray(1e23, DTYPE)

    def engine(p, c):
        r = allocation.dense_optimal(chinchilla.loss, p, c)
        return jnp.stack([jnp.log(r.n_params), jnp.log(r.n_tokens), r.loss])

    def closed(p, c):
        r = allocation.chinchilla_optimal(p, c)
        return jnp.stack([jnp.log(r.n_params), jnp.log(r.n_tokens), r.loss])

    j_engine = jax.jacobian(engine, argnums=(0, 1))(p, c)
    j_closed = jax.jacobian(closed, argnums=(0, 1))(p, c)
    for a, b in zip(jax.tree.leaves(j_engine), jax.tree.leaves(j_closed), strict=True):
        np.testing.assert_allclose(a, b, rtol=GRAD_RTOL, atol=1e-30)
    # d log N / d log C = beta / (alpha + beta) (Hoffmann 2022, Eq. 4).
    dlogn = jax.grad(lambda lc: engine(p, jnp.exp(lc))[0])(jnp.log(c))
    np.testing.assert_allclose(dlogn, 0.28 / 0.62, rtol=GRAD_RTOL)


@pytest.mark.skipif(not X64, reason="finite differences need float64")
def test_implicit_gradients_match_finite_differences():
    p = data_constrained.MUENNIGHOFF2023.params

    def dc(c, u, e):
        r = allocation.data_constrained_optimal(p, c, u, e)
        return jnp.log(r.n_params)

    def target(t, d_inf):
        r = allocation.inference_target_optimal(chinchilla.loss, SARDANA, t, d_inf)
        return jnp.log(r.n_params)

    def budget(c, d_inf):
        r = allocation.inference_budget_optimal(chinchilla.loss, SARDANA, c, d_inf)
        return jnp.log(r.n_params)

    cases = [
        (dc, (1e22, 1e10, 100.0)),  # interior optimum
        (dc, (1e22, 1e10, 4.0)),  # epoch cap active
        (target, (1.947, 2e12)),
        (budget, (1e24, 1e13)),
    ]
    h = 1e-5
    for fn, args in cases:
        args = [jnp.asarray(a, DTYPE) for a in args]
        grads = jax.grad(fn, argnums=tuple(range(len(args))))(*args)
        for i, g in enumerate(grads):
            up, down = list(args), list(args)
            up[i], down[i] = args[i] * (1 + h), args[i] * (1 - h)
            fd = (fn(*up) - fn(*down)) / (2 * h * args[i])
            np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-12 / float(args[i]))


def test_jit_flags_infeasible_and_eager_raises():
    p = data_constrained.MUENNIGHOFF2023.params
    f = jax.jit(allocation.data_constrained_optimal)
    r = f(p, jnp.asarray([1e22, 1e22, 1e22]), jnp.asarray([1e10, 0.0, jnp.nan]))
    assert list(np.asarray(r.status)) == [0, 2, 2]
    assert np.isfinite(r.n_params[0]) and np.all(np.isnan(r.n_params[1:]))
    with pytest.raises(ValueError, match="unique_tokens"):
        allocation.data_constrained_optimal(p, 1e22, 0.0)
    g = jax.jit(allocation.inference_target_optimal, static_argnums=0)
    r = g(chinchilla.loss, SARDANA, jnp.asarray([1.947, 1.6, 1.69]), 1e12)
    assert list(np.asarray(r.status)) == [0, 2, 2]
    assert np.all(np.isnan(r.n_params[1:]))
    with pytest.raises(ValueError, match="irreducible loss E = 1.69"):
        allocation.inference_target_optimal(chinchilla.loss, SARDANA, 1.69, 1e12)
    with pytest.raises(ValueError, match="must exceed 6 \\+ 2"):
        allocation.inference_budget_optimal(chinchilla.loss, SARDANA, 1e3, 1e3)
