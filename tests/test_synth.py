from dataclasses import replace

import cv2
import numpy as np
import pytest

from convat.data.synth import (
    LABEL_SCHEMES,
    PROFILES,
    SynthFrames,
    clip_truth,
    composite_counts,
    generate,
    render_neutral,
)
from convat.data.synth.render import _warp


def test_same_seed_same_frames_other_seed_other_frames():
    a = generate("quick", n_subjects=2, clips_per_subject=2, seed=3)
    b = generate("quick", n_subjects=2, clips_per_subject=2, seed=3)
    c = generate("quick", n_subjects=2, clips_per_subject=2, seed=4)
    assert [r.label for r in a] == [r.label for r in b]
    np.testing.assert_array_equal(a[0].frames.load(), b[0].frames.load())
    assert a[0].frames.fingerprint() == b[0].frames.fingerprint() != c[0].frames.fingerprint()
    assert not np.array_equal(a[0].frames.load([0]), c[0].frames.load([0]))


def test_loading_some_frames_equals_slicing_all_frames():
    record = generate("quick", n_subjects=1, clips_per_subject=1, seed=5)[0]
    every = record.frames.load()
    assert every.shape == (record.n_frames, 128, 128, 3) and every.dtype == np.uint8
    np.testing.assert_array_equal(record.frames.load([record.apex, record.onset]), every[[record.apex, record.onset]])
    with pytest.raises(IndexError, match="outside"):
        record.frames.load([record.n_frames])


def test_motion_is_micro_and_local():
    for record in generate("quick", n_subjects=3, clips_per_subject=3):
        magnitude = np.linalg.norm(record.truth.au_flow, axis=-1)
        assert 0.1 < magnitude.max() < 4.0, record.key  # fractions of a pixel to a few pixels
        assert record.truth.mask.mean() < 0.35, record.key  # local to the AU regions
        # masks cover the motion: almost all of the displacement lies inside them
        inside = magnitude[record.truth.mask].sum() / magnitude.sum()
        assert inside > 0.8, record.key


def _apex_explained(frames: SynthFrames, flow: np.ndarray) -> tuple[float, float]:
    """Mean |apex(x + f(x)) - onset(x)| with the flow f, and the same without motion compensation."""
    p = frames.params
    onset, apex = frames.load([p.onset, p.apex]).astype(np.float32)
    ys, xs = np.mgrid[0 : flow.shape[0], 0 : flow.shape[1]].astype(np.float32)
    back = cv2.remap(apex, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT101)
    inner = (slice(8, -8), slice(8, -8))
    return float(np.abs(back - onset)[inner].mean()), float(np.abs(apex - onset)[inner].mean())


def test_true_flow_explains_the_apex_frame():
    """Warping the neutral face by the true field reproduces the rendered apex up to sensor noise."""
    record = generate("quick", n_subjects=1, clips_per_subject=1, noise_std=0.0, illumination_drift=0.0,
                      blink_prob=0.0)[0]
    params = record.frames.params
    apex = record.frames.load([record.apex])[0].astype(np.float32)
    neutral = render_neutral(params.subject, params.size)
    moved = _warp(neutral, record.truth.flow)
    still = np.abs(neutral - apex)[8:-8, 8:-8].mean()
    explained = np.abs(moved - apex)[8:-8, 8:-8].mean()
    assert explained < 0.5 * still


def test_true_flow_includes_head_motion_and_blinks():
    """With every nuisance on and a blink at the apex, the true flow still maps the onset onto the apex."""
    records = generate("quick", n_subjects=2, clips_per_subject=2, noise_std=0.0, illumination_drift=0.0,
                       head_motion=1.0, seed=2)
    for record in records:
        params = replace(record.frames.params, blink_frame=record.apex)
        truth = clip_truth(params)
        explained, still = _apex_explained(SynthFrames(params), truth.flow)
        assert explained < 0.25 * still, record.key
        # the blink and the head add motion that the expression-only field leaves out
        assert np.abs(truth.flow - truth.au_flow).max() > 1.0, record.key
        explained_au, _ = _apex_explained(SynthFrames(params), truth.au_flow)
        assert explained < 0.5 * explained_au, record.key


def test_composite_profile_has_the_composite_shape_exactly():
    records = generate("composite")
    labels = [r.label for r in records]
    assert len(records) == 442
    assert len({r.subject for r in records}) == 68
    assert {c: labels.count(c) for c in set(labels)} == {"negative": 250, "positive": 109, "surprise": 83}
    per_subject = sorted(
        (sum(r.subject == s for r in records) for s in {r.subject for r in records}), reverse=True
    )
    assert per_subject == sorted((sum(t.values()) for t in composite_counts()), reverse=True)
    assert per_subject[0] >= 10 * per_subject[-1]  # uneven, like the real data
    assert all(r.extra["cropped"] for r in records)


def test_quick_profile_has_composite_like_class_balance_and_skewed_subjects():
    records = generate("quick")
    labels = [r.label for r in records]
    shares = {c: labels.count(c) / len(labels) for c in set(labels)}
    assert shares["negative"] == pytest.approx(250 / 442, abs=0.03)
    assert shares["positive"] == pytest.approx(109 / 442, abs=0.03)
    assert shares["surprise"] == pytest.approx(83 / 442, abs=0.03)
    mixes = {s: sum(r.label == "negative" for r in records if r.subject == s) for s in {r.subject for r in records}}
    assert max(mixes.values()) - min(mixes.values()) >= 3  # subjects differ in their class mix


def test_five_class_scheme_is_casme2_style():
    records = generate("composite", label_scheme="5class")
    assert {r.label for r in records} == set(LABEL_SCHEMES["5class"].values())
    assert sum(r.label in ("disgust", "repression", "others") for r in records) == 250
    for r in records:
        assert LABEL_SCHEMES["megc3"][r.emotion] == {"happiness": "positive", "surprise": "surprise"}.get(
            r.label, "negative"
        )


def test_subjects_differ_in_identity_and_style():
    records = generate("quick", n_subjects=2, clips_per_subject=1)
    a, b = (r.frames.params.subject for r in records)
    assert np.abs(render_neutral(a, 64) - render_neutral(b, 64)).mean() > 5
    assert a.preferred != b.preferred or a.companions != b.companions or a.au_shift != b.au_shift
    flat = generate("quick", n_subjects=2, clips_per_subject=1, style_strength=0.0)
    assert all(shift == (0.0, 0.0) for shift in flat[0].frames.params.subject.au_shift.values())


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_profiles_generate_fast(profile):
    import time

    start = time.perf_counter()
    generate(profile)
    assert time.perf_counter() - start < 5


def test_bad_options_name_the_choices():
    with pytest.raises(ValueError, match="composite"):
        generate("huge")
    with pytest.raises(ValueError, match="megc3"):
        generate("quick", label_scheme="seven")
    with pytest.raises(TypeError, match="amplitude"):
        generate("quick", amplitud=2.0)
    with pytest.raises(ValueError, match="uniform"):
        generate("quick", counts="lots")
