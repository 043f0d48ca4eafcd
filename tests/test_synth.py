import numpy as np
import pytest

from convat.data.synth import PROFILES, _warp, generate, render_neutral


def test_same_seed_same_frames_other_seed_other_frames():
    a = generate("quick", n_subjects=2, clips_per_subject=2, seed=3)
    b = generate("quick", n_subjects=2, clips_per_subject=2, seed=3)
    c = generate("quick", n_subjects=2, clips_per_subject=2, seed=4)
    assert [r.label for r in a] == [r.label for r in b]
    np.testing.assert_array_equal(a[0].frames.load(), b[0].frames.load())
    assert a[0].frames.fingerprint() == b[0].frames.fingerprint() != c[0].frames.fingerprint()
    assert not np.array_equal(a[0].frames.load([0]), c[0].frames.load([0]))


def test_motion_is_micro_and_local():
    for record in generate("quick", n_subjects=3, clips_per_subject=3):
        magnitude = np.linalg.norm(record.truth.au_flow, axis=-1)
        assert 0.2 < magnitude.max() < 5.0, record.key  # fractions of a pixel to a few pixels
        assert record.truth.mask.mean() < 0.35, record.key  # local to the AU regions
        # masks cover the motion: almost all of the displacement lies inside them
        inside = magnitude[record.truth.mask].sum() / magnitude.sum()
        assert inside > 0.8, record.key


def test_true_flow_explains_the_apex_frame():
    """Warping the neutral face by the true field reproduces the rendered apex up to sensor noise."""
    record = generate("quick", n_subjects=1, clips_per_subject=1, noise_std=0.0, illumination_drift=0.0,
                      blink_prob=0.0)[0]
    params = record.frames.params
    onset, apex = record.frames.load([record.onset, record.apex]).astype(np.float32)
    neutral = render_neutral(params.subject, params.size)
    # backward warp with the true forward flow, evaluated at the destination pixels
    moved = _warp(neutral, record.truth.flow)
    still = np.abs(neutral - apex)[8:-8, 8:-8].mean()
    explained = np.abs(moved - apex)[8:-8, 8:-8].mean()
    assert explained < 0.5 * still


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_profiles_have_composite_like_class_balance(profile):
    labels = [r.label for r in generate(profile)]
    shares = {c: labels.count(c) / len(labels) for c in set(labels)}
    assert shares["negative"] == pytest.approx(250 / 442, abs=0.03)
    assert shares["positive"] == pytest.approx(109 / 442, abs=0.03)
    assert shares["surprise"] == pytest.approx(83 / 442, abs=0.03)


def test_unknown_profile_names_the_choices():
    with pytest.raises(ValueError, match="composite"):
        generate("huge")
