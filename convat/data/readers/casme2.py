"""CASME II (Yan et al., PLoS ONE 2014): ``CASME2-coding-*.xlsx`` plus the raw or the cropped frames.

Layouts: raw ``CASME2_RAW_selected/sub01/EP02_01f/img46.jpg`` (or the full ``CASME2-RAW/``) and the official
cropped ``Cropped/sub01/EP02_01f/reg_img46.jpg``. The sheet's frame numbers are the numbers in the file
names. The ``Subject`` column is a number (1) in one version of the coding file and text ('01' or 'sub01') in
another; both are accepted.
"""

from __future__ import annotations

import re
from pathlib import Path

from convat.data.readers.common import (
    AnnotationRow,
    build_annotated_records,
    find_dataset_dir,
    finish,
    read_sheet,
    require_root,
)
from convat.data.readers.labels import DEFAULT_SCHEME, scheme_mapping
from convat.data.readers.report import DatasetError, ValidationReport
from convat.data.records import ClipRecord

DATASET = "casme2"
SHEET = "Sheet1"
COLUMNS = {"subject": "Subject", "filename": "Filename", "onsetframe": "OnsetFrame", "apexframe": "ApexFrame",
           "offsetframe": "OffsetFrame", "estimatedemotion": "Estimated Emotion"}
#: Frame folders by layout, in the order ``layout="auto"`` tries them.
LAYOUTS = {"raw": ("CASME2_RAW_selected", "CASME2-RAW", "CASME2_RAW"), "cropped": ("Cropped", "CASME2_Cropped")}
FRAME_PATTERN = re.compile(r"(?:reg_)?img(?P<n>\d+)\.(?:jpe?g|png|bmp)", re.IGNORECASE)
_SUBJECT = re.compile(r"(?:sub)?0*(\d+)", re.IGNORECASE)


def _has_coding_file(path: Path) -> bool:
    return any(path.glob("CASME2-coding*.xlsx"))


def _has_subjects(path: Path) -> bool:
    return path.is_dir() and any(p.is_dir() and re.fullmatch(r"sub\d+", p.name) for p in path.iterdir())


#: The official coding file; with it present, other versions next to it are ignored (with a note).
OFFICIAL_FILE = "CASME2-coding-20140508.xlsx"


def coding_file(dataset_dir: Path, report: ValidationReport) -> Path:
    """The coding spreadsheet, by an exact-name rule: :data:`OFFICIAL_FILE` when present, else the only
    ``CASME2-coding*.xlsx``; several candidates without the official one are ambiguous and raise, listing them
    (a name that sorts last is not necessarily the right version: ``..._old.xlsx`` sorts after the date)."""
    found = sorted(dataset_dir.glob("CASME2-coding*.xlsx"))
    if not found:
        raise DatasetError(f"casme2: no CASME2-coding-*.xlsx in {dataset_dir}")
    official = dataset_dir / OFFICIAL_FILE
    if official.is_file():
        if len(found) > 1:
            report.add("note", "several-versions", f"several coding files {[p.name for p in found]}; using the "
                       f"official {OFFICIAL_FILE}", file=OFFICIAL_FILE)
        return official
    if len(found) > 1:
        raise DatasetError(f"casme2: ambiguous coding file in {dataset_dir}: {[p.name for p in found]}; keep one, "
                           f"or name the official one {OFFICIAL_FILE}")
    if found[0].name != OFFICIAL_FILE:
        report.add("note", "version", f"{OFFICIAL_FILE} not found; reading {found[0].name}", file=found[0].name)
    return found[0]


def frames_folder(dataset_dir: Path, layout: str, report: ValidationReport) -> tuple[Path, str]:
    """The folder of subject folders for ``layout`` (``auto``, ``raw`` or ``cropped``) and the layout found."""
    if layout not in ("auto", *LAYOUTS):
        raise ValueError(f"unknown CASME II layout {layout!r}; accepted: auto, raw, cropped")
    chosen = [(kind, name) for kind, names in LAYOUTS.items() for name in names if layout in ("auto", kind)]
    for kind, name in chosen:
        if _has_subjects(dataset_dir / name):
            report.add("note", "layout", f"frames read from {name}/ ({kind} layout)", file=name)
            return dataset_dir / name, kind
    if layout == "auto" and _has_subjects(dataset_dir):
        report.add("note", "layout", "frames read from the subject folders next to the coding file (raw layout)")
        return dataset_dir, "raw"
    raise DatasetError(f"casme2: no frame folder for layout {layout!r} in {dataset_dir} (looked for "
                       f"{', '.join(name for _, name in chosen)} holding sub01/, sub02/, ...)")


def parse_subject(value: object) -> str | None:
    """The Subject cell (1, 1.0, '01' or 'sub01') as the folder name ``sub01``; ``None`` if it is neither."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    match = _SUBJECT.fullmatch(str(value).strip()) if value is not None else None
    return f"sub{int(match.group(1)):02d}" if match else None


def read_casme2(root: str | Path | None = None, scheme: str | None = None, layout: str = "auto",
                strict: bool = True) -> tuple[list[ClipRecord], ValidationReport]:
    """CASME II clip records under ``root`` (default ``$CONVAT_DATA``) and their validation report.

    ``scheme``: ``5class`` (default; happiness, surprise, disgust, repression, others: 246 clips on the official
    coding file, the two errata clips kept with their apex unknown) or ``megc3`` (145 clips: both errata clips
    left out, as in the MEGC2019 composite); see :mod:`convat.data.errata`.
    ``strict``: raise :class:`DatasetError` when any row has an error; otherwise leave those clips out.
    """
    scheme = scheme or DEFAULT_SCHEME[DATASET]
    mapping = scheme_mapping(DATASET, scheme)
    dataset_dir = find_dataset_dir(require_root(root, DATASET), DATASET, ("CASME2", "CASME_II", "CASME2-RAW"),
                                   _has_coding_file)
    report = ValidationReport(DATASET)
    path = coding_file(dataset_dir, report)
    sheet = read_sheet(path, DATASET, SHEET if SHEET in _sheetnames(path) else None, COLUMNS, 1, report)
    if sheet.sheet != SHEET:
        report.add("note", "sheet", f"no sheet {SHEET!r}; read the first sheet {sheet.sheet!r}", file=path.name)
    frames_dir, found_layout = frames_folder(dataset_dir, layout, report)
    rows = []
    subject_types = set()
    for number, cells in sheet.rows:
        subject = parse_subject(cells["subject"])
        subject_types.add("number" if isinstance(cells["subject"], int | float) else "text")
        filename = str(cells["filename"] or "").strip()
        if subject is None or not filename:
            report.add("error", "unparsable-annotation", f"Subject {cells['subject']!r} / Filename {filename!r} "
                       "does not name a clip (Subject must be a number, '01' or 'sub01')", file=path.name, row=number)
            continue
        rows.append(AnnotationRow.from_cells(subject, filename, cells, number))
    report.add("note", "version", f"Subject column written as {' and '.join(sorted(subject_types))}; accepted",
               file=path.name)
    records = build_annotated_records(
        DATASET, rows, sheet_name=path.name, frames_dir=frames_dir, base=dataset_dir.parent, pattern=FRAME_PATTERN,
        mapping=mapping, scheme=scheme, report=report,
        frame_hint=lambda subject, n: f"img{n}.jpg or reg_img{n}.jpg")
    for record in records:  # preprocessing uses the whole frame of cropped clips instead of detecting a face
        record.extra["cropped"] = found_layout == "cropped"
    return finish(records, report, strict)


def _sheetnames(path: Path) -> list[str]:
    import openpyxl

    try:
        workbook = openpyxl.load_workbook(path, read_only=True)
    except Exception as exc:
        raise DatasetError(f"casme2: cannot read annotation file {path}: {exc}") from exc
    names = workbook.sheetnames
    workbook.close()
    return names
