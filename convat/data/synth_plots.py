"""Figures and tables that show SynthME: clips, true motion, AU regions, class counts, generation speed."""

from __future__ import annotations

import time
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from convat.data.records import ClipRecord
from convat.data.synth import EMOTION_AUS, LABEL_SCHEMES, _blink_amount, generate
from convat.flowviz import flow_to_rgb


def one_clip_per_class(records: Sequence[ClipRecord], by: str = "emotion") -> list[ClipRecord]:
    """One clip of every class (``by``: ``emotion`` or ``label``), from different subjects where possible."""
    chosen: dict[str, ClipRecord] = {}
    used: set[str] = set()
    for record in records:
        key = getattr(record, by)
        if key not in chosen and record.subject not in used:
            chosen[key] = record
            used.add(record.subject)
    for record in records:  # classes only subjects already used show
        chosen.setdefault(getattr(record, by), record)
    return [chosen[k] for k in sorted(chosen)]


def emotion_table(label_scheme: str = "megc3") -> pd.DataFrame:
    """Emotions, their class under ``label_scheme`` and under the five-class scheme, and their AU combinations."""
    return pd.DataFrame(
        {
            "emotion": list(EMOTION_AUS),
            "class (MEGC 3)": [LABEL_SCHEMES["megc3"][e] for e in EMOTION_AUS],
            "class (5)": [LABEL_SCHEMES["5class"][e] for e in EMOTION_AUS],
            "AU combinations": ["; ".join("+".join(c) for c in combos) for combos in EMOTION_AUS.values()],
        }
    ).set_index("emotion")


def plot_clips(records: Sequence[ClipRecord], diff_gain: float = 4.0) -> plt.Figure:
    """One row per clip: onset, apex, amplified |apex - onset|, true onset->apex flow, AU masks on the onset.

    The difference image shows how little changes between onset and apex; the true flow (colour wheel: hue is
    direction, saturation is magnitude, shared scale) shows where the skin moves.
    """
    cols = ["onset", "apex", f"|apex - onset| x{diff_gain:g}", "true flow", "AU regions"]
    fig, axes = plt.subplots(len(records), len(cols), figsize=(2.0 * len(cols), 2.05 * len(records)), squeeze=False)
    peak = max(float(np.linalg.norm(r.truth.flow, axis=-1).max()) for r in records)
    for row, record in zip(axes, records, strict=True):
        onset, apex = record.frames.load([record.onset, record.apex])
        diff = np.abs(apex.astype(np.float32) - onset.astype(np.float32)).mean(-1)
        overlay = onset.astype(np.float32) / 255 * 0.6
        palette = plt.get_cmap("tab10")
        for k, mask in enumerate(record.truth.masks.values()):
            overlay[mask] = 0.5 * overlay[mask] + 0.5 * np.array(palette(k)[:3])
        row[0].imshow(onset)
        row[1].imshow(apex)
        row[2].imshow(np.clip(diff * diff_gain, 0, 255), cmap="magma", vmin=0, vmax=255)
        row[3].imshow(flow_to_rgb(record.truth.flow, max_magnitude=peak))
        row[4].imshow(overlay)
        row[0].set_ylabel(f"{record.emotion}\n{record.label}", fontsize=8)
        row[4].set_title("+".join(record.truth.masks), fontsize=7)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    for ax, name in zip(axes[0], cols, strict=True):
        ax.set_title(name if name != "AU regions" else f"{name}\n{ax.get_title()}", fontsize=8)
    fig.tight_layout()
    return fig


def plot_displacement(record: ClipRecord, step: int = 6) -> plt.Figure:
    """The true onset->apex field of one clip as arrows on the onset frame: all motion and expression only.

    Arrows are scaled up for visibility; the colour bars give magnitudes in pixels.
    """
    onset = record.frames.load([record.onset])[0]
    fields = {"all motion (head, blinks, AUs)": record.truth.flow, "expression only (AUs)": record.truth.au_flow}
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 4.0))
    ys, xs = np.mgrid[0 : onset.shape[0] : step, 0 : onset.shape[1] : step]
    for ax, (name, flow) in zip(axes, fields.items(), strict=True):
        ax.imshow(onset, alpha=0.6)
        mag = np.linalg.norm(flow, axis=-1)
        q = ax.quiver(xs, ys, flow[ys, xs, 0], -flow[ys, xs, 1], mag[ys, xs], cmap="viridis", angles="xy",
                      scale_units="xy", scale=0.25, width=0.006)
        fig.colorbar(q, ax=ax, fraction=0.046, pad=0.02, label="pixels")
        ax.set_title(f"{name}: peak {mag.max():.2f} px", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def plot_subject_counts(table: pd.DataFrame, ax: plt.Axes | None = None, title: str = "") -> plt.Axes:
    """Stacked bars of clips per subject and class, subjects sorted by their number of clips."""
    counts = table.groupby(["subject", "label"]).size().unstack(fill_value=0)
    counts = counts.loc[counts.sum(axis=1).sort_values(ascending=False).index]
    ax = ax or plt.subplots(figsize=(max(5.0, 0.12 * len(counts) + 2), 2.8))[1]
    counts.plot.bar(stacked=True, ax=ax, width=0.85)
    ax.set_xlabel("subject")
    ax.set_ylabel("clips")
    ax.tick_params(axis="x", labelrotation=90, labelsize=6 if len(counts) > 20 else 8)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def motion_table(records: Sequence[ClipRecord]) -> pd.DataFrame:
    """Per clip: peak expression displacement, peak total displacement, head shift and whether it blinks."""
    rows = []
    for r in records:
        p = r.frames.params
        rows.append(
            {
                "clip": r.clip,
                "label": r.label,
                "peak AU motion (px)": float(np.linalg.norm(r.truth.au_flow, axis=-1).max()),
                "peak motion (px)": float(np.linalg.norm(r.truth.flow, axis=-1).max()),
                "head shift (px)": float(np.hypot(*p.head_shift)),
                "blink in clip": p.blink_frame is not None,
                "blink at apex": _blink_amount(p, p.apex) > 0.5,
                "frames": r.n_frames,
            }
        )
    return pd.DataFrame(rows)


def generation_times(profiles: Sequence[str] = ("quick", "composite"), render: Sequence[str] | None = None,
                     seed: int = 0) -> pd.DataFrame:
    """Seconds to build each profile's records and, for the profiles in ``render`` (default: all), to render
    every clip's onset and apex frames (what preprocessing pays for; frames are drawn on demand)."""
    render = profiles if render is None else render
    rows = []
    for profile in profiles:
        start = time.perf_counter()
        records = generate(profile, seed=seed)
        built = time.perf_counter() - start
        rendered = float("nan")
        if profile in render:
            start = time.perf_counter()
            for r in records:
                r.frames.load([r.onset, r.apex])
            rendered = time.perf_counter() - start
        rows.append({"profile": profile, "clips": len(records), "records (s)": built,
                     "onset + apex frames (s)": rendered})
    return pd.DataFrame(rows).set_index("profile")
