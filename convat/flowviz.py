"""One colour code for motion: every figure of the book draws optical flow with :func:`flow_to_rgb`.

Convention (the Middlebury-style wheel in image coordinates, y pointing down): the hue gives the direction --
rightward red, downward yellow-green, leftward cyan, upward violet -- and the saturation the magnitude relative
to ``max_magnitude`` (default: the field's 99th percentile), so a still pixel is white and a pixel at or above
the scale has the full colour. :func:`colour_wheel` is the legend. It is a leaf module (numpy and matplotlib's
colour conversion only) so that every stage's plots can use it.
"""

from __future__ import annotations

import numpy as np


def flow_to_rgb(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """``(H, W, 3)`` RGB in [0, 1] of a flow field ``(H, W, 2)`` (``u`` right, ``v`` down, in pixels)."""
    from matplotlib.colors import hsv_to_rgb

    flow = np.asarray(flow, dtype=np.float64)
    if flow.ndim != 3 or flow.shape[-1] != 2:
        raise ValueError(f"flow_to_rgb expects a (H, W, 2) field, got shape {flow.shape}")
    magnitude = np.hypot(flow[..., 0], flow[..., 1])
    scale = max_magnitude or float(np.percentile(magnitude, 99)) or 1.0
    hue = (np.arctan2(flow[..., 1], flow[..., 0]) / (2 * np.pi)) % 1.0
    hsv = np.stack([hue, np.clip(magnitude / scale, 0, 1), np.ones_like(hue)], axis=-1)
    return np.clip(hsv_to_rgb(hsv), 0, 1)


def colour_wheel(size: int = 65) -> np.ndarray:
    """The legend of :func:`flow_to_rgb`: the colour of a unit flow in every direction, ``(size, size, 4)`` RGBA
    (transparent outside the unit disc)."""
    r = (size - 1) / 2
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    flow = np.dstack([(xs - r) / r, (ys - r) / r])
    alpha = (np.hypot(flow[..., 0], flow[..., 1]) <= 1).astype(np.float64)
    return np.dstack([flow_to_rgb(flow, 1.0), alpha])


__all__ = ["colour_wheel", "flow_to_rgb"]
