"""Checkpoints of :func:`~jscale.sweep.run_chunks`: atomic, checksummed files
that a run writes after every chunk and resumes from.

Every file is written to a temporary file in the checkpoint directory, flushed to
disk (``fsync``) and renamed over its target (``os.replace``), so a crash (even
``SIGKILL``) leaves the last complete checkpoint intact; JSON files carry a sha256
of their own content and name the sha256 of each ``.npz`` file, so a damaged or
truncated file raises :class:`CheckpointError` rather than giving silently wrong
results.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import tempfile
from typing import Any

import numpy as np

_FORMAT = "jscale.run_chunks"
_VERSION = 1
_MANIFEST = "manifest.json"
_STATE = "state.json"


_OWN_FILE = re.compile(
    r"^(manifest\.json|state\.json|chunk-\d+\.(npz|json)|carry-\d+\.npz|\..*\.tmp)$"
)


class CheckpointError(ValueError):
    """A checkpoint cannot be used: another configuration, damaged, or in the way."""


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
