"""Broken neural scaling laws: smoothly broken power laws with any number of breaks.

Caballero, Gupta, Rish & Krueger 2022, "Broken Neural Scaling Laws"
(arXiv:2210.14891), Eq. 1:

``y = a + b x^(-c0) prod_{i=1..n} (1 + (x / d_i)^(1/f_i))^(-c_i f_i)``

- ``a``: the limit of ``y`` as ``x`` grows (the unimprovable value),
- ``b``: the offset of the first power-law segment on a log-log plot (> 0),
- ``c0``: the slope of the first segment,
- ``c_i``: the change of slope at break ``i`` (negative values bend upwards, as in
  double descent or an emergent ability),
- ``d_i``: where break ``i`` happens (> 0, in the units of ``x``),
- ``f_i``: the sharpness of break ``i`` (> 0; smaller is sharper).

Far from every break the law is a pure power law: between breaks ``k`` and
``k+1``, ``y - a ~ x^-(c0 + c_1 + ... + c_k)``. With ``n = 0`` breaks it is
``a + b x^-c0``.

The constants are task-specific, so the family is mostly used with fitted values;
the one preset reproduces Figure 1 of the paper.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from .._numerics import broadcast, log_softplus
from ._inputs import checked
from ._registry import Preset, family


class BNSLParams(NamedTuple):
    """Constants of a broken neural scaling law (Caballero 2022, Eq. 1).

    Attributes:
      a: limit of ``y`` for large ``x``.
      b: offset of the first segment (> 0).
      c0: slope of the first segment.
      c: slope changes, shape ``(n_breaks,)``.
      d: break locations (> 0), shape ``(n_breaks,)``.
      f: break sharpnesses (> 0), shape ``(n_breaks,)``.

    ``n_breaks`` may be 0 (empty ``c``, ``d``, ``f``). ``c``, ``d``, ``f`` may be
    tuples, NumPy or JAX arrays; tuples and NumPy arrays are treated like
    Python-float constants and take the dtype of ``x``. Many laws at once: a
    leading axis on every leaf (``c``, ``d``, ``f`` then ``(batch, n_breaks)``),
    used through ``jax.vmap`` or broadcast against ``x``.
    """

    a: ArrayLike
    b: ArrayLike
    c0: ArrayLike
    c: ArrayLike
    d: ArrayLike
    f: ArrayLike


def _breaks(value: ArrayLike, dtype) -> jax.Array:
    """Break constants as an array: JAX arrays as given, constants in ``dtype``."""
    if isinstance(value, jax.Array):
        return value
    return jnp.asarray(value, dtype=dtype)


@checked
def loss(params: BNSLParams, x: ArrayLike) -> jax.Array:
    """BNSL ``y = a + b x^-c0 prod_i (1 + (x/d_i)^(1/f_i))^(-c_i f_i)``.

    Caballero 2022, Eq. 1. The product is computed in log space as a sum of
    softplus terms, ``log(1 + (x/d_i)^(1/f_i)) = softplus((log x - log d_i) / f_i)``,
    so that ``y = a + exp(log b - c0 log x - sum_i c_i f_i softplus(...))``: no
    power of ``x`` is ever formed, which keeps very sharp breaks (``f_i`` = 0.05
    raises ``x/d_i`` to the 20th power) finite for ``x`` from 1 to 1e27 and beyond,
    in float32 too, with accurate gradients in every constant. The dtype follows
    ``x``.

    Args:
      params: the law's constants; ``c``, ``d``, ``f`` of equal length.
      x: the quantity being scaled (> 0), any shape.

    Returns:
      ``y``, with the shape of ``x`` (broadcast against leading axes of the
      params). Under ``jax.jit``, elements with a non-positive or non-finite ``x``
      are NaN.

    Raises:
      ValueError: for concrete non-positive, NaN or infinite ``x``, or ``c``, ``d``,
        ``f`` of different lengths.

    Examples:
      >>> from jscale.laws import bnsl
      >>> # No breaks: a plain power law a + b x^-c0.
      >>> p = bnsl.BNSLParams(a=1.0, b=10.0, c0=0.5, c=(), d=(), f=())
      >>> float(bnsl.loss(p, 100.0))
      2.0
      >>> # One sharp break at x = 1e4 steepens the slope from -0.5 to -1.5.
      >>> q = p._replace(c=(1.0,), d=(1e4,), f=(0.01,))
      >>> round(float(bnsl.loss(q, 1e6)), 4)
      1.0001
    """
    log_x = jnp.log(x)
    c, d, f = (_breaks(v, log_x.dtype) for v in (params.c, params.d, params.f))
    lengths = [jnp.shape(v)[-1] if jnp.ndim(v) else None for v in (c, d, f)]
    if None in lengths or len(set(lengths)) != 1:
        raise ValueError(
            "BNSLParams c, d and f must be arrays with the same last axis "
            f"(n_breaks); got shapes {jnp.shape(c)}, {jnp.shape(d)}, {jnp.shape(f)}"
        )
    lx, c, d, f = broadcast(log_x[..., None], c, d, f)
    log_product = jnp.sum(_log_break(lx - jnp.log(d), c, f), axis=-1)
    return params.a + jnp.exp(jnp.log(params.b) - params.c0 * log_x - log_product)


def _log_break(log_ratio: jax.Array, c: jax.Array, f: jax.Array) -> jax.Array:
    """``c f softplus(log_ratio / f)``, the log of break ``i``'s factor, negated.

    Split as ``softplus(z) = max(z, 0) + softplus(-|z|)`` so that the large part,
    ``c f max(z, 0) = c max(log(x/d), 0)``, never multiplies and divides by ``f``.
    Past a sharp break the direct form's gradient in ``f``,
    ``c (softplus(z) - z sigmoid(z))``, is a difference of two numbers near ``z``
    (3% off in float32 at z = 11); here it is formed from the small remainder only.
    The ``where`` pair (``relu`` and ``-|.|`` on the same condition) gives the
    exact derivative ``c sigmoid(0)`` at ``x = d``.
    """
    past = log_ratio > 0
    relu = jnp.where(past, log_ratio, 0.0)
    neg_abs = jnp.where(past, -log_ratio, log_ratio)
    return c * relu + c * f * log_softplus(neg_abs / f)


FAMILY = family(
    "bnsl", BNSLParams, loss, "y = a + b x^-c0 prod_i (1 + (x/d_i)^(1/f_i))^(-c_i f_i)"
)

CABALLERO2022_FIGURE1 = Preset(
    name="caballero2022-figure1",
    family=FAMILY,
    params=BNSLParams(
        a=1e-3,
        b=4.66e3,
        c0=0.05,
        c=(0.49, -0.811, 2.1),
        d=(3e6, 1e14, 2e20),
        f=(1.1, 1.425, 0.05),
    ),
    citation=(
        "Caballero, Gupta, Rish & Krueger 2022, Broken Neural Scaling Laws, "
        "arXiv:2210.14891, Eq. 1 and Figure 1 (constants from "
        "make_figure_1__decomposition_of_bnsl_into_power_law_segments.py in "
        "ethancaballero/broken_neural_scaling_laws)"
    ),
    units="x: the quantity being scaled (illustrative); y: the evaluation metric",
    notes=(
        "Three breaks, the second bending upwards (c_2 < 0) and the third very sharp "
        "(f_3 = 0.05; the script sets f_3 = 0.3 and then overrides it with 0.05). "
        "Illustrative constants, not a fit to data."
    ),
)

PRESETS = {p.name: p for p in (CABALLERO2022_FIGURE1,)}
