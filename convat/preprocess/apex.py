r"""Which frame is the apex: annotated, the middle frame, or estimated from the motion itself.

SMIC has no apex annotation and annotated apexes are noisy elsewhere, so the pipeline can also *estimate* the
apex as the frame of maximum motion from the onset. For every frame ``t`` the Farnebäck flow ``F_t`` from the
onset to ``t`` is computed on the face box at a reduced size. Raw ``|F_t|`` keeps growing after the apex, because
head drift and illumination change accumulate over the clip while the expression returns to neutral at the
offset; so the score subtracts the straight line between onset and offset,

.. math::
    m(t) = P_{90}\left(\left|F_t - \tfrac{t - t_\mathrm{on}}{t_\mathrm{off} - t_\mathrm{on}}\,
    F_{t_\mathrm{off}}\right|\right),

which removes every nuisance that grows linearly in time, and takes the 90th percentile over pixels because
the expression moves only a small part of the face. The apex estimate is ``argmax m(t)`` strictly between onset
and offset. Blinks are large non-rigid motions and can win; :func:`apex_report` measures how often.
"""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd

from convat.data.records import ClipRecord
from convat.preprocess.face import FaceBox, face_box
from convat.preprocess.flow import to_gray

APEX_STRATEGIES = ("annotated", "middle", "motion")

#: Side of the grey face crop the motion score is computed on (pixels).
MOTION_SIZE = 64


def middle_index(record: ClipRecord) -> int:
    return (record.onset + record.offset) // 2


def motion_curve(frames: np.ndarray, onset: int, offset: int, box: FaceBox | None = None,
                 size: int = MOTION_SIZE) -> np.ndarray:
    """Detrended motion score ``m(t)`` of every frame relative to the onset frame, ``(T,)`` (module docstring)."""

    def grey(frame: np.ndarray) -> np.ndarray:
        crop = box.crop(frame) if box is not None else frame
        return cv2.resize(to_gray(crop), (size, size), interpolation=cv2.INTER_AREA)

    ref = grey(frames[onset])
    flows = [cv2.calcOpticalFlowFarneback(ref, grey(frame), None, 0.5, 3, 9, 5, 5, 1.1, 0) for frame in frames]
    trend = flows[offset]
    span = max(offset - onset, 1)
    scores = np.zeros(len(frames), dtype=np.float32)
    for t, flow in enumerate(flows):
        scores[t] = float(np.percentile(np.linalg.norm(flow - (t - onset) / span * trend, axis=-1), 90))
    return scores


def motion_apex(record: ClipRecord, frames: np.ndarray | None = None, box: FaceBox | None = None) -> int:
    """The frame strictly between onset and offset with the largest detrended motion from the onset."""
    if frames is None:
        frames = record.frames.load()
    offset = min(record.offset, len(frames) - 1)
    lo, hi = record.onset + 1, offset - 1
    if hi < lo:
        return middle_index(record)
    curve = motion_curve(frames, record.onset, offset, box)
    return int(lo + np.argmax(curve[lo : hi + 1]))


def apex_index(record: ClipRecord, strategy: str = "annotated", frames: np.ndarray | None = None,
               box: FaceBox | None = None) -> int:
    """The frame index used as apex under a strategy.

    ``annotated`` falls back to the middle frame when the dataset has no apex (SMIC); ``middle`` is
    ``(onset + offset) // 2``; ``motion`` is :func:`motion_apex`.
    """
    if strategy == "annotated":
        return record.apex if record.apex is not None else middle_index(record)
    if strategy == "middle":
        return middle_index(record)
    if strategy == "motion":
        return motion_apex(record, frames, box)
    raise ValueError(f"unknown apex strategy {strategy!r}; choose one of {list(APEX_STRATEGIES)}")


def apex_report(records: list[ClipRecord], strategies: tuple[str, ...] = ("middle", "motion"),
                face: str = "auto") -> pd.DataFrame:
    """For each clip, each strategy's apex and its distance (frames) to the annotated apex (SynthME: the true
    one). Clips without an annotated apex get ``NaN`` distances."""
    rows = []
    for record in records:
        frames = record.frames.load()
        box = face_box(record, face, onset_frame=frames[record.onset])
        row = {"clip": record.key, "onset": record.onset, "offset": record.offset, "apex": record.apex}
        for strategy in strategies:
            est = apex_index(record, strategy, frames, box)
            row[strategy] = est
            row[f"{strategy}_error"] = abs(est - record.apex) if record.apex is not None else np.nan
        rows.append(row)
    return pd.DataFrame(rows)
