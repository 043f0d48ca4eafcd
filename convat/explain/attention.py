"""Attention maps of every transformer block, and attention rollout.

timm's ``Attention`` normally runs PyTorch's fused kernel, which never materialises the attention matrix.
While explaining, :func:`attention_maps` switches every attention module to the explicit path
(``fused_attn = False``), reads ``softmax(q k^T * scale)`` as the output of its ``attn_drop`` module (the
identity in evaluation mode), and restores each module's setting afterwards, whatever happens.

Attention rollout (Abnar & Zuidema, 2020) composes the blocks: each block's attention is averaged over
heads, the residual connection is added as the identity, rows are renormalised to sum to one, and the
blocks' matrices are multiplied from the first to the last. The read-out is the class token's row (models
with ``global_pool="token"``) or the mean of all token rows (mean-pooled models), restricted to the patch
tokens and laid out on the token grid.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def attention_modules(model: nn.Module) -> list[nn.Module]:
    """The model's attention modules (those with ``fused_attn`` and ``attn_drop``), in forward order."""
    return [
        m for m in model.modules()
        if hasattr(m, "fused_attn") and isinstance(getattr(m, "attn_drop", None), nn.Module)
    ]


def has_attention(model: nn.Module) -> bool:
    """Whether the model has timm attention modules to read."""
    return bool(attention_modules(model))


@contextmanager
def unfused_attention(model: nn.Module):
    """Switch every attention module to the explicit (non-fused) path inside the ``with`` block only."""
    modules = attention_modules(model)
    saved = [m.fused_attn for m in modules]
    try:
        for m in modules:
            m.fused_attn = False
        yield modules
    finally:
        for m, fused in zip(modules, saved, strict=True):
            m.fused_attn = fused


@torch.no_grad()
def attention_maps(model: nn.Module, x) -> list[torch.Tensor]:
    """Attention probabilities of every block for inputs ``x``: a list of ``(N, heads, T, T)`` tensors."""
    modules = attention_modules(model)
    if not modules:
        raise ValueError(f"{type(model).__name__} has no timm attention modules; attention maps need a transformer")
    model.eval()
    device = next(model.parameters()).device
    xt = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x, dtype=torch.float32).to(device)
    captured: list[torch.Tensor] = []
    with unfused_attention(model):
        handles = [m.attn_drop.register_forward_hook(lambda mod, i, o: captured.append(o.detach().float().cpu()))
                   for m in modules]
        try:
            model(xt)
        finally:
            for h in handles:
                h.remove()
    return captured


def rollout_matrix(attentions: list[torch.Tensor], residual: bool = True) -> torch.Tensor:
    """Attention rollout ``(N, T, T)``: head average, plus identity, row normalisation, product over blocks.

    Every factor is row-stochastic, so every row of the result sums to one.
    """
    if not attentions:
        raise ValueError("rollout needs the attention of at least one block")
    result = None
    for attn in attentions:
        a = attn.float().mean(dim=1)
        if residual:
            a = a + torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
        a = a / a.sum(dim=-1, keepdim=True)
        result = a if result is None else a @ result
    return result


def prefix_tokens(n_tokens: int) -> tuple[int, int]:
    """``(prefix tokens, grid side)`` for a sequence of ``n_tokens``: the largest square grid that fits."""
    grid = math.isqrt(n_tokens)
    return n_tokens - grid * grid, grid


def token_map(rows: torch.Tensor, n_prefix: int, grid: int, img_size: int | None = None) -> np.ndarray:
    """Weights on the patch tokens ``(N, T)`` -> ``(N, grid, grid)`` or upsampled to ``img_size``."""
    patch = rows[:, n_prefix:].reshape(-1, 1, grid, grid)
    if img_size is not None and img_size != grid:
        patch = F.interpolate(patch, size=(img_size, img_size), mode="bilinear", align_corners=False)
    return patch[:, 0].numpy().astype(np.float32)


def readout(matrix: torch.Tensor, mode: str, n_prefix: int) -> torch.Tensor:
    """Row(s) of a ``(N, T, T)`` attention or rollout matrix that the classifier reads: ``token`` (the class
    token's row) or ``mean`` (the mean of all rows, for mean pooling)."""
    if mode == "token":
        if n_prefix < 1:
            raise ValueError("read-out 'token' needs a class token; this model has none, use 'mean'")
        return matrix[:, 0]
    if mode == "mean":
        return matrix.mean(dim=1)
    raise ValueError(f"unknown read-out {mode!r}; choose 'token' or 'mean'")


def default_readout(model: nn.Module) -> str:
    """``token`` for a model that pools with its class token, else ``mean``."""
    pool = getattr(model, "global_pool", "token")
    has_cls = getattr(model, "cls_token", None) is not None
    return "token" if has_cls and pool == "token" else "mean"


def rollout(model: nn.Module, x, readout_mode: str | None = None, img_size: int | None = None) -> np.ndarray:
    """Attention-rollout maps ``(N, H, W)`` (or the token grid when ``img_size`` is ``None`` and the input's
    size is not wanted) for inputs ``x``."""
    attns = attention_maps(model, x)
    n_prefix, grid = prefix_tokens(attns[0].shape[-1])
    mode = readout_mode or default_readout(model)
    size = img_size if img_size is not None else np.asarray(x).shape[-1]
    return token_map(readout(rollout_matrix(attns), mode, n_prefix), n_prefix, grid, size)


def block_maps(model: nn.Module, x, readout_mode: str | None = None) -> list[np.ndarray]:
    """Per block, the head-averaged attention that the read-out row pays to each patch: ``(N, g, g)`` each."""
    attns = attention_maps(model, x)
    n_prefix, grid = prefix_tokens(attns[0].shape[-1])
    mode = readout_mode or default_readout(model)
    return [token_map(readout(a.mean(dim=1), mode, n_prefix), n_prefix, grid) for a in attns]
