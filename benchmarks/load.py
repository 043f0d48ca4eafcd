"""Measuring under load, honestly: busy background processes the benchmark starts and stops itself, and timings
of child processes with their wall time, their CPU time and the load average next to each other."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from convat.site.environment import load_average  # re-exported: loso and threads import it from here

ROOT = Path(__file__).resolve().parents[1]
BUSY_LOOP = "while True: pass"


@contextmanager
def busy(n: int = 2):
    """``n`` background processes that each spin one core for as long as the block runs (then killed)."""
    procs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(n)]
    try:
        time.sleep(0.5 if n else 0.0)  # let them start spinning
        yield procs
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def timed_child(args: list[str], env: dict[str, str] | None = None, timeout: float = 1800) -> dict:
    """Run ``python args...`` in a fresh process; wall seconds, CPU seconds (user + system of the child and of the
    descendants it reaped; ``sys_s`` the system part alone) and the one-minute load average before and after."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load0 = load_average()
    start = time.perf_counter()
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    full_env = {k: v for k, v in full_env.items() if v is not None}
    proc = subprocess.run([sys.executable, *args], env=full_env, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{args} failed with exit code {proc.returncode}:\n{proc.stderr[-3000:]}")
    system = after.ru_stime - before.ru_stime
    cpu = (after.ru_utime - before.ru_utime) + system
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "sys_s": round(system, 2), "load_before": load0,
            "load_after": load_average(),
            "stdout": proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""}


def median(values: list[float]) -> float:
    s = sorted(values)
    n = len(s)
    return round(s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2, 2)


def without(env: dict[str, str], *names: str) -> dict:
    """A copy of ``env`` with ``names`` removed (used to restore a library's own default)."""
    return {k: v for k, v in env.items() if k not in names}


def cpu_seconds_tree() -> float:
    """CPU seconds (user + system) of this process, its live descendants (pool workers included) and its reaped
    children: :func:`convat.runtime.process_tree_cpu_s`, or psutil's view of the live tree where ``/proc`` cannot
    tell."""
    from convat.runtime import process_tree_cpu_s

    tree = process_tree_cpu_s()
    if tree is not None:
        return tree
    import psutil

    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.NoSuchProcess:
            pass
    return total
