import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, recall_score

from convat.data import composite_list_path
from convat.metrics import accuracy, confusion, macro_precision, summarize, uar, uf1


@pytest.fixture(scope="module")
def ststnet():
    return pd.read_csv(composite_list_path(), dtype=str)


def test_golden_values_of_the_published_ststnet_predictions(ststnet):
    """The reference README's pooled values: UF1 0.7353, UAR 0.7186; the published 'UAR' is precision."""
    y, p = ststnet["label"], ststnet["ststnet_pred"]
    assert len(ststnet) == 442
    assert uf1(y, p) == pytest.approx(0.7353, abs=5e-5)
    assert uar(y, p) == pytest.approx(0.7186, abs=5e-5)
    assert macro_precision(y, p) == pytest.approx(0.7605, abs=5e-5)
    golden = {"smic": (0.6801, 0.6703), "casme2": (0.8382, 0.8190), "samm": (0.6588, 0.6415)}
    table = summarize(ststnet.assign(prediction=p), by="dataset")
    for dataset, (f1, recall) in golden.items():
        assert table.loc[dataset, "UF1"] == pytest.approx(f1, abs=5e-5)
        assert table.loc[dataset, "UAR"] == pytest.approx(recall, abs=5e-5)


def test_agrees_with_scikit_learn_on_random_labels():
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    assert uf1(y, p) == pytest.approx(f1_score(y, p, average="macro"))
    assert uar(y, p) == pytest.approx(recall_score(y, p, average="macro"))
    assert accuracy(y, p) == pytest.approx(np.mean(y == p))
    assert confusion(y, p).sum() == 200


def test_unknown_label_is_named():
    with pytest.raises(ValueError, match="happy"):
        confusion(["positive", "happy"], ["positive", "positive"], labels=["positive", "negative"])


def _toy_predictions(n_subjects=8, per_subject=12, skill=0.7, seed=0):
    rng = np.random.default_rng(seed)
    labels = ["negative", "positive", "surprise"]
    y = rng.choice(labels, n_subjects * per_subject, p=[0.57, 0.25, 0.18])
    p = np.where(rng.random(len(y)) < skill, y, rng.choice(labels, len(y)))
    subjects = np.repeat([f"s{i:02d}" for i in range(n_subjects)], per_subject)
    return pd.DataFrame({"dataset": "synthme", "subject": subjects, "label": y, "prediction": p,
                         "fold": ["synthme/" + s for s in subjects]})


def test_scores_from_a_stack_of_confusions_match_the_label_functions():
    from convat.metrics import scores_from_confusion

    df = _toy_predictions()
    labels = sorted(df.label.unique())
    scores = scores_from_confusion(np.stack([confusion(df.label, df.prediction, labels)] * 2))
    assert scores["UF1"][1] == pytest.approx(uf1(df.label, df.prediction, labels))
    assert scores["UAR"][0] == pytest.approx(uar(df.label, df.prediction, labels))
    assert scores["accuracy"][0] == pytest.approx(accuracy(df.label, df.prediction))


def test_bootstrap_interval_over_subjects_brackets_the_pooled_score_and_shrinks_with_more_subjects():
    from convat.metrics import bootstrap_ci

    small = bootstrap_ci(_toy_predictions(n_subjects=6), n_boot=500)
    large = bootstrap_ci(_toy_predictions(n_subjects=60), n_boot=500)
    for ci in (small, large):
        assert ((ci["low"] <= ci["estimate"]) & (ci["estimate"] <= ci["high"])).all()
    assert (large["high"] - large["low"]).mean() < (small["high"] - small["low"]).mean()
    perfect = _toy_predictions(skill=1.0)
    ci = bootstrap_ci(perfect.assign(prediction=perfect.label), n_boot=100)
    assert (ci.to_numpy() == 1.0).all()


def test_per_subject_and_fold_average_differ_from_pooled_scores():
    from convat.metrics import fold_average, per_subject

    df = _toy_predictions(n_subjects=5, per_subject=7)
    table = per_subject(df)
    assert len(table) == 5 and table["n"].sum() == len(df)
    assert table["correct"].sum() == (df.label == df.prediction).sum()
    avg = fold_average(df)
    assert avg["accuracy"] == pytest.approx(table["accuracy"].mean())  # equal-size folds: same accuracy
    assert avg["UF1"] != pytest.approx(uf1(df.label, df.prediction))


def test_results_table_names_the_better_model():
    from convat.metrics import best_model, results_table

    good, bad = _toy_predictions(skill=0.9), _toy_predictions(skill=0.3)
    table = results_table({"bad": bad, "good": good}, n_boot=200)
    assert best_model(table) == "good"
    assert {"UF1_low", "UF1_high", "UAR_fold_avg"} <= set(table.columns)
    by = results_table({"good": good}, by="dataset", n_boot=50)
    assert ("good", "all") in by.index and ("good", "synthme") in by.index
    assert best_model(by) == "good"


def test_compare_runs_uses_one_threshold_for_every_chapter():
    from convat.metrics import NEGLIGIBLE, compare_runs

    assert compare_runs(0.50, 0.50 + NEGLIGIBLE / 2) == "about the same"
    assert compare_runs(0.50 + NEGLIGIBLE + 0.001, 0.50) == "higher"
    assert compare_runs(0.40, 0.50) == "lower"
    assert compare_runs(0.40, 0.50, threshold=0.2) == "about the same"
    with pytest.raises(ValueError, match="threshold"):
        compare_runs(0.4, 0.5, threshold=-1)


def test_seed_verdict_names_the_direction_of_the_difference():
    from convat.metrics import seed_verdict

    text = seed_verdict({"difference": -0.07, "low": -0.12, "high": -0.01, "p": 0.007}, "ststnet", "linear")
    assert text.startswith("linear beats ststnet") and "ststnet − linear -0.070" in text
