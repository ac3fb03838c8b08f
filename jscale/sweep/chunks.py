"""Chunked, resumable execution: :func:`run_chunks`, a ``lax.scan`` driven from
Python one chunk at a time, with progress, checkpoints and resume."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, TextIO

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_whole
from .checkpoint import CheckpointError, _Checkpoint
from .progress import _make_progress


def _strong(x) -> jax.Array:
    """``x`` as a JAX array without weak typing (so a restored carry, which is read
    back strongly typed, gives the next chunk exactly the same input types)."""
    x = jnp.asarray(x)
    return jnp.asarray(x, dtype=x.dtype) if x.weak_type else x


def _to_host(tree) -> Any:
    """A pytree of arrays as NumPy arrays on the host (gathered across processes)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.tree_util.tree_map(np.asarray, tree)


def _leaves_of(tree) -> tuple[list, Any]:
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return leaves, treedef


def run_chunks(
    step: Callable[[Any, int], tuple[Any, Any]],
    init: Any,
    num_chunks: int,
    *,
    checkpoint: str | os.PathLike | None = None,
    config: Mapping | None = None,
    resume: bool = False,
    progress: bool | TextIO = True,
    description: str = "",
    chunk_items: int | None = None,
    overwrite: bool = False,
) -> tuple[Any, list | None]:
    """Run ``step`` over chunks ``0 .. num_chunks - 1`` with checkpoints and resume.

    ``carry, out_i = step(carry, i)`` for ``i = 0, 1, ..., num_chunks - 1``, starting
    from ``init``: a ``lax.scan`` driven from Python, one chunk at a time, so that
    each chunk is a separate (usually jitted) call with fixed shapes, progress can
    be shown, and the run can be saved and resumed.

    The contract, which :mod:`jscale.montecarlo` and :func:`sweep` build on:

    - ``step(carry, i)`` is any Python callable, usually wrapping a jitted
      function; ``i`` is the chunk index as a Python ``int`` (e.g. derive random
      keys with ``jax.random.fold_in(key, i)``, or the global index of the first
      item as ``i * chunk_size``). ``carry`` is a pytree of arrays (or ``None``)
      with the same structure, shapes and dtypes after every chunk, as in
      ``lax.scan``; it is passed to the step as JAX arrays, never weakly typed.
      The step returns the new carry and that chunk's outputs, a pytree of arrays
      with the same structure for every chunk, or ``None``.
    - Returns ``(carry, outputs)``: the carry after the last chunk, and the list of
      the ``num_chunks`` per-chunk outputs as NumPy pytrees on the host (in chunk
      order; chunks restored from a checkpoint included), or ``None`` when the step
      returns no outputs. Outputs are not concatenated: chunks may hold padding
      that only the caller can drop (:func:`sweep` does).
    - The result does not depend on whether, or where, the run was interrupted:
      a resumed run passes the step exactly the carry (bits, dtypes and shapes)
      that the uninterrupted run passed. Place the carry explicitly inside the step
      (e.g. ``jax.jit(..., in_shardings=...)``) if the compiled program depends on
      where it lives.

    Checkpoints. With ``checkpoint=DIR``, after each chunk its outputs are written
    to their own file (``chunk-NNNNNN.npz``; the cost per chunk is proportional to
    the chunk, not to the run), then the carry (``carry-NNNNNN.npz``), then a
    state file naming the completed chunks; every file is written to a temporary
    file in ``DIR``, flushed to disk (``fsync``) and renamed over its target
    (``os.replace``), so a crash (even ``SIGKILL``) leaves the last complete
    checkpoint intact. ``manifest.json`` holds ``config``, a fingerprint (sha256 of
    ``config`` and ``num_chunks``) and, like the other files, checksums (sha256):

    - ``resume=True`` verifies the manifest against ``config`` (a mismatch raises
      :class:`CheckpointError`, a ``ValueError``, naming the settings that differ)
      and every file against its checksum (a damaged or truncated file raises,
      naming it, rather than giving silently wrong results), then continues from
      the first chunk not completed. An empty or missing ``DIR`` starts afresh,
      so ``resume=True`` is safe to pass always. (Resuming a finished run traces
      the step once with :func:`jax.eval_shape`, computing nothing, to recover the
      structure of its outputs.)
    - Without ``resume``, a ``DIR`` with content is refused (the message suggests
      ``resume=True`` / ``--resume``) unless ``overwrite=True``, which deletes the
      checkpoint files there (and refuses if ``DIR`` holds other files).

    ``config`` is a JSON-serializable dict the caller builds from everything that
    determines the results: the function, its parameters, chunk size, dtype,
    total size and so on; it is required with ``checkpoint``. One process writes a
    checkpoint at a time. With several processes (:func:`jax.distributed.initialize`)
    every process runs the same chunks, outputs are gathered to every host, and
    process 0 alone writes, to a directory every process can read.

    Progress. ``progress=True`` draws a bar on stderr: ``chunk k/n``, percent,
    items/s (``chunk_items`` items per chunk; chunks/s without it) and the ETA,
    with the rate measured after the first chunk of the session so compilation
    does not skew it. On a terminal the line is redrawn in place; when stderr is
    not a terminal (logs, pipes) a line is printed every 30 s at most, so short
    runs stay silent. ``progress=False`` is silent; a text stream (anything with
    ``write``) gets a line after every chunk.

    Args:
      step: ``step(carry, i) -> (carry, outputs)``.
      init: the initial carry (a pytree of arrays, or ``None``).
      num_chunks: how many chunks (>= 0).
      checkpoint: a directory for checkpoints, or ``None``.
      config: JSON-serializable dict identifying the run (required with
        ``checkpoint``).
      resume: continue from ``checkpoint``.
      progress: ``True`` (stderr), ``False`` or a text stream.
      description: a label for the progress line.
      chunk_items: items per chunk, for the items/s rate.
      overwrite: discard an existing checkpoint in ``checkpoint``.

    Returns:
      ``(carry, outputs)`` as described above.

    Raises:
      ValueError: for bad arguments, or a step whose carry or outputs change
        structure; :class:`CheckpointError` (a ``ValueError``) for a checkpoint
        written by another configuration, damaged, or in the way.

    Examples:
      A running sum over chunks of ten items, with each chunk's mean as output:

      >>> import jax, jax.numpy as jnp
      >>> @jax.jit
      ... def chunk(total, start):
      ...     x = start + jnp.arange(10.0)
      ...     return total + x.sum(), x.mean()
      >>> total, means = run_chunks(
      ...     lambda c, i: chunk(c, 10.0 * i), jnp.zeros(()), 3, progress=False
      ... )
      >>> float(total), [float(m) for m in means]
      (435.0, [4.5, 14.5, 24.5])

      Checkpointed and resumed (a finished run resumes to the same answer):

      >>> import tempfile
      >>> d = tempfile.mkdtemp()
      >>> def run(size=10, **kw):
      ...     cfg = {"fn": "chunk", "chunk_size": size}
      ...     step = lambda c, i: chunk(c, 10.0 * i)
      ...     return run_chunks(step, jnp.zeros(()), 3, checkpoint=d, config=cfg,
      ...                       progress=False, **kw)
      >>> float(run()[0]), float(run(resume=True)[0])
      (435.0, 435.0)
      >>> run(20, resume=True)
      Traceback (most recent call last):
      ...
      jscale.sweep.checkpoint.CheckpointError: checkpoint ... configuration: config.chunk_size was 10, now 20; ...
    """  # noqa: E501
    num_chunks = check_whole("num_chunks", num_chunks, minimum=0)
    if chunk_items is not None:
        chunk_items = check_whole("chunk_items", chunk_items)
    init_leaves, init_def = _leaves_of(init)
    carry = jax.tree_util.tree_unflatten(init_def, [_strong(x) for x in init_leaves])
    ckpt = None
    if checkpoint is not None:
        if config is None:
            raise ValueError(
                "config is required with checkpoint: a JSON-serializable dict of "
                "everything that determines the results (function, parameters, "
                "chunk size, dtype, total size), so that resume can verify it"
            )
        ckpt = _Checkpoint(
            checkpoint,
            config,
            num_chunks,
            resume=resume,
            overwrite=overwrite,
            writer=jax.process_index() == 0,
        )
    elif resume:
        raise ValueError("resume=True needs checkpoint (the directory to resume from)")

    start, restored, restored_def = 0, [], None
    if ckpt is not None and not ckpt.fresh:
        start, carry_leaves, restored, restored_def = ckpt.load(init_def)
        if carry_leaves is not None:
            _check_like(carry_leaves, init_leaves, "the restored carry")
            carry = jax.tree_util.tree_unflatten(
                init_def, [jnp.asarray(x) for x in carry_leaves]
            )

    bar = _make_progress(progress, num_chunks, start, chunk_items, description)
    outputs: list = []
    out_def = None
    for i in range(start, num_chunks):
        carry, out = step(carry, i)
        leaves, carry_def = _leaves_of(carry)
        if carry_def != init_def:
            raise ValueError(
                f"step({i}) returned a carry with structure {carry_def}; expected "
                f"the structure of init, {init_def}"
            )
        carry = jax.tree_util.tree_unflatten(carry_def, [_strong(x) for x in leaves])
        out = _to_host(out)
        out_leaves, this_def = _leaves_of(out)
        if out is None:
            this_def = None
        if i == start:
            out_def = this_def
            if start > 0 and str(this_def) != str(restored_def):
                raise ValueError(
                    f"step({i}) returned outputs with structure {this_def}, but the "
                    f"checkpointed chunks have {restored_def}"
                )
        elif str(this_def) != str(out_def):
            raise ValueError(
                f"step({i}) returned outputs with structure {this_def}; chunk "
                f"{start} had {out_def}"
            )
        outputs.append(out)
        if ckpt is not None:
            ckpt.save(
                i,
                None if carry is None else [np.asarray(x) for x in _to_host(leaves)],
                carry_def,
                out_leaves,
                this_def,
            )
        if bar is not None:
            bar.update(i + 1)

    if restored:
        if restored_def is None:
            restored = [None] * len(restored)
        else:
            if out_def is None:  # nothing left to run: rebuild the structure
                out_def = _outputs_def(step, carry, num_chunks - 1)
                if str(out_def) != restored_def:
                    raise ValueError(
                        f"step returns outputs with structure {out_def}, but the "
                        f"checkpointed chunks have {restored_def}"
                    )
            restored = [jax.tree_util.tree_unflatten(out_def, c) for c in restored]
        outputs = restored + outputs
    if all(o is None for o in outputs):
        return carry, None
    return carry, outputs


def _check_like(leaves, like, what) -> None:
    for k, (a, b) in enumerate(zip(leaves, like, strict=True)):
        if np.shape(a) != np.shape(b):
            raise CheckpointError(
                f"{what} leaf {k} has shape {np.shape(a)}, init has {np.shape(b)}"
            )


def _outputs_def(step, carry, i):
    """The tree structure of ``step``'s outputs, without running it if possible."""
    try:
        out = jax.eval_shape(lambda c: step(c, i)[1], carry)
    except Exception:  # a step that cannot be traced abstractly: run it
        out = step(carry, i)[1]
    return None if out is None else jax.tree_util.tree_structure(out)
