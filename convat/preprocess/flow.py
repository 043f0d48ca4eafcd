"""Onset -> apex optical flow.

All methods return a ``(H, W, 2)`` float32 field in pixels with OpenCV's convention: the point at ``x`` in
the first frame is at ``x + flow(x)`` in the second. TV-L1 (Zach et al. 2007, OpenCV contrib) is the
reference method of the micro-expression literature; DIS and Farnebäck are faster options, and ``hs`` is a
batched PyTorch Horn–Schunck (:mod:`convat.preprocess.flow_torch`) that runs on a GPU.

Why TV-L1 gets a texture prefilter. With OpenCV's defaults on raw grey frames, TV-L1 was *worse than zero flow*
over the whole SynthME frame (EPE 0.51 vs 0.50 px on six clips; 0.27 px on the face). The cause is not sub-pixel
motion, noise or the input type (uint8 and float inputs give the same field, and no setting of lambda, theta,
warps, scales or median filtering helped), but brightness constancy: SynthME, like real recordings, has a slowly
moving illumination gradient, and a few percent of intensity change over a flat background or smooth skin is
read by the L1 data term as motion of up to a pixel. Removing the low frequencies first (the structure–texture
decomposition of Wedel et al., "An improved algorithm for TV-L1 optical flow", 2009, here a Gaussian high-pass
with ``texture_sigma``) brings TV-L1 to 0.09 px over the frame and 0.05 px on the face. DIS (patch-mean
normalised) and Farnebäck (local polynomial with a constant term) are insensitive to it and run unfiltered.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

#: TV-L1 parameters: OpenCV's defaults plus the texture prefilter (written out so they are logged with every
#: result; ``texture_sigma`` = 0 gives plain OpenCV TV-L1 on grey frames).
TVL1_PARAMS: dict[str, float | int] = {
    "texture_sigma": 8.0,
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


def texture(frame: np.ndarray, sigma: float) -> np.ndarray:
    """The texture part of a frame: grey in [0, 1] minus its Gaussian blur (plus 0.5), float32.

    Removes illumination gradients and slow shading changes that break brightness constancy.
    """
    grey = to_gray(frame).astype(np.float32) / 255.0
    return grey - cv2.GaussianBlur(grey, (0, 0), sigma) + 0.5


def tvl1(prev: np.ndarray, nxt: np.ndarray, **overrides: float) -> np.ndarray:
    """TV-L1 (Zach, Pock & Bischof 2007) on the texture part of the frames; see :data:`TVL1_PARAMS`."""
    p = {**TVL1_PARAMS, **overrides}
    algo = cv2.optflow.DualTVL1OpticalFlow_create(
        tau=p["tau"], lambda_=p["lambda"], theta=p["theta"], nscales=p["nscales"], warps=p["warps"],
        epsilon=p["epsilon"], innnerIterations=p["innerIterations"], outerIterations=p["outerIterations"],
        scaleStep=p["scaleStep"], gamma=p["gamma"], medianFiltering=p["medianFiltering"],
    )
    if p["texture_sigma"] > 0:
        # OpenCV reads float input as intensities in [0, 1] (it multiplies by 255), like uint8 / 255.
        return algo.calc(texture(prev, p["texture_sigma"]), texture(nxt, p["texture_sigma"]), None)
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


def _hs(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    from convat.preprocess.flow_torch import hs

    return hs(prev, nxt)


def tvl1_plain(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    """TV-L1 with OpenCV's defaults on raw grey frames (no texture prefilter): kept to show why the prefilter."""
    return tvl1(prev, nxt, texture_sigma=0)


FLOW_METHODS["hs"] = _hs
FLOW_METHODS["tvl1_plain"] = tvl1_plain


#: Parameters of the methods added with :func:`register_flow_method`, by name.
_REGISTERED_PARAMS: dict[str, dict[str, float | int | str]] = {}


def register_flow_method(name: str, fn: Callable[[np.ndarray, np.ndarray], np.ndarray],
                         params: dict[str, float | int | str], replace: bool = False) -> None:
    """Make a new optical-flow method usable by name everywhere (``PreprocessConfig(flow=name)``, the benchmark).

    ``fn(prev, nxt)`` takes two grey or colour frames and returns an ``(H, W, 2)`` flow in pixels. ``params`` is
    logged with results and hashed into the tensor cache key, so it must identify what ``fn`` computes: change
    it (e.g. a ``"version"`` entry) whenever ``fn`` changes, or the cache serves the old tensors. An existing
    name is refused unless ``replace=True``.
    """
    if not name or not isinstance(name, str):
        raise ValueError(f"a flow method needs a non-empty name, got {name!r}")
    if name in FLOW_METHODS and not replace:
        raise ValueError(f"flow method {name!r} exists already; pass replace=True to redefine it")
    FLOW_METHODS[name] = fn
    _REGISTERED_PARAMS[name] = {"registered": name, **params}


def flow_params(method: str) -> dict[str, float | int | str]:
    """The parameters of a flow method, as logged with results and hashed into cache keys."""
    if method in _REGISTERED_PARAMS:
        return dict(_REGISTERED_PARAMS[method])
    if method == "tvl1":
        return dict(TVL1_PARAMS)
    if method == "tvl1_plain":
        return {**TVL1_PARAMS, "texture_sigma": 0}
    if method == "hs":
        from convat.preprocess.flow_torch import HS_PARAMS

        return dict(HS_PARAMS)
    if method == "farneback":
        return {"pyr_scale": 0.5, "levels": 3, "winsize": 9, "iterations": 5, "poly_n": 5, "poly_sigma": 1.1}
    if method == "dis":
        return {"preset": "medium"}
    if method == "zero":
        return {}
    raise ValueError(f"unknown flow method {method!r}; choose one of {sorted(FLOW_METHODS)}")


def compute_flow_batch(prevs: list[np.ndarray], nxts: list[np.ndarray], method: str = "tvl1",
                       device: str = "auto") -> list[np.ndarray]:
    """Flows of many frame pairs: one batch on the torch ``device`` for ``hs`` (pairs of equal size), a loop
    else (``device`` only matters for ``hs``)."""
    if method == "hs" and prevs and len({p.shape for p in prevs}) == 1:
        from convat.preprocess.flow_torch import hs_batch

        return list(hs_batch(prevs, nxts, device=device))
    return [compute_flow(p, n, method) for p, n in zip(prevs, nxts, strict=True)]


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
