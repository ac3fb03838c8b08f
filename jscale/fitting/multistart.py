"""Approach 3: a grid of starts, screened, the best polished, the best kept.

:func:`fit` minimizes the objective (:mod:`jscale.fitting.objective`) from every
start of a grid (Hoffmann 2022's 4500 for the Chinchilla form) as one batch of
lanes (:mod:`jscale.fitting.lanes`). Grids of more than 256 starts are screened:
every start takes a few IRLS steps, the best ``keep`` are polished to convergence
and the others are reported as pruned. The lowest objective wins.

Convergence is scaled to the objective: a lane has converged when the decrease
predicted by the Newton model at its point (the Newton decrement
``g^T H^-1 g / 2``) is at most ``ftol`` times the objective. Every fit reports its
status and that decrement (:class:`FitResult`).

Precision: fits are correct in float64. In float32 the objective itself is accurate
to about 1e-7 relative, which leaves fitted exponents uncertain at the 1e-3 level on
typical data; a warning says so.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from .. import _checks, _status
from .._solver import NewtonState, newton_start
from .data import _log_data, observations
from .families import Model, get_model
from .lanes import _iterate, _polish
from .objective import _Problem
from .parameters import _initial_log_scale, _resolve_starts, _structure, _theta

#: Grids of at most this many starts are polished whole (no screening): one
#: loop, which halves compilation, at little cost for small grids.
_POLISH_ALL = 256


class StartResults(NamedTuple):
    """Every start's (or resample's) outcome, one row each."""

    theta: jax.Array
    objective: jax.Array
    status: jax.Array
    decrement: jax.Array
    steps: jax.Array


class FitResult(NamedTuple):
    """A fitted law and how the fit went.

    Attributes:
      params: the best fit as the family's ``*Params`` NamedTuple.
      theta: the best fit's coordinates (``Model.coords``; with ``objective="ml"``
        one more, ``log_scale``), shape ``(k,)``.
      objective: the objective there: the Huber sum (Hoffmann 2022, Eq. 3; summed,
        not averaged, with the observation weights) or, for ``"ml"``, the negative
        log-likelihood.
      status: the best fit's status (:data:`STATUS_MESSAGES`; 0 is converged).
      decrement: the Newton decrement there, the predicted distance to the floor of
        the objective (``<= ftol * objective`` when converged).
      scale: the fitted ``sigma`` of the ``"ml"`` objective (NaN for ``"huber"``).
      starts: per start ``theta`` ``(S, k)``, ``objective`` ``(S,)``, ``status``
        ``(S,)``, ``decrement`` ``(S,)`` and ``steps`` ``(S,)``, as a
        :class:`StartResults`. Pruned starts report their state after screening.
      names: the reported parameter names, in ``params`` order.
      settings: the options used (``objective``, ``delta``, ``ftol``, ``keep``, ...).
    """

    params: Any
    theta: jax.Array
    objective: jax.Array
    status: jax.Array
    decrement: jax.Array
    scale: jax.Array
    starts: StartResults
    names: tuple[str, ...]
    settings: dict


def _check_objective(objective: str, delta: float) -> None:
    _checks.check_choice("objective", objective, ("huber", "ml"))
    if not (isinstance(delta, (int, float)) and delta > 0 and math.isfinite(delta)):
        raise ValueError(f"delta must be a finite number > 0; got {delta!r}")


def _default_ftol(dtype) -> float:
    # float64: 1e-13 of the objective. The decrement is the quadratic model's
    # remaining decrease, and Newton steps converge quadratically, so asking for
    # ~1000 ulps of the objective costs about one more step and leaves the fit
    # below (not merely near) what a converged SciPy run reaches; the parameters
    # are then converged to ~sqrt(1e-13) of their standard errors. float32: the
    # objective itself is only accurate to ~1e-7 relative (hundreds of terms
    # summed), so 1e-6 is the most that can be asked.
    return 1e-13 if jnp.dtype(dtype) == jnp.float64 else 1e-6


def _warn_float32(dtype) -> None:
    if jnp.dtype(dtype) != jnp.float64:
        warnings.warn(
            "jscale.fitting: fitting in float32; the objective is accurate to about "
            "1e-7, which leaves fitted exponents uncertain at the 1e-3 level and "
            "coefficients (A, B) at about 1e-2. Enable x64 "
            "(jax.config.update('jax_enable_x64', True)) for published-quality fits.",
            RuntimeWarning,
            stacklevel=3,
        )


def _irls_steps(irls_steps, default: int) -> int:
    if irls_steps is None:
        return default
    return _checks.check_whole("irls_steps", irls_steps, minimum=0)


def _problem_arrays(model, ml, delta, structure, log_x, log_y, dtype) -> _Problem:
    """What every lane shares, as arrays of the fit's dtype."""
    return _Problem(
        (model, ml, float(delta)),
        jnp.asarray(structure.P, dtype),
        jnp.asarray(structure.offset, dtype),
        jnp.asarray(structure.lower, dtype),
        jnp.asarray(structure.upper, dtype),
        log_x,
        log_y,
    )


@partial(
    jax.jit,
    static_argnames=("spec", "keep", "screen_steps", "irls_steps", "max_steps"),
)
def _solve_starts(
    spec,
    arrays,
    z0,
    weights,
    ftol,
    *,
    keep,
    screen_steps,
    irls_steps,
    max_steps,
):
    """Screen all starts, keep the best ``keep``, polish them: one compile.

    ``arrays``: the :class:`_Problem` without its static ``spec``;
    ``weights`` is ``(S, P)``: a row of observation weights per lane.
    """
    problem = _Problem(spec, *arrays)
    S = z0.shape[0]
    z0 = jnp.clip(z0, problem.lower[None, :], problem.upper[None, :])
    if keep >= S:
        return _polish(
            problem, newton_start(z0), weights, ftol, max_steps, irls_steps + 1
        )
    st = _iterate(
        problem, newton_start(z0), weights, ftol, screen_steps + 1, screen_steps + 2
    )
    score = jnp.where(jnp.isfinite(st.f), st.f, jnp.inf)
    _, idx = jax.lax.top_k(-score, keep)
    sk = _polish(
        problem,
        newton_start(st.z[idx]),
        weights[idx],
        ftol,
        max_steps,
        irls_steps + 1,
    )
    status = jnp.where(jnp.isfinite(st.f), _status.PRUNED, _status.NONFINITE)
    return NewtonState(
        st.z.at[idx].set(sk.z),
        st.f.at[idx].set(sk.f),
        st.g.at[idx].set(sk.g),
        st.H.at[idx].set(sk.H),
        st.lam.at[idx].set(sk.lam),
        st.decrement.at[idx].set(sk.decrement),
        status.astype(jnp.int32).at[idx].set(sk.status),
        st.steps.at[idx].add(sk.steps),
    )


def fit(
    data: Any,
    law: str | Model = "chinchilla",
    *,
    objective: str = "huber",
    delta: float = 1e-3,
    starts: Any = None,
    freeze: Mapping[str, float] | None = None,
    tie: Sequence[Sequence[str]] = (),
    bounds: Mapping[str, tuple[float | None, float | None]] | None = None,
    weights: ArrayLike | None = None,
    columns: Mapping[str, str] | None = None,
    where: Mapping[str, Any] | None = None,
    keep: int | None = None,
    screen_steps: int = 12,
    irls_steps: int | None = None,
    max_steps: int = 300,
    ftol: float | None = None,
) -> FitResult:
    """Fit a law family to observations (Hoffmann 2022's Approach 3).

    Minimizes ``sum_i w_i H_delta(log L_hat_i - log L_i)`` (``objective="huber"``,
    Hoffmann 2022 Eq. 3) or the negative log-likelihood of a Huber-shaped density
    with a free scale (``"ml"``, Besiroglu et al. 2024) from every start, and keeps
    the best. All starts run as one batch (see the module docstring for the solver).

    Args:
      data: observations: a CSV path, a column mapping (dict or DataFrame) or
        :class:`Observations` (see :func:`observations`).
      law: a family name from :data:`MODELS` or a :class:`Model`.
      objective: ``"huber"`` or ``"ml"``.
      delta: the Huber threshold on log residuals (Hoffmann: 1e-3).
      starts: initial coordinates ``(S, k)`` in ``Model.coords`` order, a
        ``*Params`` (one start, or leaves with a leading axis), or ``None`` for the
        family's default grid (Hoffmann's 4500 starts for ``chinchilla``).
      freeze: parameter values held fixed, by reported name (``{"E": 1.69}``) or
        coordinate (``{"e": 0.52}``).
      tie: groups of parameters constrained equal, e.g. ``[("alpha", "beta")]``.
      bounds: ``{name: (low, high)}`` in the parameter's units (``None`` for open).
      weights: optional non-negative weight per observation, ``(P,)``.
      columns, where: column names and row selection, as for
        :func:`observations`.
      keep: how many screened starts are polished to convergence (default: all
        of them up to 256 starts, as one loop that compiles fast; the best 64 of
        larger grids such as Hoffmann's 4500).
      screen_steps: IRLS steps every start takes before the best ``keep`` are kept.
      irls_steps: IRLS steps of the polished starts before exact Newton steps
        (default 30 for ``"huber"``; for ``"ml"`` all steps are IRLS steps: its
        fitted scale makes the effective Huber threshold ``delta * sigma`` tiny
        (about 5e-9 on Epoch's data), a nearly non-smooth problem on which the
        majorizer's monotone steps reach the floor and Newton steps stall).
      max_steps: bound on the steps of the polishing loop.
      ftol: convergence tolerance relative to the objective (default 1e-13 in
        float64, 1e-6 in float32).

    Returns:
      A :class:`FitResult`.

    Raises:
      ValueError: for bad data (naming rows or columns), fewer observations than
        free parameters, unknown names, or bad options.

    Examples:
      >>> import jax
      >>> import numpy as np
      >>> from jscale import fitting, laws
      >>> n = np.repeat(np.logspace(8, 10, 6), 4)
      >>> d = np.tile(np.logspace(9.5, 11.5, 4), 6)
      >>> loss = np.asarray(laws.get("chinchilla-besiroglu2024").loss(n, d))
      >>> with jax.enable_x64(True):  # fits want float64 (float32 warns)
      ...     r = fitting.fit({"n_params": n, "n_tokens": d, "loss": loss},
      ...                     starts=[[6.0, 7.0, 0.5, 0.3, 0.3]])
      >>> int(r.status), round(float(r.params.alpha), 4)
      (0, 0.3478)
    """
    model = get_model(law)
    _check_objective(objective, delta)
    if keep is not None:
        keep = _checks.check_whole("keep", keep)
    max_steps = _checks.check_whole("max_steps", max_steps)
    screen_steps = _checks.check_whole("screen_steps", screen_steps, minimum=0)
    obs = observations(data, model, columns=columns, where=where)
    ml = objective == "ml"
    irls_steps = _irls_steps(irls_steps, max_steps if ml else 30)
    structure = _structure(model, freeze, tie, bounds, ("log_scale",) if ml else ())
    num, m = int(obs.loss.shape[0]), len(structure.free)
    if num < m:
        raise ValueError(
            f"{num} observations cannot determine {m} free parameters "
            f"({', '.join(structure.free)}); give more rows or freeze/tie parameters"
        )
    dtype = obs.loss.dtype
    _warn_float32(dtype)
    log_x, log_y = _log_data(obs, model)
    z0 = _resolve_starts(starts, model, log_x, structure, ml)
    z0 = _initial_log_scale(z0, structure, model, log_x, log_y, delta, ml)
    S = z0.shape[0]
    if weights is None:
        w = jnp.ones((num,), dtype)
    else:
        w = _checks.check_range("weights", weights, lower=0.0, lower_inclusive=True)
        if w.shape != (num,):
            raise ValueError(f"weights must have shape ({num},); got {w.shape}")
        w = w.astype(dtype)
    ftol = _default_ftol(dtype) if ftol is None else float(ftol)
    if keep is None:
        keep = S if S <= _POLISH_ALL else 64
    keep = min(keep, S)
    problem = _problem_arrays(model, ml, delta, structure, log_x, log_y, dtype)
    st = _solve_starts(
        problem.spec,
        problem[1:],
        jnp.asarray(z0, dtype),
        jnp.broadcast_to(w, (S, num)),
        jnp.asarray(ftol, dtype),
        keep=keep,
        screen_steps=screen_steps,
        irls_steps=irls_steps,
        max_steps=max_steps,
    )
    theta = _theta(structure, st.z)
    score = jnp.where(
        jnp.isfinite(st.f) & (st.status != _status.NONFINITE), st.f, jnp.inf
    )
    best = jnp.argmin(score)
    k = len(model.coords)
    settings = {
        "law": model.family,
        "objective": objective,
        "delta": float(delta),
        "ftol": ftol,
        "starts": S,
        "keep": keep,
        "screen_steps": screen_steps,
        "irls_steps": irls_steps,
        "max_steps": max_steps,
        "dtype": str(jnp.dtype(dtype)),
        "frozen": dict(freeze or {}),
        "tied": [list(g) for g in tie],
        "bounds": {name: list(v) for name, v in (bounds or {}).items()},
        "observations": num,
    }
    return FitResult(
        params=model.to_params(theta[best, :k]),
        theta=theta[best],
        objective=st.f[best],
        status=st.status[best],
        decrement=st.decrement[best],
        scale=jnp.exp(theta[best, k]) if ml else jnp.asarray(jnp.nan, dtype),
        starts=StartResults(theta, st.f, st.status, st.decrement, st.steps),
        names=tuple(p for p, _, _ in model.params),
        settings=settings,
    )
