"""Google Colab, simulated: the notebooks' install cell and two chapters, end to end, in a Colab-like venv.

Run by ``make colab-check`` with the build venv's Python (it needs jupytext to generate the notebooks):

1. a fresh venv under ``_build/colab/venv`` gets Colab's preinstalled packages at their pins
   (``tests/colab/colab-preinstalled.txt``; torch and torchvision are the build venv's own, shared read-only)
   and a stand-in ``google.colab`` module imported at start-up, as on Colab;
2. the convat wheel is built from this checkout, and the chapters' notebooks are generated with the wheel as
   the install source (what ``sphinx.config.convat_install_source`` does for a published wheel);
3. the LOSO chapter runs with ``DATASET``/``PROFILE``/``DEVICE`` parameters and a tiny budget, and the
   real-datasets chapter reads the MEGC2019 composite from a simulated Google Drive data root (a fixture tree
   in the official layouts, found through :func:`convat.colab.drive_data_root`), each in a Jupyter kernel of
   the simulated Colab, install cell first;
4. every preinstalled package must still be at its pin; the install log (what was added, what changed) is
   printed and written to ``_build/colab/install-log.txt``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # this checkout's convat (the notebooks are generated from its chapters)
HERE = Path(__file__).resolve().parent
PREINSTALLED = HERE / "colab-preinstalled.txt"
WORK = ROOT / "_build" / "colab"
SHARED_PREFIXES = ("nvidia-", "cuda-", "triton")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_preinstalled(path: Path = PREINSTALLED) -> tuple[dict[str, str | None], set[str]]:
    """``({package: pinned version or None}, {names shared from the build venv})`` of the preinstalled list."""
    pins, shared = {}, set()
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, _, version = line.partition("==")
        pins[_norm(name)] = version.strip() or None
        if "# shared" in raw:
            shared.add(_norm(name))
    return pins, shared


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    print("+", " ".join(map(str, cmd)), flush=True)
    return subprocess.run(cmd, check=True, **kwargs)


def _installed(python: Path) -> dict[str, str]:
    out = subprocess.run([str(python), "-m", "pip", "list", "--format=json"], check=True, capture_output=True,
                         text=True).stdout
    return {_norm(p["name"]): p["version"] for p in json.loads(out)}


def _shared_layer(names: set[str], layer: Path) -> list[str]:
    """Symlink the build venv's distributions ``names`` (and their CUDA libraries) into ``layer``."""
    if layer.exists():
        shutil.rmtree(layer)
    layer.mkdir(parents=True)
    site = Path(sysconfig.get_paths()["purelib"])
    linked = []
    for dist in metadata.distributions():
        name = _norm(dist.metadata["Name"] or "")
        if name not in names and not name.startswith(SHARED_PREFIXES):
            continue
        tops = {Path(str(f)).parts[0] for f in (dist.files or []) if not str(f).startswith("..")}
        for top in sorted(tops):
            if (site / top).exists() and not (layer / top).exists() and top not in ("bin", "__pycache__"):
                (layer / top).symlink_to(site / top)
        linked.append(f"{name} {dist.version}")
    return linked


def installer(python: Path) -> list[str]:
    """The command that installs Colab's preinstalled layer into the venv of ``python``: uv (make env installs it in
    the build venv) when it is there, else that venv's pip. uv reads no pip configuration and resolves from PyPI;
    every package it installs here is pinned or uncapped, so it installs what pip would. It downloads and unpacks
    in parallel: 19 s against pip's 103 s for this list (no cache, 2 cores, 2026-12-07). The layer is only the
    stage on which the install cell's own pip is tested."""
    uv = shutil.which("uv", path=str(Path(sys.executable).parent))
    if uv:
        return [uv, "pip", "install", "--quiet", "--compile-bytecode", "--python", str(python)]
    return _pip(python)


def _pip(python: Path) -> list[str]:
    return [str(python), "-m", "pip", "install", "--quiet"]


def build_colab_venv(pins: dict[str, str | None], shared: set[str]) -> Path:
    venv = WORK / "venv"
    if venv.exists():
        shutil.rmtree(venv)
    _run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    for name in sorted(shared):
        have = metadata.version(name)
        if have != pins[name]:  # e.g. a CI machine whose pip is not capped: hold the version actually shared
            print(f"note: {PREINSTALLED.name} pins {name}=={pins[name]}, the build venv shares {have}; holding {have}")
            pins[name] = have
    linked = _shared_layer(shared, WORK / "shared-layer")
    (site / "colab-shared-torch.pth").write_text(str(WORK / "shared-layer") + "\n")
    print(f"shared from the build venv (read-only): {', '.join(linked)}")
    wanted = [f"{n}=={v}" if v else n for n, v in pins.items() if n not in shared]
    command = installer(python)
    try:
        _run([*command, "--upgrade", "pip", *wanted])
    except subprocess.CalledProcessError:
        if command == _pip(python):
            raise
        print("uv failed (above); installing the same pins with pip instead", flush=True)
        _run([*_pip(python), "--upgrade", "pip", *wanted])
    shutil.copytree(HERE / "standin" / "google", site / "google", dirs_exist_ok=True)
    (site / "colab-standin.pth").write_text("import google.colab\n")
    return python


def build_wheel() -> Path:
    """The convat wheel, built from a copy of the package sources (so the checkout gets no build/ folder)."""
    dist, src = WORK / "dist", WORK / "src"
    for folder in (dist, src):
        shutil.rmtree(folder, ignore_errors=True)
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "convat", src / "convat", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(dist),
          str(src)])
    (wheel,) = dist.glob("convat-*.whl")
    return wheel


def main() -> int:
    start = time.perf_counter()
    os.environ.setdefault("MPLBACKEND", "Agg")
    from convat.data.readers.fixtures import build_fixture
    from convat.site.notebooks import check_notebook, write_notebooks

    pins, shared = read_preinstalled()
    WORK.mkdir(parents=True, exist_ok=True)
    python = build_colab_venv(pins, shared)
    before = _installed(python)
    off = [f"{n} {before.get(n)} (pinned {v})" for n, v in pins.items() if v and before.get(n) != v]
    if off:
        raise SystemExit(f"the simulated Colab did not install its own pins: {off}")
    t_env = time.perf_counter() - start

    wheel = build_wheel()
    notebooks = WORK / "notebooks"
    shutil.rmtree(notebooks, ignore_errors=True)
    chapters = [ROOT / "book" / "05_loso.md", ROOT / "book" / "02b_real_datasets.md"]
    written = write_notebooks(chapters, notebooks, "https://github.com/convat/convat", "main", source=str(wheel))
    for nb, chapter in zip(written, chapters, strict=True):
        problems = check_notebook(nb, chapter)
        if problems:
            raise SystemExit("\n".join(problems))
    drive = WORK / "drive" / "MyDrive" / "convat-data"
    shutil.rmtree(WORK / "drive", ignore_errors=True)
    build_fixture(drive, seed=0)

    run_dir = WORK / "run"
    for folder in (run_dir, WORK / "cache"):  # a fresh tensor and run cache: nothing served from an earlier check
        shutil.rmtree(folder, ignore_errors=True)
    run_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(CONVAT_CACHE=str(WORK / "cache"), CONVAT_DRIVE_DATA=str(drive), MPLBACKEND="Agg",
               PATH=f"{python.parent}:{env.get('PATH', '')}")
    env.pop("CONVAT_DATA", None)
    runs = {
        "05_loso": ['DATASET = "synthme"', 'PROFILE = "quick"', "EPOCHS = 2", 'DEVICE = "auto"'],
        "02b_real_datasets": ['DATASET = "megc2019"', "from convat.colab import drive_data_root",
                              "DATA_ROOT = drive_data_root()"],
    }
    logs = []
    for stem, overrides in runs.items():
        out = subprocess.run([str(python), str(HERE / "execute.py"), str(notebooks / f"{stem}.ipynb"),
                              str(run_dir / f"{stem}.ipynb"), *overrides], cwd=run_dir, env=env, text=True,
                             capture_output=True)
        print(out.stdout + out.stderr[-4000:])
        if out.returncode:
            raise SystemExit(f"{stem}: the notebook failed in the simulated Colab (see above; the executed "
                             f"notebook is {run_dir / (stem + '.ipynb')})")
        logs.append(out.stdout)

    probe = ("import cv2, convat, google.colab; cv2.optflow.DualTVL1OpticalFlow_create; "
             "print(convat.__file__, cv2.__version__)")
    where = subprocess.run([str(python), "-c", probe], cwd=run_dir, env=env, check=True, capture_output=True,
                           text=True).stdout.strip()
    if str(WORK / "venv") not in where:
        raise SystemExit(f"convat was not imported from the simulated Colab's install: {where}")
    after = _installed(python)
    added = sorted(f"{n} {after[n]}" for n in after if n not in before)
    changed = sorted(f"{n} {before[n]} -> {after[n]}" for n in before if n in after and after[n] != before[n])
    removed = sorted(n for n in before if n not in after)
    moved = [f"{n}: pinned {v}, now {after.get(n)}" for n, v in pins.items() if v and after.get(n) != v]
    summary = [
        f"Colab simulation: {len(before)} packages preinstalled ({len(pins)} listed, {len(shared)} shared: "
        f"{', '.join(sorted(shared))}); python {sys.version.split()[0]}",
        f"installed by the install cell: {len(added)} added: {', '.join(added) or 'none'}",
        f"changed: {', '.join(changed) or 'none'}; removed: {', '.join(removed) or 'none'}",
        "pinned packages: " + ("ALL UNCHANGED (" + ", ".join(f"{n}=={v}" for n, v in pins.items() if v) + ")"
                               if not moved else "MOVED: " + "; ".join(moved)),
        f"convat and OpenCV in the simulated Colab: {where}",
        f"time: {time.perf_counter() - start:.0f} s in all ({t_env:.0f} s to build the Colab-like venv)",
    ]
    text = "\n".join(summary)
    print(text)
    (WORK / "install-log.txt").write_text(text + "\n\n" + "\n".join(logs))
    return 1 if moved or removed else 0


if __name__ == "__main__":
    sys.exit(main())
