"""The scalar coordinates of a pytree, and their names.

A distribution draws the scalar entries of a parameter pytree (a ``*Params``
NamedTuple, a dict, a tuple of arrays) in leaf order, and results name the entries
of an output pytree the same way: ``"E"`` for a NamedTuple field, ``"a.b"``
nested, ``"value"`` for a bare array and ``"name[j]"`` for the entries of a vector.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .._numerics import default_float


def _path_name(path) -> str:
    parts = []
    for key in path:
        for attr in ("name", "key", "idx"):
            if hasattr(key, attr):
                parts.append(str(getattr(key, attr)))
                break
        else:
            parts.append(str(key))
    return ".".join(parts)


def _leaf_names(tree) -> list[str]:
    """One name per scalar coordinate of ``tree`` (array leaves get ``[j]``)."""
    names = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        base = _path_name(path) or "value"
        size = int(np.size(leaf))
        if np.ndim(leaf) == 0:
            names.append(base)
        else:
            names.extend(f"{base}[{j}]" for j in range(size))
    return names


def _dtype_of(*trees) -> jnp.dtype:
    leaves = [x for t in trees for x in jax.tree_util.tree_leaves(t)]
    dtype = jnp.result_type(*leaves) if leaves else default_float()
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = default_float()
    return jnp.dtype(jax.dtypes.canonicalize_dtype(dtype))


def _take(u: jax.Array, pos: int, shape: tuple[int, ...]) -> jax.Array:
    """Coordinates ``pos ..`` as an array of ``batch + shape``."""
    if shape == ():
        return u[pos]
    size = int(np.prod(shape))
    return jnp.stack(u[pos : pos + size], -1).reshape(u[0].shape + shape)


def _expand(x: jax.Array, batch_ndim: int) -> jax.Array:
    """A per-leaf constant of shape ``s`` as ``(1,) * batch_ndim + s``."""
    return jnp.reshape(x, (1,) * batch_ndim + x.shape) if x.ndim else x


def _map_leaves(fn, u, *trees):
    """Apply ``fn(u_leaf, *leaves)`` leaf by leaf, handing each its coordinates."""
    first, treedef = jax.tree_util.tree_flatten(trees[0])
    others = [jax.tree_util.tree_leaves(t) for t in trees[1:]]
    out, pos = [], 0
    batch_ndim = u[0].ndim
    for k, leaf in enumerate(first):
        shape = tuple(np.shape(leaf))
        uu = _take(u, pos, shape)
        pos += int(np.prod(shape))
        consts = [_expand(jnp.asarray(leaf), batch_ndim)]
        consts += [_expand(jnp.asarray(o[k]), batch_ndim) for o in others]
        out.append(fn(uu, *consts))
    return jax.tree_util.tree_unflatten(treedef, out)


def _flat_coords(tree, dtype) -> list[jax.Array]:
    """Every scalar coordinate of ``tree`` as a 0-d array, in leaf order."""
    out = []
    for leaf in jax.tree_util.tree_leaves(tree):
        a = jnp.asarray(leaf, dtype).reshape(-1)
        out.extend(a[j] for j in range(a.shape[0]))
    return out


def _unflatten_coords(tree, coords: list[jax.Array]):
    """Coordinates back into ``tree``'s structure (array leaves stacked last)."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    out, pos = [], 0
    for leaf in leaves:
        shape = tuple(np.shape(leaf))
        out.append(_take(coords, pos, shape))
        pos += int(np.prod(shape))
    return jax.tree_util.tree_unflatten(treedef, out)


def _concrete_coords(tree) -> list[float | None]:
    out = []
    for leaf in jax.tree_util.tree_leaves(tree):
        if isinstance(leaf, jax.core.Tracer):
            out.extend([None] * int(np.size(leaf)))
        else:
            out.extend(np.asarray(leaf, np.float64).reshape(-1).tolist())
    return out


def _columns(out, dtype) -> tuple[list[str], list[jax.Array]]:
    """Flatten a batched output pytree into named ``(n,)`` columns."""
    names, cols = [], []
    for path, leaf in jax.tree_util.tree_flatten_with_path(out)[0]:
        leaf = jnp.asarray(leaf)
        base = _path_name(path) or "value"
        flat = leaf.reshape(leaf.shape[0], -1).astype(dtype)
        if leaf.ndim == 1:
            names.append(base)
            cols.append(flat[:, 0])
        else:
            for j in range(flat.shape[1]):
                names.append(f"{base}[{j}]")
                cols.append(flat[:, j])
    return names, cols
