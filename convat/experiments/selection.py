"""Choosing architecture defaults without touching the data the book evaluates on.

The defaults of :class:`~convat.models.ConVAT` were chosen with :func:`grouped_cv`: subject-grouped
cross-validation on a *development draw* of SynthME (another seed than the book's data), so the LOSO folds
that the book reports never took part in a decision. Rerun it with :func:`dev_selection`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from convat.folds import FoldResult, run_folds
from convat.loso import fit_fold
from convat.metrics import subject_key, uar, uf1
from convat.training.loop import TrainConfig


def grouped_splits(table: pd.DataFrame, n_groups: int = 5) -> dict[str, np.ndarray]:
    """``n_groups`` folds of whole subjects: the sorted ``dataset/subject`` ids dealt round-robin
    (``group1`` holds subjects 1, 1 + n, 1 + 2n, ...)."""
    ids = subject_key(table).to_numpy()
    subjects = sorted(set(ids))
    if len(subjects) < n_groups:
        raise ValueError(f"n_groups={n_groups} needs at least as many subjects; got {len(subjects)}")
    return {f"group{k + 1}": np.isin(ids, subjects[k::n_groups]) for k in range(n_groups)}


def grouped_cv(x: np.ndarray, table: pd.DataFrame, config: TrainConfig, n_groups: int = 5) -> dict:
    """Pooled UF1 / UAR over ``n_groups`` folds of whole subjects, and the mean final training loss/accuracy.

    The folds run through the fold engine with the LOSO models' ``fit_predict`` (:func:`convat.loso.fit_fold`
    over :func:`grouped_splits`), without an inner validation split. The training loss and accuracy say
    whether a candidate fits its training subjects at all within the budget (underfitting) or fits them and
    fails on new ones (overfitting).
    """
    from convat.training.fit import fit_table

    config = replace(config, val_fraction=0.0)
    classes = sorted(table["label"].unique())
    curves: list[pd.DataFrame] = []

    def fit_predict(fold: str, test: np.ndarray) -> FoldResult:
        result = fit_fold(x, table, fold, classes, config, test)
        curves.append(result.curve)
        return result

    predictions = run_folds(table, grouped_splits(table, n_groups), fit_predict)
    curve = pd.concat(curves, ignore_index=True)
    labels, predicted = predictions["label"].tolist(), predictions["prediction"].tolist()
    return {"UF1": uf1(labels, predicted, classes), "UAR": uar(labels, predicted, classes),
            "final train loss": float(curve.groupby("fold")["loss"].last().mean()),
            "train accuracy": float(fit_table(curve)["fit_accuracy"].mean())}


def dev_selection(candidates: dict[str, TrainConfig], dev_seed: int = 1, profile: str = "quick",
                  img_size: int = 64, n_groups: int = 5) -> pd.DataFrame:
    """:func:`grouped_cv` of each candidate configuration on the SynthME development draw ``dev_seed``."""
    from convat.book import default_preprocess, load_records
    from convat.preprocess.pipeline import preprocess

    if dev_seed == 0:
        raise ValueError("dev_seed=0 is the book's evaluation data; choose another seed for development")
    records = load_records("synthme", profile, None, seed=dev_seed)
    x, table = preprocess(records, default_preprocess(img_size), progress=False)
    rows = {name: grouped_cv(x, table, config, n_groups) for name, config in candidates.items()}
    return pd.DataFrame.from_dict(rows, orient="index")


__all__ = ["grouped_cv", "dev_selection"]
