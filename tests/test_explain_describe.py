"""The deletion-curve sentences: the smallest area wins, ties are named, and a map must fall faster than the random
order by more than the rounding of the table to count."""

import pandas as pd

from convat.explain.describe import AREA_TIE, describe_deletion


def test_the_fastest_fall_and_the_count_below_random():
    text = describe_deletion({"convat_tiny": pd.Series({"saliency": 0.30, "occlusion": 0.25, "random": 0.40})})
    assert text.startswith("- **convat_tiny**: *occlusion* gives the fastest fall (area 0.250, random order 0.400); "
                           "2 of 2 maps fall faster than the random order.")
    assert text.endswith("not a ranking of the methods (the controls over seeds above are the test).")


def test_ties_are_named_and_a_rounding_difference_does_not_beat_random():
    areas = pd.Series({"saliency": 0.3, "occlusion": 0.3 + AREA_TIE / 2, "rollout": 0.5, "random": 0.3 + AREA_TIE})
    line = describe_deletion({"m": areas}).splitlines()[0]
    assert "*saliency* and *occlusion* give the fastest fall" in line
    assert "0 of 3 maps fall faster than the random order" in line


def test_one_line_per_model():
    areas = pd.Series({"saliency": 0.3, "random": 0.5})
    lines = describe_deletion({"a": areas, "b": areas}).splitlines()
    assert [line[:7] for line in lines[:2]] == ["- **a**", "- **b**"]
