"""The Chinchilla form ``L(N, D) = E + A / N^alpha + B / D^beta``.

Hoffmann et al. 2022, "Training Compute-Optimal Large Language Models"
(arXiv:2203.15556), Eq. 2, with the Approach-3 constants of Eq. 10 (App. D.2), and
the refit of Besiroglu, Erdil, Barnett & You 2024, "Chinchilla Scaling: A replication
attempt" (arXiv:2404.10102). ``N`` counts all parameters including embeddings, ``D``
is training tokens, and the loss is in nats per token.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from .._numerics import power_term
from ._inputs import checked
from ._registry import Preset, family


class ChinchillaParams(NamedTuple):
    """Constants of ``L(N, D) = E + A / N^alpha + B / D^beta``.

    Leaves may be Python floats or arrays; arrays with a leading axis hold many
    laws at once (bootstrap fits, Monte Carlo draws) and broadcast against N and D.
    """

    E: ArrayLike
    A: ArrayLike
    B: ArrayLike
    alpha: ArrayLike
    beta: ArrayLike


@checked
def loss(
    params: ChinchillaParams, n_params: ArrayLike, n_tokens: ArrayLike
) -> jax.Array:
    """Chinchilla-form loss ``E + A / N^alpha + B / D^beta`` (Hoffmann 2022, Eq. 2).

    In log space: ``E + exp(log A - alpha log N) + exp(log B - beta log D)``,
    elementwise with broadcasting. The dtype follows the inputs.

    Args:
      params: the law's constants.
      n_params: parameters N (> 0), any shape.
      n_tokens: training tokens D (> 0), broadcastable against ``n_params``.

    Returns:
      The loss in nats per token, with the broadcast shape. Under ``jax.jit``, elements
      with a non-positive or non-finite N or D are NaN.

    Raises:
      ValueError: for concrete non-positive, NaN or infinite N or D, or shapes that do
        not broadcast.

    Examples:
      >>> from jscale.laws import chinchilla
      >>> p = chinchilla.HOFFMANN2022.params
      >>> round(float(chinchilla.loss(p, 70e9, 1.4e12)), 3)  # Chinchilla itself
      1.937
    """
    return (
        params.E
        + power_term(jnp.log(params.A), params.alpha, jnp.log(n_params))
        + power_term(jnp.log(params.B), params.beta, jnp.log(n_tokens))
    )


FAMILY = family(
    "chinchilla", ChinchillaParams, loss, "L = E + A / N^alpha + B / D^beta"
)

_UNITS = "N: parameters incl. embeddings; D: training tokens; loss: nats/token"

HOFFMANN2022 = Preset(
    name="chinchilla-hoffmann2022",
    family=FAMILY,
    params=ChinchillaParams(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28),
    citation=(
        "Hoffmann et al. 2022, Training Compute-Optimal Large Language Models, "
        "arXiv:2203.15556, Eq. 10 (App. D.2), Approach 3, as printed"
    ),
    units=_UNITS,
    notes="Rounded constants as printed in the paper.",
)

HOFFMANN2022_UNROUNDED = Preset(
    name="chinchilla-hoffmann2022-unrounded",
    family=FAMILY,
    params=ChinchillaParams(
        E=math.exp(0.5267228),
        A=math.exp(6.0073404),
        B=math.exp(6.0179186),
        alpha=0.33917084,
        beta=0.2849083,
    ),
    citation=(
        "Hoffmann et al. 2022, arXiv:2203.15556, Eq. 10, unrounded values from the "
        "paper's TeX source as quoted by Besiroglu et al. 2024 (arXiv:2404.10102, "
        "epoch-research/analyzing-chinchilla)"
    ),
    units=_UNITS,
    notes=(
        "log A = 6.0073404, log B = 6.0179186, log E = 0.5267228. These reproduce the "
        "paper's 40B parameters at the Gopher budget of 5.76e23 FLOPs (Fig. 4)."
    ),
)

BESIROGLU2024 = Preset(
    name="chinchilla-besiroglu2024",
    family=FAMILY,
    params=ChinchillaParams(E=1.8172, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658),
    citation=(
        "Besiroglu, Erdil, Barnett & You 2024, Chinchilla Scaling: A replication "
        "attempt, arXiv:2404.10102, Eq. 5 / abstract (refit of Hoffmann's Fig. 4 data)"
    ),
    units=_UNITS,
    notes="Implies about 20 tokens per parameter at the compute-optimal point.",
)

#: Coordinates of :data:`BESIROGLU2024_COVARIANCE`: Hoffmann's parameterization.
BESIROGLU2024_COORDS = ("log_A", "log_B", "log_E", "alpha", "beta")

#: Covariance of the Besiroglu 2024 estimate in ``BESIROGLU2024_COORDS``, from
#: bootstrap refits (Huber objective, delta 1e-3) of the 4000 resamples of their
#: notebook (epoch-research/analyzing-chinchilla: ``np.random.seed(42)``, 240 rows)
#: computed with :func:`jscale.fitting.bootstrap`; its standard errors in natural
#: units are A 124.49, B 1293.17, E 0.0257, alpha 0.0154, beta 0.0206, against
#: their published 124.58, 1293.23, 0.03, 0.02, 0.02 (arXiv:2404.10102, Table 1).
#: log A and alpha are correlated at 0.9993, log B and beta at 0.9997: draw
#: jointly (a multivariate normal in these coordinates), never per parameter.
BESIROGLU2024_COVARIANCE = (
    (6.663097e-02, -2.776462e-02, 2.135316e-03, 3.971844e-03, -1.390603e-03),
    (-2.776462e-02, 1.772212e-01, 3.599859e-03, -1.723650e-03, 8.666866e-03),
    (2.135316e-03, 3.599859e-03, 1.988142e-04, 1.261208e-04, 1.753700e-04),
    (3.971844e-03, -1.723650e-03, 1.261208e-04, 2.370822e-04, -8.638512e-05),
    (-1.390603e-03, 8.666866e-03, 1.753700e-04, -8.638512e-05, 4.241198e-04),
)

#: The coordinates of :class:`ChinchillaParams`, field by field: E, A and B in log.
PARAMS_COORDS = ("log_E", "log_A", "log_B", "alpha", "beta")


def besiroglu2024_covariance(coords: Sequence[str] = PARAMS_COORDS) -> np.ndarray:
    """The covariance of Besiroglu 2024's estimate, in the coordinates ``coords``.

    :data:`BESIROGLU2024_COVARIANCE` is stored in Hoffmann's order
    (:data:`BESIROGLU2024_COORDS`); this is the one place that reorders it. The
    default, :data:`PARAMS_COORDS`, follows the fields of :class:`ChinchillaParams`
    (a normal over ``(log E, log A, log B, alpha, beta)``).

    Args:
      coords: the five names of :data:`BESIROGLU2024_COORDS` in the order wanted.

    Returns:
      The ``(5, 5)`` covariance, float64.

    Raises:
      ValueError: unless ``coords`` is an ordering of :data:`BESIROGLU2024_COORDS`.

    Examples:
      >>> from jscale.laws import chinchilla
      >>> cov = chinchilla.besiroglu2024_covariance()
      >>> float(cov[0, 0]) == chinchilla.BESIROGLU2024_COVARIANCE[2][2]  # log E
      True
    """
    coords = tuple(coords)
    if sorted(coords) != sorted(BESIROGLU2024_COORDS):
        raise ValueError(
            f"coords must be an ordering of {', '.join(BESIROGLU2024_COORDS)}; "
            f"got {', '.join(map(str, coords))}"
        )
    order = [BESIROGLU2024_COORDS.index(c) for c in coords]
    return np.asarray(BESIROGLU2024_COVARIANCE, np.float64)[np.ix_(order, order)]


PRESETS = {p.name: p for p in (HOFFMANN2022, HOFFMANN2022_UNROUNDED, BESIROGLU2024)}
