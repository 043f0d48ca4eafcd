"""Protocol pitfalls, each measured by one function: the mistakes that inflate published micro-expression scores.

* :func:`random_vs_loso` (:func:`protocol_runs`, :func:`compare_protocols`): a random split lets a subject's
  clips sit on both sides of the split.
* :func:`epoch_trace` + :func:`compare_epoch_selection`: choosing the epoch on the held-out subject (a leak)
  against a fixed budget and against an inner validation split drawn from the training subjects only.
* :func:`pooled_vs_fold_mean` and :func:`accuracy_vs_macro`: per-fold averages and accuracy against the pooled
  UF1 / UAR of the MEGC protocol, on imbalanced classes.
* :func:`metric_mixup`: macro precision reported as "UAR", on STSTNet's published per-sample predictions.
* :func:`reachability_table`: which accuracies can be a pooled accuracy ``k / n`` over a dataset's clips.
* :data:`PUBLISHED_COMPOSITE` and :func:`composite_comparison`: published MEGC2019 composite results next to
  what this implementation obtains.

The training effects run through the same fold engine as the LOSO chapter (:mod:`convat.loso`), so the runs
are cached and shared between chapters.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd

from convat.data.errata import PROTOCOL_COUNTS
from convat.folds import FoldResult, Splits, fold_predictions, run_folds
from convat.loso import LosoRun, cached_run, fold_inputs, loso_splits, random_splits, run_identity, run_key
from convat.metrics import accuracy, macro_precision, subject_key, uar, uf1
from convat.runstore import RunStore, default_cache_dir
from convat.training.loop import TrainConfig, predict_proba, train_model

# --------------------------------------------------------------------------------------------------------------
# Scores of a predictions table


def _classes_of(predictions: pd.DataFrame) -> list:
    """Every class that occurs as a label or as a prediction."""
    return sorted(set(predictions["label"]) | set(predictions["prediction"]))


def scores(predictions: pd.DataFrame, labels: Sequence | None = None) -> dict[str, float]:
    """Pooled UF1, UAR and accuracy of a table with ``label`` and ``prediction`` columns."""
    labels = list(labels) if labels is not None else _classes_of(predictions)
    y, p = predictions["label"], predictions["prediction"]
    return {"UF1": uf1(y, p, labels), "UAR": uar(y, p, labels), "accuracy": accuracy(y, p)}


# --------------------------------------------------------------------------------------------------------------
# 1. Random split against leave-one-subject-out


def subject_overlap(table: pd.DataFrame, splits: Splits) -> float:
    """Share of test clips whose subject also has clips in that fold's training set (LOSO: 0 by construction)."""
    ids = subject_key(table).to_numpy()
    shared = 0
    total = 0
    for mask in splits.values():
        mask = np.asarray(mask, dtype=bool)
        train_subjects = set(ids[~mask])
        shared += sum(s in train_subjects for s in ids[mask])
        total += int(mask.sum())
    return shared / total if total else 0.0


def protocol_runs(
    x: np.ndarray, table: pd.DataFrame, config: TrainConfig, k: int = 5, seed: int = 0, progress: bool = False,
    cache_dir: str | Path | None = None, parallel_folds: int = 1,
) -> dict[str, tuple[Splits, LosoRun]]:
    """The same model and budget run by LOSO and by ``k`` stratified random folds that ignore subjects.

    Returns ``{protocol: (splits, run)}``: the runs themselves (pooled predictions, curves, folder), so a page can
    say which were served and which trained (:func:`convat.book.cache_note`). The LOSO run is requested exactly as
    the LOSO and results chapters request it (default folds), so it is the same cached run, or, without
    ``cache_dir``, the committed smoke-test grid's cell where that is exactly this run
    (:func:`convat.experiments.study.bundled_run`).
    """
    from convat.experiments.study import bundled_run

    random = random_splits(table, k, seed)
    loso = (cached_run(x, table, config, progress=progress, cache_dir=cache_dir, parallel_folds=parallel_folds)
            if cache_dir is not None else bundled_run(x, table, config, progress=progress,
                                                      parallel_folds=parallel_folds))
    return {
        "LOSO": (loso_splits(table), loso),
        f"random {k}-fold": (random, cached_run(x, table, config, progress=progress, splits=random,
                                                cache_dir=cache_dir, parallel_folds=parallel_folds)),
    }


def compare_protocols(table: pd.DataFrame,
                      runs: Mapping[str, tuple[Splits, pd.DataFrame | LosoRun]]) -> pd.DataFrame:
    """One row per protocol: folds, the share of test clips whose subject was trained on, pooled scores. Each
    protocol's second item is its pooled predictions or a run holding them (:func:`protocol_runs`)."""
    labels = sorted(table["label"].unique())
    rows = {name: {"folds": len(splits), "test clips whose subject was trained on": subject_overlap(table, splits),
                   **scores(getattr(run, "predictions", run), labels)} for name, (splits, run) in runs.items()}
    return pd.DataFrame.from_dict(rows, orient="index")


def linear_protocols(x: np.ndarray, table: pd.DataFrame, k: int = 5, seed: int = 0) -> pd.DataFrame:
    """:func:`compare_protocols` for the class-balanced logistic regression (a model that fits its training
    clips, unlike a deep model at a short budget), with its mean training accuracy per protocol."""
    from convat.experiments.synth_difficulty import linear_baseline

    splits = {"LOSO": loso_splits(table), f"random {k}-fold": random_splits(table, k, seed)}
    runs = {name: (s, linear_baseline(x, table, s)) for name, s in splits.items()}
    out = compare_protocols(table, runs)
    out["training accuracy"] = [runs[name][1].attrs["train_accuracy"] for name in out.index]
    return out


def describe_fitted_gap(protocols: pd.DataFrame, random_name: str, threshold: float = 0.9) -> str:
    """The random-split check in one sentence for a model given by :func:`linear_protocols`: its UF1 gap (random
    minus LOSO), and whether the model fits its training clips (mean training accuracy at least ``threshold``)
    so that the gap is not an artefact of a model that learnt nothing."""
    from convat.metrics import compare_runs

    gap = protocols.loc[random_name, "UF1"] - protocols.loc["LOSO", "UF1"]
    fit = protocols.loc["LOSO", "training accuracy"]
    fits = (f"fits its training clips (accuracy {fit:.2f})" if fit >= threshold else
            f"does **not** fit its training clips (accuracy {fit:.2f}), so its gap says little")
    size = compare_runs(gap, 0.0)
    what = ("about the same UF1 under both protocols" if size == "about the same" else
            f"{abs(gap):.3f} UF1 {'higher' if gap > 0 else 'lower'} under the random split than under LOSO")
    return f"The logistic regression {fits}; it scores {what} ({gap:+.3f})."


def describe_protocol_gap(protocols: pd.DataFrame, random_name: str, data_name: str,
                          seed_sd: float | None = None) -> str:
    """The random-split check of a trained model (:func:`compare_protocols`) in one sentence: how many test clips
    of the random split come from subjects it trained on, and its UF1 gap (random minus LOSO), called a
    difference only when larger than √2 × ``seed_sd`` (``seed_sd``: how far the training seed alone moves one
    run's UF1, :func:`convat.experiments.study.measured_seed_sd`; the gap is a difference of two runs) and than
    :data:`convat.metrics.NEGLIGIBLE`."""
    from convat.metrics import NEGLIGIBLE, compare_runs

    gap = float(protocols.loc[random_name, "UF1"] - protocols.loc["LOSO", "UF1"])
    overlap = protocols.loc[random_name, "test clips whose subject was trained on"]
    if seed_sd is not None and seed_sd * math.sqrt(2) > NEGLIGIBLE:  # two runs, each with its seed's spread
        threshold = seed_sd * math.sqrt(2)
        yardstick = (f"the {threshold:.3f} by which the training seed alone moves a difference of two runs "
                     f"(√2 × this model's seed SD of {seed_sd:.3f})")
    else:
        threshold, yardstick = NEGLIGIBLE, f"the {NEGLIGIBLE} that one small run cannot resolve"
    size = compare_runs(gap, 0.0, threshold)
    if size == "about the same":
        verdict = (f"scores about the same UF1 as LOSO ({gap:+.3f}, within {yardstick}): this run cannot show what "
                   "the subject overlap buys")
    elif gap > 0:
        verdict = (f"scores {gap:.3f} UF1 *higher* than LOSO, more than {yardstick}: the optimistic bias the subject "
                   "overlap allows")
    else:
        verdict = (f"scores {-gap:.3f} UF1 *lower* than LOSO on this run, more than {yardstick}: on so few clips the "
                   "split's own noise can outweigh the subject overlap, so a single small run does not show the bias")
    return (f"In the random split, {overlap:.0%} of the test clips come from a subject the model was trained on "
            f"(LOSO: none, by construction). On {data_name}, the random split {verdict}.")


def random_vs_loso(
    x: np.ndarray, table: pd.DataFrame, config: TrainConfig, k: int = 5, seed: int = 0, progress: bool = False,
    cache_dir: str | Path | None = None, parallel_folds: int = 1,
) -> pd.DataFrame:
    """:func:`compare_protocols` of :func:`protocol_runs`: LOSO against a random ``k``-fold split."""
    return compare_protocols(table, protocol_runs(x, table, config, k, seed, progress, cache_dir, parallel_folds))


# --------------------------------------------------------------------------------------------------------------
# 2. Epoch selection: fixed budget, best epoch on the test subject (the leak), inner validation


def trace_fold(
    x: np.ndarray, table: pd.DataFrame, fold: str, test_mask: np.ndarray, classes: list[str], config: TrainConfig,
    inner_fraction: float = 0.2,
) -> pd.DataFrame:
    """Train one fold and record every epoch's predictions for the test clips and the inner-validation clips.

    The model trains on the training subjects minus an inner-validation group of them, prepared exactly as the
    LOSO engine prepares a fold (:func:`convat.loso.fold_inputs`); nothing about the test subject (not even
    the input scaling) enters training. The three epoch-selection rules then read this one run, so they differ
    only in which epoch's predictions each keeps. Rows: ``fold, epoch, role`` (``test`` or ``val``), the clip's
    identity, ``label``, ``prediction`` and ``nll`` (the clip's negative log-likelihood of its label).
    """
    return _trace_fold(x, table, fold, test_mask, classes, config, inner_fraction).curve


def _trace_fold(x, table, fold, test_mask, classes, config, inner_fraction) -> FoldResult:
    """:func:`trace_fold` for the fold engine: the last epoch's test predictions (the fixed budget) and the
    trace as the fold's curve."""
    if not inner_fraction > 0:
        raise ValueError(f"inner_fraction must be > 0 (the share of training subjects kept for validation), "
                         f"got {inner_fraction}")
    data = fold_inputs(x, table, fold, classes, replace(config, val_fraction=inner_fraction), test_mask)
    val = ~data.test & ~data.fit
    rows, last = [], {}

    def record(epoch, model, _loss):
        for role, xs, mask in (("test", data.x_test, data.test), ("val", data.val[0], val)):
            proba = predict_proba(model, xs, amp=config.amp)
            part = table.loc[mask, ["dataset", "subject", "clip", "label"]].reset_index(drop=True)
            part["prediction"] = [classes[i] for i in proba.argmax(1)]
            part["nll"] = -np.log(np.clip(proba[np.arange(len(proba)), data.y[mask]], 1e-12, None)).astype(np.float64)
            part["fold"], part["epoch"], part["role"] = fold, epoch + 1, role
            rows.append(part)
            last[role] = proba

    train_model(data.x_fit, data.y[data.fit], len(classes), replace(config, val_fraction=0.0), on_epoch=record)
    return FoldResult(fold_predictions(table, data.test, classes, last["test"], fold),
                      pd.concat(rows, ignore_index=True))


def _pool_trace_fold(shared, table, classes, config, inner_fraction, fold, mask) -> FoldResult:
    """:func:`_trace_fold` in a pool worker (``x`` arrives memory-mapped, see :func:`convat.pool.map_folds`)."""
    return _trace_fold(shared.load(), table, fold, mask, classes, config, inner_fraction)


def epoch_trace(
    x: np.ndarray, table: pd.DataFrame, config: TrainConfig, splits: Splits | None = None,
    inner_fraction: float = 0.2, progress: bool = False, cache_dir: str | Path | None = None,
    cache: bool = True, parallel_folds: int = 1,
) -> pd.DataFrame:
    """:func:`trace_fold` over every fold (default: LOSO), through the fold engine: with ``cache``, a run folder
    under ``$CONVAT_CACHE/runs`` (or ``cache_dir``) that is checked and resumed like a LOSO run, the trace of each
    fold kept as its curve and the last epoch's predictions as its predictions.

    ``parallel_folds=N`` traces N folds at a time in the worker pool (:mod:`convat.pool`; the cores are split
    between the workers), as the LOSO engine's ``parallel_folds`` does; the run folder is the same either way.
    """
    if parallel_folds < 1:
        raise ValueError(f"parallel_folds must be >= 1, got {parallel_folds}")
    classes = sorted(table["label"].unique())
    splits = splits if splits is not None else loso_splits(table)
    traces: dict[str, pd.DataFrame] = {}

    def fit_predict(fold: str, mask: np.ndarray) -> FoldResult:
        return _trace_fold(x, table, fold, mask, classes, config, inner_fraction)

    def execute(todo):
        if parallel_folds > 1 and len(todo) > 1:
            from convat.pool import map_folds

            results = map_folds(_pool_trace_fold, x, dict(todo), parallel_folds, table, classes, config,
                                inner_fraction)
        else:
            results = ((fold, fit_predict(fold, np.asarray(mask, dtype=bool))) for fold, mask in todo.items())
        for fold, result in results:
            traces[fold] = result.curve
            yield fold, result

    store = identity = None
    if cache:
        base = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "runs"
        tag = hashlib.sha256(f"{run_key(x, table, config, splits)}-{inner_fraction}".encode()).hexdigest()
        store = RunStore(base / f"epochs-{config.model}-{tag[:24]}")
        identity = {**run_identity(x, table, config, splits), "epoch_trace": {"inner_fraction": inner_fraction}}
    run_folds(table, splits, store=store, identity=identity, execute=execute, progress=progress,
              desc="epoch trace")
    if store is not None:
        return store.read_curves(list(splits))
    return pd.concat([traces[fold] for fold in splits], ignore_index=True)


def _pick(trace: pd.DataFrame, role: str, score, labels: list[str], latest: bool) -> dict[str, int]:
    """Per fold, the epoch whose ``role`` clips score best (``score(group)`` is compared as a tuple).

    Ties go to the later epoch with ``latest`` (the fixed budget's side), else to the earlier one.
    """
    chosen = {}
    for fold, group in trace[trace["role"] == role].groupby("fold", sort=True):
        best_key, best_epoch = None, None
        for epoch, g in group.groupby("epoch", sort=True):
            key = score(g, labels)
            if best_key is None or key > best_key or (latest and key == best_key):
                best_key, best_epoch = key, int(epoch)
        chosen[fold] = best_epoch
    return chosen


def _correct(g: pd.DataFrame, _labels) -> tuple:
    return (int((g["label"] == g["prediction"]).sum()),)


def _validation_score(g: pd.DataFrame, labels) -> tuple:
    """The engine's model-selection score: validation UF1, ties broken by the lower validation loss."""
    loss = float(g["nll"].mean()) if "nll" in g else 0.0
    return (uf1(g["label"], g["prediction"], labels), -loss)


def select_epochs(trace: pd.DataFrame, rule: str, labels: Sequence | None = None) -> dict[str, int]:
    """The epoch each fold keeps under a selection ``rule``.

    * ``fixed``: the last epoch of the budget, for every fold.
    * ``best-on-test``: the epoch with the most correct test clips (the leak: the test subject decides).
    * ``inner-val``: the epoch with the best UF1 on the inner-validation subjects (training subjects only; ties:
      the lower validation loss, then the earlier epoch), the LOSO engine's rule with ``val_fraction > 0``.
    """
    labels = list(labels) if labels is not None else _classes_of(trace)
    if rule == "fixed":
        last = int(trace["epoch"].max())
        return {fold: last for fold in sorted(trace["fold"].unique())}
    if rule == "best-on-test":
        return _pick(trace, "test", _correct, labels, latest=True)
    if rule == "inner-val":
        return _pick(trace, "val", _validation_score, labels, latest=False)
    raise ValueError(f"unknown epoch-selection rule {rule!r}; choose one of {list(SELECTION_RULES)}")


SELECTION_RULES = {
    "fixed": "fixed budget (last epoch)",
    "best-on-test": "best epoch on the test subject (leak)",
    "inner-val": "inner validation (training subjects only)",
}


def selected_predictions(trace: pd.DataFrame, rule: str, labels: Sequence | None = None) -> pd.DataFrame:
    """The test predictions each fold keeps under ``rule`` (one row per test clip)."""
    chosen = select_epochs(trace, rule, labels)
    test = trace[trace["role"] == "test"]
    keep = test["epoch"].to_numpy() == test["fold"].map(chosen).to_numpy()
    return test[keep].reset_index(drop=True)


def compare_epoch_selection(trace: pd.DataFrame, labels: Sequence | None = None) -> pd.DataFrame:
    """Pooled UF1 / UAR / accuracy of the three selection rules on the same training runs."""
    labels = list(labels) if labels is not None else _classes_of(trace)
    rows = {}
    for rule, name in SELECTION_RULES.items():
        chosen = select_epochs(trace, rule, labels)
        rows[name] = {**scores(selected_predictions(trace, rule, labels), labels),
                      "mean epoch kept": float(np.mean(list(chosen.values())))}
    return pd.DataFrame.from_dict(rows, orient="index")


def scores_by_epoch(trace: pd.DataFrame, role: str = "test", labels: Sequence | None = None) -> pd.DataFrame:
    """Pooled scores if every fold kept the same epoch: one row per epoch."""
    labels = list(labels) if labels is not None else _classes_of(trace)
    part = trace[trace["role"] == role]
    return pd.DataFrame({epoch: scores(g, labels) for epoch, g in part.groupby("epoch")}).T.rename_axis("epoch")


# --------------------------------------------------------------------------------------------------------------
# 3. Pooled scores against per-fold averages and accuracy


def pooled_vs_fold_mean(predictions: pd.DataFrame, labels: Sequence | None = None, fold: str = "fold") -> pd.DataFrame:
    """Scores pooled over all folds (the MEGC protocol) against the mean of per-fold scores.

    A fold is one subject with a handful of clips, often of one or two classes only; its UF1 and UAR average
    over the classes present in that fold, so per-fold means reward folds that are easy by their label mix.
    """
    labels = list(labels) if labels is not None else _classes_of(predictions)
    per_fold = pd.DataFrame({name: scores(group, labels) for name, group in predictions.groupby(fold)}).T
    rows = {"pooled over all folds (MEGC)": scores(predictions, labels),
            "mean of per-fold scores": per_fold.mean().to_dict()}
    return pd.DataFrame.from_dict(rows, orient="index")


def majority_predictions(labels: Sequence) -> pd.DataFrame:
    """A 'model' that always answers the most frequent class (ties: the first in sorted order)."""
    labels = pd.Series(list(labels), name="label")
    counts = labels.value_counts()
    majority = sorted(counts[counts == counts.max()].index)[0]
    return pd.DataFrame({"label": labels, "prediction": majority})


def accuracy_vs_macro(predictions: pd.DataFrame, labels: Sequence | None = None,
                      name: str = "model") -> pd.DataFrame:
    """Accuracy against UF1 / UAR for a model and for the majority-class answer on the same labels."""
    labels = list(labels) if labels is not None else _classes_of(predictions)
    rows = {name: scores(predictions, labels),
            "always the majority class": scores(majority_predictions(predictions["label"]), labels)}
    return pd.DataFrame.from_dict(rows, orient="index")


def averaging_effect(predictions: pd.DataFrame, labels: Sequence | None = None) -> dict[str, float]:
    """How far the per-fold mean moves UF1 and UAR from the pooled scores, and what the majority answer scores."""
    table = pooled_vs_fold_mean(predictions, labels)
    majority = accuracy_vs_macro(predictions, labels).loc["always the majority class"]
    shift = table.loc["mean of per-fold scores"] - table.loc["pooled over all folds (MEGC)"]
    return {"UF1 shift": float(shift["UF1"]), "UAR shift": float(shift["UAR"]),
            "majority accuracy": float(majority["accuracy"]), "majority UF1": float(majority["UF1"])}


# --------------------------------------------------------------------------------------------------------------
# 4. The UAR / precision mix-up on STSTNet's published predictions

#: STSTNet (Liong et al., FG 2019) on the MEGC2019 composite, as published.
STSTNET_PUBLISHED = {"UF1": 0.7353, "UAR": 0.7605}


def published_predictions() -> pd.DataFrame:
    """STSTNet's published per-sample LOSO predictions on the 442 composite clips (``fold`` = its subject)."""
    from convat.data import composite_list_path

    table = pd.read_csv(composite_list_path(), dtype={"subject": str, "clip": str})
    table = table.rename(columns={"ststnet_pred": "prediction"})
    table["fold"] = subject_key(table)
    return table


def metric_mixup(predictions: pd.DataFrame, by: str | None = "dataset",
                 labels: Sequence | None = None) -> pd.DataFrame:
    """UF1, UAR (macro recall) and macro precision, pooled, for all clips and per group."""
    labels = list(labels) if labels is not None else _classes_of(predictions)

    def row(df):
        y, p = df["label"], df["prediction"]
        return {"n": len(df), "UF1": uf1(y, p, labels), "UAR (macro recall)": uar(y, p, labels),
                "macro precision": macro_precision(y, p, labels)}

    rows = {"all": row(predictions)}
    if by is not None:
        rows.update({str(name): row(group) for name, group in predictions.groupby(by, sort=True)})
    return pd.DataFrame.from_dict(rows, orient="index")


def describe_metric_mixup(mixup: pd.DataFrame, published: Mapping[str, float] = STSTNET_PUBLISHED) -> str:
    """The metric mix-up in one paragraph: the ``published`` UF1 and "UAR" beside the scores recomputed from the
    published predictions (:func:`metric_mixup`), and which recomputed column the published "UAR" is (to the four
    decimals papers print): the true UAR (macro recall), the macro precision (the mix-up), or neither."""
    row = mixup.loc["all"]
    true_uar, precision = row["UAR (macro recall)"], row["macro precision"]
    head = (f'Published: UF1 {published["UF1"]:.4f}, "UAR" {published["UAR"]:.4f}. Recomputed from the published '
            f"predictions: UF1 {row['UF1']:.4f}, UAR {true_uar:.4f}, macro precision {precision:.4f}. ")
    gap = published["UAR"] - true_uar
    if round(abs(gap), 4) == 0:
        return head + 'The published "UAR" is the true UAR (macro recall).'
    if round(abs(published["UAR"] - precision), 4) == 0:
        return (head + f'The published "UAR" is the **macro precision**; the true UAR is {abs(gap):.4f} '
                f"{'lower' if gap > 0 else 'higher'}. Macro precision is not a MEGC metric, and a comparison table "
                "that mixes the two columns compares different quantities.")
    return (head + f'The published "UAR" is neither: {abs(gap):.4f} from the recomputed UAR and '
            f"{abs(published['UAR'] - precision):.4f} from the macro precision.")


# --------------------------------------------------------------------------------------------------------------
# 5. Which accuracies are reachable fractions k / n

#: The paper's reported accuracies (percent, two decimals), one per dataset.
PAPER_ACCURACIES = {"SMIC": 97.95, "CASME II": 97.65, "SAMM": 98.73}

#: Clip counts of the usual evaluation sets of each dataset (the protocol counts from
#: :data:`convat.data.errata.PROTOCOL_COUNTS`: SAMM 5-class is 136 clips, its composite 3-class part 133).
DATASET_SIZES = {
    "SMIC": {"SMIC-HS, 3 classes": PROTOCOL_COUNTS[("smic", "megc3")]},
    "CASME II": {"CASME II, all clips": 255, "CASME II, 5 classes": PROTOCOL_COUNTS[("casme2", "5class")]},
    "SAMM": {"SAMM, all micro-expressions": 159, "SAMM, 5 classes": PROTOCOL_COUNTS[("samm", "5class")],
             "SAMM, composite 3 classes": PROTOCOL_COUNTS[("samm", "megc3")]},
}


ROUNDINGS = ("half-up", "truncate")


def reachable_counts(n: int, percent: float, decimals: int = 2, rounding: str = "half-up") -> list[int]:
    """Every ``k`` such that ``100 k / n`` is written ``percent`` at ``decimals`` decimals.

    ``rounding`` is ``half-up`` (97.645 -> 97.65) or ``truncate`` (97.649 -> 97.64), exact in rationals.
    """
    if n <= 0:
        raise ValueError(f"n must be a positive clip count, got {n}")
    if rounding not in ROUNDINGS:
        raise ValueError(f"unknown rounding {rounding!r}; choose one of {list(ROUNDINGS)}")
    target = Fraction(str(percent))
    step = Fraction(1, 10**decimals)
    lo, hi = (target - step / 2, target + step / 2) if rounding == "half-up" else (target, target + step)
    return [k for k in range(n + 1) if lo <= Fraction(100 * k, n) < hi]


def nearest_fractions(n: int, percent: float) -> tuple[int, int]:
    """The counts ``k`` whose ``k / n`` lie just below (or at) and just above ``percent``."""
    below = int(np.floor(Fraction(str(percent)) * n / 100))
    return below, min(n, below + 1)


def smallest_denominator(percent: float, decimals: int = 2, rounding: str = "half-up") -> int:
    """The fewest clips for which some pooled accuracy ``k / n`` is written ``percent``."""
    n = 1
    while not reachable_counts(n, percent, decimals, rounding):
        n += 1
    return n


def reachability_table(claims: Mapping[str, float] | None = None,
                       sizes: Mapping[str, Mapping[str, int]] | None = None, decimals: int = 2,
                       rounding: str = "half-up") -> pd.DataFrame:
    """For each claimed accuracy and each candidate clip count: the nearest fractions and whether any rounds to it."""
    claims = claims if claims is not None else PAPER_ACCURACIES
    sizes = sizes if sizes is not None else DATASET_SIZES
    rows = []
    for dataset, percent in claims.items():
        for name, n in sizes.get(dataset, {}).items():
            lo, hi = nearest_fractions(n, percent)
            hits = reachable_counts(n, percent, decimals, rounding)
            rows.append({
                "dataset": dataset, "evaluation set": name, "clips n": n, "reported %": percent,
                "nearest below": f"{lo}/{n} = {100 * lo / n:.{decimals}f}",
                "nearest above": f"{hi}/{n} = {100 * hi / n:.{decimals}f}",
                "k/n that round to it": ", ".join(f"{k}/{n}" for k in hits) or "none",
                "can be a pooled accuracy": bool(hits),
            })
    return pd.DataFrame(rows)


def reachability_findings(table: pd.DataFrame | None = None) -> list[str]:
    """One Markdown sentence per claimed accuracy: reachable as a pooled ``k / n`` on its evaluation sets or not."""
    table = table if table is not None else reachability_table()
    lines = []
    for dataset, rows in table.groupby("dataset", sort=False):
        percent = float(rows["reported %"].iloc[0])
        ok = rows[rows["can be a pooled accuracy"]]
        if ok.empty:
            truncated = any(reachable_counts(int(n), percent, rounding="truncate") for n in rows["clips n"])
            sets = ", ".join(f"{n}" for n in rows["clips n"])
            lines.append(
                f"**{dataset} {percent:.2f} %** is no *k*/*n* for *n* = {sets} clips, rounded "
                f"({'but it is one when truncated' if truncated else 'nor truncated'}); the fewest clips for which "
                f"some *k*/*n* rounds to it is {smallest_denominator(percent)}. It cannot be a pooled accuracy "
                "on these sets.")
        else:
            hits = "; ".join(f"{r['k/n that round to it']} ({r['evaluation set']})" for _, r in ok.iterrows())
            lines.append(f"**{dataset} {percent:.2f} %** is reachable: {hits}. It can be a pooled accuracy on that "
                         "set, which does not show that it is one.")
    return lines


def describe_reachability(table: pd.DataFrame | None = None) -> str:
    """One sentence over :func:`reachability_table`: which datasets' reported accuracies cannot be a pooled
    ``k / n`` on any of their evaluation sets, and which can, on which of their sets (a table without the
    ``evaluation set`` column: which datasets only)."""
    table = table if table is not None else reachability_table()
    if table.empty:
        return "No reported accuracy to check."
    reachable = list(dict.fromkeys(table.loc[table["can be a pooled accuracy"], "dataset"]))
    unreachable = [d for d in dict.fromkeys(table["dataset"]) if d not in reachable]
    head = (f"On these evaluation sets, the reported accuracy for {' and '.join(unreachable)} cannot be a pooled "
            "accuracy" if unreachable else "Every reported accuracy is reachable on at least one evaluation set")
    ones = "the one" if len(reachable) == 1 else "the ones"
    if not (reachable and unreachable):
        return head + "."
    if "evaluation set" not in table.columns:
        return head + f"; {ones} for {' and '.join(reachable)} can be."
    named = table["evaluation set"] + (" (" + table["clips n"].astype(str) + " clips)" if "clips n" in table else "")
    where = []  # a reachable dataset's accuracy is pooled only on some of its sets: name them
    for dataset in reachable:
        ok = table.loc[table["dataset"] == dataset, "can be a pooled accuracy"]
        where.append(f"the one for {dataset} can be, on {' or '.join(named[ok[ok].index])}"
                     + (f" but not on {' or '.join(named[ok[~ok].index])}" if (~ok).any() else ""))
    return head + "; " + "; ".join(where) + "."


# --------------------------------------------------------------------------------------------------------------
# 6. Published MEGC2019 composite results

#: Published results on the MEGC2019 composite (442 clips, 68 subjects, 3 classes), as their papers report them.
PUBLISHED_COMPOSITE = pd.DataFrame([
    {"method": "STSTNet", "source": "Liong et al., FG 2019 (MEGC2019)", "UF1": 0.7353, "UAR": 0.7605,
     "protocol": "LOSO, pooled; the published 'UAR' is macro precision (macro recall of its own per-sample "
                 "log: 0.7186)"},
    {"method": "HTNet", "source": "Wang et al., Neurocomputing 2024 (arXiv 2307.14637)", "UF1": 0.8603,
     "UAR": 0.8475,
     "protocol": "LOSO, pooled; its training script keeps each subject's best test epoch (Varanka et al., "
                 "IEEE TAC 2024, measure what this selection adds)"},
    {"method": "CausalNet", "source": "Zhang, Tang and Chen, ICCV 2025 (arXiv 2508.06640)", "UF1": 0.8976,
     "UAR": 0.9020,
     "protocol": "LOSO, pooled; its released training script scores the test subject after every epoch, keeps "
                 "each subject's best test epoch, stops a subject once its test accuracy reaches 1.0, and "
                 "picks among a grid of configurations on the same test predictions"},
])


def describe_comparability(dataset: str) -> str:
    """Whether rows of ours computed on ``dataset`` compare with the published composite rows: never on SynthME
    (generated by this package, because the real datasets cannot be used in a public build), only through the
    protocol column on the MEGC2019 composite, and not at all on another dataset or class set."""
    if dataset == "synthme":
        return ("**The ConVAT rows above are not comparable with the published rows.** They come from SynthME, a "
                "synthetic dataset generated by this package, because the real datasets are licence-restricted and "
                "cannot be used in a public build. They show how the protocol choices move the score on one dataset; "
                "the composite numbers come from running this chapter on the real data (see the real-data chapter).")
    if dataset == "megc2019":
        return ("The ConVAT rows above come from the MEGC2019 composite, the data of the published rows. They still "
                "differ from them in protocol (the protocol column states it row by row), preprocessing and "
                "implementation, and each is one training seed: a difference from a published row smaller than "
                "the training seed's spread (section 1) is not a finding.")
    return (f"The ConVAT rows above come from `{dataset}`, not from the MEGC2019 composite: they are **not** "
            "comparable with the published composite rows (other clips, subjects or classes); set "
            '`DATASET = "megc2019"` to compare.')


#: The data of every published composite row (:data:`PUBLISHED_COMPOSITE`).
COMPOSITE_DATA = "MEGC2019 composite (real, 442 clips)"


def composite_comparison(ours: Mapping[str, Mapping[str, float]] | None = None,
                         ours_data: str = "this implementation's data") -> pd.DataFrame:
    """:data:`PUBLISHED_COMPOSITE` followed by this implementation's rows (``{row name: {UF1, UAR, protocol}}``),
    with a ``data`` column first: :data:`COMPOSITE_DATA` for the published rows, ``ours_data`` for ours (on
    SynthME the two are not comparable, and the column says so in every row)."""
    table = PUBLISHED_COMPOSITE.assign(data=COMPOSITE_DATA)
    extra = [{"method": name, "source": "this implementation", "data": ours_data, **values}
             for name, values in (ours or {}).items()]
    if extra:
        table = pd.concat([table, pd.DataFrame(extra)], ignore_index=True)
    return table.set_index("method")[["data", *[c for c in table.columns if c not in ("method", "data")]]]
