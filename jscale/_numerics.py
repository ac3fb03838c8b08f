"""Private numeric helpers: dtype handling and log-space arithmetic."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike


def default_float() -> jnp.dtype:
    """The floating dtype JAX uses by default: float64 under x64, else float32."""
    return jnp.dtype(jax.dtypes.canonicalize_dtype(jnp.float64))


def asfloat(x: ArrayLike) -> jax.Array:
    """``x`` as a floating array; integers and bools become the default float.

    Floating inputs keep their dtype (and Python scalars stay weakly typed), so the
    result dtype of a law follows its inputs.
    """
    if isinstance(x, int) and not isinstance(x, bool):
        # A Python int becomes a weakly typed float, like a Python float: it must
        # neither overflow int32 (3e9 tokens) nor promote float32 arrays to float64.
        return jnp.asarray(float(x))
    if isinstance(x, (list, tuple)):
        # Python ints beyond int32 (3e9 tokens) must not pass through an int dtype.
        x = np.asarray(x)
        if not np.issubdtype(x.dtype, np.inexact):
            x = x.astype(np.float64)
        return jnp.asarray(x, dtype=default_float())
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        x = x.astype(default_float())
    return x


def broadcast(*arrays: jax.Array) -> list[jax.Array]:
    """Broadcast explicitly (safe under ``jax_numpy_rank_promotion='raise'``)."""
    shape = jnp.broadcast_shapes(*(jnp.shape(a) for a in arrays))
    return [jnp.broadcast_to(a, shape) for a in arrays]


def power_term(log_coef: ArrayLike, exponent: ArrayLike, log_x: ArrayLike) -> jax.Array:
    """``exp(log_coef - exponent * log_x)``, i.e. ``coef / x**exponent`` in log space.

    ``x ** a`` lowers to a power op that is several times slower than one ``exp``
    and one ``log``; writing the term this way also keeps 1e27-sized quantities out
    of float32.
    """
    return jnp.exp(log_coef - exponent * log_x)


def log_softplus(z: ArrayLike) -> jax.Array:
    """``log(1 + exp(z))`` without overflow; gradients finite everywhere."""
    return jnp.logaddexp(0.0, z)
