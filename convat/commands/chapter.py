"""``convat chapter``: execute one book chapter (a MyST Markdown notebook) and report its time."""

from __future__ import annotations

import argparse
import ast
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from convat.commands import int_at_least

PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"


def parse_parameter(text: str) -> tuple[str, object]:
    """``NAME=VALUE`` -> ``(NAME, value)``: a Python literal (``5``, ``None``, ``[1, 2]``) or else the text."""
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier():
        raise ValueError(f"-p {text!r}: expected NAME=VALUE, e.g. -p DATASET=casme2")
    try:
        return name, ast.literal_eval(value.strip())
    except (ValueError, SyntaxError):
        return name, value.strip()


def _assigned_names(source: str) -> set[str]:
    names = set()
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def inject_parameters(notebook, parameters: Mapping[str, object], path: Path | str = "chapter") -> None:
    """Insert a cell that sets ``parameters`` right after the cell tagged ``parameters`` (as papermill does).

    Every name must be assigned in that cell, so a misspelt parameter fails here instead of being ignored.
    """
    import nbformat

    if not parameters:
        return
    index = next((i for i, c in enumerate(notebook.cells)
                  if c.cell_type == "code" and PARAMETERS_TAG in c.metadata.get("tags", [])), None)
    if index is None:
        raise ValueError(f"{path}: no cell tagged {PARAMETERS_TAG!r}, so -p cannot set parameters")
    known = _assigned_names(notebook.cells[index].source)
    for name in parameters:
        if name not in known:
            raise ValueError(f"{path}: -p {name}: not a parameter of this chapter; its parameters are "
                             + ", ".join(sorted(known)))
    source = "# Parameters set on the command line (convat chapter -p)\n" + "".join(
        f"{name} = {value!r}\n" for name, value in parameters.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": [INJECTED_TAG]})
    if notebook.get("nbformat_minor", 0) < 5:  # cell ids exist from nbformat 4.5 on
        cell.pop("id", None)
    notebook.cells.insert(index + 1, cell)


def _kernel_config(sockets: str):
    """Configuration of the chapter's kernel manager: on POSIX over IPC (Unix sockets in the private folder
    ``sockets``), so the kernel's code and outputs never travel over an unencrypted TCP port (ipykernel >= 7 warns
    of that); elsewhere nbclient's default (TCP on localhost). nbclient still owns the manager, so it shuts the
    kernel down after the chapter."""
    from traitlets.config import Config

    if os.name != "posix":
        return Config()
    return Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(sockets, "kernel")}})


def cell_label(source: str, width: int = 70) -> str:
    """The first line of a code cell's first statement that does something (not an import; the first import when
    there is nothing else), cut to ``width``; comments, blank lines and cell options are skipped."""
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(":")]
    try:
        body = ast.parse("\n".join(lines)).body
        chosen = next((n for n in body if not isinstance(n, ast.Import | ast.ImportFrom)), body[0] if body else None)
        text = lines[chosen.lineno - 1].strip() if chosen is not None else ""
    except SyntaxError:  # IPython magics: the first line that is not a comment
        text = next((t.strip() for t in lines if t.strip() and not t.strip().startswith("#")), "")
    if not text:
        return "(no code)"
    return text if len(text) <= width else text[: width - 1] + "…"


def section_titles(notebook) -> dict[int, str]:
    """For each cell index, the title of the last Markdown heading before it (``""`` before the first); lines
    inside fenced code blocks of Markdown cells (a shell comment, say) are not headings."""
    titles, title = {}, ""
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "markdown":
            fence = None
            for line in cell.source.splitlines():
                text = line.strip()
                marker = next((m for m in ("```", "~~~") if text.startswith(m)), None)
                if marker and fence is None:
                    fence = marker
                elif marker and text.startswith(fence or ""):
                    fence = None
                elif fence is None and line.startswith("#"):
                    title = line.lstrip("#").strip()
        titles[index] = title
    return titles


def execute_chapter(path: Path, output: Path | None = None, timeout: int = 1800,
                    parameters: Mapping[str, object] | None = None, progress: bool = False,
                    cell_times: list[dict] | None = None) -> float:
    """Execute the notebook at ``path`` in a fresh kernel; raise on the first failing cell; return seconds.

    ``parameters`` override the chapter's parameters cell. The kernel draws figures inline whatever
    ``MPLBACKEND`` says (see :mod:`convat.site.execution`). ``progress`` shows a bar over the code cells.
    A ``cell_times`` list receives ``{"cell", "seconds", "section", "code"}`` for every executed code cell (its
    number among the executed notebook's code cells, from 1, as Jupyter and Colab show them unless ``-p`` added
    a cell; the wall time from sending it to the kernel to its reply; the heading it is under; and
    :func:`cell_label`, the cell's first statement, which is not necessarily its slow one), so a slow chapter can
    be traced to its slow cells; the kernel's start and shutdown are in the total only.
    """
    import jupytext
    import nbformat
    from nbclient import NotebookClient
    from tqdm.auto import tqdm

    from convat.site.execution import kernel_environment

    notebook = jupytext.read(path)
    inject_parameters(notebook, parameters or {}, path)
    cells = sum(c.cell_type == "code" and c.source.strip() != "" and "skip-execution" not in c.metadata.get("tags", [])
                for c in notebook.cells)  # the cells nbclient executes (it skips blank and skip-execution ones)
    bar = tqdm(total=cells, desc=path.stem, unit="cell", disable=not progress)
    sent: dict[int, float] = {}
    titles = section_titles(notebook)
    ordinals = {i: n for n, i in enumerate((i for i, c in enumerate(notebook.cells) if c.cell_type == "code"), 1)}

    def executed(cell, cell_index: int, **_) -> None:
        bar.update(1)
        if cell_times is not None and cell_index in sent:
            seconds = round(time.perf_counter() - sent[cell_index], 2)
            cell_times.append({"cell": ordinals.get(cell_index, cell_index), "seconds": seconds,
                               "section": titles.get(cell_index, ""), "code": cell_label(cell.source)})

    start = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="convat-kernel-") as sockets:
            NotebookClient(notebook, config=_kernel_config(sockets), timeout=timeout, kernel_name="python3",
                           resources={"metadata": {"path": str(path.parent)}},
                           on_cell_execute=lambda cell, cell_index, **_: sent.__setitem__(cell_index,
                                                                                          time.perf_counter()),
                           on_cell_executed=executed).execute(env=kernel_environment(os.environ))
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    if output is not None:
        nbformat.write(notebook, output)
    return seconds


def describe_cell_times(times: list[dict], total: float, top: int) -> str:
    """The ``top`` slowest cells of a chapter, slowest first, with their share of the chapter's ``total``."""
    cells = sum(t["seconds"] for t in times)
    lines = [f"  slowest cells of {len(times)} ({cells:.1f} s in cells, {total - cells:.1f} s starting and "
             "stopping the kernel):"]
    for t in sorted(times, key=lambda t: -t["seconds"])[:top]:
        where = f" ({t['section']})" if t.get("section") else ""
        lines.append(f"  {t['seconds']:7.1f} s {t['seconds'] / total:4.0%}  code cell {t['cell']:>3}{where}, "
                     f"starting: {t['code']}")
    return "\n".join(lines)


def output_paths(chapters: list[str], output: str | None) -> list[Path | None]:
    """Where each executed chapter is written: nowhere without ``output``; ``output`` itself for one chapter
    unless it is a folder (an existing one, or a path ending in ``/``), which receives ``<chapter>.ipynb`` each.
    Several chapters need a folder; a clash is reported before any chapter runs."""
    if not output:
        return [None] * len(chapters)
    folder = Path(output).is_dir() or output.endswith(("/", os.sep))
    if not folder and len(chapters) > 1:
        raise ValueError(f"--output {output}: {len(chapters)} chapters need a folder (an existing one, or a path "
                         "ending in /) to write one notebook each")
    if not folder:
        return [Path(output)]
    paths = [Path(output) / f"{Path(c).stem}.ipynb" for c in chapters]
    if len(set(paths)) < len(paths):
        raise ValueError(f"--output {output}: two chapters share a name, so their notebooks would overwrite each other")
    return paths


def _run(args: argparse.Namespace) -> int:
    parameters = dict(parse_parameter(p) for p in args.parameter)  # a ValueError is one line, status 2
    outputs = output_paths(args.chapters, args.output)
    missing = [c for c in args.chapters if not Path(c).is_file()]
    if missing:
        raise FileNotFoundError(f"{missing[0]}: no such chapter file")
    for chapter, output in zip(args.chapters, outputs, strict=True):
        if output is not None:
            output.parent.mkdir(parents=True, exist_ok=True)
        times: list[dict] | None = [] if args.cell_times else None
        seconds = execute_chapter(Path(chapter), output, args.timeout, parameters, progress=not args.quiet,
                                  cell_times=times)
        print(f"{chapter}: executed in {seconds:.1f} s" + (f", written to {output}" if output else ""))
        if times:
            print(describe_cell_times(times, seconds, args.cell_times))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "chapter", help="execute book chapters (MyST notebooks) in a fresh kernel and print their run time",
        description="Execute each chapter top to bottom in a fresh kernel; the first failing cell fails the "
        "command with its traceback. Useful to check one chapter without building the whole book. The "
        "environment variables CONVAT_DATASET, CONVAT_PROFILE, CONVAT_DATA and CONVAT_DEVICE set the matching "
        "parameters of every chapter; -p overrides any parameter of the chapter's parameters cell.",
    )
    p.add_argument("chapters", nargs="+", help="paths of chapters, e.g. book/05_loso.md")
    p.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE",
                   help="set a parameter of the chapter's parameters cell, e.g. -p DATASET=casme2 -p EPOCHS=5 "
                   "(a Python literal, else text); repeatable")
    p.add_argument("--output", help="write the executed notebook (.ipynb) to this file, or into this folder as "
                   "<chapter>.ipynb (a folder: an existing one or a path ending in /; needed for several chapters)")
    p.add_argument("--timeout", type=int_at_least(1), default=1800, help="seconds allowed per cell (default: 1800)")
    p.add_argument("--quiet", action="store_true", help="no progress bar over each chapter's cells")
    p.add_argument("--cell-times", type=int_at_least(1), metavar="N", default=None,
                   help="after each chapter, print its N slowest code cells with their times, numbered from 1 among "
                   "the code cells, with their section and first statement (where a chapter's time goes; run with an "
                   "empty $CONVAT_CACHE to see what a first run computes)")
    p.set_defaults(func=_run)
