"""Sanity checks of explanations: cascading randomisation, permuted labels, the verdict over folds."""

import numpy as np
import pandas as pd
import pytest
import timm
import torch

import convat.models  # noqa: F401  (registers the models with timm)
from convat.book import default_train
from convat.data.synth import generate
from convat.explain.controls import (
    CONTROLS,
    control_scores,
    parameter_groups,
    randomize_cascade,
    summarize_controls,
)
from convat.explain.describe import controls_headline, describe_controls
from convat.explain.fold import fold_model, permuted_labels
from convat.preprocess.pipeline import PreprocessConfig, preprocess


def _tiny(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return timm.create_model("convat_tiny", num_classes=3, in_chans=3, img_size=16).eval()


def test_parameter_groups_run_from_stem_to_head():
    groups = parameter_groups(_tiny(0))
    assert groups[:2] == ["stem", "(embeddings)"] and groups[-1] == "head"
    assert groups.index("bottleneck") < groups.index("blocks") < groups.index("head")


def test_cascade_replaces_groups_from_the_head_down_and_leaves_the_model_alone():
    trained = _tiny(0)
    trained(torch.zeros(2, 3, 16, 16))  # a forward pass leaves graph tensors on the model: must not matter
    before = {k: v.clone() for k, v in trained.state_dict().items()}
    fresh_state = {k: v.clone() for k, v in _tiny(1).state_dict().items()}
    top = randomize_cascade(trained, _tiny(1), depth=1)
    for key, value in top.state_dict().items():
        source = fresh_state if key.startswith("head.") else before
        torch.testing.assert_close(value, source[key], rtol=0, atol=0)
    two = randomize_cascade(trained, _tiny(1), depth=len(parameter_groups(trained)) - 1)
    torch.testing.assert_close(two.state_dict()["stem.proj.weight"], before["stem.proj.weight"], rtol=0, atol=0)
    torch.testing.assert_close(two.state_dict()["pos_embed"], fresh_state["pos_embed"], rtol=0, atol=0)
    full = randomize_cascade(trained, _tiny(1))
    for key, value in full.state_dict().items():
        torch.testing.assert_close(value, fresh_state[key], rtol=0, atol=0)
    for key, value in trained.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
    with pytest.raises(ValueError, match="depth"):
        randomize_cascade(trained, _tiny(1), depth=99)
    other = timm.create_model("ststnet", num_classes=3, in_chans=3)
    with pytest.raises(ValueError, match="architecture"):
        randomize_cascade(trained, other)


def test_permuted_labels_shuffle_only_the_chosen_rows_and_keep_class_counts():
    y = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 1])
    rows = np.array([True] * 8 + [False] * 2)
    out = permuted_labels(y, rows, seed=3)
    assert np.array_equal(out[~rows], y[~rows])
    assert np.array_equal(np.bincount(out[rows], minlength=3), np.bincount(y[rows], minlength=3))
    assert not np.array_equal(out, y)
    assert np.array_equal(permuted_labels(y, rows, seed=3), out)


def _scores(gap_randomised: float, gap_permuted: float, folds: int = 8, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for f in range(folds):
        base = 0.2 + 0.02 * rng.standard_normal()
        values = {"trained": base + max(gap_randomised, gap_permuted), "randomised": base + max(
            gap_randomised, gap_permuted) - gap_randomised, "permuted": base + max(gap_randomised, gap_permuted)
            - gap_permuted}
        for control in CONTROLS:
            rows.append({"fold": f"s{f}", "control": control, "method": "saliency",
                         "mass_in_mask": values[control] + 0.005 * rng.standard_normal(), "pointing_game": 0.5,
                         "area_share": 0.1, "n": 10})
    return pd.DataFrame(rows)


def test_verdict_needs_both_controls_beaten():
    assert summarize_controls(_scores(0.1, 0.1)).loc["saliency", "faithful"]
    assert not summarize_controls(_scores(0.1, 0.0)).loc["saliency", "faithful"]
    assert not summarize_controls(_scores(0.0, 0.1)).loc["saliency", "faithful"]
    summary = summarize_controls(_scores(0.1, 0.05))
    assert summary.loc["saliency", "vs_randomised"] == pytest.approx(0.1, abs=0.01)
    assert summary.loc["saliency", "vs_permuted_lo"] < 0.05 < summary.loc["saliency", "vs_permuted_hi"]
    assert summary.loc["saliency", "random"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="permuted"):
        summarize_controls(_scores(0.1, 0.1).query("control != 'permuted'"))


def test_description_follows_the_verdict():
    good = describe_controls(summarize_controls(_scores(0.1, 0.1)), "m")
    assert "1 of 1 methods pass both" in good and "*saliency*" in good
    # passing says the map depends on what was learned; where it points is the share on the true regions
    assert "Only these depend on what the model learned" in good and "may be read as showing" not in good
    bad = describe_controls(summarize_controls(_scores(0.0, 0.1)), "m")
    assert "no method passes" in bad and "does not separate from the randomised" in bad


def test_headline_names_the_passing_pairs_or_says_none_pass():
    good, bad = summarize_controls(_scores(0.1, 0.1)), summarize_controls(_scores(0.0, 0.1))
    assert "none of the 2 explanation maps" in controls_headline({"a": bad, "b": bad})
    line = controls_headline({"a": bad, "b": good})
    assert "1 of the 2" in line and "*saliency* on b" in line and "on a." not in line and "on a," not in line


def test_control_scores_over_folds_on_synthme(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVAT_CACHE", str(tmp_path))
    records = generate("quick", n_subjects=3, clips_per_subject=6, size=48)
    pre = PreprocessConfig(flow="dis", size=16)
    x, table = preprocess(records, pre, progress=False)
    config = default_train("convat_tiny", epochs=2)
    trained = fold_model(x, table, "synthme/s01", config)
    permuted = fold_model(x, table, "synthme/s01", config, permute_labels=1)
    assert np.array_equal(trained.y_test, permuted.y_test)  # the held-out truth is never permuted
    assert any(not torch.equal(a, b) for a, b in zip(trained.model.state_dict().values(),
                                                     permuted.model.state_dict().values(), strict=True))
    scores = control_scores(x, table, records, pre, config, folds=["synthme/s01", "synthme/s02"],
                            methods=["saliency"])
    assert set(scores["control"]) == set(CONTROLS)
    assert set(scores["method"]) == {"saliency", "rollout"}
    assert len(scores) == 2 * 3 * 2 and scores["mass_in_mask"].between(0, 1).all()
    assert (scores.groupby("fold")["n"].first() == 6).all()
    summary = summarize_controls(scores, n_boot=50)
    assert list(summary.columns[:4]) == [*CONTROLS, "random"] and (summary["folds"] == 2).all()


def test_the_chapter_headline_marks_one_seed_only_when_seed_verdicts_follow():
    from convat.experiments.controls import chapter_headline

    summaries = {"a": summarize_controls(_scores(0.1, 0.1))}
    alone = chapter_headline(summaries, [], 3)
    assert alone == "> On training seed 3 (one seed): " + controls_headline(summaries) + (
        " No verdict over training seeds is available for this computation (`make controls`).")
    both = chapter_headline(summaries, ["a: *saliency* passes on 5 of 5 seeds."], 3)
    assert both.startswith("> On training seed 3 (one seed): **Sanity check: 1 of the 1")
    assert both.endswith("section *Over training seeds* below): a: *saliency* passes on 5 of 5 seeds.")
