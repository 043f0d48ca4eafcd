"""Sanity checks for explanations (Adebayo et al., NeurIPS 2018), over every LOSO fold.

A saliency map can look right for reasons that have nothing to do with what the model learned: Integrated
Gradients from a zero-motion baseline is large wherever there is motion, whatever the weights. Two controls
tell learning from input:

``randomised``
    *Cascading model randomisation*: the trained network's parameter groups are replaced, from the head down to
    the stem, by a fresh initialisation (:func:`randomize_cascade`). At the end of the cascade nothing learned
    is left; a method whose map does not change -- or still scores as well -- explains the input, not the model.
``permuted``
    *Data randomisation*: the same network and recipe trained on the same fold with its training labels
    permuted (:func:`convat.explain.fold.fold_model` with ``permute_labels``). It can memorise, but it cannot
    have learned where the label-carrying motion is.

:func:`control_scores` scores every method on every fold's held-out clips for the trained model and both
controls; :func:`summarize_controls` pools the folds and decides, per method, with a bootstrap over the folds
(subjects): a method is called **faithful** only if its score on the trained model beats *both* controls with
the 95 % interval of the paired difference above zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from torch import nn

from convat.explain.attribution import METHODS
from convat.explain.explain import explain_maps
from convat.explain.faithfulness import area_share, mass_in_mask, pointing_game
from convat.explain.fold import fold_model, fresh_model, truth_masks

CONTROLS = ("trained", "randomised", "permuted")


def parameter_groups(model: nn.Module) -> list[str]:
    """Names of the model's top-level parameter groups, from input to output.

    A group is a direct child module that holds parameters or buffers (in registration order, which for the
    models here is execution order), or ``"(embeddings)"``: the parameters registered on the model itself
    (ConVAT's class token and position embedding), placed after the first child (the stem), where they join
    the tokens. The cascade of :func:`randomize_cascade` walks this list from the end (the head) backwards.
    """
    children = [name for name, child in model.named_children()
                if any(True for _ in child.parameters()) or any(True for _ in child.buffers())]
    own = [*model.named_parameters(recurse=False), *model.named_buffers(recurse=False)]
    if own:
        children.insert(min(1, len(children)), "(embeddings)")
    return children


def _group_of(key: str, groups: list[str]) -> str:
    head = key.split(".", 1)[0]
    return head if head in groups and "." in key else "(embeddings)"


def randomize_cascade(model: nn.Module, fresh: nn.Module, depth: int | None = None) -> nn.Module:
    """Cascading randomisation: ``fresh`` (consumed) with the *trained* values of ``model`` loaded into all but
    the top ``depth`` parameter groups (``None``: none -- the end of the cascade, nothing learned is left).

    ``fresh`` is a freshly initialised network of the same architecture; ``model`` is left unchanged.
    """
    groups = parameter_groups(model)
    if parameter_groups(fresh) != groups:
        raise ValueError("randomize_cascade: `fresh` must have the same architecture as `model`")
    depth = len(groups) if depth is None else depth
    if not 0 <= depth <= len(groups):
        raise ValueError(f"depth must be in [0, {len(groups)}], got {depth}")
    kept = set(groups[: len(groups) - depth])
    state = fresh.state_dict()
    for key, value in model.state_dict().items():
        if _group_of(key, groups) in kept:
            state[key] = value.detach().clone()
    fresh.load_state_dict(state)
    return fresh.eval()


def control_scores(
    x: np.ndarray, table: pd.DataFrame, records: Sequence, preprocess_config, config,
    folds: Sequence[str] | None = None, methods: Sequence[str] = METHODS, permutation_seed: int = 1,
    progress: bool = False, **kwargs,
) -> pd.DataFrame:
    """Faithfulness of every method on every fold, for the trained model and its two controls.

    ``folds``: ``dataset/subject`` names (default: every subject, i.e. all LOSO folds). Returns one row per
    (fold, control, method) with the mean ``mass_in_mask`` and ``pointing_game`` over the fold's held-out clips,
    the clips' mean true-region ``area_share`` (what a random map scores) and ``n`` clips. Targets are the true
    labels. Trained and permuted-label weights come from :func:`fold_model` (cached on disk).
    """
    from tqdm.auto import tqdm

    from convat.loso import fold_subjects

    folds = list(folds) if folds is not None else fold_subjects(table)
    rows = []
    for fold in tqdm(folds, desc=f"sanity checks {config.model}", disable=not progress, unit="fold"):
        trained = fold_model(x, table, fold, config)
        permuted = fold_model(x, table, fold, config, permute_labels=permutation_seed)
        fresh = fresh_model(config, len(trained.classes), x.shape[1], x.shape[-1], config.seed + 1000)
        models = {"trained": trained.model, "randomised": randomize_cascade(trained.model, fresh),
                  "permuted": permuted.model}
        held_out = [records[i] for i in trained.test_index]
        masks = truth_masks(held_out, preprocess_config)
        chance = float(np.mean(area_share(masks)))
        for control, model in models.items():
            maps = explain_maps(model, trained.x_test, trained.y_test, methods, **kwargs)
            for method, m in maps.items():
                rows.append({"fold": fold, "control": control, "method": method,
                             "mass_in_mask": float(np.nanmean(mass_in_mask(m, masks))),
                             "pointing_game": float(np.mean(pointing_game(m, masks))),
                             "area_share": chance, "n": len(held_out)})
    return pd.DataFrame(rows)


def _weighted(values: np.ndarray, weights: np.ndarray) -> float:
    return float(np.sum(values * weights) / np.sum(weights))


def summarize_controls(scores: pd.DataFrame, n_boot: int = 2000, seed: int = 0,
                       score: str = "mass_in_mask") -> pd.DataFrame:
    """Per method: the clip-weighted mean score of each control over the folds, and the paired differences
    trained - randomised and trained - permuted with 95 % bootstrap intervals over folds (subjects).

    ``faithful`` is True only when both intervals lie above zero. ``random`` is the area share of the true
    regions: what an uninformed map scores.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    missing = set(CONTROLS) - set(scores["control"])
    if missing:
        raise ValueError(f"scores lack the control(s) {sorted(missing)}; got {sorted(set(scores['control']))}")
    rng = np.random.default_rng(seed)
    rows = {}
    for method, part in scores.groupby("method", sort=False):
        wide = part.pivot(index="fold", columns="control", values=score)
        if not set(CONTROLS) <= set(wide.columns):
            continue
        wide = wide[list(CONTROLS)].dropna()
        if wide.empty:
            continue  # e.g. all-zero maps on every fold
        n = part.groupby("fold")["n"].first().reindex(wide.index).to_numpy(float)
        chance = part.groupby("fold")["area_share"].first().reindex(wide.index).to_numpy(float)
        row = {c: _weighted(wide[c].to_numpy(), n) for c in CONTROLS}
        row["random"] = _weighted(chance, n)
        boots = rng.integers(0, len(wide), size=(n_boot, len(wide)))
        for control in CONTROLS[1:]:
            diff = wide["trained"].to_numpy() - wide[control].to_numpy()
            est = np.array([_weighted(diff[b], n[b]) for b in boots])
            row[f"vs_{control}"] = _weighted(diff, n)
            row[f"vs_{control}_lo"], row[f"vs_{control}_hi"] = np.quantile(est, [0.025, 0.975])
        row["faithful"] = bool(row["vs_randomised_lo"] > 0 and row["vs_permuted_lo"] > 0)
        row["folds"] = len(wide)
        rows[method] = row
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "method"
    return out


__all__ = ["CONTROLS", "control_scores", "parameter_groups", "randomize_cascade", "summarize_controls"]
