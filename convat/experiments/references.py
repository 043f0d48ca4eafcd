"""Reference rows for every ranking of models: what a model must beat before its score means anything, and
what bounds it from above.

All of them are computed on the same folds as the models and return predictions in the layout of
:func:`convat.loso.run_loso` (one row per clip with ``dataset``, ``subject``, ``clip``, ``label``,
``prediction``, ``fold`` and ``p_<class>``), so the metrics apply unchanged:

* the **linear reference**: a class-balanced logistic regression on the same motion maps
  (:func:`convat.experiments.synth_difficulty.linear_baseline`); a deep model that does not beat it has learnt nothing
  a linear read-out of the input could not;
* the **majority class** of each fold's training subjects, answered for every test clip: the accuracy a
  model gets for free on imbalanced data (its UF1 shows why the field reports macro scores);
* **uniform chance**: a label drawn uniformly at random for every clip, from a fixed seed;
* **identity only**: knows nothing but *who* the subject is -- the subject's most frequent label in the
  training folds, or the training majority for a subject it has never seen. Under LOSO the held-out subject is
  never seen, so it equals the majority row; under a random split it shows what subject identity alone is worth
  (the leak that a subject-blind split rewards);
* the **true AU set** (a ceiling, not a floor): a class-balanced logistic regression on the multi-hot set of
  action units each clip was coded with (SynthME's true AUs; the coders' AUs on real data) -- what a classifier
  that saw the facial actions perfectly would reach. SynthME's classes share AUs, so even this is below 1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from convat.experiments.synth_difficulty import linear_baseline
from convat.folds import FoldResult, Splits, fold_predictions, run_folds
from convat.loso import loso_splits

LINEAR = "logistic regression (linear reference)"
MAJORITY = "majority class (reference)"
CHANCE = "uniform chance (reference)"
IDENTITY = "identity only (reference)"
AU_SET = "true AU set (ceiling)"
#: Rows a model must beat (floors); :data:`CEILING_ROWS` bound it from above and never "win" a ranking.
REFERENCE_ROWS = (LINEAR, MAJORITY, CHANCE, IDENTITY)
CEILING_ROWS = (AU_SET,)


def majority_baseline(table: pd.DataFrame, splits: Splits | None = None) -> pd.DataFrame:
    """Every test clip gets the most frequent label of its fold's training clips (ties: first in sorted order)."""
    labels = table["label"].to_numpy()

    def fit_predict(train: np.ndarray, test: np.ndarray, classes: list[str]) -> np.ndarray:
        counts = pd.Series(labels[train]).value_counts()
        majority = sorted(counts[counts == counts.max()].index)[0]
        proba = np.zeros((int(test.sum()), len(classes)))
        proba[:, classes.index(majority)] = 1.0
        return proba

    return _over_folds(table, splits, fit_predict)


def chance_baseline(table: pd.DataFrame, splits: Splits | None = None, seed: int = 0) -> pd.DataFrame:
    """Every test clip gets a label drawn uniformly at random (reproducible from ``seed``; folds draw in order)."""
    rng = np.random.default_rng(seed)

    def fit_predict(_train: np.ndarray, test: np.ndarray, classes: list[str]) -> np.ndarray:
        return np.eye(len(classes))[rng.integers(len(classes), size=int(test.sum()))]

    return _over_folds(table, splits, fit_predict)


def _over_folds(table: pd.DataFrame, splits: Splits | None,
                fit_predict: Callable[[np.ndarray, np.ndarray, list[str]], np.ndarray]) -> pd.DataFrame:
    """A rule ``fit_predict(train_mask, test_mask, classes) -> probabilities`` over the folds of ``splits``
    (default LOSO), through the fold engine."""
    splits = splits if splits is not None else loso_splits(table)
    classes = sorted(table["label"].unique())
    return run_folds(table, splits, lambda fold, test: FoldResult(
        fold_predictions(table, test, classes, fit_predict(~test, test, classes), fold)))


def _one_hot(labels: list[str], classes: list[str]) -> np.ndarray:
    proba = np.zeros((len(labels), len(classes)))
    proba[np.arange(len(labels)), [classes.index(label) for label in labels]] = 1.0
    return proba


def _majority(labels: pd.Series, classes: list[str]) -> str:
    """The most frequent label; ties go to the first class in sorted order (deterministic)."""
    counts = labels.value_counts()
    return next(c for c in classes if counts.get(c, 0) == counts.max())


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


def has_aus(table: pd.DataFrame) -> bool:
    """Whether the clips carry coded AUs (the true-AU-set ceiling can be computed)."""
    return "aus" in table.columns and bool(table["aus"].fillna("").astype(str).str.len().gt(0).any())


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


def reference_runs(x: np.ndarray | None, table: pd.DataFrame, splits: Splits | None = None,
                   seed: int = 0) -> dict[str, pd.DataFrame]:
    """Every reference row the data allows, by display name, on the folds of ``splits`` (default LOSO): the
    linear reference (when ``x`` is given), the true-AU-set ceiling (when the clips have coded AUs), identity
    only, majority and chance."""
    out: dict[str, pd.DataFrame] = {}
    if x is not None:
        out[LINEAR] = linear_baseline(x, table, splits)
    if has_aus(table):
        out[AU_SET] = au_set_baseline(table, splits)
    out[IDENTITY] = identity_baseline(table, splits)
    out[MAJORITY] = majority_baseline(table, splits)
    out[CHANCE] = chance_baseline(table, splits, seed)
    return out


#: What every one-run ranking sentence adds: one trained model per row is an order, not a finding.
ONE_RUN_ORDER = "one training seed per network: an order of these runs, not a ranking of the methods"
#: :data:`ONE_RUN_ORDER` where the paired lines follow it.
ONE_RUN = (f"{ONE_RUN_ORDER} (the paired lines below say whether the subjects tell two rows apart; the study over "
           "seeds says which method is better)")


def ranking_verdict(overall: pd.DataFrame, ours: str, metric: str = "UF1") -> str:
    """One Markdown sentence on which row of a one-run table scores highest (rows: models and references,
    columns: ``metric`` and its ``_low`` / ``_high`` interval), said plainly when a reference row is above every
    network, and always with :data:`ONE_RUN`: one seed per network cannot rank methods."""
    overall = overall.drop(index=[r for r in CEILING_ROWS if r in overall.index])
    winner = str(overall[metric].idxmax())
    o, w = overall.loc[ours], overall.loc[winner]
    networks = [m for m in overall.index if m not in REFERENCE_ROWS]
    interval = f"{o[metric]:.3f} ({o[f'{metric}_low']:.3f}–{o[f'{metric}_high']:.3f})"
    if winner == ours:
        return (f"**{ours} has the highest pooled {metric} in this run** ({interval}) of the {len(overall)} rows; "
                f"{ONE_RUN}.")
    if winner == LINEAR:
        best_net = str(overall.loc[networks, metric].idxmax()) if networks else ours
        best = (f"the best of them, {ours}: {interval}" if best_net == ours else
                f"best: {best_net}, {overall.loc[best_net, metric]:.3f}; {ours}: {interval}")
        return (f"**The linear reference scores highest in this run**: a logistic regression on the same motion maps "
                f"reaches a pooled {metric} of {w[metric]:.3f}, above every network trained here ({best}); "
                f"{ONE_RUN}.")
    if winner in REFERENCE_ROWS:
        return (f"**A trivial reference scores highest in this run**: {winner} reaches a pooled {metric} of "
                f"{w[metric]:.3f}, against {interval} for {ours}, so no network has learnt the task on this run; "
                f"{ONE_RUN}.")
    return (f"**{winner} scores highest in this run**: a pooled {metric} of {w[metric]:.3f}, against {interval} for "
            f"{ours}; {ONE_RUN}.")


def single_run_lines(overall: pd.DataFrame, predictions: dict[str, pd.DataFrame], networks: Sequence[str],
                     labels: list | None = None, n_boot: int = 2000, metric: str = "UF1") -> list[str]:
    """The sentences under a one-run results table (``overall``: one row per network and reference, with
    ``metric``, its interval and ``UAR``; ``predictions``: the same rows' pooled predictions): which row scores
    highest (:func:`ranking_verdict`, for the best ConVAT row), the paired subject comparisons of it against
    every other row (:func:`paired_comparisons`) and whether UAR puts another row first. Ceiling rows take part
    in none of these. Without a ConVAT row, one line names the highest row."""
    floors = overall.loc[[r for r in overall.index if r in networks or r in REFERENCE_ROWS]]
    first = {m: str(floors[m].idxmax()) for m in (metric, "UAR") if m in floors.columns}
    ours_rows = [m for m in networks if m.startswith("convat") and m in floors.index]
    if not ours_rows:
        return [f"ConVAT is not in this comparison; {first[metric]} has the highest pooled {metric} in this run "
                f"({ONE_RUN_ORDER})."]
    ours = max(ours_rows, key=lambda m: floors.loc[m, metric])
    lines = [ranking_verdict(overall, ours, metric)]
    lines += paired_comparisons(predictions, ours, labels=labels, metric=metric, n_boot=n_boot)
    if "UAR" in first and first["UAR"] != first[metric]:
        lines.append(f"\nBy UAR the order changes: {first['UAR']} is first ({floors.loc[first['UAR'], 'UAR']:.3f}).")
    return lines


def highest_network(overall: pd.DataFrame, networks: Sequence[str], metric: str = "UF1") -> str:
    """The network (not a reference or ceiling row) with the highest ``metric`` in a one-run table: which grid to
    show, not a ranking (one seed per network gives an order of these runs, :data:`ONE_RUN_ORDER`)."""
    rows = [m for m in networks if m in overall.index and pd.notna(overall.loc[m, metric])]
    if not rows:
        raise ValueError(f"none of the networks {list(networks)} is a row of the table with a {metric}")
    return max(rows, key=lambda m: overall.loc[m, metric])


def generalisation_gap_lines(curves: dict[str, pd.DataFrame], overall: pd.DataFrame) -> str:
    """One Markdown sentence over the runs: each one's fit to its training clips (the accuracy of the model each
    fold returned, in evaluation mode, averaged over folds; :func:`convat.training.fit.fit_table`) against its
    pooled held-out accuracy. The running training accuracy of the curves is not used: it is measured while
    training, with dropout and augmentation on, and mixes the start of an epoch with its end. A run made before
    folds recorded their fit is named as such. No gap is ranked: one seed per network."""
    from convat.training.fit import fit_table

    parts, unrecorded = [], []
    for name, curve in curves.items():
        fits = fit_table(curve)
        if fits.empty:
            unrecorded.append(name)
            continue
        fit, held_out = float(fits["fit_accuracy"].mean()), float(overall.loc[name, "accuracy"])
        parts.append(f"{name} {fit:.2f} vs {held_out:.2f} (gap {fit - held_out:+.2f})")
    lines = []
    if parts:
        lines.append("Fit to the training clips (evaluation mode, mean over folds) against pooled held-out accuracy: "
                     f"{'; '.join(parts)} ({ONE_RUN_ORDER}).")
    if unrecorded:
        lines.append(f"{', '.join(unrecorded)}: made before folds recorded their training fit, so no gap is shown.")
    return " ".join(lines) or "No run to compare."


def describe_subject_leaders(accuracy: pd.DataFrame) -> str:
    """One sentence on a per-subject accuracy table (rows: held-out subjects, columns: models of one run each): on
    how many subjects each model alone has the highest accuracy, how many subjects are ties (no model is credited
    with a tie), and the widest gap between models on one subject. A description of these runs, not a ranking."""
    if accuracy.shape[1] < 2:
        return "One model only: no model to compare it with on each subject."
    top = accuracy.eq(accuracy.max(axis=1), axis=0)
    alone = top[top.sum(axis=1) == 1].idxmax(axis=1).value_counts()
    ties = int((top.sum(axis=1) > 1).sum())
    leaders = ", ".join(f"{m} {int(alone.get(m, 0))}" for m in accuracy.columns)
    spread = accuracy.max(axis=1) - accuracy.min(axis=1)
    text = (f"Subjects on which a model alone has the highest accuracy in this run ({ONE_RUN_ORDER}): {leaders}; "
            f"tied: {ties} of {len(accuracy)}.")
    if spread.max() > 0:
        text += f" The widest gap between models on one subject is {spread.max():.2f} (subject {spread.idxmax()})."
    return text


def paired_comparisons(predictions: dict[str, pd.DataFrame], ours: str, labels: list | None = None,
                       metric: str = "UF1", n_boot: int = 2000) -> list[str]:
    """One Markdown line per other row of a single-seed ranking: ``ours`` minus it, with the interval of a
    paired subject bootstrap (:func:`convat.metrics.paired_seed_test` with one run each; ceiling rows left out),
    and whether the subjects tell them apart. A closing line says what such an interval leaves out: the
    training seed's variance, so no line here ranks architectures."""
    from convat.metrics import paired_seed_test

    lines = []
    for other, frame in predictions.items():
        if other == ours or other in CEILING_ROWS:
            continue
        t = paired_seed_test([predictions[ours]], [frame], labels=labels, metric=metric, n_boot=n_boot)
        apart = t["low"] > 0 or t["high"] < 0
        lines.append(f"- {other}: {ours} − {other} = {t['difference']:+.3f} (paired over subjects, 95 % "
                     f"{t['low']:+.3f} to {t['high']:+.3f}): "
                     + ("the subjects tell them apart" if apart else "the subjects cannot tell them apart"))
    lines.append("\nOne training seed: these intervals hold the subjects' variance but not the training seed's, so "
                 "none of them ranks architectures; the study below does, over seeds.")
    return lines
