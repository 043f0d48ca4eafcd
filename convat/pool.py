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


def _load_modules(modules: tuple[str, ...], hold_s: float) -> int:
    """In a worker: import ``modules`` and stay busy ``hold_s`` seconds (so that the pool hands the next task of
    :func:`warm_pool` to another worker); returns this worker's pid."""
    import importlib

    for name in modules:
        importlib.import_module(name)
    time.sleep(hold_s)
    return os.getpid()


def warm_pool(workers: int, threads: int | None = None, modules: tuple[str, ...] = ("convat.loso",),
              attempts: int = 5) -> set[int]:
    """Start every worker of ``worker_pool(workers, threads)`` and import ``modules`` in each; returns their pids.

    A worker imports torch and the models the first time a task needs them (seconds of CPU each). A benchmark
    that times a short run must pay this before its clock starts, or the start-up is charged to the run (and,
    extrapolated to a full LOSO, multiplied several hundred times). Tasks are sent in rounds until every worker
    has answered (at most ``attempts`` rounds; a pool that still has fewer answering workers raises).
    """
    pool = worker_pool(workers, threads)
    pids: set[int] = set()
    for _ in range(attempts):
        pids.update(f.result() for f in [pool.submit(_load_modules, tuple(modules), 0.5) for _ in range(workers)])
        if len(pids) >= workers:
            return pids
    raise RuntimeError(f"warm_pool: only {len(pids)} of {workers} workers answered after {attempts} rounds")


def map_folds(fn, x: np.ndarray, todo: dict, workers: int, *args, threads: int | None = None):
    """``fn(shared_x, *args, fold, mask)`` for every ``fold, mask`` of ``todo`` in the worker pool, yielded as
    ``(fold, result)`` in the order they finish (so a caller can save each at once and a crash loses only the
    folds in flight). ``x`` is written once to a memory-mapped file (:func:`share_array`) that every worker
    reads; ``fn`` must be importable (a module-level function) and gets the :class:`SharedArray` handle, whose
    :meth:`~SharedArray.load` returns the array. Pending folds are cancelled when the caller stops early.

    Each fold gets ``threads`` (default: the share of ``workers``) even when fewer folds than ``workers`` are
    left, e.g. when a run resumes: a fold's thread count changes the last bits of what it computes, so it must
    not depend on how many folds an earlier session finished."""
    from concurrent.futures import FIRST_COMPLETED, wait

    if not todo:
        return
    threads = threads or runtime.worker_threads(workers)
    pool = worker_pool(min(workers, len(todo)), threads)
    shared = share_array(x)
    pending = {pool.submit(fn, shared, *args, fold, mask): fold for fold, mask in todo.items()}
    try:
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                fold = pending.pop(future)
                yield fold, future.result()
    finally:
        for future in pending:
            future.cancel()


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
