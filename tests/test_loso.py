import numpy as np
import pandas as pd
import pytest

from convat.data.synth import generate
from convat.loso import fit_fold, fold_subjects, loso_splits, run_loso
from convat.metrics import subject_key
from convat.preprocess.pipeline import PreprocessConfig, preprocess
from convat.training.loop import TrainConfig

FAST = TrainConfig(epochs=2, batch_size=16)


@pytest.fixture(scope="module")
def data():
    records = generate("quick", n_subjects=4, clips_per_subject=6)
    return preprocess(records, PreprocessConfig(flow="dis", size=32), progress=False)


@pytest.fixture(scope="module")
def sequential(data, tmp_path_factory):
    """One reference run, written to disk (used by the resume, determinism and parallel tests)."""
    x, table = data
    out = tmp_path_factory.mktemp("sequential")
    return run_loso(x, table, FAST, out_dir=out, progress=False), out


def _unit(rows: np.ndarray) -> np.ndarray:
    """Scale-free pattern of each clip's map (standardisation rescales channels, not their pattern)."""
    flat = rows.reshape(len(rows), rows.shape[1], -1).astype(np.float64)
    return (flat / (np.linalg.norm(flat, axis=2, keepdims=True) + 1e-12)).reshape(len(rows), -1)


def _identify(rows: np.ndarray, x: np.ndarray) -> set[int]:
    """Which clips of ``x`` the (rescaled) ``rows`` are: nearest pattern, which must match almost exactly."""
    similarity = _unit(rows) @ _unit(x).T / x.shape[1]
    assert (similarity.max(1) > 0.9999).all()
    return set(similarity.argmax(1).tolist())


def test_folds_never_share_a_subject(data):
    _, table = data
    splits = loso_splits(table)
    ids = subject_key(table).to_numpy()
    assert (np.sum(list(splits.values()), axis=0) == 1).all()
    for fold, mask in splits.items():
        assert set(ids[mask]) == {fold}
        assert fold not in set(ids[~mask])


def test_every_clip_is_predicted_once_by_the_fold_that_held_its_subject_out(sequential, data):
    _, table = data
    predictions, out = sequential
    assert len(predictions) == len(table)
    assert (predictions["fold"] == predictions["dataset"] + "/" + predictions["subject"]).all()
    assert sorted(predictions["clip"]) == sorted(table["clip"])
    assert len(fold_subjects(table)) == table.subject.nunique()
    for name in ("config.json", "predictions.csv", "curves.csv", "metrics.csv"):
        assert (out / name).exists(), name
    curves = pd.read_csv(out / "curves.csv")
    assert set(curves["fold"]) == set(fold_subjects(table)) and curves["epoch"].max() == FAST.epochs


@pytest.mark.parametrize("val_fraction", [0.0, 0.4])
def test_held_out_subject_never_reaches_training_or_model_selection(data, monkeypatch, val_fraction):
    """Instrumented training: every array handed to the training loop is traced back to its clips."""
    import convat.loso as loso

    x, table = data
    ids = subject_key(table).to_numpy()
    assert len(_identify(x, x)) == len(x)  # every clip recognisable
    seen = []
    real = loso.train_model

    def spy(x_train, y_train, num_classes, config, **kwargs):
        val = kwargs.get("val")
        fit_rows = _identify(x_train, x)
        val_rows = _identify(val[0], x) if val is not None else set()
        seen.append((fit_rows, val_rows))
        return real(x_train, y_train, num_classes, config.__class__(**{**config.__dict__, "epochs": 1}), **kwargs)

    monkeypatch.setattr(loso, "train_model", spy)
    config = TrainConfig(epochs=2, batch_size=16, val_fraction=val_fraction)
    predictions = run_loso(x, table, config, progress=False)
    assert len(seen) == len(fold_subjects(table)) == predictions["fold"].nunique()
    for fold, (fit_rows, val_rows) in zip(fold_subjects(table), seen, strict=True):
        held_out = set(np.flatnonzero(ids == fold))
        assert not held_out & (fit_rows | val_rows)
        assert fit_rows | val_rows == set(range(len(x))) - held_out
        assert not fit_rows & val_rows
        if val_fraction:
            val_subjects = set(ids[list(val_rows)])
            assert val_subjects and fold not in val_subjects
            assert not val_subjects & set(ids[list(fit_rows)])  # whole subjects, not clips


def test_early_stopping_keeps_the_best_validation_epoch(data):
    x, table = data
    config = TrainConfig(epochs=4, batch_size=16, val_fraction=0.34, patience=1)
    frame = fit_fold(x, table, fold_subjects(table)[0], sorted(table.label.unique()), config).curve
    assert frame["selected"].sum() == 1 and {"val_uf1", "val_loss"} <= set(frame)
    best = frame.loc[frame["selected"]].iloc[0]
    assert best["val_uf1"] == frame["val_uf1"].max()
    assert len(frame) <= config.epochs


def test_resume_after_a_crash_gives_identical_predictions(data, sequential, tmp_path, monkeypatch):
    x, table = data
    full = sequential[0]

    import convat.loso as loso

    real, calls = loso.fit_fold, {"n": 0}

    def crash_on_third(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(loso, "fit_fold", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        run_loso(x, table, FAST, out_dir=tmp_path, progress=False)
    assert len(list((tmp_path / "folds").glob("*.csv"))) == 2
    assert not list((tmp_path / "folds").glob("*.tmp"))

    trained = []
    monkeypatch.setattr(loso, "fit_fold", lambda *a, **k: trained.append(a[2]) or real(*a, **k))
    resumed = run_loso(x, table, FAST, out_dir=tmp_path, progress=False)
    assert len(trained) == len(fold_subjects(table)) - 2  # nothing repeated
    pd.testing.assert_frame_equal(full, resumed)


def test_same_seed_same_predictions(data, sequential):
    x, table = data
    again = run_loso(x, table, FAST, progress=False)
    np.testing.assert_array_equal(sequential[0].filter(like="p_").to_numpy(), again.filter(like="p_").to_numpy())


def test_parallel_folds_give_the_sequential_predictions(data, sequential, tmp_path):
    x, table = data
    parallel = run_loso(x, table, FAST, out_dir=tmp_path, progress=False, parallel_folds=2)
    reference = sequential[0]
    assert (parallel["prediction"] == reference["prediction"]).all()
    np.testing.assert_allclose(parallel.filter(like="p_").to_numpy(), reference.filter(like="p_").to_numpy(),
                               atol=1e-5)
    assert len(list((tmp_path / "curves").glob("*.csv"))) == len(fold_subjects(table))


def test_balanced_sampling_draws_classes_evenly():
    import torch

    from convat.training.loop import _epoch_order

    y = torch.tensor([0] * 80 + [1] * 15 + [2] * 5)
    order = _epoch_order(y, 3, True, torch.Generator().manual_seed(0))
    counts = torch.bincount(y[order], minlength=3).float() / len(order)
    assert (counts - 1 / 3).abs().max() < 0.12
    plain = _epoch_order(y, 3, False, torch.Generator().manual_seed(0))
    assert sorted(plain.tolist()) == list(range(100))


def test_random_splits_cover_every_clip_once_and_mix_subjects(data):
    from convat.loso import random_splits

    _, table = data
    splits = random_splits(table, k=3)
    total = np.sum(list(splits.values()), axis=0)
    assert (total == 1).all()
    assert any(table.loc[m, "subject"].nunique() > 1 for m in splits.values())


def test_cached_run_is_reused_and_a_config_change_is_not(data, tmp_path, monkeypatch):
    from convat.loso import cached_run

    monkeypatch.setattr("convat.runstore.code_fingerprint", lambda *a: "fixed")  # others edit sources meanwhile
    x, table = data
    one = TrainConfig(epochs=1, batch_size=16)
    a = cached_run(x, table, one, progress=False, cache_dir=tmp_path)
    b = cached_run(x, table, one, progress=False, cache_dir=tmp_path)
    pd.testing.assert_frame_equal(a.predictions, b.predictions)
    assert a.path == b.path
    assert len(list(tmp_path.iterdir())) == 1 and len(a.curves) == len(fold_subjects(table))
    with pytest.raises(ValueError, match="holds another run"):
        run_loso(x, table, TrainConfig(epochs=3), out_dir=a.path, progress=False)
    cached_run(x, table, TrainConfig(epochs=1, batch_size=8), progress=False, cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 2


def test_validation_split_needs_training_subjects(data):
    from convat.loso import inner_validation_mask

    _, table = data
    ids = subject_key(table).to_numpy()
    train = ids != fold_subjects(table)[0]
    mask = inner_validation_mask(table, train, 0.01, seed=0, fold="f")
    assert len(set(ids[mask])) == 1 and not (mask & ~train).any()
    with pytest.raises(ValueError, match="training subjects"):
        inner_validation_mask(table, ids == fold_subjects(table)[0], 0.5, seed=0)
    with pytest.raises(ValueError, match="val_fraction"):
        TrainConfig(val_fraction=1.0)


def test_cli_help_explains_resume(capsys):
    from convat.cli import build_parser, main

    parser = build_parser()
    args = parser.parse_args(["loso", "--model", "ststnet", "--parallel-folds", "2", "--out", "x"])
    assert args.model == "ststnet" and args.parallel_folds == 2
    with pytest.raises(SystemExit):
        main(["loso", "--help"])
    help_text = capsys.readouterr().out
    assert "resumes" in help_text and "--val-fraction" in help_text
