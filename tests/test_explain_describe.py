"""The deletion-curve sentences: the smallest area wins, ties are named, and areas are compared as the table shows
them (three decimals)."""

import pandas as pd

from convat.explain.describe import describe_deletion


def test_the_fastest_fall_and_the_count_below_random():
    text = describe_deletion({"convat_tiny": pd.Series({"saliency": 0.30, "occlusion": 0.25, "random": 0.40})})
    assert text.startswith("- **convat_tiny**: *occlusion* gives the fastest fall (area 0.250, random order 0.400); "
                           "2 of 2 maps fall faster than the random order.")
    assert text.endswith("not a ranking of the methods (the controls over seeds above are the test).")


def test_areas_are_compared_as_the_table_shows_them():
    # 0.1236 and 0.1244 both show as 0.124: a tie; the random order's 0.12449 shows as 0.124 too, so nothing beats it
    areas = pd.Series({"saliency": 0.1236, "occlusion": 0.1244, "rollout": 0.5, "random": 0.12449})
    line = describe_deletion({"m": areas}).splitlines()[0]
    assert "*saliency* and *occlusion* give the fastest fall (area 0.124, random order 0.124)" in line
    assert "0 of 3 maps fall faster than the random order" in line
    # 0.1234 shows as 0.123, below the random order's 0.124: it counts
    assert "1 of 1 maps" in describe_deletion({"m": pd.Series({"saliency": 0.1234, "random": 0.1236})})


def test_one_line_per_model():
    areas = pd.Series({"saliency": 0.3, "random": 0.5})
    lines = describe_deletion({"a": areas, "b": areas}).splitlines()
    assert [line[:7] for line in lines[:2]] == ["- **a**", "- **b**"]
