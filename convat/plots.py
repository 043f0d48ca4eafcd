"""Figures shared by the chapters: confusion matrices and flow visualisations."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from convat.metrics import confusion, subject_key


def plot_confusion(
    y_true: Sequence, y_pred: Sequence, labels: Sequence, ax: plt.Axes | None = None, title: str = "",
    normalize: bool = False, cbar: bool = True,
) -> plt.Axes:
    """Heat map of the confusion matrix; counts, or row-normalised recall with ``normalize=True``."""
    cm = confusion(y_true, y_pred, labels).astype(float)
    if normalize:
        cm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    ax = ax or plt.subplots(figsize=(3.6, 3.2))[1]
    sns.heatmap(
        cm, annot=True, fmt=".2f" if normalize else ".0f", cmap="Blues", cbar=cbar, square=True,
        xticklabels=labels, yticklabels=labels, ax=ax, vmin=0,
    )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    return ax


def plot_subject_confusions(
    predictions, labels: Sequence, cols: int = 5, normalize: bool = False, size: float = 2.1,
    title: str = "",
) -> plt.Figure:
    """A grid of per-subject confusion matrices (one small heat map per held-out subject, shared colour scale).

    Rows of classes a subject never shows stay empty; the subject name and its accuracy head each panel.
    """
    keys = subject_key(predictions)
    subjects = sorted(keys.unique())
    rows = int(np.ceil(len(subjects) / cols))
    cols = min(cols, len(subjects))
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, 1.2 * size * rows + 0.4), squeeze=False)
    vmax = 1.0 if normalize else max(
        confusion(g["label"], g["prediction"], labels).max() for _, g in predictions.groupby(keys))
    short = [str(c)[:3] for c in labels]
    for ax, subject in zip(axes.ravel(), subjects, strict=False):
        g = predictions[keys == subject]
        cm = confusion(g["label"], g["prediction"], labels).astype(float)
        if normalize:
            cm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
        sns.heatmap(cm, annot=True, fmt=".1f" if normalize else ".0f", cmap="Blues", cbar=False, square=True,
                    vmin=0, vmax=vmax, xticklabels=short, yticklabels=short, ax=ax, annot_kws={"size": 7})
        acc = float((g["label"] == g["prediction"]).mean())
        ax.set_title(f"{subject.split('/', 1)[-1]}  ({acc:.0%})", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(subjects):]:
        ax.axis("off")
    fig.supxlabel("predicted", fontsize=9)
    fig.supylabel("true", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_subject_accuracy(runs: dict, ax: plt.Axes | None = None) -> plt.Axes:
    """Per-subject accuracy bars, one colour per model (``runs``: ``{model: predictions}``), chance as a line."""
    import pandas as pd

    frames = []
    for name, predictions in runs.items():
        keys = subject_key(predictions)
        acc = (predictions["label"] == predictions["prediction"]).groupby(keys).mean()
        frames.append(pd.DataFrame({"subject": [k.split("/", 1)[-1] for k in acc.index], "accuracy": acc.values,
                                    "model": name}))
    data = pd.concat(frames, ignore_index=True)
    ax = ax or plt.subplots(figsize=(max(6.0, 0.45 * data["subject"].nunique() * max(1, len(runs)) ** 0.5), 3.2))[1]
    sns.barplot(data=data, x="subject", y="accuracy", hue="model", ax=ax)
    first = next(iter(runs.values()))
    ax.axhline(1 / first["label"].nunique(), color="grey", ls="--", lw=1, label="chance (uniform)")
    ax.set_ylim(0, 1)
    ax.set_xlabel("held-out subject")
    ax.tick_params(axis="x", labelrotation=90 if data["subject"].nunique() > 20 else 0)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return ax


def plot_training_curves(curves: dict, metric: str = "loss", ax: plt.Axes | None = None) -> plt.Axes:
    """Per-epoch ``metric`` of every fold (thin) and the mean over folds (thick), one colour per model.

    ``curves``: ``{model: curves table}`` with columns ``fold``, ``epoch`` and ``metric`` (as written by
    :func:`convat.loso.run_loso`); models without that column are skipped.
    """
    ax = ax or plt.subplots(figsize=(5.0, 3.2))[1]
    palette = sns.color_palette(n_colors=max(1, len(curves)))
    for colour, (name, table) in zip(palette, curves.items(), strict=False):
        if table is None or metric not in table:
            continue
        for _, fold in table.groupby("fold"):
            ax.plot(fold["epoch"], fold[metric], color=colour, alpha=0.15, lw=0.8)
        mean = table.groupby("epoch")[metric].mean()
        ax.plot(mean.index, mean.values, color=colour, lw=2, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric.replace("_", " "))
    ax.legend(fontsize=7)
    return ax


def plot_fold_fit(fits: pd.DataFrame, held_out: pd.Series, ax: plt.Axes | None = None,
                  threshold: float | None = None) -> plt.Axes:
    """Per fold, the returned model's accuracy on its own training clips against its accuracy on the held-out
    subject: under-fitting sits low on both axes, over-fitting high on the first and low on the second.

    ``fits``: :func:`convat.training.fit.fit_table`; ``held_out``: accuracy per fold (e.g.
    :func:`convat.metrics.per_subject`'s ``accuracy``, indexed like ``fits``); ``threshold`` draws the
    training accuracy from which a model is said to fit.
    """
    ax = ax or plt.subplots(figsize=(4.2, 3.6))[1]
    joined = fits[["fit_accuracy"]].join(held_out.rename("held_out"), how="inner")
    ax.scatter(joined["fit_accuracy"], joined["held_out"], s=18, alpha=0.7)
    ax.plot([0, 1], [0, 1], color="0.6", lw=0.8, ls=":", label="held out = training")
    if threshold is not None:
        ax.axvline(threshold, color="0.4", lw=0.8, ls="--", label=f"fits from {threshold:.2f}")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("accuracy on its own training clips")
    ax.set_ylabel("accuracy on the held-out subject")
    ax.legend(fontsize=7, loc="upper left")
    return ax
