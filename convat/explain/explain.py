"""One call per fold: every explanation of the held-out clips, with scores against the truth."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from torch import nn

from convat.explain.attention import has_attention, rollout
from convat.explain.attribution import METHODS, attribute


def explain_maps(
    model: nn.Module, x: np.ndarray, target, methods: Sequence[str] = METHODS, with_rollout: bool = True, **kwargs
) -> dict[str, np.ndarray]:
    """``{method: (N, H, W)}`` for the Captum methods, plus ``rollout`` when the model has attention.

    Rollout ignores ``target``: attention is computed before the head and is the same for every class.
    """
    maps = {m: attribute(model, x, target, m, **kwargs) for m in methods}
    if with_rollout and has_attention(model):
        maps["rollout"] = rollout(model, x)
    return maps


def available_models(names: Sequence[str]) -> list[str]:
    """The names among ``names`` that timm can build (baselines not yet written are left out)."""
    import timm

    import convat.models  # noqa: F401

    known = set(timm.list_models())
    return [n for n in names if n in known]


def summary_table(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Concatenate per-model faithfulness tables into one, indexed by (model, method)."""
    return pd.concat(tables, names=["model"])


def score_fold(
    fm, held_out: Sequence, preprocess_config, config, methods: Sequence[str] = METHODS, draws: int = 20,
    seed: int = 0, **kwargs,
) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """Every map of a fold model's held-out clips and their faithfulness table, with three reference rows:

    ``random`` (uniform noise maps), ``motion`` (the input's flow magnitude: no model at all) and
    ``untrained`` (the best method applied to a freshly initialised copy of the same network -- the
    model-randomisation sanity check of Adebayo et al., 2018). Targets are the true labels.
    """

    from convat.explain.attention import rollout
    from convat.explain.faithfulness import faithfulness_table, motion_magnitude
    from convat.explain.fold import fresh_model, truth_masks

    masks = truth_masks(list(held_out), preprocess_config)
    maps = explain_maps(fm.model, fm.x_test, fm.y_test, methods, **kwargs)
    table = faithfulness_table(maps, masks, draws=draws, seed=seed)
    best = table.drop(index="random")["mass_in_mask"].idxmax()
    fresh = fresh_model(config, len(fm.classes), fm.x_test.shape[1], fm.x_test.shape[-1], config.seed + 1)
    if best == "rollout":
        fresh_map = rollout(fresh, fm.x_test)
    else:
        fresh_map = attribute(fresh, fm.x_test, fm.y_test, best, **kwargs)
    refs = faithfulness_table({"motion": motion_magnitude(fm.x_test), "untrained": fresh_map}, masks, draws=1)
    table = pd.concat([table, refs.loc[["motion", "untrained"]]])
    table["lift"] = table["mass_in_mask"] / table.loc["random", "mass_in_mask"]
    table.index.name = "method"
    return maps, table
