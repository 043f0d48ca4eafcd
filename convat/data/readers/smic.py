"""SMIC-HS (Li et al., FG 2013), original release: labels are folder names, there is no annotation file.

Layout ``HS/s1/micro/{negative,positive,surprise}/s1_ne_01/image0634143.bmp``. Subjects are ``s1`` on disk and
``s01`` in the MEGC2019 list (clips ``s1_ne_01`` / ``s01_ne_01``); records use the benchmark names and keep the
folder in ``extra['folder']``. Each folder holds onset to offset, so ``onset`` is the first frame, ``offset``
the last, and ``apex`` is ``None`` (SMIC has no apex annotation; preprocessing chooses one).
"""

from __future__ import annotations

import re
from pathlib import Path

from convat.data.readers.common import check_frame_folder, find_dataset_dir, finish, rel, require_root, scan_frames
from convat.data.readers.labels import DEFAULT_SCHEME, scheme_mapping
from convat.data.readers.report import Issue, ValidationReport
from convat.data.records import ClipRecord, DiskFrames

DATASET = "smic"
#: ``image0634143.bmp`` (raw) or ``reg_image0634143.bmp`` (cropped); any letters-then-number name is accepted, since
#: SMIC has no annotation that refers to frame numbers and only their order matters.
FRAME_PATTERN = re.compile(r"[a-z_]*?(?P<n>\d+)\.(?:bmp|jpe?g|png)", re.IGNORECASE)
CLIP_PATTERN = re.compile(r"s(?P<subject>\d+)_(?P<code>ne|po|sur)_(?P<index>\d+)")
CODES = {"ne": "negative", "po": "positive", "sur": "surprise"}
_SUBJECT_DIR = re.compile(r"s(\d+)")


def _has_subjects(path: Path) -> bool:
    return any(p.is_dir() and _SUBJECT_DIR.fullmatch(p.name) and (p / "micro").is_dir() for p in path.iterdir())


def benchmark_name(folder_name: str) -> str:
    """``s1_ne_01`` → ``s01_ne_01`` (the MEGC2019 spelling); other names are returned unchanged."""
    match = CLIP_PATTERN.fullmatch(folder_name)
    if match is None:
        return folder_name
    return f"s{int(match['subject']):02d}_{match['code']}_{match['index']}"


def read_smic(root: str | Path | None = None, scheme: str | None = None,
              strict: bool = True) -> tuple[list[ClipRecord], ValidationReport]:
    """SMIC-HS micro-expression clip records under ``root`` (default ``$CONVAT_DATA``) and their report.

    Only the ``micro/`` folders are read (``non_micro/`` holds the non-expression clips). ``scheme``:
    ``megc3`` (the dataset's own three classes).
    """
    mapping = scheme_mapping(DATASET, scheme or DEFAULT_SCHEME[DATASET])
    hs = find_dataset_dir(require_root(root, DATASET), DATASET,
                          ("SMIC/HS", "SMIC/SMIC_all_raw/HS", "SMIC_all_raw/HS", "HS", "SMIC/SMIC_all_cropped/HS",
                           "SMIC_all_cropped/HS"), _has_subjects)
    base = hs.parent
    cropped = "cropped" in hs.as_posix().lower()
    report = ValidationReport(DATASET)
    report.add("note", "layout", f"clips read from {rel(hs, base.parent)}/s*/micro/<label>/", file=rel(hs, base))
    records = []
    subject_dirs = sorted((p for p in hs.iterdir() if p.is_dir() and _SUBJECT_DIR.fullmatch(p.name)),
                          key=lambda p: int(p.name[1:]))
    for subject_dir in subject_dirs:
        subject = f"s{int(subject_dir.name[1:]):02d}"
        micro = subject_dir / "micro"
        if not micro.is_dir():
            report.add("warning", "missing-clip-folder", f"subject folder {subject_dir.name} has no micro/ folder",
                       file=rel(subject_dir, base))
            continue
        for label_dir in sorted(p for p in micro.iterdir() if p.is_dir()):
            label_name = label_dir.name.lower()
            if label_name not in CODES.values():
                report.add("error", "unknown-emotion", f"label folder {label_dir.name!r} is not one of "
                           f"{', '.join(CODES.values())}; its clips are left out", file=rel(label_dir, base))
                continue
            for clip_dir in sorted(p for p in label_dir.iterdir() if p.is_dir()):
                record = _read_clip(clip_dir, subject, label_name, mapping, base, report)
                if record is not None:
                    record.extra["cropped"] = cropped  # preprocessing detects a face in uncropped frames
                    records.append(record)
    report.n_records = len(records)
    return finish(records, report, strict)


def _read_clip(clip_dir: Path, subject: str, label_name: str, mapping: dict[str, str], base: Path,
               report: ValidationReport) -> ClipRecord | None:
    """One clip folder as a record, or ``None`` (with the reason in the report)."""
    report.n_rows += 1
    folder = rel(clip_dir, base)
    clip = benchmark_name(clip_dir.name)
    local: list[Issue] = []

    def flag(severity: str, code: str, message: str, file: str = folder, frame=None) -> None:
        local.append(Issue(severity, code, DATASET, message, file=file, clip=f"{subject}/{clip}", frame=frame))

    match = CLIP_PATTERN.fullmatch(clip_dir.name)
    if match is None:
        flag("error", "unparsable-clip-name", f"clip folder name {clip_dir.name!r} is not s<subject>_<ne|po|sur>_<n>")
    else:
        if f"s{int(match['subject']):02d}" != subject:
            flag("error", "subject-mismatch", f"clip {clip_dir.name} lies in the folder of subject {subject}")
        if CODES[match["code"]] != label_name:
            flag("error", "label-mismatch", f"clip name says {CODES[match['code']]!r} but it lies in the "
                 f"{label_name!r} folder")
    scan = scan_frames(clip_dir, FRAME_PATTERN)
    check_frame_folder(scan, flag, folder)
    if len(scan.numbers) < 2:
        flag("error", "missing-frame", f"{len(scan.numbers)} frames found; at least onset and offset are needed")
    elif scan.numbers[-1] - scan.numbers[0] + 1 != len(scan.numbers):
        present = set(scan.numbers)
        gaps = [n for n in range(scan.numbers[0], scan.numbers[-1]) if n not in present]
        shown = ", ".join(map(str, gaps[:5])) + (" ..." if len(gaps) > 5 else "")
        flag("warning", "frame-gap", f"{len(gaps)} frame number(s) missing between the first and last frame: {shown}",
             frame=gaps[0])
    report.issues.extend(local)
    label = mapping.get(label_name)
    if label is None or any(i.severity == "error" for i in local):
        return None
    return ClipRecord(
        dataset=DATASET, subject=subject, clip=clip, label=label, onset=0, apex=None, offset=len(scan.paths) - 1,
        frames=DiskFrames(tuple(scan.paths)), emotion=label_name,
        extra={"frame_numbers": tuple(scan.numbers), "folder": folder, "scheme": "megc3"},
    )
