"""The small APIs the exercises and Colab rely on: registering a flow method, the Drive data root."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from convat.colab import drive_data_root
from convat.preprocess.flow import FLOW_METHODS, compute_flow, flow_params, register_flow_method
from convat.preprocess.pipeline import PreprocessConfig


def test_a_registered_flow_method_is_usable_by_name_and_keyed_by_its_params(monkeypatch):
    monkeypatch.setattr("convat.preprocess.flow.FLOW_METHODS", dict(FLOW_METHODS))
    monkeypatch.setattr("convat.preprocess.flow._REGISTERED_PARAMS", {})

    def shift(prev, nxt):
        out = np.zeros((*prev.shape[:2], 2), np.float32)
        out[..., 0] = 1.0
        return out

    register_flow_method("shift", shift, {"version": 1})
    frame = np.zeros((8, 8), np.uint8)
    assert compute_flow(frame, frame, "shift")[..., 0].mean() == 1.0
    assert flow_params("shift") == {"registered": "shift", "version": 1}
    before = PreprocessConfig(flow="shift").params()
    with pytest.raises(ValueError, match="exists already"):
        register_flow_method("shift", shift, {"version": 2})
    register_flow_method("shift", shift, {"version": 2}, replace=True)
    assert PreprocessConfig(flow="shift").params() != before  # a new version is a new cache key
    with pytest.raises(ValueError, match="exists already"):
        register_flow_method("tvl1", shift, {})


def test_drive_data_root_mounts_on_colab_and_names_a_wrong_folder(tmp_path, monkeypatch):
    mounts = []
    colab = types.ModuleType("google.colab")
    colab.drive = types.SimpleNamespace(mount=lambda point: mounts.append(point))
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.delenv("CONVAT_DRIVE_DATA", raising=False)
    monkeypatch.setenv("CONVAT_DATA", "")  # recorded, so the value the helper sets is undone afterwards
    monkeypatch.delenv("CONVAT_DATA")
    with pytest.raises(FileNotFoundError, match="no such folder"):
        drive_data_root(tmp_path / "absent")
    assert mounts == ["/content/drive"]  # mounted before looking
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="none of CASME2/"):
        drive_data_root(tmp_path / "empty")
    (tmp_path / "data" / "SAMM").mkdir(parents=True)
    monkeypatch.setenv("CONVAT_DRIVE_DATA", str(tmp_path / "data"))
    assert drive_data_root() == tmp_path / "data"
    import os

    assert os.environ["CONVAT_DATA"] == str(tmp_path / "data")
