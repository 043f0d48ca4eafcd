"""``convat chapter``: execute one book chapter (a MyST Markdown notebook) and report its time."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from convat.commands import int_at_least


def execute_chapter(path: Path, output: Path | None = None, timeout: int = 1800) -> float:
    """Execute the notebook at ``path`` in a fresh kernel; raise on the first failing cell; return seconds."""
    import jupytext
    import nbformat
    from nbclient import NotebookClient

    notebook = jupytext.read(path)
    start = time.perf_counter()
    NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.perf_counter() - start
    if output is not None:
        nbformat.write(notebook, output)
    return seconds


def _run(args: argparse.Namespace) -> int:
    for chapter in args.chapters:
        seconds = execute_chapter(Path(chapter), Path(args.output) if args.output else None, args.timeout)
        print(f"{chapter}: executed in {seconds:.1f} s")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "chapter", help="execute book chapters (MyST notebooks) in a fresh kernel and print their run time",
        description="Execute each chapter top to bottom in a fresh kernel; the first failing cell fails the "
        "command with its traceback. Useful to check one chapter without building the whole book.",
    )
    p.add_argument("chapters", nargs="+", help="paths of chapters, e.g. book/05_loso.md")
    p.add_argument("--output", help="write the executed notebook (.ipynb) here (single chapter only)")
    p.add_argument("--timeout", type=int_at_least(1), default=1800, help="seconds allowed per cell (default: 1800)")
    p.set_defaults(func=_run)
