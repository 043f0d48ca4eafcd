"""The exercises at the end of the teaching chapters: found, counted and made checkable.

Every teaching chapter ends with one section headed ``## Exercises``. Each exercise is a MyST admonition titled
``Exercise <chapter>.<n> · <level>: <title>`` and is followed by its worked solution, an admonition titled
``Solution <chapter>.<n>`` with the class ``dropdown`` (rendered folded by sphinx-togglebutton, which ships
with Jupyter Book). Solution code lives in plain ```` ```python ```` fences, so the book does not execute it;
:func:`solution_code` extracts it so that the tests can run every solution on tiny settings after the
chapter's parameters cell (the solutions may use the parameter names, nothing else the chapter computed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

#: Heading of the final section of a teaching chapter that holds its exercises.
HEADING = "## Exercises"

#: Difficulty levels, from "change a parameter and explain what moved" to a small project.
LEVELS = ("warm-up", "analysis", "project")

_EXERCISE = re.compile(r"^:{3,}\{admonition\} Exercise (\d+[a-z]?\.\d+) · ([a-z-]+): (.+)$", re.M)
_SOLUTION = re.compile(r"^(:{3,})\{admonition\} Solution (\d+[a-z]?\.\d+)\n((?::[a-z]+:[^\n]*\n)*)(.*?)^\1$",
                       re.M | re.S)
_PYTHON = re.compile(r"^```python\n(.*?)^```$", re.M | re.S)


@dataclass(frozen=True)
class Exercise:
    """One exercise of a chapter and its worked solution."""

    number: str
    level: str
    title: str
    solution: str
    """The solution's Markdown body (empty when the exercise has none)."""
    solution_options: str
    """The option lines of the solution admonition (``:class: dropdown`` hides it behind a toggle)."""

    @property
    def code(self) -> str:
        """The solution's Python code: its ```` ```python ```` blocks in order, joined."""
        return solution_code(self.solution)


def exercise_section(text: str) -> str:
    """The ``## Exercises`` section of a chapter's text (to the end of the file), or ``""`` when it has none."""
    start = text.find(f"\n{HEADING}\n")
    return text[start + 1:] if start >= 0 else ""


def solution_code(markdown: str) -> str:
    """The Python code of a solution: its ```` ```python ```` blocks, in order, separated by blank lines."""
    return "\n\n".join(block.rstrip() for block in _PYTHON.findall(markdown))


def exercises(chapter: str | Path) -> list[Exercise]:
    """The exercises of a chapter file, in order, each with its solution."""
    section = exercise_section(Path(chapter).read_text(encoding="utf-8"))
    solutions = {m.group(2): (m.group(4), m.group(3)) for m in _SOLUTION.finditer(section)}
    found = []
    for m in _EXERCISE.finditer(section):
        body, options = solutions.get(m.group(1), ("", ""))
        found.append(Exercise(m.group(1), m.group(2), m.group(3).strip(), body, options))
    return found


def parameters_source(chapter: str | Path) -> str:
    """Source of the chapter's cell tagged ``parameters`` (the names a solution may use)."""
    import jupytext

    for cell in jupytext.read(Path(chapter)).cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            return cell.source
    raise ValueError(f"{chapter}: no code cell tagged 'parameters'")


def exercise_counts(chapters: list[Path]) -> dict[str, dict[str, int]]:
    """Number of exercises per level, per chapter stem (the course guide's table)."""
    counts = {}
    for chapter in chapters:
        found = exercises(chapter)
        counts[chapter.stem] = {level: sum(e.level == level for e in found) for level in LEVELS}
    return counts
