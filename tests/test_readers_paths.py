"""Readers stay inside the data root: a spreadsheet path that leaves it is an error naming the row (issue 16)."""

import shutil

import pytest

from convat.data import errata
from convat.data.readers import DatasetError, read_dataset
from convat.data.readers.fixtures import CASME2_FILE, composite_clips, write_casme2


@pytest.mark.parametrize("escape", ["../../../outside", "../..", "/tmp"])
def test_a_filename_outside_the_data_root_is_an_error_naming_the_row(tmp_path, escape):
    import openpyxl

    root = tmp_path / "data"
    clips = [c for c in composite_clips(subjects=3) if c.dataset == "casme2"]
    base = write_casme2(root, clips)
    # a folder of valid frames outside the data root, which a reader following the row would read
    victim = next(c for c in clips if errata.lookup("casme2", c.subject, c.clip) is None)
    shutil.copytree(base / "CASME2_RAW_selected" / victim.subject / victim.clip, tmp_path / "outside")
    workbook = openpyxl.load_workbook(base / CASME2_FILE)
    sheet = workbook.active
    row = next(r for r in range(2, sheet.max_row + 1) if sheet.cell(r, 2).value == victim.clip)
    sheet.cell(row, 2).value = escape
    workbook.save(base / CASME2_FILE)

    records, report = read_dataset("casme2", root, strict=False)
    found = [i for i in report.issues if i.code == "path-outside-root"]
    assert len(found) == 1 and found[0].row == row and found[0].severity == "error"
    assert all(str(tmp_path / "outside") not in str(r.frames.paths[0]) for r in records)
    assert escape not in {r.clip for r in records}
    with pytest.raises(DatasetError, match=f"row {row}"):
        read_dataset("casme2", root)
