"""Face detection and alignment on real photographs shipped by libraries (scikit-image, matplotlib) and on
synthetic frames: found with landmarks where there is a face, not-found on a cat and on blanks."""

from dataclasses import dataclass, replace

import numpy as np
import pytest

from convat.data.records import ClipRecord, FrameSource
from convat.preprocess.cache import TensorCache
from convat.preprocess.detectors import as_uint8_rgb, detect_face, dlib_available, face_candidates, select_face
from convat.preprocess.face import EYE_ROW, SIDE_PER_EYE_DISTANCE, FaceNotFoundError, aligned_box, face_box
from convat.preprocess.face_eval import PHOTO_EYES, evaluate_detectors, evaluation_images, library_photo, outcome
from convat.preprocess.pipeline import PreprocessConfig, preprocess

pytest.importorskip("skimage")
needs_dlib = pytest.mark.skipif(not dlib_available(), reason="the 'faces' extra (dlib-bin, face-recognition-models)")


@dataclass(frozen=True)
class StillFrames(FrameSource):
    """A clip made of one image repeated (the face does not move)."""

    image: np.ndarray
    n: int = 6

    def __len__(self):
        return self.n

    def load(self, indices=None):
        idx = range(self.n) if indices is None else indices
        return np.stack([self.image] * len(idx))

    def fingerprint(self):
        return f"still{self.n}:{self.image.shape}:{int(self.image.sum())}"


def clip(image, name):
    return ClipRecord(dataset="photos", subject="p1", clip=name, label="x", onset=0, apex=3, offset=5,
                      frames=StillFrames(image))


@pytest.fixture(scope="module")
def images():
    return {image.name: image for image in evaluation_images()}


@needs_dlib
@pytest.mark.parametrize("name", ["astronaut", "grace_hopper", "astronaut rotated 10 deg", "grace_hopper RGBA",
                                  "astronaut float [0, 1]", "grace_hopper at the frame edge",
                                  "astronaut downscaled x0.5", "grace_hopper in 2040x1088 with distractors"])
def test_the_face_is_found_with_68_landmarks_on_library_photographs(images, name):
    image = images[name]
    found = detect_face(image.image, "dlib")
    assert found is not None and found.landmarks.shape == (68, 2)
    assert outcome(image, found) == "found"
    left, right = found.eyes()
    assert np.hypot(*(left - image.eyes[0])) < 0.25 * np.hypot(*(image.eyes[1] - image.eyes[0]))


@needs_dlib
@pytest.mark.parametrize("name", ["chelsea (cat)", "blank grey", "blank noise", "distractors 2040x1088, no face"])
def test_a_cat_and_blank_frames_have_no_face(images, name):
    assert detect_face(images[name].image, "dlib") is None
    box = face_box(clip(images[name].image, "noface"), "detect", detector="dlib")
    assert box.source == "not-found"


@needs_dlib
def test_on_missing_face_error_raises_naming_the_clip_and_counts_are_separate(tmp_path):
    cat, astronaut = clip(library_photo("chelsea"), "cat_clip"), clip(library_photo("astronaut"), "astro_clip")
    config = PreprocessConfig(flow="dis", size=16, face="detect", on_missing_face="error")
    with pytest.raises(FaceNotFoundError, match="cat_clip"):
        preprocess([astronaut, cat], config, cache=TensorCache(tmp_path), progress=False)
    with pytest.warns(UserWarning, match="cat_clip"):
        _, table = preprocess([astronaut, cat], replace(config, on_missing_face="full"), cache=TensorCache(tmp_path),
                              progress=False)
    assert table.attrs["face_counts"]["detected"] == 1 and table.attrs["face_counts"]["not-found"] == 1
    assert table.attrs["preprocess"]["face_detector_used"] == "dlib"
    assert list(table.face_source) == ["detected", "not-found"]


@needs_dlib
def test_aligned_crop_levels_the_eyes_on_a_rotated_photograph(images):
    image = images["grace_hopper rotated 10 deg"]
    box = face_box(clip(image.image, "rot"), "detect", detector="dlib")
    true_angle = np.degrees(np.arctan2(*(image.eyes[1] - image.eyes[0])[::-1]))  # about -12: photo tilt + 10
    assert box.source == "detected" and abs(box.angle - true_angle) < 2  # the rotation is undone
    left, right = box.to_crop(image.eyes)
    assert abs(left[1] - right[1]) < 0.05 * box.w  # eyes level in the crop
    assert abs((left[0] + right[0]) / 2 - box.w / 2) < 0.05 * box.w  # and centred
    crop = box.crop(image.image)
    assert crop.shape == (box.h, box.w, 3)


@needs_dlib
def test_median_reference_gives_one_crop_for_the_clip(images):
    record = clip(images["astronaut"].image, "still")
    onset = face_box(record, "detect", detector="dlib")
    median = face_box(record, "detect", detector="dlib", reference="median")
    assert median.as_tuple() == onset.as_tuple() and median.angle == pytest.approx(onset.angle)


def test_the_landmark_frame_puts_the_eyes_where_it_says():
    landmarks = np.array([[100.0, 200.0], [160.0, 230.0]])  # eye centres, right eye lower: head tilted
    box = aligned_box(landmarks, margin=0.1)
    left, right = box.to_crop(landmarks)
    assert left[1] == pytest.approx(right[1], abs=0.5)
    assert left[1] == pytest.approx(EYE_ROW * box.h, abs=1.0)
    assert box.w == round(SIDE_PER_EYE_DISTANCE * np.hypot(60, 30))
    # a face at the frame edge keeps its crop centred (borders replicated) instead of being pushed inside
    frame = np.zeros((240, 260, 3), np.uint8)
    assert box.x < 0 or box.x + box.w > frame.shape[1] or box.y < 0 or box.y + box.h > frame.shape[0]
    assert box.crop(frame).shape == (box.h, box.w, 3)


def test_haar_fallback_never_keeps_the_largest_box_blindly(images):
    # On the 2040x1088 frame with distractors the face is chosen by confidence and plausibility.
    image = images["grace_hopper in 2040x1088 with distractors"]
    found = detect_face(image.image, "haar")
    assert outcome(image, found) == "found"
    candidates = face_candidates(image.image, "haar")
    largest = max(candidates, key=lambda c: c.w * c.h)
    if outcome(image, largest) != "found":  # the old rule would have failed here
        assert select_face(candidates, image.image.shape) is not largest
    assert detect_face(images["blank grey"].image, "haar") is None


def test_non_uint8_frames_are_converted_or_refused_by_dtype():
    rgb = library_photo("grace_hopper")[:32, :32]
    assert (as_uint8_rgb(rgb.astype(np.float32) / 255) == rgb).all()
    assert (as_uint8_rgb(rgb.astype(np.float64)) == rgb).all()
    assert (as_uint8_rgb(rgb.astype(np.uint16) * 257) == rgb).all()
    assert as_uint8_rgb(rgb[..., 0]).shape == (32, 32, 3)
    with pytest.raises(TypeError, match="int32"):
        as_uint8_rgb(rgb.astype(np.int32))
    with pytest.raises(TypeError, match="bool"):
        as_uint8_rgb(rgb > 100)
    with pytest.raises(TypeError, match="float32"):
        as_uint8_rgb(rgb.astype(np.float32) * 10)


def test_photo_eyes_lie_on_the_photographs():
    for name, eyes in PHOTO_EYES.items():
        h, w = library_photo(name).shape[:2]
        assert all(0 < x < w and 0 < y < h for x, y in eyes)


def test_evaluation_table_counts_every_image_once(images):
    small = [images[n] for n in ("astronaut", "chelsea (cat)", "blank grey")]
    summary, per_image = evaluate_detectors(["haar"], small)
    row = summary.loc["haar"]
    assert row["found"] + row["missing"] + (per_image.outcome == "false positive").sum() - \
        (per_image[~per_image.face].outcome == "false positive").sum() == row["images with a face"]
    assert len(per_image) == 3 and row["ms per frame"] > 0


def test_apex_input_modes_have_their_channels(tmp_path):
    record = clip(library_photo("astronaut"), "astro")
    for mode, channels in (("apex_grey", 1), ("apex_rgb", 3), ("flow+apex_grey", 4)):
        config = PreprocessConfig(flow="dis", size=16, face="full", input=mode)
        x, _ = preprocess([record], config, cache=TensorCache(tmp_path), progress=False)
        assert x.shape == (1, channels, 16, 16) and np.isfinite(x).all()
    with pytest.raises(ValueError, match="apex_rgb"):
        PreprocessConfig(input="apex")


@needs_dlib
def test_registration_removes_a_head_shift_between_onset_and_apex(tmp_path):
    import cv2

    from convat.preprocess.pipeline import head_motion

    photo = library_photo("grace_hopper")
    shifted = cv2.warpAffine(photo, np.float64([[1, 0, 6], [0, 1, -4]]), photo.shape[1::-1],
                             borderMode=cv2.BORDER_REPLICATE)
    warp = head_motion(photo, shifted, "dlib")
    centre = np.array([265.0, 230.0])  # between the eyes and the mouth: the apex face maps back onto the onset
    assert warp is not None and np.allclose(warp[:, :2] @ centre + warp[:, 2] - centre, (-6, 4), atol=1.5)
    record = ClipRecord(dataset="photos", subject="p1", clip="moved", label="x", onset=0, apex=1, offset=1,
                        frames=_Pair(photo, shifted))
    config = PreprocessConfig(flow="dis", size=32, face="detect")
    x_raw, _ = preprocess([record], config, cache=TensorCache(tmp_path), progress=False)
    x_reg, table = preprocess([record], replace(config, register=True), cache=TensorCache(tmp_path), progress=False)
    assert table.registered[0]
    assert np.abs(x_reg[0, :2]).mean() < 0.5 * np.abs(x_raw[0, :2]).mean()  # head motion mostly gone


@dataclass(frozen=True)
class _Pair(FrameSource):
    first: np.ndarray
    second: np.ndarray

    def __len__(self):
        return 2

    def load(self, indices=None):
        frames = [self.first, self.second]
        return np.stack([frames[i] for i in (range(2) if indices is None else indices)])

    def fingerprint(self):
        return f"pair:{int(self.first.sum())}:{int(self.second.sum())}"


def test_padded_synthme_clips_are_scored_against_the_known_face_region():
    from convat.data.synth import generate
    from convat.preprocess.face_eval import padded_clip_outcomes

    records = generate("quick", n_subjects=1, clips_per_subject=3)
    counts = padded_clip_outcomes(records, ["haar"])
    assert counts.loc["haar"].sum() == 3 and list(counts.columns) == ["found", "false positive", "missing"]
    assert counts.loc["haar", "found"] >= 1  # the cascade finds some drawn faces, at the right place


def test_float_frames_give_the_same_tensor_as_uint8_and_signed_frames_are_refused(tmp_path):
    photo = library_photo("grace_hopper")
    config = PreprocessConfig(flow="dis", size=16, face="full")
    as_uint8, _ = preprocess([clip(photo, "u8")], config, cache=TensorCache(tmp_path), progress=False)
    as_float, _ = preprocess([clip(photo.astype(np.float32) / 255, "f32")], config, cache=TensorCache(tmp_path),
                             progress=False)
    assert np.allclose(as_uint8, as_float)
    with pytest.raises(TypeError, match="int16"):
        preprocess([clip(photo.astype(np.int16), "i16")], config, cache=TensorCache(tmp_path), progress=False)
