"""MEGC metrics on pooled predictions: UF1 (macro F1), UAR (macro recall), accuracy.

Plain functions over label arrays, like scikit-learn's: the micro-expression protocol pools the predictions
of all leave-one-subject-out folds first and computes each score once, over the union (MEGC2019).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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


def _per_class_from_confusion(c: np.ndarray):
    """Per-class recall, precision, F1 and presence of one ``(K, K)`` or a stack ``(..., K, K)`` of matrices."""
    c = np.asarray(c, dtype=float)
    tp = np.diagonal(c, axis1=-2, axis2=-1)
    support, predicted = c.sum(-1), c.sum(-2)
    present = support > 0  # MEGC: classes absent from the ground truth are left out of the mean
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, tp / support, 0.0)
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        denom = support + predicted
        f1 = np.where(denom > 0, 2 * tp / denom, 0.0)
    return recall, precision, f1, present


def _per_class(y_true, y_pred, labels):
    return _per_class_from_confusion(confusion(y_true, y_pred, labels))


def scores_from_confusion(c: np.ndarray) -> dict[str, np.ndarray]:
    """UF1, UAR and accuracy of a confusion matrix or of a stack of them (vectorised, for the bootstrap)."""
    c = np.asarray(c, dtype=float)
    recall, _, f1, present = _per_class_from_confusion(c)
    n_present = np.maximum(present.sum(-1), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.diagonal(c, axis1=-2, axis2=-1).sum(-1) / c.sum((-2, -1))
    return {
        "UF1": (f1 * present).sum(-1) / n_present,
        "UAR": (recall * present).sum(-1) / n_present,
        "accuracy": acc,
    }


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


def subject_key(table: pd.DataFrame) -> pd.Series:
    """``dataset/subject`` of each row of a clip or prediction table (subjects are unique only within a dataset)."""
    return table["dataset"].astype(str) + "/" + table["subject"].astype(str)


def per_subject(predictions: pd.DataFrame, labels: Sequence | None = None) -> pd.DataFrame:
    """One row per ``dataset/subject``: clips, correct, accuracy, UF1 and UAR over that subject's clips."""
    labels = labels if labels is not None else sorted(predictions["label"].unique())
    rows = {}
    for subject, group in predictions.groupby(subject_key(predictions), sort=True):
        rows[subject] = {
            "dataset": group["dataset"].iloc[0],
            "n": len(group),
            "correct": int((group["label"] == group["prediction"]).sum()),
            "accuracy": accuracy(group["label"], group["prediction"]),
            "UF1": uf1(group["label"], group["prediction"], labels),
            "UAR": uar(group["label"], group["prediction"], labels),
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("subject")


def fold_average(predictions: pd.DataFrame, labels: Sequence | None = None, fold: str = "fold") -> pd.Series:
    """Per-fold UF1 / UAR / accuracy averaged over folds: shown only as a contrast to the pooled scores.

    Every fold counts the same whatever its size, and a fold's UF1 averages over the classes *that subject
    shows*, so these numbers are not comparable with the pooled ones (and are usually higher for accuracy).
    """
    labels = labels if labels is not None else sorted(predictions["label"].unique())
    per_fold = [
        {"UF1": uf1(g["label"], g["prediction"], labels), "UAR": uar(g["label"], g["prediction"], labels),
         "accuracy": accuracy(g["label"], g["prediction"])}
        for _, g in predictions.groupby(fold, sort=True)
    ]
    return pd.DataFrame(per_fold).mean()


def bootstrap_ci(
    predictions: pd.DataFrame, labels: Sequence | None = None, n_boot: int = 2000, level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Percentile bootstrap intervals of the pooled UF1 / UAR / accuracy, resampling *subjects*.

    Subjects, not clips, are the independent units of a LOSO experiment: clips of one subject share a face
    and a style. Each replicate draws as many subjects as there are, with replacement, pools all their clips
    and recomputes the scores. Returns rows ``UF1``, ``UAR``, ``accuracy`` with the point estimate (on the
    original data), ``low`` and ``high``.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1 (an interval needs replicates), got {n_boot}")
    labels = list(labels) if labels is not None else sorted(predictions["label"].unique())
    keys = subject_key(predictions)
    subjects = sorted(keys.unique())
    per = np.stack([confusion(g["label"], g["prediction"], labels) for _, g in predictions.groupby(keys, sort=True)])
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(subjects), size=(n_boot, len(subjects)))
    counts = np.zeros((n_boot, len(subjects)))
    np.add.at(counts, (np.repeat(np.arange(n_boot), len(subjects)), draws.ravel()), 1)
    pooled = np.einsum("bs,sij->bij", counts, per)
    boot = scores_from_confusion(pooled)
    point = scores_from_confusion(per.sum(0))
    alpha = (1 - level) / 2
    rows = {
        name: {"estimate": float(point[name]), "low": float(np.nanquantile(boot[name], alpha)),
               "high": float(np.nanquantile(boot[name], 1 - alpha))}
        for name in ("UF1", "UAR", "accuracy")
    }
    return pd.DataFrame.from_dict(rows, orient="index")


def results_table(
    runs: dict[str, pd.DataFrame], labels: Sequence | None = None, by: str | None = None, n_boot: int = 2000,
    level: float = 0.95, seed: int = 0,
) -> pd.DataFrame:
    """Side-by-side scores of several runs (``{model name: predictions}``) on the same clips.

    One row per model (and per ``by`` group, e.g. dataset, when given): pooled UF1 / UAR / accuracy with
    subject-bootstrap intervals (``UF1_low`` ...), and the per-fold averages ``UF1_fold_avg`` ... as a contrast.
    """
    rows = []
    for name, predictions in runs.items():
        classes = labels if labels is not None else sorted(predictions["label"].unique())
        groups = [("all", predictions)]
        if by is not None:
            groups += [(str(k), g) for k, g in predictions.groupby(by, sort=True)]
        for group, df in groups:
            ci = bootstrap_ci(df, classes, n_boot=n_boot, level=level, seed=seed)
            avg = fold_average(df, classes) if "fold" in df else None
            row = {"model": name, "n": len(df)}
            if by is not None:
                row[by] = group
            for metric in ("UF1", "UAR", "accuracy"):
                row[metric] = ci.loc[metric, "estimate"]
                row[f"{metric}_low"] = ci.loc[metric, "low"]
                row[f"{metric}_high"] = ci.loc[metric, "high"]
            for metric in ("UF1", "UAR", "accuracy"):
                row[f"{metric}_fold_avg"] = float(avg[metric]) if avg is not None else np.nan
            rows.append(row)
    index = ["model", by] if by is not None else ["model"]
    return pd.DataFrame(rows).set_index(index)


def best_model(table: pd.DataFrame, metric: str = "UF1") -> str:
    """Name of the model with the highest pooled ``metric`` in a :func:`results_table` (first on ties)."""
    if metric not in table:
        raise ValueError(f"unknown metric {metric!r}; available: {[c for c in table.columns if '_' not in c]}")
    overall = table.xs("all", level=1) if table.index.nlevels > 1 else table
    return str(overall[metric].idxmax())


# --- over training seeds and data draws --------------------------------------------------------------------------

def subject_confusions(predictions: pd.DataFrame, labels: Sequence, subjects: Sequence[str]) -> np.ndarray:
    """One confusion matrix per subject, ``(S, K, K)`` in the order of ``subjects`` (``dataset/subject`` keys;
    a subject without clips in ``predictions`` gets zeros). Summing rows of it gives any pooled confusion."""
    labels = list(labels)
    index = {c: i for i, c in enumerate(labels)}
    where = {s: i for i, s in enumerate(subjects)}
    keys = subject_key(predictions).map(where)
    if keys.isna().any():
        extra = sorted(set(subject_key(predictions)) - set(where))
        raise ValueError(f"predictions hold subjects not in the list: {extra}")
    out = np.zeros((len(subjects), len(labels), len(labels)), dtype=np.int64)
    np.add.at(out, (keys.to_numpy(int), predictions["label"].map(index).to_numpy(int),
                    predictions["prediction"].map(index).to_numpy(int)), 1)
    return out


def seed_summary(runs: Sequence[pd.DataFrame], labels: Sequence | None = None) -> dict[str, float]:
    """Mean and standard deviation (ddof=1; 0 for one run) of pooled UF1 / UAR / accuracy over several runs of
    one method (training seeds, data draws): ``{"UF1": ..., "UF1_sd": ..., ..., "runs": n}``."""
    if not runs:
        raise ValueError("seed_summary needs at least one run")
    labels = labels if labels is not None else sorted(set().union(*(set(r["label"]) for r in runs)))
    scores = pd.DataFrame([summarize(r, labels).loc["all", ["UF1", "UAR", "accuracy"]] for r in runs])
    out: dict[str, float] = {"runs": float(len(runs))}
    for metric in ("UF1", "UAR", "accuracy"):
        out[metric] = float(scores[metric].mean())
        out[f"{metric}_sd"] = float(scores[metric].std(ddof=1)) if len(runs) > 1 else 0.0
    return out


def paired_seed_test(
    runs_a: Sequence[pd.DataFrame], runs_b: Sequence[pd.DataFrame], labels: Sequence | None = None,
    metric: str = "UF1", n_boot: int = 2000, level: float = 0.95, seed: int = 0,
) -> dict[str, float]:
    """Is method A better than method B, over subjects *and* training seeds? A hierarchical paired bootstrap.

    ``runs_a`` / ``runs_b`` are pooled predictions of each method on the same clips, one per training seed (a
    deterministic method has one run). Each replicate draws the subjects with replacement -- the same draw
    for both methods, so the comparison is paired by subject -- and, independently for each method, its runs
    with replacement; a method's score is the mean over its drawn runs of the pooled ``metric`` on the drawn
    subjects. Returns the observed difference (mean over runs of A minus that of B), its ``level`` interval
    and a two-sided bootstrap p-value (twice the smaller tail share of replicates on either side of zero).
    Unlike a subject-only bootstrap of one trained model, the interval contains training variance.
    """
    if not runs_a or not runs_b:
        raise ValueError("paired_seed_test needs at least one run per method")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    labels = labels if labels is not None else sorted(set().union(*(set(r["label"]) for r in [*runs_a, *runs_b])))
    subjects = sorted(set(subject_key(runs_a[0])))
    for r in [*runs_a, *runs_b]:
        if set(subject_key(r)) != set(subjects) or len(r) != len(runs_a[0]):
            raise ValueError("paired_seed_test: every run must cover the same clips of the same subjects")
    conf_a = np.stack([subject_confusions(r, labels, subjects) for r in runs_a])  # (Ra, S, K, K)
    conf_b = np.stack([subject_confusions(r, labels, subjects) for r in runs_b])

    def score(conf: np.ndarray, weights: np.ndarray, picks: np.ndarray) -> np.ndarray:
        # conf (R, S, K, K); weights (B, S) subject draw counts; picks (B, R') run indices -> (B,)
        pooled = np.einsum("bs,rskl->brkl", weights, conf)  # (B, R, K, K)
        per_run = scores_from_confusion(pooled)[metric]  # (B, R)
        return np.take_along_axis(per_run, picks, axis=1).mean(axis=1)

    observed = (score(conf_a, np.ones((1, len(subjects))), np.arange(len(runs_a))[None])
                - score(conf_b, np.ones((1, len(subjects))), np.arange(len(runs_b))[None]))[0]
    rng = np.random.default_rng(seed)
    diffs = []
    for start in range(0, n_boot, 250):  # chunks bound the memory of the (B, R, K, K) stack
        b = min(250, n_boot - start)
        draws = rng.integers(0, len(subjects), size=(b, len(subjects)))
        weights = np.zeros((b, len(subjects)))
        np.add.at(weights, (np.repeat(np.arange(b), len(subjects)), draws.ravel()), 1.0)
        picks_a = rng.integers(0, len(runs_a), size=(b, len(runs_a)))
        picks_b = rng.integers(0, len(runs_b), size=(b, len(runs_b)))
        diffs.append(score(conf_a, weights, picks_a) - score(conf_b, weights, picks_b))
    diffs = np.concatenate(diffs)
    alpha = (1.0 - level) / 2
    low, high = np.quantile(diffs, [alpha, 1.0 - alpha])
    p = min(1.0, 2.0 * min(float(np.mean(diffs <= 0)), float(np.mean(diffs >= 0))))
    return {"difference": float(observed), "low": float(low), "high": float(high), "p": p,
            "runs_a": float(len(runs_a)), "runs_b": float(len(runs_b)), "subjects": float(len(subjects))}


def seed_verdict(test: Mapping[str, float], name_a: str, name_b: str, metric: str = "UF1") -> str:
    """One sentence from :func:`paired_seed_test` (run with ``name_a``'s runs first): which method is better, or
    that the data cannot tell. The difference is ``name_a`` minus ``name_b``, and the sentence says so."""
    d, lo, hi = test["difference"], test["low"], test["high"]
    span = (f"{metric} difference {name_a} − {name_b} {d:+.3f}, 95 % interval {lo:+.3f} to {hi:+.3f}, "
            f"p = {test['p']:.3f}")
    if lo > 0:
        return f"{name_a} beats {name_b} over subjects and seeds ({span})."
    if hi < 0:
        return f"{name_b} beats {name_a} over subjects and seeds ({span})."
    return f"{name_a} and {name_b} cannot be told apart over subjects and seeds ({span})."


#: A score difference that one run on a small draw cannot resolve: on the 100-clip quick profile one or two clips
#: move a pooled UF1 by about this much. The chapters that compare two single runs all use this one threshold;
#: comparisons over seeds use :func:`paired_seed_test` instead.
NEGLIGIBLE = 0.02


def compare_runs(a: float, b: float, threshold: float = NEGLIGIBLE) -> str:
    """``"higher"``, ``"lower"`` or ``"about the same"``: single-run score ``a`` against ``b``, calling
    differences of at most ``threshold`` (default :data:`NEGLIGIBLE`) about the same."""
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    if abs(a - b) <= threshold:
        return "about the same"
    return "higher" if a > b else "lower"
