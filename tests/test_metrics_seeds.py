"""Seed-aware comparison: summaries over runs and the hierarchical (subjects x seeds) paired bootstrap."""

import numpy as np
import pandas as pd
import pytest

from convat.metrics import (
    paired_seed_test,
    seed_summary,
    seed_verdict,
    subject_confusions,
    summarize,
    uf1,
)

CLASSES = ["negative", "positive", "surprise"]


def _truth(n_subjects: int = 12, per: int = 9) -> pd.DataFrame:
    rows = [{"dataset": "d", "subject": f"s{s:02d}", "clip": f"s{s:02d}_{k}", "label": CLASSES[k % 3]}
            for s in range(n_subjects) for k in range(per)]
    return pd.DataFrame(rows)


def _run(truth: pd.DataFrame, accuracy: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    right = rng.random(len(truth)) < accuracy
    wrong = [CLASSES[(CLASSES.index(label) + 1) % 3] for label in truth["label"]]
    return truth.assign(prediction=np.where(right, truth["label"], wrong))


def test_subject_confusions_sum_to_the_pooled_confusion():
    truth = _truth()
    run = _run(truth, 0.6, 0)
    subjects = sorted("d/" + truth["subject"].unique())
    conf = subject_confusions(run, CLASSES, subjects)
    assert conf.shape == (12, 3, 3) and conf.sum() == len(run)
    pooled = conf.sum(0)
    assert uf1(run["label"], run["prediction"], CLASSES) == pytest.approx(
        float(np.mean([2 * pooled[i, i] / (pooled[i].sum() + pooled[:, i].sum()) for i in range(3)])))
    with pytest.raises(ValueError, match="subjects"):
        subject_confusions(run, CLASSES, subjects[:-1])


def test_seed_summary_is_mean_and_sd_over_runs():
    truth = _truth()
    runs = [_run(truth, a, s) for s, a in enumerate((0.5, 0.6, 0.7))]
    scores = [summarize(r, CLASSES).loc["all", "UF1"] for r in runs]
    out = seed_summary(runs, CLASSES)
    assert out["UF1"] == pytest.approx(np.mean(scores)) and out["UF1_sd"] == pytest.approx(np.std(scores, ddof=1))
    assert out["runs"] == 3 and seed_summary(runs[:1])["UF1_sd"] == 0.0


def test_a_clearly_better_method_wins_and_a_copy_does_not():
    truth = _truth()
    good = [_run(truth, 0.85, s) for s in range(5)]
    bad = [_run(truth, 0.45, 100 + s) for s in range(5)]
    test = paired_seed_test(good, bad, CLASSES, n_boot=500)
    assert test["low"] > 0 and test["p"] < 0.01
    assert "beats" in seed_verdict(test, "good", "bad") and seed_verdict(test, "good", "bad").startswith("good")
    same = [_run(truth, 0.6, 200 + s) for s in range(5)]
    also = [_run(truth, 0.6, 300 + s) for s in range(5)]
    tie = paired_seed_test(same, also, CLASSES, n_boot=500)
    assert tie["low"] < 0 < tie["high"] and tie["p"] > 0.05
    assert "cannot be told apart" in seed_verdict(tie, "a", "b")


def test_seed_variance_widens_the_interval():
    # One seed of A happens to be lucky: a single-seed comparison looks decisive, the seed-aware one is wider.
    truth = _truth(n_subjects=30, per=12)
    a = [_run(truth, acc, s) for s, acc in enumerate((0.9, 0.5, 0.55, 0.5, 0.52))]
    b = [_run(truth, 0.55, 50 + s) for s in range(5)]
    one = paired_seed_test(a[:1], b[:1], CLASSES, n_boot=500)
    many = paired_seed_test(a, b, CLASSES, n_boot=500)
    assert one["low"] > 0
    assert (many["high"] - many["low"]) > (one["high"] - one["low"])
    with pytest.raises(ValueError, match="same clips"):
        paired_seed_test(a, [b[0].iloc[:-1]], CLASSES)
