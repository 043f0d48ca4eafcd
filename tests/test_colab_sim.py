"""The Colab simulation's inputs (make colab-check runs it): its pins, and the install cell protecting them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from convat.site.colab_install import PROTECTED

HERE = Path(__file__).resolve().parent / "colab"
_spec = importlib.util.spec_from_file_location("colab_check", HERE / "check.py")
check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check)


def test_the_simulated_colab_pins_its_front_end_and_torch_and_the_cell_protects_them():
    pins, shared = check.read_preinstalled()
    assert pins["ipykernel"].startswith("6.") and pins["jupyter-client"].startswith("7.")
    assert pins["notebook"] == "6.5.5" and shared == {"torch", "torchvision"}
    assert "opencv-python" in pins and not any(n.startswith("opencv-contrib") for n in pins)
    protected = {check._norm(p) for p in PROTECTED}
    assert {"ipykernel", "jupyter-client", "notebook", "torch", "torchvision", "opencv-python"} <= protected


def test_the_preinstalled_list_parser(tmp_path):
    listing = tmp_path / "pre.txt"
    listing.write_text("# comment\ntorch==2.0  # shared\nJupyter_Client==7.4.9\nsympy\n\n")
    assert check.read_preinstalled(listing) == ({"torch": "2.0", "jupyter-client": "7.4.9", "sympy": None}, {"torch"})
