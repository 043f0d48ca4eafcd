"""The machine and the versions a build (or a benchmark) ran with, computed rather than typed."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from convat import runtime

#: Distributions whose versions decide the book's numbers or its rendering.
PACKAGES = ("convat", "torch", "torchvision", "timm", "numpy", "scipy", "opencv-contrib-python-headless",
            "scikit-learn", "captum", "pandas", "matplotlib", "jupyter-book", "myst-nb", "sphinx",
            "sphinxcontrib-bibtex", "jupytext")


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed version of each distribution, or ``"not installed"``."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_commit(repo: Path | None = None, ignore: Iterable[str | Path] = ()) -> str:
    """The checked-out commit (short hash, ``+dirty`` when there are uncommitted changes), or ``"unknown"``.

    Changes under ``ignore`` do not make it dirty: a result bundle records the commit that made it while it
    rewrites its own tracked files (``bundle.json``), which says nothing about the code that ran."""
    repo = repo or Path(__file__).resolve().parents[2]
    excluded = []
    for path in ignore:
        try:
            excluded.append(f":(exclude){Path(path).resolve().relative_to(Path(repo).resolve()).as_posix()}")
        except ValueError:
            continue  # outside the repository: it cannot make the checkout dirty
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no",
                                *(["--", ":/", *excluded] if excluded else [])],
                               cwd=repo, capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}+dirty" if dirty else head


def machine() -> dict[str, str]:
    """CPU, cores, memory, accelerator and OS of this machine."""
    info = {
        "date (UTC)": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "os": platform.platform(),
        "python": platform.python_version(),
        "cpu": runtime.cpu_model(),
        "cpu kernels": runtime.cpu_kernels() or "unknown",
        "cpu cores": str(os.cpu_count()),
    }
    try:
        pages, page = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        info["memory"] = f"{pages * page / 2**30:.1f} GiB"
    except (ValueError, OSError, AttributeError):
        pass
    try:
        import torch

        info["torch threads"] = str(torch.get_num_threads())
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none (CPU only)"
    except ImportError:
        info["gpu"] = "unknown (torch not installed)"
    return info


def machine_cpu(record: dict) -> str:
    """The CPU of a :func:`machine` record as one string: its name with the float kernels torch picks on it where
    recorded (:func:`convat.runtime.cpu_identity`), since one name (``AMD EPYC``) covers CPUs that differ about
    2x in speed and in the last bits of a result."""
    kernels = record.get("cpu kernels")
    name = record.get("cpu")
    return runtime.cpu_identity(name, kernels if kernels != "unknown" else None) or str(name)


def environment() -> dict[str, str]:
    """Everything :func:`machine` and :func:`package_versions` report, plus the git commit."""
    return {**machine(), "git commit": git_commit(), **package_versions()}


def environment_table():
    """:func:`environment` as a two-column pandas DataFrame, for display in the book."""
    import pandas as pd

    return pd.DataFrame(list(environment().items()), columns=["item", "value"]).set_index("item")


def load_average() -> float | None:
    """One-minute load average, or None where the system has none."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


#: Environment variable through which a book build hands :func:`build_start` to the chapters' kernels.
BUILD_START_ENV = "CONVAT_BUILD_START"


def describe_build_start(environ: dict[str, str] | None = None) -> str:
    """One sentence for the book's environment page: the package cache this build started from, which the
    chapter times below depend on (read from :data:`BUILD_START_ENV`, set by the book's Sphinx hooks)."""
    import json

    value = (os.environ if environ is None else environ).get(BUILD_START_ENV)
    try:
        start = json.loads(value) if value else None
    except ValueError:
        start = None
    if not isinstance(start, dict):
        return ("This page was executed outside a book build, so the package cache it started from is not "
                "known; `make book` records it here.")
    load = start.get("load_average_start")
    tail = f" The load average was {load:.2f} when it started." if isinstance(load, int | float) else ""
    state = cache_state(start)
    if state == "fresh":
        return ("This build started from an empty package cache: every tensor and LOSO run the chapters show "
                "was computed during it (or served from a committed bundle where a page says so), as on a first "
                "run or a new Colab runtime." + tail)
    if state != "warm":
        return ("This build could not read its package cache at the start, so whether it was a first run is not "
                "known." + tail)
    files = _files(start["cache_files_at_start"])
    return (f"This build started with {files} in the package cache, so chapters that find their "
            "tensors or LOSO runs there may have run faster than a first run would (a new Colab runtime starts "
            "empty)." + tail)


def cache_state(conditions: dict) -> str:
    """What a build started from, from its conditions (:func:`convat.site.build_state.build_conditions`, or
    anything with their ``cache_files_at_start``): ``"fresh"`` (an empty cache), ``"warm"``, ``"unknown"`` (the
    cache folder could not be read, recorded as ``None``) or ``"not recorded"`` (a build older than the record)."""
    if "cache_files_at_start" not in conditions:
        return "not recorded"
    files = conditions["cache_files_at_start"]
    return "unknown" if files is None else "fresh" if files == 0 else "warm"


def describe_cache(conditions: dict) -> str:
    """``fresh cache``, ``warm cache (N files at the start)`` or ``cache state unknown`` for a build's
    conditions (:func:`cache_state`); ``cache state not recorded`` for builds older than the record."""
    state = cache_state(conditions)
    if state == "warm":
        return f"warm cache ({_files(conditions['cache_files_at_start'])} at the start)"
    return {"fresh": "fresh cache", "unknown": "cache state unknown (the cache folder could not be read)"}.get(
        state, "cache state not recorded")


def _files(count: object) -> str:
    return f"{count} file" + ("" if count == 1 else "s")
