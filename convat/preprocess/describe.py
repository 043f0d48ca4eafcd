"""The preprocessing chapter's sentences, built from measured tables (face detection, crop jitter, apex strategies,
the flow benchmark), so that what the page says follows from the numbers and is tested.

These functions summarise and word what other modules measured, for the page only: no cached tensor, prediction
or metric depends on them. Like the plots, they are therefore left out of the code fingerprint
(:func:`convat.runstore.code_fingerprint`), so rewording a sentence never makes a result stale; the layer contract
(``pyproject.toml``) forbids the modules that decide results to import them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from convat.data.records import ClipRecord

#: Below this share of the largest expression displacement, re-detecting the face on every frame would add motion
#: that is small next to the expression (a tenth: an order of magnitude).
SMALL_JITTER_SHARE = 0.1


def describe_detectors(summary: pd.DataFrame, chosen: str, n_images: int) -> str:
    """One paragraph on :func:`~convat.preprocess.face_eval.evaluate_detectors`' summary: what the pipeline's
    detector (``chosen``) finds, picks wrongly and misses, its speed, and the Haar cascade's counts beside it
    when both were measured."""
    row = summary.loc[chosen]
    text = (f"On {n_images} images ({int(row['images with a face'])} with a face), the pipeline's detector "
            f"(**{chosen}**) finds {int(row['found'])}, chooses a wrong region {int(row['false positive'])} times "
            f"and misses {int(row['missing'])}, at a median **{row['ms per frame']:.0f} ms per frame** on this "
            "machine (one CPU thread).")
    if chosen != "haar" and "haar" in summary.index:
        haar = summary.loc["haar"]
        text += (f" The Haar cascade finds {int(haar['found'])} and chooses a wrong region "
                 f"{int(haar['false positive'])} times, at {haar['ms per frame']:.0f} ms.")
    return text


def describe_padded_outcomes(counts: pd.DataFrame, n_clips: int, dataset: str) -> str:
    """One sentence on :func:`~convat.preprocess.face_eval.padded_clip_outcomes`: per detector, the clips found,
    missed and given a wrong region, on cropped clips placed in a larger canvas."""
    outcomes = "; ".join(f"{name} finds **{row['found']}**, misses {row['missing']}, chooses a wrong region "
                         f"{row['false positive']} times" for name, row in counts.iterrows())
    return (f"On the onset frames of {n_clips} {dataset} clips placed in a larger canvas (the face region is known "
            f"there, so a box elsewhere counts as a false positive): {outcomes}.")


def largest_displacement(records: Iterable[ClipRecord]) -> float | None:
    """The largest true displacement (pixels) of any action-unit flow among ``records``; ``None`` when a record
    has no ground truth (real data)."""
    peaks = []
    for record in records:
        if record.truth is None:
            return None
        peaks.append(float(np.linalg.norm(record.truth.au_flow, axis=-1).max()))
    return max(peaks) if peaks else None


def describe_crop_jitter(jitter: pd.DataFrame, peak: float | None, detector: str | None = None) -> str | None:
    """Weigh how far a per-frame face box would move (``max_centre_shift_px`` of
    :func:`~convat.preprocess.face.box_jitter`) against the largest expression displacement ``peak``;
    ``detector`` names the detector that gave the boxes (detectors jitter differently).

    ``None`` when there is nothing to weigh: no ground truth, or no clip whose face was found. "Same order" means
    at least :data:`SMALL_JITTER_SHARE` of the expression; below that the sentence says the per-frame box would
    add little, since then the measurement does not argue for one crop per clip.
    """
    shifts = pd.to_numeric(jitter["max_centre_shift_px"], errors="coerce")
    if peak is None or not np.isfinite(shifts).any():
        return None
    shift = float(shifts.max())
    if shift >= peak:
        effect = "add more motion than the expression itself."
    elif shift >= SMALL_JITTER_SHARE * peak:
        effect = "add motion of the same order as the expression."
    else:
        effect = (f"add little motion next to the expression (under {SMALL_JITTER_SHARE:.0%} of it) on these "
                  "clips.")
    by = f" with the {detector} detector" if detector else ""
    return (f"Re-detecting the face on every frame{by} would move the crop by up to **{shift:.1f} px**, while the "
            f"largest expression displacement in these clips is **{peak:.1f} px**: a per-frame box would {effect}")


def apex_summary(report: pd.DataFrame, strategies: Sequence[str] = ("middle", "motion")) -> pd.DataFrame | None:
    """Per strategy of :func:`~convat.preprocess.apex.apex_report`: mean and median distance (frames) to the
    annotated apex, and the share of clips within 2 frames of it, over the clips that have an annotated apex
    (their number in ``attrs["clips"]``); ``None`` when none has one (SMIC)."""
    annotated = report[report["apex"].notna()]
    if annotated.empty:
        return None
    summary = pd.DataFrame({s: {"mean |error| (frames)": annotated[f"{s}_error"].mean(),
                                "median |error|": annotated[f"{s}_error"].median(),
                                "share of clips within 2 frames": (annotated[f"{s}_error"] <= 2).mean()}
                            for s in strategies}).T
    summary.attrs["clips"] = len(annotated)
    return summary


def describe_apex(summary: pd.DataFrame) -> str:
    """Which apex strategy of :func:`apex_summary` lands closer to the annotated apex on average, over the clips
    that have one (a tie is named as one, not decided by the order of the rows)."""
    errors = summary["mean |error| (frames)"]
    clips = summary.attrs.get("clips", "the")
    if len(errors) == 1:
        return (f"Over {clips} clips the **{errors.index[0]}** strategy lands {errors.iloc[0]:.2f} frames from the "
                "annotated apex on average.")
    best = errors[errors == errors.min()].index.tolist()
    if len(best) > 1:
        return (f"Over {clips} clips the {' and '.join(f'**{s}**' for s in best)} strategies land equally close "
                f"to the annotated apex on average ({errors.min():.2f} frames).")
    return (f"Over {clips} clips the **{best[0]}** strategy lands closer to the annotated apex on average "
            f"({errors[best[0]]:.2f} frames against {errors.drop(index=best[0]).min():.2f}).")


def _ranked(bench: pd.DataFrame) -> tuple[str, str, str]:
    """The fastest, most accurate (whole frame) and most accurate (inside the AU masks) non-trivial method."""
    methods = bench.drop(index="zero", errors="ignore")
    return methods["clips_per_s"].idxmax(), methods["epe"].idxmin(), methods["epe_au"].idxmin()


def describe_flow_benchmark(bench: pd.DataFrame, n_clips: int) -> str:
    """One paragraph on :func:`~convat.preprocess.evaluate.flow_benchmark` (which must include ``tvl1``,
    ``tvl1_plain`` and ``zero``): TV-L1's error with and without its prefilter against zero flow, the most
    accurate method over the frame and inside the action-unit masks, and the fastest non-trivial one."""
    b = bench.set_index("method")
    fastest, most_accurate, most_accurate_au = _ranked(b)
    tvl1, plain, zero = (b.loc[m] for m in ("tvl1", "tvl1_plain", "zero"))
    return (f"On {n_clips} clips TV-L1 with the prefilter has EPE **{tvl1['epe']:.3f} px** over the frame against "
            f"**{plain['epe']:.3f}** without it ({plain['epe'] / tvl1['epe']:.1f}x the prefiltered error) and "
            f"**{zero['epe']:.3f}** for zero flow (zero flow's error is {zero['epe'] / tvl1['epe']:.1f}x TV-L1's). "
            f"On these clips the lowest error over the frame is **{most_accurate}**'s, inside the action-unit masks "
            f"**{most_accurate_au}**'s ({b.loc[most_accurate_au, 'epe_au']:.3f} px against TV-L1's "
            f"{tvl1['epe_au']:.3f}): means over {n_clips} clips without an interval, an order of these clips rather "
            f"than a ranking of the methods. The fastest non-trivial method is **{fastest}** "
            f"({b.loc[fastest, 'clips_per_s']:.0f} clips/s against {tvl1['clips_per_s']:.1f} for TV-L1).")


def flow_key_results(bench: pd.DataFrame, n_clips: int) -> dict[str, object]:
    """The flow benchmark's entries for the chapter's key results box (``n_clips``: how many clips it averaged)."""
    b = bench.set_index("method")
    return {"TV-L1 end-point error, whole frame / inside the AU masks (px)":
            f"{b.loc['tvl1', 'epe']:.3f} / {b.loc['tvl1', 'epe_au']:.3f}",
            "zero flow, whole frame (px)": b.loc["zero", "epe"],
            f"lowest mean error inside the AU masks on these {n_clips} clips": _ranked(b)[2],
            "TV-L1 speed (clips/s on this machine)": f"{b.loc['tvl1', 'clips_per_s']:.1f}"}
