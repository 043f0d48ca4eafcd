"""``convat site``: generate the Colab notebooks, check them, and check the rendered site in a browser."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from convat.commands import UsageError, check_folder


def _book(value: str) -> Path:
    """The chapters' folder: it must exist and hold chapters (``*.md``), or every check would pass on nothing."""
    book = Path(value)
    if not book.is_dir() or not any(book.glob("*.md")):
        raise UsageError("--book", value, "is not a folder of chapters (*.md)")
    return book


def _site(value: str) -> Path:
    site = Path(value)
    if not (site / "index.html").is_file():
        raise UsageError("SITE", value, "is not a rendered site (no index.html; `make book` renders one)")
    return site


def _chapters(args) -> list[Path]:
    if args.chapters:
        missing = [c for c in args.chapters if not Path(c).is_file()]
        if missing:
            raise UsageError("CHAPTERS", missing[0], "is not a chapter file")
        return [Path(c) for c in args.chapters]
    return sorted(_book(args.book).glob("*.md"))


def _notebooks(args: argparse.Namespace) -> int:
    from convat.site.notebooks import check_notebook, write_notebooks

    check_folder(args.out, what="notebook folder")
    if args.check and not Path(args.check).is_dir():
        raise UsageError("--check", args.check, "is not a folder of notebooks")
    chapters = [c for c in _chapters(args) if "kernelspec:" in c.read_text(encoding="utf-8")]
    if args.check:  # notebooks that already exist (e.g. the site's): present, valid and in sync with the chapters
        folder = Path(args.check)
        notebooks = [folder / c.with_suffix(".ipynb").name for c in chapters]
        problems = []
        for nb, ch in zip(notebooks, chapters, strict=True):
            problems += check_notebook(nb, ch) if nb.exists() else [f"{nb}: missing (no notebook for {ch})"]
        verb = "checked in"
    else:
        notebooks = write_notebooks(chapters, Path(args.out), args.repository_url, args.ref)
        problems = [p for nb, ch in zip(notebooks, chapters, strict=True) for p in check_notebook(nb, ch)]
        verb = "written to"
    for p in problems:
        print(p, file=sys.stderr)
    print(f"{len(notebooks)} notebooks {verb} {args.check or args.out}; {len(problems)} problems")
    return 1 if problems else 0


def _check(args: argparse.Namespace) -> int:
    import os
    import shutil

    from convat.site.browser import check_site

    check_folder(args.screenshots or None, "--screenshots", "screenshot folder")
    browser = args.browser if os.sep in args.browser else (shutil.which(args.browser) or args.browser)
    if os.path.exists(browser) and not (os.path.isfile(browser) and os.access(browser, os.X_OK)):
        raise UsageError("--browser", args.browser, "is not an executable (Chromium, e.g. /usr/bin/chromium)")
    if args.book:
        _book(args.book)
    report = check_site(Path(args.site), Path(args.screenshots) if args.screenshots else None,
                        executable=browser, book=Path(args.book) if args.book else None)
    for p in report.problems:
        print(f"FAIL {p}", file=sys.stderr)
    if report.external_requests:
        print("external hosts requested (answered empty, not checked): " + ", ".join(sorted(report.external_requests)))
    for s in report.screenshots:
        print(f"screenshot: {s}")
    print(f"{report.pages} pages checked in Chromium; {len(report.problems)} problems")
    return 1 if report.problems else 0


def _figures(args: argparse.Namespace) -> int:
    from convat.site.figures import figure_problems

    book = _book(args.book)  # first: it does not depend on a build
    problems = figure_problems(_site(args.site), book)
    for p in problems:
        print(f"FAIL {p}", file=sys.stderr)
    print(f"figures of the chapters in {args.book} checked in {args.site}; {len(problems)} problems")
    return 1 if problems else 0


def register(subparsers) -> None:
    p = subparsers.add_parser("site", help="Colab notebooks from the chapters; browser check of the rendered site")
    sub = p.add_subparsers(dest="site_command", required=True, metavar="ACTION")
    nb = sub.add_parser("notebooks",
                        help="write output-free .ipynb notebooks (Colab install cell first); check them")
    nb.add_argument("chapters", nargs="*", help="chapters (default: every notebook chapter in --book)")
    nb.add_argument("--book", default="book", help="folder of the chapters (default: book)")
    nb.add_argument("--out", default="_build/notebooks", help="output folder (default: _build/notebooks)")
    nb.add_argument("--repository-url", default="https://github.com/convat/convat",
                    help="git URL Colab installs convat from (the book build reads repository.url in _config.yml)")
    nb.add_argument("--ref", default=None, help="branch, tag or commit to install on Colab")
    nb.add_argument("--check", metavar="DIR", help="write nothing; check the notebooks in DIR (e.g. the site's "
                    "_build/html/_notebooks) against the chapters")
    nb.set_defaults(func=_notebooks)
    ck = sub.add_parser("check", help="open every page of the built site in headless Chromium; fail on errors")
    ck.add_argument("site", nargs="?", default="_build/html", help="the rendered site (default: _build/html)")
    ck.add_argument("--screenshots", default="_build/screenshots", help="folder for screenshots ('' for none)")
    ck.add_argument("--browser", default="/usr/bin/chromium", help="Chromium executable (default: Debian's)")
    ck.add_argument("--book", default="book", help="folder of the chapters: each chapter page must show the "
                    "figures its chapter declares ('' to skip; default: book)")
    ck.set_defaults(func=_check)
    fg = sub.add_parser("figures", help="without a browser: fail when a chapter page shows fewer figures than its "
                        "chapter declares (e.g. a build whose kernels ran with MPLBACKEND=Agg)")
    fg.add_argument("site", nargs="?", default="_build/html", help="the rendered site (default: _build/html)")
    fg.add_argument("--book", default="book", help="folder of the chapters (default: book)")
    fg.set_defaults(func=_figures)
