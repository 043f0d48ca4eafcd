"""Clip records -> model-ready tensors, cached.

For each clip: onset and apex frames -> optical flow (u, v) -> optical strain -> per-channel scaling ->
resize to the model's input size. The result is a ``(N, 3, S, S)`` float32 array and a table of the clips.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from convat.data.records import ClipRecord, records_table
from convat.preprocess.cache import TensorCache, cache_key
from convat.preprocess.flow import TVL1_PARAMS, compute_flow
from convat.preprocess.strain import optical_strain

PIPELINE_VERSION = "pre-1"


@dataclass(frozen=True)
class PreprocessConfig:
    """Every parameter that changes the tensors (all of it goes into the cache key)."""

    flow: str = "tvl1"
    size: int = 64
    apex: str = "annotated"
    """``annotated`` (falls back to the middle frame when the dataset has none) or ``middle``."""
    flow_scale: float = 1.0
    """Flow is divided by this (pixels) so that micro-motion lands near unit range."""
    strain_scale: float = 0.1


def apex_index(record: ClipRecord, strategy: str) -> int:
    """The frame index used as apex under a strategy."""
    middle = (record.onset + record.offset) // 2
    if strategy == "annotated":
        return record.apex if record.apex is not None else middle
    if strategy == "middle":
        return middle
    raise ValueError(f"unknown apex strategy {strategy!r}; choose 'annotated' or 'middle'")


def align_to_input(record: ClipRecord, array: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """Map a frame-space array (an AU mask, a frame, a flow field) to the model input's pixel grid.

    Applies exactly the geometric steps :func:`motion_tensor` applies (crop, then resize to ``config.size``),
    so explanations can be compared with SynthME's true AU regions pixel for pixel. Boolean masks stay
    boolean (nearest-neighbour area vote); flow fields are not rescaled in magnitude here.
    """
    if array.dtype == bool:
        resized = cv2.resize(array.astype(np.float32), (config.size, config.size), interpolation=cv2.INTER_AREA)
        return resized >= 0.5
    interp = cv2.INTER_AREA if array.shape[0] > config.size else cv2.INTER_LINEAR
    return cv2.resize(array.astype(np.float32), (config.size, config.size), interpolation=interp)


def motion_tensor(record: ClipRecord, config: PreprocessConfig) -> np.ndarray:
    """``(3, S, S)`` float32: flow u, flow v and strain of the clip's onset -> apex motion."""
    apex = apex_index(record, config.apex)
    onset_frame, apex_frame = record.frames.load([record.onset, apex])
    flow = compute_flow(onset_frame, apex_frame, config.flow)
    strain = optical_strain(flow)
    stack = np.dstack([flow / config.flow_scale, strain / config.strain_scale]).astype(np.float32)
    h = stack.shape[0]
    if h != config.size:
        interp = cv2.INTER_AREA if h > config.size else cv2.INTER_LINEAR
        stack = cv2.resize(stack, (config.size, config.size), interpolation=interp)
        stack[..., :2] *= config.size / h  # flow measured in pixels of the resized image
    return np.ascontiguousarray(stack.transpose(2, 0, 1))


def preprocess(
    records: list[ClipRecord],
    config: PreprocessConfig | None = None,
    cache: TensorCache | None = None,
    progress: bool = True,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Motion tensors ``(N, 3, S, S)`` of all records and their table, computed once and then cached."""
    config = config or PreprocessConfig()
    cache = cache or TensorCache()
    params = {"version": PIPELINE_VERSION, **asdict(config), "tvl1": TVL1_PARAMS}
    out = []
    for record in tqdm(records, desc=f"preprocess ({config.flow})", disable=not progress, unit="clip"):
        key = cache_key(params, record.key, record.onset, record.apex, record.offset, record.frames.fingerprint())
        hit = cache.get(key)
        if hit is None:
            tensor = motion_tensor(record, config)
            cache.put(key, {"x": tensor})
        else:
            tensor = hit["x"]
        out.append(tensor)
    return np.stack(out), records_table(records)
