"""Bootstrap of a fit: multinomial resamples as weights, all refitted in one batch.

A resample is a vector of counts over the observations (Efron's bootstrap as
weights), so every resample has the same shapes and thousands of fits run as one
batch of lanes, warm-started at the full-data fit, as Besiroglu et al. 2024 did.
Three things keep the batch from wasting work: the first evaluation of every lane
is the per-observation terms at the shared start times the weight matrix (one
matrix product instead of a batched evaluation, :func:`_start_shared`); the batch
shrinks as lanes converge (:func:`jscale.fitting.lanes._polish`); and the
Chinchilla form's derivatives are in closed form.

Standard errors are the sample standard deviations (``ddof=1``) of the converged
resamples' parameters, in their own units; intervals are percentile intervals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from .. import _checks, _status
from .._numerics import default_float
from .._solver import NewtonState, newton_decrement, newton_start
from .data import _log_data, observations
from .families import Model, get_model
from .lanes import _polish
from .multistart import (
    FitResult,
    StartResults,
    _check_objective,
    _default_ftol,
    _irls_steps,
    _problem_arrays,
    fit,
)
from .objective import _evaluate, _Problem
from .parameters import (
    _free,
    _initial_log_scale,
    _params_of,
    _public,
    _resolve_starts,
    _structure,
    _theta,
)

#: Resamples are drawn in chunks of this many: one compilation serves any number.
_RESAMPLE_CHUNK = 256


class BootstrapResult(NamedTuple):
    """Bootstrap fits (multinomial resamples of the observations).

    Attributes:
      params: the fitted laws with a leading resample axis, ``(K,)`` leaves: ready
        for Monte Carlo (``jax.vmap`` over it, or broadcast).
      stderr: bootstrap standard errors (sample standard deviation, ``ddof=1``)
        of each reported parameter, in its own units (A, not log A), as a
        ``*Params``; computed over the converged resamples.
      low, high: percentile interval bounds at ``confidence`` (``*Params``).
      fits: per resample ``theta``, ``objective``, ``status``, ``decrement`` and
        ``steps`` (:class:`StartResults`).
      weights: the multinomial counts, ``(K, P)``.
      confidence: the interval's coverage, e.g. 0.95.
      names: the reported parameter names.
    """

    params: Any
    stderr: Any
    low: Any
    high: Any
    fits: StartResults
    weights: jax.Array
    confidence: float
    names: tuple[str, ...]


def resample_weights(key: jax.Array, num_points: int, num_draws: int) -> jax.Array:
    """Multinomial bootstrap counts, ``(num_draws, num_points)``.

    Resample ``i`` draws ``num_points`` indices uniformly with replacement using
    ``jax.random.fold_in(key, i)``, so a resample does not depend on how many are
    drawn; its counts sum to ``num_points``.

    Examples:
      >>> import jax
      >>> w = resample_weights(jax.random.key(0), 5, 3)
      >>> w.shape, [int(s) for s in w.sum(axis=1)]
      ((3, 5), [5, 5, 5])
    """
    num_points = _checks.check_whole("num_points", num_points)
    num_draws = _checks.check_whole("num_draws", num_draws)
    pieces = [
        _resample_chunk(key, jnp.asarray(start, jnp.int32), num_points=num_points)
        for start in range(0, num_draws, _RESAMPLE_CHUNK)
    ]
    return jnp.concatenate(pieces)[:num_draws]


@partial(jax.jit, static_argnames=("num_points",))
def _resample_chunk(key, start, *, num_points):
    def one(i):
        idx = jax.random.randint(
            jax.random.fold_in(key, i), (num_points,), 0, num_points
        )
        return jnp.zeros(num_points, default_float()).at[idx].add(1.0)

    # a sequential map compiles faster than vmap over the random draws
    return jax.lax.map(one, start + jnp.arange(_RESAMPLE_CHUNK))


def _start_shared(problem: _Problem, z0, weights):
    """The state after every lane's first evaluation, when all lanes start at the
    same point and differ only in their observation weights (a warm-started
    bootstrap): the objective, gradient and curvature are linear in the weights,
    so they are the per-observation terms at that point (one cheap evaluation
    with one-hot weights) times the weight matrix, instead of a full evaluation
    of every lane. The first step's curvature is the IRLS majorizer.
    """
    num = problem.log_y.shape[0]
    S, m = z0.shape
    z_one = jnp.broadcast_to(z0[:1], (num, m))
    eye = jnp.eye(num, dtype=z0.dtype)
    evaluate = partial(_evaluate, problem, newton=False, lanes=num)
    f_p, g_p, H_p = jax.vmap(evaluate)(z_one, eye)
    f = weights @ f_p
    g = weights @ g_p
    H = (weights @ H_p.reshape(num, m * m)).reshape(S, m, m)
    finite = (
        jnp.isfinite(f)
        & jnp.all(jnp.isfinite(g), -1)
        & jnp.all(jnp.isfinite(H), (-2, -1))
    )
    st = newton_start(z0)
    z = jnp.broadcast_to(z0[:1], z0.shape)
    dec = newton_decrement(z, g, H, problem.lower, problem.upper)
    return NewtonState(
        z,
        jnp.where(finite, f, jnp.inf),
        jnp.where(finite[:, None], g, 0.0),
        jnp.where(finite[:, None, None], H, 0.0),
        st.lam,
        jnp.where(finite, dec, jnp.inf),
        jnp.where(finite, -1, _status.NONFINITE).astype(jnp.int32),
        jnp.ones(S, jnp.int32),
    )


@partial(jax.jit, static_argnames=("spec", "irls_steps", "max_steps"))
def _solve_resamples(spec, arrays, z0, weights, ftol, *, irls_steps, max_steps):
    """Refit every resample (a row of ``weights``) from the shared start ``z0[0]``:
    one compile serves any key and any data of the same shapes."""
    problem = _Problem(spec, *arrays)
    z0 = jnp.clip(z0, problem.lower[None, :], problem.upper[None, :])
    st = _start_shared(problem, z0, weights)
    return _polish(problem, st, weights, ftol, max_steps, irls_steps + 1)


def bootstrap(
    key: jax.Array,
    data: Any,
    law: str | Model = "chinchilla",
    *,
    num_draws: int = 1000,
    init: FitResult | Any = None,
    confidence: float = 0.95,
    objective: str = "huber",
    delta: float = 1e-3,
    freeze: Mapping[str, float] | None = None,
    tie: Sequence[Sequence[str]] = (),
    bounds: Mapping[str, tuple[float | None, float | None]] | None = None,
    columns: Mapping[str, str] | None = None,
    where: Mapping[str, Any] | None = None,
    weights: ArrayLike | None = None,
    irls_steps: int | None = None,
    max_steps: int = 300,
    ftol: float | None = None,
) -> BootstrapResult:
    """Bootstrap the fit: refit on multinomial resamples, all in one batch.

    Each resample is a vector of counts over the observations
    (:func:`resample_weights`), so every fit has the same shapes; all of them run
    as one batch of lanes, warm-started from ``init`` (the full-data fit; by
    default :func:`~jscale.fitting.fit` with the same options), as Besiroglu et
    al. 2024 did (their bootstrap refits start from one point).

    Args:
      key: a ``jax.random`` key; resample ``i`` uses ``fold_in(key, i)``.
      data: the observations (see :func:`~jscale.fitting.fit`).
      law: the family name or :class:`~jscale.fitting.Model`.
      num_draws: K, the number of resamples (>= 2).
      init: the starting point: a :class:`~jscale.fitting.FitResult`, a
        ``*Params``, or ``None``.
      confidence: coverage of the percentile intervals (0 < confidence < 1).
      objective, delta, freeze, tie, bounds, columns, where, max_steps, ftol: as for
        :func:`~jscale.fitting.fit`.
      weights: explicit resamples as counts ``(K, P)`` (then ``key`` and
        ``num_draws`` are ignored), e.g. to reuse another study's resamples.
      irls_steps: IRLS steps before Newton steps (default 0 for ``"huber"``:
        Newton from the warm start; all IRLS for ``"ml"``).

    Returns:
      A :class:`BootstrapResult`: standard errors, percentile intervals, and the
      fitted laws with a leading axis of K.
    """
    model = get_model(law)
    _check_objective(objective, delta)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1); got {confidence}")
    max_steps = _checks.check_whole("max_steps", max_steps)
    obs = observations(data, model, columns=columns, where=where)
    num = int(obs.loss.shape[0])
    if weights is not None:
        weights = np.asarray(weights, np.float64)
        if weights.ndim != 2 or weights.shape[1] != num or weights.shape[0] < 2:
            raise ValueError(
                f"weights must have shape (K, {num}) with K >= 2; got {weights.shape}"
            )
        num_draws = weights.shape[0]
    K = _checks.check_whole("num_draws", num_draws, minimum=2)
    options = dict(
        objective=objective, delta=delta, freeze=freeze, tie=tie, bounds=bounds
    )
    if init is None:
        init = fit(obs, model, **options)
    ml = objective == "ml"
    irls_steps = _irls_steps(irls_steps, max_steps if ml else 0)
    structure = _structure(model, freeze, tie, bounds, ("log_scale",) if ml else ())
    dtype = obs.loss.dtype
    log_x, log_y = _log_data(obs, model)
    if isinstance(init, FitResult):
        z0 = _free(structure, np.asarray(init.theta, np.float64)[None, :])
    else:
        z0 = _resolve_starts(init, model, log_x, structure, ml)
        z0 = _initial_log_scale(z0, structure, model, log_x, log_y, delta, ml)
    if weights is None:
        w = resample_weights(key, num, K).astype(dtype)
    else:
        w = jnp.asarray(weights, dtype)
    z0 = np.broadcast_to(z0[:1], (K, z0.shape[1]))
    ftol = _default_ftol(dtype) if ftol is None else float(ftol)
    problem = _problem_arrays(model, ml, delta, structure, log_x, log_y, dtype)
    st = _solve_resamples(
        problem.spec,
        problem[1:],
        jnp.asarray(z0, dtype),
        w,
        jnp.asarray(ftol, dtype),
        irls_steps=irls_steps,
        max_steps=max_steps,
    )
    theta = _theta(structure, st.z)
    k = len(model.coords)
    public = _public(model, theta[:, :k])
    ok = np.asarray(st.status) == _status.CONVERGED
    if ok.sum() < 2:
        ok = np.ones_like(ok)
    tail = 100.0 * (1.0 - confidence) / 2.0
    stderr, low, high = {}, {}, {}
    for name, values in public.items():
        v = np.asarray(values, np.float64)[ok]
        stderr[name] = np.std(v, ddof=1)
        low[name], high[name] = np.percentile(v, [tail, 100.0 - tail])
    return BootstrapResult(
        params=model.to_params(theta[:, :k]),
        stderr=_params_of(model, stderr),
        low=_params_of(model, low),
        high=_params_of(model, high),
        fits=StartResults(theta, st.f, st.status, st.decrement, st.steps),
        weights=w,
        confidence=float(confidence),
        names=tuple(p for p, _, _ in model.params),
    )
