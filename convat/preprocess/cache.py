"""A content-addressed on-disk cache for preprocessed tensors.

Keys hash the clip's frame fingerprint and every preprocessing parameter, so a parameter change can never
serve a stale tensor; writes go to a temporary file first and are renamed into place, so an interrupted run
leaves no half-written entry and resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np


def default_cache_dir() -> Path:
    """``$CONVAT_CACHE`` if set, else ``~/.cache/convat``."""
    return Path(os.environ.get("CONVAT_CACHE", Path.home() / ".cache" / "convat"))


def cache_key(*parts: object) -> str:
    """A stable hash of JSON-serialisable parts."""
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


class TensorCache:
    """Arrays stored as ``.npz`` files named by their key."""

    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        path = self.path(key)
        if not path.exists():
            return None
        try:
            with np.load(path) as data:
                return {name: data[name] for name in data.files}
        except (OSError, ValueError, EOFError):
            path.unlink(missing_ok=True)  # a corrupt entry is recomputed, never served
            return None

    def put(self, key: str, arrays: dict[str, np.ndarray]) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, **arrays)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
