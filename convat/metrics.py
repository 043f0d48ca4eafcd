"""MEGC metrics on pooled predictions: UF1 (macro F1), UAR (macro recall), accuracy.

Plain functions over label arrays, like scikit-learn's: the micro-expression protocol pools the predictions
of all leave-one-subject-out folds first and computes each score once, over the union (MEGC2019).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def _classes(y_true: Sequence, y_pred: Sequence, labels: Sequence | None) -> list:
    if labels is not None:
        return list(labels)
    return sorted(set(np.asarray(y_true).tolist()) | set(np.asarray(y_pred).tolist()))


def confusion(y_true: Sequence, y_pred: Sequence, labels: Sequence | None = None) -> np.ndarray:
    """Confusion matrix ``C[i, j]`` = number of samples of true class ``i`` predicted as ``j``."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.shape[0]} labels but y_pred has {y_pred.shape[0]}")
    classes = _classes(y_true, y_pred, labels)
    index = {c: i for i, c in enumerate(classes)}
    unknown = (set(y_true.tolist()) | set(y_pred.tolist())) - set(index)
    if unknown:
        raise ValueError(f"labels {sorted(unknown)} are not among the classes {classes}")
    out = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(out, ([index[v] for v in y_true.tolist()], [index[v] for v in y_pred.tolist()]), 1)
    return out


def _per_class(y_true, y_pred, labels):
    c = confusion(y_true, y_pred, labels).astype(float)
    tp = np.diag(c)
    support, predicted = c.sum(1), c.sum(0)
    present = support > 0  # MEGC: classes absent from the ground truth are left out of the mean
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, tp / support, 0.0)
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        f1 = np.where(2 * tp + (support - tp) + (predicted - tp) > 0,
                      2 * tp / (2 * tp + (support - tp) + (predicted - tp)), 0.0)
    return recall, precision, f1, present


def uf1(y_true: Sequence, y_pred: Sequence, labels: Sequence | None = None) -> float:
    """Unweighted F1: the mean over classes present in ``y_true`` of each class's F1."""
    _, _, f1, present = _per_class(y_true, y_pred, labels)
    return float(f1[present].mean())


def uar(y_true: Sequence, y_pred: Sequence, labels: Sequence | None = None) -> float:
    """Unweighted average recall: the mean over classes present in ``y_true`` of each class's recall."""
    recall, _, _, present = _per_class(y_true, y_pred, labels)
    return float(recall[present].mean())


def macro_precision(y_true: Sequence, y_pred: Sequence, labels: Sequence | None = None) -> float:
    """Mean per-class precision: *not* a MEGC metric; shown because it is sometimes reported as UAR."""
    _, precision, _, present = _per_class(y_true, y_pred, labels)
    return float(precision[present].mean())


def accuracy(y_true: Sequence, y_pred: Sequence) -> float:
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


def summarize(predictions: pd.DataFrame, labels: Sequence | None = None, by: str | None = None) -> pd.DataFrame:
    """Pooled UF1 / UAR / accuracy of a predictions table (columns ``label``, ``prediction``).

    With ``by`` (e.g. ``"dataset"``), one row per group plus an ``all`` row.
    """
    labels = labels if labels is not None else sorted(predictions["label"].unique())

    def row(df: pd.DataFrame) -> dict:
        return {
            "n": len(df),
            "UF1": uf1(df["label"], df["prediction"], labels),
            "UAR": uar(df["label"], df["prediction"], labels),
            "accuracy": accuracy(df["label"], df["prediction"]),
        }

    rows = {"all": row(predictions)}
    if by is not None:
        for name, group in predictions.groupby(by, sort=True):
            rows[str(name)] = row(group)
    return pd.DataFrame.from_dict(rows, orient="index")
