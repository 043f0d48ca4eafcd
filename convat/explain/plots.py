"""Pictures of explanations: overlays on the apex frame and on the flow field, galleries, deletion curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from convat.flowviz import flow_to_rgb

METHOD_TITLES = {
    "saliency": "Saliency",
    "integrated_gradients": "Integrated Gradients",
    "smoothgrad": "SmoothGrad",
    "occlusion": "Occlusion",
    "gradcam": "Grad-CAM (stem)",
    "rollout": "Attention rollout",
    "random": "Random map",
}


def _normalise(amap: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] from the map's minimum to its 99.5th percentile (rollout maps sit on a large floor)."""
    amap = np.clip(np.nan_to_num(np.asarray(amap, dtype=np.float64)), 0, None)
    low, top = amap.min(), np.percentile(amap, 99.5)
    return np.clip((amap - low) / (top - low), 0, 1) if top > low else np.zeros_like(amap)


def overlay(ax, background: np.ndarray, amap: np.ndarray | None = None, mask: np.ndarray | None = None,
            title: str | None = None, alpha: float = 0.55) -> None:
    """Draw ``background`` (grey or RGB), the attribution map as a translucent heat map, the true region's
    outline in white."""
    bg = np.asarray(background)
    ax.imshow(bg if bg.ndim == 3 else bg, cmap=None if bg.ndim == 3 else "gray")
    if amap is not None:
        norm = _normalise(amap)
        ax.imshow(norm, cmap="inferno", alpha=alpha * (0.25 + 0.75 * norm), vmin=0, vmax=1)
    if mask is not None and np.any(mask):
        ax.contour(np.asarray(mask, dtype=float), levels=[0.5], colors="white", linewidths=0.8)
    if title:
        ax.set_title(title, fontsize=8)
    ax.set_axis_off()


def plot_gallery(
    apex: np.ndarray, x: np.ndarray, maps: Mapping[str, np.ndarray], masks: np.ndarray,
    row_titles: Sequence[str] | None = None, background: str = "apex", cell: float = 1.6,
):
    """One row per clip: the apex frame and the colour-coded flow (true AU region outlined), then every
    method's map over the ``background`` (``apex`` frame or ``flow`` field)."""
    if background not in ("apex", "flow"):
        raise ValueError(f"background must be 'apex' or 'flow', got {background!r}")
    n = len(apex)
    cols = 2 + len(maps)
    fig, axes = plt.subplots(n, cols, figsize=(cell * cols, cell * n + 0.3), squeeze=False)
    for i in range(n):
        flow = flow_to_rgb(np.dstack([x[i, 0], x[i, 1]]))
        gray = apex[i].mean(-1)
        bg = gray if background == "apex" else flow
        overlay(axes[i, 0], apex[i], mask=masks[i], title="apex frame" if i == 0 else None)
        overlay(axes[i, 1], flow, mask=masks[i], title="flow (u, v)" if i == 0 else None)
        for j, (name, m) in enumerate(maps.items()):
            overlay(axes[i, 2 + j], bg, m[i], masks[i], METHOD_TITLES.get(name, name) if i == 0 else None)
        if row_titles is not None:
            axes[i, 0].text(-0.08, 0.5, row_titles[i], transform=axes[i, 0].transAxes, rotation=90,
                            va="center", ha="right", fontsize=7)
    fig.tight_layout()
    return fig


def plot_block_attention(apex: np.ndarray, blocks: Sequence[np.ndarray], rollout_map: np.ndarray,
                         mask: np.ndarray, cell: float = 1.8):
    """For one clip: the read-out attention of every block on the token grid, then the rollout."""
    cols = len(blocks) + 1
    fig, axes = plt.subplots(1, cols, figsize=(cell * cols, cell + 0.3), squeeze=False)
    size = apex.shape[0]
    for j, b in enumerate(blocks):
        cells = np.arange(size) * b.shape[0] // size  # each pixel's token row/column, as in token_regions
        overlay(axes[0, j], apex.mean(-1), b[cells][:, cells], mask, f"block {j + 1}")
    overlay(axes[0, -1], apex.mean(-1), rollout_map, mask, "rollout")
    fig.tight_layout()
    return fig


def plot_deletion(curves: pd.DataFrame, ax=None, title: str | None = None):
    """Deletion curves (``method``, ``fraction``, ``probability``), the random order dashed."""
    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 3.0))
    for name, g in curves.groupby("method", sort=False):
        style = dict(ls="--", color="grey") if name == "random" else {}
        ax.plot(g["fraction"], g["probability"], label=METHOD_TITLES.get(name, name), **style)
    ax.set_xlabel("share of pixels removed (most attributed first)")
    ax.set_ylabel("probability of the true class")
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return ax
