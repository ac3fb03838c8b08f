"""Sweeps: a function evaluated over a :class:`~jscale.sweep.Grid` in padded,
fixed-shape chunks, sharded over the local devices (:func:`sweep`)."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, TextIO

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_whole
from .._numerics import pad_to, padded_size
from .checkpoint import _canonical
from .chunks import _to_host, run_chunks
from .grid import Grid, _is_static
from .results import SweepResult

#: Lanes per device: every chunk is evaluated as an array of a multiple of this
#: many elements per device (padded with copies of the chunk's last point). XLA:CPU
#: compiles short arrays differently: float32 ``log`` on arrays of 3, 5, 6, 7, 11,
#: 13, 14 or 15 elements differs in the last bit from longer arrays on ~4% of
#: inputs, and shape ``(1,)`` is simplified to scalar code that changes the
#: allocation solvers' results in the last bits (float32 and float64). From 16
#: elements up no difference was found, so 128 leaves a wide margin; then results
#: do not depend on the chunk size.
LANES = 128


def _leaf_name(path) -> str:
    parts = []
    for depth, key in enumerate(path):
        if isinstance(key, jax.tree_util.DictKey):
            parts.append(str(key.key))
        elif isinstance(key, jax.tree_util.GetAttrKey):
            parts.append(key.name)
        elif isinstance(key, jax.tree_util.SequenceKey):
            parts.append(f"output_{key.idx}" if depth == 0 else str(key.idx))
        else:
            parts.append(str(getattr(key, "key", key)))
    return ".".join(parts) or "value"


def _default_mesh(mesh):
    if mesh is not None:
        if not isinstance(mesh, jax.sharding.Mesh):
            raise ValueError(
                f"mesh must be a jax.sharding.Mesh or None; got {type(mesh).__name__}"
            )
        return mesh
    if jax.device_count() > 1:
        return jax.sharding.Mesh(np.array(jax.devices()), ("batch",))
    return None


def _function_name(fn) -> str:
    module = getattr(fn, "__module__", None) or ""
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"{module}.{name}" if module else name


@partial(jax.jit, static_argnums=(0, 2))
def _evaluate(fn, numeric, labels):
    """``fn`` on one chunk; jitted with ``fn`` and the labels static, so sweeps of
    the same function reuse the compiled program."""
    return fn(**numeric, **dict(labels))


def sweep(
    fn: Callable[..., Any],
    grid: Grid,
    *,
    chunk_size: int = 4096,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool | TextIO = True,
    mesh: jax.sharding.Mesh | None = None,
    config: Mapping | None = None,
    description: str = "sweep",
) -> SweepResult:
    """Evaluate ``fn`` at every point of ``grid`` in fixed-shape, resumable chunks.

    ``fn(**point)`` receives one keyword per coordinate of ``grid``: numeric
    coordinates as 1-D arrays of the default float dtype (float32, or float64
    under x64; booleans stay boolean), a batch of points; string coordinates
    (categorical) as Python ``str``, the same for the whole batch. It returns a
    pytree of arrays whose leading axis is that batch (any jscale function of
    elementwise inputs does, e.g. ``allocation.optimal(law, compute_flops)`` or an
    :mod:`jscale.accounting` conversion); each point's outputs must depend only on
    that point's inputs. Outputs are named after their NamedTuple fields (in
    order; ``None`` fields are skipped), dict keys (sorted, as JAX flattens dicts;
    nested names are joined with ``.``), ``output_<i>`` for a tuple, or ``value``
    for a single array.

    Execution. Points sharing their categorical labels are evaluated together,
    ``chunk_size`` points per chunk (at most the number of such points); each
    chunk is padded to a fixed shape (a multiple of :data:`LANES` per device, with
    copies of its last point) and the padding dropped, so ``fn`` is traced and
    compiled once per combination of labels (once in all without categorical
    coordinates). Results are bit-identical whatever the chunk size, the device
    count, or interruptions (see :data:`LANES` for why the padding matters; the
    tests check this on XLA:CPU, in float32 and float64, for the allocation
    solvers).
    Chunks run through :func:`run_chunks`: progress on stderr, and with
    ``checkpoint`` a checkpoint after every chunk and ``resume=True`` to continue
    (the checkpoint records ``fn``'s qualified name, the grid's coordinates, the
    chunk size and the dtype; pass ``config`` for anything else that determines
    the results, such as parameters ``fn`` closes over).

    Devices. With more than one device (or a ``mesh``), each chunk is laid out over
    the batch axis with :class:`jax.sharding.NamedSharding` on a
    :class:`jax.sharding.Mesh` (all of the mesh's axes shard the batch; default: a
    1-D mesh over ``jax.devices()``), and XLA partitions ``fn`` across them;
    results are identical to one device. Several hosts: call
    :func:`jax.distributed.initialize` (coordinator address, process count and id;
    automatic on Cloud TPU and Slurm) in every process before using JAX, then run
    the same ``sweep`` in every process: ``jax.devices()`` then spans all hosts, each
    chunk is assembled from the points every process computes alike
    (:func:`jax.make_array_from_callback`), outputs are gathered to every process,
    and process 0 writes the checkpoint (use a directory all processes can read).
    The test suite exercises one process with four devices, not several hosts.

    Args:
      fn: ``fn(**point) -> pytree of arrays``.
      grid: the points (:class:`Grid`).
      chunk_size: points per chunk (>= 1); sets memory use, checkpoint frequency
        and progress granularity, not the results.
      checkpoint, resume, overwrite, progress: as in :func:`run_chunks`.
      mesh: devices to shard each chunk over (default: all, when more than one).
      config: JSON-ready dict of further settings that identify the run.
      description: label of the progress bar.

    Returns:
      A :class:`SweepResult` with outputs shaped like the grid.

    Raises:
      ValueError: for bad arguments, outputs without the batch axis, or a
        checkpoint that does not match (:class:`CheckpointError`).

    Examples:
      >>> from jscale import allocation
      >>> g = Grid(compute_flops=[1e22, 1e23, 1e24])
      >>> r = sweep(lambda compute_flops: allocation.optimal(
      ...     "chinchilla-hoffmann2022", compute_flops), g, progress=False)
      >>> r.dims, r["n_params"].shape, sorted(r.data)[:3]
      (('compute_flops',), (3,), ['compute_flops', 'loss', 'n_params'])
      >>> round(float(r["n_params"][2]) / 1e9, 1)
      41.3
    """
    if not callable(fn):
        raise ValueError(f"fn must be callable; got {type(fn).__name__}")
    if not isinstance(grid, Grid):
        raise ValueError(f"grid must be a Grid; got {type(grid).__name__}")
    chunk_size = check_whole("chunk_size", chunk_size)
    mesh = _default_mesh(mesh)
    devices = 1 if mesh is None else int(mesh.devices.size)
    groups = grid._groups()
    largest = max(math.prod(len(i) for i in index) for _, index in groups)
    chunk = min(chunk_size, largest)
    per_device = padded_size(-(-chunk // devices), LANES)
    padded = per_device * devices
    sharding = None
    if mesh is not None:
        spec = jax.sharding.PartitionSpec(tuple(mesh.axis_names))
        sharding = jax.sharding.NamedSharding(mesh, spec)
    dtype = jnp.dtype(jax.dtypes.canonicalize_dtype(np.float64))

    plan = []  # (group, start, stop) per chunk
    for g, (_, index) in enumerate(groups):
        size = math.prod(len(i) for i in index)
        plan.extend((g, s, min(s + chunk, size)) for s in range(0, size, chunk))

    numeric_names = [c for c, v in grid.coords.items() if not _is_static(v)]

    def positions(i):
        g, start, stop = plan[i]
        labels, index = groups[g]
        pos = pad_to(np.arange(start, stop), padded)  # copies of the last point
        local = np.unravel_index(pos, tuple(len(ix) for ix in index))
        return (
            labels,
            [ix[loc] for ix, loc in zip(index, local, strict=True)],
            stop - start,
        )

    def place(x):
        if sharding is None:
            return jax.device_put(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])

    def step(carry, i):
        labels, where, n = positions(i)
        by_dim = dict(zip(grid.dims, where, strict=True))
        numeric = {}
        for c in numeric_names:
            values = grid.coords[c][by_dim[grid.coord_dims[c]]]
            if values.dtype.kind != "b":
                values = values.astype(dtype)
            numeric[c] = place(values)
        out = _evaluate(fn, numeric, tuple(sorted(labels.items())))
        leaves = jax.tree_util.tree_leaves_with_path(out)
        host = {}
        for path, leaf in leaves:
            name = _leaf_name(path)
            if np.ndim(leaf) == 0 or np.shape(leaf)[0] != padded:
                raise ValueError(
                    f"fn's output {name!r} has shape {np.shape(leaf)}; every output "
                    f"needs the batch of points as its leading axis ({padded} here)"
                )
            host[name] = np.asarray(_to_host(leaf))[:n]
        if len(host) != len(leaves):
            raise ValueError(f"fn's outputs must have distinct names; got {list(host)}")
        return carry, host

    run_config = {
        "kind": "jscale.sweep",
        "version": 1,
        "fn": _function_name(fn),
        "grid": grid.describe(),
        "chunk_size": chunk,
        "lanes": LANES,
        "dtype": str(dtype),
        "user": _canonical(dict(config or {})),
    }
    _, chunks = run_chunks(
        step,
        None,
        len(plan),
        checkpoint=checkpoint,
        config=run_config,
        resume=resume,
        overwrite=overwrite,
        progress=progress,
        description=description,
        chunk_items=chunk,
    )
    chunks = chunks or []
    data: dict[str, np.ndarray] = {}
    for i, out in enumerate(chunks):
        _, where, _ = positions(i)
        n = plan[i][2] - plan[i][1]
        flat = np.ravel_multi_index([w[:n] for w in where], grid.shape)
        for name, values in out.items():
            if name not in data:
                data[name] = np.empty((grid.size,) + values.shape[1:], values.dtype)
            data[name][flat] = values
    data = {k: v.reshape(grid.shape + v.shape[1:]) for k, v in data.items()}
    info = {
        "chunk_size": chunk,
        "padded_chunk": padded,
        "num_chunks": len(plan),
        "devices": devices,
    }
    return SweepResult(grid, data, info)
