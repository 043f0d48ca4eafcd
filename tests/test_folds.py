"""The one fold engine (convat.folds.run_folds) and the experiments that run through it."""

import numpy as np
import pandas as pd
import pytest

from convat.folds import FoldResult, fold_predictions, run_folds
from convat.runstore import RunStore, RunStoreError


def _table(n_subjects: int = 4, clips: int = 3) -> pd.DataFrame:
    labels = ["negative", "positive", "surprise"]
    return pd.DataFrame({
        "dataset": "toy",
        "subject": np.repeat([f"s{i}" for i in range(n_subjects)], clips),
        "clip": [f"c{i:02d}" for i in range(n_subjects * clips)],
        "label": [labels[i % 3] for i in range(n_subjects * clips)],
    })


def _splits(table: pd.DataFrame) -> dict[str, np.ndarray]:
    ids = ("toy/" + table["subject"]).to_numpy()
    return {s: ids == s for s in sorted(set(ids))}


def _rule(table: pd.DataFrame, calls: list[str]):
    """A deterministic 'model': predicts the training clips' majority label."""
    classes = sorted(table["label"].unique())

    def fit_predict(fold: str, test: np.ndarray) -> FoldResult:
        calls.append(fold)
        majority = table.loc[~test, "label"].value_counts().sort_index().idxmax()
        proba = np.zeros((int(test.sum()), len(classes)))
        proba[:, classes.index(majority)] = 1.0
        curve = pd.DataFrame({"fold": [fold], "epoch": [1], "loss": [float(len(calls))]})
        return FoldResult(fold_predictions(table, test, classes, proba, fold), curve)

    return fit_predict


def test_folds_pool_in_split_order_whatever_order_they_finish_in():
    table, calls = _table(), []
    splits = _splits(table)
    forward = run_folds(table, splits, _rule(table, calls))
    assert list(dict.fromkeys(forward["fold"])) == list(splits) and calls == list(splits)

    def backwards(todo):
        rule = _rule(table, [])
        for fold in reversed(list(todo)):
            yield fold, rule(fold, todo[fold])

    pd.testing.assert_frame_equal(forward, run_folds(table, splits, execute=backwards))
    with pytest.raises(ValueError, match="fit_predict or execute"):
        run_folds(table, splits)


def test_a_store_resumes_at_the_first_missing_fold_and_refuses_another_run(tmp_path):
    table, calls = _table(), []
    splits = _splits(table)
    identity = {"what": "majority rule", "clips": len(table)}
    first = list(splits)[:2]
    partial = run_folds(table, splits, _rule(table, calls), store=RunStore(tmp_path), identity=identity, only=first)
    assert calls == first and sorted(partial["fold"].unique()) == first
    assert not (tmp_path / "predictions.csv").exists()  # written only when every fold is present

    calls.clear()
    full = run_folds(table, splits, _rule(table, calls), store=RunStore(tmp_path), identity=identity)
    assert calls == list(splits)[2:]  # nothing repeated
    for name in ("config.json", "predictions.csv", "curves.csv", "metrics.csv"):
        assert (tmp_path / name).exists(), name
    pd.testing.assert_frame_equal(full.reset_index(drop=True), run_folds(table, splits, _rule(table, [])),
                                  check_dtype=False)
    with pytest.raises(RunStoreError, match="what"):
        run_folds(table, splits, _rule(table, []), store=RunStore(tmp_path), identity={**identity, "what": "other"})
    with pytest.raises(ValueError, match="run folder"):
        run_folds(table, splits, _rule(table, []), only=first)
    with pytest.raises(ValueError, match="not folds of this run"):
        run_folds(table, splits, _rule(table, []), store=RunStore(tmp_path), identity=identity, only=["toy/x"])


def test_a_damaged_fold_is_recomputed(tmp_path):
    table, calls = _table(), []
    splits = _splits(table)
    run_folds(table, splits, _rule(table, calls), store=RunStore(tmp_path), identity={"a": 1})
    victim = RunStore(tmp_path).fold_path(list(splits)[1])
    victim.write_text(victim.read_text()[:-20])
    calls.clear()
    with pytest.warns(UserWarning, match="checksum"):
        run_folds(table, splits, _rule(table, calls), store=RunStore(tmp_path), identity={"a": 1})
    assert calls == [list(splits)[1]]


def test_grouped_splits_deal_whole_subjects_round_robin():
    from convat.experiments.selection import grouped_splits

    table = _table(n_subjects=5)
    splits = grouped_splits(table, 2)
    assert list(splits) == ["group1", "group2"]
    assert sum(m.astype(int) for m in splits.values()).tolist() == [1] * len(table)  # every clip tested once
    assert sorted(table.loc[splits["group1"], "subject"].unique()) == ["s0", "s2", "s4"]
    with pytest.raises(ValueError, match="subjects"):
        grouped_splits(table, 6)


def test_the_epoch_trace_is_a_checked_run_folder_that_resumes(tmp_path, monkeypatch):
    import convat.experiments.pitfalls as pitfalls
    from convat.data.synth import generate
    from convat.preprocess.pipeline import PreprocessConfig, preprocess
    from convat.training.config import TrainConfig

    x, table = preprocess(generate("quick", n_subjects=4, clips_per_subject=4), PreprocessConfig(flow="dis", size=32),
                          progress=False)
    config = TrainConfig(epochs=2, batch_size=16)
    trace = pitfalls.epoch_trace(x, table, config, cache_dir=tmp_path)
    (folder,) = tmp_path.iterdir()
    assert (folder / "config.json").exists() and (folder / "predictions.csv").exists()
    assert set(trace["role"]) == {"test", "val"} and trace["epoch"].max() == 2
    last = trace[(trace["role"] == "test") & (trace["epoch"] == 2)].reset_index(drop=True)
    stored = pd.read_csv(folder / "predictions.csv", dtype={"subject": str, "clip": str})
    assert (stored["prediction"] == last["prediction"]).all()  # the fixed budget's predictions

    calls = []
    real = pitfalls._trace_fold
    monkeypatch.setattr(pitfalls, "_trace_fold", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    again = pitfalls.epoch_trace(x, table, config, cache_dir=tmp_path)
    assert calls == []
    pd.testing.assert_frame_equal(trace, again)
    with pytest.raises(ValueError, match="inner_fraction"):
        pitfalls.epoch_trace(x, table, config, inner_fraction=0.0, cache=False)
