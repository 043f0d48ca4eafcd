"""The speed machinery keeps results: channels-last, parallel preprocessing, split runs, strategy choice."""

import hashlib
import os
import socket

import numpy as np
import pandas as pd
import pytest

from convat.data.synth import generate
from convat.loso import fit_fold, fold_subjects, resolve_strategy, run_loso, task_folds
from convat.preprocess.cache import TensorCache
from convat.preprocess.pipeline import PreprocessConfig, preprocess
from convat.training.loop import TrainConfig

FAST = TrainConfig(epochs=2, batch_size=16)


@pytest.fixture(scope="module")
def records():
    return generate("quick", n_subjects=4, clips_per_subject=6)


@pytest.fixture(scope="module")
def data(records):
    return preprocess(records, PreprocessConfig(flow="dis", size=32), progress=False)


def test_channels_last_on_the_cpu_keeps_the_predictions(data):
    x, table = data
    classes = sorted(table["label"].unique())
    fold = fold_subjects(table)[0]
    probs = [fit_fold(x, table, fold, classes, TrainConfig(epochs=2, batch_size=16, channels_last=cl)).predictions
             .filter(like="p_").to_numpy() for cl in (False, True)]
    # float rounding only (measured 3e-7 after 3 epochs); a wrong layout (e.g. a mis-strided input) is O(0.1)
    np.testing.assert_allclose(probs[1], probs[0], atol=1e-4)


def test_parallel_preprocessing_gives_the_sequential_tensors(records, tmp_path):
    subset = records[:8]
    config = PreprocessConfig(flow="dis", size=32)
    x1, t1 = preprocess(subset, config, cache=TensorCache(tmp_path / "a"), progress=False)
    x2, t2 = preprocess(subset, config, cache=TensorCache(tmp_path / "b"), progress=False, workers=2)
    np.testing.assert_array_equal(x1, x2)
    pd.testing.assert_frame_equal(t1, t2)
    assert len(list((tmp_path / "b").rglob("*.npz"))) == len(subset)  # every result cached by the parent
    assert not list((tmp_path / "b").rglob("*.tmp"))  # atomic writes leave no temporary file
    x3, _ = preprocess(subset, config, cache=TensorCache(tmp_path / "b"), progress=False, workers=2)
    np.testing.assert_array_equal(x1, x3)


def test_task_folds_partition_the_folds():
    folds = [f"s{i}" for i in range(7)]
    shares = [task_folds(folds, i, 3) for i in range(3)]
    assert sorted(sum(shares, [])) == sorted(folds)
    assert all(len(s) in (2, 3) for s in shares)
    with pytest.raises(ValueError, match="task index"):
        task_folds(folds, 3, 3)


def test_split_tasks_merge_through_the_run_folder(data, tmp_path):
    x, table = data
    folds = fold_subjects(table)
    reference = run_loso(x, table, FAST, progress=False)
    first = run_loso(x, table, FAST, out_dir=tmp_path, progress=False, folds=task_folds(folds, 0, 2))
    assert set(first["fold"]) == set(task_folds(folds, 0, 2))
    assert not (tmp_path / "predictions.csv").exists()  # not all folds yet: no pooled files
    again = run_loso(x, table, FAST, out_dir=tmp_path, progress=False, folds=task_folds(folds, 0, 2))
    pd.testing.assert_frame_equal(again, first)  # idempotent: nothing retrained
    last = run_loso(x, table, FAST, out_dir=tmp_path, progress=False, folds=task_folds(folds, 1, 2))
    assert (tmp_path / "predictions.csv").exists() and (tmp_path / "metrics.csv").exists()
    assert (last["prediction"] == reference["prediction"]).all()
    np.testing.assert_allclose(last.filter(like="p_").to_numpy(), reference.filter(like="p_").to_numpy(),
                               atol=1e-6)
    with pytest.raises(ValueError, match="not folds of this run"):
        run_loso(x, table, FAST, out_dir=tmp_path, progress=False, folds=["nobody"])


def test_split_tasks_side_by_side_leave_the_results_to_the_last_to_finish(data, tmp_path, monkeypatch):
    """Tasks of a Slurm array run at once: each reads the finished folds when it starts, so the last to finish
    has not seen the others' folds. ``convat loso`` looks again after its share (settle_split_run)."""
    from convat import runstore
    from convat.commands.loso import settle_split_run

    x, table = data
    folds = fold_subjects(table)
    run_loso(x, table, FAST, out_dir=tmp_path, progress=False, folds=task_folds(folds, 0, 2))
    real = runstore.RunStore.valid_folds
    looks = []

    def started_before_task_0_finished(store, clips):  # task 1's first look: task 0 was still training
        looks.append(1)
        return {} if len(looks) == 1 else real(store, clips)

    monkeypatch.setattr(runstore.RunStore, "valid_folds", started_before_task_0_finished)
    second = run_loso(x, table, FAST, out_dir=tmp_path, progress=False, folds=task_folds(folds, 1, 2))
    assert set(second["fold"]) == set(task_folds(folds, 1, 2))
    assert not (tmp_path / "predictions.csv").exists()  # what happened before: nobody wrote the results
    settled = settle_split_run(x, table, FAST, tmp_path)
    assert set(settled["fold"]) == set(folds) and (tmp_path / "metrics.csv").exists()
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "predictions.csv"), settled, check_dtype=False)
    # another task settling at the same moment holds the look's lock: this one retries, then says who holds it
    tag = runstore.RunStore(tmp_path).path / (".lock-task-" + hashlib.sha256(b"").hexdigest()[:8])
    tag.write_text(f"{os.getppid()} {socket.gethostname()}\n")
    with pytest.raises(runstore.RunLockedError, match="in use by process"):
        settle_split_run(x, table, FAST, tmp_path, attempts=2, wait_s=0.0)


def test_strategy_resolution(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # auto on a GPU: all folds batched
    cuda = TrainConfig(device="cuda")
    assert resolve_strategy("auto", cuda, 1) == "batched" and resolve_strategy("auto", cuda, 2) == "batched"
    # what the batched trainer cannot do (a validation split, a compiled model) stays sequential on the GPU
    assert resolve_strategy("auto", TrainConfig(device="cuda", compile="reduce-overhead"), 1) == "sequential"
    assert resolve_strategy("auto", TrainConfig(device="cuda", val_fraction=0.2), 1) == "sequential"
    monkeypatch.undo()
    cpu = TrainConfig(device="cpu")
    assert resolve_strategy("auto", cpu, 1) == "sequential"
    assert resolve_strategy("auto", cpu, 2) == "pool"
    assert resolve_strategy("batched", cpu, 1) == "batched"
    with pytest.raises(ValueError, match="unknown strategy"):
        resolve_strategy("fast", cpu, 1)


def test_cli_loso_has_the_speed_flags_and_sweep_is_a_command():
    from convat.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["loso", "--strategy", "batched", "--task-index", "1", "--num-tasks", "4",
                              "--threads", "1", "--workers", "2", "--folds", "synthme/s01,synthme/s02"])
    assert (args.strategy, args.task_index, args.num_tasks, args.threads, args.workers) == ("batched", 1, 4, 1, 2)
    with pytest.raises(SystemExit):
        parser.parse_args(["loso", "--strategy", "fastest"])
    from convat.commands import UsageError
    from convat.commands.loso import validate

    _, config = validate(parser.parse_args(["loso", "--compile", "reduce-overhead"]))
    assert config.compile == "reduce-overhead" and validate(parser.parse_args(["loso"]))[1].compile is None
    with pytest.raises(UsageError, match="--compile"):
        validate(parser.parse_args(["loso", "--compile", "default", "--strategy", "batched"]))
    args = parser.parse_args(["sweep", "--models", "a", "b", "--train-seeds", "0", "1", "--out", "x",
                              "--backend", "submitit", "--cluster", "debug"])
    assert args.models == ["a", "b"] and args.train_seeds == [0, 1] and args.cluster == "debug"
