"""The first cell of every generated notebook: install convat's runtime on Colab without disturbing Colab.

Colab ships a front end and a kernel whose versions are pinned together (``notebook`` 6.5 needs
``jupyter_client`` 7 and ``ipykernel`` 6), and a CUDA build of torch / torchvision that must not be replaced.
A plain ``pip install convat`` may upgrade any of them. The cell therefore:

1. writes a pip *constraints file* with the installed version of every package in :data:`PROTECTED` (pip then
   refuses any resolution that would move them, instead of silently upgrading them);
2. installs convat itself with ``--no-deps`` from the configured source (a git URL, a wheel URL or file, or a
   requirement on a package index), then its runtime requirements (never the book toolchain: that is the
   ``book`` extra) under the constraints;
3. handles OpenCV deliberately: convat needs ``cv2.optflow`` (TV-L1), which only the *contrib* builds have. If
   the preinstalled OpenCV already has it, no OpenCV is installed; otherwise the contrib build of the **same
   version** as the preinstalled OpenCV is installed (``--no-deps``, so nothing else moves), and the cell says so;
4. checks the result: ``cv2.optflow`` importable, ``convat`` importable, no protected package moved, and prints
   a one-line summary of what changed.

Outside Colab the cell does nothing. :func:`install_cell_source` writes the cell; its logic is plain Python so
that ``make colab-check`` runs it, unchanged, in a simulated Colab environment.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

#: Packages Colab preinstalls and pins, which the install must never move (those that are installed).
PROTECTED = ("ipykernel", "ipython", "jupyter_client", "jupyter_core", "jupyter_server", "notebook", "tornado",
             "torch", "torchvision", "torchaudio", "numpy", "pandas", "matplotlib", "opencv-python",
             "opencv-python-headless", "opencv-contrib-python", "opencv-contrib-python-headless")

#: The placeholder repository of a fresh clone: Colab cannot install from it until the repository is published.
PLACEHOLDER_REPOSITORY = "https://github.com/convat/convat"

_OPENCV = re.compile(r"^opencv[-_](contrib[-_])?python([-_]headless)?\b", re.I)

_TEMPLATE = '''\
# Runs only on Google Colab: installs the convat runtime (not the book's tools) without moving Colab's own
# packages (torch, torchvision, ipykernel, jupyter_client, notebook... stay as they are), and an OpenCV with
# cv2.optflow only if the preinstalled one lacks it. Anywhere else this cell does nothing: see the README.
import subprocess
import sys

CONVAT_SOURCE = {source!r}
CONVAT_REQUIREMENTS = {requirements!r}
PROTECTED = {protected!r}

if "google.colab" in sys.modules:
    import importlib.metadata as metadata
    import tempfile

    def _versions():
        found = {{}}
        for dist in metadata.distributions():
            name = (dist.metadata["Name"] or "").lower().replace("_", "-")
            found.setdefault(name, dist.version)
        return found

    def _has_optflow():
        probe = "import cv2; cv2.optflow.DualTVL1OpticalFlow_create"
        return subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0

    if CONVAT_SOURCE is None:
        raise RuntimeError("this notebook was built before the book's repository was published (repository.url in "
                           "_config.yml is a placeholder): install convat yourself, e.g. "
                           "!pip install 'convat @ git+https://github.com/<you>/<repo>'")
    before = _versions()
    protected = {{p.lower().replace("_", "-") for p in PROTECTED}}
    pins = [f"{{name}}=={{before[name]}}" for name in sorted(protected) if name in before]
    with tempfile.NamedTemporaryFile("w", suffix="-colab-pins.txt", delete=False) as handle:
        handle.write("\\n".join(pins) + "\\n")
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--constraint", handle.name]
    if _has_optflow():
        opencv = "preinstalled OpenCV has cv2.optflow: kept"
    else:
        preinstalled = [before[n] for n in ("opencv-python", "opencv-python-headless") if n in before]
        build = "opencv-contrib-python-headless" + (f"=={{preinstalled[0]}}" if preinstalled else "")
        subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", build])
        opencv = f"preinstalled OpenCV lacks cv2.optflow: installed {{build}} beside it (same version, no dependencies)"
    subprocess.check_call(pip + ["--no-deps", *CONVAT_SOURCE])
    subprocess.check_call(pip + CONVAT_REQUIREMENTS)
    after = _versions()
    moved = [f"{{n}} {{before[n]}} -> {{after.get(n)}}" for n in before if after.get(n) != before[n]]
    added = sorted(f"{{n}} {{after[n]}}" for n in after if n not in before)
    protected_moved = [m for m in moved if m.split()[0] in protected]
    if protected_moved or not _has_optflow():
        raise RuntimeError(f"the install moved Colab's packages {{protected_moved}} or left no cv2.optflow")
    print(f"convat installed from {{' '.join(CONVAT_SOURCE)}}; OpenCV: {{opencv}}.")
    print(f"{{len(added)}} packages added ({{', '.join(added)}}); {{len(moved)}} changed "
          f"({{', '.join(moved) or 'none'}}); none of Colab's {{len(pins)}} pinned packages moved.")'''


def runtime_requirements(pyproject: str | Path | None = None) -> list[str]:
    """convat's runtime requirements without OpenCV (the install cell chooses the OpenCV build itself).

    Read from ``pyproject.toml`` (default: the one next to the package, in a source checkout), else from the
    installed distribution's metadata; extras (``book``, ``dev``) are never included.
    """
    path = Path(pyproject) if pyproject else Path(__file__).resolve().parents[2] / "pyproject.toml"
    if path.exists():
        import tomllib

        requirements = tomllib.loads(path.read_text(encoding="utf-8"))["project"]["dependencies"]
    else:
        from importlib.metadata import requires

        requirements = [r for r in (requires("convat") or []) if "extra ==" not in r]
    return [r.strip() for r in requirements if not _OPENCV.match(r.strip())]


def is_placeholder(repository_url: str | None) -> bool:
    """True when ``repository_url`` is empty or still the placeholder of a fresh clone."""
    return not repository_url or repository_url.rstrip("/").removesuffix(".git") == PLACEHOLDER_REPOSITORY


def install_source(repository_url: str | None, ref: str | None = None, source: str | None = None) -> str | None:
    """What pip installs convat from on Colab: ``source`` when given, else the git URL of the repository (at
    ``ref``), else ``None`` while the repository URL is the placeholder (the cell then says so on Colab).

    ``source`` is any pip requirement: ``git+https://...@tag``, a wheel URL (e.g. the site release's
    ``https://.../convat-0.1.0-py3-none-any.whl``), a local wheel path, or ``convat==0.1.0`` on an index, which
    may be followed by pip options such as ``--index-url https://...`` (split like a shell command line, except a
    ``name @ url`` requirement, which stays one argument).
    """
    if source:
        return source
    if is_placeholder(repository_url):
        return None
    if not repository_url.startswith(("https://", "http://", "git+", "file://")):
        raise ValueError(f"repository_url must be an http(s), git+ or file URL, got {repository_url!r}")
    url = repository_url if repository_url.startswith("git+") else f"git+{repository_url.removesuffix('/')}"
    return f"convat @ {url}@{ref}" if ref else f"convat @ {url}"


def install_cell(source: str | None, requirements: list[str] | None = None) -> str:
    """Source of the install cell for convat installed from ``source`` (see :func:`install_source`)."""
    reqs = runtime_requirements() if requirements is None else list(requirements)
    args = None if source is None else [source] if " @ " in source else shlex.split(source)
    return _TEMPLATE.format(source=args, requirements=reqs, protected=PROTECTED)
