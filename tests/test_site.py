"""The book as a product: generated Colab notebooks, the site configuration, the link checker, the browser check."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from convat.site.browser import link_problem
from convat.site.colab_install import PLACEHOLDER_REPOSITORY, is_placeholder, runtime_requirements
from convat.site.environment import environment, git_commit
from convat.site.notebooks import check_notebook, install_cell_source, write_notebooks
from convat.site.sphinx_ext import colab_ready, colab_url

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
REPO_URL = CONFIG["repository"]["url"]


def _chapters() -> list[Path]:
    return [p for p in sorted((ROOT / "book").glob("*.md")) if "kernelspec:" in p.read_text(encoding="utf-8")]


def test_every_chapter_becomes_a_runnable_notebook_in_sync(tmp_path):
    chapters = _chapters()
    assert len(chapters) >= 10
    written = write_notebooks(chapters, tmp_path, REPO_URL, "main")
    assert [p.stem for p in written] == [c.stem for c in chapters]
    for notebook, chapter in zip(written, chapters, strict=True):
        assert check_notebook(notebook, chapter) == []


def test_the_check_catches_a_stale_or_broken_notebook(tmp_path):
    import nbformat

    chapter = ROOT / "book" / "09_real_data.md"
    (notebook,) = write_notebooks([chapter], tmp_path, REPO_URL)
    nb = nbformat.read(notebook, as_version=4)
    nb.cells[-1].source += "\nprint('edited in the notebook only')"
    nbformat.write(nb, notebook)
    assert any("out of sync" in p for p in check_notebook(notebook, chapter))
    nb.cells.pop(0)
    nbformat.write(nb, notebook)
    assert any("install cell" in p for p in check_notebook(notebook))
    nb.cells.append(nbformat.v4.new_code_cell("def broken(:\n    pass"))
    nbformat.write(nb, notebook)
    assert any("not valid Python" in p for p in check_notebook(notebook))


def _run_install_cell(source: str, on_colab: bool, monkeypatch) -> list:
    calls = []
    monkeypatch.setattr(subprocess, "check_call", lambda cmd, **kw: calls.append(cmd))
    if on_colab:
        monkeypatch.setitem(sys.modules, "google.colab", type(sys)("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(compile(source, "install-cell", "exec"), {})
    return calls


def test_install_cell_installs_only_the_runtime_only_on_colab_under_colab_pins(monkeypatch, capsys):
    url = "https://github.com/org/repo"
    source = install_cell_source(url, "main")
    assert _run_install_cell(source, on_colab=False, monkeypatch=monkeypatch) == []
    calls = _run_install_cell(source, on_colab=True, monkeypatch=monkeypatch)
    # this machine's OpenCV has cv2.optflow, so none is installed: convat without dependencies, then its runtime
    assert [c[1:4] for c in calls] == [["-m", "pip", "install"]] * 2
    assert calls[0][-2:] == ["--no-deps", f"convat @ git+{url}@main"]
    requirements = calls[1][calls[1].index("--constraint") + 2:]
    assert requirements == runtime_requirements() and any(r.startswith("timm") for r in requirements)
    assert not any(r.startswith(("jupyter-book", "opencv", "ipykernel", "sphinx")) for r in requirements)
    pins = Path(calls[0][calls[0].index("--constraint") + 1]).read_text().split()
    assert f"torch=={importlib.metadata.version('torch')}" in pins
    assert any(p.startswith("jupyter-client==") for p in pins)
    assert "none of Colab's" in capsys.readouterr().out
    with pytest.raises(ValueError, match="repository_url"):
        install_cell_source("github.com/no-scheme")


def test_placeholder_repository_gives_no_colab_install_and_no_link(monkeypatch):
    assert is_placeholder(REPO_URL) == (REPO_URL.rstrip("/") == PLACEHOLDER_REPOSITORY)
    source = install_cell_source(PLACEHOLDER_REPOSITORY, "main")
    with pytest.raises(RuntimeError, match="placeholder"):
        _run_install_cell(source, on_colab=True, monkeypatch=monkeypatch)
    assert not colab_ready(PLACEHOLDER_REPOSITORY) and not colab_ready("")
    assert colab_ready(PLACEHOLDER_REPOSITORY, "convat==0.1.0") and colab_ready("https://github.com/org/repo")
    wheel = install_cell_source(PLACEHOLDER_REPOSITORY, source="https://example.org/convat-0.1.0-py3-none-any.whl")
    assert "CONVAT_SOURCE = ['https://example.org/convat-0.1.0-py3-none-any.whl']" in wheel
    index = install_cell_source(PLACEHOLDER_REPOSITORY, source="convat==0.1.0 --index-url https://example.org/simple")
    calls = _run_install_cell(index, on_colab=True, monkeypatch=monkeypatch)
    assert calls[0][-4:] == ["--no-deps", "convat==0.1.0", "--index-url", "https://example.org/simple"]


def test_colab_links_point_at_the_published_notebooks():
    assert colab_url("https://github.com/org/repo", "gh-pages", "05_loso") == (
        "https://colab.research.google.com/github/org/repo/blob/gh-pages/_notebooks/05_loso.ipynb")
    assert colab_url("https://gitlab.com/org/repo", "gh-pages", "05_loso") is None


def test_toc_lists_every_page_and_citations_resolve():
    toc = (ROOT / "_toc.yml").read_text()
    for page in sorted((ROOT / "book").glob("*.md")):
        assert f"book/{page.stem}" in toc, f"{page} is not in _toc.yml (only_build_toc_files would skip it)"
    bib = (ROOT / CONFIG["bibtex_bibfiles"][0]).read_text()
    keys = set(re.findall(r"@\w+\{([^,]+),", bib))
    cited = set()
    for page in (ROOT / "book").glob("*.md"):
        for group in re.findall(r"\{cite[pt]?\}`([^`]+)`", page.read_text(encoding="utf-8")):
            cited.update(k.strip() for k in group.split(","))
    assert cited and cited <= keys, f"unknown citation keys: {sorted(cited - keys)}"
    assert "convat.site.sphinx_ext" in CONFIG["sphinx"]["extra_extensions"]


def test_link_checker_finds_missing_pages_and_anchors(tmp_path):
    (tmp_path / "a.html").write_text('<h1 id="top">A</h1><a href="b.html#here">b</a>')
    (tmp_path / "b.html").write_text('<p id="here">B</p>')
    page = tmp_path / "a.html"
    assert link_problem(tmp_path, page, "/b.html#here") is None
    assert link_problem(tmp_path, page, "/a.html#top") is None
    assert "missing anchor" in link_problem(tmp_path, page, "/b.html#gone")
    assert "missing file" in link_problem(tmp_path, page, "/c.html")


def test_environment_reports_machine_versions_and_commit():
    env = environment()
    for key in ("python", "cpu cores", "torch", "timm", "git commit", "date (UTC)"):
        assert env[key], key


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(),
                    reason="Debian's chromium is not installed (make browser)")
def test_browser_check_fails_on_a_broken_page(tmp_path):
    pytest.importorskip("playwright")
    from convat.site.browser import check_site

    site = tmp_path / "html"
    site.mkdir()
    (site / "index.html").write_text('<html><body><h1>ok</h1><a href="page.html">next</a></body></html>')
    (site / "page.html").write_text(
        '<html><body><img src="missing.png"><a href="nowhere.html">x</a>'
        "<script>console.error('boom')</script></body></html>")
    report = check_site(site, screenshot_dir=tmp_path / "shots", landing="index.html", chapter="page.html")
    text = "\n".join(report.problems)
    assert report.pages == 2
    assert "broken image" in text and "missing file 'nowhere.html'" in text and "boom" in text
    assert not any(p.startswith("index.html") for p in report.problems)
    assert all(p.stat().st_size > 0 for p in report.screenshots)


def test_figure_check_fails_on_a_figure_less_chapter_page(tmp_path):
    """The build CI once published: captions everywhere, not one image (kernels ran with MPLBACKEND=Agg)."""
    from convat.site.figures import declared_figures, figure_problems, page_figure_problems

    book, site = tmp_path / "book", tmp_path / "html"
    book.mkdir()
    (site / "book").mkdir(parents=True)
    (book / "01_a.md").write_text(
        "# A\n\n```{code-cell} ipython3\n:tags: [hide-input]\n:mystnb:\n:  figure:\n:    caption: Two lines\n"
        ":      of caption.\n:    name: fig-one\nplot()\n```\n\n"
        "```{figure} ../x.png\n:name: fig-two\n\nA figure.\n```\n")
    assert declared_figures(book / "01_a.md") == ["fig-one", "fig-two"]
    with_images = ('<main><figure id="fig-one"><div><img src="a.png"></div><figcaption>Two</figcaption></figure>'
                   '<figure id="fig-two"><img src="x.png"><figcaption>A</figcaption></figure></main>')
    without = with_images.replace('<img src="a.png">', "")
    assert page_figure_problems(with_images, ["fig-one", "fig-two"]) == []
    problems = page_figure_problems(without, ["fig-one", "fig-two"])
    assert problems[0] == "figure #fig-one shows no image" and "declares 2 figures" in problems[1]
    (site / "book" / "01_a.html").write_text(without)
    assert figure_problems(site, book)[0] == "book/01_a.html: figure #fig-one shows no image"
    (site / "book" / "01_a.html").write_text(with_images)
    assert figure_problems(site, book) == []
    (site / "book" / "01_a.html").unlink()
    assert "missing" in figure_problems(site, book)[0]


def test_every_figure_of_the_book_is_declared_with_a_name():
    from convat.site.figures import declared_figures

    figures = [n for c in _chapters() for n in declared_figures(c)]
    assert len(figures) >= 17 and all(figures), "every figure needs a name: the site check looks it up by id"


def test_images_get_their_figure_caption_as_alt_text():
    from docutils import nodes

    from convat.site.sphinx_ext import add_alt_text

    section = nodes.section("", nodes.title("", "Training curves"))
    figure = nodes.figure("", nodes.image(uri="a.png"), nodes.caption("", "Training loss per\nepoch."))
    loose = nodes.image(uri="b.png")
    given = nodes.image(uri="c.png", alt="Already described")
    section += [figure, loose, given]
    doc = nodes.document(None, None)
    doc += section
    assert add_alt_text(doc) == 2
    images = list(doc.findall(nodes.image))
    assert images[0]["alt"] == "Training loss per epoch."
    assert images[1]["alt"] == "Figure computed in the section \u201cTraining curves\u201d"
    assert images[2]["alt"] == "Already described"


def test_mathjax_is_served_with_the_site():
    from convat.site.sphinx_ext import mathjax_source

    path = CONFIG["sphinx"]["config"]["mathjax_path"]
    assert "://" not in path and not path.startswith("/"), "MathJax must not come from a CDN"
    source = mathjax_source()
    assert source is not None, "sphinx-mathjax-offline (a book dependency) is not installed"
    assert (source / path.removeprefix("mathjax/")).is_file()


def test_licences_for_the_code_and_the_book():
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assert 'license = "MIT"' in (ROOT / "pyproject.toml").read_text()
    assert "CC BY 4.0" in CONFIG["copyright"] or "CC BY 4.0" in str(CONFIG.get("html", {}))
    assert "creativecommons.org/licenses/by/4.0" in (ROOT / "book" / "index.md").read_text()


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(),
                    reason="Debian's chromium is not installed (make browser)")
def test_browser_check_fails_on_missing_figures_and_cdn_mathjax(tmp_path):
    pytest.importorskip("playwright")
    from convat.site.browser import check_site

    book, site = tmp_path / "book", tmp_path / "html"
    book.mkdir()
    (site / "book").mkdir(parents=True)
    (book / "01_a.md").write_text("```{code-cell} ipython3\n:mystnb:\n:  figure:\n:    caption: C\n"
                                  ":    name: fig-one\nplot()\n```\n")
    (site / "index.html").write_text('<html><body><a href="book/01_a.html">a</a></body></html>')
    (site / "book" / "01_a.html").write_text(
        '<html><head><script src="https://cdn.example.org/mathjax/tex-chtml.js"></script></head><body>'
        '<figure id="fig-one"><figcaption>C</figcaption></figure></body></html>')
    report = check_site(site, landing="index.html", chapter="book/01_a.html", book=book)
    text = "\n".join(report.problems)
    assert "figure #fig-one shows no image" in text and "MathJax requested from another host" in text


def test_every_build_marks_every_chapter_outdated():
    """Sphinx re-reads (so myst-nb re-executes) only outdated documents: the hook returns every notebook."""
    from types import SimpleNamespace

    from convat.site.sphinx_ext import _every_notebook

    env = SimpleNamespace(found_docs={"book/index", "book/05_loso", "book/06_results", "book/new"},
                          metadata={"book/index": {}, "book/05_loso": {"kernelspec": {}},
                                    "book/06_results": {"kernelspec": {}}, "book/new": {"kernelspec": {}}})
    app = SimpleNamespace(env=env)
    assert _every_notebook(app, env, {"book/new"}, set(), set()) == ["book/05_loso", "book/06_results"]


def test_a_bundles_own_files_do_not_make_the_commit_dirty(tmp_path):
    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    (tmp_path / "results" / "study").mkdir(parents=True)
    (tmp_path / "results" / "study" / "bundle.json").write_text("{}")
    (tmp_path / "code.py").write_text("x = 1")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "start")
    clean = git_commit(tmp_path)
    assert "+" not in clean and clean != "unknown"
    (tmp_path / "results" / "study" / "bundle.json").write_text('{"cells": {}}')  # the study rewrites its record
    assert git_commit(tmp_path) == clean + "+dirty"
    assert git_commit(tmp_path, ignore=[tmp_path / "results" / "study"]) == clean
    (tmp_path / "code.py").write_text("x = 2")  # the code that ran changed: dirty whatever is ignored
    assert git_commit(tmp_path, ignore=[tmp_path / "results" / "study", "/elsewhere"]) == clean + "+dirty"


def test_a_build_records_its_starting_cache_for_the_kernels_and_beside_its_chapter_times(tmp_path, monkeypatch):
    """The hooks read the package cache before any chapter runs: the environment page says what the build started
    from (through the kernels' environment), and build_conditions.json sits beside chapter_times.json."""
    from types import SimpleNamespace

    from convat.site import sphinx_ext
    from convat.site.environment import BUILD_START_ENV, describe_build_start

    cache = tmp_path / "cache"
    monkeypatch.setenv("CONVAT_CACHE", str(cache))
    monkeypatch.setenv(BUILD_START_ENV, "")  # recorded, so the value the hook sets is undone after the test
    monkeypatch.setattr(sphinx_ext, "_copy_mathjax", lambda app: None)
    app = SimpleNamespace(builder=SimpleNamespace(format="html"), outdir=str(tmp_path / "html"), srcdir=str(tmp_path),
                          config=SimpleNamespace(convat_build_commit="abc"), add_css_file=lambda name: None)
    sphinx_ext._on_builder_inited(app)
    assert "started from an empty package cache" in describe_build_start()
    (cache / "runs").mkdir(parents=True)
    (cache / "runs" / "fold.csv").write_text("x")  # a chapter computed something
    conditions = sphinx_ext.build_conditions(app.convat_build_start)
    assert conditions["fresh_cache"] and conditions["cache_files_at_end"] == 1
    sphinx_ext._on_builder_inited(app)  # a second build finds that file
    text = describe_build_start()
    assert "started with 1 file in the package cache" in text and "may have run faster than a first run" in text
    assert "outside a book build" in describe_build_start({})
    assert "outside a book build" in describe_build_start({BUILD_START_ENV: "{not json"})
    unread = describe_build_start({BUILD_START_ENV: '{"cache_files_at_start": null}'})
    assert unread.startswith("This build could not read its package cache")
