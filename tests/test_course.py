"""The course guide's tables: sessions cover the teaching chapters once, times come from measurements."""

from __future__ import annotations

import json
from pathlib import Path

from convat.site.course import CHAPTERS_JSON, GOALS, SESSIONS, chapter_table, chapter_times, session_table

ROOT = Path(__file__).resolve().parents[1]


def test_sessions_cover_every_numbered_chapter_once_and_in_book_order():
    planned = [c for s in SESSIONS for c in s.chapters]
    assert len(SESSIONS) == 4 and len(planned) == len(set(planned))
    toc = (ROOT / "_toc.yml").read_text()
    assert [c for c in planned if f"book/{c}" in toc] == planned
    assert set(planned) <= set(GOALS)
    assert toc.index("book/course_guide") < toc.index("book/01_paper"), "the guide comes right after the index"


def test_times_are_read_from_the_benchmark_and_summed_per_session(tmp_path):
    bench = tmp_path / "chapters.json"
    rows = [{"chapter": f"book/{c}", "seconds": 10.0 * (i + 1)} for i, c in enumerate(GOALS)]
    bench.write_text(json.dumps({"rows": rows, "machine": {"cpu cores": "2", "gpu": "none"}, "date": "d",
                                 "load_average_1min": 0.5}))
    cpu, provenance = chapter_times(bench)
    assert cpu["02_data"] == 20.0 and provenance["cores"] == "2"
    sessions = session_table(cpu)
    first = SESSIONS[0]
    expected = sum(cpu[c] for c in first.chapters)
    assert sessions.loc[first.title, "CPU execution"] == (f"{expected / 60:.1f} min" if expected >= 60
                                                         else f"{expected:.0f} s")
    assert (sessions["GPU execution"] == "not measured").all()
    table = chapter_table({"02_data": 80.0}, gpu={"02_data": 5.0}, exercises={"02_data": {"warm-up": 2}})
    row = table.xs("02_data", level="chapter").iloc[0]
    assert (row["CPU run time"], row["GPU run time"], row["exercises"]) == ("1.3 min", "5 s", 2)
    assert table.xs("03_preprocessing", level="chapter").iloc[0]["CPU run time"] == "not measured"
    build = tmp_path / "chapter_times.json"
    build.write_text(json.dumps({"book/05_loso": 12.5}))
    assert chapter_times(build)[0] == {"05_loso": 12.5}
    assert chapter_times(tmp_path / "missing.json")[0] == {}


def test_the_committed_benchmark_has_every_planned_chapter():
    cpu, _ = chapter_times(CHAPTERS_JSON)
    assert {c for s in SESSIONS for c in s.chapters} <= set(cpu)


def test_the_times_paragraph_names_its_machine_and_whether_gpu_times_exist(tmp_path):
    from convat.site.course import describe_chapter_times

    cpu_only = {"source": "/x/benchmarks/results/chapters.json", "cores": "2", "cpu": "AMD EPYC",
                "gpu": "none (CPU only)", "date": "2026-12-05 21:10", "load average (1 min)": 1.94}
    text = describe_chapter_times(cpu_only)
    assert text.startswith("CPU times: every chapter executed once on 2 CPU cores (AMD EPYC, GPU: none (CPU only)), "
                           "2026-12-05 21:10, load average 1.94 at the start")
    assert "recorded in `benchmarks/results/chapters.json`" in text and text.endswith("GPU times are not measured yet.")
    # the tables show these times as CPU times whatever the machine; GPU times come only from the GPU column
    unknown = describe_chapter_times({**cpu_only, "gpu": "unknown (torch not installed)"})
    assert unknown.startswith("CPU times: ") and unknown.endswith("GPU times are not measured yet.")
    measured = describe_chapter_times(cpu_only, gpu_times={"05_loso.md": 12.0})
    assert measured.startswith("CPU times: ") and "not measured" not in measured
    # a student's first run starts from an empty cache: the paragraph says what the build started from
    assert "package cache state not recorded" in text
    fresh = {**cpu_only, "cache": "fresh cache", "cache_files_at_start": 0}
    assert "from an empty package cache" in describe_chapter_times(fresh)
    warm = describe_chapter_times({**cpu_only, "cache": "warm cache (12 files at the start)",
                                   "cache_files_at_start": 12})
    assert "from a warm cache (12 files at the start); a first run, as on a new Colab runtime, takes longer" in warm
    # decided by the count, not by the wording: an unreadable cache is never called empty
    unread = describe_chapter_times({**cpu_only, "cache": "fresh cache", "cache_files_at_start": None})
    assert "package cache state unknown" in unread and "empty" not in unread


def test_a_benchmark_file_carries_the_cache_state_of_its_build(tmp_path):
    bench = tmp_path / "chapters.json"
    bench.write_text(json.dumps({"rows": [{"chapter": "book/05_loso", "seconds": 3.0}],
                                 "load_average_1min": 3.8,
                                 "build": {"cache_files_at_start": 0, "fresh_cache": True, "load_average_start": 2.5}}))
    assert chapter_times(bench)[1]["cache"] == "fresh cache"
    assert chapter_times(bench)[1]["cache_files_at_start"] == 0
    assert chapter_times(bench)[1]["load average (1 min)"] == 2.5  # the build's start, not the file's writing
    bench.write_text(json.dumps({"rows": []}))
    assert chapter_times(bench)[1]["cache"] == "cache state not recorded"
    assert "cache_files_at_start" not in chapter_times(bench)[1]
    # the CPU with its float kernels where recorded: one name covers CPUs ~2x apart in speed
    bench.write_text(json.dumps({"rows": [], "machine": {"cpu": "AMD EPYC", "cpu kernels": "fam 26, AVX512"}}))
    assert chapter_times(bench)[1]["cpu"] == "AMD EPYC [fam 26, AVX512]"


def test_exercise_chapters_are_those_with_an_exercises_section(tmp_path):
    from convat.site.course import exercise_chapters

    (tmp_path / "02_b.md").write_text("# B\n\n## Exercises\n")
    (tmp_path / "01_a.md").write_text("# A\n\n## Exercises\n")
    (tmp_path / "index.md").write_text("# Index\n")
    assert [p.name for p in exercise_chapters(tmp_path)] == ["01_a.md", "02_b.md"]
    book = Path(__file__).resolve().parents[1] / "book"
    assert {p.stem for p in exercise_chapters(book)} >= {"02_data", "05_loso", "08_pitfalls"}
