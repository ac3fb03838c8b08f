"""Many fits as one batch of lanes: the damped Newton solver, vmapped.

Every start of a multi-start fit and every bootstrap resample is one *lane*: a
point in the free coordinates and a row of observation weights. Each lane runs
:func:`jscale._solver.damped_newton` on the objective of
:mod:`jscale.fitting.objective` (IRLS majorizer first, exact Hessian after), and
the lanes run as one vmapped batch: converged lanes stop changing, and the loop
ends when every lane has stopped.

Large batches (bootstrap) also shrink as their lanes converge (:func:`_polish`): the
batch iterates until at most a quarter of its lanes are still running, then those
continue in a batch of a quarter of the size, and so on, so that the slowest few
lanes do not keep the whole batch iterating.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from .._solver import NewtonState, newton_step
from .objective import _evaluate, _Problem

#: The batch shrinks by this factor, down to ``_COMPACT_MIN_LANES`` lanes (a
#: warm-started bootstrap needs a median of ~8 steps and its slowest lanes ~35).
_COMPACT_FACTOR = 4
_COMPACT_MIN_LANES = 64


def _floor(problem: _Problem, weights: jax.Array) -> jax.Array:
    """An absolute floor of the convergence test for exact data (objective ~ 0):
    the Huber sum if every residual were ``min(delta, 1e-3)`` (1e-3 in log loss is
    below the noise of any real run); ``ftol`` times it is far below any noise in
    real data."""
    return 0.5 * min(problem.spec[2], 1e-3) ** 2 * jnp.sum(weights)


def _iterate(problem, state, weights, ftol, max_steps, newton_after, stop_count=0):
    """Damped Newton / IRLS steps for every lane until at most ``stop_count``
    lanes are still running (every lane has stopped, by default) or ``max_steps``.

    ``state``: a :class:`NewtonState` of ``S`` lanes; ``weights``: ``(S, num)``.
    Lanes use the IRLS majorizer for their first ``newton_after`` steps and the
    exact Hessian after. The loop is :func:`jscale._solver.damped_newton`'s, with
    its step vmapped and a stopping rule for the whole batch: a stopped lane's step
    leaves it unchanged, so the batch needs no per-lane select.
    """
    fn = partial(_evaluate, problem, lanes=weights.shape[0])
    floors = jax.vmap(partial(_floor, problem))(weights)

    def step(st, w, floor):
        return newton_step(
            fn,
            st,
            w,
            problem.lower,
            problem.upper,
            ftol=ftol,
            floor=floor,
            max_steps=max_steps,
            exact_after=newton_after,
        )

    def cond(st):
        running = st.status < 0
        return (jnp.sum(running) > stop_count) & (
            jnp.min(jnp.where(running, st.steps, max_steps)) < max_steps
        )

    return jax.lax.while_loop(
        cond, lambda st: jax.vmap(step)(st, weights, floors), state
    )


def _polish(problem, st, weights, ftol, max_steps, newton_after):
    """:func:`_iterate` to the end, in a batch that shrinks as lanes converge."""
    S = st.z.shape[0]
    cap = S // _COMPACT_FACTOR
    if cap < _COMPACT_MIN_LANES:
        return _iterate(problem, st, weights, ftol, max_steps, newton_after)
    st = _iterate(problem, st, weights, ftol, max_steps, newton_after, cap)
    # At most ``cap`` lanes are still running: continue them in a smaller batch.
    _, idx = jax.lax.top_k((st.status < 0).astype(jnp.int32), cap)
    sub = NewtonState(*(x[idx] for x in st))
    sub = _polish(problem, sub, weights[idx], ftol, max_steps, newton_after)
    return NewtonState(*(x.at[idx].set(y) for x, y in zip(st, sub, strict=True)))
