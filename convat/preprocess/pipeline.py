"""Clip records -> model-ready tensors, cached.

For each clip: face box on the onset frame (reused for the apex frame) -> crop, resized to ``flow_size`` ->
onset -> apex optical flow (u, v) -> optical strain -> per-channel scaling -> resize to the model's input size.
The result is a ``(N, 3, S, S)`` float32 array and a table of the clips (with the apex used and the face box).

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

from convat.data.records import ClipRecord, records_table
from convat.preprocess.apex import APEX_STRATEGIES, apex_index
from convat.preprocess.cache import TensorCache, cache_key
from convat.preprocess.face import FACE_MODES, FaceBox, FaceNotFoundError, face_box
from convat.preprocess.flow import compute_flow, flow_params
from convat.preprocess.strain import optical_strain

__all__ = ["PreprocessConfig", "align_to_input", "apex_index", "motion_sample", "motion_tensor", "preprocess"]

PIPELINE_VERSION = "pre-2"

_BOX_SOURCES = ("detected", "cropped", "full", "not-found")


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
    """``auto``: whole frame for records with ``extra["cropped"]``, Haar detection otherwise; ``detect``; ``full``."""
    face_margin: float = 0.1
    """Margin added on each side of the detected face, as a fraction of its side."""
    flow_size: int | None = 128
    """Side the face crop is resized to before the flow is computed (``None``: the crop's own size)."""
    on_missing_face: str = "full"
    """``full``: use the whole frame and report the clip by name; ``error``: raise :class:`FaceNotFoundError`."""

    def __post_init__(self):
        if self.apex not in APEX_STRATEGIES:
            raise ValueError(f"unknown apex strategy {self.apex!r}; choose one of {list(APEX_STRATEGIES)}")
        if self.face not in FACE_MODES:
            raise ValueError(f"unknown face mode {self.face!r}; choose one of {list(FACE_MODES)}")
        if self.on_missing_face not in ("full", "error"):
            raise ValueError(f"unknown on_missing_face {self.on_missing_face!r}; choose 'full' or 'error'")
        flow_params(self.flow)  # names the accepted methods on a typo

    def params(self) -> dict:
        """Everything logged with results and hashed into cache keys (incl. the flow method's parameters)."""
        return {"version": PIPELINE_VERSION, **asdict(self), "flow_params": flow_params(self.flow)}


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    h = image.shape[0]
    if image.shape[:2] == (size, size):
        return image
    interp = cv2.INTER_AREA if h > size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interp)


def clip_face_box(record: ClipRecord, config: PreprocessConfig, onset_frame: np.ndarray | None = None) -> FaceBox:
    """The clip's face box under ``config`` (from the onset frame)."""
    return face_box(record, config.face, config.face_margin, onset_frame=onset_frame)


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


def motion_sample(record: ClipRecord, config: PreprocessConfig) -> dict[str, np.ndarray]:
    """The clip's motion tensor ``x`` ``(3, S, S)`` with the apex used and the face box (``box``, ``box_source``)."""
    if config.apex == "motion":
        frames = record.frames.load()
        onset_frame = frames[record.onset]
        box = clip_face_box(record, config, onset_frame)
        apex = apex_index(record, "motion", frames, box)
        apex_frame = frames[apex]
    else:
        apex = apex_index(record, config.apex)
        onset_frame, apex_frame = record.frames.load([record.onset, apex])
        box = clip_face_box(record, config, onset_frame)
    onset_crop, apex_crop = box.crop(onset_frame), box.crop(apex_frame)
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
    return {
        "x": np.ascontiguousarray(stack.transpose(2, 0, 1)),
        "apex": np.int64(apex),
        "box": np.asarray(box.as_tuple(), dtype=np.int64),
        "box_source": np.int64(_BOX_SOURCES.index(box.source)),
    }


def motion_tensor(record: ClipRecord, config: PreprocessConfig) -> np.ndarray:
    """``(3, S, S)`` float32: flow u, flow v and strain of the clip's onset -> apex motion."""
    return motion_sample(record, config)["x"]


def preprocess(
    records: list[ClipRecord],
    config: PreprocessConfig | None = None,
    cache: TensorCache | None = None,
    progress: bool = True,
    workers: int = 1,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Motion tensors ``(N, 3, S, S)`` of all records and their table, computed once and then cached.

    The table has the records' columns plus ``apex_used``, ``face_source`` and ``face_box`` (x, y, w, h);
    ``table.attrs["preprocess"]`` holds every parameter (the flow method's included) and
    ``table.attrs["faces_not_found"]`` the clips whose onset frame had no detectable face; those are also
    named in a warning (or raise :class:`FaceNotFoundError` with ``on_missing_face="error"``).

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
    out, apexes, boxes, sources = [], [], [], []
    for record, key in tqdm(list(zip(records, keys, strict=True)), desc=f"preprocess ({config.flow})",
                            disable=not progress or workers > 1, unit="clip"):
        hit = computed.get(key) or cache.get(key)
        if hit is None or "box" not in hit:
            hit = motion_sample(record, config)
            cache.put(key, hit)
        out.append(hit["x"])
        apexes.append(int(hit["apex"]))
        boxes.append(tuple(int(v) for v in hit["box"]))
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
    table.attrs["preprocess"] = params
    table.attrs["faces_not_found"] = missing
    x = np.stack(out) if out else np.zeros((0, 3, config.size, config.size), np.float32)
    return x, table


def _compute_missing(records: list[ClipRecord], keys: list[str], config: PreprocessConfig, cache: TensorCache,
                     workers: int, progress: bool) -> dict[str, dict[str, np.ndarray]]:
    """Samples of the clips not yet cached, computed in the worker pool and cached here as they arrive."""
    from concurrent.futures import as_completed

    from convat.pool import worker_pool

    missing: dict[str, ClipRecord] = {}
    for record, key in zip(records, keys, strict=True):
        hit = cache.get(key)
        if (hit is None or "box" not in hit) and key not in missing:
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
