"""Reference rows: majority, identity only, true AU set -- on hand-made tables where the answer is known."""

import numpy as np
import pandas as pd
import pytest

from convat.experiments.references import (
    AU_SET,
    CHANCE,
    IDENTITY,
    LINEAR,
    MAJORITY,
    au_features,
    au_set_baseline,
    describe_subject_leaders,
    generalisation_gap_lines,
    highest_network,
    identity_baseline,
    majority_baseline,
    paired_comparisons,
    ranking_verdict,
    reference_runs,
)
from convat.loso import loso_splits, random_splits
from convat.metrics import summarize
from convat.training.fit import FIT_COLUMNS


def _table() -> pd.DataFrame:
    # Three subjects; each subject always shows the same label (so identity is a perfect cue within a subject),
    # and the AU set decides the label exactly.
    rows = []
    for subject, label, aus in (("a", "negative", "AU4"), ("b", "positive", "AU6+AU12"), ("c", "surprise", "AU1+AU2")):
        for k in range(6):
            rows.append({"dataset": "d", "subject": subject, "clip": f"{subject}{k}", "label": label, "aus": aus})
    rows.append({"dataset": "d", "subject": "a", "clip": "a-extra", "label": "negative", "aus": "AU4"})
    return pd.DataFrame(rows)


def test_majority_predicts_the_training_majority_of_each_fold():
    table = _table()
    pred = majority_baseline(table)
    # Holding out "a" leaves b and c tied at 6 clips: the tie goes to the first class in sorted order.
    assert set(pred.loc[pred.subject == "a", "prediction"]) == {"positive"}
    assert set(pred.loc[pred.subject == "b", "prediction"]) == {"negative"}  # a has 7 clips
    assert len(pred) == len(table) and set(pred.columns) >= {"p_negative", "p_positive", "p_surprise", "fold"}


def test_identity_equals_majority_under_loso_and_is_perfect_under_a_random_split():
    table = _table()
    loso = identity_baseline(table)
    assert (loso["prediction"] == majority_baseline(table)["prediction"]).all()
    random = identity_baseline(table, random_splits(table, k=3, seed=0))
    assert (random["prediction"] == random["label"]).all()
    assert summarize(random).loc["all", "UF1"] == 1.0


def test_true_au_set_separates_classes_that_no_subject_shares():
    table = _table()
    features, names = au_features(table)
    assert names == ["AU1", "AU12", "AU2", "AU4", "AU6"] and features.sum(axis=1).tolist()[:1] == [1.0]
    pred = au_set_baseline(table, random_splits(table, k=3, seed=0))
    assert (pred["prediction"] == pred["label"]).all()
    # Under LOSO each class is one subject, so its AU set is never seen in training: the ceiling collapses.
    assert summarize(au_set_baseline(table)).loc["all", "UF1"] < 1.0
    with pytest.raises(ValueError, match="aus"):
        au_set_baseline(table.drop(columns="aus"))


def test_reference_runs_list_the_rows_the_data_allows():
    table = _table()
    x = np.random.default_rng(0).standard_normal((len(table), 3, 8, 8)).astype(np.float32)
    refs = reference_runs(x, table, loso_splits(table))
    assert list(refs) == [LINEAR, AU_SET, IDENTITY, MAJORITY, CHANCE]
    assert list(reference_runs(None, table.assign(aus=""))) == [IDENTITY, MAJORITY, CHANCE]


def test_the_ceiling_never_wins_a_ranking():
    overall = pd.DataFrame({"UF1": [0.5, 0.9, 0.3], "UF1_low": [0.4, 0.8, 0.2], "UF1_high": [0.6, 1.0, 0.4]},
                           index=["convat_tiny", AU_SET, MAJORITY])
    assert ranking_verdict(overall, "convat_tiny").startswith("**convat_tiny has the highest")


def test_paired_comparisons_tell_apart_only_what_the_subjects_separate():
    rng = np.random.default_rng(0)
    rows = [{"dataset": "d", "subject": f"s{i // 10}", "label": ["a", "b"][i % 2]} for i in range(200)]
    truth = pd.DataFrame(rows)
    right = truth.assign(prediction=truth["label"])
    noisy = truth.assign(prediction=np.where(rng.random(200) < 0.5, truth["label"], "a"))
    same = right.copy()
    lines = paired_comparisons({"ours": right, "noisy": noisy, "twin": same, AU_SET: right}, "ours", n_boot=300)
    assert lines[0].startswith("- noisy: ours − noisy = +") and lines[0].endswith("the subjects tell them apart")
    assert lines[1].startswith("- twin: ours − twin = +0.000") and "cannot tell them apart" in lines[1]
    assert len(lines) == 3 and "training seed" in lines[2]  # the ceiling row is left out


def test_the_highest_network_ignores_references_and_ceilings():
    overall = pd.DataFrame({"UF1": [0.5, 0.9, 0.95, 0.6]}, index=["convat_tiny", LINEAR, AU_SET, "ststnet"])
    assert highest_network(overall, ["convat_tiny", "ststnet", "absent"]) == "ststnet"
    with pytest.raises(ValueError, match="none of the networks"):
        highest_network(overall, ["absent"])
    overall.loc["ststnet", "UF1"] = np.nan  # a row without a score is never the highest
    assert highest_network(overall, ["convat_tiny", "ststnet"]) == "convat_tiny"


def _curve(fits: list[float] | None) -> pd.DataFrame:
    """Two epochs per fold; the fit is recorded on the selected (last) epoch only, as the engine writes it."""
    rows = []
    for k, fit in enumerate(fits or [0.0]):
        for epoch in (0, 1):
            row = {"fold": f"d/s{k}", "epoch": epoch, "train_accuracy": 0.1, "selected": epoch == 1}
            if fits is not None:
                row.update(dict.fromkeys(FIT_COLUMNS, np.nan))
                row["fit_accuracy"] = fit if epoch == 1 else np.nan
            rows.append(row)
    return pd.DataFrame(rows)


def test_generalisation_gap_uses_the_evaluation_mode_fit_and_ranks_nothing():
    overall = pd.DataFrame({"accuracy": [0.55, 0.4]}, index=["convat_tiny", "old"])
    text = generalisation_gap_lines({"convat_tiny": _curve([0.9, 1.0]), "old": _curve(None)}, overall)
    # 0.95 is the mean fit over folds; the running train_accuracy (0.1) plays no part
    assert text.startswith("Fit to the training clips (evaluation mode, mean over folds) against pooled held-out "
                           "accuracy: "
                           "convat_tiny 0.95 vs 0.55 (gap +0.40) (one training seed per network")
    assert text.endswith("old: made before folds recorded their training fit, so no gap is shown.")
    assert "largest" not in text
    assert generalisation_gap_lines({"old": _curve(None)}, overall).startswith("old: made before")
    assert generalisation_gap_lines({}, overall) == "No run to compare."


def test_subject_leaders_credit_no_model_with_a_tie():
    acc = pd.DataFrame({"a": [0.9, 0.5, 0.5, 0.2], "b": [0.1, 0.5, 0.7, 0.2]}, index=["s1", "s2", "s3", "s4"])
    text = describe_subject_leaders(acc)
    assert "(one training seed per network: an order of these runs, not a ranking of the methods): a 1, b 1; " \
           "tied: 2 of 4." in text  # s2 and s4 tie; with idxmax both would have gone to a
    assert text.endswith("The widest gap between models on one subject is 0.80 (subject s1).")


def test_subject_leaders_with_one_model_or_no_gap():
    assert describe_subject_leaders(pd.DataFrame({"a": [0.5, 0.7]})).startswith("One model only")
    same = describe_subject_leaders(pd.DataFrame({"a": [0.5, 0.7], "b": [0.5, 0.7]}))
    assert same.endswith("tied: 2 of 2.")  # no gap on any subject: no subject named for it
