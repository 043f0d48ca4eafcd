"""How many CPU threads this process uses, decided explicitly instead of left to torch's and OpenCV's defaults.

Why: on a shared machine, OpenMP's default (one spinning thread per core, ``OMP_WAIT_POLICY=ACTIVE``-like
behaviour) collapses when other processes compete for the cores: a thread that spins at a barrier burns the
time slice its sibling needs. Measured on the 2-core development machine with two busy background processes,
one training fold with torch's default 2 threads ran several times slower than with 1 thread. So:

- :func:`set_passive_wait` sets ``OMP_WAIT_POLICY=PASSIVE`` (waiting threads sleep instead of spinning) in the
  environment. It only takes effect if it runs *before* torch loads its OpenMP runtime, which is why
  ``convat/__init__.py`` calls it before importing anything that imports torch, and why worker processes
  (spawned fresh) inherit it from the environment. An explicit user setting is never overridden.
- :func:`configure_threads` sets torch's and OpenCV's thread counts in one place.
- :func:`worker_threads` is the count each of ``workers`` processes sharing the cores gets: the cores divided
  between them, at least 1 (so 1 per worker as soon as several share 2 cores).
- :func:`keep_freed_memory` stops glibc's ``malloc`` from handing freed memory back to the OS after every
  training step (and faulting it in again, zeroed, on the next): measured on the 2-core machine, a training
  fold spent 5-17 % of its CPU time in the kernel on those page faults. ``convat/__init__.py`` calls it too.

This module is a leaf: it imports only the standard library at import time (torch and cv2 lazily).
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
from collections.abc import Mapping
from pathlib import Path

ENV_THREADS = "CONVAT_THREADS"
"""Environment variable that fixes the thread count of the main process (read by :func:`default_threads`)."""

ENV_ALLOCATOR = "CONVAT_ALLOCATOR"
"""Environment variable: ``system`` leaves glibc's ``malloc`` at its defaults (:func:`keep_freed_memory` does
nothing), e.g. to measure what keeping freed memory saves."""

#: glibc's ``mallopt`` parameters (``<malloc.h>``) and the values :func:`keep_freed_memory` sets: blocks up to
#: 32 MiB (the largest threshold glibc accepts on 64-bit) come from the heap instead of a fresh ``mmap``, and up
#: to 1 GiB of free memory at the top of the heap stays with the process instead of being trimmed.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD, TRIM_THRESHOLD = 32 << 20, 1 << 30


#: The one-line warning :func:`set_passive_wait` gives when torch was imported first.
LATE_POLICY_WARNING = (
    "convat: torch was imported before convat, so this process's CPU threads keep OpenMP's spinning wait policy "
    "and can run several times slower while other processes use the cores (fold workers started from here still "
    "get the passive one); import convat before torch, or set OMP_WAIT_POLICY=PASSIVE before Python starts")


def set_passive_wait() -> bool:
    """``OMP_WAIT_POLICY=PASSIVE`` unless the user set a policy; ``False`` when this process's OpenMP runtime
    started before the policy was set, so that it does not govern this process's own threads.

    libgomp reads the policy once, when torch loads it, so when torch is already imported (and no policy was set
    before) the setting only reaches processes started from here, and a :class:`RuntimeWarning` says how to fix
    it: measured on 2 cores beside two busy processes, a fold trained 7.6x slower with OpenMP's default policy
    than quiet, 1.9x with the passive one (``benchmarks/threads.py``)."""
    import sys
    import warnings

    if "OMP_WAIT_POLICY" in os.environ:
        return True
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    if "torch" in sys.modules:
        warnings.warn(LATE_POLICY_WARNING, RuntimeWarning, stacklevel=2)
        return False
    return True


@functools.cache
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :func:`platform.processor` says: the float kernels a
    CPU runs move the last bits of a result, so a result's record names it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


@functools.cache
def cpu_kernels() -> str | None:
    """What decides which float kernels run, beyond the model name: the CPU's vendor, family and model
    (``/proc/cpuinfo``) and the instruction set torch dispatches to, e.g. ``"AuthenticAMD family 25 model 1,
    torch AVX2"``; None where neither is known.

    Why: a virtual machine often reports only ``"AMD EPYC"`` for every EPYC generation, yet one with AVX-512 runs
    other kernels (other last bits) than one without, so the name alone cannot tell two machines apart whose
    folds do not reproduce each other exactly.
    """
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("vendor_id", "cpu family", "model") and key not in fields:
                fields[key] = value.strip()
            if not line.strip() and fields:
                break  # the first processor's block is enough
    except OSError:
        pass
    parts = []
    if fields:
        parts.append(" ".join(filter(None, (fields.get("vendor_id"),
                                            f"family {fields['cpu family']}" if "cpu family" in fields else "",
                                            f"model {fields['model']}" if "model" in fields else ""))))
    try:
        import torch

        parts.append(f"torch {torch.backends.cpu.get_cpu_capability()}")
    except (ImportError, AttributeError, RuntimeError):
        pass
    return ", ".join(p for p in parts if p) or None


def cpu_identity(name: str | None = None, kernels: str | None = None) -> str | None:
    """One string naming a CPU as closely as a result's record can: ``"NAME [KERNELS]"``, or the name alone where
    the kernels were not recorded (folds written before manifests recorded them). Defaults: this machine's
    :func:`cpu_model` and :func:`cpu_kernels`; with a ``name`` given, only the ``kernels`` given count."""
    if name is None:
        name, kernels = cpu_model(), cpu_kernels()
    if not name:
        return None
    return f"{name} [{kernels}]" if kernels else name


def cpu_record() -> dict[str, str]:
    """This machine's CPU as a result records it: ``{"cpu": model name, "cpu_kernels": ...}`` (the kernels left
    out where unknown); :func:`recorded_cpu` reads it back."""
    kernels = cpu_kernels()
    return {"cpu": cpu_model(), **({"cpu_kernels": kernels} if kernels else {})}


def recorded_cpu(record: Mapping, name_key: str = "cpu") -> str | None:
    """The :func:`cpu_identity` a record (a fold manifest, a study cell, a machine record whose name is under
    ``name_key``) gives, with its ``cpu_kernels`` where present; None where it names no CPU."""
    name = record.get(name_key)
    return cpu_identity(name, record.get("cpu_kernels")) if name else None


def cpu_name(identity: str) -> str:
    """The model name of a :func:`cpu_identity` (what precedes its ``[kernels]``)."""
    return identity.split(" [", 1)[0]


def keep_freed_memory() -> bool:
    """Keep memory that ``free`` returns inside the process (glibc only); True where the setting took effect.

    Why: torch allocates a step's activations and gradients afresh and frees them at its end. glibc returns large
    freed blocks (``mmap``-ed ones, and the free top of the heap beyond its trim threshold) to the OS, so the next
    step faults the same amount of memory in again, page by page, each page zeroed by the kernel. A composite
    fold of convat_tiny took 0.1-1 million minor page faults per 140 steps, 5-17 % of its CPU time in the kernel;
    with fixed thresholds it took about 0.1 million and under 3 %, with identical predictions (the allocator
    decides where tensors live, not what is computed: torch aligns every CPU tensor to 64 bytes either way). The
    cost: the process keeps up to its peak heap (the memory it already used) until it exits.

    Affects this process only, from the call on; spawned workers run it when they import :mod:`convat`. Does
    nothing where the C library is not glibc or ``$CONVAT_ALLOCATOR`` is ``system``.
    """
    if os.environ.get(ENV_ALLOCATOR, "").strip().lower() == "system":
        return False
    try:
        libc = ctypes.CDLL(None)  # the C library this process already runs on
        libc.gnu_get_libc_version  # noqa: B018  (present in glibc only; musl's mallopt does nothing)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def cpu_cores() -> int:
    """Cores this process may run on (its affinity mask where the OS reports one, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """Threads for the main process: ``$CONVAT_THREADS`` if set, else ``$OMP_NUM_THREADS`` if set, else all
    cores. With the passive wait policy, all cores is the measured best choice on a quiet machine and no longer
    collapses under load (see the README's performance section)."""
    for name in (ENV_THREADS, "OMP_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if value:
            try:
                return max(1, int(value))
            except ValueError as err:
                raise ValueError(f"${name} must be a positive integer, got {value!r}") from err
    return cpu_cores()


def worker_threads(workers: int, cores: int | None = None) -> int:
    """Threads for each of ``workers`` processes sharing ``cores`` (default: this process's cores), at least 1."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    return max(1, (cores or cpu_cores()) // workers)


def configure_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads and OpenCV's threads to ``threads`` (default :func:`default_threads`).

    torch's inter-op pool can only be sized before it first runs parallel work, so it is set when still
    possible and left alone otherwise. Returns the thread count now in effect.
    """
    import cv2
    import torch

    threads = default_threads() if threads is None else int(threads)
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:
        pass  # already started: its size is fixed for this process
    cv2.setNumThreads(threads)
    return torch.get_num_threads()


def _proc_stat(pid: int | str) -> tuple[int, int] | None:
    """``(parent pid, CPU ticks)`` of a live process from ``/proc/<pid>/stat`` (its own user and system time and
    that of its reaped children), or ``None`` when it is gone or unreadable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()  # the command name may hold spaces and ")"
    except (OSError, IndexError):
        return None
    # after the name: state ppid ... utime(14) stime(15) cutime(16) cstime(17), numbered from 1 with pid, name
    return int(fields[1]), sum(int(f) for f in fields[11:15])


def process_tree_cpu_s() -> float | None:
    """CPU seconds (user and system) used so far by this process, its live descendants (fold workers
    included) and the descendants already reaped, or ``None`` where ``/proc`` cannot tell (not Linux).

    Why: a parent that hands folds to worker processes uses almost no CPU itself, so its
    :func:`time.process_time` says nothing about what a run cost. The difference of two readings is the CPU
    the process tree used in between (a descendant that ended but was not yet reaped is missed meanwhile).
    """
    own = _proc_stat("self")
    if own is None:
        return None
    children: dict[int, list[int]] = {}  # parent pid -> its children, from one read of each process's stat
    ticks_of: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = _proc_stat(entry.name)
            if stat is not None:
                children.setdefault(stat[0], []).append(int(entry.name))
                ticks_of[int(entry.name)] = stat[1]
    ticks, todo = own[1], list(children.get(os.getpid(), []))
    while todo:
        pid = todo.pop()
        ticks += ticks_of[pid]
        todo.extend(children.get(pid, []))
    return round(ticks / os.sysconf("SC_CLK_TCK"), 2)
