"""The time of each chapter in the quick profile: from the last ``make book`` (its build log writes
``_build/html/_static/chapter_times.json``, and the package cache and load it ran under to ``build_conditions.json``
beside it), or measured now with ``--chapters`` (each chapter in a fresh kernel, the cache as it is).

The issue's target is the whole book *from a clean cache*: a build that started with cached tensors or LOSO runs
was served results a first run computes, so its total is shown but not judged against the target."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from benchmarks.common import target
from convat.book import CELL_TIMEOUT_S, CHAPTER_BUDGETS_S
from convat.site.build_state import BUILD_CONDITIONS, build_conditions, build_start
from convat.site.environment import describe_cache

ROOT = Path(__file__).resolve().parents[1]
BUILD_TIMES = ROOT / "_build" / "html" / "_static" / "chapter_times.json"
BUILD_CONDITIONS_JSON = BUILD_TIMES.with_name(BUILD_CONDITIONS)

#: Per-chapter budgets in seconds (uncontended, quick profile): the book's own (stated on its environment page
#: and checked in its build log), and the whole book's.
BUDGETS = CHAPTER_BUDGETS_S
#: The speed issue's target: the whole book, quick profile, from a clean cache, within 4 minutes on the 2-core machine.
BOOK_BUDGET_S = 240


def _rows(times: dict[str, float]) -> list[dict]:
    rows = []
    for doc, seconds in times.items():
        budget = BUDGETS.get(Path(doc).name)
        rows.append({"chapter": doc, "seconds": round(seconds, 1), "budget_s": budget,
                     "within_budget": None if budget is None else seconds <= budget})
    return rows


#: The whole-book target's name in the report.
BOOK_TARGET = "whole book, quick profile, from a clean cache (chapter execution)"


#: How a part that executed the chapters itself (``--chapters``) describes where its times come from: the text is
#: shown later beside other parts, so it says who ran them rather than when.
EXECUTED = "the chapters executed by the benchmark, each in a fresh kernel, in the build's order"


def book_target(total: float, conditions: dict, source: str) -> dict:
    """The whole-book target, judged only for a build that started from an empty package cache; any other total
    is reported as not judged, saying why."""
    cache = describe_cache(conditions)
    if conditions.get("cache_files_at_start") == 0:
        return target(BOOK_TARGET, total, BOOK_BUDGET_S, "s", f"{source}; {cache}")
    if "cache_files_at_start" not in conditions:
        why = f"{source} did not record its package cache, so whether it was a first run is unknown"
    elif conditions.get("cache_files_at_start") is None:
        why = f"{source} could not read its package cache, so whether it was a first run is unknown"
    else:
        why = f"{source} started from a {cache}, which serves the runs and tensors it holds"
    advice = ("measure with --fresh-cache" if source.startswith(EXECUTED) else
              "run `make book` with an empty $CONVAT_CACHE, or `python -m benchmarks.run chapters --chapters "
              "--fresh-cache`")
    return {**target(BOOK_TARGET, None, BOOK_BUDGET_S, "s", f"{why} ({total:.1f} s); {advice}"), "judged": False}


#: Cells kept per chapter when the chapters are executed here: the slowest 3, and every one of 20 s or more.
SLOWEST_CELLS, HEAVY_CELL_S = 3, 20.0


def book_notebooks(book: Path = ROOT / "book") -> list[Path]:
    """The pages ``make book`` executes (MyST notebooks: a ``kernelspec`` in their front matter), in the order
    the build executes them (by name; the course guide last)."""
    return sorted(p for p in book.glob("*.md") if "\nkernelspec:" in p.read_text(encoding="utf-8").split("\n---", 1)[0])


def _execute(chapters: list[Path]) -> tuple[dict[str, float], dict[str, list[dict]], dict]:
    """Execute ``chapters`` in order, as ``make book`` does: its thread settings (one kernel at a time may use
    every core; idle OpenMP threads sleep) unless the environment sets them."""
    import os
    import time

    from nbclient.exceptions import CellTimeoutError

    from convat.commands.chapter import execute_chapter
    from convat.runtime import cpu_cores

    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, str(cpu_cores()))
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    start = build_start()
    times, cells = {}, {}
    for chapter in chapters:
        cell_times: list[dict] = []
        began = time.perf_counter()
        try:
            times[f"book/{chapter.stem}"] = execute_chapter(chapter, timeout=CELL_TIMEOUT_S, cell_times=cell_times)
        except CellTimeoutError:  # what the build would fail on: recorded as the cell timeout reached, not lost
            times[f"book/{chapter.stem}"] = time.perf_counter() - began
            # the first code cell after the last one that finished (blank and skipped cells are numbered too)
            after = max((t["cell"] for t in cell_times), default=0)
            cell_times.append({"cell": f"after {after}" if after else "at the start", "seconds": float(CELL_TIMEOUT_S),
                               "section": "", "code": "(timed out)", "timed_out": True})
        ranked = sorted(cell_times, key=lambda t: -t["seconds"])
        cells[f"book/{chapter.stem}"] = [t for i, t in enumerate(ranked) if i < SLOWEST_CELLS
                                         or t["seconds"] >= HEAVY_CELL_S]
    return times, cells, build_conditions(start)


def run(execute: bool = False, fresh_cache: bool = False) -> dict:
    """The chapters' times: read from the last build, or (``execute``) measured now in the book's order, with each
    chapter's slowest cells; ``fresh_cache`` executes them with a new, empty ``$CONVAT_CACHE`` (removed after),
    which is what the target is about."""
    cells: dict[str, list[dict]] = {}
    if execute:
        chapters = book_notebooks()
        source = EXECUTED
        if fresh_cache:
            import os
            import tempfile
            from unittest import mock

            with (tempfile.TemporaryDirectory(prefix="convat-bench-cache-") as folder,
                  mock.patch.dict(os.environ, {"CONVAT_CACHE": folder})):
                times, cells, conditions = _execute(chapters)
            conditions["cache_root"] = "a temporary folder, removed after"
        else:
            times, cells, conditions = _execute(chapters)
    elif BUILD_TIMES.is_file():
        times = json.loads(BUILD_TIMES.read_text())
        stamp = dt.datetime.fromtimestamp(BUILD_TIMES.stat().st_mtime, dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
        source = f"the last `make book` ({stamp} UTC), read from {BUILD_TIMES.relative_to(ROOT)}"
        conditions = json.loads(BUILD_CONDITIONS_JSON.read_text()) if BUILD_CONDITIONS_JSON.is_file() else {}
    else:
        return {"rows": [], "measured": False, "source": "no build found: run `make book` first, or "
                "`python -m benchmarks.run --chapters`",
                "targets": [target(BOOK_TARGET, None, BOOK_BUDGET_S, "s", "not run")]}
    total = sum(times.values())
    return {"rows": _rows(times), "source": f"{source} ({describe_cache(conditions)})", "build": conditions,
            "slowest_cells": cells, "total_seconds": round(total, 1),
            "targets": [book_target(total, conditions, source)]}


#: The speed issue's "no cell near its timeout under load", read as: with two busy background processes, the
#: slowest cell takes at most a quarter of the book's cell timeout (the failure it is about was a chapter 2 cell
#: that ran past the 900 s timeout on a loaded machine).
LOAD_TARGET = "slowest cell with 2 busy background processes, share of the cell timeout"
LOAD_LIMIT = 0.25


def run_under_load(busy_processes: int = 2, quiet: dict | None = None) -> dict:
    """Every page the book executes, from a fresh cache, while ``busy_processes`` background processes spin one
    core each (started and stopped here): each chapter's time and slowest cells, the slowest cell against the
    cell timeout (:data:`LOAD_TARGET`), and each chapter's time beside ``quiet`` (a chapters result measured
    without them, e.g. the committed ``chapters.json``) where given."""
    from benchmarks.load import busy, load_average

    with busy(busy_processes):
        payload = run(execute=True, fresh_cache=True)
        payload["load_average_under_load"] = load_average()
    quiet_s = {r["chapter"]: r["seconds"] for r in (quiet or {}).get("rows", [])}
    for row in payload["rows"]:
        base = quiet_s.get(row["chapter"])
        row["quiet_seconds"] = base
        row["slowdown"] = round(row["seconds"] / base, 2) if base else None
    cells = [(c["seconds"], chapter, c) for chapter, top in payload["slowest_cells"].items() for c in top]
    if cells:
        seconds, chapter, cell = max(cells, key=lambda t: t[0])
        reached = " (it reached the timeout: the build fails there)" if cell.get("timed_out") else ""
        how = (f"{busy_processes} busy processes, every page from a fresh cache in the build's order; slowest: "
               f"{chapter.removeprefix('book/')} code cell {cell.get('cell')}, {seconds:.1f} s of the "
               f"{CELL_TIMEOUT_S} s timeout{reached}")
        value = seconds / CELL_TIMEOUT_S
    else:
        how, value = f"{busy_processes} busy processes; no cell was timed", None
    payload.update(busy_processes=busy_processes, cell_timeout_s=CELL_TIMEOUT_S,
                   quiet_source=(quiet or {}).get("source"),
                   targets=[target(LOAD_TARGET, value, LOAD_LIMIT, "x", how)])
    return payload
