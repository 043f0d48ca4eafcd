"""The exercises at the end of the teaching chapters: present, graded, folded, and every solution runs.

Each solution's code runs after its chapter's parameters cell, with tiny settings (a 4-subject SynthME profile,
one epoch, 32-pixel maps): the same code a student pastes into the notebook, against the package's real API.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import matplotlib
import pytest

from convat.site.exercises import HEADING, LEVELS, exercise_counts, exercises, parameters_source

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
TEACHING = ["02_data", "02b_real_datasets", "03_preprocessing", "04_model", "05_loso", "06_results",
            "07_explainability", "08_pitfalls"]
CHAPTERS = [ROOT / "book" / f"{stem}.md" for stem in TEACHING]

#: Tiny settings for running the solutions in seconds (names the parameters cells define).
TINY = {"PROFILE": "tiny", "EPOCHS": 1, "IMG_SIZE": 32, "N_BOOT": 50, "N_SHOW": 2, "N_APEX": 3, "N_BENCH": 2,
        "N_DETECT": 3, "N_GALLERY": 2, "MODELS": ["convat_tiny", "ststnet"], "DEVICE": "cpu", "RANDOM_FOLDS": 2}


@pytest.mark.parametrize("chapter", CHAPTERS, ids=TEACHING)
def test_every_teaching_chapter_ends_with_graded_exercises_and_folded_solutions(chapter):
    text = chapter.read_text(encoding="utf-8")
    assert text.count(f"\n{HEADING}\n") == 1, f"{chapter.name}: one '{HEADING}' section"
    tail = text[text.index(f"\n{HEADING}\n") + 1:]
    assert "\n## " not in tail[3:], f"{chapter.name}: the exercises must be the last section"
    assert "{code-cell}" not in tail, f"{chapter.name}: exercises must not add executed cells to the chapter"
    found = exercises(chapter)
    assert 3 <= len(found) <= 6, f"{chapter.name}: {len(found)} exercises"
    assert [e.number.split(".")[1] for e in found] == [str(i) for i in range(1, len(found) + 1)]
    assert {e.level for e in found} <= set(LEVELS)
    assert found[0].level == "warm-up" and found[-1].level == "project", "graded from warm-up to a project"
    for e in found:
        assert e.solution.strip(), f"{chapter.name}: exercise {e.number} has no solution"
        assert ":class: dropdown" in e.solution_options, f"{chapter.name}: solution {e.number} is not folded"


def test_the_parser_finds_solutions_and_their_code(tmp_path):
    chapter = tmp_path / "x.md"
    chapter.write_text("# X\n\ntext\n\n## Exercises\n\n:::{admonition} Exercise 9.1 · warm-up: a title\n"
                       ":class: note\nDo it.\n:::\n\n::::{admonition} Solution 9.1\n:class: dropdown\n\n"
                       "```python\na = 1\n```\n\nthen\n\n```python\nb = a + 1\n```\n::::\n\n"
                       ":::{admonition} Exercise 9.2 · project: no solution\n:class: note\nx\n:::\n")
    first, second = exercises(chapter)
    assert (first.number, first.level, first.title) == ("9.1", "warm-up", "a title")
    assert first.code == "a = 1\n\nb = a + 1" and ":class: dropdown" in first.solution_options
    assert second.solution == "" and second.code == ""
    assert exercise_counts([chapter]) == {"x": {"warm-up": 1, "analysis": 0, "project": 1}}


def _solutions():
    for chapter in CHAPTERS:
        for e in exercises(chapter):
            if e.code:
                yield pytest.param(chapter, e, id=f"{chapter.stem}-{e.number}")


@pytest.fixture
def tiny_profile(monkeypatch):
    from convat.data import synth

    monkeypatch.setitem(synth.PROFILES, "tiny", synth.SynthConfig(n_subjects=4, clips_per_subject=5))


@pytest.mark.parametrize(("chapter", "exercise"), list(_solutions()))
def test_every_solution_runs_against_the_real_api(chapter, exercise, tiny_profile, monkeypatch, tmp_path):
    import matplotlib.pyplot as plt

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the solutions' temporary folders
    monkeypatch.setenv("CONVAT_RUNS", str(tmp_path / "runs"))
    monkeypatch.delenv("CONVAT_DATA", raising=False)
    namespace: dict = {"__name__": "__main__"}
    exec(compile(parameters_source(chapter), f"{chapter.name}:parameters", "exec"), namespace)
    namespace.update({k: v for k, v in TINY.items() if k in namespace})
    try:
        exec(compile(exercise.code, f"{chapter.name}:solution {exercise.number}", "exec"), namespace)
    finally:
        plt.close("all")
        os.environ.pop("CONVAT_DATA", None)
