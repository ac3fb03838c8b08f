"""The solvers every module of jscale uses, written for one problem and vmapped.

- :mod:`.implicit`: implicit-function derivatives of a solution, so that
  ``jax.grad`` of an optimum never unrolls a solver.
- :mod:`.scalar`: the root of an increasing scalar function on a bracket
  (safeguarded Newton), and the kink points that keep Newton on smooth pieces.
- :mod:`.constrained`: an augmented Lagrangian around a box-projected optax solver.

All loops are bounded, so one compilation serves every batch of the same shape.
Status codes come from :mod:`jscale._status`.
"""

from .constrained import ALResult, augmented_lagrangian, default_optimizer
from .implicit import implicit
from .scalar import RootResult, eps, kink_points, root_scalar

__all__ = [
    "ALResult",
    "RootResult",
    "augmented_lagrangian",
    "default_optimizer",
    "eps",
    "implicit",
    "kink_points",
    "root_scalar",
]
