"""Precision-aware compute-optimal allocation (Kumar et al. 2024, arXiv:2411.04330).

Training in ``P`` bits shrinks the effective parameter count and, under the
paper's cost model (Sec. 4.3, Eq. 5), makes each FLOP cheaper in proportion::

    min_{N, D, P} L(N, D, P)   subject to   C = (6/16) N D P,

with ``L`` the unified precision-aware law of :mod:`jscale.laws.precision`
(``A N_eff^-alpha + B D^-beta + E + delta_PTQ``, ``N_eff = N r(P)``). The budget
eliminates ``D = C / ((6/16) N P)``. At a given precision the loss along that
line is convex in ``log N`` (a sum of exponentials of affine functions of it):
a 1-D root of its derivative, seeded by the closed form (Hoffmann 2022 Eq. 4 with
``A -> A r(P)^-alpha`` and ``C/6 -> C/(6/16 P)``; Kumar 2024 App. E.2.1, Eq. 16),
exact without post-training quantization.

The precision: the law sees N only through ``N_eff`` (both ``A N_eff^-alpha``
and ``delta_PTQ``), so in ``(log N_eff, log D)`` the budget line is
``log N_eff + log D = log(C / (6/16)) + log r(P) - log P`` and the best P
maximizes ``r(P) / P``, effective parameters per bit, whatever the budget, the
data term or the quantization penalty. That is Kumar 2024 Eq. 7 / App. E.2.3
Eq. 28 (the compute-independent optimum), which with distinct weight, activation
and KV sensitivities reads ``P sum_x (1/gamma_x) / (exp(P/gamma_x) - 1) = 1``
over the parts trained in P bits; its root is unique. A custom ``law`` gets
no such shortcut: its precision is a 1-D search on the profile ``min_N L``
(nested solve). With N fixed (Sec. 4.3.3) the precision is a 1-D search too.

Every level is :func:`jscale.allocation.minimize_scalar`'s method (sign scan of
the derivative, safeguarded Newton, implicit differentiation), so the solution
is differentiable in the law's constants and the budget, and a batch of any size
runs through one compiled solver in fixed-size chunks.

Note on the constants: App. K lists, next to the preset's values, offsets
``n_w = 0.3037``, ``n_i = 1.4072``, ``n_kv = 2.4185`` (and ``b = 1.1277``) that the
fit adds inside the exponentials, which :mod:`jscale.laws.precision` omits.
Without them the preset's compute-optimal precision is 3.47 bits; with
``N_eff = N prod_x (1 - exp(n_x - P/gamma_x))`` Eq. 28 gives 7.0 bits, the
paper's "7-8 bits" (Sec. 4.3.2). Pass such a law as ``law``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from .. import _checks, _solver
from .._numerics import asfloat
from ..laws import precision as _law
from ._common import (
    AT_BOUND,
    CONVERGED,
    INFEASIBLE,
    KINK_DELTA,
    NONFINITE,
    POSITIVE,
    assemble,
    pick,
    prepare,
    raise_if_infeasible,
    solver_status,
)
from .results import AllocationResult

#: ``log(6/16)``: Kumar's cost ``C = (6/16) N D P`` (6ND at 16 bits).
_LOG_K = math.log(6.0 / 16.0)

_PARTS = ("weight_bits", "activation_bits", "kv_cache_bits")


def _law_log_loss(p, x, y, w, a, kv, post):
    """The unified law (Kumar 2024 Eq. 1 / Finding 4) at ``N = e^x``, ``D = e^y``.

    The law module's own log-space terms; ``delta_PTQ`` is dropped exactly where
    ``post`` is infinite (no quantization), so that no ``0 * inf`` reaches the
    gradients with respect to ``gamma_post``.
    """
    log_n_eff = _law.log_effective_params(p, x, w, a, kv)
    quantized = jnp.isfinite(post)
    post_safe = jnp.where(quantized, post, 1.0)
    ptq = jnp.exp(_law.log_ptq_loss(p, log_n_eff, y, post_safe))
    return (
        jnp.exp(jnp.log(p.A) - p.alpha * log_n_eff)
        + jnp.exp(jnp.log(p.B) - p.beta * y)
        + p.E
        + jnp.where(quantized, ptq, 0.0)
    )


class _GenericLoss(NamedTuple):
    """A user law ``law(params, N, D, P_w, P_a, P_kv, P_post)`` in log N, log D."""

    law: Callable

    def __call__(self, p, x, y, w, a, kv, post):
        return self.law(p, jnp.exp(x), jnp.exp(y), w, a, kv, post)


def _bits_of(name_or_bits) -> float:
    """Bits of a menu entry: a :data:`jscale.accounting.PRECISIONS` name or a number."""
    if isinstance(name_or_bits, str):
        from .. import accounting

        return float(accounting.get_precision(name_or_bits).bits)
    if isinstance(name_or_bits, (bool, np.bool_)) or not isinstance(
        name_or_bits, (int, float, np.integer, np.floating)
    ):
        raise ValueError(
            "menu entries must be precision names (e.g. 'bf16', 'fp8', 'int4') or "
            f"numbers of bits; got {name_or_bits!r}"
        )
    value = float(name_or_bits)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"menu bits must be finite and > 0; got {value:g}")
    return value


@partial(
    jax.jit,
    static_argnames=("log_loss", "mode", "tie", "seeded", "num_grid", "max_steps"),
)
def _kernel(
    log_loss,
    mode,
    tie,
    seeded,
    num_grid,
    max_steps,
    params,
    log_c,
    bits,
    fixed,
    post,
    log_n,
    lo_bits,
    hi_bits,
):
    """One configuration per lane; ``mode`` in {"fixed", "menu", "free", "fixed_n",
    "menu_n"}. Returns ``(x, y, P, loss, status, iterations, grad_norm)``."""
    dtype = log_c.dtype
    delta = KINK_DELTA[np.dtype(dtype)]

    def one(p, lc, bits, fixed, post, ln, lo, hi):
        th = (p, lc, fixed, post)

        def parts(P, th):
            return tuple(P if t else f for t, f in zip(tie, th[2], strict=True))

        def loss_at(x, P, th):
            y = th[1] - _LOG_K - x - jnp.log(P)
            return log_loss(th[0], x, y, *parts(P, th), th[3])

        def x_max(P, th):  # at least one token: D = C / (k N P) >= 1
            return th[1] - _LOG_K - jnp.log(P)

        def seed_x(P, th):
            # Hoffmann 2022 Eq. 4 with A -> A r^-alpha and C/6 -> C/(k P)
            # (Kumar 2024 App. E.2.1, Eq. 16): exact without PTQ.
            q = th[0]
            log_r = _law.log_effective_params(q, jnp.zeros_like(P), *parts(P, th))
            s = q.alpha + q.beta
            return (
                jnp.log(q.alpha * q.A)
                - q.alpha * log_r
                - jnp.log(q.beta * q.B)
                + q.beta * x_max(P, th)
            ) / s

        def solve_x(P, th):
            """argmin over log N in [0, x_max(P)] (differentiable in P and th)."""
            hi_x = x_max(P, th)
            ok = hi_x > 0
            hi_x = jnp.where(ok, hi_x, 1.0)
            lo_x = jnp.zeros_like(hi_x)
            if seeded:
                pts = _solver.kink_points(seed_x(P, th)[None], delta)
                grid = 0
            else:
                pts = lo_x[None][:0]
                grid = num_grid

            def f(x, pt):
                return loss_at(x, *pt)

            m = _solver.minimize_scalar(
                f, (P, th), lo_x, hi_x, pts, num_grid=grid, max_steps=max_steps
            )
            return m, ok

        def slope_p(x, P, th):
            return jax.grad(loss_at, argnums=1)(x, P, th)

        def fixed_bits(P, th):
            m, ok = solve_x(P, th)
            status = solver_status(m.converged, m.x, m.value)
            edge = m.at_lower | m.at_upper
            status = jnp.where((status == CONVERGED) & edge, AT_BOUND, status)
            status = jnp.where(ok, status, INFEASIBLE)
            return m.x, P, m.value, status, m.iterations, m.grad_norm

        def best_of_menu(out):
            x, P, loss, status, iters, g = out
            usable = (status != INFEASIBLE) & jnp.isfinite(loss)
            i = jnp.argmin(jnp.where(usable, loss, jnp.inf))
            none = jnp.where(jnp.all(status == INFEASIBLE), INFEASIBLE, NONFINITE)
            status = jnp.where(jnp.any(usable), status[i], none)
            return x[i], P[i], loss[i], status, iters[i], g[i]

        if mode == "fixed":
            x, P, loss, status, iters, g = fixed_bits(bits, th)
        elif mode == "menu":
            out = jax.vmap(lambda b: fixed_bits(b, th))(bits)
            x, P, loss, status, iters, g = best_of_menu(out)
        elif mode == "free":
            p_hi = jnp.minimum(hi, jnp.exp(lc - _LOG_K))
            ok = lo <= p_hi
            p_hi = jnp.where(ok, p_hi, lo + 1.0)
            if seeded:
                # The law sees N only through N_eff = N r(P), so the budget line
                # is log N_eff + log D = log(C/k) + log r(P) - log P: P* maximizes
                # r(P)/P whatever the budget, data term or PTQ penalty, at the root
                # of Kumar 2024 Eq. 28 over the parts trained in P bits.
                r = _best_bits(p, lo, p_hi, tie, max_steps)
            else:
                r = _nested_bits(solve_x, loss_at, th, lo, p_hi, num_grid, max_steps)
            P = r.x
            mx, ok_x = solve_x(P, th)
            x, loss = mx.x, mx.value
            g = jnp.maximum(
                mx.grad_norm,
                _solver.projected_slope(slope_p(x, P, th), r.at_lower, r.at_upper),
            )
            status = solver_status(r.converged & mx.converged, x, P, loss)
            edge = r.at_lower | r.at_upper | mx.at_lower | mx.at_upper
            status = jnp.where((status == CONVERGED) & edge, AT_BOUND, status)
            status = jnp.where(ok & ok_x, status, INFEASIBLE)
            iters = r.iterations + mx.iterations
        elif mode == "fixed_n":
            p_hi = jnp.minimum(hi, jnp.exp(lc - _LOG_K - ln))
            ok = lo <= p_hi
            p_hi = jnp.where(ok, p_hi, lo + 1.0)

            def g_of_p(P, thn):
                return loss_at(thn[1], P, thn[0])

            m = _solver.minimize_scalar(
                g_of_p, (th, ln), lo, p_hi, num_grid=num_grid, max_steps=max_steps
            )
            x, P, loss, g = ln, m.x, m.value, m.grad_norm
            status = solver_status(m.converged, P, loss)
            edge = m.at_lower | m.at_upper
            status = jnp.where((status == CONVERGED) & edge, AT_BOUND, status)
            status = jnp.where(ok, status, INFEASIBLE)
            iters = m.iterations
        else:  # "menu_n": N fixed, the best menu precision (nothing to solve)

            def at(b):
                ok = x_max(b, th) >= ln
                loss = loss_at(ln, b, th)
                status = solver_status(jnp.ones((), bool), loss)
                status = jnp.where(ok, status, INFEASIBLE)
                return ln, b, loss, status, jnp.zeros((), jnp.int32), jnp.zeros_like(lc)

            x, P, loss, status, iters, g = best_of_menu(jax.vmap(at)(bits))
        y = lc - _LOG_K - x - jnp.log(P)
        return x, y, P, loss, status.astype(jnp.int32), iters, g

    return jax.vmap(one)(params, log_c, bits, fixed, post, log_n, lo_bits, hi_bits)


def _best_bits(p, lo, hi, tie, max_steps):
    """argmax over P in [lo, hi] of ``r(P) / P`` for the law's retention ``r``.

    ``d/dP log(r(P)/P) = 0`` is ``P sum_x (1/gamma_x) / (exp(P/gamma_x) - 1) = 1``
    over the parts trained in P bits (Kumar 2024 Eq. 7 / App. E.2.3 Eq. 28, which
    write it with one averaged gamma); the left side falls from 3 to 0, so the root
    is unique. Differentiable in the gammas and the bounds.
    """
    all_gammas = (p.gamma_w, p.gamma_a, p.gamma_kv)
    gammas = tuple(g for g, on in zip(all_gammas, tie, strict=True) if on)

    def resid(P, gs):  # increasing in P
        return 1.0 - sum((P / g / jnp.expm1(P / g) for g in gs), jnp.zeros_like(P))

    pts = jnp.linspace(lo, hi, 10)[1:-1]
    return _solver.implicit_root(resid, gammas, lo, hi, pts, max_steps=max_steps)


def _nested_bits(solve_x, loss_at, th, lo, hi, num_grid, max_steps):
    """argmin over P in [lo, hi] of ``min_N L`` for a law of unknown structure.

    The profile's slope is the partial ``dL/dP`` at ``N*(P)`` (envelope theorem),
    so its Newton iteration needs only first derivatives of the inner solution;
    one inner solve gives both the profile and its slope.
    """

    def profile(P, th):
        return value_and_slope(P, th)[0]

    def value_and_slope(P, th):
        x = solve_x(P, th)[0].x
        return loss_at(x, P, th), jax.grad(loss_at, argnums=1)(x, P, th)

    return _solver.minimize_scalar(
        profile,
        th,
        lo,
        hi,
        num_grid=num_grid,
        max_steps=max_steps,
        value_and_slope=value_and_slope,
    )


#: Lanes per compiled call: every batch is padded to a multiple of this and solved
#: chunk by chunk, so one compilation of the solver serves every batch size (only
#: the cheap :func:`_chunks` and :func:`_finish` are compiled per shape).
_CHUNK = 128
#: The inputs' rules; ``safe`` values keep masked lanes finite.
_BITS = POSITIVE._replace(safe=16.0)
_RULES = {
    "compute_flops": POSITIVE._replace(safe=1e20),
    "bits": _BITS,
    "n_params": POSITIVE,
    "weight_bits": _BITS,
    "activation_bits": _BITS,
    "kv_cache_bits": _BITS,
    "post_train_bits": POSITIVE._replace(finite=False, safe=math.inf),
    "min_bits": POSITIVE,
    "max_bits": POSITIVE._replace(safe=32.0),
}


@partial(jax.jit, static_argnames=("menu_bits",))
def _chunks(params, arrays, menu_bits):
    """The kernel's arguments, padded and cut into chunks of ``_CHUNK`` lanes.

    Invalid lanes hold their rules' safe values and are flagged afterwards.
    """
    c, b, n, *parts, post, lo, hi = arrays
    if menu_bits is not None:
        b = jnp.broadcast_to(jnp.asarray(menu_bits, c.dtype), (c.size, len(menu_bits)))
    args = (params, jnp.log(c), b, tuple(parts), post, jnp.log(n), lo, hi)
    size = c.size
    pad = (-size) % _CHUNK if size else _CHUNK

    def padded(v):
        fill = v[:1] if size else jnp.ones((1, *v.shape[1:]), v.dtype)
        return jnp.concatenate([v, jnp.broadcast_to(fill, (pad, *v.shape[1:]))])

    args = jax.tree_util.tree_map(padded, args)
    return [
        jax.tree_util.tree_map(lambda v, i=i: v[i : i + _CHUNK], args)
        for i in range(0, size + pad, _CHUNK)
    ]


@partial(jax.jit, static_argnames=("shape",))
def _finish(chunks, valid, c, shape):
    """Concatenate the chunks' solutions into an :class:`AllocationResult`."""
    size = c.size
    x, y, P, loss, status, iters, gnorm = jax.tree_util.tree_map(
        lambda *vs: jnp.concatenate(vs)[:size], *chunks
    )
    cost = jnp.exp(_LOG_K + x + y + jnp.log(P))
    violation = jnp.abs(cost - c) / c
    return assemble(
        status,
        jnp.exp(x),
        jnp.exp(y),
        loss,
        cost,
        iters,
        gnorm,
        violation,
        valid=valid,
        shape=shape,
        bits=P,
    )


def precision_optimal(
    params: _law.PrecisionParams,
    compute_flops: ArrayLike,
    *,
    bits: ArrayLike | None = None,
    menu: Sequence[str | float] | None = None,
    n_params: ArrayLike | None = None,
    weight_bits: ArrayLike | None = None,
    activation_bits: ArrayLike | None = None,
    kv_cache_bits: ArrayLike | None = None,
    post_train_bits: ArrayLike = math.inf,
    min_bits: ArrayLike = 1.0,
    max_bits: ArrayLike = 32.0,
    law: Callable | None = None,
    num_grid: int = 12,
    max_steps: int = 48,
) -> AllocationResult:
    """Compute-optimal parameters, tokens and training precision (Kumar et al. 2024).

    Minimizes Kumar's unified loss (:func:`jscale.laws.precision.loss`) subject to
    the paper's cost model ``C = (6/16) N D P`` (Sec. 4.3, Eq. 5): 6ND FLOPs at
    16 bits, linear in the training precision ``P``. The training precision is

    - free (default): continuous ``P`` in ``[min_bits, max_bits]``, jointly with
      N and D (Sec. 4.3.2: the optimum does not depend on the budget);
    - ``bits``: fixed (Sec. 4.3.1: lower precision calls for more parameters);
    - ``menu``: the best of a discrete set, e.g. ``("bf16", "fp8", "int4")``
      (names from :data:`jscale.accounting.PRECISIONS`, or numbers of bits),
      each solved at fixed precision and the lowest loss kept per element.

    With ``n_params`` the model size is fixed in advance and only D and P are
    chosen (Sec. 4.3.3: the optimal precision then grows about logarithmically
    with compute), P free or from ``menu``. The weights, activations and KV
    cache are all trained in ``P`` bits (the paper's low-precision training);
    give ``weight_bits``, ``activation_bits`` or ``kv_cache_bits`` to hold
    that part at a fixed precision instead (e.g. ``kv_cache_bits=16``); the cost
    still scales with ``P``. ``post_train_bits`` adds the law's post-training
    quantization penalty (Sec. 3 form with ``N_eff``, without Eq. 9's
    robustification factor, whose constants App. K does not give; it should be
    below the training precision, as the paper assumes).

    D is eliminated by the budget and the rest solved as 1-D problems in
    ``log N`` and ``P`` seeded by the closed forms (see the module docstring);
    batched over the budgets, the inputs and any leading axes of ``params``'
    leaves, through one compiled solver for any batch size (fixed-size chunks).
    Differentiable in ``params``, ``compute_flops`` and the precision inputs
    (implicit differentiation; a menu's choice is held).

    Args:
      params: the law's constants (:class:`jscale.laws.precision.PrecisionParams`,
        or whatever ``law`` takes).
      compute_flops: budgets C in 16-bit-equivalent FLOPs (> 0), any shape.
      bits: a fixed training precision (> 0), broadcastable; excludes ``menu``.
      menu: a static sequence of precisions to choose from; excludes ``bits``.
      n_params: a fixed model size N (> 0), broadcastable.
      weight_bits, activation_bits, kv_cache_bits: ``None`` (trained in ``P``
        bits) or a fixed precision (> 0) for that part.
      post_train_bits: bits the weights are quantized to after training (> 0;
        the default ``inf`` means none).
      min_bits, max_bits: the searched precision range for a free ``P``
        (``0 < min_bits < max_bits``); must lie where the law is defined.
      law: ``law(params, n_params, n_tokens, weight_bits,
        activation_bits, kv_cache_bits, post_train_bits)``; default
        :func:`jscale.laws.precision.loss` (with closed-form seeds). Another law
        of the same inputs is scanned instead; it must be hashable (static).
      num_grid: scan points over the precision range (and over ``log N`` for a
        custom ``law``).
      max_steps: the Newton step cap of each 1-D solve.

    Returns:
      An :class:`AllocationResult` with ``bits`` (the training precision P) and
      ``compute_flops = (6/16) N D P``, the bit-scaled cost (equal to the budget
      up to rounding; ``violation`` is the relative difference). ``grad_norm``
      is the largest projected partial derivative of the loss in ``log N`` and
      in ``P`` at the solution. ``status`` is ``AT_BOUND`` where P (or N) sits at
      the edge of its searched range: at ``min_bits`` or ``max_bits``, or at one
      parameter or one token.

    Raises:
      ValueError: for concrete invalid inputs (naming the argument), conflicting
        options, an unknown menu name, or a budget too small for one parameter
        trained on one token at the lowest precision allowed.

    Examples:
      >>> from jscale.laws import precision
      >>> p = precision.KUMAR2024.params
      >>> r = precision_optimal(p, 1e23)  # App. K constants without offsets
      >>> round(float(r.bits), 2), f"{float(r.n_params):.3g}"
      (3.47, '8.73e+10')
      >>> r = precision_optimal(p, 1e23, menu=("bf16", "fp8", "int4"))
      >>> float(r.bits), f"{float(r.compute_flops):.3g}"
      (4.0, '1e+23')
    """
    if bits is not None and menu is not None:
        raise ValueError("give either bits (a fixed precision) or menu, not both")
    if bits is not None and n_params is not None:
        raise ValueError(
            "bits and n_params together leave nothing to choose: D = C / (6/16 N P)"
        )
    given = dict(
        zip(_PARTS, (weight_bits, activation_bits, kv_cache_bits), strict=True)
    )
    menu_bits = None
    if menu is not None:
        if isinstance(menu, str) or len(menu) == 0:
            raise ValueError(
                "menu must be a non-empty sequence of precisions, e.g. "
                "('bf16', 'fp8', 'int4')"
            )
        menu_bits = tuple(_bits_of(m) for m in menu)
    # Absent options take values that leave the kernel's mode unchanged.
    one = jnp.ones((), asfloat(compute_flops).dtype)
    values = {
        "compute_flops": compute_flops,
        "bits": one if bits is None else bits,
        "n_params": one if n_params is None else n_params,
        **{k: 16.0 * one if v is None else v for k, v in given.items()},
        "post_train_bits": post_train_bits,
        "min_bits": min_bits,
        "max_bits": max_bits,
    }
    batch = prepare(params, {k: (v, _RULES[k]) for k, v in values.items()})
    _check_bits_range(min_bits, max_bits)
    c, *_, lo, hi = batch.arrays
    valid = batch.valid & (hi > lo)
    if bits is not None:
        mode = "fixed"
    elif menu is not None:
        mode = "menu" if n_params is None else "menu_n"
    else:
        mode = "free" if n_params is None else "fixed_n"
    tie = tuple(v is None for v in given.values())
    log_loss = _law_log_loss if law is None else _GenericLoss(law)
    solved = [
        _kernel(log_loss, mode, tie, law is None, num_grid, max_steps, *args)
        for args in _chunks(batch.params, batch.arrays, menu_bits)
    ]
    out = _finish(solved, valid, c, batch.shape)
    raise_if_infeasible(out.status, partial(_infeasible, values, mode, menu_bits))
    return out


def _check_bits_range(min_bits, max_bits) -> None:
    """Raise now where concrete ``max_bits <= min_bits``."""
    lo_c, hi_c = asfloat(min_bits), asfloat(max_bits)
    if _checks.is_concrete(lo_c) and _checks.is_concrete(hi_c):
        with jax.ensure_compile_time_eval():
            bad = np.asarray(
                jnp.broadcast_to(
                    ~(hi_c > lo_c),
                    jnp.broadcast_shapes(jnp.shape(lo_c), jnp.shape(hi_c)),
                )
            )
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"max_bits must be > min_bits; got max_bits = {pick(hi_c, idx):g} "
                f"and min_bits = {pick(lo_c, idx):g}"
                + (f" at index {idx}" if bad.ndim else "")
            )


def _infeasible(named, mode, menu_bits, idx) -> str:
    c = pick(named["compute_flops"], idx)
    if mode == "fixed":
        least = f"(6/16) * bits = {6 / 16 * pick(named['bits'], idx):.6g}"
    elif mode in ("menu", "menu_n"):
        least = f"(6/16) * {min(menu_bits):g} bits"
    else:
        least = f"(6/16) * min_bits = {6 / 16 * pick(named['min_bits'], idx):.6g}"
    if mode in ("fixed_n", "menu_n"):
        least += f" * n_params = {pick(named['n_params'], idx):.6g}"
        what = "one token for the fixed model"
    else:
        what = "one parameter trained on one token"
    return (
        f"compute_flops = {c:.6g} is infeasible: it must be at least {least} ({what})"
    )
