"""Face detectors with landmarks, and the choice of one face among their candidates.

Two detectors, both with their weights inside an installed package (nothing is downloaded at run time):

- ``dlib``: dlib's HOG + linear-SVM frontal face detector (built into the ``dlib-bin`` wheel) with the
  68-point shape predictor shipped by ``face-recognition-models``. Candidates carry the SVM score and 68
  landmarks (eye corners, nose, mouth, jaw). This is the default when both packages are installed (the
  ``faces`` extra; ``make env`` installs it); chapter 3 measures why.
- ``haar``: OpenCV's frontal-face Haar cascade (``cv2.data.haarcascades``), the fallback that needs nothing
  beyond OpenCV. Its confidence is the cascade's last-stage level weight; its landmarks are the two eye
  centres from OpenCV's eye cascade when both are found inside the face, otherwise none.

Neither detector's best candidate is taken blindly, and never the largest: :func:`select_face` keeps the
candidates whose confidence passes the detector's threshold and whose geometry is plausible for a face
recording (side relative to the frame, aspect, landmarks in face order) and ranks them by confidence,
penalised by the distance from the frame centre. A frame where nothing passes is reported as no face.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

DETECTORS = ("auto", "dlib", "haar")

#: Smallest accepted score per detector (dlib: SVM margin; haar: last-stage level weight).
MIN_SCORE = {"dlib": 0.0, "haar": 3.0}
#: Side of a plausible face relative to the frame's short side (micro-expression recordings are close-ups;
#: the lower bound also admits library photographs such as scikit-image's astronaut, 93 px in 512).
MIN_REL_SIDE, MAX_REL_SIDE = 0.08, 1.0
#: Width / height of a plausible face box.
MIN_ASPECT, MAX_ASPECT = 0.6, 1.6
#: Score penalty per unit of distance of the box centre from the frame centre (in frame half-diagonals).
CENTRALITY_WEIGHT = 0.5
#: Long side the frame is reduced to before detection (a 2040x1088 SAMM frame is detected at 1024x546).
WORK_SIDE = 1024
#: Frames whose working long side is at most this are upsampled once by dlib (finds faces down to ~40 px).
UPSAMPLE_BELOW = 700

# 68-point layout (iBUG 300-W): indices of the parts used for alignment.
LEFT_EYE = slice(36, 42)  # the subject's right eye, on the left of the image
RIGHT_EYE = slice(42, 48)
NOSE_TIP = 30
MOUTH = slice(48, 68)


@dataclass(frozen=True)
class Detection:
    """One face candidate in frame pixels: box ``(x, y, w, h)``, detector confidence and landmarks.

    ``landmarks`` is ``(68, 2)`` (dlib), ``(2, 2)`` eye centres (Haar with eyes found) or ``None``.
    """

    x: float
    y: float
    w: float
    h: float
    score: float
    detector: str
    landmarks: np.ndarray | None = field(default=None, compare=False)

    @property
    def centre(self) -> tuple[float, float]:
        return self.x + self.w / 2, self.y + self.h / 2

    def eyes(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Centres of the eye on the image's left and the eye on its right, or ``None`` without landmarks."""
        return eye_centres(self.landmarks)


def eye_centres(landmarks: np.ndarray | None) -> tuple[np.ndarray, np.ndarray] | None:
    """The two eye centres of a ``(68, 2)`` or ``(2, 2)`` landmark array (image-left first), else ``None``."""
    if landmarks is None:
        return None
    pts = np.asarray(landmarks, dtype=np.float64)
    if len(pts) == 68:
        return pts[LEFT_EYE].mean(axis=0), pts[RIGHT_EYE].mean(axis=0)
    if len(pts) == 2:
        left, right = sorted(pts.tolist())
        return np.asarray(left), np.asarray(right)
    return None


def as_uint8_rgb(frame: np.ndarray) -> np.ndarray:
    """``frame`` as a contiguous ``uint8`` RGB image, converted when the conversion is unambiguous.

    Accepted: ``uint8``; ``uint16`` (scaled by 1/257); floats in [0, 1] (scaled by 255) or in [0, 255];
    grey ``(H, W)`` or ``(H, W, 1)``; RGB; RGBA (alpha dropped). Anything else (bool, signed integers,
    floats outside [0, 255] or with NaN, other channel counts) raises ``TypeError`` naming the dtype or shape.
    """
    array = np.asarray(frame)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise TypeError(f"a frame must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got shape {array.shape}")
    if array.dtype == np.uint8:
        pass
    elif array.dtype == np.uint16:
        array = (array.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    elif np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)):
            raise TypeError(f"frame of dtype {array.dtype} holds NaN or infinite values")
        low, high = float(array.min()), float(array.max())
        if low < 0 or high > 255:
            raise TypeError(f"frame of dtype {array.dtype} has values in [{low:g}, {high:g}]; expected [0, 1] "
                            "or [0, 255]")
        scale = 255.0 if high <= 1.0 else 1.0
        array = np.clip(array * scale + 0.5, 0, 255).astype(np.uint8)
    else:
        raise TypeError(f"frame dtype {array.dtype} is not supported; pass uint8, uint16 or float "
                        "([0, 1] or [0, 255]) images")
    if array.ndim == 2:
        array = cv2.cvtColor(array, cv2.COLOR_GRAY2RGB)
    elif array.shape[2] == 4:
        array = cv2.cvtColor(array, cv2.COLOR_RGBA2RGB)
    return np.ascontiguousarray(array)


def dlib_available() -> bool:
    """Whether dlib and the ``face-recognition-models`` weights are installed (the ``faces`` extra)."""
    return importlib.util.find_spec("dlib") is not None and _models_dir() is not None


def _models_dir() -> Path | None:
    # Located without importing the package (its __init__ imports pkg_resources, gone from new setuptools).
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "models"
    return path if (path / "shape_predictor_68_face_landmarks.dat").is_file() else None


def available_detectors() -> list[str]:
    """The detectors installed here (Haar always; dlib with the ``faces`` extra)."""
    return (["dlib"] if dlib_available() else []) + ["haar"]


def resolve_detector(name: str = "auto") -> str:
    """``auto`` → ``dlib`` when installed, else ``haar``; an explicit name is checked."""
    if name not in DETECTORS:
        raise ValueError(f"unknown face detector {name!r}; choose one of {list(DETECTORS)}")
    if name == "auto":
        return "dlib" if dlib_available() else "haar"
    if name == "dlib" and not dlib_available():
        raise ImportError("face detector 'dlib' needs the packages dlib-bin and face-recognition-models "
                          "(pip install 'convat[faces]')")
    return name


@lru_cache(maxsize=1)
def _dlib_models():
    import dlib

    return dlib.get_frontal_face_detector(), dlib.shape_predictor(
        str(_models_dir() / "shape_predictor_68_face_landmarks.dat"))


@lru_cache(maxsize=2)
def _cascade(name: str) -> cv2.CascadeClassifier:
    path = cv2.data.haarcascades + name
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise RuntimeError(f"cannot load the Haar cascade {path}")
    return cascade


def _work_image(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    """The frame reduced so its long side is at most :data:`WORK_SIDE`, and the factor back to the frame."""
    long_side = max(rgb.shape[:2])
    if long_side <= WORK_SIDE:
        return rgb, 1.0
    factor = WORK_SIDE / long_side
    small = cv2.resize(rgb, (round(rgb.shape[1] * factor), round(rgb.shape[0] * factor)), interpolation=cv2.INTER_AREA)
    return small, 1.0 / factor


def _dlib_candidates(rgb: np.ndarray) -> list[Detection]:

    detector, predictor = _dlib_models()
    work, back = _work_image(rgb)
    upsample = 1 if max(work.shape[:2]) <= UPSAMPLE_BELOW else 0
    rects, scores, _ = detector.run(work, upsample, -0.5)  # candidates below the threshold too, for the table
    out = []
    for rect, score in zip(rects, scores, strict=True):
        shape = predictor(work, rect)
        pts = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64) * back
        out.append(Detection(rect.left() * back, rect.top() * back, rect.width() * back, rect.height() * back,
                             float(score), "dlib", pts))
    return out


def _haar_candidates(rgb: np.ndarray) -> list[Detection]:
    work, back = _work_image(rgb)
    grey = cv2.equalizeHist(cv2.cvtColor(work, cv2.COLOR_RGB2GRAY))
    pad = min(grey.shape) // 4  # the cascade misses faces that touch the frame edge
    padded = cv2.copyMakeBorder(grey, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    smallest = max(int(MIN_REL_SIDE * min(grey.shape)), 20)
    boxes, _, weights = _cascade("haarcascade_frontalface_default.xml").detectMultiScale3(
        padded, scaleFactor=1.05, minNeighbors=3, minSize=(smallest, smallest), outputRejectLevels=True)
    out = []
    for (x, y, w, h), weight in zip(np.asarray(boxes).reshape(-1, 4).tolist(), np.ravel(weights).tolist(),
                                    strict=True):
        x, y = x - pad, y - pad
        eyes = _haar_eyes(grey, x, y, w, h)
        out.append(Detection(x * back, y * back, w * back, h * back, float(weight), "haar",
                             None if eyes is None else eyes * back))
    return out


def _haar_eyes(grey: np.ndarray, x: int, y: int, w: int, h: int) -> np.ndarray | None:
    """Eye centres inside the upper half of a face box: one in each half, at a plausible distance, else None."""
    x0, y0 = max(x, 0), max(y, 0)
    region = grey[y0 : max(y + h // 2, y0), x0 : max(x + w, x0)]
    if region.size == 0:
        return None
    found = _cascade("haarcascade_eye.xml").detectMultiScale(region, 1.05, 4, minSize=(max(w // 10, 8),) * 2)
    centres = [(x0 + ex + ew / 2, y0 + ey + eh / 2) for ex, ey, ew, eh in np.asarray(found).reshape(-1, 4)]
    left = [c for c in centres if c[0] < x + w / 2]
    right = [c for c in centres if c[0] >= x + w / 2]
    if not left or not right:
        return None
    pair = np.array([max(left, key=lambda c: c[0]), min(right, key=lambda c: c[0])])
    if not 0.2 * w <= pair[1, 0] - pair[0, 0] <= 0.7 * w:
        return None
    return pair


def face_candidates(frame: np.ndarray, detector: str = "auto") -> list[Detection]:
    """Every candidate the detector returns on ``frame`` (any dtype :func:`as_uint8_rgb` accepts), unfiltered."""
    rgb = as_uint8_rgb(frame)
    name = resolve_detector(detector)
    return _dlib_candidates(rgb) if name == "dlib" else _haar_candidates(rgb)


def plausibility(candidate: Detection, shape: tuple[int, ...]) -> str | None:
    """Why a candidate is not a plausible face of a face recording (``None`` when it is)."""
    height, width = shape[:2]
    side = max(candidate.w, candidate.h)
    relative = side / min(height, width)
    if candidate.score < MIN_SCORE[candidate.detector]:
        return f"score {candidate.score:.2f} below {MIN_SCORE[candidate.detector]}"
    if not MIN_REL_SIDE <= relative <= MAX_REL_SIDE:
        return f"side {relative:.2f} of the frame's short side, outside [{MIN_REL_SIDE}, {MAX_REL_SIDE}]"
    aspect = candidate.w / candidate.h
    if not MIN_ASPECT <= aspect <= MAX_ASPECT:
        return f"aspect {aspect:.2f} outside [{MIN_ASPECT}, {MAX_ASPECT}]"
    if candidate.landmarks is not None and len(candidate.landmarks) == 68:
        pts = candidate.landmarks
        left, right = eye_centres(pts)
        eye_y = (left[1] + right[1]) / 2
        if not (left[0] < pts[NOSE_TIP, 0] < right[0] and eye_y < pts[NOSE_TIP, 1] < pts[MOUTH, 1].mean()):
            return "landmarks not in face order (eyes, nose, mouth)"
        distance = float(np.hypot(*(right - left)))
        if not 0.2 * candidate.w <= distance <= 0.7 * candidate.w:
            return f"eye distance {distance:.0f} px implausible for a {candidate.w:.0f} px face"
    return None


def rank_score(candidate: Detection, shape: tuple[int, ...]) -> float:
    """Confidence penalised by the distance of the box centre from the frame centre (half-diagonals)."""
    height, width = shape[:2]
    cx, cy = candidate.centre
    off = np.hypot(cx - width / 2, cy - height / 2) / np.hypot(width / 2, height / 2)
    return candidate.score - CENTRALITY_WEIGHT * float(off)


def select_face(candidates: list[Detection], shape: tuple[int, ...]) -> Detection | None:
    """The most confident plausible candidate (centrality as a penalty), or ``None``: never the largest box."""
    plausible = [c for c in candidates if plausibility(c, shape) is None]
    if not plausible:
        return None
    return max(plausible, key=lambda c: rank_score(c, shape))


def detect_face(frame: np.ndarray, detector: str = "auto") -> Detection | None:
    """The face of ``frame`` chosen by :func:`select_face` among the detector's candidates, or ``None``."""
    return select_face(face_candidates(frame, detector), np.shape(frame))
