"""Test-wide settings: a private tensor cache, a non-interactive plot backend, few CPU threads."""

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
