"""What every benchmark result carries: the machine, the versions, the date and the load it ran under."""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from pathlib import Path

from convat.site.environment import git_commit, load_average, machine, package_versions

RESULTS = Path(__file__).with_name("results")


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
