"""What a book build's chapter times depend on: the package cache it started from and the load it ran under.

A build (or ``make bench``'s chapters part) that starts with no file in ``$CONVAT_CACHE`` computes every tensor
and LOSO run it shows, as a first run, a clean clone or a new Colab runtime does; any cached file may serve a
result and make chapters faster. The speed target for the whole book is about a first run, so the book's Sphinx
hooks (:mod:`convat.site.sphinx_ext`) record :func:`build_start` before any chapter runs and
:func:`build_conditions` at the end. Kept free of Sphinx so that the benchmarks use it without the book's
toolchain.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from convat.runstore import RunStoreError, default_cache_dir
from convat.site.environment import load_average

#: Written by the book's build next to ``_static/chapter_times.json``: :func:`build_conditions` of that build.
BUILD_CONDITIONS = "build_conditions.json"


def cache_files(root: Path | None = None) -> tuple[str | None, int | None]:
    """``(folder, number of files)`` of the package cache (``$CONVAT_CACHE`` or ``~/.cache/convat``); 0 files
    when the folder does not exist yet. The count is None when it cannot be known: ``$CONVAT_CACHE`` set but
    empty (an error for the package itself; the folder is then None too) or a folder that cannot be read."""
    if root is None:
        try:
            root = default_cache_dir()
        except RunStoreError:
            return None, None
    errors: list[OSError] = []
    try:
        if not Path(root).is_dir():
            return str(root), 0
        count = sum(len(files) for _, _, files in os.walk(root, onerror=errors.append))
    except OSError:
        return str(root), None
    return str(root), None if errors else count


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def build_start(cache_root: Path | None = None) -> dict:
    """The state at the start of a build, which :func:`build_conditions` completes at its end."""
    root, files = cache_files(cache_root)
    return {"cache_root": root, "cache_files_at_start": files, "load_average_start": load_average(),
            "started": _now()}


def build_conditions(start: dict, cache_root: Path | None = None) -> dict:
    """``start`` (:func:`build_start`) completed with the state now: the cache's files at the end, whether the
    build started from an empty cache (``fresh_cache``: True only for a known count of 0; None when unknown),
    the load average at the end, the number of CPU cores and the time."""
    _, files = cache_files(Path(start["cache_root"]) if start.get("cache_root") else cache_root)
    count = start.get("cache_files_at_start")
    return {**start, "cache_files_at_end": files, "fresh_cache": None if count is None else count == 0,
            "load_average_end": load_average(), "cpu_count": os.cpu_count(), "finished": _now()}
