"""What the dataset readers share: locating a dataset under the data root, reading annotation spreadsheets
whatever their header row, listing frame files by their parsed numbers, and checking one annotated clip
against the frames on disk."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from convat.data import errata
from convat.data.readers.labels import EMOTIONS, normalize_emotion
from convat.data.readers.report import DatasetError, Issue, ValidationReport
from convat.data.records import ClipRecord, DiskFrames

#: What each reader expects under the data root (used in error messages and in the book).
EXPECTED_LAYOUT: dict[str, str] = {
    "casme2": "<root>/CASME2/CASME2-coding-*.xlsx (sheet Sheet1) with the frames in "
    "<root>/CASME2/CASME2_RAW_selected/sub01/EP02_01f/img46.jpg (raw layout; CASME2-RAW/ also accepted) or "
    "<root>/CASME2/Cropped/sub01/EP02_01f/reg_img46.jpg (official cropped layout)",
    "samm": "<root>/SAMM/SAMM_Micro_FACS_Codes_v2.xlsx (sheet MICRO_ONLY) with the frames in "
    "<root>/SAMM/006/006_1_2/006_05562.jpg",
    "smic": "<root>/SMIC/HS/s1/micro/negative/s1_ne_01/image0634143.bmp (SMIC-HS, original release; "
    "<root>/SMIC/SMIC_all_raw/HS/ and SMIC_all_cropped/HS/ also accepted)",
}
EXPECTED_LAYOUT["megc2019"] = "all three datasets under one root: " + "; ".join(
    EXPECTED_LAYOUT[d] for d in ("casme2", "samm", "smic"))

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}


def require_root(root: str | Path | None, dataset: str) -> Path:
    """The data root as a Path, or a :class:`DatasetError` that says what is expected where."""
    if root is None:
        env = os.environ.get("CONVAT_DATA")
        root = env if env else None
    if root is None:
        raise DatasetError(f"no data root for {dataset}: pass data_root=... (--data-root DIR) or set CONVAT_DATA. "
                           f"Expected layout: {EXPECTED_LAYOUT[dataset]}")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DatasetError(f"data root {path} for {dataset} is not a folder. "
                           f"Expected layout: {EXPECTED_LAYOUT[dataset]}")
    return path


def find_dataset_dir(root: Path, dataset: str, candidates: tuple[str, ...],
                     is_dataset_dir: Callable[[Path], bool]) -> Path:
    """The first of ``root/candidate`` (or ``root`` itself) that looks like the dataset's folder."""
    tried = [root / c for c in candidates] + [root]
    for path in tried:
        if path.is_dir() and is_dataset_dir(path):
            return path
    names = ", ".join(str(p) for p in tried)
    raise DatasetError(f"{dataset} not found under data root {root} (looked in {names}). "
                       f"Expected layout: {EXPECTED_LAYOUT[dataset]}")


def inside(path: Path, root: Path) -> bool:
    """Whether ``path`` stays inside ``root`` once ``..`` and absolute parts are resolved (lexically, so a
    data root that uses symbolic links keeps working)."""
    path, root = os.path.normpath(os.path.abspath(path)), os.path.normpath(os.path.abspath(root))
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def rel(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` (for short, exact messages)."""
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.as_posix()


def _column_key(name: object) -> str:
    """Header names compared without case, spaces or punctuation: 'Onset Frame' == 'OnsetFrame'."""
    return re.sub(r"[^a-z0-9]", "", str(name if name is not None else "").lower())


@dataclass
class SheetRows:
    """The data rows of an annotation sheet: ``(excel_row, {column_key: value})`` pairs."""

    path: Path
    sheet: str
    header_row: int
    rows: list[tuple[int, dict[str, object]]]


def read_sheet(path: Path, dataset: str, sheet: str | None, columns: dict[str, str], expected_header_row: int,
               report: ValidationReport, search_rows: int = 40) -> SheetRows:
    """Read an annotation sheet whose header row may move between file versions.

    ``columns`` maps a column key (see :func:`_column_key`) to the spelling of the official file. The header
    is the first row within ``search_rows`` that holds every required column; a header elsewhere than
    ``expected_header_row`` is accepted and reported as a note. A missing sheet or header raises
    :class:`DatasetError` naming what was expected and what was found.
    """
    import openpyxl

    try:
        workbook = openpyxl.load_workbook(path, data_only=True)
    except Exception as exc:  # openpyxl raises several types for a file that is not a workbook
        raise DatasetError(f"{dataset}: cannot read annotation file {path}: {exc}") from exc
    if sheet is not None and sheet not in workbook.sheetnames:
        raise DatasetError(f"{dataset}: {path.name} has no sheet {sheet!r}; sheets found: {workbook.sheetnames}")
    worksheet = workbook[sheet] if sheet is not None else workbook.worksheets[0]
    all_rows = [(cells[0].row, [c.value for c in cells]) for cells in worksheet.iter_rows() if cells]
    header_row, header = None, None
    for number, values in all_rows[:search_rows]:
        keys = [_column_key(v) for v in values]
        if all(k in keys for k in columns):
            header_row, header = number, keys
            break
    if header_row is None:
        found = next((values for number, values in all_rows if number == expected_header_row), [])
        found_names = [v for v in found if v is not None]
        raise DatasetError(
            f"{dataset}: {path.name} sheet {worksheet.title!r}: no header row with the columns "
            f"{list(columns.values())} in the first {search_rows} rows (row {expected_header_row}, where this "
            f"version is expected to have it, holds {found_names}); this version of the file is not supported")
    if header_row != expected_header_row:
        report.add("note", "header-row", f"header found on row {header_row}, not row {expected_header_row} as "
                   "in the reference version; accepted", file=path.name, row=header_row)
    position = {key: header.index(key) for key in columns}
    extra_keys = {k: i for i, k in enumerate(header) if k and k not in position}
    rows = []
    for number, values in all_rows:
        if number <= header_row or all(v is None or str(v).strip() == "" for v in values):
            continue
        record = {key: (values[i] if i < len(values) else None) for key, i in {**extra_keys, **position}.items()}
        rows.append((number, record))
    return SheetRows(path, worksheet.title, header_row, rows)


def parse_frame_number(value: object) -> int | None:
    """A spreadsheet cell as a frame number (int, integral float or digit string), else ``None``."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    text = str(value).strip()
    return int(text) if text.isdigit() else None


@dataclass
class FrameScan:
    """The frame files of one clip folder, ordered by their parsed frame numbers."""

    numbers: list[int] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)
    unparsable: list[str] = field(default_factory=list)
    duplicates: dict[int, list[str]] = field(default_factory=dict)
    paddings: set[int] = field(default_factory=set)  # widths of the zero-padded names


def scan_frames(folder: Path, pattern: re.Pattern) -> FrameScan:
    """List the image files of ``folder`` whose names match ``pattern`` (frame number in group ``n``).

    Frame numbers are parsed, never formatted, so zero padding may vary (SAMM uses 4 or 5 digits) and the
    order is numeric (``img100`` after ``img99``). Non-image files (``Thumbs.db``) are ignored silently.
    """
    scan = FrameScan()
    found: dict[int, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        match = pattern.fullmatch(path.name)
        if match is None:
            scan.unparsable.append(path.name)
            continue
        digits = match.group("n")
        found.setdefault(int(digits), []).append(path)
        if digits.startswith("0"):
            scan.paddings.add(len(digits))
    for number in sorted(found):
        paths = found[number]
        if len(paths) > 1:
            scan.duplicates[number] = [p.name for p in paths]
        scan.numbers.append(number)
        scan.paths.append(paths[0])
    return scan


def check_frame_folder(scan: FrameScan, flag: Callable[..., None], folder_name: str) -> None:
    """Report unparsable names, duplicated frame numbers and mixed zero padding in one clip folder."""
    for name in scan.unparsable:
        flag("warning", "unparsable-frame-name", f"frame file name {name!r} has no frame number in the "
             "expected form; the file is ignored", file=folder_name, frame=name)
    for number, names in scan.duplicates.items():
        flag("error", "duplicate-frame-number", f"frame number {number} appears in several files {names}, so the "
             "frame order is ambiguous", file=folder_name, frame=number)
    if len(scan.paddings) > 1:
        flag("note", "mixed-padding", f"frame names are zero-padded to {sorted(scan.paddings)} digits; ordered by "
             "parsed number",
             file=folder_name)


@dataclass
class AnnotationRow:
    """One annotated clip as a spreadsheet row gives it, before validation."""

    subject: str
    clip: str
    emotion: str
    onset: object
    apex: object
    offset: object
    aus: tuple[str, ...]
    row: int
    columns: tuple[str, str, str] = ("OnsetFrame", "ApexFrame", "OffsetFrame")

    @classmethod
    def from_cells(cls, subject: str, clip: str, cells: dict, row: int, **kwargs) -> AnnotationRow:
        """The row of a sheet read with the usual column keys (``estimatedemotion``, ``onsetframe``,
        ``apexframe``, ``offsetframe`` and the optional ``actionunits``), as CASME II and SAMM name them."""
        return cls(subject, clip, cells["estimatedemotion"], cells["onsetframe"], cells["apexframe"],
                   cells["offsetframe"], parse_aus(cells.get("actionunits")), row, **kwargs)


def parse_aus(value: object) -> tuple[str, ...]:
    """Action units as written in the sheets ('4+7', 'R12A+L14', 12) → ('4', '7')..."""
    if value is None:
        return ()
    text = str(value).strip()
    if isinstance(value, float) and value.is_integer():
        text = str(int(value))
    return tuple(part.strip() for part in re.split(r"[+,]", text) if part.strip())


def build_annotated_records(dataset: str, rows: list[AnnotationRow], *, sheet_name: str, frames_dir: Path,
                            base: Path, pattern: re.Pattern, mapping: dict[str, str], scheme: str,
                            report: ValidationReport, frame_hint: Callable[[str, int], str]) -> list[ClipRecord]:
    """Validate annotated rows against the frames on disk and build the records of the clips in ``mapping``.

    Checks per row: known emotion spelling, parsable onset/apex/offset, the clip folder, its frame names,
    onset <= offset, apex within [onset, offset], onset != apex, the onset/apex/offset frames on disk, and gaps
    between onset and offset (:func:`check_annotation`, :func:`check_clip_frames`). Known defects are looked up
    in :mod:`convat.data.errata` (:func:`apply_erratum`); problems on clips the scheme leaves out are downgraded
    to warnings.
    """
    records = []
    for row in rows:
        report.n_rows += 1
        local: list[Issue] = []
        clip_name = f"{row.subject}/{row.clip}"

        def flag(severity: str, code: str, message: str, file: str = sheet_name, frame=None,
                 _local=local, _clip=clip_name, _row=row.row) -> None:
            _local.append(Issue(severity, code, dataset, message, file=file, row=_row, clip=_clip, frame=frame))

        label = mapping.get(normalize_emotion(row.emotion))
        onset, apex, offset = check_annotation(dataset, row, flag)
        folder = frames_dir / row.subject / row.clip
        scan = check_clip_frames(row, (onset, apex, offset), folder, frames_dir, base, pattern, frame_hint, flag,
                                 local)
        errors = [i for i in local if i.severity == "error"]
        local, excluded, apex_unknown = apply_erratum(dataset, row, scheme, local, report, sheet_name)
        if excluded:
            continue
        local = _one_error_per_row(local)
        if label is None:
            for issue in errors:
                if issue.code != "unknown-emotion":
                    issue.severity = "warning"
                    issue.message += f" (clip not used by the {scheme} scheme)"
        report.issues.extend(local)
        if label is None or any(i.severity == "error" for i in local) or scan is None:
            continue
        positions = {n: i for i, n in enumerate(scan.numbers)}
        records.append(ClipRecord(
            dataset=dataset, subject=row.subject, clip=row.clip, label=label,
            onset=positions[onset], apex=None if apex_unknown else positions[apex], offset=positions[offset],
            frames=DiskFrames(tuple(scan.paths)), aus=row.aus, emotion=str(row.emotion).strip(),
            extra={"frame_numbers": tuple(scan.numbers), "annotation_file": sheet_name, "row": row.row,
                   "folder": rel(folder, base), "scheme": scheme},
        ))
    report.n_records += len(records)
    return records


def check_annotation(dataset: str, row: AnnotationRow, flag: Callable[..., None]
                     ) -> tuple[int | None, int | None, int | None]:
    """The sheet-only checks of one row (emotion spelling, frame numbers that parse, onset <= apex <= offset,
    onset != apex), each problem reported through ``flag``; the parsed ``(onset, apex, offset)`` (None where
    unparsable)."""
    emotion = normalize_emotion(row.emotion)
    if emotion not in EMOTIONS[dataset]:
        flag("error", "unknown-emotion", f"Estimated Emotion {row.emotion!r} is not a known {dataset} label; "
             f"accepted: {', '.join(EMOTIONS[dataset])}")
    values = {}
    for name, column, raw in zip(("onset", "apex", "offset"), row.columns, (row.onset, row.apex, row.offset),
                                 strict=True):
        values[name] = parse_frame_number(raw)
        if values[name] is None:
            what = "is blank" if is_blank(raw) else f"{raw!r} is not a frame number"
            flag("error", "unparsable-annotation", f"{column} {what}", frame="blank" if is_blank(raw) else str(raw))
    onset, apex, offset = values["onset"], values["apex"], values["offset"]
    if onset is not None and offset is not None and onset > offset:
        flag("error", "onset-after-offset", f"onset {onset} comes after offset {offset}", frame=onset)
    if apex is not None and onset is not None and offset is not None and not onset <= apex <= offset:
        flag("error", "apex-outside", f"apex {apex} is outside [onset {onset}, offset {offset}]", frame=apex)
    if apex is not None and apex == onset:
        flag("error", "onset-equals-apex", f"onset and apex are both frame {apex}, so the onset-to-apex "
             "motion is empty", frame=apex)
    return onset, apex, offset


def check_clip_frames(row: AnnotationRow, frames: tuple[int | None, int | None, int | None], folder: Path,
                      frames_dir: Path, base: Path, pattern: re.Pattern, frame_hint: Callable[[str, int], str],
                      flag: Callable[..., None], local: list[Issue]) -> FrameScan | None:
    """The on-disk checks of one row: the clip folder exists inside the frame folder, its frame names, the
    annotated frames are present and the gaps between onset and offset; the folder's scan (None when it cannot
    be read). ``local`` holds the row's issues so far (an apex already outside the clip is not looked for)."""
    onset, apex, offset = frames
    folder_name = rel(folder, base)
    if not inside(folder, frames_dir):
        flag("error", "path-outside-root", f"subject {row.subject!r} / clip {row.clip!r} names the folder "
             f"{os.path.normpath(folder)}, outside the frame folder {frames_dir}; not read")
        return None
    if not folder.is_dir():
        flag("error", "missing-clip-folder", f"clip folder {folder_name} does not exist", file=folder_name)
        return None
    scan = scan_frames(folder, pattern)
    check_frame_folder(scan, flag, folder_name)
    present = set(scan.numbers)
    outside = any(i.code in ("apex-outside", "onset-after-offset") for i in local)
    for name, number in (("onset", onset), ("apex", apex), ("offset", offset)):
        if number is not None and number not in present and not (outside and name == "apex"):
            hint = frame_hint(row.subject, number)
            flag("error", "missing-frame", f"{name} frame {number} ({hint}) is not in the clip folder "
                 f"({len(present)} frames found)", file=folder_name, frame=number)
    if onset is not None and offset is not None and onset <= offset:
        annotated = {onset, apex, offset}  # reported above when missing
        gaps = [n for n in range(onset, offset + 1) if n not in present and n not in annotated]
        if gaps:
            shown = ", ".join(map(str, gaps[:5])) + (" ..." if len(gaps) > 5 else "")
            flag("warning", "frame-gap", f"{len(gaps)} frame(s) missing between onset {onset} and offset "
                 f"{offset}: {shown}", file=folder_name, frame=gaps[0])
    return scan


def apply_erratum(dataset: str, row: AnnotationRow, scheme: str, local: list[Issue], report: ValidationReport,
                  sheet_name: str) -> tuple[list[Issue], bool, bool]:
    """Apply a known defect of the row's clip (:mod:`convat.data.errata`), if it has one: report it, and either
    exclude the clip (its other errors become warnings, already added to ``report``) or keep it with the apex
    unknown (the apex checks no longer apply). Returns ``(issues left, excluded, apex unknown)``."""
    entry = errata.lookup(dataset, row.subject, row.clip)
    if entry is None:
        return local, False, False
    clip_name = f"{row.subject}/{row.clip}"
    errors = [i for i in local if i.severity == "error"]
    matched = [i for i in errors if i.code == entry.defect]
    what = matched[0].message if matched else f"defect {entry.defect!r} not found in this copy"
    action = entry.action_for(scheme)
    done = "excluded" if action == "exclude" else "kept with the apex unknown"
    report.add("erratum", entry.defect, f"{what}; {done} in the {scheme} scheme by erratum: {entry.reason}",
               file=sheet_name, row=row.row, clip=clip_name, frame=matched[0].frame if matched else None)
    local = [i for i in local if i not in matched]
    if action == "exclude":
        for issue in local:
            if issue.severity == "error":
                issue.severity = "warning"
                issue.message += " (clip excluded by an erratum anyway)"
        report.issues.extend(local)
        return local, True, False
    # the apex is dropped: checks that involve it no longer apply
    local = [i for i in local if not (i.code in ("apex-outside", "onset-equals-apex") or
                                      (i.code == "missing-frame" and i.message.startswith("apex")))]
    return local, False, True


def is_blank(value: object) -> bool:
    """An empty spreadsheet cell (``None`` or only spaces)."""
    return value is None or (isinstance(value, str) and not value.strip())


def _one_error_per_row(issues: list[Issue]) -> list[Issue]:
    """Keep the first error of a row (the cause) and fold the errors that follow from it into its message, so
    one mistyped number reads as one error, not three; warnings and notes are kept as they are."""
    errors = [i for i in issues if i.severity == "error"]
    if len(errors) <= 1:
        return issues
    first = errors[0]
    first.message += "; consequences: " + "; ".join(f"{i.message} [{i.code}]" for i in errors[1:])
    return [i for i in issues if i.severity != "error" or i is first]


def finish(records: list[ClipRecord], report: ValidationReport, strict: bool):
    """Return ``(records, report)``, or raise :class:`DatasetError` with the report in a strict read."""
    if strict and report.errors:
        raise DatasetError(f"{len(report.errors)} annotation errors (run `convat data check` for the full "
                           f"report):\n{report.format(('error',), limit=20)}")
    return records, report
