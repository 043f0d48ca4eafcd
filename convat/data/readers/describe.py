"""The real-data chapter's sentences: what a dataset check found, and whether a copy's counts match the official
MEGC2019 composite list.

These functions only summarise and word what the readers found, for the page: no record, tensor or metric depends
on them. Like the plots, they are therefore left out of the code fingerprint
(:func:`convat.runstore.code_fingerprint`), so rewording a sentence never makes a result stale.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from convat.data.readers.report import ValidationReport


def official_counts(listed: pd.DataFrame) -> pd.DataFrame:
    """Clips per dataset and class of the official composite list (``dataset``, ``subject``, ``label`` columns),
    with clips, subjects and a total row: the layout of :func:`convat.data.readers.class_counts`, so the two
    tables compare cell by cell."""
    counts = listed.groupby(["dataset", "label"]).size().unstack(fill_value=0)
    counts["clips"] = counts.sum(axis=1)
    counts["subjects"] = listed.groupby("dataset").subject.nunique()
    counts.loc["total"] = counts.sum()
    counts.loc["total", "subjects"] = listed[["dataset", "subject"]].drop_duplicates().shape[0]
    return counts


def counts_match(counts: pd.DataFrame, official: pd.DataFrame) -> bool:
    """Whether two counts tables hold the same rows, columns and numbers (in any order). A row or column that only
    one of them has is a difference, not something to drop."""
    if set(counts.index) != set(official.index) or set(counts.columns) != set(official.columns):
        return False
    aligned = counts.loc[official.index, official.columns]
    return bool((aligned.to_numpy(dtype=float) == official.to_numpy(dtype=float)).all())


def describe_composite_match(counts: pd.DataFrame, official: pd.DataFrame, check: str) -> str:
    """One sentence: whether the counts read from a copy (``check``: the protocol it was read as) match the
    official list's; a copy read as another protocol is told how to compare."""
    total = official.loc["total"]
    listed = f"{int(total['clips'])} clips of {int(total['subjects'])} subjects"
    if check != "megc2019":
        return f'This copy was read as {check}; set `DATASET = "megc2019"` to compare with the list ({listed}).'
    if counts_match(counts, official):
        return f"The counts read from this copy match the official list ({listed})."
    return (f"The counts read from this copy do **not** match the official list ({listed}); the report above says "
            "which samples are missing or differ.")


def describe_check(report: ValidationReport, n_records: int) -> str:
    """One sentence on a dataset check (a :class:`convat.data.readers.report.ValidationReport`): how many records
    it gave, and whether it found errors (clips left out, which a strict read refuses)."""
    verdict = ("no errors: every clip of the protocol was found and checked" if report.ok else
               f"{len(report.errors)} error{'s' if len(report.errors) != 1 else ''}: those clips are left out and a "
               "strict read refuses")
    return f"This copy gives **{n_records} records** with {verdict}."
