"""An architecture diagram drawn from the model itself: its stages, the modules inside each stage, the tensor
shape each stage outputs for one clip, and its parameters.

Nothing is typed in: the stages come from ``model.stages()`` (or the model's children), the descriptions from
the module tree, the shapes from a forward pass (:func:`convat.models.profile.stage_table`). Change the
configuration and the diagram changes with it.
"""

from __future__ import annotations

import pandas as pd
from torch import nn

from convat.models.profile import stage_table

#: Box colours by the kind of stage, matched on the stage name.
COLOURS = {"stem": "#cfe2f3", "variational": "#fce5cd", "attention": "#d9ead3", "input": "#eeeeee"}


def describe(module: nn.Module, limit: int = 4) -> str:
    """A short description of a module: its key sizes for common layers, its children for containers."""
    if isinstance(module, nn.Conv2d):
        k, s = module.kernel_size[0], module.stride[0]
        return f"Conv2d {module.in_channels}→{module.out_channels}, {k}×{k}" + (f", stride {s}" if s != 1 else "")
    if isinstance(module, nn.Linear):
        return f"Linear {module.in_features}→{module.out_features}"
    if isinstance(module, nn.LayerNorm | nn.BatchNorm2d):
        size = module.normalized_shape[0] if isinstance(module, nn.LayerNorm) else module.num_features
        return f"{type(module).__name__}({size})"
    if isinstance(module, nn.MaxPool2d | nn.AdaptiveMaxPool2d | nn.AdaptiveAvgPool2d | nn.AvgPool2d):
        return type(module).__name__
    if hasattr(module, "num_heads"):
        return f"{type(module).__name__}, {module.num_heads} heads"
    children = [c for c in module.children() if not isinstance(c, nn.Identity | nn.Dropout)]
    if not children:
        return type(module).__name__
    parts = [describe(c, limit) for c in children]
    if len(parts) > limit:
        parts = parts[:limit] + [f"… {len(parts) - limit} more"]
    name = type(module).__name__
    inner = " · ".join(parts)
    return inner if name in ("Sequential", "ModuleList") else f"{name}: {inner}"


def architecture_table(model: nn.Module, img_size: int, in_chans: int = 3) -> pd.DataFrame:
    """One row per stage, in execution order: its description, output shape (one clip) and parameters."""
    shapes = stage_table(model, img_size, in_chans)
    stages = model.stages() if hasattr(model, "stages") else dict(model.named_children())
    rows = []
    for stage, row in shapes.iterrows():
        module = stages.get(stage)
        what = f"{in_chans}-channel motion map" if module is None else describe(module)
        if what in ("Identity", "Dropout"):  # a stage read at a pass-through module: its name says what it is
            what = "(no layer of its own; output read here)"
        shape = row["output shape"]
        rows.append({"stage": stage, "module": what,
                     "output shape": " × ".join(map(str, shape[1:])) if shape else "—",
                     "params": int(row["params"])})
    return pd.DataFrame(rows).set_index("stage")


def _colour(stage: str) -> str:
    for key, colour in COLOURS.items():
        if key in stage:
            return colour
    return "#f3f3f3"


def plot_architecture(model: nn.Module, img_size: int, in_chans: int = 3, title: str | None = None):
    """Draw :func:`architecture_table` as a column of boxes joined by arrows; returns the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    table = architecture_table(model, img_size, in_chans)
    n = len(table)
    fig, ax = plt.subplots(figsize=(9.5, 0.62 * n + 0.6))
    ax.set_xlim(0, 10)
    ax.set_ylim(-0.2, n)
    ax.axis("off")
    for i, (stage, row) in enumerate(table.iterrows()):
        y = n - 1 - i
        ax.add_patch(FancyBboxPatch((0.1, y + 0.1), 9.8, 0.62, boxstyle="round,pad=0.02,rounding_size=0.08",
                                    facecolor=_colour(stage), edgecolor="#666666", linewidth=0.8))
        ax.text(0.25, y + 0.52, stage, fontsize=9, fontweight="bold", va="center")
        module = row["module"] if len(row["module"]) <= 80 else row["module"][:79] + "…"
        ax.text(0.25, y + 0.25, module, fontsize=7.5, va="center", color="#333333")
        params = f"{row['params']:,} params" if row["params"] else ""
        ax.text(9.75, y + 0.52, row["output shape"], fontsize=9, va="center", ha="right", family="monospace")
        ax.text(9.75, y + 0.25, params, fontsize=7.5, va="center", ha="right", color="#333333")
        if i:
            ax.annotate("", xy=(5, y + 0.72), xytext=(5, y + 1.1),
                        arrowprops={"arrowstyle": "->", "color": "#666666", "lw": 0.8})
    total = sum(p.numel() for p in model.parameters())
    ax.set_title(title or f"{type(model).__name__} at {img_size}×{img_size}: output shape of each stage for one "
                 f"clip (channels × height × width, or tokens × width); {total:,} parameters", fontsize=9)
    fig.tight_layout()
    return fig


__all__ = ["architecture_table", "describe", "plot_architecture"]


if __name__ == "__main__":  # pragma: no cover - a quick look: python -m convat.models.diagram
    import timm

    import convat.models  # noqa: F401  (registers the models with timm)

    print(architecture_table(timm.create_model("convat_tiny", num_classes=3, img_size=64), 64).to_string())
