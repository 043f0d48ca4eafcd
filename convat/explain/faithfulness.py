"""Does an explanation point at the motion that carries the label? Scores against SynthME's AU regions.

SynthME knows, for every clip, where its action units move the skin (``record.truth.masks``). Mapped onto
the model's input grid, those masks let us score any non-negative attribution map:

``mass_in_mask``
    The share of the map's total mass that falls inside the true AU region (1 = everything inside).
``pointing_game``
    Whether the map's maximum lies inside the region (dilated by ``tolerance`` pixels), after Zhang et al.
    (2018).

A map that knows nothing -- independent uniform noise -- scores, in expectation, the area share of the
region on both; :func:`random_maps` draws such maps so every table carries that baseline, computed the same
way as the methods' scores. The deletion curve (Petsiuk et al., 2018) is the model's view: remove the
top-attributed pixels first (set them to zero motion) and watch the probability of the class fall; a
faithful map makes it fall fast (small area under the curve).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch
from scipy import ndimage


def _check(maps: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    maps = np.asarray(maps, dtype=np.float64)
    masks = np.asarray(masks, dtype=bool)
    if maps.shape != masks.shape:
        raise ValueError(f"maps {maps.shape} and masks {masks.shape} must have the same (N, H, W) shape")
    return np.clip(np.nan_to_num(maps), 0.0, None), masks


def mass_in_mask(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per map, the share of its mass inside the mask (``(N,)``; NaN for an all-zero map)."""
    maps, masks = _check(maps, masks)
    total = maps.sum(axis=(1, 2))
    inside = (maps * masks).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, inside / np.where(total > 0, total, 1.0), np.nan)


def pointing_game(maps: np.ndarray, masks: np.ndarray, tolerance: int = 1) -> np.ndarray:
    """Per map, 1.0 when its maximum lies inside the mask dilated by ``tolerance`` pixels, else 0.0."""
    maps, masks = _check(maps, masks)
    hits = np.zeros(len(maps))
    for i, (m, k) in enumerate(zip(maps, masks, strict=True)):
        if tolerance > 0:
            k = ndimage.binary_dilation(k, iterations=tolerance)
        hits[i] = float(k.flat[int(np.argmax(m))])
    return hits


def area_share(masks: np.ndarray) -> np.ndarray:
    """Per mask, the share of the image it covers: what an uninformed map scores in expectation."""
    return np.asarray(masks, dtype=bool).mean(axis=(1, 2))


def random_maps(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Independent uniform noise maps: the uninformed baseline explanation."""
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def faithfulness_table(
    maps: Mapping[str, np.ndarray], masks: np.ndarray, draws: int = 20, seed: int = 0, tolerance: int = 1
) -> pd.DataFrame:
    """Mean scores per method, with a ``random`` row averaged over ``draws`` random maps per clip.

    Columns: ``mass_in_mask``, ``pointing_game``, and ``lift`` = ``mass_in_mask`` / the random map's
    (how many times more of its mass a method puts on the true region than chance).
    """
    masks = np.asarray(masks, dtype=bool)
    rand_mass = np.nanmean([mass_in_mask(random_maps(masks.shape, seed + d), masks) for d in range(draws)], axis=0)
    rand_point = np.mean([pointing_game(random_maps(masks.shape, seed + d), masks, tolerance) for d in range(draws)],
                         axis=0)
    rows = {
        name: {"mass_in_mask": np.nanmean(mass_in_mask(m, masks)),
               "pointing_game": float(np.mean(pointing_game(m, masks, tolerance)))}
        for name, m in maps.items()
    }
    rows["random"] = {"mass_in_mask": float(np.mean(rand_mass)), "pointing_game": float(np.mean(rand_point))}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table["lift"] = table["mass_in_mask"] / table.loc["random", "mass_in_mask"]
    table.index.name = "method"
    return table


@torch.no_grad()
def deletion_curve(
    model: torch.nn.Module, x, target, maps: np.ndarray, steps: int = 10, batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Probability of ``target`` as the top-attributed pixels are set to zero motion, most important first.

    Returns ``(fractions, probabilities)``: ``steps + 1`` fractions of pixels removed from 0 to 1, and the
    mean probability of each clip's target class after each removal. Ties keep a fixed pixel order.
    """
    model.eval()
    device = next(model.parameters()).device
    x = np.asarray(x, dtype=np.float32)
    n, _, h, w = x.shape
    maps = np.asarray(maps, dtype=np.float64).reshape(n, h * w)
    target = np.broadcast_to(np.asarray(target).reshape(-1), (n,))
    order = np.argsort(-maps, axis=1, kind="stable")
    fractions = np.linspace(0.0, 1.0, steps + 1)
    probs = np.zeros(len(fractions))
    for j, f in enumerate(fractions):
        k = int(round(f * h * w))
        keep = np.ones((n, h * w), dtype=np.float32)
        np.put_along_axis(keep, order[:, :k], 0.0, axis=1)
        xd = x * keep.reshape(n, 1, h, w)
        p = []
        for s in range(0, n, batch_size):
            logits = model(torch.as_tensor(xd[s : s + batch_size], device=device))
            p.append(torch.softmax(logits.float(), -1).cpu().numpy())
        p = np.concatenate(p)
        probs[j] = p[np.arange(n), target].mean()
    return fractions, probs


def deletion_table(
    model: torch.nn.Module, x, target, maps: Mapping[str, np.ndarray], steps: int = 10, seed: int = 0
) -> pd.DataFrame:
    """Deletion curves of several methods plus ``random`` (a random pixel order), long format:
    columns ``method``, ``fraction``, ``probability``; the mean over fractions is the curve's area."""
    maps = dict(maps)
    first = next(iter(maps.values()))
    maps["random"] = random_maps(first.shape, seed)
    rows = []
    for name, m in maps.items():
        fractions, probs = deletion_curve(model, x, target, m, steps)
        rows += [{"method": name, "fraction": f, "probability": p} for f, p in zip(fractions, probs, strict=True)]
    return pd.DataFrame(rows)


def deletion_auc(curves: pd.DataFrame) -> pd.Series:
    """Area under each method's deletion curve (trapezoid rule over the removed fraction): lower is better."""
    return curves.groupby("method", sort=False).apply(
        lambda g: float(np.trapezoid(g["probability"], g["fraction"])), include_groups=False
    ).rename("deletion_auc")


def motion_magnitude(x: np.ndarray) -> np.ndarray:
    """The input's own flow magnitude ``sqrt(u^2 + v^2)``, ``(N, H, W)``: a "map" that needs no model.

    An explanation that scores no better than this only tells where the face moved, which the flow already
    showed; the chapter tabulates it next to the methods for that reason.
    """
    x = np.asarray(x, dtype=np.float32)
    return np.hypot(x[:, 0], x[:, 1])
