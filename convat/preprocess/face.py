"""Face box: found once per clip, aligned on landmarks, and reused for every frame of the clip.

Micro-movements are a fraction of a pixel, so a crop that jitters by one pixel between the onset and the apex
frame would add more "motion" than the expression itself. The face is therefore detected once per clip (on the
onset frame, or as the median landmarks over a few frames) by :mod:`convat.preprocess.detectors` (dlib's HOG
detector with 68 landmarks when the ``faces`` extra is installed, OpenCV's Haar cascade otherwise), and one
crop is applied to every frame: with landmarks, the crop is **aligned** (eyes levelled, the face placed on a
fixed landmark frame: eye centres :data:`EYE_ROW` of the side from the top, the side :data:`SIDE_PER_EYE_DISTANCE`
eye distances); without landmarks, a square box around the detection. Datasets that ship cropped faces
(CASME II ``reg_img*``, SynthME) set ``record.extra["cropped"] = True`` and use the whole frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from convat.data.records import ClipRecord
from convat.preprocess.detectors import (
    DETECTORS,
    Detection,
    as_uint8_rgb,
    detect_face,
    eye_centres,
    resolve_detector,
)

#: Where the cascade comes from (the installed OpenCV package; nothing is downloaded).
HAAR_CASCADE = "haarcascade_frontalface_default.xml"

FACE_MODES = ("auto", "detect", "full")
#: Frames a clip's face is taken from: the onset frame, or the median landmarks over up to
#: :data:`MEDIAN_FRAMES` frames spread over the clip (robust to one bad detection).
FACE_REFERENCES = ("onset", "median")
MEDIAN_FRAMES = 5
#: ``FaceBox.source`` values: ``detected`` (landmark detector, aligned crop), ``fallback`` (Haar cascade, the
#: detector that needs no extra package), ``cropped``, ``full``, ``not-found``.
BOX_SOURCES = ("detected", "cropped", "full", "not-found", "fallback")
#: Landmark frame of an aligned crop: side in eye distances (before the margin) and the eye line's height.
SIDE_PER_EYE_DISTANCE = 2.8
EYE_ROW = 0.3


@dataclass(frozen=True)
class FaceBox:
    """A square crop in frame pixels, rotated by ``angle`` degrees about its centre (0: axis-aligned).

    ``source`` says how it was obtained: ``detected`` (landmark detector, eyes levelled), ``fallback`` (Haar
    cascade), ``cropped`` (dataset ships cropped faces), ``full`` (whole frame by choice) or ``not-found``
    (detection failed; the whole frame is used and the clip is reported). ``landmarks`` (frame pixels) and
    ``score`` come from the detector when there is one.
    """

    x: int
    y: int
    w: int
    h: int
    source: str = "detected"
    angle: float = 0.0
    score: float = float("nan")
    landmarks: np.ndarray | None = field(default=None, compare=False, repr=False)

    def matrix(self) -> np.ndarray:
        """The 2x3 affine map from frame pixels to crop pixels."""
        cx, cy = self.x + self.w / 2, self.y + self.h / 2
        m = cv2.getRotationMatrix2D((cx, cy), self.angle, 1.0)
        m[:, 2] -= (self.x, self.y)
        return m

    def inside(self, shape: tuple[int, ...]) -> bool:
        return self.x >= 0 and self.y >= 0 and self.x + self.w <= shape[1] and self.y + self.h <= shape[0]

    def crop(self, image: np.ndarray) -> np.ndarray:
        """The crop of ``image`` (a frame, a mask, a flow field): a slice when axis-aligned and inside the
        frame; otherwise the rotated crop, frame borders replicated (booleans by nearest neighbour)."""
        if self.angle == 0 and self.inside(image.shape):
            return image[self.y : self.y + self.h, self.x : self.x + self.w]
        if image.dtype == bool:
            return self._warp(image.astype(np.uint8), cv2.INTER_NEAREST).astype(bool)
        return self._warp(image, cv2.INTER_LINEAR)

    def _warp(self, image: np.ndarray, flags: int) -> np.ndarray:
        if image.ndim == 3 and image.shape[2] > 4:  # warpAffine takes at most 4 channels
            return np.dstack([self._warp(image[..., i], flags) for i in range(image.shape[2])])
        out = cv2.warpAffine(np.ascontiguousarray(image), self.matrix(), (self.w, self.h), flags=flags,
                             borderMode=cv2.BORDER_REPLICATE)
        return out[..., None] if image.ndim == 3 and out.ndim == 2 else out

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """Frame-pixel points ``(N, 2)`` in crop pixels."""
        pts = np.asarray(points, dtype=np.float64)
        return pts @ self.matrix()[:, :2].T + self.matrix()[:, 2]

    def corners(self) -> np.ndarray:
        """The crop's four corners in frame pixels ``(4, 2)`` (clockwise from top-left), for drawing."""
        inverse = cv2.invertAffineTransform(self.matrix())
        square = np.array([[0, 0], [self.w, 0], [self.w, self.h], [0, self.h]], dtype=np.float64)
        return square @ inverse[:, :2].T + inverse[:, 2]

    def as_tuple(self) -> tuple[int, int, int, int]:
        return self.x, self.y, self.w, self.h


class FaceNotFoundError(RuntimeError):
    """No face was detected on the onset frame of the named clips."""

    def __init__(self, clips: list[str]):
        self.clips = list(clips)
        super().__init__(f"no face found on the onset frame of {len(clips)} clip(s): {', '.join(clips)}")


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


def aligned_box(landmarks: np.ndarray, margin: float = 0.1, source: str = "detected",
                score: float = float("nan")) -> FaceBox:
    """The crop on the fixed landmark frame: eyes levelled, the eye line at :data:`EYE_ROW` of the side, the
    side :data:`SIDE_PER_EYE_DISTANCE` eye distances times ``(1 + 2 margin) / 1.2`` (so the default margin
    0.1 gives exactly that side). The box may extend past the frame edge (borders are replicated), so a face
    at the edge stays centred instead of being shifted out of its crop."""
    left, right = eye_centres(landmarks)
    dx, dy = right - left
    distance = float(np.hypot(dx, dy))
    angle = float(np.degrees(np.arctan2(dy, dx)))
    side = SIDE_PER_EYE_DISTANCE * distance * (1 + 2 * margin) / 1.2
    down = np.array([-dy, dx]) / distance  # unit vector from the eye line towards the chin
    centre = (left + right) / 2 + (0.5 - EYE_ROW) * side * down
    side_px = int(round(side))
    x0, y0 = int(round(centre[0] - side_px / 2)), int(round(centre[1] - side_px / 2))
    return FaceBox(x0, y0, side_px, side_px, source, angle, score, np.asarray(landmarks, dtype=np.float64))


def box_from_detection(detection: Detection, shape: tuple[int, ...], margin: float = 0.1,
                       align: bool = True) -> FaceBox:
    """The crop box of a detection: aligned on its eyes when it has landmarks and ``align``, else square."""
    source = "detected" if detection.detector == "dlib" else "fallback"
    if align and detection.eyes() is not None:
        return aligned_box(detection.landmarks, margin, source, detection.score)
    x0, y0, side, _ = square_box(detection.x, detection.y, detection.w, detection.h, margin, shape)
    return FaceBox(x0, y0, side, side, source, 0.0, detection.score, detection.landmarks)


def detect_face_box(frame: np.ndarray, margin: float = 0.1, detector: str = "auto",
                    align: bool = True) -> FaceBox | None:
    """The face of a frame (any dtype :func:`~convat.preprocess.detectors.as_uint8_rgb` accepts) as a crop
    box, or ``None`` when no candidate is a plausible face (see :func:`~convat.preprocess.detectors.select_face`)."""
    detection = detect_face(frame, detector)
    return None if detection is None else box_from_detection(detection, np.shape(frame), margin, align)


def _median_detection(frames: np.ndarray, detector: str) -> Detection | None:
    """One detection from the median box and landmarks over frames where a face was found (at least half)."""
    found = [d for d in (detect_face(f, detector) for f in frames) if d is not None]
    if len(found) * 2 < len(frames) or not found:
        return None
    box = np.median([(d.x, d.y, d.w, d.h) for d in found], axis=0)
    with_landmarks = [d.landmarks for d in found if d.landmarks is not None]
    landmarks = None
    if len(with_landmarks) == len(found) and len({len(lm) for lm in with_landmarks}) == 1:
        landmarks = np.median(np.stack(with_landmarks), axis=0)
    return Detection(*box.tolist(), float(np.median([d.score for d in found])), found[0].detector, landmarks)


def reference_frames(record: ClipRecord, reference: str = "onset") -> list[int]:
    """Frame indices the clip's face is taken from (see :data:`FACE_REFERENCES`)."""
    if reference not in FACE_REFERENCES:
        raise ValueError(f"unknown face reference {reference!r}; choose one of {list(FACE_REFERENCES)}")
    if reference == "onset":
        return [record.onset]
    last = record.offset if record.offset is not None else len(record.frames) - 1
    picks = np.linspace(record.onset, last, MEDIAN_FRAMES).round().astype(int).tolist()
    return sorted(set(picks + ([record.apex] if record.apex is not None else [])))


def face_box(record: ClipRecord, mode: str = "auto", margin: float = 0.1,
             onset_frame: np.ndarray | None = None, detector: str = "auto", reference: str = "onset",
             align: bool = True) -> FaceBox:
    """The crop box of a clip, from its onset frame (``reference="onset"``) or the median over a few frames.

    ``mode``: ``auto`` uses the whole frame for records marked ``extra["cropped"]`` and detects otherwise;
    ``detect`` always detects; ``full`` never crops. ``detector``: ``auto`` (dlib when installed, else Haar),
    ``dlib`` or ``haar``. A failed detection returns the whole frame with ``source="not-found"``;
    :func:`convat.preprocess.pipeline.preprocess` reports such clips by name.
    """
    if mode not in FACE_MODES:
        raise ValueError(f"unknown face mode {mode!r}; choose one of {list(FACE_MODES)}")
    if detector not in DETECTORS:
        raise ValueError(f"unknown face detector {detector!r}; choose one of {list(DETECTORS)}")
    indices = reference_frames(record, reference)
    if onset_frame is None or reference != "onset":
        frames = record.frames.load(indices)
        onset_frame = frames[indices.index(record.onset)]
    else:
        frames = [onset_frame]
    if mode == "full":
        return full_frame_box(onset_frame.shape, "full")
    if mode == "auto" and record.extra.get("cropped"):
        return full_frame_box(onset_frame.shape, "cropped")
    name = resolve_detector(detector)
    detection = detect_face(onset_frame, name) if reference == "onset" else _median_detection(
        np.stack([as_uint8_rgb(f) for f in frames]), name)
    if detection is None:
        return full_frame_box(onset_frame.shape, "not-found")
    return box_from_detection(detection, onset_frame.shape, margin, align)


def box_iou(a: FaceBox, b: FaceBox) -> float:
    """Intersection over union of two boxes."""
    x0, y0 = max(a.x, b.x), max(a.y, b.y)
    x1, y1 = min(a.x + a.w, b.x + b.w), min(a.y + a.h, b.y + b.h)
    inter = max(x1 - x0, 0) * max(y1 - y0, 0)
    return inter / float(a.w * a.h + b.w * b.h - inter)


def per_frame_boxes(frames: np.ndarray, margin: float = 0.1, detector: str = "auto") -> list[FaceBox | None]:
    """The box the detector would give on every frame: shows why the pipeline detects once per clip (the
    per-frame boxes jitter by pixels, far more than micro-expression motion)."""
    return [detect_face_box(frame, margin=margin, detector=detector) for frame in frames]


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
               boxes: list[FaceBox | None] | None = None, detector: str = "auto") -> dict[str, float | int | str]:
    """How much per-frame detection would move the box over a clip, compared with the box of the onset frame:
    the largest shift of the box centre and change of side (pixels), the smallest IoU, and frames missed.
    ``boxes``: the clip's :func:`per_frame_boxes`, if already computed."""
    if boxes is None:
        boxes = per_frame_boxes(record.frames.load(), margin, detector)
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
