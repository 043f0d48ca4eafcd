"""Readers for the licensed micro-expression datasets, each returning :class:`~convat.data.records.ClipRecord`
objects and a :class:`~convat.data.readers.report.ValidationReport`.

``read_dataset("casme2" | "samm" | "smic" | "megc2019", root)`` is the single entry point; the data root
comes from the argument or ``$CONVAT_DATA``. :mod:`convat.data.readers.fixtures` writes fake copies of the
official layouts for tests and the book.
"""

from __future__ import annotations

from pathlib import Path

from convat.data.readers.common import EXPECTED_LAYOUT
from convat.data.readers.report import DatasetError, Issue, ValidationReport
from convat.data.records import ClipRecord

DATASETS = ("casme2", "samm", "smic", "megc2019")
#: Named protocols: a dataset read with one class scheme (each with its own label map, see
#: :mod:`convat.data.readers.labels`). ``casme2`` and ``samm`` alone mean their default scheme (5-class).
PROTOCOLS: dict[str, tuple[str, str]] = {
    "casme2_5class": ("casme2", "5class"), "casme2_megc3": ("casme2", "megc3"),
    "samm_5class": ("samm", "5class"), "samm_megc3": ("samm", "megc3"),
}

__all__ = ["DATASETS", "EXPECTED_LAYOUT", "PROTOCOLS", "DatasetError", "Issue", "ValidationReport", "class_counts",
           "protocol_classes", "read_dataset", "read_protocol", "subject_counts"]


def read_dataset(name: str, root: str | Path | None = None, scheme: str | None = None, strict: bool = True,
                 **options) -> tuple[list[ClipRecord], ValidationReport]:
    """Records and validation report of dataset ``name`` under ``root`` (default ``$CONVAT_DATA``).

    ``scheme`` picks the class scheme (``megc3`` or ``5class``; each dataset has a default), ``strict`` raises
    :class:`DatasetError` on annotation errors instead of leaving those clips out; ``options`` go to the
    dataset's reader (e.g. ``layout="cropped"`` for CASME II, also accepted for the composite).
    """
    from convat.data.readers.casme2 import read_casme2
    from convat.data.readers.megc2019 import read_megc2019
    from convat.data.readers.samm import read_samm
    from convat.data.readers.smic import read_smic

    if name == "megc2019":
        if scheme not in (None, "megc3"):
            raise ValueError(f"the MEGC2019 composite has only the 'megc3' scheme, not {scheme!r}")
        if "layout" in options:
            options["casme2_layout"] = options.pop("layout")
        return read_megc2019(root, strict=strict, **options)
    readers = {"casme2": read_casme2, "samm": read_samm, "smic": read_smic}
    if name not in readers:
        raise ValueError(f"unknown dataset {name!r}; accepted: {', '.join(DATASETS)}")
    return readers[name](root, scheme=scheme, strict=strict, **options)


def read_protocol(name: str, root: str | Path | None = None, strict: bool = True,
                  **options) -> tuple[list[ClipRecord], ValidationReport]:
    """Records of a dataset (``DATASETS``, default scheme) or of a named protocol (``PROTOCOLS``)."""
    if name in PROTOCOLS:
        dataset, scheme = PROTOCOLS[name]
        return read_dataset(dataset, root, scheme=scheme, strict=strict, **options)
    if name in DATASETS:
        return read_dataset(name, root, strict=strict, **options)
    raise ValueError(f"unknown dataset {name!r}; accepted: {', '.join((*DATASETS, *PROTOCOLS))}")


def protocol_classes(name: str) -> list[str]:
    """The label map's classes of a dataset or named protocol, in the order LOSO indexes them (sorted)."""
    from convat.data.readers.labels import DEFAULT_SCHEME, classes

    dataset, scheme = PROTOCOLS.get(name, (name, DEFAULT_SCHEME.get(name)))
    if dataset == "megc2019":
        return classes("casme2", "megc3")
    if dataset not in DEFAULT_SCHEME:
        raise ValueError(f"unknown dataset {name!r}; accepted: {', '.join((*DATASETS, *PROTOCOLS))}")
    return classes(dataset, scheme)


def class_counts(records: list[ClipRecord]):
    """Clips per dataset and class, with totals and subject counts (the composite's counts table)."""
    import pandas as pd

    from convat.data.records import records_table

    table = records_table(records)
    if table.empty:
        return pd.DataFrame()
    counts = table.groupby(["dataset", "label"]).size().unstack(fill_value=0)
    counts["clips"] = counts.sum(axis=1)
    counts["subjects"] = table.groupby("dataset").subject.nunique()
    if len(counts) > 1:
        counts.loc["total"] = counts.sum()
        counts.loc["total", "subjects"] = table[["dataset", "subject"]].drop_duplicates().shape[0]
    return counts


def subject_counts(records: list[ClipRecord]):
    """Clips per subject and class (rows ``dataset/subject``)."""
    from convat.data.records import records_table

    table = records_table(records)
    table["subject"] = table.dataset + "/" + table.subject
    return table.groupby(["subject", "label"]).size().unstack(fill_value=0)
