"""The training-budget search: resumable rows, a refused foreign folder, and the decision rule."""

import pandas as pd
import pytest

from convat.experiments.tuning import TuningSpec, budget_table, choose_budget, read_rows, run_tuning
from convat.runstore import RunStoreError


def test_the_rule_takes_the_best_mean_and_the_smaller_budget_within_tolerance():
    rows = pd.DataFrame({"model": ["a", "b", "a", "b", "a"], "steps": [100, 100, 400, 400, 900],
                         "val_uf1": [0.50, 0.40, 0.56, 0.50, 0.70], "train_accuracy": [0.6] * 5})
    assert choose_budget(rows) == 400  # 900 was not finished by every model
    assert choose_budget(rows, tolerance=0.2) == 100  # within 0.2 of the best mean: the smaller budget
    assert choose_budget(rows, models=["a"]) == 900
    with pytest.raises(ValueError, match="no finished candidates"):
        choose_budget(pd.DataFrame())
    assert budget_table(rows).loc["a", ("val_uf1", 400)] == 0.56


def test_the_development_draw_is_never_the_evaluation_draw():
    with pytest.raises(ValueError, match="data_seed=0"):
        TuningSpec(data_seed=0)


def test_a_search_resumes_row_by_row_and_refuses_another_spec(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVAT_CACHE", str(tmp_path / "cache"))
    spec = TuningSpec(models=("ststnet",), budgets=(2, 3), profile="quick", n_groups=2)
    rows = run_tuning(spec, tmp_path / "t", progress=False)
    assert list(rows["steps"]) == [2, 3] and rows["val_uf1"].between(0, 1).all()
    (tmp_path / "t" / "rows.csv").write_text(rows.iloc[:1].to_csv(index=False))  # as if killed after one row
    again = run_tuning(spec, tmp_path / "t", progress=False)
    assert len(again) == 2 and again.iloc[0].equals(rows.iloc[0])
    assert again.iloc[1]["val_uf1"] == rows.iloc[1]["val_uf1"]  # the recomputed row is the same computation
    pd.testing.assert_frame_equal(read_rows(tmp_path / "t"), again)
    with pytest.raises(RunStoreError, match="another spec.*budgets"):
        run_tuning(TuningSpec(models=("ststnet",), budgets=(2,), profile="quick", n_groups=2), tmp_path / "t")


def test_the_description_names_the_choice_and_the_models_that_do_not_fit(tmp_path):
    from convat.experiments.tuning import describe_tuning

    assert "No candidate" in describe_tuning(tmp_path, None)[0]
    assert "does not ship it" in describe_tuning(tmp_path / "absent", None)[0]
    rows = pd.DataFrame({"model": ["a", "b", "a", "b"], "steps": [100, 100, 400, 400], "lr": 0.002,
                         "val_uf1": [0.50, 0.40, 0.56, 0.50], "train_accuracy": [0.6, 0.7, 0.95, 0.8],
                         "wall_s": 60.0, "commit": "abc1234", "code": "f" * 16})
    rows.to_csv(tmp_path / "rows.csv", index=False)
    text = " ".join(describe_tuning(tmp_path, None))
    assert "**400 steps**" in text and "does **not** use it" in text and "b (0.80)" in text and "a (" not in text
    assert "uses it" in " ".join(describe_tuning(tmp_path, 400))
    assert "margin over the best smaller budget is +0.080" in text  # (.56 + .50) / 2 - (.50 + .40) / 2
