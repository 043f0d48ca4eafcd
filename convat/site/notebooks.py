"""Runnable, output-free ``.ipynb`` notebooks generated from the book's MyST Markdown chapters.

Colab cannot open MyST Markdown notebooks, and the chapters are edited as Markdown. Rather than keeping a
second, paired copy of every chapter in the repository (which drifts), the build converts each chapter with
jupytext and prepends one cell that installs ``convat``'s runtime when the notebook runs on Colab (without
moving Colab's pinned packages; see :mod:`convat.site.colab_install`) and does nothing anywhere else. The
notebooks are therefore in sync with the chapters by construction; :func:`check_notebook`
verifies the invariants CI relies on.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from convat.site.colab_install import install_cell, install_source

#: Tag of the generated first cell, so that tools (and the check) can find it.
INSTALL_TAG = "colab-install"

def install_requirement(repository_url: str, ref: str | None = None) -> str:
    """The pip requirement that installs convat's runtime (no book toolchain) from ``repository_url`` (a git URL),
    at ``ref`` if given."""
    source = install_source(repository_url, ref)
    if source is None:
        raise ValueError(f"{repository_url!r} is the placeholder repository URL; set repository.url in _config.yml")
    return source


def install_cell_source(repository_url: str, ref: str | None = None, source: str | None = None) -> str:
    """Source of the first cell of every generated notebook (see :mod:`convat.site.colab_install`).

    ``source`` (a git URL, wheel URL or path, or index requirement) overrides the repository's git URL; with
    neither, while the URL is the placeholder, the cell tells a Colab user to install convat themselves.
    """
    return install_cell(install_source(repository_url, ref, source))


def chapter_to_notebook(chapter: Path, repository_url: str, ref: str | None = None, source: str | None = None):
    """Read a MyST Markdown chapter and return it as an output-free notebook with the install cell first."""
    import jupytext
    import nbformat

    notebook = jupytext.read(chapter)
    cell = nbformat.v4.new_code_cell(install_cell_source(repository_url, ref, source), metadata={"tags": [INSTALL_TAG]})
    notebook.cells.insert(0, cell)
    for i, c in enumerate(notebook.cells):
        c["id"] = f"cell-{i}"  # stable ids: regenerating an unchanged chapter gives an identical file
        if c.cell_type == "code":
            c.outputs = []
            c.execution_count = None
    notebook.metadata.pop("jupytext", None)
    notebook.metadata["colab"] = {"provenance": [], "name": chapter.with_suffix(".ipynb").name}
    notebook.metadata["accelerator"] = "GPU"
    notebook.nbformat, notebook.nbformat_minor = 4, 5
    return notebook


def write_notebooks(chapters: list[Path], out_dir: Path, repository_url: str, ref: str | None = None,
                    source: str | None = None) -> list[Path]:
    """Write one ``<stem>.ipynb`` per chapter into ``out_dir``; return the written paths."""
    import nbformat

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for chapter in chapters:
        target = out_dir / chapter.with_suffix(".ipynb").name
        nbformat.write(chapter_to_notebook(chapter, repository_url, ref, source), target)
        written.append(target)
    return written


_MAGIC = re.compile(r"^\s*[%!]")


def check_notebook(path: Path, chapter: Path | None = None) -> list[str]:
    """Problems with a generated notebook (empty list: fine).

    Checks that it is valid nbformat, carries no outputs, starts with the install cell (which must not install
    anything outside Colab), that every code cell is valid Python (IPython magics aside) and, when ``chapter``
    is given, that its cells are exactly the chapter's cells.
    """
    import nbformat

    problems: list[str] = []
    try:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
    except Exception as exc:  # noqa: BLE001 - any parse or schema error is the finding
        return [f"{path}: not a valid notebook: {exc}"]
    if not notebook.cells or INSTALL_TAG not in notebook.cells[0].metadata.get("tags", []):
        problems.append(f"{path}: the first cell is not the Colab install cell (tag {INSTALL_TAG!r})")
    elif 'if "google.colab" in sys.modules:' not in notebook.cells[0].source:
        problems.append(f"{path}: the install cell is not guarded by 'google.colab' in sys.modules")
    for i, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        if cell.get("outputs"):
            problems.append(f"{path}: cell {i} has outputs; generated notebooks must be output-free")
        source = "\n".join("pass" if _MAGIC.match(line) else line for line in cell.source.splitlines())
        try:
            ast.parse(source)
        except SyntaxError as exc:
            problems.append(f"{path}: cell {i} is not valid Python: {exc}")
    if chapter is not None:
        import jupytext

        expected = [(c.cell_type, c.source) for c in jupytext.read(chapter).cells]
        actual = [(c.cell_type, c.source) for c in notebook.cells[1:]]
        if expected != actual:
            problems.append(f"{path}: out of sync with {chapter}; regenerate it (the book build does)")
    return problems
