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


def test_an_upward_import_breaks_the_contract(tmp_path):
    shutil.copytree(ROOT / "convat", tmp_path / "convat", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    records = tmp_path / "convat" / "data" / "records.py"
    records.write_text(records.read_text() + "\n\ndef _upward():\n    from convat.loso import run_loso  # noqa\n")
    result = _lint(tmp_path)
    assert result.returncode != 0 and "convat.data.records -> convat.loso" in result.stdout


def test_result_code_importing_a_presentation_module_breaks_the_contract(tmp_path):
    """Plots and describe modules are left out of the code fingerprint: result code that imported one would make
    a result depend on code the fingerprint does not see."""
    shutil.copytree(ROOT / "convat", tmp_path / "convat", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    face = tmp_path / "convat" / "preprocess" / "face.py"
    face.write_text(face.read_text() + "\n\ndef _words():\n    from convat.preprocess import describe  # noqa\n")
    result = _lint(tmp_path)
    assert result.returncode != 0 and "convat.preprocess.face -> convat.preprocess.describe" in result.stdout
