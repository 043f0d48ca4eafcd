"""Explanations of a model trained on SynthME point at the true AU regions more than chance does."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from convat.book import default_train
from convat.data.synth import generate
from convat.explain import apex_frames, explain_maps, faithfulness_table, fold_model, truth_masks
from convat.explain.plots import plot_deletion, plot_gallery
from convat.metrics import subject_key
from convat.preprocess.pipeline import PreprocessConfig, preprocess

FOLD = "synthme/s01"


@pytest.fixture(scope="module")
def trained():
    # Clean SynthME (no head motion, no blinks, textbook style, larger AUs) so that a model trained on 20
    # clips for a few seconds learns the task; what is tested is the explanation machinery, not the data.
    records = generate("quick", n_subjects=3, clips_per_subject=10, size=64, style_strength=0.0, head_motion=0.0,
                       head_rotation=0.0, blink_prob=0.0, amplitude=2.0)
    pre = PreprocessConfig(flow="dis", size=32)
    x, table = preprocess(records, pre, progress=False)
    fm = fold_model(x, table, FOLD, default_train("convat_tiny", epochs=25))
    held_out = [records[i] for i in fm.test_index]
    return records, x, table, pre, fm, held_out


def test_fold_model_holds_out_exactly_the_subject_and_is_cached(trained, monkeypatch):
    import convat.explain.fold

    records, x, table, pre, fm, held_out = trained
    assert {r.subject for r in held_out} == {"s01"}
    assert len(fm.test_index) == (subject_key(table) == FOLD).sum()

    def no_training(*a, **k):
        raise AssertionError("trained again instead of loading the cached weights")

    with monkeypatch.context() as patch:
        patch.setattr(convat.explain.fold, "train_model", no_training)
        again = fold_model(x, table, FOLD, default_train("convat_tiny", epochs=25))  # from the weight cache
    a = explain_maps(fm.model, fm.x_test, fm.y_test, methods=["saliency"], with_rollout=False)["saliency"]
    b = explain_maps(again.model, again.x_test, again.y_test, methods=["saliency"], with_rollout=False)["saliency"]
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="s01"):
        fold_model(x, table, "synthme/nobody", default_train("convat_tiny", epochs=1))


def test_best_method_points_at_the_true_au_regions_more_than_random(trained):
    records, x, table, pre, fm, held_out = trained
    masks = truth_masks(held_out, pre)
    assert masks.shape == (len(held_out), 32, 32) and masks.any(axis=(1, 2)).all()
    maps = explain_maps(fm.model, fm.x_test, fm.y_test, ig_steps=8, nt_samples=4)
    scores = faithfulness_table(maps, masks)
    best = scores.drop(index="random")["mass_in_mask"].max()
    assert best > 1.5 * scores.loc["random", "mass_in_mask"], scores
    assert best > scores.loc["random", "mass_in_mask"] + 0.05, scores


def test_gallery_and_deletion_plots(trained):
    records, x, table, pre, fm, held_out = trained
    apex = apex_frames(held_out[:2], pre)
    assert apex.shape == (2, 32, 32, 3) and 0 <= apex.min() and apex.max() <= 1
    maps = explain_maps(fm.model, fm.x_test[:2], fm.y_test[:2], methods=["saliency", "gradcam"])
    for background in ("apex", "flow"):
        fig = plot_gallery(apex, fm.x_test[:2], maps, truth_masks(held_out[:2], pre), background=background)
        assert len(fig.axes) == 2 * (2 + len(maps))
        plt.close(fig)
    import pandas as pd

    curves = pd.DataFrame({"method": ["a", "a", "random", "random"], "fraction": [0, 1, 0, 1],
                           "probability": [0.9, 0.1, 0.9, 0.5]})
    plt.close(plot_deletion(curves).figure)
