"""A content-addressed on-disk cache for preprocessed tensors.

Keys hash the clip's frame fingerprint, every preprocessing parameter and a fingerprint of the preprocessing
code (:data:`convat.runstore.PREPROCESS_SOURCES`), so neither a parameter change nor a code edit can serve a
stale tensor. Each entry stores a checksum of its arrays: an entry that cannot be read or whose content does
not match its checksum (truncated, bit-flipped, overwritten) is named in a warning, moved aside (``.bad``) and
recomputed, never served. Writes go to a temporary file first and are renamed into place, so an interrupted
run leaves no half-written entry and resumes where it stopped. ``convat cache info|clear`` manages the folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np

from convat.runstore import array_digest, default_cache_dir

__all__ = ["TensorCache", "cache_key", "default_cache_dir"]

_CHECKSUM = "__checksum__"


def cache_key(*parts: object) -> str:
    """A stable hash of JSON-serialisable parts."""
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _checksum(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        digest.update(name.encode() + b"\0" + array_digest(np.asarray(arrays[name])).encode())
    return digest.hexdigest()


class TensorCache:
    """Arrays stored as ``.npz`` files named by their key, each with a checksum of its content."""

    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        """The entry's arrays, or ``None`` when absent or damaged (then named in a warning and moved aside)."""
        path = self.path(key)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
            self._discard(path, f"unreadable ({type(exc).__name__}: {exc})")
            return None
        stored = arrays.pop(_CHECKSUM, None)
        if stored is None or str(stored) != _checksum(arrays):
            self._discard(path, "content does not match its checksum")
            return None
        try:
            os.utime(path)  # last use, for `convat cache clear --max-size`
        except OSError:
            pass
        return arrays

    @staticmethod
    def _discard(path: Path, why: str) -> None:
        bad = path.with_name(path.name + ".bad")
        warnings.warn(f"cache entry {path}: {why}; moved to {bad.name} and recomputed", stacklevel=3)
        try:
            os.replace(path, bad)
        except OSError:
            path.unlink(missing_ok=True)

    def put(self, key: str, arrays: dict[str, np.ndarray]) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{key}.", suffix=f".{os.getpid()}.tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, **arrays, **{_CHECKSUM: np.array(_checksum(arrays))})
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
