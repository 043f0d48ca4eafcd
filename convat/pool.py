"""One reusable pool of worker processes for folds and clips, with explicit threads and no orphans.

Why not a fresh ``ProcessPoolExecutor`` per call: every worker start imports torch (~5 CPU-s here), and a
chapter that trains several runs paid it once per run. This pool is loky's reusable executor (shipped with
joblib): workers start once and serve every later call with the same worker count; they are spawned (never
forked, which is unsafe after CUDA or OpenMP use), so a script must call parallel code under
``if __name__ == "__main__":``, as for any spawned multiprocessing; notebooks need nothing.

- Threads: each worker runs :func:`convat.runtime.configure_threads` with its share of the cores (1 when
  several workers share 2 cores) and ``OMP_WAIT_POLICY=PASSIVE`` in its environment before torch loads.
- Data: :func:`share_array` writes a large array once to a temporary ``.npy`` file; workers open it
  memory-mapped (the pages are shared through the OS page cache) instead of receiving a pickled copy per task.
- Orphans: every worker runs a watchdog thread that exits the process within about a second once its parent
  is gone (killed with SIGKILL included, when no cleanup code of the parent can run).

A leaf service: it imports :mod:`convat.runtime` and the standard library (joblib's loky lazily).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from convat import runtime

IDLE_TIMEOUT_S = 600
"""Idle workers shut themselves down after this many seconds (a later call starts new ones)."""

_WATCHDOG_PERIOD_S = 0.5


def _watch_parent(parent: int) -> None:
    while True:
        if os.getppid() != parent:  # re-parented: the process that started us is gone
            os._exit(1)
        time.sleep(_WATCHDOG_PERIOD_S)


def _init_worker(parent: int, threads: int) -> None:
    """Runs once in every worker: explicit threads, and a watchdog that ends the worker with its parent."""
    runtime.configure_threads(threads)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="convat-parent-watchdog").start()


def worker_pool(workers: int, threads: int | None = None):
    """The reusable pool of ``workers`` processes (started on first use, reused while ``workers``/``threads``
    stay the same), each with ``threads`` threads (default :func:`convat.runtime.worker_threads`).

    Returns a :class:`concurrent.futures.Executor` (``submit``, ``map``).
    """
    from joblib.externals.loky import get_reusable_executor

    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    threads = threads or runtime.worker_threads(workers)
    env = {"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"), "OMP_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads), runtime.ENV_THREADS: str(threads)}
    return get_reusable_executor(max_workers=workers, timeout=IDLE_TIMEOUT_S, initializer=_init_worker,
                                 initargs=(os.getpid(), threads), env=env, reuse="auto")


def shutdown_pool() -> None:
    """Stop the pool's workers now (they also stop by themselves after :data:`IDLE_TIMEOUT_S` idle)."""
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor().shutdown(wait=True, kill_workers=True)


@dataclass(frozen=True)
class SharedArray:
    """A handle to an array written once to disk; :meth:`load` maps it read-only (cached per process)."""

    path: str
    shape: tuple[int, ...]
    dtype: str
    _owner: object = field(default=None, compare=False, repr=False)

    def __reduce__(self):  # the owner (which deletes the file) stays in the parent
        return (SharedArray, (self.path, self.shape, self.dtype))

    def load(self) -> np.ndarray:
        array = _MAPPED.get(self.path)
        if array is None:
            array = np.load(self.path, mmap_mode="r")
            _MAPPED.clear()  # one shared array per worker at a time: keep memory bounded
            _MAPPED[self.path] = array
        return array


_MAPPED: dict[str, np.ndarray] = {}


class _Owner:
    """Deletes the temporary folder when the last parent-side handle is garbage-collected."""

    def __init__(self, folder: str):
        self._finalizer = weakref.finalize(self, shutil.rmtree, folder, True)


def share_array(x: np.ndarray) -> SharedArray:
    """Write ``x`` once to a temporary ``.npy`` (in ``/dev/shm`` when it exists: memory, not disk) for workers."""
    base = "/dev/shm" if Path("/dev/shm").is_dir() and os.access("/dev/shm", os.W_OK) else None
    folder = tempfile.mkdtemp(prefix="convat-shared-", dir=base)
    path = os.path.join(folder, "x.npy")
    np.save(path, np.ascontiguousarray(x))
    return SharedArray(path, tuple(x.shape), str(x.dtype), _Owner(folder))
