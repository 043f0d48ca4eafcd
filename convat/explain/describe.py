"""The explainability chapter's sentences about deletion curves, built from the measured areas.

These functions only summarise and word what other modules measured, for the page; no explanation score depends
on them. Like the plots, this module is therefore left out of the code fingerprints
(:func:`convat.runstore.code_fingerprint`), so rewording a sentence never makes a result stale.
"""

from __future__ import annotations

import pandas as pd

#: Deletion areas are compared as the table shows them, at this many decimals: areas equal at this precision
#: are a tie, and a map falls faster than the random order only when its shown area is smaller.
AREA_DECIMALS = 3


def describe_deletion(aucs: dict[str, pd.Series]) -> str:
    """One Markdown line per model (``aucs``: each model's :func:`~convat.explain.faithfulness.deletion_auc`, with
    a ``random`` row): which map makes the true class's probability fall fastest (the smallest area; several
    when they tie at :data:`AREA_DECIMALS` decimals), and how many maps fall faster than the random order. A
    closing line says what one subject and one seed can show: an order of these maps, not a ranking."""
    lines = []
    for name, areas in aucs.items():
        shown = areas.round(AREA_DECIMALS)
        maps, random_area = shown.drop("random"), shown["random"]
        lowest = maps[maps == maps.min()].index.tolist()
        named = " and ".join(f"*{m}*" for m in lowest)
        fall = "give the fastest fall" if len(lowest) > 1 else "gives the fastest fall"
        below = int((maps < random_area).sum())
        lines.append(f"- **{name}**: {named} {fall} (area {maps.min():.3f}, random order {random_area:.3f}); "
                     f"{below} of {len(maps)} maps fall faster than the random order.")
    lines.append("\nOne held-out subject and one training seed: an order of these maps, not a ranking of the methods "
                 "(the controls over seeds above are the test).")
    return "\n".join(lines)
