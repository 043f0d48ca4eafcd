"""All folds at once: one batched model whose every parameter has a leading fold axis (for GPUs).

Why: a LOSO fold of a small model is a few thousand tiny kernel launches per epoch; on a GPU each launch costs
more than its arithmetic. Training the folds as one model, with :func:`torch.func.vmap` over parameters
stacked by :func:`torch.func.stack_module_state`, turns F launches into one. On a CPU this is *slower* than
training the folds one after another (the work is the same, the batching adds overhead), so ``auto`` only
picks it on CUDA; it runs on the CPU so that tests can prove it equals the sequential engine.

What keeps the folds apart, so that fold ``f`` trains exactly as :func:`convat.training.loop.train_model`
would train it alone:

- every fold is initialised with the training seed, as a sequential fold is, and draws its sample order and
  flips from its own generator seeded the same way (per-fold RNG streams);
- every fold has its own number of steps per epoch (ragged training-set sizes) and its own one-cycle
  learning-rate and momentum schedule; a fold whose training is over is masked out of the update (its
  parameters and optimiser state stay as they are);
- at each step the folds are grouped by their current batch size (a fold's last batch of an epoch is shorter),
  and each group runs as one vmapped call on real samples only, so BatchNorm statistics (batch and running)
  are computed per fold and never see another fold's or a padding sample;
- AdamW is applied to the stacked parameters with a per-fold learning rate, momentum and step count.

Limits (:func:`supports` says whether a configuration qualifies): fixed budgets only (no inner validation or
early stopping), no ``torch.compile``. Training noise inside the model (dropout, the variational bottleneck's
sampling) is drawn by vmap per fold but not from the sequential stream, so equality with the sequential
engine holds for configurations without it (``variational=False, drop_rate=0``); the results of noisy
configurations are statistically, not numerically, those of a sequential run.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, stack_module_state, vmap

from convat.training.fit import attach_fit, fold_fit
from convat.training.loop import (
    TrainConfig,
    _amp_dtype,
    _autocast,
    _epoch_order,
    _mirror,
    build_model,
    predict_proba,
    resolve_device,
    seed_everything,
    step_plan,
)


def supports(config: TrainConfig) -> bool:
    """Whether :func:`run_batched` can train ``config`` (fixed budget, eager)."""
    return config.val_fraction == 0 and config.compile is None


@dataclass
class _Fold:
    name: str
    test: np.ndarray
    y_all: np.ndarray
    x_fit: np.ndarray
    y_fit: torch.Tensor
    x_test: np.ndarray
    steps_per_epoch: int
    epochs: int
    total_steps: int
    lrs: list[float]
    betas1: list[float]
    gen: torch.Generator
    order: torch.Tensor | None = None


def _schedule(config: TrainConfig, total_steps: int) -> tuple[list[float], list[float]]:
    """Learning rate and AdamW beta1 of each step (and after the last) of the sequential one-cycle schedule."""
    dummy = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([dummy], lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=total_steps, pct_start=0.15)
    lrs, betas = [], []
    for _ in range(total_steps):
        lrs.append(opt.param_groups[0]["lr"])
        betas.append(opt.param_groups[0]["betas"][0])
        opt.step()
        sched.step()
    lrs.append(opt.param_groups[0]["lr"])
    betas.append(opt.param_groups[0]["betas"][0])
    return lrs, betas


def run_batched(x: np.ndarray, table: pd.DataFrame, classes: list[str], config: TrainConfig,
                todo: dict[str, np.ndarray], fold_inputs: Callable) -> dict[str, pd.DataFrame]:
    """Train the folds of ``todo`` (``{fold: test mask}``) as one batched model; per fold, its predictions in
    the format of :func:`convat.loso.fit_fold`, with its training curve in ``attrs["curve"]``.

    ``fold_inputs(x, table, fold, classes, config, test_mask)`` splits and scales one fold; the LOSO engine
    passes its own (:func:`convat.loso.fold_inputs`), so that both engines train on the same inputs and the
    training stage does not import the stage above it."""
    if not supports(config):
        raise ValueError("the batched strategy trains fixed budgets only (val_fraction=0, compile=None); "
                         "use strategy='sequential' or 'pool'")
    device = resolve_device(config.device)
    amp_dtype = _amp_dtype(device, config.amp)
    if amp_dtype == torch.float16:
        amp_dtype = None  # no loss scaling across folds: full precision where bfloat16 is missing
    num_classes = len(classes)
    folds: list[_Fold] = []
    for name, mask in todo.items():
        data = fold_inputs(x, table, name, classes, config, mask)
        n = len(data.x_fit)
        spe, epochs, steps = step_plan(config, n)
        lrs, betas = _schedule(config, steps)
        folds.append(_Fold(name, data.test, data.y, data.x_fit, torch.as_tensor(data.y[data.fit], dtype=torch.long),
                           data.x_test, spe, epochs, steps, lrs, betas, torch.Generator().manual_seed(config.seed)))
    n_folds = len(folds)
    models = []
    for _ in folds:
        seed_everything(config.seed)  # the initial weights of a sequential fold
        models.append(build_model(config, num_classes, x.shape[1], x.shape[-1]).to(device).train())
    template = copy.deepcopy(models[0])
    for module in template.modules():  # timm attention: the explicit path (vmap has no fused-attention rule)
        if hasattr(module, "fused_attn"):
            module.fused_attn = False
    params, buffers = stack_module_state(models)
    params = {k: v.detach() for k, v in params.items()}
    exp_avg = {k: torch.zeros_like(v) for k, v in params.items()}
    exp_avg_sq = {k: torch.zeros_like(v) for k, v in params.items()}
    n_max = max(len(f.x_fit) for f in folds)
    xs = torch.zeros((n_folds, n_max, *x.shape[1:]), dtype=torch.float32)
    ys = torch.zeros((n_folds, n_max), dtype=torch.long)
    weights = torch.ones((n_folds, num_classes))
    for i, f in enumerate(folds):
        xs[i, : len(f.x_fit)] = torch.as_tensor(f.x_fit)
        ys[i, : len(f.y_fit)] = f.y_fit
        if config.class_weighting:
            counts = torch.bincount(f.y_fit, minlength=num_classes).float()
            weights[i] = counts.sum() / (num_classes * counts.clamp(min=1))
    xs, ys, weights = xs.to(device), ys.to(device), weights.to(device)
    use_weight = config.class_weighting

    def loss_of(p, b, xb, yb, w):
        out = functional_call(template, (p, b), (xb,))
        logits = (out[0] if isinstance(out, tuple) else out).float()
        kl = getattr(template, "kl", None)
        loss = F.cross_entropy(logits, yb, weight=w if use_weight else None)
        if isinstance(kl, torch.Tensor) and config.beta:
            loss = loss + config.beta * kl
        return loss, (loss.detach(), (logits.detach().argmax(1) == yb).sum())

    step_fn = vmap(grad(loss_of, has_aux=True), in_dims=(0, 0, 0, 0, 0), randomness="different")
    total_steps = max(f.total_steps for f in folds)
    max_epochs = max(f.epochs for f in folds)
    wd, eps, beta2 = config.weight_decay, 1e-8, 0.999
    # The whole plan (every step's sample rows, flips, active folds and per-fold AdamW coefficients) is drawn
    # on the host from each fold's generator, in the order a sequential fold draws it, and sent to the device
    # before training starts: the training loop itself copies nothing and never waits for the device.
    plan = []
    seen = np.zeros((n_folds, max_epochs), dtype=np.int64)  # clips each fold's epochs went through
    active = torch.zeros((total_steps, n_folds), dtype=torch.bool)
    lr = torch.zeros((total_steps, n_folds), dtype=torch.float64)
    b1 = torch.full((total_steps, n_folds), 0.9, dtype=torch.float64)
    for t in range(total_steps):
        groups: dict[int, list[tuple[int, torch.Tensor, torch.Tensor, int]]] = {}
        for i, f in enumerate(folds):
            if t >= f.total_steps:
                continue
            epoch, j = divmod(t, f.steps_per_epoch)
            if j == 0:
                f.order = _epoch_order(f.y_fit, num_classes, config.balanced_sampling, f.gen)
            idx = f.order[j * config.batch_size : (j + 1) * config.batch_size]
            flip = torch.rand(len(idx), generator=f.gen) < 0.5 if config.hflip else torch.zeros(len(idx), dtype=bool)
            groups.setdefault(len(idx), []).append((i, idx, flip, epoch))
            seen[i, epoch] += len(idx)
            active[t, i] = True
            lr[t, i] = f.lrs[t]
            b1[t, i] = f.betas1[t]
        plan.append([(torch.tensor([m[0] for m in ms]).to(device), torch.stack([m[1] for m in ms]).to(device),
                      torch.stack([m[2] for m in ms]).to(device), torch.tensor([m[3] for m in ms]).to(device),
                      len(ms) == n_folds) for ms in groups.values()])
    step = active.double().cumsum(0).clamp(min=1)
    bc1 = (1 - b1 ** step).to(device)
    bc2_sqrt = (1 - beta2 ** step).sqrt().to(device)
    lr_d, b1_d, active_d = lr.to(device), b1.to(device), active.to(device)
    totals = torch.zeros((n_folds, max_epochs), dtype=torch.float64, device=device)
    correct = torch.zeros((n_folds, max_epochs), dtype=torch.long, device=device)
    for t in range(total_steps):
        grads = {k: torch.zeros_like(v) for k, v in params.items()}
        for ids, rows, flips, epochs_of, whole in plan[t]:
            xb = xs[ids[:, None], rows]
            if config.hflip:
                mirrored = _mirror(xb.flatten(0, 1)).view_as(xb)  # flip copies, so xb is untouched
                xb = torch.where(flips[:, :, None, None, None], mirrored, xb)
            yb = ys[ids[:, None], rows]
            p_g = params if whole else {k: v[ids] for k, v in params.items()}
            b_g = buffers if whole else {k: v[ids] for k, v in buffers.items()}
            with _autocast(device, amp_dtype):
                g, (loss, hits) = step_fn(p_g, b_g, xb, yb, weights[ids])
            if not whole:
                for k in buffers:  # BatchNorm running statistics updated in the copies: write them back
                    buffers[k][ids] = b_g[k]
            for k in grads:
                grads[k][ids] = g[k]
            totals[ids, epochs_of] += loss.double() * rows.shape[1]
            correct[ids, epochs_of] += hits
        # AdamW on the stacked parameters, per fold: lr and beta1 from its own schedule, masked when finished
        for k, p in params.items():
            shape = (n_folds,) + (1,) * (p.ndim - 1)
            m_ = active_d[t].view(shape)
            lr_k = lr_d[t].to(p.dtype).view(shape)
            b1_k = b1_d[t].to(p.dtype).view(shape)
            new_avg = exp_avg[k] + (grads[k] - exp_avg[k]) * (1 - b1_k)
            new_sq = exp_avg_sq[k] * beta2 + grads[k] * grads[k] * (1 - beta2)
            denom = new_sq.sqrt() / bc2_sqrt[t].to(p.dtype).view(shape) + eps
            new_p = p * (1 - lr_k * wd) - (lr_k / bc1[t].to(p.dtype).view(shape)) * new_avg / denom
            params[k] = torch.where(m_, new_p, p)
            exp_avg[k] = torch.where(m_, new_avg, exp_avg[k])
            exp_avg_sq[k] = torch.where(m_, new_sq, exp_avg_sq[k])
    totals_h, correct_h = totals.cpu(), correct.cpu()  # the one synchronisation of the training
    curves: list[list[dict]] = []
    for i, f in enumerate(folds):
        curves.append([{"epoch": e + 1, "loss": float(totals_h[i, e]) / int(seen[i, e]),
                        "train_accuracy": int(correct_h[i, e]) / int(seen[i, e]),
                        "lr": f.lrs[min((e + 1) * f.steps_per_epoch, f.total_steps)]} for e in range(f.epochs)])
    results = {}
    for i, f in enumerate(folds):
        model = models[i]
        model.load_state_dict({**{k: v[i] for k, v in params.items()}, **{k: v[i] for k, v in buffers.items()}})
        proba = predict_proba(model.eval(), f.x_test, amp=amp_dtype is not None)
        out = table.loc[f.test, ["dataset", "subject", "clip", "label"]].reset_index(drop=True)
        out["prediction"] = [classes[c] for c in proba.argmax(1)]
        out["fold"] = f.name
        for c, cls in enumerate(classes):
            out[f"p_{cls}"] = proba[:, c].astype(np.float64)
        for row in curves[i]:
            row["selected"] = row["epoch"] == curves[i][-1]["epoch"]
        attach_fit(curves[i], fold_fit(model, f.x_fit, f.y_fit.numpy(), num_classes, f.x_test, seed=config.seed))
        out.attrs["curve"] = pd.DataFrame([{"fold": f.name, **row} for row in curves[i]])
        results[f.name] = out
    return results
