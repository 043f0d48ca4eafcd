"""SAMM (Davison et al., IEEE TAC 2018): ``SAMM_Micro_FACS_Codes_v2.xlsx`` plus ``006/006_1_2/006_05562.jpg``.

The sheet MICRO_ONLY has 13 preamble rows and its header on Excel row 14 in v2; the header row moves between
versions, so it is searched for (by its column names) and a different row is accepted with a note. Frame
files are ``{subject}_{number}.jpg`` with 4 or 5 digit zero padding that varies between clips: the number is
parsed, never formatted.
"""

from __future__ import annotations

import re
from pathlib import Path

from convat.data.readers import common
from convat.data.readers.labels import DEFAULT_SCHEME, scheme_mapping
from convat.data.readers.report import DatasetError, ValidationReport
from convat.data.records import ClipRecord

DATASET = "samm"
FILE = "SAMM_Micro_FACS_Codes_v2.xlsx"
SHEET = "MICRO_ONLY"
HEADER_ROW = 14
COLUMNS = {"subject": "Subject", "filename": "Filename", "onsetframe": "Onset Frame", "apexframe": "Apex Frame",
           "offsetframe": "Offset Frame", "estimatedemotion": "Estimated Emotion"}
FRAME_PATTERN = re.compile(r"\d+_(?P<n>\d+)\.(?:jpe?g|png|bmp)", re.IGNORECASE)


def _has_codes(path: Path) -> bool:
    return any(path.glob("SAMM_Micro_FACS_Codes*.xlsx"))


def codes_file(dataset_dir: Path, report: ValidationReport) -> Path:
    """``SAMM_Micro_FACS_Codes_v2.xlsx`` when present (exact-name rule), else the only other
    ``SAMM_Micro_FACS_Codes*.xlsx`` with a note; several others are ambiguous and raise, listing them."""
    exact = dataset_dir / FILE
    found = sorted(dataset_dir.glob("SAMM_Micro_FACS_Codes*.xlsx"))
    if exact.is_file():
        if len(found) > 1:
            report.add("note", "several-versions", f"several codes files {[p.name for p in found]}; using {FILE}",
                       file=FILE)
        return exact
    if not found:
        raise DatasetError(f"samm: no {FILE} in {dataset_dir}")
    if len(found) > 1:
        raise DatasetError(f"samm: ambiguous codes file in {dataset_dir}: {[p.name for p in found]}; keep one, or "
                           f"name the official one {FILE}")
    report.add("note", "version", f"{FILE} not found; reading {found[0].name}", file=found[0].name)
    return found[0]


def parse_subject(value: object) -> str | None:
    """The Subject cell (6, 6.0 or '006') as the folder name ``006``; ``None`` otherwise."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip() if value is not None else ""
    return f"{int(text):03d}" if text.isdigit() else None


def read_samm(root: str | Path | None = None, scheme: str | None = None,
              strict: bool = True) -> tuple[list[ClipRecord], ValidationReport]:
    """SAMM clip records under ``root`` (default ``$CONVAT_DATA``) and their validation report.

    ``scheme``: ``5class`` (default; anger, contempt, happiness, surprise, other: 136 of the 159
    micro-expressions) or ``megc3`` (133: the composite's negative / positive / surprise).
    """
    scheme = scheme or DEFAULT_SCHEME[DATASET]
    mapping = scheme_mapping(DATASET, scheme)
    dataset_dir = common.find_dataset_dir(common.require_root(root, DATASET), DATASET, ("SAMM",), _has_codes)
    report = ValidationReport(DATASET)
    path = codes_file(dataset_dir, report)
    sheet = common.read_sheet(path, DATASET, SHEET, COLUMNS, HEADER_ROW, report)
    rows = []
    for number, cells in sheet.rows:
        subject = parse_subject(cells["subject"])
        filename = str(cells["filename"] or "").strip()
        if subject is None or not filename:
            report.add("error", "unparsable-annotation", f"Subject {cells['subject']!r} / Filename {filename!r} "
                       "does not name a clip", file=path.name, row=number)
            continue
        if not filename.startswith(subject + "_"):
            report.add("warning", "subject-mismatch", f"Filename {filename!r} does not start with subject "
                       f"{subject}", file=path.name, row=number, clip=f"{subject}/{filename}")
        rows.append(common.AnnotationRow.from_cells(subject, filename, cells, number,
                                                    columns=("Onset Frame", "Apex Frame", "Offset Frame")))
    records = common.build_annotated_records(
        DATASET, rows, sheet_name=path.name, frames_dir=dataset_dir, base=dataset_dir.parent, pattern=FRAME_PATTERN,
        mapping=mapping, scheme=scheme, report=report,
        frame_hint=lambda subject, n: f"{subject}_{n:04d}.jpg or {subject}_{n:05d}.jpg")
    for record in records:  # SAMM frames show the whole head: preprocessing detects the face
        record.extra["cropped"] = False
    return common.finish(records, report, strict)
