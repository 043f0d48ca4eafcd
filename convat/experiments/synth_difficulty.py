"""How hard SynthME is: a linear reference model under LOSO and under a random split.

The dataset is meant to be a real learning problem: a good model should score clearly above chance and clearly
below perfect under leave-one-subject-out, and a random (subject-blind) split should score higher than LOSO
because a model may learn a subject's style from that subject's other clips. A logistic regression on the
motion maps is a cheap, deterministic reference for both; the book measures the deep models with the LOSO
engine itself.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from convat.folds import FoldResult, Splits, fold_predictions, run_folds
from convat.loso import loso_splits, standardize


def linear_features(x: np.ndarray, pool: int = 4) -> np.ndarray:
    """Motion maps ``(N, C, S, S)`` average-pooled by ``pool`` and flattened to ``(N, C * (S / pool) ** 2)``."""
    n, c, h, w = x.shape
    if h % pool or w % pool:
        raise ValueError(f"map size {h}x{w} is not divisible by pool={pool}")
    return x.reshape(n, c, h // pool, pool, w // pool, pool).mean(axis=(3, 5)).reshape(n, -1)


def linear_baseline(x: np.ndarray, table: pd.DataFrame, splits: Splits | None = None, c: float = 0.1,
                    pool: int = 4) -> pd.DataFrame:
    """Pooled predictions of a class-balanced logistic regression over the folds of ``splits`` (default LOSO).

    Same output columns as :func:`convat.loso.run_loso`, so :func:`convat.metrics.summarize` applies;
    ``attrs["train_accuracy"]`` is the mean over folds of the model's accuracy on its own training clips, and
    ``attrs["train_fit"]`` that accuracy per fold (``{fold: accuracy}``).
    """
    from sklearn.linear_model import LogisticRegression

    splits = splits if splits is not None else loso_splits(table)
    classes = sorted(table["label"].unique())
    y = table["label"].to_numpy()
    fit: dict[str, float] = {}

    def fit_predict(fold: str, test: np.ndarray) -> FoldResult:
        x_train, x_test = standardize(x[~test], x[test])
        model = LogisticRegression(C=c, max_iter=2000, class_weight="balanced")
        features = linear_features(x_train, pool)
        model.fit(features, y[~test])
        fit[fold] = float(model.score(features, y[~test]))
        proba = np.zeros((int(test.sum()), len(classes)))
        proba[:, [classes.index(k) for k in model.classes_]] = model.predict_proba(linear_features(x_test, pool))
        return FoldResult(fold_predictions(table, test, classes, proba, fold))

    result = run_folds(table, splits, fit_predict)
    result.attrs["train_accuracy"] = float(np.mean(list(fit.values())))
    result.attrs["train_fit"] = dict(sorted(fit.items()))
    return result
