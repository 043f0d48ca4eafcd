"""Test-wide settings: OpenMP's passive wait, a private tensor cache, a non-interactive plot backend, few CPU
threads."""

# convat before torch: importing convat sets OMP_WAIT_POLICY=PASSIVE (unless the user chose a policy), and libgomp
# reads it once, when torch loads it. Imported after torch, this process's 2 OpenMP threads spin-wait, and every
# test that trains slows several-fold whenever another process wants the cores (measured 2026-12-07 on 2 cores
# beside the study's two busy fold workers: tests/test_controls_study.py's one-fold reproduction took 266 and 277 s,
# 263 and 264 CPU-s, imported after torch; 66-77 s, 61-68 CPU-s, in four runs imported before it).
import convat  # noqa: F401

# isort: split
import os

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
torch.set_num_threads(2)


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    os.environ["CONVAT_CACHE"] = str(tmp_path_factory.mktemp("convat-cache"))
    yield
