"""The chapters' shared switches: parameters from the environment, `convat chapter -p`, figures whatever
MPLBACKEND says, time budgets and the cache note."""

from __future__ import annotations

import ast
import os
import re
import time
from pathlib import Path

import pytest

from convat.book import CELL_TIMEOUT_S, CHAPTER_BUDGETS_S, budget_table, cache_note, param, served_from_cache
from convat.commands.chapter import inject_parameters, parse_parameter

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = [p for p in sorted((ROOT / "book").glob("*.md")) if "kernelspec:" in p.read_text(encoding="utf-8")]


def test_param_reads_the_environment_with_the_default_type():
    env = {"CONVAT_DATASET": "casme2", "CONVAT_DATA": "/data", "CONVAT_EPOCHS": "5", "CONVAT_PROFILE": "",
           "CONVAT_FLAG": "no", "CONVAT_RATE": "0.5"}
    assert param("DATASET", "synthme", env) == "casme2"
    assert param("DATA_ROOT", None, env) == "/data"
    assert param("PROFILE", "quick", env) == "quick"  # empty counts as unset
    assert param("EPOCHS", 30, env) == 5 and param("RATE", 1.0, env) == 0.5
    assert param("FLAG", True, env) is False
    assert param("DEVICE", "auto", {}) == "auto"
    with pytest.raises(ValueError, match=r"\$CONVAT_EPOCHS='many' is not a valid int for EPOCHS"):
        param("EPOCHS", 30, {"CONVAT_EPOCHS": "many"})


def _parameters_cell(chapter: Path) -> str:
    import jupytext

    cells = [c for c in jupytext.read(chapter).cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{chapter.name}: expected one cell tagged 'parameters'"
    return cells[0].source


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_every_parameters_cell_takes_the_switches_from_the_environment(chapter, monkeypatch):
    """CONVAT_DATASET / CONVAT_PROFILE / CONVAT_DATA switch every chapter that has data parameters."""
    source = _parameters_cell(chapter) if "tags: [parameters]" in chapter.read_text() else None
    if source is None:
        pytest.skip("no parameters cell (not a data chapter)")
    monkeypatch.setenv("CONVAT_DATASET", "casme2")
    monkeypatch.setenv("CONVAT_PROFILE", "composite")
    monkeypatch.setenv("CONVAT_DATA", "/data/me")
    scope: dict = {}
    exec(compile(source, chapter.name, "exec"), scope)
    if chapter.stem != "02_data":  # chapter 2 describes SynthME itself
        assert scope["DATASET"] == "casme2"
    assert scope["PROFILE"] == "composite" and scope["DATA_ROOT"] == "/data/me"


def test_cli_parameters_are_injected_after_the_parameters_cell():
    import jupytext

    assert parse_parameter("DATASET=casme2") == ("DATASET", "casme2")
    assert parse_parameter("EPOCHS=5") == ("EPOCHS", 5) and parse_parameter("DATA_ROOT=None") == ("DATA_ROOT", None)
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_parameter("casme2")
    notebook = jupytext.read(ROOT / "book" / "05_loso.md")
    index = next(i for i, c in enumerate(notebook.cells) if "parameters" in c.metadata.get("tags", []))
    inject_parameters(notebook, {"DATASET": "casme2", "EPOCHS": 5}, "05_loso.md")
    cell = notebook.cells[index + 1]
    assert "injected-parameters" in cell.metadata["tags"]
    scope: dict = {}
    exec(compile(notebook.cells[index].source + "\n" + cell.source, "cells", "exec"), scope)
    assert scope["DATASET"] == "casme2" and scope["EPOCHS"] == 5
    with pytest.raises(ValueError, match="-p DATSET: not a parameter of this chapter"):
        inject_parameters(notebook, {"DATSET": "casme2"}, "05_loso.md")


def test_chapter_command_sets_parameters_and_draws_figures_under_agg(tmp_path, monkeypatch, capfd):
    """A kernel started with MPLBACKEND=Agg still yields image outputs; -p reaches the notebook; on POSIX the
    kernel talks over IPC, so ipykernel has no unencrypted TCP port to warn of."""
    import nbformat

    from convat.commands.chapter import execute_chapter

    chapter = tmp_path / "plot.md"
    chapter.write_text(
        "---\njupytext:\n  text_representation:\n    extension: .md\n    format_name: myst\n"
        "kernelspec:\n  display_name: Python 3\n  language: python\n  name: python3\n---\n\n"
        "```{code-cell} ipython3\n:tags: [parameters]\n\nTITLE = 'default'\n```\n\n"
        "```{code-cell} ipython3\n# a figure\nimport time\nimport matplotlib.pyplot as plt\nplt.plot([0, 1])\n"
        "plt.title(TITLE)\ntime.sleep(0.4)\nprint(TITLE)\n```\n")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    out = tmp_path / "plot.ipynb"
    times: list[dict] = []
    total = execute_chapter(chapter, out, timeout=120, parameters={"TITLE": "set"}, progress=True, cell_times=times)
    # every executed cell is timed, labelled by its first line of code
    assert [t["code"] for t in times] == ["TITLE = 'default'", "TITLE = 'set'", "plt.plot([0, 1])"]
    assert [t["cell"] for t in times] == [1, 2, 3]  # numbered among the code cells, from 1
    assert 0.4 <= times[2]["seconds"] < total and max(times, key=lambda t: t["seconds"]) is times[2]
    bar = capfd.readouterr().err  # a bar over the code cells: the parameters, the injected ones, the plot
    assert "plot: 100%" in bar and "3/3" in bar
    assert os.name != "posix" or "without encryption" not in bar  # the kernel's own stderr is captured too
    outputs = [o for c in nbformat.read(out, as_version=4).cells if c.cell_type == "code" for o in c.outputs]
    assert any("image/png" in o.get("data", {}) for o in outputs), "the figure was dropped"
    assert any("set" in o.get("text", "") for o in outputs)


def test_the_slowest_cells_are_listed_slowest_first_with_their_share():
    from convat.commands.chapter import cell_label, describe_cell_times

    assert cell_label(":tags: [hide-input]\n# why\n\nimport convat as cv\nfrom a import (\n    b,\n)\n"
                      "run = cv.cached_run(x)\n") == "run = cv.cached_run(x)"
    assert cell_label("import timm\nimport torch\n") == "import timm"
    assert cell_label("# only a comment") == "(no code)"
    assert cell_label("x = " + "1" * 100, width=10) == "x = 11111…"
    times = [{"cell": 3, "seconds": 1.0, "code": "a()"}, {"cell": 5, "seconds": 6.0, "code": "train()",
                                                          "section": "2. Training"},
             {"cell": 7, "seconds": 2.0, "code": "plot()", "section": ""}]
    text = describe_cell_times(times, total=10.0, top=2).splitlines()
    assert text[0] == "  slowest cells of 3 (9.0 s in cells, 1.0 s starting and stopping the kernel):"
    assert text[1:] == ["      6.0 s  60%  code cell   5 (2. Training), starting: train()",
                        "      2.0 s  20%  code cell   7, starting: plot()"]


def test_each_cell_is_placed_under_the_heading_before_it():
    import nbformat

    from convat.commands.chapter import section_titles

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("a = 1"), nbformat.v4.new_markdown_cell("# Title\n\ntext\n\n## 1. Data"),
        nbformat.v4.new_code_cell("b = 2"),
        nbformat.v4.new_markdown_cell("more text\n\n```bash\n# a shell comment, not a heading\nmake book\n```\n"),
        nbformat.v4.new_code_cell("c = 3"), nbformat.v4.new_markdown_cell("~~~\n# no\n~~~\n## 2. Models")])
    assert section_titles(nb) == {0: "", 1: "1. Data", 2: "1. Data", 3: "1. Data", 4: "1. Data", 5: "2. Models"}


def test_chapter_output_is_a_file_for_one_chapter_and_a_folder_for_several(tmp_path, capsys):
    """Bad --output combinations fail before any chapter runs, naming the flag; a folder gets one notebook each."""
    from convat.commands.chapter import output_paths

    assert output_paths(["book/a.md", "book/b.md"], None) == [None, None]
    assert output_paths(["book/a.md"], str(tmp_path / "x.ipynb")) == [tmp_path / "x.ipynb"]
    assert output_paths(["book/a.md", "book/b.md"], str(tmp_path)) == [tmp_path / "a.ipynb", tmp_path / "b.ipynb"]
    assert output_paths(["book/a.md"], "new/") == [Path("new/a.ipynb")]
    with pytest.raises(ValueError, match="--output out.ipynb: 2 chapters need a folder"):
        output_paths(["book/a.md", "book/b.md"], "out.ipynb")
    with pytest.raises(ValueError, match="share a name"):
        output_paths(["book/a.md", "other/a.md"], str(tmp_path))
    from convat.cli import main

    # command-line mistakes are one line and status 2, as for every command
    assert main(["chapter", "book/nope.md"]) == 2
    assert capsys.readouterr().err == "convat chapter: error: book/nope.md: no such chapter file\n"
    assert main(["chapter", "book/05_loso.md", "book/06_results.md", "--output", "out.ipynb"]) == 2
    assert capsys.readouterr().err.startswith("convat chapter: error: --output out.ipynb: 2 chapters need a folder")
    assert main(["chapter", "book/05_loso.md", "-p", "EPOCHS"]) == 2
    assert "convat chapter: error: -p 'EPOCHS': expected NAME=VALUE" in capsys.readouterr().err


def test_importing_the_book_module_in_an_agg_kernel_restores_inline_figures():
    """The kernel-side guard: a plain kernel with MPLBACKEND=Agg plus `import convat.book` draws figures."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import convat.book\nimport matplotlib.pyplot as plt\nplt.plot([0, 1])")]
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": str(ROOT)}
    NotebookClient(nb, timeout=120, kernel_name="python3").execute(env=env)
    assert any("image/png" in o.get("data", {}) for o in nb.cells[0].outputs)


def test_budgets_cover_every_chapter_far_from_the_cell_timeout():
    assert {c.stem for c in CHAPTERS} <= set(CHAPTER_BUDGETS_S)
    assert max(CHAPTER_BUDGETS_S.values()) * 3 <= CELL_TIMEOUT_S
    table = budget_table({"book/02_data": CHAPTER_BUDGETS_S["02_data"] + 1, "book/05_loso": 10.0})
    assert table.loc["02_data", "within budget"] == False  # noqa: E712 - numpy bool
    assert table.loc["05_loso", "within budget"] == True  # noqa: E712
    assert table.loc["05_loso", "of budget"] == f"{10 / CHAPTER_BUDGETS_S['05_loso']:.0%}"


def test_cache_note_tells_served_from_trained_folds(tmp_path):
    class Run:
        path = tmp_path / "convat_tiny-abc"

    (Run.path / "folds").mkdir(parents=True)
    (Run.path / "folds" / "a.csv").write_text("x")
    old = time.time() - 100
    os.utime(Run.path / "folds" / "a.csv", (old, old))
    since = time.time() - 10
    (Run.path / "folds" / "b.csv").write_text("x")
    assert served_from_cache(Run, since) == (1, 2)
    assert "resumed: 1 of 2 folds from the cache" in cache_note({"convat_tiny": Run}, since)
    assert "served from the cache (2 folds)" in cache_note({"m": Run}, time.time() + 1)
    assert "trained in this execution (2 folds)" in cache_note({"m": Run}, old - 1)


def test_runs_served_from_one_bundle_share_one_clause(tmp_path):
    import json
    from types import SimpleNamespace

    from convat.runstore import SERVED_FROM

    def served(name: str, cell: str, bundle: str = "study-quick") -> SimpleNamespace:
        path = tmp_path / f"{name}-{bundle}"
        (path / "folds").mkdir(parents=True)
        (path / "folds" / "a.csv").write_text("x")
        os.utime(path / "folds" / "a.csv", (time.time() - 100, time.time() - 100))  # copied before the page ran
        (path / SERVED_FROM).write_text(json.dumps({"bundle": bundle, "cell": cell, "code": "f1",
                                                    "bundle_commit": "abc", "cpus": []}))
        return SimpleNamespace(path=path)

    runs = {m: served(m, f"cells/{m}/seed0-draw0") for m in ("convat_tiny", "ststnet")}
    note = cache_note(runs, time.time() + 1)
    assert note.count("served from the committed bundle") == 1
    assert "convat_tiny, ststnet: served from the committed bundle `results/study-quick` (each from its cell " \
           "`cells/<model>/seed0-draw0`, made by the same code, fingerprint `f1`" in note
    runs["vit_me_tiny"] = served("vit_me_tiny", "cells/vit_me_tiny/seed1-draw0", bundle="study")
    note = cache_note(runs, time.time() + 1)
    assert note.count("served from the committed bundle") == 2 and "vit_me_tiny: served from the committed " \
        "bundle `results/study` (cell `cells/vit_me_tiny/seed1-draw0`," in note
    assert note.index("results/study-quick") < note.index("results/study`")  # in the order the page asked
    (runs["ststnet"].path / "folds" / "b.csv").write_text("x")  # a fold written now: recomputed, not served
    assert "copied into the cache (damaged folds recomputed now: ststnet 1)" in cache_note(runs, time.time() - 10)


MAX_CODE_LINE = 88


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_code_fits_the_page(chapter):
    """Code cells wrap at ~88 characters, the width the site shows without a scroll bar."""
    text = chapter.read_text(encoding="utf-8")
    long = []
    for block in re.findall(r"```\{code-cell\}[^\n]*\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            if not line.startswith(":") and len(line) > MAX_CODE_LINE:
                long.append(line)
    assert not long, f"{chapter.name}: {len(long)} code lines over {MAX_CODE_LINE} characters, e.g. {long[0]!r}"


def _face_imports(code: str) -> list[str]:
    """``module.name`` of every ``from convat.<module> import name`` in ``code`` that the package exports as
    the same object (so the chapter should write ``cv.name``)."""
    import importlib

    import convat

    try:
        tree = ast.parse(code)
    except SyntaxError:  # IPython magics: not plain Python
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("convat."):
            for alias in node.names:
                if alias.name in convat.__all__ and alias.name != "preprocess" and (
                        getattr(importlib.import_module(node.module), alias.name) is getattr(convat, alias.name)):
                    found.append(f"{node.module}.{alias.name}")
    return found


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.stem for c in CHAPTERS])
def test_chapters_call_the_public_face_as_cv(chapter):
    """Chapters read like ``import convat as cv; cv.load_records(...)``: a verb the package exports is never
    imported from its submodule (what the package does not export, e.g. an experiment's helpers, still is)."""
    text = chapter.read_text(encoding="utf-8")
    blocks = re.findall(r"```(?:\{code-cell\}[^\n]*|python)\n(.*?)```", text, flags=re.S)
    offenders = [name for block in blocks for name in _face_imports(
        "\n".join(line for line in block.splitlines() if not line.startswith(":")))]
    assert not offenders, f"{chapter.name}: import these as cv.<name>: {sorted(set(offenders))}"
    assert _face_imports("from convat.metrics import summarize") == ["convat.metrics.summarize"]  # can fail


def test_no_chapter_uses_private_attributes_of_argparse():
    for chapter in CHAPTERS:
        tree_text = chapter.read_text(encoding="utf-8")
        assert "._subparsers" not in tree_text and "._actions" not in tree_text, chapter.name
    ast.parse("x = 1")


def test_reference_rows_and_a_verdict_that_names_a_winning_linear_model():
    import numpy as np
    import pandas as pd

    from convat.experiments.references import (
        CHANCE,
        IDENTITY,
        LINEAR,
        MAJORITY,
        ONE_RUN,
        majority_baseline,
        ranking_verdict,
        reference_runs,
    )
    from convat.metrics import summarize

    rng = np.random.default_rng(0)
    table = pd.DataFrame({"dataset": "d", "subject": np.repeat(["s1", "s2", "s3", "s4"], 6),
                          "clip": [f"c{i}" for i in range(24)],
                          "label": ["neg", "neg", "neg", "pos", "pos", "sur"] * 4})
    x = rng.normal(size=(24, 3, 8, 8)).astype("float32")
    x[table.label == "pos", 0] += 3.0  # a linearly readable class
    runs = reference_runs(x, table, seed=0)
    assert list(runs) == [LINEAR, IDENTITY, MAJORITY, CHANCE]  # no coded AUs here: no ceiling row
    for predictions in runs.values():
        assert len(predictions) == 24 and {"fold", "prediction", "p_neg"} <= set(predictions.columns)
    assert (majority_baseline(table).prediction == "neg").all()
    assert summarize(runs[MAJORITY]).loc["all", "accuracy"] == 0.5
    overall = pd.DataFrame({"UF1": [0.50, 0.58, 0.22], "UF1_low": [0.4, 0.5, 0.1], "UF1_high": [0.6, 0.7, 0.3]},
                           index=["convat_tiny", LINEAR, MAJORITY])
    said = ranking_verdict(overall, "convat_tiny")
    assert said.startswith("**The linear reference scores highest in this run**") and ONE_RUN in said
    assert "wins" not in said and "have not learnt" not in said  # one seed per network is an order, no verdict
    assert "(the best of them, convat_tiny: 0.500 (0.400–0.600))" in said  # named once when it is the best network
    overall.loc["ststnet"] = [0.55, 0.45, 0.65]
    assert "(best: ststnet, 0.550; convat_tiny: 0.500 (0.400–0.600))" in ranking_verdict(overall, "convat_tiny")
    overall = overall.drop(index="ststnet")
    overall.loc["convat_tiny", "UF1"] = 0.6
    assert ranking_verdict(overall, "convat_tiny").startswith("**convat_tiny has the highest pooled UF1 in this run")


def test_the_one_run_summary_leaves_the_ceiling_out_and_names_a_uar_reorder():
    import numpy as np
    import pandas as pd

    from convat.experiments.references import AU_SET, LINEAR, single_run_lines

    table = pd.DataFrame({"dataset": "d", "subject": np.repeat(["s1", "s2", "s3", "s4"], 4),
                          "clip": [f"c{i}" for i in range(16)], "label": ["a", "b"] * 8})
    table["fold"] = table["subject"]

    def run(correct: int) -> pd.DataFrame:  # the first ``correct`` clips of every subject right
        right = np.tile(np.arange(4) < correct, 4)
        other = table["label"].map({"a": "b", "b": "a"})
        return table.assign(prediction=np.where(right, table["label"], other))

    predictions = {"convat_tiny": run(3), "ststnet": run(2), LINEAR: run(1), AU_SET: run(4)}
    overall = pd.DataFrame({"UF1": [0.70, 0.60, 0.50, 0.99], "UF1_low": [0.6, 0.5, 0.4, 0.9],
                            "UF1_high": [0.8, 0.7, 0.6, 1.0], "UAR": [0.70, 0.72, 0.50, 0.99]},
                           index=list(predictions))
    lines = single_run_lines(overall, predictions, ["convat_tiny", "ststnet"], labels=["a", "b"], n_boot=50)
    text = "\n".join(lines)
    assert lines[0].startswith("**convat_tiny has the highest pooled UF1 in this run**")  # not the ceiling row
    assert "- ststnet: convat_tiny − ststnet" in text and "- logistic regression" in text
    assert AU_SET not in text  # the ceiling takes part in no comparison
    assert lines[-1] == "\nBy UAR the order changes: ststnet is first (0.720)."
    overall.loc["ststnet", "UAR"] = 0.65
    assert "By UAR" not in "\n".join(single_run_lines(overall, predictions, ["convat_tiny", "ststnet"], n_boot=50))
    only = single_run_lines(overall, predictions, ["ststnet"], n_boot=50)
    assert only == ["ConVAT is not in this comparison; ststnet has the highest pooled UF1 in this run (one training "
                    "seed per network: an order of these runs, not a ranking of the methods)."]


def test_cell_timeout_matches_the_book_configuration():
    import yaml

    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["execute"]["timeout"] == CELL_TIMEOUT_S


def test_the_quick_profile_is_labelled_a_smoke_test_on_every_results_page():
    from convat.book import profile_note

    assert "Smoke test" in profile_note("synthme", "quick")
    assert "Smoke test" not in profile_note("synthme", "composite") and "seeds" in profile_note("casme2", "quick")
    for chapter in ("02_data", "04_model", "05_loso", "06_results", "07_explainability", "08_pitfalls"):
        text = (ROOT / "book" / f"{chapter}.md").read_text(encoding="utf-8")
        assert "profile_note(DATASET, PROFILE)" in text, f"{chapter} does not label its profile"


def test_key_results_box_shows_the_computed_values_and_labels_the_smoke_test():
    from convat.book import key_results

    box = key_results({"pooled UF1": 0.51234, "folds": 10, "verdict": "about the same"}, "synthme", "quick")
    lines = box.splitlines()
    assert lines[0].startswith("> **Key results**") and "smoke test" in lines[0]
    assert lines[2:] == ["> - pooled UF1: **0.512**", "> - folds: **10**", "> - verdict: **about the same**"]
    assert "smoke" not in key_results({"x": 1.0}, "casme2", "quick") and "casme2" in key_results({"x": 1.0}, "casme2",
                                                                                                "quick")
    with pytest.raises(ValueError, match="at least one"):
        key_results({}, "synthme", "quick")


def test_the_data_root_sentence_says_what_a_chapter_would_read(tmp_path, monkeypatch):
    from convat.book import describe_data_root

    monkeypatch.delenv("CONVAT_DATA", raising=False)
    assert describe_data_root(None).endswith("so the chapters use SynthME.")
    for name in ("SAMM", "CASME2", "SMIC"):
        (tmp_path / name).mkdir()
    assert describe_data_root(tmp_path) == f"The data root is `{tmp_path}`; it holds: `CASME2`, `SAMM`, `SMIC`."
    assert describe_data_root(tmp_path, shown=1).endswith("it holds: `CASME2` and 2 more.")
    assert describe_data_root(tmp_path / "SAMM").endswith("it holds: nothing.")
    (tmp_path / "notes.txt").write_text("x")
    assert "is a file, not a folder" in describe_data_root(tmp_path / "notes.txt")
    monkeypatch.setenv("CONVAT_DATA", str(tmp_path / "absent"))
    assert describe_data_root(None) == (f"The data root `{tmp_path / 'absent'}` does not exist: check `DATA_ROOT` or "
                                        "`$CONVAT_DATA`.")


def test_the_smoke_grid_the_results_chapter_describes_is_the_committed_one():
    """Chapter 6 states the smoke-test grid in words (its command, five seeds, three draws, fifteen runs): the words
    must match the Makefile's `make study-quick` and the committed bundle's spec."""
    import json

    root = Path(__file__).resolve().parents[1]
    text = " ".join((root / "book" / "06_results.md").read_text(encoding="utf-8").split())
    make = " ".join((root / "Makefile").read_text(encoding="utf-8").replace("\\\n", " ").split())
    said = re.search(r"--data-seeds ([\d ]+) --train-seeds ([\d ]+)`", text)
    assert said, "chapter 6 no longer quotes the smoke grid's command"
    draws, seeds = ([int(v) for v in g.split()] for g in said.groups())
    assert f"--data-seeds {said.group(1).strip()} --train-seeds {said.group(2).strip()}" in make
    words = {3: "three", 5: "five", 15: "fifteen"}
    assert f"{words[len(seeds)]} training seeds on {words[len(draws)]} draws" in text
    assert f"{words[len(seeds) * len(draws)]} runs per model" in text
    bundle = root / "results" / "study-quick" / "bundle.json"
    if bundle.exists():
        spec = json.loads(bundle.read_text())["spec"]
        assert (spec["data_seeds"], spec["train_seeds"]) == (draws, seeds)


def test_chapters_import_nothing_they_do_not_use():
    """ruff's unused-import rule over each chapter's code cells read as one module (what the reader runs, top to
    bottom): an import no cell uses is a leftover that makes a reader look for code that is not there."""
    import subprocess
    import sys

    import jupytext

    ruff = Path(sys.executable).parent / "ruff"
    found = []
    for chapter in CHAPTERS:
        cells = [c.source for c in jupytext.read(chapter).cells if c.cell_type == "code"]
        source = "\n\n".join(re.sub(r"(?m)^\s*[%!].*$", "", cell) for cell in cells) + "\n"
        out = subprocess.run([str(ruff), "check", "--isolated", "--select", "F401", "--output-format", "concise",
                              "--stdin-filename", chapter.with_suffix(".py").name, "-"], input=source, text=True,
                             capture_output=True)
        assert out.returncode in (0, 1), out.stderr
        found += [line for line in out.stdout.splitlines() if "F401" in line]
    assert not found, "imports no cell uses:\n" + "\n".join(found)
