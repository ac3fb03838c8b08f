"""Chunked, resumable, device-sharded execution: labelled sweeps over grids.

Two layers:

- :func:`run_chunks` drives any computation that can be cut into chunks: it calls
  ``step(carry, i)`` for ``i = 0, 1, ...``, shows a progress bar, writes a
  checkpoint after every chunk (atomically, with checksums) and resumes from it
  after an interruption. :mod:`jscale.montecarlo` streams its draws through it.
- :func:`sweep` evaluates a jscale function over a labelled :class:`Grid`
  (Cartesian axes such as budgets x hardware x precision x unique tokens, and
  batches of scenarios) in fixed-shape chunks, sharded over the local devices, and
  returns a :class:`SweepResult` that keeps the axis names and coordinates and
  saves to CSV and ``.npz`` (and Parquet where ``pyarrow`` is installed).

Bit-identical results. A sweep evaluates an elementwise function, so each point's
result depends only on that point's inputs and on the compiled program. Every
chunk is padded to one fixed shape, a multiple of :data:`LANES` elements per
device, so every chunk of a sweep runs the same program, and programs for
different chunk sizes or device counts agree bit for bit (XLA compiles arrays of
fewer than 16 elements differently; see :data:`LANES`). Results therefore do not
depend on the chunk size, on the device count, or on where a run was interrupted
and resumed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import json
import math
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, TextIO

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "LANES",
    "CheckpointError",
    "Grid",
    "SweepResult",
    "run_chunks",
    "sweep",
]

_FORMAT = "jscale.run_chunks"
_VERSION = 1
_MANIFEST = "manifest.json"
_STATE = "state.json"
_OWN_FILE = re.compile(
    r"^(manifest\.json|state\.json|chunk-\d+\.(npz|json)|carry-\d+\.npz|\..*\.tmp)$"
)


class CheckpointError(ValueError):
    """A checkpoint cannot be used: another configuration, damaged, or in the way."""


# ------------------------------------------------------------------------- file helpers


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fsync_dir(path: str) -> None:
    """Make renames in ``path`` durable (a no-op where directories cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _atomic_write(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temp file in the same directory, fsync,
    then ``os.replace`` (a reader sees the old file or the new one, never a part)."""
    directory, name = os.path.split(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _npz_bytes(leaves: list[np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **{f"leaf_{k:05d}": leaf for k, leaf in enumerate(leaves)})
    return buffer.getvalue()


def _json_bytes(obj: dict) -> bytes:
    """Canonical JSON with a checksum of its own content under ``"self_sha256"``."""
    body = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
    sealed = dict(obj, self_sha256=_sha256(body.encode()))
    return json.dumps(sealed, sort_keys=True, indent=1, allow_nan=False).encode()


def _read_json(path: str, what: str) -> dict:
    """Read a file written by :func:`_json_bytes`, checking its self-checksum."""
    try:
        with open(path, "rb") as f:
            obj = json.loads(f.read())
        digest = obj.pop("self_sha256")
        body = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
        ok = digest == _sha256(body.encode())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        ok = False
    if not ok:
        raise CheckpointError(
            f"damaged checkpoint: {what} {path} is unreadable or fails its checksum; "
            "delete the checkpoint directory (or pass overwrite=True) to start over"
        )
    return obj


def _read_npz(directory: str, entry: dict, what: str) -> list[np.ndarray]:
    """Load the leaves of an ``.npz`` after checking its sha256 against ``entry``."""
    path = os.path.join(directory, entry["file"])
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CheckpointError(
            f"damaged checkpoint: {what} {path} is missing or unreadable ({e})"
        ) from None
    if _sha256(data) != entry["sha256"]:
        raise CheckpointError(
            f"damaged checkpoint: {what} {path} fails its sha256 checksum "
            f"({len(data)} bytes; truncated or modified); delete the checkpoint "
            "directory (or pass overwrite=True) to start over"
        )
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return [npz[f"leaf_{k:05d}"] for k in range(len(npz.files))]


def _canonical(config: Any) -> Any:
    """``config`` as plain JSON values (tuples become lists), or a clear error."""
    try:
        return json.loads(json.dumps(config, sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"config must be a JSON-serializable dict (str keys; str, bool, int, "
            f"finite float, list or dict values); {e}"
        ) from None


def _flat_items(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            out.update(_flat_items(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix or "config": obj}


def _config_diff(old: Any, new: Any, limit: int = 6) -> str:
    a, b = _flat_items(old), _flat_items(new)
    diffs = []
    for key in sorted(set(a) | set(b)):
        if key not in a:
            diffs.append(f"{key} is new ({b[key]!r})")
        elif key not in b:
            diffs.append(f"{key} is missing (was {a[key]!r})")
        elif a[key] != b[key]:
            diffs.append(f"{key} was {a[key]!r}, now {b[key]!r}")
    more = f"; and {len(diffs) - limit} more" if len(diffs) > limit else ""
    return "; ".join(diffs[:limit]) + more


# --------------------------------------------------------------------------- progress


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}"


class _Progress:
    """A one-line progress bar: chunk k/n, items/s, ETA.

    On a terminal the line is redrawn in place (at most 10 times a second); on any
    other stream a line is printed at most every ``interval`` seconds.
    """

    def __init__(self, stream, total, done, items, description, interval):
        self.stream = stream
        self.total = total
        self.start_done = done
        self.items = items
        self.label = f"{description}: " if description else ""
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.interval = 0.1 if self.tty else interval
        self.t0 = time.perf_counter()
        self.t_first = None  # end of the first chunk of this session (compile)
        self.done_first = done
        self.last = -math.inf if self.tty or interval == 0 else self.t0
        self.printed = False
        self.width = 0

    def update(self, done: int) -> None:
        now = time.perf_counter()
        if self.t_first is None:
            self.t_first, self.done_first = now, done
        final = done == self.total
        if not final and now - self.last < self.interval:
            return
        if final and not self.printed and not self.tty and self.interval > 0:
            return  # a short run on a non-terminal stream stays silent
        self.last = now
        if done > self.done_first:  # steady-state rate, excluding compilation
            rate = (done - self.done_first) / (now - self.t_first)
        else:
            rate = (done - self.start_done) / max(now - self.t0, 1e-9)
        eta = (self.total - done) / rate if rate > 0 else math.inf
        width = 24
        filled = int(width * done / self.total) if self.total else width
        bar = "#" * filled + "." * (width - filled)
        speed = (
            f"{rate * self.items:.3g} items/s"
            if self.items is not None
            else f"{rate:.3g} chunks/s"
        )
        line = (
            f"{self.label}[{bar}] chunk {done}/{self.total} "
            f"{100 * done / max(self.total, 1):3.0f}%  {speed}  "
            + (
                f"elapsed {_duration(now - self.t0)}"
                if final
                else f"ETA {_duration(eta)}"
            )
        )
        if self.tty:  # redraw in place, blanking what a longer line left
            pad = " " * max(0, self.width - len(line))
            self.width = len(line)
            self.stream.write("\r" + line + pad + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self.printed = True


def _make_progress(progress, total, done, items, description):
    if progress is False or progress is None or total == 0:
        return None
    if progress is True:
        return _Progress(sys.stderr, total, done, items, description, 30.0)
    if hasattr(progress, "write"):
        return _Progress(progress, total, done, items, description, 0.0)
    raise ValueError(
        f"progress must be True, False or a text stream; got {type(progress).__name__}"
    )


# ---------------------------------------------------------------------------- runner


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


class _Checkpoint:
    """The files of one :func:`run_chunks` checkpoint directory.

    Layout (every file written atomically, each chunk's files O(chunk)):

    - ``manifest.json``: format, version, the caller's ``config``, ``num_chunks``
      and their sha256 fingerprint; written once.
    - ``chunk-NNNNNN.npz``: the outputs of chunk ``N`` (if any), with
      ``chunk-NNNNNN.json`` holding its sha256.
    - ``carry-NNNNNN.npz``: the carry after chunk ``N`` (only the newest is kept).
    - ``state.json``: the number of completed chunks, the carry file and its
      sha256, and the tree structures of carry and outputs; replaced after each
      chunk's files are in place (and their directory entries synced), so it
      names only complete chunks.

    JSON files carry a checksum of their own content.
    """

    def __init__(self, path, config, num_chunks, *, resume, overwrite, writer):
        self.dir = os.fspath(path)
        self.writer = writer
        self.config = _canonical(
            {"config": config, "num_chunks": num_chunks, "format": _FORMAT}
        )
        self.fingerprint = _sha256(
            json.dumps(self.config, sort_keys=True, separators=(",", ":")).encode()
        )
        self.num_chunks = num_chunks
        self.old_carry = None  # the carry file the state names now
        self.stale: list[str] = []  # files an interrupted chunk may have left
        entries = os.listdir(self.dir) if os.path.isdir(self.dir) else []
        if os.path.exists(self.dir) and not os.path.isdir(self.dir):
            raise CheckpointError(
                f"checkpoint {self.dir} exists and is not a directory"
            )
        self.fresh = not entries or (
            resume
            and not os.path.exists(os.path.join(self.dir, _MANIFEST))
            and all(_OWN_FILE.match(e) for e in entries)
        )
        if entries and not resume:
            foreign = sorted(e for e in entries if not _OWN_FILE.match(e))
            if not overwrite:
                raise CheckpointError(
                    f"checkpoint directory {self.dir} is not empty; pass resume=True "
                    "(--resume) to continue the run saved there, overwrite=True to "
                    "discard it, or choose another directory"
                )
            if foreign:
                raise CheckpointError(
                    f"checkpoint directory {self.dir} holds files not written by "
                    f"run_chunks ({', '.join(foreign[:3])}); refusing to overwrite"
                )
            if writer:
                for e in entries:
                    os.unlink(os.path.join(self.dir, e))
            self.fresh = True
        if writer and not self.fresh:  # leftovers of an interrupted chunk
            for e in entries:
                if (e.startswith(".") and e.endswith(".tmp")) or e.startswith("carry-"):
                    self.stale.append(e)
        if self.fresh and writer:
            os.makedirs(self.dir, exist_ok=True)
            for e in entries:  # leftovers of a run killed before its manifest
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.dir, e))
            manifest = {
                "format": _FORMAT,
                "version": _VERSION,
                "fingerprint": self.fingerprint,
                "config": self.config["config"],
                "num_chunks": num_chunks,
            }
            _atomic_write(os.path.join(self.dir, _MANIFEST), _json_bytes(manifest))
            _fsync_dir(self.dir)

    def _path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def load(self, init_def) -> tuple[int, list | None, list, str | None]:
        """Verify the checkpoint; return (completed, carry leaves, chunk leaves,
        outputs treedef string)."""
        if not os.path.exists(self._path(_MANIFEST)):
            raise CheckpointError(
                f"{self.dir} is not empty but holds no checkpoint (no {_MANIFEST}); "
                "choose another directory"
            )
        manifest = _read_json(self._path(_MANIFEST), "manifest")
        if manifest.get("format") != _FORMAT or manifest.get("version") != _VERSION:
            raise CheckpointError(
                f"{self.dir} is not a version-{_VERSION} run_chunks checkpoint"
            )
        if manifest.get("fingerprint") != self.fingerprint:
            old = {
                "config": manifest.get("config"),
                "num_chunks": manifest.get("num_chunks"),
            }
            new = {k: self.config[k] for k in ("config", "num_chunks")}
            raise CheckpointError(
                f"checkpoint {self.dir} was written by a different configuration: "
                f"{_config_diff(old, new) or 'fingerprints differ'}; resume with the "
                "same settings, or start over (overwrite=True / another directory)"
            )
        if not os.path.exists(self._path(_STATE)):
            self._clean()
            return 0, None, [], None
        state = _read_json(self._path(_STATE), "state file")
        completed = state["completed"]
        if state.get("fingerprint") != self.fingerprint or not (
            0 < completed <= self.num_chunks
        ):
            raise CheckpointError(
                f"damaged checkpoint: state file {self._path(_STATE)} does not match "
                "its manifest"
            )
        carry = None
        if state["carry"] is not None:
            self.old_carry = state["carry"]["file"]
            if state["carry"]["treedef"] != str(init_def):
                raise CheckpointError(
                    f"checkpoint {self.dir}: the saved carry has structure "
                    f"{state['carry']['treedef']}, but init has {init_def}"
                )
            carry = _read_npz(self.dir, state["carry"], "carry file")
        outputs_def = state.get("outputs_treedef")
        chunks = []
        for i in range(completed):
            if outputs_def is None:
                chunks.append(None)
                continue
            side = self._path(f"chunk-{i:06d}.json")
            entry = _read_json(side, f"chunk {i} checksum file")
            if entry.get("index") != i or entry.get("fingerprint") != self.fingerprint:
                raise CheckpointError(
                    f"damaged checkpoint: {side} does not belong to chunk {i} of "
                    "this run"
                )
            chunks.append(_read_npz(self.dir, entry, f"chunk {i} outputs"))
        self._clean()
        return completed, carry, chunks, outputs_def

    def _clean(self) -> None:
        """Remove temporary and superseded carry files of an interrupted chunk."""
        if self.writer:
            for e in self.stale:
                if e != self.old_carry:
                    with contextlib.suppress(OSError):
                        os.unlink(self._path(e))

    def save(self, i, carry_leaves, carry_def, out_leaves, out_def) -> None:
        """Persist chunk ``i``: its outputs, the carry after it, then the state."""
        if not self.writer:
            return
        if out_def is not None:
            data = _npz_bytes(out_leaves)
            name = f"chunk-{i:06d}.npz"
            _atomic_write(self._path(name), data)
            entry = {
                "index": i,
                "file": name,
                "sha256": _sha256(data),
                "fingerprint": self.fingerprint,
            }
            _atomic_write(self._path(f"chunk-{i:06d}.json"), _json_bytes(entry))
        carry = None
        if carry_leaves is not None:
            data = _npz_bytes(carry_leaves)
            name = f"carry-{i:06d}.npz"
            _atomic_write(self._path(name), data)
            carry = {"file": name, "sha256": _sha256(data), "treedef": str(carry_def)}
        state = {
            "fingerprint": self.fingerprint,
            "completed": i + 1,
            "carry": carry,
            "outputs_treedef": None if out_def is None else str(out_def),
        }
        _fsync_dir(self.dir)  # the chunk's files are in place before the state
        _atomic_write(self._path(_STATE), _json_bytes(state))
        _fsync_dir(self.dir)
        keep = None if carry is None else carry["file"]
        if self.old_carry is not None and self.old_carry != keep:
            with contextlib.suppress(OSError):
                os.unlink(self._path(self.old_carry))
        self.old_carry = keep


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
      jscale.sweep.CheckpointError: checkpoint ... configuration: config.chunk_size was 10, now 20; ...
    """  # noqa: E501
    if isinstance(num_chunks, bool) or not isinstance(num_chunks, (int, np.integer)):
        raise ValueError(f"num_chunks must be a whole number >= 0; got {num_chunks!r}")
    num_chunks = int(num_chunks)
    if num_chunks < 0:
        raise ValueError(f"num_chunks must be a whole number >= 0; got {num_chunks}")
    if chunk_items is not None and (
        isinstance(chunk_items, bool)
        or int(chunk_items) != chunk_items
        or chunk_items < 1
    ):
        raise ValueError(f"chunk_items must be a whole number >= 1; got {chunk_items}")
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


# ------------------------------------------------------------------------------ grids


def _coord_values(name: str, values) -> np.ndarray:
    """A coordinate as a 1-D NumPy array: strings (categorical) or finite numbers."""
    array = np.asarray(values)
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim != 1 or array.shape[0] == 0:
        raise ValueError(
            f"coordinate {name!r} must be a non-empty 1-D sequence; got shape "
            f"{np.shape(values)}"
        )
    if array.dtype.kind in "US":
        return array.astype(str)
    if array.dtype.kind == "b":
        return array
    if array.dtype.kind not in "iuf":
        raise ValueError(
            f"coordinate {name!r} must hold numbers or strings; got dtype {array.dtype}"
        )
    if array.dtype.kind == "f":
        bad = ~np.isfinite(array)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(
                f"coordinate {name!r} must be finite; got {array[i]} at index {i}"
            )
    return array


def _is_static(values: np.ndarray) -> bool:
    return values.dtype.kind == "U"


class Grid:
    """A labelled grid of points: named axes (dimensions) and their coordinates.

    ``Grid({"compute_flops": budgets, "hardware": ["h100-sxm", "a100-80gb"]})`` is
    the Cartesian product of its axes, in the order given (row-major: the last
    axis varies fastest). Each axis is a dimension and a coordinate of the same
    name. :meth:`scenarios` makes one dimension from columns of equal length (a
    batch of scenarios: the coordinates vary together), and ``a * b`` crosses two
    grids.

    Coordinates hold numbers or strings. In :func:`sweep`, numeric coordinates
    reach the function as arrays (one compiled program for all their values);
    strings are categorical and reach it as Python ``str`` (static: one program per
    combination of labels), so they can name presets such as hardware or
    precision.

    Attributes:
      dims: dimension names, in order.
      shape: the size of each dimension.
      coords: coordinate name -> its values along its dimension (NumPy).
      coord_dims: coordinate name -> the dimension it lies along.

    Examples:
      >>> g = Grid({"compute_flops": [1e21, 1e22, 1e23], "hardware": ["h100-sxm", "a100-80gb"]})
      >>> g.dims, g.shape, g.size
      (('compute_flops', 'hardware'), (3, 2), 6)
      >>> [str(h) for h in g.points()["hardware"][:3]]
      ['h100-sxm', 'a100-80gb', 'h100-sxm']
      >>> s = Grid.scenarios({"unique_tokens": [1e10, 1e11], "max_epochs": [4, 16]})
      >>> (Grid(compute_flops=[1e22, 1e23]) * s).shape
      (2, 2)
    """  # noqa: E501

    def __init__(self, axes: Mapping[str, Any] | None = None, /, **more: Any):
        overlap = set(axes or {}) & set(more)
        if overlap:
            raise ValueError(f"axis names given twice: {sorted(overlap)}")
        axes = dict(axes or {}, **more)
        self.coords: dict[str, np.ndarray] = {}
        self.coord_dims: dict[str, str] = {}
        self.dims: tuple[str, ...] = ()
        self.shape: tuple[int, ...] = ()
        for name, values in axes.items():
            self._add_dim(name, {name: values})

    def _add_dim(self, dim: str, columns: Mapping[str, Any]) -> None:
        if not isinstance(dim, str) or not dim:
            raise ValueError(f"dimension names must be non-empty strings; got {dim!r}")
        if dim in self.dims:
            raise ValueError(f"dimension {dim!r} appears twice")
        if not columns:
            raise ValueError(f"dimension {dim!r} needs at least one coordinate")
        arrays = {}
        for name, values in columns.items():
            if not isinstance(name, str) or not name:
                raise ValueError(
                    f"coordinate names must be non-empty strings; got {name!r}"
                )
            if name in self.coords or name in arrays:
                raise ValueError(f"coordinate {name!r} appears twice")
            arrays[name] = _coord_values(name, values)
        sizes = {k: v.shape[0] for k, v in arrays.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(
                f"the columns of dimension {dim!r} must have equal lengths; got {sizes}"
            )
        self.dims += (dim,)
        self.shape += (next(iter(sizes.values())),)
        for name, array in arrays.items():
            self.coords[name] = array
            self.coord_dims[name] = dim

    @classmethod
    def scenarios(cls, columns: Mapping[str, Any], *, dim: str = "scenario") -> Grid:
        """One dimension ``dim`` whose coordinates are ``columns`` of equal length.

        Examples:
          >>> g = Grid.scenarios({"compute_flops": [1e22, 1e24], "hardware": ["h100-sxm", "tpu-v5p"]})
          >>> g.dims, g.shape, g.coord_dims["hardware"]
          (('scenario',), (2,), 'scenario')
        """  # noqa: E501
        grid = cls()
        grid._add_dim(dim, columns)
        return grid

    def __mul__(self, other: Grid) -> Grid:
        if not isinstance(other, Grid):
            return NotImplemented
        out = Grid()
        for g in (self, other):
            for dim in g.dims:
                names = [c for c, d in g.coord_dims.items() if d == dim]
                out._add_dim(dim, {c: g.coords[c] for c in names})
        return out

    @property
    def size(self) -> int:
        """The number of points."""
        return math.prod(self.shape)

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        dims = ", ".join(f"{d}={n}" for d, n in zip(self.dims, self.shape, strict=True))
        return f"Grid({dims}; coords: {', '.join(self.coords)})"

    def points(self, start: int = 0, stop: int | None = None) -> dict[str, np.ndarray]:
        """Per-point coordinate values of points ``start .. stop - 1`` (row-major)."""
        stop = self.size if stop is None else stop
        index = np.unravel_index(np.arange(start, stop), self.shape)
        where = dict(zip(self.dims, index, strict=True))
        return {c: v[where[self.coord_dims[c]]] for c, v in self.coords.items()}

    def describe(self) -> dict:
        """A JSON-ready description (dims, shape, each coordinate's dim, dtype and
        sha256 of its values): what a checkpoint records about the grid."""
        coords = {}
        for c, v in self.coords.items():
            data = v.astype("U") if _is_static(v) else np.ascontiguousarray(v)
            coords[c] = {
                "dim": self.coord_dims[c],
                "dtype": str(v.dtype.kind),
                "sha256": _sha256(data.tobytes()),
            }
        return {"dims": list(self.dims), "shape": list(self.shape), "coords": coords}

    def _groups(self) -> list[tuple[dict[str, str], list[np.ndarray]]]:
        """Sub-grids of points sharing their categorical labels.

        A point's labels are a tuple of labels per dimension, so the points with
        one tuple are the Cartesian product of, for each dimension, the indices
        with that dimension's part of it. Returns ``(labels, index arrays)``.
        """
        per_dim = []
        for dim, n in zip(self.dims, self.shape, strict=True):
            static = [
                c
                for c, d in self.coord_dims.items()
                if d == dim and _is_static(self.coords[c])
            ]
            if not static:
                per_dim.append([({}, np.arange(n))])
                continue
            keys = list(zip(*(self.coords[c].tolist() for c in static), strict=True))
            parts = []
            for key in dict.fromkeys(keys):
                index = np.array([i for i, k in enumerate(keys) if k == key])
                parts.append((dict(zip(static, key, strict=True)), index))
            per_dim.append(parts)
        groups = []
        for combo in itertools.product(*per_dim):
            labels = {}
            for part, _ in combo:
                labels.update(part)
            groups.append((labels, [index for _, index in combo]))
        return groups


# ----------------------------------------------------------------------------- results


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


def _format(x) -> str:
    value = x.item()
    if isinstance(value, float):
        return repr(value)
    return str(value)


class SweepResult:
    """A sweep's outputs on its labelled grid.

    Attributes:
      dims, shape, coords, coord_dims: as in :class:`Grid`.
      data: output name -> NumPy array of shape ``shape + trailing`` (the
        function's outputs, named after their fields or keys; ``"value"`` for a
        single array).
      info: how the sweep ran (chunk size, padded chunk shape, number of chunks,
        devices), for the record.

    ``result["loss"]`` is ``result.data["loss"]``. Save with :meth:`to_csv`,
    :meth:`to_npz` (load back with :meth:`load_npz`) or :meth:`to_parquet`.
    """

    def __init__(self, grid: Grid, data: Mapping[str, np.ndarray], info=None):
        self.grid = grid
        self.dims = grid.dims
        self.shape = grid.shape
        self.coords = grid.coords
        self.coord_dims = grid.coord_dims
        self.data = dict(data)
        self.info = dict(info or {})

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.data[name]
        except KeyError:
            raise KeyError(
                f"no output {name!r}; outputs: {', '.join(self.data)}"
            ) from None

    def __repr__(self) -> str:
        return f"SweepResult({self.grid!r}; outputs: {', '.join(self.data)})"

    def columns(self) -> dict[str, np.ndarray]:
        """One flat column per coordinate and per output element, one row per
        point (row-major); trailing output axes become ``name[i]`` columns."""
        cols = dict(self.grid.points())
        for name, array in self.data.items():
            flat = array.reshape((self.grid.size,) + array.shape[len(self.shape) :])
            if flat.ndim == 1:
                cols[name] = flat
            else:
                for idx in np.ndindex(*flat.shape[1:]):
                    label = ",".join(str(i) for i in idx)
                    cols[f"{name}[{label}]"] = flat[(slice(None),) + idx]
        return cols

    def records(self) -> list[dict]:
        """The points as a list of dicts of Python scalars (NaN kept as ``nan``)."""
        cols = self.columns()
        return [
            {k: v[i].item() for k, v in cols.items()} for i in range(self.grid.size)
        ]

    def to_csv(self, path: str | os.PathLike) -> None:
        """Write one row per point: coordinates, then outputs (floats written
        with ``repr``, so they read back exactly)."""
        import csv

        cols = self.columns()
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(list(cols))
            for i in range(self.grid.size):
                writer.writerow([_format(v[i]) for v in cols.values()])

    def to_npz(self, path: str | os.PathLike) -> None:
        """Save coordinates, outputs and layout to ``.npz`` (no pickles)."""
        meta = {
            "format": "jscale.sweep",
            "version": 1,
            "dims": list(self.dims),
            "shape": list(self.shape),
            "coord_dims": self.coord_dims,
            "outputs": list(self.data),
            "info": self.info,
        }
        arrays = {"meta": np.array(json.dumps(meta))}
        for k, (name, values) in enumerate(self.coords.items()):
            arrays[f"coord_{k}"] = values
            meta.setdefault("coord_keys", {})[name] = f"coord_{k}"
        for k, name in enumerate(self.data):
            arrays[f"data_{k}"] = self.data[name]
        arrays["meta"] = np.array(json.dumps(meta))
        with open(path, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load_npz(cls, path: str | os.PathLike) -> SweepResult:
        """Read a file written by :meth:`to_npz`."""
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            if meta.get("format") != "jscale.sweep":
                raise ValueError(f"{path} is not a jscale sweep result")
            grid = Grid()
            for dim in meta["dims"]:
                names = [c for c, d in meta["coord_dims"].items() if d == dim]
                grid._add_dim(dim, {c: npz[meta["coord_keys"][c]] for c in names})
            data = {name: npz[f"data_{k}"] for k, name in enumerate(meta["outputs"])}
        return cls(grid, data, meta.get("info"))

    def to_parquet(self, path: str | os.PathLike) -> None:
        """Write the :meth:`columns` table to Parquet (needs ``pyarrow``, which
        jscale does not depend on)."""
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise ModuleNotFoundError(
                "to_parquet needs pyarrow, which is not installed (jscale does not "
                "depend on it); use to_csv or to_npz, or pip install pyarrow"
            ) from None
        pq.write_table(pa.table(self.columns()), path)

    def save(self, path: str | os.PathLike) -> None:
        """Write by suffix: ``.csv``, ``.npz`` or ``.parquet``."""
        suffix = os.path.splitext(os.fspath(path))[1].lower()
        writers = {
            ".csv": self.to_csv,
            ".npz": self.to_npz,
            ".parquet": self.to_parquet,
        }
        if suffix not in writers:
            raise ValueError(
                f"cannot tell the format of {os.fspath(path)!r}: use a .csv, .npz or "
                f".parquet suffix; got {suffix or 'none'!r}"
            )
        writers[suffix](path)


# ------------------------------------------------------------------------------ sweep

#: Lanes per device: every chunk is evaluated as an array of a multiple of this
#: many elements per device (padded with copies of the chunk's last point). XLA:CPU
#: compiles short arrays differently: float32 ``log`` on arrays of 3, 5, 6, 7, 11,
#: 13, 14 or 15 elements differs in the last bit from longer arrays on ~4% of
#: inputs, and shape ``(1,)`` is simplified to scalar code that changes the
#: allocation solvers' results in the last bits (float32 and float64). From 16
#: elements up no difference was found, so 128 leaves a wide margin; then results
#: do not depend on the chunk size.
LANES = 128


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def _whole(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be a whole number >= {minimum}; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}; got {value}")
    return int(value)


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
    chunk_size = _whole("chunk_size", chunk_size)
    mesh = _default_mesh(mesh)
    devices = 1 if mesh is None else int(mesh.devices.size)
    groups = grid._groups()
    largest = max(math.prod(len(i) for i in index) for _, index in groups)
    chunk = min(chunk_size, largest)
    per_device = _round_up(-(-chunk // devices), LANES)
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
        pos = np.minimum(np.arange(start, start + padded), stop - 1)  # edge padding
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
