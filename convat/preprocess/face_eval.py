"""Face detectors compared on the same images: library photographs, their variants, large synthetic frames.

The images are public samples shipped *inside* installed packages (nothing is downloaded): scikit-image's
``astronaut`` (a face) and ``chelsea`` (a cat: no human face), matplotlib's ``grace_hopper`` (a face). Each
photograph with a face is also tested rotated by 10 degrees, downscaled by half, as RGBA, as float in [0, 1],
and placed at the edge of a larger frame. A SAMM-sized 2040x1088 frame holds the face among distractors
(textured rectangles, a checkerboard, a circle), and blank frames (grey, noise) hold nothing. Every image has
a known answer: the face's box (from the photograph's hand-checked eye positions, carried through every
transformation) or no face.

:func:`evaluate_detectors` runs each detector through :func:`~convat.preprocess.detectors.detect_face` (the
same selection the pipeline uses) and counts per image: ``found`` (the chosen face covers the true eye
midpoint and its size is within a factor 2 of the truth), ``false positive`` (a face chosen where there is
none, or a wrong region chosen), ``missing`` (no face chosen where there is one), and the time per frame.
"""

from __future__ import annotations

import importlib.util
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from convat.preprocess.detectors import Detection, available_detectors, detect_face


@dataclass(frozen=True)
class TestImage:
    """An evaluation image and its answer: the two eye centres (image-left first) or ``None`` (no face)."""

    name: str
    image: np.ndarray
    eyes: np.ndarray | None

    @property
    def has_face(self) -> bool:
        return self.eyes is not None


#: Hand-checked eye centres of the library photographs (pixels, image-left eye first).
PHOTO_EYES = {"astronaut": ((199, 103), (251, 104)), "grace_hopper": ((217, 196), (313, 192))}


def _package_file(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package!r} is not installed (it ships the sample image {relative})")
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not in the installed {package} package")
    return path


def library_photo(name: str) -> np.ndarray:
    """An RGB uint8 sample photograph shipped inside an installed package: ``astronaut``, ``chelsea``
    (scikit-image's ``skimage/data``) or ``grace_hopper`` (matplotlib's ``mpl-data/sample_data``)."""
    paths = {"astronaut": ("skimage", "data/astronaut.png"), "chelsea": ("skimage", "data/chelsea.png"),
             "grace_hopper": ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg")}
    if name not in paths:
        raise ValueError(f"unknown library photograph {name!r}; choose one of {list(paths)}")
    image = cv2.imread(str(_package_file(*paths[name])), cv2.IMREAD_COLOR)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _affine(image: np.ndarray, eyes: np.ndarray, matrix: np.ndarray, size: tuple[int, int]):
    out = cv2.warpAffine(image, matrix, size, borderMode=cv2.BORDER_REFLECT)
    return out, eyes @ matrix[:, :2].T + matrix[:, 2]


def _distractors(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A grey frame with textured rectangles, a checkerboard and a bright disc (no faces)."""
    frame = np.full((height, width, 3), 110, np.uint8)
    frame += rng.integers(0, 20, frame.shape, dtype=np.uint8)
    for _ in range(6):
        h, w = int(rng.integers(height // 8, height // 3)), int(rng.integers(width // 10, width // 4))
        y, x = int(rng.integers(0, height - h)), int(rng.integers(0, width - w))
        frame[y : y + h, x : x + w] = rng.integers(0, 255, (h, w, 3), dtype=np.uint8) // 2 + 60
    cells = (np.add.outer(np.arange(height // 4) // 24, np.arange(width // 5) // 24) % 2 * 200 + 20).astype(np.uint8)
    frame[-cells.shape[0]:, -cells.shape[1]:] = cells[..., None]
    cv2.circle(frame, (width // 6, height // 4), height // 8, (230, 230, 230), -1)
    return frame


def evaluation_images(seed: int = 0) -> list[TestImage]:
    """The evaluation set (see the module docstring), deterministic for a ``seed``.

    A photograph whose package is not installed (scikit-image is in the ``faces`` extra) is left out with a
    warning, so the table still runs on the rest.
    """
    rng = np.random.default_rng(seed)
    out: list[TestImage] = []
    photos = {}
    for name in (*PHOTO_EYES, "chelsea"):
        try:
            photos[name] = library_photo(name)
        except FileNotFoundError as exc:
            warnings.warn(f"{name} left out of the detector evaluation: {exc}", stacklevel=2)
    for name, eyes in PHOTO_EYES.items():
        if name not in photos:
            continue
        photo, eyes = photos[name], np.asarray(eyes, dtype=np.float64)
        h, w = photo.shape[:2]
        out.append(TestImage(name, photo, eyes))
        centre = tuple(eyes.mean(axis=0))
        for degrees in (10, 30):
            rotated = _affine(photo, eyes, cv2.getRotationMatrix2D(centre, degrees, 1.0), (w, h))
            out.append(TestImage(f"{name} rotated {degrees} deg", *rotated))
        half = cv2.resize(photo, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        out.append(TestImage(f"{name} downscaled x0.5", half, eyes / 2))
        out.append(TestImage(f"{name} RGBA", cv2.cvtColor(photo, cv2.COLOR_RGB2RGBA), eyes))
        out.append(TestImage(f"{name} float [0, 1]", photo.astype(np.float32) / 255, eyes))
        shift = np.float64([[1, 0, -0.55 * eyes[:, 0].mean() + 0.1 * w], [0, 1, 0]])  # face cut by the left edge
        out.append(TestImage(f"{name} at the frame edge", *_affine(photo, eyes, shift, (w, h))))
        distance = float(np.hypot(*(eyes[1] - eyes[0])))
        scale = 400 / (2.2 * distance)  # a SAMM-like face: about 400 px wide in a 2040x1088 frame
        mid = eyes.mean(axis=0) + (0, 0.5 * distance)
        side = round(4 * distance * scale)  # the photograph around the face, scaled
        to_region = np.float64([[scale, 0, side / 2 - scale * mid[0]], [0, scale, side / 2 - scale * mid[1]]])
        region, region_eyes = _affine(photo, eyes, to_region, (side, side))
        big = _distractors(1088, 2040, rng)
        y0, x0 = 1088 - side - 60, 2040 - side - 300
        big[y0 : y0 + side, x0 : x0 + side] = region
        out.append(TestImage(f"{name} in 2040x1088 with distractors", big, region_eyes + (x0, y0)))
    if "chelsea" in photos:
        out.append(TestImage("chelsea (cat)", photos["chelsea"], None))
    out.append(TestImage("distractors 2040x1088, no face", _distractors(1088, 2040, rng), None))
    out.append(TestImage("blank grey", np.full((480, 640, 3), 128, np.uint8), None))
    out.append(TestImage("blank noise", rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), None))
    return out


def outcome(image: TestImage, detection: Detection | None) -> str:
    """``found``, ``false positive``, ``missing`` or ``correct reject`` for one image and one detection."""
    if detection is None:
        return "missing" if image.has_face else "correct reject"
    if not image.has_face:
        return "false positive"
    mid = image.eyes.mean(axis=0)
    distance = float(np.hypot(*(image.eyes[1] - image.eyes[0])))
    inside = detection.x <= mid[0] <= detection.x + detection.w and detection.y <= mid[1] <= detection.y + detection.h
    plausible_size = 0.5 <= detection.w / (2.2 * distance) <= 2.0  # a frontal face box is ~2.2 eye distances
    return "found" if inside and plausible_size else "false positive"


def evaluate_detectors(detectors: list[str] | None = None, images: list[TestImage] | None = None,
                       repeats: int = 1, detect: Callable[[np.ndarray, str], Detection | None] = detect_face
                       ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run every detector on every image; return ``(summary, per_image)``.

    ``summary`` has one row per detector: images with a face, ``found``, ``false positive`` (on face and
    non-face images), ``missing``, non-face images correctly rejected, and ``ms per frame`` (median over images
    and ``repeats``, single-threaded as the pipeline runs it); ``per_image`` has the outcome, score and time.
    """
    detectors = detectors or available_detectors()
    images = images if images is not None else evaluation_images()
    rows = []
    for name in detectors:
        detect(images[0].image, name)  # load models before timing
        for image in images:
            times, found = [], None
            for _ in range(repeats):
                start = time.perf_counter()
                found = detect(image.image, name)
                times.append((time.perf_counter() - start) * 1000)
            rows.append({"detector": name, "image": image.name, "face": image.has_face,
                         "outcome": outcome(image, found), "score": np.nan if found is None else found.score,
                         "landmarks": 0 if found is None or found.landmarks is None else len(found.landmarks),
                         "ms": float(np.median(times))})
    per_image = pd.DataFrame(rows)
    summary = per_image.groupby("detector", sort=False).apply(
        lambda g: pd.Series({
            "images with a face": int(g.face.sum()),
            "found": int((g.outcome == "found").sum()),
            "false positive": int((g.outcome == "false positive").sum()),
            "missing": int((g.outcome == "missing").sum()),
            "no-face images rejected": f"{int((g.outcome == 'correct reject').sum())} of {int((~g.face).sum())}",
            "ms per frame": round(float(g.ms.median()), 1),
        }), include_groups=False)
    return summary, per_image


def padded_clip_outcomes(records: list, detectors: list[str] | None = None, pad: int = 48,
                         min_iou: float = 0.5) -> pd.DataFrame:
    """Detection on the onset frames of cropped clips placed in a larger canvas (``as_uncropped``), where the
    face is known to fill the original frame: per detector, clips ``found`` (the crop overlaps the true face
    region with IoU >= ``min_iou``), ``false positive`` (a crop elsewhere) and ``missing``."""
    from convat.preprocess.face import FaceBox, as_uncropped, box_iou, face_box

    detectors = detectors or available_detectors()
    rows = []
    for record in records:
        height, width = record.frames.load([record.onset])[0].shape[:2]
        truth = FaceBox(pad, pad, width, height)
        uncropped = as_uncropped(record, pad)
        for name in detectors:
            box = face_box(uncropped, "detect", detector=name)
            result = "missing" if box.source == "not-found" else (
                "found" if box_iou(box, truth) >= min_iou else "false positive")
            rows.append({"detector": name, "clip": record.key, "outcome": result})
    table = pd.DataFrame(rows)
    counts = table.groupby("detector", sort=False).outcome.value_counts().unstack(fill_value=0)
    return counts.reindex(columns=["found", "false positive", "missing"], fill_value=0)
