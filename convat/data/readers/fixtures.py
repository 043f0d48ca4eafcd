"""Fake copies of CASME II, SAMM and SMIC-HS in their official layouts, for tests and the book.

Everything is generated: frames are tiny noise images (never faces) and the spreadsheets are written with
openpyxl using the official file names, sheet names, header rows, column names and label spellings, including
the known defects (CASME II sub04/EP12_01f apex '/', sub05/EP09_05f onset == apex; the SAMM preamble and
mixed 4/5-digit padding; SMIC ``s1`` folders for the benchmark's ``s01``). Built from the official MEGC2019
list plus clips the composite leaves out (CASME II others/fear/sadness, SAMM Other, subjects that drop out),
so reading the fixture must give back exactly the composite.

The full fixture (all subjects) has the official emotion counts, so the protocol counts of the real files can
be checked on it: CASME II 255 clips (happiness 32, surprise 25, disgust 63, repression 27, others 99, fear 2,
sadness 7: 246 in 5-class), SAMM 159 micro-expressions (anger 57, contempt 12, disgust 9, fear 8,
happiness 26, sadness 6, surprise 15, other 26: 136 in 5-class, 133 in the composite). Smaller fixtures assign
negative emotions at random (seeded). Frames are random: only the structure is realistic, not the content.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from convat.data.readers.labels import SCHEMES

CASME2_FILE = "CASME2-coding-20140508.xlsx"
CASME2_COLUMNS = ("Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units",
                  "Estimated Emotion")
SAMM_FILE = "SAMM_Micro_FACS_Codes_v2.xlsx"
SAMM_COLUMNS = ("Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame", "Duration",
                "Type", "Action Units", "Notes", "Estimated Emotion")
SMIC_CODES = {"negative": "ne", "positive": "po", "surprise": "sur"}
#: Official emotion counts of the clips that the composite does not list (CASME II, SAMM), and of the negative
#: emotions that the composite merges (the errata clips of CASME II included: one disgust, one repression).
OFFICIAL_LEFT_OUT = {"casme2": {"others": 99, "fear": 2, "sadness": 7}, "samm": {"Other": 26}}
OFFICIAL_NEGATIVES = {"casme2": {"disgust": 62, "repression": 26},
                      "samm": {"anger": 57, "contempt": 12, "disgust": 9, "fear": 8, "sadness": 6}}
_AUS = {"happiness": "6+12", "surprise": "1+2", "disgust": "4+9", "repression": "14", "others": "4",
        "fear": "4+20", "sadness": "15", "anger": "4+7", "contempt": "R14", "other": "17"}


@dataclass
class FixtureClip:
    """One clip to write: its annotation (as the spreadsheet would hold it) and its frame numbers on disk."""

    dataset: str
    subject: str
    clip: str
    emotion: str
    onset: object
    apex: object
    offset: object
    frames: tuple[int, ...]
    padding: int = 5


def _negatives(dataset: str) -> list[str]:
    return sorted(e for e, c in SCHEMES["megc3"][dataset].items() if c == "negative")


def _annotated(dataset: str, subject: str, clip: str, emotion: str, rng: np.random.Generator,
               n_frames: int = 4) -> FixtureClip:
    start = int(rng.integers(1, 200)) if dataset == "casme2" else int(rng.integers(900, 14000))
    frames = tuple(range(start, start + n_frames))
    padding = 5 if start + n_frames > 9999 else int(rng.choice([4, 5]))
    apex = frames[int(rng.integers(1, n_frames - 1))]
    return FixtureClip(dataset, subject, clip, emotion, frames[0], apex, frames[-1], frames, padding)


def composite_clips(seed: int = 0, subjects: int | None = None) -> list[FixtureClip]:
    """The clips of a fixture built from the official MEGC2019 list, plus the clips the composite leaves out.

    ``subjects`` keeps the first N subjects of each dataset (in list order) for smaller fixtures; the dropped-out
    subjects (CASME II sub10, sub18; SAMM 025) are added only to the full fixture.
    """
    from convat.data.readers.megc2019 import composite_list

    rng = np.random.default_rng(seed)
    listed = composite_list()
    clips: list[FixtureClip] = []
    kept: dict[str, list[str]] = {}
    official = subjects is None
    negatives = {d: iter(rng.permutation([e for e, n in counts.items() for _ in range(n)]).tolist())
                 for d, counts in OFFICIAL_NEGATIVES.items()}
    for dataset, part in listed.groupby("dataset", sort=False):
        order = list(dict.fromkeys(part.subject))
        kept[dataset] = order if subjects is None else order[:subjects]
        for row in part.itertuples():
            if row.subject not in kept[dataset]:
                continue
            if dataset == "smic":
                emotion = row.label
            elif row.label == "negative" and official:
                emotion = next(negatives[dataset])
            elif row.label == "negative":
                negatives = _negatives(dataset)
                weights = [0.7, 0.3] if dataset == "casme2" else [0.6, 0.13, 0.1, 0.1, 0.07]
                emotion = str(rng.choice(negatives, p=weights))
            else:
                emotion = "happiness" if row.label == "positive" else "surprise"
            if dataset == "samm":
                emotion = emotion.capitalize()
            clips.append(_annotated(dataset, row.subject, row.clip, emotion, rng))
    taken = {(c.dataset, c.clip) for c in clips}
    if official:
        clips += _official_left_out(rng, kept, taken)
    extra_subjects = {"casme2": ["sub10", "sub18"], "samm": ["025"]} if subjects is None else {}
    left_out = {"casme2": ["others", "others", "fear", "sadness"], "samm": ["Other"]} if not official else {}
    for dataset, emotions in left_out.items():
        for i, subject in enumerate(kept[dataset] + extra_subjects.get(dataset, [])):
            for j in range(1 if i % 3 else 2):
                name = f"EP{30 + j:02d}_{i % 7 + 1:02d}" if dataset == "casme2" else f"{subject}_9_{j + 1}"
                if (dataset, name) in taken:
                    continue
                emotion = emotions[(i + j) % len(emotions)]
                if subject in extra_subjects.get(dataset, []):
                    emotion = emotions[0]
                clips.append(_annotated(dataset, subject, name, emotion, rng))
    if "sub04" in kept["casme2"]:
        defect = _annotated("casme2", "sub04", "EP12_01f", "disgust", rng)
        clips.append(replace(defect, apex="/"))
    if "sub05" in kept["casme2"]:
        defect = _annotated("casme2", "sub05", "EP09_05f", "repression", rng)
        clips.append(replace(defect, apex=defect.onset))
    return clips


def _official_left_out(rng: np.random.Generator, kept: dict[str, list[str]],
                       taken: set[tuple[str, str]]) -> list[FixtureClip]:
    """The clips the composite leaves out, in the official numbers; the dropped-out subjects (CASME II sub10,
    sub18; SAMM 025) hold only such clips."""
    out = []
    extra = {"casme2": ["sub10", "sub18"], "samm": ["025"]}
    for dataset, counts in OFFICIAL_LEFT_OUT.items():
        subjects = extra[dataset] + kept[dataset]
        emotions = [e for e, n in counts.items() for _ in range(n)]
        for k, emotion in enumerate(emotions):
            subject, j = subjects[k % len(subjects)], k // len(subjects)
            name = f"EP{40 + j:02d}_{k % 7 + 1:02d}" if dataset == "casme2" else f"{subject}_9_{j + 1}"
            assert (dataset, name) not in taken
            out.append(_annotated(dataset, subject, name, emotion, rng))
    return out


def _frame_bytes(suffix: str, count: int = 4, size: int = 8) -> list[bytes]:
    """A few tiny noise images, encoded once and reused (the readers never look at pixel values)."""
    import cv2

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(count)]
    return [cv2.imencode(suffix, image)[1].tobytes() for image in images]


def _write_frames(folder: Path, names: list[str], encoded: list[bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        (folder / name).write_bytes(encoded[i % len(encoded)])


def _sorted(clips: list[FixtureClip], dataset: str) -> list[FixtureClip]:
    return sorted((c for c in clips if c.dataset == dataset), key=lambda c: (c.subject, c.clip))


def write_casme2(root: Path, clips: list[FixtureClip], layout: str = "raw", subject_as: str = "number") -> Path:
    """``root/CASME2/CASME2-coding-20140508.xlsx`` (Sheet1, header row 1) and the frames in ``layout``."""
    import openpyxl

    folder = {"raw": "CASME2_RAW_selected", "cropped": "Cropped"}[layout]
    prefix = "reg_img" if layout == "cropped" else "img"
    base = Path(root) / "CASME2"
    encoded = _frame_bytes(".jpg")
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Sheet1"
    sheet.append(list(CASME2_COLUMNS))
    for c in _sorted(clips, "casme2"):
        number = int(c.subject[3:])
        subject = number if subject_as == "number" else f"{number:02d}"
        sheet.append([subject, c.clip, c.onset, c.apex, c.offset, _AUS.get(c.emotion, ""), c.emotion])
        _write_frames(base / folder / c.subject / c.clip, [f"{prefix}{n}.jpg" for n in c.frames], encoded)
    base.mkdir(parents=True, exist_ok=True)
    workbook.save(base / CASME2_FILE)
    return base


def write_samm(root: Path, clips: list[FixtureClip], header_row: int = 14) -> Path:
    """``root/SAMM/SAMM_Micro_FACS_Codes_v2.xlsx`` (sheet MICRO_ONLY, header on ``header_row``) and the frames."""
    import openpyxl

    base = Path(root) / "SAMM"
    encoded = _frame_bytes(".jpg")
    workbook = openpyxl.Workbook()
    notes = workbook.active
    notes.title = "NOTES"
    notes.append(["Synthetic fixture written by convat: the layout of the SAMM codes file, none of its content."])
    sheet = workbook.create_sheet("MICRO_ONLY")
    sheet.append(["SAMM micro-movement FACS codes (synthetic fixture)"])
    for _ in range(header_row - 2):
        sheet.append([None])
    sheet.append(list(SAMM_COLUMNS))
    for c in _sorted(clips, "samm"):
        inducement = int(c.clip.split("_")[1])
        duration = c.offset - c.onset + 1 if isinstance(c.offset, int) and isinstance(c.onset, int) else None
        sheet.append([int(c.subject), c.clip, inducement, c.onset, c.apex, c.offset, duration, "Micro - 1/2",
                      _AUS.get(c.emotion.lower(), ""), None, c.emotion])
        names = [f"{c.subject}_{n:0{c.padding}d}.jpg" for n in c.frames]
        _write_frames(base / c.subject / c.clip, names, encoded)
    base.mkdir(parents=True, exist_ok=True)
    workbook.save(base / SAMM_FILE)
    return base


def write_smic(root: Path, clips: list[FixtureClip]) -> Path:
    """``root/SMIC/HS/s1/micro/<label>/s1_ne_01/image*.bmp`` (plus one ignored ``non_micro`` clip)."""
    base = Path(root) / "SMIC" / "HS"
    encoded = _frame_bytes(".bmp")
    for c in _sorted(clips, "smic"):
        number = int(c.subject[1:])
        disk_clip = f"s{number}_" + c.clip.split("_", 1)[1]
        names = [f"image{n:07d}.bmp" for n in c.frames]
        _write_frames(base / f"s{number}" / "micro" / c.emotion / disk_clip, names, encoded)
    first = next((c for c in clips if c.dataset == "smic"), None)
    if first is not None:
        number = int(first.subject[1:])
        _write_frames(base / f"s{number}" / "non_micro" / f"s{number}_no_01", ["image0000001.bmp"], encoded)
    return base


def build_fixture(root: str | Path, seed: int = 0, subjects: int | None = None, casme2_layout: str = "raw",
                  casme2_subject_as: str = "number", samm_header_row: int = 14) -> Path:
    """Write the three datasets under ``root`` (a data root for ``CONVAT_DATA``) and return ``root``.

    The full fixture (``subjects=None``) has 442 composite clips plus the left-out ones, 4 frames each of
    8x8 pixels; it takes about a second to write.
    """
    root = Path(root)
    clips = composite_clips(seed, subjects)
    write_casme2(root, clips, casme2_layout, casme2_subject_as)
    write_samm(root, clips, samm_header_row)
    write_smic(root, clips)
    return root


def damage(root: str | Path) -> list[str]:
    """Introduce typical defects of copies found in the wild into a full fixture under ``root``, and say which.

    A deleted offset frame (SAMM), a frame saved twice with different zero padding (SAMM), a stray file name
    (CASME II), an apex outside [onset, offset] (CASME II spreadsheet) and a clip in the wrong label folder
    (SMIC). Used by the book to show what the validation report says about a damaged copy.
    """
    import openpyxl

    root = Path(root)
    done = []
    samm_dir = sorted(p for p in (root / "SAMM").iterdir() if p.is_dir())[0]
    clips = sorted(p for p in samm_dir.iterdir() if p.is_dir())
    frames = sorted(clips[0].iterdir())
    frames[-1].unlink()
    done.append(f"deleted {frames[-1].relative_to(root)} (the offset frame)")
    stem, number = frames[2].stem.split("_")
    twin = frames[2].with_name(f"{stem}_{int(number):06d}{frames[2].suffix}")
    twin.write_bytes(frames[2].read_bytes())
    done.append(f"copied {frames[2].name} to {twin.relative_to(root)}")
    casme_dir = root / "CASME2" / "CASME2_RAW_selected"
    clip = sorted(p for p in sorted(casme_dir.iterdir())[1].iterdir())[0]
    stray = clip / "img_copy.jpg"
    stray.write_bytes(next(clip.iterdir()).read_bytes())
    done.append(f"added {stray.relative_to(root)}")
    path = root / "CASME2" / CASME2_FILE
    workbook = openpyxl.load_workbook(path)
    sheet = workbook["Sheet1"]
    sheet.cell(row=3, column=4).value = sheet.cell(row=3, column=5).value + 10
    workbook.save(path)
    done.append(f"set ApexFrame on row 3 of {CASME2_FILE} to OffsetFrame + 10")
    micro = sorted((root / "SMIC" / "HS").iterdir())[0] / "micro"
    moved = sorted((micro / "positive").iterdir())[0]
    (micro / "negative").mkdir(exist_ok=True)
    moved.rename(micro / "negative" / moved.name)
    done.append(f"moved {moved.relative_to(root)} into negative/")
    return done
