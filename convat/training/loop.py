"""One model, one training set: the training loop (fixed budget or inner-validation model selection) and
batched prediction.

The loop knows nothing about subjects: the caller (:func:`convat.loso.fit_fold`) draws the inner validation
set from the training subjects and passes it in, so the held-out subject cannot reach any decision made here.
"""

from __future__ import annotations

import contextlib
import copy
import random

import numpy as np
import timm
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

import convat.models  # noqa: F401  (registers the models with timm)
from convat.models.convat import kl_of
from convat.training.config import TrainConfig, step_plan


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else the CPU; accepted: ``auto``, ``cpu``, ``cuda``, ``cuda:N``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but no CUDA device is available; use 'auto' or 'cpu'")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) and make cuDNN pick deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def build_model(config: TrainConfig, num_classes: int, in_chans: int, img_size: int) -> torch.nn.Module:
    """A fresh timm model by name; models without an ``img_size`` argument are built without it."""
    try:
        return timm.create_model(
            config.model, num_classes=num_classes, in_chans=in_chans, img_size=img_size, **config.model_kwargs
        )
    except TypeError as err:
        if "img_size" not in str(err):
            raise
        return timm.create_model(config.model, num_classes=num_classes, in_chans=in_chans, **config.model_kwargs)


def _mirror(x: torch.Tensor) -> torch.Tensor:
    x = x.flip(-1)
    x[:, 0] = -x[:, 0]
    return x


def _amp_dtype(device: torch.device, enabled: bool) -> torch.dtype | None:
    """The autocast dtype on CUDA (bfloat16 where supported), ``None`` for full precision."""
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def _to_device(xb: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    xb = xb.to(device, non_blocking=True)
    if channels_last and xb.ndim == 4:
        xb = xb.contiguous(memory_format=torch.channels_last)
    return xb


def _is_channels_last(model: torch.nn.Module) -> bool:
    """Whether the model's convolution weights are laid out channels-last (its input should match)."""
    return any(p.ndim == 4 and not p.is_contiguous() and p.is_contiguous(memory_format=torch.channels_last)
               for p in model.parameters())


def _epoch_order(y: torch.Tensor, num_classes: int, balanced: bool, gen: torch.Generator) -> torch.Tensor:
    """Sample order of one epoch: a permutation, or ``len(y)`` class-balanced draws with replacement."""
    if not balanced:
        return torch.randperm(len(y), generator=gen)
    counts = torch.bincount(y, minlength=num_classes).double()
    weights = 1.0 / counts.clamp(min=1)[y]
    return torch.multinomial(weights, len(y), replacement=True, generator=gen)


def _validate(model, x_val, y_val, num_classes, amp_dtype) -> dict:
    from convat.metrics import uf1

    proba = predict_proba(model, x_val, amp=amp_dtype is not None)
    loss = float(F.nll_loss(torch.log(torch.as_tensor(proba).clamp(min=1e-12)), torch.as_tensor(y_val)))
    pred = proba.argmax(1)
    return {
        "val_loss": loss,
        "val_uf1": uf1(y_val, pred, labels=list(range(num_classes))),
        "val_accuracy": float((pred == y_val).mean()),
    }


def train_model(
    x: np.ndarray, y: np.ndarray, num_classes: int, config: TrainConfig, progress: bool = False,
    on_epoch=None, val: tuple[np.ndarray, np.ndarray] | None = None, history: list | None = None,
) -> torch.nn.Module:
    """Train a fresh model on ``x`` (``(N, C, S, S)``) and integer labels ``y`` for ``config.epochs``.

    ``on_epoch(epoch, model, mean_loss)`` is called after every epoch (used for training curves and for the
    best-epoch-on-test pitfall demonstration); it must not change the model.

    ``val = (x_val, y_val)``, drawn by the caller from the training subjects, turns on model selection: the
    weights of the epoch with the best validation UF1 (ties: lower validation loss) are returned, and with
    ``config.patience`` training stops early. ``history``, a list, receives one dict per epoch (loss,
    training accuracy, learning rate, validation scores, and ``selected`` for the returned epoch).
    """
    seed_everything(config.seed)
    device = resolve_device(config.device)
    channels_last = config.channels_last
    model = build_model(config, num_classes, x.shape[1], x.shape[-1]).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    amp_dtype = _amp_dtype(device, config.amp)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    # fused: one kernel for the whole update on CUDA instead of several per parameter tensor
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                            fused=device.type == "cuda")
    step_model = torch.compile(model, mode=config.compile) if config.compile else model
    _, epochs, steps = step_plan(config, len(x))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=steps, pct_start=0.15)
    # The training set lives on the device for the whole run (a few MB): batches are gathered there, and the
    # host only draws the sample order and flip decisions from its seeded generator, as on the CPU.
    yt = torch.as_tensor(np.array(y), dtype=torch.long)
    xd = torch.as_tensor(x, dtype=torch.float32).to(device)
    yd = yt.to(device)
    weight = None
    if config.class_weighting:
        counts = torch.bincount(yt, minlength=num_classes).float()
        weight = (counts.sum() / (num_classes * counts.clamp(min=1))).to(device)
    gen = torch.Generator().manual_seed(config.seed)
    rows = history if history is not None else []
    best, best_state, since_best = None, None, 0
    taken = 0  # optimiser steps so far
    for epoch in tqdm(range(epochs), desc=f"{config.model} epochs", disable=not progress, leave=False):
        model.train()
        order = _epoch_order(yt, num_classes, config.balanced_sampling, gen)
        # loss and accuracy are summed on the device: no host synchronisation inside the epoch
        total = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.long, device=device)
        starts = range(0, len(order), config.batch_size)[: steps - taken]  # a step budget may end this pass early
        # the flips of every batch, drawn in the order a batch-by-batch loop draws them, sent with the order in
        # one copy per epoch (a copy from pageable host memory waits for the device: never once per step)
        flips = torch.cat([torch.rand(min(config.batch_size, len(order) - start), generator=gen) < 0.5
                           for start in starts]) if config.hflip else torch.zeros(len(order), dtype=torch.bool)
        seen = sum(min(config.batch_size, len(order) - start) for start in starts)
        plan = torch.stack([order[:seen], flips[:seen].long()]).to(device)
        for start in starts:
            idx = plan[0, start : start + config.batch_size]
            xb, yb = xd[idx], yd[idx]
            if config.hflip:
                flip = plan[1, start : start + config.batch_size].bool()
                xb = torch.where(flip[:, None, None, None], _mirror(xb.clone()), xb)
            xb = _to_device(xb, device, channels_last)
            with _autocast(device, amp_dtype):
                logits = step_model(xb)
                loss = F.cross_entropy(logits.float(), yb, weight=weight) + config.beta * kl_of(model).to(device)
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            sched.step()
            total += loss.detach().double() * len(idx)
            correct += (logits.detach().argmax(1) == yb).sum()
        taken += len(starts)
        mean_loss = float(total) / seen  # one synchronisation per epoch
        row = {"epoch": epoch + 1, "loss": mean_loss, "train_accuracy": int(correct) / seen,
               "lr": opt.param_groups[0]["lr"]}
        if on_epoch is not None:
            on_epoch(epoch, model, mean_loss)
        if val is not None:
            row.update(_validate(model, val[0], np.asarray(val[1]), num_classes, amp_dtype))
            score = (row["val_uf1"], -row["val_loss"])
            if best is None or score > best:
                best, best_state, since_best = score, copy.deepcopy(model.state_dict()), 0
                chosen = epoch + 1
            else:
                since_best += 1
        rows.append(row)
        if val is not None and config.patience and since_best >= config.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        chosen = rows[-1]["epoch"]
    for row in rows:
        row["selected"] = row["epoch"] == chosen
    model.eval()
    return model


@torch.no_grad()
def predict_proba(model: torch.nn.Module, x: np.ndarray, batch_size: int = 256, amp: bool = False) -> np.ndarray:
    """Class probabilities ``(N, K)`` in evaluation mode (``amp``: autocast on CUDA, ignored on the CPU)."""
    model.eval()
    device = next(model.parameters()).device
    amp_dtype = _amp_dtype(device, amp)
    channels_last = _is_channels_last(model)
    out = []
    for start in range(0, len(x), batch_size):
        xb = _to_device(torch.as_tensor(x[start : start + batch_size], dtype=torch.float32), device, channels_last)
        with _autocast(device, amp_dtype):
            logits = model(xb)
        out.append(torch.softmax(logits.float(), dim=-1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)
