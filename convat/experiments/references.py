"""Reference rows for every results table: what no model, a subject, or the true action units give.

A deep model's UF1 means little on its own. Beside it, a results table needs the scores of classifiers that
bracket it, computed on the same folds with the same output columns as :func:`convat.loso.run_loso` (so
:func:`convat.metrics.summarize` applies to each):

``majority``
    Always the most frequent training class: the floor any model must clear.
``identity only``
    Knows nothing but *who* the subject is: predicts the subject's most frequent label in the training folds,
    or the training majority for a subject it has never seen. Under LOSO the held-out subject is never seen,
    so it equals ``majority``; under a random split it shows what subject identity alone is worth (the leak
    that a subject-blind split rewards).
``true AU set``
    A class-balanced logistic regression on the multi-hot set of action units each clip was coded with (the
    true AUs on SynthME; the coders' AUs on real data): the ceiling of a classifier that saw the facial
    actions perfectly. A model below it loses information between the face and the label; SynthME's classes
    share AUs, so even this ceiling is below 1.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from convat.loso import Splits, loso_splits


def _frame(table: pd.DataFrame, test: np.ndarray, proba: np.ndarray, classes: list[str], fold: str) -> pd.DataFrame:
    out = table.loc[test, ["dataset", "subject", "clip", "label"]].reset_index(drop=True)
    out["prediction"] = [classes[i] for i in proba.argmax(1)]
    out["fold"] = fold
    for k, name in enumerate(classes):
        out[f"p_{name}"] = proba[:, k]
    return out


def _over_folds(table: pd.DataFrame, splits: Splits | None,
                fit_predict: Callable[[np.ndarray, np.ndarray, list[str]], np.ndarray]) -> pd.DataFrame:
    splits = splits if splits is not None else loso_splits(table)
    classes = sorted(table["label"].unique())
    parts = []
    for fold, mask in splits.items():
        test = np.asarray(mask, dtype=bool)
        parts.append(_frame(table, test, fit_predict(~test, test, classes), classes, fold))
    return pd.concat(parts, ignore_index=True)


def _one_hot(labels: list[str], classes: list[str]) -> np.ndarray:
    proba = np.zeros((len(labels), len(classes)))
    proba[np.arange(len(labels)), [classes.index(label) for label in labels]] = 1.0
    return proba


def _majority(labels: pd.Series, classes: list[str]) -> str:
    """The most frequent label; ties go to the first class in sorted order (deterministic)."""
    counts = labels.value_counts()
    best = counts.max()
    return next(c for c in classes if counts.get(c, 0) == best)


def majority_baseline(table: pd.DataFrame, splits: Splits | None = None) -> pd.DataFrame:
    """Pooled predictions of "always the training majority class" over the folds (default LOSO)."""
    def fit_predict(train, test, classes):
        return _one_hot([_majority(table.loc[train, "label"], classes)] * int(test.sum()), classes)

    return _over_folds(table, splits, fit_predict)


def identity_baseline(table: pd.DataFrame, splits: Splits | None = None) -> pd.DataFrame:
    """Pooled predictions of a classifier that knows only the subject (see the module docstring)."""
    from convat.metrics import subject_key

    ids = subject_key(table)

    def fit_predict(train, test, classes):
        fallback = _majority(table.loc[train, "label"], classes)
        seen = {s: _majority(group, classes) for s, group in table.loc[train, "label"].groupby(ids[train])}
        return _one_hot([seen.get(s, fallback) for s in ids[test]], classes)

    return _over_folds(table, splits, fit_predict)


def au_features(table: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Multi-hot AU indicators ``(N, A)`` from the table's ``aus`` column (``"AU6+AU12"``) and the AU names."""
    if "aus" not in table.columns:
        raise ValueError("the table has no 'aus' column; the true-AU-set reference needs the clips' coded AUs")
    sets = [tuple(a for a in str(v).split("+") if a) for v in table["aus"].fillna("")]
    names = sorted({a for s in sets for a in s})
    if not names:
        raise ValueError("no clip has coded AUs; the true-AU-set reference cannot be computed")
    index = {a: i for i, a in enumerate(names)}
    features = np.zeros((len(sets), len(names)))
    for row, s in enumerate(sets):
        features[row, [index[a] for a in s]] = 1.0
    return features, names


def au_set_baseline(table: pd.DataFrame, splits: Splits | None = None, c: float = 10.0) -> pd.DataFrame:
    """Pooled predictions of a class-balanced logistic regression on each clip's true AU set."""
    from sklearn.linear_model import LogisticRegression

    features, _ = au_features(table)
    y = table["label"].to_numpy()

    def fit_predict(train, test, classes):
        model = LogisticRegression(C=c, max_iter=2000, class_weight="balanced").fit(features[train], y[train])
        proba = np.zeros((int(test.sum()), len(classes)))
        proba[:, [classes.index(k) for k in model.classes_]] = model.predict_proba(features[test])
        return proba

    return _over_folds(table, splits, fit_predict)


def reference_predictions(x: np.ndarray | None, table: pd.DataFrame, splits: Splits | None = None,
                          linear: bool = True) -> dict[str, pd.DataFrame]:
    """Every reference row that the data allows, by row name, on the same folds: ``linear (logistic
    regression)`` on the motion maps ``x`` (when given and ``linear``), ``true AU set`` (when the clips have
    coded AUs), ``identity only`` and ``majority``."""
    from convat.data.synth_difficulty import linear_baseline

    out: dict[str, pd.DataFrame] = {}
    if x is not None and linear:
        out["linear (logistic regression)"] = linear_baseline(x, table, splits)
    if "aus" in table.columns and table["aus"].fillna("").str.len().gt(0).any():
        out["true AU set (ceiling)"] = au_set_baseline(table, splits)
    out["identity only"] = identity_baseline(table, splits)
    out["majority"] = majority_baseline(table, splits)
    return out


__all__ = ["au_features", "au_set_baseline", "identity_baseline", "majority_baseline", "reference_predictions"]
