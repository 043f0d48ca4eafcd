"""``make bench``: targets, the Markdown report and the throughput measurement (small, so it runs in seconds)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ is a top-level folder, not installed

from benchmarks import report  # noqa: E402
from benchmarks.common import target, write_result  # noqa: E402
from benchmarks.models import throughput  # noqa: E402


def test_target_says_by_how_much_it_was_missed():
    assert target("x", 45.0, 30.0, "min", "measured") | {} == {
        "target": "x", "limit": 30.0, "unit": "min", "value": 45.0, "met": False, "how": "measured",
        "missed_by": 1.5}
    assert target("x", 20.0, 30.0, "min", "measured")["met"] is True
    assert target("x", None, 5.0, "min", "no GPU")["met"] is None


def test_throughput_of_a_model_is_positive():
    row = throughput("convat_tiny", img_size=32, batch=4, steps=1)
    assert row["train_samples_per_s"] > 0 and row["infer_samples_per_s"] > 0 and row["params"] > 0
    assert "channels_last_speedup" not in row
    row = throughput("convat_tiny", img_size=32, batch=4, steps=1, repeats=2, channels_last=True)
    assert row["train_channels_last_samples_per_s"] > 0 and row["channels_last_speedup"] > 0


def test_results_carry_context_and_render_as_markdown(tmp_path):
    rows = [{"model": "convat_tiny", "device": "cpu", "params": 10, "train_samples_per_s": 1.5,
             "infer_samples_per_s": 9.0}]
    write_result("models", {"rows": rows, "skipped": {"ststnet": "KeyError"}, "gpu": None, "cpu_threads": 2},
                 tmp_path)
    write_result("loso", {"rows": [{"strategy": "sequential", "device": "cpu", "model": "convat_tiny",
                                    "folds_timed": 2, "epochs_timed": 1, "seconds_timed": 3.0,
                                    "full_minutes_extrapolated": 51.0}],
                          "total_folds": 68, "extrapolation": "x 68/2 folds x 30/1 epochs",
                          "targets": [target("composite LOSO", 51.0, 30.0, "min", "extrapolated")]}, tmp_path)
    saved = json.loads((tmp_path / "models.json").read_text())
    assert saved["machine"]["cpu cores"] and saved["versions"]["torch"] and saved["date"]
    text = report.render(report.load(tmp_path))
    assert "| convat_tiny | cpu | 10 | 1.5 | 9 |" in text
    assert "**missed** by x1.7" in text and "Not measured: ststnet" in text


def test_readme_performance_section_is_replaced_between_markers(tmp_path):
    from benchmarks.run import END, START, update_readme

    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n## Performance\n\n{START}\nold\n{END}\n\n## Layout\n")
    assert update_readme("| new |\n", readme)
    text = readme.read_text()
    assert "old" not in text and f"{START}\n| new |\n{END}" in text and text.endswith("## Layout\n")
    readme.write_text("no markers")
    assert not update_readme("| new |\n", readme)


def test_recipe_extrapolation_counts_each_folds_training_clips():
    """LOSO splits are boolean test masks: the training clips of a fold are the mask's False entries."""
    import pandas as pd

    from benchmarks.loso import steps_per_epoch
    from convat.loso import loso_splits

    table = pd.DataFrame({"dataset": "synthme", "subject": [f"s{i // 10}" for i in range(100)],
                          "label": ["a", "b"] * 50})
    # 90 training clips per fold at the recipe's batch size of 32: ceil(90 / 32) = 3 steps an epoch
    assert steps_per_epoch(table, loso_splits(table)) == 3


def test_report_names_the_parts_measured_on_a_shared_machine_and_at_other_times(tmp_path):
    write_result("models", {"rows": [], "gpu": None, "cpu_threads": 1}, tmp_path)
    write_result("threads", {"rows": [], "how": "h", "targets": []}, tmp_path)
    results = report.load(tmp_path)
    results["models"].update(run_id="2001", others_running_at_start=0.1, load_average_1min=3.0)
    results["threads"].update(run_id="2001", others_running_at_start=2.0, load_average_1min=8.0)
    notes = report.why_missed(results)
    assert len(notes) == 1 and "while threads ran" in notes[0] and "models" not in notes[0]
    assert "kept from an earlier" not in report.render(results)
    results["threads"].update(run_id="2000", date="2000-01-01 00:00", others_running_at_start=0.0)
    assert "threads (2000-01-01 00:00 UTC)" in report.render(results)
    # a kept part measured on another CPU says so: its numbers do not describe the header's machine
    results["threads"]["machine"] = {**results["threads"]["machine"], "cpu": "Other CPU 9000"}
    assert "threads (2000-01-01 00:00 UTC, on another CPU, Other CPU 9000" in report.render(results)
    # one name covers CPUs with other float kernels (and speed): the kernels tell them apart
    header_cpu = results["models"]["machine"]["cpu"]
    results["threads"]["machine"] = {**results["threads"]["machine"], "cpu": header_cpu, "cpu kernels": "X [AVX9]"}
    assert f"threads (2000-01-01 00:00 UTC, on another CPU, {header_cpu} [X [AVX9]])" in report.render(results)
    results["threads"]["machine"] = dict(results["models"]["machine"])
    assert "threads (2000-01-01 00:00 UTC)" in report.render(results)
    assert report.why_missed(results) == []  # a load average of 3 from the benchmark's own processes is not sharing
    del results["threads"]["others_running_at_start"]  # an old file: only a load above the cores counts
    assert "while threads ran" in report.why_missed(results)[0]


def test_other_runnable_processes_are_counted(monkeypatch):
    import io
    import math

    import benchmarks.common
    from benchmarks.common import others_running

    readings = iter(["0.50 0.40 0.30 5/300 12345\n", "0.50 0.40 0.30 4/300 12346\n"])
    monkeypatch.setattr(benchmarks.common, "open", lambda path: io.StringIO(next(readings)), raising=False)
    assert others_running(samples=2, interval=0.0) == 3.5  # 5 and 4 runnable, less the reader itself

    def no_proc(path):
        raise FileNotFoundError(path)

    monkeypatch.setattr(benchmarks.common, "open", no_proc, raising=False)
    assert math.isnan(others_running(samples=2, interval=0.0))
    monkeypatch.undo()
    value = others_running(samples=2, interval=0.01)  # the real /proc/loadavg: at least this process runs
    assert math.isnan(value) or value >= 0


def test_missed_loso_target_is_explained_from_the_fastest_measured_strategy():
    rows = [{"strategy": "sequential", "busy_processes": 0, "full_minutes_extrapolated": 30.0, "model": "convat_tiny"},
            {"strategy": "worker pool", "busy_processes": 0, "full_minutes_extrapolated": 24.0},
            {"strategy": "worker pool", "busy_processes": 2, "full_minutes_extrapolated": 6.0}]  # not a quiet row
    target = {"target": "composite LOSO, convat_tiny at 64 px, 30 epochs, CPU", "limit": 12.0, "unit": "min",
              "value": 24.0, "met": False, "how": "h", "missed_by": 2.0}
    results = {"loso": {"rows": rows, "total_folds": 68, "full_epochs": 30, "targets": [target], "cpu_count": 2},
               "models": {"rows": [{"model": "convat_tiny", "device": "cpu", "train_samples_per_s": 500.0}]}}
    note = next(n for n in report.why_missed(results) if n.startswith("LOSO"))
    assert "worker pool, is 1.25x the slowest" in note and "24.0 min" in note and "2.0x more throughput" in note
    machine = {"cpu": "CPU A", "cpu kernels": "A family 1"}
    results["loso"]["machine"] = machine
    results["options"] = {**_options([]), "machine": {**machine, "cpu kernels": "B family 2"}}
    assert not [n for n in report.why_missed(results) if n.startswith("LOSO: other")]  # another CPU's ratios
    results["options"]["machine"] = machine  # measured arithmetic options: named, and none adopted
    said = [n for n in report.why_missed(results) if n.startswith("LOSO: other arithmetic")]
    assert said == ["LOSO: other arithmetic for convat_tiny's training step on one thread here, against today's "
                    "float32 (options part): bfloat16 autocast 0.67x; none is faster on this CPU."]


def test_the_training_step_options_are_timed_side_by_side_and_leave_the_threads_as_they_were(monkeypatch):
    import torch

    from benchmarks.options import step_arithmetic

    compiled = []
    monkeypatch.setattr(torch, "compile", lambda net: compiled.append(net) or net)  # the compiled arm, not compiled
    threads = torch.get_num_threads()
    rows = step_arithmetic(steps=1, repeats=1, batch=4, img_size=32)
    assert [r["variant"] for r in rows] == ["float32 (today)", "bfloat16 autocast", "torch.compile (inductor)"]
    assert len(compiled) == 1 and rows[0]["speedup"] == 1.0 and all(r["cpu_ms_per_step"] > 0 for r in rows)
    assert [r["compile_s"] is None for r in rows] == [True, True, False]  # only the compiled arm reports one
    assert torch.get_num_threads() == threads
    monkeypatch.setattr(torch, "compile", lambda net: 1 / 0)  # a failure while setting up the arms
    with pytest.raises(ZeroDivisionError):
        step_arithmetic(steps=1, repeats=1, batch=4, img_size=32)
    assert torch.get_num_threads() == threads


def test_a_part_that_only_read_earlier_measurements_is_never_called_shared(tmp_path):
    write_result("chapters", {"rows": [], "source": "s", "targets": []}, tmp_path)
    results = report.load(tmp_path)
    results["chapters"].update(run_id="1", others_running_at_start=None, load_average_1min=5.0)
    assert not any("shared" in n for n in report.why_missed(results))


def test_report_compares_keeping_freed_memory_with_glibcs_defaults():
    def row(strategy, busy, freed, train, system):
        return {"strategy": strategy, "busy_processes": busy, "freed_memory": freed, "train_s_median": train,
                "process_sys_s_median": system}

    rows = [row("sequential", 0, "kept", 9.0, 1.0), row("worker pool (2)", 0, "kept", 10.0, 2.0),
            row("worker pool (2), malloc trims", 0, "glibc defaults", 11.0, 4.0)]
    note = " ".join(report._freed_memory_note(rows))
    assert "10.0 s keeping freed memory" in note and "11.0 s with glibc's defaults (1.10x)" in note
    assert "2.0 s against 4.0 s" in note
    assert report._freed_memory_note(rows[:2]) == []  # no contrast measured: no sentence


@pytest.mark.parametrize("threads, policy", [(None, "None"), (1, "PASSIVE")])
def test_the_threads_benchmarks_torch_default_starts_openmp_with_its_own_wait_policy(threads, policy):
    """The ``torch default`` child must load torch without the passive policy that importing convat (through the
    benchmark's own imports) put into the environment; the other variants keep it."""
    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | {"PYTHONPATH": str(root)}
    code = f"import benchmarks.threads as t, os, sys; print(t.load_torch({threads}), 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.split() == [policy, "True"]


def test_the_book_target_is_judged_only_for_a_build_from_an_empty_cache(tmp_path, monkeypatch):
    from benchmarks import chapters
    from convat.site.build_state import build_conditions, build_start

    cache = tmp_path / "cache"
    monkeypatch.setenv("CONVAT_CACHE", str(cache))
    fresh = build_start()  # the folder does not exist yet: nothing can be served
    (cache / "runs" / "ab").mkdir(parents=True)
    (cache / "runs" / "ab" / "fold.csv").write_text("x")
    done = build_conditions(fresh)
    assert (done["fresh_cache"], done["cache_files_at_start"], done["cache_files_at_end"]) == (True, 0, 1)
    judged = chapters.book_target(300.0, done, "a build")
    assert (judged["met"], judged["value"], judged["missed_by"]) == (False, 300.0, 1.25)
    assert "fresh cache" in judged["how"]
    warm = build_conditions(build_start())  # one cached file at the start
    assert warm["fresh_cache"] is False
    served = chapters.book_target(200.0, warm, "a build")
    assert served["met"] is None and served["value"] is None and served["judged"] is False
    assert served["how"] == ("a build started from a warm cache (1 file at the start), which serves the runs and "
                             "tensors it holds (200.0 s); run `make book` with an empty $CONVAT_CACHE, or `python -m "
                             "benchmarks.run chapters --chapters --fresh-cache`")
    # a build from before the record, or one that could not read its cache: not judged either
    old = chapters.book_target(200.0, {}, chapters.EXECUTED)
    assert old["met"] is None and old["how"].startswith(f"{chapters.EXECUTED} did not record its package cache")
    assert old["how"].endswith("measure with --fresh-cache")
    unreadable = chapters.book_target(200.0, {"cache_files_at_start": None, "fresh_cache": None}, "a build")
    assert unreadable["met"] is None and "could not read its package cache" in unreadable["how"]


def test_a_cache_that_cannot_be_read_is_not_called_fresh(monkeypatch, tmp_path):
    from convat.site.build_state import build_conditions, build_start, cache_files

    monkeypatch.setenv("CONVAT_CACHE", "")  # an error for the package: no folder, no count
    assert cache_files() == (None, None)
    assert build_conditions(build_start())["fresh_cache"] is None
    walked = tmp_path / "cache"
    walked.mkdir()
    monkeypatch.setattr(os, "walk", lambda root, onerror=None: onerror(PermissionError(13, "denied")) or iter(()))
    assert cache_files(walked) == (str(walked), None)


def test_a_missed_book_target_names_the_cells_that_take_the_time():
    from benchmarks.chapters import book_target

    fresh = {"cache_files_at_start": 0, "fresh_cache": True}
    chapters = {"rows": [], "total_seconds": 400.0, "targets": [book_target(400.0, fresh, "a build")],
                "slowest_cells": {"book/04_model": [{"cell": 9, "seconds": 90.0, "code": "run = cv.cached_run("},
                                                    {"cell": 3, "seconds": 6.0, "code": "import timm"}],
                                  "book/08_pitfalls": [{"cell": 7, "seconds": 48.0, "code": "trace = epoch_trace("}]}}
    notes = report.why_missed({"chapters": chapters})
    assert notes == ["Book: 2 cells of 20 s or more take 138 s of the 400 s (04_model code cell 9, starting "
                     "`run = cv.cached_run(`, 90 s; 08_pitfalls code cell 7, starting `trace = epoch_trace(`, 48 s); "
                     "without them the book would take 262 s against the 240 s target."]
    # a warm build is reported, not judged, and gives no such note
    warm = {**chapters, "targets": [book_target(150.0, {"cache_files_at_start": 3}, "a build")]}
    assert report.why_missed({"chapters": warm}) == []
    assert "not judged" in report._targets(warm["targets"])[0]


def test_the_bench_executes_the_pages_the_book_build_executes():
    from benchmarks.chapters import ROOT, book_notebooks

    names = [p.stem for p in book_notebooks()]
    assert names[0] == "01_paper" and names[-1] == "course_guide" and "02b_real_datasets" in names
    assert "index" not in names and "references" not in names  # Markdown pages, not notebooks
    assert len(names) == len([p for p in (ROOT / "book").glob("*.md") if "kernelspec" in p.read_text()])


def test_a_part_that_measured_nothing_keeps_the_earlier_file_and_its_archived_targets(tmp_path, monkeypatch):
    """The GPU part on a CPU machine (or the chapters part without a build) must not erase a committed
    measurement, in the part file or in the per-machine archive; a measured part replaces both."""
    from benchmarks import gpu
    from benchmarks.common import ARCHIVE, store_result

    monkeypatch.setattr(gpu.torch.cuda, "is_available", lambda: False)
    measured = {"rows": [{"variant": "batched", "seconds": 4.0}], "how": "measured", "gpu": "NVIDIA H100",
                "targets": [target("composite LOSO on one GPU, batched", 20.0, 30.0, "s", "measured")]}
    path, written = store_result("gpu", measured, tmp_path)
    assert written and json.loads(path.read_text())["gpu"] == "NVIDIA H100"
    path, written = store_result("gpu", gpu.run(), tmp_path)  # no CUDA here: nothing measured
    assert not written and json.loads(path.read_text())["gpu"] == "NVIDIA H100"
    archive = json.loads((tmp_path / ARCHIVE).read_text())
    assert archive["GPU NVIDIA H100"]["composite LOSO on one GPU, batched"]["value"] == 20.0
    # no earlier file: the not-measured rows are written, so the report can say so, and nothing is archived
    path, written = store_result("gpu", gpu.run(), tmp_path / "fresh")
    assert written and json.loads(path.read_text())["rows"][0]["seconds"] is None
    assert not (tmp_path / "fresh" / ARCHIVE).exists()
    # a new measurement on the same machine replaces its value; another machine gets its own column
    store_result("gpu", {**measured, "targets": [target(measured["targets"][0]["target"], 25.0, 30.0, "s", "m")]},
                 tmp_path)
    store_result("gpu", {**measured, "gpu": "NVIDIA H200"}, tmp_path)
    archive = json.loads((tmp_path / ARCHIVE).read_text())
    assert [m["composite LOSO on one GPU, batched"]["value"] for m in archive.values()] == [25.0, 20.0]


def test_chapters_without_a_build_measure_nothing(monkeypatch, tmp_path):
    from benchmarks import chapters
    from benchmarks.common import measured_nothing

    monkeypatch.setattr(chapters, "BUILD_TIMES", tmp_path / "missing.json")
    assert measured_nothing(chapters.run())


def test_the_report_shows_each_targets_latest_value_on_every_machine(tmp_path):
    from benchmarks.common import archive_targets

    book = "whole book, quick profile, from a clean cache (chapter execution)"
    for cpu, kernels, seconds, pre in (("CPU A", "AVX2", 345.0, 75.1), ("CPU B", "AVX512", 163.0, None)):
        for part, name, value in (("chapters", book, seconds), ("preprocessing", "composite preprocessing", pre)):
            limit = 240.0 if part == "chapters" else 35.0
            archive_targets({"benchmark": part, "machine": {"cpu": cpu, "cpu kernels": kernels}, "date": "2026-12-08",
                             "git_commit": "abc", "targets": [target(name, value, limit, "s", "h")]}, tmp_path)
    write_result("chapters", {"rows": [], "source": "s", "targets": []}, tmp_path)
    text = report.render(report.load(tmp_path), report.load_archive(tmp_path))
    table = text.split("**Targets on each machine measured**", 1)[1]
    header = next(line for line in table.splitlines() if line.startswith("| target"))
    assert header == "| target | limit | CPU A [AVX2] | CPU B [AVX512] |"
    rows = [line for line in table.splitlines() if line.startswith("| ") and line != header]
    # parts in the report's order (preprocessing before chapters); a target one machine never measured shows —
    assert rows[0].startswith("| composite preprocessing | < 35 s | 75.1 s, missed x2.15 (") and rows[0].endswith(
        " | — |")
    assert rows[1].startswith(f"| {book} | < 240 s | 345 s, missed x1.44 (") and ", met (" in rows[1]
    assert "Targets on each machine" not in report.render(report.load(tmp_path))  # no archive, no table


def test_unmeasured_gpu_targets_are_explained(monkeypatch, tmp_path):
    from benchmarks import gpu

    monkeypatch.setattr(gpu.torch.cuda, "is_available", lambda: False)
    write_result("gpu", gpu.run(), tmp_path)
    results = report.load(tmp_path)
    (note,) = report.not_measured(results)
    assert note.startswith("GPU: not measured (no CUDA device on this machine)") and "benchmarks.gpu" in note
    assert note in report.render(results)
    results["gpu"].update(gpu="NVIDIA H100", rows=[dict(r, seconds=1.0) for r in results["gpu"]["rows"]])
    assert report.not_measured(results) == []  # measured on a GPU, every variant timed


def test_the_book_under_load_is_judged_by_its_slowest_cell_against_the_timeout(monkeypatch, tmp_path):
    from contextlib import contextmanager

    from benchmarks import chapters, load

    started = []

    @contextmanager
    def fake_busy(n):
        started.append(n)
        yield []

    def fake_run(execute, fresh_cache):
        assert execute and fresh_cache and started == [2]  # measured while the busy processes run
        return {"rows": [{"chapter": "book/02_data", "seconds": 60.0, "budget_s": 60, "within_budget": True},
                         {"chapter": "book/09_real_data", "seconds": 2.0, "budget_s": 30, "within_budget": True}],
                "source": "s", "total_seconds": 62.0, "targets": [],
                "slowest_cells": {"book/02_data": [{"cell": 7, "seconds": 300.0, "code": "x = 1"}],
                                  "book/09_real_data": [{"cell": 1, "seconds": 1.0, "code": "y"}]}}

    monkeypatch.setattr(load, "busy", fake_busy)
    monkeypatch.setattr(chapters, "run", fake_run)
    quiet = {"rows": [{"chapter": "book/02_data", "seconds": 25.0}], "source": "the quiet run"}
    payload = chapters.run_under_load(quiet=quiet)
    (t,) = payload["targets"]
    assert t["value"] == round(300.0 / chapters.CELL_TIMEOUT_S, 2) and t["met"] is False  # 1/3 of 900 s > 1/4
    assert "02_data code cell 7, 300.0 s of the 900 s timeout" in t["how"]
    assert [r["slowdown"] for r in payload["rows"]] == [2.4, None]
    write_result("chapters_load", payload, tmp_path)
    text = report.render(report.load(tmp_path))
    assert "**Chapters under load**" in text and "| book/02_data | 60 | 25 | 2.4 | 60 |" in text


def test_a_cell_that_reaches_the_timeout_is_recorded_not_lost(monkeypatch):
    """The build fails on a cell past the timeout; the benchmark records it as the timeout reached (a missed
    target) instead of crashing without a result, and goes on with the next chapter."""
    from contextlib import nullcontext

    from nbclient.exceptions import CellTimeoutError

    import convat.commands.chapter
    from benchmarks import chapters

    def fake_execute(path, timeout, cell_times):
        assert timeout == chapters.CELL_TIMEOUT_S
        cell_times.append({"cell": 3, "seconds": 2.0, "section": "", "code": "x = 1"})
        if path.stem == "02_data":
            raise CellTimeoutError("A cell timed out while it was being executed, after 900 seconds.")
        return 2.5

    monkeypatch.setattr(convat.commands.chapter, "execute_chapter", fake_execute)
    times, cells, _ = chapters._execute([Path("book/02_data.md"), Path("book/09_real_data.md")])
    assert set(times) == {"book/02_data", "book/09_real_data"} and times["book/09_real_data"] == 2.5
    slowest = cells["book/02_data"][0]
    assert slowest["timed_out"] and slowest["cell"] == "after 3" and slowest["seconds"] == chapters.CELL_TIMEOUT_S

    monkeypatch.setattr(chapters, "run", lambda execute, fresh_cache: {
        "rows": [], "source": "s", "targets": [], "slowest_cells": {"book/02_data": cells["book/02_data"]}})
    monkeypatch.setattr("benchmarks.load.busy", lambda n: nullcontext())
    (t,) = chapters.run_under_load()["targets"]
    assert t["value"] == 1.0 and t["met"] is False and "reached the timeout" in t["how"]
    monkeypatch.setattr(chapters, "run", lambda execute, fresh_cache: {
        "rows": [], "source": "s", "targets": [], "slowest_cells": {}})
    (t,) = chapters.run_under_load()["targets"]
    assert t["value"] is None and t["met"] is None  # nothing timed is not a met target


def test_a_gpu_run_with_untimed_variants_names_them():
    rows = [{"variant": "sequential eager", "seconds": 3.0, "note": "4 folds x 6 epochs timed"},
            {"variant": "batched (all folds, vmap)", "seconds": None, "note": "failed: RuntimeError: boom"}]
    results = {"gpu": {"rows": rows, "gpu": "NVIDIA H100", "how": "h", "targets": [
        target("composite LOSO on one GPU, batched", None, 30.0, "s", "h")]}}
    (note,) = report.not_measured(results)
    assert note == "GPU (NVIDIA H100): not timed: batched (all folds, vmap) (failed: RuntimeError: boom)."
    rows[1].update(seconds=2.0)
    assert report.not_measured(results) == []


def test_a_result_measured_on_a_lent_gpu_machine_is_filed_and_archived(tmp_path, monkeypatch, capsys):
    """The GPU runs on another machine (``python -m benchmarks.gpu --out $OUT``); ``--add`` files its gpu.json
    here under that GPU, and refuses a file that measured nothing."""
    from benchmarks import gpu
    from benchmarks.common import ARCHIVE
    from benchmarks.run import main

    elsewhere = tmp_path / "device"
    measured = {"rows": [{"variant": v, "device": "NVIDIA H100 80GB HBM3", "seconds": s,
                          "full_seconds_extrapolated": s * 5, "note": "timed"}
                         for v, s in zip(gpu.VARIANTS, (40.0, 60.0, 4.0), strict=True)],
                "how": "NVIDIA H100 80GB HBM3, ...", "gpu": "NVIDIA H100 80GB HBM3", "measured": True,
                "targets": [target("composite LOSO on one GPU, batched", 20.0, 30.0, "s", "h")]}
    write_result("gpu", measured, elsewhere)
    results = tmp_path / "results"
    write_result("chapters", {"rows": [], "source": "s", "targets": []}, results)
    assert main(["--add", str(elsewhere / "gpu.json"), "--out", str(results)]) == 0
    assert json.loads((results / "gpu.json").read_text())["gpu"] == "NVIDIA H100 80GB HBM3"
    archive = json.loads((results / ARCHIVE).read_text())
    assert archive["GPU NVIDIA H100 80GB HBM3"]["composite LOSO on one GPU, batched"]["value"] == 20.0
    assert "GPU NVIDIA H100 80GB HBM3" in (results / "RESULTS.md").read_text()
    refused = {"measured nothing": {**measured, "gpu": None, "measured": False},
               "a dry run on cpu": {**measured, "gpu": "cpu (dry run)"}}
    for why, payload in refused.items():
        write_result("gpu", payload, elsewhere)
        with pytest.raises(SystemExit):
            main(["--add", str(elsewhere / "gpu.json"), "--out", str(results)])
        assert why in capsys.readouterr().err
    older = json.loads((results / "gpu.json").read_text()) | {"date": "2000-01-01 00:00"}
    (elsewhere / "older.json").write_text(json.dumps(older))
    with pytest.raises(SystemExit):
        main(["--add", str(elsewhere / "older.json"), "--out", str(results)])
    assert "holds a later measurement" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # nor an older one named after a newer one in the same call
        main(["--add", str(results / "gpu.json"), "--add", str(elsewhere / "older.json"), "--out", str(tmp_path)])
    assert "named before it, holds a later measurement" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # --add measures nothing: no part may be named beside it
        main(["--add", str(elsewhere / "older.json"), "loso", "--out", str(results)])
    assert json.loads((results / "gpu.json").read_text())["gpu"] == "NVIDIA H100 80GB HBM3"  # kept throughout


def test_the_preprocessing_part_reports_medians_of_interleaved_repeats(tmp_path, monkeypatch):
    from benchmarks import preprocessing

    monkeypatch.setenv("CONVAT_CACHE", str(tmp_path / "cache"))
    payload = preprocessing.run(n_clips=2, composite_clips=4, repeats=2)
    composite = payload["composite"]
    assert [r["workers"] for r in composite["by_workers"]] == [1, 2]
    assert all(r["repeats"] == 2 and r["seconds_extrapolated"] > 0 for r in composite["by_workers"])
    assert "medians of 2 interleaved repeats" in composite["how"] and composite["clips_timed"] == 4
    (t,) = payload["targets"]
    assert t["value"] == min(r["seconds_extrapolated"] for r in composite["by_workers"])
    write_result("preprocessing", payload, tmp_path)
    assert "| workers | repeats | seconds_extrapolated |" in report.render(report.load(tmp_path))


def test_options_compare_tvl1_sets_paired_with_todays_and_leave_everything_as_it_was():
    from dataclasses import replace

    import cv2
    import torch

    from benchmarks import options
    from convat.data.synth import generate
    from convat.preprocess.flow import TVL1_PARAMS

    before = dict(TVL1_PARAMS), cv2.getNumThreads(), torch.get_num_threads()
    records = generate("composite")[:3]
    with pytest.raises(ValueError, match="cropped clips at the flow size"):  # errors would not be the pipeline's
        options.tvl1_variants([replace(records[0], extra={})], {"today": {}}, repeats=1)
    rows = options.tvl1_variants(records, {"today": {}, "loose": {"epsilon": 0.05}}, repeats=1)
    assert (dict(TVL1_PARAMS), cv2.getNumThreads(), torch.get_num_threads()) == before
    today, loose = rows
    assert today["epe_change"] == "+0.0000 [+0.0000, +0.0000]" and today["speedup"] == 1.0
    assert loose["epe"] != today["epe"]  # the set reached TV-L1: a looser stop gives another field
    mean, interval = loose["epe_change"].split(" ", 1)
    assert float(mean) == pytest.approx(loose["epe"] - today["epe"], abs=2e-4)
    low, high = (float(v) for v in interval.strip("[]").split(", "))
    assert low <= float(mean) <= high


def test_a_paired_interval_covers_the_mean_and_is_zero_for_equal_arms():
    import numpy as np

    from benchmarks.options import paired_interval

    assert paired_interval(np.zeros(5)) == (0.0, 0.0)
    diffs = np.random.default_rng(1).normal(0.3, 1.0, 40)
    low, high = paired_interval(diffs)
    assert low < diffs.mean() < high and high - low < 1.0


def _options(rows: list[dict]) -> dict:
    return {"tvl1": rows, "clips": 48, "how": "test", "composite_seconds_measured": 50.0,
            "step": [{"variant": "float32 (today)", "model": "convat_tiny", "cpu_ms_per_step": 50.0, "speedup": 1.0,
                      "repeats": 7},
                     {"variant": "bfloat16 autocast", "model": "convat_tiny", "cpu_ms_per_step": 75.0,
                      "speedup": 0.67, "repeats": 7}]}


def test_the_missed_preprocessing_target_names_the_fastest_tvl1_set_within_the_epe_margin():
    today = {"variant": "current", "epe": 0.10, "epe_au": 0.15, "speedup": 1.0, "epe_change": "+0",
             "epe_au_change": "+0"}
    close = {"variant": "warps 3", "epe": 0.105, "epe_au": 0.15, "speedup": 1.2, "epe_change": "+0.005",
             "epe_au_change": "+0", "composite_seconds_estimated": 41.7}
    fast_but_worse = {"variant": "epsilon 0.05", "epe": 0.18, "epe_au": 0.11, "speedup": 7.0, "epe_change": "+0.08",
                      "epe_au_change": "-0.04"}
    note = report.tvl1_option(_options([today, close, fast_but_worse]))
    assert note.startswith("Preprocessing: TV-L1 with warps 3 measured 1.2x") and "about 41.7 s" in note
    assert "not adopted" in note
    assert "none of the TV-L1 parameter sets" in report.tvl1_option(_options([today, fast_but_worse]))
    assert report.tvl1_option(None) is None


def test_the_options_part_renders_and_feeds_the_notes_on_missed_targets(tmp_path):
    rows = [{"variant": "current", "epe": 0.10, "epe_au": 0.15, "speedup": 1.0, "epe_change": "+0", "epe_au_change":
             "+0", "cpu_s_per_clip": 0.2, "composite_seconds_estimated": 50.0},
            {"variant": "epsilon 0.02", "epe": 0.10, "epe_au": 0.14, "speedup": 2.0, "epe_change": "-0",
             "epe_au_change": "-0.01", "cpu_s_per_clip": 0.1, "composite_seconds_estimated": 25.0}]
    pre = {"rows": [{"method": "tvl1", "clips_per_s": 8.0, "epe": 0.1, "epe_au": 0.15},
                    {"method": "dis", "clips_per_s": 700.0, "epe": 0.27, "epe_au": 0.18},
                    {"method": "zero", "clips_per_s": 1e5, "epe": 0.58, "epe_au": 0.57}],
           "subset_clips": 12, "composite": {"clips": 442, "method": "tvl1", "size": 64, "seconds": 50.0,
                                             "clips_per_s": 8.8},
           "targets": [target("composite preprocessing, fastest method within 10 % of TV-L1's EPE", 50.0, 35.0,
                              "s", "test")]}
    write_result("preprocessing", pre, tmp_path)
    write_result("options", _options(rows), tmp_path)
    text = report.render(report.load(tmp_path))
    assert "**Options that would change results**" in text and "| epsilon 0.02 |" in text
    assert "TV-L1 with epsilon 0.02 measured 2.0x faster per clip, about 25.0 s for the composite" in text


def test_options_scale_only_a_composite_time_measured_on_this_cpu(tmp_path):
    from benchmarks.run import composite_seconds_here

    assert composite_seconds_here(tmp_path) is None
    write_result("preprocessing", {"composite": {"seconds": 49.5, "method": "dis"}}, tmp_path)
    assert composite_seconds_here(tmp_path) is None  # another method's time is not scaled by TV-L1 speed-ups
    write_result("preprocessing", {"rows": []}, tmp_path)
    assert composite_seconds_here(tmp_path) is None
    write_result("preprocessing", {"composite": {"seconds": 49.5, "method": "tvl1"}}, tmp_path)
    assert composite_seconds_here(tmp_path) == 49.5
    stored = json.loads((tmp_path / "preprocessing.json").read_text())
    stored["machine"]["cpu kernels"] = "another CPU"
    (tmp_path / "preprocessing.json").write_text(json.dumps(stored))
    assert composite_seconds_here(tmp_path) is None
