"""Reference rows for every ranking of models: what a model must beat before its score means anything.

* the **linear reference**: a class-balanced logistic regression on the same motion maps, the same folds
  (:func:`convat.data.synth_difficulty.linear_baseline`); a deep model that does not beat it has learnt nothing
  a linear read-out of the input could not;
* the **majority class** of each fold's training subjects, answered for every test clip: the accuracy a
  model gets for free on imbalanced data (its UF1 shows why the field reports macro scores);
* **uniform chance**: a label drawn uniformly at random for every clip, from a fixed seed.

All three return predictions in the layout of :func:`convat.loso.run_loso` (one row per clip with ``dataset``,
``subject``, ``clip``, ``label``, ``prediction``, ``fold`` and ``p_<class>``), so the metrics apply unchanged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from convat.data.synth_difficulty import linear_baseline
from convat.loso import Splits, loso_splits

LINEAR = "logistic regression (linear reference)"
MAJORITY = "majority class (reference)"
CHANCE = "uniform chance (reference)"
REFERENCE_ROWS = (LINEAR, MAJORITY, CHANCE)


def _predictions(table: pd.DataFrame, test: np.ndarray, classes: list[str], proba: np.ndarray,
                 fold: str) -> pd.DataFrame:
    out = table.loc[test, ["dataset", "subject", "clip", "label"]].reset_index(drop=True)
    out["prediction"] = [classes[i] for i in proba.argmax(1)]
    out["fold"] = fold
    for k, name in enumerate(classes):
        out[f"p_{name}"] = proba[:, k]
    return out


def majority_baseline(table: pd.DataFrame, splits: Splits | None = None) -> pd.DataFrame:
    """Every test clip gets the most frequent label of its fold's training clips (ties: first in sorted order)."""
    splits = splits if splits is not None else loso_splits(table)
    classes = sorted(table["label"].unique())
    labels = table["label"].to_numpy()
    parts = []
    for fold, mask in splits.items():
        test = np.asarray(mask, dtype=bool)
        counts = pd.Series(labels[~test]).value_counts()
        majority = sorted(counts[counts == counts.max()].index)[0]
        proba = np.zeros((int(test.sum()), len(classes)))
        proba[:, classes.index(majority)] = 1.0
        parts.append(_predictions(table, test, classes, proba, fold))
    return pd.concat(parts, ignore_index=True)


def chance_baseline(table: pd.DataFrame, splits: Splits | None = None, seed: int = 0) -> pd.DataFrame:
    """Every test clip gets a label drawn uniformly at random (reproducible from ``seed``)."""
    splits = splits if splits is not None else loso_splits(table)
    classes = sorted(table["label"].unique())
    rng = np.random.default_rng(seed)
    parts = []
    for fold, mask in splits.items():
        test = np.asarray(mask, dtype=bool)
        proba = np.eye(len(classes))[rng.integers(len(classes), size=int(test.sum()))]
        parts.append(_predictions(table, test, classes, proba, fold))
    return pd.concat(parts, ignore_index=True)


def reference_runs(x: np.ndarray, table: pd.DataFrame, splits: Splits | None = None,
                   seed: int = 0) -> dict[str, pd.DataFrame]:
    """The three reference rows on the folds of ``splits`` (default LOSO), by their display names."""
    return {LINEAR: linear_baseline(x, table, splits), MAJORITY: majority_baseline(table, splits),
            CHANCE: chance_baseline(table, splits, seed)}


def ranking_verdict(overall: pd.DataFrame, ours: str, metric: str = "UF1") -> str:
    """One Markdown sentence on who wins a ranking (rows: models and references, columns: ``metric`` and its
    ``_low`` / ``_high`` interval), said plainly when a reference row beats every network."""
    winner = str(overall[metric].idxmax())
    o, w = overall.loc[ours], overall.loc[winner]
    networks = [m for m in overall.index if m not in REFERENCE_ROWS]
    interval = f"{o[metric]:.3f} ({o[f'{metric}_low']:.3f}–{o[f'{metric}_high']:.3f})"
    if winner == ours:
        return f"**{ours} has the highest pooled {metric}** ({interval}) of the {len(overall)} rows."
    if winner == LINEAR:
        best_net = str(overall.loc[networks, metric].idxmax()) if networks else ours
        return (f"**The linear reference wins**: a logistic regression on the same motion maps reaches a pooled "
                f"{metric} of {w[metric]:.3f}, above every network trained here (best: {best_net}, "
                f"{overall.loc[best_net, metric]:.3f}; {ours}: {interval}). On this data and budget, the networks "
                "have not learnt more than a linear read-out of the input.")
    if winner in REFERENCE_ROWS:
        return (f"**A trivial reference wins**: {winner} reaches a pooled {metric} of {w[metric]:.3f}, against "
                f"{interval} for {ours}; no model here has learnt the task.")
    return f"**A baseline wins: {winner}** reaches a pooled {metric} of {w[metric]:.3f}, against {interval} for {ours}."
