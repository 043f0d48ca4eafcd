"""Readers of CASME II, SAMM, SMIC-HS and the MEGC2019 composite, on fixtures generated in the official layouts."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from convat.book import load_records
from convat.cli import main
from convat.data import errata
from convat.data.readers import DatasetError, class_counts, read_dataset
from convat.data.readers.fixtures import (
    build_fixture,
    composite_clips,
    damage,
    write_casme2,
    write_samm,
    write_smic,
)
from convat.data.readers.megc2019 import EXPECTED_TOTALS, composite_list


@pytest.fixture(scope="module")
def full_root(tmp_path_factory) -> Path:
    return build_fixture(tmp_path_factory.mktemp("fixture"))


def small_root(tmp_path: Path, mutate=None, casme2_layout="raw", casme2_subject_as="number", samm_header_row=14,
               only=("casme2", "samm", "smic")):
    """A fixture of the first 5 subjects of each dataset (those in ``only``); ``mutate(clips)`` edits the clips
    before writing."""
    clips = composite_clips(subjects=5)
    if mutate is not None:
        mutate(clips)
    if "casme2" in only:
        write_casme2(tmp_path, clips, casme2_layout, casme2_subject_as)
    if "samm" in only:
        write_samm(tmp_path, clips, samm_header_row)
    if "smic" in only:
        write_smic(tmp_path, clips)
    return tmp_path, clips


def _clip(clips, dataset, index=0):
    """The ``index``-th listed clip of ``dataset`` that no erratum covers."""
    unused = {"Disgust", "Fear", "Sadness", "fear", "sadness"}  # not in the 5-class schemes: errors become warnings
    chosen = [c for c in clips if c.dataset == dataset and errata.lookup(c.dataset, c.subject, c.clip) is None
              and c.emotion not in unused]
    return chosen[index]


def _only(report, code):
    found = [i for i in report.issues if i.code == code and i.severity != "erratum"]
    assert len(found) == 1, report.format()
    return found[0]


def test_composite_reproduces_the_official_list(full_root):
    records, report = read_dataset("megc2019", full_root)
    listed = composite_list()
    assert [(r.dataset, r.subject, r.clip, r.label) for r in records] == list(
        listed[["dataset", "subject", "clip", "label"]].itertuples(index=False, name=None))
    assert len(records) == 442 == len(listed)
    assert len({(r.dataset, r.subject) for r in records}) == 68
    for dataset, expected in EXPECTED_TOTALS.items():
        got = Counter(r.label for r in records if r.dataset == dataset)
        assert dict(got) == expected == dict(Counter(listed[listed.dataset == dataset].label))
    assert report.ok and not report.warnings
    assert sorted(i.clip for i in report.by_severity("erratum")) == ["sub04/EP12_01f", "sub05/EP09_05f"]
    counts = class_counts(records)
    assert counts.loc["total", "clips"] == 442 and counts.loc["total", "subjects"] == 68
    # the real-data chapter's comparison: the reader's counts table and the list's have one layout, and match
    from convat.data.readers.describe import counts_match, describe_composite_match, official_counts

    assert counts_match(counts, official_counts(listed))
    assert describe_composite_match(counts, official_counts(listed), "megc2019").startswith(
        "The counts read from this copy match the official list (442 clips of 68 subjects)")


def test_records_hold_positions_frame_numbers_and_frames(full_root):
    records, _ = read_dataset("megc2019", full_root)
    for record in records:
        numbers = record.extra["frame_numbers"]
        assert list(numbers) == sorted(numbers) and len(numbers) == record.n_frames
        assert 0 <= record.onset < record.offset < record.n_frames
        if record.dataset == "smic":
            assert record.apex is None and record.subject == f"s{int(record.subject[1:]):02d}"
            assert record.clip.startswith(record.subject + "_") and record.extra["folder"].startswith("HS/s")
        else:
            assert record.onset < record.apex <= record.offset
    samm = next(r for r in records if r.dataset == "samm")
    assert samm.emotion[0].isupper() and samm.frames.load([samm.onset, samm.apex]).shape == (2, 8, 8, 3)


def test_samm_frame_numbers_are_parsed_whatever_the_padding(full_root):
    records, report = read_dataset("samm", full_root)
    paddings = {len(r.frames.paths[0].stem.split("_")[1]) for r in records}
    assert paddings == {4, 5}
    for record in records:
        assert [int(p.stem.split("_")[1]) for p in record.frames.paths] == list(record.extra["frame_numbers"])
    assert {r.label for r in records} <= {"anger", "contempt", "happiness", "surprise", "other"}
    assert report.ok


def test_casme2_five_classes_and_both_layouts_and_subject_versions(tmp_path):
    raw, _ = small_root(tmp_path / "raw", only=("casme2",))
    cropped, _ = small_root(tmp_path / "cropped", casme2_layout="cropped", casme2_subject_as="text", only=("casme2",))
    raw_records, _ = read_dataset("casme2", raw)
    cropped_records, report = read_dataset("casme2", cropped)
    assert [(r.subject, r.clip, r.label, r.onset, r.apex) for r in raw_records] == [
        (r.subject, r.clip, r.label, r.onset, r.apex) for r in cropped_records]
    assert cropped_records[0].frames.paths[0].name.startswith("reg_img")
    assert all(r.extra["cropped"] for r in cropped_records) and not any(r.extra["cropped"] for r in raw_records)
    assert {r.label for r in raw_records} <= {"happiness", "surprise", "disgust", "repression", "others"}
    assert "others" in {r.label for r in raw_records}
    assert any(i.code == "version" and "text" in i.message for i in report.issues)
    megc3, _ = read_dataset("casme2", raw, scheme="megc3")
    assert {r.label for r in megc3} == {"negative", "positive", "surprise"}
    with pytest.raises(ValueError, match="accepted: megc3, 5class"):
        read_dataset("casme2", raw, scheme="7class")


def test_samm_header_row_moved_is_accepted_and_missing_header_refused(tmp_path):
    root, _ = small_root(tmp_path, samm_header_row=10, only=("samm",))
    records, report = read_dataset("samm", root)
    assert records and _only(report, "header-row").row == 10
    import openpyxl

    path = root / "SAMM" / "SAMM_Micro_FACS_Codes_v2.xlsx"
    workbook = openpyxl.load_workbook(path)
    workbook["MICRO_ONLY"].cell(row=10, column=4).value = "Onset"
    workbook.save(path)
    with pytest.raises(DatasetError, match=r"'Onset Frame'.*row 14"):
        read_dataset("samm", root)


def _set(dataset, field, value_of, index=0):
    def mutate(clips):
        clip = _clip(clips, dataset, index)
        setattr(clip, field, value_of(clip))
    return mutate


@pytest.mark.parametrize("mutate, code, frame", [
    (_set("casme2", "apex", lambda c: c.offset + 5), "apex-outside", lambda c: c.offset + 5),
    (_set("casme2", "apex", lambda c: c.onset), "onset-equals-apex", lambda c: c.onset),
    (_set("casme2", "onset", lambda c: c.offset + 1), "onset-after-offset", lambda c: c.offset + 1),
    (_set("samm", "offset", lambda c: "n/a"), "unparsable-annotation", lambda c: "n/a"),
    (_set("samm", "frames", lambda c: c.frames[:-1]), "missing-frame", lambda c: c.offset),
    (_set("samm", "emotion", lambda c: "Happy"), "unknown-emotion", lambda c: None),
])
def test_each_annotation_defect_names_dataset_file_row_and_frame(tmp_path, mutate, code, frame):
    dataset = "casme2" if code in ("apex-outside", "onset-equals-apex", "onset-after-offset") else "samm"
    root, clips = small_root(tmp_path, mutate, only=(dataset,))
    clip = _clip(clips, dataset)
    records, report = read_dataset(dataset, root, strict=False)
    issue = _only(report, code)
    assert issue.severity == "error" and issue.dataset == dataset and issue.clip == f"{clip.subject}/{clip.clip}"
    assert issue.row is not None and issue.row > (14 if dataset == "samm" else 1)
    assert issue.frame == frame(clip)
    assert issue.file.endswith(".xlsx") or issue.file.endswith(clip.clip)
    assert clip.clip not in {r.clip for r in records}
    with pytest.raises(DatasetError, match=f"row {issue.row}"):
        read_dataset(dataset, root)


def test_frame_folder_defects(tmp_path):
    root, clips = small_root(tmp_path)
    casme, samm, smic = _clip(clips, "casme2"), _clip(clips, "samm"), _clip(clips, "smic")
    casme_dir = root / "CASME2" / "CASME2_RAW_selected" / casme.subject / casme.clip
    (casme_dir / "img_final.jpg").write_bytes((casme_dir / f"img{casme.onset}.jpg").read_bytes())
    samm_dir = root / "SAMM" / samm.subject / samm.clip
    first = sorted(samm_dir.iterdir())[0]
    shutil.copy(first, samm_dir / f"{samm.subject}_{samm.frames[0]:06d}.jpg")
    gap_clip = _clip(clips, "casme2", 2)
    gap_frame = next(n for n in gap_clip.frames if n not in (gap_clip.onset, gap_clip.apex, gap_clip.offset))
    (root / "CASME2" / "CASME2_RAW_selected" / gap_clip.subject / gap_clip.clip / f"img{gap_frame}.jpg").unlink()
    other = _clip(clips, "casme2", 1)
    shutil.rmtree(root / "CASME2" / "CASME2_RAW_selected" / other.subject / other.clip)

    _, report = read_dataset("casme2", root, strict=False)
    bad_name = _only(report, "unparsable-frame-name")
    assert bad_name.severity == "warning" and bad_name.frame == "img_final.jpg" and casme.clip in bad_name.file
    missing = _only(report, "missing-clip-folder")
    assert missing.severity == "error" and missing.file.endswith(f"{other.subject}/{other.clip}") and missing.row
    gap = _only(report, "frame-gap")
    assert gap.severity == "warning" and gap.frame == gap_frame and gap.file.endswith(gap_clip.clip)
    _, report = read_dataset("samm", root, strict=False)
    duplicate = _only(report, "duplicate-frame-number")
    assert duplicate.severity == "error" and duplicate.frame == samm.frames[0] and duplicate.row

    disk = f"s{int(smic.subject[1:])}_" + smic.clip.split("_", 1)[1]
    hs = root / "SMIC" / "HS" / f"s{int(smic.subject[1:])}" / "micro"
    wrong = next(label for label in ("negative", "positive", "surprise") if label != smic.emotion)
    (hs / wrong).mkdir(exist_ok=True)
    shutil.move(hs / smic.emotion / disk, hs / wrong / disk)
    records, report = read_dataset("smic", root, strict=False)
    mismatch = _only(report, "label-mismatch")
    assert mismatch.file.endswith(f"{wrong}/{disk}") and smic.clip not in {r.clip for r in records}


def test_errata_have_reasons_and_apply_even_when_the_copy_is_fixed(tmp_path):
    assert errata.ERRATA and all(e.reason and e.otherwise in errata.ACTIONS for e in errata.ERRATA)

    def fix(clips):
        for c in clips:
            if (c.subject, c.clip) == ("sub04", "EP12_01f"):
                c.apex = c.frames[1]
    root, _ = small_root(tmp_path, fix, only=("casme2",))
    records, report = read_dataset("casme2", root, scheme="megc3")
    notes = [i for i in report.by_severity("erratum") if i.clip == "sub04/EP12_01f"]
    assert len(notes) == 1 and "not found in this copy" in notes[0].message and "excluded" in notes[0].message
    assert "EP12_01f" not in {r.clip for r in records}


def test_errata_are_protocol_specific(tmp_path):
    root, _ = small_root(tmp_path, only=("casme2",))
    five, report = read_dataset("casme2", root, scheme="5class")
    kept = {r.clip: r for r in five if r.subject in ("sub04", "sub05")}
    assert kept["EP12_01f"].apex is None and kept["EP09_05f"].apex is None  # kept, apex left to the strategy
    assert all("kept with the apex unknown" in i.message for i in report.by_severity("erratum"))
    megc3, _ = read_dataset("casme2", root, scheme="megc3")
    assert not {"EP12_01f", "EP09_05f"} & {r.clip for r in megc3}
    table = errata.errata_table()
    assert list(table["action (megc3)"]) == ["exclude", "exclude"]
    assert list(table["action (5class)"]) == ["apex-unknown", "apex-unknown"]


def test_composite_on_an_incomplete_copy_names_missing_samples_and_label_changes(tmp_path):
    def relabel(clips):
        clip = next(c for c in clips if c.dataset == "casme2" and c.emotion == "happiness")
        clip.emotion = "surprise"
    root, _ = small_root(tmp_path, relabel)
    records, report = read_dataset("megc2019", root, strict=False)
    assert report.by_severity("error") and len(records) < 442
    assert _only(report, "label-mismatch").dataset == "casme2"
    listed = composite_list()
    absent = listed[listed.subject == "sub26"].iloc[0]
    assert any(i.code == "missing-sample" and i.clip == f"sub26/{absent['clip']}" for i in report.errors)
    assert {i.code for i in report.errors} >= {"missing-sample", "totals", "label-mismatch"}
    with pytest.raises(DatasetError, match="annotation errors"):
        read_dataset("megc2019", root)


def test_wrong_root_or_missing_spreadsheet_says_what_is_expected_where(tmp_path, monkeypatch):
    monkeypatch.delenv("CONVAT_DATA", raising=False)
    with pytest.raises(DatasetError, match="CONVAT_DATA.*CASME2-coding"):
        load_records("casme2")
    with pytest.raises(DatasetError, match="not a folder"):
        read_dataset("samm", tmp_path / "nowhere")
    root, _ = small_root(tmp_path)
    (root / "SAMM" / "SAMM_Micro_FACS_Codes_v2.xlsx").unlink()
    with pytest.raises(DatasetError, match=r"samm not found under data root.*SAMM_Micro_FACS_Codes_v2\.xlsx"):
        read_dataset("samm", root)
    with pytest.raises(ValueError, match="'synthme', 'casme2'"):
        load_records("casme3")


def test_load_records_reads_the_root_from_convat_data(full_root, monkeypatch):
    monkeypatch.setenv("CONVAT_DATA", str(full_root))
    records = load_records("smic")
    assert len(records) == 164 and {r.subject for r in records} >= {"s01", "s20"}


def test_cli_data_check_prints_report_and_counts(tmp_path, capsys, monkeypatch):
    root, _ = small_root(tmp_path)
    assert main(["data", "check", "--dataset", "casme2", "--data-root", str(root), "--layout", "raw"]) == 0
    out = capsys.readouterr().out
    assert "ERRATUM casme2 CASME2-coding-20140508.xlsx row" in out and "Clips per subject" in out
    assert "casme2/sub01" in out and "happiness" in out
    shutil.rmtree(root / "SAMM" / "006")
    assert main(["data", "check", "--dataset", "samm", "--root", str(root)]) == 1
    assert "missing-clip-folder" in capsys.readouterr().out
    monkeypatch.delenv("CONVAT_DATA", raising=False)
    assert main(["data", "check", "--dataset", "smic"]) == 2
    assert "CONVAT_DATA" in capsys.readouterr().err


def test_damage_produces_one_message_per_defect(tmp_path):
    root = build_fixture(tmp_path)
    done = damage(root)
    records, report = read_dataset("megc2019", root, strict=False)
    codes = Counter(i.code for i in report.errors)
    # the deleted offset frame and the duplicated frame hit the same SAMM clip: one error per row, naming both
    assert codes["missing-frame"] + codes["duplicate-frame-number"] == 1 and codes["apex-outside"] == 1
    samm = next(i for i in report.errors if i.code in ("missing-frame", "duplicate-frame-number"))
    assert "missing-frame" in samm.message or "duplicate-frame-number" in samm.message
    assert codes["label-mismatch"] == 1 and codes["missing-sample"] == 3 and len(done) == 5
    assert any(i.code == "unparsable-frame-name" and i.frame == "img_copy.jpg" for i in report.warnings)
    assert len(records) == 442 - 3  # the two SAMM defects hit the same clip


def test_protocol_counts_on_the_official_emotion_counts(full_root):
    """CASME II 5-class 246, SAMM 5-class 136, the composite 442 (the fixture has the official counts)."""
    for (dataset, scheme), n in errata.PROTOCOL_COUNTS.items():
        assert len(read_dataset(dataset, full_root, scheme=None if dataset == "megc2019" else scheme)[0]) == n
    casme2, _ = read_dataset("casme2", full_root, scheme="5class")
    assert len(casme2) == 246
    assert Counter(r.label for r in casme2) == {"others": 99, "disgust": 63, "happiness": 32, "repression": 27,
                                                "surprise": 25}
    samm, _ = read_dataset("samm", full_root, scheme="5class")
    assert len(samm) == 136
    assert Counter(r.label for r in samm) == {"anger": 57, "happiness": 26, "other": 26, "surprise": 15,
                                              "contempt": 12}
    assert len(read_dataset("samm", full_root, scheme="megc3")[0]) == 133
    assert len(read_dataset("casme2", full_root, scheme="megc3")[0]) == 145
    assert len(read_dataset("megc2019", full_root)[0]) == 442


def test_ambiguous_annotation_file_is_an_error_listing_the_candidates(tmp_path):
    root, _ = small_root(tmp_path, only=("casme2",))
    base = root / "CASME2"
    shutil.copy(base / "CASME2-coding-20140508.xlsx", base / "CASME2-coding-20140508_old.xlsx")
    records, report = read_dataset("casme2", root)  # the official name wins, with a note
    assert any(i.code == "several-versions" and "official" in i.message for i in report.issues)
    (base / "CASME2-coding-20140508.xlsx").rename(base / "CASME2-coding-2014.xlsx")
    with pytest.raises(DatasetError, match=r"ambiguous.*CASME2-coding-2014.xlsx.*_old.xlsx"):
        read_dataset("casme2", root)


def test_blank_cell_says_blank_and_one_mistyped_number_is_one_error(tmp_path):
    def damage_rows(clips):
        casme = [c for c in clips if c.dataset == "casme2" and c.emotion == "happiness"]
        casme[0].onset = None
        casme[1].onset = casme[1].onset * 100  # a mistyped onset: after the offset, apex outside, not on disk
    root, _ = small_root(tmp_path, damage_rows, only=("casme2",))
    _, report = read_dataset("casme2", root, strict=False)
    blank = [i for i in report.errors if "blank" in i.message]
    assert len(blank) == 1 and "OnsetFrame is blank" in blank[0].message and "None" not in blank[0].message
    rows = Counter(i.row for i in report.errors)
    assert len(report.errors) == 2 and set(rows.values()) == {1}
    typo = next(i for i in report.errors if i is not blank[0])
    assert typo.code == "onset-after-offset" and "consequences" in typo.message


def test_five_class_protocols_run_loso_from_the_cli_with_their_own_labels(tmp_path, capsys, monkeypatch):
    from convat.data.readers import PROTOCOLS, protocol_classes

    monkeypatch.setenv("CONVAT_CACHE", str(tmp_path / "cache"))
    root, _ = small_root(tmp_path / "data", only=("samm", "casme2"))
    assert {"casme2_5class", "samm_5class"} <= set(PROTOCOLS)
    assert load_records("samm_5class", data_root=root)[0].extra["scheme"] == "5class"
    out = tmp_path / "run"
    with pytest.warns(UserWarning, match="no face found"):  # the fixture's frames are noise, not faces
        assert main(["loso", "--dataset", "samm_5class", "--data-root", str(root), "--epochs", "1", "--img-size",
                     "16", "--flow", "dis", "--quiet", "--out", str(out), "--n-boot", "10"]) == 0
    import pandas as pd

    predictions = pd.read_csv(out / "predictions.csv")
    assert set(predictions.label) <= set(protocol_classes("samm_5class")) and len(set(predictions.label)) > 3
    assert set(protocol_classes("casme2_5class")) == {"happiness", "surprise", "disgust", "repression", "others"}
    assert "samm_5class" in capsys.readouterr().out
    with pytest.raises(ValueError, match="samm_5class"):
        load_records("samm5", data_root=root)
