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
