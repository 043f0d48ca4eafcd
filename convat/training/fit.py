"""How well a trained model fits its own training clips, and what its variational bottleneck does.

A held-out score alone cannot tell an under-trained model from one that fits its training subjects and fails to
generalise. Every LOSO fold therefore records, once, after training, the returned model's fit to its training
clips (evaluation mode, no augmentation: UF1, accuracy and cross-entropy) and, for a model with a variational
bottleneck, the mean posterior standard deviation, the KL term and how often a prediction made with sampled
tokens agrees with the one made with the posterior means (1.0: the noise changes nothing, i.e. the
bottleneck is inert). The LOSO chapter plots the fit per fold; the model chapter's ablation reads the rest.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from convat.metrics import uf1
from convat.training.loop import predict_proba

#: The columns :func:`fold_fit` adds to a fold's record (NaN where they do not apply).
FIT_COLUMNS = ("fit_uf1", "fit_accuracy", "fit_loss", "sigma", "kl", "sample_agreement")

#: Training accuracy from which a model is said to fit its training clips. A class-balanced logistic regression
#: on the same motion maps reaches ~.96; a deep model below .9 has not learnt its training subjects, and its
#: held-out score says more about the budget than about the architecture.
FITS = 0.9


def _variational_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    from convat.models.convat import VariationalTokens

    return [m for m in model.modules() if isinstance(m, VariationalTokens)]


@torch.no_grad()
def fold_fit(model: torch.nn.Module, x_fit: np.ndarray, y_fit: np.ndarray, num_classes: int,
             x_test: np.ndarray | None = None, samples: int = 4, seed: int = 0) -> dict[str, float]:
    """The fit of a trained ``model`` to its training clips ``(x_fit, y_fit)`` and, for a variational model, its
    bottleneck's statistics on ``x_test`` (default: the training clips).

    ``sample_agreement`` is the share of (clip, draw) pairs, over ``samples`` draws of the token noise (seeded by
    ``seed``), whose sampled prediction equals the evaluation-mode one. The model is left in evaluation mode.
    """
    y_fit = np.asarray(y_fit)
    proba = predict_proba(model, x_fit)
    pred = proba.argmax(1)
    loss = float(-np.log(np.clip(proba[np.arange(len(y_fit)), y_fit], 1e-12, None)).mean()) if len(y_fit) else np.nan
    out = {"fit_uf1": uf1(y_fit, pred, labels=list(range(num_classes))), "fit_accuracy": float((pred == y_fit).mean()),
           "fit_loss": loss, "sigma": np.nan, "kl": np.nan, "sample_agreement": np.nan}
    layers = _variational_layers(model)
    if not layers:
        return out
    x_probe = x_fit if x_test is None or len(x_test) == 0 else x_test
    sigmas, kls, agree = [], [], []
    model.eval()
    mean_pred = predict_proba(model, x_probe).argmax(1)
    device = next(model.parameters()).device
    xt = torch.as_tensor(x_probe, dtype=torch.float32, device=device)
    model(xt)  # the bottleneck statistics of the evaluation-mode pass (posterior means)
    for layer in layers:
        sigmas.append(float(layer.sigma))
        kls.append(float(layer.kl))
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    for layer in layers:  # sample the tokens, everything else (dropout, BatchNorm) in evaluation mode
        layer.train()
    try:
        for _ in range(samples):
            agree.append(float((model(xt).argmax(1).cpu().numpy() == mean_pred).mean()))
    finally:
        for layer in layers:
            layer.eval()
        torch.random.set_rng_state(state)
    out.update(sigma=float(np.mean(sigmas)), kl=float(np.mean(kls)), sample_agreement=float(np.mean(agree)))
    return out


def attach_fit(rows: list[dict], fit: dict[str, float]) -> None:
    """Write ``fit`` into the curve row of the epoch whose weights were returned (``selected``), NaN into the
    others: the fit describes the returned model, not every epoch."""
    for row in rows:
        chosen = row.get("selected", False)
        row.update({k: (fit[k] if chosen else float("nan")) for k in FIT_COLUMNS})


def fit_table(curves: pd.DataFrame) -> pd.DataFrame:
    """One row per fold: the :data:`FIT_COLUMNS` of its selected epoch (from a run's curves table); empty when
    the run was made before folds recorded their fit."""
    if curves is None or "fit_accuracy" not in curves or "selected" not in curves:
        return pd.DataFrame(columns=list(FIT_COLUMNS))
    chosen = curves[curves["selected"].astype(bool)]
    return chosen.set_index("fold")[list(FIT_COLUMNS)].sort_index()


def describe_fit(name: str, fits: pd.DataFrame, threshold: float = FITS) -> str:
    """One sentence: does ``name`` fit its training clips over the folds of ``fits`` (see :func:`fit_table`)?"""
    if fits.empty:
        return f"{name}: this run did not record its training fit (made before folds recorded it)."
    acc, uf = fits["fit_accuracy"], fits["fit_uf1"]
    low = int((acc < threshold).sum())
    head = (f"{name} fits its training clips to accuracy {acc.mean():.2f} (UF1 {uf.mean():.2f}) on average over "
            f"{len(fits)} folds, {acc.min():.2f}–{acc.max():.2f}")
    if acc.mean() < threshold:
        return (head + f": below {threshold:.2f}, so it has **not** learnt its training subjects within this "
                "budget; its held-out scores measure the budget more than the architecture.")
    return head + (f"; {low} fold(s) stay below {threshold:.2f}." if low else f": every fold at least {threshold:.2f}.")


__all__ = ["FITS", "FIT_COLUMNS", "attach_fit", "describe_fit", "fit_table", "fold_fit"]
