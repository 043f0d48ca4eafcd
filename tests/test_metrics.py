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
