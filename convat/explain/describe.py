"""The explainability chapter's sentences, built from the measured numbers: faithfulness scores against the true
AU regions, the sanity checks (randomised network, permuted labels) and deletion curves.

These functions only summarise and word what other modules measured, for the page; no explanation score depends
on them. Like the plots, this module is therefore left out of the code fingerprints
(:func:`convat.runstore.code_fingerprint`), so rewording a sentence never makes a result stale.
"""

from __future__ import annotations

import pandas as pd

#: The reference rows of a faithfulness table (:func:`~convat.explain.faithfulness.faithfulness_table`), per model.
REFERENCE_ROWS = ("random", "motion", "untrained")

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


def describe_faithfulness(table: pd.DataFrame) -> str:
    """Markdown sentences on a ``(model, method)``-indexed faithfulness table with ``random`` (and
    optionally ``motion`` / ``untrained``) reference rows per model. The table is one held-out subject's (one
    fold, one training seed, no interval), so every sentence says it is about this fold: which model's maps put
    the most mass on the true regions is an order of this fold, not a ranking of the models, and the comparison
    with the untrained copy is one control, not the sanity checks over folds
    (:func:`describe_controls`)."""
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
                sentence += (", about as much or more: on this fold the score comes from the input, not from what "
                             "the model learned.")
            else:
                sentence += ", clearly less: on this fold, training moved the map towards the true regions."
        lines.append(sentence)
    if len(best_of) > 1:
        top = max(best_of, key=lambda m: best_of[m][1])
        first = next(iter(best_of))
        summary = (f"\n\nOn this subject and training seed, the maps of **{top}** put the most mass on the true "
                   f"regions (*{best_of[top][0]}*, {best_of[top][1]:.1%})")
        if top != first:
            summary += f", more than those of {first} ({best_of[first][1]:.1%})"
        lines.append(summary + ": an order of this fold, not a ranking of the models.")
    return "\n".join(lines)


def describe_controls(summary: pd.DataFrame, model: str = "the model") -> str:
    """Markdown sentences on :func:`summarize_controls`'s table: which methods pass both controls, computed."""
    if summary.empty:
        return f"No method of {model} could be scored against the controls."
    passed = summary.index[summary["faithful"]].tolist()
    folds = int(summary["folds"].max())
    lines = []
    if passed:
        lines.append(f"**{model}: {len(passed)} of {len(summary)} methods pass both sanity checks** over {folds} "
                     f"folds: {', '.join(f'*{m}*' for m in passed)}. Only these depend on what the model learned, "
                     "as a map of where the trained model looks must; whether they point at the action units is "
                     "their share on the true regions.")
    else:
        lines.append(f"**{model}: no method passes both sanity checks** over {folds} folds. None of its maps "
                     "can be read as evidence of where the trained model looks: a randomised network or one "
                     "trained on permuted labels puts as much of its map on the true regions.")
    for method, row in summary.iterrows():
        verdicts = []
        for control, label in (("randomised", "the randomised network"), ("permuted", "permuted labels")):
            lo, hi = row[f"vs_{control}_lo"], row[f"vs_{control}_hi"]
            side = "beats" if lo > 0 else ("loses to" if hi < 0 else "does not separate from")
            verdicts.append(f"{side} {label} ({row[f'vs_{control}']:+.3f}, 95 % interval {lo:+.3f} to {hi:+.3f})")
        lines.append(f"- *{method}*: {row['trained']:.1%} of the map on the true regions (random map "
                     f"{row['random']:.1%}); it {verdicts[0]} and {verdicts[1]}.")
    return "\n".join(lines)


def controls_headline(summaries: dict[str, pd.DataFrame]) -> str:
    """One sentence over several models' :func:`summarize_controls` tables: which (model, method) pairs pass
    both sanity checks, or that none does -- the verdict a chapter shows before any picture."""
    passed = [f"*{method}* on {model}" for model, summary in summaries.items()
              for method in summary.index[summary["faithful"]]]
    tried = sum(len(s) for s in summaries.values())
    folds = max((int(s["folds"].max()) for s in summaries.values() if not s.empty), default=0)
    if not passed:
        return (f"**Sanity check: none of the {tried} explanation maps tried passes both controls** (a randomised "
                f"network and a network trained on permuted labels, over {folds} LOSO folds). Read the pictures "
                "below as pictures of the input, not as evidence of what the models learned.")
    return (f"**Sanity check: {len(passed)} of the {tried} explanation maps tried pass both controls** over "
            f"{folds} LOSO folds: {', '.join(passed)}. Only these depend on what the model learned, as a map of "
            "where a trained model looks must; the others score as well on a randomised network or one trained on "
            "permuted labels.")


__all__ = ["AREA_DECIMALS", "REFERENCE_ROWS", "controls_headline", "describe_controls", "describe_deletion",
           "describe_faithfulness"]
