"""Mixture-of-experts allocation: active parameters, experts and tokens under a
training budget and an accelerator-memory cap.

Three law families, one front door (:func:`moe_optimal`) and one solver per family,
each written for one configuration and vmapped over budgets, memory caps, contexts,
expert bounds and law constants:

- **Ludziejewski et al. 2025** ("Joint MoE Scaling Laws", arXiv:2502.05172,
  Sec. 4): :func:`joint_moe_optimal`. Decision variables: active parameters
  ``N_act``, experts ``E`` (top-1) and tokens ``D``, with ``6 N_act D = C``
  (App. A.2: routing FLOPs negligible for their ``E <= 32``) and, optionally,
  weights plus KV cache within the memory (Sec. 4.3)::

      N_total + 2 T n_blocks d_model <= M / bytes_per_value,

  ``N_total = 2 d_model V + (4 + 9E) n_blocks d_model^2`` and
  ``N_act = 2 d_model V + 13 n_blocks d_model^2`` (App. A.1, Eq. 9-10) with
  ``n_blocks = d_model / 64`` (App. A.3). For a fixed E the law is of Chinchilla
  form, so the compute-optimal ``N_act`` is closed form (their Eq. 7). The memory
  constraint is linear in E, so the models that fill the memory form a frontier
  explicit in ``d_model``. The optimum therefore lies on a one-dimensional path of
  per-E optima: Eq. 7 in ``log E`` from the fewest experts up to the E at which
  that model fills the memory (a kink, found as a root in log space), then along
  the frontier in ``log d_model`` towards the most experts that fit. The engine's
  derivative-guided 1-D solver minimizes the loss along that path, with the kink
  as a scan point.
- **Krajewski et al. 2024** ("Scaling Laws for Fine-Grained Mixture of Experts",
  arXiv:2402.07871, Sec. 6): :func:`fine_grained_moe_optimal`. Decision variables:
  total non-embedding parameters ``N = d_model^2 (8E + 4) n_blocks`` (equivalently
  ``d_model``, with ``d_model = 64 n_blocks``), granularity ``G`` and tokens ``D``,
  with their Eq. 10 budget including the router,
  ``C = (12 d_model^2 c_f + d_model E G c_r) D n_blocks``, at the expansion rate
  ``E = 64`` of their fit. The budget eliminates D; the memory cap bounds
  ``d_model``; ``log d_model`` is solved inside ``log G`` (two nested 1-D solves).
- **Clark et al. 2022** ("Unified Scaling Laws for Routed Language Models",
  arXiv:2202.01169): :func:`routed_moe_optimal`. Their law has no token count:
  all their models saw the same 130B tokens (Krajewski 2024, Sec. 3). The training
  tokens are therefore fixed (``n_tokens``, default 130e9), the budget
  ``6 N D <= C`` caps the dense-equivalent size N (routing FLOPs negligible, as in
  Clark's own accounting and Ludziejewski 2025, App. A.2), and the decision
  variables are N and E under the memory cap. For a fixed N the log loss is linear
  in ``log Ê`` with slope ``b + c log10 N``, so E sits at a bound (the memory cap or
  ``max_experts`` below Clark's cutoff ``N_cut = 10^(-b/c)``, one expert above it);
  what is left is one dimension, ``log N``.

Memory is ``memory_bytes`` (or ``memory_gb x 1e9 x devices`` in the front door;
decimal GB as in the vendors' datasheets and :mod:`jscale.accounting`): the weights
and the KV cache for ``context`` tokens, both at ``precision`` (Ludziejewski 2025,
Table 2: bfloat16 for both, 16k cached tokens). Optimizer state and activations are
not counted (the plan must fit for serving; see
:func:`jscale.accounting.training_memory` for training state).

Every result is an :class:`~jscale.allocation.AllocationResult` with ``n_params``
the active parameters, ``n_tokens`` the tokens, ``n_total_params``, ``experts``
(``granularity`` for the fine-grained law) and ``memory_bytes`` filled in, and a
per-element status. An infeasible configuration (a budget that cannot train the
smallest model, ``d_model = 64`` with one block, on one token; memory that cannot
hold it) raises ``ValueError`` for concrete inputs and comes back as
``status == INFEASIBLE`` with NaN outputs under ``jax.jit``. An optimum pinned at
the smallest model or at one training token is flagged ``AT_BOUND``; one on the
memory cap or on ``max_experts`` is a constrained optimum (``CONVERGED``).
Solutions are differentiable in the law's constants, the budget and the memory
(implicit differentiation of the 1-D optimality conditions, and of the log-space
root that gives the memory bound).
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from .. import _checks, _solver, accounting
from .._numerics import asfloat
from ..laws import Preset
from ..laws import moe as moe_laws
from ._core import (
    _KINK_DELTA,
    AT_BOUND,
    CONVERGED,
    INFEASIBLE,
    NONFINITE,
    AllocationResult,
    _batch_shape,
    _flat,
    _projected_slope,
    _status,
)

_LOG6 = math.log(6.0)
_LN10 = math.log(10.0)
#: ``log`` of the memory cap (in values) used where there is none: e^80 = 5.5e34
#: values never binds and stays finite in float32.
_LOG_NO_CAP = 80.0
#: Newton steps of the log-space polynomial roots (quadratic convergence from an
#: upper bound at most log(3) away: 16 is several times what float64 needs).
_ROOT_STEPS = 16
#: Width of a block (d_model = 64 n_blocks) and the smallest model: one block.
_WIDTH = 64.0
_LOG_WIDTH = math.log(_WIDTH)

#: Family defaults for the bound on experts per routed layer (Ludziejewski 2025 fit
#: E <= 32, their Table 2's ">= 32" column; Clark 2022 trained up to 512 experts;
#: Krajewski 2024: granularity up to 256 at their E = 64, i.e. 16384 experts, four
#: times the largest G of their Table 2).
DEFAULT_MAX_EXPERTS = {
    moe_laws.JOINT_FAMILY.name: 32.0,
    moe_laws.CLARK_FAMILY.name: 512.0,
    moe_laws.KRAJEWSKI_FAMILY.name: 64.0 * 256.0,
}
#: Clark 2022's training tokens (all runs; Krajewski 2024, Sec. 3).
CLARK_TOKENS = 130e9
#: Fraction of Clark's dense-equivalent parameters N copied per extra expert. Routing
#: every other block (routing frequency 1/2) whose feed-forward layer holds 2/3 of
#: the block (8 of 12 d_model^2) gives 1/3 of the non-embedding parameters; with
#: the embeddings' share of N, the authors' data (google-deepmind/
#: scaling_laws_for_routing, total against dense parameter counts) give 0.308-0.313
#: for their 370M and 1.3B models (0.29-0.39 down to 15M).
CLARK_EXPERT_FRACTION = 0.31
#: KV-cache tokens assumed by default (Ludziejewski 2025, Table 2: "16k tokens").
DEFAULT_CONTEXT = 16384.0

__all__ = [
    "CLARK_EXPERT_FRACTION",
    "CLARK_TOKENS",
    "DEFAULT_CONTEXT",
    "DEFAULT_MAX_EXPERTS",
    "fine_grained_moe_optimal",
    "joint_moe_optimal",
    "moe_optimal",
    "routed_moe_optimal",
]


# ------------------------------------------------------------------ log-space roots


class _LogPoly(NamedTuple):
    """``log sum_k exp(log_c[k] + powers[k] u) - log_target``: increasing, convex."""

    powers: tuple[float, ...]

    def __call__(self, u, theta):
        log_c, log_t = theta
        p = jnp.asarray(self.powers, dtype=jnp.result_type(u))
        return jax.nn.logsumexp(log_c + p * u) - log_t


def _log_poly_root(log_c: jax.Array, powers: tuple[float, ...], log_t) -> jax.Array:
    """Root ``u`` of ``sum_k c_k e^(p_k u) = t`` (all ``p_k > 0``), in log space.

    Newton from the upper bound ``min_k (log t - log c_k) / p_k``: the function is
    convex and increasing in ``u``, so the iterates decrease monotonically to the
    root. ``log_c`` entries may be ``-inf`` (absent terms). Differentiable in
    ``log_c`` and ``log_t`` (implicit function theorem).
    """
    fn = _LogPoly(tuple(float(p) for p in powers))
    sg = jax.lax.stop_gradient
    lc, lt = sg(log_c), sg(log_t)
    p = jnp.asarray(powers, dtype=jnp.result_type(lt))
    u0 = jnp.min((lt - lc) / p)

    def body(_, u):
        z = lc + p * u
        slope = jnp.sum(jax.nn.softmax(z) * p)
        return u - (jax.nn.logsumexp(z) - lt) / slope

    u = jax.lax.fori_loop(0, _ROOT_STEPS, body, u0)
    return _solver.implicit(fn, u, (log_c, log_t))


def _log_term(valid, x, scale) -> jax.Array:
    """``log(scale x)`` where ``x > 0``, ``-inf`` (an absent term) where ``x == 0``.

    Double ``where`` so the gradient stays finite (zero) for ``x == 0``.
    """
    pos = valid & (x > 0)
    return jnp.where(pos, jnp.log(scale * jnp.where(pos, x, 1.0)), -jnp.inf)


def _log_expert_hat(x, e_start, e_max) -> jax.Array:
    """``log Ê`` from ``x = log E`` (Clark 2022; Ludziejewski 2025, Eq. 4)."""
    k = e_start * e_max / (e_max - e_start)
    return -jnp.logaddexp(-jnp.log(jnp.expm1(x) + k), -jnp.log(e_max))


def _argmin_convex(slope, lo, hi, theta, points, max_steps):
    """Minimize a 1-D function given its increasing ``slope(x, theta)`` on ``[lo, hi]``.

    The root of the slope by :func:`jscale._solver.root_scalar`; the returned ``x``
    is differentiable in ``theta`` (implicit function theorem in the interior, the
    bound itself where one is active). As
    :func:`jscale.allocation._core._scalar_min_one`, but with the slope written
    out, which saves one level of automatic differentiation.
    """
    sg = jax.lax.stop_gradient
    r = _solver.root_scalar(
        slope, sg(theta), sg(lo), sg(hi), sg(points), max_steps=max_steps
    )
    x = _solver.implicit(slope, r.x, theta)
    return jnp.where(r.at_lower, lo, jnp.where(r.at_upper, hi, x)), r


def _argmin_1d(f, lo, hi, theta, points, num_grid, max_steps):
    """Minimize ``f(x, theta)`` on ``[lo, hi]``, robust to several local minima.

    ``f`` is evaluated on ``num_grid + 2`` evenly spaced points (ends included)
    plus ``points``; the root of ``df/dx`` is then sought (as in
    :func:`jscale.allocation._core._scalar_min_one`, which takes the *first* sign
    change) between the neighbours of the lowest of them, so a shallow local
    minimum near ``lo`` does not hide a deeper one further on. The returned ``x``
    is differentiable in ``theta``, ``lo`` and ``hi`` (implicit function theorem
    in the interior, the active bound otherwise).

    Returns:
      ``(x, result, at_lower, at_upper)``.
    """
    sg = jax.lax.stop_gradient

    def slope(x, th):
        return jax.grad(f)(x, th)

    grid = jnp.concatenate(
        [jnp.linspace(lo, hi, num_grid + 2), jnp.clip(points, lo, hi)]
    )
    grid = jnp.sort(sg(grid))
    values = jax.vmap(lambda x: f(x, sg(theta)))(grid)
    values = jnp.where(jnp.isnan(values), jnp.inf, values)
    j = jnp.argmin(values)
    last = grid.shape[0] - 1
    a = jnp.where(j == 0, lo, grid[jnp.maximum(j - 1, 0)])
    b = jnp.where(j == last, hi, grid[jnp.minimum(j + 1, last)])
    e = _solver.eps(lo.dtype)
    flat = e**1.5 * jnp.abs(values[j])
    r = _solver.root_scalar(
        slope, sg(theta), sg(a), sg(b), sg(grid), max_steps=max_steps, flat=flat
    )
    at_lower = r.at_lower & (sg(a) <= sg(lo))
    at_upper = r.at_upper & (sg(b) >= sg(hi))
    x = _solver.implicit(slope, r.x, theta)
    x = jnp.where(at_lower, lo, jnp.where(at_upper, hi, x))
    return x, r, at_lower, at_upper


#: Smallest padded batch: one compilation serves every batch of up to this many
#: configurations (the solvers take milliseconds per batch; compiling them takes
#: seconds).
_MIN_BUCKET = 256


def _bucket(n: int) -> int:
    """Padded batch size: the next power of two, at least :data:`_MIN_BUCKET`."""
    return max(_MIN_BUCKET, 1 << (n - 1).bit_length())


def _pad(tree, n: int):
    """Leaves of length ``n`` padded (repeating the last element) to a bucket."""
    size = _bucket(n)
    return jax.tree_util.tree_map(
        lambda v: jnp.concatenate([v, jnp.broadcast_to(v[-1:], (size - n,))]), tree
    )


# -------------------------------------------------------------- Ludziejewski 2025

_JOINT_LOG_2V = math.log(2.0 * moe_laws.JOINT_VOCAB)
_JOINT_LOG_13 = math.log(13.0 / _WIDTH)
_JOINT_U_MIN = _LOG_WIDTH


class _JointTheta(NamedTuple):
    p: moe_laws.JointMoEParams
    log_f: jax.Array  # log C
    log_cap: jax.Array  # log of the memory cap in values (_LOG_NO_CAP: none)
    log_kv: jax.Array  # log(2 T / 64), the e^(2u) coefficient (-inf: no cache)


def _joint_log_nact(u):
    """``log N_act`` at ``u = log d_model`` (Ludziejewski 2025, Eq. 10)."""
    return jnp.logaddexp(_JOINT_LOG_2V + u, _JOINT_LOG_13 + 3.0 * u)


def _joint_log_expert_coef(x):
    """``log((4 + 9E) / 64)`` for ``E = e^x``: the ``d_model^3`` coefficient."""
    return jnp.logaddexp(math.log(4.0), math.log(9.0) + x) - _LOG_WIDTH


def _joint_u_fit(x, th):
    """``log d_model`` at which weights and KV cache fill the memory, ``E = e^x``.

    Memory in values: ``2 d V + (4 + 9E) d^3 / 64 + 2 T d^2 / 64`` (Eq. 9 plus the
    cache of Sec. 4.3 with ``n_blocks = d / 64``).
    """
    log_c = jnp.stack(
        [jnp.zeros_like(x) + _JOINT_LOG_2V, _joint_log_expert_coef(x), th.log_kv]
    )
    return _log_poly_root(log_c, (1.0, 3.0, 2.0), th.log_cap)


def _joint_log_mem(u, x, th):
    return jax.nn.logsumexp(
        jnp.stack(
            [
                _JOINT_LOG_2V + u,
                _joint_log_expert_coef(x) + 3.0 * u,
                th.log_kv + 2.0 * u,
            ]
        )
    )


def _joint_exponents(p, x):
    """For ``E = e^x``: ``log m, mu, log n, nu`` of ``m N^mu + n D^nu + c`` (Eq. 5)."""
    le = _log_expert_hat(x, p.e_start, p.e_max)
    log_m = jnp.log(p.a) + p.delta * le
    log_n = jnp.log(p.b) + p.omega * le
    return log_m, p.alpha + p.gamma * le, log_n, p.beta + p.zeta * le


def _joint_loss(p, log_n, log_d, x):
    log_m, mu, log_nn, nu = _joint_exponents(p, x)
    return jnp.exp(log_m + mu * log_n) + jnp.exp(log_nn + nu * log_d) + p.c


def _joint_log_nopt(x, th):
    """Compute-optimal ``log N_act`` for ``E = e^x`` (Ludziejewski 2025, Eq. 7)."""
    log_m, mu, log_n, nu = _joint_exponents(th.p, x)
    a, b = -mu, -nu
    s = a + b
    log_g = (jnp.log(a) + log_m - jnp.log(b) - log_n) / s
    return log_g + (b / s) * (th.log_f - _LOG6)


def _joint_free_log_n(x, th):
    """Regime A (memory not binding): Eq. 7, kept within one block and one token."""
    lo = _joint_log_nact(jnp.asarray(_JOINT_U_MIN, x.dtype))
    return jnp.clip(_joint_log_nopt(x, th), lo, th.log_f - _LOG6)


def _joint_free(x, th):
    log_n = _joint_free_log_n(x, th)
    return _joint_loss(th.p, log_n, th.log_f - _LOG6 - log_n, x)


def _joint_capped_x(u, th):
    """Regime B (memory binding): ``log E`` that fills the memory at ``log d = u``.

    ``E = ((M - 2 d V - 2 T d^2 / 64) 64 / d^3 - 4) / 9``: the memory constraint
    is linear in E, so the capped frontier is explicit in ``d_model``.
    """
    left = jnp.exp(th.log_cap) - jnp.exp(
        jnp.logaddexp(_JOINT_LOG_2V + u, th.log_kv + 2.0 * u)
    )
    e = (left * jnp.exp(_LOG_WIDTH - 3.0 * u) - 4.0) / 9.0
    return jnp.log(jnp.where(e > 0, e, 1.0))


def _joint_capped(u, th):
    log_n = _joint_log_nact(u)
    return _joint_loss(th.p, log_n, th.log_f - _LOG6 - log_n, _joint_capped_x(u, th))


def _joint_binding(u, th):
    """Increasing in ``u``: >= 0 where the frontier's model is at most Eq. 7's."""
    return _joint_log_nact(u) - _joint_log_nopt(_joint_capped_x(u, th), th)


class _JointPath(NamedTuple):
    """The path of per-E optima: Eq. 7 up to the kink, then the capped frontier.

    ``t`` in ``[0, 1]``: ``x = log E`` from ``x_lo`` to the kink ``x_k`` with the
    free optimum (regime A); ``t`` in ``[1, 2]``: ``u = log d_model`` from the
    kink ``u_k`` down to ``u_a`` (the most experts that fit) on the memory
    frontier (regime B). Continuous at ``t = 1``.
    """

    th: _JointTheta
    x_lo: jax.Array
    x_k: jax.Array
    u_k: jax.Array
    u_a: jax.Array
    free_ok: jax.Array  # regime A is not empty


def _joint_on_frontier(t, pa):
    return (t > 1.0) | ((t >= 1.0) & ~pa.free_ok)


def _joint_path_x(t, pa):
    return pa.x_lo + jnp.minimum(t, 1.0) * (pa.x_k - pa.x_lo)


def _joint_path_u(t, pa):
    return pa.u_k + jnp.maximum(t - 1.0, 0.0) * (pa.u_a - pa.u_k)


def _joint_path_loss(t, pa):
    free = _joint_free(_joint_path_x(t, pa), pa.th)
    capped = _joint_capped(_joint_path_u(t, pa), pa.th)
    return jnp.where(_joint_on_frontier(t, pa), capped, free)


@partial(jax.jit, static_argnames=("num_grid", "max_steps"))
def _joint_kernel(p, log_f, log_cap, log_kv, x_lo, x_hi, num_grid, max_steps):
    delta = _KINK_DELTA[np.dtype(log_f.dtype)]

    def one(p, log_f, log_cap, log_kv, x_lo, x_hi):
        th = _JointTheta(p, log_f, log_cap, log_kv)
        sg = jax.lax.stop_gradient
        dtype = log_f.dtype
        u_min = jnp.asarray(_JOINT_U_MIN, dtype)
        log_f6 = log_f - _LOG6
        log_nmin = _joint_log_nact(u_min)
        budget_ok = log_f6 >= log_nmin
        # The capped frontier runs from the most experts (smallest d_model) to the
        # fewest; the smallest model must fit with the fewest, and the frontier's
        # models must not exceed C / 6 (one token).
        u_f = _log_poly_root(
            jnp.stack([_JOINT_LOG_2V + 0.0 * log_f, _JOINT_LOG_13 + 0.0 * log_f]),
            (1.0, 3.0),
            log_f6,
        )
        u_fit_lo = _joint_u_fit(x_lo, th)
        memory_ok = u_fit_lo >= u_min - 1e-6
        u_a = jnp.maximum(_joint_u_fit(x_hi, th), u_min)
        u_b = jnp.minimum(u_fit_lo, u_f)
        frontier = u_b >= u_a
        u_a = jnp.minimum(u_a, u_b)
        # Where the memory cap starts to bind (regime A holds for E below it).
        pts = jnp.linspace(u_a, u_b, 6)[1:-1]
        rk = _solver.root_scalar(
            _joint_binding, sg(th), sg(u_a), sg(u_b), sg(pts), max_steps=max_steps
        )
        u_k = _solver.implicit(_joint_binding, rk.x, th)
        u_k = jnp.where(rk.at_lower, u_a, jnp.where(rk.at_upper, u_b, u_k))
        x_k = jnp.where(rk.at_lower, x_hi, _joint_capped_x(u_k, th))
        x_k = jnp.where(frontier, jnp.clip(x_k, x_lo, x_hi), x_hi)
        # Regime A is empty where the cap binds even with the fewest experts;
        # regime B where it never binds.
        t_lo = jnp.where(frontier & rk.at_upper, 1.0, 0.0).astype(dtype)
        t_hi = jnp.where(frontier & ~rk.at_lower, 2.0, 1.0).astype(dtype)
        path = _JointPath(th, x_lo, x_k, u_k, u_a, t_lo < 1.0)
        one_ = jnp.ones((1,), dtype)
        t, r, t_at_lo, t_at_hi = _argmin_1d(
            _joint_path_loss,
            t_lo,
            t_hi,
            path,
            _solver.kink_points(one_, delta),
            num_grid,
            max_steps,
        )
        width = delta
        at_kink = (t_lo < 1.0) & (t_hi > 1.0) & (jnp.abs(r.x - 1.0) <= 2.0 * width)
        t = jnp.where(at_kink, jnp.ones_like(t), t)
        on_b = _joint_on_frontier(t, path)
        x = jnp.where(on_b, _joint_capped_x(_joint_path_u(t, path), th), 0.0)
        x = jnp.where(on_b, x, _joint_path_x(t, path))
        # On the frontier E comes back from the memory equation: keep float32
        # rounding (~1e-5) from stepping outside the bounds.
        x = jnp.clip(x, x_lo, x_hi)
        log_n = jnp.where(
            on_b,
            _joint_log_nact(_joint_path_u(t, path)),
            _joint_free_log_n(_joint_path_x(t, path), th),
        )
        u = _log_poly_root(
            jnp.stack([_JOINT_LOG_2V + 0.0 * log_n, _JOINT_LOG_13 + 0.0 * log_n]),
            (1.0, 3.0),
            log_n,
        )
        log_d = log_f6 - log_n
        loss = _joint_path_loss(t, path)
        log_total = jnp.logaddexp(
            _JOINT_LOG_2V + u, _joint_log_expert_coef(x) + 3.0 * u
        )
        log_mem = _joint_log_mem(u, x, th)
        # The slope at t and, for a kink, on either side of it (one-sided KKT).
        probes = jnp.stack([t, 1.0 - 4.0 * width + 0 * t, 1.0 + 4.0 * width + 0 * t])
        here, left, right = jax.vmap(jax.grad(_joint_path_loss), (0, None))(
            probes, path
        )
        gnorm = jnp.where(
            at_kink,
            jnp.maximum(jnp.maximum(left, 0.0), jnp.maximum(-right, 0.0)),
            _projected_slope(here, t_at_lo, t_at_hi),
        )
        status = _status(r.converged | at_kink, x, log_n, log_d, loss)
        tiny = 1e-6
        log_nopt = _joint_log_nopt(x, th)
        at_min = (log_n <= log_nmin + tiny) & (on_b | (log_nopt < log_nmin))
        artificial = at_min | (log_n >= log_f6 - tiny)
        status = jnp.where((status == CONVERGED) & artificial, AT_BOUND, status)
        reason = jnp.where(~budget_ok, 1, jnp.where(~memory_ok, 2, 0))
        status = jnp.where(reason > 0, INFEASIBLE, status).astype(jnp.int32)
        violation = jnp.maximum(
            jnp.maximum(0.0, jnp.expm1(log_mem - log_cap)),
            jnp.maximum(0.0, jnp.maximum(x - x_hi, x_lo - x)),
        )
        iterations = r.iterations + rk.iterations
        return (
            log_n,
            log_d,
            loss,
            x,
            log_total,
            log_mem,
            status,
            reason,
            iterations,
            jax.lax.stop_gradient(gnorm),
            jax.lax.stop_gradient(violation),
        )

    return jax.vmap(one)(p, log_f, log_cap, log_kv, x_lo, x_hi)


# --------------------------------------------------------------- Krajewski 2024


class _KrajTheta(NamedTuple):
    p: moe_laws.KrajewskiParams
    log_f: jax.Array  # log C
    log_er: jax.Array  # log of the expansion rate E
    log_cf: jax.Array  # log c_f
    log_cr: jax.Array  # log c_r


def _kraj_log_total(u, th):
    """``log N``, ``N = d^2 (8E + 4) n_blocks = (8E + 4) d^3 / 64`` (Sec. 6.1)."""
    return jnp.log(8.0 * jnp.exp(th.log_er) + 4.0) - _LOG_WIDTH + 3.0 * u


def _kraj_log_cost(u, y, th):
    """``log`` FLOPs per token, ``(12 d^2 c_f + d E G c_r) n_blocks`` (Eq. 10)."""
    return (
        jnp.logaddexp(
            math.log(12.0) + th.log_cf + 3.0 * u,
            th.log_cr + th.log_er + y + 2.0 * u,
        )
        - _LOG_WIDTH
    )


def _kraj_loss(u, y, th):
    """Eq. 9 at ``d_model = e^u``, ``G = e^y`` and ``D = C / cost``."""
    p = th.p
    log_n = _kraj_log_total(u, th)
    log_d = th.log_f - _kraj_log_cost(u, y, th)
    coef = p.g * jnp.exp(-p.gamma * y) + p.a
    return (
        p.c
        + jnp.exp(jnp.log(coef) - p.alpha * log_n)
        + jnp.exp(jnp.log(p.b) - p.beta * log_d)
    )


_kraj_slope_u = jax.grad(_kraj_loss, argnums=0)
_kraj_slope_y = jax.grad(_kraj_loss, argnums=1)


class _KrajOuter(NamedTuple):
    th: _KrajTheta
    u_lo: jax.Array
    u_hi: jax.Array


def _kraj_inner_slope(u, theta):
    y, outer = theta
    return _kraj_slope_u(u, y, outer.th)


def _kraj_inner(y, outer, max_steps):
    """``log d_model`` minimizing the loss at ``G = e^y`` (convex in ``u``)."""
    pts = jnp.linspace(outer.u_lo, outer.u_hi, 4)[1:-1]
    return _argmin_convex(
        _kraj_inner_slope, outer.u_lo, outer.u_hi, (y, outer), pts, max_steps
    )


class _KrajOuterSlope(NamedTuple):
    """``d/dy min_u L(u, y) = dL/dy`` at the inner optimum (envelope theorem; the
    inner bounds do not depend on ``y``)."""

    max_steps: int

    def __call__(self, y, outer):
        u, _ = _kraj_inner(y, outer, self.max_steps)
        return _kraj_slope_y(u, y, outer.th)


@partial(jax.jit, static_argnames=("max_steps",))
def _kraj_kernel(
    p, log_f, log_cap, log_kv, log_er, log_cf, log_cr, y_lo, y_hi, max_steps
):
    def one(p, log_f, log_cap, log_kv, log_er, log_cf, log_cr, y_lo, y_hi):
        th = _KrajTheta(p, log_f, log_er, log_cf, log_cr)
        dtype = log_f.dtype
        u_min = jnp.asarray(_LOG_WIDTH, dtype)
        log_coef_n = jnp.log(8.0 * jnp.exp(log_er) + 4.0) - _LOG_WIDTH
        # Memory in values: N + 2 T n_blocks d_model = (8E+4) d^3/64 + 2 T d^2/64.
        u_cap = _log_poly_root(jnp.stack([log_coef_n, log_kv]), (3.0, 2.0), log_cap)
        # One token at the least granularity: cost(u, G_lo) = C.
        u_f = _log_poly_root(
            jnp.stack(
                [
                    math.log(12.0) + log_cf - _LOG_WIDTH,
                    log_cr + log_er + y_lo - _LOG_WIDTH,
                ]
            ),
            (3.0, 2.0),
            log_f,
        )
        memory_ok = u_cap >= u_min - 1e-6
        budget_ok = u_f >= u_min - 1e-6
        u_hi = jnp.maximum(jnp.minimum(u_cap, u_f), u_min)
        # Most granularity the budget allows with the smallest model.
        left = jnp.exp(log_f) - 12.0 * jnp.exp(log_cf) * _WIDTH**2
        g_f = left / (_WIDTH * jnp.exp(log_cr + log_er))
        y_f = jnp.log(jnp.where(g_f > 0, g_f, 1.0))
        y_top = jnp.maximum(jnp.minimum(y_hi, y_f), y_lo)
        outer = _KrajOuter(th, u_min, u_hi)
        slope = _KrajOuterSlope(max_steps)
        pts = jnp.linspace(y_lo, y_top, 6)[1:-1]
        y, r = _argmin_convex(slope, y_lo, y_top, outer, pts, max_steps)
        u, ri = _kraj_inner(y, outer, max_steps)
        log_n = _kraj_log_total(u, th)
        log_cost = _kraj_log_cost(u, y, th)
        log_d = log_f - log_cost
        loss = _kraj_loss(u, y, th)
        log_mem = jnp.logaddexp(log_n, log_kv + 2.0 * u)
        g_outer = _projected_slope(slope(y, outer), r.at_lower, r.at_upper)
        g_inner = _projected_slope(_kraj_slope_u(u, y, th), ri.at_lower, ri.at_upper)
        gnorm = jnp.maximum(g_outer, g_inner)
        status = _status(r.converged & ri.converged, y, u, loss, log_d)
        at_cap = ri.at_upper & (u_cap <= u_f)
        artificial = (
            ri.at_lower
            | (ri.at_upper & ~at_cap)
            | (r.at_upper & (y_f < y_hi))
            | (log_d < 0.0)
        )
        status = jnp.where((status == CONVERGED) & artificial, AT_BOUND, status)
        reason = jnp.where(~budget_ok, 1, jnp.where(~memory_ok, 2, 0))
        status = jnp.where(reason > 0, INFEASIBLE, status).astype(jnp.int32)
        violation = jnp.maximum(0.0, jnp.expm1(log_mem - log_cap))
        return (
            math.log(12.0) - _LOG_WIDTH + 3.0 * u,
            log_d,
            loss,
            y,
            log_n,
            log_mem,
            log_cost + log_d,
            status,
            reason,
            r.iterations + ri.iterations,
            jax.lax.stop_gradient(gnorm),
            jax.lax.stop_gradient(violation),
        )

    return jax.vmap(one)(p, log_f, log_cap, log_kv, log_er, log_cf, log_cr, y_lo, y_hi)


# ------------------------------------------------------------------- Clark 2022

#: Clark's N from the shape: ``12 n_blocks d_model^2`` with ``d_model = 64
#: n_blocks`` (embeddings neglected), so ``d_model = (64 N / 12)^(1/3)``.
_CLARK_LOG_NMIN = math.log(12.0 * _WIDTH**2)


class _ClarkTheta(NamedTuple):
    p: moe_laws.ClarkParams
    log_nb: jax.Array  # log(C / (6 D)): the budget's cap on N
    log_cap: jax.Array  # memory cap in values
    log_kv3: jax.Array  # log of the KV-cache coefficient of N^(2/3)
    log_phi: jax.Array  # log of the expert fraction
    x_lo: jax.Array  # log of the fewest experts
    x_hi: jax.Array  # log of the most experts


def _clark_log_experts(x, th):
    """``log E`` at ``N = e^x``: a bound, by the sign of ``b + c log10 N``.

    Up to Clark's cutoff more experts help (the log loss is linear in
    ``log10 Ê`` with that slope): as many as fit (``N (1 + phi (E - 1)) + KV <=
    M``) up to the most allowed; beyond it, the fewest allowed.
    """
    p = th.p
    room = jnp.exp(th.log_cap - x) - jnp.exp(th.log_kv3 - x / 3.0) - 1.0
    e_fit = 1.0 + room * jnp.exp(-th.log_phi)
    x_fit = jnp.log(jnp.where(e_fit > 0, e_fit, 1.0))
    # At the largest N that fits, x_fit = x_lo: keep x_fit's slope there (a
    # plain maximum would halve it), clipping only rounding below x_lo.
    x_fit = x_fit + jax.lax.stop_gradient(jnp.maximum(x_fit, th.x_lo) - x_fit)
    x_up = jnp.minimum(th.x_hi, x_fit)
    return jnp.where(p.b + p.c * x / _LN10 < 0, x_up, th.x_lo)


def _clark_log_loss(x, log_e, p):
    l_n = x / _LN10
    l_e = _log_expert_hat(log_e, p.e_start, p.e_max) / _LN10
    return _LN10 * (p.a * l_n + p.b * l_e + p.c * l_n * l_e + p.d)


def _clark_objective(x, th):
    return _clark_log_loss(x, _clark_log_experts(x, th), th.p)


def _clark_x_fit(x_e, th):
    """``log N`` at which ``N (1 + phi (E - 1)) + KV`` fills the memory."""
    log_size = jnp.log1p(jnp.exp(th.log_phi) * jnp.expm1(x_e))
    return _log_poly_root(
        jnp.stack([log_size, th.log_kv3]), (1.0, 2.0 / 3.0), th.log_cap
    )


@partial(jax.jit, static_argnames=("num_grid", "max_steps"))
def _clark_kernel(
    p, log_nb, log_cap, log_kv3, log_phi, x_lo, x_hi, num_grid, max_steps
):
    delta = _KINK_DELTA[np.dtype(log_nb.dtype)]

    def one(p, log_nb, log_cap, log_kv3, log_phi, x_lo, x_hi):
        th = _ClarkTheta(p, log_nb, log_cap, log_kv3, log_phi, x_lo, x_hi)
        dtype = log_nb.dtype
        n_lo = jnp.asarray(_CLARK_LOG_NMIN, dtype)
        x_mem = _clark_x_fit(x_lo, th)
        budget_ok = log_nb >= n_lo
        memory_ok = x_mem >= n_lo - 1e-6
        n_hi = jnp.maximum(jnp.minimum(log_nb, x_mem), n_lo)
        # Kinks: where E reaches max_experts on the memory frontier, and Clark's
        # cutoff b + c log10 N = 0 (where experts stop helping).
        k_fit = _clark_x_fit(x_hi, th)
        safe_c = jnp.where(p.c != 0, p.c, 1.0)
        k_cut = jnp.where(p.c != 0, -_LN10 * p.b / safe_c, n_lo)
        kinks = jnp.stack([k_fit, k_cut])
        x, r, x_at_lo, x_at_hi = _argmin_1d(
            _clark_objective,
            n_lo,
            n_hi,
            th,
            _solver.kink_points(kinks, delta),
            num_grid,
            max_steps,
        )
        width = delta * jnp.maximum(1.0, jnp.abs(kinks))
        inside = (kinks > n_lo) & (kinks < n_hi)
        near = inside & (jnp.abs(r.x - kinks) <= 2.0 * width)
        x = jnp.where(near[0], kinks[0], jnp.where(near[1], kinks[1], x))
        at_kink = near[0] | near[1]
        log_e = _clark_log_experts(x, th)
        log_loss = _clark_log_loss(x, log_e, p)
        w = jnp.where(near[0], width[0], width[1])
        probes = jnp.stack([x, x - 4.0 * w, x + 4.0 * w])
        here, left, right = jax.vmap(jax.grad(_clark_objective), (0, None))(probes, th)
        gnorm = jnp.where(
            at_kink,
            jnp.maximum(jnp.maximum(left, 0.0), jnp.maximum(-right, 0.0)),
            _projected_slope(here, x_at_lo, x_at_hi),
        )
        log_total = x + jnp.log1p(jnp.exp(log_phi) * jnp.expm1(log_e))
        log_mem = jnp.logaddexp(log_total, log_kv3 + 2.0 * x / 3.0)
        status = _status(r.converged | at_kink, x, log_loss)
        status = jnp.where((status == CONVERGED) & x_at_lo, AT_BOUND, status)
        reason = jnp.where(~budget_ok, 1, jnp.where(~memory_ok, 2, 0))
        status = jnp.where(reason > 0, INFEASIBLE, status).astype(jnp.int32)
        violation = jnp.maximum(
            jnp.maximum(0.0, jnp.expm1(x - log_nb)),
            jnp.maximum(0.0, jnp.expm1(log_mem - log_cap)),
        )
        return (
            x,
            jnp.exp(log_loss),
            log_e,
            log_total,
            log_mem,
            status,
            reason,
            r.iterations,
            jax.lax.stop_gradient(gnorm),
            jax.lax.stop_gradient(violation),
        )

    return jax.vmap(one)(p, log_nb, log_cap, log_kv3, log_phi, x_lo, x_hi)


# ------------------------------------------------------------- shared plumbing

_POSITIVE = {"lower": 0.0}
_NON_NEGATIVE = {"lower": 0.0, "lower_inclusive": True}
_AT_LEAST_ONE = {"lower": 1.0, "lower_inclusive": True}
_FRACTION = {"lower": 0.0, "upper": 1.0, "upper_inclusive": True}


@partial(jax.jit, static_argnames=("shape", "rules"))
def _flatten(params, arrays, shape, rules):
    """Broadcast to ``shape``, flatten, mask and sanitize (one compiled step)."""
    p, flat = _flat((params, arrays), shape)
    valid = jnp.ones(flat[0].shape, bool)
    for (rule, _), a in zip(rules, flat, strict=True):
        valid = valid & _checks.in_range(a, **dict(rule))
    dtype = flat[0].dtype
    safe = tuple(
        jnp.where(valid, a, jnp.asarray(s, dtype)).astype(dtype)
        for (_, s), a in zip(rules, flat, strict=True)
    )
    p = jax.tree_util.tree_map(lambda v: v.astype(dtype), p)
    return p, valid, safe


def _check(name, value, rule):
    """:func:`jscale._checks.check_range`, with a NumPy fast path for good values.

    Concrete inputs are tested in NumPy (no JAX operation, so nothing to compile
    for a new shape); a failure, and every traced input, goes through
    ``check_range`` itself, which raises the standard message or passes tracers.
    """
    if _checks.is_concrete(value):
        v = np.asarray(value)
        if np.issubdtype(v.dtype, np.number):
            lo, hi = rule.get("lower"), rule.get("upper")
            ok = np.isfinite(v)
            if lo is not None:
                ok &= (v >= lo) if rule.get("lower_inclusive") else (v > lo)
            if hi is not None:
                ok &= (v <= hi) if rule.get("upper_inclusive") else (v < hi)
            if bool(np.all(ok)):
                return asfloat(value)
    return _checks.check_range(name, value, **rule)


def _prepare(params, specs):
    """Check, broadcast, flatten and sanitize ``(name, value, rule, safe)`` inputs.

    Concrete bad values raise ``ValueError`` naming the argument; shapes must
    broadcast with each other and with the law's constants. Returns the batch
    shape, the flattened constants, the validity mask and the flattened inputs with
    invalid elements replaced by ``safe`` (their outputs are flagged NaN).
    """
    arrays = [_check(n, v, rule) for n, v, rule, _ in specs]
    _checks.check_shapes(**{s[0]: a for s, a in zip(specs, arrays, strict=True)})
    shape = _batch_shape(*arrays, *jax.tree_util.tree_leaves(params))
    rules = tuple((tuple(sorted(rule.items())), float(s)) for _, _, rule, s in specs)
    p, valid, safe = _flatten(params, tuple(arrays), shape, rules)
    return shape, p, valid, safe


def _expert_specs(experts, max_experts, default_max, name="experts"):
    """The spec fixing E (``experts``) or bounding it (``max_experts``)."""
    if experts is not None and max_experts is not None:
        raise ValueError(
            f"give {name} (to fix it) or max_{name} (to bound it), not both"
        )
    if experts is not None:
        return (name, experts, _AT_LEAST_ONE, 1.0), True
    top = default_max if max_experts is None else max_experts
    return (f"max_{name}", top, _AT_LEAST_ONE, 1.0), False


def _bytes_per_value(precision) -> float:
    return float(accounting.get_precision(precision).bytes_per_value)


def _log_cap(valid, memory, bytes_per_value, dtype):
    if memory is None:
        return jnp.full(valid.shape, _LOG_NO_CAP, dtype)
    safe = jnp.where(valid, memory, 1.0)
    return jnp.log(safe / bytes_per_value).astype(dtype)


def _assemble(shape, valid, fields, status, extra) -> AllocationResult:
    """An :class:`AllocationResult` from kernel outputs; NaN where infeasible."""
    n, d, loss, compute, iterations, gnorm, violation = fields
    status = jnp.where(valid, status, INFEASIBLE).astype(jnp.int32)
    bad = (status == INFEASIBLE) | (status == NONFINITE)
    n, d, loss, compute, violation = _checks.flag(~bad, n, d, loss, compute, violation)
    extra = {k: _checks.flag(~bad, v)[0] for k, v in extra.items()}
    res = AllocationResult(
        n, d, loss, compute, status, iterations, gnorm, violation, **extra
    )
    return jax.tree_util.tree_map(lambda v: v.reshape(shape), res)


def _cut(out, n):
    return jax.tree_util.tree_map(lambda v: v[:n], out)


def _raise(shape, status, reason, messages):
    """Raise for the first concrete infeasible element with its reason's message.

    ``messages[code](i)`` describes flat element ``i``; the index in the batch
    shape is appended.
    """
    if not _checks.is_concrete(status):
        return
    flat = np.asarray(status).reshape(-1)
    bad = np.flatnonzero(flat == INFEASIBLE)
    if bad.size == 0:
        return
    i = int(bad[0])
    where = ""
    if shape:
        where = f" at index {tuple(int(k) for k in np.unravel_index(i, shape))}"
    raise ValueError(messages[int(np.asarray(reason).reshape(-1)[i])](i) + where)


def _at(x, i) -> float:
    return float(np.asarray(x).reshape(-1)[i])


def _budget_message(c, n_min):
    return lambda i: (
        f"compute_flops = {_at(c, i):.6g} is infeasible: it must train the smallest "
        f"model (d_model = 64, one block: {n_min:.4g} active parameters) on one "
        f"token, at least {6 * n_min:.4g} FLOPs"
    )


def _memory_message(memory, need):
    return lambda i: (
        f"memory_bytes = {_at(memory, i):.6g} is infeasible: the smallest model "
        f"(d_model = 64, one block) {need(i)}"
    )


# Per-family steps before and after the kernel, each compiled once per shape (the
# kernels themselves once per padded batch size).


@partial(jax.jit, static_argnames=("fixed", "bpv", "n"))
def _joint_args(p, valid, c, t, e, mem, fixed, bpv, n):
    x_e = jnp.log(e)
    args = (
        p,
        jnp.log(c),
        _log_cap(valid, mem, bpv, c.dtype),
        _log_term(valid, t, 2.0 / _WIDTH),
        x_e if fixed else jnp.zeros_like(x_e),
        x_e,
    )
    return _pad(args, n)


@partial(jax.jit, static_argnames=("shape", "n", "bpv"))
def _joint_result(out, valid, shape, n, bpv):
    log_n, log_d, loss, x, log_total, log_mem, status, reason, its, gn, viol = _cut(
        out, n
    )
    res = _assemble(
        shape,
        valid,
        (jnp.exp(log_n), jnp.exp(log_d), loss, jnp.exp(log_n + log_d + _LOG6))
        + (its, gn, viol),
        status,
        {
            "experts": jnp.exp(x),
            "n_total_params": jnp.exp(log_total),
            "memory_bytes": bpv * jnp.exp(log_mem),
        },
    )
    return res, reason


@partial(jax.jit, static_argnames=("fixed", "bpv", "n"))
def _kraj_args(p, valid, c, t, g, er, cf, cr, mem, fixed, bpv, n):
    y_g = jnp.log(g)
    args = (
        p,
        jnp.log(c),
        _log_cap(valid, mem, bpv, c.dtype),
        _log_term(valid, t, 2.0 / _WIDTH),
        jnp.log(er),
        jnp.log(cf),
        jnp.log(cr),
        y_g if fixed else jnp.zeros_like(y_g),
        y_g,
    )
    return _pad(args, n)


@partial(jax.jit, static_argnames=("shape", "n", "bpv"))
def _kraj_result(out, valid, er, shape, n, bpv):
    log_n, log_d, loss, y, log_total, log_mem, log_c, status, reason, its, gn, viol = (
        _cut(out, n)
    )
    gran = jnp.exp(y)
    res = _assemble(
        shape,
        valid,
        (jnp.exp(log_n), jnp.exp(log_d), loss, jnp.exp(log_c), its, gn, viol),
        status,
        {
            "granularity": gran,
            "experts": er * gran,
            "n_total_params": jnp.exp(log_total),
            "memory_bytes": bpv * jnp.exp(log_mem),
        },
    )
    return res, reason


@partial(jax.jit, static_argnames=("fixed", "bpv", "n"))
def _clark_args(p, valid, c, d, t, e, phi, mem, fixed, bpv, n):
    x_e = jnp.log(e)
    kv3 = (2.0 / _WIDTH) * (_WIDTH / 12.0) ** (2.0 / 3.0)
    args = (
        p,
        jnp.log(c) - _LOG6 - jnp.log(d),
        _log_cap(valid, mem, bpv, c.dtype),
        _log_term(valid, t, kv3),
        jnp.log(phi),
        x_e if fixed else jnp.zeros_like(x_e),
        x_e,
    )
    return _pad(args, n)


@partial(jax.jit, static_argnames=("shape", "n", "bpv"))
def _clark_result(out, valid, d, shape, n, bpv):
    x, loss, log_e, log_total, log_mem, status, reason, its, gn, viol = _cut(out, n)
    res = _assemble(
        shape,
        valid,
        (jnp.exp(x), d, loss, 6.0 * jnp.exp(x) * d, its, gn, viol),
        status,
        {
            "experts": jnp.exp(log_e),
            "n_total_params": jnp.exp(log_total),
            "memory_bytes": bpv * jnp.exp(log_mem),
        },
    )
    return res, reason


# ------------------------------------------------------------------ public API


def joint_moe_optimal(
    params: moe_laws.JointMoEParams,
    compute_flops: ArrayLike,
    *,
    experts: ArrayLike | None = None,
    max_experts: ArrayLike | None = None,
    memory_bytes: ArrayLike | None = None,
    context: ArrayLike = DEFAULT_CONTEXT,
    precision: str | accounting.Precision = "bf16",
    num_grid: int = 16,
    max_steps: int = 48,
) -> AllocationResult:
    """Compute- and memory-optimal MoE under Ludziejewski et al. 2025's joint law.

    Minimizes ``L(N_act, D, E)`` (arXiv:2502.05172, Eq. 6) over active parameters,
    tokens and experts subject to ``6 N_act D = C`` and, with ``memory_bytes``,
    ``bytes x (N_total + 2 T n_blocks d_model) <= memory_bytes`` (Sec. 4.2-4.3;
    parameter counts of App. A.1 with ``n_blocks = d_model / 64``). For each E the
    optimum is their closed form (Eq. 7) where that model fits, else the largest
    model that fits (the memory constraint is linear in E, so that frontier is
    explicit in ``d_model``). The solver walks this path of per-E optima, from the
    fewest experts to the point where the memory cap starts to bind (a kink; the
    optimum often sits on it: the largest E whose compute-optimal model still
    fits), then along the frontier towards ``max_experts``. Without a memory cap
    more experts always help (their Finding 2): E goes to ``max_experts``.

    Args:
      params: the law's constants (leaves broadcast against the inputs).
      compute_flops: training budgets C in FLOPs (> 0), any shape.
      experts: fix E (>= 1) instead of optimizing it.
      max_experts: upper bound on E (>= 1; default 32, the largest E of the fit).
      memory_bytes: memory for the weights and the KV cache (> 0); ``None`` for
        no memory constraint.
      context: KV-cache tokens T (>= 0; default 16384, as in their Table 2).
      precision: number format of weights and cache (:mod:`jscale.accounting`
        name or :class:`~jscale.accounting.Precision`; static).
      num_grid, max_steps: scan points and Newton step cap of the 1-D solver.

    Returns:
      An :class:`AllocationResult`: ``n_params`` the active parameters (with
      embeddings), ``n_tokens``, ``loss``, ``compute_flops = 6 N_act D``,
      ``experts``, ``n_total_params``, ``memory_bytes`` (weights plus KV cache),
      ``iterations``, ``grad_norm`` (projected slope of the loss along the path)
      and ``violation`` (relative excess over the memory cap or the E bounds).

    Raises:
      ValueError: for concrete invalid inputs (naming them), for both ``experts``
        and ``max_experts``, and for an infeasible configuration: a budget below
        six times the smallest model (``d_model = 64``, one block), or memory that
        cannot hold that model with the fewest allowed experts and its KV cache.

    Examples:
      >>> from jscale.laws import moe
      >>> p = moe.LUDZIEJEWSKI2025.params
      >>> r = joint_moe_optimal(p, 1e21, experts=8.0)  # their Table 1: 3.8B, 44.3B
      >>> f"{float(r.n_params):.3g} {float(r.n_tokens):.3g}"
      '3.79e+09 4.4e+10'
      >>> r = joint_moe_optimal(p, 1e22, memory_bytes=80e9)  # one H100, bf16
      >>> round(float(r.experts), 1), bool(r.memory_bytes <= 80e9 * (1 + 1e-5))
      (15.6, True)
    """
    c = _check("compute_flops", compute_flops, _POSITIVE)
    e_spec, fixed = _expert_specs(
        experts, max_experts, DEFAULT_MAX_EXPERTS[moe_laws.JOINT_FAMILY.name]
    )
    specs = [
        ("compute_flops", c, _POSITIVE, 1e21),
        ("context", context, _NON_NEGATIVE, 0.0),
        e_spec,
    ]
    if memory_bytes is not None:
        specs.append(("memory_bytes", memory_bytes, _POSITIVE, 1e30))
    bpv = _bytes_per_value(precision)
    shape, p, valid, arrays = _prepare(params, specs)
    c, t, e = arrays[:3]
    mem = arrays[3] if memory_bytes is not None else None
    n = c.shape[0]
    args = _joint_args(p, valid, c, t, e, mem, fixed=fixed, bpv=bpv, n=n)
    out = _joint_kernel(*args, num_grid=num_grid, max_steps=max_steps)
    res, reason = _joint_result(out, valid, shape=shape, n=n, bpv=bpv)
    n_min = 2 * _WIDTH * moe_laws.JOINT_VOCAB + 13 * _WIDTH**2
    v = moe_laws.JOINT_VOCAB

    def need(i):
        e_lo = _at(e, i) if fixed else 1.0
        values = 2 * 64 * v + (4 + 9 * e_lo) * 64**2 + 128 * _at(t, i)
        return (
            f"with {e_lo:g} experts and a KV cache of {_at(t, i):g} tokens needs "
            f"{bpv * values:.4g} bytes"
        )

    _raise(
        shape,
        res.status,
        reason,
        {1: _budget_message(c, n_min), 2: _memory_message(mem, need)},
    )
    return res


def fine_grained_moe_optimal(
    params: moe_laws.KrajewskiParams,
    compute_flops: ArrayLike,
    *,
    granularity: ArrayLike | None = None,
    max_granularity: ArrayLike | None = None,
    expansion_rate: ArrayLike = 64.0,
    memory_bytes: ArrayLike | None = None,
    context: ArrayLike = DEFAULT_CONTEXT,
    precision: str | accounting.Precision = "bf16",
    c_f: ArrayLike = moe_laws.KRAJEWSKI_C_F,
    c_r: ArrayLike = moe_laws.KRAJEWSKI_C_R,
    max_steps: int = 48,
) -> AllocationResult:
    """Compute-optimal fine-grained MoE (Krajewski et al. 2024, Sec. 6).

    Minimizes ``L(N, D, G) = c + (g / G^gamma + a) N^-alpha + b D^-beta``
    (arXiv:2402.07871, Eq. 9) over the total non-embedding parameters
    ``N = d_model^2 (8E + 4) n_blocks``, tokens and granularity subject to their
    Eq. 10 budget with routing, ``C = (12 d_model^2 c_f + d_model E G c_r) D
    n_blocks``, with ``d_model = 64 n_blocks`` (Sec. 6.1) and the expansion rate
    E fixed (64 in their fit). Eliminating D leaves a function of
    ``(log d_model, log G)`` that is jointly convex (sums of exponentials of convex
    functions), minimized by nested 1-D solves: ``log d_model`` for each
    ``log G``, then ``log G`` on the envelope (whose slope is ``dL/dlog G`` at the
    inner optimum). With ``memory_bytes`` the weights and the KV cache must fit,
    ``bytes x ((8E + 4) d^3 / 64 + 2 T d^2 / 64) <= memory_bytes``: an upper bound
    on ``d_model`` (the router is not counted, as in their N).

    Their Table 2 lists configurations with G restricted to powers of two; the
    continuous optimum here rounds (in ``log2 G``) to the same G.

    Args:
      params: the law's constants.
      compute_flops: training budgets C in FLOPs (> 0).
      granularity: fix G (>= 1) instead of optimizing it.
      max_granularity: upper bound on G (>= 1; default 256).
      expansion_rate: E (>= 1; default 64, the value of their fit).
      memory_bytes: memory for weights and KV cache (> 0) or ``None``.
      context: KV-cache tokens T (>= 0; default 16384).
      precision: number format of weights and cache (static).
      c_f, c_r: FLOPs per parameter per token of the dense layers and the router
        (Eq. 10; defaults 6 and 14).
      max_steps: Newton step cap of each 1-D solve.

    Returns:
      An :class:`AllocationResult`: ``n_params`` the active non-embedding
      parameters ``12 d_model^2 n_blocks`` (their "E x N_act" notation gives
      ``N_act``), ``n_total_params`` the total N, ``n_tokens``, ``granularity``,
      ``experts = E G`` (fine-grained experts per layer, their Eq. 3),
      ``compute_flops`` (Eq. 10), ``memory_bytes``, ``loss``.

    Raises:
      ValueError: for concrete invalid inputs, both ``granularity`` and
        ``max_granularity``, a budget that cannot train the smallest model
        (``d_model = 64``) on one token, or memory that cannot hold it.

    Examples:
      >>> from jscale.laws import moe
      >>> p = moe.KRAJEWSKI2024.params
      >>> r = fine_grained_moe_optimal(p, 1.93e20)  # their Table 2: 64 x 1B, G=16
      >>> f"{float(r.n_params):.3g} {float(r.granularity):.1f}"
      '1.02e+09 16.9'
    """
    c = _check("compute_flops", compute_flops, _POSITIVE)
    g_spec, fixed = _expert_specs(
        granularity,
        max_granularity,
        DEFAULT_MAX_EXPERTS[moe_laws.KRAJEWSKI_FAMILY.name] / 64.0,
        "granularity",
    )
    specs = [
        ("compute_flops", c, _POSITIVE, 1e21),
        ("context", context, _NON_NEGATIVE, 0.0),
        g_spec,
        ("expansion_rate", expansion_rate, _AT_LEAST_ONE, 64.0),
        ("c_f", c_f, _POSITIVE, 6.0),
        ("c_r", c_r, _POSITIVE, 14.0),
    ]
    if memory_bytes is not None:
        specs.append(("memory_bytes", memory_bytes, _POSITIVE, 1e30))
    bpv = _bytes_per_value(precision)
    shape, p, valid, arrays = _prepare(params, specs)
    c, t, g, er, cf, cr = arrays[:6]
    mem = arrays[6] if memory_bytes is not None else None
    n = c.shape[0]
    args = _kraj_args(p, valid, c, t, g, er, cf, cr, mem, fixed=fixed, bpv=bpv, n=n)
    out = _kraj_kernel(*args, max_steps=max_steps)
    res, reason = _kraj_result(out, valid, er, shape=shape, n=n, bpv=bpv)

    def need(i):
        values = (8 * _at(er, i) + 4) * 64**2 + 128 * _at(t, i)
        return f"and a KV cache of {_at(t, i):g} tokens need {bpv * values:.4g} bytes"

    _raise(
        shape,
        res.status,
        reason,
        {1: _budget_message(c, 12.0 * 64**2), 2: _memory_message(mem, need)},
    )
    return res


def routed_moe_optimal(
    params: moe_laws.ClarkParams,
    compute_flops: ArrayLike,
    *,
    n_tokens: ArrayLike = CLARK_TOKENS,
    experts: ArrayLike | None = None,
    max_experts: ArrayLike | None = None,
    memory_bytes: ArrayLike | None = None,
    context: ArrayLike = DEFAULT_CONTEXT,
    precision: str | accounting.Precision = "bf16",
    expert_fraction: ArrayLike = CLARK_EXPERT_FRACTION,
    num_grid: int = 16,
    max_steps: int = 48,
) -> AllocationResult:
    """Optimal routed model under Clark et al. 2022's law, at fixed training tokens.

    Clark's law ``log10 L = a log10 N + b log10 Ê + c log10 N log10 Ê + d``
    (arXiv:2202.01169, Eq. 1, saturating Ê) was fitted on models that all saw
    130B tokens, so D is an input here, not a decision: the budget
    ``6 N D <= C`` caps the dense-equivalent parameters N (routing FLOPs
    neglected, as in their accounting), and N and E are chosen under the memory
    cap ``bytes x (N (1 + phi (E - 1)) + 2 T n_blocks d_model) <= memory_bytes``
    with ``phi = expert_fraction`` (each extra expert copies the routed
    feed-forward layers: routing every other block, feed-forward 2/3 of a block,
    about 0.31 of N in the authors' data, :data:`CLARK_EXPERT_FRACTION`) and
    ``d_model = (64 N / 12)^(1/3)``, ``n_blocks = d_model / 64`` for the cache (the
    shape rule of Krajewski 2024 and Ludziejewski 2025; Clark's own models are
    somewhat deeper). For a fixed N the log loss is linear in ``log10 Ê`` with
    slope ``b + c log10 N``, so E is as large as fits (at most ``max_experts``)
    below Clark's cutoff ``N_cut = 10^(-b/c)`` and ``experts`` (or 1) above it;
    ``log N`` is then minimized on ``[log(12 x 64^2), log(C / (6 D))]`` with the
    two kinks (E reaching ``max_experts``, ``N_cut``) as scan points.

    Args:
      params: the law's constants (:class:`~jscale.laws.moe.ClarkParams`).
      compute_flops: training budgets C in FLOPs (> 0).
      n_tokens: training tokens D (> 0; default 130e9, Clark's).
      experts: fix E (>= 1) instead of optimizing it.
      max_experts: upper bound on E (>= 1; default 512, their largest).
      memory_bytes: memory for weights and KV cache (> 0) or ``None``.
      context: KV-cache tokens T (>= 0; default 16384).
      precision: number format of weights and cache (static).
      expert_fraction: ``phi`` in (0, 1], the share of N copied per extra expert.
      num_grid, max_steps: scan points and Newton step cap.

    Returns:
      An :class:`AllocationResult` with ``n_params = N`` (the parameters a token
      uses), ``n_tokens = D``, ``experts``, ``n_total_params``,
      ``compute_flops = 6 N D`` (at most C) and ``memory_bytes``.

    Raises:
      ValueError: for concrete invalid inputs, both ``experts`` and
        ``max_experts``, a budget below ``6 D`` times the smallest model, or
        memory that cannot hold it.

    Examples:
      >>> from jscale.laws import moe
      >>> p = moe.CLARK2022_SBASE.params
      >>> r = routed_moe_optimal(p, 6 * 1.3e9 * 130e9, max_experts=64.0)
      >>> round(float(r.n_params) / 1e9, 3), round(float(r.experts), 6)
      (1.3, 64.0)
      >>> round(float(r.loss), 4)  # the law at N = 1.3B, E = 64
      2.0498
    """
    c = _check("compute_flops", compute_flops, _POSITIVE)
    e_spec, fixed = _expert_specs(
        experts, max_experts, DEFAULT_MAX_EXPERTS[moe_laws.CLARK_FAMILY.name]
    )
    specs = [
        ("compute_flops", c, _POSITIVE, 1e21),
        ("n_tokens", n_tokens, _POSITIVE, 1e10),
        ("context", context, _NON_NEGATIVE, 0.0),
        e_spec,
        ("expert_fraction", expert_fraction, _FRACTION, CLARK_EXPERT_FRACTION),
    ]
    if memory_bytes is not None:
        specs.append(("memory_bytes", memory_bytes, _POSITIVE, 1e30))
    bpv = _bytes_per_value(precision)
    shape, p, valid, arrays = _prepare(params, specs)
    c, d, t, e, phi = arrays[:5]
    mem = arrays[5] if memory_bytes is not None else None
    n = c.shape[0]
    args = _clark_args(p, valid, c, d, t, e, phi, mem, fixed=fixed, bpv=bpv, n=n)
    out = _clark_kernel(*args, num_grid=num_grid, max_steps=max_steps)
    res, reason = _clark_result(out, valid, d, shape=shape, n=n, bpv=bpv)
    n_min = 12.0 * 64**2

    def need(i):
        e_lo = _at(e, i) if fixed else 1.0
        values = n_min * (1 + _at(phi, i) * (e_lo - 1)) + 128 * _at(t, i)
        return (
            f"with {e_lo:g} experts and a KV cache of {_at(t, i):g} tokens needs "
            f"{bpv * values:.4g} bytes"
        )

    _raise(
        shape,
        res.status,
        reason,
        {
            1: lambda i: (
                f"compute_flops = {_at(c, i):.6g} is infeasible: it must train the "
                f"smallest model (d_model = 64, one block: {n_min:.4g} parameters) "
                f"on n_tokens = {_at(d, i):.4g} tokens, at least "
                f"{6 * n_min * _at(d, i):.4g} FLOPs"
            ),
            2: _memory_message(mem, need),
        },
    )
    return res


_FAMILIES = {
    moe_laws.JOINT_FAMILY.name: "joint",
    moe_laws.KRAJEWSKI_FAMILY.name: "fine-grained",
    moe_laws.CLARK_FAMILY.name: "routed",
}


def moe_optimal(
    law: str | Preset,
    compute_flops: ArrayLike,
    *,
    experts: ArrayLike | None = None,
    max_experts: ArrayLike | None = None,
    granularity: ArrayLike | None = None,
    memory_gb: ArrayLike | None = None,
    devices: ArrayLike = 1.0,
    precision: str | accounting.Precision = "bf16",
    context: ArrayLike = DEFAULT_CONTEXT,
    n_tokens: ArrayLike | None = None,
) -> AllocationResult:
    """The optimal mixture of experts for a named MoE law: one front door.

    Dispatches on the law's family:

    - ``moe-ludziejewski2025`` (joint law): :func:`joint_moe_optimal`, deciding
      active parameters, experts and tokens.
    - ``moe-krajewski2024`` (fine-grained): :func:`fine_grained_moe_optimal`,
      deciding parameters, granularity and tokens at expansion rate 64;
      ``experts`` fixes the number of fine-grained experts ``64 G`` (so G),
      ``max_experts`` bounds it, ``granularity`` fixes G directly.
    - ``moe-clark2022-*`` (routed): :func:`routed_moe_optimal`, deciding N and E
      at ``n_tokens`` training tokens (default 130e9).

    Args:
      law: a preset name from :mod:`jscale.laws` or a
        :class:`~jscale.laws.Preset` of one of those families.
      compute_flops: training budgets C in FLOPs (> 0).
      experts: fix the experts per routed layer (>= 1).
      max_experts: bound them (default per family, :data:`DEFAULT_MAX_EXPERTS`).
      granularity: fix G (fine-grained law only).
      memory_gb: accelerator memory per device in GB (1e9 bytes, as vendors
        and :mod:`jscale.accounting` count); ``None`` for no memory constraint.
      devices: devices holding the model (> 0): the cap is ``memory_gb x 1e9 x
        devices`` bytes.
      precision: number format of the weights and the KV cache.
      context: KV-cache tokens (>= 0; default 16384).
      n_tokens: training tokens (routed law only; default 130e9).

    Returns:
      An :class:`AllocationResult` with ``n_params`` (active parameters),
      ``n_total_params``, ``experts`` (and ``granularity`` for the fine-grained
      law), ``n_tokens``, ``loss``, ``compute_flops`` and ``memory_bytes``.

    Raises:
      ValueError: for a law without an MoE allocation, options the law does not
        take, invalid inputs or infeasible configurations.

    Examples:
      >>> r = moe_optimal("moe-ludziejewski2025", 1e23, memory_gb=80)  # one H100
      >>> round(float(r.experts), 2), f"{float(r.n_total_params):.2g}"
      (3.16, '3.2e+10')
    """
    from .. import laws

    preset = laws.get(law) if isinstance(law, str) else law
    family = _FAMILIES.get(preset.family.name)
    if family is None:
        raise ValueError(
            f"no MoE allocation for law {preset.name!r} (family "
            f"{preset.family.name!r}); MoE families: {', '.join(sorted(_FAMILIES))}"
        )
    memory = None
    if memory_gb is not None:
        gb = _checks.check_positive("memory_gb", memory_gb)
        memory = gb * 1e9 * _checks.check_positive("devices", devices)
    common = {"memory_bytes": memory, "context": context, "precision": precision}
    if family != "routed" and n_tokens is not None:
        raise ValueError(
            f"n_tokens applies only to the routed (Clark 2022) laws, whose loss has "
            f"no token count; {preset.name!r} chooses the tokens itself"
        )
    if family != "fine-grained" and granularity is not None:
        raise ValueError(
            f"granularity applies only to the fine-grained law moe-krajewski2024; "
            f"{preset.name!r} has no granularity"
        )
    if family == "joint":
        return joint_moe_optimal(
            preset.params,
            compute_flops,
            experts=experts,
            max_experts=max_experts,
            **common,
        )
    if family == "routed":
        tokens = CLARK_TOKENS if n_tokens is None else n_tokens
        return routed_moe_optimal(
            preset.params,
            compute_flops,
            n_tokens=tokens,
            experts=experts,
            max_experts=max_experts,
            **common,
        )
    rate = 64.0
    if experts is not None and granularity is not None:
        raise ValueError("give experts (E G fine-grained experts) or granularity")
    # At least one full-size expert group: E G >= E (G >= 1).
    at_least_rate = {"lower": rate, "lower_inclusive": True}
    if experts is not None:
        granularity = _checks.check_range("experts", experts, **at_least_rate) / rate
    max_g = None
    if max_experts is not None:
        max_g = _checks.check_range("max_experts", max_experts, **at_least_rate) / rate
    return fine_grained_moe_optimal(
        preset.params,
        compute_flops,
        granularity=granularity,
        max_granularity=max_g,
        expansion_rate=rate,
        **common,
    )
