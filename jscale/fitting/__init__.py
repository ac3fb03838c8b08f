"""Fitting scaling laws to training runs: Approach 3 and its bootstrap.

Approach 3 (Hoffmann et al. 2022, arXiv:2203.15556, Eq. 3 and App. D.2, Eq. 11)
minimizes the Huber loss (``delta = 1e-3``) of the log residuals,

``sum_i H_delta(log L_hat(N_i, D_i) - log L_i)``, with
``log L_hat = LSE(a - alpha log N, b - beta log D, e)`` for the Chinchilla form
(``A, B, E = exp(a), exp(b), exp(e)``), from a grid of initializations (their grid:
alpha, beta in {0, 0.5, ..., 2}, e in {-1, -0.5, ..., 1}, a, b in {0, 5, ..., 25};
4500 starts), keeping the best. ``objective="ml"`` is the maximum-likelihood
variant of Besiroglu, Erdil, Barnett & You 2024 (arXiv:2404.10102, "Chinchilla
Scaling: A replication attempt"): the log residuals follow a Huber-shaped density
``exp(-H_delta(r / sigma)) / (sigma Z_delta)`` with a free scale ``sigma``.

Any family of :mod:`jscale.laws` with a fitting model here can be fitted
(:data:`MODELS`: ``chinchilla``, ``kaplan``, ``data-constrained``, ``bnsl`` and
``moe``, Clark et al. 2022's routed law in N and the expert count E); parameters
can be frozen, tied (``alpha = beta``) or bounded. ``delta`` larger than every
log residual (e.g. ``delta=1``) turns the Huber loss into least squares on
``log L`` (Clark et al.'s objective). Observations come from a CSV, a column
mapping or arrays (:func:`observations`, :func:`read_columns`), with columns
renamed by ``columns`` and rows selected by ``where``. Example data with their
licences ship in ``jscale/data`` (:data:`EXAMPLES`).

Approach 2 (parabolas on isoFLOP slices, with bootstrap intervals on the
exponents) is in :mod:`jscale.isoflop`.

Where things are:

- :mod:`.families`: the fitting :class:`Model` of each law family, :data:`MODELS`.
- :mod:`.parameters`: frozen, tied and bounded parameters; starts; :func:`named`.
- :mod:`.data`: observations, CSV input, ``where`` filters, example data.
- :mod:`.objective`: the Huber and maximum-likelihood objectives, evaluated per
  lane (a start or a resample) with their derivatives.
- :mod:`.lanes`: many fits as one vmapped batch of damped Newton solves
  (:func:`jscale._solver.damped_newton`), shrinking as lanes converge.
- :mod:`.multistart`: :func:`fit`: a grid of starts, screened, polished, the best
  kept.
- :mod:`.bootstrap`: :func:`bootstrap`: multinomial resamples as weights.

Precision: fits are correct in float64. In float32 the objective itself is accurate
to about 1e-7 relative, which leaves fitted exponents uncertain at the 1e-3 level on
typical data (see :func:`fit`); a warning says so. Enable x64 for published-quality
fits (``jax.config.update("jax_enable_x64", True)``; jscale never flips it).
"""

from .._status import CONVERGED, MAX_STEPS, NONFINITE, PRUNED, STALLED
from .._status import MESSAGES as STATUS_MESSAGES
from .bootstrap import BootstrapResult, bootstrap, resample_weights
from .data import (
    DEFAULT_COLUMNS,
    EXAMPLES,
    INPUT_MIN,
    Observations,
    example_path,
    observations,
    read_columns,
)
from .families import MODELS, Model, get_model, hoffmann_grid
from .multistart import FitResult, StartResults, fit
from .objective import huber, huber_log_normalizer
from .parameters import named

__all__ = [
    "CONVERGED",
    "DEFAULT_COLUMNS",
    "EXAMPLES",
    "INPUT_MIN",
    "MAX_STEPS",
    "MODELS",
    "NONFINITE",
    "PRUNED",
    "STALLED",
    "STATUS_MESSAGES",
    "BootstrapResult",
    "FitResult",
    "Model",
    "Observations",
    "StartResults",
    "bootstrap",
    "example_path",
    "fit",
    "get_model",
    "hoffmann_grid",
    "huber",
    "huber_log_normalizer",
    "named",
    "observations",
    "read_columns",
    "resample_weights",
]
