"""The layer contract (pyproject.toml, [tool.importlinter]): it holds, and an upward import breaks it."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter is not installed (pip install -e .[dev])")


def _lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), "--config", str(root / "pyproject.toml"), "--no-cache"], cwd=root,
                          capture_output=True, text=True, env={"PYTHONPATH": str(root), "PATH": ""}, timeout=300)


def test_the_stages_import_only_earlier_stages():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "2 kept, 0 broken" in result.stdout  # the layers, and no result code importing presentation modules


def _lint_with_import(tmp_path: Path, module: str, statement: str) -> subprocess.CompletedProcess:
    """The contracts on a copy of the package whose ``module`` (a path under ``convat/``) gained ``statement``."""
    shutil.copytree(ROOT / "convat", tmp_path / "convat", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    path = tmp_path / "convat" / module
    path.write_text(path.read_text() + f"\n\ndef _added():\n    {statement}  # noqa\n")
    return _lint(tmp_path)


def test_an_upward_import_breaks_the_contract(tmp_path):
    result = _lint_with_import(tmp_path, "data/records.py", "from convat.loso import run_loso")
    assert result.returncode != 0 and "convat.data.records -> convat.loso" in result.stdout


def test_result_code_importing_a_presentation_module_breaks_the_contract(tmp_path):
    """Plots and describe modules are left out of the code fingerprint: result code that imported one would make
    a result depend on code the fingerprint does not see."""
    result = _lint_with_import(tmp_path, "preprocess/face.py", "from convat.preprocess import describe")
    assert result.returncode != 0 and "convat.preprocess.face -> convat.preprocess.describe" in result.stdout
