"""Load every page of the rendered site in headless Chromium and report what a reader would see broken.

The site in ``_build/html`` is served on localhost; every HTML page is opened and the check fails on console
errors, uncaught page errors, failed same-site requests, images that did not load and links inside the site
that point to a missing page or a missing anchor. Requests to other hosts are answered with an empty
response (CI has no network) and listed, never counted as failures, except a request for MathJax, which the
site must serve itself (offline classrooms); a page with formulas fails when MathJax did not typeset them.
Given the chapters' folder, every chapter page must also show the figures its chapter declares
(:mod:`convat.site.figures`). Screenshots of the landing page and of one chapter are saved for a person to
look at.

Chromium is Debian's ``chromium`` package (``make browser`` installs it), driven through the ``playwright``
Python package with ``executable_path``; playwright's own browser download is never used.
"""

from __future__ import annotations

import functools
import html.parser
import http.server
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@dataclass
class SiteReport:
    """What the browser found; ``problems`` empty means the site passed."""

    pages: int = 0
    problems: list[str] = field(default_factory=list)
    external_requests: set[str] = field(default_factory=set)
    screenshots: list[Path] = field(default_factory=list)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep the CI log for findings
        pass


class _Anchors(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs) -> None:
        for key, value in attrs:
            if key in ("id", "name") and value:
                self.ids.add(value)


@functools.cache
def _anchors(path: Path) -> frozenset[str]:
    parser = _Anchors()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return frozenset(parser.ids)


def link_problem(site: Path, page: Path, href: str) -> str | None:
    """Why an internal link of ``page`` is broken (None when it is fine). ``href`` is relative to the site root."""
    target, fragment = urldefrag(unquote(href))
    target = target.lstrip("/")
    path = site / target if target else page
    if target.endswith("/") or (path.is_dir()):
        path = path / "index.html"
    if not path.is_file():
        return f"link to a missing file {target!r}"
    if fragment and path.suffix == ".html" and fragment not in _anchors(path):
        return f"link to a missing anchor #{fragment} in {target or page.name}"
    return None


def _pages(site: Path) -> list[Path]:
    skip = ("_static", "_sources", "_images", "_notebooks", "jupyter_execute")
    return sorted(p for p in site.rglob("*.html") if not p.relative_to(site).parts[0].startswith(skip))


def check_site(site: Path, screenshot_dir: Path | None = None, landing: str = "book/index.html",
               chapter: str = "book/05_loso.html",
               executable: str = CHROMIUM, timeout_ms: int = 30_000, book: Path | None = None) -> SiteReport:
    """Serve ``site`` on localhost, open every page in headless Chromium, and return the findings.

    ``book``: the folder of the chapters; each chapter page is then checked for the figures it declares.
    """
    from playwright.sync_api import sync_playwright

    site = site.resolve()
    if not (site / "index.html").is_file():
        raise FileNotFoundError(f"{site} has no index.html; build the book first (make book)")
    if not Path(executable).exists():
        raise FileNotFoundError(f"no browser at {executable}; install Debian's chromium (make browser)")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    report = SiteReport()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_FLAGS)
            context = browser.new_context(viewport={"width": 1280, "height": 900})

            def route(r):
                if r.request.url.startswith(origin) or r.request.url.startswith("data:"):
                    r.continue_()
                else:
                    report.external_requests.add(urlparse(r.request.url).netloc)
                    if "mathjax" in r.request.url.lower():
                        report.problems.append(f"MathJax requested from another host: {r.request.url} (the site "
                                               "must serve it; see mathjax_path in _config.yml)")
                    r.fulfill(status=200, body="", content_type="text/plain")

            context.route("**/*", route)
            for path in _pages(site):
                rel = path.relative_to(site).as_posix()
                report.pages += 1
                report.problems.extend(f"{rel}: {p}" for p in _check_page(context, origin, site, path, timeout_ms))
            if screenshot_dir is not None:
                screenshot_dir.mkdir(parents=True, exist_ok=True)
                for name, rel in (("landing", landing), ("chapter", chapter)):
                    if (site / rel).is_file():
                        page = context.new_page()
                        page.goto(f"{origin}/{rel}", wait_until="load", timeout=timeout_ms)
                        page.wait_for_timeout(300)
                        target = screenshot_dir / f"{name}.png"
                        page.screenshot(path=str(target), full_page=True)
                        report.screenshots.append(target)
                        page.close()
            browser.close()
    finally:
        server.shutdown()
    if book is not None:
        from convat.site.figures import figure_problems

        report.problems.extend(figure_problems(site, Path(book)))
    return report


_REFRESH = re.compile(r"""<meta\s+http-equiv=["']refresh["']\s+content=["']\d+;\s*url=([^"']+)["']""", re.I)


def _check_page(context, origin: str, site: Path, path: Path, timeout_ms: int) -> list[str]:
    redirect = _REFRESH.search(path.read_text(encoding="utf-8", errors="replace"))
    if redirect:  # a redirect stub (the site root): check where it points; the target page is checked itself
        target = (path.parent / redirect.group(1)).resolve().relative_to(site).as_posix()
        problem = link_problem(site, path, target)
        return [f"redirect: {problem}"] if problem else []
    problems: list[str] = []
    page = context.new_page()
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} ({r.failure})")
            if r.url.startswith(origin) else None)
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}")
            if r.url.startswith(origin) and r.status >= 400 else None)
    rel = path.relative_to(site).as_posix()
    page.goto(f"{origin}/{rel}", wait_until="load", timeout=timeout_ms)
    broken = page.evaluate(
        "() => Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0)"
        ".map(i => i.getAttribute('src'))")
    problems.extend(f"broken image {src}" for src in broken)
    if page.evaluate("() => document.querySelector('.math') !== null"):
        try:
            page.wait_for_selector("mjx-container", state="attached", timeout=10_000)
        except Exception:  # noqa: BLE001 - playwright's TimeoutError; the finding is what matters
            problems.append("formulas are not typeset (MathJax did not load from the site)")
    hrefs = page.evaluate("() => Array.from(document.querySelectorAll('a[href]')).map(a => a.href)")
    for href in sorted(set(hrefs)):
        if not href.startswith(origin):
            continue
        problem = link_problem(site, path, href[len(origin):])
        if problem:
            problems.append(problem)
    page.close()
    return problems
