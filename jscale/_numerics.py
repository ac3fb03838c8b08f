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


def weak(x):
    """Python ``bool``/``int`` scalars as Python floats (weakly typed in JAX).

    A Python number then takes the dtype of the arrays it meets, so a float32 array
    stays float32 under x64 even next to ``n_devices=1000``.
    """
    return float(x) if isinstance(x, (bool, int)) else x


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


def padded_size(n: int, multiple: int) -> int:
    """The length a batch of ``n`` items is padded to: ``n`` rounded up to a
    multiple of ``multiple``, and at least one ``multiple`` (an empty batch too).

    The one padding rule of jscale's chunked computations (Monte Carlo blocks,
    sweep lanes): every chunk is evaluated at a fixed length, so one compiled
    program serves every batch size, and XLA never sees the short arrays that it
    compiles differently.

    Examples:
      >>> padded_size(1000, 128), padded_size(1024, 128), padded_size(0, 128)
      (1024, 1024, 128)
    """
    return max(-(-n // multiple), 1) * multiple


def pad_to(x, size: int, *, axis: int = 0, value=None):
    """``x`` padded along ``axis`` to length ``size`` (see :func:`padded_size`).

    The padding holds ``value`` or, by default, copies of the last entry along
    ``axis`` (so padded lanes compute on a valid input and are dropped after).
    NumPy arrays stay NumPy (host-side index arrays); anything else becomes a JAX
    array (traced values included).

    Examples:
      >>> import numpy as np
      >>> pad_to(np.arange(3), 5)
      array([0, 1, 2, 2, 2])
      >>> pad_to(np.ones((2, 1)), 3, axis=1, value=0.0).tolist()
      [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]
    """
    xp = np if isinstance(x, np.ndarray) else jnp
    x = xp.asarray(x)
    axis = axis % x.ndim
    n = x.shape[axis]
    if size < n:
        raise ValueError(f"cannot pad length {n} down to {size}")
    if size == n:
        return x
    shape = x.shape[:axis] + (size - n,) + x.shape[axis + 1 :]
    if value is None:
        last = x[(slice(None),) * axis + (slice(n - 1, n),)]
        fill = xp.broadcast_to(last, shape)
    else:
        fill = xp.full(shape, value, x.dtype)
    return xp.concatenate([x, fill], axis=axis)
