"""The real-data chapter's sentences: the check's verdict and the composite comparison, which must not call a copy
with an extra row or column a match."""

from types import SimpleNamespace

import pandas as pd

from convat.data.readers.describe import counts_match, describe_check, describe_composite_match, official_counts
from convat.data.readers.megc2019 import composite_list


def _listed() -> pd.DataFrame:
    return pd.DataFrame({"dataset": ["casme2", "casme2", "samm", "samm", "samm"],
                         "subject": ["01", "02", "006", "006", "007"],
                         "label": ["negative", "positive", "negative", "surprise", "negative"]})


def test_official_counts_count_clips_subjects_and_a_total():
    counts = official_counts(_listed())
    assert counts.loc["casme2", ["negative", "positive", "surprise", "clips", "subjects"]].tolist() == [1, 1, 0, 2, 2]
    assert counts.loc["samm", ["clips", "subjects"]].tolist() == [3, 2]
    assert counts.loc["total", ["negative", "clips", "subjects"]].tolist() == [3, 5, 4]


def test_the_shipped_official_list_gives_the_published_totals():
    total = official_counts(composite_list()).loc["total"]
    assert (int(total["clips"]), int(total["subjects"])) == (442, 68)


def test_a_match_needs_the_same_rows_columns_and_numbers():
    official = official_counts(_listed())
    assert counts_match(official.iloc[::-1, ::-1].copy(), official)  # order does not matter
    other = official.copy()
    other.loc["samm", "negative"] += 1
    assert not counts_match(other, official)
    extra_row = pd.concat([official, official.loc[["samm"]].rename(index={"samm": "smic"})])
    assert not counts_match(extra_row, official)  # reindex_like would have dropped it and said "match"
    assert not counts_match(official.assign(others=0), official)
    assert not counts_match(official.drop(index="samm"), official)


def test_composite_sentences():
    official = official_counts(_listed())
    assert describe_composite_match(official, official, "megc2019") == (
        "The counts read from this copy match the official list (5 clips of 4 subjects).")
    assert "do **not** match" in describe_composite_match(official.assign(others=0), official, "megc2019")
    assert describe_composite_match(official, official, "casme2").startswith(
        'This copy was read as casme2; set `DATASET = "megc2019"`')


def test_check_sentence_counts_errors():
    assert describe_check(SimpleNamespace(ok=True, errors=[]), 442) == (
        "This copy gives **442 records** with no errors: every clip of the protocol was found and checked.")
    assert "with 1 error: those clips are left out" in describe_check(SimpleNamespace(ok=False, errors=[0]), 3)
    assert "with 2 errors:" in describe_check(SimpleNamespace(ok=False, errors=[0, 1]), 3)
