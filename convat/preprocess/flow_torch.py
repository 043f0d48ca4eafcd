"""A batched coarse-to-fine Horn–Schunck optical flow in PyTorch (runs on a CPU or a GPU).

Horn & Schunck (1981) minimise ``sum (I_x u + I_y v + I_t)^2 + alpha^2 (|grad u|^2 + |grad v|^2)``. Here the
brightness-constancy term is linearised around the current estimate (warping), on an image pyramid, and the
Euler–Lagrange equations are solved with Jacobi iterations, all as tensor operations over a batch of frame pairs:

.. math::
    u^{k+1} = \\bar u^k - I_x \\frac{I_x (\\bar u^k - u_0) + I_y (\\bar v^k - v_0) + I_t}{\\alpha^2 + I_x^2 + I_y^2}

(and likewise for ``v``), where ``bar`` is the local average of the flow, ``(u_0, v_0)`` the flow the second image
was warped with and ``I_t = I_2(x + u_0) - I_1(x)``. Each image is first reduced to its *texture* (the image
minus a Gaussian blur of itself) so that a smooth illumination change is not read as motion, and lightly
smoothed against sensor noise.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F

#: Parameters of :func:`horn_schunck` (logged with every result that uses it).
HS_PARAMS: dict[str, float | int] = {
    "alpha": 0.1,
    "levels": 4,
    "warps": 3,
    "iterations": 30,
    "texture_sigma": 6.0,
    "noise_sigma": 1.0,
}


def _gaussian_kernel(sigma: float, device, dtype) -> torch.Tensor:
    radius = max(int(3 * sigma), 1)
    x = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(B, 1, H, W)`` with reflected borders."""
    k = _gaussian_kernel(sigma, x.device, x.dtype)
    r = k.numel() // 2
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))


def _warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``image(x + flow(x))`` with bilinear sampling; ``flow`` is ``(B, 2, H, W)`` in pixels."""
    b, _, h, w = image.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=image.device, dtype=image.dtype),
                            torch.arange(w, device=image.device, dtype=image.dtype), indexing="ij")
    gx = (xs + flow[:, 0]) * (2 / max(w - 1, 1)) - 1
    gy = (ys + flow[:, 1]) * (2 / max(h - 1, 1)) - 1
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _gradients(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    padded = F.pad(image, (1, 1, 1, 1), mode="replicate")
    ix = 0.5 * (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2])
    iy = 0.5 * (padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1])
    return ix, iy


_AVG = torch.tensor([[1 / 12, 1 / 6, 1 / 12], [1 / 6, 0.0, 1 / 6], [1 / 12, 1 / 6, 1 / 12]])


def _average(flow: torch.Tensor) -> torch.Tensor:
    b, c, h, w = flow.shape
    kernel = _AVG.to(flow.device, flow.dtype).view(1, 1, 3, 3)
    padded = F.pad(flow.reshape(b * c, 1, h, w), (1, 1, 1, 1), mode="replicate")
    return F.conv2d(padded, kernel).view(b, c, h, w)


def prepare(images: torch.Tensor, texture_sigma: float, noise_sigma: float) -> torch.Tensor:
    """Grey ``(B, 1, H, W)`` in [0, 1] -> texture component, lightly denoised."""
    if texture_sigma > 0:
        images = images - _blur(images, texture_sigma)
    if noise_sigma > 0:
        images = _blur(images, noise_sigma)
    return images


def horn_schunck(prev: torch.Tensor, nxt: torch.Tensor, alpha: float = 0.1, levels: int = 4, warps: int = 3,
                 iterations: int = 30, texture_sigma: float = 6.0, noise_sigma: float = 1.0) -> torch.Tensor:
    """Flow ``(B, 2, H, W)`` in pixels from ``prev`` to ``nxt``, both ``(B, 1, H, W)`` grey in [0, 1]."""
    i1 = prepare(prev, texture_sigma, noise_sigma)
    i2 = prepare(nxt, texture_sigma, noise_sigma)
    pyramid = [(i1, i2)]
    for _ in range(levels - 1):
        a, b = pyramid[-1]
        if min(a.shape[-2:]) < 16:
            break
        pyramid.append((F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)))
    flow = torch.zeros(prev.shape[0], 2, *pyramid[-1][0].shape[-2:], device=prev.device, dtype=prev.dtype)
    for level, (a, b) in enumerate(reversed(pyramid)):
        if level > 0:
            flow = 2 * F.interpolate(flow, size=a.shape[-2:], mode="bilinear", align_corners=False)
        ix, iy = _gradients(a)
        denom = alpha**2 + ix**2 + iy**2
        for _ in range(warps):
            it = _warp(b, flow) - a
            u0, v0 = flow[:, :1], flow[:, 1:]
            for _ in range(iterations):
                avg = _average(flow)
                ub, vb = avg[:, :1], avg[:, 1:]
                residual = (ix * (ub - u0) + iy * (vb - v0) + it) / denom
                flow = torch.cat([ub - ix * residual, vb - iy * residual], dim=1)
    return flow


def torch_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def to_grey_tensor(frames: list[np.ndarray] | np.ndarray, device: torch.device) -> torch.Tensor:
    """RGB (or grey) uint8 frames ``(B, H, W[, 3])`` -> ``(B, 1, H, W)`` float32 grey in [0, 1]."""
    array = np.stack(list(frames)).astype(np.float32) / 255.0
    if array.ndim == 4:
        array = array @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return torch.from_numpy(array).unsqueeze(1).to(device)


@contextmanager
def _single_cpu_thread(device: torch.device):
    """On the CPU, run with one intra-op thread: the many small convolutions of the Jacobi iterations gain
    nothing from threads, and on a busy machine (CI, shared cores) multi-threaded spinning made them 15x slower.
    The previous setting is restored."""
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@torch.no_grad()
def hs_batch(prevs, nxts, device: str = "auto", **params) -> np.ndarray:
    """Horn–Schunck flow of a batch of equally sized frame pairs -> ``(B, H, W, 2)`` float32 numpy."""
    dev = torch_device(device)
    with _single_cpu_thread(dev):
        flow = horn_schunck(to_grey_tensor(prevs, dev), to_grey_tensor(nxts, dev), **{**HS_PARAMS, **params})
    return flow.permute(0, 2, 3, 1).cpu().numpy().astype(np.float32)


def hs(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    """One frame pair (the :data:`convat.preprocess.flow.FLOW_METHODS` signature)."""
    return hs_batch([prev], [nxt])[0]
