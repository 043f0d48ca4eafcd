"""The preprocessing chapter's sentences follow from the measured tables, branch by branch."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from convat import runstore
from convat.preprocess.describe import (
    apex_summary,
    describe_apex,
    describe_crop_jitter,
    describe_detectors,
    describe_flow_benchmark,
    describe_padded_outcomes,
    flow_key_results,
    largest_displacement,
)


def _detectors(with_haar: bool = True) -> pd.DataFrame:
    rows = {"dlib": {"images with a face": 8, "found": 7, "false positive": 0, "missing": 1, "ms per frame": 41.6}}
    if with_haar:
        rows["haar"] = {"images with a face": 8, "found": 5, "false positive": 2, "missing": 1, "ms per frame": 12.2}
    return pd.DataFrame(rows).T


def test_detector_sentence_names_the_chosen_detector_and_haar_beside_it_only_when_measured():
    text = describe_detectors(_detectors(), "dlib", 12)
    assert "On 12 images (8 with a face)" in text and "(**dlib**) finds 7, chooses a wrong region 0 times" in text
    assert "misses 1, at a median **42 ms per frame**" in text
    assert "The Haar cascade finds 5 and chooses a wrong region 2 times, at 12 ms." in text
    assert "Haar cascade" not in describe_detectors(_detectors(with_haar=False), "dlib", 12)
    only_haar = describe_detectors(_detectors(), "haar", 12)  # the fallback is not compared with itself
    assert "(**haar**) finds 5" in only_haar and "The Haar cascade" not in only_haar


def test_padded_outcomes_sentence_lists_every_detector():
    counts = pd.DataFrame({"found": [3, 1], "false positive": [0, 4], "missing": [9, 7]}, index=["dlib", "haar"])
    text = describe_padded_outcomes(counts, 12, "synthme")
    assert text.startswith("On the onset frames of 12 synthme clips placed in a larger canvas")
    assert "dlib finds **3**, misses 9, chooses a wrong region 0 times; haar finds **1**, misses 7" in text


def _record(peak: float | None):
    if peak is None:
        return SimpleNamespace(truth=None)
    flow = np.zeros((4, 4, 2))
    flow[1, 2] = (peak * 0.6, peak * 0.8)  # |(0.6, 0.8)| = 1
    return SimpleNamespace(truth=SimpleNamespace(au_flow=flow))


def test_largest_displacement_is_the_largest_flow_norm_and_none_without_truth():
    assert largest_displacement([_record(2.0), _record(3.0)]) == pytest.approx(3.0)
    assert largest_displacement([_record(2.0), _record(None)]) is None
    assert largest_displacement([]) is None


@pytest.mark.parametrize(("shifts", "peak", "words"), [
    ([4.0, 1.0], 3.0, "add more motion than the expression itself."),
    ([0.5, np.nan], 3.0, "add motion of the same order as the expression."),
    ([0.1, 0.2], 3.0, "add little motion next to the expression (under 10% of it) on these clips."),
])
def test_crop_jitter_is_weighed_against_the_expression(shifts, peak, words):
    text = describe_crop_jitter(pd.DataFrame({"max_centre_shift_px": shifts}), peak)
    assert f"up to **{np.nanmax(shifts):.1f} px**" in text and f"**{peak:.1f} px**" in text
    assert text.endswith(words) and text.startswith("Re-detecting the face on every frame would")
    named = describe_crop_jitter(pd.DataFrame({"max_centre_shift_px": shifts}), peak, detector="haar")
    assert named.startswith("Re-detecting the face on every frame with the haar detector would")


def test_crop_jitter_says_nothing_without_truth_or_without_a_found_face():
    assert describe_crop_jitter(pd.DataFrame({"max_centre_shift_px": [1.0]}), None) is None
    assert describe_crop_jitter(pd.DataFrame({"max_centre_shift_px": [np.nan, np.nan]}), 3.0) is None


def _apex_report(middle: list[float], motion: list[float], apex: list[float | None] | None = None) -> pd.DataFrame:
    apex = apex if apex is not None else [5] * len(middle)
    return pd.DataFrame({"apex": apex, "middle_error": middle, "motion_error": motion})


def test_apex_summary_and_sentence():
    summary = apex_summary(_apex_report([4, 2, 0], [1, 1, 4]))
    assert summary.loc["middle", "mean |error| (frames)"] == pytest.approx(2.0)
    assert summary.loc["middle", "median |error|"] == pytest.approx(2.0)
    assert summary.loc["motion", "share of clips within 2 frames"] == pytest.approx(2 / 3)
    summary = apex_summary(_apex_report([4, 2, 0], [1, 1, 1]))
    assert describe_apex(summary) == ("Over 3 clips the **motion** strategy lands closer to the annotated apex "
                                      "on average (1.00 frames against 2.00).")


def test_clips_without_an_annotated_apex_are_not_counted():
    """SMIC has no apex: on the composite its clips have no error, and the sentence counts the others only."""
    summary = apex_summary(_apex_report([4, 2, np.nan], [1, 1, np.nan], apex=[5, 5, None]))
    assert summary.attrs["clips"] == 2 and summary.loc["middle", "share of clips within 2 frames"] == pytest.approx(0.5)
    assert describe_apex(summary).startswith("Over 2 clips the **motion** strategy")


def test_an_apex_tie_is_named_as_one_and_no_annotation_gives_no_summary():
    summary = apex_summary(_apex_report([1, 3], [2, 2]))
    assert "the **middle** and **motion** strategies land equally close" in describe_apex(summary)
    assert apex_summary(_apex_report([np.nan], [np.nan], apex=[None])) is None


def test_one_strategy_is_described_without_a_comparison():
    summary = apex_summary(pd.DataFrame({"apex": [5, 5], "motion_error": [1, 2]}), ("motion",))
    assert describe_apex(summary) == "Over 2 clips the **motion** strategy lands 1.50 frames from the annotated " \
        "apex on average."


def _bench() -> pd.DataFrame:
    return pd.DataFrame({"method": ["tvl1", "tvl1_plain", "dis", "zero"], "epe": [0.2, 0.5, 0.3, 1.0],
                         "epe_au": [0.4, 0.9, 0.35, 2.0], "clips_per_s": [1.5, 1.6, 80.0, 1e6]})


def test_flow_benchmark_sentence_and_key_results_leave_zero_flow_out_of_the_rankings():
    text = describe_flow_benchmark(_bench(), 6)
    assert "On 6 clips TV-L1 with the prefilter has EPE **0.200 px**" in text
    assert "against **0.500** without it (2.5x the prefiltered error) and **1.000** for zero flow" in text
    assert "(zero flow's error is 5.0x TV-L1's)" in text
    assert "over the frame is **tvl1**'s, inside the action-unit masks **dis**'s (0.350 px against TV-L1's 0.400)" \
        in text
    assert "means over 6 clips without an interval" in text  # an order of these clips, not a ranking
    assert "The fastest non-trivial method is **dis** (80 clips/s against 1.5 for TV-L1)" in text  # not zero flow
    keys = flow_key_results(_bench(), 6)
    assert keys["lowest mean error inside the AU masks on these 6 clips"] == "dis"
    assert keys["TV-L1 end-point error, whole frame / inside the AU masks (px)"] == "0.200 / 0.400"


def test_presentation_modules_are_left_out_of_the_code_fingerprint(tmp_path, monkeypatch):
    """Rewording a sentence or redrawing a figure never makes a result stale; any other module does."""
    (tmp_path / "stage").mkdir()
    for name in ("core.py", "describe.py", "plots.py", "face_plots.py"):
        (tmp_path / "stage" / name).write_text("x = 1\n")
    monkeypatch.setattr(runstore, "PACKAGE_ROOT", tmp_path)
    before = runstore.code_fingerprint(("stage",))
    for name in ("describe.py", "plots.py", "face_plots.py"):
        (tmp_path / "stage" / name).write_text("x = 2\n")
        assert runstore.code_fingerprint(("stage",)) == before, name
    (tmp_path / "stage" / "core.py").write_text("x = 2\n")
    assert runstore.code_fingerprint(("stage",)) != before
    changed = runstore.code_fingerprint(("stage",))
    (tmp_path / "stage" / "describer.py").write_text("x = 1\n")  # only the exact stem is presentation
    assert runstore.code_fingerprint(("stage",)) != changed
