"""Protocol pitfalls: what must hold by construction, on a small SynthME run and on hand-made tables."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from convat.data.synth import generate
from convat.experiments import pitfalls
from convat.loso import cached_run, loso_splits, random_splits, run_loso
from convat.metrics import subject_key
from convat.preprocess.pipeline import PreprocessConfig, preprocess
from convat.training.loop import TrainConfig

FAST = TrainConfig(epochs=4, batch_size=16, lr=3e-3)


@pytest.fixture(scope="module")
def data():
    records = generate("quick", n_subjects=4, clips_per_subject=6)
    return preprocess(records, PreprocessConfig(flow="dis", size=32), progress=False)


@pytest.fixture(scope="module")
def traced(data, tmp_path_factory):
    """One epoch trace and its cache folder (the cache key ignores source edits made while the tests run)."""
    x, table = data
    root = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("convat.runstore.code_fingerprint", lambda *a: "frozen")
        return pitfalls.epoch_trace(x, table, FAST, inner_fraction=0.34, cache_dir=root), root


@pytest.fixture(scope="module")
def trace(traced):
    return traced[0]


# -- epoch selection -------------------------------------------------------------------------------------------


def test_trace_records_every_epoch_for_every_test_clip_and_keeps_the_test_subject_out_of_validation(data, trace):
    x, table = data
    test = trace[trace.role == "test"]
    assert len(test) == len(table) * FAST.epochs
    assert sorted(test.epoch.unique()) == list(range(1, FAST.epochs + 1))
    val = trace[trace.role == "val"]
    assert len(val) > 0
    assert not (val.dataset + "/" + val.subject == val.fold).any()


def test_best_epoch_on_test_never_scores_below_the_fixed_budget(trace):
    fixed = pitfalls.selected_predictions(trace, "fixed")
    best = pitfalls.selected_predictions(trace, "best-on-test")
    assert len(fixed) == len(best) == trace[trace.role == "test"].groupby("fold").clip.nunique().sum()
    for fold in fixed.fold.unique():
        f, b = fixed[fixed.fold == fold], best[best.fold == fold]
        assert (b.label == b.prediction).sum() >= (f.label == f.prediction).sum()
    table = pitfalls.compare_epoch_selection(trace)
    names = pitfalls.SELECTION_RULES
    assert table.loc[names["best-on-test"], "accuracy"] >= table.loc[names["fixed"], "accuracy"]
    assert table.loc[names["fixed"], "mean epoch kept"] == FAST.epochs


def test_inner_validation_choice_ignores_the_test_clips(trace):
    chosen = pitfalls.select_epochs(trace, "inner-val")
    scrambled = trace.copy()
    test = scrambled.role == "test"
    scrambled.loc[test, "prediction"] = np.random.default_rng(1).permutation(scrambled.loc[test, "prediction"].values)
    assert pitfalls.select_epochs(scrambled, "inner-val") == chosen


def test_selection_rules_on_a_hand_made_trace():
    rows = []
    # fold A: test right at epoch 2 only; validation best at epoch 1. fold B: test right at epochs 1 and 3 (tie).
    for fold, test_right, val_right in (("d/A", {2}, {1}), ("d/B", {1, 3}, {3})):
        for epoch in (1, 2, 3):
            rows.append({"fold": fold, "epoch": epoch, "role": "test", "label": "x",
                         "prediction": "x" if epoch in test_right else "y", "clip": "t"})
            rows.append({"fold": fold, "epoch": epoch, "role": "val", "label": "x",
                         "prediction": "x" if epoch in val_right else "y", "clip": "v"})
    trace = pd.DataFrame(rows)
    assert pitfalls.select_epochs(trace, "fixed") == {"d/A": 3, "d/B": 3}
    assert pitfalls.select_epochs(trace, "best-on-test") == {"d/A": 2, "d/B": 3}
    assert pitfalls.select_epochs(trace, "inner-val") == {"d/A": 1, "d/B": 3}
    with pytest.raises(ValueError, match="best-on-test"):
        pitfalls.select_epochs(trace, "oracle")


def test_epoch_trace_resumes_from_its_cache(data, traced, monkeypatch):
    x, table = data
    trace, root = traced
    monkeypatch.setattr("convat.runstore.code_fingerprint", lambda *a: "frozen")
    monkeypatch.setattr(pitfalls, "_trace_fold", lambda *a, **k: (_ for _ in ()).throw(AssertionError("retrained")))
    pd.testing.assert_frame_equal(pitfalls.epoch_trace(x, table, FAST, inner_fraction=0.34, cache_dir=root), trace)


def test_parallel_epoch_trace_is_the_sequential_trace(data, tmp_path, monkeypatch):
    """Two pool workers (1 thread each) trace the folds a 1-thread sequential trace traces, to the last bit of
    every recorded likelihood, and the run folder is the same run (a sequential call reads it back)."""
    import torch

    x, table = data
    monkeypatch.setattr("convat.runstore.code_fingerprint", lambda *a: "frozen")
    parallel = pitfalls.epoch_trace(x, table, FAST, inner_fraction=0.34, cache_dir=tmp_path / "p", parallel_folds=2)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sequential = pitfalls.epoch_trace(x, table, FAST, inner_fraction=0.34, cache=False)
    finally:
        torch.set_num_threads(before)
    pd.testing.assert_frame_equal(parallel, sequential)
    monkeypatch.setattr(pitfalls, "_trace_fold", lambda *a, **k: (_ for _ in ()).throw(AssertionError("retrained")))
    pd.testing.assert_frame_equal(pitfalls.epoch_trace(x, table, FAST, inner_fraction=0.34,
                                                       cache_dir=tmp_path / "p"), parallel)
    with pytest.raises(ValueError, match="parallel_folds"):
        pitfalls.epoch_trace(x, table, FAST, parallel_folds=0, cache=False)


def test_inner_validation_rule_reproduces_the_engines_inner_validation_run(data, trace):
    x, table = data
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("convat.runstore.code_fingerprint", lambda *a: "frozen")
        engine = run_loso(x, table, replace(FAST, val_fraction=0.34), progress=False)
    ours = pitfalls.selected_predictions(trace, "inner-val")
    merged = engine.merge(ours, on=["dataset", "subject", "clip"], suffixes=("_engine", "_trace"))
    assert len(merged) == len(table)
    assert (merged.prediction_engine == merged.prediction_trace).all()


# -- random split against LOSO ---------------------------------------------------------------------------------


def test_random_split_puts_test_subjects_in_training_and_loso_never_does(data, tmp_path):
    x, table = data
    assert pitfalls.subject_overlap(table, loso_splits(table)) == 0.0
    assert pitfalls.subject_overlap(table, random_splits(table, 3, 0)) == 1.0
    config = TrainConfig(epochs=1, batch_size=16)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("convat.runstore.code_fingerprint", lambda *a: "frozen")
        result = pitfalls.random_vs_loso(x, table, config, k=3, cache_dir=tmp_path)
        assert list(result.index) == ["LOSO", "random 3-fold"]
        assert result.loc["LOSO", "folds"] == subject_key(table).nunique()
        assert result[["UF1", "UAR", "accuracy"]].stack().between(0, 1).all()
        # the LOSO run is the one the LOSO chapter asks for (default folds): served from the cache, not retrained
        patch.setattr("convat.loso.fit_fold", lambda *a, **k: (_ for _ in ()).throw(AssertionError("retrained")))
        shared = cached_run(x, table, config, progress=False, cache_dir=tmp_path).predictions
    assert pitfalls.scores(shared)["UF1"] == result.loc["LOSO", "UF1"]


def test_without_a_cache_folder_the_loso_run_is_asked_of_the_committed_grid_first(data, tmp_path, monkeypatch):
    """Chapter 8 run on its own gets the LOSO run as chapters 4-6 do: served where the grid holds exactly it."""
    import convat.experiments.study as study

    x, table = data
    config = TrainConfig(epochs=1, batch_size=16)
    monkeypatch.setenv("CONVAT_CACHE", str(tmp_path))
    asked = []

    def bundled(*args, **kwargs):
        asked.append(kwargs.get("parallel_folds"))
        return cached_run(*args, **kwargs)

    monkeypatch.setattr(study, "bundled_run", bundled)
    runs = pitfalls.protocol_runs(x, table, config, k=3, parallel_folds=1)
    assert asked == [1] and list(runs) == ["LOSO", "random 3-fold"]
    assert all(run.path.parent == tmp_path / "runs" for _, run in runs.values())  # the runs, for the page's note


# -- pooled against per-fold, accuracy against macro scores -----------------------------------------------------


def test_linear_protocols_report_the_fit_and_the_gap(data):
    x, table = data
    out = pitfalls.linear_protocols(x, table, k=2, seed=0)
    assert list(out.index) == ["LOSO", "random 2-fold"] and out["training accuracy"].between(0, 1).all()
    assert out.loc["LOSO", "test clips whose subject was trained on"] == 0
    text = pitfalls.describe_fitted_gap(out, "random 2-fold")
    gap = out.loc["random 2-fold", "UF1"] - out.loc["LOSO", "UF1"]
    assert f"({gap:+.3f})" in text and "training clips" in text
    made = pd.DataFrame({"UF1": [0.5, 0.7], "training accuracy": [0.95, 0.96]}, index=["LOSO", "random 5-fold"])
    assert pitfalls.describe_fitted_gap(made, "random 5-fold") == (
        "The logistic regression fits its training clips (accuracy 0.95); it scores 0.200 UF1 higher under the "
        "random split than under LOSO (+0.200).")
    made["training accuracy"] = 0.5
    assert "does **not** fit" in pitfalls.describe_fitted_gap(made, "random 5-fold")


def test_per_fold_mean_differs_from_pooled_when_folds_hold_few_classes():
    # fold 1: one class only, all right -> per-fold UF1 1.0; fold 2: two classes, all wrong.
    predictions = pd.DataFrame({
        "fold": ["1", "1", "2", "2"],
        "label": ["a", "a", "a", "b"],
        "prediction": ["a", "a", "b", "a"],
    })
    table = pitfalls.pooled_vs_fold_mean(predictions)
    assert table.loc["mean of per-fold scores", "UF1"] == pytest.approx(0.5)
    assert table.loc["pooled over all folds (MEGC)", "UF1"] == pytest.approx((2 / 3 + 0.0) / 2)
    assert table.loc["pooled over all folds (MEGC)", "accuracy"] == pytest.approx(0.5)


def test_majority_class_has_the_majority_share_as_accuracy_and_chance_uar():
    labels = ["neg"] * 6 + ["pos"] * 3 + ["sur"] * 1
    predictions = pd.DataFrame({"label": labels, "prediction": labels})
    table = pitfalls.accuracy_vs_macro(predictions)
    majority = table.loc["always the majority class"]
    assert majority["accuracy"] == pytest.approx(0.6)
    assert majority["UAR"] == pytest.approx(1 / 3)
    assert majority["UF1"] == pytest.approx((2 * 0.6 / 1.6) / 3)
    assert table.loc["model", "UF1"] == 1.0


# -- the UAR / precision mix-up --------------------------------------------------------------------------------


def test_ststnet_published_uar_is_macro_precision():
    predictions = pitfalls.published_predictions()
    assert len(predictions) == 442 and predictions.fold.nunique() == 68
    table = pitfalls.metric_mixup(predictions)
    row = table.loc["all"]
    assert round(row["UF1"], 4) == pitfalls.STSTNET_PUBLISHED["UF1"] == 0.7353
    assert round(row["UAR (macro recall)"], 4) == 0.7186
    assert round(row["macro precision"], 4) == pitfalls.STSTNET_PUBLISHED["UAR"] == 0.7605
    assert round(table.loc["casme2", "UF1"], 4) == 0.8382
    assert list(table.n) == [442, 145, 133, 164]
    text = pitfalls.describe_metric_mixup(table)
    assert 'Published: UF1 0.7353, "UAR" 0.7605. Recomputed from the published predictions: UF1 0.7353, UAR 0.7186' \
        in text and 'is the **macro precision**; the true UAR is 0.0419 lower.' in text
    # a published UAR that is the macro recall is named as such
    honest = pitfalls.describe_metric_mixup(table, {"UF1": 0.7353, "UAR": 0.7186})
    assert honest.endswith('The published "UAR" is the true UAR (macro recall).')
    for value in (0.7187, 0.95):  # close to neither column: no mix-up is claimed
        text = pitfalls.describe_metric_mixup(table, {"UF1": 0.7353, "UAR": value})
        assert 'is neither' in text and "mixes" not in text


# -- reachable accuracies --------------------------------------------------------------------------------------


def test_reachable_fraction_arithmetic():
    assert pitfalls.reachable_counts(4, 75.0) == [3]
    assert pitfalls.reachable_counts(3, 66.67) == [2]
    assert pitfalls.reachable_counts(3, 66.66) == []
    assert pitfalls.reachable_counts(3, 66.66, rounding="truncate") == [2]
    assert pitfalls.reachable_counts(255, 97.65) == [249]
    for n, claim in ((164, 97.95), (246, 97.65), (159, 98.73), (133, 98.73)):
        assert pitfalls.reachable_counts(n, claim) == []
        assert pitfalls.reachable_counts(n, claim, rounding="truncate") == []
    assert pitfalls.nearest_fractions(164, 97.95) == (160, 161)
    n = pitfalls.smallest_denominator(97.95)
    assert pitfalls.reachable_counts(n, 97.95) and all(not pitfalls.reachable_counts(m, 97.95) for m in range(1, n))
    with pytest.raises(ValueError, match="truncate"):
        pitfalls.reachable_counts(10, 50.0, rounding="bankers")


def test_reachability_table_flags_only_casme_ii_255():
    table = pitfalls.reachability_table()
    assert len(table) == 6  # SAMM: 159 micro-expressions, 136 in 5-class, 133 in the composite
    reachable = table[table["can be a pooled accuracy"]]
    assert list(reachable["clips n"]) == [255]
    assert reachable["k/n that round to it"].item() == "249/255"
    assert pitfalls.describe_reachability(table) == (
        "On these evaluation sets, the reported accuracy for SMIC and SAMM cannot be a pooled accuracy; the one for "
        "CASME II can be, on CASME II, all clips (255 clips) but not on CASME II, 5 classes (246 clips).")


def test_reachability_sentence_when_every_or_no_accuracy_is_reachable():
    table = pd.DataFrame({"dataset": ["A", "A", "B"], "can be a pooled accuracy": [False, True, True]})
    assert pitfalls.describe_reachability(table) == (
        "Every reported accuracy is reachable on at least one evaluation set.")
    none = table.assign(**{"can be a pooled accuracy": False})
    assert pitfalls.describe_reachability(none) == (
        "On these evaluation sets, the reported accuracy for A and B cannot be a pooled accuracy.")
    two = pd.DataFrame({"dataset": ["A", "B", "C"], "can be a pooled accuracy": [False, True, True]})
    assert pitfalls.describe_reachability(two).endswith("; the ones for B and C can be.")
    assert pitfalls.describe_reachability(table.iloc[:0]) == "No reported accuracy to check."


def test_composite_comparison_appends_our_rows():
    table = pitfalls.composite_comparison({"ours": {"UF1": 0.5, "UAR": 0.4, "protocol": "LOSO"}}, "SynthME")
    assert list(table.index[:3]) == ["STSTNet", "HTNet", "CausalNet"]
    assert table.loc["ours", "source"] == "this implementation"
    assert table.columns[0] == "data" and table.loc["ours", "data"] == "SynthME"  # every row says its data
    assert (table.loc[["STSTNet", "HTNet", "CausalNet"], "data"] == pitfalls.COMPOSITE_DATA).all()
    assert table.loc["HTNet", "UF1"] == 0.8603
    assert table.loc["CausalNet", "UAR"] == 0.9020  # published: UF1 .8976, UAR .9020 (ICCV 2025)
    assert pitfalls.PUBLISHED_COMPOSITE[["UF1", "UAR"]].notna().all().all()


def test_the_protocol_gap_is_called_only_beyond_the_seed_spread():
    protocols = pd.DataFrame({"UF1": [0.50, 0.55], "test clips whose subject was trained on": [0.0, 0.8]},
                             index=["LOSO", "random 5-fold"])
    text = pitfalls.describe_protocol_gap(protocols, "random 5-fold", "SynthME")
    assert text.startswith("In the random split, 80% of the test clips come from a subject the model was trained")
    assert "0.050 UF1 *higher* than LOSO, more than the 0.02 that one small run" in text
    # the same gap within what the training seed alone does is no finding
    text = pitfalls.describe_protocol_gap(protocols, "random 5-fold", "SynthME", seed_sd=0.04)
    assert "about the same UF1 as LOSO (+0.050, within the 0.057 by which the training seed alone moves a " \
        "difference of two runs (√2 × this model's seed SD of 0.040))" in text  # 0.05 > 0.04 but < √2 × 0.04
    protocols.loc["random 5-fold", "UF1"] = 0.40
    text = pitfalls.describe_protocol_gap(protocols, "random 5-fold", "SynthME", seed_sd=0.067)
    assert "0.100 UF1 *lower* than LOSO on this run, more than the 0.095 by which" in text


def test_the_measured_seed_sd_comes_from_the_bundle_made_on_that_data():
    from convat.experiments.study import default_bundle, load_study, measured_seed_sd, study_table

    if not (default_bundle("study-quick") / "bundle.json").exists():
        pytest.skip("no committed smoke-test grid (an installed wheel)")
    expected = study_table(load_study(default_bundle("study-quick"))).loc["convat_tiny", "UF1_seed_sd"]
    assert measured_seed_sd("convat_tiny", "synthme", "quick") == pytest.approx(expected) and expected > 0
    assert measured_seed_sd("linear", "synthme", "quick") is None  # deterministic: no seed spread
    assert measured_seed_sd("no_such_model", "synthme", "quick") is None
    assert measured_seed_sd("convat_tiny", "casme2", "composite") is None  # no bundle on that data
    from convat.recipe import RECIPE, Budget

    made = RECIPE.budget("synthme", "quick")
    assert measured_seed_sd("convat_tiny", "synthme", "quick", made, 64, "tvl1") == pytest.approx(expected)
    assert measured_seed_sd("convat_tiny", "synthme", "quick", Budget(epochs=5)) is None  # another recipe
    assert measured_seed_sd("convat_tiny", "synthme", "quick", img_size=32) is None
    assert measured_seed_sd("convat_tiny", "synthme", "quick", flow="dis") is None


def test_our_rows_compare_with_the_published_ones_only_on_the_composite():
    assert pitfalls.describe_comparability("synthme").startswith(
        "**The ConVAT rows above are not comparable with the published rows.** They come from SynthME")
    composite = pitfalls.describe_comparability("megc2019")
    assert "the data of the published rows" in composite and "each is one training seed" in composite
    other = pitfalls.describe_comparability("casme2_5class")
    assert "`casme2_5class`, not from the MEGC2019 composite: they are **not** comparable" in other
