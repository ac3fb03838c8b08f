"""The engine that solves a composed planning problem, one configuration per lane.

A problem (see :mod:`.parts` and :mod:`.planning`) has decisions ``u`` (the size:
``log N`` or ``log d_model``), the tokens ``D`` and optionally ``y`` (experts,
granularity or training bits); a loss with its modifiers; costs; and constraints.
The engine uses the problem's structure rather than a general-purpose solver:

- **Budget mode** (minimize the loss). The loss falls in ``D``, so the tightest
  budget binds and eliminates ``D``: ``D_b(u) = min_k (budget_k - inference) /
  FLOPs per token`` over the budgets given (compute, lifetime compute, a wall-clock
  or energy cap on training FLOPs). A cap on ``D`` itself (``max_epochs``) becomes
  a lower bound on ``u`` (a larger model leaves fewer tokens), memory and the
  bounds on N bound ``u`` from above or below: each bound is the root of a
  monotone function of ``u``. What is left is one smooth (piecewise, with known
  kinks) function of ``u`` on an interval.
- **Target mode** (minimize lifetime compute, cost or energy at a target loss). For
  each ``u`` the tokens are the root of ``L(u, D) = target`` in ``log D``, and the
  cost ``w_train FLOPs/token x D + w_inf 2 N T`` is minimized over ``u``; the
  target's reach (with at most ``max_epochs U`` tokens) bounds ``u`` from below.
- The second decision ``y`` is an outer 1-D search on the profile ``min_u``.

Every 1-D search is :func:`jscale._solver.minimize_scalar` (sign scan of the slope,
the lowest local minimum, safeguarded Newton) and every bound is
:func:`jscale._solver.implicit_root`, so the optimum is differentiable in every
input by the implicit function theorem (and at an active bound, in the bound).
That gives the **shadow prices**: the derivative of the optimal objective with
respect to the log of each resource, by forward-mode differentiation of the whole
solve (``jax.jacfwd``), and the **binding** constraints from which bound or budget
is active at the solution.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import _solver
from ._common import (
    AT_BOUND,
    CONVERGED,
    INFEASIBLE,
    KINK_DELTA,
    LOG_D_MAX,
    MAX_STEPS,
    NONFINITE,
)
from .parts import Family, effective_tokens
from .results import BINDING

_BIT = {name: 1 << i for i, name in enumerate(BINDING)}
#: Steps of the bound roots (safeguarded Newton on a monotone function).
_ROOT_STEPS = 48
#: Penalty slope (loss per unit of log-size infeasibility) that steers the outer
#: search back into the region where the inner problem is feasible.
_PENALTY = 10.0


class Structure(NamedTuple):
    """Which parts a problem has (static: one compilation per structure)."""

    family: Family
    budget: bool = True  # a compute budget (training, or lifetime with inference)
    train_cap: bool = False  # a wall-clock or energy cap on training FLOPs
    inference: bool = False
    repeat: bool = False  # a limit on unique tokens
    epochs: bool = False
    memory: bool = False
    kv: bool = False  # memory holds a KV cache
    n_min: bool = False
    n_max: bool = False
    outer: bool = False  # the second decision is free (else fixed at y_lo)
    target: bool = False
    num_grid: int = 8
    outer_grid: int = 8
    max_steps: int = 48


class Theta(NamedTuple):
    """One configuration's numbers (all logs unless said otherwise)."""

    p: Any  # the law's constants
    aux: tuple  # the family's constants
    log_c: jax.Array  # compute budget (training; lifetime with inference)
    log_cw: jax.Array  # cap on training FLOPs (wall clock, energy)
    log_t2: jax.Array  # log(2 T), inference tokens
    log_u: jax.Array  # unique tokens
    log_q: jax.Array  # quality
    r_d: jax.Array  # R_D* of the repetition discount (not a log)
    log_ecap: jax.Array  # max epochs
    log_mem: jax.Array  # memory cap in values
    log_ctx: jax.Array  # KV-cache tokens
    log_nmin: jax.Array
    log_nmax: jax.Array
    y_lo: jax.Array
    y_hi: jax.Array
    target: jax.Array  # the loss to reach (not a log)
    log_w_train: jax.Array  # cost per training FLOP
    log_w_inf: jax.Array  # cost per inference FLOP


class Solution(NamedTuple):
    """One configuration's answer (see :func:`solve`)."""

    u: jax.Array
    y: jax.Array
    log_n: jax.Array
    log_d: jax.Array
    loss: jax.Array
    objective: jax.Array
    status: jax.Array
    iterations: jax.Array
    grad_norm: jax.Array
    violation: jax.Array
    binding: jax.Array
    prices: jax.Array


# ------------------------------------------------------------- pieces of the model


def log_memory(s: Structure, th: Theta, u, y):
    """``log`` of the values held: total parameters plus the KV cache."""
    f = s.family
    log_w = f.log_total(u, y, th.aux)
    if not s.kv:
        return log_w
    return jnp.logaddexp(log_w, f.log_kv(u, y, th.aux) + th.log_ctx)


def _budget_pieces(s: Structure, th: Theta, u, y):
    """``log D`` allowed by each budget at size ``u`` (a list; the least binds)."""
    f = s.family
    log_fpt = f.log_fpt(u, y, th.aux)
    pieces = []
    if s.budget:
        log_c = th.log_c
        if s.inference:
            # log(C - 2 N T), finite (and so are its derivatives) even past D = 0.
            tiny = jnp.finfo(th.log_c.dtype).tiny
            share = f.log_n(u, y, th.aux) + th.log_t2 - th.log_c
            log_c = th.log_c + jnp.log(-jnp.expm1(jnp.minimum(share, -tiny)))
        pieces.append(log_c - log_fpt)
    if s.train_cap:
        pieces.append(th.log_cw - log_fpt)
    return pieces


def _log_tokens(s: Structure, th: Theta, u, y):
    """Budget mode: the tokens the tightest budget (and ``max_epochs``) allows."""
    pieces = _budget_pieces(s, th, u, y)
    if s.epochs:
        pieces.append(th.log_ecap + th.log_u)
    log_d = pieces[0]
    for piece in pieces[1:]:
        # At a tie the earlier piece (a budget) carries the derivative: the
        # epochs bound on u makes the budget the piece that applies beyond it.
        log_d = jnp.where(log_d <= piece, log_d, piece)
    return log_d


def _loss(s: Structure, th: Theta, u, y, log_d):
    f = s.family
    log_u = th.log_u if s.repeat else None
    log_d_law, log_u_law = effective_tokens(f, log_d, log_u, th.log_q, th.r_d)
    return f.log_loss(th.p, u, y, th.aux, log_d_law, log_u_law)


def _log_dmax(s: Structure, th: Theta):
    cap = jnp.asarray(LOG_D_MAX, th.log_c.dtype)
    return jnp.minimum(cap, th.log_ecap + th.log_u) if s.epochs else cap


def _target_tokens(s: Structure, th: Theta, u, y, max_steps):
    """Target mode: ``log D`` with ``L(u, D) = target`` (the loss falls in D)."""
    lo = jnp.zeros_like(th.log_c)
    # Past the most tokens allowed, so that the root is interior (and its
    # derivative true) at the reach bound u_reach, which enforces that limit.
    hi = _log_dmax(s, th) + 1.0
    r = _solver.implicit_root(
        _TargetGap(s), (th, u, y), lo, hi, jnp.zeros((0,), lo.dtype),
        max_steps=max_steps,
    )  # fmt: skip
    return r.x


class _TargetGap(NamedTuple):
    s: Structure

    def __call__(self, log_d, arg):
        th, u, y = arg
        return th.target - _loss(self.s, th, u, y, log_d)


def _log_cost(s: Structure, th: Theta, u, y, log_d):
    """Target mode's objective: ``log(w_train FLOPs/token D + w_inf 2 N T)``."""
    f = s.family
    train = th.log_w_train + f.log_fpt(u, y, th.aux) + log_d
    if not s.inference:
        return train
    return jnp.logaddexp(train, th.log_w_inf + f.log_n(u, y, th.aux) + th.log_t2)


# --------------------------------------------------------------------- the bounds


class _Gap(NamedTuple):
    """A monotone increasing function of ``u`` whose root is a bound."""

    s: Structure
    kind: str

    def __call__(self, u, arg):
        th, y = arg
        s, f = self.s, self.s.family
        if self.kind == "n_min":
            return f.log_n(u, y, th.aux) - th.log_nmin
        if self.kind == "n_max":
            return f.log_n(u, y, th.aux) - th.log_nmax
        if self.kind == "memory":
            return log_memory(s, th, u, y) - th.log_mem
        if self.kind == "one_token":  # D >= 1 under the tightest budget
            return _one_token_gap(s, th, u, y)
        if self.kind == "epochs":  # the budgets leave at most max_epochs U tokens
            return (
                th.log_ecap + th.log_u - jnp.min(jnp.stack(_budget_pieces(s, th, u, y)))
            )
        if self.kind == "reach":  # the target is reachable with the most tokens
            return th.target - _loss(s, th, u, y, _log_dmax(s, th))
        if self.kind == "kink":  # lifetime budget = training cap
            return f.log_n(u, y, th.aux) + th.log_t2 - _kink_level(th)
        raise ValueError(self.kind)


def _one_token_gap(s: Structure, th: Theta, u, y):
    """``max_k log(spend at D = 1) - log budget_k``, increasing in ``u``."""
    f = s.family
    log_fpt = f.log_fpt(u, y, th.aux)
    gaps = []
    if s.budget:
        spend = log_fpt
        if s.inference:
            spend = jnp.logaddexp(log_fpt, f.log_n(u, y, th.aux) + th.log_t2)
        gaps.append(spend - th.log_c)
    if s.train_cap:
        gaps.append(log_fpt - th.log_cw)
    gap = gaps[0]
    for g in gaps[1:]:
        gap = jnp.maximum(gap, g)
    return gap


def _kink_level(th: Theta):
    """``log(C - C_w)``: where the lifetime budget and the training cap cross."""
    gap = jnp.maximum(th.log_c - th.log_cw, 1e-30)
    return th.log_c + jnp.log(-jnp.expm1(-gap))


def _root(s, kind, th, y, lo, hi):
    r = _solver.implicit_root(
        _Gap(s, kind), (th, y), lo, hi, jnp.zeros((0,), lo.dtype),
        max_steps=_ROOT_STEPS,
    )  # fmt: skip
    return r.x


def _bound_kinds(s: Structure):
    """The bounds on ``u`` a structure has: ``(lower, upper)`` lists of ``(kind,
    binding name)``, the family's own range first (kind and name ``None``)."""
    lows, highs = [(None, None)], [(None, None)]
    if s.n_min:
        lows.append(("n_min", "n_min"))
    if s.n_max:
        highs.append(("n_max", "n_max"))
    if s.memory:
        highs.append(("memory", "memory"))
    if s.target:
        lows.append(("reach", "target_loss"))
    else:
        highs.append(("one_token", "compute"))
        if s.epochs:
            lows.append(("epochs", "max_epochs"))
    return lows, highs


def _bounds(s: Structure, th: Theta, y):
    """The candidate lower and upper bounds on ``u`` at ``y`` (as
    :func:`_bound_kinds` lists them): the tightest of each is the interval."""
    f = s.family
    dtype = th.log_c.dtype
    u_lo = jnp.asarray(f.u_min, dtype)
    u_hi = jnp.asarray(f.u_max, dtype)

    def values(kinds, edge):
        return [
            edge if kind is None else _root(s, kind, th, y, u_lo, u_hi)
            for kind, _ in kinds
        ]

    lows, highs = _bound_kinds(s)
    return values(lows, u_lo), values(highs, u_hi)


def _tightest(cands, pick):
    values = jnp.stack(cands)
    return pick(values), values


# ------------------------------------------------------------------ the inner solve


class _Inner(NamedTuple):
    """The objective along ``u`` at fixed ``y`` (a static callable)."""

    s: Structure

    def __call__(self, u, arg):
        th, y = arg
        s = self.s
        if s.target:
            log_d = _target_tokens(s, th, u, y, s.max_steps)
            return _log_cost(s, th, u, y, log_d)
        return _loss(s, th, u, y, _log_tokens(s, th, u, y))


def _kinks(s: Structure, th: Theta, y, lo, hi):
    """Scan points around the kinks of the objective along ``u``."""
    dtype = lo.dtype
    if not (s.budget and s.train_cap and s.inference) or s.target:
        return jnp.zeros((0,), dtype)
    k = _root(s, "kink", th, y, lo, hi)
    return _solver.kink_points(k[None], KINK_DELTA[np.dtype(dtype)])


def _inner(s: Structure, th: Theta, y):
    """``min_u`` at fixed ``y``: the solution and the bounds that shaped it."""
    lows, highs = _bounds(s, th, y)
    lo, lo_values = _tightest(lows, jnp.max)
    hi, hi_values = _tightest(highs, jnp.min)
    gap = jnp.maximum(lo - hi, 0.0)  # > 0: infeasible at this y
    hi_eff = jnp.maximum(hi, lo)
    m = _solver.minimize_scalar(
        _Inner(s), (th, y), lo, hi_eff, _kinks(s, th, y, lo, hi_eff),
        num_grid=s.num_grid, max_steps=s.max_steps,
    )  # fmt: skip
    # A bound clipped to the size range hides an infeasible constraint: measure
    # each at the answer (log units).
    gap = gap + _violation(s, th, m.x, y)
    return m, lo, hi, gap, lo_values, hi_values


def _violation(s: Structure, th: Theta, u, y):
    """The largest violation of a constraint at ``(u, y)``, in log units (>= 0)."""
    f = s.family
    parts = [jnp.zeros_like(u)]
    if s.memory:
        parts.append(log_memory(s, th, u, y) - th.log_mem)
    if s.n_max:
        parts.append(f.log_n(u, y, th.aux) - th.log_nmax)
    if s.n_min:
        parts.append(th.log_nmin - f.log_n(u, y, th.aux))
    if s.target:
        reach = _loss(s, th, u, y, _log_dmax(s, th)) - th.target
        parts.append(reach / jnp.abs(th.target))
    else:
        parts.append(_one_token_gap(s, th, u, y))
    return jnp.max(jnp.stack(parts))


class _Profile(NamedTuple):
    """The outer objective: ``min_u`` at ``y``, plus a penalty where infeasible."""

    s: Structure

    def __call__(self, y, th):
        m, _, _, gap, *_ = _inner(self.s, th, y)
        return m.value + _PENALTY * gap


# ---------------------------------------------------------------------- the solve


def _solve_value(s: Structure, th: Theta):
    """The whole solve for one configuration: ``(y, inner results, outer)``."""
    if s.outer:
        mo = _solver.minimize_scalar(
            _Profile(s), th, th.y_lo, th.y_hi,
            num_grid=s.outer_grid, max_steps=s.max_steps,
        )  # fmt: skip
        y = mo.x
    else:
        mo = None
        y = th.y_lo
    return y, _inner(s, th, y), mo


def _one(s: Structure, price_fields: tuple[str, ...], th: Theta) -> Solution:
    # Shadow prices: d objective / d log resource, through the implicit solves,
    # by forward mode around the one solve (its answer comes back as ``aux``).
    def solve_at(offsets):
        moved = th._replace(
            **{
                name: getattr(th, name) + offsets[i]
                for i, name in enumerate(price_fields)
            }
        )
        out = _solve_value(s, moved)
        return out[1][0].value, out

    zeros = jnp.zeros((len(price_fields),), th.log_c.dtype)
    if price_fields:
        prices, (y, inner, mo) = jax.jacfwd(solve_at, has_aux=True)(zeros)
    else:
        prices, (y, inner, mo) = zeros, _solve_value(s, th)
    m, lo, hi, gap, lo_values, hi_values = inner
    lows, highs = _bound_kinds(s)
    u = m.x
    f = s.family
    log_n = f.log_n(u, y, th.aux)
    if s.target:
        log_d = _target_tokens(s, th, u, y, s.max_steps)
        loss = _loss(s, th, u, y, log_d)
    else:
        log_d = _log_tokens(s, th, u, y)
        loss = m.value
    # Status: the inner (and outer) solve, feasibility, finiteness.
    converged = m.converged if mo is None else m.converged & mo.converged
    iterations = m.iterations if mo is None else m.iterations + mo.iterations
    grad_norm = m.grad_norm if mo is None else jnp.maximum(m.grad_norm, mo.grad_norm)
    status = jnp.where(converged, CONVERGED, MAX_STEPS)
    finite = jnp.isfinite(loss) & jnp.isfinite(log_d) & jnp.isfinite(u)
    status = jnp.where(finite, status, NONFINITE)
    at_family_edge = (m.at_lower & (lo_values[0] >= lo)) | (
        m.at_upper & (hi_values[0] <= hi)
    )
    status = jnp.where((status == CONVERGED) & at_family_edge, AT_BOUND, status)
    eps = float(jnp.finfo(lo.dtype).eps)
    feasible = gap <= max(1e-8, 64 * eps) * jnp.maximum(1.0, jnp.abs(lo))
    if s.target:
        reach = _loss(s, th, u, y, log_d) - th.target
        feasible &= reach <= 1e-4 * jnp.abs(th.target)
    status = jnp.where(feasible, status, INFEASIBLE).astype(jnp.int32)
    # Binding constraints.
    binding = jnp.zeros((), jnp.int32)
    tol = 1e-6 * jnp.maximum(1.0, jnp.abs(u))
    for value, (_, name) in zip(lo_values, lows, strict=True):
        if name is not None and name != "target_loss":
            hit = m.at_lower & (jnp.abs(value - lo) <= tol)
            binding |= jnp.where(hit, _BIT[name], 0)
    for value, (_, name) in zip(hi_values, highs, strict=True):
        if name is not None and name != "compute":
            hit = m.at_upper & (jnp.abs(value - hi) <= tol)
            binding |= jnp.where(hit, _BIT[name], 0)
    if s.target:
        binding |= _BIT["target_loss"]
    else:
        pieces = _budget_pieces(s, th, u, y)
        names = (["compute"] if s.budget else []) + (
            ["training_cap"] if s.train_cap else []
        )
        if s.epochs:
            pieces.append(th.log_ecap + th.log_u)
            names.append("max_epochs")
        for piece, name in zip(pieces, names, strict=True):
            hit = piece <= log_d + 1e-6 * jnp.maximum(1.0, jnp.abs(log_d))
            binding |= jnp.where(hit, _BIT[name], 0)
    if mo is not None:
        binding |= jnp.where(mo.at_upper, _BIT["decision_max"], 0)
        binding |= jnp.where(mo.at_lower, _BIT["decision_min"], 0)
    return Solution(
        u, y, log_n, log_d, loss, m.value, status, iterations, grad_norm,
        gap, binding, prices,
    )  # fmt: skip


@partial(jax.jit, static_argnames=("s", "price_fields"))
def solve(s: Structure, price_fields: tuple[str, ...], th: Theta) -> Solution:
    """Solve every configuration of ``th`` (leaves with a leading batch axis).

    ``price_fields`` names the :class:`Theta` fields (logs of resources) whose
    shadow prices to compute, ``d objective / d field``.
    """
    return jax.vmap(partial(_one, s, price_fields))(th)


__all__ = ["Solution", "Structure", "Theta", "log_memory", "solve"]
