"""The explainability chapter's sentences about deletion curves, built from the measured areas.

Like the plots, this module only words results, so it is left out of the code fingerprints
(:func:`convat.runstore.code_fingerprint`): rewording a sentence never makes a result stale.
"""

from __future__ import annotations

import pandas as pd

#: Deletion areas that differ by no more than this are a tie: one held-out subject's probabilities, rounded as
#: the table shows them (three decimals), cannot order them.
AREA_TIE = 5e-4


def describe_deletion(aucs: dict[str, pd.Series]) -> str:
    """One Markdown line per model (``aucs``: each model's :func:`~convat.explain.faithfulness.deletion_auc`, with
    a ``random`` row): which map makes the true class's probability fall fastest (the smallest area; several
    when they tie within :data:`AREA_TIE`), and how many maps fall faster than the random order by more than that.
    A closing line says what one subject and one seed can show: an order of these maps, not a ranking."""
    lines = []
    for name, areas in aucs.items():
        maps = areas.drop("random")
        random_area = float(areas["random"])
        lowest = maps[maps <= maps.min() + AREA_TIE].index.tolist()
        named = " and ".join(f"*{m}*" for m in lowest)
        fall = "give the fastest fall" if len(lowest) > 1 else "gives the fastest fall"
        below = int((maps < random_area - AREA_TIE).sum())
        lines.append(f"- **{name}**: {named} {fall} (area {maps.min():.3f}, random order {random_area:.3f}); "
                     f"{below} of {len(maps)} maps fall faster than the random order.")
    lines.append("\nOne held-out subject and one training seed: an order of these maps, not a ranking of the methods "
                 "(the controls over seeds above are the test).")
    return "\n".join(lines)
