"""Counter-based random numbers: draw ``i`` depends only on the key and on ``i``.

Coordinate ``c`` of draw ``i`` is one counter-mode Threefry-2x32 call (Salmon et
al. 2011, the generator behind ``jax.random``) under the user's key, on the
counter ``(dim * (i >> 32) + c, i & 0xffffffff)``; float32 takes 23 bits of the
two output words XORed (as ``jax.random`` does), float64 52 bits of both. So no
draw depends on the chunk it falls in, and every statistic of
:mod:`jscale.montecarlo` is bit-identical for any chunk size (tested). This is
``jax.random.fold_in(key, i)`` followed by sampling with the folded key, with the
fold and the sampling merged into one hash per coordinate. Measured on the 2-core
CPU of jscale's benchmarks (float32, the five normals of a Chinchilla draw, CPU
time per draw): ``vmap`` of ``fold_in`` and ``jax.random.normal``, 145 ns; the
literal fold-in followed by counter-mode words under the folded key, 47 ns; the
merged counter, 33 ns. Threefry is written out here in ``jax.numpy`` (20 rounds,
unrolled), bit-identical to ``jax.random``'s primitive (tested), so that XLA fuses
it with the rest of a draw: hashing is about six times cheaper on CPU than through
the primitive. Normals are ``sqrt(2) erfinv(2u - 1)``, as in
``jax.random.normal``. Keys must use the default ``threefry2x32`` implementation.

A draw index is held as two uint32 words ``(hi, lo)``, so streams pass 2^32 draws
without wrapping, in float32 as in float64.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_SQRT2 = math.sqrt(2.0)


def _rotl(x: jax.Array, r: int) -> jax.Array:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def _threefry2x32(k0, k1, x0, x1) -> tuple[jax.Array, jax.Array]:
    """Threefry-2x32, 20 rounds (Salmon et al. 2011, "Parallel random numbers: as
    easy as 1, 2, 3"), written out so that XLA fuses it with its consumers.

    Bit-identical to ``jax.extend.random.threefry_2x32``; all inputs uint32 and
    broadcasting.
    """
    k2 = k0 ^ k1 ^ np.uint32(0x1BD11BDA)
    ks = (k0, k1, k2)
    x0 = x0 + k0
    x1 = x1 + k1
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x0 = x0 + x1
            x1 = _rotl(x1, r) ^ x0
        x0 = x0 + ks[(i + 1) % 3]
        x1 = x1 + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x0, x1


def _key_words(key) -> tuple[jax.Array, jax.Array]:
    """The two uint32 words of a single threefry key (typed or raw)."""
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        raise ValueError(
            "key must be a jax.random key (jax.random.key(seed)), not an int; "
            f"got {key!r}"
        )
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        impl = str(jax.random.key_impl(key))
        if "threefry" not in impl:
            raise ValueError(
                f"key must use the threefry2x32 implementation (the default); got "
                f"{impl!r}"
            )
        if jnp.shape(key) != ():
            raise ValueError(f"key must be a single key; got shape {jnp.shape(key)}")
        data = jax.random.key_data(key)
    else:
        data = jnp.asarray(key)
        if data.dtype != jnp.uint32 or data.shape != (2,):
            raise ValueError(
                "key must be a jax.random key (jax.random.key(seed)) or a raw "
                f"uint32[2] PRNGKey; got dtype {data.dtype}, shape {data.shape}"
            )
    return data[0], data[1]


def _typed(key):
    """A typed key from a typed or raw threefry key (for ``fold_in``)."""
    k0, k1 = _key_words(key)
    return jax.random.wrap_key_data(jnp.stack([k0, k1]), impl="threefry2x32")


def _units(k0, k1, hi, lo, dim: int, dtype) -> jax.Array:
    """``(dim,) + hi.shape`` uniforms in (0, 1) for the draws with index words
    ``(hi, lo)``.

    Coordinate ``c`` of draw ``i`` hashes the counter ``(dim * hi + c, lo)``.
    float32: 23 bits of ``y0 ^ y1`` (as ``jax.random`` folds a word pair),
    ``(k + 1/2) 2^-23``; float64: 52 bits of the pair, ``(k + 1/2) 2^-52``. Both
    are exact, symmetric about 1/2 and never 0 or 1.
    """
    dtype = jnp.dtype(dtype)
    coord = jnp.arange(dim, dtype=jnp.uint32).reshape((dim,) + (1,) * hi.ndim)
    y0, y1 = _threefry2x32(k0, k1, hi[None] * np.uint32(dim) + coord, lo[None])
    if dtype == jnp.float64:
        k = (y0 >> np.uint32(12)).astype(jnp.int32).astype(dtype) * 4294967296.0
        return (k + y1.astype(dtype) + 0.5) * 2.0**-52
    k = ((y0 ^ y1) >> np.uint32(9)).astype(jnp.int32).astype(dtype)
    return (k + 0.5) * np.float32(2.0**-23)


def _index_words(index: jax.Array) -> tuple[jax.Array, jax.Array]:
    if jnp.dtype(index.dtype).itemsize == 8:
        lo = (index & 0xFFFFFFFF).astype(jnp.uint32)
        hi = (index >> 32).astype(jnp.uint32)
    else:
        lo = index.astype(jnp.uint32)
        hi = jnp.zeros_like(lo)
    return hi, lo


def _start_words(start: int) -> tuple[np.uint32, np.uint32]:
    """Index words ``(hi, lo)`` of draw ``start`` (a Python int), on the host."""
    return np.uint32(start >> 32), np.uint32(start & 0xFFFFFFFF)


def _range_words(start: int, size: int) -> tuple[jax.Array, jax.Array]:
    """Index words of draws ``start .. start + size - 1`` (carry across 2^32)."""
    return _offset_words(*_start_words(start), size)


def _offset_words(s_hi, s_lo, size: int) -> tuple[jax.Array, jax.Array]:
    lo = s_lo + jnp.arange(size, dtype=jnp.uint32)
    hi = s_hi + (lo < s_lo).astype(jnp.uint32)
    return hi, lo


def _normal(u: jax.Array) -> jax.Array:
    """Standard normal from a uniform in (0, 1): ``sqrt(2) erfinv(2u - 1)``."""
    return _SQRT2 * jax.lax.erf_inv(2.0 * u - 1.0)
