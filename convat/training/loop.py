"""One model, one training set: a fixed-budget training loop and batched prediction."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
import timm
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

import convat.models  # noqa: F401  (registers the models with timm)
from convat.models.convat import kl_of


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run; recorded with every result."""

    model: str = "convat_tiny"
    model_kwargs: dict = field(default_factory=dict)
    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05
    beta: float = 1e-3
    """Weight of the variational bottleneck's KL term (0 switches it off in the loss)."""
    class_weighting: bool = True
    hflip: bool = True
    """Mirror augmentation: flip the maps horizontally and negate the u channel (it is a horizontal flow)."""
    seed: int = 0
    device: str = "auto"


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_model(config: TrainConfig, num_classes: int, in_chans: int, img_size: int) -> torch.nn.Module:
    return timm.create_model(
        config.model, num_classes=num_classes, in_chans=in_chans, img_size=img_size, **config.model_kwargs
    )


def _mirror(x: torch.Tensor) -> torch.Tensor:
    x = x.flip(-1)
    x[:, 0] = -x[:, 0]
    return x


def train_model(
    x: np.ndarray, y: np.ndarray, num_classes: int, config: TrainConfig, progress: bool = False,
    on_epoch=None,
) -> torch.nn.Module:
    """Train a fresh model on ``x`` (``(N, C, S, S)``) and integer labels ``y`` for ``config.epochs``.

    ``on_epoch(epoch, model, mean_loss)`` is called after every epoch (used for training curves and for the
    best-epoch-on-test pitfall demonstration); it must not change the model.
    """
    seed_everything(config.seed)
    device = resolve_device(config.device)
    model = build_model(config, num_classes, x.shape[1], x.shape[-1]).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps = config.epochs * max(1, int(np.ceil(len(x) / config.batch_size)))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=steps, pct_start=0.15)
    xt = torch.as_tensor(x, dtype=torch.float32)
    yt = torch.as_tensor(np.array(y), dtype=torch.long)
    weight = None
    if config.class_weighting:
        counts = torch.bincount(yt, minlength=num_classes).float()
        weight = (counts.sum() / (num_classes * counts.clamp(min=1))).to(device)
    gen = torch.Generator().manual_seed(config.seed)
    for epoch in tqdm(range(config.epochs), desc="epochs", disable=not progress, leave=False):
        model.train()
        order = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            idx = order[start : start + config.batch_size]
            xb, yb = xt[idx].clone(), yt[idx]
            if config.hflip:
                flip = torch.rand(len(idx), generator=gen) < 0.5
                if flip.any():
                    xb[flip] = _mirror(xb[flip])
            xb, yb = xb.to(device), yb.to(device)
            logits = model(xb)
            loss = F.cross_entropy(logits, yb, weight=weight) + config.beta * kl_of(model).to(device)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        if on_epoch is not None:
            on_epoch(epoch, model, total / len(xt))
    return model


@torch.no_grad()
def predict_proba(model: torch.nn.Module, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Class probabilities ``(N, K)`` in evaluation mode."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(x), batch_size):
        xb = torch.as_tensor(x[start : start + batch_size], dtype=torch.float32, device=device)
        out.append(torch.softmax(model(xb).float(), dim=-1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)
