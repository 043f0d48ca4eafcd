"""The MEGC2019 composite (Full) benchmark: 442 clips of 68 subjects from CASME II, SMIC-HS and SAMM, 3 classes.

The official sample list ships with the package (:func:`convat.data.composite_list_path`) and defines the
protocol: each dataset is read with the ``megc3`` scheme, then every listed sample must be found with the
listed label, clips the list does not hold are left out (with a warning), and the totals are asserted against
the published ones.
"""

from __future__ import annotations

from pathlib import Path

from convat.data import composite_list_path
from convat.data.readers.casme2 import read_casme2
from convat.data.readers.common import finish, require_root
from convat.data.readers.report import ValidationReport
from convat.data.readers.samm import read_samm
from convat.data.readers.smic import read_smic
from convat.data.records import ClipRecord

DATASET = "megc2019"
#: Published class totals per dataset (negative, positive, surprise) and subject counts.
EXPECTED_TOTALS = {"casme2": {"negative": 88, "positive": 32, "surprise": 25},
                   "smic": {"negative": 70, "positive": 51, "surprise": 43},
                   "samm": {"negative": 92, "positive": 26, "surprise": 15}}
EXPECTED_SUBJECTS = {"casme2": 24, "smic": 16, "samm": 28}
EXPECTED_SAMPLES, EXPECTED_SUBJECTS_TOTAL = 442, 68
READERS = {"casme2": read_casme2, "smic": read_smic, "samm": read_samm}


def composite_list():
    """The official list as a DataFrame (dataset, subject, clip, label, ststnet_pred), all columns text."""
    import pandas as pd

    return pd.read_csv(composite_list_path(), dtype=str)


def read_megc2019(root: str | Path | None = None, strict: bool = True,
                  casme2_layout: str = "auto") -> tuple[list[ClipRecord], ValidationReport]:
    """The composite's 442 clip records, in the order of the official list, and the merged validation report.

    Errors on clips that the list does not hold do not matter to the protocol and are downgraded to warnings.
    """
    root = require_root(root, DATASET)
    listed = composite_list()
    wanted = {(r.dataset, r.subject, r.clip): r.label for r in listed.itertuples()}
    report = ValidationReport(DATASET)
    found: dict[tuple[str, str, str], ClipRecord] = {}
    for dataset, reader in READERS.items():
        kwargs = {"layout": casme2_layout} if dataset == "casme2" else {}
        records, sub_report = reader(root, scheme="megc3", strict=False, **kwargs)
        for issue in sub_report.issues:
            subject, _, clip = issue.clip.partition("/")
            if issue.severity == "error" and issue.clip and (dataset, subject, clip) not in wanted:
                issue.severity = "warning"
                issue.message += " (clip not in the MEGC2019 list)"
        report.extend(sub_report)
        for record in records:
            key = (record.dataset, record.subject, record.clip)
            if key in wanted:
                found[key] = record
            else:
                report.add("warning", "unlisted-sample", f"{record.emotion!r} clip maps to {record.label!r} but is "
                           "not in the MEGC2019 list; left out", dataset=dataset,
                           file=str(record.extra.get("annotation_file") or record.extra.get("folder", "")),
                           row=record.extra.get("row"), clip=f"{record.subject}/{record.clip}")
    records = []
    for (dataset, subject, clip), label in wanted.items():
        record = found.get((dataset, subject, clip))
        if record is None:
            report.add("error", "missing-sample", "listed sample not found (see the errors above for its clip, or "
                       "its clip folder / annotation row is absent)", dataset=dataset,
                       file=composite_list_path().name, clip=f"{subject}/{clip}")
        elif record.label != label:
            report.add("error", "label-mismatch", f"label {record.label!r} (emotion {record.emotion!r}) differs from "
                       f"the listed {label!r}", dataset=dataset, file=str(record.extra.get("annotation_file", "")),
                       row=record.extra.get("row"), clip=f"{subject}/{clip}")
        else:
            records.append(record)
    report.n_records = len(records)
    _check_totals(records, report)
    return finish(records, report, strict)


def _check_totals(records: list[ClipRecord], report: ValidationReport) -> None:
    """Compare the class totals, subject counts and sample count with the published ones."""
    for dataset, expected in EXPECTED_TOTALS.items():
        mine = [r for r in records if r.dataset == dataset]
        totals = {label: sum(r.label == label for r in mine) for label in expected}
        if totals != expected:
            report.add("error", "totals", f"class totals {totals} differ from the published {expected}",
                       dataset=dataset)
        subjects = len({r.subject for r in mine})
        if subjects != EXPECTED_SUBJECTS[dataset]:
            report.add("error", "totals", f"{subjects} subjects, expected {EXPECTED_SUBJECTS[dataset]}",
                       dataset=dataset)
    subjects = len({(r.dataset, r.subject) for r in records})
    if len(records) != EXPECTED_SAMPLES or subjects != EXPECTED_SUBJECTS_TOTAL:
        report.add("error", "totals", f"{len(records)} samples of {subjects} subjects, expected "
                   f"{EXPECTED_SAMPLES} of {EXPECTED_SUBJECTS_TOTAL}")
