"""The worker pool: explicit threads, shared arrays, reuse, and no orphans when the parent is killed."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from convat import runtime
from convat.pool import map_folds, share_array, warm_pool, worker_pool

ROOT = Path(__file__).resolve().parents[1]


def _worker_facts(shared):
    import torch

    x = shared.load()
    return os.getpid(), torch.get_num_threads(), os.environ.get("OMP_WAIT_POLICY"), float(x.sum()), \
        isinstance(x, np.memmap)


def test_worker_threads_split_the_cores():
    assert runtime.worker_threads(1, cores=2) == 2
    assert runtime.worker_threads(2, cores=2) == 1
    assert runtime.worker_threads(3, cores=2) == 1  # never 0
    assert runtime.worker_threads(2, cores=16) == 8
    with pytest.raises(ValueError, match="workers"):
        runtime.worker_threads(0)


def test_default_threads_reads_the_environment(monkeypatch):
    monkeypatch.setenv("CONVAT_THREADS", "3")
    assert runtime.default_threads() == 3
    monkeypatch.setenv("CONVAT_THREADS", "many")
    with pytest.raises(ValueError, match=r"\$CONVAT_THREADS"):
        runtime.default_threads()


def test_configure_threads_sets_torch_and_opencv():
    import cv2
    import torch

    before = torch.get_num_threads()
    try:
        assert runtime.configure_threads(1) == 1
        assert torch.get_num_threads() == 1 and cv2.getNumThreads() == 1
    finally:
        runtime.configure_threads(before)


def test_pool_workers_get_explicit_threads_and_a_memory_mapped_array():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    shared = share_array(x)
    pool = worker_pool(1, threads=1)
    pid, threads, policy, total, mapped = pool.submit(_worker_facts, shared).result(timeout=120)
    assert pid != os.getpid()
    assert threads == 1 and policy == "PASSIVE"
    assert total == float(x.sum()) and mapped
    # the same pool serves a later call: no new worker start
    assert pool is worker_pool(1, threads=1)
    assert worker_pool(1, threads=1).submit(_worker_facts, shared).result(timeout=60)[0] == pid


def test_shared_array_file_is_removed_with_its_last_handle():
    shared = share_array(np.zeros(3))
    path = Path(shared.path)
    assert path.exists()
    del shared
    import gc

    gc.collect()
    assert not path.parent.exists()


CHILD = textwrap.dedent("""
    import os, sys, time
    from convat.pool import worker_pool

    if __name__ == "__main__":
        pool = worker_pool(1, threads=1)
        print(pool.submit(os.getpid).result(timeout=120), flush=True)
        pool.submit(time.sleep, 600)  # the worker is busy when its parent dies
        time.sleep(600)
""")


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_workers_exit_when_their_parent_is_killed(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env)
    worker = None
    try:
        worker = int(parent.stdout.readline())
        assert _alive(worker)
        time.sleep(1.0)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(worker), "the orphaned worker is still running 10 s after its parent was killed"
    finally:
        parent.kill()
        if worker is not None and _alive(worker):
            os.kill(worker, signal.SIGKILL)


@pytest.mark.parametrize("preset, expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_importing_convat_sets_a_passive_wait_policy_unless_the_user_chose_one(preset, expected):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if preset:
        env["OMP_WAIT_POLICY"] = preset
    env["PYTHONPATH"] = str(ROOT)
    # import convat loads no torch; the policy is in the environment before any stage that loads it
    code = ("import os, sys, convat; a = os.environ['OMP_WAIT_POLICY'], 'torch' in sys.modules; "
            "import convat.models; print(*a, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == [expected, "False", "True"]


@pytest.mark.parametrize("preset, first, warns", [(None, "torch", True), (None, "convat", False),
                                                   ("ACTIVE", "torch", False)])
def test_importing_convat_after_torch_says_the_policy_came_too_late(preset, first, warns):
    """libgomp reads OMP_WAIT_POLICY when torch loads it: after ``import torch`` the passive policy convat sets
    cannot reach this process's threads any more, so convat says so in one line, naming the fix (a policy the
    user chose is theirs, and nothing is said)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if preset:
        env["OMP_WAIT_POLICY"] = preset
    env["PYTHONPATH"] = str(ROOT)
    second = "convat" if first == "torch" else "torch"
    code = f"import os, {first}, {second}; print(os.environ['OMP_WAIT_POLICY'])"
    out = subprocess.run([sys.executable, "-W", "default", "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == [preset or "PASSIVE"]  # fold workers started from here inherit it either way
    warned = [line for line in out.stderr.splitlines() if "RuntimeWarning" in line]
    assert len(warned) == int(warns), out.stderr
    if warns:
        assert "import convat before torch" in warned[0] and "OMP_WAIT_POLICY=PASSIVE" in warned[0]


def test_the_test_process_loaded_torch_after_convat_set_its_wait_policy():
    """conftest imports convat before torch: libgomp reads OMP_WAIT_POLICY once, when torch loads it, and a test
    process whose threads spin-wait trained 3.5-4x slower beside two busy processes (2026-12-07, 2 cores).
    ``sys.modules`` keeps the order in which modules were first imported."""
    order = list(sys.modules)
    assert order.index("convat") < order.index("torch"), "torch was imported before convat (see tests/conftest.py)"
    assert os.environ.get("OMP_WAIT_POLICY"), "no OpenMP wait policy was set before torch loaded"


def _fold_sum(shared, scale, fold, mask):
    return os.getpid(), scale * float(shared.load()[mask].sum())


def _fold_threads(shared, fold, mask):
    import torch

    return torch.get_num_threads()


def test_map_folds_gives_a_fold_the_same_threads_when_fewer_folds_than_workers_are_left():
    x, todo = np.zeros(4, dtype=np.float32), {f"f{i}": np.arange(4) == i for i in range(3)}
    share = runtime.worker_threads(2)
    assert set(dict(map_folds(_fold_threads, x, todo, 2)).values()) == {share}
    # a resumed run with one fold left: one worker starts, with the share of two, not all the cores
    assert dict(map_folds(_fold_threads, x, {"f2": todo["f2"]}, 2)) == {"f2": share}


def _imported(name: str) -> tuple[int, bool]:
    import sys

    return os.getpid(), name in sys.modules


def test_warm_pool_starts_every_worker_with_the_modules_loaded():
    pids = warm_pool(2, threads=1, modules=("wave",))  # a module nothing else here imports
    assert len(pids) == 2 and os.getpid() not in pids
    answered = [worker_pool(2, threads=1).submit(_imported, "wave").result(timeout=60) for _ in range(4)]
    assert {pid for pid, _ in answered} <= pids  # the warmed workers serve later calls: nothing new starts
    assert all(loaded for _, loaded in answered)  # and each of them has the module loaded


def test_map_folds_yields_every_fold_once_with_the_shared_array():
    x = np.arange(12, dtype=np.float32)
    todo = {f"f{i}": np.arange(12) % 3 == i for i in range(3)}
    got = dict(map_folds(_fold_sum, x, todo, 2, 10.0, threads=1))
    assert sorted(got) == sorted(todo)
    for fold, mask in todo.items():
        assert got[fold][1] == 10.0 * float(x[mask].sum())
    assert list(map_folds(_fold_sum, x, {}, 2, 1.0)) == []


def _burn(seconds: float) -> float:
    start = time.process_time()
    while time.process_time() - start < seconds:
        pass
    return time.process_time() - start


@pytest.mark.skipif(runtime.process_tree_cpu_s() is None, reason="no /proc to read the process tree from")
def test_process_tree_cpu_counts_the_fold_workers_and_reaped_children():
    pool = worker_pool(2, threads=1)
    pool.submit(int, 0).result(timeout=120)  # started outside the measured part
    before, own = runtime.process_tree_cpu_s(), time.process_time()
    burnt = sum(f.result(timeout=60) for f in [pool.submit(_burn, 0.4) for _ in range(2)])
    spent = runtime.process_tree_cpu_s() - before
    assert time.process_time() - own < 0.2 < burnt  # the parent barely worked: its own clock misses the cost
    assert burnt - 0.05 <= spent <= burnt + 0.5
    # a child that has ended and been reaped still counts
    before = runtime.process_tree_cpu_s()
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass"
    subprocess.run([sys.executable, "-c", burn], check=True)
    assert runtime.process_tree_cpu_s() - before >= 0.35


_CHURN = textwrap.dedent("""
    import json, resource
    import convat  # noqa: F401  (its import keeps freed memory unless $CONVAT_ALLOCATOR=system)
    import torch
    torch.set_num_threads(1)
    def step():  # one training step's temporaries: 8 blocks of 4 MiB, freed together
        blocks = [torch.ones(1 << 20) for _ in range(8)]
        return float(sum(b.sum() for b in blocks))
    step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    total = sum(step() for _ in range(20))
    print(json.dumps({"faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, "total": total}))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc and ru_minflt: Linux only")
def test_importing_convat_keeps_freed_memory_instead_of_faulting_it_in_every_step():
    import json

    def faults(allocator: str) -> dict:
        env = {**os.environ, "PYTHONPATH": str(ROOT), runtime.ENV_ALLOCATOR: allocator}
        out = subprocess.run([sys.executable, "-c", _CHURN], env=env, capture_output=True, text=True, timeout=120,
                             check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    kept, system = faults("keep"), faults("system")
    assert kept["total"] == system["total"]  # the same computation either way
    # glibc's defaults trim the freed top of the heap after every step and fault it in again on the next
    # (measured: ~163,000 faults over 20 steps against ~8,000)
    assert kept["faults"] * 5 < system["faults"], (kept, system)
