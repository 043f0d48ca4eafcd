"""The fold engine: one loop over the folds of a split, for every model the book evaluates.

A *split* is a ``{fold name: boolean test mask}`` dictionary over a table's rows (LOSO, a random split, groups
of subjects). :func:`run_folds` runs a ``fit_predict(fold, test_mask)`` callable on every fold and pools the
per-fold predictions; with a :class:`convat.runstore.RunStore` it records the run's identity, writes every
finished fold at once (checked, atomically), resumes from the first missing fold and writes the pooled files.
The deep models (:func:`convat.loso.run_loso`, sequential, in a worker pool or batched), the linear and
reference baselines, the epoch trace of the pitfalls chapter and the subject-grouped cross-validation of the
model-selection experiment all run through it, so folds are prepared, ordered, saved and resumed one way.

The engine itself decides nothing about a model: what a fold trains and predicts is the callable's business
(or the ``execute`` hook's, for strategies that train several folds at once).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import NamedTuple

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from convat.runstore import RunStore

Splits = dict[str, np.ndarray]


class FoldResult(NamedTuple):
    """What one fold produces: its predictions (one row per held-out clip) and, optionally, a curve (any
    per-fold table, e.g. one row per epoch) that the store keeps beside them."""

    predictions: pd.DataFrame
    curve: pd.DataFrame | None = None


FitPredict = Callable[[str, np.ndarray], FoldResult]
"""``fit_predict(fold, test_mask)``: fit on the rows outside the mask, predict the rows inside it."""

Execute = Callable[[Mapping[str, np.ndarray]], Iterable[tuple[str, FoldResult]]]
"""``execute(todo)``: run the folds of ``todo`` (name -> test mask) and yield ``(fold, result)`` as each
finishes, in any order (a worker pool, or one batched model for all folds)."""


def fold_predictions(table: pd.DataFrame, test: np.ndarray, classes: list[str], proba: np.ndarray,
                     fold: str) -> pd.DataFrame:
    """The predictions frame of one fold: the held-out clips' identity and label, the predicted class, the fold
    name and one ``p_<class>`` column per class (float64, which round-trips exactly through CSV)."""
    test = np.asarray(test, dtype=bool)
    proba = np.asarray(proba)
    out = table.loc[test, ["dataset", "subject", "clip", "label"]].reset_index(drop=True)
    out["prediction"] = [classes[i] for i in proba.argmax(1)]
    out["fold"] = fold
    for k, name in enumerate(classes):
        out[f"p_{name}"] = proba[:, k].astype(np.float64)
    return out


def _sequential(fit_predict: FitPredict) -> Execute:
    def execute(todo: Mapping[str, np.ndarray]) -> Iterator[tuple[str, FoldResult]]:
        for fold, mask in todo.items():
            yield fold, fit_predict(fold, np.asarray(mask, dtype=bool))
    return execute


def run_folds(
    table: pd.DataFrame,
    splits: Splits,
    fit_predict: FitPredict | None = None,
    *,
    store: RunStore | None = None,
    identity: Mapping | None = None,
    info: Mapping | None = None,
    only: Iterable[str] | None = None,
    execute: Execute | None = None,
    metrics: bool = True,
    progress: bool = False,
    desc: str = "folds",
) -> pd.DataFrame:
    """Pooled predictions (in fold order) of ``fit_predict`` over the folds of ``splits``.

    Without ``store`` the folds simply run in order. With ``store`` (and the run's ``identity``, recorded in its
    ``config.json`` with the informational ``info``): a folder holding another run is refused before any work;
    intact finished folds are read back instead of recomputed (a damaged one is named and recomputed); every
    fold is written as soon as it finishes; when every fold is present, ``predictions.csv``, ``curves.csv``
    and (with ``metrics``) ``metrics.csv`` are written.

    ``only`` restricts this call to some folds (a task of a split run): it locks its own share of the folder,
    trains the missing folds of that share and returns the predictions of the folds present so far; whichever
    task finds every fold present writes the pooled files. ``execute`` replaces the sequential loop over
    ``fit_predict`` (see :data:`Execute`).
    """
    if fit_predict is None and execute is None:
        raise ValueError("run_folds needs fit_predict or execute")
    mine = set(splits) if only is None else set(only)
    unknown = sorted(mine - set(splits))
    if unknown:
        raise ValueError(f"folds {unknown} are not folds of this run; folds are {list(splits)}")
    if only is not None and store is None:
        raise ValueError("training a subset of the folds needs a run folder (the tasks merge through it)")
    if store is not None and identity is None:
        raise ValueError("a run folder needs the run's identity (what decides its predictions)")
    execute = execute if execute is not None else _sequential(fit_predict)
    clips = {fold: RunStore.clip_ids(table, mask) for fold, mask in splits.items()} if store is not None else {}
    done: dict[str, pd.DataFrame] = {}
    if store is not None:
        # a task of a split run locks its own share, so tasks of one run can write side by side
        tag = "" if only is None else "task-" + hashlib.sha256(",".join(sorted(mine)).encode()).hexdigest()[:8]
        store.open(identity, info, lock_tag=tag)
    try:
        if store is not None:
            done = store.valid_folds(clips)
        todo = {fold: mask for fold, mask in splits.items() if fold not in done and fold in mine}
        with tqdm(total=len(splits), initial=len(done), desc=desc, disable=not progress, unit="fold") as bar:
            for fold, result in (execute(todo) if todo else ()):
                if store is not None:
                    store.write_fold(fold, result.predictions, result.curve, clips[fold])
                done[fold] = result.predictions
                bar.update()
        if any(fold not in done for fold in splits):  # a task of a split run: the others are not finished yet
            present = [done[fold] for fold in splits if fold in done]
            return pd.concat(present, ignore_index=True) if present else pd.DataFrame()
        predictions = pd.concat([done[fold] for fold in splits], ignore_index=True)
        if store is not None:
            store.finalise(list(splits), done)
            if metrics:
                from convat.metrics import summarize

                by = "dataset" if predictions["dataset"].nunique() > 1 else None
                classes = sorted(table["label"].unique())
                store.write_metrics(summarize(predictions, labels=classes, by=by).rename_axis("group"))
    finally:
        if store is not None:
            store.close()
    return predictions
