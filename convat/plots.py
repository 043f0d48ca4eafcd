"""Figures shared by the chapters: confusion matrices and flow visualisations."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from convat.metrics import confusion


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


def flow_to_rgb(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """Colour-wheel picture of a flow field (hue = direction, saturation = magnitude), ``(H, W, 3)`` float."""
    import matplotlib.colors as mcolors

    mag = np.linalg.norm(flow, axis=-1)
    scale = max_magnitude or (np.percentile(mag, 99) + 1e-8)
    hue = (np.arctan2(-flow[..., 1], flow[..., 0]) / (2 * np.pi)) % 1.0
    hsv = np.dstack([hue, np.clip(mag / scale, 0, 1), np.ones_like(mag)])
    return mcolors.hsv_to_rgb(hsv)
