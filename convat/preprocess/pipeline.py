"""Clip records -> model-ready tensors, cached.

For each clip: face box on the onset frame (reused for the apex frame) -> crop, resized to ``flow_size`` ->
onset -> apex optical flow (u, v) -> optical strain -> per-channel scaling -> resize to the model's input size.
The result is a ``(N, C, S, S)`` float32 array and a table of the clips (with the apex used and the face box).
``input`` chooses the channels: the flow (3: u, v, strain; the default), the apex face image (``apex_grey``: 1,
``apex_rgb``: 3) or both (``flow+apex_grey``: 4, ``flow+apex_rgb``: 6), so apex-image models run on the same
clips, crops and folds. Apex images are scaled by fixed constants too: ``(pixel / 255 - 0.5) / 0.25``.

Per-channel normalisation. Channels are divided by *fixed* constants, not by statistics of the data:
``u / flow_scale`` and ``v / flow_scale`` with the flow in pixels of the ``S x S`` model input, and
``strain / strain_scale`` (strain is dimensionless, so resizing does not change it). Fixed constants keep each
clip's tensor independent of every other clip, so no statistic of a held-out LOSO subject can leak into training,
and the cache entry of a clip never depends on which other clips were processed. Micro-expression flow is
a fraction of a pixel to a few pixels, so ``flow_scale = 1`` already puts u, v near unit range.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import cv2
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from convat import runstore
from convat.data.records import ClipRecord, records_table
from convat.preprocess.apex import APEX_STRATEGIES, apex_index
from convat.preprocess.cache import TensorCache, cache_key
from convat.preprocess.detectors import DETECTORS, as_uint8_rgb, resolve_detector
from convat.preprocess.face import (
    BOX_SOURCES,
    FACE_MODES,
    FACE_REFERENCES,
    FaceBox,
    FaceNotFoundError,
    face_box,
)
from convat.preprocess.flow import compute_flow, flow_params
from convat.preprocess.strain import optical_strain

__all__ = ["INPUTS", "PreprocessConfig", "align_to_input", "apex_image", "apex_index", "face_counts", "motion_sample",
           "motion_tensor", "preprocess"]

_BOX_SOURCES = BOX_SOURCES
#: Model inputs and their channel counts.
INPUTS = {"flow": 3, "apex_grey": 1, "apex_rgb": 3, "flow+apex_grey": 4, "flow+apex_rgb": 6}


@dataclass(frozen=True)
class PreprocessConfig:
    """Every parameter that changes the tensors (all of it goes into the cache key)."""

    flow: str = "tvl1"
    size: int = 64
    apex: str = "annotated"
    """``annotated`` (falls back to the middle frame when the dataset has none), ``middle`` or ``motion``."""
    flow_scale: float = 1.0
    """Flow (pixels of the model input) is divided by this so that micro-motion lands near unit range."""
    strain_scale: float = 0.1
    face: str = "auto"
    """``auto``: whole frame for records with ``extra["cropped"]``, face detection otherwise; ``detect``; ``full``."""
    face_margin: float = 0.1
    """Margin added on each side of the detected face, as a fraction of its side."""
    face_detector: str = "auto"
    """``auto`` (dlib with landmarks when the ``faces`` extra is installed, else OpenCV's Haar cascade),
    ``dlib`` or ``haar``; the detector actually used is logged in :meth:`params` and the cache key."""
    face_reference: str = "onset"
    """Frames the clip's one crop comes from: ``onset`` or ``median`` (median landmarks over a few frames)."""
    align: bool = True
    """Crop on the landmark frame with the eyes levelled (needs landmarks); ``False``: square box, no rotation."""
    register: bool = False
    """Remove residual head motion: warp the apex frame onto the onset frame by the similarity transform of
    their stable landmarks (nose bridge, eye corners) before cropping. Needs the landmark detector; clips
    where it cannot find both faces are left unregistered (column ``registered`` of the table)."""
    input: str = "flow"
    """Model input channels: ``flow`` (u, v, strain), ``apex_grey``, ``apex_rgb``, ``flow+apex_grey`` or
    ``flow+apex_rgb`` (the apex face crop, beside or instead of the flow)."""
    flow_size: int | None = 128
    """Side the face crop is resized to before the flow is computed (``None``: the crop's own size)."""
    on_missing_face: str = "full"
    """``full``: use the whole frame and report the clip by name; ``error``: raise :class:`FaceNotFoundError`."""

    def __post_init__(self):
        if self.apex not in APEX_STRATEGIES:
            raise ValueError(f"unknown apex strategy {self.apex!r}; choose one of {list(APEX_STRATEGIES)}")
        if self.face not in FACE_MODES:
            raise ValueError(f"unknown face mode {self.face!r}; choose one of {list(FACE_MODES)}")
        if self.face_detector not in DETECTORS:
            raise ValueError(f"unknown face_detector {self.face_detector!r}; choose one of {list(DETECTORS)}")
        if self.face_reference not in FACE_REFERENCES:
            raise ValueError(f"unknown face_reference {self.face_reference!r}; choose one of {list(FACE_REFERENCES)}")
        if self.input not in INPUTS:
            raise ValueError(f"unknown input {self.input!r}; choose one of {list(INPUTS)}")
        if self.on_missing_face not in ("full", "error"):
            raise ValueError(f"unknown on_missing_face {self.on_missing_face!r}; choose 'full' or 'error'")
        flow_params(self.flow)  # names the accepted methods on a typo

    def params(self) -> dict:
        """Everything logged with results and hashed into cache keys: the parameters (incl. the flow method's and
        the face detector actually used) and ``code``, a fingerprint of the preprocessing and frame-generating
        sources (no hand-bumped version)."""
        detector = resolve_detector(self.face_detector) if self.face != "full" else "none"
        return {"code": runstore.code_fingerprint(runstore.PREPROCESS_SOURCES), **asdict(self),
                "flow_params": flow_params(self.flow), "face_detector_used": detector}


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    h = image.shape[0]
    if image.shape[:2] == (size, size):
        return image
    interp = cv2.INTER_AREA if h > size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interp)


def clip_face_box(record: ClipRecord, config: PreprocessConfig, onset_frame: np.ndarray | None = None) -> FaceBox:
    """The clip's face box under ``config`` (from the onset frame)."""
    return face_box(record, config.face, config.face_margin, onset_frame=onset_frame,
                    detector=config.face_detector, reference=config.face_reference, align=config.align)


def align_to_input(record: ClipRecord, array: np.ndarray, config: PreprocessConfig,
                   box: FaceBox | None = None) -> np.ndarray:
    """Map a frame-space array (an AU mask, a frame, a flow field) to the model input's pixel grid.

    Applies exactly the geometric steps :func:`motion_tensor` applies (the clip's face-box crop, then resize to
    ``config.size``), so explanations can be compared with SynthME's true AU regions pixel for pixel. Boolean
    masks stay boolean (area vote); flow fields are not rescaled in magnitude here. Pass ``box`` (e.g. from the
    table of :func:`preprocess`) to skip detecting the face again.
    """
    box = box or clip_face_box(record, config)
    crop = box.crop(array)
    if array.dtype == bool:
        resized = cv2.resize(crop.astype(np.float32), (config.size, config.size), interpolation=cv2.INTER_AREA)
        return resized >= 0.5
    interp = cv2.INTER_AREA if crop.shape[0] > config.size else cv2.INTER_LINEAR
    return cv2.resize(crop.astype(np.float32), (config.size, config.size), interpolation=interp)


def apex_image(apex_crop: np.ndarray, size: int, rgb: bool) -> np.ndarray:
    """The apex face crop as ``(1 | 3, S, S)`` float32, scaled by fixed constants: ``(p / 255 - 0.5) / 0.25``."""
    image = as_uint8_rgb(apex_crop)
    if not rgb:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None]
    image = _resize(image, size)
    image = image[..., None] if image.ndim == 2 else image
    return ((image.astype(np.float32) / 255 - 0.5) / 0.25).transpose(2, 0, 1)


#: Landmarks that an expression hardly moves (68-point layout): the nose bridge and the four eye corners.
STABLE_LANDMARKS = (27, 28, 29, 30, 36, 39, 42, 45)


def head_motion(onset_frame: np.ndarray, apex_frame: np.ndarray, detector: str = "auto") -> np.ndarray | None:
    """The 2x3 similarity transform that maps the apex frame's stable landmarks onto the onset frame's
    (:data:`STABLE_LANDMARKS`), or ``None`` when either frame has no face with 68 landmarks."""
    from convat.preprocess.detectors import detect_face

    found = [detect_face(frame, detector) for frame in (onset_frame, apex_frame)]
    if any(f is None or f.landmarks is None or len(f.landmarks) != 68 for f in found):
        return None
    onset_pts, apex_pts = (f.landmarks[list(STABLE_LANDMARKS)].astype(np.float32) for f in found)
    warp, _ = cv2.estimateAffinePartial2D(apex_pts, onset_pts, method=cv2.LMEDS)
    return warp


def motion_sample(record: ClipRecord, config: PreprocessConfig) -> dict[str, np.ndarray]:
    """The clip's input tensor ``x`` ``(C, S, S)`` (see ``config.input``) with the apex used and the face box
    (``box``, ``box_angle``, ``box_source``)."""
    if config.apex == "motion":
        frames = record.frames.load()
        if frames.dtype != np.uint8:  # float or 16-bit frames: converted, or refused naming the dtype
            frames = np.stack([as_uint8_rgb(f) for f in frames])
        onset_frame = frames[record.onset]
        box = clip_face_box(record, config, onset_frame)
        apex = apex_index(record, "motion", frames, box)
        apex_frame = frames[apex]
    else:
        apex = apex_index(record, config.apex)
        onset_frame, apex_frame = record.frames.load([record.onset, apex])
        if onset_frame.dtype != np.uint8:
            onset_frame, apex_frame = as_uint8_rgb(onset_frame), as_uint8_rgb(apex_frame)
        box = clip_face_box(record, config, onset_frame)
    registered = False
    if config.register and box.source == "detected":
        warp = head_motion(onset_frame, apex_frame, config.face_detector)
        if warp is not None:
            apex_frame = cv2.warpAffine(apex_frame, warp, apex_frame.shape[1::-1], flags=cv2.INTER_LINEAR,
                                        borderMode=cv2.BORDER_REPLICATE)
            registered = True
    onset_crop, apex_crop = box.crop(onset_frame), box.crop(apex_frame)
    parts = []
    if config.input.startswith("flow"):
        parts.append(_flow_channels(onset_crop, apex_crop, config))
    if "apex" in config.input:
        parts.append(apex_image(apex_crop, config.size, rgb=config.input.endswith("rgb")))
    return {
        "x": np.ascontiguousarray(np.concatenate(parts)),
        "apex": np.int64(apex),
        "box": np.asarray(box.as_tuple(), dtype=np.int64),
        "box_angle": np.float64(box.angle),
        "registered": np.bool_(registered),
        "box_source": np.int64(_BOX_SOURCES.index(box.source)),
    }


def _flow_channels(onset_crop: np.ndarray, apex_crop: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """``(3, S, S)``: flow u, v (pixels of the model input, divided by ``flow_scale``) and strain."""
    if config.flow_size is not None:
        onset_crop, apex_crop = _resize(onset_crop, config.flow_size), _resize(apex_crop, config.flow_size)
    flow = compute_flow(onset_crop, apex_crop, config.flow)
    strain = optical_strain(flow)
    stack = np.dstack([flow, strain]).astype(np.float32)
    h, w = stack.shape[:2]
    stack = _resize(stack, config.size)
    stack[..., 0] *= config.size / w  # flow measured in pixels of the resized image
    stack[..., 1] *= config.size / h
    stack[..., :2] /= config.flow_scale
    stack[..., 2] /= config.strain_scale
    return stack.transpose(2, 0, 1)


def motion_tensor(record: ClipRecord, config: PreprocessConfig) -> np.ndarray:
    """``(C, S, S)`` float32: by default flow u, flow v and strain of the clip's onset -> apex motion."""
    return motion_sample(record, config)["x"]


def preprocess(
    records: list[ClipRecord],
    config: PreprocessConfig | None = None,
    cache: TensorCache | None = None,
    progress: bool = True,
    workers: int = 1,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Input tensors ``(N, C, S, S)`` of all records (``C`` from ``config.input``; 3 for the flow) and their
    table, computed once and then cached.

    The table has the records' columns plus ``apex_used``, ``face_source``, ``face_box`` (x, y, w, h) and
    ``face_angle`` (degrees the crop is rotated to level the eyes); ``table.attrs["preprocess"]`` holds every
    parameter (the flow method's and the face detector actually used included),
    ``table.attrs["face_counts"]`` the clips per face source, counted separately (``detected`` by the landmark
    detector, ``fallback`` found by the Haar cascade, ``not-found``, ``cropped``, ``full``), and
    ``table.attrs["faces_not_found"]`` the clips whose face was not found; those are also named in a warning
    (or raise :class:`FaceNotFoundError` with ``on_missing_face="error"``).

    ``workers > 1`` computes the clips missing from the cache in the reusable worker pool of
    :mod:`convat.pool` (one thread each); this process writes every result to the cache (atomically), so the
    tensors are those of a sequential run.
    """
    config = config or PreprocessConfig()
    cache = cache or TensorCache()
    params = config.params()
    keys = [cache_key(params, r.key, r.onset, r.apex, r.offset, r.frames.fingerprint(),
                      bool(r.extra.get("cropped", False)))  # decides whether the face is detected
            for r in records]
    computed = _compute_missing(records, keys, config, cache, workers, progress) if workers > 1 else {}
    out, apexes, boxes, angles, sources, registered = [], [], [], [], [], []
    for record, key in tqdm(list(zip(records, keys, strict=True)), desc=f"preprocess ({config.flow})",
                            disable=not progress or workers > 1, unit="clip"):
        hit = computed.get(key) or cache.get(key)
        if hit is None or "registered" not in hit:
            hit = motion_sample(record, config)
            cache.put(key, hit)
        out.append(hit["x"])
        apexes.append(int(hit["apex"]))
        boxes.append(tuple(int(v) for v in hit["box"]))
        angles.append(float(hit["box_angle"]))
        registered.append(bool(hit["registered"]))
        sources.append(_BOX_SOURCES[int(hit["box_source"])])
    missing = [r.key for r, s in zip(records, sources, strict=True) if s == "not-found"]
    if missing and config.on_missing_face == "error":
        raise FaceNotFoundError(missing)
    if missing:
        warnings.warn(str(FaceNotFoundError(missing)) + " (whole frames used)", stacklevel=2)
    table = records_table(records)
    table["apex_used"] = apexes
    table["face_source"] = sources
    table["face_box"] = boxes
    table["face_angle"] = angles
    table["registered"] = registered
    table.attrs["preprocess"] = params
    table.attrs["face_counts"] = face_counts(sources)
    table.attrs["faces_not_found"] = missing
    x = np.stack(out) if out else np.zeros((0, INPUTS[config.input], config.size, config.size), np.float32)
    return x, table


def face_counts(sources: list[str]) -> dict[str, int]:
    """Clips per face source, every source listed (0 included), so a report never merges them."""
    return {source: sum(s == source for s in sources) for source in _BOX_SOURCES}


def _compute_missing(records: list[ClipRecord], keys: list[str], config: PreprocessConfig, cache: TensorCache,
                     workers: int, progress: bool) -> dict[str, dict[str, np.ndarray]]:
    """Samples of the clips not yet cached, computed in the worker pool and cached here as they arrive."""
    from concurrent.futures import as_completed

    from convat.pool import worker_pool

    missing: dict[str, ClipRecord] = {}
    for record, key in zip(records, keys, strict=True):
        hit = cache.get(key)
        if (hit is None or "registered" not in hit) and key not in missing:
            missing[key] = record
    if not missing:
        return {}
    pool = worker_pool(min(workers, len(missing)), threads=1)
    futures = {pool.submit(motion_sample, record, config): key for key, record in missing.items()}
    done = {}
    for future in tqdm(as_completed(futures), total=len(futures), desc=f"preprocess ({config.flow}, {workers} "
                       "workers)", disable=not progress, unit="clip"):
        key = futures[future]
        done[key] = future.result()
        cache.put(key, done[key])
    return done
