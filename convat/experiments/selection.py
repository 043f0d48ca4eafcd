"""Choosing architecture defaults without touching the data the book evaluates on.

The defaults of :class:`~convat.models.ConVAT` were chosen with :func:`grouped_cv`: subject-grouped
cross-validation on a *development draw* of SynthME (another seed than the book's data), so the LOSO folds
that the book reports never took part in a decision. Rerun it with :func:`dev_selection`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from convat.loso import standardize
from convat.metrics import uar, uf1
from convat.training.loop import TrainConfig, predict_proba, train_model


def grouped_cv(x: np.ndarray, table: pd.DataFrame, config: TrainConfig, n_groups: int = 5) -> dict:
    """Pooled UF1 / UAR over ``n_groups`` folds of whole subjects, and the mean final training loss/accuracy.

    The training loss and accuracy say whether a candidate fits its training subjects at all within the
    budget (underfitting) or fits them and fails on new ones (overfitting).
    """
    classes = sorted(table["label"].unique())
    y = table["label"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    subjects = sorted(table["subject"].astype(str).unique())
    if len(subjects) < n_groups:
        raise ValueError(f"n_groups={n_groups} needs at least as many subjects; got {len(subjects)}")
    predictions = np.zeros(len(y), dtype=int)
    final_loss, train_acc = [], []
    for k in range(n_groups):
        test = table["subject"].astype(str).isin(subjects[k::n_groups]).to_numpy()
        x_train, x_test = standardize(x[~test], x[test])
        curve: list[float] = []
        model = train_model(x_train, y[~test], len(classes), config,
                            on_epoch=lambda e, m, loss, c=curve: c.append(loss))
        predictions[test] = predict_proba(model, x_test).argmax(1)
        final_loss.append(curve[-1])
        train_acc.append(float((predict_proba(model, x_train).argmax(1) == y[~test]).mean()))
    labels = [classes[i] for i in y]
    predicted = [classes[i] for i in predictions]
    return {"UF1": uf1(labels, predicted, classes), "UAR": uar(labels, predicted, classes),
            "final train loss": float(np.mean(final_loss)), "train accuracy": float(np.mean(train_acc))}


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
