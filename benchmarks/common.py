"""What every benchmark result carries: the machine, the versions, the date and the load it ran under."""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from pathlib import Path

from convat.site.environment import git_commit, load_average, machine, machine_cpu, package_versions

RESULTS = Path(__file__).with_name("results")
#: Every target's latest measurement on each machine that ran ``make bench`` (a CPU, or a GPU for the GPU part),
#: beside the part files, which hold only the latest run: the machines change between sessions and differ about 2x.
ARCHIVE = "targets_by_machine.json"


def context() -> dict:
    """Machine, versions, commit, date and load: stored with every result file."""
    info = machine()
    return {"machine": info, "date": info.pop("date (UTC)"), "versions": package_versions(),
            "git_commit": git_commit(), "load_average_1min": load_average(), "cpu_count": os.cpu_count()}


def others_running(samples: int = 10, interval: float = 0.1) -> float:
    """Mean number of *other* runnable processes over ``samples`` readings of ``/proc/loadavg`` (its running
    count includes the reader itself, subtracted here); ``nan`` where there is no ``/proc``.

    Unlike the load average, which decays over a minute and so also counts the benchmark's own busy processes
    of the part before, this is what competes for the cores at the moment a part starts."""
    import math

    counts = []
    for _ in range(samples):
        try:
            with open("/proc/loadavg") as f:
                counts.append(int(f.read().split()[3].split("/")[0]) - 1)
        except (OSError, IndexError, ValueError):
            return math.nan
        time.sleep(interval)
    return round(sum(counts) / len(counts), 2)


@contextmanager
def stopwatch():
    """``with stopwatch() as t: ...`` then ``t()`` is the elapsed seconds (frozen at exit)."""
    start = time.perf_counter()
    end: list[float] = []
    yield lambda: (end[0] if end else time.perf_counter()) - start
    end.append(time.perf_counter())


def target(name: str, value: float | None, limit: float, unit: str, how: str) -> dict:
    """A target and whether it was met; ``missed_by`` is the factor by which the value exceeds the limit."""
    if value is None:
        return {"target": name, "limit": limit, "unit": unit, "value": None, "met": None, "how": how,
                "missed_by": None}
    met = value <= limit
    return {"target": name, "limit": limit, "unit": unit, "value": round(value, 2), "met": met, "how": how,
            "missed_by": None if met else round(value / limit, 2)}


def write_result(name: str, payload: dict, out: Path = RESULTS) -> Path:
    """Write ``results/<name>.json`` with the context merged in."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps({"benchmark": name, **context(), **payload}, indent=1, default=str) + "\n")
    return path


def measured_nothing(payload: dict) -> bool:
    """Whether a part's payload holds no measurement (the GPU part without CUDA, the chapters part without a build):
    such a payload must not replace an earlier file of the part that may hold one."""
    return payload.get("measured") is False


def archive_key(result: dict) -> str:
    """The machine a result's targets belong to: the GPU for the GPU part, else the CPU with its float kernels."""
    if result.get("benchmark") == "gpu" and result.get("gpu"):
        return f"GPU {result['gpu']}"
    return machine_cpu(result["machine"])


def archive_targets(result: dict, out: Path = RESULTS) -> Path | None:
    """Record the measured targets of a written result (``write_result``'s file, read back) in ``out/ARCHIVE``
    under its machine, replacing that machine's earlier value of each; targets without a value are left out, so
    a run that could not measure one never erases a measurement. None where nothing was measured."""
    measured = [t for t in result.get("targets", []) if t.get("value") is not None]
    if not measured:
        return None
    path = out / ARCHIVE
    archive = json.loads(path.read_text()) if path.is_file() else {}
    machine = archive.setdefault(archive_key(result), {})
    for t in measured:
        machine[t["target"]] = {k: t.get(k) for k in ("value", "limit", "unit", "met", "missed_by", "how")} | {
            "part": result["benchmark"], "date": result["date"], "git_commit": result.get("git_commit")}
    path.write_text(json.dumps(archive, indent=1, sort_keys=True) + "\n")
    return path


def store_result(name: str, payload: dict, out: Path = RESULTS) -> tuple[Path, bool]:
    """Write a part's result (:func:`write_result`) and archive its measured targets (:func:`archive_targets`);
    a payload that measured nothing (:func:`measured_nothing`) keeps an existing file of the part instead, e.g.
    the GPU part on a CPU machine keeps the committed GPU measurement. Returns the path and whether it was
    written."""
    path = out / f"{name}.json"
    if measured_nothing(payload) and path.is_file():
        return path, False
    path = write_result(name, payload, out)
    archive_targets(json.loads(path.read_text()), out)
    return path, True


def child_main(prog: str, doc: str, child, run, add_arguments=None, argv: list[str] | None = None) -> int:
    """The ``main`` of a benchmark that measures in child processes: ``--child`` runs one measurement
    (``child(args)``, with the hidden ``--data`` file the parent wrote); otherwise ``run(args)`` measures and
    its result is printed as JSON. ``add_arguments(parser)`` adds the benchmark's own flags."""
    import argparse

    p = argparse.ArgumentParser(prog=prog, description=doc.splitlines()[0])
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--epochs", type=int, default=2, help="training epochs per measured fold")
    p.add_argument("--repeats", type=int, default=2, help="repeats per scenario (their median is reported)")
    if add_arguments is not None:
        add_arguments(p)
    args = p.parse_args(argv)
    if args.child:
        child(args)
    else:
        print(json.dumps(run(args), indent=1))
    return 0
