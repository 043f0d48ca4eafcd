"""Does every chapter page show the figures its chapter draws?

A chapter declares its figures in the metadata of the code cells that draw them (``mystnb: figure: name:``) or
with ``{figure}`` directives. When the kernels that execute the chapters cannot draw (``MPLBACKEND=Agg``
inherited from the shell, say), the build still succeeds and the pages keep their captions, but not a single
image: a browser sees nothing broken. This check reads the rendered pages and fails for every declared figure
that holds no ``<img>``, and for every chapter page that shows fewer images than it declares figures.
"""

from __future__ import annotations

import html.parser
import re
from pathlib import Path

_CELL_FIGURE = re.compile(r"^:  figure:\s*\n((?::    .*\n)+)", re.M)
_DIRECTIVE = re.compile(r"^(`{3,}|:{3,})\{figure\}[^\n]*\n((?::[a-z_-]+:.*\n)*)", re.M)
_NAME = re.compile(r"^:(?:    )?name:\s*(\S+)", re.M)
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


def declared_figures(chapter: Path) -> list[str]:
    """Names of the figures a chapter declares, in order (``""`` for an unnamed one)."""
    text = chapter.read_text(encoding="utf-8")
    names = []
    for block in [m.group(1) for m in _CELL_FIGURE.finditer(text)] + [m.group(2) for m in _DIRECTIVE.finditer(text)]:
        found = _NAME.search(block)
        names.append(found.group(1) if found else "")
    return names


class _Images(html.parser.HTMLParser):
    """Counts ``<img>`` elements, and which element ids contain at least one."""

    def __init__(self, ids: set[str]) -> None:
        super().__init__()
        self.ids, self.stack, self.images = ids, [], 0
        self.with_image: set[str] = set()

    def handle_starttag(self, tag, attrs) -> None:
        if tag == "img":
            self.images += 1
            self.with_image.update(i for _, i in self.stack if i)
        if tag not in _VOID:
            element_id = dict(attrs).get("id")
            self.stack.append((tag, element_id if element_id in self.ids else None))

    def handle_endtag(self, tag) -> None:
        for depth in range(len(self.stack) - 1, -1, -1):
            if self.stack[depth][0] == tag:
                del self.stack[depth:]
                break


def page_figure_problems(page_html: str, figures: list[str]) -> list[str]:
    """What is missing on one rendered page, given the figures its chapter declares (empty list: fine)."""
    named = {n for n in figures if n}
    parser = _Images(named)
    parser.feed(page_html)
    problems = [f"figure #{name} shows no image" for name in figures if name and name not in parser.with_image]
    if parser.images < len(figures):
        problems.append(f"{parser.images} images on the page, but the chapter declares {len(figures)} figures "
                        "(were the chapters executed with a non-inline MPLBACKEND?)")
    return problems


def figure_problems(site: Path, book: Path, site_folder: str = "book") -> list[str]:
    """Problems of every chapter of ``book`` that declares figures, checked on its page under ``site``."""
    problems = []
    for chapter in sorted(Path(book).glob("*.md")):
        figures = declared_figures(chapter)
        if not figures:
            continue
        page = Path(site) / site_folder / f"{chapter.stem}.html"
        rel = f"{site_folder}/{page.name}"
        if not page.is_file():
            problems.append(f"{rel}: missing, but {chapter} declares {len(figures)} figures")
            continue
        text = page.read_text(encoding="utf-8", errors="replace")
        problems.extend(f"{rel}: {p}" for p in page_figure_problems(text, figures))
    return problems
