"""Sphinx hooks of the book (listed under ``sphinx.extra_extensions`` in ``_config.yml``).

* every chapter page gets a "Run this page" box: an *Open in Colab* link, a download link of the generated
  notebook and the exact command that re-executes the chapter on the reader's machine;
* after a successful build, the runnable notebooks are generated from the chapters into ``_notebooks/`` of the
  site (see :mod:`convat.site.notebooks`), and each chapter's execution time is written to the build log, next
  to its budget (:data:`convat.book.CHAPTER_BUDGETS_S`), and to ``_static/chapter_times.json``, with the
  conditions they were measured under (fresh or warm package cache, load average) in
  ``_static/build_conditions.json``;
* the chapters' kernels start with matplotlib's inline backend whatever ``MPLBACKEND`` the build inherited
  (:mod:`convat.site.execution`), so no figure is silently dropped;
* every image without alt text gets its figure's caption (or, outside a figure, the section it illustrates) as
  alt text, instead of the browser's fallback, the file name;
* MathJax is served from the site's ``_static/mathjax`` (copied from the ``sphinx-mathjax-offline`` package,
  with ``mathjax_path: mathjax/tex-chtml.js`` in ``_config.yml``), so formulas render in an offline classroom.

Where Colab finds the notebooks: the repository URL (``repository.url`` in ``_config.yml``) and the branch
the site is published from (``convat_site_branch``, default ``gh-pages``, the branch ``ghp-import`` writes).
"""

from __future__ import annotations

import html
import importlib
import json
import os
import shutil
from pathlib import Path
from urllib.parse import urlparse

from docutils import nodes
from sphinx.util import logging

from convat.site.build_state import BUILD_CONDITIONS, build_conditions, build_start
from convat.site.colab_install import PLACEHOLDER_REPOSITORY, is_placeholder
from convat.site.environment import BUILD_START_ENV, describe_cache, git_commit
from convat.site.execution import kernel_environment
from convat.site.notebooks import write_notebooks

logger = logging.getLogger(__name__)

NOTEBOOK_DIR = "_notebooks"

_CSS = """
.convat-run { margin: 0.5rem 0 1.5rem 0; }
.convat-run pre { margin: 0.4rem 0; padding: 0.4rem 0.6rem; white-space: pre-wrap; }
.convat-run .convat-links a { display: inline-block; margin-right: 1rem; font-weight: 600; }
.convat-run .convat-colab-off { display: inline-block; margin-right: 1rem; color: #6c757d; }
"""


def _is_notebook(app, docname: str) -> bool:
    return "kernelspec" in app.env.metadata.get(docname, {})


def _repository(app) -> tuple[str, str]:
    options = app.config.html_theme_options or {}
    return options.get("repository_url", "") or "", options.get("repository_branch", "") or "main"


def colab_url(repository_url: str, site_branch: str, stem: str) -> str | None:
    """The Colab address of a generated notebook on the published site branch, or None for non-GitHub repos."""
    parsed = urlparse(repository_url)
    parts = [p for p in parsed.path.removesuffix(".git").split("/") if p]
    if parsed.netloc != "github.com" or len(parts) < 2:
        return None
    org, repo = parts[:2]
    return f"https://colab.research.google.com/github/{org}/{repo}/blob/{site_branch}/{NOTEBOOK_DIR}/{stem}.ipynb"


def colab_ready(repository_url: str, install_source: str | None = None) -> bool:
    """Whether Colab links can work: the repository URL is not the placeholder, or an install source is set."""
    return bool(install_source) or not is_placeholder(repository_url)


def run_box(app, docname: str, pathto) -> str:
    """HTML of the box that tells how to run (reproduce) the page ``docname``."""
    source = Path(app.env.doc2path(docname)).relative_to(app.srcdir).as_posix()
    commit = app.config.convat_build_commit
    links = []
    if _is_notebook(app, docname):
        stem = Path(source).stem
        repository_url, _ = _repository(app)
        url = colab_url(repository_url, app.config.convat_site_branch, stem)
        if url and not colab_ready(repository_url, app.config.convat_install_source):
            links.append('<span class="convat-colab-off">Open in Colab: off until <code>repository.url</code> in '
                         "<code>_config.yml</code> names the published repository</span>")
        elif url:
            links.append(f'<a class="reference external" href="{html.escape(url)}">Open in Colab</a>')
        notebook = pathto(f"{NOTEBOOK_DIR}/{stem}.ipynb", 1)
        links.append(f'<a class="reference internal" href="{html.escape(notebook)}" download>'
                     f"Download the notebook (.ipynb)</a>")
        command = f"make env\nCONVAT_CACHE=~/.cache/convat .venv/bin/convat chapter {source}"
        what = ("Re-execute this page on your machine (in a clone of the repository; the first command creates "
                "<code>.venv</code>):")
    else:
        command = "make book"
        what = "Rebuild this page, and the whole book, on your machine (in a clone of the repository):"
    links_html = f'<p class="convat-links">{"".join(links)}</p>' if links else ""
    return (
        '<div class="admonition tip convat-run">'
        '<p class="admonition-title">Reproduce this page</p>'
        f"{links_html}<p>{what}</p><pre>{html.escape(command)}</pre>"
        f"<p>This page was built from commit <code>{html.escape(commit)}</code>. Each chapter's parameters cell "
        "switches the dataset (<code>DATASET</code>, <code>DATA_ROOT</code>), the profile and the device; "
        "<code>make book DATASET=casme2 DATA=/path</code> (or <code>CONVAT_DATASET</code>, "
        "<code>CONVAT_DATA</code>, <code>CONVAT_PROFILE</code>) switches every chapter at once, and "
        "<code>convat chapter CHAPTER -p NAME=VALUE</code> sets any parameter of one chapter.</p>"
        "</div>"
    )


def _dedupe_scripts(context) -> None:
    """Drop repeated script tags: sphinx-thebe's inline config is added twice under Jupyter Book 1, and the
    second ``const THEBE_JS_URL`` declaration is a JavaScript error on every page."""
    files = context.get("script_files")
    if not isinstance(files, list):
        return
    scripts, seen = [], set()
    for script in files:
        attributes = getattr(script, "attributes", None) or {}
        key = (getattr(script, "filename", str(script)) or None, tuple(sorted(attributes.items())))
        if key not in seen:
            seen.add(key)
            scripts.append(script)
    files[:] = scripts  # in place: the builder renders (and other handlers extend) this very list


def _every_notebook(app, env, added, changed, removed) -> list[str]:
    """Mark every executable chapter outdated, so that every build re-reads, hence re-executes, all of them.

    Sphinx re-reads only the sources changed since the last build: without this, a second ``make book``
    executed nothing and showed the previous build's outputs and times. Results the package caches itself
    (tensors, LOSO runs) are still served from ``$CONVAT_CACHE``, and the pages say so.
    """
    return sorted(d for d in env.found_docs if d not in added and _is_notebook(app, d))


def _on_page_context(app, pagename, templatename, context, doctree) -> None:
    if doctree is None or "body" not in context or not pagename.startswith("book/"):
        return
    box = run_box(app, pagename, context["pathto"])
    body = context["body"]
    cut = body.find("</h1>")
    context["body"] = body[: cut + 5] + box + body[cut + 5:] if cut >= 0 else box + body


def chapter_times(app) -> dict[str, float]:
    """Execution seconds of every notebook executed in this build, by document name."""
    data = getattr(app.env, "nb_metadata", {}) or {}
    times = {}
    for docname in sorted(data):
        runtime = (data[docname].get("exec_data") or {}).get("runtime")
        if runtime is not None:
            times[docname] = float(runtime)
    return times


def alt_text(image: nodes.image) -> str | None:
    """Alt text for an image that has none: its figure's caption, else the title of its section."""
    parent = image.parent
    while parent is not None and not isinstance(parent, nodes.figure | nodes.section | nodes.document):
        parent = parent.parent
    if isinstance(parent, nodes.figure):
        caption = next(iter(parent.findall(nodes.caption)), None)
        if caption is not None and caption.astext().strip():
            return " ".join(caption.astext().split())
    while parent is not None and not isinstance(parent, nodes.section):
        parent = parent.parent
    if parent is not None:
        title = next(iter(parent.findall(nodes.title)), None)
        if title is not None:
            return f"Figure computed in the section \u201c{' '.join(title.astext().split())}\u201d"
    return None


def add_alt_text(doctree: nodes.Node) -> int:
    """Give every image without alt text one from :func:`alt_text`; returns how many were given."""
    count = 0
    for image in doctree.findall(nodes.image):
        if image.get("alt", "").strip() and image.get("alt") != image.get("uri"):
            continue
        text = alt_text(image)
        if text:
            image["alt"] = text
            count += 1
    return count


def _on_doctree_resolved(app, doctree, docname) -> None:
    add_alt_text(doctree)


#: Where ``sphinx-mathjax-offline`` keeps MathJax 3 inside its installed package.
MATHJAX_PACKAGE = "sphinx-mathjax-offline"
_MATHJAX_BUNDLES = ("tex-chtml-full.js", "tex-chtml-full-speech.js", "tex-mml-chtml.js", "tex-mml-svg.js",
                    "tex-svg.js", "tex-svg-full.js", "mml-chtml.js", "mml-svg.js", "node-main.js")


def mathjax_source() -> Path | None:
    """The MathJax folder shipped by the ``sphinx-mathjax-offline`` package, or None when it is not installed."""
    try:
        module = importlib.import_module(MATHJAX_PACKAGE)
    except ImportError:
        return None
    folder = Path(module.__file__).parent / "static" / "mathjax"
    return folder if (folder / "tex-chtml.js").is_file() else None


def _copy_mathjax(app) -> None:
    path = app.config.mathjax_path or ""
    if "://" in path or path.startswith("/"):
        return  # a CDN or an absolute location was configured on purpose
    source = mathjax_source()
    if source is None:
        logger.warning(f"convat: MathJax is not installed ({MATHJAX_PACKAGE}); formulas would need a CDN. "
                       "Install the book's dependencies: pip install -e '.[book]'")
        return
    target = Path(app.outdir) / "_static" / "mathjax"
    if not (target / "tex-chtml.js").is_file():
        shutil.copytree(source, target, dirs_exist_ok=True,
                        ignore=lambda folder, names: [n for n in names if n in _MATHJAX_BUNDLES])


def _on_build_finished(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    outdir = Path(app.outdir)
    chapters = [Path(app.env.doc2path(d)) for d in sorted(app.env.found_docs) if _is_notebook(app, d)]
    repository_url, branch = _repository(app)
    written = write_notebooks(chapters, outdir / NOTEBOOK_DIR, repository_url or PLACEHOLDER_REPOSITORY, ref=branch,
                              source=app.config.convat_install_source or None)
    if not colab_ready(repository_url, app.config.convat_install_source):
        logger.info("convat: repository.url in _config.yml is the placeholder; no 'Open in Colab' link was "
                    "emitted (set it, or sphinx.config.convat_install_source, to the published repository)")
    logger.info(f"convat: wrote {len(written)} Colab notebooks to {outdir / NOTEBOOK_DIR}")
    times = chapter_times(app)
    if times:
        from convat.book import CHAPTER_BUDGETS_S

        width = max(len(d) for d in times)
        lines = []
        for d, s in times.items():
            budget = CHAPTER_BUDGETS_S.get(Path(d).name)
            verdict = "" if budget is None else f"  budget {budget:5.0f} s  " + (
                f"{s / budget:4.0%}" if s <= budget else f"OVER BUDGET ({s / budget:.0%})")
            lines.append(f"  {d:<{width}}  {s:7.1f} s{verdict}")
        lines.append(f"  {'total':<{width}}  {sum(times.values()):7.1f} s")
        conditions = build_conditions(app.convat_build_start)  # recorded when the html builder started
        loads = (conditions["load_average_start"], conditions["load_average_end"])
        load = "" if None in loads else f", load average {loads[0]} at the start, {loads[1]} at the end"
        logger.info(f"convat: chapter execution times (this build executed every chapter; "
                    f"{describe_cache(conditions)}{load})\n" + "\n".join(lines))
        (outdir / "_static").mkdir(exist_ok=True)
        (outdir / "_static" / "chapter_times.json").write_text(json.dumps(times, indent=1) + "\n")
        (outdir / "_static" / BUILD_CONDITIONS).write_text(json.dumps(conditions, indent=1) + "\n")


def _on_builder_inited(app) -> None:
    if app.builder.format != "html":
        return
    static = Path(app.outdir) / "_static"
    static.mkdir(parents=True, exist_ok=True)
    (static / "convat-site.css").write_text(_CSS)
    app.add_css_file("convat-site.css")
    if not app.config.convat_build_commit:
        app.config.convat_build_commit = git_commit(Path(app.srcdir))
    # before any chapter runs: whether the package cache can serve results (chapter times depend on it)
    app.convat_build_start = build_start()
    os.environ[BUILD_START_ENV] = json.dumps(app.convat_build_start)  # the kernels inherit it (environment page)
    _copy_mathjax(app)


def setup(app):
    # The kernels that execute the chapters inherit this process's environment: draw figures inline in them.
    os.environ.update(kernel_environment(os.environ))
    app.add_config_value("convat_site_branch", "gh-pages", "html")
    app.add_config_value("convat_build_commit", "", "html")
    app.add_config_value("convat_install_source", "", "html")
    app.connect("builder-inited", _on_builder_inited)
    app.connect("html-page-context", _on_page_context)
    app.connect("html-page-context", lambda app, *args: _dedupe_scripts(args[2]), priority=900)
    app.connect("build-finished", _on_build_finished)
    app.connect("doctree-resolved", _on_doctree_resolved)
    app.connect("env-get-outdated", _every_notebook)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
