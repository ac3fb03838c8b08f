"""The solvers every module of jscale uses, written for one problem and vmapped.

- :mod:`.implicit`: implicit-function derivatives of a solution, so that
  ``jax.grad`` of an optimum never unrolls a solver.
- :mod:`.scalar`: the root of an increasing scalar function on a bracket
  (safeguarded Newton; :func:`implicit_root` differentiable), THE scalar minimizer
  :func:`minimize_scalar` (policy: the lowest or the first local minimum), and the
  kink points that keep Newton on smooth pieces.
- :mod:`.constrained`: an augmented Lagrangian around a box-projected optax solver.
- :mod:`.newton`: damped Newton / Levenberg-Marquardt for a few coordinates in a
  box (the fits), and :func:`.scalar.bisect`, a fixed-count bisection (isoFLOP).

All loops are bounded, so one compilation serves every batch of the same shape.
Status codes come from :mod:`jscale._status`.
"""

from .constrained import ALResult, augmented_lagrangian, default_optimizer
from .implicit import implicit
from .newton import (
    NewtonState,
    damped_newton,
    newton_decrement,
    newton_start,
    newton_step,
)
from .scalar import (
    RootResult,
    ScalarMin,
    bisect,
    eps,
    implicit_root,
    kink_points,
    minimize_scalar,
    projected_slope,
    root_scalar,
)

__all__ = [
    "ALResult",
    "NewtonState",
    "RootResult",
    "ScalarMin",
    "augmented_lagrangian",
    "bisect",
    "damped_newton",
    "default_optimizer",
    "eps",
    "implicit",
    "implicit_root",
    "kink_points",
    "minimize_scalar",
    "newton_decrement",
    "newton_start",
    "newton_step",
    "projected_slope",
    "root_scalar",
]
