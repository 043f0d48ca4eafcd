"""Face box: detected once, on the onset frame, and reused for every frame of the clip.

Micro-movements are a fraction of a pixel, so a box that jitters by one pixel between the onset and the apex
frame would add more "motion" than the expression itself. The box is therefore found once (OpenCV's frontal-face
Haar cascade, shipped with the ``opencv`` package under ``cv2.data.haarcascades``), enlarged by a margin, made
square, and applied to every frame. Datasets that ship cropped faces (CASME II ``reg_img*``, SynthME) set
``record.extra["cropped"] = True`` and use the whole frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from convat.data.records import ClipRecord

#: Where the cascade comes from (the installed OpenCV package; nothing is downloaded).
HAAR_CASCADE = "haarcascade_frontalface_default.xml"

FACE_MODES = ("auto", "detect", "full")


@dataclass(frozen=True)
class FaceBox:
    """A crop rectangle in frame pixels; ``source`` says how it was obtained."""

    x: int
    y: int
    w: int
    h: int
    source: str = "detected"
    """``detected`` (Haar cascade), ``cropped`` (dataset ships cropped faces), ``full`` (whole frame by choice)
    or ``not-found`` (detection failed; the whole frame is used and the clip is reported)."""

    def crop(self, image: np.ndarray) -> np.ndarray:
        return image[self.y : self.y + self.h, self.x : self.x + self.w]

    def as_tuple(self) -> tuple[int, int, int, int]:
        return self.x, self.y, self.w, self.h


class FaceNotFoundError(RuntimeError):
    """No face was detected on the onset frame of the named clips."""

    def __init__(self, clips: list[str]):
        self.clips = list(clips)
        super().__init__(f"no face found on the onset frame of {len(clips)} clip(s): {', '.join(clips)}")


@lru_cache(maxsize=1)
def _cascade() -> cv2.CascadeClassifier:
    path = cv2.data.haarcascades + HAAR_CASCADE
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise RuntimeError(f"cannot load the Haar cascade {path}")
    return cascade


def full_frame_box(shape: tuple[int, ...], source: str = "full") -> FaceBox:
    """The whole frame as a box (no cropping)."""
    return FaceBox(0, 0, int(shape[1]), int(shape[0]), source)


def square_box(x: float, y: float, w: float, h: float, margin: float, shape: tuple[int, ...]) -> tuple[int, ...]:
    """A square box around ``(x, y, w, h)`` enlarged by ``margin`` (fraction of the side on each side), moved
    (not shrunk) to lie inside the frame; only a box larger than the frame is shrunk to the frame's short side."""
    height, width = shape[:2]
    side = max(w, h) * (1 + 2 * margin)
    side = int(round(min(side, height, width)))
    cx, cy = x + w / 2, y + h / 2
    x0 = int(round(min(max(cx - side / 2, 0), width - side)))
    y0 = int(round(min(max(cy - side / 2, 0), height - side)))
    return x0, y0, side, side


def detect_face_box(frame: np.ndarray, margin: float = 0.1, min_face: float = 0.25) -> FaceBox | None:
    """The largest frontal face on an RGB (or grey) frame as a square :class:`FaceBox`, or ``None``.

    The frame is padded by a quarter of its size (replicated border) before detection, because the cascade
    misses faces that touch the frame's edge, which is common in close-up micro-expression recordings.
    ``min_face`` is the smallest face side accepted, as a fraction of the frame's short side.
    """
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame
    grey = cv2.equalizeHist(np.ascontiguousarray(grey, dtype=np.uint8))
    pad = min(grey.shape) // 4
    padded = cv2.copyMakeBorder(grey, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    smallest = max(int(min_face * min(grey.shape)), 20)
    faces = _cascade().detectMultiScale(padded, scaleFactor=1.05, minNeighbors=3, minSize=(smallest, smallest))
    if len(faces) == 0:
        return None
    x, y, w, h = max(faces.tolist(), key=lambda f: f[2] * f[3])
    x0, y0, side, _ = square_box(x - pad, y - pad, w, h, margin, grey.shape)
    return FaceBox(x0, y0, side, side, "detected")


def face_box(record: ClipRecord, mode: str = "auto", margin: float = 0.1,
             onset_frame: np.ndarray | None = None) -> FaceBox:
    """The crop box of a clip, from its onset frame.

    ``mode``: ``auto`` uses the whole frame for records marked ``extra["cropped"]`` and detects otherwise;
    ``detect`` always detects; ``full`` never crops. A failed detection returns the whole frame with
    ``source="not-found"``; :func:`convat.preprocess.pipeline.preprocess` reports such clips by name.
    """
    if mode not in FACE_MODES:
        raise ValueError(f"unknown face mode {mode!r}; choose one of {list(FACE_MODES)}")
    if onset_frame is None:
        onset_frame = record.frames.load([record.onset])[0]
    if mode == "full":
        return full_frame_box(onset_frame.shape, "full")
    if mode == "auto" and record.extra.get("cropped"):
        return full_frame_box(onset_frame.shape, "cropped")
    box = detect_face_box(onset_frame, margin=margin)
    return box if box is not None else full_frame_box(onset_frame.shape, "not-found")


def box_iou(a: FaceBox, b: FaceBox) -> float:
    """Intersection over union of two boxes."""
    x0, y0 = max(a.x, b.x), max(a.y, b.y)
    x1, y1 = min(a.x + a.w, b.x + b.w), min(a.y + a.h, b.y + b.h)
    inter = max(x1 - x0, 0) * max(y1 - y0, 0)
    return inter / float(a.w * a.h + b.w * b.h - inter)


def per_frame_boxes(frames: np.ndarray, margin: float = 0.1) -> list[FaceBox | None]:
    """The box the detector would give on every frame: shows why the pipeline detects on the onset only (the
    per-frame boxes jitter by pixels, far more than micro-expression motion)."""
    return [detect_face_box(frame, margin=margin) for frame in frames]


@dataclass(frozen=True)
class PaddedFrames:
    """Frames of another source placed in a larger canvas (replicated border): an uncropped recording made from
    a cropped one, so that face detection can be shown and tested on SynthME."""

    inner: object
    pad: int = 48

    def __len__(self) -> int:
        return len(self.inner)

    def load(self, indices: list[int] | None = None) -> np.ndarray:
        frames = self.inner.load(indices)
        p = self.pad
        return np.stack([cv2.copyMakeBorder(f, p, p, p, p, cv2.BORDER_REPLICATE) for f in frames])

    def fingerprint(self) -> str:
        return f"padded{self.pad}:{self.inner.fingerprint()}"


def as_uncropped(record: ClipRecord, pad: int = 48) -> ClipRecord:
    """A copy of ``record`` whose frames are padded by ``pad`` pixels and which is not marked ``cropped``.

    Its ground truth (if any) stays in the original frame coordinates (offset by ``pad``).
    """
    from dataclasses import replace

    return replace(record, frames=PaddedFrames(record.frames, pad), extra={**record.extra, "cropped": False})


def box_jitter(record: ClipRecord, margin: float = 0.1,
               boxes: list[FaceBox | None] | None = None) -> dict[str, float | int | str]:
    """How much per-frame detection would move the box over a clip, compared with the box of the onset frame:
    the largest shift of the box centre and change of side (pixels), the smallest IoU, and frames missed.
    ``boxes``: the clip's :func:`per_frame_boxes`, if already computed."""
    if boxes is None:
        boxes = per_frame_boxes(record.frames.load(), margin)
    n_frames = len(boxes)
    onset = boxes[record.onset]
    if onset is None:
        return {"clip": record.key, "onset_box": "not found", "max_centre_shift_px": np.nan,
                "max_side_change_px": np.nan, "min_iou": np.nan, "frames_missed": np.nan}
    boxes = [b for b in boxes if b is not None]
    shift = max(np.hypot(b.x + b.w / 2 - onset.x - onset.w / 2, b.y + b.h / 2 - onset.y - onset.h / 2)
                for b in boxes)
    return {"clip": record.key, "onset_box": str(onset.as_tuple()), "max_centre_shift_px": float(shift),
            "max_side_change_px": int(max(abs(b.w - onset.w) for b in boxes)),
            "min_iou": float(min(box_iou(onset, b) for b in boxes)), "frames_missed": n_frames - len(boxes)}
