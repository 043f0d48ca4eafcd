"""Figures of the preprocessing chapter: face boxes, apex curves, flow fields (colour wheel and arrows), strain."""

from __future__ import annotations

import cv2
import matplotlib.pyplot as plt
import numpy as np

from convat.data.records import ClipRecord
from convat.flowviz import colour_wheel, flow_to_rgb
from convat.preprocess.apex import apex_index, motion_curve
from convat.preprocess.face import FaceBox, box_iou, per_frame_boxes
from convat.preprocess.flow import compute_flow
from convat.preprocess.strain import optical_strain


def draw_box(ax, box: FaceBox, colour: str = "lime", label: str | None = None) -> None:
    """The crop's outline on its frame (a rotated square for an aligned crop)."""
    ax.add_patch(plt.Polygon(box.corners(), closed=True, fill=False, edgecolor=colour, linewidth=1.5, label=label))


def plot_aligned_faces(images: dict[str, np.ndarray], boxes: dict[str, FaceBox]):
    """Per image: the frame with the crop outline and the detector's landmarks; the aligned crop with the same
    landmarks mapped into it and the fixed eye line (dashed) they were aligned to."""
    from convat.preprocess.face import EYE_ROW

    fig, axes = plt.subplots(1, 2 * len(images), figsize=(3.1 * 2 * len(images), 3.4), squeeze=False)
    for i, (name, image) in enumerate(images.items()):
        box, left, right = boxes[name], axes[0, 2 * i], axes[0, 2 * i + 1]
        left.imshow(image)
        draw_box(left, box)
        crop = box.crop(image)
        right.imshow(crop)
        if box.landmarks is not None:
            left.plot(*box.landmarks.T, ".", color="yellow", ms=2)
            right.plot(*box.to_crop(box.landmarks).T, ".", color="yellow", ms=3)
        right.axhline(EYE_ROW * box.h, color="cyan", ls="--", lw=0.8)
        left.set_title(f"{name}: {box.source}, score {box.score:.2f}", fontsize=9)
        right.set_title(f"aligned crop ({box.w} px, rotated {box.angle:+.1f} deg)", fontsize=9)
        for ax in (left, right):
            ax.axis("off")
    fig.tight_layout()
    return fig


def draw_arrows(ax, flow: np.ndarray, step: int = 8, colour: str = "k", scale: float | None = None) -> None:
    """Arrows every ``step`` pixels, lengths exaggerated so sub-pixel motion is visible (same scale per call)."""
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[step // 2 : h : step, step // 2 : w : step]
    u, v = flow[ys, xs, 0], flow[ys, xs, 1]
    ax.quiver(xs, ys, u, v, color=colour, angles="xy", scale_units="xy", scale=scale or 0.15, width=0.006)


def plot_face_boxes(records: list[ClipRecord], margin: float = 0.1,
                    boxes: list[list[FaceBox | None]] | None = None):
    """Top: the box found on each clip's onset frame. Bottom: IoU of per-frame detections with that box
    (red crosses: frames where the detector found no face at all). ``boxes``: per-frame boxes if computed."""
    if boxes is None:
        boxes = [per_frame_boxes(r.frames.load(), margin) for r in records]
    fig, axes = plt.subplots(2, len(records), figsize=(3 * len(records), 5.6), squeeze=False,
                             gridspec_kw={"height_ratios": [3, 2]})
    for ax, bottom, record, clip_boxes in zip(axes[0], axes[1], records, boxes, strict=True):
        box = clip_boxes[record.onset]
        ax.imshow(record.frames.load([record.onset])[0])
        if box is not None:
            draw_box(ax, box)
            ious = np.array([box_iou(box, b) if b is not None else np.nan for b in clip_boxes])
            bottom.plot(ious, marker=".")
            missed = np.flatnonzero(np.isnan(ious))
            bottom.plot(missed, np.zeros(len(missed)), "rx")
        ax.set_title(f"{record.clip}: " + ("face found" if box is not None else "NO FACE"), fontsize=9)
        ax.axis("off")
        bottom.set_ylim(0, 1.05)
        bottom.set_xlabel("frame")
        bottom.axvline(record.onset, color="grey", linestyle=":")
    axes[1, 0].set_ylabel("IoU with onset box")
    fig.tight_layout()
    return fig


def plot_apex_curves(records: list[ClipRecord], box: str = "auto"):
    """The detrended motion score of each clip with the true apex and the two estimates."""
    fig, axes = plt.subplots(1, len(records), figsize=(3.2 * len(records), 2.6), squeeze=False)
    for ax, record in zip(axes[0], records, strict=True):
        frames = record.frames.load()
        curve = motion_curve(frames, record.onset, min(record.offset, len(frames) - 1))
        ax.plot(curve, color="k", lw=1)
        if record.apex is not None:
            ax.axvline(record.apex, color="tab:green", lw=2, label="annotated apex")
        ax.axvline(apex_index(record, "middle"), color="tab:blue", ls="--", label="middle")
        ax.axvline(apex_index(record, "motion", frames), color="tab:red", ls=":", lw=2, label="motion estimate")
        ax.axvspan(record.onset, record.offset, color="0.92", zorder=0)
        ax.set_title(record.clip, fontsize=9)
        ax.set_xlabel("frame")
    axes[0, 0].set_ylabel("motion score (px)")
    axes[0, -1].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def plot_flow_panels(records: list[ClipRecord], method: str = "tvl1", step: int = 8):
    """Per clip: onset, apex, true flow, estimated flow (colour), estimated flow (arrows), strain."""
    titles = ["onset", "apex", "true flow", f"{method} flow", f"{method} arrows", "strain"]
    fig, axes = plt.subplots(len(records), len(titles), figsize=(2.2 * len(titles), 2.3 * len(records)),
                             squeeze=False)
    for row, record in zip(axes, records, strict=True):
        onset, apex = record.frames.load([record.onset, record.apex])
        flow = compute_flow(onset, apex, method)
        truth = record.truth.flow if record.truth is not None else None
        scale = float(np.percentile(np.linalg.norm(truth if truth is not None else flow, axis=-1), 99)) or 1.0
        row[0].imshow(onset)
        row[1].imshow(apex)
        if truth is not None:
            row[2].imshow(flow_to_rgb(truth, scale))
        row[3].imshow(flow_to_rgb(flow, scale))
        row[4].imshow(cv2.cvtColor(onset, cv2.COLOR_RGB2GRAY), cmap="gray")
        draw_arrows(row[4], flow, step, colour="yellow", scale=0.6 * scale / step)
        strain = optical_strain(flow)
        row[5].imshow(strain, cmap="magma", vmin=0, vmax=float(np.percentile(strain, 99)) or None)
        row[0].set_ylabel(f"{record.clip}\n{record.label}", fontsize=8)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    for ax, title in zip(axes[0], titles, strict=True):
        ax.set_title(title, fontsize=9)
    inset = axes[0, 3].inset_axes([0.72, 0.72, 0.28, 0.28])
    inset.imshow(colour_wheel())
    inset.axis("off")
    fig.tight_layout()
    return fig
