"""Captum attributions for any image classifier of the package, through one function.

Every method answers the same question -- which input pixels drive the score of class ``target`` -- and
returns one non-negative ``(N, H, W)`` map per clip, so the faithfulness scores and the galleries treat
all methods and all models alike:

``saliency``
    ``|d score / d x|``, summed over the three motion channels.
``integrated_gradients``
    Integrated Gradients (Sundararajan et al., 2017) from the **zero-motion baseline**: an all-zero map is
    the motion tensor of a face that does not move (standardisation only rescales channels, so zero stays
    zero). The attribution explains the score difference between the clip and "nothing happened".
    Magnitudes are summed over channels.
``smoothgrad``
    Saliency averaged over noisy copies of the input (Captum ``NoiseTunnel``, SmoothGrad).
``occlusion``
    The drop in the class score when the input region behind one token is set to zero motion, token by
    token (Captum ``FeatureAblation`` with one feature group per token, i.e. occlusion whose windows are the
    token grid's cells even where the grid does not divide the input evenly; models without tokens get an
    8 x 8 grid). ``window=w`` instead slides square ``w``-pixel windows by ``w`` with Captum ``Occlusion``.
``gradcam``
    Grad-CAM (``LayerGradCam``) at the output of the convolutional stem (the token grid for ConVAT),
    rectified and upsampled bilinearly to the input size.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

METHODS: tuple[str, ...] = ("saliency", "integrated_gradients", "smoothgrad", "occlusion", "gradcam")


def _as_tensor(x, model: nn.Module) -> torch.Tensor:
    device = next(model.parameters()).device
    return torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x, dtype=torch.float32).to(device)


def _as_target(target, n: int, device) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(target), dtype=torch.long, device=device).reshape(-1)
    if t.numel() == 1 and n > 1:
        t = t.expand(n)
    if t.numel() != n:
        raise ValueError(f"target has {t.numel()} entries for {n} inputs")
    return t


def cam_layer(model: nn.Module) -> nn.Module:
    """The layer Grad-CAM reads: the convolutional stem (``model.stem``), a patch embedding's projection, or
    else the last ``Conv2d`` of the model."""
    stem = getattr(model, "stem", None)
    if isinstance(stem, nn.Module):
        return stem
    patch_embed = getattr(model, "patch_embed", None)
    if patch_embed is not None and isinstance(getattr(patch_embed, "proj", None), nn.Conv2d):
        return patch_embed.proj
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(f"{type(model).__name__} has no convolutional layer for Grad-CAM")
    return convs[-1]


#: Grid side used for models without tokens (CNNs): 8 x 8 windows, like the ViT baseline's patches.
DEFAULT_GRID = 8


def token_grid(model: nn.Module, img_size: int) -> int:
    """Side of the model's token grid (``model.grid_size`` or ``model.patch_embed.grid_size``); for a model
    without tokens, :data:`DEFAULT_GRID` (capped at ``img_size``)."""
    for owner in (model, getattr(model, "patch_embed", None)):
        grid = getattr(owner, "grid_size", None) if owner is not None else None
        if grid is not None:
            return int(grid[0] if isinstance(grid, Sequence) else grid)
    return min(DEFAULT_GRID, img_size)


def occlusion_window(model: nn.Module, img_size: int) -> int:
    """Occlusion window side in pixels: one token of the model's grid, rounded up (at least 1 pixel)."""
    return max(1, math.ceil(img_size / token_grid(model, img_size)))


def token_regions(img_size: int, grid: int) -> np.ndarray:
    """``(S, S)`` integer map: which token of a ``grid x grid`` layout each input pixel falls under (pixel
    ``y`` belongs to row ``floor(y * grid / S)``, the bins of adaptive pooling and of strided stems)."""
    rows = np.arange(img_size) * grid // img_size
    return (rows[:, None] * grid + rows[None, :]).astype(np.int64)


def attribute(
    model: nn.Module,
    x,
    target,
    method: str,
    *,
    ig_steps: int = 16,
    nt_samples: int = 8,
    nt_stdev: float = 0.2,
    window: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Non-negative attribution maps ``(N, H, W)`` of ``method`` for class ``target`` of each input.

    ``x`` is ``(N, C, H, W)`` (array or tensor, already standardised as the model saw its training data);
    ``target`` an int or one class index per input. ``nt_stdev`` is SmoothGrad's noise in the input's units
    (standardised motion has unit RMS per channel). The model is put in evaluation mode.
    """
    from captum.attr import (
        FeatureAblation,
        IntegratedGradients,
        LayerAttribution,
        LayerGradCam,
        NoiseTunnel,
        Occlusion,
        Saliency,
    )

    if method not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}; choose one of {list(METHODS)}")
    model.eval()
    xt = _as_tensor(x, model)
    target_t = _as_target(target, len(xt), xt.device)
    size = xt.shape[-1]
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # captum's notes about requires_grad and setting inputs
        inputs = xt.clone().requires_grad_(True)
        if method == "saliency":
            attr = Saliency(model).attribute(inputs, target=target_t, abs=True)
        elif method == "integrated_gradients":
            attr = IntegratedGradients(model).attribute(
                inputs, baselines=torch.zeros_like(xt), target=target_t, n_steps=ig_steps,
                internal_batch_size=max(1, len(xt)) * ig_steps,
            ).abs()
        elif method == "smoothgrad":
            attr = NoiseTunnel(Saliency(model)).attribute(
                inputs, nt_type="smoothgrad", nt_samples=nt_samples, stdevs=nt_stdev, target=target_t, abs=True
            )
        elif method == "occlusion" and window is None:
            regions = torch.as_tensor(token_regions(size, token_grid(model, size)), device=xt.device)
            attr = FeatureAblation(model).attribute(
                xt, baselines=0.0, target=target_t, feature_mask=regions[None, None], perturbations_per_eval=16,
            ).clamp(min=0)
        elif method == "occlusion":
            c = xt.shape[1]
            attr = Occlusion(model).attribute(
                xt, sliding_window_shapes=(c, window, window), strides=(c, window, window), baselines=0.0,
                target=target_t, perturbations_per_eval=16,
            ).clamp(min=0)
        else:  # gradcam
            cam = LayerGradCam(model, cam_layer(model)).attribute(inputs, target=target_t, relu_attributions=True)
            attr = LayerAttribution.interpolate(cam, (size, size), interpolate_mode="bilinear").clamp(min=0)
    maps = attr.detach().float().sum(dim=1).cpu().numpy()
    return np.nan_to_num(maps, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


def attribute_all(model: nn.Module, x, target, methods: Sequence[str] = METHODS, **kwargs) -> dict[str, np.ndarray]:
    """:func:`attribute` for several methods: ``{method: (N, H, W)}``."""
    return {m: attribute(model, x, target, m, **kwargs) for m in methods}
