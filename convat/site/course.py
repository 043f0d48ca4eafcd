"""The course guide's tables: four lab sessions, what each chapter teaches, and how long it runs.

Run times are never typed in: they come from a chapters benchmark file (``benchmarks/results/chapters.json``,
written by ``make bench`` from a book build) or from a build's own ``_static/chapter_times.json``; a device
that has no measurement is reported as ``not measured``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from convat.site.environment import cache_state, describe_cache, machine_cpu

#: The committed chapter-timing benchmark of a source checkout (absent from an installed wheel).
CHAPTERS_JSON = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "chapters.json"


@dataclass(frozen=True)
class Session:
    """One 90-minute lab session: its chapters, in order, and what students hand in at the end."""

    title: str
    chapters: tuple[str, ...]
    hand_in: str


#: What each chapter teaches (its learning goals), by chapter stem.
GOALS: dict[str, str] = {
    "01_paper": "state what the paper claims and which of its choices are unpublished",
    "02_data": "explain how subjects, AUs and nuisances make a micro-expression dataset; read LOSO against a random "
               "split",
    "02b_real_datasets": "lay out CASME II, SAMM and SMIC under one data root, read a validation report, map "
                         "emotions to the MEGC 3-class scheme",
    "03_preprocessing": "follow a clip through face box, apex, optical flow and strain; judge a flow method by "
                        "its end-point error",
    "04_model": "trace the shapes through ConVAT; say what the variational bottleneck does and how to ablate it",
    "05_loso": "run leave-one-subject-out training honestly (fixed budget or inner validation) and read per-subject "
               "results",
    "06_results": "compare models with pooled UF1/UAR, subject-bootstrap intervals and reference rows",
    "07_explainability": "compute attribution and attention maps and test whether they point at the true AU "
                         "regions",
    "08_pitfalls": "recognise subject leakage, best-epoch-on-test, per-fold averaging and unreachable accuracies",
    "09_real_data": "switch every chapter to the licensed datasets, on a CPU or a Colab GPU",
}

#: Four 90-minute lab sessions.
SESSIONS: tuple[Session, ...] = (
    Session("1. Data and the evaluation problem", ("01_paper", "02_data", "02b_real_datasets"),
            "exercises 2.1–2.3 and 2b.3 answered in the notebook; one paragraph on why LOSO"),
    Session("2. From clips to motion maps to a model", ("03_preprocessing", "04_model"),
            "exercises 3.1–3.3 and 4.1–4.2; the flow benchmark table with a sentence on the winner"),
    Session("3. Training and comparing models", ("05_loso", "06_results"),
            "exercises 5.1–5.3 and 6.1–6.3; a results table with reference rows and intervals"),
    Session("4. Explanations and pitfalls", ("07_explainability", "08_pitfalls"),
            "one project exercise (3.4, 4.4, 6.4, 7.4 or 8.4) as a notebook that runs top to bottom, with a "
            "half-page report"),
)


def chapter_times(path: str | Path | None = None) -> tuple[dict[str, float], dict]:
    """``({chapter stem: seconds}, provenance)`` from a chapters benchmark or a build's ``chapter_times.json``.

    Provenance has the machine, date, load average and the package cache the build started with (fresh, as on a
    new Colab runtime, or warm) when the file records them. A missing file gives ``({}, {"source": path})``.
    """
    path = Path(path) if path is not None else CHAPTERS_JSON
    if not path.exists():
        return {}, {"source": str(path)}
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict) and "rows" in data:
        times = {Path(r["chapter"]).name: float(r["seconds"]) for r in data["rows"] if r.get("seconds") is not None}
        machine = data.get("machine", {})
        provenance = {"source": str(path), "date": data.get("date"), "cpu": machine_cpu(machine),
                      "cores": machine.get("cpu cores"), "gpu": machine.get("gpu"),
                      # the build's own reading at its start where recorded (the file's is taken when it is written)
                      "load average (1 min)": (data.get("build") or {}).get("load_average_start",
                                                                            data.get("load_average_1min")),
                      "cache": describe_cache(data.get("build") or {}),
                      # the count itself (absent: not recorded; None: unreadable), which the guide's wording reads
                      **({"cache_files_at_start": data["build"]["cache_files_at_start"]}
                         if "cache_files_at_start" in (data.get("build") or {}) else {})}
    else:
        times = {Path(k).name: float(v) for k, v in data.items()}
        provenance = {"source": str(path)}
    return times, provenance


def exercise_chapters(book: str | Path) -> list[Path]:
    """The chapters of the book folder ``book`` that have an exercises section, in file-name order."""
    return sorted(p for p in Path(book).glob("*.md") if "## Exercises" in p.read_text(encoding="utf-8"))


def describe_chapter_times(provenance: dict[str, object], gpu_times: dict[str, float] | None = None) -> str:
    """Where the chapter times come from (machine, date, load average, file) in one paragraph, for
    :func:`chapter_times`' provenance. The times are the CPU columns of the guide's tables; the paragraph says the
    GPU times are not measured unless ``gpu_times`` (the tables' GPU column) has some."""
    source = Path(str(provenance["source"]))
    shown = source.relative_to(source.parents[2]) if len(source.parents) > 2 else source
    load = float(provenance.get("load average (1 min)") or 0)
    return (f"CPU times: every chapter executed once on {provenance.get('cores', '?')} CPU cores "
            f"({provenance.get('cpu', '?')}, GPU: {provenance.get('gpu') or '?'}), {provenance.get('date', '?')}, "
            f"load average {load:.2f} at the start, quick profile, {_cache_clause(provenance)}, "
            f"recorded in `{shown}` (`make bench`)."
            + ("" if gpu_times else " GPU times are not measured yet."))


def _cache_clause(provenance: dict[str, object]) -> str:
    """How the build's package cache bears on the times, for :func:`describe_chapter_times`: decided by the
    number of cache files the build started with (:func:`chapter_times`), worded with its ``cache`` text."""
    state = cache_state(provenance)
    if state == "fresh":
        return "from an empty package cache, as on a new Colab runtime"
    if state == "warm":
        return f"from a {provenance.get('cache')}; a first run, as on a new Colab runtime, takes longer"
    return f"package cache state {state} (a first run, as on a new Colab runtime, may take longer)"


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "not measured"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def chapter_table(cpu: dict[str, float], gpu: dict[str, float] | None = None,
                  exercises: dict[str, dict[str, int]] | None = None) -> pd.DataFrame:
    """One row per chapter: session, learning goals, CPU and GPU run times (``not measured`` when absent) and
    the number of exercises."""
    gpu = gpu or {}
    rows = []
    for session in SESSIONS:
        for stem in session.chapters:
            counts = (exercises or {}).get(stem, {})
            rows.append({"session": session.title.split(".")[0], "chapter": stem, "learning goals": GOALS[stem],
                         "CPU run time": _minutes(cpu.get(stem)), "GPU run time": _minutes(gpu.get(stem)),
                         "exercises": sum(counts.values()) if counts else "–"})
    return pd.DataFrame(rows).set_index(["session", "chapter"])


def session_table(cpu: dict[str, float], gpu: dict[str, float] | None = None) -> pd.DataFrame:
    """One row per session: its chapters, the summed execution time on each device, and the hand-in."""
    gpu = gpu or {}
    rows = []
    for session in SESSIONS:
        def total(times: dict[str, float], chapters=session.chapters) -> float | None:
            return sum(times[c] for c in chapters) if all(c in times for c in chapters) else None

        rows.append({"session": session.title, "chapters": ", ".join(session.chapters),
                     "CPU execution": _minutes(total(cpu)), "GPU execution": _minutes(total(gpu)),
                     "students hand in": session.hand_in})
    return pd.DataFrame(rows).set_index("session")
