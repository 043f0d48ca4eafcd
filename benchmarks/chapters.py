"""The time of each chapter in the quick profile: from the last ``make book`` (its build log writes
``_build/html/_static/chapter_times.json``), or measured now with ``--chapters`` (each chapter in a fresh kernel)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from benchmarks.common import target
from convat.book import CHAPTER_BUDGETS_S

ROOT = Path(__file__).resolve().parents[1]
BUILD_TIMES = ROOT / "_build" / "html" / "_static" / "chapter_times.json"

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


def run(execute: bool = False) -> dict:
    if execute:
        from convat.commands.chapter import execute_chapter

        chapters = sorted((ROOT / "book").glob("[0-9]*.md"))
        times = {f"book/{c.stem}": execute_chapter(c) for c in chapters}
        source = "measured now, each chapter in a fresh kernel"
    elif BUILD_TIMES.is_file():
        times = json.loads(BUILD_TIMES.read_text())
        stamp = dt.datetime.fromtimestamp(BUILD_TIMES.stat().st_mtime, dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
        source = f"the last `make book` ({stamp} UTC), read from {BUILD_TIMES.relative_to(ROOT)}"
    else:
        return {"rows": [], "source": "no build found: run `make book` first, or `python -m benchmarks.run "
                "--chapters`", "targets": [target("whole book, quick profile", None, BOOK_BUDGET_S, "s", "not run")]}
    total = sum(times.values())
    return {"rows": _rows(times), "source": source, "total_seconds": round(total, 1),
            "targets": [target("whole book, quick profile (chapter execution)", total, BOOK_BUDGET_S, "s", source)]}
