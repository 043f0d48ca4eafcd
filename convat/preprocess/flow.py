"""Onset -> apex optical flow.

All methods return a ``(H, W, 2)`` float32 field in pixels with OpenCV's convention: the point at ``x`` in
the first frame is at ``x + flow(x)`` in the second. TV-L1 (Zach et al. 2007, OpenCV contrib) is the
reference method of the micro-expression literature; DIS and Farnebäck are faster options.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

#: TV-L1 parameters (OpenCV defaults, written out so they are logged with every result).
TVL1_PARAMS: dict[str, float | int] = {
    "tau": 0.25,
    "lambda": 0.15,
    "theta": 0.3,
    "nscales": 5,
    "warps": 5,
    "epsilon": 0.01,
    "innerIterations": 30,
    "outerIterations": 10,
    "scaleStep": 0.8,
    "gamma": 0.0,
    "medianFiltering": 5,
}


def to_gray(frame: np.ndarray) -> np.ndarray:
    """An RGB uint8 frame as a single-channel uint8 image (flow methods work on intensity)."""
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame


def tvl1(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    p = TVL1_PARAMS
    algo = cv2.optflow.DualTVL1OpticalFlow_create(
        tau=p["tau"], lambda_=p["lambda"], theta=p["theta"], nscales=p["nscales"], warps=p["warps"],
        epsilon=p["epsilon"], innnerIterations=p["innerIterations"], outerIterations=p["outerIterations"],
        scaleStep=p["scaleStep"], gamma=p["gamma"], medianFiltering=p["medianFiltering"],
    )
    return algo.calc(to_gray(prev), to_gray(nxt), None)


def farneback(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    return cv2.calcOpticalFlowFarneback(to_gray(prev), to_gray(nxt), None, 0.5, 3, 9, 5, 5, 1.1, 0)


def dis(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    algo = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return algo.calc(to_gray(prev), to_gray(nxt), None)


def zero(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    """The no-motion baseline: what every flow method must beat."""
    return np.zeros((*prev.shape[:2], 2), dtype=np.float32)


FLOW_METHODS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "tvl1": tvl1,
    "dis": dis,
    "farneback": farneback,
    "zero": zero,
}


def compute_flow(prev: np.ndarray, nxt: np.ndarray, method: str = "tvl1") -> np.ndarray:
    """Optical flow from ``prev`` to ``nxt`` with the named method (see :data:`FLOW_METHODS`)."""
    try:
        fn = FLOW_METHODS[method]
    except KeyError:
        raise ValueError(f"unknown flow method {method!r}; choose one of {sorted(FLOW_METHODS)}") from None
    return np.asarray(fn(prev, nxt), dtype=np.float32)


def endpoint_error(flow: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean end-point error ``|flow - truth|`` in pixels, over ``mask`` if given."""
    err = np.linalg.norm(flow - truth, axis=-1)
    return float(err[mask].mean() if mask is not None else err.mean())
