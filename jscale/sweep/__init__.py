"""Chunked, resumable, device-sharded execution: labelled sweeps over grids.

Two layers:

- :func:`run_chunks` (:mod:`~jscale.sweep.chunks`) drives any computation that can
  be cut into chunks: it calls ``step(carry, i)`` for ``i = 0, 1, ...``, shows a
  progress bar (:mod:`~jscale.sweep.progress`), writes a checkpoint after every
  chunk (atomically, with checksums: :mod:`~jscale.sweep.checkpoint`) and resumes
  from it after an interruption. :mod:`jscale.montecarlo` streams its draws
  through it.
- :func:`sweep` (:mod:`~jscale.sweep.evaluate`) evaluates a jscale function over a
  labelled :class:`Grid` (:mod:`~jscale.sweep.grid`: Cartesian axes such as
  budgets x hardware x precision x unique tokens, and batches of scenarios) in
  fixed-shape chunks, sharded over the local devices, and returns a
  :class:`SweepResult` (:mod:`~jscale.sweep.results`) that keeps the axis names
  and coordinates and saves to CSV and ``.npz`` (and Parquet where ``pyarrow`` is
  installed).

Bit-identical results. A sweep evaluates an elementwise function, so each point's
result depends only on that point's inputs and on the compiled program. Every
chunk is padded to one fixed shape, a multiple of :data:`LANES` elements per
device, so every chunk of a sweep runs the same program, and programs for
different chunk sizes or device counts agree bit for bit (XLA compiles arrays of
fewer than 16 elements differently; see :data:`LANES`). Results therefore do not
depend on the chunk size, on the device count, or on where a run was interrupted
and resumed.
"""

from .checkpoint import CheckpointError
from .chunks import run_chunks
from .evaluate import LANES, sweep
from .grid import Grid
from .results import SweepResult

__all__ = [
    "LANES",
    "CheckpointError",
    "Grid",
    "SweepResult",
    "run_chunks",
    "sweep",
]
