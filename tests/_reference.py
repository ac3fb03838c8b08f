"""Float64 SciPy references that do not depend on one optimiser's path.

A test compares jscale with SciPy to catch jscale's mistakes; the reference must not
fail, or mislead, on its own. An SLSQP line search that steps to log N ~ 1e8 and
overflows ``math.exp`` on one CPU and not on another is a defect of the test, not of
jscale. Every reference built with this module therefore

1. **bounds every decision variable** with a finite box. The variables are logs
   (log N, log D, log E, ...) or quantities with a natural range (bits), so a box of
   a few dozen units in log space holds every plausible answer while keeping
   ``exp`` far from overflow; the objective and the constraints are evaluated at the
   point clipped into the box, whatever the optimiser proposes;
2. **guards the objective and the constraints**: an overflow, a domain error, a
   division by zero or a non-finite value gives the large finite ``PENALTY`` (the
   objective) or a violated constraint, never an exception or a warning;
3. **starts from several points**: jscale's answer where the test has one, and
   independent ones (a closed form, a grid, a 1-D reduction, perturbations). For a
   1-D problem, every point of a grid is a start and bounded Brent refines the best;
4. **keeps the best result it has itself checked to be feasible** (within a stated
   tolerance), converged or not: a run that stopped early is only ever worse.

A test then fails only when jscale is wrong: jscale's answer must be feasible and
its objective no worse than the best feasible reference beyond a stated tolerance;
argmins are compared only where the problem is well-conditioned and the reference
reached the optimum (its objective no worse than jscale's beyond that tolerance).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
from scipy.optimize import OptimizeWarning, brentq, minimize, minimize_scalar, root

# Finite on purpose: SLSQP and L-BFGS-B difference the objective, and 1e100 / 1e-8
# is still a float; every objective in the suite is below 1e10 where it is defined.
PENALTY = 1e100
# Feasibility of a reference: constraints are written in log space or on O(1)
# quantities, which SLSQP meets to ~1e-13 when it converges; 1e-9 accepts those
# and rejects a point that would gain from a violation. Tests whose objective moves
# by a multiplier m per unit of violation allow m * FEAS_TOL in their comparisons.
FEAS_TOL = 1e-9
_ERRORS = (OverflowError, ZeroDivisionError, ValueError, FloatingPointError)


@contextlib.contextmanager
def _quiet():
    """No floating-point warnings, and no SciPy warnings about the optimiser's own
    path (a step clipped to the bounds, a line search that gave up): this module
    checks every end point itself, and ``filterwarnings = error`` must not turn
    the reference's detours into failures."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", OptimizeWarning)
        yield


class ReferenceFailure(AssertionError):
    """No start gave a feasible, finite reference: a defect of the test."""


class Best(NamedTuple):
    """The best feasible result of a multi-start run.

    ``x`` the argmin (inside the box), ``fun`` the objective there (float64),
    ``violation`` the largest constraint violation there, ``feasible`` how many
    starts ended feasible, ``at_bound`` whether some coordinate sits on the box
    (within 1e-9 of its width), ``runs`` every ``(x, fun, violation)``.
    """

    x: np.ndarray
    fun: float
    violation: float
    feasible: int
    at_bound: bool
    runs: list


class Scalar(NamedTuple):
    """The minimum of a guarded 1-D function: argmin ``x`` and value ``fun``."""

    x: float
    fun: float


def _value(fun, x, args, penalty):
    try:
        with np.errstate(all="ignore"):
            v = float(fun(x, *args))
    except _ERRORS:
        return penalty
    return v if math.isfinite(v) else penalty


def guard(fun: Callable, lower=None, upper=None, *, penalty=PENALTY, jac=False):
    """``fun`` clipped into ``[lower, upper]`` and guarded.

    An overflow, a domain error, a division by zero or a non-finite value returns
    ``penalty`` instead of raising (NumPy's floating-point warnings are silenced
    inside, so ``filterwarnings = error`` cannot turn them into failures). With
    ``jac=True`` ``fun`` returns ``(value, gradient)``; a failed evaluation returns
    ``(penalty, 0)``, which any line search rejects.

    Examples:
      The step that broke CI (log D = -1.03e8, where ``math.exp`` overflows) gives
      the penalty; with a box it is evaluated at log D = 0 instead:

      >>> def log_flops(y):
      ...     return y[0] + y[1] + math.log1p(0.0 * math.exp(-y[1]))
      >>> guard(log_flops)([1.0, -1.03e8])
      1e+100
      >>> guard(log_flops, [0.0, 0.0], [60.0, 70.0])([1.0, -1.03e8])
      1.0
    """
    clip = lower is not None

    def wrapped(x, *args):
        if clip:
            x = np.clip(np.asarray(x, float), lower, upper)
            x = x if x.ndim else float(x)
        if not jac:
            return _value(fun, x, args, penalty)
        try:
            with np.errstate(all="ignore"):
                v, g = fun(x, *args)
            v, g = float(v), np.asarray(g, float)
        except _ERRORS:
            return penalty, np.zeros(np.shape(x))
        if not (math.isfinite(v) and np.all(np.isfinite(g))):
            return penalty, np.zeros(np.shape(x))
        return v, g

    return wrapped


def _constraint(c, lower, upper):
    """A SciPy constraint dict with a guarded ``fun`` (and ``jac``, if given): a
    failed evaluation of an equality gives +PENALTY, of an inequality -PENALTY
    (violated either way)."""
    sign = 1.0 if c["type"] == "eq" else -1.0
    fun, args = c["fun"], tuple(c.get("args", ()))

    def wrapped(x, *a):
        x = np.clip(np.asarray(x, float), lower, upper)
        try:
            with np.errstate(all="ignore"):
                v = np.atleast_1d(np.asarray(fun(x, *a), float))
        except _ERRORS:
            return np.atleast_1d(sign * PENALTY)
        return np.where(np.isfinite(v), v, sign * PENALTY)

    out = {"type": c["type"], "fun": wrapped, "args": args}
    if "jac" in c:
        out["jac"] = _gradient(
            c["jac"], lower, upper, lambda x, *a: wrapped(x, *a).size
        )
    return out


def _gradient(jac, lower, upper, rows=None):
    """A separate gradient (or constraint Jacobian), clipped and guarded: zeros
    where it fails; ``rows(x)`` gives a Jacobian's number of rows."""

    def wrapped(x, *args):
        x = np.clip(np.asarray(x, float), lower, upper)
        try:
            with np.errstate(all="ignore"):
                g = np.asarray(jac(x, *args), float)
        except _ERRORS:
            return np.zeros(x.shape if rows is None else (rows(x, *args), x.size))
        return np.where(np.isfinite(g), g, 0.0)

    return wrapped


def violation(x, constraints=()) -> float:
    """Largest violation of SciPy-style constraints at ``x``: ``|g|`` for equalities,
    ``max(-g, 0)`` for inequalities (``g >= 0`` is feasible); inf where a
    constraint cannot be evaluated."""
    worst = 0.0
    for c in constraints:
        try:
            with np.errstate(all="ignore"):
                g = np.asarray(c["fun"](x, *c.get("args", ())), float)
        except _ERRORS:
            return math.inf
        if not np.all(np.isfinite(g)):
            return math.inf
        v = np.abs(g) if c["type"] == "eq" else np.maximum(-g, 0.0)
        worst = max(worst, float(np.max(v, initial=0.0)))
    return worst


def box(bounds: Sequence[tuple[float, float]]):
    """``(lower, upper)`` arrays of a finite box, checked."""
    lower, upper = (np.asarray(b, float) for b in zip(*bounds, strict=True))
    if not (np.all(np.isfinite(lower)) and np.all(np.isfinite(upper))):
        raise ValueError(f"every variable needs finite bounds, got {bounds}")
    if np.any(lower > upper):
        raise ValueError(f"empty box {bounds}")
    return lower, upper


def perturbed(x0, bounds, scale, num, seed=0) -> list[np.ndarray]:
    """``num`` starts around ``x0``: uniform in ``x0 +- scale`` (per coordinate),
    clipped into the box; reproducible from ``seed``."""
    lower, upper = box(bounds)
    rng = np.random.default_rng(seed)
    x0 = np.asarray(x0, float)
    step = np.broadcast_to(np.asarray(scale, float), x0.shape)
    return [
        np.clip(x0 + step * rng.uniform(-1, 1, x0.shape), lower, upper)
        for _ in range(num)
    ]


def minimize_multistart(
    fun: Callable,
    starts: Sequence,
    bounds: Sequence[tuple[float, float]],
    constraints: Sequence[dict] = (),
    method: str = "SLSQP",
    *,
    jac=None,
    args: tuple = (),
    options: dict | None = None,
    feas_tol: float = FEAS_TOL,
) -> Best:
    """The best feasible minimum of ``fun`` over the box ``bounds`` from every start.

    Each start is clipped into the box and handed to ``scipy.optimize.minimize``
    with the bounds, the guarded objective (see ``guard``; ``jac=True`` means
    ``fun`` returns its gradient too) and guarded ``constraints`` (SciPy dicts,
    ``"eq"``: ``g(x) = 0``, ``"ineq"``: ``g(x) >= 0``). Every end point, converged
    or not, is clipped into the box and checked here: it counts when every
    constraint holds within ``feas_tol`` and the objective is finite. Raises
    ``ReferenceFailure`` when no start ends feasible.

    Examples:
      min x + y s.t. x y = 1 in log space, from a start that makes SLSQP leave
      the box (and overflow ``math.exp`` without it) and from a sensible one:

      >>> best = minimize_multistart(
      ...     lambda z: math.log(math.exp(z[0]) + math.exp(z[1])),
      ...     [[-700.0, 700.0], [1.0, -0.5]],
      ...     [(-20.0, 20.0), (-20.0, 20.0)],
      ...     [{"type": "eq", "fun": lambda z: z[0] + z[1]}],
      ... )
      >>> bool(abs(best.fun - math.log(2)) < 1e-8), best.feasible >= 1
      (True, True)
    """
    lower, upper = box(bounds)
    f = guard(fun, lower, upper, jac=jac is True)
    raw = [dict(c, args=tuple(c.get("args", ()))) for c in constraints]
    kw = {"bounds": list(zip(lower, upper, strict=True)), "options": options or {}}
    if constraints:
        kw["constraints"] = [_constraint(c, lower, upper) for c in raw]
    if jac is True:
        kw["jac"] = True
    elif jac is not None:
        kw["jac"] = _gradient(jac, lower, upper)
    runs = []
    for x0 in starts:
        x0 = np.clip(np.asarray(x0, float), lower, upper)
        with _quiet():
            res = minimize(f, x0, args=args, method=method, **kw)
        x = np.clip(np.asarray(res.x, float), lower, upper)
        value = f(x, *args)
        value = value[0] if jac is True else value
        runs.append((x, value, violation(x, raw)))
    ok = [r for r in runs if r[2] <= feas_tol and r[1] < PENALTY]
    if not ok:
        raise ReferenceFailure(f"no feasible start of {len(runs)}: {runs}")
    x, value, viol = min(ok, key=lambda r: r[1])
    width = np.maximum(upper - lower, 1.0)
    edge = np.minimum(x - lower, upper - x) <= 1e-9 * width
    return Best(x, value, viol, len(ok), bool(np.any(edge)), runs)


def minimize_bounded(
    f: Callable, lo: float, hi: float, *, grid: int = 65, xatol: float = 1e-12
) -> Scalar:
    """The minimum of a scalar ``f`` on ``[lo, hi]`` (a log-space interval).

    Every point of a ``grid``-point scan is a start; bounded Brent refines the
    cells on either side of the best one (so a kink or a second local minimum
    elsewhere cannot trap it), and the best of Brent's point, the best grid point
    and both ends is returned. ``f`` is guarded (see ``guard``).

    Examples:
      A kinked function with its minimum at 1, overflowing at the far end:

      >>> r = minimize_bounded(lambda x: abs(x - 1) + math.exp(x * x) * 0, -1, 30)
      >>> round(r.x, 6), round(r.fun, 6)
      (1.0, 0.0)
    """
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise ValueError(f"need finite lo <= hi, got [{lo}, {hi}]")
    g = guard(f, lo, hi)
    if hi - lo <= xatol:
        return Scalar(lo, g(lo)) if g(lo) <= g(hi) else Scalar(hi, g(hi))
    xs = np.linspace(lo, hi, grid)
    vals = [g(float(x)) for x in xs]
    j = int(np.argmin(vals))
    a, b = float(xs[max(j - 1, 0)]), float(xs[min(j + 1, grid - 1)])
    with _quiet():
        res = minimize_scalar(
            g,
            bounds=(a, b),
            method="bounded",
            options={"xatol": xatol, "maxiter": 5000},
        )
    cands = [(g(float(res.x)), float(res.x)), (vals[j], float(xs[j]))]
    cands += [(g(lo), lo), (g(hi), hi)]
    fun, x = min(cands)
    if fun >= PENALTY:
        raise ReferenceFailure(f"f is not finite anywhere on [{lo}, {hi}]")
    return Scalar(x, fun)


def root_bracketed(
    f: Callable,
    lo: float,
    hi: float,
    *,
    increasing: bool = True,
    xtol: float = 1e-14,
    rtol: float = 1e-15,
) -> float:
    """The root of a monotone ``f`` on ``[lo, hi]`` by ``brentq``, guarded.

    Where ``f`` cannot be evaluated (an overflow, a log of zero) the value is
    ``+-PENALTY`` with the sign monotonicity implies: for an increasing ``f``,
    ``+PENALTY`` above the middle of the bracket, ``-PENALTY`` below it. Raises
    ``ReferenceFailure`` when the bracket holds no sign change.

    Examples:
      >>> x = root_bracketed(lambda x: math.exp(x) - 2.0, -5.0, 1000.0)
      >>> abs(x - math.log(2.0)) < 1e-14
      True
    """
    mid, s = 0.5 * (lo + hi), 1.0 if increasing else -1.0

    def g(x):
        v = _value(f, x, (), math.nan)
        if math.isnan(v):
            return s * PENALTY if x > mid else -s * PENALTY
        return v

    f_lo, f_hi = g(lo), g(hi)
    if f_lo == 0.0:
        return lo
    if f_hi == 0.0:
        return hi
    if (f_lo < 0) == (f_hi < 0):
        raise ReferenceFailure(f"no sign change on [{lo}, {hi}]: {f_lo}, {f_hi}")
    with _quiet():
        return brentq(g, lo, hi, xtol=xtol, rtol=rtol)


def root_polish(fun: Callable, x0, bounds, *, jac=None, xtol: float = 1e-14):
    """Polish a minimum ``x0`` into a root of its hand-derived gradient ``fun``.

    A function-value search resolves a flat minimum only to ~sqrt(eps); a root of
    the gradient pins it down to rounding. ``scipy.optimize.root`` (hybr) runs
    guarded from ``x0``; its root is returned when it lies inside the box and its
    residual is no larger than at ``x0``, otherwise ``x0`` itself. The caller
    still checks that the polished point is no worse than ``x0``.
    """
    lower, upper = box(bounds)
    x0 = np.asarray(x0, float)

    def g(x):
        try:
            with np.errstate(all="ignore"):
                v = np.asarray(fun(x), float)
        except _ERRORS:
            return np.full(x0.shape, PENALTY)
        return np.where(np.isfinite(v), v, PENALTY)

    kw = (
        {}
        if jac is None
        else {"jac": _gradient(jac, -np.inf, np.inf, lambda x: x.size)}
    )
    with _quiet():
        pol = root(g, x0, method="hybr", options={"xtol": xtol}, **kw)
    x = np.asarray(pol.x, float)
    inside = np.all(np.isfinite(x)) and np.all((lower <= x) & (x <= upper))
    if inside and np.max(np.abs(g(x))) <= np.max(np.abs(g(x0))):
        return x
    return x0
