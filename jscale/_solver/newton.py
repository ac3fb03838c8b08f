"""Damped Newton (Levenberg-Marquardt) minimization of one small problem in a box.

:func:`damped_newton` minimizes a smooth objective ``f(z)`` of a few coordinates
(``m`` of them, typically 2 to 8) inside a box ``lower <= z <= upper``. It is
written for one problem; callers ``jax.vmap`` it over many (every start of a
multi-start fit, every bootstrap resample), and since the loop is bounded one
compilation serves every batch of the same shape.

A step solves one ``m x m`` system ``(H + lam D) s = -g`` (``D`` the magnitude of
``H``'s diagonal; an unrolled Cholesky factorization) and evaluates the objective
once at the trial point ``clip(z + s, lower, upper)``, which is accepted if it is
lower: the damping ``lam`` shrinks (divided by 5) after a success and grows (times
4) after a failure, Levenberg-Marquardt's rule. There is no line search, so no
element of a vmapped batch waits on another's.

Curvature: the caller's ``fn(z, args, exact)`` returns the objective, its gradient
and a curvature matrix. For the first ``exact_after`` steps ``exact`` is 0 and the
caller may return a majorizer of the Hessian (Gauss-Newton, or the
iteratively-reweighted least-squares weights of a robust loss: every step a
descent step, far from a minimum); after that ``exact`` is 1 and it returns the
exact Hessian (quadratic convergence). Where ``exact_after >= max_steps``,
``exact`` is the Python value ``False``, so the caller can skip forming second
derivatives at all.

Convergence is scaled to the objective: the problem has converged when the
Newton decrement ``g^T H^-1 g / 2`` (the decrease the quadratic model predicts,
an estimate of the distance to the floor of the objective) is at most
``ftol * (|f| + floor)``. Only exact-Hessian steps may declare convergence (a
majorizer overstates the curvature, which would understate the decrement), unless
the damping has grown past ``1e16``: then no further decrease is representable and
the problem has stalled.

Bounds: a coordinate at a bound whose gradient points outwards is held fixed
(its row and column of ``H`` become the identity's, its gradient 0).

Status codes come from :mod:`jscale._status`: ``CONVERGED``, ``MAX_STEPS``,
``NONFINITE`` (the objective is not finite at the start) and ``STALLED``; while
the loop runs the status is :data:`RUNNING`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from .. import _status

#: The status of a problem still iterating (a loop marker, never reported: every
#: problem leaves the loop with a code from :mod:`jscale._status`).
RUNNING = -1

#: Damping beyond which a problem counts as stalled.
_LAM_MAX = 1e16


class NewtonState(NamedTuple):
    """The state of one problem (leading axes for a batch).

    Attributes:
      z: the current point, ``(m,)``.
      f: the objective there (``inf`` before the first evaluation).
      g: its gradient, ``(m,)``.
      H: the curvature used there, ``(m, m)``.
      lam: the damping.
      decrement: the Newton decrement at ``z`` (``inf`` where unknown).
      status: int32, :data:`RUNNING` while iterating, then a :mod:`jscale._status`
        code.
      steps: int32, trial steps taken (accepted or rejected).
    """

    z: jax.Array
    f: jax.Array
    g: jax.Array
    H: jax.Array
    lam: jax.Array
    decrement: jax.Array
    status: jax.Array
    steps: jax.Array


def newton_start(z0: ArrayLike) -> NewtonState:
    """The state before the first evaluation: the first step evaluates ``z0``.

    ``z0`` has shape ``(m,)``, or ``(..., m)`` for a batch of problems.
    """
    z0 = jnp.asarray(z0)
    batch, m, dt = z0.shape[:-1], z0.shape[-1], z0.dtype
    return NewtonState(
        z0,
        jnp.full(batch, jnp.inf, dt),
        jnp.zeros((*batch, m), dt),
        jnp.zeros((*batch, m, m), dt),
        jnp.full(batch, 1e-3, dt),
        jnp.full(batch, jnp.inf, dt),
        jnp.full(batch, RUNNING, jnp.int32),
        jnp.zeros(batch, jnp.int32),
    )


def cholesky_solve(A: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Solve ``A x = b`` for small SPD matrices ``(..., m, m)``, unrolled.

    Returns ``(x, ok)``; ``ok`` is False where ``A`` is not positive definite.
    """
    m = A.shape[-1]
    tiny = jnp.finfo(A.dtype).tiny
    L = [[None] * m for _ in range(m)]
    ok = jnp.ones(A.shape[:-2], bool)
    for j in range(m):
        s = A[..., j, j] - sum((L[j][q] ** 2 for q in range(j)), 0.0)
        ok = ok & (s > 0)
        L[j][j] = jnp.sqrt(jnp.maximum(s, tiny))
        for i in range(j + 1, m):
            L[i][j] = (
                A[..., i, j] - sum((L[i][q] * L[j][q] for q in range(j)), 0.0)
            ) / L[j][j]
    y = [None] * m
    for i in range(m):
        y[i] = (b[..., i] - sum((L[i][q] * y[q] for q in range(i)), 0.0)) / L[i][i]
    x = [None] * m
    for i in reversed(range(m)):
        x[i] = (y[i] - sum((L[q][i] * x[q] for q in range(i + 1, m)), 0.0)) / L[i][i]
    return jnp.stack(x, axis=-1), ok


def _damped(H, lam):
    d = jnp.diagonal(H, axis1=-2, axis2=-1)
    scale = jnp.abs(d) + 1e-9 * jnp.max(jnp.abs(d), axis=-1, keepdims=True)
    scale = jnp.maximum(scale, jnp.finfo(H.dtype).tiny)
    eye = jnp.broadcast_to(jnp.eye(H.shape[-1], dtype=H.dtype), H.shape)
    return H + (lam[..., None] * scale)[..., :, None] * eye


def _mask_active(H, active):
    eye = jnp.broadcast_to(jnp.eye(H.shape[-1], dtype=H.dtype), H.shape)
    keep = ~active
    Hm = jnp.where(keep[..., :, None] & keep[..., None, :], H, 0.0)
    return Hm + jnp.where(active[..., :, None], eye, 0.0)


def _active(z, g, lower, upper):
    """Coordinates at a bound with the gradient pushing outwards (held fixed)."""
    lower, upper = (jnp.broadcast_to(b, z.shape) for b in (lower, upper))
    return ((z <= lower) & (g > 0)) | ((z >= upper) & (g < 0))


def newton_decrement(
    z: jax.Array, g: jax.Array, H: jax.Array, lower: ArrayLike, upper: ArrayLike
) -> jax.Array:
    """Newton decrement ``g^T H^-1 g / 2`` over the coordinates not held at a bound.

    Infinite where ``H`` is not positive definite (not at a minimum yet). Leading
    axes allowed.
    """
    active = _active(z, g, lower, upper)
    g = jnp.where(active, 0.0, g)
    step, ok = cholesky_solve(_mask_active(H, active), g)
    return jnp.where(ok, jnp.abs(0.5 * jnp.sum(g * step, axis=-1)), jnp.inf)


def newton_step(
    fn: Callable,
    state: NewtonState,
    args: Any,
    lower: ArrayLike,
    upper: ArrayLike,
    *,
    ftol: ArrayLike,
    floor: ArrayLike = 0.0,
    max_steps: int,
    exact_after: int = 0,
) -> NewtonState:
    """One damped trial step of :func:`damped_newton` (arguments as there).

    A problem whose status is no longer :data:`RUNNING` is returned unchanged. A
    problem whose objective is still ``inf`` (not evaluated yet) takes a zero step,
    so its first trial evaluates the start itself.
    """
    st = state
    running = st.status < 0
    fresh = ~jnp.isfinite(st.f)
    active = _active(st.z, st.g, lower, upper)
    g = jnp.where(active, 0.0, st.g)
    step, ok = cholesky_solve(_damped(_mask_active(st.H, active), st.lam), -g)
    step = jnp.where((ok & ~fresh)[..., None], step, 0.0)
    z_t = jnp.clip(st.z + step, lower, upper)
    if exact_after >= max_steps:
        exact = False  # the majorizer only: no second derivatives are formed
        is_exact = jnp.zeros(st.steps.shape, bool)
    else:
        exact = (st.steps >= exact_after).astype(z_t.dtype)
        is_exact = exact > 0
    f_t, g_t, H_t = fn(z_t, args, exact)
    finite = (
        jnp.isfinite(f_t)
        & jnp.all(jnp.isfinite(g_t), -1)
        & jnp.all(jnp.isfinite(H_t), (-2, -1))
    )
    good = running & finite & ((f_t < st.f) | fresh) & (ok | fresh)
    z = jnp.where(good[..., None], z_t, st.z)
    f = jnp.where(good, f_t, st.f)
    g_new = jnp.where(good[..., None], g_t, st.g)
    H = jnp.where(good[..., None, None], H_t, st.H)
    lam = jnp.where(good, jnp.maximum(st.lam / 5.0, 1e-12), st.lam * 4.0)
    lam = jnp.where(running & ~fresh, lam, st.lam)
    dec = newton_decrement(z, g_new, H, lower, upper)
    dec = jnp.where(good, dec, st.decrement)
    steps = st.steps + running.astype(jnp.int32)
    small = dec <= ftol * (jnp.abs(f) + floor)
    stalled = lam > _LAM_MAX
    # An exact decrement is a trustworthy distance to the floor; the majorizer's
    # (larger curvature) understates it, so it only confirms a problem that can no
    # longer decrease the objective at all.
    converged = small & (is_exact | stalled)
    status = jnp.where(running & converged, _status.CONVERGED, st.status)
    status = jnp.where(running & fresh & ~finite, _status.NONFINITE, status)
    status = jnp.where((status < 0) & stalled, _status.STALLED, status)
    status = jnp.where((status < 0) & (steps >= max_steps), _status.MAX_STEPS, status)
    return NewtonState(z, f, g_new, H, lam, dec, status.astype(jnp.int32), steps)


def damped_newton(
    fn: Callable,
    z0: ArrayLike | NewtonState,
    args: Any,
    lower: ArrayLike,
    upper: ArrayLike,
    *,
    ftol: ArrayLike,
    floor: ArrayLike = 0.0,
    max_steps: int,
    exact_after: int = 0,
) -> NewtonState:
    """Minimize ``f`` over ``lower <= z <= upper`` by damped Newton steps.

    A bounded ``lax.while_loop`` of :func:`newton_step` for one problem; vmap it
    over many.

    Args:
      fn: ``fn(z, args, exact) -> (f, g, H)``: the objective at ``z`` ``(m,)``,
        its gradient ``(m,)`` and curvature ``(m, m)``; ``exact`` is a 0-d float
        array, 1.0 where the exact Hessian is wanted and 0.0 where a majorizer will
        do, or ``False`` (see the module docstring).
      z0: the start ``(m,)``, or a :class:`NewtonState` to continue from.
      args: passed to ``fn`` (e.g. observation weights; vmap over them).
      lower, upper: the box, ``(m,)`` (``-inf`` / ``inf`` for open sides).
      ftol: convergence tolerance relative to ``|f| + floor``.
      floor: an absolute floor added to ``|f|`` in the test, for objectives whose
        minimum is 0.
      max_steps: bound on the trial steps (static).
      exact_after: steps taken with the majorizer before exact ones (static).

    Returns:
      The final :class:`NewtonState`; its ``status`` says how it ended.

    Examples:
      >>> import jax.numpy as jnp
      >>> def fn(z, args, exact):  # (z0 - 1)^2 + 10 (z1 + 2)^2
      ...     g = jnp.stack([2 * (z[0] - 1), 20 * (z[1] + 2)])
      ...     return (z[0] - 1) ** 2 + 10 * (z[1] + 2) ** 2, g, jnp.diag(
      ...         jnp.array([2.0, 20.0]))
      >>> inf = jnp.full(2, jnp.inf)
      >>> st = damped_newton(fn, jnp.zeros(2), None, -inf, inf, ftol=1e-6,
      ...                    floor=1e-6, max_steps=50)
      >>> int(st.status), [round(float(v), 4) for v in st.z]
      (0, [1.0, -2.0])
      >>> st = damped_newton(fn, jnp.zeros(2), None, jnp.array([-jnp.inf, -1.0]),
      ...                    inf, ftol=1e-6, floor=1e-6, max_steps=50)
      >>> int(st.status), [round(float(v), 2) for v in st.z]  # z1 at its bound
      (0, [1.0, -1.0])
    """
    state = z0 if isinstance(z0, NewtonState) else newton_start(z0)

    def cond(st):
        return (st.status < 0) & (st.steps < max_steps)

    def body(st):
        return newton_step(
            fn,
            st,
            args,
            lower,
            upper,
            ftol=ftol,
            floor=floor,
            max_steps=max_steps,
            exact_after=exact_after,
        )

    return jax.lax.while_loop(cond, body, state)
