"""Face box, apex estimation, the cached pipeline and its alignment helper, on small SynthME clips."""

from dataclasses import dataclass, replace

import cv2
import numpy as np
import pytest

from convat.data.records import FrameSource
from convat.data.synth import generate
from convat.preprocess import pipeline
from convat.preprocess.apex import apex_index, apex_report
from convat.preprocess.cache import TensorCache
from convat.preprocess.face import FaceNotFoundError, as_uncropped, box_iou, face_box, per_frame_boxes
from convat.preprocess.flow import TVL1_PARAMS
from convat.preprocess.pipeline import PreprocessConfig, align_to_input, preprocess

PAD = 48


@dataclass(frozen=True)
class BlankFrames(FrameSource):
    n: int = 12

    def __len__(self):
        return self.n

    def load(self, indices=None):
        idx = range(self.n) if indices is None else indices
        return np.full((len(idx), 96, 96, 3), 120, np.uint8)

    def fingerprint(self):
        return f"blank{self.n}"


@pytest.fixture(scope="module")
def clips():
    return generate("quick", n_subjects=2, clips_per_subject=3)


def uncropped(record):
    return as_uncropped(record, PAD)


def test_face_is_found_around_the_synthetic_face_and_stable_over_the_clip(clips):
    record = uncropped(clips[0])
    frames = record.frames.load()
    box = face_box(record, "auto", onset_frame=frames[record.onset], detector="haar")  # dlib misses drawn faces
    assert box.source == "fallback"
    size = clips[0].frames.load([0]).shape[1]
    truth = type(box)(PAD, PAD, size, size)
    assert box_iou(box, truth) > 0.6, (box, truth)
    # the detector agrees with itself over the clip, so one onset box covers the face in every frame ...
    boxes = per_frame_boxes(frames, detector="haar")
    found = [b for b in boxes if b is not None]  # the cascade's confidence threshold rejects a few drawn faces
    assert len(found) >= 0.75 * len(boxes)
    assert min(box_iou(box, b) for b in found) > 0.6
    # ... and the pipeline reuses that single box: the same box whatever frames were loaded with it
    assert face_box(record, "auto", detector="haar") == box


def test_cropped_records_skip_detection(clips):
    record = replace(clips[0], extra={**clips[0].extra, "cropped": True})
    box = face_box(record, "auto")
    assert box.source == "cropped" and (box.x, box.y) == (0, 0)
    assert face_box(record, "full").source == "full"
    with pytest.raises(ValueError, match="detect"):
        face_box(record, "haar")


def test_clips_without_a_face_are_reported_by_name(clips, tmp_path):
    blank = replace(clips[0], clip="faceless_clip", frames=BlankFrames(), onset=1, apex=5, offset=10, extra={})
    config = PreprocessConfig(flow="dis", size=16, face="detect")
    with pytest.warns(UserWarning, match="faceless_clip"):
        x, table = preprocess([blank], config, cache=TensorCache(tmp_path), progress=False)
    assert table.attrs["faces_not_found"] == [blank.key] and table.face_source[0] == "not-found"
    with pytest.raises(FaceNotFoundError, match="faceless_clip"):
        preprocess([blank], replace(config, on_missing_face="error"), cache=TensorCache(tmp_path), progress=False)


def test_align_to_input_applies_the_same_crop_and_resize_as_the_tensor(clips, tmp_path):
    # a clip whose drawn face the cascade finds, so the crop is a real detection, not the whole frame
    original = next(c for c in clips[1:] if face_box(uncropped(c), "detect", detector="haar").source == "fallback")
    record = uncropped(original)
    config = PreprocessConfig(flow="farneback", size=32, face="detect", face_detector="haar")
    x, table = preprocess([record], config, cache=TensorCache(tmp_path), progress=False)
    box = face_box(record, "detect", detector="haar")
    assert table.face_box[0] == box.as_tuple() and table.face_source[0] == "fallback"
    true_flow = cv2.copyMakeBorder(original.truth.flow, PAD, PAD, PAD, PAD, cv2.BORDER_CONSTANT, value=0)
    aligned = align_to_input(record, np.linalg.norm(true_flow, axis=-1), config)
    assert aligned.shape == (32, 32)
    measured = np.linalg.norm(x[0, :2], axis=0)
    assert np.corrcoef(aligned.ravel(), measured.ravel())[0, 1] > 0.5
    # a misaligned map (shifted by a quarter of the input) correlates much less
    shifted = np.roll(aligned, 8, axis=0)
    assert np.corrcoef(shifted.ravel(), measured.ravel())[0, 1] < np.corrcoef(aligned.ravel(), measured.ravel())[0, 1]
    mask = align_to_input(record, np.pad(clips[1].truth.mask, PAD), config)
    assert mask.dtype == bool and mask.shape == (32, 32) and mask.any()


def test_motion_apex_lands_near_the_true_apex(clips):
    report = apex_report(clips, ("middle", "motion"))
    assert len(report) == len(clips)
    assert report.motion_error.median() <= 3, report
    for r in clips:
        assert r.onset < apex_index(r, "motion") < r.offset


def test_apex_strategies_and_config_validation(clips):
    r = clips[0]
    assert apex_index(r, "annotated") == r.apex
    assert apex_index(replace(r, apex=None), "annotated") == (r.onset + r.offset) // 2
    with pytest.raises(ValueError, match="motion"):
        PreprocessConfig(apex="peak")
    with pytest.raises(ValueError, match="tvl1"):
        PreprocessConfig(flow="magic")
    with pytest.raises(ValueError, match="auto"):
        PreprocessConfig(face="haar")


def test_cache_hits_resume_and_invalidation(clips, tmp_path, monkeypatch):
    cache = TensorCache(tmp_path)
    config = PreprocessConfig(flow="dis", size=24)
    calls = []
    original = pipeline.motion_sample
    monkeypatch.setattr(pipeline, "motion_sample", lambda r, c: calls.append(r.key) or original(r, c))
    x_part, _ = preprocess(clips[:3], config, cache=cache, progress=False)  # an "interrupted" run
    x_all, table = preprocess(clips, config, cache=cache, progress=False)  # resumes: only the rest is computed
    assert calls == [r.key for r in clips]
    np.testing.assert_array_equal(x_part, x_all[:3])
    x_again, _ = preprocess(clips, config, cache=cache, progress=False)
    np.testing.assert_array_equal(x_all, x_again)
    assert len(calls) == len(clips)
    assert list(table.apex_used) == [r.apex for r in clips]
    assert table.attrs["preprocess"]["flow_params"] == {"preset": "medium"}
    # any parameter change recomputes, including one inside the flow method's parameters
    preprocess(clips[:2], replace(config, face_margin=0.2), cache=cache, progress=False)
    assert len(calls) == len(clips) + 2
    tv = PreprocessConfig(flow="tvl1").params()
    monkeypatch.setitem(TVL1_PARAMS, "lambda", 0.3)
    assert PreprocessConfig(flow="tvl1").params() != tv


def test_cache_writes_are_atomic_and_corrupt_entries_are_recomputed(tmp_path, monkeypatch):
    cache = TensorCache(tmp_path)
    cache.put("ab" * 16, {"x": np.ones(3)})
    path = cache.path("ab" * 16)
    path.write_bytes(b"not an npz")
    with pytest.warns(UserWarning, match=path.name):  # named, moved aside, recomputed
        assert cache.get("ab" * 16) is None and not path.exists()

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(KeyboardInterrupt):
        cache.put("cd" * 16, {"x": np.ones(3)})
    assert not cache.path("cd" * 16).exists() and not list(tmp_path.rglob("*.tmp"))


def test_one_flow_colour_code_for_every_figure():
    """One convention, pinned: image coordinates, hue = direction, saturation = magnitude, still = white; every
    plotting module draws motion with the same function."""
    import convat.data.synth_plots as synth_plots
    import convat.explain.plots as explain_plots
    import convat.preprocess.plots as preprocess_plots
    from convat.flowviz import colour_wheel, flow_to_rgb

    flow = np.zeros((4, 4, 2), np.float32)
    flow[0, 0], flow[0, 1], flow[0, 2], flow[0, 3] = (1, 0), (0, 1), (-1, 0), (0, -1)
    flow[1, 0] = (0.5, 0)
    rgb = flow_to_rgb(flow, 1.0)
    np.testing.assert_allclose(rgb[2, 2], 1.0, atol=1e-6)  # still = white
    np.testing.assert_allclose(rgb[0, 0], (1, 0, 0), atol=1e-6)  # rightward = red
    np.testing.assert_allclose(rgb[0, 1], (0.5, 1, 0), atol=1e-6)  # downward (image y) = yellow-green
    np.testing.assert_allclose(rgb[0, 2], (0, 1, 1), atol=1e-6)  # leftward = cyan
    np.testing.assert_allclose(rgb[0, 3], (0.5, 0, 1), atol=1e-6)  # upward = violet
    np.testing.assert_allclose(rgb[1, 0], (1, 0.5, 0.5), atol=1e-6)  # half the scale: half the saturation
    np.testing.assert_allclose(flow_to_rgb(flow * 3, 3.0), rgb, atol=1e-6)  # the scale normalises
    assert colour_wheel(9).shape == (9, 9, 4)
    for module in (synth_plots, explain_plots, preprocess_plots):
        assert module.flow_to_rgb is flow_to_rgb
    with pytest.raises(ValueError, match=r"\(H, W, 2\)"):
        flow_to_rgb(np.zeros((4, 4)))


def test_disk_clips_with_non_square_uncropped_frames_go_through_the_same_code(clips, tmp_path):
    from convat.data.records import DiskFrames

    record = clips[2]
    frames = record.frames.load()
    paths = []
    for i, frame in enumerate(frames):
        wide = cv2.copyMakeBorder(frame, 40, 40, 90, 70, cv2.BORDER_REPLICATE)  # 208 x 288, face off-centre
        paths.append(tmp_path / f"img{i:03d}.jpg")
        cv2.imwrite(str(paths[-1]), cv2.cvtColor(wide, cv2.COLOR_RGB2BGR))
    disk = replace(record, dataset="diskset", frames=DiskFrames(tuple(paths)), truth=None, extra={})
    config = PreprocessConfig(flow="farneback", size=32, apex="middle", face_detector="haar")
    x, table = preprocess([disk], config, cache=TensorCache(tmp_path / "cache"), progress=False)
    assert x.shape == (1, 3, 32, 32) and np.isfinite(x).all()
    assert table.face_source[0] == "fallback" and table.attrs["face_counts"]["fallback"] == 1
    bx, by, bw, bh = table.face_box[0]
    assert bw == bh and abs(bx + bw / 2 - (90 + 64)) < 16 and abs(by + bh / 2 - (40 + 64)) < 16
    assert table.apex_used[0] == (record.onset + record.offset) // 2


def test_pipeline_with_the_motion_apex_and_the_cropped_flag_in_the_key(clips, tmp_path):
    cache = TensorCache(tmp_path)
    config = PreprocessConfig(flow="dis", size=16, apex="motion")
    _, table = preprocess(clips[:2], config, cache=cache, progress=False)
    assert list(table.apex_used) == [apex_index(r, "motion") for r in clips[:2]]
    flipped = [replace(r, extra={**r.extra, "cropped": not r.extra.get("cropped", False)}) for r in clips[:1]]
    preprocess(flipped, replace(config, apex="annotated"), cache=cache, progress=False)
    preprocess(clips[:1], replace(config, apex="annotated"), cache=cache, progress=False)
    assert len(list(tmp_path.rglob("*.npz"))) == 4  # the flag changes the key: two entries, not one
