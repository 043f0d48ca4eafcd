import numpy as np
import pytest

from convat.data.synth import generate
from convat.preprocess.cache import TensorCache
from convat.preprocess.flow import compute_flow, endpoint_error
from convat.preprocess.pipeline import PreprocessConfig, preprocess
from convat.preprocess.strain import optical_strain


@pytest.fixture(scope="module")
def clips():
    return generate("quick", n_subjects=2, clips_per_subject=3)


def test_tvl1_beats_zero_flow_in_the_au_regions(clips):
    errs = {"tvl1": [], "zero": []}
    for r in clips:
        onset, apex = r.frames.load([r.onset, r.apex])
        for method in errs:
            errs[method].append(endpoint_error(compute_flow(onset, apex, method), r.truth.flow, r.truth.mask))
    assert np.mean(errs["tvl1"]) < 0.7 * np.mean(errs["zero"])


def test_strain_of_a_uniform_stretch():
    ys, xs = np.mgrid[0:16, 0:16].astype(np.float32)
    flow = np.dstack([0.1 * xs, np.zeros_like(ys)])
    np.testing.assert_allclose(optical_strain(flow), 0.1, atol=1e-6)


def test_cache_serves_identical_tensors_and_a_parameter_change_recomputes(clips, tmp_path):
    cache = TensorCache(tmp_path)
    x1, _ = preprocess(clips, PreprocessConfig(flow="dis", size=32), cache=cache, progress=False)
    n_entries = len(list(tmp_path.rglob("*.npz")))
    x2, _ = preprocess(clips, PreprocessConfig(flow="dis", size=32), cache=cache, progress=False)
    np.testing.assert_array_equal(x1, x2)
    assert len(list(tmp_path.rglob("*.npz"))) == n_entries == len(clips)
    x3, _ = preprocess(clips, PreprocessConfig(flow="farneback", size=32), cache=cache, progress=False)
    assert len(list(tmp_path.rglob("*.npz"))) == 2 * len(clips)
    assert not np.array_equal(x1, x3)


def test_unknown_flow_method_names_the_choices(clips):
    with pytest.raises(ValueError, match="tvl1"):
        compute_flow(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8), "magic")
