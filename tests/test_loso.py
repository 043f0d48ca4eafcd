import numpy as np
import pandas as pd
import pytest

from convat.data.synth import generate
from convat.loso import fold_subjects, run_fold, run_loso
from convat.preprocess.pipeline import PreprocessConfig, preprocess
from convat.training.loop import TrainConfig

FAST = TrainConfig(epochs=2, batch_size=16)


@pytest.fixture(scope="module")
def data():
    records = generate("quick", n_subjects=4, clips_per_subject=6)
    return preprocess(records, PreprocessConfig(flow="dis", size=32), progress=False)


def test_every_clip_is_predicted_once_by_the_fold_that_held_its_subject_out(data):
    x, table = data
    predictions = run_loso(x, table, FAST, progress=False)
    assert len(predictions) == len(table)
    assert (predictions["fold"] == predictions["dataset"] + "/" + predictions["subject"]).all()
    assert sorted(predictions["clip"]) == sorted(table["clip"])
    assert len(fold_subjects(table)) == table.subject.nunique()


def test_held_out_subject_never_reaches_training(data, monkeypatch):
    x, table = data
    seen = {}

    def spy(x_train, y_train, num_classes, config, **kwargs):
        seen["n"] = len(x_train)
        seen["rows"] = {tuple(np.round(a.ravel()[:8], 5)) for a in x_train}
        raise StopIteration

    monkeypatch.setattr("convat.loso.train_model", spy)
    fold = fold_subjects(table)[0]
    with pytest.raises(StopIteration):
        run_fold(x, table, fold, sorted(table.label.unique()), FAST)
    held_out = (table["dataset"] + "/" + table["subject"] == fold).to_numpy()
    assert seen["n"] == (~held_out).sum()


def test_resume_after_a_crash_gives_identical_predictions(data, tmp_path, monkeypatch):
    x, table = data
    full = run_loso(x, table, FAST, out_dir=tmp_path / "full", progress=False)

    import convat.loso as loso

    real, calls = loso.run_fold, {"n": 0}

    def crash_on_third(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(loso, "run_fold", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        run_loso(x, table, FAST, out_dir=tmp_path / "resumed", progress=False)
    assert len(list((tmp_path / "resumed" / "folds").glob("*.csv"))) == 2
    monkeypatch.setattr(loso, "run_fold", real)
    resumed = run_loso(x, table, FAST, out_dir=tmp_path / "resumed", progress=False)
    cols = ["clip", "prediction"]
    pd.testing.assert_frame_equal(full[cols], resumed[cols])
    np.testing.assert_allclose(full.filter(like="p_").to_numpy(), resumed.filter(like="p_").to_numpy(), rtol=1e-5)


def test_same_seed_same_predictions(data):
    x, table = data
    a = run_loso(x, table, FAST, progress=False)
    b = run_loso(x, table, FAST, progress=False)
    np.testing.assert_array_equal(a.filter(like="p_").to_numpy(), b.filter(like="p_").to_numpy())


def test_a_short_training_run_beats_chance_on_the_training_set(data):
    from convat.training.loop import predict_proba, train_model

    x, table = data
    classes = sorted(table.label.unique())
    y = table.label.map({c: i for i, c in enumerate(classes)}).to_numpy()
    model = train_model(x / x.std(), y, len(classes), TrainConfig(epochs=25, lr=3e-3, batch_size=8))
    assert (predict_proba(model, x / x.std()).argmax(1) == y).mean() > 0.6


def test_random_splits_cover_every_clip_once_and_mix_subjects(data):
    from convat.loso import random_splits

    _, table = data
    splits = random_splits(table, k=3)
    total = np.sum(list(splits.values()), axis=0)
    assert (total == 1).all()
    assert any(table.loc[m, "subject"].nunique() > 1 for m in splits.values())


def test_cached_run_is_reused_and_a_config_change_is_not(data, tmp_path):
    from convat.loso import cached_loso

    x, table = data
    a = cached_loso(x, table, FAST, progress=False, root=tmp_path)
    b = cached_loso(x, table, FAST, progress=False, root=tmp_path)
    pd.testing.assert_frame_equal(a, b)
    assert len(list(tmp_path.iterdir())) == 1
    cached_loso(x, table, TrainConfig(epochs=1, batch_size=16), progress=False, root=tmp_path)
    assert len(list(tmp_path.iterdir())) == 2


def test_reusing_a_folder_with_another_config_is_refused(data, tmp_path):
    x, table = data
    run_loso(x, table, FAST, out_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="another configuration"):
        run_loso(x, table, TrainConfig(epochs=3), out_dir=tmp_path, progress=False)
