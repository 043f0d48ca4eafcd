"""Plain-language sentences about a faithfulness table, computed from the numbers (never typed in)."""

from __future__ import annotations

import pandas as pd

REFERENCE_ROWS = ("random", "motion", "untrained")


def describe_faithfulness(table: pd.DataFrame) -> str:
    """Markdown sentences on a ``(model, method)``-indexed faithfulness table with ``random`` (and
    optionally ``motion`` / ``untrained``) reference rows per model."""
    lines = []
    best_of = {}
    for model, part in table.groupby(level="model", sort=False):
        part = part.droplevel("model")
        methods = part.drop(index=[r for r in REFERENCE_ROWS if r in part.index])
        if methods.empty:
            continue
        best = methods["mass_in_mask"].idxmax()
        best_of[model] = (best, methods.loc[best, "mass_in_mask"])
        rnd = part.loc["random", "mass_in_mask"]
        lift = methods.loc[best, "mass_in_mask"] / rnd if rnd > 0 else float("nan")
        above = int((methods["mass_in_mask"] > rnd).sum())
        sentence = (
            f"- **{model}**: {above} of {len(methods)} methods put more of their mass on the true AU regions than a "
            f"random map ({rnd:.1%}); the best, *{best}*, puts {methods.loc[best, 'mass_in_mask']:.1%} there "
            f"({lift:.1f}× chance) and its maximum lands in the region for "
            f"{methods.loc[best, 'pointing_game']:.0%} of the clips."
        )
        if "motion" in part.index:
            motion = part.loc["motion", "mass_in_mask"]
            beat = int((methods["mass_in_mask"] > motion).sum())
            sentence += (f" The input's own flow magnitude scores {motion:.1%}; {beat} of {len(methods)} methods "
                         "beat it, i.e. say more than *where the face moved*.")
        if "untrained" in part.index:
            fresh = part.loc["untrained", "mass_in_mask"]
            sentence += f" The same method on an untrained copy of the network scores {fresh:.1%}"
            if fresh >= 0.9 * methods.loc[best, "mass_in_mask"]:
                sentence += (", about as much or more: this score comes from the input, not from what the model "
                             "learned.")
            else:
                sentence += ", clearly less: training moved the map towards the true regions."
        lines.append(sentence)
    if len(best_of) > 1:
        top = max(best_of, key=lambda m: best_of[m][1])
        first = next(iter(best_of))
        summary = (f"\n\nAcross models, the maps of **{top}** put the most mass on the true regions "
                   f"(*{best_of[top][0]}*, {best_of[top][1]:.1%})")
        if top != first:
            summary += f", more than those of {first} ({best_of[first][1]:.1%})"
        lines.append(summary + ".")
    return "\n".join(lines)
